//! The Wasm runtime: linear memories in real `mmap`ed reservations with `PROT_NONE` guards,
//! instances with their vmctx, instantiation (imports, globals, tables, data segments, the
//! start function) and `memory.grow`.
//!
//! Execution is behind [`Engine`]: the reference interpreter here, native engines elsewhere.
//! Every engine runs the same translated code against the same memories, so a test script
//! means the same thing on each.

use super::config::{table_memory, MemoryConfig, MemoryPlan, TABLE_LIMIT};
use super::module::{self, ConstOp, ElemMode, Module};
use super::translate::{self, Translation, MEMORY_GROW};
use super::{traps, SegmentKind, VmLayout, WasmError};
use crate::interpreter::{AddressSpace, DataValue, InterpError, Interpreter, Outcome, Trap};
use crate::ir::{types, Function, TrapCode, Type};
use crate::ir_verifier::verify_function;
use crate::isa::HOST_FUNCTIONS;
use crate::legalize::Settings;
use crate::native::Mapping;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};
use wasmparser::{ExternalKind, FuncType, GlobalType, MemoryType, TableType};

/// A linear memory: `size` accessible bytes at the start of a mapping whose remainder (the
/// rest of the reservation and the guard) is `PROT_NONE`.
pub struct LinearMemory {
    mapping: Mapping,
    size: u64,
    /// Bytes of the mapping that may become accessible without moving.
    capacity: u64,
    plan: MemoryPlan,
    may_move: bool,
    /// The memory's type, for import matching.
    pub ty: MemoryType,
}

impl LinearMemory {
    /// Creates a memory of type `ty` laid out by `config`.
    pub fn new(ty: MemoryType, config: &MemoryConfig) -> Result<LinearMemory, String> {
        let plan = config.plan(ty.memory64, ty.page_size_log2(), ty.initial, ty.maximum);
        // Without a reservation to rely on, a memory that may not move still gets the
        // configured reservation to grow into (code checks every access against the bound).
        // (Never more than the memory's maximum: a table, at most 80 MB, does not take a
        // whole 4 GiB reservation.)
        let capacity = plan.reservation.unwrap_or(if config.may_move {
            plan.min_bytes
        } else {
            let max = plan.max_bytes.unwrap_or(u64::MAX);
            config.reservation.min(max).max(plan.min_bytes)
        });
        let total = capacity
            .checked_add(plan.guard)
            .ok_or("reservation plus guard do not fit 64 bits")?;
        let mut mapping = Mapping::reserve(total)?;
        mapping.make_accessible(plan.min_bytes)?;
        Ok(LinearMemory {
            mapping,
            size: plan.min_bytes,
            capacity,
            plan,
            may_move: config.may_move,
            ty,
        })
    }

    /// The address of byte 0.
    pub fn base(&self) -> u64 {
        self.mapping.addr()
    }

    /// The accessible size in bytes (the bound).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The size in pages.
    pub fn pages(&self) -> u64 {
        self.size >> self.plan.page_size_log2
    }

    /// Grows by `delta` pages: the old size in pages, or `None` when the type's maximum,
    /// the fixed reservation or the host's memory do not allow it.
    pub fn grow(&mut self, delta: u64) -> Option<u64> {
        let old = self.pages();
        let new_size = u128::from(self.size) + (u128::from(delta) << self.plan.page_size_log2);
        let max = self.plan.max_bytes.map_or(u128::from(u64::MAX), u128::from);
        if new_size > max {
            return None;
        }
        let new_size = new_size as u64;
        if new_size <= self.capacity {
            self.mapping.make_accessible(new_size).ok()?;
        } else if self.may_move && self.plan.reservation.is_none() {
            // Move: a new mapping with room to grow, the old contents copied over.
            let capacity = new_size
                .max(self.capacity.saturating_mul(2))
                .min(self.plan.max_bytes.unwrap_or(u64::MAX).max(new_size));
            let mut mapping = Mapping::reserve(capacity.checked_add(self.plan.guard)?).ok()?;
            mapping.make_accessible(new_size).ok()?;
            // SAFETY: both ranges are accessible and distinct mappings.
            unsafe {
                std::ptr::copy_nonoverlapping(self.mapping.ptr, mapping.ptr, self.size as usize)
            };
            self.mapping = mapping;
            self.capacity = capacity;
        } else {
            return None;
        }
        self.size = new_size;
        Some(old)
    }

    /// Copies `bytes` to `offset`, or reports `heap_oob` (writing nothing) if they do not
    /// fit: data segments are checked before any byte is written.
    pub fn write(&mut self, offset: u64, bytes: &[u8]) -> Result<(), TrapCode> {
        let end = u128::from(offset) + bytes.len() as u128;
        if end > u128::from(self.size) {
            return Err(TrapCode::HEAP_OUT_OF_BOUNDS);
        }
        // SAFETY: `[offset, end)` is inside the accessible bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.mapping.ptr.add(offset as usize),
                bytes.len(),
            )
        };
        Ok(())
    }

    /// Reads `len` bytes at `offset`, if they are in bounds.
    pub fn read(&self, offset: u64, len: u64) -> Option<Vec<u8>> {
        let end = offset.checked_add(len)?;
        if end > self.size {
            return None;
        }
        let mut out = vec![0u8; len as usize];
        // SAFETY: `[offset, end)` is inside the accessible bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.mapping.ptr.add(offset as usize),
                out.as_mut_ptr(),
                out.len(),
            )
        };
        Some(out)
    }
}

/// Memories and who uses them, shared with the `memory.grow` host function.
#[derive(Default)]
pub struct Memories {
    memories: Vec<LinearMemory>,
    /// For each memory, the (vmctx address, memory index in that instance) of its users; a
    /// table's memory index follows the instance's memories ([`VmLayout::table`]).
    users: Vec<Vec<(u64, u32)>>,
    /// For each vmctx address, the store memory of each of the instance's memory indices
    /// (its memories, then its tables).
    by_vmctx: HashMap<u64, Vec<usize>>,
}

impl Memories {
    /// Store memory `id`.
    pub fn get(&self, id: usize) -> &LinearMemory {
        &self.memories[id]
    }

    /// Store memory `id`, to write (the host's own writes, such as WASI's).
    pub fn get_mut(&mut self, id: usize) -> &mut LinearMemory {
        &mut self.memories[id]
    }

    /// All memories with their ids.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &LinearMemory)> {
        self.memories.iter().enumerate()
    }

    /// The store memory behind memory `index` of the instance whose vmctx is at `vmctx`.
    pub fn resolve(&self, vmctx: u64, index: u32) -> Option<usize> {
        self.by_vmctx.get(&vmctx)?.get(index as usize).copied()
    }

    /// `memory.grow` from code: grows the memory and rewrites its base and bound in every
    /// vmctx that uses it. Returns the old size in pages, or -1.
    pub fn grow(&mut self, vmctx: u64, index: u32, delta: u64) -> Result<i64, String> {
        let id = self
            .resolve(vmctx, index)
            .ok_or_else(|| format!("memory.grow from an unknown vmctx {vmctx:#x}"))?;
        let Some(old) = self.memories[id].grow(delta) else {
            return Ok(-1);
        };
        self.publish(id);
        Ok(old as i64)
    }

    /// Writes memory `id`'s base and bound into its users' vmctx.
    fn publish(&self, id: usize) {
        let m = &self.memories[id];
        for &(vmctx, index) in &self.users[id] {
            let base = vmctx + u64::from(VmLayout::memory_base(index));
            let bound = vmctx + u64::from(VmLayout::memory_bound(index));
            // SAFETY: `vmctx` is a live instance's vmctx mapping (instances unregister
            // themselves before they are freed), and the slots are inside it.
            unsafe {
                *(base as *mut u64) = m.base();
                *(bound as *mut u64) = m.size();
            }
        }
    }
}

/// The host name of store memory `id` in an interpreter's address space.
fn region_name(id: usize) -> String {
    format!("memory{id}")
}

/// An exported (or importable) item.
#[derive(Clone, Debug)]
pub enum Extern {
    /// Function `index` of instance `instance`.
    Func {
        /// The instance.
        instance: usize,
        /// Its Wasm function index.
        index: u32,
    },
    /// A function of the host.
    Host(Rc<HostFunction>),
    /// A store memory.
    Memory(usize),
    /// An immutable global's value and type.
    Global {
        /// The type.
        ty: GlobalType,
        /// The bits.
        bits: u64,
    },
    /// A mutable global shared between instances: the store memory of one 8-byte page its
    /// value lives in ([`super::config::global_cell_memory`]), and its type.
    MutableGlobal {
        /// The type.
        ty: GlobalType,
        /// The store memory.
        memory: usize,
    },
    /// A table: the store memory that holds it, and its type.
    Table {
        /// The store memory.
        memory: usize,
        /// Its type (the element type and declared limits).
        ty: TableType,
    },
}

/// A function the host gives modules to import (the spectest module's `print_*`).
pub struct HostFunction {
    /// Its type, which an import must have exactly.
    pub ty: FuncType,
    /// Runs it: the store, the calling instance and the arguments give the results, or a
    /// trap.
    #[allow(clippy::type_complexity)]
    pub run: Box<dyn Fn(&Store, usize, &[DataValue]) -> Result<Vec<DataValue>, Trap>>,
}

impl std::fmt::Debug for HostFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "host function {}", self.ty)
    }
}

/// What an imported function resolved to at instantiation.
#[derive(Clone, Debug)]
enum Callee {
    /// Function `index` of instance `instance`.
    Wasm { instance: usize, index: u32 },
    /// A host function.
    Host(Rc<HostFunction>),
}

/// Why instantiation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InstantiationError {
    /// An import is missing or does not match (the spec's "unlinkable").
    Link(String),
    /// Initialisation or the start function trapped.
    Trap(TrapCode),
    /// The module cannot be handled (unsupported feature, resources).
    Other(String),
}

impl std::fmt::Display for InstantiationError {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            InstantiationError::Link(m) => write!(f, "link error: {m}"),
            InstantiationError::Trap(c) => write!(f, "trap during instantiation: {c}"),
            InstantiationError::Other(m) => f.write_str(m),
        }
    }
}

/// An instantiated module.
pub struct Instance {
    /// The translated code.
    pub translation: Arc<Translation>,
    vmctx: Mapping,
    /// Store memory of each memory index.
    pub memories: Vec<usize>,
    /// Store memory of each table index (a table is a memory of 8-byte pages).
    pub tables: Vec<usize>,
    /// Store memory of each global cell ([`VmLayout::global_cell`]).
    cells: Vec<usize>,
    /// Function types, by function index.
    pub func_types: Vec<FuncType>,
    /// What each imported function (the first function indices) resolved to.
    imports: Vec<Callee>,
    /// The bits of a reference to function 0, less one ([`module::func_ref_bits`]).
    func_refs: u64,
    /// The module's function types, by type index (`call_indirect` names one).
    types: Vec<Option<FuncType>>,
    /// Global types, by global index.
    pub global_types: Vec<GlobalType>,
    /// Exports by name.
    pub exports: HashMap<String, (ExternalKind, u32)>,
    /// Function names from the module's name section.
    pub names: HashMap<u32, String>,
}

impl Instance {
    /// The address of the vmctx, the first argument of every function.
    pub fn vmctx(&self) -> u64 {
        self.vmctx.addr()
    }

    /// The store memory behind memory index `m` of the vmctx: a memory, a table or a
    /// global cell.
    fn region(&self, m: u32) -> usize {
        let m = m as usize;
        let (memories, tables) = (self.memories.len(), self.tables.len());
        match m {
            _ if m < memories => self.memories[m],
            _ if m < memories + tables => self.tables[m - memories],
            _ => self.cells[m - memories - tables],
        }
    }

    fn slot(&self, offset: u32) -> *mut u64 {
        (self.vmctx.addr() + u64::from(offset)) as *mut u64
    }
}

/// What an engine's `load` kept for `instance`, or the error for one it never loaded.
pub(crate) fn loaded<T>(by_instance: &HashMap<usize, T>, instance: usize) -> Result<&T, String> {
    by_instance
        .get(&instance)
        .ok_or_else(|| format!("instance {instance} was not loaded"))
}

/// The store as running code's host: `memory.grow` on the store's memories, and calls to
/// imported functions (which may run code of other instances on the same engine).
pub struct StoreHost<'a>(&'a Store);

impl StoreHost<'_> {
    /// The store's memories.
    pub fn memories(&self) -> &Arc<Mutex<Memories>> {
        &self.0.memories
    }
}

impl crate::isa::Host for StoreHost<'_> {
    fn memory_grow(&mut self, vmctx: u64, index: u32, delta: u64) -> Result<i64, String> {
        lock(&self.0.memories).grow(vmctx, index, delta)
    }

    fn call_import(&mut self, vmctx: u64, index: u32) -> Result<bool, String> {
        self.0.call_import(vmctx, index)
    }

    fn call_ref(&mut self, vmctx: u64, type_index: u32, bits: u64) -> Result<bool, String> {
        self.0.call_ref(vmctx, type_index, bits)
    }
}

/// How translated code runs. An engine sees every instance's translation once, when it is
/// instantiated, and is then asked to call its functions.
pub trait Engine {
    /// A short name for reports (`interp`, `cranelift-x86_64`, ...).
    fn name(&self) -> String;

    /// Prepares the functions of instance `instance` (compiles them, for a native engine).
    fn load(&mut self, instance: usize, translation: &Translation) -> Result<(), String>;

    /// Calls Wasm function `index` of `instance` with the vmctx first in `args`; the code
    /// reaches the store through `host`. (A call to an imported function calls the engine
    /// again, with the outer call still running, possibly into the same instance: a call
    /// keeps what it mutates to itself.)
    fn call(
        &self,
        instance: usize,
        translation: &Translation,
        index: u32,
        args: &[DataValue],
        host: &mut StoreHost,
    ) -> Result<Outcome, String>;

    /// Bytes of machine code (or bytecode) of `instance`, for engines that compile.
    fn code_size(&self, _instance: usize) -> Option<usize> {
        None
    }
}

/// Runs translated code on the reference interpreter. Linear memories and vmctx are the
/// runtime's real mappings, made visible to the interpreter at their real addresses.
///
/// With `legalize` set, each function is first expanded by the legalizer (the exploded CLIF
/// real Cranelift would compile, with the Spectre setting of those settings), so a script
/// also checks the legalizer; otherwise the fused instructions run as they are.
#[derive(Default)]
pub struct InterpreterEngine {
    /// The instruction budget of each call.
    pub fuel: Option<u64>,
    /// Legalize before running.
    pub legalize: Option<Settings>,
    prepared: HashMap<usize, Vec<Function>>,
}

impl InterpreterEngine {
    /// Runs the translated (fused) code.
    pub fn fused() -> Self {
        InterpreterEngine::default()
    }

    /// Runs the legalized code.
    pub fn legalized(settings: Settings) -> Self {
        InterpreterEngine {
            legalize: Some(settings),
            ..InterpreterEngine::default()
        }
    }

    /// With an instruction budget per call of `fuel` (`None`: the interpreter's default).
    pub fn with_fuel(self, fuel: Option<u64>) -> Self {
        InterpreterEngine { fuel, ..self }
    }
}

/// The functions of a translation as an engine compiles or runs them: verified (a failure is
/// a translator bug), then, with `legalize`, legalized and verified again.
pub fn prepared_functions(
    translation: &Translation,
    legalize: Option<&Settings>,
) -> Result<Vec<Function>, String> {
    let mut functions = translation.functions.clone();
    for f in &mut functions {
        verify_function(f, types::I64).map_err(|e| {
            format!(
                "translated {} does not verify: {}\n{f}",
                f.name, e[0].message
            )
        })?;
        if let Some(settings) = legalize {
            crate::legalize::legalize(f, settings);
            verify_function(f, types::I64).map_err(|e| {
                format!(
                    "legalized {} does not verify: {}\n{f}",
                    f.name, e[0].message
                )
            })?;
        }
    }
    Ok(functions)
}

impl Engine for InterpreterEngine {
    fn name(&self) -> String {
        match &self.legalize {
            None => "interp".into(),
            Some(s) => format!(
                "interp-legalized (spectre {})",
                if s.spectre { "on" } else { "off" }
            ),
        }
    }

    fn load(&mut self, instance: usize, translation: &Translation) -> Result<(), String> {
        let functions = prepared_functions(translation, self.legalize.as_ref())?;
        self.prepared.insert(instance, functions);
        Ok(())
    }

    fn call(
        &self,
        instance: usize,
        translation: &Translation,
        index: u32,
        args: &[DataValue],
        host: &mut StoreHost,
    ) -> Result<Outcome, String> {
        let functions = loaded(&self.prepared, instance)?;
        let mut interp = Interpreter::new(functions, types::I64);
        if let Some(fuel) = self.fuel {
            interp.set_fuel(fuel);
        }
        let vmctx = args[0].bits;
        let memories = host.memories();
        // SAFETY: the vmctx mapping outlives this call and has exactly these bytes.
        unsafe {
            interp
                .memory
                .map_host("vmctx", vmctx, u64::from(translation.layout.size()))
                .map_err(|e| e.0)?;
        }
        map_memories(&mut interp.memory, &lock(memories));
        // Each host function may grow (and move) a memory this code sees, itself or in the
        // code of another instance it calls: the memories are mapped afresh after it.
        for name in HOST_FUNCTIONS {
            let shared = Arc::clone(memories);
            let store = SendStore(host.0);
            interp.register_host(
                name,
                Box::new(move |space: &mut AddressSpace, args: &[DataValue]| {
                    let store = &store;
                    let bits: Vec<u64> = args.iter().map(|a| a.bits).collect();
                    let result = crate::isa::call_host(&mut StoreHost(store.0), name, &bits)
                        .map_err(|e| Trap {
                            code: match name {
                                MEMORY_GROW => TrapCode::HEAP_OUT_OF_BOUNDS,
                                _ => traps::IMPORT_TRAPPED,
                            },
                            location: e,
                        })?;
                    map_memories(space, &lock(&shared));
                    // (The call masks the bits to its result's type.)
                    Ok(vec![DataValue::new(types::I64, result)])
                }),
            );
        }
        let name = translate::func_name(index);
        interp.call(&name, args).map_err(|e: InterpError| e.0)
    }
}

/// The store, taken into the interpreter's thread for calls to imported functions.
struct SendStore<'a>(&'a Store);

// SAFETY: the interpreter's thread is scoped, and the thread that spawns it waits in `join`
// for all of its life: the store is only ever used by one thread at a time, and the spawn
// and the join order those uses. (A store is not `Sync` because of what it may hold for
// the calling thread, such as a native engine's code; the interpreter engine's calls use
// none of that.)
unsafe impl Send for SendStore<'_> {}

/// Maps every store memory into `space` at its real address, as large as it is now: the
/// interpreter faults exactly where the hardware would.
fn map_memories(space: &mut AddressSpace, mems: &Memories) {
    for (id, m) in mems.iter() {
        let name = region_name(id);
        space.unmap(&name);
        if m.size() > 0 {
            // SAFETY: the memories outlive the call, and their accessible bytes are
            // exactly what is mapped.
            let _ = unsafe { space.map_host(&name, m.base(), m.size()) };
        }
    }
}

fn lock(m: &Arc<Mutex<Memories>>) -> MutexGuard<'_, Memories> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// How many calls through the host (to imported functions, or through another instance's
/// references) may be in progress at once: each runs nested in its caller on the host's
/// stack (and on the interpreter, on a thread of its own), so recursion between instances
/// ends in a `stk_ovf` trap here rather than in an overflow of the host.
pub const MAX_NESTED_CALLS: usize = 100;

/// The stack a call through the host leaves for the host's own frames: with less than this
/// left, the call is a `stk_ovf` trap instead (generated code that overflows the stack
/// traps, but the host's frames would crash).
pub const HOST_STACK_RESERVE: usize = 256 << 10;

/// Bytes of stack left on this thread, where the platform says.
fn stack_left() -> Option<usize> {
    #[cfg(unix)]
    return crate::native::stack_left();
    #[cfg(not(unix))]
    None
}

/// All instances and memories of one script or program, and the engine running them.
pub struct Store {
    /// The memory configuration every memory and translation follows.
    pub config: MemoryConfig,
    memories: Arc<Mutex<Memories>>,
    instances: Vec<Instance>,
    engine: Box<dyn Engine>,
    /// The type of each store memory that is a table.
    table_types: HashMap<usize, TableType>,
    /// Calls through the host in progress (see [`MAX_NESTED_CALLS`]).
    nested: std::cell::Cell<usize>,
    /// How the innermost imported function that did not return ended (a trap, or an
    /// error), until the call it was made from reports it.
    unreturned: std::cell::RefCell<Option<Result<Outcome, String>>>,
}

impl Store {
    /// An empty store.
    pub fn new(config: MemoryConfig, engine: Box<dyn Engine>) -> Store {
        Store {
            config,
            memories: Arc::default(),
            instances: Vec::new(),
            engine,
            table_types: HashMap::new(),
            nested: Default::default(),
            unreturned: Default::default(),
        }
    }

    /// The engine's name.
    pub fn engine_name(&self) -> String {
        self.engine.name()
    }

    /// Instance `i`.
    pub fn instance(&self, i: usize) -> &Instance {
        &self.instances[i]
    }

    /// Creates a memory owned by the host (the spectest module's).
    pub fn create_memory(&mut self, ty: MemoryType) -> Result<usize, String> {
        let m = LinearMemory::new(ty, &self.config)?;
        let mut mems = lock(&self.memories);
        mems.memories.push(m);
        mems.users.push(Vec::new());
        Ok(mems.memories.len() - 1)
    }

    /// Creates a table (a memory of 8-byte pages, [`table_memory`]) of type `ty`.
    pub fn create_table(&mut self, ty: TableType) -> Result<usize, String> {
        let id = self.create_memory(table_memory(&ty))?;
        self.table_types.insert(id, ty);
        Ok(id)
    }

    /// Runs `f` with the memories.
    pub fn with_memories<R>(&self, f: impl FnOnce(&mut Memories) -> R) -> R {
        f(&mut lock(&self.memories))
    }

    /// Instantiates a module: `imports` resolves each import by module and field name.
    pub fn instantiate(
        &mut self,
        bytes: &[u8],
        imports: &dyn Fn(&str, &str) -> Option<Extern>,
    ) -> Result<usize, InstantiationError> {
        let module = module::parse(bytes).map_err(|e| InstantiationError::Other(e.to_string()))?;
        self.instantiate_module(&module, imports)
    }

    /// Instantiates a parsed module.
    pub fn instantiate_module(
        &mut self,
        module: &Module,
        imports: &dyn Fn(&str, &str) -> Option<Extern>,
    ) -> Result<usize, InstantiationError> {
        let other = |e: WasmError| InstantiationError::Other(e.to_string());
        // Link first: a module whose imports do not match is unlinkable, whatever else.
        let mut memory_ids = Vec::new();
        let mut imported_globals = Vec::new();
        for m in &module.memories {
            let Some(import) = &m.import else { continue };
            match imports(&import.module, &import.field) {
                Some(Extern::Memory(id)) => {
                    let mems = lock(&self.memories);
                    let actual = mems.get(id);
                    if !memory_matches(actual, &m.ty) {
                        return Err(incompatible(&import.module, &import.field, ""));
                    }
                    memory_ids.push(id);
                }
                Some(_) => return Err(link_kind(&import.module, &import.field)),
                None => return Err(unknown_import(&import.module, &import.field)),
            }
        }
        let mut cell_ids = Vec::new();
        for g in &module.globals {
            let Some(import) = &g.import else { continue };
            match imports(&import.module, &import.field) {
                // A mutable global shared with the host would need a cell of the host's.
                Some(Extern::Global { ty, bits }) if ty == g.ty && !ty.mutable => {
                    imported_globals.push(bits)
                }
                Some(Extern::MutableGlobal { ty, memory }) if ty == g.ty => {
                    imported_globals.push(self.cell_value(memory));
                    cell_ids.push(memory);
                }
                Some(Extern::Global { .. } | Extern::MutableGlobal { .. }) => {
                    return Err(incompatible(&import.module, &import.field, ""));
                }
                Some(_) => return Err(link_kind(&import.module, &import.field)),
                None => return Err(unknown_import(&import.module, &import.field)),
            }
        }
        let mut callees = Vec::new();
        for f in &module.funcs {
            let Some(import) = &f.import else { continue };
            let (callee, ty) = match imports(&import.module, &import.field) {
                Some(Extern::Func { instance, index }) => {
                    let ty = &self.instances[instance].func_types[index as usize];
                    (Callee::Wasm { instance, index }, ty.clone())
                }
                Some(Extern::Host(h)) => {
                    let ty = h.ty.clone();
                    (Callee::Host(h), ty)
                }
                Some(_) => return Err(link_kind(&import.module, &import.field)),
                None => return Err(unknown_import(&import.module, &import.field)),
            };
            if ty != f.ty {
                return Err(incompatible(&import.module, &import.field, ""));
            }
            callees.push(callee);
        }
        let mut table_ids = Vec::new();
        for t in &module.tables {
            let Some(import) = &t.import else { continue };
            match imports(&import.module, &import.field) {
                Some(Extern::Table { memory, ty }) => {
                    let mems = lock(&self.memories);
                    if !table_matches(mems.get(memory), &ty, &t.ty) {
                        return Err(incompatible(&import.module, &import.field, ""));
                    }
                    table_ids.push(memory);
                }
                Some(_) => return Err(link_kind(&import.module, &import.field)),
                None => return Err(unknown_import(&import.module, &import.field)),
            }
        }

        let translation = translate::translate_module(module, &self.config).map_err(other)?;
        let layout: &VmLayout = &translation.layout;
        for m in module.memories.iter().filter(|m| m.import.is_none()) {
            let id = self
                .create_memory(m.ty)
                .map_err(InstantiationError::Other)?;
            memory_ids.push(id);
        }
        // Each table is a memory of 8-byte pages, after the memories in the vmctx.
        for t in module.tables.iter().filter(|t| t.import.is_none()) {
            if t.ty.initial > TABLE_LIMIT {
                return Err(InstantiationError::Other(format!(
                    "a table of {} elements is more than this runtime's limit of {TABLE_LIMIT}",
                    t.ty.initial
                )));
            }
            let id = self.create_table(t.ty).map_err(InstantiationError::Other)?;
            table_ids.push(id);
        }
        // Each mutable global that other instances may use is a memory of one 8-byte page,
        // after the tables.
        for &g in layout.global_cells() {
            if module.globals[g as usize].import.is_none() {
                let id = self
                    .create_memory(super::config::global_cell_memory())
                    .map_err(InstantiationError::Other)?;
                cell_ids.push(id);
            }
        }
        let vmctx = Mapping::reserve(u64::from(layout.size()).max(8))
            .and_then(|mut m| m.make_accessible(u64::from(layout.size())).map(|_| m))
            .map_err(InstantiationError::Other)?;
        let instance = Instance {
            translation: Arc::new(translation),
            vmctx,
            memories: memory_ids,
            tables: table_ids,
            cells: cell_ids,
            func_types: module.funcs.iter().map(|f| f.ty.clone()).collect(),
            func_refs: self.next_func_refs(),
            types: module.types.clone(),
            imports: callees,
            global_types: module.globals.iter().map(|g| g.ty).collect(),
            exports: module
                .exports
                .iter()
                .map(|e| (e.name.clone(), (e.kind, e.index)))
                .collect(),
            names: module.names.clone(),
        };
        let layout = instance.translation.layout.clone();
        let vmctx_addr = instance.vmctx();
        let refs = instance.func_refs;
        // SAFETY: the slot is inside the vmctx mapping.
        unsafe { *instance.slot(layout.func_refs()) = refs };
        // Globals, in order: an initialiser may read imported globals.
        let mut values: Vec<u64> = Vec::new();
        let mut imported = imported_globals.into_iter();
        for g in &module.globals {
            let bits = if g.import.is_some() {
                imported.next().unwrap_or_default()
            } else {
                eval_const(&g.init, &values, refs).map_err(other)?
            };
            values.push(bits);
        }
        for (i, &bits) in values.iter().enumerate() {
            let g = &module.globals[i];
            match layout.global_cell(i as u32) {
                // An imported cell keeps its value.
                Some(_) if g.import.is_some() => {}
                Some(m) => {
                    let id = instance.region(m);
                    lock(&self.memories).memories[id]
                        .write(0, &bits.to_le_bytes())
                        .map_err(InstantiationError::Trap)?;
                }
                // SAFETY: the slot is inside the vmctx mapping.
                None => unsafe { *instance.slot(layout.global(i as u32)) = bits },
            }
        }
        // Tables start with their initial value in every element.
        for (t, table) in module.tables.iter().enumerate() {
            if table.import.is_some() {
                continue;
            }
            let init = eval_const(&table.init, &values, refs).map_err(other)?;
            if init == 0 {
                continue; // New memory is zeroed: null already.
            }
            let bytes = init.to_le_bytes().repeat(table.ty.initial as usize);
            let id = instance.tables[t];
            lock(&self.memories).memories[id]
                .write(0, &bytes)
                .map_err(InstantiationError::Trap)?;
        }
        // Segments for `memory.init` and `table.init`: a passive one's contents inside the
        // vmctx, its base and length in its fields. The others are dropped by the end of
        // instantiation: length 0 (their base is then never read past).
        let elems = module
            .elems
            .iter()
            .map(|e| match e.mode {
                ElemMode::Passive => elem_contents(e, &values, refs).map(Some),
                _ => Ok(None),
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(other)?;
        let segments = [
            (SegmentKind::Data, &module.passive_data),
            (SegmentKind::Elem, &elems),
        ];
        for (kind, contents) in segments {
            for (i, seg) in contents.iter().enumerate() {
                let slots = layout.segment(kind, i as u32);
                let (base, len) = match (seg, slots.contents) {
                    (Some(bytes), Some((off, len))) => {
                        let at = instance.vmctx() + u64::from(off);
                        // SAFETY: the layout reserved `len` bytes at `off` inside the vmctx.
                        unsafe {
                            std::ptr::copy_nonoverlapping(
                                bytes.as_ptr(),
                                at as *mut u8,
                                len as usize,
                            )
                        };
                        (at, u64::from(len))
                    }
                    _ => (instance.vmctx(), 0),
                };
                // SAFETY: the slots are inside the vmctx mapping.
                unsafe {
                    *instance.slot(slots.base) = base;
                    *instance.slot(slots.len) = len;
                    *instance.slot(slots.dropped) = 0;
                }
            }
        }
        let index = self.instances.len();
        self.instances.push(instance);
        // Only now, with the instance owned by the store (which unregisters it when it is
        // dropped), does the vmctx become a user of its memories: an error before this
        // point frees the vmctx, and a later `memory.grow` must not write into it.
        {
            let instance = &self.instances[index];
            // Memory indices of the vmctx: the memories, the tables, the global cells.
            let regions: Vec<usize> = (0..instance.translation.layout.regions())
                .map(|m| instance.region(m))
                .collect();
            let mut mems = lock(&self.memories);
            for (index, &id) in regions.iter().enumerate() {
                mems.users[id].push((vmctx_addr, index as u32));
            }
            for &id in &regions {
                mems.publish(id);
            }
            mems.by_vmctx.insert(vmctx_addr, regions);
        }

        self.engine
            .load(index, &self.instances[index].translation)
            .map_err(InstantiationError::Other)?;
        let instance = &self.instances[index];

        // Element segments, then data segments, in order; the first that does not fit
        // traps, and what earlier segments wrote stays written.
        for seg in &module.elems {
            let ElemMode::Active { table, offset } = &seg.mode else {
                continue;
            };
            let offset = eval_const(offset, &values, refs).map_err(other)? as u32;
            let items = elem_contents(seg, &values, refs).map_err(other)?;
            let id = instance.tables[*table as usize];
            lock(&self.memories).memories[id]
                .write(u64::from(offset) << module::REF_SIZE_LOG2, &items)
                .map_err(|_| InstantiationError::Trap(super::traps::TABLE_OUT_OF_BOUNDS))?;
        }
        for seg in &module.data {
            let offset = eval_const(&seg.offset, &values, refs).map_err(other)?;
            let memory64 = module.memories[seg.memory as usize].ty.memory64;
            let offset = if memory64 {
                offset
            } else {
                offset & 0xffff_ffff
            };
            let id = instance.memories[seg.memory as usize];
            lock(&self.memories).memories[id]
                .write(offset, &seg.bytes)
                .map_err(InstantiationError::Trap)?;
        }
        if let Some(start) = module.start {
            match self.call(index, start, &[]) {
                Ok(Outcome::Returned(_)) => {}
                Ok(Outcome::Trapped(t)) => return Err(InstantiationError::Trap(t.code)),
                Err(e) => return Err(InstantiationError::Other(e)),
            }
        }
        Ok(index)
    }

    /// Looks up an export of an instance.
    pub fn export(&self, instance: usize, name: &str) -> Option<Extern> {
        let inst = &self.instances[instance];
        let &(kind, index) = inst.exports.get(name)?;
        Some(match kind {
            ExternalKind::Func | ExternalKind::FuncExact => Extern::Func { instance, index },
            ExternalKind::Memory => Extern::Memory(inst.memories[index as usize]),
            ExternalKind::Global => {
                let ty = inst.global_types[index as usize];
                match inst.translation.layout.global_cell(index) {
                    Some(m) => Extern::MutableGlobal {
                        ty,
                        memory: inst.region(m),
                    },
                    None => {
                        let off = inst.translation.layout.global(index);
                        // SAFETY: the slot is inside the vmctx mapping.
                        let bits = unsafe { *inst.slot(off) };
                        let mask =
                            module::clif_type(ty.content_type).map_or(u64::MAX, |t| t.mask());
                        Extern::Global {
                            ty,
                            bits: bits & mask,
                        }
                    }
                }
            }
            ExternalKind::Table => {
                // The table's own type, whichever instance exports it.
                let memory = inst.tables[index as usize];
                Extern::Table {
                    memory,
                    ty: *self.table_types.get(&memory)?,
                }
            }
            _ => return None,
        })
    }

    /// The value of a global cell, the store memory `memory`.
    pub fn cell_value(&self, memory: usize) -> u64 {
        let bytes = lock(&self.memories).get(memory).read(0, 8);
        bytes.map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
    }

    /// Where the function references of `instance` start ([`module::func_ref_bits`]).
    pub fn func_refs(&self, instance: usize) -> u64 {
        self.instances[instance].func_refs
    }

    /// All export names of an instance.
    pub fn export_names(&self, instance: usize) -> Vec<String> {
        self.instances[instance].exports.keys().cloned().collect()
    }

    /// Calls Wasm function `index` of `instance` with the Wasm arguments `args`.
    pub fn call(&self, instance: usize, index: u32, args: &[DataValue]) -> Result<Outcome, String> {
        let inst = &self.instances[instance];
        let ty = &inst.func_types[index as usize];
        let want: Vec<Type> = ty
            .params()
            .iter()
            .map(|&t| module::clif_type(t).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        let got: Vec<Type> = args.iter().map(|a| a.ty).collect();
        if want != got {
            return Err(format!(
                "function {index} takes ({}) but was given ({})",
                Type::list(&want),
                Type::list(&got)
            ));
        }
        if self.nested.get() == 0 {
            // A call from outside: nothing that an earlier one left behind is its outcome.
            self.unreturned.take();
        }
        let mut full = vec![DataValue::new(types::I64, inst.vmctx())];
        full.extend_from_slice(args);
        let translation = Arc::clone(&inst.translation);
        let outcome =
            self.engine
                .call(instance, &translation, index, &full, &mut StoreHost(self))?;
        let Outcome::Trapped(mut t) = outcome else {
            return Ok(outcome);
        };
        t.location = self.named(instance, &t.location);
        if t.code != traps::IMPORT_TRAPPED {
            return Ok(Outcome::Trapped(t));
        }
        // The code trapped because a function it called through the host did not return:
        // report how that one ended, its backtrace continued by this call's.
        Ok(match self.unreturned.take() {
            Some(Ok(Outcome::Trapped(mut inner))) => {
                inner.location = format!(
                    "{}, called through the host from {}",
                    inner.location, t.location
                );
                Outcome::Trapped(inner)
            }
            Some(other) => return other,
            None => Outcome::Trapped(t),
        })
    }

    /// `location` with each function `u0:N` of `instance` also named as the module's name
    /// section names it: `u0:12 (partition)`.
    fn named(&self, instance: usize, location: &str) -> String {
        let names = &self.instances[instance].names;
        let mut out = String::new();
        let mut rest = location;
        while let Some(at) = rest.find("u0:") {
            let digits: String = rest[at + 3..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            let end = at + 3 + digits.len();
            out.push_str(&rest[..end]);
            if let Some(name) = digits.parse::<u32>().ok().and_then(|i| names.get(&i)) {
                out.push_str(&format!(" ({name})"));
            }
            rest = &rest[end..];
        }
        out.push_str(rest);
        out
    }

    /// [`crate::isa::Host::call_import`]: calls imported function `index` of the instance
    /// whose vmctx is `vmctx`.
    fn call_import(&self, vmctx: u64, index: u32) -> Result<bool, String> {
        self.call_from(vmctx, |caller, inst| {
            match (
                inst.imports.get(index as usize),
                inst.func_types.get(index as usize),
            ) {
                (Some(callee), Some(ty)) => Ok((ty.clone(), Ok(callee.clone()))),
                _ => Err(format!(
                    "instance {caller} has no imported function {index}"
                )),
            }
        })
    }

    /// [`crate::isa::Host::call_ref`]: `call_indirect` of reference `bits` with type
    /// `type_index` of the instance whose vmctx is `vmctx`.
    fn call_ref(&self, vmctx: u64, type_index: u32, bits: u64) -> Result<bool, String> {
        self.call_from(vmctx, |caller, inst| {
            let Some(Some(ty)) = inst.types.get(type_index as usize) else {
                return Err(format!(
                    "instance {caller} has no function type {type_index}"
                ));
            };
            let callee = match self.func_ref(bits) {
                _ if bits == 0 => Err(traps::INDIRECT_CALL_TO_NULL),
                Some((instance, index))
                    if self.instances[instance].func_types[index as usize] == *ty =>
                {
                    Ok(Callee::Wasm { instance, index })
                }
                _ => Err(traps::BAD_SIGNATURE),
            };
            Ok((ty.clone(), callee))
        })
    }

    /// The instance and function a reference names.
    fn func_ref(&self, bits: u64) -> Option<(usize, u32)> {
        self.instances.iter().enumerate().find_map(|(i, inst)| {
            let f = bits.checked_sub(inst.func_refs + 1)?;
            (f < inst.func_types.len() as u64).then_some((i, f as u32))
        })
    }

    /// Where the next instance's function references start.
    fn next_func_refs(&self) -> u64 {
        self.instances
            .last()
            .map_or(0, |i| i.func_refs + i.func_types.len() as u64)
    }

    /// A call that the code of the instance whose vmctx is `vmctx` makes through the host:
    /// `resolve` names the function type and the callee (or the trap instead of a call);
    /// the arguments come from the caller's call area and the results go there. `true`
    /// when the callee returned; otherwise how it ended is kept for [`Store::call`] to
    /// report once the caller, seeing `false`, has trapped in turn.
    fn call_from(
        &self,
        vmctx: u64,
        resolve: impl FnOnce(usize, &Instance) -> Result<(FuncType, Result<Callee, TrapCode>), String>,
    ) -> Result<bool, String> {
        let depth = self.nested.get();
        let left = stack_left();
        let outcome = if depth >= MAX_NESTED_CALLS || left.is_some_and(|l| l < HOST_STACK_RESERVE) {
            Ok(Outcome::Trapped(Trap {
                code: TrapCode::STACK_OVERFLOW,
                location: format!(
                    "{depth} nested calls through the host, with {} KiB of stack left",
                    left.unwrap_or(0) >> 10
                ),
            }))
        } else {
            self.nested.set(depth + 1);
            let outcome = self.run_from(vmctx, resolve);
            self.nested.set(depth);
            outcome
        };
        let returned = matches!(outcome, Ok(Outcome::Returned(_)));
        if !returned {
            *self.unreturned.borrow_mut() = Some(outcome);
        }
        Ok(returned)
    }

    fn run_from(
        &self,
        vmctx: u64,
        resolve: impl FnOnce(usize, &Instance) -> Result<(FuncType, Result<Callee, TrapCode>), String>,
    ) -> Result<Outcome, String> {
        let caller = self
            .instances
            .iter()
            .position(|i| i.vmctx() == vmctx)
            .ok_or_else(|| format!("a call through the host from an unknown vmctx {vmctx:#x}"))?;
        let inst = &self.instances[caller];
        let (ty, callee) = resolve(caller, inst)?;
        let area = inst.translation.layout.call_area();
        let slot = |i: usize| inst.slot(area + 8 * i as u32);
        let types = |tys: &[wasmparser::ValType]| {
            tys.iter()
                .map(|&t| module::clif_type(t).map_err(|e| e.to_string()))
                .collect::<Result<Vec<Type>, _>>()
        };
        let params = types(ty.params())?;
        let results = types(ty.results())?;
        let args: Vec<DataValue> = params
            .iter()
            .enumerate()
            // SAFETY: the layout sized the call area for every function type's values.
            .map(|(i, &t)| DataValue::new(t, unsafe { *slot(i) } & t.mask()))
            .collect();
        let trap = |code| {
            Outcome::Trapped(Trap {
                code,
                location: format!("a call through the host from instance {caller}"),
            })
        };
        let outcome = match callee {
            Err(code) => trap(code),
            Ok(Callee::Wasm { instance, index }) => self.call(instance, index, &args)?,
            Ok(Callee::Host(h)) => match (h.run)(self, caller, &args) {
                Ok(values) => Outcome::Returned(values),
                Err(trap) => Outcome::Trapped(trap),
            },
        };
        if let Outcome::Returned(values) = &outcome {
            let got: Vec<Type> = values.iter().map(|v| v.ty).collect();
            if got != results {
                return Err(format!(
                    "a function called through the host returned ({}) instead of ({})",
                    Type::list(&got),
                    Type::list(&results)
                ));
            }
            for (i, v) in values.iter().enumerate() {
                // SAFETY: as above.
                unsafe { *slot(i) = v.bits };
            }
        }
        Ok(outcome)
    }

    /// Bytes of compiled code of an instance, when the engine compiles.
    pub fn code_size(&self, instance: usize) -> Option<usize> {
        self.engine.code_size(instance)
    }

    /// The functions of an instance, for printing.
    pub fn functions(&self, instance: usize) -> &[Function] {
        &self.instances[instance].translation.functions
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // Instances go first; memories may outlive the vmctx that point at them.
        let mut mems = lock(&self.memories);
        for inst in &self.instances {
            mems.by_vmctx.remove(&inst.vmctx());
        }
        for users in &mut mems.users {
            users.clear();
        }
    }
}

fn unknown_import(module: &str, field: &str) -> InstantiationError {
    InstantiationError::Link(format!("unknown import: {module}.{field}"))
}

fn incompatible(module: &str, field: &str, why: &str) -> InstantiationError {
    InstantiationError::Link(format!(
        "incompatible import type for {module}.{field}{why}"
    ))
}

fn link_kind(module: &str, field: &str) -> InstantiationError {
    incompatible(module, field, ": the export is of another kind")
}

/// The spec's import matching for memories: the actual memory's size is at least the
/// import's minimum, its maximum at most the import's maximum, same index type and page size.
fn memory_matches(actual: &LinearMemory, import: &MemoryType) -> bool {
    let a = &actual.ty;
    a.memory64 == import.memory64
        && a.shared == import.shared
        && a.page_size_log2() == import.page_size_log2()
        && limits_match(actual.pages(), a.maximum, import.initial, import.maximum)
}

/// The spec's import matching for tables: the same element type, and limits as for
/// memories (`actual` is the table's memory, `ty` its own type).
fn table_matches(actual: &LinearMemory, ty: &TableType, import: &TableType) -> bool {
    ty.element_type == import.element_type
        && ty.table64 == import.table64
        && limits_match(actual.pages(), ty.maximum, import.initial, import.maximum)
}

/// The spec's limits matching: the current size is at least the import's minimum, and
/// when the import declares a maximum, the actual one is declared and no larger.
fn limits_match(size: u64, max: Option<u64>, import_min: u64, import_max: Option<u64>) -> bool {
    size >= import_min
        && match (max, import_max) {
            (_, None) => true,
            (Some(am), Some(im)) => am <= im,
            (None, Some(_)) => false,
        }
}

/// An element segment's references as a table holds them, its items evaluated with the
/// values of `globals` (and the instance's function references after `refs`).
fn elem_contents(
    seg: &module::ElemSegment,
    globals: &[u64],
    refs: u64,
) -> Result<Vec<u8>, WasmError> {
    let items = seg
        .items
        .iter()
        .map(|item| eval_const(item, globals, refs).map(u64::to_le_bytes))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(items.concat())
}

/// Evaluates a constant expression; `globals` holds the values of the globals before it,
/// and the instance's function references start after `refs` ([`module::func_ref_bits`]).
pub fn eval_const(ops: &[ConstOp], globals: &[u64], refs: u64) -> Result<u64, WasmError> {
    let mut stack: Vec<u64> = Vec::new();
    for op in ops {
        let v = match *op {
            ConstOp::I32(v) => u64::from(v as u32),
            ConstOp::I64(v) => v as u64,
            ConstOp::F32(b) => u64::from(b),
            ConstOp::F64(b) => b,
            ConstOp::RefNull => 0,
            ConstOp::RefFunc(f) => module::func_ref_bits(refs, f),
            ConstOp::GlobalGet(g) => *globals
                .get(g as usize)
                .ok_or_else(|| WasmError::invalid(format!("unknown global {g}"), None))?,
            ConstOp::Arith { wide, op } => {
                let (y, x) = (stack.pop(), stack.pop());
                let (Some(x), Some(y)) = (x, y) else {
                    return Err(WasmError::invalid("constant expression underflow", None));
                };
                let r = match op {
                    '+' => x.wrapping_add(y),
                    '-' => x.wrapping_sub(y),
                    _ => x.wrapping_mul(y),
                };
                if wide {
                    r
                } else {
                    r & 0xffff_ffff
                }
            }
        };
        stack.push(v);
    }
    stack
        .pop()
        .ok_or_else(|| WasmError::invalid("empty constant expression", None))
}
