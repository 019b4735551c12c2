//! The `pulley64` backend: Pulley bytecode for `pulley-interpreter` 48.0.8.

pub mod abi;
pub mod emit;
pub mod inst;
pub mod lower;
pub mod pcc;
pub mod run;
#[cfg(feature = "prove")]
pub mod smt;

use crate::ir::Function;
use crate::machinst::{CodegenError, CompiledCode};
pub use lower::PulleyBackend;

/// Compiles one function to Pulley bytecode (after the shared mid-end passes, see
/// [`crate::machinst::lower::optimize_and_lower`]).
pub fn compile(func: &Function, backend: &PulleyBackend) -> Result<CompiledCode, CodegenError> {
    crate::machinst::pcc::compile(func, backend, emit::emit)
}

/// The disassembly of `code`, one instruction per line with its offset.
pub fn disassemble(code: &[u8]) -> String {
    match pulley_interpreter::disas::Disassembler::disassemble_all(code) {
        Ok(text) => text,
        Err(e) => format!("<undecodable bytecode: {e:?}>"),
    }
}
