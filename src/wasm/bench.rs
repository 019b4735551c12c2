//! `clif-bounds bench`: memory-bound Wasm kernels, three ways, in one run, on Pulley or
//! natively on x86_64:
//!
//! - (a) our pipeline: the fused bounds-checked instruction, compiled by our backend;
//! - (b) our pipeline on the legalized (exploded) form, compiled by our backend;
//! - (c) real Cranelift 0.135.8 compiling the legalized CLIF of the same function.
//!
//! On Pulley all three run in the same `pulley-interpreter` 48.0.8, on x86_64 natively, on
//! the same runtime memories. Every kernel's result must be the same on all three before its
//! times count. [`AccessConfig`] compares x86_64 instructions per access statically.

pub mod chart;
pub mod programs;

use super::backend::BackendEngine;
use super::config::MemoryConfig;
use super::runtime::{Engine, Extern, Store};
use crate::interpreter::{DataValue, Outcome};
use crate::ir::types;
use std::time::{Duration, Instant};

/// One kernel: WAT with `IDX` standing for the index type (`i32` or `i64`) and `run(n)`
/// exported; `init` fills memory first. `n` is the element count the kernel walks.
pub struct Kernel {
    /// Short name.
    pub name: &'static str,
    /// What it does.
    pub what: &'static str,
    wat: &'static str,
    n: u64,
}

/// Fills bytes 0..0x10000 with `i * 7 + 3`.
const INIT: &str = r#"
  (func (export "init")
    (local $i IDX)
    (loop $l
      (i32.store8 (local.get $i) (i32.add (i32.mul (IDX_TO_I32 (local.get $i)) (i32.const 7)) (i32.const 3)))
      (local.set $i (IDX.add (local.get $i) (IDX.const 1)))
      (br_if $l (IDX.lt_u (local.get $i) (IDX.const 0x10000)))))
"#;

/// The kernels of the benchmark.
pub const KERNELS: &[Kernel] = &[
    Kernel {
        name: "sum_i32",
        what: "sum of an i32 array (4-byte loads, offset 0)",
        n: 16384,
        wat: r#"
  (func (export "run") (param $n IDX) (result i64)
    (local $p IDX) (local $acc i64)
    (loop $l
      (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_u (i32.load (local.get $p)))))
      (local.set $p (IDX.add (local.get $p) (IDX.const 4)))
      (br_if $l (IDX.lt_u (local.get $p) (IDX.mul (local.get $n) (IDX.const 4)))))
    (local.get $acc))
"#,
    },
    Kernel {
        name: "copy_u8",
        what: "byte-wise copy (1-byte loads and stores)",
        n: 32768,
        wat: r#"
  (func (export "run") (param $n IDX) (result i64)
    (local $i IDX)
    (loop $l
      (i32.store8 offset=0x8000 (local.get $i) (i32.load8_u (local.get $i)))
      (local.set $i (IDX.add (local.get $i) (IDX.const 1)))
      (br_if $l (IDX.lt_u (local.get $i) (local.get $n))))
    (i64.load offset=0x8100 (IDX.const 0)))
"#,
    },
    Kernel {
        name: "histogram",
        what: "byte histogram (1-byte loads, read-modify-write of i32 counters)",
        n: 32768,
        wat: r#"
  (func (export "run") (param $n IDX) (result i64)
    (local $i IDX) (local $slot IDX)
    (loop $l
      (local.set $slot (IDX.mul (IDX_FROM_I32 (i32.load8_u (local.get $i))) (IDX.const 4)))
      (i32.store offset=0x10000 (local.get $slot)
        (i32.add (i32.load offset=0x10000 (local.get $slot)) (i32.const 1)))
      (local.set $i (IDX.add (local.get $i) (IDX.const 1)))
      (br_if $l (IDX.lt_u (local.get $i) (local.get $n))))
    (i64.load offset=0x10000 (IDX.const 0x28)))
"#,
    },
    Kernel {
        name: "strided_i64",
        what: "i64 loads at static offsets 0, 8, 16, 24 on a 32-byte stride",
        n: 2048,
        wat: r#"
  (func (export "run") (param $n IDX) (result i64)
    (local $p IDX) (local $acc i64)
    (loop $l
      (local.set $acc (i64.add (local.get $acc)
        (i64.add (i64.add (i64.load (local.get $p)) (i64.load offset=8 (local.get $p)))
                 (i64.add (i64.load offset=16 (local.get $p)) (i64.load offset=24 (local.get $p))))))
      (local.set $p (IDX.add (local.get $p) (IDX.const 32)))
      (br_if $l (IDX.lt_u (local.get $p) (IDX.mul (local.get $n) (IDX.const 32)))))
    (local.get $acc))
"#,
    },
    Kernel {
        name: "far_offset",
        what: "i32 loads with a static offset beyond u16 (0x12000)",
        n: 8192,
        wat: r#"
  (func (export "run") (param $n IDX) (result i64)
    (local $p IDX) (local $acc i64)
    (loop $l
      (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_u (i32.load offset=0x12000 (local.get $p)))))
      (local.set $p (IDX.add (local.get $p) (IDX.const 4)))
      (br_if $l (IDX.lt_u (local.get $p) (IDX.mul (local.get $n) (IDX.const 4)))))
    (local.get $acc))
"#,
    },
    Kernel {
        name: "matmul",
        what: "16x16 i32 matrix multiply, repeated n times",
        n: 8,
        wat: r#"
  (func (export "run") (param $n IDX) (result i64)
    (local $r IDX) (local $i IDX) (local $j IDX) (local $k IDX) (local $acc i32)
    (loop $rep
      (local.set $i (IDX.const 0))
      (loop $li
        (local.set $j (IDX.const 0))
        (loop $lj
          (local.set $acc (i32.const 0))
          (local.set $k (IDX.const 0))
          (loop $lk
            (local.set $acc (i32.add (local.get $acc)
              (i32.mul
                (i32.load (IDX.mul (IDX.add (IDX.mul (local.get $i) (IDX.const 16)) (local.get $k)) (IDX.const 4)))
                (i32.load offset=0x400 (IDX.mul (IDX.add (IDX.mul (local.get $k) (IDX.const 16)) (local.get $j)) (IDX.const 4))))))
            (local.set $k (IDX.add (local.get $k) (IDX.const 1)))
            (br_if $lk (IDX.lt_u (local.get $k) (IDX.const 16))))
          (i32.store offset=0x800 (IDX.mul (IDX.add (IDX.mul (local.get $i) (IDX.const 16)) (local.get $j)) (IDX.const 4)) (local.get $acc))
          (local.set $j (IDX.add (local.get $j) (IDX.const 1)))
          (br_if $lj (IDX.lt_u (local.get $j) (IDX.const 16))))
        (local.set $i (IDX.add (local.get $i) (IDX.const 1)))
        (br_if $li (IDX.lt_u (local.get $i) (IDX.const 16))))
      (local.set $r (IDX.add (local.get $r) (IDX.const 1)))
      (br_if $rep (IDX.lt_u (local.get $r) (local.get $n))))
    (i64.load offset=0x800 (IDX.const 0x44)))
"#,
    },
];

impl Kernel {
    /// The module text for `memory64` or not: 3 pages (192 KiB), of fixed size (maximum 3
    /// pages: the translator makes the bound a constant) or growable (maximum 6: the bound
    /// is loaded from the vmctx).
    pub fn module(&self, memory64: bool, fixed: bool) -> String {
        let (idx, to32, from32) = if memory64 {
            ("i64", "i32.wrap_i64", "i64.extend_i32_u")
        } else {
            // A no-op that keeps the s-expression shape.
            ("i32", "i32.add (i32.const 0)", "i32.add (i32.const 0)")
        };
        let body = format!("{INIT}{}", self.wat)
            .replace("IDX_TO_I32", to32)
            .replace("IDX_FROM_I32", from32)
            .replace("IDX", idx);
        let max = if fixed { 3 } else { 6 };
        format!("(module (memory {idx} 3 {max}){body})")
    }
}

/// One measured row.
pub struct Row {
    /// Kernel name.
    pub kernel: &'static str,
    /// memory64.
    pub memory64: bool,
    /// A memory of fixed size, whose bound is a constant.
    pub fixed: bool,
    /// Memory preset name.
    pub memory: &'static str,
    /// Spectre mitigation.
    pub spectre: bool,
    /// Bytecode bytes of (a), (b), (c).
    pub size: [usize; 3],
    /// Median time of one `run` call, (a), (b), (c).
    pub time: [Duration; 3],
    /// Median time of one `run` call on each of the target's peers ([`peer_names`]), where
    /// it could run the row.
    pub peers: Vec<Option<Duration>>,
}

/// The engines users would pick instead of ours that run beside our `target` (feature
/// `peers`; none without it): Wasmtime 48 (natively or on Pulley) and wasmi.
pub fn peer_names(target: BenchTarget) -> Vec<&'static str> {
    #[cfg(feature = "peers")]
    return super::peers::Peer::of_target(target.name())
        .iter()
        .map(|p| p.name())
        .collect();
    #[cfg(not(feature = "peers"))]
    {
        let _ = target;
        Vec::new()
    }
}

/// One engine's calls of a kernel's `run`, ready to be timed: the result's bits.
type Call = Box<dyn FnMut() -> Result<u64, String>>;

/// Where the kernels run: a backend's target. (a) and (b) are that backend, (c) real
/// Cranelift for the same target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BenchTarget(&'static str);

impl BenchTarget {
    /// The target named `name`, when it has a backend whose code runs here.
    pub fn parse(name: &str) -> Result<BenchTarget, String> {
        let backend = crate::isa::Backend::for_target(name, false)?;
        if !backend.runs_here() {
            return Err(format!("{name} code cannot run on this host"));
        }
        Ok(BenchTarget(backend.name()))
    }
    /// The name.
    pub fn name(self) -> &'static str {
        self.0
    }
}

fn engines(target: BenchTarget, spectre: bool) -> Result<[Box<dyn Engine>; 3], String> {
    let backend = crate::isa::Backend::for_target(target.name(), spectre)?;
    Ok([
        Box::new(BackendEngine::new(backend)?),
        Box::new(BackendEngine::legalized(backend)?),
        super::cranelift::engine_for(target.name(), spectre)?,
    ])
}

/// One measured call of a kernel, on any engine. Its own function, never inlined, so that
/// an instruction counter can collect exactly its calls (`clif-bounds bench
/// --instructions` runs the benchmark under callgrind, collecting and dumping per call of
/// this function).
#[inline(never)]
pub fn measured_call(call: &mut dyn FnMut() -> Result<u64, String>) -> Result<u64, String> {
    call()
}

/// Measures every kernel, on i32 and i64 memories of fixed and growable size, under each
/// preset and both Spectre settings; `reps` calls per point, the median kept. `report` gets
/// each row as it is done.
pub fn run(
    target: BenchTarget,
    reps: usize,
    report: &mut dyn FnMut(&Row),
) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    // `CLIF_BOUNDS_BENCH_KERNEL=name` measures one kernel only, for investigations.
    let only = std::env::var("CLIF_BOUNDS_BENCH_KERNEL").ok();
    let mut told = std::collections::HashSet::new();
    for kernel in KERNELS {
        if only.as_deref().is_some_and(|k| k != kernel.name) {
            continue;
        }
        for (memory64, fixed) in [(false, false), (false, true), (true, false), (true, true)] {
            let wasm = wat::parse_str(kernel.module(memory64, fixed))
                .map_err(|e| format!("{}: {e}", kernel.name))?;
            for (memory, config) in MemoryConfig::PRESETS {
                for spectre in [false, true] {
                    let point = Point {
                        kernel,
                        wasm: &wasm,
                        memory64,
                        fixed,
                        memory,
                        config,
                        spectre,
                    };
                    let row = point.measure(target, reps, &mut told)?;
                    report(&row);
                    rows.push(row);
                }
            }
        }
    }
    Ok(rows)
}

/// One row of the kernel benchmark before it is measured.
struct Point<'a> {
    kernel: &'static Kernel,
    wasm: &'a [u8],
    memory64: bool,
    fixed: bool,
    memory: &'static str,
    config: MemoryConfig,
    spectre: bool,
}

impl Point<'_> {
    /// Each engine in its own store, all initialised before any is timed; then `reps`
    /// calls each, alternating between the engines, so that a slow spell of the (shared,
    /// virtual) machine hits all alike instead of one. Every engine's result must agree.
    /// A peer that cannot run the row is left out of it and says why, once per reason
    /// (`told`).
    fn measure(
        &self,
        target: BenchTarget,
        reps: usize,
        told: &mut std::collections::HashSet<String>,
    ) -> Result<Row, String> {
        let place = format!(
            "{} ({}, spectre {})",
            self.kernel.name, self.memory, self.spectre
        );
        let names = peer_names(target);
        let (size, mut calls) = self.ours(target)?;
        for (peer, call) in self.peers(target) {
            calls.push(
                call.map_err(|e| {
                    if told.insert(format!("{peer}: {e}")) {
                        eprintln!(
                            "bench: {place}: {peer} not measured (nor any row it fails alike): {e}"
                        );
                    }
                })
                .ok(),
            );
        }
        let mut samples: Vec<Vec<Duration>> =
            calls.iter().map(|_| Vec::with_capacity(reps)).collect();
        let mut results = vec![None; calls.len()];
        for _ in 0..reps {
            for (i, slot) in calls.iter_mut().enumerate() {
                let Some(call) = slot else { continue };
                let t = Instant::now();
                let r = measured_call(call);
                let elapsed = t.elapsed();
                match r {
                    Ok(r) => {
                        samples[i].push(elapsed);
                        results[i] = Some(r);
                    }
                    // Ours must run every row; a peer that fails one is left out of it.
                    Err(e) if i < 3 => return Err(format!("{place}: {e}")),
                    Err(e) => {
                        eprintln!("bench: {place}: {} failed, no time: {e}", names[i - 3]);
                        *slot = None;
                        samples[i].clear();
                    }
                }
            }
        }
        // Our three must agree; a peer with another answer has no time (a wrong answer is
        // never a time).
        if results[..3].windows(2).any(|w| w[0] != w[1]) {
            return Err(format!("{place}: our engines disagree: {results:?}"));
        }
        for i in 3..results.len() {
            if results[i].is_some() && results[i] != results[0] {
                eprintln!(
                    "bench: {place}: {} returned {:?}, ours {:?}: no time",
                    names[i - 3],
                    results[i],
                    results[0]
                );
                samples[i].clear();
            }
        }
        let mut times = samples.into_iter().map(median);
        let time = std::array::from_fn(|_| times.next().flatten().unwrap_or_default());
        Ok(Row {
            kernel: self.kernel.name,
            memory64: self.memory64,
            fixed: self.fixed,
            memory: self.memory,
            spectre: self.spectre,
            size,
            time,
            peers: times.collect(),
        })
    }

    /// Our three engines' sizes and calls, initialised.
    fn ours(&self, target: BenchTarget) -> Result<([usize; 3], Vec<Option<Call>>), String> {
        let name = self.kernel.name;
        let ty = if self.memory64 {
            types::I64
        } else {
            types::I32
        };
        let arg = [DataValue::new(ty, self.kernel.n)];
        let mut size = [0; 3];
        let mut calls: Vec<Option<Call>> = Vec::new();
        for (i, engine) in engines(target, self.spectre)?.into_iter().enumerate() {
            let mut store = Store::new(self.config, engine);
            let inst = store
                .instantiate(self.wasm, &|_, _| None)
                .map_err(|e| format!("{name}: {e:?}"))?;
            size[i] = store.code_size(inst).unwrap_or(0);
            let func = |export: &str| match store.export(inst, export) {
                Some(Extern::Func { index, .. }) => Ok(index),
                _ => Err(format!("{name}: no export {export}")),
            };
            let (init, run) = (func("init")?, func("run")?);
            store.call(inst, init, &[])?;
            calls.push(Some(Box::new(move || {
                match store.call(inst, run, &arg)? {
                    Outcome::Returned(v) => Ok(v.first().map_or(0, |v| v.bits)),
                    other => Err(format!("engine {i} did not return: {other:?}")),
                }
            })));
        }
        Ok((size, calls))
    }

    /// The target's peers' calls, initialised, or why one cannot run the row.
    fn peers(&self, target: BenchTarget) -> Vec<(&'static str, Result<Call, String>)> {
        #[cfg(feature = "peers")]
        return super::peers::Peer::of_target(target.name())
            .iter()
            .map(|peer| {
                let n = self.kernel.n;
                let ready = peer
                    .kernel(self.wasm, self.memory64, self.config, self.spectre)
                    .and_then(|mut k| k.init().map(|()| k));
                let call = ready.map(|mut k| Box::new(move || k.run(n)) as Call);
                (peer.name(), call)
            })
            .collect();
        #[cfg(not(feature = "peers"))]
        {
            let _ = target;
            Vec::new()
        }
    }
}

/// The median of `samples`, `None` when there are none.
pub fn median(mut samples: Vec<Duration>) -> Option<Duration> {
    samples.sort();
    samples.get(samples.len() / 2).copied()
}

impl Row {
    /// The row as one line of tab-separated fields, for a parent process to collect:
    /// kernel, memory64, fixed, memory, spectre, three sizes, three times in nanoseconds,
    /// then each peer's time (`-` where it did not run).
    pub fn to_line(&self) -> String {
        let [s0, s1, s2] = self.size;
        let [t0, t1, t2] = self.time.map(|t| t.as_nanos());
        let mut line = format!(
            "{}\t{}\t{}\t{}\t{}\t{s0}\t{s1}\t{s2}\t{t0}\t{t1}\t{t2}",
            self.kernel, self.memory64, self.fixed, self.memory, self.spectre
        );
        for p in &self.peers {
            match p {
                Some(t) => line += &format!("\t{}", t.as_nanos()),
                None => line += "\t-",
            }
        }
        line
    }

    /// Reads a line written by [`Row::to_line`].
    pub fn parse_line(line: &str) -> Result<Row, String> {
        let bad = || format!("not a benchmark row: `{line}`");
        let f: Vec<&str> = line.split('\t').collect();
        let [kernel, memory64, fixed, memory, spectre, s0, s1, s2, t0, t1, t2] =
            f[..f.len().min(11)]
        else {
            return Err(bad());
        };
        let kernel = KERNELS
            .iter()
            .find(|k| k.name == kernel)
            .ok_or_else(bad)?
            .name;
        let memory = MemoryConfig::PRESETS
            .iter()
            .find(|(n, _)| *n == memory)
            .ok_or_else(bad)?
            .0;
        let flag = |s: &str| s.parse::<bool>().map_err(|_| bad());
        let num = |s: &str| s.parse::<u64>().map_err(|_| bad());
        Ok(Row {
            kernel,
            memory64: flag(memory64)?,
            fixed: flag(fixed)?,
            memory,
            spectre: flag(spectre)?,
            size: [num(s0)? as usize, num(s1)? as usize, num(s2)? as usize],
            time: [
                Duration::from_nanos(num(t0)?),
                Duration::from_nanos(num(t1)?),
                Duration::from_nanos(num(t2)?),
            ],
            peers: f[11..]
                .iter()
                .map(|&t| match t {
                    "-" => Ok(None),
                    t => num(t).map(|t| Some(Duration::from_nanos(t))),
                })
                .collect::<Result<_, _>>()?,
        })
    }
}

/// Combines the rows of several runs, made one after another in processes of their own: per
/// row and engine, the median of the runs' times. On a shared machine a slow spell can
/// outlast a row's whole measurement and hit one engine's calls more than the others' (of
/// three runs, one measured a row's (a) at 2.9x its time in the other two); the median over
/// runs discards such a run. The runs must agree on rows and sizes.
pub fn median_over(runs: Vec<Vec<Row>>) -> Result<Vec<Row>, String> {
    let mut runs = runs.into_iter();
    let mut rows = runs.next().ok_or("no benchmark runs")?;
    // Per row, per engine (ours, then the peers), the runs' times.
    let engines = |r: &Row| -> Vec<Option<Duration>> {
        r.time
            .iter()
            .copied()
            .map(Some)
            .chain(r.peers.iter().copied())
            .collect()
    };
    let key = |r: &Row| {
        (
            r.kernel,
            r.memory64,
            r.fixed,
            r.memory,
            r.spectre,
            r.size,
            r.peers.len(),
        )
    };
    let mut times: Vec<Vec<Vec<Option<Duration>>>> = rows
        .iter()
        .map(|r| engines(r).into_iter().map(|t| vec![t]).collect())
        .collect();
    for run in runs {
        if run.len() != rows.len() {
            return Err("benchmark runs differ in their rows".into());
        }
        for ((row, other), t) in rows.iter().zip(&run).zip(&mut times) {
            if key(row) != key(other) {
                return Err(format!("benchmark runs differ at {}", row.to_line()));
            }
            for (samples, x) in t.iter_mut().zip(engines(other)) {
                samples.push(x);
            }
        }
    }
    // A peer that failed to run a row in any run has no time for it.
    let median_of_all =
        |samples: &Vec<Option<Duration>>| median(samples.iter().copied().collect::<Option<_>>()?);
    for (row, t) in rows.iter_mut().zip(&times) {
        let mut medians = t.iter().map(median_of_all);
        for time in row.time.iter_mut() {
            *time = medians.next().flatten().unwrap_or_default();
        }
        row.peers = medians.collect();
    }
    Ok(rows)
}

/// One of the 96 Wasmtime load/store configurations of the x86_64 comparison: guard or
/// none, Spectre mitigation, index type, static or dynamic memory, load or store, offset.
#[derive(Clone, Debug)]
pub struct AccessConfig {
    /// A guard after the memory (2 GiB static, 64 KiB dynamic) or none.
    pub guard: bool,
    /// `enable_heap_access_spectre_mitigation`.
    pub spectre: bool,
    /// memory64.
    pub memory64: bool,
    /// A 4 GiB reservation that never moves (static) or a memory that moves when it grows.
    pub static_memory: bool,
    /// A store rather than a load.
    pub store: bool,
    /// The access's static offset.
    pub offset: u64,
}

/// The offsets of the comparison: none, small, and one beyond every guard.
pub const ACCESS_OFFSETS: [u64; 3] = [0, 0x100, 0xffff_0000];

impl AccessConfig {
    /// All 96 configurations.
    pub fn all() -> Vec<AccessConfig> {
        let mut out = Vec::new();
        for guard in [true, false] {
            for spectre in [false, true] {
                for memory64 in [false, true] {
                    for static_memory in [true, false] {
                        for store in [false, true] {
                            for offset in ACCESS_OFFSETS {
                                out.push(AccessConfig {
                                    guard,
                                    spectre,
                                    memory64,
                                    static_memory,
                                    store,
                                    offset,
                                });
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// The memory configuration.
    pub fn memory(&self) -> MemoryConfig {
        match (self.static_memory, self.guard) {
            (true, true) => MemoryConfig::STATIC,
            (true, false) => MemoryConfig {
                guard: 0,
                ..MemoryConfig::STATIC
            },
            (false, true) => MemoryConfig::DYNAMIC_GUARD,
            (false, false) => MemoryConfig::DYNAMIC,
        }
    }

    /// A module with one function making the access, at a growable memory.
    pub fn module(&self) -> String {
        let idx = if self.memory64 { "i64" } else { "i32" };
        let body = if self.store {
            format!(
                "(func (export \"f\") (param {idx} i32) (i32.store offset={} (local.get 0) (local.get 1)))",
                self.offset
            )
        } else {
            format!(
                "(func (export \"f\") (param {idx}) (result i32) (i32.load offset={} (local.get 0)))",
                self.offset
            )
        };
        format!("(module (memory {idx} 1 100) {body})")
    }

    /// A short label.
    pub fn label(&self) -> String {
        format!(
            "{} {} {} spectre {} {} offset {:#x}",
            if self.static_memory {
                "static"
            } else {
                "dynamic"
            },
            if self.guard { "guard" } else { "no-guard" },
            if self.memory64 { "i64" } else { "i32" },
            if self.spectre { "on" } else { "off" },
            if self.store { "store" } else { "load" },
            self.offset
        )
    }

    /// The instructions of the access function on `target` (x86_64 or aarch64; without
    /// frame, `ret` and trap islands): ours on the fused instruction, and real Cranelift's
    /// on the legalized form.
    pub fn instruction_counts(&self, target: &str) -> Result<(usize, usize), String> {
        let wasm = wat::parse_str(self.module()).map_err(|e| e.to_string())?;
        let module = super::module::parse(&wasm).map_err(|e| e.to_string())?;
        let t = super::translate::translate_module(&module, &self.memory())
            .map_err(|e| e.to_string())?;
        let f = &t.functions[0];
        let backend = crate::isa::Backend::for_target(target, self.spectre)?;
        let ours = backend.compile(f).map_err(|e| e.to_string())?;
        let isa = CountedIsa::of(target)?;
        let theirs = (isa.cranelift)(f, self.spectre)?;
        if std::env::var_os("CLIF_BOUNDS_ACCESS_LISTINGS").is_some() {
            println!(
                "{}\nours:\n{}\nCranelift:\n{}",
                self.label(),
                (isa.disassemble)(&ours.code),
                (isa.disassemble)(&theirs)
            );
        }
        Ok(((isa.count)(&ours.code)?, (isa.count)(&theirs)?))
    }

    /// The instructions of the function as Wasmtime 48 itself compiles it for `target`
    /// (x86_64 or aarch64; its own translator and bounds checks, configured with the same
    /// knobs), counted as ours; `None` without the `peers` feature.
    /// `CLIF_BOUNDS_ACCESS_LISTINGS=1` prints the code.
    pub fn wasmtime_count(&self, target: &str) -> Result<Option<usize>, String> {
        #[cfg(feature = "peers")]
        {
            let wasm = wat::parse_str(self.module()).map_err(|e| e.to_string())?;
            let (memory, spectre) = (self.memory(), self.spectre);
            let isa = CountedIsa::of(target)?;
            let code = (isa.wasmtime)(&wasm, memory, spectre)?;
            if std::env::var_os("CLIF_BOUNDS_ACCESS_LISTINGS").is_some() {
                println!(
                    "{} (Wasmtime 48)\n{}",
                    self.label(),
                    (isa.disassemble)(&code)
                );
            }
            Ok(Some((isa.count)(&code)?))
        }
        #[cfg(not(feature = "peers"))]
        {
            let _ = target;
            Ok(None)
        }
    }
}

/// How the per-access comparison compiles for one ISA and reads its machine code.
struct CountedIsa {
    disassemble: fn(&[u8]) -> String,
    /// Instructions without the frame, `ret` and trap islands.
    count: fn(&[u8]) -> Result<usize, String>,
    /// Real Cranelift's code for the legalized form.
    cranelift: fn(&crate::ir::Function, bool) -> Result<Vec<u8>, String>,
    /// Wasmtime 48's code for the first function of a module.
    #[cfg(feature = "peers")]
    wasmtime: WasmtimeCode,
}

/// Wasmtime's code for a module's first function, given the memory and Spectre settings.
#[cfg(feature = "peers")]
type WasmtimeCode = fn(&[u8], MemoryConfig, bool) -> Result<Vec<u8>, String>;

impl CountedIsa {
    fn of(target: &str) -> Result<CountedIsa, String> {
        match target {
            "x86_64" => Ok(CountedIsa {
                disassemble: crate::isa::x64::disassemble,
                count: |code| Ok(crate::isa::x64::count_work_instructions(code)),
                cranelift: super::cranelift::compile_x64,
                #[cfg(feature = "peers")]
                wasmtime: super::peers::Peer::wasmtime_x64_code,
            }),
            "aarch64" => Ok(CountedIsa {
                disassemble: crate::isa::aarch64::disassemble,
                count: crate::isa::aarch64::count_work_instructions,
                cranelift: super::cranelift::compile_aarch64,
                #[cfg(feature = "peers")]
                wasmtime: super::peers::Peer::wasmtime_aarch64_code,
            }),
            t => Err(format!(
                "no instruction counts for target `{t}` (x86_64, aarch64)"
            )),
        }
    }
}

/// Instructions per access on `target` (x86_64 or aarch64), ours (fused) against real
/// Cranelift (legalized) and, with the `peers` feature, against Wasmtime 48 itself,
/// for the 96 Wasmtime load/store configurations. `CLIF_BOUNDS_ACCESS_LISTINGS=1` also
/// prints each configuration's code.
pub fn access_report(target: &str) -> Result<(), String> {
    println!("\ninstructions of a one-access function on {target} (without frame, ret and trap islands):");
    println!(
        "{:<60} {:>5} {:>9} {:>9}",
        "configuration", "ours", "Cranelift", "Wasmtime"
    );
    let (mut ours, mut theirs, mut fewer, mut worse) = (0, 0, 0, 0);
    let (mut wasmtime, mut above_wasmtime) = (0, 0);
    let (mut ours_loads, mut theirs_loads) = (0, 0);
    for c in AccessConfig::all() {
        let (o, t) = c.instruction_counts(target)?;
        let w = c.wasmtime_count(target)?;
        let shown = w.map_or("-".into(), |w| w.to_string());
        println!("{:<60} {o:>5} {t:>9} {shown:>9}", c.label());
        ours += o;
        theirs += t;
        if !c.store {
            ours_loads += o;
            theirs_loads += t;
        }
        fewer += usize::from(o < t);
        worse += usize::from(o > t);
        if let Some(w) = w {
            wasmtime += w;
            above_wasmtime += usize::from(o > w);
        }
    }
    println!(
        "total: ours {ours}, Cranelift {theirs} ({:.2}x); fewer in {fewer} of 96, more in {worse}",
        theirs as f64 / ours as f64
    );
    println!("the 48 loads: ours {ours_loads}, Cranelift {theirs_loads}");
    if wasmtime > 0 {
        println!(
            "Wasmtime 48: total {wasmtime} ({:.2}x ours); ours has more in {above_wasmtime} of 96",
            wasmtime as f64 / ours as f64
        );
    }
    Ok(())
}

/// Per row, per engine ((a), (b), (c), then the peers), the instructions of its measured
/// call; `None` where a peer did not run the row.
pub type Counts = Vec<Vec<Option<u64>>>;

/// Runs the benchmark once under callgrind, which counts the host instructions of each
/// measured call (`bench::measured_call`, dumped after every call): deterministic, whatever
/// else the machine does. Returns the rows and, per row, the counts of (a), (b), (c) and of
/// each peer that ran it.
pub fn instructions_under_callgrind(target: BenchTarget) -> Result<(Vec<Row>, Counts), String> {
    let exe = std::env::current_exe().map_err(|e| format!("error: this program's path: {e}"))?;
    let dir = std::env::temp_dir().join(format!("clif-bounds-callgrind-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("error: {}: {e}", dir.display()))?;
    // The symbol callgrind matches: this module's `measured_call`.
    let function = concat!(module_path!(), "::measured_call");
    eprintln!("bench: one run under callgrind (a few minutes)");
    let out = std::process::Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg("--collect-atstart=no")
        .arg(format!("--toggle-collect={function}"))
        .arg(format!("--dump-after={function}"))
        .arg(format!(
            "--callgrind-out-file={}",
            dir.join("out").display()
        ))
        .arg(&exe)
        .args(["bench", "--raw", "--target", target.name(), "--reps", "1"])
        .output()
        .map_err(|e| format!("error: starting valgrind (Debian package valgrind): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "error: the benchmark under callgrind failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let rows = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(Row::parse_line)
        .collect::<Result<Vec<_>, _>>()?;
    // One dump per measured call, numbered from 1 in call order: per row, (a), (b), (c),
    // then the peers that ran it.
    let count = |n: usize| -> Result<u64, String> {
        let path = dir.join(format!("out.{n}"));
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("error: {}: {e}", path.display()))?;
        text.lines()
            .find_map(|l| l.strip_prefix("summary: "))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("error: {}: no summary line", path.display()))
    };
    let mut dump = 0;
    let mut counts = Vec::new();
    for row in &rows {
        let ran = [true; 3]
            .into_iter()
            .chain(row.peers.iter().map(Option::is_some));
        let mut row_counts = Vec::new();
        for ran in ran {
            row_counts.push(match ran {
                true => {
                    dump += 1;
                    Some(count(dump)?)
                }
                false => None,
            });
        }
        counts.push(row_counts);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok((rows, counts))
}

/// The benchmark table and its summary, for a metric where less is better (`metric(row,
/// engine)`: engines (a), (b), (c), then the peers named `peers`; `None` where one did not
/// run the row).
pub fn report(
    rows: &[Row],
    peers: &[&str],
    what: &str,
    unit: &str,
    metric: &dyn Fn(usize, usize) -> Option<f64>,
) {
    let mut header = format!(
        "{:<12} {:<5} {:<5} {:<13} {:<7} {:>8} {:>8} {:>8} {:>7} {:>7} {:>12} {:>12} {:>12} {:>7} {:>7}",
        "kernel",
        "index",
        "bound",
        "memory",
        "spectre",
        "size a",
        "size b",
        "size c",
        "a/c",
        "b/c",
        format!("{what} a"),
        format!("{what} b"),
        format!("{what} c"),
        "c/a",
        "c/b"
    );
    for p in peers {
        header += &format!(" {:>16} {:>7}", format!("{what} {p}"), "/a");
    }
    println!("{header}");
    let ratio = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) if y > 0.0 => x / y,
        _ => f64::NAN,
    };
    let show = |x: Option<f64>| x.map_or("-".to_string(), |x| format!("{x:.1}{unit}"));
    for (i, r) in rows.iter().enumerate() {
        let m = |e| metric(i, e);
        let mut line = format!(
            "{:<12} {:<5} {:<5} {:<13} {:<7} {:>8} {:>8} {:>8} {:>7.2} {:>7.2} {:>12} {:>12} {:>12} {:>7.2} {:>7.2}",
            r.kernel,
            if r.memory64 { "i64" } else { "i32" },
            if r.fixed { "const" } else { "load" },
            r.memory,
            if r.spectre { "on" } else { "off" },
            r.size[0],
            r.size[1],
            r.size[2],
            ratio(Some(r.size[0] as f64), Some(r.size[2] as f64)),
            ratio(Some(r.size[1] as f64), Some(r.size[2] as f64)),
            show(m(0)),
            show(m(1)),
            show(m(2)),
            ratio(m(2), m(0)),
            ratio(m(2), m(1)),
        );
        for p in 0..peers.len() {
            line += &format!(" {:>16} {:>7.2}", show(m(3 + p)), ratio(m(3 + p), m(0)));
        }
        println!("{line}");
    }
    // Geometric means of the speed-up of (a) over engine `e` (of `e`'s time over ours),
    // where it ran: the mean, the rows, the rows where (a) is faster, the worst row.
    let geo = |e: usize, f: &dyn Fn(&Row) -> bool| {
        let v: Vec<f64> = (0..rows.len())
            .filter(|&i| f(&rows[i]))
            .map(|i| ratio(metric(i, e), metric(i, 0)))
            .filter(|x| x.is_finite())
            .collect();
        let faster = v.iter().filter(|&&x| x > 1.0).count();
        let worst = v.iter().cloned().fold(f64::INFINITY, f64::min);
        (
            chart::geometric_mean(v.iter().copied()),
            v.len(),
            faster,
            worst,
        )
    };
    println!();
    for (label, f) in [
        ("all", &(|_: &Row| true) as &dyn Fn(&Row) -> bool),
        ("memory64", &|r: &Row| r.memory64),
        ("i32 index", &|r: &Row| !r.memory64),
        ("spectre off (trapnz form)", &|r: &Row| !r.spectre),
        ("spectre on", &|r: &Row| r.spectre),
        ("offset > u16 (far_offset)", &|r: &Row| r.kernel == "far_offset"),
        ("constant bound (fixed size)", &|r: &Row| r.fixed),
        ("bound loaded (growable)", &|r: &Row| !r.fixed),
        (
            "where upstream's matcher misses (any of memory64, trapnz, offset > u16, constant bound)",
            &|r: &Row| r.memory64 || !r.spectre || r.kernel == "far_offset" || r.fixed,
        ),
    ] {
        if let (Some(g), n, _, min) = geo(2, f) {
            println!("(c)/(a) {what}, {label}: geometric mean {g:.2}x over {n} rows, worst {min:.2}x");
        }
    }
    for (p, name) in peers.iter().enumerate() {
        println!();
        for (label, f) in [
            ("all", &(|_: &Row| true) as &dyn Fn(&Row) -> bool),
            ("static", &|r: &Row| r.memory == "static"),
            ("dynamic-guard", &|r: &Row| r.memory == "dynamic-guard"),
            ("dynamic", &|r: &Row| r.memory == "dynamic"),
            ("spectre off", &|r: &Row| !r.spectre),
            ("spectre on", &|r: &Row| r.spectre),
        ] {
            match geo(3 + p, f) {
                (None, ..) => println!("{name}/(a) {what}, {label}: no row measured"),
                (Some(g), n, faster, min) => println!(
                    "{name}/(a) {what}, {label}: geometric mean {g:.2}x over {n} rows, (a) faster in {faster}, worst {min:.3}x"
                ),
            }
        }
        // Per kernel and preset, as RFC.md's tables show it.
        println!("\n| kernel | {name}/(a): static | dynamic-guard | dynamic | worst row |");
        println!("|---|---|---|---|---|");
        for kernel in KERNELS {
            let of = |m: &'static str| move |r: &Row| r.kernel == kernel.name && r.memory == m;
            let cell = |m| {
                geo(3 + p, &of(m))
                    .0
                    .map_or("-".into(), |g| format!("{g:.2}x"))
            };
            let worst = geo(3 + p, &|r: &Row| r.kernel == kernel.name).3;
            println!(
                "| {} | {} | {} | {} | {worst:.2}x |",
                kernel.name,
                cell("static"),
                cell("dynamic-guard"),
                cell("dynamic")
            );
        }
    }
    let larger = rows.iter().filter(|r| r.size[0] > r.size[2]).count();
    println!(
        "rows where (a) has more bytecode than (c): {larger} of {}",
        rows.len()
    );
}

/// The chart of a kernel run: per kernel and memory preset, each peer's time over (a)'s,
/// the geometric mean over the index types, bounds and Spectre settings.
pub fn kernel_chart(rows: &[Row], peers: &[&str], title: &str) -> String {
    let mut groups = Vec::new();
    for kernel in KERNELS {
        for (memory, _) in MemoryConfig::PRESETS {
            let of = |r: &&Row| r.kernel == kernel.name && r.memory == memory;
            let values =
                (0..peers.len())
                    .map(|p| {
                        chart::geometric_mean(rows.iter().filter(of).filter_map(|r| {
                            Some(r.peers[p]?.as_secs_f64() / r.time[0].as_secs_f64())
                        }))
                    })
                    .collect();
            groups.push((format!("{}, {memory}", kernel.name), values));
        }
    }
    chart::speedups(title, peers, &groups)
}
