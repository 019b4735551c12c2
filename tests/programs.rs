//! Real programs and their WASI host: the corpus of third-party programs
//! (`../shared/testdata/programs`, or `CLIF_BOUNDS_PROGRAMS_DIR`) on the engines, under the
//! static and dynamic presets and both Spectre settings, compared byte for byte with their
//! expected output; and the host's capability safety (every refused path form) and its
//! handling of bad guest pointers.

use clif_bounds::interpreter::{DataValue, Outcome};
use clif_bounds::ir::types;
use clif_bounds::isa::Backend;
use clif_bounds::legalize::Settings;
use clif_bounds::wasm::backend::BackendEngine;
use clif_bounds::wasm::cranelift::CraneliftEngine;
use clif_bounds::wasm::program::{self, Ended, Verdict};
use clif_bounds::wasm::runtime::{Engine, Extern, InterpreterEngine, Store};
use clif_bounds::wasm::wasi::Wasi;
use clif_bounds::wasm::MemoryConfig;
use std::path::{Path, PathBuf};
use std::rc::Rc;

fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("CLIF_BOUNDS_PROGRAMS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/programs")
        });
    if dir.is_dir() {
        Some(dir)
    } else {
        println!(
            "SKIPPED: the programs are not at {} (set CLIF_BOUNDS_PROGRAMS_DIR)",
            dir.display()
        );
        None
    }
}

type Make = dyn Fn(bool) -> Result<Box<dyn Engine>, String>;

/// Runs every program of the corpus that `take` accepts on the engine `make` builds (for a
/// Spectre setting), under the static and dynamic presets and both Spectre settings: every
/// one with expected output must pass; those without are the only skips.
fn corpus_on(name: &str, make: &Make, take: &dyn Fn(&Path) -> bool) {
    let Some(dir) = corpus() else { return };
    let all = program::programs(&dir).unwrap();
    let chosen: Vec<&PathBuf> = all.iter().filter(|p| take(p)).collect();
    assert!(!chosen.is_empty(), "no programs under {}", dir.display());
    for (preset, config) in [
        ("static", MemoryConfig::STATIC),
        ("dynamic", MemoryConfig::DYNAMIC),
    ] {
        for spectre in [false, true] {
            let (mut passed, mut skipped, mut failed) = (0, 0, Vec::new());
            for p in &chosen {
                match program::check_program(p, make(spectre).unwrap(), config) {
                    Verdict::Passed(..) => passed += 1,
                    Verdict::Skipped(why) => {
                        skipped += 1;
                        println!("  {}: skipped: {why}", p.display());
                    }
                    Verdict::Failed(why) => failed.push(format!("{}: {why}", p.display())),
                }
            }
            println!(
                "{name}, memory {preset}, spectre {spectre}: {passed} passed, {} failed, {skipped} skipped",
                failed.len()
            );
            assert!(failed.is_empty(), "{}", failed.join("\n"));
            assert!(
                passed > 0 && skipped <= 1,
                "{name}: {passed} passed, {skipped} skipped"
            );
        }
    }
}

fn backend(target: &'static str) -> impl Fn(bool) -> Result<Box<dyn Engine>, String> {
    move |spectre| {
        Ok(Box::new(BackendEngine::new(Backend::for_target(
            target, spectre,
        )?)?))
    }
}

/// The whole corpus on our x86_64 backend.
#[test]
fn corpus_on_x86_64() {
    corpus_on("x86_64", &backend("x86_64"), &|_| true);
}

/// The whole corpus on real Cranelift 0.135.8 (our translation, legalized).
#[test]
fn corpus_on_cranelift() {
    corpus_on(
        "cranelift x86_64",
        &|spectre| Ok(Box::new(CraneliftEngine::new(spectre)?)),
        &|_| true,
    );
}

/// Programs that run longer than a second in `pulley-interpreter` (measured in a release
/// build: these fourteen take 1 to 11 s each, 67 s of the corpus's 73 s) are left to
/// `clif-bounds run DIR --target pulley64`, which passes them too; the suite runs the rest
/// on pulley64 under all four configurations.
const LONG_ON_PULLEY: [&str; 14] = [
    "cholesky",
    "floyd-warshall",
    "fdtd-2d",
    "lu",
    "seidel-2d",
    "jacobi-2d",
    "shootout-base64",
    "shootout-ctype",
    "shootout-fib2",
    "shootout-heapsort",
    "shootout-matrix",
    "shootout-memmove",
    "shootout-minicsv",
    "shootout-sieve",
];

/// The corpus on pulley64, but for [`LONG_ON_PULLEY`].
#[test]
fn corpus_on_pulley64() {
    let take = |p: &Path| {
        let stem = p
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let long = LONG_ON_PULLEY.contains(&stem.as_str());
        if long {
            println!(
                "  {}: left to `clif-bounds run` (over a second on pulley64)",
                p.display()
            );
        }
        !long
    };
    corpus_on("pulley64", &backend("pulley64"), &take);
}

/// The small programs on the reference interpreter too, with no instruction budget: the
/// others take from 7 s to minutes each there in a release build (2mm 9 s, cholesky 45 s),
/// and `shootout-ackermann` recurses deeper than the interpreter's 512 frames.
#[test]
fn small_programs_on_the_interpreter() {
    let small = |p: &Path| {
        let stem = p
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        ["atax", "bicg", "durbin", "trisolv"].contains(&stem.as_str())
            || p.parent().is_some_and(|d| d.ends_with("noop"))
    };
    let fused = |_| {
        let engine = InterpreterEngine::fused().with_fuel(Some(u64::MAX));
        Ok(Box::new(engine) as Box<dyn Engine>)
    };
    corpus_on("interp", &fused, &small);
    let legalized = |spectre| {
        let settings = Settings {
            spectre,
            ..Settings::default()
        };
        let engine = InterpreterEngine::legalized(settings).with_fuel(Some(u64::MAX));
        Ok(Box::new(engine) as Box<dyn Engine>)
    };
    corpus_on("interp-legalized", &legalized, &small);
}

/// A test module of the host: `open(path, len, lookupflags)` is `path_open` beneath
/// preopen 3, returning its errno (the descriptor at 1024); `write(iovs, n)` is `fd_write`
/// to standard output; `exit(code)` is `proc_exit`.
const PROBE: &str = r#"
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "open") (param i32 i32 i32) (result i32)
    (call $path_open (i32.const 3) (local.get 2) (local.get 0) (local.get 1)
      (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 1024)))
  (func (export "open_to") (param i32 i32 i32) (result i32)
    (call $path_open (i32.const 3) (i32.const 1) (local.get 0) (local.get 1)
      (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (local.get 2)))
  (func (export "write") (param i32 i32) (result i32)
    (call $fd_write (i32.const 1) (local.get 0) (local.get 1) (i32.const 2048)))
  (func (export "exit") (param i32) (call $proc_exit (local.get 0)) (unreachable))
  (func (export "random") (param i32 i32) (result i32)
    (call $random_get (local.get 0) (local.get 1)))
  (func (export "read") (param i32 i32) (result i32)
    (call $fd_read (i32.const 0) (local.get 0) (local.get 1) (i32.const 2048)))
  (func (export "_start") (call $proc_exit (i32.const 7)))
)"#;

struct Probe {
    store: Store,
    instance: usize,
    memory: usize,
}

impl Probe {
    fn new(engine: Box<dyn Engine>, root: &Path) -> (Probe, Rc<Wasi>) {
        let wasi = Rc::new(Wasi::new(
            vec!["probe".into()],
            Vec::new(),
            &[(root.to_path_buf(), ".".into())],
            true,
        ));
        let mut store = Store::new(MemoryConfig::DYNAMIC, engine);
        let bytes = wat::parse_str(PROBE).unwrap();
        let instance = store
            .instantiate(&bytes, &|m, f| wasi.import(m, f))
            .unwrap();
        let memory = store.instance(instance).memories[0];
        (
            Probe {
                store,
                instance,
                memory,
            },
            wasi,
        )
    }

    fn call(&mut self, name: &str, args: &[u32]) -> Outcome {
        let Some(Extern::Func { index, .. }) = self.store.export(self.instance, name) else {
            panic!("no export {name}")
        };
        let args: Vec<DataValue> = args
            .iter()
            .map(|&a| DataValue::new(types::I32, u64::from(a)))
            .collect();
        self.store.call(self.instance, index, &args).unwrap()
    }

    fn errno(&mut self, name: &str, args: &[u32]) -> u32 {
        match self.call(name, args) {
            Outcome::Returned(v) => v[0].bits as u32,
            Outcome::Trapped(t) => panic!("{name} trapped: {}", t.code),
        }
    }

    /// Writes `bytes` into the probe's memory at `at`.
    fn poke(&mut self, at: u64, bytes: &[u8]) {
        let memory = self.memory;
        self.store
            .with_memories(|m| m.get_mut(memory).write(at, bytes))
            .unwrap();
    }

    /// `path_open` of `path`, following links when `follow`: its errno.
    fn open(&mut self, path: &str, follow: bool) -> u32 {
        self.poke(0, path.as_bytes());
        self.errno("open", &[0, path.len() as u32, u32::from(follow)])
    }
}

/// Little-endian 32-bit words, as an iovec array is laid out.
fn words(ws: &[u32]) -> Vec<u8> {
    ws.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// A sandbox: `root/inside.txt`, `root/sub/`, `outside.txt` beside `root`, and links in
/// `root` that stay inside or lead out.
fn sandbox(test: &str) -> (PathBuf, PathBuf) {
    let base = std::env::temp_dir().join(format!("clif-bounds-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let root = base.join("root");
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::fs::write(root.join("inside.txt"), "in").unwrap();
    std::fs::write(base.join("outside.txt"), "out").unwrap();
    let link = |target: &str, at: &str| std::os::unix::fs::symlink(target, root.join(at)).unwrap();
    link("../outside.txt", "link_out");
    link("/etc/passwd", "link_abs");
    link("sub/../inside.txt", "link_in");
    link("..", "sub/up");
    link("../..", "sub/upup");
    link("..", "dir_out");
    link("loop_b", "loop_a");
    link("loop_a", "loop_b");
    (base, root)
}

/// Every path form that would leave the preopen is refused with `ENOTCAPABLE` and never
/// followed: absolute paths, `..` above the root (directly, after a detour, or through a
/// link), links with absolute targets or targets outside. Paths that stay inside open,
/// links inside included. A link as the last component is not followed without
/// `symlink_follow` (the open of the link itself fails with `ELOOP`).
#[test]
fn paths_stay_beneath_their_preopen() {
    let (base, root) = sandbox("paths");
    let engines: [(&str, Box<dyn Engine>); 2] = [
        ("interp", Box::new(InterpreterEngine::fused())),
        (
            "x86_64",
            Box::new(BackendEngine::new(Backend::for_target("x86_64", false).unwrap()).unwrap()),
        ),
    ];
    let notcapable = u32::from(wasi::ERRNO_NOTCAPABLE.raw());
    let errno = |e: wasi::Errno| u32::from(e.raw());
    let cases: [(&str, bool, u32); 20] = [
        ("inside.txt", true, 0),
        ("./sub/../inside.txt", true, 0),
        ("link_in", true, 0),
        ("sub/up/inside.txt", true, 0),
        ("/etc/passwd", true, notcapable),
        ("../outside.txt", true, notcapable),
        ("sub/../../outside.txt", true, notcapable),
        ("..", true, notcapable),
        ("link_out", true, notcapable),
        ("link_abs", true, notcapable),
        ("sub/upup/outside.txt", false, notcapable),
        ("link_out", false, u32::from(wasi::ERRNO_LOOP.raw())),
        // A link to a directory outside is neither followed nor opened as a directory.
        ("dir_out", true, notcapable),
        ("dir_out", false, u32::from(wasi::ERRNO_LOOP.raw())),
        (
            "missing/inside.txt",
            true,
            u32::from(wasi::ERRNO_NOENT.raw()),
        ),
        // POSIX's answers for the other malformed forms.
        ("", true, errno(wasi::ERRNO_NOENT)),
        ("inside.txt/", true, errno(wasi::ERRNO_NOTDIR)),
        ("inside.txt/../inside.txt", true, errno(wasi::ERRNO_NOTDIR)),
        ("loop_a", true, errno(wasi::ERRNO_LOOP)),
        ("in\0side.txt", true, errno(wasi::ERRNO_INVAL)),
    ];
    for (engine, make) in engines {
        let (mut probe, _) = Probe::new(make, &root);
        for (path, follow, want) in cases {
            assert_eq!(
                probe.open(path, follow),
                want,
                "{engine}: {path} (follow {follow})"
            );
        }
    }
    std::fs::remove_dir_all(&base).unwrap();
}

/// Guest pointers and lengths outside the caller's memory are `EFAULT`: a path, an iovec
/// array, the buffer an iovec names, and the place a result goes. The host never reads or
/// writes outside the memory, and the program goes on.
#[test]
fn bad_guest_pointers_are_efault() {
    let (base, root) = sandbox("pointers");
    let (mut probe, wasi) = Probe::new(Box::new(InterpreterEngine::fused()), &root);
    let efault = u32::from(wasi::ERRNO_FAULT.raw());
    // A path running past the end of the 64 KiB memory, or wrapping around.
    assert_eq!(probe.errno("open", &[65530, 16, 1]), efault);
    assert_eq!(probe.errno("open", &[u32::MAX, 2, 1]), efault);
    // The descriptor's destination outside the memory.
    probe.poke(0, b"inside.txt");
    assert_eq!(probe.errno("open_to", &[0, 10, 65533]), efault);
    // An iovec array outside, and an iovec naming bytes outside.
    assert_eq!(probe.errno("write", &[65532, 1]), efault);
    probe.poke(512, &words(&[65000, 4096]));
    assert_eq!(probe.errno("write", &[512, 1]), efault);
    // Lengths up to 4 GiB never size a host allocation: they are checked first.
    assert_eq!(probe.errno("random", &[0, u32::MAX]), efault);
    assert_eq!(probe.errno("random", &[100, 65437]), efault);
    assert_eq!(probe.errno("random", &[100, 65436]), 0);
    probe.poke(512, &words(&[0, u32::MAX]));
    assert_eq!(probe.errno("write", &[512, 1]), efault);
    assert_eq!(probe.errno("read", &[512, 1]), efault);
    // Many iovecs over the same bytes are written in pieces, not gathered first.
    let many: Vec<u32> = (0..256).flat_map(|_| [0, 65536]).collect();
    probe.poke(4096, &words(&many));
    let before = wasi.stdout.borrow().captured().len();
    assert_eq!(probe.errno("write", &[4096, 256]), 0);
    let after = wasi.stdout.borrow().captured().len();
    assert_eq!(after - before, 256 * 65536);
    // Nothing was written, and a good write still works.
    probe.poke(600, b"ok\n");
    probe.poke(520, &words(&[600, 3]));
    assert_eq!(probe.errno("write", &[520, 1]), 0);
    assert!(wasi.stdout.borrow().captured().ends_with(b"ok\n"));
    std::fs::remove_dir_all(&base).unwrap();
}

/// `proc_exit` ends the program with its code on every kind of engine; it is not reported
/// as a trap.
#[test]
fn proc_exit_ends_the_program_with_its_code() {
    let bytes = wat::parse_str(PROBE).unwrap();
    let engines: [Box<dyn Engine>; 4] = [
        Box::new(InterpreterEngine::fused()),
        Box::new(BackendEngine::new(Backend::for_target("pulley64", false).unwrap()).unwrap()),
        Box::new(BackendEngine::new(Backend::for_target("x86_64", true).unwrap()).unwrap()),
        Box::new(CraneliftEngine::new(false).unwrap()),
    ];
    for engine in engines {
        let run = program::run_program(
            &bytes,
            engine,
            MemoryConfig::STATIC,
            vec!["p".into()],
            &[],
            true,
        )
        .unwrap();
        assert!(matches!(run.ended, Ended::Exited(7)), "{:?}", run.ended);
    }
}

/// A trap names the function that trapped and its callers outwards, by their name-section
/// names, on every engine: through a function without a frame and through one with a frame
/// (which made a call of its own before trapping).
#[test]
fn traps_carry_a_backtrace_of_function_names() {
    let wat = r#"(module
      (memory 1)
      (func $leaf (param i32) (result i32) (i32.div_u (i32.const 1) (local.get 0)))
      (func $framed (param i32) (result i32)
        (drop (call $other (local.get 0)))
        (i32.load (i32.const 70000)))
      (func $other (param i32) (result i32) (local.get 0))
      (func $middle (param i32) (result i32) (i32.add (call $leaf (local.get 0)) (i32.const 1)))
      (func $middle2 (param i32) (result i32) (i32.add (call $framed (local.get 0)) (i32.const 1)))
      (func (export "_start")
        (drop (call $middle2 (i32.const 3)))
        (drop (call $middle (i32.const 0)))))"#;
    let bytes = wat::parse_str(wat).unwrap();
    type MakeEngine<'a> = &'a dyn Fn() -> Box<dyn Engine>;
    let engines: [(&str, MakeEngine); 4] = [
        ("interp", &|| Box::new(InterpreterEngine::fused())),
        ("pulley64", &|| {
            Box::new(BackendEngine::new(Backend::for_target("pulley64", false).unwrap()).unwrap())
        }),
        ("x86_64", &|| {
            Box::new(BackendEngine::new(Backend::for_target("x86_64", false).unwrap()).unwrap())
        }),
        ("cranelift", &|| {
            Box::new(CraneliftEngine::new(false).unwrap())
        }),
    ];
    for (name, make) in engines {
        let run =
            program::run_program(&bytes, make(), MemoryConfig::STATIC, vec![], &[], true).unwrap();
        let Ended::Trapped(t) = run.ended else {
            panic!("{name}: {:?}", run.ended)
        };
        let want = "u0:1 (framed), called from u0:4 (middle2), called from u0:5";
        assert!(t.location.contains(want), "{name}: {}", t.location);
        // The leaf: its caller comes from the return address, not from a frame of its own.
        let leaf = wat.replace("(drop (call $middle2 (i32.const 3)))", "");
        let run = program::run_program(
            &wat::parse_str(&leaf).unwrap(),
            make(),
            MemoryConfig::STATIC,
            vec![],
            &[],
            true,
        )
        .unwrap();
        let Ended::Trapped(t) = run.ended else {
            panic!("{name}: {:?}", run.ended)
        };
        let want = "u0:0 (leaf), called from u0:3 (middle), called from u0:5";
        assert!(t.location.contains(want), "{name}: {}", t.location);
    }
}
