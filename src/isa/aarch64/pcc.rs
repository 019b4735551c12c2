//! Proof-carrying code rules of the AArch64 instructions (see [`crate::machinst::pcc`]): what
//! each instruction tells the kernel, one arm per instruction.
//!
//! The convention the rules rely on and check: a register holding an IR integer of 32 bits
//! or fewer has its upper 32 bits clear (every `W` operation clears them). A bounds-checked
//! access with an i32 index reads it as `windex, uxtw`: the hardware zero-extends the low 32
//! bits, which equals the whole register only when its upper half is known clear, so the
//! rule requires that fact instead of assuming it (the missing-extension bug class).

use super::inst::{AluOp, Amode, Cond, ExtOp, LoadOp, MInst, Rim, Size, Test};
use crate::machinst::pcc::kernel::{Address, Cc, Cmp, Fact, Operand, PccError};
use crate::machinst::pcc::{id, Cx, PccInst};
use crate::machinst::VReg;

fn bits(size: Size) -> u8 {
    size.bits()
}

/// `index`, used as a zero-extended 32-bit index: its register must hold that already.
fn index32(cx: &Cx<'_>, index: VReg) -> Result<(), PccError> {
    match cx.k.fact(id(index)) {
        Fact::Int { hi, .. } if hi <= u64::from(u32::MAX) => Ok(()),
        had => Err(PccError {
            needed: format!(
                "v{} zero-extended from 32 bits, as `uxtw` reads it",
                id(index)
            ),
            had: format!("{had}"),
        }),
    }
}

/// The address an addressing mode computes.
fn address(cx: &Cx<'_>, a: &Amode) -> Result<Address, PccError> {
    Ok(match *a {
        Amode::Imm { base, disp } => Address {
            base: id(base),
            index: None,
            disp,
        },
        Amode::Reg { base, index, uxtw } => {
            if uxtw {
                index32(cx, index)?;
            }
            Address {
                base: id(base),
                index: Some(id(index)),
                disp: 0,
            }
        }
    })
}

/// What a `size` operation leaves in its destination: a `W` operation clears the upper half.
fn result_of_width(cx: &mut Cx<'_>, size: Size, dst: VReg) {
    let f = match size {
        Size::W => Fact::bits(32),
        Size::X => Fact::ANY,
    };
    cx.k.define(id(dst), f);
}

/// The value of `r` when its fact says it is one constant that fits an `i64`.
fn constant(cx: &Cx<'_>, r: VReg) -> Option<i64> {
    match cx.k.fact(id(r)) {
        Fact::Int { lo, hi, .. } if lo == hi => i64::try_from(lo).ok(),
        _ => None,
    }
}

/// The comparison a flag test makes.
fn test(t: &Test) -> Cmp {
    match *t {
        Test::Cmp { size, cond, a, b } => Cmp {
            cc: match cond {
                Cond::Hi => Cc::Ugt,
                Cond::Hs => Cc::Uge,
                Cond::Lo => Cc::Ult,
                Cond::Ls => Cc::Ule,
                Cond::Eq => Cc::Eq,
                Cond::Ne => Cc::Ne,
                _ => Cc::Other,
            },
            a: Operand::Value(id(a)),
            b: match b {
                Rim::Reg(r) => Operand::Value(id(r)),
                Rim::Imm(k) => Operand::Imm(u64::from(k)),
            },
            bits: bits(size),
        },
        Test::NonZero { size, x, zero } => Cmp {
            cc: if zero { Cc::Eq } else { Cc::Ne },
            a: Operand::Value(id(x)),
            b: Operand::Imm(0),
            bits: bits(size),
        },
    }
}

impl PccInst for MInst {
    fn edge(&self, succ: crate::machinst::MachBlock, cx: &mut Cx<'_>) {
        if let MInst::Br {
            test: t,
            taken,
            not_taken,
        } = self
        {
            if taken != not_taken {
                cx.k.assume(test(t), succ == *taken);
            }
        }
    }

    fn is_call(&self) -> bool {
        matches!(self, MInst::Call { .. })
    }

    fn always_traps(&self) -> bool {
        matches!(self, MInst::Trap { .. })
    }

    /// What a register holding a value of `bits` bits promises: an i32 has its upper half
    /// clear (the backend's invariant); an i8 or i16 promises nothing beyond it.
    fn value_fact(bits: u8) -> Fact {
        if bits == 32 {
            Fact::bits(32)
        } else {
            Fact::ANY
        }
    }

    fn pcc(&self, cx: &mut Cx<'_>) -> Result<(), PccError> {
        match self {
            MInst::Args { args } => args.iter().for_each(|&(v, _)| cx.abi_def(v)),
            MInst::StackArg { dst, .. } | MInst::LoadCallRet { dst, .. } => cx.abi_load(*dst),
            MInst::Ret { rets } => {
                for &(v, _) in rets {
                    cx.abi_use(v)?;
                }
            }
            MInst::Alu {
                op,
                size,
                dst,
                a,
                b,
            } => match (op, size, constant(cx, *b)) {
                // `a - k` for a constant too wide for an immediate (`bound - K`): an address
                // computation, as with an immediate (see `AluImm`).
                (AluOp::Sub, Size::X, Some(k)) => cx.k.address_of(
                    id(*dst),
                    Address {
                        base: id(*a),
                        index: None,
                        disp: -k,
                    },
                ),
                // `a + b` as x86's `lea` computes it, `b` kept as a value: under a check's
                // assumption it may be known smaller than when it was defined (the Spectre
                // form's `base + index`, an index that is a constant register included).
                (AluOp::Add, Size::X, _) => cx.k.address_of(
                    id(*dst),
                    Address {
                        base: id(*a),
                        index: Some(id(*b)),
                        disp: 0,
                    },
                ),
                (AluOp::Add, Size::W, _) => {
                    cx.k.add(id(*dst), id(*a), Operand::Value(id(*b)), 32, false)
                }
                _ => result_of_width(cx, *size, *dst),
            },
            // In 64 bits, `a ± imm` as an address computation (what x86's `lea` is): the kernel
            // keeps the sum, so a check against `bound - K` bounds the index by the bound.
            MInst::AluImm {
                sub,
                size: Size::X,
                dst,
                a,
                imm,
            } => {
                let imm = i64::from(*imm);
                cx.k.address_of(
                    id(*dst),
                    Address {
                        base: id(*a),
                        index: None,
                        disp: if *sub { -imm } else { imm },
                    },
                )
            }
            MInst::AluImm {
                sub,
                size: Size::W,
                dst,
                a,
                imm,
            } => match sub {
                false => {
                    cx.k.add(id(*dst), id(*a), Operand::Imm(u64::from(*imm)), 32, false)
                }
                true => cx.k.sub_imm(id(*dst), id(*a), u64::from(*imm), 32),
            },
            // `add dst, a, b, uxtw`: the address computation of a Spectre guard.
            MInst::AddUxtw { dst, a, b } => {
                index32(cx, *b)?;
                cx.k.address_of(
                    id(*dst),
                    Address {
                        base: id(*a),
                        index: Some(id(*b)),
                        disp: 0,
                    },
                );
            }
            MInst::ShiftImm {
                op: AluOp::Lsl,
                size,
                dst,
                a,
                amount,
            } => {
                cx.k.shl_imm(id(*dst), id(*a), u32::from(*amount), bits(*size))
            }
            MInst::Msub { size, dst, .. }
            | MInst::ShiftImm { size, dst, .. }
            | MInst::Unary { size, dst, .. } => {
                if let MInst::Unary { tmp: Some(t), .. } = self {
                    cx.k.define(id(*t), Fact::ANY);
                }
                result_of_width(cx, *size, *dst)
            }
            MInst::Ext { op, dst, src } => match op {
                ExtOp::Zx8 => cx.k.zero_extend(id(*dst), id(*src), 8),
                ExtOp::Zx16 => cx.k.zero_extend(id(*dst), id(*src), 16),
                ExtOp::Zx32 => cx.k.zero_extend(id(*dst), id(*src), 32),
                ExtOp::Sx8To32 | ExtOp::Sx16To32 => cx.k.any_of_width(id(*dst), 32),
                ExtOp::Sx8To64 | ExtOp::Sx16To64 | ExtOp::Sx32To64 => {
                    cx.k.define(id(*dst), Fact::ANY)
                }
            },
            MInst::Mov { dst, src } => cx.k.copy(id(*dst), id(*src)),
            MInst::Imm { size, dst, imm } => {
                let k = match size {
                    Size::X => *imm,
                    Size::W => *imm & u64::from(u32::MAX),
                };
                cx.k.constant(id(*dst), k)
            }
            MInst::FImm { dst, tmp, .. } => {
                cx.k.define(id(*tmp), Fact::ANY);
                cx.k.define(id(*dst), Fact::ANY);
            }
            MInst::FAlu { dst, .. } | MInst::FUn { dst, .. } | MInst::IntToFloat { dst, .. } => {
                cx.k.define(id(*dst), Fact::ANY)
            }
            // `fmov` to a `W` register clears the upper half.
            MInst::Bitcast { wide, dst, .. } => {
                cx.k.define(id(*dst), if *wide { Fact::ANY } else { Fact::bits(32) })
            }
            MInst::FloatToInt {
                dst_wide, dst, tmp, ..
            } => {
                cx.k.define(id(*tmp), Fact::ANY);
                cx.k.define(id(*dst), if *dst_wide { Fact::ANY } else { Fact::bits(32) });
            }
            MInst::CSet { test: t, dst } => {
                let _ = test(t);
                cx.k.define(id(*dst), Fact::bits(1));
            }
            MInst::FCmp { dst, .. } => cx.k.define(id(*dst), Fact::bits(1)),
            MInst::CSel {
                test: t,
                dst,
                t: on,
                f,
            } => cx.k.select(id(*dst), test(t), id(*on), id(*f)),
            MInst::CSelZero {
                test: t, dst, f, ..
            } => cx.k.select_zero(id(*dst), test(t), id(*f)),
            MInst::Load {
                op,
                dst,
                amode,
                trap,
            } => {
                let addr = address(cx, amode)?;
                cx.memory(addr, op.bytes(), trap.is_some(), false, false)?;
                cx.k.read_into(id(*dst), addr, op.bytes());
                let f = match op {
                    LoadOp::U8 => Fact::bits(8),
                    LoadOp::U16 => Fact::bits(16),
                    LoadOp::U32 | LoadOp::S8To32 | LoadOp::S16To32 => Fact::bits(32),
                    _ => Fact::ANY,
                };
                cx.k.define(id(*dst), f);
            }
            MInst::Store {
                op, amode, trap, ..
            } => {
                let addr = address(cx, amode)?;
                cx.memory(addr, op.bytes(), trap.is_some(), false, true)?
            }
            MInst::AddTrap {
                size, dst, a, b, ..
            } => {
                let b = match b {
                    Rim::Reg(r) => Operand::Value(id(*r)),
                    Rim::Imm(k) => Operand::Imm(u64::from(*k)),
                };
                cx.k.add(id(*dst), id(*a), b, bits(*size), true)
            }
            MInst::Jump { .. } | MInst::Trap { .. } | MInst::Br { .. } | MInst::Csdb => {}
            MInst::BrTable { tmp1, tmp2, .. } => {
                cx.k.define(id(*tmp1), Fact::ANY);
                cx.k.define(id(*tmp2), Fact::ANY);
            }
            // Past the trap, the condition does not hold.
            MInst::TrapIf { test: t, .. } => cx.k.assume(test(t), false),
            MInst::Call { args, rets, .. } => {
                for &(v, _) in args {
                    cx.abi_use(v)?;
                }
                cx.call();
                for &(v, _) in rets {
                    cx.abi_def(v);
                }
            }
            MInst::StoreCallArg { src, .. } | MInst::StoreRet { src, .. } => cx.abi_store(*src)?,
        }
        Ok(())
    }
}

/// The memory operand a proven instruction's encoding must have: base and index register
/// names as capstone prints them (a `uxtw` index by its `w` name), displacement and width.
fn expected_operand(inst: &MInst) -> Option<(String, Option<String>, i64, u64)> {
    let (amode, width) = match inst {
        MInst::Load { op, amode, .. } => (amode, op.bytes()),
        MInst::Store { op, amode, .. } => (amode, op.bytes()),
        _ => return None,
    };
    Some(match *amode {
        Amode::Imm { base, disp } => (format!("x{}", base.vreg()), None, disp, width),
        Amode::Reg { base, index, uxtw } => {
            let w = if uxtw { "w" } else { "x" };
            (
                format!("x{}", base.vreg()),
                Some(format!("{w}{}", index.vreg())),
                0,
                width,
            )
        }
    })
}

/// The bytes a load or store mnemonic moves; `ldr`/`str` by its register's width.
fn access_width(mnemonic: &str, first_reg: &str) -> Option<u64> {
    let m = mnemonic;
    let byte = |suffix: &str| m.ends_with(suffix);
    if !(m.starts_with("ld") || m.starts_with("st")) {
        return None;
    }
    Some(if byte("b") {
        1
    } else if byte("h") {
        2
    } else if byte("sw") {
        4
    } else {
        match first_reg.chars().next() {
            Some('w' | 's') => 4,
            Some('x' | 'd') => 8,
            Some('q') => 16,
            _ => return None,
        }
    })
}

/// Decodes every emitted load and store with capstone, independently of `dynasm` that encoded
/// it, and checks that it is the access that was proven: the same base and index registers
/// (an i32 index as its `w` register, extended with `uxtw`), the same displacement and width.
/// An integer move, spill or reload must move all 64 bits. Returns the number of accesses
/// checked.
pub fn decode_accesses(
    code: &[u8],
    emitted: &[crate::machinst::emit::Emitted<MInst>],
) -> Result<u64, crate::machinst::CodegenError> {
    use crate::machinst::emit::What;
    use crate::machinst::{CodegenError, RegClass};
    let mut checked = 0;
    for e in emitted {
        let bytes = &code[e.start as usize..e.end as usize];
        let lines = super::decode(bytes, u64::from(e.start))
            .map_err(|err| CodegenError::new(format!("pcc: capstone: {err}")))?;
        let fail = |why: String| {
            let text: Vec<String> = lines.iter().map(|(m, o)| format!("{m} {o}")).collect();
            CodegenError::new(format!(
                "pcc: the code emitted at {:#x} decodes as `{}`: {why}",
                e.start,
                text.join("; ")
            ))
        };
        // The memory operands: `[base, index, ext]` or `[base, #disp]`, with the width.
        let mut found = Vec::new();
        for (m, ops) in &lines {
            let Some((reg, rest)) = ops.split_once(", [") else {
                continue;
            };
            let Some(width) = access_width(m, reg) else {
                continue;
            };
            let inner = rest.trim_end_matches(['!', ']']).trim_end_matches(']');
            let parts: Vec<&str> = inner.split(", ").collect();
            let base = parts[0].to_string();
            let (index, disp) = match parts.get(1) {
                Some(p) if p.starts_with('#') => {
                    let d = p.trim_start_matches('#');
                    let d = match d.strip_prefix("-") {
                        Some(x) => -parse_int(x),
                        None => parse_int(d),
                    };
                    (None, d)
                }
                // A `w` index must be extended with `uxtw`, an `x` one neither extended nor
                // shifted: anything else is a different address from the proven one.
                Some(p) => {
                    let ext = parts.get(2).copied();
                    let expected = if p.starts_with('w') {
                        Some("uxtw")
                    } else {
                        None
                    };
                    if ext != expected || parts.len() > 3 {
                        (Some(format!("{p} {}", ext.unwrap_or(""))), 0)
                    } else {
                        (Some(p.to_string()), 0)
                    }
                }
                None => (None, 0),
            };
            found.push((base, index, disp, width));
        }
        match &e.what {
            What::Move(from, to) => {
                let int = from.as_reg().or(to.as_reg()).map(|r| r.class()) == Some(RegClass::Int);
                if int && found.iter().any(|f| f.3 != 8) {
                    return Err(fail(format!(
                        "a spill or reload of an integer register narrower than 64 bits ({found:?})"
                    )));
                }
                checked += found.len() as u64;
            }
            What::Inst(inst) => {
                if let Some(want) = expected_operand(inst) {
                    if found != [want.clone()] {
                        return Err(fail(format!(
                            "memory operands {found:?}, expected {want:?} (base, index, displacement, bytes) as proven for `{inst:?}`"
                        )));
                    }
                    checked += 1;
                }
            }
        }
    }
    Ok(checked)
}

fn parse_int(s: &str) -> i64 {
    match s.strip_prefix("0x") {
        Some(h) => i64::from_str_radix(h, 16).unwrap_or(i64::MIN),
        None => s.parse().unwrap_or(i64::MIN),
    }
}
