//! The reference interpreter.
//!
//! It runs functions over a simulated address space ([`AddressSpace`]) in which only the
//! memories the host created are mapped: every other address faults, the first page
//! included, so the exploded Spectre form (`select_spectre_guard` of the address to 0) traps
//! as native code would. An ordinary load or store that faults traps with its flags' trap
//! code. A bounds-checked access traps exactly when [`crate::semantics::out_of_bounds`] says
//! so; if an access the semantics call in bounds faults anyway, or a bound contradicts the
//! memory declaration, the producer broke a promise and the interpreter reports an error
//! rather than a trap.

use crate::ir::*;
use crate::printer::inst_to_string;
use crate::semantics::{self, Extension};
use core::fmt;
use cranelift_entity::SecondaryMap;
use std::collections::HashMap;

/// A runtime value: its type and its bits (integers masked to the width, floats as bits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DataValue {
    /// The type.
    pub ty: Type,
    /// The bits, zero-extended to 64.
    pub bits: u64,
}

impl DataValue {
    /// A value of type `ty` from bits (masked to the width).
    pub fn new(ty: Type, bits: u64) -> Self {
        DataValue {
            ty,
            bits: bits & ty.mask(),
        }
    }

    /// The value sign-extended to 64 bits.
    pub fn signed(self) -> i64 {
        let shift = 64 - self.ty.bits();
        ((self.bits << shift) as i64) >> shift
    }

    /// Whether two values are the same, treating all NaNs of a float type as equal.
    pub fn same_as(self, other: DataValue) -> bool {
        if self.ty != other.ty {
            return false;
        }
        match self.ty {
            types::F32 => {
                let (a, b) = (
                    f32::from_bits(self.bits as u32),
                    f32::from_bits(other.bits as u32),
                );
                self.bits == other.bits || (a.is_nan() && b.is_nan())
            }
            types::F64 => {
                let (a, b) = (f64::from_bits(self.bits), f64::from_bits(other.bits));
                self.bits == other.bits || (a.is_nan() && b.is_nan())
            }
            _ => self.bits == other.bits,
        }
    }
}

impl fmt::Display for DataValue {
    /// Floats in CLIF notation; integers in signed decimal when small, else as hexadecimal
    /// bits (as CLIF writes immediates), so output reads like the run lines it is compared to.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.ty {
            types::F32 => write!(f, "{}", Ieee32(self.bits as u32)),
            types::F64 => write!(f, "{}", Ieee64(self.bits)),
            _ if self.signed().unsigned_abs() < 10_000 => write!(f, "{}", self.signed()),
            _ => write!(f, "{:#x}", self.bits),
        }
    }
}

/// A trap: the generated code stopped with a trap code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trap {
    /// The trap code.
    pub code: TrapCode,
    /// The trapping instruction, as text, with its function.
    pub location: String,
}

/// How a call ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Returned these values.
    Returned(Vec<DataValue>),
    /// Trapped.
    Trapped(Trap),
}

/// Why the interpreter could not give an outcome. These are errors in the program or its
/// harness, never traps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterpError(pub String);

impl fmt::Display for InterpError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InterpError {}

const PAGE: u64 = 4096;

/// One 256-byte period of the initial memory contents.
/// The initial byte at `offset` of a memory the host maps for a test: the low byte of the
/// offset, so loads have recognisable values (a little-endian i32 at 0x10 is 0x13121110).
pub const fn initial_byte(offset: u64) -> u8 {
    PATTERN[(offset & 0xff) as usize]
}

const PATTERN: [u8; 256] = {
    let mut p = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        p[i] = i as u8;
        i += 1;
    }
    p
};

/// A mapped range of the simulated address space. Pages are materialised on first use, so a
/// memory of several GiB costs only what is touched.
#[derive(Clone, Debug)]
struct Region {
    name: String,
    start: u64,
    size: u64,
    /// Simulated contents, materialised per page; unused by host regions.
    pages: HashMap<u64, Box<[u8]>>,
    /// The region is real host memory at address `start` (see [`AddressSpace::map_host`]).
    host: bool,
}

impl Region {
    fn page(&mut self, n: u64) -> &mut [u8] {
        self.pages.entry(n).or_insert_with(|| {
            // Initial contents: the byte at offset `i` is the low byte of `i`, so loads in
            // tests have recognisable values (a little-endian i32 at 0x10 is 0x13121110).
            // Pages start at multiples of 256, so the pattern is the same on every page.
            let mut page = vec![0u8; PAGE as usize];
            for (chunk, _) in page.chunks_exact_mut(256).zip(0..) {
                chunk.copy_from_slice(&PATTERN);
            }
            page.into_boxed_slice()
        })
    }
}

/// The simulated address space: memories the host created, everything else faulting.
#[derive(Clone, Debug)]
pub struct AddressSpace {
    regions: Vec<Region>,
    pointer: Type,
}

impl AddressSpace {
    /// An empty address space for pointers of type `pointer`.
    pub fn new(pointer: Type) -> Self {
        AddressSpace {
            regions: Vec::new(),
            pointer,
        }
    }

    /// Maps a memory of `size` bytes and returns its base address. Memories are placed far
    /// apart (1 TiB, or 256 MiB with 32-bit pointers) so the bytes after each are unmapped.
    pub fn map(&mut self, name: &str, size: u64) -> Result<u64, InterpError> {
        let spacing: u64 = if self.pointer.bits() == 32 {
            1 << 28
        } else {
            1 << 40
        };
        let k = self.regions.len() as u64 + 1;
        let limit = if self.pointer.bits() == 32 {
            15
        } else {
            1 << 20
        };
        if k > limit || size > spacing / 2 {
            return Err(InterpError(format!(
                "cannot map memory `{name}` of {size:#x} bytes: at most {limit} memories of at most {:#x} bytes each",
                spacing / 2
            )));
        }
        self.map_at(name, k * spacing, size)
    }

    /// Maps a memory of `size` bytes at a chosen address, e.g. right after another memory's
    /// guard region, to test that nothing relies on more faulting bytes than declared.
    pub fn map_at(&mut self, name: &str, start: u64, size: u64) -> Result<u64, InterpError> {
        let end = start.checked_add(size);
        let overlaps = |r: &Region| end.is_some_and(|e| start < r.start + r.size && r.start < e);
        if start < PAGE || end.is_none() || self.regions.iter().any(overlaps) {
            return Err(InterpError(format!(
                "cannot map memory `{name}` at {start:#x}: the first page and mapped memories are taken"
            )));
        }
        self.regions.push(Region {
            name: name.to_string(),
            start,
            size,
            pages: HashMap::new(),
            host: false,
        });
        Ok(start)
    }

    /// Makes `size` bytes of real host memory at address `start` accessible to interpreted
    /// code at the same addresses, so that the interpreter and native code share one memory
    /// (the Wasm runtime maps its linear memories and vmctx this way). Bytes outside every
    /// region fault, so a memory's reservation and guard fault without ever being touched.
    ///
    /// # Safety
    /// `[start, start + size)` must stay valid for reads and writes, and not be accessed
    /// through Rust references, until the region is resized or unmapped.
    pub unsafe fn map_host(
        &mut self,
        name: &str,
        start: u64,
        size: u64,
    ) -> Result<u64, InterpError> {
        self.map_at(name, start, size)?;
        if let Some(r) = self.regions.last_mut() {
            r.host = true;
        }
        Ok(start)
    }

    /// Changes the accessible size of a host region (a memory grew in place).
    ///
    /// # Safety
    /// As for [`AddressSpace::map_host`], for the new size.
    pub unsafe fn resize_host(&mut self, name: &str, size: u64) -> Result<(), InterpError> {
        match self.regions.iter_mut().find(|r| r.name == name && r.host) {
            Some(r) => {
                r.size = size;
                Ok(())
            }
            None => Err(InterpError(format!("no host region named `{name}`"))),
        }
    }

    /// Removes a region (a memory moved, or its owner went away).
    pub fn unmap(&mut self, name: &str) {
        self.regions.retain(|r| r.name != name);
    }

    /// The base address of a mapped memory by name.
    pub fn base_of(&self, name: &str) -> Option<u64> {
        self.regions
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.start)
    }

    fn region_for(&mut self, addr: u64, size: u64) -> Option<(&mut Region, u64)> {
        if addr < PAGE {
            return None;
        }
        let end = addr.checked_add(size)?;
        self.regions
            .iter_mut()
            .find(|r| addr >= r.start && end <= r.start + r.size)
            .map(|r| {
                let off = addr - r.start;
                (r, off)
            })
    }

    /// Whether any byte of `[start, end)` is mapped.
    pub fn any_mapped(&self, start: u128, end: u128) -> bool {
        self.regions.iter().any(|r| {
            let (rs, re) = (u128::from(r.start), u128::from(r.start + r.size));
            start < re && rs < end
        })
    }

    /// Reads `size` bytes at `addr`, or `None` if any of them is unmapped.
    pub fn read(&mut self, addr: u64, size: u64) -> Option<Vec<u8>> {
        let (r, off) = self.region_for(addr, size)?;
        if r.host {
            let mut out = vec![0u8; size as usize];
            // SAFETY: `map_host`'s contract: the whole region is valid host memory.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    (r.start + off) as *const u8,
                    out.as_mut_ptr(),
                    out.len(),
                )
            };
            return Some(out);
        }
        let mut out = Vec::with_capacity(size as usize);
        let mut o = off;
        while o < off + size {
            let in_page = (o % PAGE) as usize;
            let n = (PAGE - o % PAGE).min(off + size - o) as usize;
            out.extend_from_slice(&r.page(o / PAGE)[in_page..in_page + n]);
            o += n as u64;
        }
        Some(out)
    }

    /// Writes bytes at `addr`; `false` (and nothing written) if any of them is unmapped.
    pub fn write(&mut self, addr: u64, bytes: &[u8]) -> bool {
        let Some((r, off)) = self.region_for(addr, bytes.len() as u64) else {
            return false;
        };
        if r.host {
            // SAFETY: `map_host`'s contract: the whole region is valid host memory.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    bytes.as_ptr(),
                    (r.start + off) as *mut u8,
                    bytes.len(),
                )
            };
            return true;
        }
        let mut done = 0usize;
        while done < bytes.len() {
            let o = off + done as u64;
            let in_page = (o % PAGE) as usize;
            let n = ((PAGE - o % PAGE) as usize).min(bytes.len() - done);
            r.page(o / PAGE)[in_page..in_page + n].copy_from_slice(&bytes[done..done + n]);
            done += n;
        }
        true
    }
}

/// A host function callable from interpreted code through `call`.
pub type HostFn<'h> =
    Box<dyn FnMut(&mut AddressSpace, &[DataValue]) -> Result<Vec<DataValue>, Trap> + Send + 'h>;

/// Runs functions.
pub struct Interpreter<'f> {
    functions: HashMap<String, &'f Function>,
    host: HashMap<String, HostFn<'f>>,
    /// The address space; the host maps memories here before calling.
    pub memory: AddressSpace,
    fuel: u64,
    depth: usize,
}

/// Default instruction budget of one top-level call.
pub const DEFAULT_FUEL: u64 = 10_000_000;
/// Deepest call nesting before a `stk_ovf` trap.
pub const MAX_DEPTH: usize = 512;
/// Host stack for one top-level call: room for [`MAX_DEPTH`] frames of an unoptimised build,
/// reserved lazily by the OS.
const STACK_BYTES: usize = 256 << 20;

impl<'f> Interpreter<'f> {
    /// An interpreter over `functions` (callable by name from each other) for pointers of
    /// type `pointer`.
    pub fn new(functions: impl IntoIterator<Item = &'f Function>, pointer: Type) -> Self {
        Interpreter {
            functions: functions.into_iter().map(|f| (f.name.clone(), f)).collect(),
            host: HashMap::new(),
            memory: AddressSpace::new(pointer),
            fuel: DEFAULT_FUEL,
            depth: 0,
        }
    }

    /// Registers a host function under an external name (`%grow`).
    pub fn register_host(&mut self, name: &str, f: HostFn<'f>) {
        self.host.insert(name.to_string(), f);
    }

    /// Sets the instruction budget of the next top-level call.
    pub fn set_fuel(&mut self, fuel: u64) {
        self.fuel = fuel;
    }

    /// Calls the function named `name` (`%f`) with `args`.
    ///
    /// Interpreted calls recurse on the host stack, so the call runs on a thread of its own
    /// whose stack holds [`MAX_DEPTH`] frames: deep recursion in the program ends in a
    /// `stk_ovf` trap, never in an overflow of the host's stack.
    pub fn call(&mut self, name: &str, args: &[DataValue]) -> Result<Outcome, InterpError> {
        let func = *self
            .functions
            .get(name)
            .ok_or_else(|| InterpError(format!("no function named {name}")))?;
        let params: Vec<Type> = func.signature.params.iter().map(|p| p.value_type).collect();
        let got: Vec<Type> = args.iter().map(|a| a.ty).collect();
        if params != got {
            return Err(InterpError(format!(
                "{name} takes ({}) but was given ({})",
                Type::list(&params),
                Type::list(&got)
            )));
        }
        std::thread::scope(|scope| {
            std::thread::Builder::new()
                .name("clif-bounds interpreter".into())
                .stack_size(STACK_BYTES)
                .spawn_scoped(scope, || self.run(func, args))
                .map_err(|e| InterpError(format!("cannot start the interpreter thread: {e}")))?
                .join()
                .map_err(|_| InterpError("the interpreter panicked (a bug)".into()))?
        })
    }

    fn run(&mut self, func: &'f Function, args: &[DataValue]) -> Result<Outcome, InterpError> {
        if self.depth >= MAX_DEPTH {
            return Ok(Outcome::Trapped(Trap {
                code: TrapCode::STACK_OVERFLOW,
                location: format!("call depth {MAX_DEPTH} in {}", func.name),
            }));
        }
        self.depth += 1;
        let r = Frame {
            interp: self,
            func,
            env: SecondaryMap::new(),
        }
        .run(args);
        self.depth -= 1;
        r
    }
}

struct Frame<'i, 'f> {
    interp: &'i mut Interpreter<'f>,
    func: &'f Function,
    env: SecondaryMap<Value, u64>,
}

enum Step {
    Next,
    Jump(Block),
    Return(Vec<DataValue>),
    Trap(TrapCode),
    /// A callee trapped: its trap, to which this frame adds itself as the caller.
    Propagate(Trap),
}

impl<'f> Frame<'_, 'f> {
    fn get(&self, v: Value) -> DataValue {
        DataValue::new(self.func.dfg.value_type(v), self.env[v])
    }

    fn set(&mut self, v: Value, bits: u64) {
        let ty = self.func.dfg.value_type(v);
        self.env[v] = bits & ty.mask();
    }

    fn run(mut self, args: &[DataValue]) -> Result<Outcome, InterpError> {
        let func = self.func;
        let Some(mut block) = func.layout.entry_block() else {
            return Err(InterpError(format!("{} has no blocks", func.name)));
        };
        for (&p, a) in func.dfg.block_params(block).iter().zip(args) {
            self.set(p, a.bits);
        }
        loop {
            let mut next = None;
            for &inst in func.layout.block_insts(block) {
                if self.interp.fuel == 0 {
                    return Err(InterpError(format!(
                        "fuel exhausted: the call ran more than its instruction budget (at `{}` in {}); is there an endless loop?",
                        inst_to_string(func, inst),
                        func.name
                    )));
                }
                self.interp.fuel -= 1;
                match self.step(inst)? {
                    Step::Next => {}
                    Step::Jump(b) => {
                        next = Some(b);
                        break;
                    }
                    Step::Return(vals) => return Ok(Outcome::Returned(vals)),
                    Step::Trap(code) => {
                        return Ok(Outcome::Trapped(Trap {
                            code,
                            location: format!("`{}` in {}", inst_to_string(func, inst), func.name),
                        }))
                    }
                    // The backtrace: where it trapped, then each caller outwards.
                    Step::Propagate(t) => {
                        return Ok(Outcome::Trapped(Trap {
                            code: t.code,
                            location: format!("{}, called from {}", t.location, func.name),
                        }))
                    }
                }
            }
            block = next.ok_or_else(|| {
                InterpError(format!(
                    "{block} in {} fell off its end without a terminator",
                    func.name
                ))
            })?;
        }
    }

    fn branch(&mut self, call: &BlockCall) -> Step {
        let vals: Vec<u64> = call.args.iter().map(|&a| self.env[a]).collect();
        for (&p, v) in self.func.dfg.block_params(call.block).iter().zip(vals) {
            self.set(p, v);
        }
        Step::Jump(call.block)
    }

    fn pointer_mask(&self) -> u64 {
        self.interp.memory.pointer.mask()
    }

    fn load_bytes(
        &mut self,
        addr: u64,
        size: u64,
        flags: MemFlags,
        inst: Inst,
    ) -> Result<Result<u64, TrapCode>, InterpError> {
        match self.interp.memory.read(addr, size) {
            Some(bytes) => Ok(Ok(from_bytes(&bytes, flags.endianness))),
            None => match flags.trap_code {
                Some(code) => Ok(Err(code)),
                None => Err(self.notrap_fault(inst, addr)),
            },
        }
    }

    fn store_bytes(
        &mut self,
        addr: u64,
        size: u64,
        bits: u64,
        flags: MemFlags,
        inst: Inst,
    ) -> Result<Option<TrapCode>, InterpError> {
        let bytes = to_bytes(bits, size, flags.endianness);
        if self.interp.memory.write(addr, &bytes) {
            Ok(None)
        } else {
            match flags.trap_code {
                Some(code) => Ok(Some(code)),
                None => Err(self.notrap_fault(inst, addr)),
            }
        }
    }

    fn notrap_fault(&self, inst: Inst, addr: u64) -> InterpError {
        InterpError(format!(
            "`{}` in {} is marked `notrap` but faulted at address {addr:#x}",
            inst_to_string(self.func, inst),
            self.func.name
        ))
    }

    fn step(&mut self, inst: Inst) -> Result<Step, InterpError> {
        let func = self.func;
        let dfg = &func.dfg;
        let data = &dfg.insts[inst];
        let opcode = data.opcode();
        let ctrl = dfg.ctrl_type(inst);
        let result = |s: &mut Self, bits: u64| {
            let r = dfg.first_result(inst);
            s.set(r, bits);
            Ok(Step::Next)
        };
        use InstructionData as D;
        use Opcode::*;
        match data {
            D::Jump { destination, .. } => Ok(self.branch(destination)),
            D::Brif {
                arg,
                block_then,
                block_else,
                ..
            } => Ok(if self.env[*arg] != 0 {
                self.branch(block_then)
            } else {
                self.branch(block_else)
            }),
            D::BranchTable { arg, table, .. } => {
                let call = table
                    .targets
                    .get(self.env[*arg] as usize)
                    .unwrap_or(&table.default);
                Ok(self.branch(call))
            }
            D::Trap { code, .. } => Ok(Step::Trap(*code)),
            D::CondTrap { arg, code, .. } => {
                let c = self.env[*arg] != 0;
                Ok(if c == (opcode == Trapnz) {
                    Step::Trap(*code)
                } else {
                    Step::Next
                })
            }
            D::MultiAry { args, .. } => {
                Ok(Step::Return(args.iter().map(|&a| self.get(a)).collect()))
            }
            D::Call { func_ref, args, .. } => {
                let ext = &dfg.ext_funcs[*func_ref];
                let vals: Vec<DataValue> = args.iter().map(|&a| self.get(a)).collect();
                let outcome = if let Some(&callee) = self.interp.functions.get(&ext.name) {
                    self.interp.run(callee, &vals)?
                } else if let Some(host) = self.interp.host.get_mut(&ext.name) {
                    match host(&mut self.interp.memory, &vals) {
                        Ok(v) => Outcome::Returned(v),
                        Err(t) => Outcome::Trapped(t),
                    }
                } else {
                    return Err(InterpError(format!(
                        "call to {func_ref} ({}): no function of that name in this file and no host function registered",
                        ext.name
                    )));
                };
                match outcome {
                    Outcome::Returned(rets) => {
                        let results = dfg.inst_results(inst);
                        if rets.len() != results.len() {
                            return Err(InterpError(format!(
                                "{} returned {} values, expected {}",
                                ext.name,
                                rets.len(),
                                results.len()
                            )));
                        }
                        for (&r, v) in results.iter().zip(rets) {
                            self.set(r, v.bits);
                        }
                        Ok(Step::Next)
                    }
                    Outcome::Trapped(t) => Ok(Step::Propagate(t)),
                }
            }
            D::UnaryImm { imm, .. } => result(self, imm.0 as u64),
            D::UnaryIeee32 { imm, .. } => result(self, u64::from(imm.0)),
            D::UnaryIeee64 { imm, .. } => result(self, imm.0),
            D::Load {
                flags, arg, offset, ..
            } => {
                let addr =
                    self.env[*arg].wrapping_add(offset.0 as i64 as u64) & self.pointer_mask();
                let size = match opcode {
                    Uload8 | Sload8 => 1,
                    Uload16 | Sload16 => 2,
                    Uload32 | Sload32 => 4,
                    _ => u64::from(ctrl.bytes()),
                };
                match self.load_bytes(addr, size, *flags, inst)? {
                    Err(code) => Ok(Step::Trap(code)),
                    Ok(bits) => {
                        let v = if matches!(opcode, Sload8 | Sload16 | Sload32) {
                            sext(bits, size as u32 * 8)
                        } else {
                            bits
                        };
                        result(self, v)
                    }
                }
            }
            D::Store {
                flags,
                args,
                offset,
                ..
            } => {
                let addr =
                    self.env[args[1]].wrapping_add(offset.0 as i64 as u64) & self.pointer_mask();
                let size = match opcode {
                    Istore8 => 1,
                    Istore16 => 2,
                    Istore32 => 4,
                    _ => u64::from(ctrl.bytes()),
                };
                let bits = self.env[args[0]];
                Ok(match self.store_bytes(addr, size, bits, *flags, inst)? {
                    Some(code) => Step::Trap(code),
                    None => Step::Next,
                })
            }
            D::BoundsCheckedLoad { .. } | D::BoundsCheckedStore { .. } => self.bounds_checked(inst),
            D::IntAddTrap { args, code, .. } => {
                let (a, b) = (self.env[args[0]], self.env[args[1]]);
                let sum = u128::from(a) + u128::from(b);
                if sum > u128::from(ctrl.mask()) {
                    Ok(Step::Trap(*code))
                } else {
                    result(self, sum as u64)
                }
            }
            D::Ternary { args, .. } => {
                // select and select_spectre_guard have the same meaning.
                let v = if self.env[args[0]] != 0 {
                    self.env[args[1]]
                } else {
                    self.env[args[2]]
                };
                result(self, v)
            }
            D::IntCompare { cond, args, .. } => {
                let (a, b) = (self.get(args[0]), self.get(args[1]));
                result(self, u64::from(icmp(*cond, a, b)))
            }
            D::FloatCompare { cond, args, .. } => {
                let (a, b) = (self.get(args[0]), self.get(args[1]));
                result(self, u64::from(fcmp(*cond, a, b)))
            }
            D::LoadNoOffset { arg, .. } => {
                // bitcast: same width, bits unchanged.
                let v = self.env[*arg];
                result(self, v)
            }
            D::Binary { args, .. } => {
                let (a, b) = (self.get(args[0]), self.get(args[1]));
                match binary(opcode, a, b) {
                    Ok(bits) => result(self, bits),
                    Err(code) => Ok(Step::Trap(code)),
                }
            }
            D::Unary { arg, .. } => {
                let a = self.get(*arg);
                match unary(opcode, ctrl, a) {
                    Ok(bits) => result(self, bits),
                    Err(code) => Ok(Step::Trap(code)),
                }
            }
        }
    }

    fn bounds_checked(&mut self, inst: Inst) -> Result<Step, InterpError> {
        let func = self.func;
        let dfg = &func.dfg;
        let ty = dfg.ctrl_type(inst);
        let checked = dfg.insts[inst]
            .bounds_checked_access()
            .expect("called on a bounds-checked access");
        let code = checked.trap_code();
        let BoundsCheckedAccess {
            access,
            flags,
            memory,
            value,
            base,
            bound,
            index,
            offset,
        } = checked;
        let (base, bound, index) = (self.env[base], self.env[bound], self.env[index]);
        let size = u64::from(access.access_size(ty));
        self.check_declaration(inst, memory, base, bound)?;
        if semantics::out_of_bounds(index, offset, size, bound) {
            return Ok(Step::Trap(code));
        }
        let addr = semantics::effective_address(base, index, offset) & self.pointer_mask();
        let broken = |s: &Self| {
            InterpError(format!(
                "`{}` in {}: the access is in bounds (index {index:#x} + offset {offset:#x} + {size} <= bound {bound:#x}) but address {addr:#x} is not mapped: the bound exceeds the memory's size",
                inst_to_string(s.func, inst),
                s.func.name
            ))
        };
        match value {
            None => {
                let Some(bytes) = self.interp.memory.read(addr, size) else {
                    return Err(broken(self));
                };
                let bits = from_bytes(&bytes, flags.endianness);
                let bits = match access.extension() {
                    Extension::Sign => sext(bits, size as u32 * 8),
                    _ => bits,
                };
                let r = dfg.first_result(inst);
                self.set(r, bits);
            }
            Some(v) => {
                let bytes = to_bytes(self.env[v], size, flags.endianness);
                if !self.interp.memory.write(addr, &bytes) {
                    return Err(broken(self));
                }
            }
        }
        Ok(Step::Next)
    }

    /// Checks the promises of the memory declaration that this execution can observe: the
    /// bound lies within `[min, max]`, and the declared faulting range is really unmapped.
    fn check_declaration(
        &self,
        inst: Inst,
        memory: Memory,
        base: u64,
        bound: u64,
    ) -> Result<(), InterpError> {
        let mem = &self.func.memories[memory];
        let here = || {
            format!(
                "`{}` in {}",
                inst_to_string(self.func, inst),
                self.func.name
            )
        };
        if bound < mem.min || u128::from(bound) > mem.max_bound(self.interp.memory.pointer) {
            return Err(InterpError(format!(
                "{}: bound {bound:#x} contradicts {memory} = {mem}",
                here()
            )));
        }
        let start = u128::from(base) + u128::from(bound);
        let end = u128::from(base) + mem.faulting_end(bound);
        if end > start && self.interp.memory.any_mapped(start, end) {
            return Err(InterpError(format!(
                "{}: {memory} declares [base + {bound:#x}, base + {:#x}) faulting, but part of it is mapped",
                here(),
                mem.faulting_end(bound)
            )));
        }
        Ok(())
    }
}

fn from_bytes(bytes: &[u8], e: Option<Endianness>) -> u64 {
    let mut v = 0u64;
    match e.unwrap_or(Endianness::Little) {
        Endianness::Little => {
            for (i, b) in bytes.iter().enumerate() {
                v |= u64::from(*b) << (8 * i);
            }
        }
        Endianness::Big => {
            for b in bytes {
                v = (v << 8) | u64::from(*b);
            }
        }
    }
    v
}

fn to_bytes(bits: u64, size: u64, e: Option<Endianness>) -> Vec<u8> {
    let le: Vec<u8> = (0..size).map(|i| (bits >> (8 * i)) as u8).collect();
    match e.unwrap_or(Endianness::Little) {
        Endianness::Little => le,
        Endianness::Big => le.into_iter().rev().collect(),
    }
}

fn sext(bits: u64, from: u32) -> u64 {
    let shift = 64 - from;
    (((bits << shift) as i64) >> shift) as u64
}

fn icmp(cond: IntCC, a: DataValue, b: DataValue) -> bool {
    let (ua, ub, sa, sb) = (a.bits, b.bits, a.signed(), b.signed());
    match cond {
        IntCC::Equal => ua == ub,
        IntCC::NotEqual => ua != ub,
        IntCC::SignedLessThan => sa < sb,
        IntCC::SignedGreaterThanOrEqual => sa >= sb,
        IntCC::SignedGreaterThan => sa > sb,
        IntCC::SignedLessThanOrEqual => sa <= sb,
        IntCC::UnsignedLessThan => ua < ub,
        IntCC::UnsignedGreaterThanOrEqual => ua >= ub,
        IntCC::UnsignedGreaterThan => ua > ub,
        IntCC::UnsignedLessThanOrEqual => ua <= ub,
    }
}

fn to_f64(v: DataValue) -> f64 {
    if v.ty == types::F32 {
        f64::from(f32::from_bits(v.bits as u32))
    } else {
        f64::from_bits(v.bits)
    }
}

fn fcmp(cond: FloatCC, a: DataValue, b: DataValue) -> bool {
    let (x, y) = (to_f64(a), to_f64(b));
    let uno = x.is_nan() || y.is_nan();
    match cond {
        FloatCC::Ordered => !uno,
        FloatCC::Unordered => uno,
        FloatCC::Equal => x == y,
        FloatCC::NotEqual => x != y,
        FloatCC::OrderedNotEqual => !uno && x != y,
        FloatCC::UnorderedOrEqual => uno || x == y,
        FloatCC::LessThan => x < y,
        FloatCC::LessThanOrEqual => x <= y,
        FloatCC::GreaterThan => x > y,
        FloatCC::GreaterThanOrEqual => x >= y,
        FloatCC::UnorderedOrLessThan => uno || x < y,
        FloatCC::UnorderedOrLessThanOrEqual => uno || x <= y,
        FloatCC::UnorderedOrGreaterThan => uno || x > y,
        FloatCC::UnorderedOrGreaterThanOrEqual => uno || x >= y,
    }
}

/// Applies a float operation at the operands' precision.
fn float_op(
    ty: Type,
    a: u64,
    b: u64,
    f32op: fn(f32, f32) -> f32,
    f64op: fn(f64, f64) -> f64,
) -> u64 {
    if ty == types::F32 {
        u64::from(f32op(f32::from_bits(a as u32), f32::from_bits(b as u32)).to_bits())
    } else {
        f64op(f64::from_bits(a), f64::from_bits(b)).to_bits()
    }
}

fn fmin<T: num_like::Float>(a: T, b: T) -> T {
    if a.is_nan() || b.is_nan() {
        T::nan()
    } else if a == b {
        if a.is_sign_negative() {
            a
        } else {
            b
        }
    } else if a < b {
        a
    } else {
        b
    }
}

fn fmax<T: num_like::Float>(a: T, b: T) -> T {
    if a.is_nan() || b.is_nan() {
        T::nan()
    } else if a == b {
        if a.is_sign_negative() {
            b
        } else {
            a
        }
    } else if a > b {
        a
    } else {
        b
    }
}

mod num_like {
    pub trait Float: Copy + PartialOrd {
        fn is_nan(self) -> bool;
        fn is_sign_negative(self) -> bool;
        fn nan() -> Self;
    }
    impl Float for f32 {
        fn is_nan(self) -> bool {
            f32::is_nan(self)
        }
        fn is_sign_negative(self) -> bool {
            f32::is_sign_negative(self)
        }
        fn nan() -> Self {
            f32::NAN
        }
    }
    impl Float for f64 {
        fn is_nan(self) -> bool {
            f64::is_nan(self)
        }
        fn is_sign_negative(self) -> bool {
            f64::is_sign_negative(self)
        }
        fn nan() -> Self {
            f64::NAN
        }
    }
}

fn binary(opcode: Opcode, a: DataValue, b: DataValue) -> Result<u64, TrapCode> {
    use Opcode::*;
    let ty = a.ty;
    let bits = ty.bits();
    let (x, y) = (a.bits, b.bits);
    let amount = (b.bits % u64::from(bits)) as u32;
    Ok(match opcode {
        Iadd => x.wrapping_add(y),
        Isub => x.wrapping_sub(y),
        Imul => x.wrapping_mul(y),
        Udiv | Urem if y == 0 => return Err(TrapCode::INTEGER_DIVISION_BY_ZERO),
        Udiv => x / y,
        Urem => x % y,
        Sdiv | Srem if y == 0 => return Err(TrapCode::INTEGER_DIVISION_BY_ZERO),
        Sdiv => {
            let (sx, sy) = (a.signed(), b.signed());
            if sy == -1 && sx == sext(1 << (bits - 1), bits) as i64 {
                return Err(TrapCode::INTEGER_OVERFLOW);
            }
            sx.wrapping_div(sy) as u64
        }
        Srem => a.signed().wrapping_rem(b.signed()) as u64,
        Band => x & y,
        Bor => x | y,
        Bxor => x ^ y,
        Ishl => x << amount,
        Ushr => x >> amount,
        Sshr => (a.signed() >> amount) as u64,
        Rotl => {
            if amount == 0 {
                x
            } else {
                (x << amount) | (x >> (bits - amount))
            }
        }
        Rotr => {
            if amount == 0 {
                x
            } else {
                (x >> amount) | (x << (bits - amount))
            }
        }
        Fadd => float_op(ty, x, y, |a, b| a + b, |a, b| a + b),
        Fsub => float_op(ty, x, y, |a, b| a - b, |a, b| a - b),
        Fmul => float_op(ty, x, y, |a, b| a * b, |a, b| a * b),
        Fdiv => float_op(ty, x, y, |a, b| a / b, |a, b| a / b),
        Fcopysign => float_op(ty, x, y, f32::copysign, f64::copysign),
        Fmin => float_op(ty, x, y, fmin, fmin),
        Fmax => float_op(ty, x, y, fmax, fmax),
        _ => unreachable!("{opcode} is not a binary operation"),
    })
}

fn unary(opcode: Opcode, ctrl: Type, a: DataValue) -> Result<u64, TrapCode> {
    use Opcode::*;
    let x = a.bits;
    let bits = a.ty.bits();
    let f_nan = |a: &DataValue| match a.ty {
        types::F32 => f32::from_bits(a.bits as u32).is_nan(),
        types::F64 => f64::from_bits(a.bits).is_nan(),
        _ => false,
    };
    let f_mantissa_bits = |a: &DataValue| if a.ty == types::F32 { 23 } else { 52 };
    let f_un = |f32op: fn(f32) -> f32, f64op: fn(f64) -> f64| {
        if a.ty == types::F32 {
            u64::from(f32op(f32::from_bits(x as u32)).to_bits())
        } else {
            f64op(f64::from_bits(x)).to_bits()
        }
    };
    Ok(match opcode {
        Bnot => !x,
        Clz => u64::from(x.leading_zeros() - (64 - bits)),
        Ctz => u64::from(if x == 0 { bits } else { x.trailing_zeros() }),
        Popcnt => u64::from(x.count_ones()),
        Bswap => x.swap_bytes() >> (64 - bits),
        Uextend => x,
        Sextend => a.signed() as u64,
        Ireduce => x,
        Sqrt => f_un(f32::sqrt, f64::sqrt),
        Fneg => x ^ (1 << (bits - 1)),
        Fabs => x & !(1 << (bits - 1)),
        // IEEE 754's roundToIntegral quiets a signalling NaN (Rust's functions may return
        // it unchanged; hardware `roundss` quiets it, and Wasm requires an arithmetic NaN).
        Ceil | Floor | Trunc | Nearest if f_nan(&a) => x | (1 << (f_mantissa_bits(&a) - 1)),
        Ceil => f_un(f32::ceil, f64::ceil),
        Floor => f_un(f32::floor, f64::floor),
        Trunc => f_un(f32::trunc, f64::trunc),
        Nearest => f_un(f32::round_ties_even, f64::round_ties_even),
        Fpromote => f64::from(f32::from_bits(x as u32)).to_bits(),
        Fdemote => u64::from((f64::from_bits(x) as f32).to_bits()),
        FcvtToUint | FcvtToSint | FcvtToUintSat | FcvtToSintSat => {
            let f = to_f64(a);
            let signed = matches!(opcode, FcvtToSint | FcvtToSintSat);
            let saturating = matches!(opcode, FcvtToUintSat | FcvtToSintSat);
            let out = ctrl.bits();
            if f.is_nan() {
                if saturating {
                    return Ok(0);
                }
                return Err(TrapCode::BAD_CONVERSION_TO_INTEGER);
            }
            let t = f.trunc();
            // Exact bounds as powers of two: every float below 2^n truncates into range.
            let (lo, hi) = if signed {
                (-(2f64.powi(out as i32 - 1)), 2f64.powi(out as i32 - 1))
            } else {
                (0.0, 2f64.powi(out as i32))
            };
            if t < lo || t >= hi {
                if !saturating {
                    return Err(TrapCode::INTEGER_OVERFLOW);
                }
                return Ok(if t < lo {
                    if signed {
                        sext(1 << (out - 1), out)
                    } else {
                        0
                    }
                } else if signed {
                    (1u64 << (out - 1)) - 1
                } else {
                    ctrl.mask()
                });
            }
            if signed {
                t as i64 as u64
            } else {
                t as u64
            }
        }
        FcvtFromUint | FcvtFromSint => {
            let signed = opcode == FcvtFromSint;
            if ctrl == types::F32 {
                let f = if signed { a.signed() as f32 } else { x as f32 };
                u64::from(f.to_bits())
            } else {
                let f = if signed { a.signed() as f64 } else { x as f64 };
                f.to_bits()
            }
        }
        _ => unreachable!("{opcode} is not a unary operation"),
    })
}
