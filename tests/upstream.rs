//! Differential tests against real Cranelift 0.135.8: our text is upstream's text.
//!
//! - Every filetest function that upstream could read (no memory declarations, no
//!   bounds-checked accesses) is printed by us, parsed by `cranelift-reader` and verified by
//!   `cranelift-codegen`; upstream's printing of it must be byte-for-byte ours, and our parser
//!   must read upstream's printing back to the same text.
//! - The ISLE term of every opcode we share with upstream has upstream's signature, as
//!   `cranelift-codegen-meta` generates it.

mod common;

use clif_bounds::parser::parse_file;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn filetests() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/filetests");
    clif_bounds::filetest::clif_files(&[dir])
}

#[test]
fn upstream_reads_verifies_and_prints_our_text() {
    let flags = cranelift_codegen::settings::Flags::new(cranelift_codegen::settings::builder());
    let mut compared = 0;
    let mut failures = Vec::new();
    for path in filetests() {
        let src = std::fs::read_to_string(&path).unwrap();
        let file = parse_file(&src)
            .unwrap_or_else(|d| panic!("{}", d.render(&path.display().to_string(), &src)));
        let expects_verifier_error = src.contains("; error:");
        for pf in &file.functions {
            if pf.func.uses_bounds_checked_accesses() {
                continue;
            }
            // Functions written to fail our verifier are not meant to pass upstream's.
            let ours_ok =
                clif_bounds::ir_verifier::verify_function(&pf.func, clif_bounds::ir::types::I64)
                    .is_ok();
            if expects_verifier_error && !ours_ok {
                continue;
            }
            let ours = pf.func.to_string();
            let theirs = match cranelift_reader::parse_functions(&ours) {
                Ok(mut fs) if fs.len() == 1 => fs.remove(0),
                Ok(fs) => {
                    failures.push(format!(
                        "{}: upstream read {} functions from:\n{ours}",
                        path.display(),
                        fs.len()
                    ));
                    continue;
                }
                Err(e) => {
                    failures.push(format!(
                        "{}: upstream cannot read our text: {e}\n{ours}",
                        path.display()
                    ));
                    continue;
                }
            };
            if let Err(e) = cranelift_codegen::verify_function(&theirs, &flags) {
                failures.push(format!(
                    "{}: upstream's verifier rejects {}: {e}",
                    path.display(),
                    pf.func.name
                ));
                continue;
            }
            let printed = theirs.display().to_string();
            if printed != ours {
                failures.push(format!(
                    "{}: upstream prints {} differently\n--- ours\n{ours}--- upstream\n{printed}",
                    path.display(),
                    pf.func.name
                ));
                continue;
            }
            match clif_bounds::parser::parse_function(&printed) {
                Ok(back) if back.to_string() == printed => compared += 1,
                Ok(back) => failures.push(format!(
                    "{}: reading upstream's text changed it:\n{back}",
                    path.display()
                )),
                Err(d) => failures.push(format!(
                    "{}: we cannot read upstream's text:\n{}",
                    path.display(),
                    d.render("upstream", &printed)
                )),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        compared >= 40,
        "only {compared} functions compared; the filetests lost their ordinary functions?"
    );
    println!("{compared} functions read, verified and printed identically by Cranelift 0.135.8");
}

#[test]
fn upstream_rejects_what_we_reject() {
    // Our verifier's ordinary-CLIF rules mirror upstream's: every function of a verifier
    // filetest that we reject and that upstream can parse, upstream's verifier rejects too.
    let flags = cranelift_codegen::settings::Flags::new(cranelift_codegen::settings::builder());
    let mut checked = 0;
    for path in filetests()
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("verifier"))
    {
        let src = std::fs::read_to_string(&path).unwrap();
        let file = parse_file(&src).unwrap();
        for pf in &file.functions {
            if pf.func.uses_bounds_checked_accesses() {
                continue;
            }
            // Upstream's verifier without an ISA cannot know the pointer width.
            match clif_bounds::ir_verifier::verify_function(&pf.func, clif_bounds::ir::types::I64) {
                Ok(()) => continue,
                Err(errors) if errors.iter().all(|e| e.message.contains("pointer type")) => {
                    continue
                }
                Err(_) => {}
            }
            if let Ok(fs) = cranelift_reader::parse_functions(&pf.func.to_string()) {
                assert!(
                    cranelift_codegen::verify_function(&fs[0], &flags).is_err(),
                    "{}: we reject {} but upstream's verifier accepts it",
                    path.display(),
                    pf.func.name
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} rejected functions checked");
}

/// `(decl NAME (...) Inst)` lines of an ISLE file, by term name.
fn decls(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let l = l.split(";;").next()?.trim();
            let rest = l.strip_prefix("(decl ")?;
            let name = rest.split_whitespace().next()?;
            Some((name.to_string(), l.to_string()))
        })
        .collect()
}

#[test]
fn shared_opcodes_have_upstream_isle_signatures() {
    let dir = std::env::temp_dir().join(format!("clif-bounds-isle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    cranelift_codegen_meta::generate_isle(&dir).expect("upstream's ISLE generator");
    let upstream = decls(&std::fs::read_to_string(dir.join("clif_lower.isle")).unwrap());
    let _ = std::fs::remove_dir_all(&dir);

    let defs = clif_bounds_meta::instructions::define();
    let mut shared = 0;
    for inst in &defs {
        let ours = clif_bounds_meta::gen_isle::decl(inst);
        if inst.shared_with_upstream {
            let theirs = upstream.get(inst.name).unwrap_or_else(|| {
                panic!(
                    "`{}` is marked shared but upstream has no such term",
                    inst.name
                )
            });
            assert_eq!(
                &ours, theirs,
                "signature of `{}` differs from upstream's",
                inst.name
            );
            shared += 1;
        } else {
            assert!(
                !upstream.contains_key(inst.name),
                "`{}` is new but upstream defines it",
                inst.name
            );
        }
    }
    assert!(shared >= 60, "only {shared} shared opcodes compared");
    println!("{shared} shared opcode signatures equal upstream's");
}

/// Compiles `text` (one function) with real Cranelift for `isa_name` with the given Spectre
/// setting, after reading and verifying it.
fn compile_upstream(text: &str, isa_name: &str, spectre: bool) -> Result<usize, String> {
    let isa = common::isa(isa_name, spectre);
    let mut funcs = cranelift_reader::parse_functions(text).map_err(|e| format!("read: {e}"))?;
    let func = funcs.remove(0);
    cranelift_codegen::verify_function(&func, &*isa).map_err(|e| format!("verify: {e}"))?;
    let mut ctx = cranelift_codegen::Context::for_function(func);
    let code = ctx
        .compile(&*isa, &mut Default::default())
        .map_err(|e| format!("compile for {isa_name}: {:?}", e.inner))?;
    Ok(code.code_buffer().len())
}

#[test]
fn legalized_filetests_compile_with_upstream() {
    use clif_bounds::legalize::{legalize, Settings};
    let mut compiled = 0;
    let mut failures = Vec::new();
    for path in filetests() {
        let src = std::fs::read_to_string(&path).unwrap();
        let file = parse_file(&src).unwrap();
        let pointer = file
            .target_name()
            .and_then(clif_bounds::target::Target::lookup)
            .map_or(clif_bounds::ir::types::I64, |t| t.pointer);
        let isas: &[&str] = if pointer == clif_bounds::ir::types::I32 {
            &["pulley32"]
        } else {
            &["x86_64", "aarch64", "pulley64"]
        };
        for pf in &file.functions {
            if !pf.func.uses_bounds_checked_accesses()
                || clif_bounds::ir_verifier::verify_function(&pf.func, pointer).is_err()
            {
                continue;
            }
            for &isa in isas {
                for spectre in [false, true] {
                    let mut f = pf.func.clone();
                    let settings = Settings::for_target(isa, spectre).unwrap();
                    assert_eq!(settings.pointer(), pointer);
                    legalize(&mut f, &settings);
                    let text = f.to_string();
                    match compile_upstream(&text, isa, spectre) {
                        Ok(_) => compiled += 1,
                        Err(e) => failures.push(format!(
                            "{} {} ({isa}, spectre {spectre}): {e}\n{text}",
                            path.display(),
                            pf.func.name
                        )),
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures; first:\n{}",
        failures.len(),
        failures[0]
    );
    assert!(compiled >= 400, "only {compiled} compilations");
    println!("{compiled} legalized functions read, verified and compiled by Cranelift 0.135.8");
}

/// Machine instructions in Cranelift's disassembly of `text` for `isa_name`.
fn machine_instructions(text: &str, isa_name: &str, spectre: bool) -> usize {
    let isa = common::isa(isa_name, spectre);
    let func = cranelift_reader::parse_functions(text).unwrap().remove(0);
    let mut ctx = cranelift_codegen::Context::for_function(func);
    ctx.set_disasm(true);
    let code = ctx.compile(&*isa, &mut Default::default()).unwrap();
    code.vcode
        .as_ref()
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.ends_with(':') && !l.starts_with("unwind"))
        .count()
}

/// The RFC's baseline: for each legalization case, the exploded form and what real
/// Cranelift 0.135.8 makes of it. `CLIF_BOUNDS_BASELINE=path` also writes the table there.
#[test]
fn legalization_baseline() {
    use clif_bounds::legalize::{legalize, Case, Settings};
    let cases: &[(Case, &str, &str, &str)] = &[
        (Case::A, "offset+size exceeds the max", "min 0, max 0x0001_0000, guard 0", "v3 = bounds_checked_load.i32 little mem0 v0, v1, v2+0x0002_0000"),
        (Case::C, "4 GiB reservation + 2 GiB guard", "min 0x0001_0000, max 0x0001_0000_0000, reservation 0x0001_0000_0000, guard 0x8000_0000", "v3 = bounds_checked_load.i32 little mem0 v0, v1, v2+4096"),
        (Case::D, "constant index within min", "min 0x0001_0000, guard 0", "v9 = iconst.i32 16\n    v3 = bounds_checked_load.i32 little mem0 v0, v1, v9+4096"),
        (Case::E, "constant bound", "min 0x0001_0000, max 0x0001_0000, guard 0", "v9 = iconst.i64 0x0001_0000\n    v3 = bounds_checked_load.i32 little mem0 v0, v9, v2+4096"),
        (Case::F, "1-byte access, offset 0", "min 0, guard 0", "v3 = bounds_checked_load.i32 u8 mem0 v0, v1, v2"),
        (Case::G, "64 KiB guard covers offset+size", "min 0, guard 0x0001_0000", "v3 = bounds_checked_load.i32 little mem0 v0, v1, v2+4096"),
        (Case::H, "min covers offset+size", "min 0x0001_0000, guard 0", "v3 = bounds_checked_load.i32 little mem0 v0, v1, v2+4096"),
        (Case::I, "general", "min 0, guard 0", "v3 = bounds_checked_load.i32 little mem0 v0, v1, v2+4096"),
    ];
    let empty = "function %f(i64, i64, i32) -> i32 system_v {\nblock0(v0: i64, v1: i64, v2: i32):\n    v3 = iconst.i32 0\n    return v3\n}\n";
    let mut table = String::from(
        "| case | when | exploded form (Spectre off) | CLIF off/on | x86_64 off/on | aarch64 off/on |\n|---|---|---|---|---|---|\n",
    );
    for &(case, when, memory, access) in cases {
        let text = format!(
            "function %f(i64, i64, i32) -> i32 system_v {{\n    mem0 = memory index i32, {memory}\n\nblock0(v0: i64, v1: i64, v2: i32):\n    {access}\n    return v3\n}}\n"
        );
        let fused = clif_bounds::parser::parse_function(&text).unwrap();
        clif_bounds::ir_verifier::verify_function(&fused, clif_bounds::ir::types::I64).unwrap();
        let mut row = Vec::new();
        let mut form = String::new();
        for spectre in [false, true] {
            let settings = Settings::for_target("x86_64", spectre).unwrap();
            let mut f = fused.clone();
            let got = legalize(&mut f, &settings);
            assert_eq!(got.last().unwrap().1, case, "{text}");
            let block = f.layout.entry_block().unwrap();
            // The instructions replacing the access: all but the constant index/bound and
            // the return.
            let insts: Vec<String> = f
                .layout
                .block_insts(block)
                .iter()
                .map(|&i| clif_bounds::printer::inst_to_string(&f, i))
                .filter(|s| !s.starts_with("v9 =") && !s.starts_with("return"))
                .map(|s| s.split("  ;").next().unwrap().to_string())
                .collect();
            if !spectre {
                form = insts.join("; ");
            }
            let printed = f.to_string();
            let x64 = machine_instructions(&printed, "x86_64", spectre);
            let a64 = machine_instructions(&printed, "aarch64", spectre);
            row.push((insts.len(), x64, a64));
        }
        table += &format!(
            "| {case} | {when} | `{form}` | {}/{} | {}/{} | {}/{} |\n",
            row[0].0, row[1].0, row[0].1, row[1].1, row[0].2, row[1].2
        );
    }
    table += &format!(
        "\nMachine counts are whole functions; an empty function returning 0 takes {} (x86_64) and {} (aarch64).\n",
        machine_instructions(empty, "x86_64", false),
        machine_instructions(empty, "aarch64", false)
    );
    println!("{table}");
    if let Ok(path) = std::env::var("CLIF_BOUNDS_BASELINE") {
        std::fs::write(path, &table).unwrap();
    }
}

/// On aarch64 a store that may begin in bounds and end in a guard may write its first bytes
/// before it faults (`Target::stores_may_tear`), so the planner probes it with a load of the
/// same bytes. The legalized form carries the probe too, and real Cranelift keeps it (a load
/// that may trap is not dead code) right before the store, at the same address; an exact
/// check without Spectre needs none, nor does any store on x86_64.
#[test]
fn legalized_stores_are_probed_where_the_plan_says() {
    use clif_bounds::legalize::{legalize, Settings};
    let store = |memory: &str, access: &str| {
        format!(
            "function %f(i64, i64, i32, i32) system_v {{\n    mem0 = memory index i32, {memory}\n\n\
             block0(v0: i64, v1: i64, v2: i32, v3: i32):\n    \
             {access} mem0 v3, v0, v1, v2+16\n    return\n}}\n"
        )
    };
    let guard = "min 0, guard 0x0001_0000";
    let reservation =
        "min 0x0001_0000, max 0x0001_0000_0000, reservation 0x0001_0000_0000, guard 0x8000_0000";
    let exact = "min 0, guard 0";
    let (word, byte, big) = (
        "bounds_checked_store.i32 little",
        "bounds_checked_store.i32 i8",
        "bounds_checked_store.i32 big",
    );
    for (memory, access, isa, spectre, probed) in [
        (guard, word, "aarch64", false, true),
        (guard, word, "aarch64", true, true),
        (guard, byte, "aarch64", false, true),
        (guard, big, "aarch64", false, true),
        (reservation, word, "aarch64", false, true),
        (reservation, word, "aarch64", true, true),
        (exact, word, "aarch64", false, false),
        (exact, word, "aarch64", true, false),
        (guard, word, "x86_64", false, false),
        (reservation, word, "x86_64", true, false),
    ] {
        let text = store(memory, access);
        let mut f = clif_bounds::parser::parse_function(&text).unwrap();
        legalize(&mut f, &Settings::for_target(isa, spectre).unwrap());
        let printed = f.to_string();
        let what = format!("{isa}, spectre {spectre}, {access}, {memory}");
        let loads = printed.matches(" = load.").count() + printed.matches(" = uload8.").count();
        assert_eq!(loads, usize::from(probed), "{what}: probe loads\n{printed}");
        if isa != "aarch64" {
            continue;
        }
        let cranelift = common::isa(isa, spectre);
        let func = cranelift_reader::parse_functions(&printed)
            .unwrap()
            .remove(0);
        let mut ctx = cranelift_codegen::Context::for_function(func);
        ctx.set_disasm(true);
        let code = ctx.compile(&*cranelift, &mut Default::default()).unwrap();
        let vcode = code.vcode.clone().unwrap();
        let lines: Vec<&str> = vcode.lines().map(str::trim).collect();
        let at = lines.iter().position(|l| l.starts_with("str")).unwrap();
        let address = |l: &str| l.split_once('[').map(|(_, a)| a.to_string());
        // Cranelift may schedule a byte swap between them, but nothing that writes memory.
        let probe = lines[..at]
            .iter()
            .any(|l| l.starts_with("ldr") && address(l) == address(lines[at]));
        assert_eq!(probe, probed, "{what}: Cranelift's code\n{vcode}");
    }
}
