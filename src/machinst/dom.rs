//! Reverse postorder, predecessors and immediate dominators of the blocks reachable from the
//! entry (Cooper, Harvey and Kennedy, "A Simple, Fast Dominance Algorithm"), for the passes
//! before lowering.

use super::lower::branch_destinations;
use crate::ir::{Block, Function};
use cranelift_entity::SecondaryMap;

/// The control-flow facts of one function.
pub struct DomTree {
    /// Reachable blocks in reverse postorder; the entry first.
    pub order: Vec<Block>,
    /// Position of each block in `order` (`usize::MAX`: unreachable).
    pub rpo: SecondaryMap<Block, usize>,
    /// Distinct predecessors of each block.
    pub preds: SecondaryMap<Block, Vec<Block>>,
    /// Immediate dominator of each block, as a position in `order` (the entry's is itself).
    pub idom: Vec<usize>,
}

/// The successors of `b`, in branch order.
pub fn succs(func: &Function, b: Block) -> Vec<Block> {
    func.layout
        .block_insts(b)
        .last()
        .map(|&t| {
            branch_destinations(&func.dfg.insts[t])
                .into_iter()
                .map(|d| d.0)
                .collect()
        })
        .unwrap_or_default()
}

impl DomTree {
    /// Computes the tree of `func`.
    pub fn new(func: &Function) -> DomTree {
        let order = super::lower::reverse_postorder(func);
        let mut rpo: SecondaryMap<Block, usize> = SecondaryMap::with_default(usize::MAX);
        for (i, &b) in order.iter().enumerate() {
            rpo[b] = i;
        }
        let mut preds: SecondaryMap<Block, Vec<Block>> = SecondaryMap::new();
        for &b in &order {
            for s in succs(func, b) {
                if !preds[s].contains(&b) {
                    preds[s].push(b);
                }
            }
        }
        let n = order.len();
        let mut idom = vec![usize::MAX; n];
        if n > 0 {
            idom[0] = 0;
        }
        let mut changed = true;
        while changed {
            changed = false;
            for i in 1..n {
                let mut new = usize::MAX;
                for &p in &preds[order[i]] {
                    let p = rpo[p];
                    if idom[p] == usize::MAX {
                        continue;
                    }
                    new = if new == usize::MAX {
                        p
                    } else {
                        let (mut a, mut b) = (new, p);
                        while a != b {
                            while a > b {
                                a = idom[a];
                            }
                            while b > a {
                                b = idom[b];
                            }
                        }
                        a
                    };
                }
                if new != idom[i] {
                    idom[i] = new;
                    changed = true;
                }
            }
        }
        DomTree {
            order,
            rpo,
            preds,
            idom,
        }
    }

    /// Whether the block at position `a` dominates the one at position `b`.
    pub fn dominates(&self, a: usize, mut b: usize) -> bool {
        loop {
            if a == b {
                return true;
            }
            if b == 0 || self.idom[b] == usize::MAX {
                return false;
            }
            b = self.idom[b];
        }
    }
}
