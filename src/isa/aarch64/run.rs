//! Running compiled AArch64 functions in-process on unicorn-engine (QEMU's CPU emulation),
//! over the host's own memories: faults at trap sites are reported as traps.
//!
//! The emulated address space is the host's, identity-mapped on demand: when the code touches
//! an address the emulator has not mapped, the host mapping holding it (from
//! `/proc/self/maps`) is mapped at the same address, backed by the same host pages, with its
//! protection. A guard page or reservation the host keeps inaccessible stays unmapped, so an
//! access there faults in the emulator as it would on hardware, and a fault at a trap site is
//! that site's trap. Values the code reads and writes are the host's (Wasm memories, vmctx,
//! tables), with no copying. Everything mapped so is unmapped again after each call into the
//! host (which may move or free memory) and at the end of the call.
//!
//! The code itself, its stack and the host-function stubs live above the host's user address
//! space (at and above 2^47), where no host mapping can be. A call into the host is a `ret`
//! stub whose execution a code hook intercepts first; it calls [`crate::isa::call_host`] with
//! `x0..x2` and puts the result in `x0`. An emulator is made per call: a host function may
//! call back into the image (an imported function calling through a shared table), which
//! then runs on an emulator of its own, over the same host memory.

use super::{compile, Aarch64Backend};
use crate::interpreter::DataValue;
use crate::ir::{Function, TrapCode, Type};
use crate::isa::{array_call_slots as slots, array_call_trampoline as trampoline_text};
use crate::isa::{Exit, Host, Image, HOST_FUNCTIONS};
use crate::machinst::CompiledCode;
use std::collections::{BTreeMap, HashMap};
use unicorn_engine::unicorn_const::{Arch, HookType, MemType, Mode, Prot};
use unicorn_engine::{RegisterARM64 as R, Unicorn};

/// Where the code is placed: above every host user address (x86_64 Linux: below 2^47).
const CODE_BASE: u64 = 0x9000_0000_0000;
/// The emulated stack: its top, and its size; below it is a guard no one maps.
const STACK_TOP: u64 = 0xa000_0000_0000;
const STACK_SIZE: u64 = 8 << 20;
const STACK_GUARD: u64 = 1 << 20;
const PAGE: u64 = 4096;

/// Functions placed together with their trampolines and host stubs.
pub struct Aarch64Image {
    code: Vec<u8>,
    /// Bytes of the functions themselves (not trampolines and stubs).
    size: usize,
    entries: HashMap<String, u64>,
    trampolines: HashMap<String, u64>,
    slots: HashMap<String, usize>,
    traps: BTreeMap<u64, TrapCode>,
    /// Offsets of the host stubs, by host function.
    stubs: HashMap<u64, &'static str>,
    /// Offset of the word a call returns to, where emulation stops.
    exit: u64,
    functions: crate::isa::FunctionMap,
}

impl Aarch64Image {
    /// Compiles `funcs` with `backend` and places them; a called name that is not among them
    /// must be a host function ([`HOST_FUNCTIONS`]).
    pub fn build(funcs: &[&Function], backend: &Aarch64Backend) -> Result<Aarch64Image, String> {
        let mut units: Vec<(String, bool, CompiledCode)> = Vec::new();
        let mut value_slots = HashMap::new();
        for f in funcs {
            value_slots.insert(f.name.to_string(), slots(&f.signature));
            let code = compile(f, backend).map_err(|e| format!("{}: {e}", f.name))?;
            units.push((f.name.to_string(), false, code));
            let text = trampoline_text(&f.name.to_string(), &f.signature);
            let t = crate::parser::parse_function(&text)
                .map_err(|d| format!("the trampoline of {}: {}", f.name, d.message))?;
            let code =
                compile(&t, backend).map_err(|e| format!("the trampoline of {}: {e}", f.name))?;
            units.push((f.name.to_string(), true, code));
        }
        let mut image = Self::link(units)?;
        image.slots = value_slots;
        Ok(image)
    }

    fn link(units: Vec<(String, bool, CompiledCode)>) -> Result<Aarch64Image, String> {
        let mut code: Vec<u8> = Vec::new();
        let (mut traps, mut entries, mut trampolines) =
            (BTreeMap::new(), HashMap::new(), HashMap::new());
        let (mut calls, mut pieces, mut size) = (Vec::new(), Vec::new(), 0);
        for (name, is_trampoline, unit) in units {
            while !code.len().is_multiple_of(16) {
                code.extend_from_slice(&0u32.to_le_bytes());
            }
            let start = code.len() as u64;
            pieces.push((
                start,
                (!is_trampoline).then(|| name.clone()),
                unit.frame.is_some(),
            ));
            if is_trampoline {
                trampolines.insert(name, start);
            } else {
                entries.insert(name, start);
                size += unit.code.len();
            }
            traps.extend(
                unit.traps
                    .iter()
                    .map(|(&o, s)| (start + u64::from(o), s.code)),
            );
            calls.extend(
                unit.relocs
                    .iter()
                    .map(|r| (start + u64::from(r.offset), r.callee.clone())),
            );
            code.extend_from_slice(&unit.code);
        }
        // One `ret` per host function: a code hook makes the call before it returns.
        let mut stubs = HashMap::new();
        let mut stub_of = HashMap::new();
        for (_, callee) in &calls {
            if entries.contains_key(callee) || stub_of.contains_key(callee) {
                continue;
            }
            let Some(&name) = HOST_FUNCTIONS.iter().find(|h| **h == callee.as_str()) else {
                return Err(format!(
                    "a call to {callee}, which is neither compiled here nor a host function"
                ));
            };
            let at = code.len() as u64;
            pieces.push((at, None, false));
            code.extend_from_slice(&0xd65f_03c0u32.to_le_bytes());
            stubs.insert(at, name);
            stub_of.insert(callee.clone(), at);
        }
        let exit = code.len() as u64;
        pieces.push((exit, None, false));
        code.extend_from_slice(&0u32.to_le_bytes());
        for (at, callee) in &calls {
            let target = entries.get(callee).or_else(|| stub_of.get(callee)).copied();
            let target = target.expect("every callee was placed above");
            // `bl`: a word offset from the instruction, in its low 26 bits.
            let rel = (target as i64 - *at as i64) >> 2;
            let at = *at as usize;
            let word = 0x9400_0000 | (rel as u32 & 0x03ff_ffff);
            code[at..at + 4].copy_from_slice(&word.to_le_bytes());
        }
        Ok(Aarch64Image {
            code,
            size,
            entries,
            trampolines,
            slots: HashMap::new(),
            traps,
            stubs,
            exit,
            functions: crate::isa::FunctionMap::new(pieces),
        })
    }

    /// The offset of function `name` in the image.
    pub fn entry(&self, name: &str) -> Option<u64> {
        self.entries.get(name).copied()
    }
}

/// One function's machine code run on its own from its first instruction, with the integer
/// arguments `args` in `x0`.. and no host functions: `x0` when it returns, or the trap of
/// `traps` (by code offset) where it stopped; a stop elsewhere is an error. The legalization
/// oracle runs our code and real Cranelift's for the same function through it, over the
/// same memory.
pub fn call_code(
    code: &[u8],
    traps: &BTreeMap<u32, TrapCode>,
    args: &[u64],
) -> Result<Result<u64, TrapCode>, String> {
    const ARGS: [R; 8] = [R::X0, R::X1, R::X2, R::X3, R::X4, R::X5, R::X6, R::X7];
    if args.len() > ARGS.len() {
        return Err(format!(
            "{} arguments: at most 8 go in registers",
            args.len()
        ));
    }
    let unit = CompiledCode {
        code: code.to_vec(),
        traps: traps
            .iter()
            .map(|(&o, &code)| (o, crate::machinst::TrapSite { code }))
            .collect(),
        ..Default::default()
    };
    // Placed as a trampoline: entered directly, with the arguments as they are.
    let image = Aarch64Image::link(vec![("code".into(), true, unit)])?;
    let regs: Vec<(R, u64)> = ARGS.iter().copied().zip(args.iter().copied()).collect();
    Ok(image
        .run("code", &regs, &mut crate::isa::NoHost)?
        .map_err(|(code, _)| code))
}

/// What the hooks of one call share.
struct State<'h> {
    host: &'h mut dyn Host,
    /// Host pages mapped into the emulator: start to end.
    mapped: BTreeMap<u64, u64>,
    /// An error that ended the call (a host function's, or the emulator's).
    error: Option<String>,
    /// The address of a fault in the stack's guard.
    stack_overflow: bool,
}

/// The host mapping holding `addr`, from `/proc/self/maps`: start, end, readable, writable.
fn host_mapping(addr: u64) -> Option<(u64, u64, bool, bool)> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().find_map(|l| {
        let (range, rest) = l.split_once(' ')?;
        let (lo, hi) = range.split_once('-')?;
        let (lo, hi) = (
            u64::from_str_radix(lo, 16).ok()?,
            u64::from_str_radix(hi, 16).ok()?,
        );
        let perms = rest.as_bytes();
        let (r, w) = (perms.first() == Some(&b'r'), perms.get(1) == Some(&b'w'));
        (lo <= addr && addr < hi).then_some((lo, hi, r, w))
    })
}

/// Maps the host pages around `addr` into the emulator, up to 1 MiB of the host mapping
/// holding it and not past a page mapped already; `false` when the host cannot read it.
fn map_host(uc: &mut Unicorn<'_, State<'_>>, addr: u64) -> bool {
    let Some((lo, hi, r, w)) = host_mapping(addr) else {
        return false;
    };
    if !r {
        return false;
    }
    let start = (addr & !(PAGE - 1)).max(lo);
    let next_mapped = uc
        .get_data()
        .mapped
        .range(start..)
        .next()
        .map_or(u64::MAX, |(&s, _)| s);
    let end = hi.min(start + (1 << 20)).min(next_mapped);
    if end <= start {
        return false;
    }
    let perms = if w {
        Prot::READ | Prot::WRITE
    } else {
        Prot::READ
    };
    // SAFETY: the pages are the host's own, readable (and writable when mapped so) now;
    // they are unmapped from the emulator after every host call and at the end of the
    // call, before the host can free or move them.
    let ok = unsafe { uc.mem_map_ptr(start, end - start, perms, start as *mut _) }.is_ok();
    if ok {
        uc.get_data_mut().mapped.insert(start, end);
    }
    ok
}

/// Unmaps every host page mapped into the emulator.
fn unmap_host(uc: &mut Unicorn<'_, State<'_>>) {
    let mapped = std::mem::take(&mut uc.get_data_mut().mapped);
    for (s, e) in mapped {
        let _ = uc.mem_unmap(s, e - s);
    }
}

impl Aarch64Image {
    /// Runs the code at `name`'s trampoline (or, for [`call_code`], the code itself) with
    /// the registers `args` set, until it returns: `x0` then, or its trap with a backtrace.
    fn run(
        &self,
        name: &str,
        args: &[(R, u64)],
        host: &mut dyn Host,
    ) -> Result<Result<u64, (TrapCode, Vec<String>)>, String> {
        let tramp = *self
            .trampolines
            .get(name)
            .ok_or_else(|| format!("no function {name} in the image"))?;
        let state = State {
            host,
            mapped: BTreeMap::new(),
            error: None,
            stack_overflow: false,
        };
        let uc_err = |what: &str, e| format!("unicorn: {what}: {e:?}");
        let mut uc = Unicorn::new_with_data(Arch::ARM64, Mode::LITTLE_ENDIAN, state)
            .map_err(|e| uc_err("new", e))?;
        let code_len = (self.code.len() as u64).next_multiple_of(PAGE);
        uc.mem_map(CODE_BASE, code_len, Prot::READ | Prot::EXEC)
            .map_err(|e| uc_err("map code", e))?;
        uc.mem_write(CODE_BASE, &self.code)
            .map_err(|e| uc_err("write code", e))?;
        uc.mem_map(STACK_TOP - STACK_SIZE, STACK_SIZE, Prot::READ | Prot::WRITE)
            .map_err(|e| uc_err("map stack", e))?;
        uc.add_mem_hook(
            HookType::MEM_UNMAPPED,
            1,
            0,
            |uc, _: MemType, addr, _, _| {
                let guard = STACK_TOP - STACK_SIZE - STACK_GUARD..STACK_TOP;
                if guard.contains(&addr) {
                    uc.get_data_mut().stack_overflow = true;
                    return false;
                }
                addr < CODE_BASE && map_host(uc, addr)
            },
        )
        .map_err(|e| uc_err("hook", e))?;
        let stubs = self.stubs.clone();
        if let (Some(&lo), Some(&hi)) = (stubs.keys().min(), stubs.keys().max()) {
            uc.add_code_hook(CODE_BASE + lo, CODE_BASE + hi, move |uc, pc, _| {
                let Some(&name) = stubs.get(&(pc - CODE_BASE)) else {
                    return;
                };
                let regs = [R::X0, R::X1, R::X2];
                let args: Vec<u64> = regs.iter().map(|&r| uc.reg_read(r).unwrap_or(0)).collect();
                // A panic must not unwind through the emulator's C frames (that aborts the
                // process): it ends the call as an error instead.
                let host = &mut *uc.get_data_mut().host;
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    crate::isa::call_host(host, name, &args)
                }))
                .unwrap_or_else(|p| {
                    let what = p
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    Err(format!("{name} panicked: {what}"))
                });
                // The host may have moved or freed memory: map it again on next use.
                unmap_host(uc);
                match result {
                    Ok(v) => {
                        let _ = uc.reg_write(R::X0, v);
                    }
                    Err(e) => {
                        uc.get_data_mut().error = Some(e);
                        let _ = uc.emu_stop();
                    }
                }
            })
            .map_err(|e| uc_err("hook", e))?;
        }
        // FP and SIMD enabled at EL0/EL1 (CPACR_EL1.FPEN).
        let cpacr = uc.reg_read(R::CPACR_EL1).unwrap_or(0);
        let exit = CODE_BASE + self.exit;
        for &(r, v) in [
            (R::CPACR_EL1, cpacr | (3 << 20)),
            (R::SP, STACK_TOP),
            (R::X29, 0),
            (R::X30, exit),
        ]
        .iter()
        .chain(args)
        {
            uc.reg_write(r, v).map_err(|e| uc_err("registers", e))?;
        }
        let ended = uc.emu_start(CODE_BASE + tramp, exit, 0, 0);
        let pc = uc.pc_read().unwrap_or(0);
        let out = match ended {
            _ if uc.get_data().error.is_some() => {
                Err(uc.get_data_mut().error.take().unwrap_or_default())
            }
            Ok(()) if pc == exit => Ok(Ok(uc.reg_read(R::X0).unwrap_or(0))),
            Ok(()) => Err(format!("the aarch64 code of {name} stopped at pc {pc:#x}")),
            Err(e) => {
                let offset = pc.wrapping_sub(CODE_BASE);
                let code = if uc.get_data().stack_overflow {
                    Some(TrapCode::STACK_OVERFLOW)
                } else {
                    self.traps.get(&offset).copied()
                };
                match code {
                    Some(code) => Ok(Err((code, self.backtrace(&uc, offset)))),
                    None => Err(format!(
                        "the aarch64 code of {name} crashed: {e:?} at pc {pc:#x} (offset {offset:#x}), not a trap site"
                    )),
                }
            }
        };
        unmap_host(&mut uc);
        out
    }

    /// The functions on the stack at a trap at `offset`: the frame-pointer chain's return
    /// addresses (`[x29 + 8]`), and the link register for a function without a frame.
    fn backtrace(&self, uc: &Unicorn<'_, State<'_>>, offset: u64) -> Vec<String> {
        let lr = uc.reg_read(R::X30).unwrap_or(0).wrapping_sub(CODE_BASE);
        let mut fp = uc.reg_read(R::X29).unwrap_or(0);
        let mut chain = Vec::new();
        let mut word = [0u8; 8];
        while fp != 0 && chain.len() < 10_000 {
            if uc.mem_read(fp + 8, &mut word).is_err() {
                break;
            }
            chain.push(u64::from_le_bytes(word).wrapping_sub(CODE_BASE));
            if uc.mem_read(fp, &mut word).is_err() {
                break;
            }
            fp = u64::from_le_bytes(word);
        }
        self.functions.backtrace(offset, Some(lr), &chain)
    }
}

impl Image for Aarch64Image {
    fn code_size(&self) -> usize {
        self.size
    }

    fn call(
        &self,
        name: &str,
        args: &[DataValue],
        rets: &[Type],
        host: &mut dyn Host,
    ) -> Result<Exit, String> {
        let mut values: Vec<u64> = args.iter().map(|a| a.bits).collect();
        let slots = self.slots.get(name).copied().unwrap_or(1);
        values.resize(values.len().max(rets.len()).max(slots), 0);
        let args = [(R::X0, 0), (R::X1, values.as_mut_ptr() as u64)];
        match self.run(name, &args, host)? {
            Ok(_) => Ok(Exit::Returned(
                rets.iter()
                    .zip(&values)
                    .map(|(&ty, &bits)| DataValue::new(ty, bits & ty.mask()))
                    .collect(),
            )),
            Err((code, frames)) => Ok(Exit::Trapped { code, frames }),
        }
    }
}
