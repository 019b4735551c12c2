//! Backends: one folder per target with the same shape (`lower.isle` and `lower/` for
//! instruction selection, `inst.rs`, `abi.rs`, `emit.rs`, `run.rs`), on the shared machine
//! layer in [`crate::machinst`], and [`Backend`], the one enum every command, filetest, Wasm
//! engine and benchmark asks for compiling, linking and running code of a target.
//!
//! A new ISA is a new folder, its `Target` constant, and an arm in each of [`Backend`]'s
//! methods with its name in [`BACKEND_TARGETS`] (`build.rs` finds its `lower.isle` by itself).

pub mod pulley;
pub mod x64;

use crate::interpreter::{DataValue, Outcome, Trap};
use crate::ir::{Function, TrapCode, Type};
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
    Trapped(TrapCode),
}

impl Exit {
    /// The interpreter's outcome for this exit; a trap is located at `location()`.
    pub fn into_outcome(self, location: impl FnOnce() -> String) -> Outcome {
        match self {
            Exit::Returned(v) => Outcome::Returned(v),
            Exit::Trapped(code) => Outcome::Trapped(Trap {
                code,
                location: location(),
            }),
        }
    }
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
}

/// The names of the targets with a backend.
pub const BACKEND_TARGETS: &[&str] = &["pulley64", "x86_64"];

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
            t => Err(format!(
                "no backend for target `{t}` (available: {})",
                BACKEND_TARGETS.join(", ")
            )),
        }
    }

    /// Every backend whose code runs on this host, with the given Spectre setting.
    pub fn runnable(spectre: bool) -> Vec<Backend> {
        BACKEND_TARGETS
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
        }
    }

    /// The same backend with `enable_pcc` as given: proof-carrying code checks every
    /// function it compiles (see [`crate::machinst::pcc`]).
    pub fn with_pcc(self, pcc: bool) -> Backend {
        match self {
            Backend::Pulley(b) => Backend::Pulley(pulley::PulleyBackend { pcc, ..b }),
            Backend::X64(b) => Backend::X64(x64::X64Backend { pcc, ..b }),
        }
    }

    /// `enable_pcc`.
    pub fn pcc(&self) -> bool {
        match self {
            Backend::Pulley(b) => b.pcc,
            Backend::X64(b) => b.pcc,
        }
    }

    /// `enable_heap_access_spectre_mitigation`.
    pub fn spectre(&self) -> bool {
        match self {
            Backend::Pulley(b) => b.spectre,
            Backend::X64(b) => b.spectre,
        }
    }

    /// Whether [`Backend::link`]'s code can run on this host: Pulley's everywhere, x86_64's
    /// natively on x86_64 Linux.
    pub fn runs_here(&self) -> bool {
        match self {
            Backend::Pulley(_) => true,
            Backend::X64(_) => cfg!(all(target_arch = "x86_64", target_os = "linux")),
        }
    }

    /// Compiles one function.
    pub fn compile(&self, func: &Function) -> Result<CompiledCode, CodegenError> {
        match self {
            Backend::Pulley(b) => pulley::compile(func, b),
            Backend::X64(b) => x64::compile(func, b),
        }
    }

    /// The disassembly of compiled code, one instruction per line.
    pub fn disassemble(&self, code: &[u8]) -> String {
        match self {
            Backend::Pulley(_) => pulley::disassemble(code),
            Backend::X64(_) => x64::disassemble(code),
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
                }
                Ok(Box::new(pulley::run::PulleyRun::new(
                    pulley::run::PulleyImage::link(compiled)?,
                )?))
            }
            #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
            Backend::X64(b) => Ok(Box::new(
                x64::run::X64Image::build(funcs, b).map_err(|e| format!("{name}: {e}"))?,
            )),
            #[allow(unreachable_patterns)]
            _ => Err(format!("{name} code cannot run on this host")),
        }
    }
}
