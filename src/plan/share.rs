//! One bounds check for several accesses (RFC.md, answer 3 to the removal of `heap_addr`).
//!
//! Within a block, accesses to the same memory through the same `base`, `bound` and `index`
//! values, with the same trap code, form a *run* when nothing observable can happen between
//! them: no store, call or other effect, and no instruction that could trap with another
//! code. The run's first access (its *leader*) may check the largest `offset + size` of the
//! run, and the others then need no check of their own:
//!
//! - if the widened check passes, every access of the run is in bounds, since each one's end
//!   is at most the largest;
//! - if it fails, some access of the run would have trapped with the same code, and nothing
//!   between the leader and that access was observable (loads only, and a store only as the
//!   run's last access, which then has not written), so trapping at the leader is
//!   indistinguishable.
//!
//! This analysis only says which accesses may share; the planner (`crate::plan`) decides per
//! access whether the run's widened check is made (an explicit check on the leader) and which
//! later accesses it covers.

use crate::ir::{Block, Function, Inst, Memory, TrapCode, Value};
use std::collections::HashMap;

/// How an access takes part in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shared {
    /// The first access of a run of two or more: checking `end` covers the whole run.
    Leader {
        /// The largest `offset + size` of the run.
        end: u64,
    },
    /// A later access of `leader`'s run.
    Covered {
        /// The run's first access.
        leader: Inst,
    },
}

type RunKey = (Memory, Value, Value, Value, TrapCode);

/// The runs of `block`, by access.
pub fn runs(func: &Function, block: Block) -> HashMap<Inst, Shared> {
    let dfg = &func.dfg;
    let mut open: HashMap<RunKey, (Inst, u64)> = HashMap::new();
    let mut members: Vec<(Inst, Inst)> = Vec::new();
    let mut ends: HashMap<Inst, u64> = HashMap::new();
    for &inst in func.layout.block_insts(block) {
        let data = &dfg.insts[inst];
        let Some(a) = data.bounds_checked_access() else {
            let op = data.opcode();
            let across_call = crate::mutants::active(crate::mutants::Mutant::RunAcrossCall);
            let ends_runs =
                op.can_store() || op.is_call() || op.other_side_effects() || op.can_trap();
            // The mutant's run analysis overlooks calls and the reloads after them.
            if ends_runs && !(across_call && (op.is_call() || op.can_load())) {
                open.clear();
            }
            continue;
        };
        let Some(code) = a.flags.trap_code else {
            // The verifier rejects `notrap` here; should one appear, it is in no run, and a
            // store is still a visible write.
            if a.value.is_some() {
                open.clear();
            }
            continue;
        };
        let end = a.end(dfg.ctrl_type(inst));
        let key = if crate::mutants::active(crate::mutants::Mutant::RunAcrossCall) {
            (a.memory, a.index, a.index, a.index, code)
        } else {
            (a.memory, a.base, a.bound, a.index, code)
        };
        let is_store = a.value.is_some();
        // Another code may not be preempted by this run's check.
        open.retain(|k, _| k.4 == code);
        match open.get_mut(&key) {
            Some((leader, max)) => {
                *max = (*max).max(end);
                ends.insert(*leader, *max);
                members.push((inst, *leader));
            }
            None => {
                open.insert(key, (inst, end));
            }
        }
        if is_store {
            // A write is observable: no later check may move before it.
            open.clear();
        }
    }
    let mut shared: HashMap<Inst, Shared> = ends
        .into_iter()
        .map(|(leader, end)| (leader, Shared::Leader { end }))
        .collect();
    for (inst, leader) in members {
        shared.insert(inst, Shared::Covered { leader });
    }
    shared
}
