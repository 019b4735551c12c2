//! Generates the opcode tables, `InstructionData`, the builder, the bounds-check semantics and
//! the ISLE term declarations from the definitions in `meta/`.

fn main() {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    clif_bounds_meta::generate(&out).expect("writing generated sources");
    println!("cargo:rerun-if-changed=meta/src");
}
