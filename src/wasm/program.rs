//! Running WASI commands: one program (`clif-bounds run PROGRAM.wasm`), or every program of
//! a directory that has expected output, compared byte for byte (`clif-bounds run DIR`).

use super::runtime::{Engine, Extern, InstantiationError, Store};
use super::wasi::Wasi;
use super::{trap_message, traps, MemoryConfig};
use crate::interpreter::{Outcome, Trap};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How a program ended.
#[derive(Debug)]
pub enum Ended {
    /// `_start` returned, or the program called `proc_exit` with this code.
    Exited(u32),
    /// It trapped: the trap, its location in terms of the module's function names.
    Trapped(Trap),
}

/// A finished run.
pub struct Finished {
    /// How it ended.
    pub ended: Ended,
    /// Its standard output and error, when captured.
    pub stdout: Vec<u8>,
    /// Standard error.
    pub stderr: Vec<u8>,
    /// The time between `bench.start` and `bench.end`, if it called both.
    pub measured: Option<Duration>,
    /// The time of the `_start` call: the run, without compiling and instantiating.
    pub start: Duration,
}

impl Finished {
    /// A run that ended as `ended` after a `_start` call of `start`, with what its host
    /// `wasi` captured and measured.
    pub fn of(wasi: &Wasi, ended: Ended, start: Duration) -> Finished {
        Finished {
            ended,
            stdout: wasi.stdout.borrow().captured().to_vec(),
            stderr: wasi.stderr.borrow().captured().to_vec(),
            measured: wasi.measured(),
            start,
        }
    }
}

/// Runs the WASI command `wasm` (`_start`) on a fresh store of `engine` under `config`,
/// with `args` (the first is its name) and `dirs` (`(host directory, name it sees)`)
/// preopened. With `capture`, standard output and error are kept (and standard input is
/// empty); otherwise they are this process's. An error is a problem of the module or the
/// engine (it does not validate, does not link, cannot be compiled), never the program's.
pub fn run_program(
    wasm: &[u8],
    engine: Box<dyn Engine>,
    config: MemoryConfig,
    args: Vec<String>,
    dirs: &[(PathBuf, String)],
    capture: bool,
) -> Result<Finished, String> {
    let mut store = Store::new(config, engine);
    let env = Vec::new();
    let wasi = Rc::new(Wasi::new(args, env, dirs, capture));
    let mut start = Duration::ZERO;
    let ended = match store.instantiate(wasm, &|m, f| wasi.import(m, f)) {
        Err(InstantiationError::Trap(code)) => Ended::Trapped(Trap {
            code,
            location: "instantiation".into(),
        }),
        Err(e) => return Err(e.to_string()),
        Ok(instance) => {
            let Some(Extern::Func { index, .. }) = store.export(instance, "_start") else {
                return Err("the module exports no `_start` function: not a WASI command".into());
            };
            let started = Instant::now();
            let outcome = store.call(instance, index, &[])?;
            start = started.elapsed();
            match outcome {
                Outcome::Returned(_) => Ended::Exited(0),
                Outcome::Trapped(t) => Ended::Trapped(t),
            }
        }
    };
    let ended = match ended {
        Ended::Trapped(t) if t.code == traps::EXIT => Ended::Exited(wasi.exit_code().unwrap_or(0)),
        e => e,
    };
    Ok(Finished::of(&wasi, ended, start))
}

/// A trap as a program's user reads it: its code, the spec's message, where.
pub fn describe_trap(t: &Trap) -> String {
    match trap_message(t.code) {
        Some(m) => format!("wasm trap: {} ({m}) in {}", t.code, t.location),
        None => format!("wasm trap: {} in {}", t.code, t.location),
    }
}

/// The verdict on one program of a directory.
pub enum Verdict {
    /// Its output matched: the whole run's time (compilation included), the region
    /// between `bench.start` and `bench.end` if it marked one, and the `_start` call's.
    Passed(Duration, Option<Duration>, Duration),
    /// It did not: why.
    Failed(String),
    /// It was not run: why.
    Skipped(String),
}

/// Every WASI command under `dir` (recursively, in name order): `.wasm` files.
pub fn programs(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| format!("{}: {e}", d.display()))?;
        for e in entries {
            let p = e.map_err(|e| format!("{}: {e}", d.display()))?.path();
            if p.is_dir() {
                todo.push(p);
            } else if p.extension().is_some_and(|x| x == "wasm") {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Runs `program` in its own folder (preopened as `.`) and compares its standard output
/// and error with `NAME.stdout.expected` and `NAME.stderr.expected` beside it, byte for
/// byte; a missing file means that stream must be empty, and a program with neither file
/// is skipped. A program must exit with 0.
pub fn check_program(program: &Path, engine: Box<dyn Engine>, config: MemoryConfig) -> Verdict {
    let mut engine = Some(engine);
    check_program_with(program, &mut |wasm, args, dirs| {
        let engine = engine.take().ok_or("one engine runs one program")?;
        run_program(wasm, engine, config, args, dirs, true)
    })
}

/// How [`check_program_with`] runs a program: its bytes, its arguments (the first is its
/// name), its preopened directories; the run, output captured. Our engines run it with
/// [`run_program`], the peers of `clif-bounds bench` with their own runtimes.
pub type Runner<'a> =
    dyn FnMut(&[u8], Vec<String>, &[(PathBuf, String)]) -> Result<Finished, String> + 'a;

/// [`check_program`] on any engine: `run` runs it.
pub fn check_program_with(program: &Path, run: &mut Runner) -> Verdict {
    let folder = program.parent().unwrap_or(Path::new(".")).to_path_buf();
    let stem = program
        .file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .to_string();
    let expected =
        |stream: &str| std::fs::read(folder.join(format!("{stem}.{stream}.expected"))).ok();
    let (want_out, want_err) = (expected("stdout"), expected("stderr"));
    if !has_expected_output(program) {
        return Verdict::Skipped("no expected output beside it".into());
    }
    let wasm = match std::fs::read(program) {
        Ok(w) => w,
        Err(e) => return Verdict::Failed(format!("cannot read it: {e}")),
    };
    let name = program
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .to_string();
    let started = Instant::now();
    let dirs = [(folder, ".".to_string())];
    let run = match run(&wasm, vec![name], &dirs) {
        Ok(r) => r,
        Err(e) => return Verdict::Failed(e),
    };
    let elapsed = started.elapsed();
    match &run.ended {
        Ended::Exited(0) => {}
        Ended::Exited(c) => return Verdict::Failed(format!("exited with {c}")),
        Ended::Trapped(t) => return Verdict::Failed(describe_trap(t)),
    }
    for (stream, want, got) in [
        ("stdout", want_out, &run.stdout),
        ("stderr", want_err, &run.stderr),
    ] {
        let want = want.unwrap_or_default();
        if want != *got {
            return Verdict::Failed(first_difference(stream, &want, got));
        }
    }
    Verdict::Passed(elapsed, run.measured, run.start)
}

/// Whether `program` has `NAME.stdout.expected` or `NAME.stderr.expected` beside it: the
/// programs of a directory that [`check_program`] runs (the others it skips).
pub fn has_expected_output(program: &Path) -> bool {
    let stem = program.file_stem().unwrap_or_default().to_string_lossy();
    let folder = program.parent().unwrap_or(Path::new("."));
    ["stdout", "stderr"]
        .iter()
        .any(|s| folder.join(format!("{stem}.{s}.expected")).exists())
}

/// Where `got` first differs from `want`, for a failure message.
fn first_difference(stream: &str, want: &[u8], got: &[u8]) -> String {
    let at = want
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or(want.len().min(got.len()));
    let line = want[..at.min(want.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1;
    let show = |b: &[u8]| {
        let end = b[at.min(b.len())..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(b.len(), |p| at + p);
        String::from_utf8_lossy(&b[at.min(b.len())..end.min(b.len()).max(at.min(b.len()))])
            .to_string()
    };
    format!(
        "{stream} differs at byte {at} (line {line}; {} bytes expected, {} got): expected `{}`, got `{}`",
        want.len(),
        got.len(),
        show(want),
        show(got)
    )
}
