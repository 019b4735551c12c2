//! Placing compiled x86-64 functions in executable memory and calling them in-process, with
//! faults at trap sites reported as traps (through [`crate::native`]).
//!
//! Every function gets an array-call trampoline, itself CLIF compiled by this backend: it
//! loads the arguments from an array of 8-byte slots, calls the function and stores its
//! results back, so [`crate::native::call`] can enter any signature. Calls to names that are
//! not among the functions go to host stubs (`movabs r11, host; jmp r11`): the host may be
//! further than a 32-bit displacement reaches.

use super::emit::Regs;
use super::{compile, X64Backend};
use crate::interpreter::DataValue;
use crate::ir::{Function, Type};
use crate::isa::{array_call_slots as slots, array_call_trampoline as trampoline_text};
use crate::isa::{Exit, Host, Image};
use crate::machinst::CompiledCode;
use crate::native::{self, CodeMemory, Fault};
use cranelift_assembler_x64::inst as asm;
use std::collections::{BTreeMap, HashMap};

/// Functions placed together with their trampolines and host stubs.
pub struct X64Image {
    code: CodeMemory,
    /// Bytes of the functions themselves (not trampolines and stubs).
    size: usize,
    /// Offsets of the functions, by name.
    entries: HashMap<String, u64>,
    /// Offsets of the trampolines, by function name.
    trampolines: HashMap<String, u64>,
    /// The value slots each trampoline reads and writes, by function name.
    slots: HashMap<String, usize>,
    functions: crate::isa::FunctionMap,
}

/// The code uses `lzcnt`, `tzcnt` (BMI1), `popcnt` and SSE4.1's `roundss`/`roundsd`
/// unconditionally: running it on a host without them would be a crash, not a trap.
fn host_has_features() -> Result<(), String> {
    #[cfg(target_arch = "x86_64")]
    {
        let missing: Vec<&str> = [
            ("lzcnt", std::arch::is_x86_feature_detected!("lzcnt")),
            ("bmi1", std::arch::is_x86_feature_detected!("bmi1")),
            ("popcnt", std::arch::is_x86_feature_detected!("popcnt")),
            ("sse4.1", std::arch::is_x86_feature_detected!("sse4.1")),
        ]
        .into_iter()
        .filter(|(_, has)| !has)
        .map(|(name, _)| name)
        .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "this CPU lacks {}, which the x86_64 backend's code uses",
                missing.join(", ")
            ))
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    Err("x86_64 code runs on an x86_64 host only".to_string())
}

impl X64Image {
    /// Compiles `funcs` with `backend` and places them; a called name that is not among them
    /// is a host function ([`native::host_function`]).
    pub fn build(funcs: &[&Function], backend: &X64Backend) -> Result<X64Image, String> {
        host_has_features()?;
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
        let mut image = Self::link(units, &native::host_function)?;
        image.slots = value_slots;
        Ok(image)
    }

    fn link(
        units: Vec<(String, bool, CompiledCode)>,
        host: &dyn Fn(&str) -> Option<u64>,
    ) -> Result<X64Image, String> {
        let mut code: Vec<u8> = Vec::new();
        let mut traps = BTreeMap::new();
        let mut entries = HashMap::new();
        let mut trampolines = HashMap::new();
        let mut calls = Vec::new();
        let mut size = 0;
        let mut pieces = Vec::new();
        for (name, is_trampoline, unit) in units {
            while !code.len().is_multiple_of(16) {
                code.push(0xcc);
            }
            let start = code.len() as u64;
            let function = (!is_trampoline).then(|| name.clone());
            pieces.push((start, function, unit.frame.is_some()));
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
        let mut stubs: HashMap<String, u64> = HashMap::new();
        for (_, callee) in &calls {
            if entries.contains_key(callee) || stubs.contains_key(callee) {
                continue;
            }
            let addr = host(callee).ok_or_else(|| {
                format!("a call to {callee}, which is neither compiled here nor a host function")
            })?;
            while !code.len().is_multiple_of(16) {
                code.push(0xcc);
            }
            stubs.insert(callee.clone(), code.len() as u64);
            pieces.push((code.len() as u64, None, false));
            let r11 = super::inst::regs::R11 as u8;
            asm::movabsq_oi::<Regs>::new(r11, addr).encode(&mut code);
            asm::jmpq_m::<Regs>::new(cranelift_assembler_x64::GprMem::Gpr(r11)).encode(&mut code);
        }
        for (at, callee) in &calls {
            let target = entries.get(callee).or_else(|| stubs.get(callee)).copied();
            let target = target.expect("every callee was placed above");
            // `call rel32`: one opcode byte, then the offset from the end of the call.
            let field = *at as usize + 1;
            let rel = target as i64 - (field as i64 + 4);
            code[field..field + 4].copy_from_slice(&(rel as i32).to_le_bytes());
        }
        let code = CodeMemory::new(&code, traps, |_, _| Ok(()))?;
        Ok(X64Image {
            code,
            size,
            entries,
            trampolines,
            slots: HashMap::new(),
            functions: crate::isa::FunctionMap::new(pieces),
        })
    }

    /// Bytes of machine code of the functions (without trampolines and stubs).
    pub fn code_size(&self) -> usize {
        self.size
    }

    /// The offset of function `name` in the image.
    pub fn entry(&self, name: &str) -> Option<u64> {
        self.entries.get(name).copied()
    }

    /// Calls function `name` with `args`; a fault at a trap site is `Exit::Trapped`, any
    /// other fault in the generated code an error naming the signal and pc.
    fn call_native(&self, name: &str, args: &[DataValue], rets: &[Type]) -> Result<Exit, String> {
        let tramp = *self
            .trampolines
            .get(name)
            .ok_or_else(|| format!("no function {name} in the image"))?;
        let mut values: Vec<u64> = args.iter().map(|a| a.bits).collect();
        // At least the slots the trampoline reads and writes, whatever the caller passed.
        let slots = self.slots.get(name).copied().unwrap_or(1);
        values.resize(values.len().max(rets.len()).max(slots), 0);
        match native::call(&self.code, self.code.addr(tramp), 0, &mut values) {
            Ok(()) => Ok(Exit::Returned(
                rets.iter()
                    .zip(&values)
                    .map(|(&ty, &bits)| DataValue::new(ty, bits & ty.mask()))
                    .collect(),
            )),
            Err(Fault::Trap { code, pc, stack }) => {
                let frames = self
                    .functions
                    .native_backtrace(self.code.addr(0), pc, &stack);
                Ok(Exit::Trapped { code, frames })
            }
            Err(Fault::Crash { signal, pc }) => Err(format!(
                "the x86_64 code of {name} crashed: signal {signal} at pc {pc:#x} (offset {:#x}), not a trap site",
                pc.wrapping_sub(self.code.addr(0))
            )),
        }
    }
}

impl Image for X64Image {
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
        native::with_host(host, || self.call_native(name, args, rets))
    }
}
