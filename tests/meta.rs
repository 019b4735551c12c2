//! The definitions in `meta/` and what is generated from them: the ISLE compiles, the
//! semantics rendered for the interpreter agree with the SMT-LIB text, and RFC.md quotes the
//! instructions' documentation verbatim.

use clif_bounds_meta::{gen_isle, instructions};

/// The few declarations the generated term file expects from the prelude that includes it.
const PRELUDE: &str = r#"
(type Value (primitive Value))
(type Inst (primitive Inst))
(type Type (primitive Type))
(type ValueSlice (primitive ValueSlice))
(type ValueList (primitive ValueList))
(type ValueArray2 (primitive ValueArray2))
(type ValueArray3 (primitive ValueArray3))
(type ValueArray4 (primitive ValueArray4))
(type Imm64 (primitive Imm64))
(type Ieee32 (primitive Ieee32))
(type Ieee64 (primitive Ieee64))
(type IntCC (primitive IntCC))
(type FloatCC (primitive FloatCC))
(type TrapCode (primitive TrapCode))
(type MemFlags (primitive MemFlags))
(type Offset32 (primitive Offset32))
(type Offset64 (primitive Offset64))
(type AccessKind (primitive AccessKind))
(type Memory (primitive Memory))
(type BlockCall (primitive BlockCall))
(type JumpTable (primitive JumpTable))
(type FuncRef (primitive FuncRef))
(decl inst_data_value (Type InstructionData) Inst)
(extern extractor inst_data_value inst_data_value)
(decl value_array_2 (Value Value) ValueArray2)
(extern extractor value_array_2 unpack_value_array_2)
(decl value_array_3 (Value Value Value) ValueArray3)
(extern extractor value_array_3 unpack_value_array_3)
(decl value_array_4 (Value Value Value Value) ValueArray4)
(extern extractor value_array_4 unpack_value_array_4)
(decl value_list_slice (ValueSlice) ValueList)
(extern extractor value_list_slice value_list_slice)

;; Rules that use the generated extractors, so their types are checked in use.
(decl lower (Inst) u8)
(rule (lower (iadd ty x y)) 1)
(rule (lower (bounds_checked_load ty access flags mem base bound index offset)) 2)
(rule (lower (bounds_checked_store access flags mem x base bound index offset)) 3)
(rule (lower (call func_ref args)) 4)
(rule (lower (brif c then else)) 5)
"#;

#[test]
fn generated_isle_compiles_with_cranelift_isle() {
    let dir = std::env::temp_dir().join(format!("clif-bounds-isle-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let terms = dir.join("clif_lower.isle");
    let prelude = dir.join("prelude.isle");
    std::fs::write(&terms, gen_isle::clif_lower(&instructions::define())).unwrap();
    std::fs::write(&prelude, PRELUDE).unwrap();
    let result = cranelift_isle::compile::from_files([&prelude, &terms], &Default::default());
    let _ = std::fs::remove_dir_all(&dir);
    let rust = result.unwrap_or_else(|e| panic!("the generated ISLE does not compile:\n{e}"));
    assert!(
        rust.contains("fn constructor_lower"),
        "no code generated for the rules"
    );
}

#[test]
fn semantics_match_their_smt_rendering() {
    // The SMT term and the Rust function come from one expression; check the rendering
    // names every input and that the Rust side behaves on the edges the RFC states.
    use clif_bounds::semantics::{effective_address, out_of_bounds, OUT_OF_BOUNDS_SMT};
    for var in ["index", "offset", "access_size", "bound"] {
        assert!(OUT_OF_BOUNDS_SMT.contains(var), "{OUT_OF_BOUNDS_SMT}");
    }
    assert!(
        !out_of_bounds(0xffc, 0, 4, 0x1000),
        "end == bound is in bounds"
    );
    assert!(out_of_bounds(0xffd, 0, 4, 0x1000), "end == bound + 1 traps");
    assert!(
        out_of_bounds(u64::MAX, u64::MAX, 8, u64::MAX),
        "no wrap-around"
    );
    assert!(out_of_bounds(0, 0, 1, 0), "bound 0 admits nothing");
    assert!(!out_of_bounds(0, u64::MAX - 1, 1, u64::MAX));
    assert_eq!(effective_address(0x1000, 0x10, 0x20), 0x1030);
}

fn normalise(s: &str) -> String {
    s.lines()
        .map(|l| l.trim_start().trim_start_matches('>').trim())
        .collect::<Vec<_>>()
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn rfc_quotes_the_definitions_verbatim() {
    let rfc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/RFC.md")).unwrap();
    let rfc = normalise(&rfc);
    for (name, doc) in [
        ("bounds_checked_load", instructions::BOUNDS_CHECKED_LOAD_DOC),
        (
            "bounds_checked_store",
            instructions::BOUNDS_CHECKED_STORE_DOC,
        ),
    ] {
        assert!(
            rfc.contains(&normalise(doc)),
            "RFC.md must quote the definition of `{name}` from meta/src/instructions.rs verbatim"
        );
    }
}

#[test]
fn every_opcode_is_documented_and_round_trips_by_name() {
    use clif_bounds::ir::Opcode;
    for &op in Opcode::ALL {
        assert!(!op.doc().is_empty(), "{op} has no documentation");
        assert_eq!(Opcode::from_name(op.name()), Some(op));
    }
    assert!(Opcode::from_name("heap_load").is_none());
}

/// The planner is the only authority on how an access is made safe: no backend folder and
/// not the legalizer reads a memory declaration's facts, builds access facts or calls the
/// planner itself (backends read plans through `Lower::plan`; `Plan` cannot be constructed
/// outside `src/plan.rs`, which a `compile_fail` doctest there holds).
#[test]
fn only_the_planner_decides_how_an_access_is_made_safe() {
    fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                rust_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs" || x == "isle") {
                out.push(p);
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src/isa"), &mut files);
    // What deciding soundness would need: the declaration's sizes, or the planner's inputs.
    let forbidden = [
        ".memories[",
        "MemoryData",
        "faulting_end",
        "max_bound",
        "faulting_ranges_trap",
        "AccessFacts",
        "plan_block",
        "plan::plan(",
        "Premise",
        "null_reach",
        "checked_modes",
    ];
    let mut found = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let code = code.split(";;").next().unwrap_or("");
            for word in forbidden {
                if code.contains(word) {
                    found.push(format!("{}:{}: {word}", f.display(), n + 1));
                }
            }
        }
    }
    // The legalizer asks the planner like a backend, never reads the declaration itself.
    let legalize = std::fs::read_to_string(root.join("src/legalize.rs")).unwrap();
    for word in [
        ".memories[",
        "MemoryData",
        ".min",
        ".guard",
        "faulting_end",
        "max_bound",
    ] {
        if legalize.contains(word) {
            found.push(format!("src/legalize.rs: {word}"));
        }
    }
    assert!(files.len() > 10, "the backend folders were not found");
    assert!(
        found.is_empty(),
        "soundness decided outside src/plan.rs:\n{}",
        found.join("\n")
    );
}
