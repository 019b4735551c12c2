//! The corpus proof-carrying code is measured on, and the survey `bench --pcc` prints: the
//! benchmark kernels (i32 and i64 memories, fixed and growable, every preset and both
//! Spectre settings), the 96 Wasmtime load/store configurations, and a few modules of the
//! shapes past miscompilations had (a memory of size 0, a shifted index, a run of accesses
//! with a call in the middle), compiled by each backend with `enable_pcc`.

use super::bench::{AccessConfig, KERNELS};
use super::MemoryConfig;
use crate::ir::Function;
use crate::machinst::pcc::PccReport;
use std::time::Instant;

/// One translated module and the Spectre setting it is compiled with.
pub struct Unit {
    /// What it is, for messages.
    pub label: String,
    /// Its functions.
    pub functions: Vec<Function>,
    /// `enable_heap_access_spectre_mitigation`.
    pub spectre: bool,
}

/// Modules of the shapes of past bounds-check bugs: an empty memory (every check's premise
/// about the minimum fails), offsets up to Pulley's `g32` limit, an index shifted before
/// the access (CVE-2023-26489), and runs of accesses on one index with a store or a call to
/// `memory.grow` among them.
const SHAPES: &str = r#"
  (func (export "at0") (param $i IDX) (result i32) (i32.load (local.get $i)))
  (func (export "small") (param $i IDX) (result i64) (i64.load offset=0x100 (local.get $i)))
  (func (export "g32") (param $i IDX) (result i32) (i32.load16_u offset=0xfff0 (local.get $i)))
  (func (export "shifted") (param $i i32) (result i32)
    (i32.load (IDX_FROM_I32 (i32.shl (local.get $i) (i32.const 2)))))
  (func (export "run") (param $i IDX) (result i32)
    (i32.add (i32.load (local.get $i)) (i32.load offset=8 (local.get $i))))
  (func (export "run_store") (param $i IDX)
    (i32.store offset=4 (local.get $i) (i32.load (local.get $i)))
    (i32.store offset=12 (local.get $i) (i32.const 7)))
  (func (export "run_call") (param $i IDX) (result i32)
    (i32.load (local.get $i))
    (drop (memory.grow (IDX.const 1)))
    (i32.add (i32.load offset=8 (local.get $i))))
"#;

fn translate(wat: &str, config: &MemoryConfig) -> Result<Vec<Function>, String> {
    let wasm = wat::parse_str(wat).map_err(|e| e.to_string())?;
    let module = super::module::parse(&wasm).map_err(|e| e.to_string())?;
    Ok(super::translate::translate_module(&module, config)
        .map_err(|e| e.to_string())?
        .functions)
}

/// The corpus.
pub fn corpus() -> Result<Vec<Unit>, String> {
    let mut units = Vec::new();
    for kernel in KERNELS {
        for (memory64, fixed) in [(false, false), (false, true), (true, false), (true, true)] {
            for (name, config) in MemoryConfig::PRESETS {
                let functions = translate(&kernel.module(memory64, fixed), &config)
                    .map_err(|e| format!("{}: {e}", kernel.name))?;
                for spectre in [false, true] {
                    units.push(Unit {
                        label: format!(
                            "kernel {} (i{}, {}, {name}, spectre {spectre})",
                            kernel.name,
                            if memory64 { 64 } else { 32 },
                            if fixed { "fixed" } else { "growable" }
                        ),
                        functions: functions.clone(),
                        spectre,
                    });
                }
            }
        }
    }
    for c in AccessConfig::all() {
        units.push(Unit {
            label: c.label(),
            functions: translate(&c.module(), &c.memory())?,
            spectre: c.spectre,
        });
    }
    for memory64 in [false, true] {
        let (idx, from32) = if memory64 {
            ("i64", "i64.extend_i32_u")
        } else {
            ("i32", "i32.add (i32.const 0)")
        };
        let body = SHAPES.replace("IDX_FROM_I32", from32).replace("IDX", idx);
        for pages in [0, 1] {
            let wat = format!("(module (memory {idx} {pages} 100){body})");
            for (name, config) in MemoryConfig::PRESETS {
                let functions = translate(&wat, &config)?;
                for spectre in [false, true] {
                    units.push(Unit {
                        label: format!("shapes ({idx}, {pages} pages, {name}, spectre {spectre})"),
                        functions: functions.clone(),
                        spectre,
                    });
                }
            }
        }
    }
    Ok(units)
}

/// What compiling the corpus with `enable_pcc` on one backend proved, and what it cost.
#[derive(Clone, Debug, Default)]
pub struct Survey {
    /// The target.
    pub target: &'static str,
    /// The counts of every function.
    pub report: PccReport,
    /// Functions that failed to compile (with the error): PCC's false positives, or worse.
    pub failures: Vec<String>,
    /// Nanoseconds spent compiling the corpus with PCC (checking included).
    pub compile_nanos: u64,
    /// Nanoseconds spent compiling the corpus without PCC (each function compiled both
    /// ways, alternating).
    pub plain_nanos: u64,
}

impl Survey {
    /// The checking time as a share of the whole compile time.
    pub fn share(&self) -> f64 {
        self.report.check_nanos as f64 / self.compile_nanos.max(1) as f64
    }

    /// The proof's time as a share of compiling without PCC.
    pub fn share_of_plain(&self) -> f64 {
        self.report.check_nanos as f64 / self.plain_nanos.max(1) as f64
    }

    /// How much longer compiling takes with PCC (the check, and regalloc2's checker), as a
    /// share of compiling without it.
    pub fn overhead(&self) -> f64 {
        self.compile_nanos as f64 / self.plain_nanos.max(1) as f64 - 1.0
    }
}

/// Compiles `units` with `target`'s backend and `enable_pcc`, `rounds` times (each
/// function also without PCC, alternating, for the cost); the counts are one round's.
pub fn survey(target: &str, units: &[Unit], rounds: usize) -> Result<Survey, String> {
    let mut s = Survey::default();
    for round in 0..rounds.max(1) {
        for u in units {
            let plain = crate::isa::Backend::for_target(target, u.spectre)?;
            let backend = plain.with_pcc(true);
            s.target = backend.name();
            for f in &u.functions {
                let start = Instant::now();
                let _ = plain.compile(f);
                s.plain_nanos += start.elapsed().as_nanos() as u64;
                let start = Instant::now();
                let r = backend.compile(f);
                s.compile_nanos += start.elapsed().as_nanos() as u64;
                match r {
                    Ok(code) => {
                        let mut r = code.pcc.unwrap_or_default();
                        if round > 0 {
                            // Only the time of later rounds counts.
                            r = PccReport {
                                check_nanos: r.check_nanos,
                                ..Default::default()
                            };
                        }
                        s.report.add(&r)
                    }
                    Err(e) if round == 0 => {
                        s.failures.push(format!("{}: {}: {e}", u.label, f.name))
                    }
                    Err(_) => {}
                }
            }
        }
    }
    Ok(s)
}
