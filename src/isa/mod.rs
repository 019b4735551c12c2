//! Backends: one folder per target with the same shape (`lower.isle` and `lower/` for
//! instruction selection, `inst.rs`, `abi.rs`, `emit.rs`, `run.rs`), on the shared machine
//! layer in [`crate::machinst`], and [`Backend`], the one enum every command, filetest, Wasm
//! engine and benchmark asks for compiling, linking and running code of a target.
//!
//! A new ISA is a new folder, its `Target` constant, and an arm in each of [`Backend`]'s
//! methods with its name in [`BACKEND_TARGETS`] (`build.rs` finds its `lower.isle` by itself).
//! aarch64 is in [`COMPILE_TARGETS`] only: it compiles and runs (on unicorn-engine), and
//! PCC covers it, but the SMT model of its lowerings is still to come.

pub mod aarch64;
pub mod pulley;
pub mod x64;

use crate::interpreter::{DataValue, Outcome, Trap};
use crate::ir::{Function, Signature, TrapCode, Type};
use crate::machinst::{CodegenError, CompiledCode};

/// The name generated code calls the host's `memory.grow` by (see [`Host::memory_grow`]).
pub const MEMORY_GROW: &str = "%memory_grow";

/// The name generated code calls an imported function by (see [`Host::call_import`]).
pub const CALL_IMPORT: &str = "%call_import";

/// The name generated code calls another instance's function by, through a reference (see
/// [`Host::call_ref`]).
pub const CALL_REF: &str = "%call_ref";

/// Every function of the host that generated code may call, by the names above.
pub const HOST_FUNCTIONS: [&str; 3] = [MEMORY_GROW, CALL_IMPORT, CALL_REF];

/// What generated code may call in the host while it runs.
pub trait Host {
    /// `memory.grow`: grows memory `index` of the instance whose vmctx is `vmctx` by `delta`
    /// pages; the old size in pages, or -1 when it cannot grow. An error ends the call (it
    /// is not a trap of the generated code).
    fn memory_grow(&mut self, vmctx: u64, index: u32, delta: u64) -> Result<i64, String>;

    /// Calls imported function `index` of the instance whose vmctx is `vmctx`, which put
    /// the arguments in its vmctx's call area (and finds the results there): `true` when
    /// the function returned, `false` when it did not (it trapped; the host keeps the trap
    /// for the caller's own trap to be reported as). An error ends the call.
    fn call_import(&mut self, vmctx: u64, index: u32) -> Result<bool, String>;

    /// `call_indirect` of a reference `bits` that is not one of the calling instance's own
    /// functions, expecting type `type_index` of the calling instance: as
    /// [`Host::call_import`] otherwise (a null reference or one of another type traps).
    fn call_ref(&mut self, vmctx: u64, type_index: u32, bits: u64) -> Result<bool, String>;
}

/// Calls host function `name` ([`HOST_FUNCTIONS`]) on `host` with `args`, the bits of its
/// parameters as generated code passes them, and gives the bits of its one result: the one
/// place that knows each host function's operands, for the runners that reach the host
/// through a generic stub (Pulley's `call_indirect_host`, the interpreter's host functions).
/// Native code calls the typed functions of [`crate::native`] instead.
pub(crate) fn call_host(host: &mut dyn Host, name: &str, args: &[u64]) -> Result<u64, String> {
    let arg = |i: usize| {
        args.get(i)
            .copied()
            .ok_or_else(|| format!("{name} called with {} arguments", args.len()))
    };
    // A call that did not return is 1, as generated code tests it.
    match name {
        MEMORY_GROW => host
            .memory_grow(arg(0)?, arg(1)? as u32, arg(2)?)
            .map(|old| old as u64),
        CALL_IMPORT => host
            .call_import(arg(0)?, arg(1)? as u32)
            .map(|returned| u64::from(!returned)),
        CALL_REF => host
            .call_ref(arg(0)?, arg(1)? as u32, arg(2)?)
            .map(|returned| u64::from(!returned)),
        _ => Err(format!("no host function {name}")),
    }
}

/// A host with no functions (CLIF files call none).
pub struct NoHost;

impl Host for NoHost {
    fn memory_grow(&mut self, _: u64, _: u32, _: u64) -> Result<i64, String> {
        Err(format!("{MEMORY_GROW} is not defined here"))
    }

    fn call_import(&mut self, _: u64, _: u32) -> Result<bool, String> {
        Err(format!("{CALL_IMPORT} is not defined here"))
    }

    fn call_ref(&mut self, _: u64, _: u32, _: u64) -> Result<bool, String> {
        Err(format!("{CALL_REF} is not defined here"))
    }
}

/// How a call into compiled code ended, for every runner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Returned these values.
    Returned(Vec<DataValue>),
    /// Trapped with this code.
    Trapped {
        /// The trap code.
        code: TrapCode,
        /// The backtrace, as far as the image could walk it: the function that trapped,
        /// then its callers outwards.
        frames: Vec<String>,
    },
}

impl Exit {
    /// The interpreter's outcome for this exit: a trap is located in the `label` code
    /// (`x86_64 code`) of the function that trapped, with its callers, of a call that
    /// entered at `entry`.
    pub fn into_outcome(self, label: &str, entry: &str) -> Outcome {
        match self {
            Exit::Returned(v) => Outcome::Returned(v),
            Exit::Trapped { code, frames } => {
                let mut location = match frames.first() {
                    Some(f) => format!("{label} of {f}"),
                    None => format!("{label} entered at {entry}"),
                };
                for f in frames.iter().skip(1) {
                    location += &format!(", called from {f}");
                }
                if frames.last().is_some_and(|f| f != entry) {
                    location += &format!(", entered at {entry}");
                }
                Outcome::Trapped(Trap { code, location })
            }
        }
    }
}

/// Where each piece of code of an image starts, what it is and whether it sets up a frame:
/// what naming a pc and walking a backtrace need.
#[derive(Default)]
pub(crate) struct FunctionMap {
    /// `(start offset, function name or None for a trampoline or stub, has a frame)`, by
    /// start.
    starts: Vec<(u64, Option<String>, bool)>,
}

impl FunctionMap {
    /// A map of `pieces`: start offset, name (`None`: not a function of the program), and
    /// whether it sets up a frame.
    pub(crate) fn new(pieces: impl IntoIterator<Item = (u64, Option<String>, bool)>) -> Self {
        let mut starts: Vec<_> = pieces.into_iter().collect();
        starts.sort_by_key(|p| p.0);
        FunctionMap { starts }
    }

    /// The piece whose code holds `offset`.
    fn at(&self, offset: u64) -> Option<&(u64, Option<String>, bool)> {
        let i = self.starts.partition_point(|p| p.0 <= offset);
        i.checked_sub(1).map(|i| &self.starts[i])
    }

    /// The backtrace of a trap at offset `pc`: its function, then the callers. `leaf_return`
    /// is where a function without a frame returns to (the link register, or the word at
    /// the stack pointer), `chain` the return addresses along the frame-pointer chain from
    /// the frame pointer at the trap (offsets; it ends at the first one outside the image).
    /// A function with a frame returns to the chain's first; one without to `leaf_return`,
    /// its caller's frame being the chain's start. The walk stops at a trampoline or stub.
    pub(crate) fn backtrace(
        &self,
        pc: u64,
        leaf_return: Option<u64>,
        chain: &[u64],
    ) -> Vec<String> {
        let Some((start, Some(name), framed)) = self.at(pc) else {
            return Vec::new();
        };
        let mut frames = vec![name.clone()];
        // A function trapping at its first instruction (setting up its frame overflowed
        // the stack) has no frame yet either.
        let first = if *framed && pc != *start {
            None
        } else {
            leaf_return
        };
        for ret in first.into_iter().chain(chain.iter().copied()) {
            match self.at(ret) {
                Some((_, Some(name), _)) => frames.push(name.clone()),
                _ => break,
            }
        }
        frames
    }

    /// [`Self::backtrace`] of a native trap at `pc` in an image placed at `base`, from the
    /// return addresses the signal handler found.
    pub(crate) fn native_backtrace(
        &self,
        base: u64,
        pc: u64,
        stack: &crate::native::StackWalk,
    ) -> Vec<String> {
        let chain: Vec<u64> = stack
            .chain()
            .iter()
            .map(|&a| a.wrapping_sub(base))
            .collect();
        let top = stack.top.wrapping_sub(base);
        self.backtrace(pc.wrapping_sub(base), Some(top), &chain)
    }
}

/// The 8-byte slots of the value array of an array-call trampoline of a function with
/// `sig`: one per argument or result, whichever are more, and at least one.
pub(crate) fn array_call_slots(sig: &Signature) -> usize {
    sig.params.len().max(sig.returns.len()).max(1)
}

/// The CLIF of the array-call trampoline of a function `name` with `sig`:
/// `(i64 ignored, i64 values)`, arguments and results in 8-byte slots of `values`, so that
/// the host can enter any signature (x86_64 enters every function so; Pulley those whose
/// parameters do not all fit its registers). The array is declared as the struct the
/// trampoline works in (its `vmctx`), so that proof-carrying code proves the trampoline's
/// accesses too. Each backend compiles it like any function.
pub(crate) fn array_call_trampoline(name: &str, sig: &Signature) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "function %trampoline(i64, i64 vmctx) system_v {{");
    let _ = writeln!(s, "    sig0 = {sig}");
    let _ = writeln!(s, "    fn0 = {name} sig0");
    let _ = writeln!(s, "    mt0 = struct {}, vmctx", 8 * array_call_slots(sig));
    let _ = writeln!(s, "\nblock0(v0: i64, v1: i64):");
    let mut args = Vec::new();
    for (i, p) in sig.params.iter().enumerate() {
        let _ = writeln!(
            s,
            "    v{} = load.{} notrap aligned v1+{}",
            i + 2,
            p.value_type,
            8 * i
        );
        args.push(format!("v{}", i + 2));
    }
    let first = sig.params.len() + 2;
    let results: Vec<String> = (0..sig.returns.len())
        .map(|j| format!("v{}", first + j))
        .collect();
    let call = format!("call fn0({})", args.join(", "));
    if results.is_empty() {
        let _ = writeln!(s, "    {call}");
    } else {
        let _ = writeln!(s, "    {} = {call}", results.join(", "));
    }
    for (j, r) in results.iter().enumerate() {
        let _ = writeln!(s, "    store notrap aligned {r}, v1+{}", 8 * j);
    }
    let _ = writeln!(s, "    return\n}}");
    s
}

/// Functions compiled by one backend and linked together, ready to run.
pub trait Image {
    /// Bytes of the functions' code.
    fn code_size(&self) -> usize;
    /// Calls function `name` with `args` and reads results of types `rets`; a trap of the
    /// generated code is [`Exit::Trapped`], anything else that stops it an error. The host
    /// may call into the image again while the call runs (an imported function that calls
    /// back through a shared table), so a call keeps what it mutates to itself.
    fn call(
        &self,
        name: &str,
        args: &[DataValue],
        rets: &[Type],
        host: &mut dyn Host,
    ) -> Result<Exit, String>;
}

/// The backends, by target name.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    /// `pulley64`.
    Pulley(pulley::PulleyBackend),
    /// `x86_64`.
    X64(x64::X64Backend),
    /// `aarch64` (runs on unicorn-engine, feature `aarch64-run`).
    Aarch64(aarch64::Aarch64Backend),
}

/// The names of the targets with a backend that compiles and runs: what the filetests, Wasm
/// engines, proofs and benchmarks iterate.
pub const BACKEND_TARGETS: &[&str] = &["pulley64", "x86_64"];

/// The names of the targets [`Backend::for_target`] knows: [`BACKEND_TARGETS`] and aarch64,
/// which every runnable path ([`Backend::runnable`]), the PCC corpus survey and the mutants
/// include, but not the SMT lowering proofs (no `smt.rs` for it yet).
pub const COMPILE_TARGETS: &[&str] = &["pulley64", "x86_64", "aarch64"];

impl Backend {
    /// The backend of `target`, with `enable_heap_access_spectre_mitigation` as given.
    pub fn for_target(target: &str, spectre: bool) -> Result<Backend, String> {
        match target {
            "pulley64" => Ok(Backend::Pulley(pulley::PulleyBackend {
                spectre,
                pcc: false,
            })),
            "x86_64" => Ok(Backend::X64(x64::X64Backend {
                spectre,
                pcc: false,
            })),
            "aarch64" => Ok(Backend::Aarch64(aarch64::Aarch64Backend {
                spectre,
                pcc: false,
                csdb: spectre,
            })),
            t => Err(format!(
                "no backend for target `{t}` (available: {})",
                COMPILE_TARGETS.join(", ")
            )),
        }
    }

    /// Every backend whose code runs on this host, with the given Spectre setting.
    pub fn runnable(spectre: bool) -> Vec<Backend> {
        COMPILE_TARGETS
            .iter()
            .filter_map(|t| Backend::for_target(t, spectre).ok())
            .filter(Backend::runs_here)
            .collect()
    }

    /// The target's name.
    pub fn name(&self) -> &'static str {
        use crate::machinst::lower::Backend as _;
        match self {
            Backend::Pulley(_) => pulley::PulleyBackend::NAME,
            Backend::X64(_) => x64::X64Backend::NAME,
            Backend::Aarch64(_) => aarch64::Aarch64Backend::NAME,
        }
    }

    /// The same backend with `enable_pcc` as given: proof-carrying code checks every
    /// function it compiles (see [`crate::machinst::pcc`]).
    pub fn with_pcc(self, pcc: bool) -> Backend {
        match self {
            Backend::Pulley(b) => Backend::Pulley(pulley::PulleyBackend { pcc, ..b }),
            Backend::X64(b) => Backend::X64(x64::X64Backend { pcc, ..b }),
            Backend::Aarch64(b) => Backend::Aarch64(aarch64::Aarch64Backend { pcc, ..b }),
        }
    }

    /// `enable_pcc`.
    pub fn pcc(&self) -> bool {
        match self {
            Backend::Pulley(b) => b.pcc,
            Backend::X64(b) => b.pcc,
            Backend::Aarch64(b) => b.pcc,
        }
    }

    /// `enable_heap_access_spectre_mitigation`.
    pub fn spectre(&self) -> bool {
        match self {
            Backend::Pulley(b) => b.spectre,
            Backend::X64(b) => b.spectre,
            Backend::Aarch64(b) => b.spectre,
        }
    }

    /// Whether [`Backend::link`]'s code can run on this host: Pulley's everywhere, x86_64's
    /// natively on x86_64 Linux.
    pub fn runs_here(&self) -> bool {
        match self {
            Backend::Pulley(_) => true,
            Backend::X64(_) => cfg!(all(target_arch = "x86_64", target_os = "linux")),
            Backend::Aarch64(_) => cfg!(all(
                feature = "aarch64-run",
                target_os = "linux",
                target_arch = "x86_64"
            )),
        }
    }

    /// Compiles one function.
    pub fn compile(&self, func: &Function) -> Result<CompiledCode, CodegenError> {
        match self {
            Backend::Pulley(b) => pulley::compile(func, b),
            Backend::X64(b) => x64::compile(func, b),
            Backend::Aarch64(b) => aarch64::compile(func, b),
        }
    }

    /// The disassembly of compiled code, one instruction per line.
    pub fn disassemble(&self, code: &[u8]) -> String {
        match self {
            Backend::Pulley(_) => pulley::disassemble(code),
            Backend::X64(_) => x64::disassemble(code),
            Backend::Aarch64(_) => aarch64::disassemble(code),
        }
    }

    /// Compiles `funcs` and links them into one image; a call to a name that is not among
    /// them goes to the host ([`HOST_FUNCTIONS`]).
    pub fn link(&self, funcs: &[&Function]) -> Result<Box<dyn Image>, String> {
        let name = self.name();
        match self {
            Backend::Pulley(b) => {
                let mut compiled = Vec::new();
                for f in funcs {
                    let code =
                        pulley::compile(f, b).map_err(|e| format!("{name}: {}: {e}", f.name))?;
                    compiled.push((f.name.clone(), code));
                    // `pulley-interpreter` passes a call's arguments in registers only.
                    if pulley::run::needs_array_call(&f.signature) {
                        let text = array_call_trampoline(&f.name, &f.signature);
                        let t = crate::parser::parse_function(&text).map_err(|d| {
                            format!("{name}: the trampoline of {}: {}", f.name, d.message)
                        })?;
                        let code = pulley::compile(&t, b)
                            .map_err(|e| format!("{name}: the trampoline of {}: {e}", f.name))?;
                        compiled.push((pulley::run::array_call_name(&f.name), code));
                    }
                }
                Ok(Box::new(pulley::run::PulleyRun::new(
                    pulley::run::PulleyImage::link(compiled)?,
                )?))
            }
            #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
            Backend::X64(b) => Ok(Box::new(
                x64::run::X64Image::build(funcs, b).map_err(|e| format!("{name}: {e}"))?,
            )),
            #[cfg(all(feature = "aarch64-run", target_os = "linux", target_arch = "x86_64"))]
            Backend::Aarch64(b) => Ok(Box::new(
                aarch64::run::Aarch64Image::build(funcs, b).map_err(|e| format!("{name}: {e}"))?,
            )),
            #[allow(unreachable_patterns)]
            _ => Err(format!("{name} code cannot run on this host")),
        }
    }
}
