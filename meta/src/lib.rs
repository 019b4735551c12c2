//! Instruction definitions for `clif-bounds`, and the generators that turn them into Rust and ISLE.
//!
//! Every instruction of our CLIF-compatible IR is defined exactly once, in [`instructions`], as
//! one builder chain in the style of `cranelift-codegen-meta`: name, documentation, operands in
//! CLIF order, result types and effect flags. The build script of the main crate calls
//! [`generate`] to write from these definitions:
//!
//! - `opcodes.rs`: the `Opcode` enum, its name table (parser and printer), effect and format
//!   tables, type constraints and the instruction documentation;
//! - `inst_data.rs`: the `InstructionData` enum with one variant per instruction format;
//! - `inst_data_view.rs`: its copyable twin that ISLE-generated matchers bind fields of;
//! - `builder.rs`: one `InstBuilder` method per instruction;
//! - `semantics.rs`: the bounds-check semantics of the new instructions as Rust functions and as
//!   SMT-LIB text, both rendered from the single expression in [`semantics`];
//! - `clif_lower.isle`: ISLE term declarations, with upstream's term signatures for the opcodes
//!   we share with Cranelift 0.135.
//!
//! Invariant the rest of the project relies on: nothing outside this crate spells out an
//! opcode's operands, effects or the bounds-check condition. Code that needs them reads the
//! generated tables.

#![deny(missing_docs)]

pub mod cdsl;
pub mod gen_isle;
pub mod gen_rust;
pub mod instructions;
pub mod semantics;

use std::path::Path;

/// Writes every generated file into `out_dir`.
pub fn generate(out_dir: &Path) -> std::io::Result<()> {
    let insts = instructions::define();
    let write = |name: &str, text: String| std::fs::write(out_dir.join(name), text);
    write("opcodes.rs", gen_rust::opcodes(&insts))?;
    write("inst_data.rs", gen_rust::inst_data())?;
    write("inst_data_view.rs", gen_rust::inst_data_view())?;
    write("builder.rs", gen_rust::builder(&insts))?;
    write("semantics.rs", semantics::gen_rust())?;
    write("clif_lower.isle", gen_isle::clif_lower(&insts))?;
    Ok(())
}
