//! Backends: one folder per target with the same shape (ISLE lowering rules, machine
//! instructions, emission), on the shared machine layer in [`crate::machinst`].

pub mod pulley;
pub mod x64;

use crate::ir::Function;
use crate::machinst::{CodegenError, CompiledCode};

/// The backends, by target name, for the commands and tests that serve every target.
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
            "pulley64" => Ok(Backend::Pulley(pulley::PulleyBackend { spectre })),
            "x86_64" => Ok(Backend::X64(x64::X64Backend { spectre })),
            t => Err(format!(
                "no backend for target `{t}` (available: {})",
                BACKEND_TARGETS.join(", ")
            )),
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
}
