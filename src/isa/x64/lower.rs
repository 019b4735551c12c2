//! The context the ISLE rules of `lower.isle` run in: how values become registers, and the
//! constructors that build x86-64 instructions, including the addressing mode and the check
//! of every bounds-checked access.

use super::inst::{
    AluOp, Amode, Cc, CountOp, ExtOp, FAluOp, FUnOp, LoadOp, MInst, Rmi, ShiftOp, Size, StoreOp,
    Test, UnaryOp,
};
use crate::ir::{
    AccessKind, Ieee32, Ieee64, Imm64, Inst, InstructionData, Opcode, TrapCode, Type, Value,
    ValueDef,
};
use crate::machinst::access::{Access, PlainAccess};
use crate::machinst::lower::{Backend, Derived, Memo};
use crate::machinst::{CodegenError, RegClass, VReg};
use crate::semantics::Extension;

mod access;
mod arith;
mod fusion;
mod memory;

use super::abi::SYSTEM_V;
use access::Address;
use memory::{load_op, store_op};

crate::isle_prelude_types!();

#[allow(unused, non_snake_case, unreachable_patterns, unused_variables)]
#[allow(clippy::all)]
mod generated {
    extern crate alloc;
    use super::InstructionData_ as InstructionData;
    use super::*;
    include!(concat!(env!("OUT_DIR"), "/x64_lower.rs"));
}

/// The x86-64 backend's lowering settings.
#[derive(Clone, Copy, Debug, Default)]
pub struct X64Backend {
    /// `enable_heap_access_spectre_mitigation`: explicit checks redirect the address to null
    /// with a conditional move instead of relying on the branch alone.
    pub spectre: bool,
    /// `enable_pcc`: proof-carrying code checks the lowered code of every function.
    pub pcc: bool,
}

impl Backend for X64Backend {
    type MInst = MInst;

    const CALL_CONV: &'static crate::machinst::abi::CallConv = &SYSTEM_V;
    const TARGET: &'static crate::target::Target = &crate::target::Target::X86_64;

    fn spectre(&self) -> bool {
        self.spectre
    }
    fn pcc(&self) -> bool {
        self.pcc
    }

    fn isle_lower(ctx: &mut IsleContext<'_, '_>, inst: Inst) -> Option<Vec<VReg>> {
        generated::constructor_lower(ctx, inst)
    }
}

type IsleContext<'a, 'f> = crate::machinst::isle::IsleContext<'a, 'f, X64Backend>;

fn int_size(ty: Type) -> Size {
    Size::of_bits(ty.bits())
}

fn cc_of(cc: IntCC) -> Cc {
    use IntCC::*;
    match cc {
        Equal => Cc::E,
        NotEqual => Cc::Ne,
        SignedLessThan => Cc::L,
        SignedLessThanOrEqual => Cc::Le,
        SignedGreaterThan => Cc::G,
        SignedGreaterThanOrEqual => Cc::Ge,
        UnsignedLessThan => Cc::B,
        UnsignedLessThanOrEqual => Cc::Be,
        UnsignedGreaterThan => Cc::A,
        UnsignedGreaterThanOrEqual => Cc::Ae,
    }
}

impl IsleContext<'_, '_> {
    fn placeholder(&mut self) -> VReg {
        self.vreg(RegClass::Int)
    }
    fn const_reg(&mut self, size: Size, imm: u64) -> VReg {
        let key = Memo::Const {
            imm,
            bits: size.bits(),
        };
        if let Some(r) = self.lower.memoized(key) {
            return r;
        }
        let dst = self.vreg(RegClass::Int);
        self.emit(MInst::Imm { size, dst, imm });
        self.lower.memoize(key, dst);
        dst
    }
    /// `v` as the second operand of a `size` operation: an immediate when it is a constant
    /// the sign-extended 32-bit field reproduces.
    fn rmi(&mut self, v: Value, size: Size) -> Rmi {
        if let Some(k) = self.lower.iconst(v).and_then(|k| imm32(k, size)) {
            return Rmi::Imm(k);
        }
        Rmi::Reg(self.put_value(v))
    }
    fn alu_reg(&mut self, op: AluOp, size: Size, a: VReg, b: Rmi) -> VReg {
        let dst = self.vreg(RegClass::Int);
        self.emit(MInst::Alu {
            op,
            size,
            dst,
            a,
            b,
        });
        dst
    }
    fn lea(&mut self, base: VReg, index: Option<VReg>, disp: i32) -> VReg {
        let dst = self.vreg(RegClass::Int);
        self.emit(MInst::Lea {
            dst,
            amode: Amode { base, index, disp },
        });
        dst
    }
    /// `x + k` (64-bit): `lea` for a 32-bit `k`, else through a constant register.
    fn add_const(&mut self, x: VReg, k: u64) -> VReg {
        if k == 0 {
            return x;
        }
        match i32::try_from(k) {
            Ok(d) => self.lea(x, None, d),
            Err(_) => {
                let kr = self.const_reg(Size::Q, k);
                self.lea(x, Some(kr), 0)
            }
        }
    }
    /// `x - k` (64-bit).
    fn sub_const(&mut self, x: VReg, k: u64) -> VReg {
        if k == 0 {
            return x;
        }
        match i32::try_from(k) {
            Ok(_) if k != 1 << 31 => self.lea(x, None, -(k as i32)),
            _ => {
                let kr = self.const_reg(Size::Q, k);
                self.alu_reg(AluOp::Sub, Size::Q, x, Rmi::Reg(kr))
            }
        }
    }
    /// The deferred `icmp` that defines `c` (possibly through a `uextend`), sunk into its
    /// user: the comparison as a flag test.
    fn fused_compare(&mut self, c: Value) -> Option<Test> {
        let (cond, x, y) = self.lower.sink_compare(c)?;
        Some(self.compare(cond, x, y))
    }
    /// `cmp x, y` under `cc`, with a constant operand as immediate (either side).
    fn compare(&mut self, cc: IntCC, x: Value, y: Value) -> Test {
        let size = Size::exact(self.ty(x).bits());
        let konst = |cx: &Self, v: Value| cx.lower.iconst(v).and_then(|k| imm32(k, size));
        let (cc, x, y) = match (konst(self, x), konst(self, y)) {
            (Some(_), None) => (cc_of(cc).swap(), y, x),
            _ => (cc_of(cc), x, y),
        };
        let a = self.put_value(x);
        let b = self.rmi(y, size);
        Test::Cmp { size, cc, a, b }
    }
    /// The condition `c != 0` as a flag test (a fused comparison when `c` is one).
    fn condition(&mut self, c: Value) -> Test {
        if let Some(t) = self.fused_compare(c) {
            return t;
        }
        let size = Size::exact(self.ty(c).bits());
        let x = self.put_value(c);
        Test::NonZero {
            size,
            x,
            zero: false,
        }
    }
}

/// `k` as a `size` immediate: the sign-extended 32-bit field must give back the operand's
/// value (for 64 bits), or its low bits (narrower operations ignore the rest).
fn imm32(k: u64, size: Size) -> Option<i32> {
    match size {
        Size::Q => i32::try_from(k as i64).ok(),
        Size::L => Some(k as u32 as i32),
        Size::W => Some(k as u16 as i16 as i32),
        Size::B => Some(k as u8 as i8 as i32),
    }
}

impl generated::Context for IsleContext<'_, '_> {
    crate::isle_prelude_methods!();
    fn ieee32_bits(&mut self, x: Ieee32) -> u64 {
        u64::from(x.0)
    }
    fn ieee64_bits(&mut self, x: Ieee64) -> u64 {
        x.0
    }
    fn float_to_int(&mut self, ty: Type, x: Value, signed: bool, sat: bool) -> VReg {
        self.lower_float_to_int(ty, x, signed, sat)
    }
    fn iconst_reg(&mut self, ty: Type, n: u64) -> VReg {
        self.const_reg(int_size(ty), n)
    }
    fn fconst(&mut self, ty: Type, bits: u64) -> VReg {
        let (dst, tmp) = (self.vreg(RegClass::Float), self.vreg(RegClass::Int));
        self.emit(MInst::FImm {
            wide: ty == F64,
            dst,
            tmp,
            bits,
        });
        dst
    }
    fn alu(&mut self, ty: Type, op: &AluOp, x: Value, y: Value) -> VReg {
        self.lower_alu(ty, op, x, y)
    }
    fn shift(&mut self, ty: Type, op: &ShiftOp, x: Value, y: Value) -> VReg {
        self.lower_shift(ty, op, x, y)
    }
    fn unary(&mut self, ty: Type, op: &UnaryOp, x: Value) -> VReg {
        self.lower_unary(ty, op, x)
    }
    fn count(&mut self, ty: Type, op: &CountOp, x: Value) -> VReg {
        self.lower_count(ty, op, x)
    }
    fn ext(&mut self, op: &ExtOp, x: Value) -> VReg {
        let src = self.put_value(x);
        let dst = self.vreg(RegClass::Int);
        self.emit(MInst::Ext { op: *op, dst, src });
        dst
    }
    fn icmp_set(&mut self, cc: &IntCC, x: Value, y: Value) -> VReg {
        let test = self.compare(*cc, x, y);
        let dst = self.vreg(RegClass::Int);
        self.emit(MInst::SetCc { test, dst });
        dst
    }
    fn fcmp_set(&mut self, cc: &FloatCC, x: Value, y: Value) -> VReg {
        self.lower_fcmp_set(cc, x, y)
    }
    fn select_value(&mut self, c: Value, x: Value, y: Value) -> VReg {
        let test = self.condition(c);
        let (t, f) = (self.put_value(x), self.put_value(y));
        let dst = self.vreg(t.class());
        self.emit(MInst::Select { test, dst, t, f });
        dst
    }
    fn divide(&mut self, ty: Type, signed: bool, rem: bool, x: Value, y: Value) -> VReg {
        self.lower_divide(ty, signed, rem, x, y)
    }
    fn add_overflow_trap(&mut self, ty: Type, x: Value, y: Value, code: TrapCode) -> VReg {
        self.lower_add_overflow_trap(ty, x, y, code)
    }
    fn trap_if(&mut self, c: Value, zero: bool, code: TrapCode) {
        let test = self.condition(c);
        let test = match (zero, test) {
            (false, t) => t,
            (true, Test::Cmp { size, cc, a, b }) => Test::Cmp {
                size,
                cc: cc.invert(),
                a,
                b,
            },
            (true, Test::NonZero { size, x, .. }) => Test::NonZero {
                size,
                x,
                zero: true,
            },
        };
        self.emit(MInst::TrapIf { test, code });
    }
    fn trap_always(&mut self, code: TrapCode) {
        self.emit(MInst::Trap { code });
    }
    fn falu(&mut self, ty: Type, op: &FAluOp, x: Value, y: Value) -> VReg {
        self.lower_falu(ty, op, x, y)
    }
    fn sqrt_reg(&mut self, ty: Type, x: Value) -> VReg {
        self.fun(FUnOp::Sqrt, ty == F64, x)
    }
    fn round(&mut self, ty: Type, mode: u8, x: Value) -> VReg {
        self.fun(FUnOp::Round(mode), ty == F64, x)
    }
    fn promote(&mut self, x: Value) -> VReg {
        self.fun(FUnOp::Promote, false, x)
    }
    fn demote(&mut self, x: Value) -> VReg {
        self.fun(FUnOp::Demote, true, x)
    }
    fn fsign(&mut self, ty: Type, op: u8, x: Value, y: Value) -> VReg {
        self.lower_fsign(ty, op, x, y)
    }
    fn int_to_float(&mut self, ty: Type, x: Value, signed: bool) -> VReg {
        self.lower_int_to_float(ty, x, signed)
    }
    fn bitcast_reg(&mut self, ty: Type, x: Value) -> VReg {
        self.lower_bitcast_reg(ty, x)
    }

    fn plain_load(&mut self, inst: Inst) -> VReg {
        self.lower_plain_load(inst)
    }

    fn plain_store(&mut self, inst: Inst) {
        self.lower_plain_store(inst)
    }

    fn address_always_traps(&mut self, inst: Inst) -> Address {
        self.lower_address_always_traps(inst)
    }

    fn address_in_bounds(&mut self, inst: Inst, disp: u64) -> Address {
        self.lower_address_in_bounds(inst, disp)
    }

    fn address_faulting(&mut self, inst: Inst) -> Address {
        self.lower_address_faulting(inst)
    }

    fn address_covered(&mut self, inst: Inst, leader: Inst, nullable: bool, delta: i64) -> Address {
        self.lower_address_covered(inst, leader, nullable, delta)
    }

    fn address_checked(&mut self, inst: Inst, check: ExplicitCheck) -> Address {
        self.explicit_check(inst, check)
    }

    fn access_at(&mut self, inst: Inst, addr: Address) -> Vec<VReg> {
        self.lower_access_at(inst, addr)
    }

    fn lower_branch(&mut self, inst: Inst) {
        let targets = self.lower.targets().to_vec();
        match *self.data(inst) {
            InstructionData::Jump { .. } => self.emit(MInst::Jump { target: targets[0] }),
            InstructionData::Brif { arg, .. } => {
                let test = self.condition(arg);
                self.emit(MInst::Br {
                    test,
                    taken: targets[0],
                    not_taken: targets[1],
                })
            }
            InstructionData::BranchTable { arg, .. } => {
                let idx = self.put_value(arg);
                let (tmp1, tmp2) = (self.vreg(RegClass::Int), self.vreg(RegClass::Int));
                self.emit(MInst::BrTable {
                    idx,
                    tmp1,
                    tmp2,
                    default: targets[0],
                    targets: targets[1..].to_vec(),
                })
            }
            _ => unreachable!("lower_branch is only applied to branches"),
        }
    }

    fn lower_return(&mut self, inst: Inst) {
        self.lower_return_abi(&SYSTEM_V, inst);
    }

    fn lower_call(&mut self, inst: Inst) -> Vec<VReg> {
        let Some(call) = self.lower_call_abi(&SYSTEM_V, inst) else {
            return Vec::new();
        };
        // System V leaves the upper half of a 32-bit result unspecified: a callee outside
        // this backend may not keep the i32 invariant, so its i32 results are re-extended.
        call.regs
            .into_iter()
            .zip(&call.tys)
            .map(|(r, &ty)| {
                if !call.colocated && ty == I32 {
                    let dst = self.vreg(RegClass::Int);
                    self.emit(MInst::Ext {
                        op: ExtOp::Zx32,
                        dst,
                        src: r,
                    });
                    dst
                } else {
                    r
                }
            })
            .collect()
    }
}
