//! Value numbering before lowering. A pure instruction identical to one in a dominating
//! position (same opcode, operands, immediates and type), or a `notrap` load of the same
//! address that nothing in the function can change (`readonly`, or an alias region the
//! function never writes and no call), is replaced by the earlier result; another `notrap`
//! load only by one earlier in its own block with no memory write or call in between.
//!
//! This is what a frontend that emits base and bound loads next to every access needs to
//! produce code like Cranelift's mid-end does for the same input. It never changes which
//! instruction traps: trapping instructions, bounds-checked accesses included, are left
//! alone.

use super::is_pure;
use crate::cfg::DomTree;
use crate::ir::{Function, Inst, InstructionData, Opcode, Type, Value};
use cranelift_entity::SecondaryMap;
use std::collections::HashMap;

type Key = (InstructionData, Type);

/// Rewrites `func` in place; returns how many instructions were removed.
pub fn run(func: &mut Function) -> usize {
    let tree = DomTree::new(func);
    let written = super::licm::written_regions(func, &tree.order);
    let n = tree.order.len();
    let mut children = vec![Vec::new(); n];
    for i in 1..n {
        if tree.idom[i] != usize::MAX {
            children[tree.idom[i]].push(i);
        }
    }
    let mut alias: SecondaryMap<Value, Option<Value>> = SecondaryMap::new();
    let resolve = |alias: &SecondaryMap<Value, Option<Value>>, mut v: Value| {
        while let Some(a) = alias[v] {
            v = a;
        }
        v
    };
    let resolve_operands =
        |func: &mut Function, alias: &SecondaryMap<Value, Option<Value>>, inst| {
            let data = &mut func.dfg.insts[inst];
            for v in data.arguments_mut() {
                *v = resolve(alias, *v);
            }
            for call in data.branch_destinations_mut() {
                for v in &mut call.args {
                    *v = resolve(alias, *v);
                }
            }
        };
    // Values available in the block being visited: those of its dominators.
    let mut scoped: HashMap<Key, Inst> = HashMap::new();
    let mut added: Vec<Vec<Key>> = vec![Vec::new(); n];
    let mut removed = 0;
    // Dominator-tree preorder; `true` marks leaving a block's subtree.
    let mut stack = vec![(0usize, false)];
    while let Some((i, leaving)) = stack.pop() {
        if n == 0 {
            break;
        }
        if leaving {
            for key in added[i].drain(..) {
                scoped.remove(&key);
            }
            continue;
        }
        stack.push((i, true));
        stack.extend(children[i].iter().rev().map(|&c| (c, false)));
        let block = tree.order[i];
        let mut loads: HashMap<Key, Inst> = HashMap::new();
        let mut keep = Vec::new();
        for inst in func.layout.block_insts(block).to_vec() {
            // Operands first: earlier replacements make later duplicates visible.
            resolve_operands(func, &alias, inst);
            let data = func.dfg.insts[inst].clone();
            let op = data.opcode();
            let results = func.dfg.inst_results(inst).to_vec();
            if op.can_store() || op.is_call() || op.other_side_effects() {
                loads.clear();
            }
            let (notrap_load, readonly) = match &data {
                InstructionData::Load {
                    opcode: Opcode::Load,
                    flags,
                    ..
                } if flags.trap_code.is_none() => (
                    true,
                    flags.readonly
                        || flags
                            .region
                            .is_some_and(|r| written.as_ref().is_some_and(|w| !w.contains(&r))),
                ),
                _ => (false, false),
            };
            let dominating = (is_pure(op) && results.len() == 1) || readonly;
            let key = || (data.clone(), func.dfg.value_type(results[0]));
            let earlier = if dominating {
                scoped.get(&key()).copied()
            } else if notrap_load {
                loads.get(&key()).copied()
            } else {
                None
            };
            match earlier {
                Some(e) => {
                    alias[results[0]] = Some(func.dfg.first_result(e));
                    removed += 1;
                    continue;
                }
                None if dominating => {
                    scoped.insert(key(), inst);
                    added[i].push(key());
                }
                None if notrap_load => {
                    loads.insert(key(), inst);
                }
                None => {}
            }
            keep.push(inst);
        }
        func.layout.set_block_insts(block, keep);
    }
    // Blocks no path reaches may still name replaced values.
    if removed > 0 {
        for block in func.layout.blocks().to_vec() {
            for inst in func.layout.block_insts(block).to_vec() {
                resolve_operands(func, &alias, inst);
            }
        }
    }
    removed
}
