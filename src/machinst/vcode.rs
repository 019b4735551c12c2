//! Machine instructions over virtual registers, grouped in blocks in emission order, in the
//! shape `regalloc2` consumes: SSA virtual registers, block parameters instead of phis, and no
//! critical edges (lowering splits them).

use super::{MachBlock, MachInst, Operand, PRegSet, RegClass, VReg};
use regalloc2::{Function, Inst as RaInst, InstRange};

/// One block of machine instructions.
#[derive(Clone, Debug, Default)]
pub struct VBlock {
    /// First instruction (index into [`VCode::insts`]).
    pub start: u32,
    /// One past the last instruction; the last one is the terminator.
    pub end: u32,
    /// Successors, in the order of the terminator's targets.
    pub succs: Vec<MachBlock>,
    /// Predecessors.
    pub preds: Vec<MachBlock>,
    /// Block parameters.
    pub params: Vec<VReg>,
    /// Arguments passed to each successor's parameters, indexed like `succs`.
    pub branch_args: Vec<Vec<VReg>>,
}

/// A function in machine instructions, ready for register allocation.
#[derive(Clone, Debug)]
pub struct VCode<I: MachInst> {
    /// Instructions of all blocks, block after block.
    pub insts: Vec<I>,
    /// Blocks in emission order; block 0 is the entry.
    pub blocks: Vec<VBlock>,
    /// Number of virtual registers handed out.
    pub num_vregs: usize,
    /// What proof-carrying code checks the instructions against, when it is enabled.
    pub pcc: Option<super::pcc::PccInfo>,
    operands: Vec<Operand>,
    operand_ranges: Vec<(u32, u32)>,
    clobbers: Vec<PRegSet>,
}

/// Jump threading after register allocation: for each block, the block its branches
/// should target. A block holding nothing but an unconditional jump (a split edge that
/// needed no moves, say) is not emitted; branches to it go where it jumps. A cycle of such
/// blocks (an empty infinite loop) keeps its blocks.
pub fn thread_jumps<I: MachInst>(vcode: &VCode<I>, out: &regalloc2::Output) -> Vec<usize> {
    use regalloc2::InstOrEdit;
    let n_blocks = vcode.blocks.len();
    let mut forward: Vec<Option<usize>> = vec![None; n_blocks];
    for (b, f) in forward.iter_mut().enumerate().skip(1) {
        let items: Vec<_> = out
            .block_insts_and_edits(vcode, MachBlock::new(b))
            .collect();
        if let [InstOrEdit::Inst(i)] = items[..] {
            if let Some(target) = vcode.insts[i.index()].jump_target() {
                *f = Some(target.index());
            }
        }
    }
    // A chain of jump-only blocks is at most as long as the block count.
    let resolve = |mut b: usize| {
        for _ in 0..n_blocks {
            match forward[b] {
                Some(t) if t != b => b = t,
                _ => break,
            }
        }
        b
    };
    (0..n_blocks)
        .map(|b| {
            if forward[b].is_some() && resolve(b) != b && forward[resolve(b)].is_none() {
                resolve(b)
            } else {
                b
            }
        })
        .collect()
}

impl<I: MachInst> VCode<I> {
    /// Assembles the blocks and precomputes what regalloc2 asks for.
    pub fn new(insts: Vec<I>, blocks: Vec<VBlock>, num_vregs: usize) -> Self {
        let mut operands = Vec::new();
        let mut operand_ranges = Vec::with_capacity(insts.len());
        let mut clobbers = Vec::with_capacity(insts.len());
        for inst in &insts {
            let start = operands.len() as u32;
            inst.operands(&mut operands);
            operand_ranges.push((start, operands.len() as u32));
            clobbers.push(inst.clobbers());
        }
        VCode {
            insts,
            blocks,
            num_vregs,
            pcc: None,
            operands,
            operand_ranges,
            clobbers,
        }
    }
}

impl<I: MachInst> Function for VCode<I> {
    fn num_insts(&self) -> usize {
        self.insts.len()
    }
    fn num_blocks(&self) -> usize {
        self.blocks.len()
    }
    fn entry_block(&self) -> MachBlock {
        MachBlock::new(0)
    }
    fn block_insns(&self, block: MachBlock) -> InstRange {
        let b = &self.blocks[block.index()];
        InstRange::new(RaInst::new(b.start as usize), RaInst::new(b.end as usize))
    }
    fn block_succs(&self, block: MachBlock) -> &[MachBlock] {
        &self.blocks[block.index()].succs
    }
    fn block_preds(&self, block: MachBlock) -> &[MachBlock] {
        &self.blocks[block.index()].preds
    }
    fn block_params(&self, block: MachBlock) -> &[VReg] {
        &self.blocks[block.index()].params
    }
    fn is_ret(&self, insn: RaInst) -> bool {
        self.insts[insn.index()].is_ret()
    }
    fn is_branch(&self, insn: RaInst) -> bool {
        !self.insts[insn.index()].branch_targets().is_empty()
    }
    fn branch_blockparams(&self, block: MachBlock, _insn: RaInst, succ_idx: usize) -> &[VReg] {
        &self.blocks[block.index()].branch_args[succ_idx]
    }
    fn inst_operands(&self, insn: RaInst) -> &[Operand] {
        let (start, end) = self.operand_ranges[insn.index()];
        &self.operands[start as usize..end as usize]
    }
    fn inst_clobbers(&self, insn: RaInst) -> PRegSet {
        self.clobbers[insn.index()]
    }
    fn num_vregs(&self) -> usize {
        self.num_vregs
    }
    fn spillslot_size(&self, _regclass: RegClass) -> usize {
        // Every class spills to one 8-byte slot: integers are at most 64 bits, floats f64.
        1
    }
}
