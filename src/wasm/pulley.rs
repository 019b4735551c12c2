//! The pulley64 execution path: translated functions compiled by our Pulley backend (fused
//! bounds-checked instructions, or their legalized form for comparison) and run in
//! `pulley-interpreter`'s `Vm` on the runtime's real memories.

use super::runtime::{Engine, Memories};
use super::translate::{func_name, Translation, MEMORY_GROW};
use crate::interpreter::{DataValue, Outcome};
use crate::isa::pulley::run::{fresh_vm, PulleyImage};
use crate::isa::pulley::{compile, PulleyBackend};
use crate::legalize::Settings;
use pulley_interpreter::interp::{Vm, XRegVal};
use pulley_interpreter::XReg;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Runs Wasm on our pulley64 backend.
pub struct PulleyEngine {
    backend: PulleyBackend,
    legalize: Option<Settings>,
    images: HashMap<usize, PulleyImage>,
    vm: Vm,
}

impl PulleyEngine {
    /// Compiles the fused bounds-checked instructions; `spectre` selects the explicit form
    /// with a null-address select instead of a branch.
    pub fn new(spectre: bool) -> Result<Self, String> {
        Ok(PulleyEngine {
            backend: PulleyBackend { spectre },
            legalize: None,
            images: HashMap::new(),
            vm: fresh_vm()?,
        })
    }

    /// Compiles the legalized (exploded) form instead, as a baseline for the benchmark.
    pub fn legalized(settings: Settings) -> Result<Self, String> {
        Ok(PulleyEngine {
            legalize: Some(settings),
            ..PulleyEngine::new(settings.spectre)?
        })
    }
}

impl Engine for PulleyEngine {
    fn name(&self) -> String {
        let spectre = if self.backend.spectre { "on" } else { "off" };
        match self.legalize {
            None => format!("pulley64 (spectre {spectre})"),
            Some(_) => format!("pulley64 legalized (spectre {spectre})"),
        }
    }

    fn code_size(&self, instance: usize) -> Option<usize> {
        self.images.get(&instance).map(|i| i.code().len())
    }

    fn load(&mut self, instance: usize, translation: &Translation) -> Result<(), String> {
        let mut compiled = Vec::new();
        for f in super::runtime::prepared_functions(translation, self.legalize.as_ref())? {
            let code = compile(&f, &self.backend)
                .map_err(|e| format!("pulley64 cannot compile {}: {e}", f.name))?;
            compiled.push((f.name.clone(), code));
        }
        self.images.insert(instance, PulleyImage::link(compiled)?);
        Ok(())
    }

    fn call(
        &mut self,
        instance: usize,
        translation: &Translation,
        index: u32,
        args: &[DataValue],
        memories: &Arc<Mutex<Memories>>,
    ) -> Result<Outcome, String> {
        let image = super::runtime::loaded(&self.images, instance)?;
        let returns = translation.returns(index)?;
        let mut host = |name: &str, vm: &mut Vm| -> Result<(), String> {
            if name != MEMORY_GROW {
                return Err(format!("no host function {name}"));
            }
            // (vmctx, memory index, delta in pages) in x0-x2, the old size or -1 in x0.
            let (vmctx, mem, delta) = (
                vm[XReg::x0].get_u64(),
                vm[XReg::x1].get_u32(),
                vm[XReg::x2].get_u64(),
            );
            let old = memories
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .grow(vmctx, mem, delta)?;
            vm[XReg::x0] = XRegVal::new_i64(old);
            Ok(())
        };
        let name = func_name(index);
        let exit = image.call(&mut self.vm, &name, args, &returns, &mut host)?;
        Ok(exit.into_outcome(|| format!("pulley64 code of {name}")))
    }
}
