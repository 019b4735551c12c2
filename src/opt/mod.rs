//! The mid-end: passes over the IR that every backend runs before lowering. They never change
//! which instruction traps (trapping instructions, bounds-checked accesses included, are left
//! in place, except that an access the planner finds always out of bounds becomes the bare
//! `trap` it amounts to, [`traps`]); they only merge, move and drop what cannot be observed.
//!
//! Depends on the IR, `crate::cfg` and the planner; never on the machine layer or a backend.

pub mod gvn;
pub mod licm;
pub mod traps;

use crate::ir::{Function, Opcode};

/// Value numbering over the dominator tree, loop-invariant code motion, and value numbering
/// again (it merges what LICM brought into one preheader from several blocks).
pub fn optimize(func: &mut Function) {
    gvn::run(func);
    if licm::run(func) > 0 {
        gvn::run(func);
    }
}

/// Whether instructions of `op` only compute their results: no memory access, no trap, no
/// other effect, no control flow. Such instructions may be moved, merged or dropped.
pub fn is_pure(op: Opcode) -> bool {
    !op.can_load()
        && !op.can_store()
        && !op.can_trap()
        && !op.other_side_effects()
        && !op.is_call()
        && !op.is_terminator()
}
