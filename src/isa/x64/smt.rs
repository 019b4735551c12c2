//! What the x86_64 instructions this backend emits compute, as SMT-LIB terms (feature
//! `prove`): the machine semantics `clif-bounds prove` runs the lowering of a bounds-checked
//! access on. Registers are 64 bits; a 32-bit operation writes its result zero-extended, as
//! x86-64 does; `cmp a, b` then a condition code is the comparison `a cc b` at the
//! operation's width; an address is `base + index + disp` wrapping at 64 bits (scale 1).
//! An i32 parameter arrives zero-extended: not what System V promises, but this backend's
//! invariant (`lower.isle`: every i32 value has the upper half of its register zero; its
//! trampolines load arguments with 32-bit loads, calls outside the image re-extend i32
//! results). The proof takes that invariant as a premise, as [`super::pcc`]'s `value_fact`
//! does; with the upper half unknown, the lowerings that use a 32-bit index directly in
//! `disp(base, index)` would be refuted.

use super::inst::{AluOp, Amode, Cc, ExtOp, LoadOp, MInst, Rmi, Size, StoreOp, Test, UnaryOp};
use crate::ir::Endianness;
use crate::machinst::RegClass;
use crate::prove::symbolic::{
    bswap, bytes_as_value, carries, lit, low, sext, zext, Access, Flow, Machine, Semantics,
};

fn width(size: Size) -> u32 {
    u32::from(size.bits())
}

/// The width an ALU operation of `size` is encoded at: the emitter writes byte and word
/// operations as 32-bit ones (`addl`, ...), which also zero the upper half and carry out of
/// bit 31, so that is what the code computes.
fn alu_width(size: Size) -> u32 {
    match size {
        Size::Q => 64,
        _ => 32,
    }
}

/// The second operand of an ALU operation or comparison, at `bits` bits.
fn operand(m: &Machine, b: &Rmi, bits: u32) -> Result<String, String> {
    match b {
        Rmi::Reg(r) => Ok(low(&m.get(*r)?, 64, bits)),
        Rmi::Imm(i) => Ok(lit(
            bits,
            (*i as i64 as u64 as u128) & ((1u128 << bits) - 1),
        )),
        Rmi::Mem(_) => Err("no semantics for a memory operand (a second access)".into()),
    }
}

/// Whether `test` holds.
fn test(m: &Machine, t: &Test) -> Result<String, String> {
    match t {
        Test::Cmp { size, cc, a, b } => {
            let bits = width(*size);
            let (a, b) = (low(&m.get(*a)?, 64, bits), operand(m, b, bits)?);
            let op = match cc {
                Cc::E => return Ok(format!("(= {a} {b})")),
                Cc::Ne => return Ok(format!("(not (= {a} {b}))")),
                Cc::L => "bvslt",
                Cc::Le => "bvsle",
                Cc::G => "bvsgt",
                Cc::Ge => "bvsge",
                Cc::B => "bvult",
                Cc::Be => "bvule",
                Cc::A => "bvugt",
                Cc::Ae => "bvuge",
                cc => return Err(format!("no semantics for the condition {cc:?} after cmp")),
            };
            Ok(format!("({op} {a} {b})"))
        }
        Test::NonZero { size, x, zero } => {
            let bits = width(*size);
            let is_zero = format!("(= {} {})", low(&m.get(*x)?, 64, bits), lit(bits, 0));
            Ok(if *zero {
                is_zero
            } else {
                format!("(not {is_zero})")
            })
        }
    }
}

fn address(m: &Machine, a: &Amode) -> Result<String, String> {
    let disp = lit(64, a.disp as i64 as u64 as u128);
    Ok(match a.index {
        Some(i) => format!("(bvadd {} {} {disp})", m.get(a.base)?, m.get(i)?),
        None => format!("(bvadd {} {disp})", m.get(a.base)?),
    })
}

impl Semantics for MInst {
    fn execute(&self, m: &mut Machine) -> Result<Flow, String> {
        match self {
            MInst::Args { args } => m.args(args)?,
            MInst::Ret { rets } => return m.ret(rets),
            MInst::Imm { size, dst, imm } => {
                let bits = width(*size);
                m.set(
                    *dst,
                    zext(
                        &lit(bits, u128::from(*imm) & ((1u128 << bits) - 1)),
                        bits,
                        64,
                    ),
                );
            }
            MInst::Mov { dst, src } => {
                let t = m.get(*src)?;
                m.set(*dst, t);
            }
            MInst::Ext { op, dst, src } => {
                let s = m.get(*src)?;
                let (from, to, signed) = match op {
                    ExtOp::Zx8 => (8, 32, false),
                    ExtOp::Zx16 => (16, 32, false),
                    ExtOp::Zx32 => (32, 32, false),
                    ExtOp::Sx8To32 => (8, 32, true),
                    ExtOp::Sx16To32 => (16, 32, true),
                    ExtOp::Sx8To64 => (8, 64, true),
                    ExtOp::Sx16To64 => (16, 64, true),
                    ExtOp::Sx32To64 => (32, 64, true),
                };
                let v = low(&s, 64, from);
                let v = if signed {
                    sext(&v, from, to)
                } else {
                    zext(&v, from, to)
                };
                m.set(*dst, zext(&v, to, 64));
            }
            MInst::Alu {
                op,
                size,
                dst,
                a,
                b,
            } => {
                let bits = alu_width(*size);
                let (x, y) = (low(&m.get(*a)?, 64, bits), operand(m, b, bits)?);
                let f = match op {
                    AluOp::Add => "bvadd",
                    AluOp::Sub => "bvsub",
                    AluOp::And => "bvand",
                    AluOp::Or => "bvor",
                    AluOp::Xor => "bvxor",
                    AluOp::Mul => "bvmul",
                };
                m.set(*dst, zext(&format!("({f} {x} {y})"), bits, 64));
            }
            MInst::AddTrap {
                size,
                dst,
                a,
                b,
                code,
            } => {
                let bits = alu_width(*size);
                let (x, y) = (low(&m.get(*a)?, 64, bits), operand(m, b, bits)?);
                m.e.traps.push((carries(&x, &y, bits), *code));
                m.set(*dst, zext(&format!("(bvadd {x} {y})"), bits, 64));
            }
            MInst::Lea { dst, amode } => {
                let t = address(m, amode)?;
                m.set(*dst, t);
            }
            MInst::Unary {
                op: UnaryOp::Bswap,
                size,
                dst,
                a,
            } => {
                let (bits, r) = (width(*size), m.get(*a)?);
                let v = bswap(&low(&r, 64, bits), bits);
                let t = match size {
                    // `rolw $8` swaps the low two bytes and keeps bits 16 to 63.
                    Size::W => format!("(concat ((_ extract 63 16) {r}) {v})"),
                    // `bswapq`, or `bswapl`, which zeroes the upper half.
                    Size::Q | Size::L => zext(&v, bits, 64),
                    Size::B => return Err("no byte swap of one byte".into()),
                };
                m.set(*dst, t);
            }
            MInst::Select {
                test: t,
                dst,
                t: yes,
                f: no,
            } => {
                let c = test(m, t)?;
                let v = format!("(ite {c} {} {})", m.get(*yes)?, m.get(*no)?);
                m.set(*dst, v);
            }
            MInst::TrapIf { test: t, code } => {
                let c = test(m, t)?;
                m.e.traps.push((c, *code));
            }
            MInst::Trap { code } => {
                m.e.traps.push(("true".into(), *code));
                return Ok(Flow::Stop);
            }
            MInst::Jump { target } => return Ok(Flow::Jump(*target)),
            MInst::Load {
                op,
                dst,
                amode,
                trap,
            } => {
                let (bits, to, signed) = match op {
                    LoadOp::U8 => (8, 64, false),
                    LoadOp::S8To32 => (8, 32, true),
                    LoadOp::S8To64 => (8, 64, true),
                    LoadOp::U16 => (16, 64, false),
                    LoadOp::S16To32 => (16, 32, true),
                    LoadOp::S16To64 => (16, 64, true),
                    LoadOp::U32 => (32, 64, false),
                    LoadOp::S32To64 => (32, 64, true),
                    LoadOp::X64 => (64, 64, false),
                    // Into a float register: the value's own width.
                    LoadOp::F32 => (32, 32, false),
                    LoadOp::F64 => (64, 64, false),
                };
                let raw = bytes_as_value(Endianness::Little, bits);
                let v = if signed {
                    sext(&raw, bits, to)
                } else {
                    zext(&raw, bits, to)
                };
                let v = match op {
                    LoadOp::F32 => v,
                    _ => zext(&v, to, 64),
                };
                m.access(Access {
                    addr: address(m, amode)?,
                    null_tested: None,
                    bits,
                    trap: *trap,
                    foreign: false,
                    stored: None,
                })?;
                m.set(*dst, v);
            }
            MInst::Store {
                op,
                src,
                amode,
                trap,
            } => {
                let (bits, reg) = match op {
                    StoreOp::B => (8, 64),
                    StoreOp::W => (16, 64),
                    StoreOp::L => (32, 64),
                    StoreOp::Q => (64, 64),
                    StoreOp::F32 => (32, 32),
                    StoreOp::F64 => (64, 64),
                };
                let stored = low(&m.get(*src)?, reg, bits);
                m.access(Access {
                    addr: address(m, amode)?,
                    null_tested: None,
                    bits,
                    trap: *trap,
                    foreign: false,
                    stored: Some(stored),
                })?;
            }
            MInst::Bitcast { wide, dst, src } => {
                // Between an integer register (64 bits) and a float one (the value's width).
                let s = m.get(*src)?;
                let t = match (wide, dst.class()) {
                    (true, _) => s,
                    (false, RegClass::Float) => low(&s, 64, 32),
                    (false, _) => zext(&s, 32, 64),
                };
                m.set(*dst, t);
            }
            other => return Err(format!("no semantics for `{other:?}`")),
        }
        Ok(Flow::Next)
    }
}

/// A parameter's register, `bits` wide, as this backend's invariant keeps it: an i32
/// zero-extended to 64 bits (the premise the module comment explains). Narrower values
/// carry no such promise: their upper bits are unknown.
pub fn param(m: &mut Machine, t: &str, bits: u32) -> String {
    match bits {
        32 => zext(t, 32, 64),
        _ => m.param(t, bits),
    }
}
