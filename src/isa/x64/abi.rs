//! The calling convention of the x86_64 backend.

use super::inst::regs;
use crate::machinst::abi::CallConv;

/// System V: integers in `rdi, rsi, rdx, rcx, r8, r9`, floats in `xmm0-7`, the rest on the
/// stack in order; results in `rax, rdx` and `xmm0, xmm1`, and (beyond System V, for calls
/// between our own functions) any further ones in the stack slots after the arguments.
pub const SYSTEM_V: CallConv = CallConv {
    int_args: &[regs::RDI, regs::RSI, regs::RDX, regs::RCX, 8, 9],
    float_args: 8,
    int_rets: &[regs::RAX, regs::RDX],
    float_rets: 2,
    stack_args: true,
};
