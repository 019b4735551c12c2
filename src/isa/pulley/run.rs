//! Placing compiled Pulley functions in one code image and running them in
//! `pulley-interpreter`'s `Vm`, with traps mapped back to trap codes.

use crate::interpreter::DataValue;
use crate::ir::{types, TrapCode, Type};
use crate::isa::{Exit, Host, Image};
use crate::machinst::abi::Loc;
use crate::machinst::CompiledCode;
use pulley_interpreter::encode;
use pulley_interpreter::interp::{DoneReason, FRegVal, RegType, TrapKind, Val, Vm, XRegVal};
use pulley_interpreter::XReg;
use std::collections::{BTreeMap, HashMap};
use std::ptr::NonNull;

/// Functions placed together, with calls between them resolved and a stub per host function
/// (`call_indirect_host id; ret`).
pub struct PulleyImage {
    code: Box<[u8]>,
    entries: HashMap<String, u32>,
    traps: BTreeMap<u32, TrapCode>,
    hosts: Vec<String>,
    functions: crate::isa::FunctionMap,
}

/// A host function: reads its arguments from the Vm's registers (Pulley ABI) and writes its
/// results there. An error ends the call (it is not a trap of the generated code).
pub type HostFn<'a> = dyn FnMut(&str, &mut Vm) -> Result<(), String> + 'a;

impl PulleyImage {
    /// Places `funcs` one after the other; calls to names that are not among them go to host
    /// stubs, whose ids are their positions in [`PulleyImage::host_names`].
    pub fn link(funcs: Vec<(String, CompiledCode)>) -> Result<Self, String> {
        let mut code = Vec::new();
        let mut entries = HashMap::new();
        let mut traps = BTreeMap::new();
        let mut calls = Vec::new();
        let mut pieces = Vec::new();
        for (name, f) in funcs {
            let start = code.len() as u32;
            let function = (!name.ends_with(ARRAY_CALL)).then(|| name.clone());
            pieces.push((u64::from(start), function, f.frame.is_some()));
            entries.insert(name, start);
            traps.extend(f.traps.iter().map(|(&o, s)| (start + o, s.code)));
            calls.extend(
                f.relocs
                    .iter()
                    .map(|r| (start + r.offset, r.callee.clone())),
            );
            code.extend_from_slice(&f.code);
        }
        let mut hosts: Vec<String> = Vec::new();
        for (_, callee) in &calls {
            if !entries.contains_key(callee) && !hosts.contains(callee) {
                hosts.push(callee.clone());
            }
        }
        for (id, name) in hosts.iter().enumerate() {
            let id = u8::try_from(id).map_err(|_| "more than 256 host functions".to_string())?;
            pieces.push((code.len() as u64, None, false));
            entries.insert(name.clone(), code.len() as u32);
            encode::call_indirect_host(&mut code, id);
            encode::ret(&mut code);
        }
        for (at, callee) in calls {
            // `call` is one opcode byte and a 32-bit offset from the call itself.
            let rel = entries[&callee] as i64 - i64::from(at);
            let at = at as usize + 1;
            code[at..at + 4].copy_from_slice(&(rel as i32).to_le_bytes());
        }
        Ok(PulleyImage {
            code: code.into_boxed_slice(),
            entries,
            traps,
            hosts,
            functions: crate::isa::FunctionMap::new(pieces),
        })
    }

    /// The backtrace of a trap at `offset` in `vm`, read before the `Vm` is abandoned:
    /// Pulley's frames (`push_frame`) keep the caller's `fp` at `fp` and the return address
    /// at `fp + 8`, and a function without a frame returns to `lr`. Only the stack between
    /// the stack pointer and `top` (where it was when the call began) is read.
    fn backtrace(&self, vm: &mut Vm, offset: u32, top: usize) -> Vec<String> {
        let base = self.code.as_ptr() as usize;
        let inside = |addr: usize| {
            addr.checked_sub(base)
                .filter(|&o| o < self.code.len())
                .map(|o| o as u64)
        };
        let sp = vm[XReg::sp].get_u64() as usize;
        let readable = |at: usize| {
            at >= sp && at.is_multiple_of(8) && at.checked_add(16).is_some_and(|e| e <= top)
        };
        let mut chain = Vec::new();
        let mut fp = vm.fp() as usize;
        while chain.len() < 64 && readable(fp) {
            // SAFETY: `[fp, fp + 16)` is inside the `Vm`'s live stack, between its stack
            // pointer and where the call began.
            let (saved_fp, ret) = unsafe { (*(fp as *const usize), *((fp + 8) as *const usize)) };
            let Some(ret) = inside(ret) else { break };
            chain.push(ret);
            fp = saved_fp;
        }
        let leaf_return = inside(vm.lr() as usize);
        self.functions
            .backtrace(u64::from(offset), leaf_return, &chain)
    }

    /// The names of the host functions, by stub id.
    pub fn host_names(&self) -> &[String] {
        &self.hosts
    }

    /// The whole image.
    pub fn code(&self) -> &[u8] {
        &self.code
    }

    /// Calls `name` with `args` and reads results of `returns`. Host stubs call `host`.
    ///
    /// After a trap the `Vm` is replaced: its frame pointer and stack are abandoned mid-call.
    pub fn call(
        &self,
        vm: &mut Vm,
        name: &str,
        args: &[DataValue],
        returns: &[Type],
        host: &mut HostFn<'_>,
    ) -> Result<Exit, String> {
        let Some(&entry) = self.entries.get(&array_call_name(name)) else {
            let entry = *self
                .entries
                .get(name)
                .ok_or_else(|| format!("no function {name} in the Pulley image"))?;
            return self.enter(vm, entry, args, returns, host);
        };
        // Through its array-call trampoline: the values in 8-byte slots.
        let mut values: Vec<u64> = args.iter().map(|a| a.bits).collect();
        values.resize(values.len().max(returns.len()).max(1), 0);
        let pointer = DataValue::new(types::I64, values.as_mut_ptr() as u64);
        let exit = self.enter(
            vm,
            entry,
            &[DataValue::new(types::I64, 0), pointer],
            &[],
            host,
        )?;
        Ok(match exit {
            Exit::Returned(_) => Exit::Returned(
                returns
                    .iter()
                    .zip(&values)
                    .map(|(&ty, &bits)| DataValue::new(ty, bits & ty.mask()))
                    .collect(),
            ),
            trapped => trapped,
        })
    }

    /// Runs the code at `entry` with `args` in registers.
    fn enter(
        &self,
        vm: &mut Vm,
        entry: u32,
        args: &[DataValue],
        returns: &[Type],
        host: &mut HostFn<'_>,
    ) -> Result<Exit, String> {
        let vals: Vec<Val> = args.iter().map(|&a| to_val(a)).collect();
        let top = vm[XReg::sp].get_u64() as usize;
        let base = self.code.as_ptr();
        // SAFETY: the bytecode was produced by our backend and linked above; arguments match
        // the function's signature (the caller checked them against the IR).
        unsafe {
            let old_lr = vm.call_start(&vals);
            let mut pc = NonNull::new_unchecked(base.add(entry as usize) as *mut u8);
            loop {
                match vm.call_run(pc) {
                    DoneReason::ReturnToHost(()) => {
                        let tys = returns.iter().map(|t| {
                            if t.is_float() {
                                RegType::FReg
                            } else {
                                RegType::XReg
                            }
                        });
                        let out: Vec<Val> = vm.call_end(old_lr, tys).collect();
                        return Ok(Exit::Returned(
                            out.into_iter()
                                .zip(returns)
                                .map(|(v, &ty)| from_val(v, ty))
                                .collect(),
                        ));
                    }
                    DoneReason::CallIndirectHost { id, resume } => {
                        let name = self
                            .hosts
                            .get(usize::from(id))
                            .ok_or_else(|| format!("call to unknown host function {id}"))?;
                        if let Err(e) = host(name, vm) {
                            *vm = fresh_vm()?;
                            return Err(format!("host function {name}: {e}"));
                        }
                        pc = resume;
                    }
                    DoneReason::Trap { pc, kind } => {
                        let offset = (pc.as_ptr() as usize).wrapping_sub(base as usize) as u32;
                        let frames = self.backtrace(vm, offset, top);
                        *vm = fresh_vm()?;
                        let code = self.trap_code(offset, kind)?;
                        return Ok(Exit::Trapped { code, frames });
                    }
                }
            }
        }
    }

    fn trap_code(&self, offset: u32, kind: Option<TrapKind>) -> Result<TrapCode, String> {
        // The interpreter knows the kind of arithmetic traps; memory and explicit traps are
        // named by the trap table.
        match kind {
            Some(TrapKind::DivideByZero) => return Ok(TrapCode::INTEGER_DIVISION_BY_ZERO),
            Some(TrapKind::IntegerOverflow) => return Ok(TrapCode::INTEGER_OVERFLOW),
            Some(TrapKind::BadConversionToInteger) => {
                return Ok(TrapCode::BAD_CONVERSION_TO_INTEGER)
            }
            Some(TrapKind::StackOverflow) => return Ok(TrapCode::STACK_OVERFLOW),
            _ => {}
        }
        self.traps.get(&offset).copied().ok_or_else(|| {
            let kind = match kind {
                Some(TrapKind::MemoryOutOfBounds) => "out-of-bounds access",
                Some(TrapKind::DisabledOpcode) => "disabled opcode",
                _ => "trap",
            };
            format!("Pulley stopped ({kind}) at offset {offset:#x}, which is not a trap site")
        })
    }
}

/// A linked image with the `Vm`s it runs in: Pulley's [`Image`]. A call takes a `Vm` of
/// its own, so that a call back into the image while one runs (through the host) gets
/// another; they are kept for the next calls.
pub struct PulleyRun {
    image: PulleyImage,
    vms: std::cell::RefCell<Vec<Vm>>,
}

impl PulleyRun {
    /// `image`, to run in a fresh `Vm`.
    pub fn new(image: PulleyImage) -> Result<Self, String> {
        Ok(PulleyRun {
            image,
            vms: std::cell::RefCell::new(vec![fresh_vm()?]),
        })
    }
}

impl Image for PulleyRun {
    fn code_size(&self) -> usize {
        self.image.code().len()
    }

    fn call(
        &self,
        name: &str,
        args: &[DataValue],
        rets: &[Type],
        host: &mut dyn Host,
    ) -> Result<Exit, String> {
        let popped = self.vms.borrow_mut().pop();
        let mut vm = match popped {
            Some(vm) => vm,
            None => fresh_vm()?,
        };
        // Every host function takes at most three integer operands, in x0-x2 (Pulley's
        // convention), and gives one result in x0.
        let mut host = |callee: &str, vm: &mut Vm| -> Result<(), String> {
            let args = [XReg::x0, XReg::x1, XReg::x2].map(|r| vm[r].get_u64());
            let result = crate::isa::call_host(host, callee, &args)?;
            vm[XReg::x0] = XRegVal::new_u64(result);
            Ok(())
        };
        let exit = self.image.call(&mut vm, name, args, rets, &mut host);
        self.vms.borrow_mut().push(vm);
        exit
    }
}

/// Whether a function with `sig` has parameters or results beyond Pulley's registers, which
/// `pulley-interpreter` cannot pass from the host or back: it is entered through an
/// array-call trampoline ([`crate::isa::array_call_trampoline`]).
pub fn needs_array_call(sig: &crate::ir::Signature) -> bool {
    let stack = |values: &[crate::ir::AbiParam], rets| {
        let tys: Vec<Type> = values.iter().map(|p| p.value_type).collect();
        super::abi::PULLEY_CONV
            .locs(&tys, rets, "values")
            .map_or(true, |locs| locs.contains(&Loc::Stack))
    };
    stack(&sig.params, false) || stack(&sig.returns, true)
}

/// The name the array-call trampoline of function `name` is linked under.
pub fn array_call_name(name: &str) -> String {
    format!("{name}{ARRAY_CALL}")
}

const ARRAY_CALL: &str = "$array-call";

/// A Vm with the stack size the runtime uses.
pub fn fresh_vm() -> Result<Vm, String> {
    Vm::with_stack(8 << 20).map_err(|_| "cannot allocate the Pulley stack".to_string())
}

fn to_val(a: DataValue) -> Val {
    if a.ty == types::F32 {
        Val::FReg(FRegVal::new_f32(f32::from_bits(a.bits as u32)))
    } else if a.ty == types::F64 {
        Val::FReg(FRegVal::new_f64(f64::from_bits(a.bits)))
    } else {
        Val::XReg(XRegVal::new_u64(a.bits))
    }
}

fn from_val(v: Val, ty: Type) -> DataValue {
    match v {
        Val::XReg(x) => DataValue::new(ty, x.get_u64()),
        Val::FReg(f) if ty == types::F32 => DataValue::new(ty, u64::from(f.get_f32().to_bits())),
        Val::FReg(f) => DataValue::new(ty, f.get_f64().to_bits()),
        Val::VReg(_) => DataValue::new(ty, 0),
    }
}
