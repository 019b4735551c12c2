//! A bounds-checked access as every backend renders it: the IR's operands by role, the
//! accessed type, and the trap code. How the access is made safe is not here: that is its
//! plan (`crate::plan`, read through `Lower::plan`), decided before the block is lowered.

use crate::ir::{
    AccessKind, Endianness, Function, Inst, InstructionData, MemFlags, Memory, Offset32, Opcode,
    TrapCode, Type, Value,
};

/// A bounds-checked access.
#[derive(Clone, Copy, Debug)]
pub struct Access {
    /// The instruction.
    pub inst: Inst,
    /// The type of the value loaded or stored.
    pub ty: Type,
    /// Which bytes move and how they are extended.
    pub kind: AccessKind,
    /// The stored value (stores only).
    pub store_value: Option<Value>,
    /// The declared memory.
    pub memory: Memory,
    /// The memory's base address.
    pub base: Value,
    /// The memory's bound.
    pub bound: Value,
    /// The index.
    pub index: Value,
    /// The index type.
    pub index_ty: Type,
    /// The static offset.
    pub offset: u64,
    /// The trap code (the instruction's definition: `heap_oob` when the flags name none).
    pub trap: TrapCode,
    /// Big-endian byte order.
    pub big_endian: bool,
}

impl Access {
    /// The access `inst` of `func`, or `None` when it is not a bounds-checked access.
    pub fn of(func: &Function, inst: Inst) -> Option<Access> {
        let c = func.dfg.insts[inst].bounds_checked_access()?;
        Some(Access {
            inst,
            ty: func.dfg.ctrl_type(inst),
            kind: c.access,
            store_value: c.value,
            memory: c.memory,
            base: c.base,
            bound: c.bound,
            index: c.index,
            index_ty: func.dfg.value_type(c.index),
            offset: c.offset,
            trap: c.trap_code(),
            big_endian: c.flags.endianness == Some(Endianness::Big),
        })
    }
}

/// An ordinary `load` or `store` (or a narrow form) as every backend renders it: at
/// `addr + offset`, trapping with the flags' code where it faults.
#[derive(Clone, Copy, Debug)]
pub struct PlainAccess {
    /// The type of the value loaded or stored.
    pub ty: Type,
    /// Which bytes move and how they are extended (`uload8` is `U8`, `istore16` is `I16`).
    pub kind: AccessKind,
    /// The memory flags: trap code and byte order.
    pub flags: MemFlags,
    /// The address operand.
    pub addr: Value,
    /// The static offset.
    pub offset: i32,
    /// The stored value (stores only).
    pub store_value: Option<Value>,
}

impl PlainAccess {
    /// The access `inst` of `func`, or `None` when it is not an ordinary load or store.
    pub fn of(func: &Function, inst: Inst) -> Option<PlainAccess> {
        let dfg = &func.dfg;
        match dfg.insts[inst] {
            InstructionData::Load {
                opcode,
                flags,
                arg,
                offset: Offset32(offset),
            } => Some(PlainAccess {
                ty: dfg.value_type(dfg.first_result(inst)),
                kind: plain_access_kind(opcode),
                flags,
                addr: arg,
                offset,
                store_value: None,
            }),
            InstructionData::Store {
                opcode,
                flags,
                args: [x, p],
                offset: Offset32(offset),
            } => Some(PlainAccess {
                ty: dfg.value_type(x),
                kind: plain_access_kind(opcode),
                flags,
                addr: p,
                offset,
                store_value: Some(x),
            }),
            _ => None,
        }
    }

    /// Big-endian byte order.
    pub fn big_endian(&self) -> bool {
        self.flags.endianness == Some(Endianness::Big)
    }
}

/// The access kind of an ordinary load or store: `uload8` is `U8`, `istore16` is `I16`,
/// `load` and `store` are `Full`.
pub fn plain_access_kind(op: Opcode) -> AccessKind {
    match op {
        Opcode::Uload8 => AccessKind::U8,
        Opcode::Sload8 => AccessKind::S8,
        Opcode::Uload16 => AccessKind::U16,
        Opcode::Sload16 => AccessKind::S16,
        Opcode::Uload32 => AccessKind::U32,
        Opcode::Sload32 => AccessKind::S32,
        Opcode::Istore8 => AccessKind::I8,
        Opcode::Istore16 => AccessKind::I16,
        Opcode::Istore32 => AccessKind::I32,
        _ => AccessKind::Full,
    }
}
