//! The control-flow graph of a function: branch destinations, successors, reverse
//! postorder, predecessors and immediate dominators of the blocks reachable from the entry
//! (Cooper, Harvey and Kennedy, "A Simple, Fast Dominance Algorithm").
//!
//! One implementation for every reader: the IR verifier (dominance of definitions over uses),
//! the mid-end passes (`crate::opt`) and lowering (block order, critical edges). It depends on
//! the IR alone. The IR it reads may be malformed (the verifier runs it first): a branch to a
//! block that is not in the layout is not an edge.

use crate::ir::{Block, Function, InstructionData, Value};
use cranelift_entity::SecondaryMap;

/// The IR blocks a terminator branches to, with their arguments, in target order.
pub fn branch_destinations(data: &InstructionData) -> Vec<(Block, &[Value])> {
    match data {
        InstructionData::Jump { destination, .. } => {
            vec![(destination.block, &destination.args[..])]
        }
        InstructionData::Brif {
            block_then,
            block_else,
            ..
        } => vec![
            (block_then.block, &block_then.args[..]),
            (block_else.block, &block_else.args[..]),
        ],
        InstructionData::BranchTable { table, .. } => std::iter::once(&table.default)
            .chain(&table.targets)
            .map(|c| (c.block, &c.args[..]))
            .collect(),
        _ => Vec::new(),
    }
}

/// The blocks reachable from the entry, in reverse postorder (the entry first).
pub fn reverse_postorder(func: &Function) -> Vec<Block> {
    let Some(entry) = func.layout.entry_block() else {
        return Vec::new();
    };
    let mut visited: SecondaryMap<Block, bool> = SecondaryMap::new();
    let mut post = Vec::new();
    // Iterative DFS: (block, its successors, the next one's index), so deep CFGs cannot
    // overflow the stack, and a `br_table` of many targets is read once, not per target.
    let mut stack = vec![(entry, succs(func, entry), 0usize)];
    visited[entry] = true;
    while let Some((b, ss, i)) = stack.last_mut() {
        if let Some(&s) = ss.get(*i) {
            *i += 1;
            if !visited[s] {
                visited[s] = true;
                stack.push((s, succs(func, s), 0));
            }
        } else {
            let b = *b;
            post.push(b);
            stack.pop();
        }
    }
    post.reverse();
    post
}

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

/// The successors of `b` in the layout, in branch order.
pub fn succs(func: &Function, b: Block) -> Vec<Block> {
    func.layout
        .block_insts(b)
        .last()
        .map(|&t| {
            branch_destinations(&func.dfg.insts[t])
                .into_iter()
                .map(|d| d.0)
                .filter(|&s| func.layout.is_block_inserted(s))
                .collect()
        })
        .unwrap_or_default()
}

impl DomTree {
    /// Computes the tree of `func`.
    pub fn new(func: &Function) -> DomTree {
        let order = reverse_postorder(func);
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

    /// Whether `b` is reachable from the entry.
    pub fn reachable(&self, b: Block) -> bool {
        self.rpo[b] != usize::MAX
    }

    /// Whether block `a` dominates block `b`; false when either is unreachable.
    pub fn block_dominates(&self, a: Block, b: Block) -> bool {
        self.reachable(a) && self.reachable(b) && self.dominates(self.rpo[a], self.rpo[b])
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
