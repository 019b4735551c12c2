//! The differential oracle for legalization.
//!
//! For every point of a configuration matrix (memory kind × Spectre × index type × bound kind ×
//! offset × access, with min/max chosen so that every case A-I occurs) and for indices on every
//! boundary plus seeded random ones, six executions must agree:
//!
//! 1. our interpreter on the fused `bounds_checked_*` instruction;
//! 2. our interpreter on the legalized form;
//! 3. real Cranelift 0.135.8 compiling the legalized form for x86_64, run natively on memory laid
//!    out as declared (guards really `PROT_NONE`);
//! 4. real Cranelift compiling it for pulley64, run by `pulley-interpreter` 48.0.8;
//! 5. our pulley64 backend compiling the fused instruction (with the same Spectre setting),
//!    run by the same interpreter;
//! 6. our x86_64 backend compiling the fused instruction, run natively on the same memory;
//! 7. real Cranelift compiling the legalized form for aarch64, and
//! 8. our aarch64 backend compiling the fused instruction, both run by unicorn-engine's
//!    AArch64 emulation over the same memory (its guards unmapped there too).
//!
//! Agreement means the same returned bits and the same memory afterwards (a hash of every
//! accessible byte), or a trap with the same code and the memory unchanged. Native and Pulley
//! runs happen in a forked child: a fault or `ud2` there is caught by a signal handler that
//! reports the faulting pc, mapped to a trap code through the code's trap table. A host fault
//! during Pulley execution is a crash: Pulley code must never rely on faulting ranges.
//! Upstream's CLIF fuzzer skips trapping inputs; this compares them. AArch64 runs need no
//! child: a fault there is the emulator's, and the memory is restored after each run.
//!
//! A second phase runs random functions with several accesses through one index (runs that
//! share one check in our backends) on our Pulley, x86_64 and aarch64 backends against the
//! interpreter.
//!
//! Everything runs in one test function: the children of `fork` must not allocate, and no
//! other test thread of this binary may hold the allocator's lock when they are created.
//! `CLIF_BOUNDS_ORACLE_RANDOM=N` sets the random indices per configuration (default 4) for
//! longer runs.

#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

mod common;
use common::Rng;

use clif_bounds::interpreter::{DataValue, Interpreter, Outcome};
use clif_bounds::ir::{types, TrapCode};
use clif_bounds::legalize::{legalize_with, Case, Mutation, Settings};
use std::collections::BTreeMap;
use std::ptr::NonNull;

// ---------------------------------------------------------------------------------------------
// The matrix

#[derive(Clone, Copy, Debug)]
enum MemoryKind {
    NoGuard,
    Guard64K,
    Guard2G,
    Static4G,
}

#[derive(Clone, Copy, Debug)]
enum Limits {
    /// min = max = bound: the minimum covers small offsets (case H).
    Exact,
    /// min 0 and the largest max: nothing proves `bound >= K` (case I).
    Open,
    /// min 0, max = bound: large offsets exceed every possible bound (case A).
    Tiny,
    /// Drawn at random around the bound: `min <= bound <= max`.
    Drawn { min: u64, max: u64 },
}

#[derive(Clone, Copy, Debug)]
struct AccessDef {
    store: bool,
    ty: &'static str,
    kind: &'static str,
    bytes: u64,
}

const ACCESSES: &[AccessDef] = &[
    AccessDef {
        store: false,
        ty: "i32",
        kind: "u8",
        bytes: 1,
    },
    AccessDef {
        store: false,
        ty: "i64",
        kind: "s16",
        bytes: 2,
    },
    AccessDef {
        store: false,
        ty: "i32",
        kind: "",
        bytes: 4,
    },
    AccessDef {
        store: false,
        ty: "i64",
        kind: "",
        bytes: 8,
    },
    AccessDef {
        store: false,
        ty: "f32",
        kind: "",
        bytes: 4,
    },
    AccessDef {
        store: false,
        ty: "f64",
        kind: "",
        bytes: 8,
    },
    AccessDef {
        store: false,
        ty: "i32",
        kind: "s8",
        bytes: 1,
    },
    AccessDef {
        store: false,
        ty: "i64",
        kind: "u32",
        bytes: 4,
    },
    AccessDef {
        store: false,
        ty: "i16",
        kind: "",
        bytes: 2,
    },
    AccessDef {
        store: true,
        ty: "i32",
        kind: "i8",
        bytes: 1,
    },
    AccessDef {
        store: true,
        ty: "i64",
        kind: "i16",
        bytes: 2,
    },
    AccessDef {
        store: true,
        ty: "i32",
        kind: "",
        bytes: 4,
    },
    AccessDef {
        store: true,
        ty: "i64",
        kind: "",
        bytes: 8,
    },
    AccessDef {
        store: true,
        ty: "f64",
        kind: "",
        bytes: 8,
    },
    AccessDef {
        store: true,
        ty: "f32",
        kind: "",
        bytes: 4,
    },
    AccessDef {
        store: true,
        ty: "i64",
        kind: "i32",
        bytes: 4,
    },
];

const BOUND: u64 = 0x2_0000;

#[derive(Clone, Debug)]
struct Config {
    memory: MemoryKind,
    spectre: bool,
    index64: bool,
    constant_bound: bool,
    offset: u64,
    access: AccessDef,
    limits: Limits,
    endian: &'static str,
    /// A constant index (case D, or A when it is out of range); the index argument is ignored.
    const_index: Option<u64>,
}

impl Config {
    fn k(&self) -> u64 {
        self.offset + self.access.bytes
    }

    fn declaration(&self) -> String {
        let it = if self.index64 { "i64" } else { "i32" };
        let (min, max): (u64, Option<u64>) = match self.limits {
            Limits::Exact => (BOUND, Some(BOUND)),
            // Wasmtime's memory64 maximum is 2^48 bytes; some max is needed for the guard to
            // fit in the address space.
            Limits::Open if self.index64 => (0, Some(1 << 48)),
            Limits::Open => (0, Some(1 << 32)),
            Limits::Tiny => (0, Some(BOUND)),
            Limits::Drawn { min, max } => (min, Some(max)),
        };
        // A static memory never grows past its 4 GiB reservation.
        let max = match self.memory {
            MemoryKind::Static4G => Some(max.unwrap_or(1 << 32).min(1 << 32)),
            _ => max,
        };
        let mut d = format!("memory index {it}, min {min:#x}");
        if let Some(m) = max {
            d += &format!(", max {m:#x}");
        }
        d += match self.memory {
            MemoryKind::NoGuard => ", guard 0",
            MemoryKind::Guard64K => ", guard 0x10000",
            MemoryKind::Guard2G => ", guard 0x80000000",
            MemoryKind::Static4G => ", reservation 0x100000000, guard 0x80000000",
        };
        d
    }

    /// Bytes of address space the native layout reserves (accessible + faulting).
    fn reserved(&self) -> u64 {
        match self.memory {
            MemoryKind::NoGuard => BOUND,
            MemoryKind::Guard64K => BOUND + 0x1_0000,
            MemoryKind::Guard2G => BOUND + 0x8000_0000,
            MemoryKind::Static4G => (1 << 32) + 0x8000_0000,
        }
    }

    /// The test function: `(base, bound, index, value bits) -> result bits`.
    fn function(&self) -> String {
        let a = self.access;
        let mut body = String::new();
        let index = if let Some(c) = self.const_index {
            let it = if self.index64 { "i64" } else { "i32" };
            body += &format!("    v10 = iconst.{it} {c:#x}\n");
            "v10".to_string()
        } else if self.index64 {
            "v2".to_string()
        } else {
            body += "    v10 = ireduce.i32 v2\n";
            "v10".to_string()
        };
        let bound = if self.constant_bound {
            body += &format!("    v11 = iconst.i64 {BOUND:#x}\n");
            "v11"
        } else {
            "v1"
        };
        let kind = if a.kind.is_empty() {
            String::new()
        } else {
            format!(" {}", a.kind)
        };
        let off = if self.offset == 0 {
            String::new()
        } else {
            format!("+{:#x}", self.offset)
        };
        let flags = format!(" {}", self.endian);
        if a.store {
            let value = match a.ty {
                "i64" => "v3".to_string(),
                "f64" => {
                    body += "    v12 = bitcast.f64 v3\n";
                    "v12".into()
                }
                "f32" => {
                    body += "    v13 = ireduce.i32 v3\n    v12 = bitcast.f32 v13\n";
                    "v12".into()
                }
                t => {
                    body += &format!("    v12 = ireduce.{t} v3\n");
                    "v12".into()
                }
            };
            body += &format!(
                "    bounds_checked_store{kind}{flags} mem0 {value}, v0, {bound}, {index}{off}\n    v20 = iconst.i64 0\n    return v20\n"
            );
        } else {
            body += &format!(
                "    v14 = bounds_checked_load.{}{kind}{flags} mem0 v0, {bound}, {index}{off}\n",
                a.ty
            );
            body += match a.ty {
                "i64" => "    return v14\n",
                "f64" => "    v15 = bitcast.i64 v14\n    return v15\n",
                "f32" => "    v16 = bitcast.i32 v14\n    v15 = uextend.i64 v16\n    return v15\n",
                _ => "    v15 = uextend.i64 v14\n    return v15\n",
            };
        }
        format!(
            "function %t(i64, i64, i64, i64) -> i64 system_v {{\n    mem0 = {}\n\nblock0(v0: i64, v1: i64, v2: i64, v3: i64):\n{body}}}\n",
            self.declaration()
        )
    }

    /// Indices on every boundary of this configuration, then `random` seeded ones.
    fn indices(&self, rng: &mut Rng, random: usize) -> Vec<u64> {
        let k = self.k();
        let max = if self.index64 {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        };
        let mut v = vec![0, 1, max, max - 1, BOUND, BOUND + 1, BOUND - 1];
        for end in [BOUND - 1, BOUND, BOUND + 1] {
            if let Some(i) = end.checked_sub(k) {
                v.push(i);
            }
        }
        // Values where index + offset wraps at 32 or 64 bits.
        v.push(max.wrapping_sub(self.offset).wrapping_add(1) & max);
        v.push(max.wrapping_sub(k).wrapping_add(2) & max);
        v.push((1u64 << 32).wrapping_sub(self.offset) & max);
        for _ in 0..random {
            v.push(match rng.next() % 3 {
                0 => rng.next() % (2 * BOUND),
                1 => rng.next() & max,
                _ => {
                    (BOUND - k.min(BOUND))
                        .wrapping_add(rng.next() % 64)
                        .wrapping_sub(32)
                        & max
                }
            });
        }
        v.sort_unstable();
        v.dedup();
        v
    }
}

fn matrix() -> Vec<Config> {
    let offsets_32 = [0u64, 1, 0x1000, 0xffff_0000];
    let offsets_64 = [0u64, 1, 0x1000, 0xffff_0000, 0x1_0000_0010];
    let mut out = Vec::new();
    let mut n = 0usize;
    for memory in [
        MemoryKind::NoGuard,
        MemoryKind::Guard64K,
        MemoryKind::Guard2G,
        MemoryKind::Static4G,
    ] {
        for spectre in [false, true] {
            for index64 in [false, true] {
                for constant_bound in [false, true] {
                    let offsets: &[u64] = if index64 { &offsets_64 } else { &offsets_32 };
                    for &offset in offsets {
                        // Rotate the access and the limits so every combination of dimensions
                        // meets many accesses, deterministically.
                        let access = ACCESSES[n % ACCESSES.len()];
                        let limits = [Limits::Exact, Limits::Open, Limits::Tiny][(n / 3) % 3];
                        let endian = if n.is_multiple_of(5) { "big" } else { "little" };
                        n += 1;
                        out.push(Config {
                            memory,
                            spectre,
                            index64,
                            constant_bound,
                            offset,
                            access,
                            limits,
                            endian,
                            const_index: None,
                        });
                    }
                }
            }
        }
    }
    // Constant indices: in bounds by the minimum size (case D), and past the end (case A).
    for (i, memory) in [
        MemoryKind::NoGuard,
        MemoryKind::Guard64K,
        MemoryKind::Guard2G,
        MemoryKind::Static4G,
    ]
    .into_iter()
    .enumerate()
    {
        for (j, const_index) in [0x10, BOUND - 2, BOUND + 8].into_iter().enumerate() {
            out.push(Config {
                memory,
                spectre: j % 2 == 0,
                index64: i % 2 == 1,
                constant_bound: false,
                offset: 4,
                access: ACCESSES[(i * 3 + j) % ACCESSES.len()],
                limits: Limits::Exact,
                endian: "little",
                const_index: Some(const_index),
            });
        }
    }
    out
}

/// Configurations drawn at random (the CLIF-level fuzzer of the instruction): memory kinds and
/// declared limits around the bound, offsets near every edge (the bound, 2^31, 2^32, 2^64),
/// every width, constant and variable index and bound, both Spectre settings.
fn random_configs(rng: &mut Rng, n: usize) -> Vec<Config> {
    (0..n)
        .map(|_| {
            let index64 = rng.next().is_multiple_of(2);
            let access = rng.pick(ACCESSES);
            let k = access.bytes;
            let near =
                |rng: &mut Rng, edge: u64| edge.wrapping_add(rng.next() % 17).wrapping_sub(8);
            let mut offset = match rng.next() % 6 {
                0 => rng.next() % 64,
                1 => near(rng, BOUND - k),
                2 => near(rng, 0x8000_0000),
                3 => near(rng, 0x1_0000_0000),
                4 if index64 => near(rng, u64::MAX - 8),
                _ => rng.next() % (4 * BOUND),
            };
            // A 32-bit index's offset is a 32-bit immediate; an offset whose access would end
            // past 2^64 is an IR error (the verifier's), not a configuration.
            if !index64 {
                offset &= u64::from(u32::MAX);
            }
            offset = offset.min(u64::MAX - k);
            let memory = rng.pick(&[
                MemoryKind::NoGuard,
                MemoryKind::Guard64K,
                MemoryKind::Guard2G,
                MemoryKind::Static4G,
            ]);
            let limits = match rng.next() % 4 {
                0 => Limits::Exact,
                1 => Limits::Open,
                2 => Limits::Tiny,
                _ => Limits::Drawn {
                    min: rng.next() % (BOUND + 1),
                    max: BOUND + rng.next() % (BOUND * 4),
                },
            };
            let max_index = if index64 {
                u64::MAX
            } else {
                u64::from(u32::MAX)
            };
            let const_index = rng.next().is_multiple_of(4).then(|| match rng.next() % 3 {
                0 => rng.next() % BOUND,
                1 => near(rng, BOUND - k) & max_index,
                _ => rng.next() & max_index,
            });
            Config {
                memory,
                spectre: rng.next().is_multiple_of(2),
                index64,
                constant_bound: rng.next().is_multiple_of(3),
                offset,
                access,
                limits,
                endian: if rng.next().is_multiple_of(5) {
                    "big"
                } else {
                    "little"
                },
                const_index,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Results

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Result_ {
    Value { bits: u64, memory: u64 },
    Trap { code: TrapCode, memory: u64 },
    Crash(&'static str, u64),
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    h
}

// ---------------------------------------------------------------------------------------------
// Our interpreter

/// Readable bytes placed right where the declared faulting range ends: a legalization that
/// relied on more guard than declared reads them instead of trapping.
const NEIGHBOUR: u64 = 0x1_0000;

fn interpret(func: &clif_bounds::ir::Function, reserved: u64, index: u64, value: u64) -> Result_ {
    let mut interp = Interpreter::new([func], types::I64);
    let base = interp.memory.map("heap", BOUND).unwrap();
    interp
        .memory
        .map_at("neighbour", base + reserved, NEIGHBOUR)
        .unwrap();
    let args = [base, BOUND, index, value].map(|b| DataValue::new(types::I64, b));
    let out = interp.call("%t", &args);
    let memory = fnv(&interp.memory.read(base, BOUND).unwrap());
    match out {
        Ok(Outcome::Returned(v)) => Result_::Value {
            bits: v[0].bits,
            memory,
        },
        Ok(Outcome::Trapped(t)) => Result_::Trap {
            code: t.code,
            memory,
        },
        Err(e) => panic!("interpreter error on {}: {e}", func.name),
    }
}

// ---------------------------------------------------------------------------------------------
// Real Cranelift

struct Compiled {
    code: Vec<u8>,
    traps: BTreeMap<u32, TrapCode>,
}

fn compile(text: &str, isa_name: &str, spectre: bool) -> Compiled {
    let isa = common::isa(isa_name, spectre);
    let func = cranelift_reader::parse_functions(text)
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .remove(0);
    cranelift_codegen::verify_function(&func, &*isa).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let mut ctx = cranelift_codegen::Context::for_function(func);
    let code = ctx
        .compile(&*isa, &mut Default::default())
        .unwrap_or_else(|e| panic!("{:?}\n{text}", e.inner));
    assert!(
        code.buffer.relocs().is_empty(),
        "test functions make no calls"
    );
    let traps = code
        .buffer
        .traps()
        .iter()
        .map(|t| (t.offset, TrapCode::from_raw(t.code.as_raw().get()).unwrap()))
        .collect();
    Compiled {
        code: code.code_buffer().to_vec(),
        traps,
    }
}

/// Memory laid out as declared: `reserved` bytes of `PROT_NONE` with the first `BOUND` bytes
/// readable and writable, then `NEIGHBOUR` readable bytes, all filled with the interpreter's
/// pattern (byte `i` of each region is the low byte of `i`).
struct NativeMemory {
    base: *mut u8,
    reserved: usize,
}

impl NativeMemory {
    fn new(reserved: u64) -> NativeMemory {
        let reserved = reserved as usize;
        unsafe {
            let total = reserved + NEIGHBOUR as usize;
            let p = libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED, "mmap of {total:#x} bytes");
            let base = p as *mut u8;
            let rw = libc::PROT_READ | libc::PROT_WRITE;
            assert_eq!(libc::mprotect(p, BOUND as usize, rw), 0);
            let neighbour = base.add(reserved);
            assert_eq!(
                libc::mprotect(neighbour as *mut libc::c_void, NEIGHBOUR as usize, rw),
                0
            );
            let memory = NativeMemory {
                base,
                reserved: total,
            };
            memory.fill();
            memory
        }
    }

    /// Writes the pattern into the accessible bytes.
    fn fill(&self) {
        unsafe {
            let neighbour = self.base.add(self.reserved - NEIGHBOUR as usize);
            for i in 0..BOUND as usize {
                *self.base.add(i) = i as u8;
            }
            for i in 0..NEIGHBOUR as usize {
                *neighbour.add(i) = i as u8;
            }
        }
    }
}

impl Drop for NativeMemory {
    fn drop(&mut self) {
        unsafe {
            libc::munmap(self.base as *mut libc::c_void, self.reserved);
        }
    }
}

/// Executable copy of native code.
struct NativeCode {
    ptr: *mut u8,
    len: usize,
}

impl NativeCode {
    fn new(code: &[u8]) -> NativeCode {
        let len = code.len().max(1).next_multiple_of(4096);
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert_ne!(p, libc::MAP_FAILED);
            std::ptr::copy_nonoverlapping(code.as_ptr(), p as *mut u8, code.len());
            assert_eq!(libc::mprotect(p, len, libc::PROT_READ | libc::PROT_EXEC), 0);
            NativeCode {
                ptr: p as *mut u8,
                len,
            }
        }
    }
}

impl Drop for NativeCode {
    fn drop(&mut self) {
        unsafe {
            libc::munmap(self.ptr as *mut libc::c_void, self.len);
        }
    }
}

// The child's report: [kind, bits or signal, pc, memory hash]. Kinds: 0 returned, 1 signal.
static mut REPORT_FD: libc::c_int = -1;
static mut MEMORY: (*const u8, usize) = (std::ptr::null(), 0);

fn memory_hash() -> u64 {
    // Reads raw memory; allocation-free, so it may run in a signal handler.
    unsafe {
        let (p, n) = MEMORY;
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for i in 0..n {
            h = (h ^ u64::from(*p.add(i))).wrapping_mul(0x100_0000_01b3);
        }
        h
    }
}

unsafe fn report(words: [u64; 4]) -> ! {
    unsafe {
        libc::write(REPORT_FD, words.as_ptr() as *const libc::c_void, 32);
        libc::_exit(0);
    }
}

extern "C" fn on_signal(sig: libc::c_int, _info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    unsafe {
        let uc = ctx as *const libc::ucontext_t;
        let pc = (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] as u64;
        report([1, sig as u64, pc, memory_hash()]);
    }
}

/// Runs `body` in a forked child and decodes its report.
fn in_child(memory: &NativeMemory, body: impl FnOnce() -> u64) -> [u64; 4] {
    unsafe {
        let mut fds = [0; 2];
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        let pid = libc::fork();
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            libc::close(fds[0]);
            REPORT_FD = fds[1];
            MEMORY = (memory.base, BOUND as usize);
            let mut sa: libc::sigaction = std::mem::zeroed();
            let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                on_signal;
            sa.sa_sigaction = handler as usize;
            sa.sa_flags = libc::SA_SIGINFO;
            for sig in [
                libc::SIGSEGV,
                libc::SIGBUS,
                libc::SIGILL,
                libc::SIGFPE,
                libc::SIGTRAP,
            ] {
                libc::sigaction(sig, &sa, std::ptr::null_mut());
            }
            let bits = body();
            report([0, bits, 0, memory_hash()]);
        }
        libc::close(fds[1]);
        let mut words = [u64::MAX; 4];
        let n = libc::read(fds[0], words.as_mut_ptr() as *mut libc::c_void, 32);
        libc::close(fds[0]);
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        if n != 32 {
            return [2, status as u64, 0, 0];
        }
        words
    }
}

/// `fused` compiled by our x86_64 backend.
fn ours_x64(fused: &clif_bounds::ir::Function, spectre: bool, text: &str) -> Compiled {
    let backend = clif_bounds::isa::x64::X64Backend {
        spectre,
        pcc: false,
    };
    let c = clif_bounds::isa::x64::compile(fused, &backend)
        .unwrap_or_else(|e| panic!("our x86_64 backend: {e}\n{text}"));
    Compiled {
        code: c.code,
        traps: c.traps.iter().map(|(&o, s)| (o, s.code)).collect(),
    }
}

fn native(
    compiled: &Compiled,
    code: &NativeCode,
    memory: &NativeMemory,
    index: u64,
    value: u64,
) -> Result_ {
    let f: extern "sysv64" fn(u64, u64, u64, u64) -> u64 = unsafe { std::mem::transmute(code.ptr) };
    let base = memory.base as u64;
    let [kind, bits, pc, hash] = in_child(memory, || f(base, BOUND, index, value));
    match kind {
        0 => Result_::Value { bits, memory: hash },
        1 => match pc
            .checked_sub(code.ptr as u64)
            .and_then(|o| compiled.traps.get(&(o as u32)))
        {
            Some(&code) => Result_::Trap { code, memory: hash },
            None => Result_::Crash("fault outside any trap site", pc),
        },
        _ => Result_::Crash("child died", bits),
    }
}

fn pulley(compiled: &Compiled, memory: &NativeMemory, index: u64, value: u64) -> Result_ {
    use pulley_interpreter::interp::{DoneReason, RegType, Val, Vm, XRegVal};
    let mut vm = Vm::new().expect("pulley stack");
    let base = memory.base as u64;
    let code = compiled.code.as_ptr();
    let code_addr = code as u64;
    let args = [base, BOUND, index, value].map(|b| Val::XReg(XRegVal::new_u64(b)));
    let [kind, bits, pc, hash] = in_child(memory, || unsafe {
        match vm.call(
            NonNull::new(code as *mut u8).unwrap(),
            &args,
            [RegType::XReg],
        ) {
            DoneReason::ReturnToHost(mut rets) => match rets.next() {
                Some(Val::XReg(x)) => x.get_u64(),
                _ => libc::_exit(3),
            },
            DoneReason::Trap { pc, kind } => {
                use pulley_interpreter::interp::TrapKind as K;
                // Pulley's own checked operations (the `*_g32` loads upstream's backend
                // selects from the exploded form) report a kind and no trap-table entry.
                let code = match kind {
                    None => 0,
                    Some(K::MemoryOutOfBounds) => TrapCode::HEAP_OUT_OF_BOUNDS.as_raw(),
                    Some(K::IntegerOverflow) => TrapCode::INTEGER_OVERFLOW.as_raw(),
                    Some(K::DivideByZero) => TrapCode::INTEGER_DIVISION_BY_ZERO.as_raw(),
                    Some(K::BadConversionToInteger) => TrapCode::BAD_CONVERSION_TO_INTEGER.as_raw(),
                    Some(_) => TrapCode::STACK_OVERFLOW.as_raw(),
                };
                report([
                    3,
                    u64::from(code),
                    pc.as_ptr() as u64 - code_addr,
                    memory_hash(),
                ]);
            }
            DoneReason::CallIndirectHost { .. } => libc::_exit(4),
        }
    });
    match kind {
        0 => Result_::Value { bits, memory: hash },
        3 => match (compiled.traps.get(&(pc as u32)), bits) {
            (Some(&code), _) => Result_::Trap { code, memory: hash },
            (None, 0) => Result_::Crash("pulley trap outside any trap site", pc),
            (None, raw) => Result_::Trap {
                code: TrapCode::from_raw(raw as u8).unwrap(),
                memory: hash,
            },
        },
        // A host fault inside the interpreter is never a trap: Pulley code must not rely on
        // faulting ranges (`Target::faulting_ranges_trap`).
        1 if bits == libc::SIGSEGV as u64 || bits == libc::SIGBUS as u64 => {
            Result_::Crash("host fault inside the Pulley interpreter", bits)
        }
        _ => Result_::Crash("pulley child died", bits),
    }
}

/// `fused` compiled by our aarch64 backend (with `csdb` after Spectre guards, as
/// `Backend::for_target` sets it).
fn ours_aarch64(fused: &clif_bounds::ir::Function, spectre: bool, text: &str) -> Compiled {
    let backend = clif_bounds::isa::aarch64::Aarch64Backend {
        spectre,
        pcc: false,
        csdb: spectre,
    };
    let c = clif_bounds::isa::aarch64::compile(fused, &backend)
        .unwrap_or_else(|e| panic!("our aarch64 backend: {e}\n{text}"));
    Compiled {
        code: c.code,
        traps: c.traps.iter().map(|(&o, s)| (o, s.code)).collect(),
    }
}

/// AArch64 code run in the emulator over `memory`, which is restored afterwards (the
/// emulator writes the host's pages, and no child process keeps them apart).
fn aarch64(compiled: &Compiled, memory: &NativeMemory, index: u64, value: u64) -> Result_ {
    let args = [memory.base as u64, BOUND, index, value];
    let out = clif_bounds::isa::aarch64::run::call_code(&compiled.code, &compiled.traps, &args);
    let hash = unsafe {
        MEMORY = (memory.base, BOUND as usize);
        memory_hash()
    };
    memory.fill();
    match out {
        Ok(Ok(bits)) => Result_::Value { bits, memory: hash },
        Ok(Err(code)) => Result_::Trap { code, memory: hash },
        Err(e) => {
            eprintln!("aarch64: {e}");
            Result_::Crash("aarch64 stop outside any trap site", 0)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The run

struct Run {
    points: usize,
    configs: usize,
    cases: BTreeMap<Case, usize>,
    /// The cases the legalizer chose for pulley64.
    pulley_cases: BTreeMap<Case, usize>,
    disagreements: Vec<String>,
    /// Time spent compiling, interpreting, running natively, running Pulley, emulating
    /// AArch64.
    time: [std::time::Duration; 5],
}

fn run(
    configs: Vec<Config>,
    mutation: Option<Mutation>,
    random: usize,
    stop_at_first: bool,
) -> Run {
    let mut rng = Rng(0x0ddb_a11c_0ffe_e123);
    let mut r = Run {
        points: 0,
        configs: 0,
        cases: BTreeMap::new(),
        pulley_cases: BTreeMap::new(),
        disagreements: Vec::new(),
        time: Default::default(),
    };
    for config in configs {
        r.configs += 1;
        let text = config.function();
        let fused = clif_bounds::parser::parse_function(&text)
            .unwrap_or_else(|d| panic!("{}\n{text}", d.message));
        clif_bounds::ir_verifier::verify_function(&fused, types::I64)
            .unwrap_or_else(|e| panic!("{}\n{text}", e[0].message));
        let legalized = |target: &str| {
            let settings = Settings::for_target(target, config.spectre).unwrap();
            let mut f = fused.clone();
            let cases = legalize_with(&mut f, &settings, mutation);
            (f, cases[0].1)
        };
        let t = std::time::Instant::now();
        let (x64_form, case) = legalized("x86_64");
        let (pulley_form, pulley_case) = legalized("pulley64");
        *r.cases.entry(case).or_default() += 1;
        *r.pulley_cases.entry(pulley_case).or_default() += 1;
        let x64 = compile(&x64_form.to_string(), "x86_64", config.spectre);
        let pulley64 = compile(&pulley_form.to_string(), "pulley64", config.spectre);
        let (a64_form, _) = legalized("aarch64");
        let a64 = compile(&a64_form.to_string(), "aarch64", config.spectre);
        let our_a64 = ours_aarch64(&fused, config.spectre, &text);
        let ours = {
            let backend = clif_bounds::isa::pulley::PulleyBackend {
                spectre: config.spectre,
                pcc: false,
            };
            let c = clif_bounds::isa::pulley::compile(&fused, &backend)
                .unwrap_or_else(|e| panic!("our pulley64 backend: {e}\n{text}"));
            Compiled {
                code: c.code,
                traps: c.traps.iter().map(|(&o, s)| (o, s.code)).collect(),
            }
        };
        let our_x64 = ours_x64(&fused, config.spectre, &text);
        let our_x64_code = NativeCode::new(&our_x64.code);
        let code = NativeCode::new(&x64.code);
        let memory = NativeMemory::new(config.reserved());
        r.time[0] += t.elapsed();
        for index in config.indices(&mut rng, random) {
            let value = rng.next();
            r.points += 1;
            let t = std::time::Instant::now();
            let expected = interpret(&fused, config.reserved(), index, value);
            let legal = interpret(&x64_form, config.reserved(), index, value);
            r.time[1] += t.elapsed();
            let t = std::time::Instant::now();
            let nat = native(&x64, &code, &memory, index, value);
            let our_nat = native(&our_x64, &our_x64_code, &memory, index, value);
            r.time[2] += t.elapsed();
            let t = std::time::Instant::now();
            let pul = pulley(&pulley64, &memory, index, value);
            let our_pulley = pulley(&ours, &memory, index, value);
            r.time[3] += t.elapsed();
            let t = std::time::Instant::now();
            let a64_run = aarch64(&a64, &memory, index, value);
            let our_a64_run = aarch64(&our_a64, &memory, index, value);
            r.time[4] += t.elapsed();
            let results = [
                ("interpreter, legalized", legal),
                ("x86_64 native", nat),
                ("pulley64", pul),
                ("our pulley64 backend (fused)", our_pulley),
                ("our x86_64 backend (fused)", our_nat),
                ("aarch64 (emulated)", a64_run),
                ("our aarch64 backend (fused, emulated)", our_a64_run),
            ];
            for (who, got) in results {
                if got != expected {
                    r.disagreements.push(format!(
                        "{config:?}, case {case}, index {index:#x}, value {value:#x}: fused {expected:?}, {who} {got:?}\n{}",
                        x64_form
                    ));
                    if stop_at_first {
                        return r;
                    }
                }
            }
        }
    }
    r
}

// ---------------------------------------------------------------------------------------------
// Runs of accesses that may share one check (src/machinst/share.rs)

/// A random function making 2 to 4 accesses through one index with different offsets and
/// widths, sometimes with a division by `value` (which traps on 0) or a second trap code in
/// between, and sometimes ending in a store of `value`; it returns the loaded values xor-ed.
fn run_function(rng: &mut Rng) -> (String, Vec<u64>, bool) {
    let index64 = rng.next().is_multiple_of(2);
    let it = if index64 { "i64" } else { "i32" };
    let min = if rng.next().is_multiple_of(2) {
        BOUND
    } else {
        0
    };
    let constant_bound = rng.next().is_multiple_of(3);
    let mut body = String::new();
    let index = if index64 {
        "v2"
    } else {
        body += "    v10 = ireduce.i32 v2\n";
        "v10"
    };
    let bound = if constant_bound {
        body += &format!("    v11 = iconst.i64 {BOUND:#x}\n");
        "v11"
    } else {
        "v1"
    };
    let offsets = [0u64, 1, 8, 0x10, 0x100, 0xfff8, 0x1_0000, 0x1_2345];
    let loads = [
        ("i64", "", 8u64),
        ("i32", "", 4),
        ("i32", " u8", 1),
        ("i64", " s16", 2),
    ];
    let n = 2 + rng.next() % 3;
    let mut ends = Vec::new();
    let mut acc = "v3".to_string();
    for i in 0..n {
        let offset = offsets[(rng.next() % offsets.len() as u64) as usize];
        let off = if offset == 0 {
            String::new()
        } else {
            format!("+{offset:#x}")
        };
        let last = i + 1 == n;
        if last && rng.next().is_multiple_of(3) {
            body +=
                &format!("    bounds_checked_store little mem0 v3, v0, {bound}, {index}{off}\n");
            ends.push(offset + 8);
            break;
        }
        let (ty, kind, bytes) = loads[(rng.next() % loads.len() as u64) as usize];
        let code = if rng.next().is_multiple_of(8) {
            " user1"
        } else {
            ""
        };
        let v = 100 + 10 * i;
        body += &format!(
            "    v{v} = bounds_checked_load.{ty}{kind}{code} little mem0 v0, {bound}, {index}{off}\n"
        );
        let wide = if ty == "i64" {
            format!("v{v}")
        } else {
            body += &format!("    v{} = uextend.i64 v{v}\n", v + 1);
            format!("v{}", v + 1)
        };
        body += &format!("    v{} = bxor {acc}, {wide}\n", v + 2);
        acc = format!("v{}", v + 2);
        ends.push(offset + bytes);
        if !last && rng.next().is_multiple_of(5) {
            body += &format!("    v{} = udiv {acc}, v3\n", v + 3);
            acc = format!("v{}", v + 3);
        }
    }
    body += &format!("    return {acc}\n");
    let text = format!(
        "function %t(i64, i64, i64, i64) -> i64 system_v {{\n    mem0 = memory index {it}, min {min:#x}, max {:#x}, guard 0\n\nblock0(v0: i64, v1: i64, v2: i64, v3: i64):\n{body}}}\n",
        if index64 { 1u64 << 48 } else { 1 << 32 }
    );
    (text, ends, index64)
}

/// Our pulley64 backend against the interpreter on random runs, each at indices around
/// every end the run checks; returns (points, disagreements).
fn shared_check_runs(rng: &mut Rng, functions: usize) -> (usize, Vec<String>) {
    let memory = NativeMemory::new(BOUND);
    let mut points = 0;
    let mut disagreements = Vec::new();
    for _ in 0..functions {
        let (text, ends, index64) = run_function(rng);
        let fused = clif_bounds::parser::parse_function(&text)
            .unwrap_or_else(|d| panic!("{}\n{text}", d.message));
        clif_bounds::ir_verifier::verify_function(&fused, types::I64)
            .unwrap_or_else(|e| panic!("{}\n{text}", e[0].message));
        let mask = if index64 {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        };
        let mut indices = vec![0, mask, rng.next() & mask];
        for &e in &ends {
            for d in [0, 1, 2] {
                indices.push((BOUND - e.min(BOUND) + d).wrapping_sub(1) & mask);
            }
        }
        for spectre in [false, true] {
            let backend = clif_bounds::isa::pulley::PulleyBackend {
                spectre,
                pcc: false,
            };
            let c = clif_bounds::isa::pulley::compile(&fused, &backend)
                .unwrap_or_else(|e| panic!("our pulley64 backend: {e}\n{text}"));
            let ours = Compiled {
                code: c.code,
                traps: c.traps.iter().map(|(&o, s)| (o, s.code)).collect(),
            };
            let x64 = ours_x64(&fused, spectre, &text);
            let x64_code = NativeCode::new(&x64.code);
            let a64 = ours_aarch64(&fused, spectre, &text);
            for &index in &indices {
                for value in [0, rng.next() | 1] {
                    points += 1;
                    let expected = interpret(&fused, BOUND, index, value);
                    let got = [
                        ("pulley64", pulley(&ours, &memory, index, value)),
                        ("x86_64", native(&x64, &x64_code, &memory, index, value)),
                        ("aarch64", aarch64(&a64, &memory, index, value)),
                    ];
                    for (who, got) in got {
                        if got != expected {
                            disagreements.push(format!(
                                "spectre {spectre}, index {index:#x}, value {value:#x}: interpreter {expected:?}, our {who} {got:?}\n{text}"
                            ));
                        }
                    }
                }
            }
        }
    }
    (points, disagreements)
}

#[test]
fn legalization_oracle() {
    let random = std::env::var("CLIF_BOUNDS_ORACLE_RANDOM")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let r = run(matrix(), None, random, false);
    println!(
        "oracle: {} configurations, {} points, cases {:?} (pulley64 {:?}), {} disagreements; time compiling {:?}, interpreting {:?}, native {:?}, pulley {:?}, aarch64 {:?}",
        r.configs,
        r.points,
        r.cases,
        r.pulley_cases,
        r.disagreements.len(),
        r.time[0],
        r.time[1],
        r.time[2],
        r.time[3],
        r.time[4]
    );
    assert!(r.configs >= 96, "the matrix has only {} points", r.configs);
    // Case B needs a 32-bit host, which x86_64 cannot run natively; the interpreter
    // filetests cover it (edges/i32-index-on-32-bit-target.clif).
    for case in [
        Case::A,
        Case::C,
        Case::D,
        Case::E,
        Case::F,
        Case::G,
        Case::H,
        Case::I,
    ] {
        assert!(
            r.cases.contains_key(&case),
            "case {case} never occurs in the matrix: {:?}",
            r.cases
        );
    }
    // On Pulley a guard-page fault would be a fault of the host, so the forms that rely on
    // one (C: no check, G: the guard catches the rest) must never be chosen there.
    assert!(
        !r.pulley_cases.contains_key(&Case::C) && !r.pulley_cases.contains_key(&Case::G),
        "the pulley64 legalization relies on faulting ranges: {:?}",
        r.pulley_cases
    );
    assert!(
        r.disagreements.is_empty(),
        "{} disagreements; first:\n{}",
        r.disagreements.len(),
        r.disagreements[0]
    );

    // Configurations drawn at random: declarations, offsets near every edge, widths,
    // constant and variable index and bound (`CLIF_BOUNDS_ORACLE_CONFIGS`, default 60).
    let n = std::env::var("CLIF_BOUNDS_ORACLE_CONFIGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let drawn = run(
        random_configs(&mut Rng(0xfeed_c0de_0bad_f00d), n),
        None,
        2,
        false,
    );
    println!(
        "drawn configurations: {}, {} points, cases {:?} (pulley64 {:?}), {} disagreements",
        drawn.configs,
        drawn.points,
        drawn.cases,
        drawn.pulley_cases,
        drawn.disagreements.len()
    );
    assert!(
        drawn.disagreements.is_empty(),
        "{} disagreements; first:\n{}",
        drawn.disagreements.len(),
        drawn.disagreements[0]
    );

    // Shared checks: one check for several accesses must trap exactly where the accesses
    // one by one would, with the same code and the same memory.
    let mut rng = Rng(0x5eed_5eed_5eed_5eed);
    let (points, bad) = shared_check_runs(&mut rng, 200);
    println!(
        "shared-check runs: 200 functions, {points} points, {} disagreements",
        bad.len()
    );
    assert!(
        bad.is_empty(),
        "{} disagreements; first:\n{}",
        bad.len(),
        bad[0]
    );

    // A wrong legalizer must be caught.
    for mutation in [Mutation::KMinusOne, Mutation::IsubWithoutProof] {
        let m = run(matrix(), Some(mutation), 0, true);
        assert!(
            !m.disagreements.is_empty(),
            "the oracle did not notice the {mutation:?} mutation"
        );
        println!(
            "mutation {mutation:?} caught: {}",
            m.disagreements[0].lines().next().unwrap()
        );
    }
}
