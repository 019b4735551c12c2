//! The calling convention of the Pulley backend.

use crate::machinst::abi::CallConv;

/// Pulley's convention as Cranelift uses it: integers in `x0-x14`, floats in `f0-f15`, for
/// arguments and results alike; further arguments on the stack, 8 bytes each in order, at
/// the bottom of the caller's frame, and further results in the slots after them.
pub const PULLEY_CONV: CallConv = CallConv {
    int_args: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14],
    float_args: 16,
    int_rets: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14],
    float_rets: 16,
    stack_args: true,
};
