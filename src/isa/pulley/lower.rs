//! The context the ISLE rules of `lower.isle` run in: how values become registers, and the
//! constructors that build Pulley instructions, including the choice of addressing mode for
//! the bounds-checked accesses.

use super::inst::{Amode, BinOp, BrCond, ImmCond, ImmOp, MInst, MemOp, UnOp};
use crate::ir::{
    AccessKind, Ieee32, Ieee64, Imm64, Inst, InstructionData, MemFlags, Opcode, TrapCode, Type,
    Value,
};
use crate::machinst::access::{Access, PlainAccess};
use crate::machinst::lower::{Backend, Derived, Lower, Memo};
use crate::machinst::{CodegenError, RegClass, VReg};
use crate::semantics::Extension;

mod access;
mod arith;
mod memory;

use super::abi::PULLEY_CONV;
use memory::mem_op;

crate::isle_prelude_types!();

#[allow(unused, non_snake_case, unreachable_patterns, unused_variables)]
#[allow(clippy::all)]
mod generated {
    extern crate alloc;
    use super::InstructionData_ as InstructionData;
    use super::*;
    include!(concat!(env!("OUT_DIR"), "/pulley_lower.rs"));
}

/// A comparison folded into a branch (see `fused_compare`).
enum Fused {
    /// `cond(a, b)`.
    Regs(BrCond, VReg, VReg),
    /// `cond(a, imm)`, 64-bit when the flag is set.
    Imm(ImmCond, bool, VReg, i64),
}

/// The Pulley backend's lowering settings.
#[derive(Clone, Copy, Debug, Default)]
pub struct PulleyBackend {
    /// `enable_heap_access_spectre_mitigation`: explicit checks select a null address instead
    /// of branching (see RFC.md, "Pulley").
    pub spectre: bool,
    /// `enable_pcc`: proof-carrying code checks the lowered code of every function.
    pub pcc: bool,
}

impl Backend for PulleyBackend {
    type MInst = MInst;

    const CALL_CONV: &'static crate::machinst::abi::CallConv = &PULLEY_CONV;
    const TARGET: &'static crate::target::Target = &crate::target::Target::PULLEY64;

    fn spectre(&self) -> bool {
        self.spectre
    }
    fn pcc(&self) -> bool {
        self.pcc
    }

    fn isle_lower(ctx: &mut IsleContext<'_, '_>, inst: Inst) -> Option<Vec<VReg>> {
        generated::constructor_lower(ctx, inst)
    }

    fn remat(&self, ctx: &mut Lower<'_, MInst>, v: Value) -> Option<VReg> {
        // `xzero`/`xconst8` are no longer than the `xmov` they replace.
        let k = ctx.iconst(v)?;
        let ty = ctx.func.dfg.value_type(v);
        let k = if ty == I64 {
            k as i64
        } else {
            k as u32 as i32 as i64
        };
        i8::try_from(k).ok()?;
        let dst = ctx.alloc_vreg(RegClass::Int);
        ctx.emit(MInst::XConst { dst, imm: k });
        Some(dst)
    }
}

type IsleContext<'a, 'f> = crate::machinst::isle::IsleContext<'a, 'f, PulleyBackend>;

impl IsleContext<'_, '_> {
    /// `v` with its low 32 bits exact (i8/i16 zero-extended): a branch or select condition.
    fn put_cond(&mut self, v: Value) -> VReg {
        let r = self.put_value(v);
        match self.ty(v) {
            t if t == I8 => self.un_reg(UnOp::Zext8, r),
            t if t == I16 => self.un_reg(UnOp::Zext16, r),
            t if t == I64 => {
                let zero = self.const_reg(0);
                self.bin_reg(BinOp::Xneq64, r, zero)
            }
            _ => r,
        }
    }
    fn bin_reg(&mut self, op: BinOp, a: VReg, b: VReg) -> VReg {
        let dst = self.vreg(op.classes()[0]);
        self.emit(MInst::Bin { op, dst, a, b });
        dst
    }
    fn un_reg(&mut self, op: UnOp, src: VReg) -> VReg {
        let dst = self.vreg(op.classes()[0]);
        self.emit(MInst::Un { op, dst, src });
        dst
    }
    fn const_reg(&mut self, imm: u64) -> VReg {
        if let Some(r) = self.lower.memoized(Memo::Const { imm, bits: 64 }) {
            return r;
        }
        let dst = self.vreg(RegClass::Int);
        self.emit(MInst::XConst {
            dst,
            imm: imm as i64,
        });
        self.lower.memoize(Memo::Const { imm, bits: 64 }, dst);
        dst
    }
    /// `a + b` (64-bit), made once per block for the same registers.
    fn add_regs(&mut self, a: VReg, b: VReg) -> VReg {
        let key = Memo::AddRegs(a, b);
        if let Some(r) = self.lower.memoized(key) {
            return r;
        }
        let r = self.bin_reg(BinOp::Xadd64, a, b);
        self.lower.memoize(key, r);
        r
    }
    /// `base + k` as a register, or `base` itself when `k` is 0.
    fn add_const(&mut self, base: VReg, k: u64) -> VReg {
        self.op_const(ImmOp::Add, BinOp::Xadd64, base, k)
    }
    /// `x - k` (64-bit).
    fn sub_const(&mut self, x: VReg, k: u64) -> VReg {
        self.op_const(ImmOp::Sub, BinOp::Xsub64, x, k)
    }
    fn op_const(&mut self, imm: ImmOp, op: BinOp, x: VReg, k: u64) -> VReg {
        if k == 0 {
            return x;
        }
        if let Ok(k) = u32::try_from(k) {
            let dst = self.vreg(RegClass::Int);
            self.emit(MInst::BinImm {
                op: imm,
                wide: true,
                dst,
                a: x,
                imm: i64::from(k),
            });
            return dst;
        }
        let kr = self.const_reg(k);
        self.bin_reg(op, x, kr)
    }
    /// An address mode for `base + k`: the offset folded when it fits `i32`.
    fn amode(&mut self, base: VReg, k: u64, may_trap: bool) -> Amode {
        let (base, offset) = match i32::try_from(k) {
            Ok(o) => (base, o),
            Err(_) => (self.add_const(base, k), 0),
        };
        if may_trap {
            Amode::Z { base, offset }
        } else {
            Amode::O32 { base, offset }
        }
    }
}

impl generated::Context for IsleContext<'_, '_> {
    crate::isle_prelude_methods!();
    fn bin(&mut self, op: &BinOp, a: VReg, b: VReg) -> VReg {
        self.bin_reg(*op, a, b)
    }
    fn un(&mut self, op: &UnOp, a: VReg) -> VReg {
        self.un_reg(*op, a)
    }
    fn xconst(&mut self, imm: u64) -> VReg {
        self.const_reg(imm)
    }
    fn fconst32(&mut self, bits: Ieee32) -> VReg {
        let dst = self.vreg(RegClass::Float);
        self.emit(MInst::FConst {
            dst,
            bits: u64::from(bits.0),
            wide: false,
        });
        dst
    }
    fn fconst64(&mut self, bits: Ieee64) -> VReg {
        let dst = self.vreg(RegClass::Float);
        self.emit(MInst::FConst {
            dst,
            bits: bits.0,
            wide: true,
        });
        dst
    }
    fn select_reg(&mut self, cond: VReg, a: VReg, b: VReg) -> VReg {
        let dst = self.vreg(a.class());
        self.emit(MInst::Select { dst, cond, a, b });
        dst
    }
    fn trap_if_nonzero(&mut self, x: VReg, zero: bool, code: TrapCode) {
        self.emit(MInst::TrapIfNonzero { x, zero, code });
    }
    fn trap_always(&mut self, code: TrapCode) {
        self.emit(MInst::Trap { code });
    }
    fn add_overflow_trap(&mut self, ty: Type, a: VReg, b: VReg, code: TrapCode) -> VReg {
        let dst = self.vreg(RegClass::Int);
        self.emit(MInst::AddTrap {
            wide: ty == I64,
            dst,
            a,
            b,
            code,
        });
        dst
    }
    fn unsupported_bin(&mut self, ty: Type) -> BinOp {
        self.fail(CodegenError::new(format!(
            "pulley64: no operation for type {ty} here"
        )));
        BinOp::Xadd64
    }
    fn unsupported_un(&mut self, ty: Type) -> UnOp {
        self.fail(CodegenError::new(format!(
            "pulley64: no operation for type {ty} here"
        )));
        UnOp::Xmov
    }
    fn imm_of(&mut self, ty: Type, op: &ImmOp, v: Value) -> Option<i64> {
        self.lower_imm_of(ty, op, v)
    }
    fn mul_add(&mut self, ty: Type, product: Value, addend: Value) -> Option<VReg> {
        self.lower_mul_add(ty, product, addend)
    }
    fn pow2_of(&mut self, ty: Type, v: Value) -> Option<i64> {
        self.lower_pow2_of(ty, v)
    }
    fn bin_imm(&mut self, ty: Type, op: &ImmOp, a: VReg, imm: i64) -> VReg {
        self.lower_bin_imm(ty, op, a, imm)
    }
    fn put_cmp(&mut self, cc: &IntCC, v: Value) -> VReg {
        self.put_compared(*cc, v)
    }
    fn icmp_swapped(&mut self, cc: &IntCC) -> Option<IntCC> {
        use IntCC::*;
        match cc {
            SignedGreaterThan => Some(SignedLessThan),
            SignedGreaterThanOrEqual => Some(SignedLessThanOrEqual),
            UnsignedGreaterThan => Some(UnsignedLessThan),
            UnsignedGreaterThanOrEqual => Some(UnsignedLessThanOrEqual),
            _ => None,
        }
    }

    fn plain_load(&mut self, inst: Inst) -> VReg {
        self.lower_plain_load(inst)
    }

    fn plain_store(&mut self, inst: Inst) {
        self.lower_plain_store(inst)
    }

    fn address_in_bounds(&mut self, inst: Inst, disp: u64) -> Amode {
        self.lower_address_in_bounds(inst, disp)
    }

    fn address_covered(&mut self, inst: Inst, leader: Inst, nullable: bool) -> Amode {
        self.lower_address_covered(inst, leader, nullable)
    }

    fn address_g32bne(&mut self, inst: Inst, bound: BoundLoad, offset: u8) -> Amode {
        self.lower_address_g32bne(inst, bound, offset)
    }

    fn address_g32(&mut self, inst: Inst, rebase: u64, offset: u16) -> Amode {
        self.lower_address_g32(inst, rebase, offset)
    }

    fn address_checked(&mut self, inst: Inst, check: ExplicitCheck) -> Amode {
        self.explicit_check(inst, check)
    }

    fn access_at(&mut self, inst: Inst, amode: Amode) -> Vec<VReg> {
        self.lower_access_at(inst, amode)
    }

    fn lower_branch(&mut self, inst: Inst) {
        let targets = self.lower.targets().to_vec();
        match *self.data(inst) {
            InstructionData::Jump { .. } => self.emit(MInst::Jump { target: targets[0] }),
            InstructionData::Brif { arg, .. } => {
                match self.fused_compare(arg) {
                    Some(Fused::Regs(cond, a, b)) => {
                        self.emit(MInst::BrCmp {
                            cond,
                            a,
                            b,
                            taken: targets[0],
                            not_taken: targets[1],
                        });
                        return;
                    }
                    Some(Fused::Imm(cond, wide, a, imm)) => {
                        self.emit(MInst::BrCmpImm {
                            cond,
                            wide,
                            a,
                            imm,
                            taken: targets[0],
                            not_taken: targets[1],
                        });
                        return;
                    }
                    None => {}
                }
                let cond = self.put_cond(arg);
                self.emit(MInst::BrIf {
                    cond,
                    taken: targets[0],
                    not_taken: targets[1],
                })
            }
            InstructionData::BranchTable { arg, .. } => {
                let idx = self.put_value(arg);
                self.emit(MInst::BrTable {
                    idx,
                    default: targets[0],
                    targets: targets[1..].to_vec(),
                })
            }
            _ => unreachable!("lower_branch is only applied to branches"),
        }
    }

    fn lower_return(&mut self, inst: Inst) {
        self.lower_return_abi(&PULLEY_CONV, inst);
    }

    fn lower_call(&mut self, inst: Inst) -> Vec<VReg> {
        self.lower_call_abi(&PULLEY_CONV, inst)
            .map_or_else(Vec::new, |c| c.regs)
    }
}

impl IsleContext<'_, '_> {
    /// `v` as an operand of a comparison under `cc` (see `put_cmp` in lower.isle).
    fn put_compared(&mut self, cc: IntCC, v: Value) -> VReg {
        let r = self.put_value(v);
        let signed = matches!(
            cc,
            IntCC::SignedLessThan
                | IntCC::SignedLessThanOrEqual
                | IntCC::SignedGreaterThan
                | IntCC::SignedGreaterThanOrEqual
        );
        match self.ty(v) {
            t if t == I8 => self.un_reg(if signed { UnOp::Sext8 } else { UnOp::Zext8 }, r),
            t if t == I16 => self.un_reg(if signed { UnOp::Sext16 } else { UnOp::Zext16 }, r),
            _ => r,
        }
    }

    /// When a branch condition is an `icmp` (possibly widened by `uextend`) lowered only for
    /// this branch, folds it into a compare-and-branch, taken when the comparison holds:
    /// against an immediate when one operand is a constant an encoding holds (`i32`/`i64`
    /// operands only: narrower ones would need the constant extended like the register).
    fn fused_compare(&mut self, cond: Value) -> Option<Fused> {
        let (cc, x, y) = self.lower.sink_compare(cond)?;
        let ty = self.ty(x);
        let wide = ty == I64;
        use IntCC::*;
        if ty == I32 || ty == I64 {
            let c = match cc {
                Equal => ImmCond::Eq,
                NotEqual => ImmCond::Neq,
                SignedLessThan => ImmCond::Slt,
                SignedLessThanOrEqual => ImmCond::Slteq,
                SignedGreaterThan => ImmCond::Sgt,
                SignedGreaterThanOrEqual => ImmCond::Sgteq,
                UnsignedLessThan => ImmCond::Ult,
                UnsignedLessThanOrEqual => ImmCond::Ulteq,
                UnsignedGreaterThan => ImmCond::Ugt,
                UnsignedGreaterThanOrEqual => ImmCond::Ugteq,
            };
            let imm = |v: Value, c: ImmCond| {
                let k = self.lower.iconst(v)?;
                c.immediate(wide, k).map(|imm| (c, imm))
            };
            let with_imm = match (imm(y, c), imm(x, c.mirror())) {
                (Some((c, k)), _) => Some((c, x, k)),
                (None, Some((c, k))) => Some((c, y, k)),
                (None, None) => None,
            };
            if let Some((c, reg, k)) = with_imm {
                let a = self.put_value(reg);
                return Some(Fused::Imm(c, wide, a, k));
            }
        }
        use BrCond::*;
        // (condition, swap operands)
        let (c32, c64, swap) = match cc {
            Equal => (Eq32, Eq64, false),
            NotEqual => (Neq32, Neq64, false),
            SignedLessThan => (Slt32, Slt64, false),
            SignedLessThanOrEqual => (Slteq32, Slteq64, false),
            SignedGreaterThan => (Slt32, Slt64, true),
            SignedGreaterThanOrEqual => (Slteq32, Slteq64, true),
            UnsignedLessThan => (Ult32, Ult64, false),
            UnsignedLessThanOrEqual => (Ulteq32, Ulteq64, false),
            UnsignedGreaterThan => (Ult32, Ult64, true),
            UnsignedGreaterThanOrEqual => (Ulteq32, Ulteq64, true),
        };
        let a = self.put_compared(cc, x);
        let b = self.put_compared(cc, y);
        let (a, b) = if swap { (b, a) } else { (a, b) };
        Some(Fused::Regs(if wide { c64 } else { c32 }, a, b))
    }

    fn select_reg_raw(&mut self, cond: VReg, a: VReg, b: VReg) -> VReg {
        let dst = self.vreg(a.class());
        self.emit(MInst::Select { dst, cond, a, b });
        dst
    }
}
