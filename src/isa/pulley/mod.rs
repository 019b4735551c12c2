//! The `pulley64` backend: Pulley bytecode for `pulley-interpreter` 48.0.8.

pub mod emit;
pub mod inst;
pub mod lower;
pub mod run;

use crate::ir::Function;
use crate::machinst::{CodegenError, CompiledCode};
pub use lower::PulleyBackend;

/// Compiles one function to Pulley bytecode (after block-local value numbering and
/// loop-invariant code motion; numbering again merges what LICM brought into one preheader
/// from several blocks).
pub fn compile(func: &Function, backend: &PulleyBackend) -> Result<CompiledCode, CodegenError> {
    let mut func = func.clone();
    crate::machinst::gvn::run(&mut func);
    if crate::machinst::licm::run(&mut func) > 0 {
        crate::machinst::gvn::run(&mut func);
    }
    let vcode = crate::machinst::lower::lower(&func, backend)?;
    emit::emit(&vcode)
}

/// The disassembly of `code`, one instruction per line with its offset.
pub fn disassemble(code: &[u8]) -> String {
    match pulley_interpreter::disas::Disassembler::disassemble_all(code) {
        Ok(text) => text,
        Err(e) => format!("<undecodable bytecode: {e:?}>"),
    }
}
