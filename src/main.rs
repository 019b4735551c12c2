//! The `clif-bounds` command line tool.

use clap::{Parser, Subcommand};
use clif_bounds::diagnostics::render_all;
use clif_bounds::filetest::run_paths;
use clif_bounds::interpreter::{DataValue, Interpreter, Outcome};
use clif_bounds::ir::{types, Type};
use clif_bounds::ir_verifier::verify_function;
use clif_bounds::parser::parse_file;
use clif_bounds::target::Target;
use clif_bounds::wasm::runtime::{Engine, InterpreterEngine};
use clif_bounds::wasm::script;
use clif_bounds::wasm::MemoryConfig;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "clif-bounds",
    version,
    about = "A bounds-checked memory access for Cranelift IR: parse, verify, print and interpret CLIF"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Walk through the embedded example: one bounds-checked load on every edge of its bound.
    Example,
    /// Run test files (`.clif`, recursively in directories); ends with `N passed, N failed`.
    Test {
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Proof-carrying code (`enable_pcc`) on every backend compile of every file.
        #[arg(long)]
        pcc: bool,
    },
    /// Parse and print the functions of a file in canonical form.
    Cat {
        /// The CLIF file.
        file: PathBuf,
    },
    /// Verify the functions of a file.
    Verify {
        /// The CLIF file.
        file: PathBuf,
        /// Target whose pointer width applies (x86_64, aarch64, pulley32, pulley64, ...).
        #[arg(long, default_value = "x86_64")]
        target: String,
    },
    /// Expand the bounds-checked accesses of a file into ordinary CLIF for real Cranelift.
    Legalize {
        /// The CLIF file.
        file: PathBuf,
        /// Target (x86_64, aarch64, riscv64, s390x, pulley32, pulley64): pointer width, and
        /// Pulley's plain `select` for the Spectre form. Overrides the file's `target` line.
        #[arg(long)]
        target: Option<String>,
        /// `true` or `false`; overrides the file's `set enable_heap_access_spectre_mitigation`.
        #[arg(long)]
        spectre: Option<bool>,
        /// Print, for each access, which case (A-I) it became, as a comment line.
        #[arg(long)]
        explain: bool,
    },
    /// Run the `; run:` lines of a file on the interpreter and print each outcome.
    Interpret {
        /// The CLIF file.
        file: PathBuf,
    },
    /// Translate a Wasm module and print the CLIF of every function.
    Translate {
        /// A `.wat` or `.wasm` file.
        file: PathBuf,
        /// Memory configuration: a preset (static, dynamic-guard, dynamic) or Wasmtime knobs,
        /// `reservation=4GiB,guard=2GiB,may-move=no`.
        #[arg(long, default_value = "static")]
        memory: String,
        /// Print the legalized (exploded) form instead, for this target.
        #[arg(long)]
        legalize: bool,
        /// Target of the legalized form.
        #[arg(long, default_value = "x86_64")]
        target: String,
        /// Spectre mitigation in the legalized form: on or off.
        #[arg(long, default_value = "off")]
        spectre: String,
    },
    /// Run `.wast` scripts (recursively in directories); ends with `N passed, N failed, N skipped`.
    Wast {
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Execution path: `interp` runs the fused instructions on the reference
        /// interpreter, `interp-legalized` runs the legalized form on it, `pulley64` compiles
        /// the fused instructions with our Pulley backend and runs them in pulley-interpreter,
        /// `x86_64` compiles them with our x86_64 backend and runs them natively,
        /// `cranelift` compiles the legalized form with real Cranelift 0.135.8 for the host
        /// and runs it natively.
        #[arg(long, default_value = "interp")]
        target: String,
        /// Memory configuration: a preset (static, dynamic-guard, dynamic) or Wasmtime knobs.
        #[arg(long, default_value = "static")]
        memory: String,
        /// Spectre mitigation for legalized paths: on or off.
        #[arg(long, default_value = "off")]
        spectre: String,
        /// Proof-carrying code (`enable_pcc`): prove every memory access of the code our
        /// backends compile; a function that fails to prove is a compile error.
        #[arg(long)]
        pcc: bool,
    },
    /// Run a WASI preview1 command on an engine, with this process's standard streams, and
    /// exit with its code (a trap prints its code and where, and exits with 134); or, for a
    /// directory, run every program under it that has `NAME.stdout.expected` or
    /// `NAME.stderr.expected` beside it, in its own folder preopened as `.`, compare its
    /// output byte for byte, and end with `N passed, N failed, N skipped`.
    Run {
        /// A `.wasm` (or `.wat`) file, or a directory of programs.
        path: PathBuf,
        /// Execution path, as for `wast`.
        #[arg(long, default_value = "x86_64")]
        target: String,
        /// Memory configuration: a preset (static, dynamic-guard, dynamic) or Wasmtime knobs.
        #[arg(long, default_value = "static")]
        memory: String,
        /// Spectre mitigation: on or off.
        #[arg(long, default_value = "off")]
        spectre: String,
        /// A host directory the program may use, preopened under the name given.
        #[arg(long = "dir")]
        dirs: Vec<PathBuf>,
        /// The program's arguments (after `--`).
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Differential fuzzing: modules generated by wasm-smith from seeds SEED..SEED+COUNT, run
    /// on the reference interpreter and on every other engine under every memory preset and
    /// both Spectre settings, comparing results, trap codes and final memories, globals and
    /// tables; a divergence is shrunk and written as a `.wast` reproducer. Ends with
    /// `N passed, N failed` (modules).
    #[cfg(all(unix, feature = "fuzz"))]
    Fuzz {
        /// The first seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// How many modules.
        #[arg(long, default_value_t = 100)]
        count: u64,
        /// Check our backends' code with proof-carrying code as well.
        #[arg(long)]
        pcc: bool,
        /// Where reproducers are written.
        #[arg(long, default_value = "fuzz-divergences")]
        out: PathBuf,
        /// Write divergent modules as generated, without shrinking them.
        #[arg(long)]
        no_shrink: bool,
        /// Also write every generated module into DIR as `seed-N.wasm`.
        #[arg(long, value_name = "DIR")]
        save: Option<PathBuf>,
    },
    /// Benchmark Wasm kernels on Pulley or x86_64: (a) our backend on the fused instruction,
    /// (b) our backend on the legalized form, (c) real Cranelift 0.135.8 on the legalized
    /// form, and with the `peers` feature Wasmtime 48 and wasmi; sizes and median times as
    /// ratios. `--programs DIR` runs real programs instead. Build with `--release` (`./dev
    /// bench`).
    #[cfg(all(unix, feature = "cranelift"))]
    Bench {
        /// Calls per measurement (alternating between the engines); the median is kept.
        /// With `--programs`: runs per program and engine (default 3).
        #[arg(long)]
        reps: Option<usize>,
        /// Processes, one after another, each measuring everything; per row, the median of
        /// their medians is reported (a slow spell of the machine can spoil one run's row).
        #[arg(long, default_value_t = 5)]
        processes: usize,
        /// Print raw rows for a parent `bench` (internal).
        #[arg(long, hide = true)]
        raw: bool,
        /// Count host instructions per call under callgrind (valgrind) instead of timing:
        /// one run, deterministic.
        #[arg(long)]
        instructions: bool,
        /// Where the kernels run: pulley64 (in pulley-interpreter) or x86_64 (natively; also
        /// prints the instructions per access of the 96 Wasmtime configurations). aarch64,
        /// emulated here, only with `--instructions`: the instructions per access of the 96
        /// configurations against real Cranelift's aarch64 code (and, with feature `peers`,
        /// Wasmtime 48's).
        #[arg(long, default_value = "pulley64")]
        target: String,
        /// Instead of timing: compile the PCC corpus (the kernels, the 96 access
        /// configurations and the shapes of past bugs) on every backend with proof-carrying
        /// code, and report what was proven and the checking time as a share of compile time.
        #[arg(long)]
        pcc: bool,
        /// Instead of the kernels: every program under DIR with expected output (a WASI
        /// command, such as `../shared/testdata/programs`), on our backend and its peers,
        /// each run's output checked.
        #[arg(long, value_name = "DIR", conflicts_with_all = ["processes", "instructions", "pcc"])]
        programs: Option<PathBuf>,
        /// With `--programs`: the memory presets, comma-separated.
        #[arg(
            long,
            default_value = "static,dynamic-guard,dynamic",
            requires = "programs"
        )]
        memory: String,
        /// With `--programs`: the Spectre settings, comma-separated (on, off).
        #[arg(long, default_value = "off", requires = "programs")]
        spectre: String,
        /// Also write the speed-ups against each peer as an SVG chart to FILE.
        #[arg(long, value_name = "FILE")]
        chart: Option<PathBuf>,
    },
    /// Inject each known class of lowering bug in turn (builds with the `pcc-mutants`
    /// feature only) and show that proof-carrying code rejects it on the PCC corpus; ends
    /// with `N of N mutants rejected`.
    #[cfg(all(unix, feature = "cranelift", feature = "pcc-mutants"))]
    Mutants,
    /// Prove the planner's forms sound with z3 over every index, bound, offset and memory
    /// declaration (builds with the `prove` feature); ends with `N passed, N failed`.
    #[cfg(feature = "prove")]
    Prove {
        /// Instead, the deliberately broken forms: each must be refuted with a counterexample
        /// on which the interpreter and the broken comparison disagree.
        #[arg(long)]
        broken: bool,
        /// Only the obligations whose name contains this text (e.g. `legalized`).
        #[arg(long, value_name = "TEXT")]
        only: Option<String>,
        /// Also write every proven equivalence of a legalized form as Souper IR into DIR.
        #[arg(long, value_name = "DIR")]
        souper: Option<std::path::PathBuf>,
        /// Inject a known lowering bug (a name `clif-bounds mutants` lists, e.g.
        /// `KOffByOne`; builds with the `pcc-mutants` feature only), to see how a broken
        /// lowering fails its proofs: each refutation is printed as a filetest that runs it.
        #[arg(long, value_name = "NAME", conflicts_with = "broken")]
        mutant: Option<String>,
    },
    /// Compile the functions of a CLIF or Wasm file and print, per function, the machine code
    /// disassembly and its size.
    Compile {
        /// A `.clif`, `.wat` or `.wasm` file.
        file: PathBuf,
        /// Target: pulley64, x86_64, aarch64, or `cranelift` (real Cranelift 0.135.8 for
        /// x86_64 on the legalized form, for comparison).
        #[arg(long, default_value = "pulley64")]
        target: String,
        /// Memory configuration for Wasm input: a preset (static, dynamic-guard, dynamic) or
        /// Wasmtime knobs.
        #[arg(long, default_value = "static")]
        memory: String,
        /// Print only the sizes, no disassembly.
        #[arg(short = 'D', long = "sizes-only")]
        sizes_only: bool,
        /// Spectre mitigation (`enable_heap_access_spectre_mitigation`): on or off; default
        /// is the CLIF file's `set` line, or off.
        #[arg(long)]
        spectre: Option<String>,
        /// Proof-carrying code (`enable_pcc`; default: the CLIF file's `set` line): prove
        /// every memory access and print what was proven.
        #[arg(long)]
        pcc: bool,
    },
}

const EXAMPLE: &str = include_str!("example.clif");
const EXAMPLE_WAT: &str = include_str!("example.wat");

fn main() -> ExitCode {
    // Output piped into `head` must end the process quietly, as other command-line tools do,
    // not panic in `println!` with "Broken pipe".
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(msg) => {
            eprint!("{msg}");
            if !msg.ends_with('\n') {
                eprintln!();
            }
            ExitCode::FAILURE
        }
    }
}

fn read(path: &PathBuf) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("error: cannot read {}: {e}", path.display()))
}

fn run(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Example => example(),
        Command::Test { paths, pcc } => {
            let summary = run_paths(&paths, pcc);
            for (path, why) in &summary.failures {
                println!("FAIL {}: {why}", path.display());
            }
            if pcc {
                println!("{}", clif_bounds::machinst::pcc::tally());
            }
            println!("{}", summary.closing_line());
            Ok(if summary.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Cat { file } => {
            let src = read(&file)?;
            let name = file.display().to_string();
            let parsed = parse_file(&src).map_err(|d| d.render(&name, &src))?;
            for (i, f) in parsed.functions.iter().enumerate() {
                if i > 0 {
                    println!();
                }
                print!("{}", f.func);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { file, target } => {
            let pointer = Target::lookup_or_err(&target)
                .map_err(|e| format!("error: {e}"))?
                .pointer;
            let src = read(&file)?;
            let name = file.display().to_string();
            let parsed = parse_file(&src).map_err(|d| d.render(&name, &src))?;
            let mut errors = Vec::new();
            for f in &parsed.functions {
                if let Err(e) = verify_function(&f.func, pointer) {
                    errors.extend(e);
                }
            }
            if errors.is_empty() {
                println!("{}: {} function(s) verified", name, parsed.functions.len());
                Ok(ExitCode::SUCCESS)
            } else {
                Err(render_all(&errors, &name, &src))
            }
        }
        Command::Legalize {
            file,
            target,
            spectre,
            explain,
        } => {
            let src = read(&file)?;
            let name = file.display().to_string();
            let parsed = parse_file(&src).map_err(|d| d.render(&name, &src))?;
            let target = target.or_else(|| parsed.target_name().map(str::to_string));
            let mut sets = parsed.settings();
            if let Some(s) = spectre {
                sets.push((
                    "enable_heap_access_spectre_mitigation".into(),
                    s.to_string(),
                ));
            }
            let settings = clif_bounds::legalize::Settings::new(target.as_deref(), &sets)
                .map_err(|e| format!("error: {e}"))?;
            for (i, pf) in parsed.functions.iter().enumerate() {
                verify_function(&pf.func, settings.pointer())
                    .map_err(|e| render_all(&e, &name, &src))?;
                let mut f = pf.func.clone();
                let cases = clif_bounds::legalize::legalize(&mut f, &settings);
                if i > 0 {
                    println!();
                }
                if explain {
                    for (inst, case) in &cases {
                        let (line, _) = clif_bounds::diagnostics::line_col(
                            &src,
                            pf.func.srcmap.insts[*inst].start as usize,
                        );
                        println!("; {name}:{line}: case {case}");
                    }
                }
                print!("{f}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            path,
            target,
            memory,
            spectre,
            dirs,
            args,
        } => {
            let config = MemoryConfig::parse(&memory).map_err(|e| format!("error: {e}"))?;
            let settings = legalize_settings("x86_64", &spectre)?;
            // A program runs as long as it runs, as on any engine.
            let make = engine_factory(&target, settings, false, Some(u64::MAX));
            run_command(&path, &make, config, &dirs, &args)
        }
        #[cfg(all(unix, feature = "fuzz"))]
        Command::Fuzz {
            seed,
            count,
            pcc,
            out,
            no_shrink,
            save,
        } => fuzz_command(clif_bounds::wasm::fuzz::Options {
            seed,
            count,
            pcc,
            out,
            shrink: !no_shrink,
            save,
        }),
        Command::Interpret { file } => {
            clif_bounds::filetest::interpret_path(&file, &mut |line| println!("{line}"))?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(all(unix, feature = "cranelift"))]
        Command::Bench {
            reps,
            processes,
            raw,
            instructions,
            target,
            pcc,
            programs,
            memory,
            spectre,
            chart,
        } => {
            if pcc {
                pcc_survey_command()
            } else if let Some(dir) = programs {
                let reps = reps.unwrap_or(3);
                bench_programs_command(&target, &dir, &memory, &spectre, reps, chart.as_deref())
            } else {
                bench_command(
                    &target,
                    reps.unwrap_or(21),
                    processes,
                    raw,
                    instructions,
                    chart.as_deref(),
                )
            }
        }
        #[cfg(all(unix, feature = "cranelift", feature = "pcc-mutants"))]
        Command::Mutants => mutants_command(),
        #[cfg(feature = "prove")]
        Command::Prove {
            broken,
            only,
            souper,
            mutant,
        } => {
            if let Some(name) = mutant {
                inject(&name)?;
            }
            prove_command(broken, only.as_deref(), souper.as_deref())
        }
        Command::Compile {
            file,
            target,
            memory,
            sizes_only,
            spectre,
            pcc,
        } => compile_command(&file, &target, &memory, sizes_only, spectre.as_deref(), pcc),
        Command::Translate {
            file,
            memory,
            legalize,
            target,
            spectre,
        } => {
            let config = MemoryConfig::parse(&memory).map_err(|e| format!("error: {e}"))?;
            let bytes = read_wasm(&file)?;
            let module = clif_bounds::wasm::module::parse(&bytes)
                .map_err(|e| format!("error: {}: {e}", file.display()))?;
            let translation = clif_bounds::wasm::translate::translate_module(&module, &config)
                .map_err(|e| format!("error: {}: {e}", file.display()))?;
            let settings = legalize_settings(&target, &spectre)?;
            let exports: Vec<_> = module
                .exports
                .iter()
                .filter(|e| e.kind == wasmparser::ExternalKind::Func)
                .collect();
            for (i, (f, index)) in translation
                .functions
                .iter()
                .zip(&translation.indices)
                .enumerate()
            {
                if i > 0 {
                    println!();
                }
                let names: Vec<String> = exports
                    .iter()
                    .filter(|e| e.index == *index)
                    .map(|e| format!("\"{}\"", e.name))
                    .collect();
                println!(
                    "; wasm function {index}{}",
                    if names.is_empty() {
                        String::new()
                    } else {
                        format!(", exported as {}", names.join(", "))
                    }
                );
                if legalize {
                    let mut f = f.clone();
                    clif_bounds::legalize::legalize(&mut f, &settings);
                    print!("{f}");
                } else {
                    print!("{f}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Wast {
            paths,
            target,
            memory,
            spectre,
            pcc,
        } => {
            let config = MemoryConfig::parse(&memory).map_err(|e| format!("error: {e}"))?;
            let settings = legalize_settings("x86_64", &spectre)?;
            if pcc && !clif_bounds::isa::COMPILE_TARGETS.contains(&target.as_str()) {
                return Err(format!(
                    "error: --pcc checks the code of our backends ({}), not `{target}`",
                    clif_bounds::isa::COMPILE_TARGETS.join(", ")
                ));
            }
            let make = engine_factory(&target, settings, pcc, None);
            make()?;
            let report =
                script::run_paths(&paths, config, &make).map_err(|e| format!("error: {e}"))?;
            for line in report.failures.iter().chain(&report.skips) {
                println!("{line}");
            }
            if pcc {
                println!("{}", clif_bounds::machinst::pcc::tally());
            }
            println!("{report}");
            Ok(if report.failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// The engine of `--target` ([`clif_bounds::wasm::engine`]), made afresh for each script or
/// program.
fn engine_factory(
    target: &str,
    settings: clif_bounds::legalize::Settings,
    pcc: bool,
    fuel: Option<u64>,
) -> impl Fn() -> Result<Box<dyn Engine>, String> + '_ {
    move || {
        clif_bounds::wasm::engine(target, settings, pcc, fuel).map_err(|e| format!("error: {e}"))
    }
}

/// `clif-bounds fuzz`: seeds `seed..seed + count`, a progress line every 100 modules, each
/// failure as it happens, and the totals.
#[cfg(all(unix, feature = "fuzz"))]
fn fuzz_command(options: clif_bounds::wasm::fuzz::Options) -> Result<ExitCode, String> {
    use clif_bounds::wasm::fuzz;
    let start = std::time::Instant::now();
    let summary = fuzz::run(&options, &mut |line| eprintln!("{line}"));
    println!(
        "{} modules, {} runs on {} engine configurations each ({} ended early at a stack exhaustion), {} calls by the reference ({} returned, {} trapped out of bounds), {} unsupported candidates replaced, {} mutants ({} valid) without a panic, {:.1} s",
        options.count,
        summary.runs,
        fuzz::subject_count(options.pcc),
        summary.exhausted,
        summary.calls,
        summary.returned,
        summary.out_of_bounds,
        summary.unsupported,
        summary.mutants,
        summary.valid_mutants,
        start.elapsed().as_secs_f64()
    );
    println!("{} passed, {} failed", summary.passed, summary.failed);
    Ok(if summary.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `clif-bounds run`: one WASI command with this process's streams, exiting with its code;
/// or every program of a directory that has expected output.
fn run_command(
    path: &PathBuf,
    make: &dyn Fn() -> Result<Box<dyn Engine>, String>,
    config: MemoryConfig,
    dirs: &[PathBuf],
    args: &[String],
) -> Result<ExitCode, String> {
    use clif_bounds::wasm::program::{self, Ended, Verdict};
    if path.is_dir() {
        if !dirs.is_empty() || !args.is_empty() {
            return Err(format!(
                "error: {} is a directory of programs: each runs in its own folder, preopened as `.`, with no arguments (--dir and -- ARGS are for one program)",
                path.display()
            ));
        }
        let all = program::programs(path).map_err(|e| format!("error: {e}"))?;
        let (mut passed, mut failed, mut skipped) = (0, 0, 0);
        for (i, p) in all.iter().enumerate() {
            eprint!("[{}/{}] {} ... ", i + 1, all.len(), p.display());
            let verdict = match make() {
                Ok(engine) => program::check_program(p, engine, config),
                Err(e) => Verdict::Failed(e),
            };
            match verdict {
                Verdict::Passed(t, measured, _) => {
                    passed += 1;
                    match measured {
                        Some(m) => eprintln!(
                            "ok ({:.2} s; bench.start to bench.end {:.3} s)",
                            t.as_secs_f64(),
                            m.as_secs_f64()
                        ),
                        None => eprintln!("ok ({:.2} s)", t.as_secs_f64()),
                    }
                }
                Verdict::Failed(why) => {
                    failed += 1;
                    eprintln!("FAILED");
                    println!("{}: {why}", p.display());
                }
                Verdict::Skipped(why) => {
                    skipped += 1;
                    eprintln!("skipped");
                    println!("{}: skipped: {why}", p.display());
                }
            }
        }
        println!("{passed} passed, {failed} failed, {skipped} skipped");
        return Ok(if failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let wasm = read_wasm(path)?;
    let mut argv = vec![path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().to_string(),
    )];
    argv.extend(args.iter().cloned());
    // Each directory is preopened under the name it was given, as Wasmtime's `--dir`.
    if let Some(d) = dirs.iter().find(|d| !d.is_dir()) {
        return Err(format!("error: --dir {}: not a directory", d.display()));
    }
    let preopens: Vec<(PathBuf, String)> = dirs
        .iter()
        .map(|d| (d.clone(), d.display().to_string()))
        .collect();
    let engine = make()?;
    let finished = program::run_program(&wasm, engine, config, argv, &preopens, false)
        .map_err(|e| format!("error: {}: {e}", path.display()))?;
    match finished.ended {
        Ended::Exited(code) => Ok(ExitCode::from(code.min(255) as u8)),
        Ended::Trapped(t) => {
            eprintln!("error: {}: {}", path.display(), program::describe_trap(&t));
            // As Wasmtime on Unix: the status of an abort.
            Ok(ExitCode::from(134))
        }
    }
}

fn read_wasm(path: &PathBuf) -> Result<Vec<u8>, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("error: cannot read {}: {e}", path.display()))?;
    wat::parse_bytes(&bytes)
        .map(|b| b.into_owned())
        .map_err(|e| {
            let mut e = e;
            e.set_path(path);
            format!("error: {e}")
        })
}

fn legalize_settings(
    target: &str,
    spectre: &str,
) -> Result<clif_bounds::legalize::Settings, String> {
    let spectre = match spectre {
        "on" | "true" | "yes" => true,
        "off" | "false" | "no" => false,
        s => return Err(format!("error: --spectre expects on or off, found `{s}`")),
    };
    clif_bounds::legalize::Settings::for_target(target, spectre).map_err(|e| format!("error: {e}"))
}

/// The main job on the embedded example: parse, verify, print, then run one bounds-checked
/// load on each edge of its bound and show which executions trap.
fn example() -> Result<ExitCode, String> {
    let parsed = parse_file(EXAMPLE).map_err(|d| d.render("example.clif", EXAMPLE))?;
    let pointer: Type = types::I64;
    println!("The embedded example (src/example.clif), parsed and printed in canonical form:\n");
    for f in &parsed.functions {
        verify_function(&f.func, pointer).map_err(|e| render_all(&e, "example.clif", EXAMPLE))?;
        print!("{}", f.func);
    }
    println!("\nIt verifies. `bounds_checked_load.i32 mem0 v0, v1, v2+0x1000` traps iff");
    println!("zext(v2) + 0x1000 + 4 > v1 (the bound), computed without wrap-around.\n");
    let funcs: Vec<_> = parsed.functions.iter().map(|f| &f.func).collect();
    let mut interp = Interpreter::new(funcs.iter().copied(), pointer);
    let bound: u64 = 0x1_0000;
    let base = interp
        .memory
        .map("heap", bound)
        .map_err(|e| e.to_string())?;
    let last_ok = bound - 0x1000 - 4;
    let cases: [(&str, u64); 6] = [
        ("index 0", 0),
        ("last in-bounds index (end == bound)", last_ok),
        ("one past (end == bound + 1)", last_ok + 1),
        ("index == bound", bound),
        ("largest i32 index", 0xffff_ffff),
        ("index that wraps a 32-bit end", 0xffff_f000),
    ];
    println!("Running it on a 64 KiB memory (bound {bound:#x}):");
    for (what, index) in cases {
        let args = [
            DataValue::new(types::I64, base),
            DataValue::new(types::I64, bound),
            DataValue::new(types::I32, index),
        ];
        let outcome = interp.call("%load", &args).map_err(|e| e.to_string())?;
        let shown = match outcome {
            Outcome::Returned(v) => format!("loads {:#010x}", v[0].bits),
            Outcome::Trapped(t) => format!("traps {}", t.code),
        };
        println!("  index {index:#012x}  {shown:<20} ({what})");
    }
    println!("\nWhat real Cranelift 0.135 needs instead (`clif-bounds legalize`), for x86_64:");
    for spectre in [false, true] {
        let settings = clif_bounds::legalize::Settings {
            spectre,
            ..Default::default()
        };
        let mut f = parsed.functions[0].func.clone();
        let cases = clif_bounds::legalize::legalize(&mut f, &settings);
        let case = cases.first().map_or(String::new(), |c| c.1.to_string());
        print!("\nwith enable_heap_access_spectre_mitigation={spectre} (case {case} of RFC.md):\n\n{f}");
    }
    wasm_example()?;
    Ok(ExitCode::SUCCESS)
}

/// The second half of the main job: a small Wasm program (src/example.wat) translated with
/// one bounds-checked access per memory operation, run on each execution path.
fn wasm_example() -> Result<(), String> {
    use clif_bounds::wasm::runtime::{Extern, Store};
    println!("\n--- A Wasm program through the new instruction ---\n");
    println!("src/example.wat sums i32 values of linear memory in a loop:\n\n{EXAMPLE_WAT}");
    let bytes = wat::parse_str(EXAMPLE_WAT).map_err(|e| e.to_string())?;
    let module = clif_bounds::wasm::module::parse(&bytes).map_err(|e| e.to_string())?;
    let t = clif_bounds::wasm::translate::translate_module(&module, &MemoryConfig::DYNAMIC)
        .map_err(|e| e.to_string())?;
    println!("Its `sum` function, translated for a dynamic memory (no guard, may move):\n");
    print!("{}", t.functions[0]);
    let mut paths: Vec<(String, Box<dyn Engine>)> = vec![
        (
            "interpreter, fused".into(),
            Box::new(InterpreterEngine::fused()),
        ),
        (
            "interpreter, legalized".into(),
            Box::new(InterpreterEngine::legalized(Default::default())),
        ),
    ];
    for backend in clif_bounds::isa::Backend::runnable(false) {
        paths.push((
            format!("our {} backend, fused", backend.name()),
            Box::new(clif_bounds::wasm::backend::BackendEngine::new(backend)?),
        ));
    }
    #[cfg(all(unix, feature = "cranelift"))]
    paths.push((
        "real Cranelift 0.135.8, legalized".into(),
        Box::new(clif_bounds::wasm::cranelift::CraneliftEngine::new(false)?),
    ));
    println!("\nRunning it (data at byte 16 holds 1, 2, 3, 4; the memory is 1 page, 64 KiB):");
    for (name, engine) in paths {
        let mut store = Store::new(MemoryConfig::DYNAMIC, engine);
        let i = store
            .instantiate(&bytes, &|_, _| None)
            .map_err(|e| e.to_string())?;
        let Some(Extern::Func { index, .. }) = store.export(i, "sum") else {
            return Err("example.wat exports no `sum`".into());
        };
        let mut shown = Vec::new();
        for (ptr, n) in [(16u64, 4u64), (0xfff8, 2), (0xfff8, 3)] {
            let args = [
                DataValue::new(types::I32, ptr),
                DataValue::new(types::I32, n),
            ];
            shown.push(match store.call(i, index, &args)? {
                Outcome::Returned(v) => format!("sum({ptr:#x}, {n}) = {}", v[0].bits),
                Outcome::Trapped(t) => format!("sum({ptr:#x}, {n}) traps {}", t.code),
            });
        }
        println!("  {name:<36} {}", shown.join("; "));
    }
    println!("\nRun the Wasm spec memory scripts: clif-bounds wast ../shared/testdata/spec");
    Ok(())
}

/// `clif-bounds compile`: the functions of a CLIF file, or the translation of a Wasm module,
/// compiled for `target`.
fn compile_command(
    file: &PathBuf,
    target: &str,
    memory: &str,
    sizes_only: bool,
    spectre: Option<&str>,
    pcc: bool,
) -> Result<ExitCode, String> {
    // `cranelift`: real Cranelift 0.135.8 for x86_64 on the legalized form, to compare.
    let upstream = target == "cranelift";
    if !upstream {
        clif_bounds::isa::Backend::for_target(target, false).map_err(|e| format!("error: {e}"))?;
    } else if !cfg!(feature = "cranelift") {
        return Err("error: `--target cranelift` needs the `cranelift` feature".into());
    }
    let parse_switch = |s: &str| match s {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        other => Err(format!("error: --spectre takes on or off, not `{other}`")),
    };
    let is_wasm = matches!(
        file.extension().and_then(|e| e.to_str()),
        Some("wat" | "wasm")
    );
    let (functions, file_spectre, file_pcc) = if is_wasm {
        let config = MemoryConfig::parse(memory).map_err(|e| format!("error: {e}"))?;
        let bytes = read_wasm(file)?;
        let module = clif_bounds::wasm::module::parse(&bytes)
            .map_err(|e| format!("error: {}: {e}", file.display()))?;
        let translation = clif_bounds::wasm::translate::translate_module(&module, &config)
            .map_err(|e| format!("error: {}: {e}", file.display()))?;
        (translation.functions, None, false)
    } else {
        let src = read(file)?;
        let name = file.display().to_string();
        let parsed = parse_file(&src).map_err(|d| d.render(&name, &src))?;
        let sets = parsed.settings();
        let file_spectre = sets
            .iter()
            .find(|(k, _)| k == "enable_heap_access_spectre_mitigation")
            .map(|(_, v)| v == "true");
        let file_pcc = sets.iter().any(|(k, v)| k == "enable_pcc" && v == "true");
        let mut functions = Vec::new();
        for pf in &parsed.functions {
            verify_function(&pf.func, clif_bounds::ir::types::I64)
                .map_err(|e| render_all(&e, &name, &src))?;
            functions.push(pf.func.clone());
        }
        (functions, file_spectre, file_pcc)
    };
    let pcc = pcc || file_pcc;
    if pcc && upstream {
        return Err("error: --pcc checks the code of our backends, not real Cranelift's".into());
    }
    let spectre = match spectre {
        Some(s) => parse_switch(s)?,
        None => file_spectre.unwrap_or(false),
    };
    let backend =
        clif_bounds::isa::Backend::for_target(if upstream { "x86_64" } else { target }, spectre)
            .map_err(|e| format!("error: {e}"))?
            .with_pcc(pcc);
    let mut proven = clif_bounds::machinst::pcc::PccReport::default();
    for (i, f) in functions.iter().enumerate() {
        #[cfg(feature = "cranelift")]
        let code = if upstream {
            clif_bounds::machinst::CompiledCode {
                code: clif_bounds::wasm::cranelift::compile_x64(f, spectre)
                    .map_err(|e| format!("error: {}: {e}", f.name))?,
                ..Default::default()
            }
        } else {
            backend
                .compile(f)
                .map_err(|e| format!("error: {}: {e}", f.name))?
        };
        #[cfg(not(feature = "cranelift"))]
        let code = backend
            .compile(f)
            .map_err(|e| format!("error: {}: {e}", f.name))?;
        if i > 0 && !sizes_only {
            println!();
        }
        println!("function {}: {} bytes", f.name, code.code.len());
        if !sizes_only {
            print!("{}", backend.disassemble(&code.code));
        }
        if let Some(r) = &code.pcc {
            proven.add(r);
        }
    }
    if pcc {
        println!("{proven}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `clif-bounds mutants`.
#[cfg(all(unix, feature = "cranelift", feature = "pcc-mutants"))]
fn mutants_command() -> Result<ExitCode, String> {
    use clif_bounds::mutants::{set, Mutant};
    use clif_bounds::wasm::pcc;
    let units = pcc::corpus()?;
    let functions: usize = units.iter().map(|u| u.functions.len()).sum();
    let targets = clif_bounds::isa::COMPILE_TARGETS;
    // Unmutated, every function proves: each rejection below is its mutant's.
    set(None);
    for t in targets {
        let s = pcc::survey(t, &units, 1)?;
        if let Some(f) = s.failures.first() {
            return Err(format!("error: the unmutated corpus does not prove: {f}"));
        }
    }
    println!(
        "each mutant compiles the PCC corpus ({functions} functions) on {} with proof-carrying code:",
        targets.join(", ")
    );
    let mut rejected = 0;
    for m in Mutant::ALL {
        set(Some(m));
        let (mut by_pcc, mut other, mut example) = (0, 0, None);
        let mut per_target = Vec::new();
        for t in targets {
            let mut n = 0;
            for f in pcc::survey(t, &units, 1)?.failures {
                if f.contains("pcc: ") {
                    n += 1;
                    example.get_or_insert(f);
                } else {
                    other += 1;
                }
            }
            by_pcc += n;
            per_target.push(format!("{t} {n}"));
        }
        set(None);
        let other = match other {
            0 => String::new(),
            n => format!(" ({n} other compile errors)"),
        };
        match example {
            Some(e) => {
                rejected += 1;
                let e: String = e.chars().take(400).collect();
                println!(
                    "  {m:?}: rejected in {by_pcc} functions ({}){other}; first: {e}",
                    per_target.join(", ")
                );
            }
            None => println!("  {m:?}: NOT REJECTED{other}"),
        }
    }
    println!("{rejected} of {} mutants rejected", Mutant::ALL.len());
    Ok(if rejected == Mutant::ALL.len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Injects the mutant named `name` into every later compile (`prove --mutant`).
#[cfg(feature = "prove")]
fn inject(name: &str) -> Result<(), String> {
    use clif_bounds::mutants::Mutant;
    let names = || {
        Mutant::ALL
            .iter()
            .map(|m| format!("{m:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(m) = Mutant::ALL.into_iter().find(|m| format!("{m:?}") == name) else {
        return Err(format!(
            "error: no mutant `{name}`; the mutants are {}",
            names()
        ));
    };
    #[cfg(feature = "pcc-mutants")]
    {
        clif_bounds::mutants::set(Some(m));
        Ok(())
    }
    #[cfg(not(feature = "pcc-mutants"))]
    {
        let _ = m;
        Err(
            "error: this build injects no mutants; build with `--features \"prove pcc-mutants\"`"
                .to_string(),
        )
    }
}

/// `clif-bounds prove`.
#[cfg(feature = "prove")]
fn prove_command(
    broken: bool,
    only: Option<&str>,
    souper: Option<&std::path::Path>,
) -> Result<ExitCode, String> {
    use clif_bounds::prove;
    let start = std::time::Instant::now();
    let (mut passed, mut failed) = (0, 0);
    if broken {
        for (line, why) in prove::run_broken()? {
            match why {
                Some(why) => {
                    println!("{line}\n    {why}");
                    passed += 1;
                }
                None => {
                    println!("{line}\n    NOT REFUTED with a disagreement");
                    failed += 1;
                }
            }
        }
    } else {
        let mut all = prove::obligations();
        all.extend(prove::kernel_obligations());
        let legalized = prove::legalized::obligations();
        for why in &legalized.failed {
            println!("{why}");
            failed += 1;
        }
        // The configurations must make the legalizer choose every case it has.
        use clif_bounds::legalize::Case;
        for case in Case::ALL {
            let on: Vec<&str> = legalized
                .cases
                .iter()
                .filter(|(_, c)| *c == case)
                .map(|(t, _)| *t)
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            if on.is_empty() {
                println!("legalized: no configuration makes the legalizer choose case {case}");
                failed += 1;
            } else {
                println!("legalized: case {case} chosen on {}", on.join(", "));
            }
        }
        let lowered = prove::lowered::obligations();
        for why in &lowered.failed {
            println!("{why}");
            failed += 1;
        }
        // What each Souper candidate says, read back as Souper text, must hold too.
        let candidates = match prove::souper::obligations(legalized.souper.iter().map(|(_, e)| e)) {
            Ok(candidates) => candidates,
            Err(e) => {
                println!("{e}");
                failed += 1;
                Vec::new()
            }
        };
        // The configurations' premises (declaration, layout, constants; a candidate's
        // ranges) must be satisfiable, or their proofs would say nothing.
        let mut configs: Vec<_> = legalized
            .obligations
            .iter()
            .chain(&lowered.obligations)
            .chain(&candidates)
            .cloned()
            .collect();
        if let Some(only) = only {
            configs.retain(|o| o.name.contains(only));
        }
        let vacuity = std::time::Instant::now();
        let vacuous = prove::vacuous(&configs);
        for v in &vacuous {
            println!("vacuous (premises contradict each other): {v}");
            failed += 1;
        }
        println!(
            "the premises of all {} legalized and lowered configurations and Souper candidates can hold ({:.1} s)",
            configs.len() - vacuous.len(),
            vacuity.elapsed().as_secs_f64()
        );
        all.extend(candidates);
        all.extend(legalized.obligations.iter().cloned());
        all.extend(lowered.obligations.iter().cloned());
        if let Some(only) = only {
            all.retain(|o| o.name.contains(only));
        }
        let mut proven = std::collections::HashSet::new();
        for line in prove::run(all) {
            println!("{line}");
            if line.verdict == clif_bounds_verifier::smt::Verdict::Proven {
                passed += 1;
                proven.insert(line.obligation.name);
            } else {
                failed += 1;
                // A counterexample to code is shown as a filetest that runs it.
                if let clif_bounds_verifier::smt::Verdict::Refuted(m) = &line.verdict {
                    let o = &line.obligation;
                    match legalized
                        .configs
                        .reproduce(o, m)
                        .or_else(|| lowered.configs.reproduce(o, m))
                    {
                        Some(Ok(file)) => println!(
                            "    as a filetest (`clif-bounds test FILE`):\n{}",
                            file.lines()
                                .map(|l| format!("    | {l}"))
                                .collect::<Vec<_>>()
                                .join("\n")
                        ),
                        Some(Err(why)) => println!("    {why}"),
                        None => {}
                    }
                }
            }
        }
        if let Some(dir) = souper {
            let exports = legalized
                .souper
                .iter()
                .filter(|(name, _)| proven.contains(name))
                .map(|(_, e)| e);
            let n = prove::souper::write(dir, exports)
                .map_err(|e| format!("error: {}: {e}", dir.display()))?;
            println!(
                "wrote {n} Souper candidates and {n} left-hand sides to {}",
                dir.display()
            );
            match prove::souper::check_round_trip(dir) {
                Ok(files) => {
                    println!("souper-ir reads all {files} files back and prints them unchanged")
                }
                Err(e) => {
                    println!("{e}");
                    failed += 1;
                }
            }
        }
    }
    println!(
        "total: {:.1} s on {} threads",
        start.elapsed().as_secs_f64(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!("{passed} passed, {failed} failed");
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `clif-bounds bench --pcc`.
#[cfg(all(unix, feature = "cranelift"))]
fn pcc_survey_command() -> Result<ExitCode, String> {
    use clif_bounds::wasm::pcc;
    let units = pcc::corpus()?;
    let functions: usize = units.iter().map(|u| u.functions.len()).sum();
    println!(
        "proof-carrying code over {} modules ({functions} functions): the benchmark kernels, the 96 access configurations, the shapes of past bugs",
        units.len()
    );
    let mut ok = true;
    for target in clif_bounds::isa::COMPILE_TARGETS {
        let s = pcc::survey(target, &units, 5)?;
        println!("{}: {}", s.target, s.report);
        println!(
            "{}: over 5 rounds, the proof (declarations and check) took {:.1} ms: {:.1}% of compiling with PCC ({:.1} ms), {:.1}% of compiling without ({:.1} ms); with regalloc2's checker and the decoding, compiling with PCC took {:+.1}%",
            s.target,
            s.report.check_nanos as f64 / 1e6,
            100.0 * s.share(),
            s.compile_nanos as f64 / 1e6,
            100.0 * s.share_of_plain(),
            s.plain_nanos as f64 / 1e6,
            100.0 * s.overhead(),
        );
        for f in &s.failures {
            println!("FAIL {f}");
        }
        ok &= s.failures.is_empty();
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `clif-bounds bench --programs DIR`.
#[cfg(all(unix, feature = "cranelift"))]
fn bench_programs_command(
    target: &str,
    dir: &Path,
    memory: &str,
    spectre: &str,
    reps: usize,
    chart: Option<&Path>,
) -> Result<ExitCode, String> {
    use clif_bounds::wasm::bench;
    let target = bench::BenchTarget::parse(target).map_err(|e| format!("error: {e}"))?;
    let presets = memory
        .split(',')
        .map(|m| {
            MemoryConfig::PRESETS
                .iter()
                .find(|(n, _)| *n == m)
                .copied()
                .ok_or_else(|| format!("error: --memory: unknown preset `{m}`"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let spectre = spectre
        .split(',')
        .map(|s| legalize_settings(target.name(), s).map(|s| s.spectre))
        .collect::<Result<Vec<_>, _>>()?;
    if bench::peer_names(target).is_empty() {
        eprintln!("note: built without the `peers` feature: ours only (`./dev bench` has them)");
    }
    println!(
        "method: {reps} runs per program, engine and configuration, engines alternating run by run; the time of a run is bench.start..bench.end where the program marks it, else its _start call (never compilation); the median kept; a run whose output differs from the expected files is reported and has no time"
    );
    let rows = bench::programs::run(target, dir, &presets, &spectre, reps.max(1), &mut |r| {
        let times: Vec<String> = r
            .time
            .iter()
            .map(|t| {
                t.map_or("failed".into(), |t| {
                    format!("{:.2}ms", t.as_secs_f64() * 1e3)
                })
            })
            .collect();
        eprintln!(
            "bench: {} ({}, spectre {}): {}",
            r.program,
            r.memory,
            r.spectre,
            times.join(" ")
        );
    })
    .map_err(|e| format!("error: {e}"))?;
    bench::programs::report(target, &rows);
    if let Some(file) = chart {
        let title = format!(
            "Real programs on {}: speed-up of ours against each peer",
            target.name()
        );
        write_chart(file, &bench::programs::chart(target, &rows, &title))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(all(unix, feature = "cranelift"))]
fn bench_command(
    target: &str,
    reps: usize,
    processes: usize,
    raw: bool,
    instructions: bool,
    chart: Option<&Path>,
) -> Result<ExitCode, String> {
    use clif_bounds::wasm::bench;
    if target == "aarch64" {
        // The aarch64 code runs in QEMU's emulation here: its time and host instructions
        // would measure QEMU, so the benchmark is the code itself, counted statically.
        if !instructions {
            return Err(
                "error: aarch64 code runs under emulation on this host, so its time \
                 measures QEMU, not the code: `bench --target aarch64 --instructions` counts \
                 the instructions per access instead"
                    .into(),
            );
        }
        bench::access_report("aarch64")?;
        return Ok(ExitCode::SUCCESS);
    }
    let target = bench::BenchTarget::parse(target).map_err(|e| format!("error: {e}"))?;
    if raw {
        bench::run(target, reps.max(1), &mut |r| println!("{}", r.to_line()))?;
        return Ok(ExitCode::SUCCESS);
    }
    if instructions {
        let (rows, counts) = bench::instructions_under_callgrind(target)?;
        let peers = bench::peer_names(target);
        bench::report(&rows, &peers, "instructions", "Minstr", &|i, e| {
            counts[i][e].map(|c| c as f64 / 1e6)
        });
        return Ok(ExitCode::SUCCESS);
    }
    if cfg!(debug_assertions) {
        eprintln!("note: a debug build; run `./dev bench` for numbers worth citing");
    }
    let exe = std::env::current_exe().map_err(|e| format!("error: this program's path: {e}"))?;
    let mut runs = Vec::new();
    for p in 1..=processes.max(1) {
        eprintln!("bench: process {p} of {}", processes.max(1));
        let out = std::process::Command::new(&exe)
            .args(["bench", "--raw", "--target", target.name()])
            .args(["--reps", &reps.max(1).to_string()])
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| format!("error: starting {}: {e}", exe.display()))?;
        if !out.status.success() {
            return Err(format!(
                "error: benchmark process {p} failed ({})",
                out.status
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        runs.push(
            text.lines()
                .map(bench::Row::parse_line)
                .collect::<Result<Vec<_>, _>>()?,
        );
    }
    let rows = bench::median_over(runs)?;
    let peers = bench::peer_names(target);
    bench::report(&rows, &peers, "time", "us", &|i, e| {
        let r = &rows[i];
        let t = if e < 3 {
            Some(r.time[e])
        } else {
            r.peers[e - 3]
        };
        t.map(|t| t.as_secs_f64() * 1e6)
    });
    if let Some(file) = chart {
        let title = format!(
            "Kernels on {}: speed-up of ours (a) against each peer",
            target.name()
        );
        write_chart(file, &bench::kernel_chart(&rows, &peers, &title))?;
    }
    if target.name() == "x86_64" {
        bench::access_report("x86_64")?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(all(unix, feature = "cranelift"))]
fn write_chart(file: &Path, svg: &str) -> Result<(), String> {
    std::fs::write(file, svg).map_err(|e| format!("error: {}: {e}", file.display()))?;
    eprintln!("bench: chart written to {}", file.display());
    Ok(())
}
