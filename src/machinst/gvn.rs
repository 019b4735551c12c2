//! Block-local value numbering before lowering: within a block, a pure instruction identical
//! to an earlier one (same opcode, operands, immediates and type), or a `notrap` load of the
//! same address with no memory write or call in between, is replaced by the earlier result.
//!
//! This is what a frontend that emits base and bound loads next to every access needs to
//! produce code like Cranelift's mid-end does for the same input (which also hoists out of
//! loops; this pass does not). It never changes which instruction traps: trapping
//! instructions, bounds-checked accesses included, are left alone.

use super::is_pure;
use crate::ir::{Function, Inst, InstructionData, Opcode, Type, Value};
use cranelift_entity::SecondaryMap;
use std::collections::HashMap;

/// Rewrites `func` in place; returns how many instructions were removed.
pub fn run(func: &mut Function) -> usize {
    let mut alias: SecondaryMap<Value, Option<Value>> = SecondaryMap::new();
    let resolve = |alias: &SecondaryMap<Value, Option<Value>>, mut v: Value| {
        while let Some(a) = alias[v] {
            v = a;
        }
        v
    };
    let mut removed = 0;
    let blocks: Vec<_> = func.layout.blocks().to_vec();
    for block in blocks {
        let mut seen: HashMap<(InstructionData, Type), Inst> = HashMap::new();
        let mut loads: HashMap<(InstructionData, Type), Inst> = HashMap::new();
        let mut keep = Vec::new();
        for &inst in func.layout.block_insts(block) {
            // Operands first: earlier replacements make later duplicates visible.
            let data = &mut func.dfg.insts[inst];
            for v in data.arguments_mut() {
                *v = resolve(&alias, *v);
            }
            for call in data.branch_destinations_mut() {
                for v in &mut call.args {
                    *v = resolve(&alias, *v);
                }
            }
            let data = func.dfg.insts[inst].clone();
            let op = data.opcode();
            let results = func.dfg.inst_results(inst).to_vec();
            if op.can_store() || op.is_call() || op.other_side_effects() {
                loads.clear();
            }
            let notrap_load = matches!(
                &data,
                InstructionData::Load { opcode: Opcode::Load, flags, .. } if flags.trap_code.is_none()
            );
            let table = if is_pure(op) && results.len() == 1 {
                Some(&mut seen)
            } else if notrap_load {
                Some(&mut loads)
            } else {
                None
            };
            if let Some(table) = table {
                let key = (data, func.dfg.value_type(results[0]));
                match table.get(&key) {
                    Some(&earlier) => {
                        alias[results[0]] = Some(func.dfg.first_result(earlier));
                        removed += 1;
                        continue;
                    }
                    None => {
                        table.insert(key, inst);
                    }
                }
            }
            keep.push(inst);
        }
        func.layout.set_block_insts(block, keep);
    }
    // Uses in blocks laid out before the definition they are dominated by.
    if removed > 0 {
        for block in func.layout.blocks().to_vec() {
            for &inst in func.layout.block_insts(block) {
                let data = &mut func.dfg.insts[inst];
                for v in data.arguments_mut() {
                    *v = resolve(&alias, *v);
                }
                for call in data.branch_destinations_mut() {
                    for v in &mut call.args {
                        *v = resolve(&alias, *v);
                    }
                }
            }
        }
    }
    removed
}
