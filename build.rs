//! Generates the opcode tables, `InstructionData`, the builder, the bounds-check semantics and
//! the ISLE term declarations from the definitions in `meta/`, then compiles each backend's
//! ISLE lowering rules (with the shared prelude and those term declarations) to Rust.

use std::path::{Path, PathBuf};

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    clif_bounds_meta::generate(&out).expect("writing generated sources");
    println!("cargo:rerun-if-changed=meta/src");

    let prelude = Path::new("src/machinst/prelude.isle");
    println!("cargo:rerun-if-changed={}", prelude.display());
    // One rule file per backend: every `src/isa/<isa>/lower.isle`, compiled to
    // `<isa>_lower.rs`, which the backend's `lower.rs` includes. A new ISA folder is found
    // here by itself.
    println!("cargo:rerun-if-changed=src/isa");
    let mut isas: Vec<(String, PathBuf)> = std::fs::read_dir("src/isa")
        .expect("reading src/isa")
        .filter_map(|e| {
            let dir = e.ok()?.path();
            let rules = dir.join("lower.isle");
            let isa = dir.file_name()?.to_str()?.to_string();
            rules.is_file().then_some((isa, rules))
        })
        .collect();
    isas.sort();
    for (isa, rules) in isas {
        println!("cargo:rerun-if-changed={}", rules.display());
        let files = [prelude.to_path_buf(), out.join("clif_lower.isle"), rules];
        let options = cranelift_isle::codegen::CodegenOptions {
            exclude_global_allow_pragmas: true,
            ..Default::default()
        };
        match cranelift_isle::compile::from_files(files, &options) {
            Ok(rust) => std::fs::write(out.join(format!("{isa}_lower.rs")), rust)
                .expect("writing the compiled ISLE"),
            Err(e) => {
                // Print every error with its location; cargo shows build-script output.
                eprintln!("ISLE errors in the {isa} rules:\n{e}");
                std::process::exit(1);
            }
        }
    }
}
