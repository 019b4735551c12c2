//! Building instructions: the generated [`InstBuilder`] methods on top of an insertion point.

use super::entities::{Block, FuncRef, Inst, Memory, Value};
use super::function::{DataFlowGraph, Function};
use super::immediates::{
    BlockCall, FloatCC, Ieee32, Ieee64, Imm64, IntCC, JumpTable, MemFlags, Offset32, Offset64,
    TrapCode,
};
use super::instructions::{AccessKind, InstructionData, Opcode};
use super::value_type::{types, Type};

/// What the generated builder methods need: a way to add an instruction with its results.
pub trait InstBuilderBase<'f>: Sized {
    /// The data-flow graph, for operand types.
    fn data_flow_graph(&self) -> &DataFlowGraph;
    /// Inserts the instruction, creates its results for `ctrl`, returns it.
    fn build(self, data: InstructionData, ctrl: Type) -> (Inst, &'f mut DataFlowGraph);
}

include!(concat!(env!("OUT_DIR"), "/builder.rs"));

/// Appends instructions at the end of a block.
pub struct AppendBuilder<'f> {
    func: &'f mut Function,
    block: Block,
}

impl<'f> InstBuilderBase<'f> for AppendBuilder<'f> {
    fn data_flow_graph(&self) -> &DataFlowGraph {
        &self.func.dfg
    }

    fn build(self, data: InstructionData, ctrl: Type) -> (Inst, &'f mut DataFlowGraph) {
        let inst = self.func.dfg.make_inst(data);
        self.func.dfg.make_inst_results(inst, ctrl);
        self.func.layout.append_inst(inst, self.block);
        (inst, &mut self.func.dfg)
    }
}

impl Function {
    /// A builder appending to `block`: `func.ins(block).iadd(x, y)`.
    pub fn ins(&mut self, block: Block) -> AppendBuilder<'_> {
        AppendBuilder { func: self, block }
    }
}
