//! Running machine code in-process with faithful traps (x86_64 Linux).
//!
//! Code is copied into an `mmap`ed region, relocated by the caller, and made executable.
//! [`call`] enters it through a small assembly trampoline that saves the host's callee-saved
//! registers and stack pointer. A fault (SIGSEGV, SIGBUS, SIGILL, SIGFPE) inside generated code
//! is caught by a signal handler, which looks the pc up in the code's trap table and resumes
//! the trampoline's exit path with the stack pointer it saved: the call returns
//! [`Fault::Trap`] with the trap code, or [`Fault::Crash`] if the pc is not a trap site. A
//! segmentation fault next to the stack pointer is the stack's guard page: a
//! [`TrapCode::STACK_OVERFLOW`] trap (generated code has no explicit stack checks). A fault
//! anywhere else is not ours and gets the default action.

use crate::ir::TrapCode;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::Once;

/// Executable code: one mapping, read-write while it is being relocated, then read-execute.
pub struct CodeMemory {
    ptr: *mut u8,
    len: usize,
    /// Trap sites by offset from the start of the mapping.
    traps: BTreeMap<u64, TrapCode>,
}

// SAFETY: the mapping is owned by this value and immutable once published.
unsafe impl Send for CodeMemory {}

impl CodeMemory {
    /// Copies `code` into a fresh mapping; `traps` are offsets into `code`. `relocate` gets
    /// the writable bytes and their final address to patch before the code becomes
    /// executable.
    pub fn new(
        code: &[u8],
        traps: BTreeMap<u64, TrapCode>,
        relocate: impl FnOnce(&mut [u8], u64) -> Result<(), String>,
    ) -> Result<CodeMemory, String> {
        let len = code.len().max(1).next_multiple_of(4096);
        // SAFETY: a fresh anonymous mapping.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(format!(
                "cannot map {len:#x} bytes for code: {}",
                std::io::Error::last_os_error()
            ));
        }
        let mem = CodeMemory {
            ptr: ptr.cast(),
            len,
            traps,
        };
        // SAFETY: the mapping is writable and at least `code.len()` bytes long.
        let bytes = unsafe { std::slice::from_raw_parts_mut(mem.ptr, code.len()) };
        bytes.copy_from_slice(code);
        relocate(bytes, mem.ptr as u64)?;
        // SAFETY: changing the protection of our own mapping.
        if unsafe { libc::mprotect(ptr, len, libc::PROT_READ | libc::PROT_EXEC) } != 0 {
            return Err(format!(
                "cannot make code executable: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(mem)
    }

    /// The address of byte `offset`.
    pub fn addr(&self, offset: u64) -> u64 {
        self.ptr as u64 + offset
    }

    fn trap_at(&self, pc: u64) -> Option<TrapCode> {
        let off = pc.checked_sub(self.ptr as u64)?;
        self.traps.get(&off).copied()
    }

    fn contains(&self, pc: u64) -> bool {
        (self.ptr as u64..self.ptr as u64 + self.len as u64).contains(&pc)
    }
}

impl Drop for CodeMemory {
    fn drop(&mut self) {
        // SAFETY: unmapping what `new` mapped.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// How a call into generated code failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The code trapped at a trap site.
    Trap {
        /// The trap code.
        code: TrapCode,
        /// The pc of the trapping instruction (or of the stack overflow).
        pc: u64,
        /// The return addresses on the stack at the trap, for a backtrace.
        stack: Box<StackWalk>,
    },
    /// A signal at a pc that is not a trap site: a bug in the generated code.
    Crash {
        /// The signal number.
        signal: i32,
        /// The faulting pc.
        pc: u64,
    },
}

/// The return addresses the signal handler finds on the stack at a trap (it allocates
/// nothing): the word at the stack pointer, which a function without a frame returns to,
/// and those of the frame-pointer chain (`[rbp + 8]`, then the saved `rbp`'s), innermost
/// first, up to the first that is not in the code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StackWalk {
    /// The word at the stack pointer.
    pub top: u64,
    /// The chain's return addresses; `len` of them are valid.
    pub chain: [u64; 32],
    /// How many.
    pub len: usize,
}

impl StackWalk {
    /// The return addresses of the chain.
    pub fn chain(&self) -> &[u64] {
        &self.chain[..self.len]
    }

    /// Walks from stack pointer `sp` and frame pointer `fp`, reading only the stack between
    /// `sp` and `end` (the entry's saved stack pointer) and stopping at the first address
    /// `in_code` rejects.
    ///
    /// # Safety
    /// `[sp, end)` must be readable stack.
    unsafe fn walk(sp: u64, mut fp: u64, end: u64, in_code: impl Fn(u64) -> bool) -> StackWalk {
        let readable = |at: u64| {
            at >= sp && at.checked_add(8).is_some_and(|e| e <= end) && at.is_multiple_of(8)
        };
        // SAFETY: every read is of an aligned word inside `[sp, end)`.
        let read = |at: u64| unsafe { *(at as *const u64) };
        let mut walk = StackWalk {
            top: if readable(sp) { read(sp) } else { 0 },
            chain: [0; 32],
            len: 0,
        };
        while walk.len < walk.chain.len() && readable(fp) && readable(fp + 8) {
            let ret = read(fp + 8);
            if !in_code(ret) {
                break;
            }
            walk.chain[walk.len] = ret;
            walk.len += 1;
            fp = read(fp);
        }
        walk
    }
}

/// The state of the call in progress on this thread, read by the signal handler.
struct Active {
    code: *const CodeMemory,
    saved_sp: u64,
    fault: Option<Signal>,
    /// The stack at a trap (the handler fills it in place: it must not allocate).
    walk: StackWalk,
}

/// What the signal handler saw: a trap (code, pc) or a crash (signal, pc).
#[derive(Clone, Copy)]
enum Signal {
    Trap(TrapCode, u64),
    Crash(i32, u64),
}

thread_local! {
    static ACTIVE: Cell<*mut Active> = const { Cell::new(std::ptr::null_mut()) };
    static ALT_STACK: Cell<bool> = const { Cell::new(false) };
    /// The lowest address of this thread's stack, once [`stack_left`] has asked.
    static STACK_LOW: Cell<Option<usize>> = const { Cell::new(None) };
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
std::arch::global_asm!(
    // clif_bounds_enter(code, vmctx, values, saved_sp_slot) -> 0 returned, 1 faulted
    ".globl clif_bounds_enter",
    "clif_bounds_enter:",
    "push rbp",
    "mov rbp, rsp",
    "push rbx",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "sub rsp, 8",
    "mov [rcx], rsp",
    "mov rax, rdi",
    "mov rdi, rsi",
    "mov rsi, rdx",
    "call rax",
    "xor eax, eax",
    ".Lclif_bounds_exit:",
    "add rsp, 8",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbx",
    "pop rbp",
    "ret",
    // The signal handler resumes here with rsp restored to the saved value.
    ".globl clif_bounds_resume",
    "clif_bounds_resume:",
    "mov eax, 1",
    "jmp .Lclif_bounds_exit",
);

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
extern "sysv64" {
    fn clif_bounds_enter(code: u64, vmctx: u64, values: *mut u64, saved_sp: *mut u64) -> u32;
    fn clif_bounds_resume();
}

/// How far from the stack pointer a fault counts as a stack overflow: beyond the largest
/// frame (spill slots are at most this far above the stack pointer).
const STACK_REACH: u64 = 1 << 20;

const SIGNALS: [libc::c_int; 4] = [libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE];

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
extern "C" fn on_signal(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let active = ACTIVE.with(Cell::get);
    // SAFETY: `ctx` is the ucontext the kernel passed; `active` is the live call's state.
    unsafe {
        let uc = ctx.cast::<libc::ucontext_t>();
        let pc = (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] as u64;
        if !active.is_null() && (*(*active).code).contains(pc) {
            let code = &*(*active).code;
            let sp = (*uc).uc_mcontext.gregs[libc::REG_RSP as usize] as u64;
            let fp = (*uc).uc_mcontext.gregs[libc::REG_RBP as usize] as u64;
            let addr = (*info).si_addr() as u64;
            // The walk reads from the stack pointer up, which is readable only while it is
            // inside the stack: after an overflow (a `sub rsp` past the end, then a store)
            // it may not be, and a fault in the handler would kill the process.
            let low = STACK_LOW.with(Cell::get).map_or(u64::MAX, |l| l as u64);
            if sp >= low.saturating_add(4096) {
                (*active).walk = StackWalk::walk(sp, fp, (*active).saved_sp, |a| code.contains(a));
            }
            (*active).fault = Some(match code.trap_at(pc) {
                Some(code) => Signal::Trap(code, pc),
                // Generated code touches the stack only next to its stack pointer (pushes,
                // calls, frame slots): a fault there is the stack's guard page.
                None if sig == libc::SIGSEGV && addr.abs_diff(sp) < STACK_REACH => {
                    Signal::Trap(TrapCode::STACK_OVERFLOW, pc)
                }
                None => Signal::Crash(sig, pc),
            });
            (*uc).uc_mcontext.gregs[libc::REG_RSP as usize] = (*active).saved_sp as i64;
            (*uc).uc_mcontext.gregs[libc::REG_RIP as usize] =
                clif_bounds_resume as *const () as usize as i64;
            return;
        }
        // Not generated code: the default action, when the faulting instruction re-runs.
        libc::signal(sig, libc::SIG_DFL);
    }
}

fn install_handlers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        // SAFETY: installing a handler with a zeroed, then filled, sigaction.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                on_signal;
            sa.sa_sigaction = handler as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
            libc::sigemptyset(&mut sa.sa_mask);
            for sig in SIGNALS {
                libc::sigaction(sig, &sa, std::ptr::null_mut());
            }
        }
    });
    // The handler must run even when the fault is a stack overflow: an alternate stack per
    // thread, leaked with the thread's lifetime.
    ALT_STACK.with(|done| {
        if done.get() {
            return;
        }
        let size = 64 << 10;
        let stack = Box::leak(vec![0u8; size].into_boxed_slice());
        let ss = libc::stack_t {
            ss_sp: stack.as_mut_ptr().cast(),
            ss_flags: 0,
            ss_size: size,
        };
        // SAFETY: the stack is valid for the rest of the process.
        unsafe { libc::sigaltstack(&ss, std::ptr::null_mut()) };
        done.set(true);
    });
}

/// Bytes of this thread's stack left below the caller's frame, when the platform says where
/// the stack ends (Linux's `pthread_getattr_np`). Code that runs nested calls on one stack
/// (calls between instances through the host) stops before it runs out: a stack overflow
/// in the host's own frames is a crash, not a trap.
pub fn stack_left() -> Option<usize> {
    #[cfg(target_os = "linux")]
    if STACK_LOW.with(Cell::get).is_none() {
        // SAFETY: the attributes are initialised by `pthread_getattr_np` before they are
        // read and destroyed after.
        unsafe {
            let mut attr: libc::pthread_attr_t = std::mem::zeroed();
            if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) == 0 {
                let (mut addr, mut size) = (std::ptr::null_mut(), 0usize);
                if libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0 {
                    STACK_LOW.with(|l| l.set(Some(addr as usize)));
                }
                libc::pthread_attr_destroy(&mut attr);
            }
        }
    }
    let here = 0u8;
    let sp = std::ptr::addr_of!(here) as usize;
    STACK_LOW.with(Cell::get).map(|low| sp.saturating_sub(low))
}

/// Calls the code at `entry` (inside `code`) as `entry(vmctx, values)` with the System V
/// convention: an array-call trampoline reading its arguments from and writing its results
/// to `values`.
pub fn call(code: &CodeMemory, entry: u64, vmctx: u64, values: &mut [u64]) -> Result<(), Fault> {
    if !cfg!(all(target_arch = "x86_64", target_os = "linux")) {
        return Err(Fault::Crash { signal: 0, pc: 0 });
    }
    install_handlers();
    // Learn where this thread's stack ends before the handler may need it.
    let _ = stack_left();
    let mut active = Active {
        code,
        saved_sp: 0,
        fault: None,
        walk: StackWalk::default(),
    };
    let previous = ACTIVE.with(|a| a.replace(&mut active));
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    // SAFETY: `entry` is a System V function of `code` taking (vmctx, values); a fault in it
    // resumes at the trampoline's exit with the saved stack pointer.
    let status =
        unsafe { clif_bounds_enter(entry, vmctx, values.as_mut_ptr(), &mut active.saved_sp) };
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    let status = 1;
    ACTIVE.with(|a| a.set(previous));
    match (status, active.fault) {
        (0, _) => Ok(()),
        (_, Some(Signal::Trap(code, pc))) => Err(Fault::Trap {
            code,
            pc,
            stack: Box::new(active.walk),
        }),
        (_, Some(Signal::Crash(signal, pc))) => Err(Fault::Crash { signal, pc }),
        (_, None) => Err(Fault::Crash { signal: 0, pc: 0 }),
    }
}

/// The host that natively running generated code calls into, for the call in progress on
/// this thread ([`with_host`]).
#[cfg(target_arch = "x86_64")]
mod host {
    use crate::isa::Host;
    use std::cell::Cell;

    thread_local! {
        static HOST: Cell<Option<*mut (dyn Host + 'static)>> = const { Cell::new(None) };
    }

    /// Runs `f` (which runs generated code) with `host` reachable from the host functions
    /// ([`function`]).
    pub fn with_host<T>(host: &mut dyn Host, f: impl FnOnce() -> T) -> T {
        // SAFETY: the pointer is only dereferenced by the host functions while `f` runs on this
        // thread, within the borrow of `host`; it is cleared before `host` is given back.
        let ptr: *mut (dyn Host + 'static) = unsafe { std::mem::transmute(host) };
        let outer = HOST.with(|h| h.replace(Some(ptr)));
        let r = f();
        HOST.with(|h| h.set(outer));
        r
    }

    /// `memory.grow` as generated code calls it (System V): `(vmctx, memory index, delta in
    /// pages)`, returning the old size in pages or `u64::MAX` (also when the host fails: the
    /// generated code then sees a failed growth).
    extern "sysv64" fn memory_grow(vmctx: u64, index: u32, delta: u64) -> u64 {
        HOST.with(|h| match h.get() {
            // SAFETY: set by `with_host` for the duration of the call that reached here.
            Some(host) => unsafe { &mut *host }
                .memory_grow(vmctx, index, delta)
                .map_or(u64::MAX, |old| old as u64),
            None => u64::MAX,
        })
    }

    /// An imported function as generated code calls it (System V): `(vmctx, function
    /// index)`, returning 0 when it returned and 1 when it did not (it trapped, or the host
    /// failed: the host keeps which, and the caller's code traps in turn).
    extern "sysv64" fn call_import(vmctx: u64, index: u32) -> u32 {
        HOST.with(|h| match h.get() {
            // SAFETY: set by `with_host` for the duration of the call that reached here. A
            // nested call installs (and then restores) a host of its own, never this one.
            Some(host) => unsafe { &mut *host }
                .call_import(vmctx, index)
                .map_or(1, |returned| u32::from(!returned)),
            None => 1,
        })
    }

    /// A call through another instance's function reference (System V): `(vmctx, type
    /// index, reference)`, returning as [`call_import`].
    extern "sysv64" fn call_ref(vmctx: u64, type_index: u32, bits: u64) -> u32 {
        HOST.with(|h| match h.get() {
            // SAFETY: as in `call_import`.
            Some(host) => unsafe { &mut *host }
                .call_ref(vmctx, type_index, bits)
                .map_or(1, |returned| u32::from(!returned)),
            None => 1,
        })
    }

    /// The address of the host function generated code calls by `name`.
    pub fn function(name: &str) -> Option<u64> {
        match name {
            crate::isa::MEMORY_GROW => Some(memory_grow as *const () as usize as u64),
            crate::isa::CALL_IMPORT => Some(call_import as *const () as usize as u64),
            crate::isa::CALL_REF => Some(call_ref as *const () as usize as u64),
            _ => None,
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub use host::{function as host_function, with_host};

/// Host pages: the granularity of `mmap` and `mprotect`.
const HOST_PAGE: u64 = 4096;

fn round_up(n: u64) -> Option<u64> {
    n.checked_add(HOST_PAGE - 1).map(|n| n & !(HOST_PAGE - 1))
}

/// An anonymous private mapping, unmapped on drop.
pub(crate) struct Mapping {
    /// The first byte.
    pub(crate) ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; access is serialised by the
// store's mutex and by the single thread running code at a time.
unsafe impl Send for Mapping {}

impl Mapping {
    /// Reserves `len` bytes, all inaccessible.
    pub(crate) fn reserve(len: u64) -> Result<Mapping, String> {
        let len = round_up(len.max(HOST_PAGE))
            .and_then(|l| usize::try_from(l).ok())
            .ok_or_else(|| {
                format!("cannot reserve {len:#x} bytes: larger than the address space")
            })?;
        // SAFETY: a fresh anonymous mapping; the kernel picks the address.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(format!(
                "cannot reserve {len:#x} bytes of address space: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(Mapping {
            ptr: ptr.cast(),
            len,
        })
    }

    /// Makes the first `len` bytes readable and writable (rounded up to host pages).
    pub(crate) fn make_accessible(&mut self, len: u64) -> Result<(), String> {
        let len = round_up(len).unwrap_or(u64::MAX);
        if len > self.len as u64 {
            return Err(format!(
                "{len:#x} bytes do not fit a mapping of {:#x}",
                self.len
            ));
        }
        if len == 0 {
            return Ok(());
        }
        // SAFETY: the range lies inside this mapping.
        let r = unsafe {
            libc::mprotect(
                self.ptr.cast(),
                len as usize,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        if r != 0 {
            return Err(format!(
                "mprotect of {len:#x} bytes failed: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(())
    }

    /// The first byte.
    pub(crate) fn addr(&self) -> u64 {
        self.ptr as u64
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `reserve` mapped.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}
