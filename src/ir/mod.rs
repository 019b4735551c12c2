//! The IR: a CLIF-compatible subset of Cranelift 0.135 plus the bounds-checked accesses.

pub mod builder;
pub mod entities;
pub mod function;
pub mod immediates;
pub mod instructions;
pub mod value_type;

pub use builder::{InstBuilder, InstBuilderBase};
pub use entities::{AliasRegion, Block, FuncRef, Inst, Memory, SigRef, Value};
pub use function::{
    AbiParam, AliasRegionData, ArgumentExtension, DataFlowGraph, ExtFuncData, Function, Layout,
    MemoryData, Signature, SourceMap, Span, ValueDef,
};
pub use immediates::{
    BlockCall, Endianness, FloatCC, Ieee32, Ieee64, Imm64, IntCC, JumpTable, MemFlags, Offset32,
    Offset64, TrapCode,
};
pub use instructions::{
    AccessKind, BlockCallRef, BoundsCheckedAccess, CtrlConstraint, InstructionData,
    InstructionDataView, InstructionFormat, JumpTableRef, Opcode, OpcodeConstraints,
    OperandConstraint, ResultConstraint, ValueListRef,
};
pub use value_type::{types, Type, TypeSet};
