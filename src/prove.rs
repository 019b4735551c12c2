//! `clif-bounds prove` (feature `prove`): the planner's forms proven sound with z3, for every
//! value of the index, the bound, the offset and the memory's declaration, under the premises
//! each plan records ([`crate::plan::Premise`]).
//!
//! The trap condition is `meta/`'s, rendered to SMT-LIB at build time
//! ([`crate::semantics::OUT_OF_BOUNDS_SMT`]); nothing here restates it. What each form's
//! comparison computes is written here once, as the renderers compute it (64-bit wrapping
//! arithmetic, the same operators), and each obligation says that under the plan's premises
//! the comparison is true exactly when the trap condition is, or that every out-of-bounds
//! access lands in a range that faults. Offsets are variables, not samples.
//!
//! [`broken`] holds deliberately wrong versions (an off-by-one `K`, a dropped zero-extension,
//! `ja` for `jae`, `g32` without `bound >= K`), each of which must be refuted.

use clif_bounds_verifier::smt::{prove, Obligation, Verdict};

/// The trap condition of `meta/` over `index offset access_size bound`.
fn oob() -> &'static str {
    crate::semantics::OUT_OF_BOUNDS_SMT
}

fn lit64(x: u64) -> String {
    format!("#x{x:016x}")
}

fn z128(t: &str) -> String {
    format!("((_ zero_extend 64) {t})")
}

/// `K = offset + access_size`, exactly (128 bits).
fn end128() -> String {
    format!("(bvadd {} {})", z128("offset"), z128("access_size"))
}

/// `K` as the renderers compute it in a 64-bit register (the premises keep it from wrapping).
fn end64() -> &'static str {
    "(bvadd offset access_size)"
}

/// An index type of the obligations.
#[derive(Clone, Copy)]
struct Index {
    name: &'static str,
    /// The largest bound a memory of this index type can have (at 64-bit pointers).
    max_bound: u64,
    /// The largest index.
    max: u64,
}

const INDEXES: [Index; 2] = [
    Index {
        name: "i32",
        max_bound: 1 << 32,
        max: u32::MAX as u64,
    },
    Index {
        name: "i64",
        max_bound: u64::MAX,
        max: u64::MAX,
    },
];

const SIZES: [u64; 5] = [1, 2, 4, 8, 16];

/// The variables every obligation has, and what the declaration guarantees about them:
/// `min <= bound <= max_bound` of the index type, and the access size.
fn base(name: String, ix: Index, size: u64, extra: &[&str]) -> Obligation {
    let mut vars: Vec<(String, u32)> = ["index", "offset", "access_size", "bound", "min", "guard"]
        .iter()
        .chain(extra)
        .map(|v| (v.to_string(), 64))
        .collect();
    vars.dedup();
    Obligation {
        name,
        vars,
        premises: vec![
            format!("(bvule index {})", lit64(ix.max)),
            format!("(= access_size {})", lit64(size)),
            "(bvuge bound min)".to_string(),
            format!("(bvule bound {})", lit64(ix.max_bound)),
        ],
        claim: String::new(),
    }
}

/// `faulting_end(bound)`: `max(reservation, bound) + guard`, or `bound + guard` without a
/// reservation (128 bits).
fn faulting_end(of: &str, reservation: bool) -> String {
    let top = if reservation {
        format!("(ite (bvuge reservation {of}) reservation {of})")
    } else {
        of.to_string()
    };
    format!("(bvadd {} {})", z128(&top), z128("guard"))
}

/// Every obligation of the plans' forms.
pub fn obligations() -> Vec<Obligation> {
    let mut out = Vec::new();
    for ix in INDEXES {
        for size in SIZES {
            let at = |what: &str| format!("{what}, {} index, {size}-byte access", ix.name);
            // AlwaysTraps (premise EndAboveMaxBound): no declared bound admits K.
            let mut o = base(at("AlwaysTraps given K > max_bound"), ix, size, &[]);
            o.premises.push(format!(
                "(bvugt {} {})",
                end128(),
                z128(&lit64(ix.max_bound))
            ));
            o.claim = oob().to_string();
            out.push(o);
            // InBounds (premises ConstantIndex, MinCovers { end: index + K }).
            let mut o = base(at("InBounds given min >= index + K"), ix, size, &[]);
            o.premises.push(format!(
                "(bvuge {} (bvadd {} {}))",
                z128("min"),
                z128("index"),
                end128()
            ));
            o.claim = format!("(not {})", oob());
            out.push(o);
            // Faults (premises FaultingRangeCovers, FaultIsTrap), with and without a
            // reservation that the bound stays within.
            for reservation in [false, true] {
                let extra: &[&str] = if reservation {
                    &["index_max", "reservation"]
                } else {
                    &["index_max"]
                };
                let mut o = base(
                    at(if reservation {
                        "Faults: an out-of-bounds access ends in the faulting range (reservation)"
                    } else {
                        "Faults: an out-of-bounds access ends in the faulting range"
                    }),
                    ix,
                    size,
                    extra,
                );
                o.premises.push("(bvule index index_max)".to_string());
                o.premises.push(format!(
                    "(bvule (bvadd {} {}) {})",
                    z128("index_max"),
                    end128(),
                    faulting_end("min", reservation)
                ));
                if reservation {
                    o.premises.push("(bvule bound reservation)".to_string());
                }
                o.claim = format!(
                    "(=> {} (bvule (bvadd {} {}) {}))",
                    oob(),
                    z128("index"),
                    end128(),
                    faulting_end("bound", reservation)
                );
                out.push(o);
            }
            // Explicit, BoundMinusEnd (premise MinCovers { end: K }).
            let mut o = base(
                at("Explicit: index > bound - K is the trap condition given min >= K"),
                ix,
                size,
                &[],
            );
            o.premises
                .push(format!("(bvuge {} {})", z128("min"), end128()));
            o.claim = format!("(= (bvugt index (bvsub bound {})) {})", end64(), oob());
            out.push(o);
            // Explicit, ConstantBound (premise ConstantBound(b), b >= K): against the
            // immediate `b - K`.
            let mut o = base(
                at("Explicit: index > b - K is the trap condition for a constant bound b >= K"),
                ix,
                size,
                &["b"],
            );
            o.premises.push("(= bound b)".to_string());
            o.premises
                .push(format!("(bvuge {} {})", z128("b"), end128()));
            o.claim = format!("(= (bvugt index (bvsub b {})) {})", end64(), oob());
            out.push(o);
            // Explicit, EndAboveBound without wrap (premise SumFits).
            let mut o = base(
                at("Explicit: index + K > bound is the trap condition when it cannot wrap"),
                ix,
                size,
                &[],
            );
            o.premises.push(format!(
                "(bvult (bvadd {} {}) {})",
                z128("index"),
                end128(),
                "#x00000000000000010000000000000000"
            ));
            o.claim = format!("(= (bvugt (bvadd index {}) bound) {})", end64(), oob());
            out.push(o);
            // Explicit, EndAboveBound with the carry trapping (K fits 64 bits).
            let mut o = base(
                at("Explicit: carry or index + K > bound is the trap condition"),
                ix,
                size,
                &[],
            );
            o.premises.push(format!(
                "(bvult {} #x00000000000000010000000000000000)",
                end128()
            ));
            o.claim = format!(
                "(= (or (bvugt (bvadd {} {}) #x0000000000000000ffffffffffffffff) (bvugt (bvadd index {}) bound)) {})",
                z128("index"),
                z128(end64()),
                end64(),
                oob()
            );
            out.push(o);
            // Explicit, Guard (premise GuardCovers { end: K }): `index > bound` traps, and
            // what it lets through that is out of bounds ends within the guard.
            let mut o = base(
                at("Explicit: index > bound traps, the guard catches the rest, given guard >= K"),
                ix,
                size,
                &[],
            );
            o.premises
                .push(format!("(bvuge {} {})", z128("guard"), end128()));
            o.claim = format!(
                "(and (=> (bvugt index bound) {oob}) (=> (and {oob} (not (bvugt index bound))) (bvule (bvadd {} {}) {})))",
                z128("index"),
                end128(),
                faulting_end("bound", false),
                oob = oob()
            );
            out.push(o);
            // A run's leader checks end E >= K for this access (premise RunCheckedBy).
            let mut o = base(
                at("Covered: a leader's check of an end E >= K covers the access"),
                ix,
                size,
                &["e"],
            );
            o.premises
                .push(format!("(bvuge {} {})", z128("e"), end128()));
            o.claim = format!(
                "(=> (not (bvugt (bvadd {} {}) {})) (not {}))",
                z128("index"),
                z128("e"),
                z128("bound"),
                oob()
            );
            out.push(o);
            if ix.name == "i32" {
                out.push(g32(ix, size, true));
            }
        }
        // Explicit, OneByte: K = 1.
        let mut o = base(
            format!(
                "Explicit: index >= bound is the trap condition for K = 1, {} index",
                ix.name
            ),
            ix,
            1,
            &[],
        );
        o.premises.push("(= offset #x0000000000000000)".to_string());
        o.claim = format!("(= (bvuge index bound) {})", oob());
        out.push(o);
    }
    out
}

/// Pulley's `g32`: the access traps when `zext(index) > bound - rebase - offset16 - size`,
/// computed by the interpreter in 64 bits without a wrap check, where the plan moved
/// `rebase` (the offset's bits above 16) into base and bound. With `premise`, the plan's
/// `bound >= K` (MinCovers or ConstantBound); without it, the broken plan.
fn g32(ix: Index, size: u64, premise: bool) -> Obligation {
    let mut o = base(
        format!(
            "G32: index > bound - rebase - offset16 - size is the trap condition{}, i32 index, {size}-byte access",
            if premise { " given bound >= K" } else { " (no bound >= K)" }
        ),
        ix,
        size,
        &[],
    );
    if premise {
        o.premises
            .push(format!("(bvuge {} {})", z128("bound"), end128()));
    }
    let rebase = "(bvand offset #xffffffffffff0000)";
    let offset16 = "(bvand offset #x000000000000ffff)";
    o.claim = format!(
        "(= (bvugt index (bvsub (bvsub (bvsub bound {rebase}) {offset16}) access_size)) {})",
        oob()
    );
    o
}

/// Deliberately broken versions of the forms, each of which z3 must refute.
pub fn broken() -> Vec<Obligation> {
    let ix = INDEXES[0];
    let mut out = Vec::new();
    // K off by one: `index > bound - (K - 1)`.
    let mut o = base(
        "broken: index > bound - (K - 1), i32 index, 4-byte access".to_string(),
        ix,
        4,
        &[],
    );
    o.premises
        .push(format!("(bvuge {} {})", z128("min"), end128()));
    o.claim = format!(
        "(= (bvugt index (bvsub bound (bvsub {} #x0000000000000001))) {})",
        end64(),
        oob()
    );
    out.push(o);
    // A dropped zero-extension: the check and the address use a register whose low 32
    // bits are the index and whose upper bits are whatever they were.
    let mut o = base(
        "broken: the i32 index compared without its zero-extension, 4-byte access".to_string(),
        ix,
        4,
        &["reg"],
    );
    o.premises
        .push(format!("(bvuge {} {})", z128("min"), end128()));
    o.premises
        .push("(= index ((_ zero_extend 32) ((_ extract 31 0) reg)))".to_string());
    o.claim = format!("(= (bvugt reg (bvsub bound {})) {})", end64(), oob());
    out.push(o);
    // `ja` for `jae` in the one-byte form.
    let mut o = base(
        "broken: index > bound for K = 1 (ja for jae)".to_string(),
        ix,
        1,
        &[],
    );
    o.premises.push("(= offset #x0000000000000000)".to_string());
    o.claim = format!("(= (bvugt index bound) {})", oob());
    out.push(o);
    // g32 without `bound >= K`.
    out.push(g32(ix, 4, false));
    out
}

/// One obligation's outcome, as `prove` prints it.
pub struct Line {
    /// The obligation.
    pub obligation: Obligation,
    /// What z3 answered.
    pub verdict: Verdict,
    /// How long it took.
    pub millis: f64,
}

impl std::fmt::Display for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "{}: {} ({:.1} ms)",
            self.obligation.name, self.verdict, self.millis
        )?;
        if let Verdict::Refuted(m) = &self.verdict {
            let get = |n: &str| m.iter().find(|(v, _)| v == n).map_or(0, |x| x.1);
            write!(
                f,
                "\n    as a run line of a function with offset {:#x}: ; run: %f(&heap0, {:#x}, {:#x})",
                get("offset"),
                get("bound"),
                get("index")
            )?;
        }
        Ok(())
    }
}

/// Decides every obligation of `set`, on as many threads as the machine has cores (each
/// obligation gets its own z3 context), in the order given.
pub fn run(set: Vec<Obligation>) -> Vec<Line> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<Line>>> =
        set.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(o) = set.get(i) else { break };
                let (verdict, t) = prove(o);
                let line = Line {
                    obligation: o.clone(),
                    verdict,
                    millis: t.as_secs_f64() * 1e3,
                };
                *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(line);
            });
        }
    });
    results
        .into_iter()
        .filter_map(|r| r.into_inner().unwrap_or_else(|e| e.into_inner()))
        .collect()
}

/// For a refuted broken obligation: the counterexample run through `meta/`'s trap condition
/// (the interpreter's) and through the broken comparison, which must disagree; `None` when
/// they agree (the refutation would then show nothing).
pub fn disagreement(l: &Line) -> Option<String> {
    let Verdict::Refuted(m) = &l.verdict else {
        return None;
    };
    let get = |n: &str| m.iter().find(|(v, _)| v == n).map_or(0, |x| x.1 as u64);
    let (index, offset, size, bound) = (
        get("index"),
        get("offset"),
        get("access_size"),
        get("bound"),
    );
    let traps = crate::semantics::out_of_bounds(index, offset, size, bound);
    let k = offset.wrapping_add(size);
    let name = l.obligation.name.as_str();
    let broken_traps = if name.contains("K - 1") {
        index > bound.wrapping_sub(k - 1)
    } else if name.contains("zero-extension") {
        get("reg") > bound.wrapping_sub(k)
    } else if name.contains("ja for jae") {
        index > bound
    } else {
        index
            > bound
                .wrapping_sub(offset & !0xffff)
                .wrapping_sub(offset & 0xffff)
                .wrapping_sub(size)
    };
    (traps != broken_traps).then(|| {
        format!(
            "the interpreter {} there, the broken code {}",
            if traps { "traps" } else { "does not trap" },
            if broken_traps {
                "traps"
            } else {
                "does not trap"
            }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every form is proven, and every broken version is refuted with a counterexample on
    /// which meta's trap condition (the interpreter's) and the broken comparison disagree.
    #[test]
    fn the_forms_are_proven_and_the_broken_ones_refuted() {
        for l in run(obligations()) {
            assert_eq!(l.verdict, Verdict::Proven, "{l}");
        }
        for l in run(broken()) {
            assert!(disagreement(&l).is_some(), "{l}");
        }
    }
}
