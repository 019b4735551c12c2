//! The walk over allocated code that every backend's emission shares: blocks in order
//! (jump-only blocks threaded away), the allocator's moves between instructions, and each
//! instruction with its registers allocated.

use super::buffer::{CodeBuffer, Label};
use super::vcode::{thread_jumps, VCode};
use super::{CodegenError, MachBlock, MachInst};
use regalloc2::{Allocation, Edit, Function, InstOrEdit};

/// What a backend's emitter does during [`emit_blocks`].
pub trait Emit<I: MachInst> {
    /// The code buffer.
    fn buf(&mut self) -> &mut CodeBuffer;
    /// Called once before the first block: the label each block's branches go to (threaded
    /// blocks share their target's). Emits the prologue.
    fn begin(&mut self, block_labels: Vec<Label>);
    /// The label of the block emitted after the current one, for fall-through.
    fn set_next(&mut self, next: Option<Label>);
    /// A move regalloc2 inserted.
    fn emit_move(&mut self, from: Allocation, to: Allocation) -> Result<(), CodegenError>;
    /// One instruction, its registers allocated.
    fn emit_inst(&mut self, inst: &I) -> Result<(), CodegenError>;
}

/// An instruction or a move as emitted, and the code offsets it occupies.
pub struct Emitted<I> {
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
    /// What was emitted.
    pub what: What<I>,
}

/// What an [`Emitted`] is.
pub enum What<I> {
    /// An instruction, its registers allocated.
    Inst(I),
    /// A move regalloc2 inserted: between registers, or a spill or reload.
    Move(Allocation, Allocation),
}

/// Emits the blocks of `vcode` as regalloc2 allocated them (`out`) through `e`. Under
/// `enable_pcc` (`vcode.pcc` is set), returns every instruction with where it was emitted,
/// for the ISA to decode its accesses back.
pub fn emit_blocks<I: MachInst, E: Emit<I>>(
    vcode: &VCode<I>,
    out: &regalloc2::Output,
    e: &mut E,
) -> Result<Vec<Emitted<I>>, CodegenError> {
    let mut emitted_insts = Vec::new();
    let n_blocks = vcode.num_blocks();
    let final_block = thread_jumps(vcode, out);
    let emitted: Vec<usize> = (0..n_blocks).filter(|&b| final_block[b] == b).collect();
    let own: Vec<Label> = (0..n_blocks).map(|_| e.buf().new_label()).collect();
    e.begin((0..n_blocks).map(|b| own[final_block[b]]).collect());
    for (k, &b) in emitted.iter().enumerate() {
        e.buf().bind(own[b]);
        e.set_next(emitted.get(k + 1).map(|&n| own[n]));
        for item in out.block_insts_and_edits(vcode, MachBlock::new(b)) {
            match item {
                InstOrEdit::Edit(Edit::Move { from, to }) => {
                    let start = e.buf().offset();
                    e.emit_move(*from, *to)?;
                    if vcode.pcc.is_some() {
                        let end = e.buf().offset();
                        let what = What::Move(*from, *to);
                        emitted_insts.push(Emitted { start, end, what });
                    }
                }
                InstOrEdit::Inst(i) => {
                    let mut inst = vcode.insts[i.index()].clone();
                    inst.allocate(out.inst_allocs(i));
                    let start = e.buf().offset();
                    e.emit_inst(&inst)?;
                    if vcode.pcc.is_some() {
                        let end = e.buf().offset();
                        let what = What::Inst(inst);
                        emitted_insts.push(Emitted { start, end, what });
                    }
                }
            }
        }
    }
    Ok(emitted_insts)
}
