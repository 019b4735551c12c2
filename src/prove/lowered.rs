//! Every lowering of the instruction is sound: the configurations of [`super::legalized`]
//! (the memories, offsets, index types, constant operands, access kinds and byte orders that
//! make the planner choose every form) compiled by each backend, x86_64 and Pulley, both
//! Spectre settings, and the machine instructions the lowering emits run symbolically on the
//! ISA's own semantics (`src/isa/*/smt.rs`). z3 shows the same claim as for the legalized
//! CLIF (`Setup::claim`): out of bounds, the code traps (a check; Pulley's `g32`; an access
//! of a null base or into the null page or the memory's faulting range, where the target
//! promises that fault), and the Spectre form's address is null plus at most the offset;
//! in bounds, it accesses `meta/`'s address with the instruction's width and value.

use super::legalized::{check_configs, setup, value_configs, Config, Configs, NoObligation};
use super::symbolic::{low, run, Execution, Machine, Semantics};
use crate::machinst::lower::{optimize_and_lower, Backend};
use crate::machinst::MachInst;
use clif_bounds_verifier::smt::Obligation;

/// The lowerings' obligations.
pub struct Lowered {
    /// One per configuration and backend.
    pub obligations: Vec<Obligation>,
    /// The configurations no obligation could be built for, and why: each is a failure.
    pub failed: Vec<String>,
    /// The configuration of each obligation, to reproduce a refutation.
    pub configs: Configs,
}

/// Runs `c` lowered by `backend` on the ISA's semantics; `param` makes a parameter's
/// register from its value, `bits` wide, as the convention passes it.
fn lowering<B: Backend>(
    c: &Config,
    backend: &B,
    param: fn(&mut Machine, &str, u32) -> String,
) -> Result<Option<Obligation>, String>
where
    B::MInst: Semantics + MachInst,
{
    let s = match setup(c) {
        Ok(s) => s,
        Err(NoObligation::Invalid(_)) => return Ok(None),
        Err(NoObligation::Failed(e)) => return Err(e),
    };
    let vcode = optimize_and_lower(&s.func, backend).map_err(|e| e.message)?;
    let terms = s.params();
    let widths: Vec<(u32, bool)> = s
        .func
        .signature
        .params
        .iter()
        .map(|p| (p.value_type.bits(), p.value_type.is_float()))
        .collect();
    let m = run(&vcode, |m| {
        terms
            .iter()
            .zip(&widths)
            .map(|(t, &(bits, float))| match float {
                true => t.clone(),
                false => param(m, t, bits),
            })
            .collect()
    })?;
    let mut e: Execution = m.e;
    // A load's value, unless the code always traps and returns nothing.
    if let (false, Some(r)) = (c.store, m.returned.first()) {
        e.result = Some(match c.ty.is_float() {
            true => r.clone(),
            false => low(r, 64, c.ty.bits()),
        });
    }
    Ok(Some(s.obligation(
        format!(
            "lowered ({}), {}: {}",
            c.target.name,
            form(&s, c, backend.spectre()),
            c.describe()
        ),
        &e,
    )))
}

/// The planner's form for `s`'s access on `c`'s target as the backends render it, by name
/// (`Explicit BoundMinusEnd + null select`, `G32`, ...).
fn form(s: &super::legalized::Setup, c: &Config, spectre: bool) -> String {
    use crate::plan::{plan, AccessFacts, Form, Renderer};
    let renderer = Renderer {
        spectre,
        runs: true,
        checked_modes: true,
        legalized: false,
    };
    let Some(facts) = AccessFacts::of(&s.func, c.target, s.inst, &|_| false) else {
        return "no plan".into();
    };
    let variant = |d: String| d.split([' ', '{']).next().unwrap_or("").to_string();
    match plan(&facts, c.target, renderer, None).form() {
        Form::Explicit { check } => format!(
            "Explicit {}{}",
            variant(format!("{:?}", check.compare)),
            if check.null_select {
                " + null select"
            } else {
                ""
            }
        ),
        f => variant(format!("{f:?}")),
    }
}

/// [`lowering`] of `c` by the backend of its target (x86_64 or Pulley).
fn lower(c: &Config) -> Result<Option<Obligation>, String> {
    match crate::isa::Backend::for_target(c.target.name, c.spectre)? {
        crate::isa::Backend::X64(b) => lowering(c, &b, crate::isa::x64::smt::param),
        crate::isa::Backend::Pulley(b) => lowering(c, &b, crate::isa::pulley::smt::param),
        crate::isa::Backend::Aarch64(_) => Err("aarch64 lowerings have no SMT model yet".into()),
    }
}

/// Every obligation of the lowerings. Value configurations the IR verifier rejects are not
/// instructions and are left out.
pub fn obligations() -> Lowered {
    let mut out = Lowered {
        obligations: Vec::new(),
        failed: Vec::new(),
        configs: Configs::default(),
    };
    let configs = check_configs().into_iter().chain(value_configs());
    let backends = crate::isa::BACKEND_TARGETS;
    for c in configs.filter(|c| backends.contains(&c.target.name)) {
        match lower(&c) {
            Ok(Some(o)) => {
                out.configs.0.push((o.name.clone(), c.clone()));
                out.obligations.push(o);
            }
            Ok(None) => {}
            Err(e) => out.failed.push(format!(
                "lowered ({}): {}: {e}",
                c.target.name,
                c.describe()
            )),
        }
    }
    out
}

/// A lowering with a known bug injected (`pcc-mutants`): its obligation, which z3 must
/// refute, and the configuration, to run a counterexample on.
#[cfg(feature = "pcc-mutants")]
pub struct Broken {
    /// The obligation.
    pub obligation: Obligation,
    mutant: crate::mutants::Mutant,
    config: Config,
}

/// The size of the host memory a counterexample runs on; the broken obligations keep the
/// bound within its first half.
#[cfg(feature = "pcc-mutants")]
const HOST_MEMORY: u64 = 0x2_0000;

/// The lowering mutants of `clif-bounds mutants` that a single access shows, each on the
/// backends and forms it breaks, built with the mutant injected.
#[cfg(feature = "pcc-mutants")]
pub fn broken() -> Result<Vec<Broken>, String> {
    use super::legalized::load_config;
    use crate::mutants::{set, Mutant::*};
    let sized = "index i32, min 0x10000, max 0x1_0000_0000, guard 0";
    let empty = "index i32, min 0, max 0x1_0000_0000, guard 0";
    // (Pulley's checks of a memory with a minimum size are `g32` modes, which the explicit
    // check's mutants do not touch: those run on the memory without one.)
    let cases = [
        (KOffByOne, load_config("x86_64", false, sized)),
        (KOffByOne, load_config("pulley64", false, empty)),
        (DroppedCheck, load_config("x86_64", false, empty)),
        (DroppedCheck, load_config("pulley64", false, empty)),
        (WiderAccess, load_config("x86_64", false, sized)),
        (SpectreSelectDropped, load_config("x86_64", true, sized)),
        (SpectreSelectDropped, load_config("pulley64", true, empty)),
        (SpectreWrongOperand, load_config("x86_64", true, sized)),
        (SpectreWrongOperand, load_config("pulley64", true, empty)),
        (G32WithoutPremise, load_config("pulley64", false, empty)),
        (MissingZeroExtension, load_config("pulley64", false, empty)),
    ];
    let mut out = Vec::new();
    for (mutant, config) in cases {
        set(Some(mutant));
        let built = lower(&config);
        set(None);
        let mut o = built?.ok_or("a broken configuration the verifier rejects")?;
        o.name = format!("broken lowering ({mutant:?}): {}", o.name);
        // A counterexample a run can show: a bound within the host memory's first half, an
        // index that ends within it.
        o.premises
            .push(format!("(bvule bound {})", super::lit64(HOST_MEMORY / 2)));
        o.premises.push(format!(
            "(bvule index {})",
            super::lit64(HOST_MEMORY / 2 + 0x800)
        ));
        if mutant == WiderAccess {
            // A wider access shows only where its extra bytes are not mapped: at the end of
            // a host memory of exactly the bound's size.
            o.premises
                .push(format!("(= bound {})", super::lit64(HOST_MEMORY / 2)));
            o.premises
                .push("(= (bvadd index offset access_size) bound)".to_string());
        }
        out.push(Broken {
            obligation: o,
            mutant,
            config,
        });
    }
    Ok(out)
}

#[cfg(feature = "pcc-mutants")]
impl Broken {
    /// Runs a counterexample: `; run: %f(&heap0, bound, index)` expecting what the
    /// interpreter does with the instruction, as a `test run` filetest on the backend with
    /// the mutant injected; `Some` is the filetest's report of the difference.
    pub fn disagreement(&self, model: &[(String, u128)]) -> Option<String> {
        let bound = super::model_get(model, "bound").unwrap_or(0) as u64;
        let c = &self.config;
        if !crate::isa::Backend::runnable(c.spectre)
            .iter()
            .any(|b| b.name() == c.target.name)
        {
            // Said, not hidden: the refutation is z3's alone on this host.
            return Some(format!(
                "not run: {} code does not run on this host; z3's refutation stands alone",
                c.target.name
            ));
        }
        let size = match self.mutant {
            // A wider access shows only where its extra bytes are not mapped.
            crate::mutants::Mutant::WiderAccess => bound,
            _ => HOST_MEMORY,
        };
        // A counterexample that cannot be made into a run is a failure of this check.
        let super::legalized::RunFile { text, want } = c.run_file(model, size).ok()?;
        crate::mutants::set(Some(self.mutant));
        // A broken `g32` makes the real interpreter subtract past zero, which panics in a
        // debug build of `pulley-interpreter`: that too is the disagreement, not a crash.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let target = c.target.name;
        let r = std::panic::catch_unwind(|| {
            crate::filetest::run_text_on("counterexample", &text, target)
        })
        .unwrap_or_else(|p| {
            let why = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("the code panicked the host: {why}"))
        });
        std::panic::set_hook(hook);
        crate::mutants::set(None);
        match r {
            Err(e) => Some(format!(
                "the interpreter {want} there; the broken code, run: {}",
                e.lines().collect::<Vec<_>>().join(" / ")
            )),
            // The bug needs register bits no caller through this runner sets (the upper half
            // of an i32 argument): z3 shows it, a run cannot.
            Ok(()) => model
                .iter()
                .filter(|(v, x)| v.starts_with("unknown") && *x != 0)
                .map(|(v, x)| format!("{v}={x:#x}"))
                .reduce(|a, b| format!("{a}, {b}"))
                .map(|bits| {
                    format!(
                        "the run agrees: the counterexample needs register bits that no instruction defines and that this runner's callers leave zero ({bits}); z3's refutation stands alone"
                    )
                }),
        }
    }
}
