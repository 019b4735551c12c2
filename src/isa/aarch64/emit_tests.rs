//! Every encoding form the emitter produces, decoded back by capstone and compared with the
//! instruction that was meant, written out by hand from the Arm ARM's assembly syntax (as
//! capstone prints it: hexadecimal immediates from 10, aliases such as `mov`, `cmp`, `cset`).
//! The hand-encoded words (`b`, `b.cond`, `adr`, `csel`, `csinc`, `fcsel`, `add`/`sub`
//! immediates, `movz`/`movn`/`movk`) get extra cases at their fields' edges; branches are
//! checked after the buffer patched them.

use super::*;
use crate::machinst::buffer::Label;
use regalloc2::SpillSlot;

fn x(n: usize) -> VReg {
    VReg::new(n, RegClass::Int)
}

fn v(n: usize) -> VReg {
    VReg::new(n, RegClass::Float)
}

fn emitter(blocks: usize, frame: Option<(u32, Vec<u32>)>) -> Emitter {
    let mut buf = CodeBuffer::default();
    let block_labels: Vec<Label> = (0..blocks).map(|_| buf.new_label()).collect();
    let mut e = Emitter {
        buf,
        block_labels: Vec::new(),
        frame,
        next: None,
        tables: Vec::new(),
        outgoing: 0,
    };
    crate::machinst::emit::Emit::begin(&mut e, block_labels);
    e
}

/// Binds block `i` after `i` `nop`s past the code, then places the trap islands and jump
/// tables as [`emit`] does, and resolves every label.
fn finish(mut e: Emitter) -> CompiledCode {
    for (i, &l) in e.block_labels.clone().iter().enumerate() {
        if i > 0 {
            a64!(e; nop);
        }
        e.buf.bind(l);
    }
    e.place_islands_and_tables();
    assert_eq!(e.buf.out_of_range(), None);
    e.buf.finish(None)
}

fn text(code: &[u8]) -> String {
    super::super::decode(code, 0)
        .unwrap()
        .iter()
        .map(|(m, o)| {
            if o.is_empty() {
                m.clone()
            } else {
                format!("{m} {o}")
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Emits `insts` (with `blocks` block labels) and checks capstone's reading of the code.
fn check_with(blocks: usize, insts: &[MInst], expected: &str) -> CompiledCode {
    let mut e = emitter(blocks, None);
    for i in insts {
        e.emit_inst(i).unwrap_or_else(|err| panic!("{i:?}: {err}"));
    }
    let code = finish(e);
    assert_eq!(text(&code.code), expected, "{insts:?}");
    code
}

fn check(inst: MInst, expected: &str) {
    check_with(0, &[inst], expected);
}

fn cmp(size: Size, cond: Cond, a: VReg, b: Rim) -> Test {
    Test::Cmp { size, cond, a, b }
}

#[test]
fn integer_arithmetic() {
    use AluOp::*;
    for (op, size, expected) in [
        (Add, Size::W, "add w0, w1, w2"),
        (Add, Size::X, "add x0, x1, x2"),
        (Sub, Size::W, "sub w0, w1, w2"),
        (Sub, Size::X, "sub x0, x1, x2"),
        (And, Size::X, "and x0, x1, x2"),
        (Orr, Size::W, "orr w0, w1, w2"),
        (Eor, Size::X, "eor x0, x1, x2"),
        (Mul, Size::W, "mul w0, w1, w2"),
        (Mul, Size::X, "mul x0, x1, x2"),
        (Lsl, Size::W, "lsl w0, w1, w2"),
        (Lsr, Size::X, "lsr x0, x1, x2"),
        (Asr, Size::W, "asr w0, w1, w2"),
        (Ror, Size::X, "ror x0, x1, x2"),
        (Udiv, Size::W, "udiv w0, w1, w2"),
        (Sdiv, Size::X, "sdiv x0, x1, x2"),
        (Umulh, Size::X, "umulh x0, x1, x2"),
        (Smulh, Size::X, "smulh x0, x1, x2"),
    ] {
        check(
            MInst::Alu {
                op,
                size,
                dst: x(0),
                a: x(1),
                b: x(2),
            },
            expected,
        );
    }
    // The high registers, so that every register field is seen to take five bits.
    check(
        MInst::Alu {
            op: Add,
            size: Size::X,
            dst: x(28),
            a: x(27),
            b: x(30),
        },
        "add x28, x27, x30",
    );
    for (sub, size, imm, expected) in [
        (false, Size::W, 0x10, "add w3, w4, #0x10"),
        (false, Size::X, 0xfff, "add x3, x4, #0xfff"),
        (true, Size::X, 1, "sub x3, x4, #1"),
        (true, Size::W, 0x1000, "sub w3, w4, #1, lsl #12"),
        (false, Size::X, 0xfff000, "add x3, x4, #0xfff, lsl #12"),
    ] {
        check(
            MInst::AluImm {
                sub,
                size,
                dst: x(3),
                a: x(4),
                imm,
            },
            expected,
        );
    }
    check(
        MInst::AddUxtw {
            dst: x(0),
            a: x(1),
            b: x(2),
        },
        "add x0, x1, w2, uxtw",
    );
    check(
        MInst::Msub {
            size: Size::W,
            dst: x(0),
            a: x(1),
            b: x(2),
            c: x(3),
        },
        "msub w0, w1, w2, w3",
    );
    check(
        MInst::Msub {
            size: Size::X,
            dst: x(0),
            a: x(1),
            b: x(2),
            c: x(3),
        },
        "msub x0, x1, x2, x3",
    );
    for (op, size, amount, expected) in [
        (Lsl, Size::W, 3, "lsl w0, w1, #3"),
        (Lsl, Size::X, 63, "lsl x0, x1, #0x3f"),
        (Lsr, Size::W, 31, "lsr w0, w1, #0x1f"),
        (Lsr, Size::X, 1, "lsr x0, x1, #1"),
        (Asr, Size::W, 7, "asr w0, w1, #7"),
        (Asr, Size::X, 32, "asr x0, x1, #0x20"),
        (Ror, Size::W, 8, "ror w0, w1, #8"),
        (Ror, Size::X, 60, "ror x0, x1, #0x3c"),
    ] {
        check(
            MInst::ShiftImm {
                op,
                size,
                dst: x(0),
                a: x(1),
                amount,
            },
            expected,
        );
    }
    let mut e = emitter(0, None);
    let bad = e.emit_inst(&MInst::ShiftImm {
        op: Mul,
        size: Size::W,
        dst: x(0),
        a: x(1),
        amount: 1,
    });
    assert!(
        bad.is_err(),
        "a multiplication by an immediate has no encoding"
    );
}

#[test]
fn unary_and_extensions() {
    use UnaryOp::*;
    for (op, size, expected) in [
        (Neg, Size::W, "neg w0, w1"),
        (Neg, Size::X, "neg x0, x1"),
        (Not, Size::W, "mvn w0, w1"),
        (Not, Size::X, "mvn x0, x1"),
        (Rev, Size::W, "rev w0, w1"),
        (Rev, Size::X, "rev x0, x1"),
        (Rev16, Size::W, "rev16 w0, w1"),
        (Clz, Size::W, "clz w0, w1"),
        (Clz, Size::X, "clz x0, x1"),
        (Ctz, Size::W, "rbit w0, w1; clz w0, w0"),
        (Ctz, Size::X, "rbit x0, x1; clz x0, x0"),
        (
            Popcnt,
            Size::W,
            "fmov s2, w1; cnt v2.8b, v2.8b; addv b2, v2.8b; fmov w0, s2",
        ),
        (
            Popcnt,
            Size::X,
            "fmov d2, x1; cnt v2.8b, v2.8b; addv b2, v2.8b; fmov w0, s2",
        ),
    ] {
        check(
            MInst::Unary {
                op,
                size,
                dst: x(0),
                a: x(1),
                tmp: (op == Popcnt).then(|| v(2)),
            },
            expected,
        );
    }
    use ExtOp::*;
    for (op, expected) in [
        (Zx8, "uxtb w0, w1"),
        (Zx16, "uxth w0, w1"),
        (Zx32, "mov w0, w1"),
        (Sx8To32, "sxtb w0, w1"),
        (Sx16To32, "sxth w0, w1"),
        (Sx8To64, "sxtb x0, w1"),
        (Sx16To64, "sxth x0, w1"),
        (Sx32To64, "sxtw x0, w1"),
    ] {
        check(
            MInst::Ext {
                op,
                dst: x(0),
                src: x(1),
            },
            expected,
        );
    }
    check(
        MInst::Mov {
            dst: x(0),
            src: x(1),
        },
        "mov x0, x1",
    );
    check(
        MInst::Mov {
            dst: v(0),
            src: v(1),
        },
        "fmov d0, d1",
    );
    // A move onto itself is no instruction.
    check(
        MInst::Mov {
            dst: x(5),
            src: x(5),
        },
        "",
    );
}

#[test]
fn constants() {
    for (size, imm, expected) in [
        (Size::W, 0, "mov w0, #0"),
        (Size::X, 0, "mov x0, #0"),
        (Size::X, 0x1234, "mov x0, #0x1234"),
        // movz of the upper half only.
        (Size::W, 0x5678_0000, "mov w0, #0x56780000"),
        (
            Size::X,
            0x1234_0000_5678,
            "mov x0, #0x5678; movk x0, #0x1234, lsl #32",
        ),
        (
            Size::X,
            0x1122_3344_5566_7788,
            "mov x0, #0x7788; movk x0, #0x5566, lsl #16; movk x0, #0x3344, lsl #32; \
             movk x0, #0x1122, lsl #48",
        ),
        // movn: more halfwords of ones than of zeros.
        (Size::X, u64::MAX, "mov x0, #-1"),
        (Size::X, 0xffff_ffff_ffff_1234, "mov x0, #-0xedcc"),
        (
            Size::X,
            0xffff_1234_ffff_5678,
            "mov x0, #-0xa988; movk x0, #0x1234, lsl #32",
        ),
        (Size::W, 0xffff_fffe, "mov w0, #-2"),
        (Size::W, 0xffff_ffff, "mov w0, #-1"),
        // A `W` constant is the low 32 bits.
        (Size::W, 0xdead_0000_0000_0007, "mov w0, #7"),
    ] {
        check(
            MInst::Imm {
                size,
                dst: x(0),
                imm,
            },
            expected,
        );
    }
    for (wide, bits, expected) in [
        (true, 0, "fmov d0, xzr"),
        (false, 0, "fmov d0, xzr"),
        (
            true,
            1f64.to_bits(),
            "mov x1, #0x3ff0000000000000; fmov d0, x1",
        ),
        (
            false,
            u64::from(1f32.to_bits()),
            "mov w1, #0x3f800000; fmov s0, w1",
        ),
    ] {
        check(
            MInst::FImm {
                wide,
                dst: v(0),
                tmp: x(1),
                bits,
            },
            expected,
        );
    }
}

#[test]
fn conditions_and_selects() {
    // Every condition through `csinc` (as `cset`, which names the inverse of the encoded
    // condition) and `csel`.
    use Cond::*;
    for (cond, name) in [
        (Eq, "eq"),
        (Ne, "ne"),
        (Hs, "hs"),
        (Lo, "lo"),
        (Mi, "mi"),
        (Pl, "pl"),
        (Vs, "vs"),
        (Vc, "vc"),
        (Hi, "hi"),
        (Ls, "ls"),
        (Ge, "ge"),
        (Lt, "lt"),
        (Gt, "gt"),
        (Le, "le"),
    ] {
        check(
            MInst::CSet {
                test: cmp(Size::W, cond, x(1), Rim::Reg(x(2))),
                dst: x(0),
            },
            &format!("cmp w1, w2; cset w0, {name}"),
        );
        check(
            MInst::CSel {
                test: cmp(Size::X, cond, x(1), Rim::Imm(0x10)),
                dst: x(0),
                t: x(2),
                f: x(3),
            },
            &format!("cmp x1, #0x10; csel x0, x2, x3, {name}"),
        );
    }
    check(
        MInst::CSet {
            test: Test::NonZero {
                size: Size::X,
                x: x(1),
                zero: false,
            },
            dst: x(0),
        },
        "cmp x1, #0; cset w0, ne",
    );
    check(
        MInst::CSet {
            test: Test::NonZero {
                size: Size::W,
                x: x(1),
                zero: true,
            },
            dst: x(0),
        },
        "cmp w1, #0; cset w0, eq",
    );
    check(
        MInst::CSel {
            test: cmp(Size::X, Lo, x(1), Rim::Imm(0x3000)),
            dst: v(0),
            t: v(1),
            f: v(2),
        },
        "cmp x1, #3, lsl #12; fcsel d0, d1, d2, lo",
    );
    check(MInst::Csdb, "csdb");
    // The Spectre guard: the zero register into the address when out of bounds.
    check(
        MInst::CSelZero {
            test: cmp(Size::X, Hi, x(1), Rim::Reg(x(2))),
            dst: x(0),
            f: x(3),
            csdb: true,
        },
        "cmp x1, x2; csel x0, xzr, x3, hi; csdb",
    );
    check(
        MInst::CSelZero {
            test: cmp(Size::X, Hs, x(1), Rim::Reg(x(2))),
            dst: x(0),
            f: x(3),
            csdb: false,
        },
        "cmp x1, x2; csel x0, xzr, x3, hs",
    );
}

fn imm(disp: i64) -> Amode {
    Amode::Imm { base: x(1), disp }
}

#[test]
fn loads_and_stores_in_every_addressing_mode() {
    let uxtw = Amode::Reg {
        base: x(1),
        index: x(2),
        uxtw: true,
    };
    let reg = Amode::Reg {
        base: x(1),
        index: x(2),
        uxtw: false,
    };
    for (op, dst, amode, expected) in {
        use LoadOp::*;
        [
            (U8, x(0), imm(1), "ldrb w0, [x1, #1]"),
            (U8, x(0), imm(4095), "ldrb w0, [x1, #0xfff]"),
            (U8, x(0), imm(-1), "ldurb w0, [x1, #-1]"),
            (S8To32, x(0), imm(1), "ldrsb w0, [x1, #1]"),
            (S8To64, x(0), imm(-256), "ldursb x0, [x1, #-0x100]"),
            (U16, x(0), imm(2), "ldrh w0, [x1, #2]"),
            (U16, x(0), imm(3), "ldurh w0, [x1, #3]"),
            (S16To32, x(0), imm(8190), "ldrsh w0, [x1, #0x1ffe]"),
            (S16To64, x(0), imm(-2), "ldursh x0, [x1, #-2]"),
            (U32, x(0), imm(0), "ldr w0, [x1]"),
            (U32, x(0), imm(16380), "ldr w0, [x1, #0x3ffc]"),
            (U32, x(0), imm(255), "ldur w0, [x1, #0xff]"),
            (S32To64, x(0), imm(4), "ldrsw x0, [x1, #4]"),
            (S32To64, x(0), imm(-4), "ldursw x0, [x1, #-4]"),
            (X64, x(0), imm(32760), "ldr x0, [x1, #0x7ff8]"),
            (X64, x(0), imm(12), "ldur x0, [x1, #0xc]"),
            (F32, v(0), imm(4), "ldr s0, [x1, #4]"),
            (F32, v(0), imm(-8), "ldur s0, [x1, #-8]"),
            (F64, v(0), imm(8), "ldr d0, [x1, #8]"),
            (F64, v(0), imm(1), "ldur d0, [x1, #1]"),
            (U8, x(0), uxtw, "ldrb w0, [x1, w2, uxtw]"),
            (S8To64, x(0), uxtw, "ldrsb x0, [x1, w2, uxtw]"),
            (U16, x(0), uxtw, "ldrh w0, [x1, w2, uxtw]"),
            (S16To32, x(0), reg, "ldrsh w0, [x1, x2]"),
            (U32, x(0), uxtw, "ldr w0, [x1, w2, uxtw]"),
            (S32To64, x(0), reg, "ldrsw x0, [x1, x2]"),
            (X64, x(0), uxtw, "ldr x0, [x1, w2, uxtw]"),
            (X64, x(0), reg, "ldr x0, [x1, x2]"),
            (F32, v(0), uxtw, "ldr s0, [x1, w2, uxtw]"),
            (F64, v(0), reg, "ldr d0, [x1, x2]"),
        ]
    } {
        check(
            MInst::Load {
                op,
                dst,
                amode,
                trap: None,
            },
            expected,
        );
    }
    for (op, src, amode, expected) in {
        use StoreOp::*;
        [
            (B, x(0), imm(7), "strb w0, [x1, #7]"),
            (B, x(0), imm(-7), "sturb w0, [x1, #-7]"),
            (B, x(0), uxtw, "strb w0, [x1, w2, uxtw]"),
            (H, x(0), imm(2), "strh w0, [x1, #2]"),
            (H, x(0), imm(1), "sturh w0, [x1, #1]"),
            (H, x(0), reg, "strh w0, [x1, x2]"),
            (W, x(0), imm(4), "str w0, [x1, #4]"),
            (W, x(0), imm(2), "stur w0, [x1, #2]"),
            (W, x(0), uxtw, "str w0, [x1, w2, uxtw]"),
            (X, x(0), imm(8), "str x0, [x1, #8]"),
            (X, x(0), imm(-8), "stur x0, [x1, #-8]"),
            (X, x(0), reg, "str x0, [x1, x2]"),
            (F32, v(0), imm(4), "str s0, [x1, #4]"),
            (F32, v(0), uxtw, "str s0, [x1, w2, uxtw]"),
            (F64, v(0), imm(-16), "stur d0, [x1, #-0x10]"),
            (F64, v(0), reg, "str d0, [x1, x2]"),
        ]
    } {
        check(
            MInst::Store {
                op,
                src,
                amode,
                trap: None,
            },
            expected,
        );
    }
    // A trapping access is a trap site at its own offset.
    let code = check_with(
        0,
        &[
            MInst::Mov {
                dst: x(3),
                src: x(4),
            },
            MInst::Load {
                op: LoadOp::U32,
                dst: x(0),
                amode: uxtw,
                trap: Some(TrapCode::HEAP_OUT_OF_BOUNDS),
            },
            MInst::Store {
                op: StoreOp::W,
                src: x(0),
                amode: imm(4),
                trap: Some(TrapCode::HEAP_OUT_OF_BOUNDS),
            },
        ],
        "mov x3, x4; ldr w0, [x1, w2, uxtw]; str w0, [x1, #4]",
    );
    let sites: Vec<_> = code.traps.iter().map(|(&o, s)| (o, s.code)).collect();
    assert_eq!(
        sites,
        [
            (4, TrapCode::HEAP_OUT_OF_BOUNDS),
            (8, TrapCode::HEAP_OUT_OF_BOUNDS)
        ]
    );
    // A displacement no form holds is an error, never a wrong encoding.
    for amode in [imm(4097 * 4), imm(-257), imm(4098)] {
        let mut e = emitter(0, None);
        let load = MInst::Load {
            op: LoadOp::U32,
            dst: x(0),
            amode,
            trap: None,
        };
        assert!(e.emit_inst(&load).is_err(), "{amode:?}");
    }
}

#[test]
fn floats() {
    use FAluOp::*;
    for (op, name) in [
        (Add, "fadd"),
        (Sub, "fsub"),
        (Mul, "fmul"),
        (Div, "fdiv"),
        (Min, "fmin"),
        (Max, "fmax"),
    ] {
        for (wide, r) in [(false, "s"), (true, "d")] {
            check(
                MInst::FAlu {
                    op,
                    wide,
                    dst: v(0),
                    a: v(1),
                    b: v(31),
                },
                &format!("{name} {r}0, {r}1, {r}31"),
            );
        }
    }
    use FUnOp::*;
    for (op, name) in [
        (Sqrt, "fsqrt"),
        (Neg, "fneg"),
        (Abs, "fabs"),
        (Nearest, "frintn"),
        (Floor, "frintm"),
        (Ceil, "frintp"),
        (Trunc, "frintz"),
    ] {
        for (wide, r) in [(false, "s"), (true, "d")] {
            check(
                MInst::FUn {
                    op,
                    wide,
                    dst: v(0),
                    src: v(1),
                },
                &format!("{name} {r}0, {r}1"),
            );
        }
    }
    for (op, expected) in [(Promote, "fcvt d0, s1"), (Demote, "fcvt s0, d1")] {
        check(
            MInst::FUn {
                op,
                wide: op == Promote,
                dst: v(0),
                src: v(1),
            },
            expected,
        );
    }
    for (wide, dst, src, expected) in [
        (false, x(0), v(1), "fmov w0, s1"),
        (true, x(0), v(1), "fmov x0, d1"),
        (false, v(0), x(1), "fmov s0, w1"),
        (true, v(0), x(1), "fmov d0, x1"),
    ] {
        check(MInst::Bitcast { wide, dst, src }, expected);
    }
    use crate::ir::FloatCC;
    for (cond, wide, expected) in [
        (FloatCC::Equal, false, "fcmp s1, s2; cset w0, eq"),
        (FloatCC::LessThan, true, "fcmp d1, d2; cset w0, mi"),
        (FloatCC::Unordered, false, "fcmp s1, s2; cset w0, vs"),
        (
            FloatCC::UnorderedOrGreaterThanOrEqual,
            true,
            "fcmp d1, d2; cset w0, hs",
        ),
        (
            FloatCC::OrderedNotEqual,
            true,
            "fcmp d1, d2; cset w0, mi; cset w17, gt; orr w0, w0, w17",
        ),
        (
            FloatCC::UnorderedOrEqual,
            false,
            "fcmp s1, s2; cset w0, eq; cset w17, vs; orr w0, w0, w17",
        ),
    ] {
        check(
            MInst::FCmp {
                cond,
                wide,
                dst: x(0),
                a: v(1),
                b: v(2),
            },
            expected,
        );
    }
    for signed in [true, false] {
        for src_wide in [false, true] {
            for dst_wide in [false, true] {
                let name = if signed { "scvtf" } else { "ucvtf" };
                let (d, s) = (
                    if dst_wide { "d0" } else { "s0" },
                    if src_wide { "x1" } else { "w1" },
                );
                check(
                    MInst::IntToFloat {
                        signed,
                        src_wide,
                        dst_wide,
                        dst: v(0),
                        src: x(1),
                    },
                    &format!("{name} {d}, {s}"),
                );
                let name = if signed { "fcvtzs" } else { "fcvtzu" };
                let (d, s) = (
                    if dst_wide { "x0" } else { "w0" },
                    if src_wide { "d1" } else { "s1" },
                );
                check(
                    MInst::FloatToInt {
                        signed,
                        sat: true,
                        src_wide,
                        dst_wide,
                        dst: x(0),
                        src: v(1),
                        tmp: v(2),
                    },
                    &format!("{name} {d}, {s}"),
                );
            }
        }
    }
    // The trapping conversion f64 -> i32: NaN to the `bad_toint` island, then the exclusive
    // bounds -2^31 - 1 and 2^31 (built in x17) to the `int_ovf` island.
    let code = check_with(
        0,
        &[MInst::FloatToInt {
            signed: true,
            sat: false,
            src_wide: true,
            dst_wide: false,
            dst: x(0),
            src: v(1),
            tmp: v(2),
        }],
        "fcmp d1, d1; b.vs #0x30; \
         mov x17, #0x200000; movk x17, #0xc1e0, lsl #48; \
         fmov d2, x17; fcmp d1, d2; b.ls #0x34; \
         mov x17, #0x41e0000000000000; fmov d2, x17; fcmp d1, d2; b.ge #0x34; \
         fcvtzs w0, d1; udf #255; udf #252",
    );
    assert_eq!((-2147483649f64).to_bits(), 0xc1e0_0000_0020_0000);
    let sites: Vec<_> = code.traps.iter().map(|(&o, s)| (o, s.code)).collect();
    assert_eq!(
        sites,
        [
            (0x30, TrapCode::BAD_CONVERSION_TO_INTEGER),
            (0x34, TrapCode::INTEGER_OVERFLOW)
        ]
    );
    // f32 -> u64: below is `-1` inclusive-exclusive (`ls`), above 2^64.
    check_with(
        0,
        &[MInst::FloatToInt {
            signed: false,
            sat: false,
            src_wide: false,
            dst_wide: true,
            dst: x(0),
            src: v(1),
            tmp: v(2),
        }],
        "fcmp s1, s1; b.vs #0x2c; \
         mov w17, #-0x40800000; fmov s2, w17; fcmp s1, s2; b.ls #0x30; \
         mov w17, #0x5f800000; fmov s2, w17; fcmp s1, s2; b.ge #0x30; \
         fcvtzu x0, s1; udf #255; udf #252",
    );
}

#[test]
fn branches_traps_and_calls() {
    // Blocks 0, 1 and 2 are bound at the end, 4 bytes apart (see `finish`).
    check_with(
        1,
        &[MInst::Jump {
            target: MachBlock::new(0),
        }],
        "b #4",
    );
    // Backwards and far: `b` and `b.cond` carry the offset's sign and upper bits.
    let mut e = emitter(0, None);
    let top = e.buf.new_label();
    e.buf.bind(top);
    for _ in 0..0x10000 {
        a64!(e; nop);
    }
    e.jump(None, top);
    e.jump(Some(Cond::Ne), top);
    let code = finish(e);
    assert_eq!(
        text(&code.code[0x40000..]),
        "b #0xfffffffffffc0000; b.ne #0xfffffffffffc0000"
    );
    check_with(
        2,
        &[MInst::Br {
            test: cmp(Size::W, Cond::Hi, x(0), Rim::Imm(7)),
            taken: MachBlock::new(1),
            not_taken: MachBlock::new(0),
        }],
        "cmp w0, #7; b.hi #0x10; b #0xc; nop",
    );
    check_with(
        2,
        &[MInst::Br {
            test: Test::NonZero {
                size: Size::X,
                x: x(3),
                zero: true,
            },
            taken: MachBlock::new(0),
            not_taken: MachBlock::new(1),
        }],
        "cmp x3, #0; b.eq #0xc; b #0x10; nop",
    );
    // A jump table: bounds check to the default, `adr` of the table, the entry, the jump;
    // entries are 32-bit offsets from the table's start (data, compared as numbers).
    let table_code = |blocks: usize, targets: Vec<MachBlock>| {
        let mut e = emitter(blocks, None);
        let inst = MInst::BrTable {
            idx: x(0),
            tmp1: x(1),
            tmp2: x(2),
            default: MachBlock::new(0),
            targets,
        };
        e.emit_inst(&inst).unwrap();
        finish(e).code
    };
    let code = table_code(
        3,
        vec![MachBlock::new(2), MachBlock::new(1), MachBlock::new(2)],
    );
    assert_eq!(
        text(&code[..0x20]),
        "cmp w0, #3; b.hs #0x18; adr x1, #0x20; ldrsw x2, [x1, w0, uxtw #2]; \
         add x1, x1, x2; br x1; nop; nop"
    );
    let table: Vec<i32> = code[0x20..]
        .chunks(4)
        .map(|w| i32::from_le_bytes(w.try_into().unwrap()))
        .collect();
    assert_eq!(table, [0x20 - 0x20, 0x1c - 0x20, 0x20 - 0x20]);
    // A table longer than an arithmetic immediate compares its length through x17.
    let code = table_code(1, vec![MachBlock::new(0); 4097]);
    assert_eq!(
        text(&code[..0x1c]),
        "mov w17, #0x1001; cmp w0, w17; b.hs #0x1c; adr x1, #0x1c; \
         ldrsw x2, [x1, w0, uxtw #2]; add x1, x1, x2; br x1"
    );
    assert_eq!(code.len(), 0x1c + 4 * 4097);
    let code = check_with(
        0,
        &[
            MInst::TrapIf {
                test: cmp(Size::X, Cond::Hi, x(0), Rim::Reg(x(1))),
                code: TrapCode::HEAP_OUT_OF_BOUNDS,
            },
            MInst::Trap {
                code: TrapCode::INTEGER_DIVISION_BY_ZERO,
            },
        ],
        "cmp x0, x1; b.hi #0xc; udf #254; udf #253",
    );
    let sites: Vec<_> = code.traps.iter().map(|(&o, s)| (o, s.code)).collect();
    assert_eq!(
        sites,
        [
            (8, TrapCode::INTEGER_DIVISION_BY_ZERO),
            (0xc, TrapCode::HEAP_OUT_OF_BOUNDS)
        ]
    );
    // The bounds check of memory64's `index + offset + size`: the carry traps.
    check_with(
        0,
        &[
            MInst::AddTrap {
                size: Size::X,
                dst: x(0),
                a: x(1),
                b: Rim::Imm(0x104),
                code: TrapCode::HEAP_OUT_OF_BOUNDS,
            },
            MInst::AddTrap {
                size: Size::W,
                dst: x(0),
                a: x(1),
                b: Rim::Reg(x(2)),
                code: TrapCode::HEAP_OUT_OF_BOUNDS,
            },
        ],
        "adds x0, x1, #0x104; b.hs #0x10; adds w0, w1, w2; b.hs #0x10; udf #253",
    );
    let code = check_with(
        0,
        &[MInst::Call {
            callee: "f".into(),
            args: Vec::new(),
            stack_args: 0,
            rets: Vec::new(),
        }],
        "bl #0",
    );
    assert_eq!(code.relocs.len(), 1);
    assert_eq!((code.relocs[0].offset, &*code.relocs[0].callee), (0, "f"));
}

#[test]
fn frames_slots_and_moves() {
    check(MInst::Ret { rets: Vec::new() }, "ret");
    let mut e = emitter(0, Some((0x20, vec![19, 20])));
    e.emit_inst(&MInst::Ret { rets: Vec::new() }).unwrap();
    assert_eq!(
        text(&finish(e).code),
        "stp x29, x30, [sp, #-0x10]!; mov x29, sp; sub sp, sp, #0x20; \
         stur x19, [x29, #-8]; stur x20, [x29, #-0x10]; \
         ldur x19, [x29, #-8]; ldur x20, [x29, #-0x10]; \
         mov sp, x29; ldp x29, x30, [sp], #0x10; ret"
    );
    // A frame beyond an arithmetic immediate is reserved through x17.
    let e = emitter(0, Some((0x12340, Vec::new())));
    assert_eq!(
        text(&finish(e).code),
        "stp x29, x30, [sp, #-0x10]!; mov x29, sp; \
         mov x17, #0x2340; movk x17, #1, lsl #16; sub sp, sp, x17"
    );
    for (inst, expected) in [
        (
            MInst::StackArg { dst: x(0), slot: 0 },
            "ldr x0, [x29, #0x10]",
        ),
        (
            MInst::StackArg { dst: v(0), slot: 1 },
            "ldr d0, [x29, #0x18]",
        ),
        (
            MInst::StoreCallArg { src: x(0), slot: 2 },
            "str x0, [sp, #0x10]",
        ),
        (MInst::StoreCallArg { src: v(3), slot: 0 }, "str d3, [sp]"),
        (
            MInst::LoadCallRet { dst: x(0), slot: 1 },
            "ldr x0, [sp, #8]",
        ),
        (
            MInst::StoreRet { src: x(0), slot: 1 },
            "str x0, [x29, #0x18]",
        ),
        // Beyond the scaled 12-bit offset: the address is made in x17.
        (
            MInst::StoreCallArg {
                src: x(0),
                slot: 5000,
            },
            "mov x17, #0x9c40; add x17, sp, x17; str x0, [x17]",
        ),
    ] {
        check(inst, expected);
    }
    let r = |n: usize, class| Allocation::reg(PReg::new(n, class));
    let s = |k: usize| Allocation::stack(SpillSlot::new(k));
    for (from, to, expected) in [
        (r(1, RegClass::Int), r(0, RegClass::Int), "mov x0, x1"),
        (r(1, RegClass::Float), r(0, RegClass::Float), "fmov d0, d1"),
        (r(3, RegClass::Int), s(2), "str x3, [sp, #0x10]"),
        (s(1), r(3, RegClass::Float), "ldr d3, [sp, #8]"),
    ] {
        let mut e = emitter(0, None);
        e.emit_move(from, to).unwrap();
        assert_eq!(text(&finish(e).code), expected, "{from:?} -> {to:?}");
    }
    let mut e = emitter(0, None);
    assert!(e.emit_move(s(0), s(1)).is_err());
}
