//! Differential fuzzing of whole modules on every engine (`clif-bounds fuzz`).
//!
//! A seed becomes bytes (SplitMix64), the bytes become a module through `wasm-smith`,
//! configured toward linear memory: up to three memories, 32- and 64-bit, custom page sizes,
//! offsets near and past the bound, bulk memory and `memory.grow`, and traps left in. Fuel
//! instrumentation (`ensure_termination`) bounds every loop and recursion the same way on
//! every engine, and NaNs are canonicalised, so every observable result is deterministic.
//!
//! Each run is *observed* as lines: how instantiation ended, then every exported function's
//! outcome (each called four times in turn, in name order, with arguments drawn from the
//! seed: the returned bits, or the trap code), then every exported memory's size and a hash of its bytes, every
//! exported global's bits and every exported table's contents. A subject (one engine in one
//! memory configuration and Spectre setting) passes when its lines equal the reference
//! interpreter's under the same configuration; a divergence is shrunk with `wasm-shrink` and
//! written as a `.wast` reproducer whose assertions are the reference's outcomes.
//!
//! Stack exhaustion is where engines may legitimately differ (frame sizes differ): lines are
//! compared up to the first `call stack exhausted` on either side, and no further.

use super::config::MemoryConfig;
use super::module;
use super::runtime::{Engine, Extern, InstantiationError, InterpreterEngine, Store};
use super::translate::supported;
use crate::interpreter::{DataValue, Outcome};
use crate::ir::{types, TrapCode};
use crate::legalize::Settings;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use wasmparser::{FuncType, HeapType, ValType};

/// The fuel `ensure_termination` gives a module, and each call again: loop iterations plus
/// function entries. Below the interpreter's 512 frames, so that recursion ends in the same
/// `unreachable` on every engine rather than in stack exhaustion.
pub const CALL_FUEL: u32 = 400;

/// How often each exported function is called (compiling dominates a module's time, so
/// more calls are cheap coverage).
const CALLS_PER_EXPORT: usize = 4;

/// The export name of the fuel global, through which each call is given fresh fuel.
pub const FUEL_EXPORT: &str = "clif-bounds-fuel";

/// The reference interpreter's instruction budget per call: a safety net, since the fuel
/// instrumentation already bounds loops (a shrunk module may have lost it).
const INTERPRETER_FUEL: u64 = 20_000_000;

/// Candidates tried per seed before giving up: a module the translator does not support
/// (64-bit tables, which wasm-smith pairs with memory64) is replaced by the next one.
const CANDIDATES: u64 = 16;

/// A deterministic byte stream from a seed (SplitMix64): the same seed gives the same module
/// on every machine and in every version of this file that keeps the generator.
pub struct SplitMix(u64);

impl SplitMix {
    /// A stream starting at `seed`.
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(seed)
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n.div_ceil(8))
            .flat_map(|_| self.next_u64().to_le_bytes())
            .take(n)
            .collect()
    }

    /// One of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next_u64() % items.len() as u64) as usize]
    }
}

/// wasm-smith's configuration for one candidate: the features our translator supports (Wasm
/// 3.0 less SIMD, GC, exceptions, threads, tail calls and wide arithmetic), weighted toward
/// memory, with the shape varied by `rng` so that runs cover one memory and several, 32- and
/// 64-bit, with and without tables.
fn smith_config(rng: &mut SplitMix) -> wasm_smith::Config {
    use wasm_smith::{InstructionKind as K, InstructionKinds};
    let memory64 = rng.pick(&[false, true]);
    // Half the modules draw from every kind of instruction; the other half leave out tables
    // and references, so that more of each body is memory access.
    let kinds = if rng.pick(&[false, true]) {
        InstructionKinds::all()
    } else {
        InstructionKinds::new(&[
            K::Numeric,
            K::Parametric,
            K::Variable,
            K::Memory,
            K::Control,
        ])
    };
    let max_bytes = rng.pick(&[1u64 << 16, 1 << 17, 1 << 20]);
    wasm_smith::Config {
        simd_enabled: false,
        relaxed_simd_enabled: false,
        exceptions_enabled: false,
        gc_enabled: false,
        threads_enabled: false,
        shared_everything_threads_enabled: false,
        tail_call_enabled: false,
        wide_arithmetic_enabled: false,
        custom_page_sizes_enabled: rng.pick(&[false, true]),
        memory64_enabled: memory64,
        // Without imports nothing links to the host; every item is exported so that the
        // final state is observable.
        max_imports: 0,
        export_everything: true,
        canonicalize_nans: true,
        min_memories: 1,
        max_memories: rng.pick(&[1, 1, 2, 3]),
        memory_max_size_required: true,
        max_memory32_bytes: max_bytes,
        max_memory64_bytes: u128::from(max_bytes),
        // In bounds, near the bound, anywhere (near 2^32 and 2^64 included): the default
        // weights (90, 9, 1) would leave the edges rare.
        memory_offset_choices: wasm_smith::MemoryOffsetChoices(50, 35, 15),
        max_tables: rng.pick(&[0, 1, 2]),
        max_table_elements: 200,
        min_funcs: 1,
        max_funcs: 12,
        allowed_instructions: kinds,
        max_instructions: rng.pick(&[100, 300, 1000]),
        max_data_segments: 8,
        max_elements: 8,
        max_globals: 8,
        max_type_size: 200,
        ..wasm_smith::Config::default()
    }
}

/// A generated module and what it took to get it.
pub struct Generated {
    /// The module's binary.
    pub bytes: Vec<u8>,
    /// Earlier candidates of the same seed the translator does not support, with why.
    pub unsupported: Vec<String>,
}

/// The module of `seed`: the first of its candidates that the translator supports, fuel
/// instrumented. A candidate that our validator rejects is an error (wasm-smith makes only
/// valid modules, so we would be wrong).
pub fn generate(seed: u64) -> Result<Generated, String> {
    let mut unsupported = Vec::new();
    for candidate in 0..CANDIDATES {
        let mut rng = SplitMix::new(seed ^ candidate.wrapping_mul(0xa076_1d64_78bd_642f));
        let config = smith_config(&mut rng);
        let len = rng.pick(&[1024usize, 4096, 16384]);
        let data = rng.bytes(len);
        let mut u = arbitrary::Unstructured::new(&data);
        let mut m = wasm_smith::Module::new(config, &mut u)
            .map_err(|e| format!("seed {seed}: wasm-smith failed: {e}"))?;
        let fuel = m
            .ensure_termination(CALL_FUEL)
            .map_err(|e| format!("seed {seed}: fuel instrumentation failed: {e}"))?;
        let bytes = export_global(&m.to_bytes(), fuel)
            .map_err(|e| format!("seed {seed}: cannot export the fuel global: {e}"))?;
        match supported(&bytes) {
            Ok(()) => return Ok(Generated { bytes, unsupported }),
            Err(e) if !e.invalid => unsupported.push(e.message),
            Err(e) => {
                return Err(format!(
                    "seed {seed}: our validator rejects wasm-smith's module: {e}"
                ))
            }
        }
    }
    Err(format!(
        "seed {seed}: none of {CANDIDATES} candidates is supported ({})",
        unsupported.join("; ")
    ))
}

/// The module with global `g` exported as [`FUEL_EXPORT`] (wasm-smith adds the fuel global
/// after choosing exports): every section is copied as it is but the export section, which
/// gains one entry (or is added before the start section's place).
fn export_global(bytes: &[u8], g: u32) -> Result<Vec<u8>, wasmparser::BinaryReaderError> {
    use wasm_encoder::{ExportKind, ExportSection, RawSection};
    use wasmparser::{ExternalKind, Payload};
    let mut out = wasm_encoder::Module::new();
    let fuel_export = |exports: &mut ExportSection| {
        exports.export(FUEL_EXPORT, ExportKind::Global, g);
    };
    let mut exported = false;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let payload = payload?;
        // Sections after the export section's place: the export section must precede them.
        let later = matches!(
            payload,
            Payload::StartSection { .. }
                | Payload::ElementSection(_)
                | Payload::DataCountSection { .. }
                | Payload::CodeSectionStart { .. }
                | Payload::DataSection(_)
        );
        if later && !exported {
            let mut exports = ExportSection::new();
            fuel_export(&mut exports);
            out.section(&exports);
            exported = true;
        }
        match payload {
            Payload::ExportSection(reader) => {
                let mut exports = ExportSection::new();
                for e in reader {
                    let e = e?;
                    let kind = match e.kind {
                        ExternalKind::Func | ExternalKind::FuncExact => ExportKind::Func,
                        ExternalKind::Table => ExportKind::Table,
                        ExternalKind::Memory => ExportKind::Memory,
                        ExternalKind::Global => ExportKind::Global,
                        ExternalKind::Tag => ExportKind::Tag,
                    };
                    exports.export(e.name, kind, e.index);
                }
                fuel_export(&mut exports);
                out.section(&exports);
                exported = true;
            }
            Payload::CodeSectionEntry(_) | Payload::Version { .. } | Payload::End(_) => {}
            other => {
                if let Some((id, range)) = other.as_section() {
                    out.section(&RawSection {
                        id,
                        data: &bytes[range.start as usize..range.end as usize],
                    });
                }
            }
        }
    }
    Ok(out.finish())
}

/// One engine in one configuration.
pub struct Subject {
    /// `x86_64 (spectre on), dynamic-guard` and the like.
    pub name: String,
    /// The `clif-bounds wast` flags that run a reproducer on it.
    pub flags: String,
    /// The memory configuration.
    pub config: MemoryConfig,
    /// Makes the engine.
    pub make: Box<dyn Fn() -> Result<Box<dyn Engine>, String>>,
}

/// The reference: the interpreter on the fused instructions, with the fuel safety net.
fn reference() -> Box<dyn Engine> {
    Box::new(InterpreterEngine::fused().with_fuel(Some(INTERPRETER_FUEL)))
}

/// Every engine that is compared with the reference under `config` (named `preset`): the
/// interpreter on the legalized form, our pulley64 and x86_64 backends on the fused and (x86_64)
/// legalized forms, and real Cranelift on the legalized form, each with Spectre off and on;
/// PCC checks our backends' fused code when `pcc` is set.
pub fn subjects(preset: &str, config: MemoryConfig, pcc: bool) -> Vec<Subject> {
    let mut out = Vec::new();
    for spectre in [false, true] {
        let on = if spectre { "on" } else { "off" };
        let settings = Settings {
            spectre,
            ..Settings::default()
        };
        let subject = |name: String, flags: String, make: Box<dyn Fn() -> _>| Subject {
            name: format!("{name} (spectre {on}), {preset}"),
            flags: format!("--target {flags} --memory {preset} --spectre {on}"),
            config,
            make,
        };
        // Every execution path of `wast` but the reference itself.
        for target in super::targets().into_iter().filter(|&t| t != "interp") {
            let backend = crate::isa::BACKEND_TARGETS.contains(&target);
            let pcc = pcc && backend;
            let flags = format!("{target}{}", if pcc { " --pcc" } else { "" });
            out.push(subject(
                target.into(),
                flags,
                Box::new(move || super::engine(target, settings, pcc, None)),
            ));
        }
        // x86_64 on the legalized form, which `wast` has no target for: its reproducer's
        // flags run the fused form.
        out.push(subject(
            "x86_64 legalized".into(),
            "x86_64".into(),
            Box::new(move || {
                let backend = crate::isa::Backend::for_target("x86_64", spectre)?;
                Ok(Box::new(super::backend::BackendEngine::legalized(backend)?) as Box<dyn Engine>)
            }),
        ));
    }
    out
}

/// One observable event of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Instantiation ended: `None` when it succeeded, else the trap or error.
    Instantiated(Option<Ending>),
    /// An exported function was called.
    Called {
        /// Its export name.
        export: String,
        /// Its type.
        ty: FuncType,
        /// The arguments.
        args: Vec<DataValue>,
        /// How it ended.
        ending: Ending,
    },
    /// The final state of an exported memory, global or table, as text.
    State(String),
}

/// How a call (or instantiation) ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// It returned these values.
    Returned(Vec<DataValue>),
    /// It trapped with this code.
    Trapped(TrapCode),
    /// The engine or runtime failed: a crash, an internal error, a link failure.
    Failed(String),
}

impl Ending {
    fn exhausted(&self) -> bool {
        *self == Ending::Trapped(TrapCode::STACK_OVERFLOW)
    }
}

impl Event {
    /// Whether the call (or instantiation) ended in stack exhaustion.
    fn exhausted(&self) -> bool {
        match self {
            Event::Called { ending, .. } | Event::Instantiated(Some(ending)) => ending.exhausted(),
            _ => false,
        }
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Event::Instantiated(None) => f.write_str("instantiated"),
            Event::Instantiated(Some(e)) => write!(f, "instantiation: {e}"),
            Event::Called {
                export,
                ty,
                args,
                ending,
            } => {
                let args = wast_values(args, ty.params());
                write!(f, "call {export:?}({})", args.trim_start())?;
                write!(f, "): {ending}")
            }
            Event::State(s) => f.write_str(s),
        }
    }
}

impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Ending::Returned(vs) => {
                f.write_str("returned [")?;
                for (i, v) in vs.iter().enumerate() {
                    let sep = if i == 0 { "" } else { " " };
                    write!(f, "{sep}{} 0x{:x}", v.ty, v.bits)?;
                }
                f.write_str("]")
            }
            Ending::Trapped(c) => write!(f, "trap {c}"),
            Ending::Failed(m) => write!(f, "error: {m}"),
        }
    }
}

/// Arguments for a function of type `params`: values at the edges (zero, one, all ones, sign
/// bits, page sizes and their neighbours, 2^32 and its neighbours) or random, from `rng`.
fn arguments(params: &[ValType], rng: &mut SplitMix) -> Vec<DataValue> {
    const EDGES: [u64; 16] = [
        0,
        1,
        2,
        8,
        0xffff,
        0x1_0000,
        0x1_0001,
        0x7fff_ffff,
        0x8000_0000,
        0xffff_fff8,
        0xffff_ffff,
        0x1_0000_0000,
        0x1_0000_0007,
        0x7fff_ffff_ffff_ffff,
        0xffff_ffff_ffff_fff8,
        u64::MAX,
    ];
    const FLOATS: [f64; 6] = [0.0, -0.0, 1.5, -1.0, f64::INFINITY, 1e30];
    params
        .iter()
        .map(|&p| {
            let edge = rng.pick(&EDGES);
            let random = rng.next_u64();
            let bits = if rng.next_u64().is_multiple_of(4) {
                random
            } else {
                edge
            };
            let float = rng.pick(&FLOATS);
            match p {
                ValType::I32 => DataValue::new(types::I32, bits),
                ValType::I64 => DataValue::new(types::I64, bits),
                ValType::F32 => DataValue::new(types::F32, u64::from((float as f32).to_bits())),
                ValType::F64 => DataValue::new(types::F64, float.to_bits()),
                // References: null (the module has no way to be given any other).
                _ => DataValue::new(types::I64, 0),
            }
        })
        .collect()
}

/// Runs `bytes` on `engine` under `config` and records what can be observed, with arguments
/// drawn from `args_seed`.
pub fn observe(
    bytes: &[u8],
    config: MemoryConfig,
    engine: Box<dyn Engine>,
    args_seed: u64,
) -> Vec<Event> {
    let mut store = Store::new(config, engine);
    let instance = match store.instantiate(bytes, &|_, _| None) {
        Ok(i) => i,
        Err(InstantiationError::Trap(code)) => {
            return vec![Event::Instantiated(Some(Ending::Trapped(code)))]
        }
        Err(e) => return vec![Event::Instantiated(Some(Ending::Failed(e.to_string())))],
    };
    let mut events = vec![Event::Instantiated(None)];
    let mut names = store.export_names(instance);
    names.sort();
    let mut rng = SplitMix::new(args_seed);
    let fuel = match store.export(instance, FUEL_EXPORT) {
        Some(Extern::MutableGlobal { memory, .. }) => Some(memory),
        _ => None,
    };
    // Each function CALLS_PER_EXPORT times in turn, with arguments drawn afresh and fresh fuel
    // each time: later calls see what earlier ones stored.
    let rounds = std::iter::repeat_n(&names, CALLS_PER_EXPORT).flatten();
    let functions = rounds.filter_map(|name| match store.export(instance, name) {
        Some(Extern::Func { instance, index }) => Some((name, instance, index)),
        _ => None,
    });
    for (name, instance, index) in functions {
        if let Some(cell) = fuel {
            let bytes = u64::from(CALL_FUEL).to_le_bytes();
            if let Err(code) = store.with_memories(|m| m.get_mut(cell).write(0, &bytes)) {
                events.push(Event::State(format!("cannot refill the fuel: {code}")));
            }
        }
        let ty = store.instance(instance).func_types[index as usize].clone();
        let args = arguments(ty.params(), &mut rng);
        let ending = match store.call(instance, index, &args) {
            Ok(Outcome::Returned(vs)) => Ending::Returned(vs),
            Ok(Outcome::Trapped(t)) => Ending::Trapped(t.code),
            Err(e) => Ending::Failed(e),
        };
        let stop = ending.exhausted();
        events.push(Event::Called {
            export: name.clone(),
            ty,
            args,
            ending,
        });
        if stop {
            return events;
        }
    }
    for name in &names {
        let state = match store.export(instance, name) {
            Some(Extern::Memory(id)) => {
                let (size, hash) = store.with_memories(|m| {
                    let mem = m.get(id);
                    (mem.size(), mem.read(0, mem.size()).map(|b| fnv(&b)))
                });
                format!("memory {name:?}: {size} bytes, fnv {hash:x?}")
            }
            Some(Extern::Table { memory, .. }) => {
                let (size, hash) = store.with_memories(|m| {
                    let mem = m.get(memory);
                    (mem.size(), mem.read(0, mem.size()).map(|b| fnv(&b)))
                });
                format!("table {name:?}: {} entries, fnv {hash:x?}", size / 8)
            }
            Some(Extern::Global { ty, bits }) => format!("global {name:?}: {ty:?} 0x{bits:x}"),
            Some(Extern::MutableGlobal { ty, memory }) => {
                let mask = module::clif_type(ty.content_type).map_or(u64::MAX, |t| t.mask());
                let bits = store.cell_value(memory) & mask;
                format!("global {name:?}: {ty:?} 0x{bits:x}")
            }
            _ => continue,
        };
        events.push(Event::State(state));
    }
    events
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Where two observations first differ, as `(reference, subject)` lines; `None` when they
/// agree up to the end or up to the first stack exhaustion on either side.
pub fn divergence(reference: &[Event], subject: &[Event]) -> Option<(String, String)> {
    let missing = || "(nothing)".to_string();
    for i in 0..reference.len().max(subject.len()) {
        let (r, s) = (reference.get(i), subject.get(i));
        if r.is_some_and(Event::exhausted) || s.is_some_and(Event::exhausted) {
            return None;
        }
        if r != s {
            let show = |e: Option<&Event>| e.map_or_else(missing, Event::to_string);
            return Some((show(r), show(s)));
        }
    }
    None
}

/// Whether the reference could run the module to the end: a reference that fails (out of
/// fuel, an internal error) judges nothing.
fn conclusive(reference: &[Event]) -> bool {
    !reference.iter().any(|e| {
        matches!(
            e,
            Event::Instantiated(Some(Ending::Failed(_)))
                | Event::Called {
                    ending: Ending::Failed(_),
                    ..
                }
        )
    })
}

/// What one module did on every subject.
pub struct ModuleReport {
    /// Subject runs that agreed with the reference.
    pub agreed: usize,
    /// `(subject, reference line, subject line)` for each subject that diverged.
    pub divergences: Vec<(usize, String, String)>,
    /// Why the module judged nothing, when the reference itself failed.
    pub inconclusive: Option<String>,
    /// Exported functions the reference called, over every configuration.
    pub calls: usize,
    /// Of those, the calls that returned, and those that trapped out of bounds.
    pub returned: usize,
    /// See `returned`.
    pub out_of_bounds: usize,
    /// Subject runs whose comparison ended at a stack exhaustion on either side.
    pub exhausted: usize,
}

/// Runs `bytes` on the reference and on every subject, each under its own configuration.
pub fn check(bytes: &[u8], subjects: &[Subject], args_seed: u64) -> ModuleReport {
    let mut report = ModuleReport {
        agreed: 0,
        divergences: Vec::new(),
        inconclusive: None,
        calls: 0,
        returned: 0,
        out_of_bounds: 0,
        exhausted: 0,
    };
    let mut references: Vec<(MemoryConfig, Vec<Event>)> = Vec::new();
    for (i, s) in subjects.iter().enumerate() {
        let reference = match references.iter().find(|(c, _)| *c == s.config) {
            Some((_, r)) => r,
            None => {
                let r = observe(bytes, s.config, reference(), args_seed);
                references.push((s.config, r));
                &references.last().expect("just pushed").1
            }
        };
        if !conclusive(reference) {
            let why = reference.iter().map(Event::to_string).collect::<Vec<_>>();
            report.inconclusive = Some(why.join("; "));
            return report;
        }
        let observed = match (s.make)() {
            Ok(engine) => observe(bytes, s.config, engine, args_seed),
            Err(e) => vec![Event::Instantiated(Some(Ending::Failed(e)))],
        };
        if reference.iter().chain(&observed).any(Event::exhausted) {
            report.exhausted += 1;
        }
        match divergence(reference, &observed) {
            None => report.agreed += 1,
            Some((r, o)) => report.divergences.push((i, r, o)),
        }
    }
    for (_, r) in &references {
        for e in r {
            let Event::Called { ending, .. } = e else {
                continue;
            };
            report.calls += 1;
            match ending {
                Ending::Returned(_) => report.returned += 1,
                Ending::Trapped(TrapCode::HEAP_OUT_OF_BOUNDS) => report.out_of_bounds += 1,
                _ => {}
            }
        }
    }
    report
}

/// Shrinks a module that diverges on `subject` to a smaller one that still does, with
/// wasm-shrink; the original when nothing smaller diverges.
pub fn shrink(bytes: &[u8], subject: &Subject, args_seed: u64) -> Vec<u8> {
    let diverges = |candidate: &[u8]| -> anyhow::Result<bool> {
        if supported(candidate).is_err() {
            return Ok(false);
        }
        let reference = observe(candidate, subject.config, reference(), args_seed);
        if !conclusive(&reference) {
            return Ok(false);
        }
        let Ok(engine) = (subject.make)() else {
            return Ok(false);
        };
        let observed = observe(candidate, subject.config, engine, args_seed);
        Ok(divergence(&reference, &observed).is_some())
    };
    wasm_shrink::WasmShrink::default()
        .attempts(1000)
        .run(bytes.to_vec(), diverges)
        .map_or_else(|_| bytes.to_vec(), |info| info.output)
}

/// Values of Wasm types `tys` as `.wast` constants, each after a space.
fn wast_values(vs: &[DataValue], tys: &[ValType]) -> String {
    vs.iter()
        .zip(tys)
        .map(|(v, &t)| format!(" {}", wast_value(v, t)))
        .collect()
}

/// A value of Wasm type `ty` as a `.wast` constant (`(i32.const 7)`); a reference is
/// `(ref.null func)` when null and `(ref.func)` (any non-null) otherwise, since its bits are
/// the store's.
fn wast_value(v: &DataValue, ty: ValType) -> String {
    if let ValType::Ref(r) = ty {
        let heap = match r.heap_type() {
            HeapType::Abstract {
                ty: wasmparser::AbstractHeapType::Extern,
                ..
            } => "extern",
            _ => "func",
        };
        return match v.bits {
            0 => format!("(ref.null {heap})"),
            _ => format!("(ref.{heap})"),
        };
    }
    match v.ty {
        t if t == types::I32 => format!("(i32.const {})", v.bits as u32 as i32),
        t if t == types::I64 => format!("(i64.const {})", v.bits as i64),
        t if t == types::F32 => {
            let x = f32::from_bits(v.bits as u32);
            if x.is_nan() {
                let sign = if x.is_sign_negative() { "-" } else { "" };
                format!("(f32.const {sign}nan:0x{:x})", v.bits & 0x7f_ffff)
            } else {
                format!("(f32.const {x:?})")
            }
        }
        t if t == types::F64 => {
            let x = f64::from_bits(v.bits);
            if x.is_nan() {
                let sign = if x.is_sign_negative() { "-" } else { "" };
                format!("(f64.const {sign}nan:0x{:x})", v.bits & 0xf_ffff_ffff_ffff)
            } else {
                format!("(f64.const {x:?})")
            }
        }
        t => format!("({t} 0x{:x})", v.bits),
    }
}

/// A `.wast` reproducer: the module as text (its binary when it does not print), then the
/// reference's outcome of every call as an assertion, with the divergence in comments.
pub fn reproducer(
    seed: u64,
    bytes: &[u8],
    original_len: usize,
    subject: &Subject,
    args_seed: u64,
) -> String {
    let reference = observe(bytes, subject.config, reference(), args_seed);
    let observed = match (subject.make)() {
        Ok(engine) => observe(bytes, subject.config, engine, args_seed),
        Err(e) => vec![Event::Instantiated(Some(Ending::Failed(e)))],
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        ";; clif-bounds fuzz, seed {seed}: {} diverges from the reference interpreter.",
        subject.name
    );
    let _ = writeln!(
        out,
        ";; Shrunk from {original_len} to {} bytes. Run: clif-bounds wast THIS_FILE {}",
        bytes.len(),
        subject.flags
    );
    if let Some((r, o)) = divergence(&reference, &observed) {
        let _ = writeln!(out, ";;   reference: {r}\n;;   {}: {o}", subject.name);
    }
    // The module is `$fuzzed`; the harness's fresh fuel before each call is a second
    // module's, which imports the fuel global and sets it.
    let module = match wasmprinter::print_bytes(bytes) {
        Ok(text) => text.replacen("(module", "(module $fuzzed", 1),
        Err(_) => {
            let escaped: String = bytes.iter().map(|b| format!("\\{b:02x}")).collect();
            format!("(module $fuzzed binary \"{escaped}\")")
        }
    };
    let refuel = exports_fuel(bytes).then(|| {
        format!(
            "(register \"fuzzed\" $fuzzed)\n(module $refuel\n  (global $fuel (import \"fuzzed\" {FUEL_EXPORT:?}) (mut i32))\n  (func (export \"refuel\") (global.set $fuel (i32.const {CALL_FUEL}))))"
        )
    });
    for event in &reference {
        match event {
            Event::Instantiated(None) => {
                let _ = writeln!(out, "{module}");
                if let Some(r) = &refuel {
                    let _ = writeln!(out, "{r}");
                }
            }
            Event::Instantiated(Some(Ending::Trapped(code))) => {
                let message = super::trap_message(*code).unwrap_or("trap");
                let _ = writeln!(out, "(assert_trap {module} {message:?})");
            }
            Event::Called {
                export,
                ty,
                args,
                ending,
            } => {
                if refuel.is_some() {
                    let _ = writeln!(out, "(invoke $refuel \"refuel\")");
                }
                let invoke = format!(
                    "(invoke $fuzzed {export:?}{})",
                    wast_values(args, ty.params())
                );
                let line = match ending {
                    Ending::Returned(vs) => {
                        let results = wast_values(vs, ty.results());
                        format!("(assert_return {invoke}{results})")
                    }
                    Ending::Trapped(TrapCode::STACK_OVERFLOW) => {
                        format!("(assert_exhaustion {invoke} \"call stack exhausted\")")
                    }
                    Ending::Trapped(code) => {
                        let message = super::trap_message(*code).unwrap_or("trap");
                        format!("(assert_trap {invoke} {message:?})")
                    }
                    Ending::Failed(e) => format!(";; {invoke} failed on the reference: {e}"),
                };
                let _ = writeln!(out, "{line}");
            }
            other => {
                let _ = writeln!(out, ";; reference {other}");
            }
        }
    }
    out
}

/// Whether the module exports the fuel global (a shrunk one may not).
fn exports_fuel(bytes: &[u8]) -> bool {
    wasmparser::Parser::new(0)
        .parse_all(bytes)
        .any(|p| match p {
            Ok(wasmparser::Payload::ExportSection(r)) => r
                .into_iter()
                .any(|e| e.is_ok_and(|e| e.name == FUEL_EXPORT)),
            _ => false,
        })
}

/// The options of a fuzzing run.
pub struct Options {
    /// The first seed.
    pub seed: u64,
    /// How many seeds (modules).
    pub count: u64,
    /// Whether PCC checks our backends' code.
    pub pcc: bool,
    /// Where reproducers go.
    pub out: PathBuf,
    /// Whether to shrink divergences before writing them.
    pub shrink: bool,
    /// Where to write every generated module as `seed-N.wasm`, if anywhere.
    pub save: Option<PathBuf>,
}

/// The totals of a fuzzing run.
#[derive(Default)]
pub struct Summary {
    /// Modules on which every subject agreed with the reference.
    pub passed: u64,
    /// Modules with at least one divergence, a generation failure or a failing reference.
    pub failed: u64,
    /// Subject runs (executions of a module on one engine in one configuration).
    pub runs: u64,
    /// Calls of exported functions made by the reference.
    pub calls: u64,
    /// Candidates replaced because the translator does not support them.
    pub unsupported: u64,
    /// Of the reference's calls: how many returned, and how many trapped out of bounds.
    pub returned: u64,
    /// See `returned`.
    pub out_of_bounds: u64,
    /// Subject runs whose comparison ended early at a stack exhaustion on either side.
    pub exhausted: u64,
    /// Byte-level mutants of the generated modules run (instantiated, when valid, and every
    /// export called) on the reference and on our two backends: how many, and how many were
    /// valid modules.
    pub mutants: u64,
    /// See `mutants`.
    pub valid_mutants: u64,
    /// One line per failed module.
    pub failures: Vec<String>,
    /// Reproducers written.
    pub reproducers: Vec<PathBuf>,
}

/// Every subject under every preset.
pub fn all_subjects(pcc: bool) -> Vec<Subject> {
    MemoryConfig::PRESETS
        .iter()
        .flat_map(|&(preset, config)| subjects(preset, config, pcc))
        .collect()
}

/// How many subjects a module runs on.
pub fn subject_count(pcc: bool) -> usize {
    all_subjects(pcc).len()
}

/// Runs seeds `options.seed..options.seed + options.count` on every subject, reporting each
/// failed module through `progress` as it happens, and a progress line every 100 modules.
pub fn run(options: &Options, progress: &mut dyn FnMut(&str)) -> Summary {
    let subjects = all_subjects(options.pcc);
    let mut summary = Summary::default();
    for (n, seed) in (options.seed..options.seed.saturating_add(options.count)).enumerate() {
        if n > 0 && n % 100 == 0 {
            progress(&format!(
                "{n} modules: {} passed, {} failed",
                summary.passed, summary.failed
            ));
        }
        let args_seed = seed.rotate_left(17) ^ 0x5eed;
        let generated = match generate(seed) {
            Ok(g) => g,
            Err(e) => {
                summary.failed += 1;
                progress(&e);
                summary.failures.push(e);
                continue;
            }
        };
        summary.unsupported += generated.unsupported.len() as u64;
        if let Some(dir) = &options.save {
            let path = dir.join(format!("seed-{seed}.wasm"));
            if let Err(e) =
                std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, &generated.bytes))
            {
                progress(&format!("cannot write {}: {e}", path.display()));
            }
        }
        // A panic anywhere (translator, backends, runtime) is a failure of this module, not
        // the end of the run.
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            check(&generated.bytes, &subjects, args_seed)
        }));
        let report = match checked {
            Ok(r) => r,
            Err(panic) => {
                let line = format!("seed {seed}: panicked: {}", panic_message(&panic));
                summary.failed += 1;
                progress(&line);
                summary.failures.push(line);
                continue;
            }
        };
        if let Err(line) = run_mutants(seed, &generated.bytes, &mut summary) {
            summary.failed += 1;
            progress(&line);
            summary.failures.push(line);
            continue;
        }
        summary.runs += report.agreed as u64 + report.divergences.len() as u64;
        summary.calls += report.calls as u64;
        summary.returned += report.returned as u64;
        summary.out_of_bounds += report.out_of_bounds as u64;
        summary.exhausted += report.exhausted as u64;
        if let Some(why) = report.inconclusive {
            let line = format!("seed {seed}: the reference interpreter failed: {why}");
            summary.failed += 1;
            progress(&line);
            summary.failures.push(line);
            continue;
        }
        if report.divergences.is_empty() {
            summary.passed += 1;
            continue;
        }
        summary.failed += 1;
        for (i, r, o) in &report.divergences {
            let s = &subjects[*i];
            let line = format!("seed {seed}: {} diverges: reference {r}; {o}", s.name);
            progress(&line);
            summary.failures.push(line);
        }
        // One reproducer per module: the first diverging subject's.
        let s = &subjects[report.divergences[0].0];
        let bytes = if options.shrink {
            shrink(&generated.bytes, s, args_seed)
        } else {
            generated.bytes.clone()
        };
        let text = reproducer(seed, &bytes, generated.bytes.len(), s, args_seed);
        match write_reproducer(&options.out, seed, &text) {
            Ok(path) => {
                progress(&format!("  reproducer: {}", path.display()));
                summary.reproducers.push(path);
            }
            Err(e) => progress(&format!("  cannot write the reproducer: {e}")),
        }
    }
    summary
}

/// Mutants per generated module.
const MUTANTS: u64 = 2;

/// Runs [`MUTANTS`] byte-level mutants of `bytes` (bytes overwritten, inserted or removed) on
/// the reference interpreter and on our two backends: each must be rejected with an error or
/// run, never panic. `Err` names the mutant that panicked.
fn run_mutants(seed: u64, bytes: &[u8], summary: &mut Summary) -> Result<(), String> {
    let mut rng = SplitMix::new(seed ^ 0x6d75_7461_6e74);
    for m in 0..MUTANTS {
        let mut mutant = bytes.to_vec();
        for _ in 0..1 + rng.next_u64() % 4 {
            let at = (rng.next_u64() % (mutant.len() as u64 + 1)) as usize;
            let byte = rng.next_u64() as u8;
            match rng.next_u64() % 3 {
                0 if at < mutant.len() => mutant[at] = byte,
                1 => mutant.insert(at, byte),
                _ if at < mutant.len() => drop(mutant.remove(at)),
                _ => mutant.push(byte),
            }
        }
        summary.mutants += 1;
        if supported(&mutant).is_err() {
            continue;
        }
        summary.valid_mutants += 1;
        // The reference first: a mutant may have lost its fuel instrumentation, and only the
        // interpreter has a budget of its own. The backends run it only when it ended there.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            observe(&mutant, MemoryConfig::STATIC, reference(), seed)
        }));
        match ran {
            Err(panic) => {
                return Err(format!(
                    "seed {seed}: mutant {m} panicked on interp: {}",
                    panic_message(&panic)
                ))
            }
            Ok(events) if !conclusive(&events) => continue,
            Ok(_) => {}
        }
        // Pulley with the Spectre guard's form, x86_64 with the plain checks.
        for (name, spectre) in [("pulley64", true), ("x86_64", false)] {
            let settings = Settings {
                spectre,
                ..Settings::default()
            };
            let Ok(engine) = super::engine(name, settings, false, None) else {
                continue;
            };
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                observe(&mutant, MemoryConfig::STATIC, engine, seed)
            }));
            if let Err(panic) = ran {
                return Err(format!(
                    "seed {seed}: mutant {m} panicked on {name}: {}",
                    panic_message(&panic)
                ));
            }
        }
    }
    Ok(())
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(no message)".into())
}

fn write_reproducer(dir: &Path, seed: u64, text: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("seed-{seed}.wast"));
    std::fs::write(&path, text)?;
    Ok(path)
}
