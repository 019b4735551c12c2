//! The x86_64 execution path: translated functions compiled by our x86_64 backend (fused
//! bounds-checked instructions, or their legalized form for comparison) and run natively,
//! in-process, on the runtime's real memories. A fault at an access's trap site is that
//! access's trap; a fault anywhere else is reported as a crash of the generated code.

use super::native_host::{grow_host_addr, with_memories};
use super::runtime::{Engine, Memories};
use super::translate::{func_name, Translation, MEMORY_GROW};
use crate::interpreter::{DataValue, Outcome};
use crate::isa::x64::run::X64Image;
use crate::isa::x64::X64Backend;
use crate::legalize::Settings;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Runs Wasm on our x86_64 backend.
pub struct X64Engine {
    backend: X64Backend,
    legalize: Option<Settings>,
    images: HashMap<usize, X64Image>,
}

impl X64Engine {
    /// Compiles the fused bounds-checked instructions; `spectre` selects the conditional-move
    /// form of the explicit checks.
    pub fn new(spectre: bool) -> X64Engine {
        X64Engine {
            backend: X64Backend { spectre },
            legalize: None,
            images: HashMap::new(),
        }
    }

    /// Compiles the legalized (exploded) form instead.
    pub fn legalized(settings: Settings) -> X64Engine {
        X64Engine {
            legalize: Some(settings),
            ..X64Engine::new(settings.spectre)
        }
    }
}

impl Engine for X64Engine {
    fn name(&self) -> String {
        let spectre = if self.backend.spectre { "on" } else { "off" };
        match self.legalize {
            None => format!("x86_64 (spectre {spectre})"),
            Some(_) => format!("x86_64 legalized (spectre {spectre})"),
        }
    }

    fn code_size(&self, instance: usize) -> Option<usize> {
        self.images.get(&instance).map(X64Image::code_size)
    }

    fn load(&mut self, instance: usize, translation: &Translation) -> Result<(), String> {
        let funcs = super::runtime::prepared_functions(translation, self.legalize.as_ref())?;
        let refs: Vec<_> = funcs.iter().collect();
        let host = |name: &str| (name == MEMORY_GROW).then(grow_host_addr);
        let image =
            X64Image::build(&refs, &self.backend, &host).map_err(|e| format!("x86_64: {e}"))?;
        self.images.insert(instance, image);
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
        let name = func_name(index);
        let exit = with_memories(memories, || image.call(&name, args, &returns))?;
        Ok(exit.into_outcome(|| format!("x86_64 code of {name}")))
    }
}
