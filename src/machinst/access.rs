//! A bounds-checked access as every backend renders it: the IR's operands by role, the
//! accessed type, and the trap code. How the access is made safe is not here: that is its
//! plan (`crate::plan`, read through `Lower::plan`), decided before the block is lowered.

use crate::ir::{AccessKind, Endianness, Function, Inst, Memory, TrapCode, Type, Value};

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
