//! WebAssembly: a translator from Wasm to CLIF that emits every linear-memory access as one
//! `bounds_checked_load`/`bounds_checked_store`, a runtime that instantiates modules over real
//! `mmap`ed memories under a chosen [`MemoryConfig`], and a runner for `.wast` scripts.
//!
//! The translated code reaches everything through its first parameter, `vmctx`, laid out by
//! [`VmLayout`]: the runtime fills it in, and rewrites a memory's base and bound in every
//! instance that uses the memory when it grows.

pub mod backend;
#[cfg(all(unix, feature = "cranelift"))]
pub mod bench;
pub mod config;
#[cfg(all(unix, feature = "cranelift"))]
pub mod cranelift;
pub mod module;
#[cfg(all(unix, feature = "cranelift"))]
pub mod pcc;
pub mod runtime;
pub mod script;
pub mod translate;

pub use config::{MemoryConfig, MemoryPlan};

use crate::ir::TrapCode;
use std::fmt;

/// An error reading, validating or translating a module: its message and, when known, the
/// byte offset in the module's binary encoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WasmError {
    /// What went wrong.
    pub message: String,
    /// Byte offset in the module's binary.
    pub offset: Option<u64>,
    /// Whether the module is invalid (as opposed to valid but using a feature the translator
    /// does not support).
    pub invalid: bool,
}

impl WasmError {
    /// The module is not valid Wasm.
    pub fn invalid(message: impl Into<String>, offset: Option<u64>) -> Self {
        WasmError {
            message: message.into(),
            offset,
            invalid: true,
        }
    }

    /// The module is valid but uses something the translator does not support.
    pub fn unsupported(feature: impl fmt::Display) -> Self {
        WasmError {
            message: format!("unsupported Wasm feature: {feature}"),
            offset: None,
            invalid: false,
        }
    }

    /// Adds the byte offset where the problem is, unless one is known already.
    pub fn at(mut self, offset: u64) -> Self {
        self.offset.get_or_insert(offset);
        self
    }
}

impl fmt::Display for WasmError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.offset {
            Some(o) => write!(f, "{} (at byte offset {o:#x} of the module)", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for WasmError {}

impl From<wasmparser::BinaryReaderError> for WasmError {
    fn from(e: wasmparser::BinaryReaderError) -> Self {
        WasmError::invalid(e.message().to_string(), Some(e.offset()))
    }
}

/// Trap codes of Wasm traps that have no Cranelift name; user codes, as in Wasmtime.
pub mod traps {
    use crate::ir::TrapCode;

    /// `unreachable` was executed.
    pub const UNREACHABLE: TrapCode = user(1);
    /// `call_indirect` with an index outside the table.
    pub const TABLE_OUT_OF_BOUNDS: TrapCode = user(2);
    /// `call_indirect` to a function of another type.
    pub const BAD_SIGNATURE: TrapCode = user(3);
    /// `call_indirect` through a null table entry.
    pub const INDIRECT_CALL_TO_NULL: TrapCode = user(4);

    const fn user(n: u8) -> TrapCode {
        match TrapCode::user(n) {
            Some(c) => c,
            None => panic!("user trap codes are 1..=250"),
        }
    }
}

/// The message the Wasm spec scripts use for a trap, or `None` for a code no Wasm trap has.
pub fn trap_message(code: TrapCode) -> Option<&'static str> {
    Some(match code {
        TrapCode::HEAP_OUT_OF_BOUNDS => "out of bounds memory access",
        TrapCode::INTEGER_DIVISION_BY_ZERO => "integer divide by zero",
        TrapCode::INTEGER_OVERFLOW => "integer overflow",
        TrapCode::BAD_CONVERSION_TO_INTEGER => "invalid conversion to integer",
        TrapCode::STACK_OVERFLOW => "call stack exhausted",
        traps::UNREACHABLE => "unreachable",
        traps::TABLE_OUT_OF_BOUNDS => "undefined element",
        traps::BAD_SIGNATURE => "indirect call type mismatch",
        traps::INDIRECT_CALL_TO_NULL => "uninitialized element",
        _ => return None,
    })
}

/// Where things live in an instance's vmctx. Every slot is 8 bytes; f32 and i32 globals use
/// the low bytes of theirs (little-endian).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmLayout {
    memories: u32,
    globals: u32,
    /// Start offset and length of each table's slots.
    tables: Vec<(u32, u32)>,
    /// Offset of each data segment's three fields (base, length, dropped), and of a
    /// passive one's bytes with their length.
    data: Vec<(u32, Option<(u32, u32)>)>,
    size: u32,
}

impl VmLayout {
    /// The layout for a module.
    pub fn new(module: &module::Module) -> Result<VmLayout, WasmError> {
        let memories = u32::try_from(module.memories.len()).unwrap_or(u32::MAX);
        let globals = u32::try_from(module.globals.len()).unwrap_or(u32::MAX);
        let mut at = u64::from(memories) * 16 + u64::from(globals) * 8;
        let mut tables = Vec::new();
        for t in &module.tables {
            // Tables never grow (`table.grow` is not supported), so their slots are fixed.
            let len = u32::try_from(t.ty.initial)
                .ok()
                .filter(|&n| n <= 1 << 24)
                .ok_or_else(|| WasmError::unsupported("tables of more than 2^24 elements"))?;
            tables.push((at as u32, len));
            at += u64::from(len) * 8;
        }
        // Each data segment is a small read-only memory for `memory.init`: its base, its
        // length and whether it was dropped in three fields, and a passive one's bytes in
        // the vmctx itself, which every engine already maps. (`data.drop` sets the flag and
        // leaves the length: code never writes a field that holds a declared bound, which
        // PCC checks.)
        let mut data = Vec::new();
        let fields = at;
        at += module.passive_data.len() as u64 * 24;
        for (i, seg) in module.passive_data.iter().enumerate() {
            let bytes = seg.as_ref().map(|b| {
                let here = (at as u32, b.len() as u32);
                at = (at + b.len() as u64).next_multiple_of(8);
                here
            });
            data.push(((fields + 24 * i as u64) as u32, bytes));
        }
        let size =
            u32::try_from(at).map_err(|_| WasmError::unsupported("a vmctx larger than 4 GiB"))?;
        Ok(VmLayout {
            memories,
            globals,
            tables,
            data,
            size,
        })
    }

    /// Offset of memory `i`'s base address (the same in every instance, so the runtime can
    /// rewrite it without the instance's layout).
    pub fn memory_base(i: u32) -> u32 {
        16 * i
    }

    /// Offset of memory `i`'s bound (its accessible size in bytes).
    pub fn memory_bound(i: u32) -> u32 {
        16 * i + 8
    }

    /// Offset of global `i`'s value.
    pub fn global(&self, i: u32) -> u32 {
        16 * self.memories + 8 * i
    }

    /// Offset of table `i`'s first slot and its number of slots. A slot holds 0 for a null
    /// reference and `f + 1` for function `f`.
    pub fn table(&self, i: u32) -> (u32, u32) {
        self.tables[i as usize]
    }

    /// Offset of data segment `i`'s base address.
    pub fn data_base(&self, i: u32) -> u32 {
        self.data[i as usize].0
    }

    /// Offset of data segment `i`'s length (an active segment's is 0: it is dropped by the
    /// end of instantiation).
    pub fn data_len(&self, i: u32) -> u32 {
        self.data[i as usize].0 + 8
    }

    /// Offset of data segment `i`'s dropped flag (nonzero once `data.drop` ran).
    pub fn data_dropped(&self, i: u32) -> u32 {
        self.data[i as usize].0 + 16
    }

    /// Offset and length of passive data segment `i`'s bytes; `None` for an active one.
    pub fn data_bytes(&self, i: u32) -> Option<(u32, u32)> {
        self.data[i as usize].1
    }

    /// Size in bytes.
    pub fn size(&self) -> u32 {
        self.size
    }
}
