//! The context the ISLE rules of `lower.isle` run in: how values become registers, and the
//! constructors that build Pulley instructions, including the choice of addressing mode for
//! the bounds-checked accesses.

use super::inst::{Amode, BinOp, BrCond, ImmCond, ImmOp, MInst, MemOp, UnOp};
use crate::ir::{
    AccessKind, Endianness, Ieee32, Ieee64, Imm64, Inst, InstructionData, MemFlags, Offset32,
    Opcode, TrapCode, Type, Value,
};
use crate::machinst::access::Access;
use crate::machinst::lower::{Backend, Lower};
use crate::machinst::{plain_access_kind, CodegenError, MachBlock, PReg, RegClass, VReg};
use crate::semantics::Extension;

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
}

/// Tags of memoized machine values (`Lower::memoized`, `Lower::hoisted`).
const CONST_KEY: u32 = 0;
const ADD_REGS_KEY: u32 = 1;
const ZEXT_KEY: u32 = 2;
/// `x - k`, `x + k` for a constant `k`.
const SUB_KEY: u32 = 3;
const ADD_KEY: u32 = 4;

const INT_ARGS: usize = 15;
const FLOAT_ARGS: usize = 16;

/// Assigns argument (or return) registers in order: x0-x14 for integers, f0-f15 for floats.
fn abi_regs(tys: &[Type], what: &str) -> Result<Vec<PReg>, CodegenError> {
    let (mut x, mut f) = (0, 0);
    tys.iter()
        .map(|&ty| {
            if ty.is_float() {
                f += 1;
                (f <= FLOAT_ARGS)
                    .then(|| PReg::new(f - 1, RegClass::Float))
                    .ok_or_else(|| {
                        CodegenError::new(format!(
                            "more than {FLOAT_ARGS} float {what}: stack {what} are not supported"
                        ))
                    })
            } else {
                x += 1;
                (x <= INT_ARGS)
                    .then(|| PReg::new(x - 1, RegClass::Int))
                    .ok_or_else(|| {
                        CodegenError::new(format!(
                            "more than {INT_ARGS} integer {what}: stack {what} are not supported"
                        ))
                    })
            }
        })
        .collect()
}

impl Backend for PulleyBackend {
    type MInst = MInst;

    const TARGET: &'static crate::target::Target = &crate::target::Target::PULLEY64;

    fn spectre(&self) -> bool {
        self.spectre
    }

    fn lower_inst(
        &self,
        lower: &mut Lower<'_, MInst>,
        inst: Inst,
    ) -> Result<Vec<VReg>, CodegenError> {
        let mut ctx = IsleContext::new(lower, self);
        let out = generated::constructor_lower(&mut ctx, inst);
        ctx.finish(inst, out)
    }

    fn gen_args(&self, params: &[(VReg, Type)]) -> Result<MInst, CodegenError> {
        let tys: Vec<Type> = params.iter().map(|p| p.1).collect();
        let regs = abi_regs(&tys, "parameters")?;
        Ok(MInst::Args {
            args: params.iter().map(|p| p.0).zip(regs).collect(),
        })
    }

    fn gen_jump(&self, target: MachBlock) -> MInst {
        MInst::Jump { target }
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
        if let Some(r) = self.lower.memoized((CONST_KEY, imm, 0)) {
            return r;
        }
        let dst = self.vreg(RegClass::Int);
        self.emit(MInst::XConst {
            dst,
            imm: imm as i64,
        });
        self.lower.memoize((CONST_KEY, imm, 0), dst);
        dst
    }
    /// `a + b` (64-bit), made once per block for the same registers.
    fn add_regs(&mut self, a: VReg, b: VReg) -> VReg {
        let key = (ADD_REGS_KEY, a.bits() as u64, b.bits() as u64);
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
    /// `make()`, a value derived from IR value `v` alone, made once where `v` is defined
    /// (see [`Lower::derive`]).
    fn derived(&mut self, v: Value, key: (u32, u64), make: impl FnOnce(&mut Self) -> VReg) -> VReg {
        match self.lower.derive(v, key) {
            Ok(r) => r,
            Err(d) => {
                let r = make(self);
                self.lower.derived(d, r)
            }
        }
    }
    /// The access, width and byte order, of `a`, and the extension after a narrow load into
    /// an i64.
    fn access_op(&self, a: &Access) -> Option<(MemOp, Option<UnOp>)> {
        mem_op(a.ty, a.kind, a.big_endian)
    }
}

/// The Pulley access for a value of `ty` moved as `kind`, in `endianness`, and for loads into
/// an i64 of fewer than 64 bits the extension to apply after the 32-bit load. Width and
/// signedness come from the access kind's generated definition.
fn mem_op(ty: Type, kind: AccessKind, big: bool) -> Option<(MemOp, Option<UnOp>)> {
    use MemOp::*;
    let size = kind.access_size(ty);
    let signed = kind.extension() == Extension::Sign;
    let op = match (ty.is_float(), size, signed) {
        (true, 4, _) => F32,
        (true, 8, _) => F64,
        (false, 1, false) => X8U,
        (false, 1, true) => X8S,
        (false, 2, false) => X16U,
        (false, 2, true) => X16S,
        (false, 4, _) => X32,
        (false, 8, _) => X64,
        _ => return None,
    };
    let widen = (ty == I64 && size < 8).then_some(if signed { UnOp::Sext32 } else { UnOp::Zext32 });
    let op = if big {
        match op {
            X16U => X16UBe,
            X16S => X16SBe,
            X32 => X32Be,
            X64 => X64Be,
            F32 => F32Be,
            F64 => F64Be,
            other => other,
        }
    } else {
        op
    };
    Some((op, widen))
}

fn is_big(flags: MemFlags) -> bool {
    flags.endianness == Some(Endianness::Big)
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
        let k = self.lower.iconst(v)?;
        let wide = if ty == I64 {
            true
        } else if ty == I32 {
            false
        } else {
            return None;
        };
        // The constant as the operation sees it: the low 32 bits for 32-bit operations.
        let k = if wide { k } else { k & 0xffff_ffff };
        match op {
            ImmOp::Add | ImmOp::Sub => u32::try_from(k).ok().map(i64::from),
            ImmOp::Shl | ImmOp::ShrU | ImmOp::ShrS => Some((k & if wide { 63 } else { 31 }) as i64),
            // Sign-extended 32-bit immediates: any 32-bit constant, or a 64-bit one in range.
            _ if !wide => Some(i64::from(k as u32 as i32)),
            _ => i32::try_from(k as i64).ok().map(i64::from),
        }
    }
    fn mul_add(&mut self, ty: Type, product: Value, addend: Value) -> Option<VReg> {
        if ty != I32 && ty != I64 {
            return None;
        }
        let m = self.lower.def_inst(product)?;
        if !self.lower.is_deferred(m) || self.lower.func.dfg.opcode(m) != Opcode::Imul {
            return None;
        }
        let [a, b] = self.lower.func.dfg.insts[m].arguments()[..] else {
            return None;
        };
        // With a constant operand, the immediate forms of multiply (or shift) and add are
        // smaller than materialising the constant for the multiply-add.
        if [a, b, addend]
            .iter()
            .any(|&v| self.lower.iconst(v).is_some())
        {
            return None;
        }
        self.lower.sink(m);
        let (a, b, c) = (self.put_value(a), self.put_value(b), self.put_value(addend));
        let dst = self.vreg(RegClass::Int);
        self.emit(MInst::MulAdd {
            wide: ty == I64,
            dst,
            a,
            b,
            c,
        });
        Some(dst)
    }
    fn pow2_of(&mut self, ty: Type, v: Value) -> Option<i64> {
        let k = self.lower.iconst(v)?;
        let k = match ty {
            t if t == I64 => k,
            t if t == I32 => k & 0xffff_ffff,
            _ => return None,
        };
        k.is_power_of_two().then(|| i64::from(k.trailing_zeros()))
    }
    fn bin_imm(&mut self, ty: Type, op: &ImmOp, a: VReg, imm: i64) -> VReg {
        let dst = self.vreg(RegClass::Int);
        self.emit(MInst::BinImm {
            op: *op,
            wide: ty == I64,
            dst,
            a,
            imm,
        });
        dst
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
        let InstructionData::Load {
            opcode,
            flags,
            arg,
            offset: Offset32(offset),
        } = *self.data(inst)
        else {
            unreachable!("the rule matched a load")
        };
        let ty = self.ty(self.lower.func.dfg.first_result(inst));
        let kind = plain_access_kind(opcode);
        let Some((op, widen)) = mem_op(ty, kind, is_big(flags)) else {
            self.fail(CodegenError::new(format!(
                "pulley64 cannot load {ty} as {kind:?}"
            )));
            return VReg::new(0, RegClass::Int);
        };
        let base = self.put_value(arg);
        let amode = self.plain_amode(base, offset, flags, op);
        let dst = self.vreg(op.class());
        self.emit(MInst::Load {
            op,
            dst,
            amode,
            trap: flags.trap_code,
        });
        match widen {
            Some(w) => self.un_reg(w, dst),
            None => dst,
        }
    }

    fn plain_store(&mut self, inst: Inst) {
        let InstructionData::Store {
            opcode,
            flags,
            args: [x, p],
            offset: Offset32(offset),
        } = *self.data(inst)
        else {
            unreachable!("the rule matched a store")
        };
        let kind = plain_access_kind(opcode);
        let ty = self.ty(x);
        let Some((op, _)) = mem_op(ty, kind, is_big(flags)) else {
            self.fail(CodegenError::new(format!(
                "pulley64 cannot store {ty} as {kind:?}"
            )));
            return;
        };
        let src = self.put_value(x);
        let base = self.put_value(p);
        let amode = self.plain_amode(base, offset, flags, op);
        self.emit(MInst::Store {
            op,
            src,
            amode,
            trap: flags.trap_code,
        });
    }

    fn address_in_bounds(&mut self, inst: Inst, disp: u64) -> Amode {
        let a = self.access(inst);
        let base = self.access_base(&a);
        self.amode(base, disp, false)
    }

    fn address_covered(&mut self, inst: Inst, leader: Inst, nullable: bool) -> Amode {
        let a = self.access(inst);
        self.access_base(&a);
        let addr = self
            .lower
            .checked_by(leader)
            .expect("a covered access follows its leader's check");
        // The plan keeps the offset within the displacement.
        let offset = a.offset as i32;
        if nullable {
            Amode::Z { base: addr, offset }
        } else {
            Amode::O32 { base: addr, offset }
        }
    }

    fn address_g32bne(&mut self, inst: Inst, bound: BoundLoad, offset: u8) -> Amode {
        let a = self.access(inst);
        let base = self.access_base(&a);
        self.lower.sink(bound.inst);
        let bound_addr = self.put_value(bound.addr);
        let index = self.put_value(a.index);
        Amode::G32Bne {
            base,
            bound_addr,
            bound_offset: bound.offset as u8,
            index,
            offset,
        }
    }

    fn address_g32(&mut self, inst: Inst, rebase: u64, offset: u16) -> Amode {
        let a = self.access(inst);
        let base = self.access_base(&a);
        let bound = self.access_bound(&a);
        let index = self.put_value(a.index);
        // For an offset beyond g32's 16 bits, the plan moves `rebase` into both base and
        // bound: `base + rebase` and `bound - rebase` (which cannot wrap, as `bound >= K >
        // rebase`) are loop-invariant, made once where base and bound are defined, and shared
        // by accesses in the same 64 KiB window. The access then checks `index > (bound -
        // rebase) - (offset - rebase) - size`, the same condition.
        let (base, bound) = if rebase == 0 {
            (base, bound)
        } else {
            (
                self.derived(a.base, (ADD_KEY, rebase), |cx| cx.add_const(base, rebase)),
                self.derived(a.bound, (SUB_KEY, rebase), |cx| cx.sub_const(bound, rebase)),
            )
        };
        Amode::G32 {
            base,
            bound,
            index,
            offset,
        }
    }

    fn address_checked(
        &mut self,
        inst: Inst,
        compare: &Compare,
        end: u64,
        null_select: bool,
    ) -> Amode {
        let a = self.access(inst);
        let base = self.access_base(&a);
        self.explicit_check(&a, base, *compare, end, null_select)
    }

    fn address_always_traps(&mut self, inst: Inst, end: u64, null_select: bool) -> Amode {
        let a = self.access(inst);
        let base = self.access_base(&a);
        // `index + K` (checked for the carry) exceeds every bound the memory can have.
        let compare = Compare::EndAboveBound { may_wrap: true };
        self.explicit_check(&a, base, compare, end, null_select)
    }

    fn access_at(&mut self, inst: Inst, amode: Amode) -> Vec<VReg> {
        let a = self.access(inst);
        let Some((op, widen)) = self.access_op(&a) else {
            self.fail(CodegenError::new(
                "pulley64: bounds-checked access of an unsupported type and kind",
            ));
            return Vec::new();
        };
        let trap = match amode {
            Amode::O32 { .. } => None,
            _ => Some(a.trap),
        };
        match a.store_value {
            Some(x) => {
                let src = self.put_value(x);
                self.emit(MInst::Store {
                    op,
                    src,
                    amode,
                    trap,
                });
                Vec::new()
            }
            None => {
                let dst = self.vreg(op.class());
                self.emit(MInst::Load {
                    op,
                    dst,
                    amode,
                    trap,
                });
                vec![match widen {
                    Some(w) => self.un_reg(w, dst),
                    None => dst,
                }]
            }
        }
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
        let values = self.data(inst).arguments().to_vec();
        let tys: Vec<Type> = values.iter().map(|&v| self.ty(v)).collect();
        match abi_regs(&tys, "return values") {
            Ok(regs) => {
                // A value from another block (an accumulator returned after its loop) is
                // copied, so that it is not pinned to its return register throughout the
                // loop; the one move happens on the way out. Others go there directly.
                let rets = values
                    .iter()
                    .map(|&v| {
                        let r = self.put_value(v);
                        if !self.lower.defined_elsewhere(v, inst) {
                            return r;
                        }
                        let op = if r.class() == RegClass::Float {
                            UnOp::Fmov
                        } else {
                            UnOp::Xmov
                        };
                        self.un_reg(op, r)
                    })
                    .zip(regs)
                    .collect();
                self.emit(MInst::Ret { rets });
            }
            Err(e) => self.fail(e),
        }
    }

    fn lower_call(&mut self, inst: Inst) -> Vec<VReg> {
        let call = self
            .lower
            .call_parts(inst)
            .expect("lower_call is only applied to calls");
        let (arg_regs, ret_regs) = match (
            abi_regs(&call.arg_tys, "arguments"),
            abi_regs(&call.ret_tys, "return values"),
        ) {
            (Ok(a), Ok(r)) => (a, r),
            (Err(e), _) | (_, Err(e)) => {
                self.fail(e);
                return Vec::new();
            }
        };
        let args = call
            .args
            .iter()
            .map(|&v| self.put_value(v))
            .zip(arg_regs)
            .collect();
        let rets: Vec<(VReg, PReg)> = ret_regs
            .into_iter()
            .map(|p| (self.vreg(p.class()), p))
            .collect();
        let out = rets.iter().map(|r| r.0).collect();
        self.emit(MInst::Call {
            callee: call.callee,
            args,
            rets,
        });
        out
    }
}

impl IsleContext<'_, '_> {
    fn plain_amode(&mut self, base: VReg, offset: i32, flags: MemFlags, op: MemOp) -> Amode {
        let may_trap = flags.trap_code.is_some();
        if may_trap && op.big_endian() {
            // No `z` mode for big-endian accesses: test for null explicitly.
            let zero = self.const_reg(0);
            self.emit(MInst::TrapIf {
                cond: BrCond::Eq64,
                a: base,
                b: zero,
                code: flags.trap_code.unwrap(),
            });
            return Amode::O32 { base, offset };
        }
        if may_trap {
            Amode::Z { base, offset }
        } else {
            Amode::O32 { base, offset }
        }
    }

    /// The explicit form: the check the plan chose, then the address of a plain access.
    ///
    /// With `end` the checked end (the largest of the access's run, when it leads one), out
    /// of bounds means `index + end > bound`, computed without wrapping:
    /// - `OneByte`: `index >= bound`;
    /// - `BoundMinusEnd`, `ConstantBound`: `index > bound - end` (against an immediate for a
    ///   constant bound);
    /// - `EndAboveBound`: `index + end > bound`, with an overflow trap on the sum when it
    ///   may wrap.
    ///
    /// Without Spectre mitigation the condition branches to a trap island; with it
    /// (`null_select`), the address is replaced by null and the access uses the `z` mode,
    /// which traps on null. The checked address is recorded for the rest of the run.
    fn explicit_check(
        &mut self,
        a: &Access,
        base: VReg,
        compare: Compare,
        end: u64,
        null_select: bool,
    ) -> Amode {
        let index = self.put_value(a.index);
        let index = if a.index_ty == I32 {
            let key = (ZEXT_KEY, index.bits() as u64, 0);
            match self.lower.memoized(key) {
                Some(r) => r,
                None => {
                    let r = self.un_reg(UnOp::Zext32, index);
                    self.lower.memoize(key, r);
                    r
                }
            }
        } else {
            index
        };
        if let (false, Compare::ConstantBound { limit }) = (null_select, compare) {
            // Compare the index with an immediate.
            if let Some(imm) = ImmCond::Ugt.immediate(true, limit) {
                self.emit(MInst::TrapIfImm {
                    cond: ImmCond::Ugt,
                    wide: true,
                    a: index,
                    imm,
                    code: a.trap,
                });
                let addr = self.add_regs(base, index);
                self.lower.record_checked(a.inst, addr);
                return self.amode(addr, a.offset, false);
            }
        }
        let bound = self.access_bound(a);
        // Out of bounds when `lhs < rhs` (`lhs <= rhs` for a one-byte end).
        let mut or_equal = false;
        let (lhs, rhs) = match compare {
            Compare::ConstantBound { limit } => (
                self.derived(a.bound, (SUB_KEY, end), |cx| cx.const_reg(limit)),
                index,
            ),
            Compare::OneByte => {
                or_equal = true;
                (bound, index)
            }
            Compare::BoundMinusEnd => (
                self.derived(a.bound, (SUB_KEY, end), |cx| cx.sub_const(bound, end)),
                index,
            ),
            Compare::EndAboveBound { may_wrap: false } => (bound, self.add_const(index, end)),
            // The guard form needs faults to be traps, which they are not on Pulley; should
            // a plan name it, the overflow-checked sum is exact without it.
            Compare::EndAboveBound { may_wrap: true } | Compare::Guard => {
                let k = self.const_reg(end);
                let end = self.vreg(RegClass::Int);
                self.emit(MInst::AddTrap {
                    wide: true,
                    dst: end,
                    a: index,
                    b: k,
                    code: a.trap,
                });
                (bound, end)
            }
        };
        let addr = self.add_regs(base, index);
        if null_select {
            let cmp = if or_equal {
                BinOp::Xulteq64
            } else {
                BinOp::Xult64
            };
            let oob = self.bin_reg(cmp, lhs, rhs);
            // The null address, made where the bound is (before a loop, say).
            let zero = self.derived(a.bound, (CONST_KEY, 0), |cx| cx.const_reg(0));
            // Offsets beyond i32 are added before the select so the null address stays null.
            let addr = match i32::try_from(a.offset) {
                Ok(_) => addr,
                Err(_) => self.add_const(addr, a.offset),
            };
            let safe = self.select_reg_raw(oob, zero, addr);
            let offset = match i32::try_from(a.offset) {
                Ok(o) => {
                    self.lower.record_checked(a.inst, safe);
                    o
                }
                Err(_) => 0,
            };
            Amode::Z { base: safe, offset }
        } else {
            self.emit(MInst::TrapIf {
                cond: if or_equal {
                    BrCond::Ulteq64
                } else {
                    BrCond::Ult64
                },
                a: lhs,
                b: rhs,
                code: a.trap,
            });
            self.lower.record_checked(a.inst, addr);
            self.amode(addr, a.offset, false)
        }
    }

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
        let dfg = &self.lower.func.dfg;
        let mut inner = cond;
        let mut sunk = Vec::new();
        if let Some(d) = self.lower.def_inst(inner) {
            if self.lower.is_deferred(d) && dfg.opcode(d) == Opcode::Uextend {
                sunk.push(d);
                inner = dfg.insts[d].arguments()[0];
            }
        }
        let d = self.lower.def_inst(inner)?;
        if !self.lower.is_deferred(d) {
            return None;
        }
        let InstructionData::IntCompare {
            opcode: Opcode::Icmp,
            cond: cc,
            args: [x, y],
        } = dfg.insts[d]
        else {
            return None;
        };
        let ty = dfg.value_type(x);
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
                for s in sunk {
                    self.lower.sink(s);
                }
                self.lower.sink(d);
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
        for s in sunk {
            self.lower.sink(s);
        }
        self.lower.sink(d);
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
