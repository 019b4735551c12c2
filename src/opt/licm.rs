//! Loop-invariant code motion before lowering: a pure instruction, or a `notrap readonly`
//! load, whose operands are all defined outside a loop moves to the loop's preheader (the one
//! predecessor outside the loop, when it ends in a plain `jump` to the header).
//!
//! Pure instructions cannot trap, and `notrap readonly` loads read memory that does not
//! change during the function and cannot fault, so executing them once before the loop, even
//! when the loop body would not have run, changes nothing observable. A `notrap` load that is
//! not `readonly` moves too when the loop calls nothing and every store in it names another
//! alias region than the load's: nothing in the loop can change what it reads (a Wasm bound
//! in a loop that writes only linear memory). Trapping instructions, bounds-checked accesses
//! included, never move.

use crate::ir::{AliasRegion, Block, Function, InstructionData, Opcode, ValueDef};
use cranelift_entity::SecondaryMap;

/// What `blocks` (a loop, or the whole function) may write: `None` when anything (a call, a
/// store without a region), else the alias regions their stores name.
pub(crate) fn written_regions(func: &Function, blocks: &[Block]) -> Option<Vec<AliasRegion>> {
    let mut regions = Vec::new();
    for &b in blocks {
        for &inst in func.layout.block_insts(b) {
            let data = &func.dfg.insts[inst];
            let op = data.opcode();
            if op.is_call() || op.other_side_effects() {
                return None;
            }
            if !op.can_store() {
                continue;
            }
            match data {
                InstructionData::Store { flags, .. }
                | InstructionData::BoundsCheckedStore { flags, .. } => {
                    regions.push(flags.region?);
                }
                _ => return None,
            }
        }
    }
    Some(regions)
}

fn hoistable(data: &InstructionData, written: Option<&[AliasRegion]>) -> bool {
    let op = data.opcode();
    let unchanged_load = match data {
        InstructionData::Load {
            opcode: Opcode::Load,
            flags,
            ..
        } if flags.trap_code.is_none() => {
            flags.readonly
                || flags
                    .region
                    .is_some_and(|r| written.is_some_and(|w| !w.contains(&r)))
        }
        _ => false,
    };
    super::is_pure(op) || unchanged_load
}

/// Rewrites `func` in place; returns how many instructions moved.
pub fn run(func: &mut Function) -> usize {
    if func.layout.entry_block().is_none() {
        return 0;
    }
    let tree = crate::cfg::DomTree::new(func);
    let (order, rpo, preds) = (&tree.order, &tree.rpo, &tree.preds);
    let dominates = |a: usize, b: usize| tree.dominates(a, b);
    let succs = crate::cfg::succs;

    // Natural loops: header -> member blocks, from back edges (latch -> header).
    let mut loops: Vec<(Block, Vec<Block>)> = Vec::new();
    for &latch in order {
        for h in succs(func, latch) {
            if !dominates(rpo[h], rpo[latch]) {
                continue;
            }
            let mut body = vec![h];
            let mut work = vec![latch];
            while let Some(b) = work.pop() {
                if !body.contains(&b) {
                    body.push(b);
                    work.extend(preds[b].iter().copied());
                }
            }
            match loops.iter_mut().find(|l| l.0 == h) {
                Some(l) => {
                    for b in body {
                        if !l.1.contains(&b) {
                            l.1.push(b);
                        }
                    }
                }
                None => loops.push((h, body)),
            }
        }
    }
    // Inner loops first, so what leaves an inner loop can leave the outer one too.
    loops.sort_by_key(|l| l.1.len());

    let mut moved = 0;
    for (header, body) in loops {
        let outside: Vec<Block> = preds[header]
            .iter()
            .copied()
            .filter(|p| !body.contains(p))
            .collect();
        let [pre] = outside[..] else { continue };
        let jumps_to_header = func.layout.block_insts(pre).last().is_some_and(|&t| {
            matches!(&func.dfg.insts[t], InstructionData::Jump { destination, .. } if destination.block == header)
        });
        if !jumps_to_header {
            continue;
        }
        let mut in_loop: SecondaryMap<Block, bool> = SecondaryMap::new();
        for &b in &body {
            in_loop[b] = true;
        }
        let written = written_regions(func, &body);
        let mut members = body.clone();
        members.sort_by_key(|&b| rpo[b]);
        for b in members {
            let insts = func.layout.block_insts(b).to_vec();
            let mut keep = Vec::with_capacity(insts.len());
            let mut hoisted = Vec::new();
            for inst in insts {
                let data = &func.dfg.insts[inst];
                let invariant = hoistable(data, written.as_deref())
                    && data
                        .arguments()
                        .iter()
                        .all(|&v| match func.dfg.value_def(v) {
                            ValueDef::Result(d, _) => func
                                .layout
                                .inst_block(d)
                                .is_none_or(|db| !in_loop[db] || hoisted.contains(&d)),
                            ValueDef::Param(pb, _) => !in_loop[pb],
                            _ => false,
                        });
                if invariant {
                    hoisted.push(inst);
                } else {
                    keep.push(inst);
                }
            }
            if hoisted.is_empty() {
                continue;
            }
            moved += hoisted.len();
            // Take them out of the loop block first: `set_block_insts` forgets the old list.
            func.layout.set_block_insts(b, keep);
            let mut pre_insts = func.layout.block_insts(pre).to_vec();
            let term = pre_insts.pop().expect("the preheader ends in its jump");
            pre_insts.extend(hoisted);
            pre_insts.push(term);
            func.layout.set_block_insts(pre, pre_insts);
        }
    }
    moved
}
