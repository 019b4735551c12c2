//! The execution path of our own backends: translated functions compiled by any
//! [`crate::isa::Backend`] (fused bounds-checked instructions, or their legalized form for
//! comparison), linked into one image per instance, and run on the runtime's real memories:
//! pulley64 in `pulley-interpreter`'s `Vm`, x86_64 natively in-process, where a fault at an
//! access's trap site is that access's trap and a fault anywhere else a reported crash.

use super::runtime::{Engine, StoreHost};
use super::translate::{func_name, Translation};
use crate::interpreter::{DataValue, Outcome};
use crate::isa::{Backend, Image};
use crate::legalize::Settings;
use std::collections::HashMap;

/// Runs Wasm on one of our backends.
pub struct BackendEngine {
    backend: Backend,
    legalize: Option<Settings>,
    images: HashMap<usize, Box<dyn Image>>,
}

impl BackendEngine {
    /// Compiles the fused bounds-checked instructions with `backend` (whose Spectre setting
    /// selects the explicit checks' form).
    pub fn new(backend: Backend) -> Result<Self, String> {
        if !backend.runs_here() {
            return Err(format!("{} code cannot run on this host", backend.name()));
        }
        Ok(BackendEngine {
            backend,
            legalize: None,
            images: HashMap::new(),
        })
    }

    /// Compiles the legalized (exploded) form for the backend's target instead, as a
    /// baseline for the benchmark.
    pub fn legalized(backend: Backend) -> Result<Self, String> {
        let settings = Settings::for_target(backend.name(), backend.spectre())?;
        Ok(BackendEngine {
            legalize: Some(settings),
            ..BackendEngine::new(backend)?
        })
    }
}

impl Engine for BackendEngine {
    fn name(&self) -> String {
        let spectre = if self.backend.spectre() { "on" } else { "off" };
        let target = self.backend.name();
        match self.legalize {
            None => format!("{target} (spectre {spectre})"),
            Some(_) => format!("{target} legalized (spectre {spectre})"),
        }
    }

    fn code_size(&self, instance: usize) -> Option<usize> {
        self.images.get(&instance).map(|i| i.code_size())
    }

    fn load(&mut self, instance: usize, translation: &Translation) -> Result<(), String> {
        let funcs = super::runtime::prepared_functions(translation, self.legalize.as_ref())?;
        let refs: Vec<_> = funcs.iter().collect();
        let image = self.backend.link(&refs)?;
        self.images.insert(instance, image);
        Ok(())
    }

    fn call(
        &self,
        instance: usize,
        translation: &Translation,
        index: u32,
        args: &[DataValue],
        host: &mut StoreHost,
    ) -> Result<Outcome, String> {
        let returns = translation.returns(index)?;
        let name = func_name(index);
        let image = super::runtime::loaded(&self.images, instance)?;
        let exit = image.call(&name, args, &returns, host)?;
        let target = self.backend.name();
        Ok(exit.into_outcome(&format!("{target} code"), &name))
    }
}
