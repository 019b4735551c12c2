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
#[cfg(all(unix, feature = "fuzz"))]
pub mod fuzz;
pub mod module;
#[cfg(all(unix, feature = "cranelift"))]
pub mod pcc;
#[cfg(all(unix, feature = "peers"))]
pub mod peers;
#[cfg(unix)]
pub mod program;
pub mod runtime;
pub mod script;
pub mod translate;
#[cfg(unix)]
pub mod wasi;

pub use config::{MemoryConfig, MemoryPlan};

use crate::ir::TrapCode;
use std::fmt;

/// The execution paths a Wasm module can run on here ([`engine`]'s targets): the interpreter
/// on the fused or the legalized form, our backends that run on this host, and real
/// Cranelift.
pub fn targets() -> Vec<&'static str> {
    let mut t = vec!["interp", "interp-legalized"];
    t.extend(
        crate::isa::Backend::runnable(false)
            .iter()
            .map(|b| b.name()),
    );
    if cfg!(all(unix, feature = "cranelift")) {
        t.push("cranelift");
    }
    t
}

/// The engine of execution path `target`, with the legalizer's `settings` (their Spectre
/// setting for our backends and real Cranelift too), `pcc` for our backends, and the
/// interpreter's instruction budget per call (`None`: its default, which catches endless
/// loops in scripts).
pub fn engine(
    target: &str,
    settings: crate::legalize::Settings,
    pcc: bool,
    fuel: Option<u64>,
) -> Result<Box<dyn runtime::Engine>, String> {
    use runtime::InterpreterEngine;
    match target {
        "interp" => Ok(Box::new(InterpreterEngine::fused().with_fuel(fuel))),
        "interp-legalized" => Ok(Box::new(
            InterpreterEngine::legalized(settings).with_fuel(fuel),
        )),
        t if crate::isa::COMPILE_TARGETS.contains(&t) => {
            let backend = crate::isa::Backend::for_target(t, settings.spectre)?.with_pcc(pcc);
            Ok(Box::new(backend::BackendEngine::new(backend)?))
        }
        #[cfg(all(unix, feature = "cranelift"))]
        "cranelift" => Ok(Box::new(cranelift::CraneliftEngine::new(settings.spectre)?)),
        t => Err(format!(
            "unknown target `{t}` (known: {})",
            targets().join(", ")
        )),
    }
}

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
    /// A table index outside the table (`call_indirect`, the table instructions, element
    /// segments).
    pub const TABLE_OUT_OF_BOUNDS: TrapCode = user(2);
    /// `call_indirect` to a function of another type.
    pub const BAD_SIGNATURE: TrapCode = user(3);
    /// `call_indirect` through a null table entry.
    pub const INDIRECT_CALL_TO_NULL: TrapCode = user(4);
    /// An imported function did not return: the code that called it traps with this, and
    /// the store reports the imported function's own trap instead (it is never a Wasm
    /// trap of its own).
    pub const IMPORT_TRAPPED: TrapCode = user(5);
    /// WASI's `proc_exit` ended the program (the host knows the exit code); not a trap of
    /// the program.
    pub const EXIT: TrapCode = user(6);

    const fn user(n: u8) -> TrapCode {
        match TrapCode::user(n) {
            Some(c) => c,
            None => panic!("user trap codes are 1..=250"),
        }
    }
}

/// The message the Wasm spec scripts use for a trap, or `None` for a code no Wasm trap has.
pub fn trap_message(code: TrapCode) -> Option<&'static str> {
    trap_messages(code).first().copied()
}

/// Every message the Wasm spec scripts use for a trap, the usual one first. A table index
/// past the end is one trap (as in Wasmtime), which the scripts call "undefined element"
/// for `call_indirect` and "out of bounds table access" for the table instructions.
pub fn trap_messages(code: TrapCode) -> &'static [&'static str] {
    match code {
        TrapCode::HEAP_OUT_OF_BOUNDS => &["out of bounds memory access"],
        TrapCode::INTEGER_DIVISION_BY_ZERO => &["integer divide by zero"],
        TrapCode::INTEGER_OVERFLOW => &["integer overflow"],
        TrapCode::BAD_CONVERSION_TO_INTEGER => &["invalid conversion to integer"],
        TrapCode::STACK_OVERFLOW => &["call stack exhausted"],
        traps::UNREACHABLE => &["unreachable"],
        traps::TABLE_OUT_OF_BOUNDS => &["out of bounds table access", "undefined element"],
        traps::BAD_SIGNATURE => &["indirect call type mismatch"],
        traps::INDIRECT_CALL_TO_NULL => &["uninitialized element"],
        _ => &[],
    }
}

/// Where things live in an instance's vmctx. Every slot is 8 bytes; f32 and i32 globals use
/// the low bytes of theirs (little-endian).
///
/// First come a base and a bound for each memory and then for each table: a table is a
/// linear memory of 8-byte pages (one reference each) that the runtime keeps and grows like
/// any memory, so `table.get` and `table.set` are the bounds-checked instruction too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmLayout {
    memories: u32,
    tables: u32,
    /// The globals in cells of their own ([`module::Module::global_cells`]), in order.
    cells: Vec<u32>,
    data: Vec<SegmentSlots>,
    elems: Vec<SegmentSlots>,
    func_refs: u32,
    call_area: u32,
    size: u32,
}

/// The data segments or the element segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentKind {
    /// Data segments (`memory.init`, `data.drop`): bytes.
    Data,
    /// Element segments (`table.init`, `elem.drop`): 8-byte references.
    Elem,
}

/// Where one segment lives in the vmctx. Each segment is a small read-only memory for
/// `memory.init` or `table.init`: its base, its length in bytes and whether it was dropped
/// in three fields, and a passive one's contents in the vmctx itself, which every engine
/// already maps. (A drop sets the flag and leaves the length: code never writes a field
/// that holds a declared bound, which PCC checks.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentSlots {
    /// Offset of the base address.
    pub base: u32,
    /// Offset of the length in bytes (an active segment's is 0: it is dropped by the end of
    /// instantiation).
    pub len: u32,
    /// Offset of the dropped flag (nonzero once dropped).
    pub dropped: u32,
    /// Offset and length in bytes of a passive segment's contents; `None` otherwise.
    pub contents: Option<(u32, u32)>,
}

impl VmLayout {
    /// The layout for a module.
    pub fn new(module: &module::Module) -> Result<VmLayout, WasmError> {
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let (memories, tables) = (count(module.memories.len()), count(module.tables.len()));
        let cells = module.global_cells();
        let regions = u64::from(memories) + u64::from(tables) + cells.len() as u64;
        let globals = count(module.globals.len());
        let func_refs = regions * 16 + u64::from(globals) * 8;
        let mut at = func_refs + 8;
        let data = module
            .passive_data
            .iter()
            .map(|d| d.as_ref().map(|b| b.len() as u64))
            .collect::<Vec<_>>();
        let elems = module
            .elems
            .iter()
            .map(|e| {
                let bytes = (e.items.len() as u64) << module::REF_SIZE_LOG2;
                (e.mode == module::ElemMode::Passive).then_some(bytes)
            })
            .collect::<Vec<_>>();
        let data = segments(&mut at, &data);
        let elems = segments(&mut at, &elems);
        // The call area holds the arguments, then the results, of any function called
        // through the host: an imported one, or another instance's through a table.
        let call_area = at;
        let values = module
            .types
            .iter()
            .flatten()
            .map(|ty| ty.params().len().max(ty.results().len()))
            .max()
            .unwrap_or(0);
        at += 8 * values as u64;
        let size =
            u32::try_from(at).map_err(|_| WasmError::unsupported("a vmctx larger than 4 GiB"))?;
        Ok(VmLayout {
            memories,
            tables,
            cells,
            data,
            elems,
            // Both below `size`.
            func_refs: func_refs as u32,
            call_area: call_area as u32,
            size,
        })
    }

    /// Offset of memory `i`'s base address (the same in every instance, so the runtime can
    /// rewrite it without the instance's layout). Table `t` is memory [`Self::table`]`(t)`.
    pub fn memory_base(i: u32) -> u32 {
        16 * i
    }

    /// Offset of memory `i`'s bound (its accessible size in bytes).
    pub fn memory_bound(i: u32) -> u32 {
        16 * i + 8
    }

    /// The memory index of table `t`, past the module's memories: its base and bound are
    /// [`Self::memory_base`] and [`Self::memory_bound`] of it, and `memory.grow` of it grows
    /// the table. A slot holds a reference as [`module::clif_type`] says.
    pub fn table(&self, t: u32) -> u32 {
        self.memories + t
    }

    /// The memory index of the cell global `g` lives in, past the tables, when it is shared
    /// with other instances (a mutable global that is imported or exported): a memory of
    /// one 8-byte page ([`config::global_cell_memory`]) that every instance using the
    /// global points to. `None` for a global in the vmctx ([`Self::global`]).
    pub fn global_cell(&self, g: u32) -> Option<u32> {
        let i = self.cells.iter().position(|&c| c == g)?;
        Some(self.memories + self.tables + i as u32)
    }

    /// The globals that live in cells, in the order of their memory indices.
    pub fn global_cells(&self) -> &[u32] {
        &self.cells
    }

    /// The number of memories, tables and global cells, each a base and a bound.
    pub fn regions(&self) -> u32 {
        self.memories + self.tables + self.cells.len() as u32
    }

    /// Offset of global `i`'s value (unused for a global in a cell).
    pub fn global(&self, i: u32) -> u32 {
        16 * self.regions() + 8 * i
    }

    /// Where segment `i` of `kind` lives.
    pub fn segment(&self, kind: SegmentKind, i: u32) -> SegmentSlots {
        match kind {
            SegmentKind::Data => self.data[i as usize],
            SegmentKind::Elem => self.elems[i as usize],
        }
    }

    /// Offset of the bits of a reference to the instance's function 0, less one: function
    /// `f`'s are that plus `f + 1` ([`module::func_ref_bits`]). References are store-wide,
    /// so any instance can tell its own functions from others' in a table they share.
    pub fn func_refs(&self) -> u32 {
        self.func_refs
    }

    /// Offset of the call area: where code that calls an imported function puts its
    /// arguments, and finds its results, 8 bytes each (f32 and i32 in the low bytes), for
    /// the host to pass on ([`crate::isa::Host::call_import`], [`crate::isa::Host::call_ref`]).
    pub fn call_area(&self) -> u32 {
        self.call_area
    }

    /// Size in bytes.
    pub fn size(&self) -> u32 {
        self.size
    }
}

/// Lays out segments of `lens` (a passive one's contents in bytes, `None` for the others)
/// from `at`: all their fields, then the contents of each passive one, 8-byte aligned.
fn segments(at: &mut u64, lens: &[Option<u64>]) -> Vec<SegmentSlots> {
    let fields = *at;
    *at += 24 * lens.len() as u64;
    let mut out = Vec::new();
    for (i, len) in lens.iter().enumerate() {
        let base = (fields + 24 * i as u64) as u32;
        let contents = len.map(|len| {
            let here = (*at as u32, len as u32);
            *at = (*at + len).next_multiple_of(8);
            here
        });
        out.push(SegmentSlots {
            base,
            len: base + 8,
            dropped: base + 16,
            contents,
        });
    }
    out
}
