//! `clif-bounds`: a CLIF-compatible IR with one bounds-checked memory access instruction.
//!
//! Data flows text → [`parser`] → [`ir::Function`] → [`ir_verifier`] → [`interpreter`] (or the
//! [`printer`] back to text). The instruction set is generated from `meta/`; the bounds-check
//! condition lives in [`semantics`]. [`filetest`] runs upstream-style test files.

#![deny(missing_docs)]

pub mod cfg;
pub mod diagnostics;
pub mod filetest;
pub mod frontend;
pub mod fuzzing;
pub mod interpreter;
pub mod ir;
pub mod ir_verifier;
pub mod isa;
pub mod legalize;
pub mod machinst;
pub mod mutants;
#[cfg(unix)]
pub mod native;
pub mod opt;
pub mod parser;
pub mod plan;
pub mod printer;
#[cfg(feature = "prove")]
pub mod prove;
pub mod semantics;
pub mod target;
pub mod wasm;
