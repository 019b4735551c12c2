//! The engines a user would pick instead of ours (feature `peers`): Wasmtime 48.0.8, the
//! release of our Cranelift 0.135.8 and `pulley-interpreter` 48.0.8, natively on x86_64 and
//! on Pulley, with its own translator, bounds-check expansion and vmctx; and the wasmi 2.0
//! interpreter. `clif-bounds bench` runs them beside ours on the same kernels and programs.
//!
//! Each peer is configured with the Wasmtime knobs our memory presets stand for
//! (`memory_reservation`, `memory_guard_size`, `memory_may_move`) and the same Spectre
//! setting (`enable_heap_access_spectre_mitigation`); wasmi has no such knobs (it checks
//! every access itself) and runs the same way under every preset. Programs run on this
//! crate's own WASI host ([`HostImport`]), linked into each peer, so that every engine
//! reads the same files and writes the same bytes through the same code.

use super::config::MemoryConfig;
use super::program::Finished;
use super::program::{Ended, Runner};
use super::wasi::{GuestMemory, HostImport, Wasi};
use std::cell::RefCell;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A peer engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// Wasmtime 48 compiling with Cranelift for this host.
    WasmtimeNative,
    /// Wasmtime 48 compiling to Pulley bytecode, run by its `pulley-interpreter`.
    WasmtimePulley,
    /// wasmi 2.0.
    Wasmi,
}

/// A kernel module instantiated on a peer: its exported `init: [] -> []` and
/// `run: [IDX] -> [i64]`.
pub trait KernelInstance {
    /// Calls `init`.
    fn init(&mut self) -> Result<(), String>;
    /// Calls `run(n)` and returns its result's bits.
    fn run(&mut self, n: u64) -> Result<u64, String>;
}

impl Peer {
    /// The peers of our backend `target`: the engines that run the same kind of code.
    pub fn of_target(target: &str) -> &'static [Peer] {
        match target {
            "pulley64" => &[Peer::WasmtimePulley, Peer::Wasmi],
            "x86_64" => &[Peer::WasmtimeNative],
            _ => &[],
        }
    }

    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Peer::WasmtimeNative => "wasmtime",
            Peer::WasmtimePulley => "wasmtime-pulley",
            Peer::Wasmi => "wasmi",
        }
    }

    /// Compiles and instantiates a kernel module (no imports).
    pub fn kernel(
        self,
        wasm: &[u8],
        memory64: bool,
        config: MemoryConfig,
        spectre: bool,
    ) -> Result<Box<dyn KernelInstance>, String> {
        let err = |e: &dyn std::fmt::Display| format!("{}: {e}", self.name());
        match self {
            Peer::WasmtimeNative | Peer::WasmtimePulley => {
                let engine = self.wasmtime(config, spectre)?;
                let module = wasmtime::Module::new(&engine, wasm).map_err(|e| err(&e))?;
                let mut store = wasmtime::Store::new(&engine, ());
                let instance =
                    wasmtime::Instance::new(&mut store, &module, &[]).map_err(|e| err(&e))?;
                let init = instance
                    .get_typed_func::<(), ()>(&mut store, "init")
                    .map_err(|e| err(&e))?;
                let run = match memory64 {
                    false => IndexFunc::I32(
                        instance
                            .get_typed_func::<i32, i64>(&mut store, "run")
                            .map_err(|e| err(&e))?,
                    ),
                    true => IndexFunc::I64(
                        instance
                            .get_typed_func::<i64, i64>(&mut store, "run")
                            .map_err(|e| err(&e))?,
                    ),
                };
                Ok(Box::new(WasmtimeKernel { store, init, run }))
            }
            Peer::Wasmi => {
                let engine = wasmi_engine();
                let module = wasmi::Module::new(&engine, wasm).map_err(|e| err(&e))?;
                let mut store = wasmi::Store::new(&engine, ());
                let linker = wasmi::Linker::<()>::new(&engine);
                let instance = linker
                    .instantiate_and_start(&mut store, &module)
                    .map_err(|e| err(&e))?;
                let init = instance
                    .get_typed_func::<(), ()>(&store, "init")
                    .map_err(|e| err(&e))?;
                let run = match memory64 {
                    false => IndexFunc::I32(
                        instance
                            .get_typed_func::<i32, i64>(&store, "run")
                            .map_err(|e| err(&e))?,
                    ),
                    true => IndexFunc::I64(
                        instance
                            .get_typed_func::<i64, i64>(&store, "run")
                            .map_err(|e| err(&e))?,
                    ),
                };
                Ok(Box::new(WasmiKernel { store, init, run }))
            }
        }
    }

    /// A runner of WASI programs on this peer, for [`super::program::check_program_with`].
    pub fn runner(self, config: MemoryConfig, spectre: bool) -> Box<Runner<'static>> {
        Box::new(move |wasm, args, dirs| self.run_program(wasm, config, spectre, args, dirs))
    }

    /// Runs the WASI command `wasm` on this peer, output captured, on our WASI host.
    pub fn run_program(
        self,
        wasm: &[u8],
        config: MemoryConfig,
        spectre: bool,
        args: Vec<String>,
        dirs: &[(PathBuf, String)],
    ) -> Result<Finished, String> {
        let wasi = Wasi::new(args, Vec::new(), dirs, true);
        let mut start = Duration::ZERO;
        let err = |e: &dyn std::fmt::Display| format!("{}: {e}", self.name());
        let (wasi, result) = match self {
            Peer::WasmtimeNative | Peer::WasmtimePulley => {
                let engine = self.wasmtime(config, spectre)?;
                let module = wasmtime::Module::new(&engine, wasm).map_err(|e| err(&e))?;
                let mut linker = wasmtime::Linker::<Wasi>::new(&engine);
                for import in module.imports() {
                    let (m, f) = (import.module(), import.name());
                    let Some(function) = HostImport::lookup(m, f) else {
                        return Err(format!("unknown import `{m}.{f}`"));
                    };
                    let ty = wasmtime::FuncType::new(
                        &engine,
                        function.params.iter().map(wasmtime_type),
                        function.results.iter().map(wasmtime_type),
                    );
                    linker
                        .func_new(m, f, ty, move |mut caller, args, results| {
                            // Without an exported memory, a function that touches one
                            // sees an empty one (`EFAULT`); `bench.*` touch none.
                            let (bytes, wasi) = match caller.get_export("memory") {
                                Some(wasmtime::Extern::Memory(m)) => {
                                    m.data_and_store_mut(&mut caller)
                                }
                                _ => (&mut [][..], caller.data_mut()),
                            };
                            let args = args.iter().map(wasmtime_bits);
                            let errno = call_host(function, wasi, bytes, args)
                                .map_err(wasmtime::Error::msg)?;
                            if let (Some(e), Some(r)) = (errno, results.first_mut()) {
                                *r = wasmtime::Val::I32(e as i32);
                            }
                            Ok(())
                        })
                        .map_err(|e| err(&e))?;
                }
                let mut store = wasmtime::Store::new(&engine, wasi);
                let result = linker
                    .instantiate(&mut store, &module)
                    .and_then(|i| i.get_typed_func::<(), ()>(&mut store, "_start"))
                    .and_then(|f| {
                        let started = Instant::now();
                        let r = f.call(&mut store, ());
                        start = started.elapsed();
                        r
                    })
                    .map_err(|e| format!("{e:?}"));
                (store.into_data(), result)
            }
            Peer::Wasmi => {
                let engine = wasmi_engine();
                let module = wasmi::Module::new(&engine, wasm).map_err(|e| err(&e))?;
                let mut linker = wasmi::Linker::<Wasi>::new(&engine);
                for import in module.imports() {
                    let (m, f) = (import.module(), import.name());
                    let Some(function) = HostImport::lookup(m, f) else {
                        return Err(format!("unknown import `{m}.{f}`"));
                    };
                    let ty = wasmi::FuncType::new(
                        function.params.iter().map(wasmi_type),
                        function.results.iter().map(wasmi_type),
                    );
                    linker
                        .func_new(m, f, ty, move |mut caller, args, results| {
                            let (bytes, wasi) = match caller.get_export("memory") {
                                Some(wasmi::Extern::Memory(m)) => m.data_and_store_mut(&mut caller),
                                _ => (&mut [][..], caller.data_mut()),
                            };
                            let args = args.iter().map(wasmi_bits);
                            let errno = call_host(function, wasi, bytes, args)
                                .map_err(wasmi::Error::new)?;
                            if let (Some(e), Some(r)) = (errno, results.first_mut()) {
                                *r = wasmi::Val::I32(e as i32);
                            }
                            Ok(())
                        })
                        .map_err(|e| err(&e))?;
                }
                let mut store = wasmi::Store::new(&engine, wasi);
                let result = linker
                    .instantiate_and_start(&mut store, &module)
                    .and_then(|i| i.get_typed_func::<(), ()>(&store, "_start"))
                    .and_then(|f| {
                        let started = Instant::now();
                        let r = f.call(&mut store, ());
                        start = started.elapsed();
                        r
                    })
                    .map_err(|e| e.to_string());
                (store.into_data(), result)
            }
        };
        // `proc_exit` ends a run with an error on every peer; the host knows it was one.
        let ended = match (result, wasi.exit_code()) {
            (_, Some(code)) => Ended::Exited(code),
            (Ok(()), None) => Ended::Exited(0),
            (Err(e), None) => return Err(format!("{}: {e}", self.name())),
        };
        Ok(Finished::of(&wasi, ended, start))
    }

    /// A Wasmtime engine configured as our memory preset `config` and Spectre setting.
    fn wasmtime(self, config: MemoryConfig, spectre: bool) -> Result<wasmtime::Engine, String> {
        let target = (self == Peer::WasmtimePulley).then_some("pulley64");
        self.wasmtime_for(target, config, spectre)
    }

    /// A Wasmtime engine compiling for `target` (a target triple; the host's when `None`).
    fn wasmtime_for(
        self,
        target: Option<&str>,
        config: MemoryConfig,
        spectre: bool,
    ) -> Result<wasmtime::Engine, String> {
        let mut c = wasmtime::Config::new();
        if let Some(target) = target {
            c.target(target)
                .map_err(|e| format!("{}: {e}", self.name()))?;
        }
        c.wasm_memory64(true)
            .memory_reservation(config.reservation)
            .memory_guard_size(config.guard)
            .memory_may_move(config.may_move);
        // The same flag, under the same name, as our backends and real Cranelift read.
        let spectre = if spectre { "true" } else { "false" };
        // SAFETY: a documented Cranelift setting with a valid value; Wasmtime checks it.
        unsafe { c.cranelift_flag_set("enable_heap_access_spectre_mitigation", spectre) };
        if target.is_some_and(|t| t.starts_with("aarch64")) {
            // The symbols by which `wasmtime_aarch64_code` finds a function (on by default).
            c.debug_symbols(true);
            // Our aarch64 backend puts a `csdb` after every Spectre guard; Wasmtime is asked
            // to as well (Cranelift's default is not to), so that the counts compare the same
            // code.
            // SAFETY: a documented Cranelift aarch64 setting with a valid value.
            unsafe { c.cranelift_flag_set("use_csdb", spectre) };
        }
        wasmtime::Engine::new(&c).map_err(|e| format!("{}: {e}", self.name()))
    }

    /// The x86_64 code Wasmtime compiles for the first function of `wasm` under `config`
    /// and Spectre setting `spectre` (for instruction counts).
    pub fn wasmtime_x64_code(
        wasm: &[u8],
        config: MemoryConfig,
        spectre: bool,
    ) -> Result<Vec<u8>, String> {
        let engine = Peer::WasmtimeNative.wasmtime(config, spectre)?;
        let module = wasmtime::Module::new(&engine, wasm).map_err(|e| format!("wasmtime: {e}"))?;
        let f = module
            .functions()
            .next()
            .ok_or("wasmtime: the module has no function")?;
        Ok(module.text()[f.offset..f.offset + f.len].to_vec())
    }

    /// The aarch64 code Wasmtime cross-compiles for the first function of `wasm` under
    /// `config` and Spectre setting `spectre` (for instruction counts). A module compiled for
    /// another ISA cannot be loaded, so the function is found by its symbol in the ELF image
    /// `precompile_module` writes (Wasmtime names each `wasm[M]::function[N]`).
    pub fn wasmtime_aarch64_code(
        wasm: &[u8],
        config: MemoryConfig,
        spectre: bool,
    ) -> Result<Vec<u8>, String> {
        use object::{Object, ObjectSection, ObjectSymbol};
        let engine = Peer::WasmtimeNative.wasmtime_for(
            Some("aarch64-unknown-linux-gnu"),
            config,
            spectre,
        )?;
        let elf = engine
            .precompile_module(wasm)
            .map_err(|e| format!("wasmtime (aarch64): {e}"))?;
        let file = object::File::parse(&*elf).map_err(|e| format!("wasmtime's ELF: {e}"))?;
        let text = file
            .section_by_name(".text")
            .ok_or("wasmtime's ELF has no .text")?;
        let data = text.data().map_err(|e| format!("wasmtime's .text: {e}"))?;
        // The defined function of the lowest index.
        let function = file
            .symbols()
            .filter_map(|s| {
                // `wasm[0]::function[N]`, then `::name` when the name section names it.
                let name = s.name().ok()?.strip_prefix("wasm[0]::function[")?;
                let index: u32 = name.split_once(']')?.0.parse().ok()?;
                Some((index, s.address(), s.size()))
            })
            .min();
        let (_, address, size) = function.ok_or("wasmtime's ELF names no Wasm function")?;
        let start = usize::try_from(address - text.address()).map_err(|e| e.to_string())?;
        let end = start + usize::try_from(size).map_err(|e| e.to_string())?;
        data.get(start..end)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| "wasmtime's function symbol lies outside .text".to_string())
    }
}

/// A wasmi engine that lets a program recurse as deep as the other engines do: wasmi's
/// default of 1,000 frames stops `shootout-ackermann` with "call stack exhausted".
fn wasmi_engine() -> wasmi::Engine {
    let mut config = wasmi::Config::default();
    config
        .set_max_recursion_depth(100_000)
        .set_max_stack_height(256 << 20);
    wasmi::Engine::new(&config)
}

/// An exported function whose parameter is the memory's index type.
enum IndexFunc<A, B> {
    I32(A),
    I64(B),
}

struct WasmtimeKernel {
    store: wasmtime::Store<()>,
    init: wasmtime::TypedFunc<(), ()>,
    run: IndexFunc<wasmtime::TypedFunc<i32, i64>, wasmtime::TypedFunc<i64, i64>>,
}

impl KernelInstance for WasmtimeKernel {
    fn init(&mut self) -> Result<(), String> {
        self.init
            .call(&mut self.store, ())
            .map_err(|e| format!("wasmtime: {e:?}"))
    }
    fn run(&mut self, n: u64) -> Result<u64, String> {
        match &self.run {
            IndexFunc::I32(f) => f.call(&mut self.store, n as i32),
            IndexFunc::I64(f) => f.call(&mut self.store, n as i64),
        }
        .map(|v| v as u64)
        .map_err(|e| format!("wasmtime: {e:?}"))
    }
}

struct WasmiKernel {
    store: wasmi::Store<()>,
    init: wasmi::TypedFunc<(), ()>,
    run: IndexFunc<wasmi::TypedFunc<i32, i64>, wasmi::TypedFunc<i64, i64>>,
}

impl KernelInstance for WasmiKernel {
    fn init(&mut self) -> Result<(), String> {
        self.init
            .call(&mut self.store, ())
            .map_err(|e| format!("wasmi: {e}"))
    }
    fn run(&mut self, n: u64) -> Result<u64, String> {
        match &self.run {
            IndexFunc::I32(f) => f.call(&mut self.store, n as i32),
            IndexFunc::I64(f) => f.call(&mut self.store, n as i64),
        }
        .map(|v| v as u64)
        .map_err(|e| format!("wasmi: {e}"))
    }
}

/// Calls our host's `function` for a peer: the caller's memory `bytes`, the arguments'
/// bits; the errno it returns, or what ended the program (`proc_exit`) as the peer's error.
fn call_host(
    function: HostImport,
    wasi: &Wasi,
    bytes: &mut [u8],
    args: impl Iterator<Item = u64>,
) -> Result<Option<u32>, String> {
    let raw: Vec<u64> = args.collect();
    let memory = SliceMemory(RefCell::new(bytes));
    function
        .call(wasi, &memory, &raw)
        .map_err(|trap| trap.location)
}

/// A peer's linear memory as our WASI host reads and writes it.
struct SliceMemory<'a>(RefCell<&'a mut [u8]>);

impl GuestMemory for SliceMemory<'_> {
    fn read(&self, ptr: u64, len: u64) -> Option<Vec<u8>> {
        let bytes = self.0.borrow();
        let end = ptr.checked_add(len)?;
        bytes
            .get(usize::try_from(ptr).ok()?..usize::try_from(end).ok()?)
            .map(<[u8]>::to_vec)
    }
    fn write(&self, ptr: u64, data: &[u8]) -> bool {
        let mut bytes = self.0.borrow_mut();
        let range = usize::try_from(ptr)
            .ok()
            .and_then(|start| Some(start..start.checked_add(data.len())?));
        match range.and_then(|r| bytes.get_mut(r)) {
            Some(to) => {
                to.copy_from_slice(data);
                true
            }
            None => false,
        }
    }
    fn size(&self) -> u64 {
        self.0.borrow().len() as u64
    }
}

fn wasmtime_type(t: &wasmparser::ValType) -> wasmtime::ValType {
    match t {
        wasmparser::ValType::I64 => wasmtime::ValType::I64,
        // The host's functions take and return only i32 and i64.
        _ => wasmtime::ValType::I32,
    }
}

fn wasmi_type(t: &wasmparser::ValType) -> wasmi::ValType {
    match t {
        wasmparser::ValType::I64 => wasmi::ValType::I64,
        _ => wasmi::ValType::I32,
    }
}

fn wasmtime_bits(v: &wasmtime::Val) -> u64 {
    match v {
        wasmtime::Val::I32(x) => *x as u32 as u64,
        wasmtime::Val::I64(x) => *x as u64,
        _ => 0,
    }
}

fn wasmi_bits(v: &wasmi::Val) -> u64 {
    match v {
        wasmi::Val::I32(x) => *x as u32 as u64,
        wasmi::Val::I64(x) => *x as u64,
        _ => 0,
    }
}
