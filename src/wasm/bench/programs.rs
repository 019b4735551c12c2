//! `clif-bounds bench --programs DIR`: the real programs of a corpus (WASI commands with
//! expected output, `../shared/testdata/programs`) on our backend and on the engines users
//! would pick instead, side by side.
//!
//! Per program, memory preset and Spectre setting, each engine runs the program `reps`
//! times, the engines taking turns run by run (a slow spell of the machine then hits all of
//! them alike). A run counts only when its output equals the expected files byte for byte;
//! a run that fails is reported and has no time. The time of a run is the region between
//! `bench.start` and `bench.end` when the program marks one (Sightglass), otherwise its
//! whole `_start` call (compilation and instantiation are never included); the median over
//! the runs is kept.

use super::super::program::{self, Runner, Verdict};
use super::BenchTarget;
use crate::wasm::MemoryConfig;
use std::path::Path;
use std::time::Duration;

/// Runs shorter than this are reported but not compared: a region this short (Sightglass's
/// `noop`, a loop the compiler removed) measures the clock, not the engine.
pub const SHORTEST: Duration = Duration::from_micros(50);

/// One program under one configuration: the median time per engine (ours first, then the
/// peers), `None` where the engine failed it.
pub struct ProgramRow {
    /// The program's path relative to the corpus.
    pub program: String,
    /// Memory preset.
    pub memory: &'static str,
    /// Spectre mitigation.
    pub spectre: bool,
    /// Median time per engine.
    pub time: Vec<Option<Duration>>,
}

/// The engines of the program benchmark for `target`: ours, then its peers.
pub fn engine_names(target: BenchTarget) -> Vec<String> {
    let mut names = vec![format!("ours ({})", target.name())];
    names.extend(super::peer_names(target).iter().map(|p| p.to_string()));
    names
}

/// The runner of engine `e` of [`engine_names`].
fn runner(
    target: BenchTarget,
    e: usize,
    config: MemoryConfig,
    spectre: bool,
) -> Result<Box<Runner<'static>>, String> {
    if e == 0 {
        let settings = crate::legalize::Settings::for_target(target.name(), spectre)?;
        let name = target.name();
        return Ok(Box::new(move |wasm, args, dirs| {
            // A program runs as long as it runs, as on any engine.
            let engine = crate::wasm::engine(name, settings, false, Some(u64::MAX))?;
            program::run_program(wasm, engine, config, args, dirs, true)
        }));
    }
    #[cfg(feature = "peers")]
    {
        let peer = crate::wasm::peers::Peer::of_target(target.name())[e - 1];
        Ok(peer.runner(config, spectre))
    }
    #[cfg(not(feature = "peers"))]
    Err(format!("engine {e}: built without the `peers` feature"))
}

/// Measures every program under `dir` that has expected output, under each of `presets`
/// and Spectre settings `spectre`; `report` gets each row as it is done.
pub fn run(
    target: BenchTarget,
    dir: &Path,
    presets: &[(&'static str, MemoryConfig)],
    spectre: &[bool],
    reps: usize,
    report: &mut dyn FnMut(&ProgramRow),
) -> Result<Vec<ProgramRow>, String> {
    let engines = engine_names(target).len();
    let mut rows = Vec::new();
    for path in program::programs(dir)? {
        let name = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .display()
            .to_string();
        if !program::has_expected_output(&path) {
            eprintln!("bench: {name}: skipped, no expected output beside it to check runs against");
            continue;
        }
        for &(memory, config) in presets {
            for &spectre in spectre {
                let mut runners = (0..engines)
                    .map(|e| runner(target, e, config, spectre))
                    .collect::<Result<Vec<_>, _>>()?;
                let mut samples: Vec<Option<Vec<Duration>>> = vec![Some(Vec::new()); engines];
                for _ in 0..reps {
                    for (e, run) in runners.iter_mut().enumerate() {
                        let Some(times) = &mut samples[e] else {
                            continue;
                        };
                        match program::check_program_with(&path, run) {
                            Verdict::Passed(_, region, start) => {
                                times.push(region.unwrap_or(start))
                            }
                            Verdict::Failed(why) | Verdict::Skipped(why) => {
                                eprintln!(
                                    "bench: {name} ({memory}, spectre {spectre}): {} failed, no time: {why}",
                                    engine_names(target)[e]
                                );
                                samples[e] = None;
                            }
                        }
                    }
                }
                let time = samples.into_iter().map(|s| super::median(s?)).collect();
                let row = ProgramRow {
                    program: name.clone(),
                    memory,
                    spectre,
                    time,
                };
                report(&row);
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

/// The table: per row, each engine's median time and each peer's time over ours; then per
/// peer the geometric mean of that ratio, overall and per memory preset, the programs where
/// ours is faster, and the worst.
pub fn report(target: BenchTarget, rows: &[ProgramRow]) {
    let names = engine_names(target);
    let mut header = format!("{:<40} {:<13} {:<7}", "program", "memory", "spectre");
    for n in &names {
        header += &format!(" {n:>16}");
    }
    for n in &names[1..] {
        header += &format!(" {:>14}", format!("{n}/ours"));
    }
    println!("{header}");
    for r in rows {
        let mut line = format!(
            "{:<40} {:<13} {:<7}",
            r.program,
            r.memory,
            if r.spectre { "on" } else { "off" }
        );
        for t in &r.time {
            line += &match t {
                Some(t) => format!(" {:>14.2}ms", t.as_secs_f64() * 1e3),
                None => format!(" {:>16}", "failed"),
            };
        }
        for e in 1..names.len() {
            line += &match ratio(r, e) {
                Some(x) => format!(" {x:>14.2}"),
                None => format!(" {:>14}", "-"),
            };
        }
        println!("{line}");
    }
    let mut short: Vec<&str> = rows
        .iter()
        .filter(|r| r.time[0].is_some_and(|t| t < SHORTEST))
        .map(|r| r.program.as_str())
        .collect();
    short.dedup();
    if !short.is_empty() {
        println!(
            "\nnot compared (ours under {} us, too short to time): {}",
            SHORTEST.as_micros(),
            short.join(", ")
        );
    }
    println!();
    for (e, name) in names.iter().enumerate().skip(1) {
        let mut groups: Vec<&str> = vec!["all"];
        for r in rows {
            if !groups.contains(&r.memory) {
                groups.push(r.memory);
            }
        }
        for group in groups {
            let v: Vec<f64> = rows
                .iter()
                .filter(|r| group == "all" || r.memory == group)
                .filter_map(|r| ratio(r, e))
                .collect();
            let Some(g) = super::chart::geometric_mean(v.iter().copied()) else {
                println!("{name}/ours, {group}: no program compared");
                continue;
            };
            let faster = v.iter().filter(|&&x| x > 1.0).count();
            let worst = v.iter().cloned().fold(f64::INFINITY, f64::min);
            println!(
                "{name}/ours, {group}: geometric mean {g:.2}x over {} runs of programs, ours faster in {faster}, worst {worst:.2}x",
                v.len()
            );
        }
    }
}

/// The chart of a program run: per program, each peer's time over ours, the geometric mean
/// over the configurations measured.
pub fn chart(target: BenchTarget, rows: &[ProgramRow], title: &str) -> String {
    let names = engine_names(target);
    let peers: Vec<&str> = names[1..].iter().map(String::as_str).collect();
    let mut programs: Vec<&str> = rows.iter().map(|r| r.program.as_str()).collect();
    programs.dedup();
    let groups: Vec<(String, Vec<Option<f64>>)> = programs
        .iter()
        .map(|&p| {
            let values = (1..names.len())
                .map(|e| {
                    super::chart::geometric_mean(
                        rows.iter()
                            .filter(|r| r.program == p)
                            .filter_map(|r| ratio(r, e)),
                    )
                })
                .collect();
            (p.to_string(), values)
        })
        .collect();
    super::chart::speedups(title, &peers, &groups)
}

/// Engine `e`'s time over ours in row `r`, when both ran it and ours is long enough to time.
fn ratio(r: &ProgramRow, e: usize) -> Option<f64> {
    match (r.time[e], r.time[0]) {
        (Some(p), Some(o)) if o >= SHORTEST => Some(p.as_secs_f64() / o.as_secs_f64()),
        _ => None,
    }
}
