//! The calling convention of the AArch64 backend.

use crate::machinst::abi::CallConv;

/// AAPCS64: integers in `x0-x7`, floats in `v0-v7`, the rest on the stack in order; results
/// in `x0-x7` and `v0-v7` (as AAPCS64 returns composites; Cranelift does the same for
/// multiple results), any further ones in the stack slots after the arguments.
pub const AAPCS64: CallConv = CallConv {
    int_args: &[0, 1, 2, 3, 4, 5, 6, 7],
    float_args: 8,
    int_rets: &[0, 1, 2, 3, 4, 5, 6, 7],
    float_rets: 8,
    stack_args: true,
};
