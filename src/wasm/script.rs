//! A runner for `.wast` scripts (the WebAssembly spec test format) over the runtime.
//!
//! Each script gets its own [`Store`] and the usual `spectest` module (a memory of 1 to 2
//! pages and the `global_*` globals). Every assertion is one result: passed, failed (with a
//! line saying where and why) or skipped (with the reason).

use super::module;
use super::runtime::{Engine, Extern, HostFunction, InstantiationError, Store};
use super::{trap_message, MemoryConfig};
use crate::interpreter::{DataValue, Outcome};
use crate::ir::{types, TrapCode};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use wast::core::{NanPattern, WastArgCore, WastRetCore};
use wast::parser::{self, ParseBuffer};
use wast::{QuoteWat, Wast, WastArg, WastDirective, WastExecute, WastInvoke, WastRet};

/// The outcome of one or more scripts.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Assertions and commands that behaved as expected.
    pub passed: usize,
    /// One line per failure: `file:line:col: what went wrong`.
    pub failures: Vec<String>,
    /// One line per skipped directive, with the reason.
    pub skips: Vec<String>,
}

impl Report {
    /// Adds another report's counts and lines.
    pub fn merge(&mut self, other: Report) {
        self.passed += other.passed;
        self.failures.extend(other.failures);
        self.skips.extend(other.skips);
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{} passed, {} failed, {} skipped",
            self.passed,
            self.failures.len(),
            self.skips.len()
        )
    }
}

/// Makes a fresh engine for each script.
pub type EngineFactory<'a> = dyn Fn() -> Result<Box<dyn Engine>, String> + 'a;

/// Runs every `.wast` file under `paths` (directories recursively, in name order), each in
/// a store of its own.
pub fn run_paths(
    paths: &[PathBuf],
    config: MemoryConfig,
    make: &EngineFactory,
) -> Result<Report, String> {
    let mut files = Vec::new();
    for p in paths {
        collect(p, &mut files).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    let mut report = Report::default();
    for file in files {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        report.merge(run_script(&file, &text, config, make()?));
    }
    Ok(report)
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        entries.sort();
        for p in entries {
            if p.is_dir() || p.extension().is_some_and(|x| x == "wast") {
                collect(&p, out)?;
            }
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

/// Runs one script's text; `path` names it in messages.
pub fn run_script(
    path: &Path,
    text: &str,
    config: MemoryConfig,
    engine: Box<dyn Engine>,
) -> Report {
    let mut report = Report::default();
    let buf = match ParseBuffer::new(text) {
        Ok(b) => b,
        Err(mut e) => {
            e.set_path(path);
            e.set_text(text);
            report.failures.push(format!("{e}"));
            return report;
        }
    };
    let wast = match parser::parse::<Wast>(&buf) {
        Ok(w) => w,
        Err(mut e) => {
            e.set_path(path);
            e.set_text(text);
            report.failures.push(format!("{e}"));
            return report;
        }
    };
    let mut runner = match Runner::new(config, engine) {
        Ok(r) => r,
        Err(e) => {
            report.failures.push(format!(
                "{}: cannot set up the spectest module: {e}",
                path.display()
            ));
            return report;
        }
    };
    for directive in wast.directives {
        let (line, col) = directive.span().linecol_in(text);
        let at = format!("{}:{}:{}", path.display(), line + 1, col + 1);
        match runner.directive(directive) {
            Ok(Verdict::Pass) => report.passed += 1,
            Ok(Verdict::Skip(why)) => report.skips.push(format!("{at}: skipped: {why}")),
            Err(why) => report.failures.push(format!("{at}: {why}")),
        }
    }
    report
}

enum Verdict {
    Pass,
    Skip(String),
}

struct Runner {
    store: Store,
    /// Instances by `$name`.
    named: HashMap<String, usize>,
    /// Module definitions by `$name`, for `(module instance ...)`.
    definitions: HashMap<String, Vec<u8>>,
    /// The most recent instance.
    current: Option<usize>,
    /// Why the most recent module has no instance, when it failed or was skipped.
    current_gone: Option<Gone>,
    /// Why each module with a `$name` that failed or was skipped has no instance.
    named_gone: HashMap<String, Gone>,
    /// Registered module names: an instance, or the host's spectest items.
    registered: HashMap<String, Registered>,
}

/// Why a module has no instance: what directives against it report.
#[derive(Clone)]
enum Gone {
    /// It is beyond Wasm 2.0 and failed: they are skipped too.
    Skipped(String),
    /// It failed: they fail, saying why.
    Failed(String),
}

enum Registered {
    Instance(usize),
    Host(HashMap<&'static str, Extern>),
}

impl Runner {
    fn new(config: MemoryConfig, engine: Box<dyn Engine>) -> Result<Runner, String> {
        let mut store = Store::new(config, engine);
        let memory = store.create_memory(wasmparser::MemoryType {
            memory64: false,
            shared: false,
            initial: 1,
            maximum: Some(2),
            page_size_log2: None,
        })?;
        let global = |content_type, bits| Extern::Global {
            ty: wasmparser::GlobalType {
                content_type,
                mutable: false,
                shared: false,
            },
            bits,
        };
        let table_type = wasmparser::TableType {
            element_type: wasmparser::RefType::FUNCREF,
            table64: false,
            initial: 10,
            maximum: Some(20),
            shared: false,
        };
        let table = Extern::Table {
            memory: store.create_table(table_type)?,
            ty: table_type,
        };
        use wasmparser::ValType;
        // The `print*` functions take their arguments and print nothing: a script's output
        // is its verdicts.
        let print = |params: &[ValType]| {
            Extern::Host(Rc::new(HostFunction {
                ty: wasmparser::FuncType::new(params.iter().copied(), []),
                run: Box::new(|_, _, _| Ok(Vec::new())),
            }))
        };
        let spectest = HashMap::from([
            ("memory", Extern::Memory(memory)),
            ("table", table),
            ("print", print(&[])),
            ("print_i32", print(&[ValType::I32])),
            ("print_i64", print(&[ValType::I64])),
            ("print_f32", print(&[ValType::F32])),
            ("print_f64", print(&[ValType::F64])),
            ("print_i32_f32", print(&[ValType::I32, ValType::F32])),
            ("print_f64_f64", print(&[ValType::F64, ValType::F64])),
            ("global_i32", global(ValType::I32, 666)),
            ("global_i64", global(ValType::I64, 666)),
            (
                "global_f32",
                global(ValType::F32, u64::from(666.6f32.to_bits())),
            ),
            ("global_f64", global(ValType::F64, 666.6f64.to_bits())),
        ]);
        Ok(Runner {
            store,
            named: HashMap::new(),
            definitions: HashMap::new(),
            current: None,
            current_gone: None,
            named_gone: HashMap::new(),
            registered: HashMap::from([("spectest".to_string(), Registered::Host(spectest))]),
        })
    }

    /// The verdict on `d` when the module it runs against has no instance: a skip if that
    /// module was skipped, a failure naming why it failed otherwise.
    fn gone_target(&self, d: &WastDirective) -> Option<Result<Verdict, String>> {
        use WastDirective as D;
        let module = match d {
            D::Invoke(i)
            | D::AssertReturn {
                exec: WastExecute::Invoke(i),
                ..
            }
            | D::AssertTrap {
                exec: WastExecute::Invoke(i),
                ..
            }
            | D::AssertExhaustion { call: i, .. } => i.module,
            D::AssertReturn {
                exec: WastExecute::Get { module, .. },
                ..
            }
            | D::Register { module, .. } => *module,
            _ => return None,
        };
        let gone = match module {
            Some(m) => self.named_gone.get(m.name())?,
            None if self.current.is_none() => self.current_gone.as_ref()?,
            None => return None,
        };
        Some(match gone {
            Gone::Skipped(why) => Ok(Verdict::Skip(format!("its module was skipped ({why})"))),
            Gone::Failed(why) => Err(format!("its module failed ({why})")),
        })
    }

    /// The verdict on a module that failed to instantiate with `e`: a skip when it is
    /// beyond Wasm 2.0 and uses something the translator does not support, with both
    /// reasons, and a failure otherwise (a module of a supported proposal, such as several
    /// memories, that fails to compile has failed).
    fn failed_module(bytes: &[u8], e: impl fmt::Display) -> Gone {
        match module::beyond_wasm2(bytes) {
            Some(why) if super::translate::supported(bytes).is_err() => {
                Gone::Skipped(format!("beyond Wasm 2.0 ({why}), and failed: {e}"))
            }
            _ => Gone::Failed(format!("module failed to instantiate: {e}")),
        }
    }

    /// Instantiates `bytes` as the current module, named `name` if given: what later
    /// directives run against, or why they cannot.
    fn start_module(&mut self, name: Option<String>, bytes: &[u8]) -> Result<Verdict, String> {
        self.current = None;
        self.current_gone = None;
        if let Some(name) = &name {
            self.named.remove(name);
            self.named_gone.remove(name);
        }
        let instance = match self.instantiate(bytes) {
            Ok(i) => i,
            Err(e) => {
                let gone = Self::failed_module(bytes, e);
                self.current_gone = Some(gone.clone());
                if let Some(name) = name {
                    self.named_gone.insert(name, gone.clone());
                }
                return match gone {
                    Gone::Skipped(why) => Ok(Verdict::Skip(why)),
                    Gone::Failed(why) => Err(why),
                };
            }
        };
        self.current = Some(instance);
        if let Some(name) = name {
            self.named.insert(name, instance);
        }
        Ok(Verdict::Pass)
    }

    fn directive(&mut self, d: WastDirective) -> Result<Verdict, String> {
        use WastDirective as D;
        if let Some(verdict) = self.gone_target(&d) {
            return verdict;
        }
        match d {
            D::Module(mut m) => {
                let name = m.name().map(|id| id.name().to_string());
                let bytes = encode(&mut m)?;
                self.start_module(name, &bytes)
            }
            D::ModuleDefinition(mut m) => {
                let name = m.name().map(|id| id.name().to_string());
                let bytes = encode(&mut m)?;
                module::parse(&bytes).map_err(|e| format!("module definition: {e}"))?;
                self.definitions.insert(name.unwrap_or_default(), bytes);
                Ok(Verdict::Pass)
            }
            D::ModuleInstance {
                instance, module, ..
            } => {
                let key = module.map(|m| m.name().to_string()).unwrap_or_default();
                let bytes = self
                    .definitions
                    .get(&key)
                    .cloned()
                    .ok_or_else(|| format!("no module definition named `{key}`"))?;
                self.start_module(instance.map(|id| id.name().to_string()), &bytes)
            }
            D::Register { name, module, .. } => {
                let i = self.instance(module.map(|m| m.name()))?;
                self.registered
                    .insert(name.to_string(), Registered::Instance(i));
                Ok(Verdict::Pass)
            }
            D::Invoke(invoke) => {
                self.invoke(&invoke)?;
                Ok(Verdict::Pass)
            }
            D::AssertReturn { exec, results, .. } => {
                // A numbered function reference in the results is one of this module's.
                let module = match &exec {
                    WastExecute::Invoke(invoke) => invoke.module,
                    WastExecute::Get { module, .. } => *module,
                    WastExecute::Wat(_) => None,
                };
                let refs = self
                    .instance(module.map(|m| m.name()))
                    .map(|i| self.store.func_refs(i));
                let got = match exec {
                    WastExecute::Invoke(invoke) => match self.invoke(&invoke)? {
                        Outcome::Returned(v) => v,
                        Outcome::Trapped(t) => {
                            return Err(format!(
                                "assert_return: `{}` trapped with {} ({}) at {}",
                                invoke.name,
                                t.code,
                                message_of(t.code),
                                t.location
                            ))
                        }
                    },
                    WastExecute::Get { module, global, .. } => {
                        let i = self.instance(module.map(|m| m.name()))?;
                        let value = match self.store.export(i, global) {
                            Some(Extern::Global { ty, bits }) => Some((ty, bits)),
                            Some(Extern::MutableGlobal { ty, memory }) => {
                                Some((ty, self.store.cell_value(memory)))
                            }
                            _ => None,
                        };
                        match value {
                            Some((ty, bits)) => {
                                let ty = module::clif_type(ty.content_type)
                                    .map_err(|e| e.to_string())?;
                                vec![DataValue::new(ty, bits & ty.mask())]
                            }
                            _ => return Err(format!("no global export named `{global}`")),
                        }
                    }
                    WastExecute::Wat(_) => {
                        return Ok(Verdict::Skip(
                            "assert_return of a module instantiation".into(),
                        ))
                    }
                };
                check_results(&results, &got, refs.unwrap_or_default())
            }
            D::AssertTrap { exec, message, .. } => match exec {
                WastExecute::Invoke(invoke) => match self.invoke(&invoke)? {
                    Outcome::Trapped(t) if trap_matches(t.code, message) => Ok(Verdict::Pass),
                    Outcome::Trapped(t) => Err(format!(
                        "assert_trap: expected \"{message}\", `{}` trapped with {} ({})",
                        invoke.name,
                        t.code,
                        message_of(t.code)
                    )),
                    Outcome::Returned(v) => Err(format!(
                        "assert_trap: expected \"{message}\", `{}` returned {}",
                        invoke.name,
                        show_values(&v)
                    )),
                },
                WastExecute::Wat(wat) => {
                    let bytes = encode(&mut QuoteWat::Wat(wat))?;
                    match self.instantiate(&bytes) {
                        Err(InstantiationError::Trap(c)) if trap_matches(c, message) => {
                            Ok(Verdict::Pass)
                        }
                        Err(e) => Err(format!(
                            "assert_trap: expected instantiation to trap with \"{message}\", got {e}"
                        )),
                        Ok(_) => Err(format!(
                            "assert_trap: expected instantiation to trap with \"{message}\", it succeeded"
                        )),
                    }
                }
                WastExecute::Get { .. } => Err("assert_trap on a global read".into()),
            },
            D::AssertExhaustion { call, message, .. } => match self.invoke(&call)? {
                Outcome::Trapped(t) if t.code == TrapCode::STACK_OVERFLOW => Ok(Verdict::Pass),
                other => Err(format!(
                    "assert_exhaustion: expected \"{message}\", got {}",
                    show_outcome(&other)
                )),
            },
            D::AssertInvalid {
                mut module,
                message,
                ..
            } => {
                let bytes = match module.encode() {
                    Ok(b) => b,
                    // Some invalid modules cannot even be encoded (unknown names, say).
                    Err(_) => return Ok(Verdict::Pass),
                };
                match module::parse(&bytes) {
                    Err(e) if e.invalid => Ok(Verdict::Pass),
                    Err(e) => Err(format!(
                        "assert_invalid: expected \"{message}\", got a non-validation error: {e}"
                    )),
                    Ok(_) => Err(format!(
                        "assert_invalid: expected \"{message}\", the module validated"
                    )),
                }
            }
            D::AssertMalformed {
                mut module,
                message,
                ..
            } => match module.encode() {
                Err(_) => Ok(Verdict::Pass),
                Ok(bytes) => match module::parse(&bytes) {
                    Err(e) if e.invalid => Ok(Verdict::Pass),
                    _ => Err(format!(
                        "assert_malformed: expected \"{message}\", the module was accepted"
                    )),
                },
            },
            D::AssertUnlinkable {
                module, message, ..
            } => {
                let bytes = encode(&mut QuoteWat::Wat(module))?;
                match self.instantiate(&bytes) {
                    Err(InstantiationError::Link(_)) => Ok(Verdict::Pass),
                    Err(e) => Err(format!(
                        "assert_unlinkable: expected \"{message}\", got {e}"
                    )),
                    Ok(_) => Err(format!(
                        "assert_unlinkable: expected \"{message}\", the module linked"
                    )),
                }
            }
            D::AssertInvalidCustom { .. } | D::AssertMalformedCustom { .. } => Ok(Verdict::Skip(
                "custom-section assertions are outside linear memory".into(),
            )),
            D::AssertException { .. } => {
                Ok(Verdict::Skip("exceptions are outside linear memory".into()))
            }
            D::AssertSuspension { .. } => Ok(Verdict::Skip(
                "stack switching is outside linear memory".into(),
            )),
            D::Thread(_) | D::Wait { .. } => {
                Ok(Verdict::Skip("threads are outside this runtime".into()))
            }
        }
    }

    fn instance(&self, name: Option<&str>) -> Result<usize, String> {
        match name {
            Some(n) => self
                .named
                .get(n)
                .copied()
                .ok_or_else(|| format!("no module named `{n}`")),
            None => self
                .current
                .ok_or_else(|| "no module is instantiated".to_string()),
        }
    }

    fn instantiate(&mut self, bytes: &[u8]) -> Result<usize, InstantiationError> {
        let registered = &self.registered;
        let store_ptr: *const Store = &self.store;
        let resolve = |module: &str, field: &str| -> Option<Extern> {
            match registered.get(module)? {
                Registered::Host(items) => items.get(field).cloned(),
                // SAFETY: the resolver runs inside `instantiate`, which only reads other
                // instances' exports through it; no instance is added while it runs.
                Registered::Instance(i) => unsafe { (*store_ptr).export(*i, field) },
            }
        };
        self.store.instantiate(bytes, &resolve)
    }

    fn invoke(&mut self, invoke: &WastInvoke) -> Result<Outcome, String> {
        let i = self.instance(invoke.module.map(|m| m.name()))?;
        let Some(Extern::Func { index, .. }) = self.store.export(i, invoke.name) else {
            return Err(format!("no function export named `{}`", invoke.name));
        };
        let args = invoke
            .args
            .iter()
            .map(arg_value)
            .collect::<Result<Vec<_>, _>>()?;
        self.store
            .call(i, index, &args)
            .map_err(|e| format!("`{}`: {e}", invoke.name))
    }
}

fn encode(m: &mut QuoteWat) -> Result<Vec<u8>, String> {
    m.encode()
        .map_err(|e| format!("cannot encode the module: {e}"))
}

fn arg_value(a: &WastArg) -> Result<DataValue, String> {
    Ok(match a {
        WastArg::Core(WastArgCore::I32(v)) => DataValue::new(types::I32, u64::from(*v as u32)),
        WastArg::Core(WastArgCore::I64(v)) => DataValue::new(types::I64, *v as u64),
        WastArg::Core(WastArgCore::F32(v)) => DataValue::new(types::F32, u64::from(v.bits)),
        WastArg::Core(WastArgCore::F64(v)) => DataValue::new(types::F64, v.bits),
        WastArg::Core(WastArgCore::RefNull(_)) => DataValue::new(types::I64, 0),
        WastArg::Core(WastArgCore::RefExtern(n)) => {
            DataValue::new(types::I64, module::extern_ref_bits(*n))
        }
        other => return Err(format!("unsupported argument {other:?}")),
    })
}

fn ret_matches(expected: &WastRetCore, got: &DataValue, refs: u64) -> Result<bool, String> {
    Ok(match expected {
        WastRetCore::I32(v) => got.ty == types::I32 && got.bits == u64::from(*v as u32),
        WastRetCore::I64(v) => got.ty == types::I64 && got.bits == *v as u64,
        WastRetCore::F32(p) => got.ty == types::F32 && nan_matches(p.clone_bits(), got.bits, 32),
        WastRetCore::F64(p) => got.ty == types::F64 && nan_matches(p.clone_bits(), got.bits, 64),
        // References are 64 bits with null 0 (see `module::clif_type`).
        WastRetCore::RefNull(_) => got.ty == types::I64 && got.bits == 0,
        WastRetCore::RefExtern(None) | WastRetCore::RefFunc(None) => {
            got.ty == types::I64 && got.bits != 0
        }
        WastRetCore::RefExtern(Some(n)) => {
            got.ty == types::I64 && got.bits == module::extern_ref_bits(*n)
        }
        WastRetCore::RefFunc(Some(wast::token::Index::Num(f, _))) => {
            got.ty == types::I64 && got.bits == module::func_ref_bits(refs, *f)
        }
        WastRetCore::Either(cases) => {
            for c in cases {
                if ret_matches(c, got, refs)? {
                    return Ok(true);
                }
            }
            false
        }
        other => return Err(format!("unsupported expected result {other:?}")),
    })
}

/// A NaN pattern with the value as raw bits.
trait NanBits {
    fn clone_bits(&self) -> NanPattern<u64>;
}

impl NanBits for NanPattern<wast::token::F32> {
    fn clone_bits(&self) -> NanPattern<u64> {
        match self {
            NanPattern::CanonicalNan => NanPattern::CanonicalNan,
            NanPattern::ArithmeticNan => NanPattern::ArithmeticNan,
            NanPattern::Value(v) => NanPattern::Value(u64::from(v.bits)),
        }
    }
}

impl NanBits for NanPattern<wast::token::F64> {
    fn clone_bits(&self) -> NanPattern<u64> {
        match self {
            NanPattern::CanonicalNan => NanPattern::CanonicalNan,
            NanPattern::ArithmeticNan => NanPattern::ArithmeticNan,
            NanPattern::Value(v) => NanPattern::Value(v.bits),
        }
    }
}

/// The spec's NaN patterns: canonical NaNs have only the top mantissa bit set (either
/// sign); arithmetic NaNs have at least that bit set.
fn nan_matches(p: NanPattern<u64>, bits: u64, width: u32) -> bool {
    let (exp_and_quiet, quiet_only) = if width == 32 {
        (0x7fc0_0000u64, 0x7fff_ffffu64)
    } else {
        (0x7ff8_0000_0000_0000, 0x7fff_ffff_ffff_ffff)
    };
    match p {
        NanPattern::CanonicalNan => bits & quiet_only == exp_and_quiet,
        NanPattern::ArithmeticNan => bits & exp_and_quiet == exp_and_quiet,
        NanPattern::Value(v) => bits == v,
    }
}

/// Whether `got` is `expected`; a numbered function reference is one of the instance whose
/// references start after `refs`.
fn check_results(expected: &[WastRet], got: &[DataValue], refs: u64) -> Result<Verdict, String> {
    let mismatch = || {
        format!(
            "assert_return: expected {}, got {}",
            expected
                .iter()
                .map(|r| format!("{r:?}"))
                .collect::<Vec<_>>()
                .join(" "),
            show_values(got)
        )
    };
    if expected.len() != got.len() {
        return Err(mismatch());
    }
    for (e, g) in expected.iter().zip(got) {
        let WastRet::Core(e) = e else {
            return Ok(Verdict::Skip("component-model results".into()));
        };
        if !ret_matches(e, g, refs)? {
            return Err(mismatch());
        }
    }
    Ok(Verdict::Pass)
}

fn trap_matches(code: TrapCode, expected: &str) -> bool {
    super::trap_messages(code)
        .iter()
        .any(|m| m.starts_with(expected) || expected.starts_with(m))
}

fn message_of(code: TrapCode) -> &'static str {
    trap_message(code).unwrap_or("not a Wasm trap")
}

fn show_values(v: &[DataValue]) -> String {
    let items: Vec<String> = v
        .iter()
        .map(|d| format!("{}:{:#x}", d.ty, d.bits))
        .collect();
    format!("[{}]", items.join(", "))
}

fn show_outcome(o: &Outcome) -> String {
    match o {
        Outcome::Returned(v) => format!("a return of {}", show_values(v)),
        Outcome::Trapped(t) => format!("a trap {} ({})", t.code, message_of(t.code)),
    }
}
