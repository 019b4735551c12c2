//! Calling conventions as data, and the call and return lowering every backend shares.
//!
//! A backend describes its convention once ([`CallConv`]: which registers carry integer and
//! float arguments and results, in order, and whether arguments beyond them go on the stack)
//! and says how to build its argument, return, call and move instructions ([`AbiInst`]).
//! Assigning locations, copying a returned value defined in another block, and collecting a
//! call's results are the same on every target and live here.

use super::isle::IsleContext;
use super::lower::Backend;
use super::{CodegenError, MachInst, PReg, RegClass, VReg};
use crate::ir::{Inst, Type};

/// A calling convention: the registers that carry arguments and return values, in order.
#[derive(Clone, Copy, Debug)]
pub struct CallConv {
    /// Hardware numbers of the integer argument registers.
    pub int_args: &'static [usize],
    /// The float arguments go in float registers `0..float_args`.
    pub float_args: usize,
    /// Hardware numbers of the integer return registers.
    pub int_rets: &'static [usize],
    /// The float results go in float registers `0..float_rets`.
    pub float_rets: usize,
    /// Arguments beyond the registers go on the stack, in order, and so do return values
    /// beyond the registers, in the slots after the stack arguments (the caller's
    /// outgoing area, which the callee writes before it returns); otherwise either is an
    /// error.
    pub stack_args: bool,
}

/// Where an argument or a return value goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loc {
    /// In a register.
    Reg(PReg),
    /// In the next stack slot of the outgoing arguments.
    Stack,
}

impl CallConv {
    /// The locations of values of types `tys`: arguments, or return values when `rets`.
    /// `what` names them in errors ("parameters", "arguments", "return values").
    pub fn locs(&self, tys: &[Type], rets: bool, what: &str) -> Result<Vec<Loc>, CodegenError> {
        let (ints, floats) = if rets {
            (self.int_rets, self.float_rets)
        } else {
            (self.int_args, self.float_args)
        };
        let (mut x, mut f) = (0, 0);
        tys.iter()
            .map(|&ty| {
                let reg = if ty.is_float() {
                    f += 1;
                    (f <= floats).then(|| PReg::new(f - 1, RegClass::Float))
                } else {
                    x += 1;
                    ints.get(x - 1).map(|&r| PReg::new(r, RegClass::Int))
                };
                match reg {
                    Some(r) => Ok(Loc::Reg(r)),
                    None if self.stack_args => Ok(Loc::Stack),
                    None => Err(CodegenError::new(format!(
                        "more than {} integer or {floats} float {what}: stack {what} are not supported",
                        ints.len()
                    ))),
                }
            })
            .collect()
    }
}

/// How many of `locs` are on the stack.
fn on_stack(locs: &[Loc]) -> u32 {
    locs.iter().filter(|l| **l == Loc::Stack).count() as u32
}

/// Splits values by their locations: `(value, register)` pairs, and the stack ones in order.
pub fn split_locs<T: Copy>(vals: &[T], locs: &[Loc]) -> (Vec<(T, PReg)>, Vec<T>) {
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

/// The results of a lowered call.
pub struct CallResults {
    /// One register per result.
    pub regs: Vec<VReg>,
    /// Their types.
    pub tys: Vec<Type>,
    /// The callee is in the same module (compiled by this backend).
    pub colocated: bool,
}

/// The machine instructions the shared call and return lowering builds. Values on the stack
/// are moved by one instruction each, so that no single instruction needs more registers
/// than exist. The caller's slots (its outgoing area, at the bottom of its frame) hold the
/// stack arguments in order and then the stack results: a callee reads the former and
/// writes the latter above its return address, so any function with either needs a frame.
pub trait AbiInst: MachInst + Sized {
    /// Defines the function's parameters that arrive in registers.
    fn gen_args(args: Vec<(VReg, PReg)>) -> Self;
    /// Loads the parameter in the caller's slot `slot`.
    fn gen_stack_arg(dst: VReg, slot: u32) -> Self;
    /// Returns the values in their return registers.
    fn gen_ret(rets: Vec<(VReg, PReg)>) -> Self;
    /// Stores a result into the caller's slot `slot`, before the return.
    fn gen_store_ret(src: VReg, slot: u32) -> Self;
    /// Calls `callee` with arguments in registers and `slots` slots of the outgoing area in
    /// use (its stack arguments, then its stack results), and defines the results in
    /// registers.
    fn gen_call(
        callee: String,
        args: Vec<(VReg, PReg)>,
        slots: u32,
        rets: Vec<(VReg, PReg)>,
    ) -> Self;
    /// Stores an argument of the next call into slot `slot` of the outgoing area.
    fn gen_store_call_arg(src: VReg, slot: u32) -> Self;
    /// Loads a result the call just made left in slot `slot` of the outgoing area.
    fn gen_load_call_ret(dst: VReg, slot: u32) -> Self;
    /// A register copy (`dst` and `src` of one class).
    fn gen_move(dst: VReg, src: VReg) -> Self;
    /// The outgoing-area slots a call uses; `None` for anything else.
    fn call_slots(&self) -> Option<u32>;
    /// Whether the instruction reads or writes the caller's slots.
    fn uses_caller_slots(&self) -> bool;
}

/// What the stack arguments and results of `insts` ask of the frame: the bytes of the
/// outgoing area (the largest call's slots), and whether the function uses its caller's
/// slots (and so needs a frame to find them).
pub fn stack_needs<I: AbiInst>(insts: &[I]) -> (u32, bool) {
    let outgoing = insts.iter().filter_map(I::call_slots).max().unwrap_or(0) * 8;
    (outgoing, insts.iter().any(I::uses_caller_slots))
}

/// The instructions defining the function's parameters (`params`) under `conv`.
pub fn gen_args<I: AbiInst>(
    conv: &CallConv,
    params: &[(VReg, Type)],
) -> Result<Vec<I>, CodegenError> {
    let tys: Vec<Type> = params.iter().map(|p| p.1).collect();
    let locs = conv.locs(&tys, false, "parameters")?;
    let vregs: Vec<VReg> = params.iter().map(|p| p.0).collect();
    let (args, stack) = split_locs(&vregs, &locs);
    let loads = (0..)
        .zip(stack)
        .map(|(slot, dst)| I::gen_stack_arg(dst, slot));
    Ok(std::iter::once(I::gen_args(args)).chain(loads).collect())
}

impl<B: Backend> IsleContext<'_, '_, B>
where
    B::MInst: AbiInst,
{
    /// Lowers `return`: each value to its return register. A value from another block (an
    /// accumulator returned after its loop) is copied, so that it is not pinned to its
    /// return register throughout the loop; the one move happens on the way out.
    pub fn lower_return_abi(&mut self, conv: &CallConv, inst: Inst) {
        let values = self.data(inst).arguments().to_vec();
        let tys: Vec<Type> = values.iter().map(|&v| self.ty(v)).collect();
        let params: Vec<Type> = (self.lower.func.signature.params.iter())
            .map(|p| p.value_type)
            .collect();
        let (locs, param_locs) = match (
            conv.locs(&tys, true, "return values"),
            conv.locs(&params, false, "parameters"),
        ) {
            (Ok(l), Ok(p)) => (l, p),
            (Err(e), _) | (_, Err(e)) => return self.fail(e),
        };
        let mut rets = Vec::new();
        let mut stack = Vec::new();
        for (&v, loc) in values.iter().zip(locs) {
            let r = self.put_value(v);
            let Loc::Reg(p) = loc else {
                stack.push(r);
                continue;
            };
            // A value a loop carries (an accumulator returned after its loop) is copied out,
            // so that regalloc does not pin it to its return register throughout the loop;
            // one from straight-line code goes there directly (a copy would be an extra
            // `mov` after a load whose result is returned).
            if !self.lower.defined_on_a_cycle_elsewhere(v, inst) {
                rets.push((r, p));
                continue;
            }
            let dst = self.vreg(r.class());
            self.emit(B::MInst::gen_move(dst, r));
            rets.push((dst, p));
        }
        // The results on the stack follow the stack parameters.
        for (src, slot) in stack.into_iter().zip(on_stack(&param_locs)..) {
            self.emit(B::MInst::gen_store_ret(src, slot));
        }
        self.emit(B::MInst::gen_ret(rets));
    }

    /// Lowers a `call`: arguments to their locations, one result register each. Returns the
    /// results, or `None` after recording an error.
    pub fn lower_call_abi(&mut self, conv: &CallConv, inst: Inst) -> Option<CallResults> {
        let call = self
            .lower
            .call_parts(inst)
            .expect("lower_call is only applied to calls");
        let (arg_locs, ret_locs) = match (
            conv.locs(&call.arg_tys, false, "arguments"),
            conv.locs(&call.ret_tys, true, "return values"),
        ) {
            (Ok(a), Ok(r)) => (a, r),
            (Err(e), _) | (_, Err(e)) => {
                self.fail(e);
                return None;
            }
        };
        let vals: Vec<VReg> = call.args.iter().map(|&v| self.put_value(v)).collect();
        let (args, stack_args) = split_locs(&vals, &arg_locs);
        // The results on the stack follow the stack arguments; `slots` counts both.
        let mut slots = stack_args.len() as u32;
        let mut rets = Vec::new();
        let mut stack_rets = Vec::new();
        let mut regs = Vec::new();
        for (loc, &ty) in ret_locs.into_iter().zip(&call.ret_tys) {
            match loc {
                Loc::Reg(p) => {
                    let r = self.vreg(p.class());
                    rets.push((r, p));
                    regs.push(r);
                }
                Loc::Stack => {
                    let class = if ty.is_float() {
                        RegClass::Float
                    } else {
                        RegClass::Int
                    };
                    let r = self.vreg(class);
                    stack_rets.push((r, slots));
                    slots += 1;
                    regs.push(r);
                }
            }
        }
        for (slot, src) in (0..).zip(stack_args) {
            self.emit(B::MInst::gen_store_call_arg(src, slot));
        }
        self.emit(B::MInst::gen_call(call.callee, args, slots, rets));
        for (dst, slot) in stack_rets {
            self.emit(B::MInst::gen_load_call_ret(dst, slot));
        }
        Some(CallResults {
            regs,
            tys: call.ret_tys,
            colocated: call.colocated,
        })
    }
}
