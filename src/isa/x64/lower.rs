//! The context the ISLE rules of `lower.isle` run in: how values become registers, and the
//! constructors that build x86-64 instructions, including the addressing mode and the check
//! of every bounds-checked access.

use super::inst::{
    gpr, regs, xmm, AluOp, Amode, Cc, CountOp, ExtOp, FAluOp, FUnOp, LoadOp, MInst, Rmi, ShiftOp,
    Size, StoreOp, Test, UnaryOp,
};
use crate::ir::{
    AccessKind, Endianness, Ieee32, Ieee64, Imm64, Inst, InstructionData, MemFlags, Offset32,
    Opcode, TrapCode, Type, Value, ValueDef,
};
use crate::machinst::access::Access;
use crate::machinst::lower::{Backend, Lower};
use crate::machinst::{
    bounds_checked, plain_access_kind, CodegenError, MachBlock, PReg, RegClass, VReg,
};
use crate::semantics::Extension;

crate::isle_prelude_types!();

#[allow(unused, non_snake_case, unreachable_patterns, unused_variables)]
#[allow(clippy::all)]
mod generated {
    extern crate alloc;
    use super::InstructionData_ as InstructionData;
    use super::*;
    include!(concat!(env!("OUT_DIR"), "/x64_lower.rs"));
}

/// The address of a bounds-checked access, and whether the access is a trap site.
#[derive(Clone, Copy, Debug)]
pub struct Address {
    amode: Amode,
    trap: bool,
}

/// The x86-64 backend's lowering settings.
#[derive(Clone, Copy, Debug, Default)]
pub struct X64Backend {
    /// `enable_heap_access_spectre_mitigation`: explicit checks redirect the address to null
    /// with a conditional move instead of relying on the branch alone.
    pub spectre: bool,
}

/// Tags of memoized machine values (`Lower::memoized`, `Lower::hoisted`).
const CONST_KEY: u32 = 0;
const SUB_KEY: u32 = 3;
const ADD_KEY: u32 = 4;

const INT_ARGS: [usize; 6] = [regs::RDI, regs::RSI, regs::RDX, regs::RCX, 8, 9];
const INT_RETS: [usize; 2] = [regs::RAX, regs::RDX];

/// Where a System V argument or return value goes.
#[derive(Clone, Copy, Debug)]
enum Loc {
    /// In a register.
    Reg(PReg),
    /// In the next 8-byte slot of the stack arguments (above the return address).
    Stack,
}

/// System V locations for arguments (`rets`: return values) of `tys`, in order: integers in
/// `rdi, rsi, rdx, rcx, r8, r9`, floats in `xmm0-7`, the rest on the stack in order. Return
/// values: `rax, rdx`, `xmm0, xmm1`; more would need a return area, which is not supported.
fn abi_locs(tys: &[Type], rets: bool, what: &str) -> Result<Vec<Loc>, CodegenError> {
    let (ints, floats): (&[usize], usize) = if rets { (&INT_RETS, 2) } else { (&INT_ARGS, 8) };
    let (mut x, mut f) = (0, 0);
    tys.iter()
        .map(|&ty| {
            let reg = if ty.is_float() {
                f += 1;
                (f <= floats).then(|| xmm(f - 1))
            } else {
                x += 1;
                ints.get(x - 1).map(|&r| gpr(r))
            };
            match reg {
                Some(r) => Ok(Loc::Reg(r)),
                None if !rets => Ok(Loc::Stack),
                None => Err(CodegenError::new(format!(
                    "x86_64: more than 2 integer or 2 float {what} need a return area, which this backend does not support"
                ))),
            }
        })
        .collect()
}

/// Splits values by their locations: `(value, register)` pairs and the stack ones in order.
fn split_locs<T: Copy>(vals: &[T], locs: &[Loc]) -> (Vec<(T, PReg)>, Vec<T>) {
    let mut regs = Vec::new();
    let mut stack = Vec::new();
    for (&v, loc) in vals.iter().zip(locs) {
        match loc {
            Loc::Reg(r) => regs.push((v, *r)),
            Loc::Stack => stack.push(v),
        }
    }
    (regs, stack)
}

impl Backend for X64Backend {
    type MInst = MInst;

    const TARGET: &'static crate::target::Target = &crate::target::Target::X86_64;

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
        let locs = abi_locs(&tys, false, "parameters")?;
        let vregs: Vec<VReg> = params.iter().map(|p| p.0).collect();
        let (args, stack) = split_locs(&vregs, &locs);
        Ok(MInst::Args { args, stack })
    }

    fn gen_jump(&self, target: MachBlock) -> MInst {
        MInst::Jump { target }
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
        let key = (CONST_KEY, imm, size as u64);
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
    /// The deferred `icmp` that defines `c` (possibly through a `uextend`), sunk into its
    /// user: the comparison as a flag test.
    fn fused_compare(&mut self, c: Value) -> Option<Test> {
        let dfg = &self.lower.func.dfg;
        let mut inner = c;
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
            cond,
            args: [x, y],
        } = dfg.insts[d]
        else {
            return None;
        };
        for s in sunk {
            self.lower.sink(s);
        }
        self.lower.sink(d);
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
    /// The index as a 64-bit register: an i32 is zero-extended already.
    fn index64(&mut self, a: &Access) -> VReg {
        self.put_value(a.index)
    }
    /// `base + k` as the base of an address whose displacement is 0, when `k` does not fit
    /// i32, made once where `base` is defined.
    fn far_base(&mut self, a: &Access, base: VReg) -> (VReg, i32) {
        match i32::try_from(a.offset) {
            Ok(d) => (base, d),
            Err(_) => {
                let k = a.offset;
                (
                    self.derived(a.base, (ADD_KEY, k), |cx| cx.add_const(base, k)),
                    0,
                )
            }
        }
    }
    /// The bound as the second operand of a comparison: the `notrap` vmctx load that defines
    /// it folded into the `cmp` when the comparison is its only use in this block.
    fn bound_operand(&mut self, a: &Access) -> Rmi {
        if let Some(m) = self.foldable_load(a.bound) {
            return Rmi::Mem(m);
        }
        Rmi::Reg(self.access_bound(a))
    }
    /// Whether `v` is a deferred single-use `load.i64 notrap` that can become a memory
    /// operand; sinks it when so.
    fn foldable_load(&mut self, v: Value) -> Option<Amode> {
        let (load, arg, disp) = self.foldable_bound_load(v)?;
        self.lower.sink(load);
        let base = self.put_value(arg);
        Some(Amode {
            base,
            index: None,
            disp,
        })
    }

    /// The load `bound_operand` would fold (`v`'s deferred trusted 64-bit load), with its
    /// address operand and offset.
    fn foldable_bound_load(&self, v: Value) -> Option<(Inst, Value, i32)> {
        let load = self.lower.def_inst(v)?;
        if !self.lower.is_deferred(load) || self.ty(v) != I64 {
            return None;
        }
        match *self.data(load) {
            InstructionData::Load {
                opcode: Opcode::Load,
                flags,
                arg,
                offset: Offset32(k),
            } if flags.trap_code.is_none() && flags.endianness != Some(Endianness::Big) => {
                Some((load, arg, k))
            }
            _ => None,
        }
    }

    /// The explicit check of `a` for `end` with `compare` (the plan's), and the address of
    /// its access.
    fn explicit_check(
        &mut self,
        a: &Access,
        base: VReg,
        compare: Compare,
        end: u64,
        null_select: bool,
    ) -> Address {
        let index = self.index64(a);
        // The out-of-bounds condition, as a flag test.
        let cmp = |cc, a: VReg, b: Rmi| Test::Cmp {
            size: Size::Q,
            cc,
            a,
            b,
        };
        let test = match compare {
            Compare::ConstantBound { limit } => match imm32(limit, Size::Q) {
                Some(k) => cmp(Cc::A, index, Rmi::Imm(k)),
                None => {
                    let l =
                        self.derived(a.bound, (SUB_KEY, end), |cx| cx.const_reg(Size::Q, limit));
                    cmp(Cc::A, index, Rmi::Reg(l))
                }
            },
            Compare::OneByte => {
                let b = self.bound_operand(a);
                cmp(Cc::Ae, index, b)
            }
            Compare::Guard => {
                let b = self.bound_operand(a);
                cmp(Cc::A, index, b)
            }
            // `bound - K` once, where the bound is defined (outside the loop).
            Compare::BoundMinusEnd => {
                let bound = self.access_bound(a);
                let bk = self.derived(a.bound, (SUB_KEY, end), |cx| cx.sub_const(bound, end));
                cmp(Cc::A, index, Rmi::Reg(bk))
            }
            // With the bound compared in memory when it is loaded right here.
            Compare::EndAboveBound { may_wrap: false } => {
                let sum = self.add_const(index, end);
                let b = self.bound_operand(a);
                cmp(Cc::A, sum, b)
            }
            // `index + K` may wrap: it traps on the carry first.
            Compare::EndAboveBound { may_wrap: true } => {
                let k = match imm32(end, Size::Q) {
                    Some(k) => Rmi::Imm(k),
                    None => Rmi::Reg(self.const_reg(Size::Q, end)),
                };
                let sum = self.vreg(RegClass::Int);
                self.emit(MInst::AddTrap {
                    size: Size::Q,
                    dst: sum,
                    a: index,
                    b: k,
                    code: a.trap,
                });
                let b = self.bound_operand(a);
                cmp(Cc::A, sum, b)
            }
        };
        if !null_select {
            self.emit(MInst::TrapIf { test, code: a.trap });
            let (base, disp) = self.far_base(a, base);
            // Later accesses of the run use `disp(base, index)` themselves.
            self.lower.record_checked(a.inst, index);
            Address {
                amode: Amode {
                    base,
                    index: Some(index),
                    disp,
                },
                trap: self.lower.plan(a.inst).access_is_trap_site(),
            }
        } else {
            // addr = base + index + offset; out of bounds, a conditional move makes it null.
            // Later accesses of the run address relative to it (`Form::Covered`).
            let (b, disp) = self.far_base(a, base);
            let addr = self.lea(b, Some(index), disp);
            let zero = self.derived(a.bound, (CONST_KEY, 0), |cx| cx.const_reg(Size::Q, 0));
            let safe = self.vreg(RegClass::Int);
            self.emit(MInst::Select {
                test,
                dst: safe,
                t: zero,
                f: addr,
            });
            self.lower.record_checked(a.inst, safe);
            Address {
                amode: Amode {
                    base: safe,
                    index: None,
                    disp: 0,
                },
                trap: true,
            }
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

/// The load of a value of `ty` moved as `kind`, or `None` when x86 has none.
fn load_op(ty: Type, kind: AccessKind) -> Option<LoadOp> {
    let size = kind.access_size(ty);
    let signed = kind.extension() == Extension::Sign;
    let wide = ty == I64;
    Some(match (ty.is_float(), size, signed, wide) {
        (true, 4, _, _) => LoadOp::F32,
        (true, 8, _, _) => LoadOp::F64,
        (false, 1, false, _) => LoadOp::U8,
        (false, 1, true, false) => LoadOp::S8To32,
        (false, 1, true, true) => LoadOp::S8To64,
        (false, 2, false, _) => LoadOp::U16,
        (false, 2, true, false) => LoadOp::S16To32,
        (false, 2, true, true) => LoadOp::S16To64,
        (false, 4, false, _) => LoadOp::U32,
        (false, 4, true, true) => LoadOp::S32To64,
        (false, 4, true, false) => LoadOp::U32,
        (false, 8, _, _) => LoadOp::X64,
        _ => return None,
    })
}

fn store_op(ty: Type, kind: AccessKind) -> Option<StoreOp> {
    Some(match (ty.is_float(), kind.access_size(ty)) {
        (true, 4) => StoreOp::F32,
        (true, 8) => StoreOp::F64,
        (false, 1) => StoreOp::B,
        (false, 2) => StoreOp::W,
        (false, 4) => StoreOp::L,
        (false, 8) => StoreOp::Q,
        _ => return None,
    })
}

fn is_big(flags: MemFlags) -> bool {
    flags.endianness == Some(Endianness::Big)
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
        if ty != I32 && ty != I64 {
            self.fail(CodegenError::new(format!(
                "x86_64: float conversions to {ty} are not lowered"
            )));
            return self.placeholder();
        }
        let src = self.put_value(x);
        let (tmp_x, tmp_x2) = (self.vreg(RegClass::Float), self.vreg(RegClass::Float));
        let (tmp_g, dst) = (self.vreg(RegClass::Int), self.vreg(RegClass::Int));
        self.emit(MInst::FloatToInt {
            signed,
            sat,
            src_wide: self.ty(x) == F64,
            dst_wide: ty == I64,
            dst,
            src,
            tmp_x,
            tmp_x2,
            tmp_g,
        });
        dst
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
        let size = int_size(ty);
        let commutes = *op != AluOp::Sub;
        let konst = |cx: &Self, v: Value| cx.lower.iconst(v).and_then(|k| imm32(k, size));
        let (x, y) = if commutes && konst(self, x).is_some() && konst(self, y).is_none() {
            (y, x)
        } else {
            (x, y)
        };
        // An identity (`x + 0`, `x * 1`, `x & -1`, ...) is `x` itself.
        if let Some(k) = self.lower.iconst(y) {
            let mask = if size == Size::Q {
                u64::MAX
            } else {
                0xffff_ffff
            };
            let k = k
                & mask
                & if ty.bits() < 32 {
                    (1 << ty.bits()) - 1
                } else {
                    u64::MAX
                };
            let ones = mask
                & if ty.bits() < 32 {
                    (1 << ty.bits()) - 1
                } else {
                    u64::MAX
                };
            let identity = match op {
                AluOp::Add | AluOp::Sub | AluOp::Or | AluOp::Xor => k == 0,
                AluOp::Mul => k == 1,
                AluOp::And => k == ones,
            };
            if identity {
                return self.put_value(x);
            }
        }
        if *op == AluOp::Mul {
            if let Some(k) = self.lower.iconst(y) {
                let k = if size == Size::Q { k } else { k & 0xffff_ffff };
                if k.is_power_of_two() {
                    let a = self.put_value(x);
                    let dst = self.vreg(RegClass::Int);
                    self.emit(MInst::Shift {
                        op: ShiftOp::Shl,
                        size,
                        dst,
                        a,
                        amount: Ok(k.trailing_zeros() as u8),
                    });
                    return dst;
                }
                if let Some(imm) = imm32(k, size) {
                    let a = self.put_value(x);
                    let dst = self.vreg(RegClass::Int);
                    self.emit(MInst::MulImm { size, dst, a, imm });
                    return dst;
                }
            }
        }
        let a = self.put_value(x);
        let b = self.rmi(y, size);
        self.alu_reg(*op, size, a, b)
    }
    fn shift(&mut self, ty: Type, op: &ShiftOp, x: Value, y: Value) -> VReg {
        let bits = ty.bits();
        // i8/i16 shifts operate on exactly their width so that the unspecified bits above
        // do not shift in; x86 masks register amounts to 5 bits there, CLIF to the width.
        let size = match bits {
            8 => Size::B,
            16 => Size::W,
            _ => int_size(ty),
        };
        let amount = match self.lower.iconst(y) {
            Some(k) => Ok((k % u64::from(bits)) as u8),
            None => {
                let r = self.put_value(y);
                if bits < 32 && !matches!(op, ShiftOp::Rotl | ShiftOp::Rotr) {
                    Err(self.alu_reg(AluOp::And, Size::L, r, Rmi::Imm(bits as i32 - 1)))
                } else {
                    Err(r)
                }
            }
        };
        let a = self.put_value(x);
        let dst = self.vreg(RegClass::Int);
        self.emit(MInst::Shift {
            op: *op,
            size,
            dst,
            a,
            amount,
        });
        dst
    }
    fn unary(&mut self, ty: Type, op: &UnaryOp, x: Value) -> VReg {
        let size = match (op, ty.bits()) {
            (UnaryOp::Bswap, 16) => Size::W,
            (UnaryOp::Bswap, 8) => {
                return self.put_value(x);
            }
            _ => int_size(ty),
        };
        let a = self.put_value(x);
        let dst = self.vreg(RegClass::Int);
        self.emit(MInst::Unary {
            op: *op,
            size,
            dst,
            a,
        });
        dst
    }
    fn count(&mut self, ty: Type, op: &CountOp, x: Value) -> VReg {
        if ty != I32 && ty != I64 {
            self.fail(CodegenError::new(format!(
                "x86_64: bit counts of {ty} are not lowered"
            )));
            return self.placeholder();
        }
        let src = self.put_value(x);
        let dst = self.vreg(RegClass::Int);
        self.emit(MInst::Count {
            op: *op,
            size: int_size(ty),
            dst,
            src,
        });
        dst
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
        use FloatCC::*;
        if !matches!(
            cc,
            Equal | NotEqual | LessThan | LessThanOrEqual | GreaterThan | GreaterThanOrEqual
        ) {
            self.fail(CodegenError::new(format!(
                "x86_64: fcmp {cc} is not lowered (Wasm uses eq, ne, lt, le, gt, ge)"
            )));
            return self.placeholder();
        }
        let (a, b) = (self.put_value(x), self.put_value(y));
        let (dst, tmp) = (self.vreg(RegClass::Int), self.vreg(RegClass::Int));
        self.emit(MInst::FCmp {
            cond: *cc,
            wide: self.ty(x) == F64,
            dst,
            a,
            b,
            tmp,
        });
        dst
    }
    fn select_value(&mut self, c: Value, x: Value, y: Value) -> VReg {
        let test = self.condition(c);
        let (t, f) = (self.put_value(x), self.put_value(y));
        let dst = self.vreg(t.class());
        self.emit(MInst::Select { test, dst, t, f });
        dst
    }
    fn divide(&mut self, ty: Type, signed: bool, rem: bool, x: Value, y: Value) -> VReg {
        if ty != I32 && ty != I64 {
            self.fail(CodegenError::new(format!(
                "x86_64: division of {ty} is not lowered"
            )));
            return self.placeholder();
        }
        let size = int_size(ty);
        let a = self.put_value(x);
        let b = self.put_value(y);
        let hi = if signed {
            let dst = self.vreg(RegClass::Int);
            self.emit(MInst::SignHi { size, dst, src: a });
            dst
        } else {
            self.const_reg(Size::L, 0)
        };
        let (quot, r) = (self.vreg(RegClass::Int), self.vreg(RegClass::Int));
        self.emit(MInst::Div {
            signed,
            rem_wanted: rem,
            size,
            a,
            hi,
            b,
            quot,
            rem: r,
        });
        if rem {
            r
        } else {
            quot
        }
    }
    fn add_overflow_trap(&mut self, ty: Type, x: Value, y: Value, code: TrapCode) -> VReg {
        let size = int_size(ty);
        let a = self.put_value(x);
        let b = self.rmi(y, size);
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
        let wide = ty == F64;
        let (size, sign) = if wide {
            (Size::Q, 1u64 << 63)
        } else {
            (Size::L, 1u64 << 31)
        };
        let to_int = |cx: &mut Self, v: Value| {
            let src = cx.put_value(v);
            let dst = cx.vreg(RegClass::Int);
            cx.emit(MInst::Bitcast { wide, dst, src });
            dst
        };
        let bits = to_int(self, x);
        let mask = self.const_reg(size, sign);
        let out = match op {
            // fabs: clear the sign.
            0 => {
                let m = self.const_reg(size, !sign & if wide { u64::MAX } else { 0xffff_ffff });
                self.alu_reg(AluOp::And, size, bits, Rmi::Reg(m))
            }
            // fneg: flip it.
            1 => self.alu_reg(AluOp::Xor, size, bits, Rmi::Reg(mask)),
            // fcopysign: |x| | (y & sign).
            _ => {
                let m = self.const_reg(size, !sign & if wide { u64::MAX } else { 0xffff_ffff });
                let mag = self.alu_reg(AluOp::And, size, bits, Rmi::Reg(m));
                let ybits = to_int(self, y);
                let s = self.alu_reg(AluOp::And, size, ybits, Rmi::Reg(mask));
                self.alu_reg(AluOp::Or, size, mag, Rmi::Reg(s))
            }
        };
        let dst = self.vreg(RegClass::Float);
        self.emit(MInst::Bitcast {
            wide,
            dst,
            src: out,
        });
        dst
    }
    fn int_to_float(&mut self, ty: Type, x: Value, signed: bool) -> VReg {
        let src_ty = self.ty(x);
        let src = self.put_value(x);
        let (src, src_wide) = match (src_ty.bits(), signed) {
            (64, true) => (src, true),
            (64, false) => {
                let dst = self.vreg(RegClass::Float);
                let (tmp1, tmp2) = (self.vreg(RegClass::Int), self.vreg(RegClass::Int));
                self.emit(MInst::U64ToFloat {
                    dst_wide: ty == F64,
                    dst,
                    src,
                    tmp1,
                    tmp2,
                });
                return dst;
            }
            // An unsigned i32 is zero-extended: its 64-bit signed conversion is exact.
            (32, false) => (src, true),
            (32, true) => (src, false),
            (8, s) | (16, s) => {
                let op = match (src_ty.bits(), s) {
                    (8, true) => ExtOp::Sx8To32,
                    (8, false) => ExtOp::Zx8,
                    (_, true) => ExtOp::Sx16To32,
                    _ => ExtOp::Zx16,
                };
                let dst = self.vreg(RegClass::Int);
                self.emit(MInst::Ext { op, dst, src });
                (dst, false)
            }
            _ => (src, true),
        };
        let dst = self.vreg(RegClass::Float);
        self.emit(MInst::IntToFloat {
            src_wide,
            dst_wide: ty == F64,
            dst,
            src,
        });
        dst
    }
    fn bitcast_reg(&mut self, ty: Type, x: Value) -> VReg {
        let src = self.put_value(x);
        let wide = ty.bits() == 64;
        let class = if ty.is_float() {
            RegClass::Float
        } else {
            RegClass::Int
        };
        if class == src.class() {
            return src;
        }
        let dst = self.vreg(class);
        self.emit(MInst::Bitcast { wide, dst, src });
        dst
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
        let Some(op) = load_op(ty, kind) else {
            self.fail(CodegenError::new(format!(
                "x86_64 cannot load {ty} as {kind:?}"
            )));
            return self.placeholder();
        };
        let base = self.put_value(arg);
        let amode = Amode {
            base,
            index: None,
            disp: offset,
        };
        self.load_value(op, is_big(flags), amode, flags.trap_code)
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
        let Some(op) = store_op(ty, kind) else {
            self.fail(CodegenError::new(format!(
                "x86_64 cannot store {ty} as {kind:?}"
            )));
            return;
        };
        let src = self.put_value(x);
        let base = self.put_value(p);
        let amode = Amode {
            base,
            index: None,
            disp: offset,
        };
        self.store_value(op, is_big(flags), src, amode, flags.trap_code);
    }

    fn address_always_traps(&mut self, inst: Inst) -> Address {
        let a = self.access(inst);
        let base = self.access_base(&a);
        self.index64(&a);
        self.emit(MInst::Trap { code: a.trap });
        Address {
            amode: Amode {
                base,
                index: None,
                disp: 0,
            },
            trap: false,
        }
    }

    fn address_in_bounds(&mut self, inst: Inst, disp: u64) -> Address {
        let a = self.access(inst);
        let base = self.access_base(&a);
        let (base, disp) = match i32::try_from(disp) {
            Ok(d) => (base, d),
            Err(_) => (self.add_const(base, disp), 0),
        };
        Address {
            amode: Amode {
                base,
                index: None,
                disp,
            },
            trap: false,
        }
    }

    fn address_faulting(&mut self, inst: Inst) -> Address {
        let a = self.access(inst);
        let base = self.access_base(&a);
        let index = self.index64(&a);
        let (base, disp) = self.far_base(&a, base);
        Address {
            amode: Amode {
                base,
                index: Some(index),
                disp,
            },
            trap: true,
        }
    }

    fn address_covered(&mut self, inst: Inst, leader: Inst, nullable: bool, delta: i64) -> Address {
        if !nullable {
            // `disp(base, index)`: a trap site, since the run's check may have relied on the
            // guard (`index > bound` only).
            return self.address_faulting(inst);
        }
        let a = self.access(inst);
        self.access_base(&a);
        // The leader's `base + index + offset`, or null; the plan keeps `delta` within the
        // target's null reach.
        let addr = self
            .lower
            .checked_by(leader)
            .expect("a covered access follows its leader's check");
        Address {
            amode: Amode {
                base: addr,
                index: None,
                disp: delta as i32,
            },
            trap: true,
        }
    }

    fn address_checked(
        &mut self,
        inst: Inst,
        compare: &Compare,
        end: u64,
        null_select: bool,
        _rebase: u64,
    ) -> Address {
        let a = self.access(inst);
        let base = self.access_base(&a);
        self.explicit_check(&a, base, *compare, end, null_select)
    }

    fn access_at(&mut self, inst: Inst, addr: Address) -> Vec<VReg> {
        let a = self.access(inst);
        let (ty, kind) = (a.ty, a.kind);
        let op = match a.store_value {
            Some(_) => store_op(ty, kind).map(Err),
            None => load_op(ty, kind).map(Ok),
        };
        let Some(op) = op else {
            self.fail(CodegenError::new(format!(
                "x86_64: no bounds-checked access of {ty} as {kind:?}"
            )));
            return if a.store_value.is_some() {
                Vec::new()
            } else {
                vec![self.placeholder()]
            };
        };
        let Address { amode, trap } = addr;
        let trap = trap.then_some(a.trap);
        let rmw = self.read_modify_write(a.inst);
        match (a.store_value, op, rmw) {
            (Some(_), Err(_), Some(rmw)) => {
                self.lower.sink(rmw.op_inst);
                let size = int_size(self.ty(rmw.other));
                let b = self.rmi(rmw.other, size);
                // The read faults where the elided load would have, with the same code.
                self.emit(MInst::AluMem {
                    op: rmw.op,
                    size,
                    amode,
                    b,
                    trap: trap.or(Some(a.trap)),
                });
                Vec::new()
            }
            (Some(x), Err(op), None) => {
                let src = self.put_value(x);
                self.store_value(op, a.big_endian, src, amode, trap);
                Vec::new()
            }
            // The store of the read-modify-write will read this value itself.
            (_, Ok(_), Some(_)) => vec![self.vreg(RegClass::Int)],
            (_, Ok(op), None) => vec![self.load_value(op, a.big_endian, amode, trap)],
            (None, Err(_), _) => unreachable!("stores have a value"),
        }
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
        let values = self.data(inst).arguments().to_vec();
        let tys: Vec<Type> = values.iter().map(|&v| self.ty(v)).collect();
        match abi_locs(&tys, true, "return values") {
            Ok(locs) => {
                let regs = locs.iter().map(|l| match l {
                    Loc::Reg(r) => *r,
                    Loc::Stack => unreachable!("return values are never on the stack"),
                });
                // A value from another block (an accumulator returned after its loop) is
                // copied, so that it is not pinned to its return register in the loop.
                let rets = values
                    .iter()
                    .map(|&v| {
                        let r = self.put_value(v);
                        if !self.lower.defined_elsewhere(v, inst) {
                            return r;
                        }
                        let dst = self.vreg(r.class());
                        self.emit(MInst::Mov { dst, src: r });
                        dst
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
        let (arg_locs, ret_locs) = match (
            abi_locs(&call.arg_tys, false, "arguments"),
            abi_locs(&call.ret_tys, true, "return values"),
        ) {
            (Ok(a), Ok(r)) => (a, r),
            (Err(e), _) | (_, Err(e)) => {
                self.fail(e);
                return Vec::new();
            }
        };
        let vals: Vec<VReg> = call.args.iter().map(|&v| self.put_value(v)).collect();
        let (args, stack_args) = split_locs(&vals, &arg_locs);
        let rets: Vec<(VReg, PReg)> = ret_locs
            .into_iter()
            .map(|l| match l {
                Loc::Reg(p) => (self.vreg(p.class()), p),
                Loc::Stack => unreachable!("return values are never on the stack"),
            })
            .collect();
        let out: Vec<VReg> = rets.iter().map(|r| r.0).collect();
        let foreign = !call.colocated;
        self.emit(MInst::Call {
            callee: call.callee,
            args,
            stack_args,
            rets,
        });
        // System V leaves the upper half of a 32-bit result unspecified: a callee outside
        // this backend may not keep the i32 invariant, so its i32 results are re-extended.
        out.into_iter()
            .zip(&call.ret_tys)
            .map(|(r, &ty)| {
                if foreign && ty == I32 {
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

/// A load, an operation on its value and a store of the result at the same place, which
/// one x86 instruction (`addl %r, disp(base)`) can do: see [`IsleContext::read_modify_write`].
struct Rmw {
    load: Inst,
    op_inst: Inst,
    op: AluOp,
    /// The operation's other operand.
    other: Value,
}

impl IsleContext<'_, '_> {
    /// The read-modify-write that `inst` (the load or the store) is part of, if any: a
    /// bounds-checked i32/i64 load whose only use is an `iadd`/`isub`/`band`/`bor`/`bxor`
    /// (the load's value first for `isub`) deferred to its only use, a bounds-checked store
    /// of that result, and both accesses of one run (`machinst::share`: same memory, base,
    /// bound, index and trap code, nothing observable in between) at the same offset, width
    /// and byte order. Then the load is not made on its own: the store reads, operates and
    /// writes in one instruction, after the run's check, and traps where the load would have.
    fn read_modify_write(&self, inst: Inst) -> Option<Rmw> {
        let func = self.lower.func;
        let dfg = &func.dfg;
        let (c, _) = bounds_checked(func, inst)?;
        if c.value.is_some() {
            return self.rmw_of_store(inst);
        }
        // A load: the read-modify-write of the store its value reaches, if that one is
        // made with this load. The store must be in the load's run, so a load in no run
        // (most of them) is not looked at further.
        if !self.lower.in_run(inst) {
            return None;
        }
        let op_inst = self.only_user(dfg.first_result(inst))?;
        let [r] = dfg.inst_results(op_inst) else {
            return None;
        };
        let store = self.only_user(*r)?;
        self.rmw_of_store(store).filter(|rmw| rmw.load == inst)
    }

    /// The read-modify-write a store is the end of: its value is an operation on the value
    /// of a matching load (the first operand that is one).
    fn rmw_of_store(&self, store: Inst) -> Option<Rmw> {
        let func = self.lower.func;
        let dfg = &func.dfg;
        let (s, s_ty) = bounds_checked(func, store)?;
        let op_inst = self.lower.def_inst(s.value?)?;
        if !self.lower.is_deferred(op_inst) || self.lower.use_count(dfg.first_result(op_inst)) != 1
        {
            return None;
        }
        let op = match dfg.opcode(op_inst) {
            Opcode::Iadd => AluOp::Add,
            Opcode::Isub => AluOp::Sub,
            Opcode::Band => AluOp::And,
            Opcode::Bor => AluOp::Or,
            Opcode::Bxor => AluOp::Xor,
            _ => return None,
        };
        let [a, b] = dfg.insts[op_inst].arguments()[..] else {
            return None;
        };
        // `isub` only reads the load as its first operand.
        let candidates: &[(Value, Value)] = if op == AluOp::Sub {
            &[(a, b)]
        } else {
            &[(a, b), (b, a)]
        };
        let leader = |i| self.lower.run_leader(i).unwrap_or(i);
        candidates.iter().find_map(|&(loaded, other)| {
            let load = self.lower.def_inst(loaded)?;
            let (l, l_ty) = bounds_checked(func, load)?;
            let same_place = l.value.is_none()
                && (l.memory, l.base, l.bound, l.index, l.offset)
                    == (s.memory, s.base, s.bound, s.index, s.offset)
                && l.access == AccessKind::Full
                && s.access == AccessKind::Full
                && l_ty == s_ty
                && (l_ty == I32 || l_ty == I64)
                && !is_big(l.flags)
                && !is_big(s.flags)
                && l.flags.trap_code == s.flags.trap_code;
            // One run: nothing observable between the read and the write.
            let one_run = self.lower.run_leader(store).is_some() && leader(store) == leader(load);
            (same_place && one_run && loaded != other && self.lower.use_count(loaded) == 1)
                .then_some(Rmw {
                    load,
                    op_inst,
                    op,
                    other,
                })
        })
    }

    /// The instruction of the current block using `v`, when `v` has one use there.
    fn only_user(&self, v: Value) -> Option<Inst> {
        if self.lower.use_count(v) != 1 {
            return None;
        }
        let func = self.lower.func;
        let block = func.layout.inst_block(match func.dfg.value_def(v) {
            ValueDef::Result(i, _) => i,
            _ => return None,
        })?;
        func.layout
            .block_insts(block)
            .iter()
            .copied()
            .find(|&i| func.dfg.insts[i].arguments().contains(&v))
    }

    /// Loads `op` at `amode`. Big-endian: the unsigned load of the access's width, a byte
    /// swap, then the extension (or the move to a float register) the access asks for.
    fn load_value(&mut self, op: LoadOp, big: bool, amode: Amode, trap: Option<TrapCode>) -> VReg {
        use LoadOp::*;
        let raw = match op {
            U16 | S16To32 | S16To64 => Some((U16, Size::W)),
            U32 | S32To64 | F32 => Some((U32, Size::L)),
            X64 | F64 => Some((X64, Size::Q)),
            U8 | S8To32 | S8To64 => None,
        };
        let Some((raw, size)) = raw.filter(|_| big) else {
            let dst = self.vreg(op.class());
            self.emit(MInst::Load {
                op,
                dst,
                amode,
                trap,
            });
            return dst;
        };
        let r = self.vreg(RegClass::Int);
        self.emit(MInst::Load {
            op: raw,
            dst: r,
            amode,
            trap,
        });
        // A 16-bit rotate keeps the zeros above the loaded halfword.
        let swapped = self.vreg(RegClass::Int);
        self.emit(MInst::Unary {
            op: UnaryOp::Bswap,
            size,
            dst: swapped,
            a: r,
        });
        let ext = |cx: &mut Self, op| {
            let dst = cx.vreg(RegClass::Int);
            cx.emit(MInst::Ext {
                op,
                dst,
                src: swapped,
            });
            dst
        };
        let to_float = |cx: &mut Self, wide| {
            let dst = cx.vreg(RegClass::Float);
            cx.emit(MInst::Bitcast {
                wide,
                dst,
                src: swapped,
            });
            dst
        };
        match op {
            S16To32 => ext(self, ExtOp::Sx16To32),
            S16To64 => ext(self, ExtOp::Sx16To64),
            S32To64 => ext(self, ExtOp::Sx32To64),
            F32 => to_float(self, false),
            F64 => to_float(self, true),
            _ => swapped,
        }
    }

    /// Stores `src` as `op` at `amode`; big-endian: byte-swapped first (floats through an
    /// integer register).
    fn store_value(
        &mut self,
        op: StoreOp,
        big: bool,
        src: VReg,
        amode: Amode,
        trap: Option<TrapCode>,
    ) {
        let (int_op, size) = match op {
            StoreOp::W => (StoreOp::W, Size::W),
            StoreOp::L | StoreOp::F32 => (StoreOp::L, Size::L),
            StoreOp::Q | StoreOp::F64 => (StoreOp::Q, Size::Q),
            StoreOp::B => (StoreOp::B, Size::B),
        };
        if !big || size == Size::B {
            self.emit(MInst::Store {
                op,
                src,
                amode,
                trap,
            });
            return;
        }
        let bits = if src.class() == RegClass::Float {
            let dst = self.vreg(RegClass::Int);
            self.emit(MInst::Bitcast {
                wide: size == Size::Q,
                dst,
                src,
            });
            dst
        } else {
            src
        };
        let swapped = self.vreg(RegClass::Int);
        self.emit(MInst::Unary {
            op: UnaryOp::Bswap,
            size,
            dst: swapped,
            a: bits,
        });
        self.emit(MInst::Store {
            op: int_op,
            src: swapped,
            amode,
            trap,
        });
    }

    fn fun(&mut self, op: FUnOp, wide: bool, x: Value) -> VReg {
        let src = self.put_value(x);
        let dst = self.vreg(RegClass::Float);
        self.emit(MInst::FUn { op, wide, dst, src });
        dst
    }
}
