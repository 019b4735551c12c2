//! Proof-carrying code rules of the Pulley instructions (see [`crate::machinst::pcc`]): what
//! each instruction tells the kernel, one arm per instruction.
//!
//! Pulley's 32-bit operations write the low half of a register and leave the upper half as
//! it was (`pulley-interpreter`'s `set_u32`), so a 32-bit result says nothing about the
//! 64-bit register, and no convention promises anything about the upper bits of a narrow
//! value: an i32 index must be zero-extended (`zext32`) or used by a mode that extends it
//! (`g32`, `g32bne`) before it is part of an address. Faults are not traps on Pulley: an
//! access is proven in bounds, or the instruction itself tests first (`_z` on a null base,
//! `g32` against the bound).

use super::inst::{Amode, BinOp, BrCond, ImmCond, ImmOp, MInst, MemOp, UnOp};
use crate::machinst::pcc::kernel::{Address, Cc, Cmp, Fact, Operand, PccError};
use crate::machinst::pcc::{id, Cx, PccInst};
use crate::machinst::VReg;

fn width(op: MemOp) -> u64 {
    use MemOp::*;
    match op {
        X8U | X8S => 1,
        X16U | X16S | X16UBe | X16SBe => 2,
        X32 | X32Be | F32 | F32Be => 4,
        X64 | X64Be | F64 | F64Be => 8,
    }
}

fn br_cond(c: BrCond) -> (Cc, u8) {
    use BrCond::*;
    match c {
        Eq32 => (Cc::Eq, 32),
        Neq32 => (Cc::Ne, 32),
        Ult32 => (Cc::Ult, 32),
        Ulteq32 => (Cc::Ule, 32),
        Eq64 => (Cc::Eq, 64),
        Neq64 => (Cc::Ne, 64),
        Ult64 => (Cc::Ult, 64),
        Ulteq64 => (Cc::Ule, 64),
        Slt32 | Slteq32 => (Cc::Other, 32),
        Slt64 | Slteq64 => (Cc::Other, 64),
    }
}

/// The comparison of registers `a` and `b` a branch or trap condition makes.
fn reg_cmp(c: BrCond, a: VReg, b: VReg) -> Cmp {
    let (cc, bits) = br_cond(c);
    Cmp {
        cc,
        a: Operand::Value(id(a)),
        b: Operand::Value(id(b)),
        bits,
    }
}

/// The comparison of `a` with immediate `imm` (as [`ImmCond::immediate`] encodes it).
fn imm_cmp(c: ImmCond, wide: bool, a: VReg, imm: i64) -> Cmp {
    use ImmCond::*;
    let (cc, k) = match c {
        Eq => (Cc::Eq, imm as u64),
        Neq => (Cc::Ne, imm as u64),
        Ult => (Cc::Ult, imm as u64),
        Ugt => (Cc::Ugt, imm as u64),
        Ulteq => (Cc::Ule, imm as u64),
        Ugteq => (Cc::Uge, imm as u64),
        Slt | Sgt | Slteq | Sgteq => (Cc::Other, 0),
    };
    let bits = if wide { 64 } else { 32 };
    Cmp {
        cc,
        a: Operand::Value(id(a)),
        b: Operand::Imm(if wide { k } else { k & u64::from(u32::MAX) }),
        bits,
    }
}

/// The memory access of `amode`, `width` bytes.
fn access(
    cx: &mut Cx<'_>,
    amode: &Amode,
    width: u64,
    trap: bool,
    write: bool,
) -> Result<(), PccError> {
    match *amode {
        // `_z` traps when the base register is null.
        Amode::O32 { base, offset } | Amode::Z { base, offset } => cx.memory(
            Address {
                base: id(base),
                index: None,
                disp: i64::from(offset),
            },
            width,
            trap,
            matches!(amode, Amode::Z { .. }),
            write,
        ),
        Amode::G32 {
            base,
            bound,
            index,
            offset,
        } => cx.g32(base, id(bound), index, u64::from(offset), width),
        Amode::G32Bne {
            base,
            bound_addr,
            bound_offset,
            index,
            offset,
        } => {
            let bound = cx.field(bound_addr, i64::from(bound_offset))?;
            cx.g32(base, bound, index, u64::from(offset), width)
        }
    }
}

impl PccInst for MInst {
    fn value_fact(_bits: u8) -> Fact {
        Fact::ANY
    }

    fn is_call(&self) -> bool {
        matches!(self, MInst::Call { .. })
    }

    fn always_traps(&self) -> bool {
        matches!(self, MInst::Trap { .. })
    }

    fn edge(&self, succ: crate::machinst::MachBlock, cx: &mut Cx<'_>) {
        match *self {
            MInst::BrIf {
                cond,
                taken,
                not_taken,
            } if taken != not_taken => cx.k.assume_value(id(cond), 32, succ == taken),
            MInst::BrCmp {
                cond,
                a,
                b,
                taken,
                not_taken,
            } if taken != not_taken => cx.k.assume(reg_cmp(cond, a, b), succ == taken),
            MInst::BrCmpImm {
                cond,
                wide,
                a,
                imm,
                taken,
                not_taken,
            } if taken != not_taken => cx.k.assume(imm_cmp(cond, wide, a, imm), succ == taken),
            _ => {}
        }
    }

    fn pcc(&self, cx: &mut Cx<'_>) -> Result<(), PccError> {
        match self {
            MInst::Args { args } => args.iter().for_each(|&(v, _)| cx.abi_def(v)),
            MInst::StackArg { dst, .. } | MInst::LoadCallRet { dst, .. } => cx.abi_load(*dst),
            MInst::StoreCallArg { src, .. } | MInst::StoreRet { src, .. } => cx.abi_store(*src)?,
            MInst::Ret { rets } => {
                for &(v, _) in rets {
                    cx.abi_use(v)?;
                }
            }
            MInst::Bin { op, dst, a, b } => {
                let (dst, a, b) = (id(*dst), id(*a), id(*b));
                let cmp = |cc, bits| Cmp {
                    cc,
                    a: Operand::Value(a),
                    b: Operand::Value(b),
                    bits,
                };
                match op {
                    BinOp::Xadd64 => cx.k.add(dst, a, Operand::Value(b), 64, false),
                    // The result's low 32 bits are 0 or 1; the others are whatever the
                    // register held: a condition, not an integer.
                    BinOp::Xult64 => cx.k.compare(dst, cmp(Cc::Ult, 64)),
                    BinOp::Xulteq64 => cx.k.compare(dst, cmp(Cc::Ule, 64)),
                    BinOp::Xeq64 => cx.k.compare(dst, cmp(Cc::Eq, 64)),
                    BinOp::Xneq64 => cx.k.compare(dst, cmp(Cc::Ne, 64)),
                    BinOp::Xult32 => cx.k.compare(dst, cmp(Cc::Ult, 32)),
                    BinOp::Xulteq32 => cx.k.compare(dst, cmp(Cc::Ule, 32)),
                    BinOp::Xeq32 => cx.k.compare(dst, cmp(Cc::Eq, 32)),
                    BinOp::Xneq32 => cx.k.compare(dst, cmp(Cc::Ne, 32)),
                    _ => cx.k.define(dst, Fact::ANY),
                }
            }
            MInst::MulAdd { dst, .. } | MInst::FConst { dst, .. } => {
                cx.k.define(id(*dst), Fact::ANY)
            }
            MInst::BinImm {
                op,
                wide: true,
                dst,
                a,
                imm,
            } => {
                let (dst, a) = (id(*dst), id(*a));
                match op {
                    ImmOp::Add if *imm >= 0 => {
                        cx.k.add(dst, a, Operand::Imm(*imm as u64), 64, false)
                    }
                    ImmOp::Sub if *imm >= 0 => cx.k.sub_imm(dst, a, *imm as u64, 64),
                    ImmOp::Shl if (0..64).contains(imm) => cx.k.shl_imm(dst, a, *imm as u32, 64),
                    ImmOp::And if *imm >= 0 => cx.k.define(
                        dst,
                        Fact::Int {
                            lo: 0,
                            hi: *imm as u64,
                            le: None,
                        },
                    ),
                    _ => cx.k.define(dst, Fact::ANY),
                }
            }
            MInst::BinImm { dst, .. } => cx.k.define(id(*dst), Fact::ANY),
            MInst::AddTrap {
                wide, dst, a, b, ..
            } => {
                if *wide {
                    cx.k.add(id(*dst), id(*a), Operand::Value(id(*b)), 64, true)
                } else {
                    cx.k.define(id(*dst), Fact::ANY)
                }
            }
            MInst::Un { op, dst, src } => {
                let (dst, src) = (id(*dst), id(*src));
                match op {
                    UnOp::Xmov | UnOp::Fmov => cx.k.copy(dst, src),
                    UnOp::Zext8 => cx.k.zero_extend(dst, src, 8),
                    UnOp::Zext16 => cx.k.zero_extend(dst, src, 16),
                    UnOp::Zext32 => cx.k.zero_extend(dst, src, 32),
                    _ => cx.k.define(dst, Fact::ANY),
                }
            }
            MInst::XConst { dst, imm } => cx.k.constant(id(*dst), *imm as u64),
            MInst::Select { dst, cond, a, b } => {
                cx.k.select_on(id(*dst), id(*cond), id(*a), id(*b))
            }
            MInst::Load {
                op,
                dst,
                amode,
                trap,
            } => {
                access(cx, amode, width(*op), trap.is_some(), false)?;
                if let Amode::O32 { base, offset } = amode {
                    let at = Address {
                        base: id(*base),
                        index: None,
                        disp: i64::from(*offset),
                    };
                    cx.k.read_into(id(*dst), at, width(*op));
                }
                cx.k.define(id(*dst), Fact::ANY);
            }
            MInst::Store {
                op, amode, trap, ..
            } => access(cx, amode, width(*op), trap.is_some(), true)?,
            MInst::Jump { .. }
            | MInst::BrIf { .. }
            | MInst::BrCmp { .. }
            | MInst::BrCmpImm { .. }
            | MInst::BrTable { .. }
            | MInst::Trap { .. } => {}
            // Past the trap, the condition does not hold.
            MInst::TrapIf { cond, a, b, .. } => {
                cx.k.assume(reg_cmp(*cond, *a, *b), false);
            }
            MInst::TrapIfImm {
                cond, wide, a, imm, ..
            } => cx.k.assume(imm_cmp(*cond, *wide, *a, *imm), false),
            // Past the trap, `x` is zero (or, with `zero`, not).
            MInst::TrapIfNonzero { x, zero, .. } => cx.k.assume_value(id(*x), 32, *zero),
            MInst::Call { args, rets, .. } => {
                for &(v, _) in args {
                    cx.abi_use(v)?;
                }
                cx.call();
                for &(v, _) in rets {
                    cx.abi_def(v);
                }
            }
        }
        Ok(())
    }
}

/// The addressing-mode operands of `amode` as `pulley-interpreter`'s disassembler prints
/// them, its mode suffix, and whether the mode is one that the instruction is named for.
fn printed_amode(amode: &Amode) -> (&'static str, Vec<String>) {
    let x = |r: VReg| format!("x{}", r.vreg());
    match *amode {
        Amode::O32 { base, offset } => ("o32", vec![x(base), offset.to_string()]),
        Amode::Z { base, offset } => ("z", vec![x(base), offset.to_string()]),
        Amode::G32 {
            base,
            bound,
            index,
            offset,
        } => ("g32", vec![x(base), x(bound), x(index), offset.to_string()]),
        Amode::G32Bne {
            base,
            bound_addr,
            bound_offset,
            index,
            offset,
        } => (
            "g32bne",
            vec![
                x(base),
                format!("*[{} + {bound_offset}]", x(bound_addr)),
                x(index),
                offset.to_string(),
            ],
        ),
    }
}

/// Decodes everything emitted back with `pulley-interpreter`'s own decoder and
/// disassembler. Each load and store must be the access that was proven: the same addressing
/// mode, registers, offset and width. No other instruction may access memory. An integer
/// move, spill or reload must keep all 64 bits (`xmov`, or a 64-bit access of the stack).
/// An emission bug that re-addresses, widens or narrows an access is below the proof; this
/// catches it. Returns the number of accesses checked.
pub fn decode_accesses(
    code: &[u8],
    emitted: &[crate::machinst::emit::Emitted<MInst>],
) -> Result<u64, crate::machinst::CodegenError> {
    use crate::machinst::emit::What;
    use crate::machinst::{CodegenError, RegClass};
    use pulley_interpreter::decode::Decoder;
    use pulley_interpreter::disas::Disassembler;
    let mut checked = 0;
    for e in emitted {
        let bytes = &code[e.start as usize..e.end as usize];
        let mut d = Disassembler::new(bytes);
        d.offsets(false).hexdump(false).br_tables(false);
        Decoder::decode_all(&mut d).map_err(|err| {
            CodegenError::new(format!(
                "pcc: the code emitted at {:#x} does not decode: {err:?}",
                e.start
            ))
        })?;
        let text = d.disas().to_string();
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let accesses: Vec<&str> = lines
            .iter()
            .copied()
            // Pulley's loads and stores: `xload..`, `fstore..` and so on (the frame's
            // `push_frame_save`/`pop_frame_restore` are the prologue's and epilogue's own).
            .filter(|l| {
                let l = l.trim_start_matches(['x', 'f', 'v']);
                l.starts_with("load") || l.starts_with("store")
            })
            .collect();
        let fail = |why: String| {
            CodegenError::new(format!(
                "pcc: the code emitted at {:#x} decodes as `{}`: {why}",
                e.start,
                lines.join("; ")
            ))
        };
        let (op, amode, is_store, inst) = match &e.what {
            What::Move(from, to) => {
                let int = from.as_reg().or(to.as_reg()).map(|r| r.class()) == Some(RegClass::Int);
                let whole = lines.iter().all(|l| {
                    l.starts_with("xmov ")
                        || l.starts_with("xload64le_o32 ")
                        || l.starts_with("xstore64le_o32 ")
                });
                if int && !whole {
                    return Err(fail(
                        "a move of an integer register narrower than 64 bits".to_string(),
                    ));
                }
                checked += accesses.len() as u64;
                continue;
            }
            // A parameter above the frame; an argument in the outgoing area: one 64-bit
            // access of the stack.
            What::Inst(
                inst @ (MInst::StackArg { .. }
                | MInst::StoreCallArg { .. }
                | MInst::StoreRet { .. }
                | MInst::LoadCallRet { .. }),
            ) => {
                let stack = |l: &&str| {
                    l.split_once(' ').is_some_and(|(m, ops)| {
                        m.ends_with("64le_o32") && ops.split(", ").any(|o| o == "sp")
                    })
                };
                if accesses.len() != 1 || !accesses.iter().all(stack) {
                    return Err(fail(format!(
                        "expected one 64-bit access of the stack for `{inst:?}`"
                    )));
                }
                checked += 1;
                continue;
            }
            What::Inst(inst @ MInst::Load { op, amode, .. }) => (*op, amode, false, inst),
            What::Inst(inst @ MInst::Store { op, amode, .. }) => (*op, amode, true, inst),
            What::Inst(inst) => {
                if !accesses.is_empty() {
                    return Err(fail(format!("a memory access emitted for `{inst:?}`")));
                }
                continue;
            }
        };
        let (mode, want) = printed_amode(amode);
        let fail = |why: String| fail(format!("{why}, proven for `{inst:?}`"));
        let [line] = accesses[..] else {
            return Err(fail(format!("{} accesses, expected 1", accesses.len())));
        };
        let (mnemonic, operands) = line.split_once(' ').unwrap_or((line, ""));
        let mut ops: Vec<String> = operands.split(", ").map(str::to_string).collect();
        // The loaded or stored register is first for loads, last for stores.
        if is_store {
            ops.pop();
        } else if !ops.is_empty() {
            ops.remove(0);
        }
        let bits: String = mnemonic
            .trim_start_matches(['x', 'f'])
            .trim_start_matches("load")
            .trim_start_matches("store")
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        let suffix = mnemonic.rsplit('_').next().unwrap_or("");
        if bits != (width(op) * 8).to_string() {
            return Err(fail(format!("{bits} bits, expected {}", width(op) * 8)));
        }
        if suffix != mode || ops != want {
            return Err(fail(format!(
                "mode `{suffix}` with {ops:?}, expected `{mode}` with {want:?}"
            )));
        }
        checked += 1;
    }
    Ok(checked)
}
