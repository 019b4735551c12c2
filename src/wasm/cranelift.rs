//! The fourth execution path: our translation, legalized into the exploded CLIF that
//! Cranelift 0.135.8 understands, printed, read back by real `cranelift-reader`, compiled by
//! real `cranelift-codegen` for the host (x86_64), and run in-process by [`crate::native`]
//! against the runtime's memories. It checks the legalizer on real programs.

use super::runtime::{Engine, StoreHost};
use super::translate::{func_name, Translation};
use crate::interpreter::{DataValue, Outcome};
use crate::ir::{Function, TrapCode, Type};
use crate::isa::Exit;
use crate::isa::HOST_FUNCTIONS;
use crate::legalize::{legalize, Settings};
use crate::native::{self, CodeMemory, Fault};
use cranelift_codegen::binemit::Reloc;
use cranelift_codegen::ir::ExternalName;
use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::FinalizedRelocTarget;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

/// Compiles legalized translations with real Cranelift for x86_64 and runs them natively.
pub struct CraneliftEngine {
    settings: Settings,
    isa: OwnedTargetIsa,
    instances: HashMap<usize, Compiled>,
}

struct Compiled {
    code: CodeMemory,
    /// Bytes of the functions (without trampolines).
    size: usize,
    /// Offset of each function's array-call trampoline.
    entries: HashMap<u32, u64>,
    /// Where each function and trampoline starts, for backtraces.
    functions: crate::isa::FunctionMap,
}

/// The shared settings of every real Cranelift this crate compiles with: optimised as
/// Wasmtime does, with `enable_heap_access_spectre_mitigation` as given.
fn flags(spectre: bool) -> Result<settings::Flags, String> {
    let mut b = settings::builder();
    for (k, v) in [
        ("opt_level", "speed"),
        (
            "enable_heap_access_spectre_mitigation",
            if spectre { "true" } else { "false" },
        ),
        // Wasm functions may return more values than there are return registers:
        // Cranelift then returns the rest through a hidden return area.
        ("enable_multi_ret_implicit_sret", "true"),
    ] {
        b.set(k, v)
            .map_err(|e| format!("Cranelift setting {k}={v}: {e}"))?;
    }
    Ok(settings::Flags::new(b))
}

/// `func`, legalized with `settings`, compiled by real Cranelift 0.135.8 for x86_64: the
/// machine code (with the settings `CraneliftEngine` uses).
pub fn compile_x64(func: &Function, spectre: bool) -> Result<Vec<u8>, String> {
    let engine = CraneliftEngine::new(spectre)?;
    let mut f = func.clone();
    legalize(&mut f, &engine.settings);
    Ok(engine.compile(&f.to_string())?.bytes)
}

/// `func`, legalized for aarch64 with `enable_heap_access_spectre_mitigation` as given,
/// compiled by real Cranelift 0.135.8 for aarch64 (on any host: it only compiles): the
/// machine code, the baseline of the aarch64 instruction counts. Cranelift's aarch64
/// defaults stand, as Wasmtime leaves them for a generic `aarch64-linux` target, but for
/// `use_csdb`, on with Spectre mitigation as in our backend.
pub fn compile_aarch64(func: &Function, spectre: bool) -> Result<Vec<u8>, String> {
    let mut isa = cranelift_codegen::isa::lookup_by_name("aarch64")
        .map_err(|e| format!("Cranelift aarch64: {e}"))?;
    // Our aarch64 backend puts a `csdb` after every Spectre guard; so that the comparison
    // is of the same code, Cranelift is asked to as well (its default is not to).
    isa.set("use_csdb", &spectre.to_string())
        .map_err(|e| format!("Cranelift setting use_csdb: {e}"))?;
    let isa = isa
        .finish(flags(spectre)?)
        .map_err(|e| format!("Cranelift aarch64: {e}"))?;
    let ctx = compile_legalized(&*isa, func, &Settings::for_target("aarch64", spectre)?)?;
    Ok(ctx
        .compiled_code()
        .expect("compiled")
        .code_buffer()
        .to_vec())
}

/// `func` legalized with `settings`, printed, read back by `cranelift-reader` and compiled
/// by real Cranelift for `isa`: the context holding the compiled code.
fn compile_legalized(
    isa: &dyn cranelift_codegen::isa::TargetIsa,
    func: &Function,
    settings: &Settings,
) -> Result<cranelift_codegen::Context, String> {
    let mut f = func.clone();
    legalize(&mut f, settings);
    let text = f.to_string();
    let func = cranelift_reader::parse_functions(&text)
        .map_err(|e| format!("cranelift-reader rejected our output: {e}\n{text}"))?
        .remove(0);
    let mut ctx = cranelift_codegen::Context::for_function(func);
    ctx.compile(isa, &mut Default::default())
        .map_err(|e| format!("Cranelift could not compile: {:?}\n{text}", e.inner))?;
    Ok(ctx)
}

impl CraneliftEngine {
    /// An engine for the host, with `enable_heap_access_spectre_mitigation` as given.
    pub fn new(spectre: bool) -> Result<CraneliftEngine, String> {
        if !cfg!(all(target_arch = "x86_64", target_os = "linux")) {
            return Err("the Cranelift engine runs on x86_64 Linux hosts only".into());
        }
        let mut isa = cranelift_codegen::isa::lookup_by_name("x86_64")
            .map_err(|e| format!("Cranelift x86_64: {e}"))?;
        // The host's SSE4.1, as Wasmtime detects it: without it Cranelift calls libm for
        // `ceil`/`floor`/`trunc`/`nearest` (relocations this runner does not resolve), while
        // our x86_64 backend uses `roundss`/`roundsd` as Cranelift does with it.
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("sse4.1") {
            isa.enable("has_sse41")
                .map_err(|e| format!("Cranelift x86_64 has_sse41: {e}"))?;
        }
        let isa = isa
            .finish(flags(spectre)?)
            .map_err(|e| format!("Cranelift x86_64: {e}"))?;
        let settings = Settings::for_target("x86_64", spectre)?;
        Ok(CraneliftEngine {
            settings,
            isa,
            instances: HashMap::new(),
        })
    }

    fn compile(&self, text: &str) -> Result<Unit, String> {
        let func = cranelift_reader::parse_functions(text)
            .map_err(|e| format!("cranelift-reader rejected our output: {e}\n{text}"))?
            .remove(0);
        let names = func.params.user_named_funcs().clone();
        let mut ctx = cranelift_codegen::Context::for_function(func);
        let code = ctx
            .compile(&*self.isa, &mut Default::default())
            .map_err(|e| format!("Cranelift could not compile: {:?}\n{text}", e.inner))?;
        let bytes = code.code_buffer().to_vec();
        let traps = code
            .buffer
            .traps()
            .iter()
            .filter_map(|t| Some((t.offset, TrapCode::from_raw(t.code.as_raw().get())?)))
            .collect();
        let mut relocs = Vec::new();
        for r in code.buffer.relocs() {
            let target = match &r.target {
                FinalizedRelocTarget::ExternalName(ExternalName::User(u)) => {
                    let name = &names[*u];
                    Target::Function {
                        namespace: name.namespace,
                        index: name.index,
                    }
                }
                FinalizedRelocTarget::ExternalName(ExternalName::TestCase(t))
                    if HOST_FUNCTIONS.contains(&t.to_string().as_str()) =>
                {
                    Target::Host(t.to_string())
                }
                other => {
                    return Err(format!(
                        "a relocation this runner does not resolve: {other:?}"
                    ))
                }
            };
            relocs.push(Relocation {
                offset: r.offset,
                kind: r.kind,
                target,
                addend: r.addend,
            });
        }
        Ok(Unit {
            bytes,
            relocs,
            traps,
        })
    }
}

/// One compiled function: machine code, relocations, trap sites.
struct Unit {
    bytes: Vec<u8>,
    relocs: Vec<Relocation>,
    traps: Vec<(u32, TrapCode)>,
}

enum Target {
    Function {
        namespace: u32,
        index: u32,
    },
    /// One of [`HOST_FUNCTIONS`].
    Host(String),
}

struct Relocation {
    offset: u32,
    kind: Reloc,
    target: Target,
    addend: i64,
}

/// The CLIF of an array-call trampoline for `func`: `(vmctx, values)` with the System V
/// convention, arguments read from and results written to 8-byte slots of `values`.
fn trampoline(func: &Function, index: u32) -> String {
    let params: Vec<Type> = func.signature.params[1..]
        .iter()
        .map(|p| p.value_type)
        .collect();
    let returns: Vec<Type> = func
        .signature
        .returns
        .iter()
        .map(|p| p.value_type)
        .collect();
    let mut s = String::new();
    let _ = writeln!(s, "function u1:{index}(i64 vmctx, i64) system_v {{");
    let _ = writeln!(s, "    sig0 = {}", func.signature);
    let _ = writeln!(s, "    fn0 = colocated {} sig0", func_name(index));
    let _ = writeln!(s, "\nblock0(v0: i64, v1: i64):");
    let mut args = vec!["v0".to_string()];
    for (i, ty) in params.iter().enumerate() {
        let _ = writeln!(s, "    v{} = load.{ty} notrap aligned v1+{}", i + 2, 8 * i);
        args.push(format!("v{}", i + 2));
    }
    let first = params.len() + 2;
    let results: Vec<String> = (0..returns.len())
        .map(|j| format!("v{}", first + j))
        .collect();
    if results.is_empty() {
        let _ = writeln!(s, "    call fn0({})", args.join(", "));
    } else {
        let _ = writeln!(
            s,
            "    {} = call fn0({})",
            results.join(", "),
            args.join(", ")
        );
    }
    for (j, r) in results.iter().enumerate() {
        let _ = writeln!(s, "    store notrap aligned {r}, v1+{}", 8 * j);
    }
    let _ = writeln!(s, "    return\n}}");
    s
}

impl Engine for CraneliftEngine {
    fn code_size(&self, instance: usize) -> Option<usize> {
        self.instances.get(&instance).map(|c| c.size)
    }

    fn name(&self) -> String {
        format!(
            "cranelift-x86_64 (legalized, spectre {})",
            if self.settings.spectre { "on" } else { "off" }
        )
    }

    fn load(&mut self, instance: usize, translation: &Translation) -> Result<(), String> {
        let mut code = Vec::new();
        let mut traps = BTreeMap::new();
        let mut starts: HashMap<(u32, u32), u64> = HashMap::new();
        let mut pending = Vec::new();
        let mut units = Vec::new();
        let mut size = 0;
        for (f, &index) in translation.functions.iter().zip(&translation.indices) {
            let mut f = f.clone();
            legalize(&mut f, &self.settings);
            // The runtime's `memory.grow` and imported-function calls are System V
            // functions of the host.
            let host: Vec<_> = f
                .dfg
                .ext_funcs
                .values()
                .filter(|e| HOST_FUNCTIONS.contains(&e.name.as_str()))
                .map(|e| e.signature)
                .collect();
            for sig in host {
                f.dfg.signatures[sig].call_conv = "system_v";
            }
            units.push(((0, index), f.to_string()));
            units.push(((1, index), trampoline(&f, index)));
        }
        for (key, text) in units {
            let Unit {
                bytes,
                relocs,
                traps: unit_traps,
            } = self.compile(&text)?;
            while code.len() % 16 != 0 {
                code.push(0xcc);
            }
            let start = code.len() as u64;
            starts.insert(key, start);
            if key.0 == 0 {
                size += bytes.len();
            }
            code.extend_from_slice(&bytes);
            for (off, c) in unit_traps {
                traps.insert(start + u64::from(off), c);
            }
            for r in relocs {
                pending.push((start, r));
            }
        }
        let compiled = CodeMemory::new(&code, traps, |bytes, base| {
            for (start, r) in &pending {
                let site = (start + u64::from(r.offset)) as usize;
                let target = match &r.target {
                    &Target::Function { namespace, index } => {
                        let s = starts.get(&(namespace, index)).ok_or_else(|| {
                            format!("call to u{namespace}:{index}, which is not compiled")
                        })?;
                        base + s
                    }
                    Target::Host(name) => crate::native::host_function(name)
                        .ok_or_else(|| format!("no host function {name}"))?,
                };
                let value = target.wrapping_add(r.addend as u64);
                match r.kind {
                    Reloc::X86CallPCRel4 | Reloc::X86CallPLTRel4 | Reloc::X86PCRel4 => {
                        let rel = value.wrapping_sub(base + site as u64) as i64;
                        let rel = i32::try_from(rel)
                            .map_err(|_| "a call displacement does not fit 32 bits".to_string())?;
                        bytes[site..site + 4].copy_from_slice(&rel.to_le_bytes());
                    }
                    Reloc::Abs8 => bytes[site..site + 8].copy_from_slice(&value.to_le_bytes()),
                    k => return Err(format!("unsupported relocation kind {k:?}")),
                }
            }
            Ok(())
        })?;
        let entries = starts
            .iter()
            .filter(|((ns, _), _)| *ns == 1)
            .map(|(&(_, index), &start)| (index, start))
            .collect();
        // Cranelift 0.135.8 gives every x86_64 function a frame (`push rbp`).
        let functions = crate::isa::FunctionMap::new(
            starts
                .iter()
                .map(|(&(ns, index), &start)| (start, (ns == 0).then(|| func_name(index)), true)),
        );
        self.instances.insert(
            instance,
            Compiled {
                code: compiled,
                size,
                entries,
                functions,
            },
        );
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
        let compiled = super::runtime::loaded(&self.instances, instance)?;
        let entry = *compiled
            .entries
            .get(&index)
            .ok_or_else(|| format!("function {index} was not compiled"))?;
        let returns = translation.returns(index)?;
        let mut values: Vec<u64> = args[1..].iter().map(|a| a.bits).collect();
        values.resize(values.len().max(returns.len()).max(1), 0);
        let r = crate::native::with_host(host, || {
            native::call(
                &compiled.code,
                compiled.code.addr(entry),
                args[0].bits,
                &mut values,
            )
        });
        match r {
            Ok(()) => Ok(Outcome::Returned(
                returns
                    .iter()
                    .zip(&values)
                    .map(|(&ty, &bits)| DataValue::new(ty, bits & ty.mask()))
                    .collect(),
            )),
            Err(Fault::Trap { code, pc, stack }) => {
                let base = compiled.code.addr(0);
                let frames = compiled.functions.native_backtrace(base, pc, &stack);
                let exit = Exit::Trapped { code, frames };
                Ok(exit.into_outcome("native code", &func_name(index)))
            }
            Err(Fault::Crash { signal, pc }) => Err(format!(
                "the generated code of {} crashed: signal {signal} at pc {pc:#x}, not a trap site",
                func_name(index)
            )),
        }
    }
}

/// Real Cranelift's engine for `target` (`x86_64` native, `pulley64`), the (c) column of
/// the benchmark.
pub fn engine_for(target: &str, spectre: bool) -> Result<Box<dyn Engine>, String> {
    match target {
        "x86_64" => Ok(Box::new(CraneliftEngine::new(spectre)?)),
        "pulley64" => Ok(Box::new(CraneliftPulleyEngine::new(spectre)?)),
        t => Err(format!("no real Cranelift engine for target `{t}` here")),
    }
}

/// Real Cranelift 0.135.8 compiling the legalized form for `pulley64`, run by the same
/// `pulley-interpreter` as our backend: the baseline of the Pulley benchmark. Functions that
/// call others are not supported (the benchmark kernels call nothing).
pub struct CraneliftPulleyEngine {
    settings: Settings,
    isa: OwnedTargetIsa,
    images: HashMap<usize, crate::isa::pulley::run::PulleyRun>,
}

impl CraneliftPulleyEngine {
    /// An engine with `enable_heap_access_spectre_mitigation` as given.
    pub fn new(spectre: bool) -> Result<Self, String> {
        let isa = cranelift_codegen::isa::lookup_by_name("pulley64")
            .map_err(|e| format!("Cranelift pulley64: {e}"))?
            .finish(flags(spectre)?)
            .map_err(|e| format!("Cranelift pulley64: {e}"))?;
        let settings = Settings::for_target("pulley64", spectre)?;
        Ok(CraneliftPulleyEngine {
            settings,
            isa,
            images: HashMap::new(),
        })
    }
}

impl Engine for CraneliftPulleyEngine {
    fn name(&self) -> String {
        format!(
            "cranelift pulley64 (spectre {})",
            if self.settings.spectre { "on" } else { "off" }
        )
    }

    fn code_size(&self, instance: usize) -> Option<usize> {
        self.images.get(&instance).map(crate::isa::Image::code_size)
    }

    fn load(&mut self, instance: usize, translation: &Translation) -> Result<(), String> {
        let mut compiled = Vec::new();
        for f in &translation.functions {
            let ctx = compile_legalized(&*self.isa, f, &self.settings)?;
            let code = ctx.compiled_code().expect("compiled");
            if !code.buffer.relocs().is_empty() {
                return Err(format!(
                    "{}: calls are not supported on this engine",
                    f.name
                ));
            }
            let mut unit = crate::machinst::CompiledCode {
                code: code.code_buffer().to_vec(),
                ..Default::default()
            };
            for t in code.buffer.traps() {
                if let Some(c) = TrapCode::from_raw(t.code.as_raw().get()) {
                    unit.traps
                        .insert(t.offset, crate::machinst::TrapSite { code: c });
                }
            }
            compiled.push((f.name.clone(), unit));
        }
        let image = crate::isa::pulley::run::PulleyImage::link(compiled)?;
        self.images
            .insert(instance, crate::isa::pulley::run::PulleyRun::new(image)?);
        Ok(())
    }

    fn call(
        &self,
        instance: usize,
        translation: &Translation,
        index: u32,
        args: &[DataValue],
        _host: &mut StoreHost,
    ) -> Result<Outcome, String> {
        let returns = translation.returns(index)?;
        let image = super::runtime::loaded(&self.images, instance)?;
        let name = func_name(index);
        // The benchmark kernels call nothing (calls are refused when loading).
        let exit = crate::isa::Image::call(image, &name, args, &returns, &mut crate::isa::NoHost)?;
        Ok(exit.into_outcome("Cranelift pulley64 code", &name))
    }
}
