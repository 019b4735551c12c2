//! The SMT proof machinery (feature `smt`): an [`Obligation`] is a claim over bit-vector
//! variables under premises, all SMT-LIB terms; [`prove`] asks z3 whether the premises and
//! the claim's negation can hold together. Unsatisfiable means the claim holds for every
//! value of the variables; satisfiable gives a counterexample.
//!
//! Obligations are text on purpose: the instruction's semantics is `meta/`'s definition
//! rendered to SMT-LIB, so that the prover asserts exactly what the interpreter computes,
//! and an obligation can be printed, read and pasted into another solver as it is. Only
//! Z3's bit-vector and boolean theories are used (Debian's Z3 is 4.8.12).

use std::fmt;
use std::time::{Duration, Instant};

/// A claim to prove for every value of its variables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Obligation {
    /// What is proven, one line.
    pub name: String,
    /// The variables and their widths in bits.
    pub vars: Vec<(String, u32)>,
    /// What may be assumed (SMT-LIB boolean terms over the variables).
    pub premises: Vec<String>,
    /// What must then hold (an SMT-LIB boolean term).
    pub claim: String,
    /// Intermediate claims, each proven under the premises and the steps before it, then
    /// assumed: a chain of small facts z3 decides at once where the claim alone takes it
    /// seconds of bit-blasting (transitivity through 128-bit sums is hard for a SAT solver).
    /// A step that does not hold is not a verdict: the claim is then decided without steps,
    /// so a refutation is always a counterexample to the claim itself.
    pub steps: Vec<String>,
}

/// A counterexample: a value for each variable.
pub type Model = Vec<(String, u128)>;

/// What z3 answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The claim holds for every value of the variables that meets the premises.
    Proven,
    /// It does not: these values meet the premises and refute the claim.
    Refuted(Model),
    /// z3 could not decide, or could not read the obligation.
    Unknown(String),
}

impl Obligation {
    /// The SMT-LIB script of the claim without steps: declarations, premises, and the
    /// negated claim.
    pub fn script(&self) -> String {
        self.script_of(&[], &self.claim)
    }

    /// The script of `goal`, assuming the premises and `assumed`.
    fn script_of(&self, assumed: &[String], goal: &str) -> String {
        let mut s = String::new();
        for (v, w) in &self.vars {
            s.push_str(&format!("(declare-const {v} (_ BitVec {w}))\n"));
        }
        for p in self.premises.iter().chain(assumed) {
            s.push_str(&format!("(assert {p})\n"));
        }
        s.push_str(&format!("(assert (not {goal}))\n"));
        s
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Verdict::Proven => write!(f, "proven"),
            Verdict::Refuted(m) => {
                write!(f, "REFUTED:")?;
                for (v, x) in m {
                    write!(f, " {v}={x:#x}")?;
                }
                Ok(())
            }
            Verdict::Unknown(why) => write!(f, "UNKNOWN: {why}"),
        }
    }
}

/// Decides `o`, and how long it took.
pub fn prove(o: &Obligation) -> (Verdict, Duration) {
    let start = Instant::now();
    let mut verdict = Verdict::Proven;
    for (i, step) in o.steps.iter().chain([&o.claim]).enumerate() {
        let script = o.script_of(&o.steps[..i], step);
        verdict = decide(o, &script, o.premises.len() + i + 1);
        if verdict != Verdict::Proven {
            break;
        }
    }
    if verdict != Verdict::Proven && !o.steps.is_empty() {
        verdict = decide(o, &o.script(), o.premises.len() + 1);
    }
    (verdict, start.elapsed())
}

/// Decides one script of `o`'s, which asserts `expected` terms, in a fresh z3 context (one
/// context shared by all obligations made the whole run 1.6 times slower, measured: z3
/// carries state from one check to the next).
fn decide(o: &Obligation, script: &str, expected: usize) -> Verdict {
    let mut cfg = z3::Config::new();
    // An obligation z3 cannot decide in time is `Unknown`, not a hang.
    cfg.set_timeout_msec(TIMEOUT_MS);
    let ctx = &z3::Context::new(&cfg);
    // Quantifier-free bit-vectors: the logic every obligation is in, and the solver Z3
    // tunes for it (several times faster here than the default one).
    let solver = z3::Solver::new_for_logic(ctx, "QF_BV").unwrap_or_else(|| z3::Solver::new(ctx));
    solver.from_string(script);
    // z3 reports no parse error here: a script it could not read asserts less than it says,
    // and would come back satisfiable with an arbitrary model.
    if solver.get_assertions().len() != expected {
        return Verdict::Unknown(format!(
            "z3 read {} of the {expected} assertions of the obligation",
            solver.get_assertions().len()
        ));
    }
    match solver.check() {
        z3::SatResult::Unsat => Verdict::Proven,
        z3::SatResult::Unknown => Verdict::Unknown(
            solver
                .get_reason_unknown()
                .unwrap_or_else(|| "no reason given".to_string()),
        ),
        z3::SatResult::Sat => match solver.get_model() {
            None => Verdict::Unknown("satisfiable, without a model".to_string()),
            Some(model) => Verdict::Refuted(
                o.vars
                    .iter()
                    .map(|(v, w)| {
                        let c = z3::ast::BV::new_const(ctx, v.as_str(), *w);
                        let value = model.eval(&c, true).and_then(|x| match x.as_u64() {
                            Some(n) if *w <= 64 => Some(u128::from(n)),
                            _ => parse_value(&x.to_string()),
                        });
                        (v.clone(), value.unwrap_or(0))
                    })
                    .collect(),
            ),
        },
    }
}

/// How long z3 may take for one obligation.
pub const TIMEOUT_MS: u64 = 120_000;

/// A bit-vector literal as z3 prints it (`#x00ff` or `#b0101`).
fn parse_value(t: &str) -> Option<u128> {
    if let Some(b) = t.strip_prefix("#b") {
        u128::from_str_radix(b, 2).ok()
    } else {
        u128::from_str_radix(t.strip_prefix("#x")?, 16).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_true_claim_is_proven_and_a_false_one_refuted_with_a_counterexample() {
        let o = |claim: &str| Obligation {
            name: "x".into(),
            vars: vec![("x".into(), 8)],
            premises: vec!["(bvult x #x10)".into()],
            claim: claim.into(),
            steps: vec![],
        };
        assert_eq!(prove(&o("(bvule x #x0f)")).0, Verdict::Proven);
        // A step is a hint: a true one is proven and assumed, a false one is dropped, and
        // a refutation is always the claim's own counterexample.
        let with = |step: &str, claim: &str| Obligation {
            steps: vec![step.into()],
            ..o(claim)
        };
        assert_eq!(
            prove(&with("(bvule x #x0f)", "(bvult x #x10)")).0,
            Verdict::Proven
        );
        assert_eq!(
            prove(&with("(bvule x #x03)", "(bvule x #x0f)")).0,
            Verdict::Proven
        );
        match prove(&with("(bvule x #x03)", "(bvule x #x0e)")).0 {
            Verdict::Refuted(m) => assert_eq!(m, vec![("x".to_string(), 0xf)]),
            v => panic!("{v}"),
        }
        match prove(&o("(bvule x #x0e)")).0 {
            Verdict::Refuted(m) => assert_eq!(m, vec![("x".to_string(), 0xf)]),
            v => panic!("{v}"),
        }
    }
}
