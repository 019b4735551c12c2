//! Accesses that no execution can make in bounds: those the planner plans as
//! [`Form::AlwaysTraps`] (the static offset alone exceeds the largest bound the memory can
//! have, or a constant index or bound puts the access beyond it). Such an access traps
//! wherever it is reached, so it becomes a `trap` with its own trap code, and the rest of its
//! block, which no execution reaches, is dropped. Blocks only it led to become unreachable:
//! they stay in the layout, and lowering, which walks the CFG from the entry, never sees
//! them.
//! The same trap happens at the same point; what goes is code that computed an address
//! and a result nobody could use (Wasmtime's translator emits the bare trap too).

use crate::ir::{Function, InstructionData, Opcode};
use crate::plan::{AccessFacts, Form, Renderer};
use crate::target::Target;

/// Rewrites every always-trapping access of `func` as a `trap` ending its block, planned
/// for `target` as `renderer` renders.
pub fn run(func: &mut Function, target: &Target, renderer: Renderer) {
    for b in func.layout.blocks().to_vec() {
        let insts = func.layout.block_insts(b);
        let always = insts.iter().position(|&inst| {
            AccessFacts::of(func, target, inst, &|_| false).is_some_and(|facts| {
                let plan = crate::plan::plan(&facts, target, renderer, None);
                matches!(plan.form(), Form::AlwaysTraps { .. })
            })
        });
        let Some(at) = always else { continue };
        let access = insts[at];
        let code = func.dfg.insts[access]
            .bounds_checked_access()
            .expect("the planner plans bounds-checked accesses only")
            .trap_code();
        let mut kept = insts[..at].to_vec();
        let trap = func.dfg.make_inst(InstructionData::Trap {
            opcode: Opcode::Trap,
            code,
        });
        kept.push(trap);
        func.layout.set_block_insts(b, kept);
    }
}
