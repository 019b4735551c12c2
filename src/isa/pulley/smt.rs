//! What the Pulley instructions this backend emits compute, as SMT-LIB terms (feature
//! `prove`), as `pulley-interpreter` 48 executes them: the machine semantics
//! `clif-bounds prove` runs the lowering of a bounds-checked access on.
//!
//! Registers are 64 bits. A 32-bit operation writes only the low half (the interpreter's
//! `set_u32`), so the upper half is unknown afterwards; so is an i32 parameter's (this
//! backend's convention promises nothing there, as [`super::pcc`]'s `value_fact` says). The
//! 32-bit loads (`xload8_u32`, `xload32le`, ...) are such operations. `g32` addressing traps
//! when `zext(index) > bound - offset - size`, subtracted in 64 bits without a check, and
//! otherwise accesses `base + zext(index) + offset`; `_z` addressing traps when its base
//! register is null; `o32` addressing never traps (a fault there would be the host's).
//! A `g32` whose subtraction passes zero is undefined (it panics a debug build of the
//! interpreter), so the prover requires that it cannot happen. An immediate is what its
//! encoding holds.

use super::inst::{Amode, BinOp, BrCond, ImmCond, ImmOp, MInst, MemOp, UnOp};
use crate::ir::Endianness;
use crate::prove::symbolic::{
    bswap, bytes_as_value, carries, lit, low, sext, zext, Access, Flow, Machine, Semantics,
};

/// `a cond b`.
fn compare(cond: BrCond, a: &str, b: &str) -> String {
    use BrCond::*;
    let (bits, op) = match cond {
        Eq32 | Neq32 | Slt32 | Slteq32 | Ult32 | Ulteq32 => (32, cond),
        _ => (64, cond),
    };
    let (a, b) = (low(a, 64, bits), low(b, 64, bits));
    match op {
        Eq32 | Eq64 => format!("(= {a} {b})"),
        Neq32 | Neq64 => format!("(not (= {a} {b}))"),
        Slt32 | Slt64 => format!("(bvslt {a} {b})"),
        Slteq32 | Slteq64 => format!("(bvsle {a} {b})"),
        Ult32 | Ult64 => format!("(bvult {a} {b})"),
        Ulteq32 | Ulteq64 => format!("(bvule {a} {b})"),
    }
}

/// The `bits`-bit operand an immediate `imm` becomes once encoded: the emitter writes it as
/// an `i8`/`i32` sign-extended by the instruction when `signed`, else as a `u8`/`u32`
/// zero-extended; bits beyond those are not in the code, whatever the instruction held.
fn encoded(imm: i64, signed: bool, bits: u32) -> String {
    let x = match signed {
        true => imm as i32 as i64 as u64,
        false => u64::from(imm as u32),
    };
    lit(bits, u128::from(x) & ((1u128 << bits) - 1))
}

/// `a cond imm` at 32 or 64 bits, with `imm` as encoded.
fn compare_imm(cond: ImmCond, wide: bool, a: &str, imm: i64) -> String {
    let bits = if wide { 64 } else { 32 };
    let signed = !matches!(
        cond,
        ImmCond::Ult | ImmCond::Ugt | ImmCond::Ulteq | ImmCond::Ugteq
    );
    let (a, b) = (low(a, 64, bits), encoded(imm, signed, bits));
    let op = match cond {
        ImmCond::Eq => return format!("(= {a} {b})"),
        ImmCond::Neq => return format!("(not (= {a} {b}))"),
        ImmCond::Slt => "bvslt",
        ImmCond::Sgt => "bvsgt",
        ImmCond::Slteq => "bvsle",
        ImmCond::Sgteq => "bvsge",
        ImmCond::Ult => "bvult",
        ImmCond::Ugt => "bvugt",
        ImmCond::Ulteq => "bvule",
        ImmCond::Ugteq => "bvuge",
    };
    format!("({op} {a} {b})")
}

/// A 64-bit register after an operation of `bits` bits wrote `t` (`bits` wide).
fn written(m: &mut Machine, t: String, bits: u32) -> String {
    match bits {
        64 => t,
        _ => m.low32(t),
    }
}

impl Semantics for MInst {
    fn execute(&self, m: &mut Machine) -> Result<Flow, String> {
        match self {
            MInst::Args { args } => m.args(args)?,
            MInst::Ret { rets } => return m.ret(rets),
            MInst::XConst { dst, imm } => m.set(*dst, lit(64, *imm as u64 as u128)),
            MInst::Bin { op, dst, a, b } => {
                let (x, y) = (m.get(*a)?, m.get(*b)?);
                let (bits, f) = match op {
                    BinOp::Xadd32 => (32, "bvadd"),
                    BinOp::Xadd64 => (64, "bvadd"),
                    BinOp::Xsub32 => (32, "bvsub"),
                    BinOp::Xsub64 => (64, "bvsub"),
                    BinOp::Xband32 => (32, "bvand"),
                    BinOp::Xband64 => (64, "bvand"),
                    BinOp::Xbor32 => (32, "bvor"),
                    BinOp::Xbor64 => (64, "bvor"),
                    BinOp::Xult32 | BinOp::Xult64 | BinOp::Xulteq32 | BinOp::Xulteq64 => {
                        let c = match op {
                            BinOp::Xult32 => compare(BrCond::Ult32, &x, &y),
                            BinOp::Xult64 => compare(BrCond::Ult64, &x, &y),
                            BinOp::Xulteq32 => compare(BrCond::Ulteq32, &x, &y),
                            _ => compare(BrCond::Ulteq64, &x, &y),
                        };
                        let t = written(m, format!("(ite {c} {} {})", lit(32, 1), lit(32, 0)), 32);
                        m.set(*dst, t);
                        return Ok(Flow::Next);
                    }
                    op => return Err(format!("no semantics for `{}`", op.mnemonic())),
                };
                let t = format!("({f} {} {})", low(&x, 64, bits), low(&y, 64, bits));
                let t = written(m, t, bits);
                m.set(*dst, t);
            }
            MInst::BinImm {
                op,
                wide,
                dst,
                a,
                imm,
            } => {
                let bits = if *wide { 64 } else { 32 };
                let x = low(&m.get(*a)?, 64, bits);
                // Additions and subtractions encode a `u8`/`u32`, the rest an `i8`/`i32`.
                let y = encoded(*imm, !matches!(op, ImmOp::Add | ImmOp::Sub), bits);
                let f = match op {
                    ImmOp::Add => "bvadd",
                    ImmOp::Sub => "bvsub",
                    ImmOp::And => "bvand",
                    ImmOp::Or => "bvor",
                    ImmOp::Xor => "bvxor",
                    op => return Err(format!("no semantics for the immediate form of {op:?}")),
                };
                let t = written(m, format!("({f} {x} {y})"), bits);
                m.set(*dst, t);
            }
            MInst::AddTrap {
                wide,
                dst,
                a,
                b,
                code,
            } => {
                let bits = if *wide { 64 } else { 32 };
                let (x, y) = (low(&m.get(*a)?, 64, bits), low(&m.get(*b)?, 64, bits));
                m.e.traps.push((carries(&x, &y, bits), *code));
                let t = written(m, format!("(bvadd {x} {y})"), bits);
                m.set(*dst, t);
            }
            MInst::Un { op, dst, src } => {
                let s = m.get(*src)?;
                let t = match op {
                    UnOp::Xmov | UnOp::Fmov => s,
                    UnOp::Zext8 => zext(&low(&s, 64, 8), 8, 64),
                    UnOp::Zext16 => zext(&low(&s, 64, 16), 16, 64),
                    UnOp::Zext32 => zext(&low(&s, 64, 32), 32, 64),
                    UnOp::Sext8 => sext(&low(&s, 64, 8), 8, 64),
                    UnOp::Sext16 => sext(&low(&s, 64, 16), 16, 64),
                    UnOp::Sext32 => sext(&low(&s, 64, 32), 32, 64),
                    UnOp::Bswap32 => written(m, bswap(&low(&s, 64, 32), 32), 32),
                    UnOp::Bswap64 => bswap(&s, 64),
                    op => return Err(format!("no semantics for `{}`", op.mnemonic())),
                };
                m.set(*dst, t);
            }
            MInst::Select { dst, cond, a, b } => {
                let c = format!("(= {} {})", low(&m.get(*cond)?, 64, 32), lit(32, 0));
                let t = format!("(ite {c} {} {})", m.get(*b)?, m.get(*a)?);
                m.set(*dst, t);
            }
            MInst::TrapIf { cond, a, b, code } => {
                let c = compare(*cond, &m.get(*a)?, &m.get(*b)?);
                m.e.traps.push((c, *code));
            }
            MInst::TrapIfImm {
                cond,
                wide,
                a,
                imm,
                code,
            } => {
                let c = compare_imm(*cond, *wide, &m.get(*a)?, *imm);
                m.e.traps.push((c, *code));
            }
            MInst::TrapIfNonzero { x, zero, code } => {
                let z = format!("(= {} {})", low(&m.get(*x)?, 64, 32), lit(32, 0));
                let c = if *zero { z } else { format!("(not {z})") };
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
                let bits = op.size() as u32 * 8;
                let (addr, null_tested) = address(m, amode, op.size(), *trap)?;
                let order = if op.big_endian() {
                    Endianness::Big
                } else {
                    Endianness::Little
                };
                let raw = bytes_as_value(order, bits);
                let t = match op {
                    MemOp::X8U | MemOp::X16U | MemOp::X16UBe => {
                        written(m, zext(&raw, bits, 32), 32)
                    }
                    MemOp::X8S | MemOp::X16S | MemOp::X16SBe => {
                        written(m, sext(&raw, bits, 32), 32)
                    }
                    MemOp::X32 | MemOp::X32Be => written(m, raw, 32),
                    // 64-bit loads and float registers (the value's own width).
                    _ => raw,
                };
                m.access(Access {
                    addr,
                    null_tested,
                    bits,
                    trap: *trap,
                    foreign: op.big_endian(),
                    stored: None,
                })?;
                m.set(*dst, t);
            }
            MInst::Store {
                op,
                src,
                amode,
                trap,
            } => {
                let bits = op.size() as u32 * 8;
                let (addr, null_tested) = address(m, amode, op.size(), *trap)?;
                let reg = match op {
                    MemOp::F32 | MemOp::F32Be => 32,
                    _ => 64,
                };
                let v = low(&m.get(*src)?, reg, bits);
                let stored = match op.big_endian() {
                    true => bswap(&v, bits),
                    false => v,
                };
                m.access(Access {
                    addr,
                    null_tested,
                    bits,
                    trap: *trap,
                    foreign: op.big_endian(),
                    stored: Some(stored),
                })?;
            }
            other => return Err(format!("no semantics for `{other:?}`")),
        }
        Ok(Flow::Next)
    }
}

/// The address `amode` accesses `size` bytes at, and the register its null check tests;
/// records `g32`'s bounds check as a trap with the access's code.
fn address(
    m: &mut Machine,
    amode: &Amode,
    size: u64,
    trap: Option<crate::ir::TrapCode>,
) -> Result<(String, Option<String>), String> {
    let off = |o: i64| lit(64, o as u64 as u128);
    Ok(match *amode {
        Amode::O32 { base, offset } => (
            format!("(bvadd {} {})", m.get(base)?, off(offset.into())),
            None,
        ),
        Amode::Z { base, offset } => {
            let b = m.get(base)?;
            (format!("(bvadd {b} {})", off(offset.into())), Some(b))
        }
        Amode::G32 {
            base,
            bound,
            index,
            offset,
        } => {
            let index = zext(&low(&m.get(index)?, 64, 32), 32, 64);
            let limit = format!(
                "(bvsub (bvsub {} {}) {})",
                m.get(bound)?,
                off(offset.into()),
                lit(64, size.into())
            );
            let code = trap.ok_or("a g32 access without a trap code")?;
            m.e.traps.push((format!("(bvugt {index} {limit})"), code));
            // The interpreter subtracts in `usize` without a check: past zero, a debug build
            // panics and a release build wraps and checks nothing. Neither is a trap.
            let (b, o) = (m.get(bound)?, off(offset.into()));
            m.e.undefined.push(format!(
                "(or (bvult {b} {o}) (bvult (bvsub {b} {o}) {}))",
                lit(64, size.into())
            ));
            (
                format!("(bvadd {} {index} {})", m.get(base)?, off(offset.into())),
                None,
            )
        }
        Amode::G32Bne { .. } => {
            return Err("no semantics for g32bne (its bound is read from memory)".into())
        }
    })
}

/// A parameter's register, `bits` wide, as this backend's convention passes it: the value in
/// the low bits, whatever above them.
pub fn param(m: &mut Machine, t: &str, bits: u32) -> String {
    m.param(t, bits)
}
