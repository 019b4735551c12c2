//! Opcodes, instruction formats and type constraints, generated from `meta/`.

use super::entities::{FuncRef, Inst, Memory, Value};
use super::immediates::{
    BlockCall, FloatCC, Ieee32, Ieee64, Imm64, IntCC, JumpTable, MemFlags, Offset32, Offset64,
    TrapCode,
};
use super::value_type::{types, Type, TypeSet};
pub use crate::semantics::AccessKind;

include!(concat!(env!("OUT_DIR"), "/opcodes.rs"));
include!(concat!(env!("OUT_DIR"), "/inst_data.rs"));

/// Where an instruction's controlling type comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtrlConstraint {
    /// Not polymorphic.
    None,
    /// Written as a `.type` suffix; must be in the set.
    Explicit(TypeSet),
    /// The type of the value operand with this index; must be in the set.
    FromOperand(usize, TypeSet),
}

/// The constraint on one value operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperandConstraint {
    /// The controlling type.
    Ctrl,
    /// Any type of the set.
    Free(TypeSet),
    /// The target's pointer type.
    Pointer,
}

/// The type of one result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultConstraint {
    /// The controlling type.
    Ctrl,
    /// A fixed type.
    Fixed(Type),
}

/// All type constraints of an opcode.
#[derive(Clone, Copy, Debug)]
pub struct OpcodeConstraints {
    /// The controlling type variable.
    pub ctrl: CtrlConstraint,
    /// One entry per fixed value operand.
    pub operands: &'static [OperandConstraint],
    /// One entry per result (unless `variable_results`).
    pub results: &'static [ResultConstraint],
    /// Results come from a callee's signature.
    pub variable_results: bool,
}

impl OpcodeConstraints {
    /// Result types for a controlling type.
    pub fn result_types(&self, ctrl: Type) -> impl Iterator<Item = Type> + '_ {
        self.results.iter().map(move |r| match r {
            ResultConstraint::Ctrl => ctrl,
            ResultConstraint::Fixed(t) => *t,
        })
    }
}

impl core::fmt::Display for Opcode {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// The operands of a `bounds_checked_load` or `bounds_checked_store`, by role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoundsCheckedAccess {
    /// Which bytes move and how they are extended or truncated.
    pub access: AccessKind,
    /// Memory flags: byte order, trap code, alias region.
    pub flags: MemFlags,
    /// The declared memory.
    pub memory: Memory,
    /// The stored value (stores only).
    pub value: Option<Value>,
    /// The memory's base address.
    pub base: Value,
    /// The memory's bound in bytes.
    pub bound: Value,
    /// The index.
    pub index: Value,
    /// The static offset.
    pub offset: u64,
}

impl BoundsCheckedAccess {
    /// The trap code the access traps with: its flags' code, `heap_oob` when they name none
    /// (the instruction's definition, `meta/src/instructions.rs`).
    pub fn trap_code(&self) -> super::TrapCode {
        self.flags
            .trap_code
            .unwrap_or(super::TrapCode::HEAP_OUT_OF_BOUNDS)
    }

    /// `offset + access_size` for a value of type `ty`, the end a check must cover (the
    /// verifier guarantees it fits 64 bits).
    pub fn end(&self, ty: Type) -> u64 {
        let k = crate::semantics::static_end(self.offset, self.access.access_size(ty).into());
        u64::try_from(k).unwrap_or(u64::MAX)
    }
}

impl InstructionData {
    /// The operands of a bounds-checked access by role; `None` for other instructions.
    pub fn bounds_checked_access(&self) -> Option<BoundsCheckedAccess> {
        match *self {
            InstructionData::BoundsCheckedLoad {
                access,
                flags,
                memory,
                args: [base, bound, index],
                offset,
                ..
            } => Some(BoundsCheckedAccess {
                access,
                flags,
                memory,
                value: None,
                base,
                bound,
                index,
                offset: offset.0,
            }),
            InstructionData::BoundsCheckedStore {
                access,
                flags,
                memory,
                args: [value, base, bound, index],
                offset,
                ..
            } => Some(BoundsCheckedAccess {
                access,
                flags,
                memory,
                value: Some(value),
                base,
                bound,
                index,
                offset: offset.0,
            }),
            _ => None,
        }
    }
}

impl InstructionData {
    /// The instruction that produces zero of type `ty` (`iconst`, `f32const` or `f64const`),
    /// with the controlling type to build it with.
    pub fn zero_constant(ty: Type) -> (InstructionData, Type) {
        match ty {
            types::F32 => (
                InstructionData::UnaryIeee32 {
                    opcode: Opcode::F32const,
                    imm: Ieee32(0),
                },
                types::INVALID,
            ),
            types::F64 => (
                InstructionData::UnaryIeee64 {
                    opcode: Opcode::F64const,
                    imm: Ieee64(0),
                },
                types::INVALID,
            ),
            _ => (
                InstructionData::UnaryImm {
                    opcode: Opcode::Iconst,
                    imm: Imm64(0),
                },
                ty,
            ),
        }
    }
}

/// The instruction whose block call, jump table or value list a view field refers to, and
/// for block calls which one (0: first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockCallRef(pub Inst, pub u8);
/// The jump table of an instruction, referred to from [`InstructionDataView`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct JumpTableRef(pub Inst);
/// The value list of an instruction, referred to from [`InstructionDataView`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ValueListRef(pub Inst);

include!(concat!(env!("OUT_DIR"), "/inst_data_view.rs"));
