//! The context the ISLE rules of `lower.isle` run in: how values become registers, and the
//! constructors that build AArch64 instructions, including the addressing mode and the check
//! of every bounds-checked access.

use super::inst::{
    AluOp, Amode, Cond, ExtOp, FAluOp, FUnOp, LoadOp, MInst, Rim, Size, StoreOp, Test, UnaryOp,
};
use crate::ir::{
    AccessKind, Ieee32, Ieee64, Imm64, Inst, InstructionData, Opcode, TrapCode, Type, Value,
};
use crate::machinst::access::{Access, PlainAccess};
use crate::machinst::lower::{Backend, Derived, Memo};
use crate::machinst::{CodegenError, RegClass, VReg};
use crate::semantics::Extension;

mod access;
mod arith;
mod memory;

use super::abi::AAPCS64;
use access::Address;
use memory::{load_op, store_op};

crate::isle_prelude_types!();

#[allow(unused, non_snake_case, unreachable_patterns, unused_variables)]
#[allow(clippy::all)]
mod generated {
    extern crate alloc;
    use super::InstructionData_ as InstructionData;
    use super::*;
    include!(concat!(env!("OUT_DIR"), "/aarch64_lower.rs"));
}

/// The AArch64 backend's lowering settings.
#[derive(Clone, Copy, Debug, Default)]
pub struct Aarch64Backend {
    /// `enable_heap_access_spectre_mitigation`: explicit checks redirect the address to null
    /// with `csel` instead of relying on the branch alone.
    pub spectre: bool,
    /// `enable_pcc`: proof-carrying code checks the lowered code of every function.
    pub pcc: bool,
    /// `use_csdb`: a `csdb` barrier follows each Spectre guard's `csel`, for cores that
    /// speculate on the flags a `csel` reads (Cranelift's aarch64 flag of the same name).
    pub csdb: bool,
}

impl Backend for Aarch64Backend {
    type MInst = MInst;

    const CALL_CONV: &'static crate::machinst::abi::CallConv = &AAPCS64;
    const TARGET: &'static crate::target::Target = &crate::target::Target::AARCH64;

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

type IsleContext<'a, 'f> = crate::machinst::isle::IsleContext<'a, 'f, Aarch64Backend>;

fn int_size(ty: Type) -> Size {
    Size::of_bits(ty.bits())
}

/// The condition of an integer comparison, after `cmp x, y`.
fn cond_of(cc: IntCC) -> Cond {
    use IntCC::*;
    match cc {
        Equal => Cond::Eq,
        NotEqual => Cond::Ne,
        SignedLessThan => Cond::Lt,
        SignedLessThanOrEqual => Cond::Le,
        SignedGreaterThan => Cond::Gt,
        SignedGreaterThanOrEqual => Cond::Ge,
        UnsignedLessThan => Cond::Lo,
        UnsignedLessThanOrEqual => Cond::Ls,
        UnsignedGreaterThan => Cond::Hi,
        UnsignedGreaterThanOrEqual => Cond::Hs,
    }
}

fn is_signed(cc: IntCC) -> bool {
    use IntCC::*;
    matches!(
        cc,
        SignedLessThan | SignedLessThanOrEqual | SignedGreaterThan | SignedGreaterThanOrEqual
    )
}

impl IsleContext<'_, '_> {
    fn placeholder(&mut self) -> VReg {
        self.vreg(RegClass::Int)
    }
    /// The constant `imm` in a register (a `W` constant is the low 32 bits, zero-extended),
    /// made once per block.
    fn const_reg(&mut self, size: Size, imm: u64) -> VReg {
        let imm = match size {
            Size::W => imm & 0xffff_ffff,
            Size::X => imm,
        };
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
    fn alu_reg(&mut self, op: AluOp, size: Size, a: VReg, b: VReg) -> VReg {
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
    fn alu_imm(&mut self, sub: bool, size: Size, a: VReg, imm: u32) -> VReg {
        let dst = self.vreg(RegClass::Int);
        self.emit(MInst::AluImm {
            sub,
            size,
            dst,
            a,
            imm,
        });
        dst
    }
    fn ext_reg(&mut self, op: ExtOp, src: VReg) -> VReg {
        let dst = self.vreg(RegClass::Int);
        self.emit(MInst::Ext { op, dst, src });
        dst
    }
    /// `v` with its bits above its width made exact (zero- or sign-extended to 32 bits) for
    /// an i8 or i16; other values as they are.
    fn exact(&mut self, v: Value, signed: bool) -> VReg {
        let r = self.put_value(v);
        match (self.ty(v).bits(), signed) {
            (8, false) => self.ext_reg(ExtOp::Zx8, r),
            (8, true) => self.ext_reg(ExtOp::Sx8To32, r),
            (16, false) => self.ext_reg(ExtOp::Zx16, r),
            (16, true) => self.ext_reg(ExtOp::Sx16To32, r),
            _ => r,
        }
    }
    /// `x + k` (64-bit): `add` of an immediate, else through a constant register.
    fn add_const(&mut self, x: VReg, k: u64) -> VReg {
        if k == 0 {
            return x;
        }
        match Rim::imm(k) {
            Some(Rim::Imm(i)) => self.alu_imm(false, Size::X, x, i),
            _ => {
                let kr = self.const_reg(Size::X, k);
                self.alu_reg(AluOp::Add, Size::X, x, kr)
            }
        }
    }
    /// `x - k` (64-bit).
    fn sub_const(&mut self, x: VReg, k: u64) -> VReg {
        if k == 0 {
            return x;
        }
        match Rim::imm(k) {
            Some(Rim::Imm(i)) => self.alu_imm(true, Size::X, x, i),
            _ => {
                let kr = self.const_reg(Size::X, k);
                self.alu_reg(AluOp::Sub, Size::X, x, kr)
            }
        }
    }
    /// `v` as the second operand of a `size` comparison or addition: an immediate when it is
    /// a constant that encodes as one.
    fn rim(&mut self, v: Value, size: Size) -> Rim {
        let k = self.lower.iconst(v).map(|k| match size {
            Size::W => k & mask(self.ty(v).bits()),
            Size::X => k,
        });
        match k.and_then(Rim::imm) {
            Some(i) => i,
            None => Rim::Reg(self.put_value(v)),
        }
    }
    /// The deferred `icmp` that defines `c` (possibly through a `uextend`), sunk into its
    /// user: the comparison as a flag test.
    fn fused_compare(&mut self, c: Value) -> Option<Test> {
        let (cond, x, y) = self.lower.sink_compare(c)?;
        Some(self.compare(cond, x, y))
    }
    /// `cmp x, y` under `cc`, with a constant operand as immediate (either side). i8 and
    /// i16 operands are extended first, as the comparison's signedness asks.
    fn compare(&mut self, cc: IntCC, x: Value, y: Value) -> Test {
        let ty = self.ty(x);
        let size = int_size(ty);
        let signed = is_signed(cc);
        let narrow = ty.bits() < 32;
        let konst = |cx: &Self, v: Value| {
            !narrow
                && cx
                    .lower
                    .iconst(v)
                    .and_then(|k| Rim::imm(k & mask(ty.bits())))
                    .is_some()
        };
        let (cond, x, y) = match (konst(self, x), konst(self, y)) {
            (true, false) => (cond_of(cc).swap(), y, x),
            _ => (cond_of(cc), x, y),
        };
        let a = self.exact(x, signed);
        let b = if narrow {
            Rim::Reg(self.exact(y, signed))
        } else {
            self.rim(y, size)
        };
        Test::Cmp { size, cond, a, b }
    }
    /// The condition `c != 0` as a flag test (a fused comparison when `c` is one).
    fn condition(&mut self, c: Value) -> Test {
        if let Some(t) = self.fused_compare(c) {
            return t;
        }
        let size = int_size(self.ty(c));
        let x = self.exact(c, false);
        Test::NonZero {
            size,
            x,
            zero: false,
        }
    }
}

/// The bits of a value of `bits` bits.
fn mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1 << bits) - 1
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
        self.lower_alu(ty, *op, x, y)
    }
    fn shift(&mut self, ty: Type, op: &AluOp, x: Value, y: Value) -> VReg {
        self.lower_shift(ty, *op, x, y)
    }
    fn rotl_reg(&mut self, ty: Type, x: Value, y: Value) -> VReg {
        self.lower_rotl(ty, x, y)
    }
    fn unary(&mut self, ty: Type, op: &UnaryOp, x: Value) -> VReg {
        self.lower_unary(ty, *op, x)
    }
    fn ext(&mut self, op: &ExtOp, x: Value) -> VReg {
        let src = self.put_value(x);
        self.ext_reg(*op, src)
    }
    fn icmp_set(&mut self, cc: &IntCC, x: Value, y: Value) -> VReg {
        let test = self.compare(*cc, x, y);
        let dst = self.vreg(RegClass::Int);
        self.emit(MInst::CSet { test, dst });
        dst
    }
    fn fcmp_set(&mut self, cc: &FloatCC, x: Value, y: Value) -> VReg {
        let (a, b) = (self.put_value(x), self.put_value(y));
        let dst = self.vreg(RegClass::Int);
        self.emit(MInst::FCmp {
            cond: *cc,
            wide: self.ty(x) == F64,
            dst,
            a,
            b,
        });
        dst
    }
    fn select_value(&mut self, c: Value, x: Value, y: Value) -> VReg {
        let test = self.condition(c);
        let (t, f) = (self.put_value(x), self.put_value(y));
        let dst = self.vreg(t.class());
        self.emit(MInst::CSel { test, dst, t, f });
        dst
    }
    fn select_guard(&mut self, c: Value, x: Value, y: Value) -> VReg {
        let dst = self.select_value(c, x, y);
        if self.backend.csdb {
            self.emit(MInst::Csdb);
        }
        dst
    }
    fn divide(&mut self, ty: Type, signed: bool, rem: bool, x: Value, y: Value) -> VReg {
        self.lower_divide(ty, signed, rem, x, y)
    }
    fn add_overflow_trap(&mut self, ty: Type, x: Value, y: Value, code: TrapCode) -> VReg {
        let size = int_size(ty);
        let a = self.put_value(x);
        let b = self.rim(y, size);
        let dst = self.vreg(RegClass::Int);
        self.emit(MInst::AddTrap {
            size,
            dst,
            a,
            b,
            code,
        });
        dst
    }
    fn trap_if(&mut self, c: Value, zero: bool, code: TrapCode) {
        let test = self.condition(c);
        let test = if zero { test.invert() } else { test };
        self.emit(MInst::TrapIf { test, code });
    }
    fn trap_always(&mut self, code: TrapCode) {
        self.emit(MInst::Trap { code });
    }
    fn falu(&mut self, ty: Type, op: &FAluOp, x: Value, y: Value) -> VReg {
        let (a, b) = (self.put_value(x), self.put_value(y));
        let dst = self.vreg(RegClass::Float);
        self.emit(MInst::FAlu {
            op: *op,
            wide: ty == F64,
            dst,
            a,
            b,
        });
        dst
    }
    fn fun(&mut self, ty: Type, op: &FUnOp, x: Value) -> VReg {
        let src = self.put_value(x);
        let dst = self.vreg(RegClass::Float);
        self.emit(MInst::FUn {
            op: *op,
            wide: ty == F64,
            dst,
            src,
        });
        dst
    }
    fn fcopysign_reg(&mut self, ty: Type, x: Value, y: Value) -> VReg {
        self.lower_fcopysign(ty, x, y)
    }
    fn int_to_float(&mut self, ty: Type, x: Value, signed: bool) -> VReg {
        let src = self.exact(x, signed);
        let dst = self.vreg(RegClass::Float);
        self.emit(MInst::IntToFloat {
            signed,
            src_wide: self.ty(x) == I64,
            dst_wide: ty == F64,
            dst,
            src,
        });
        dst
    }
    fn float_to_int(&mut self, ty: Type, x: Value, signed: bool, sat: bool) -> VReg {
        if ty != I32 && ty != I64 {
            self.fail(CodegenError::new(format!(
                "aarch64: float conversions to {ty} are not lowered"
            )));
            return self.placeholder();
        }
        let src = self.put_value(x);
        let (dst, tmp) = (self.vreg(RegClass::Int), self.vreg(RegClass::Float));
        self.emit(MInst::FloatToInt {
            signed,
            sat,
            src_wide: self.ty(x) == F64,
            dst_wide: ty == I64,
            dst,
            src,
            tmp,
        });
        dst
    }
    fn bitcast_reg(&mut self, ty: Type, x: Value) -> VReg {
        let src = self.put_value(x);
        let dst = self.vreg(if ty.is_float() {
            RegClass::Float
        } else {
            RegClass::Int
        });
        self.emit(MInst::Bitcast {
            wide: ty.bits() == 64,
            dst,
            src,
        });
        dst
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
        self.lower_return_abi(&AAPCS64, inst);
    }

    fn lower_call(&mut self, inst: Inst) -> Vec<VReg> {
        let Some(call) = self.lower_call_abi(&AAPCS64, inst) else {
            return Vec::new();
        };
        // AAPCS64 leaves the upper half of a 32-bit result unspecified: a callee outside
        // this backend may not keep the i32 invariant, so its i32 results are re-extended.
        call.regs
            .into_iter()
            .zip(&call.tys)
            .map(|(r, &ty)| {
                if !call.colocated && ty == I32 {
                    self.ext_reg(ExtOp::Zx32, r)
                } else {
                    r
                }
            })
            .collect()
    }
}
