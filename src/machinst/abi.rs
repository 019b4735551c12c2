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
    /// Arguments beyond the registers go on the stack, in order; otherwise they are an error.
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
                    None if !rets && self.stack_args => Ok(Loc::Stack),
                    None if rets => Err(CodegenError::new(format!(
                        "more than {} integer or {floats} float {what} need a return area, which this backend does not support",
                        ints.len()
                    ))),
                    None => Err(CodegenError::new(format!(
                        "more than {} integer or {floats} float {what}: stack {what} are not supported",
                        ints.len()
                    ))),
                }
            })
            .collect()
    }
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

/// The machine instructions the shared call and return lowering builds.
pub trait AbiInst: MachInst + Sized {
    /// Defines the function's parameters: those in registers, and those in the caller's
    /// stack slots in order (each loaded by an instruction of its own, so that no single
    /// instruction defines more values than there are registers).
    fn gen_args(args: Vec<(VReg, PReg)>, stack: Vec<VReg>) -> Vec<Self>;
    /// Returns the values in their return registers.
    fn gen_ret(rets: Vec<(VReg, PReg)>) -> Self;
    /// Calls `callee` with arguments in registers and on the stack, and defines the results:
    /// the call and whatever puts the stack arguments in place first (one instruction per
    /// argument, so that no single instruction needs them all in registers at once).
    fn gen_call(
        callee: String,
        args: Vec<(VReg, PReg)>,
        stack_args: Vec<VReg>,
        rets: Vec<(VReg, PReg)>,
    ) -> Vec<Self>;
    /// A register copy (`dst` and `src` of one class).
    fn gen_move(dst: VReg, src: VReg) -> Self;
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
    Ok(I::gen_args(args, stack))
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
        let locs = match conv.locs(&tys, true, "return values") {
            Ok(l) => l,
            Err(e) => return self.fail(e),
        };
        let rets = values
            .iter()
            .zip(locs)
            .map(|(&v, loc)| {
                let Loc::Reg(p) = loc else {
                    unreachable!("return values are never on the stack")
                };
                let r = self.put_value(v);
                if !self.lower.defined_elsewhere(v, inst) {
                    return (r, p);
                }
                let dst = self.vreg(r.class());
                self.emit(B::MInst::gen_move(dst, r));
                (dst, p)
            })
            .collect();
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
        let rets: Vec<(VReg, PReg)> = ret_locs
            .into_iter()
            .map(|l| match l {
                Loc::Reg(p) => (self.vreg(p.class()), p),
                Loc::Stack => unreachable!("return values are never on the stack"),
            })
            .collect();
        let regs = rets.iter().map(|r| r.0).collect();
        for i in B::MInst::gen_call(call.callee, args, stack_args, rets) {
            self.emit(i);
        }
        Some(CallResults {
            regs,
            tys: call.ret_tys,
            colocated: call.colocated,
        })
    }
}
