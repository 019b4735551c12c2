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

pub mod legalized;
pub mod lowered;
pub mod souper;
pub mod symbolic;

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

/// The widest access (a 128-bit vector). The forms are proven with the access size a
/// variable from 1 to this, at once: every size the instruction has, and the ones between.
const MAX_SIZE: u64 = 16;

/// The variables every obligation has, and what the declaration guarantees about them:
/// `min <= bound <= max_bound` of the index type, and the access size.
fn base(name: String, ix: Index, size: Option<u64>, extra: &[&str]) -> Obligation {
    let mut vars: Vec<(String, u32)> = Vec::new();
    for v in ["index", "offset", "access_size", "bound", "min", "guard"]
        .iter()
        .chain(extra)
    {
        if !vars.iter().any(|(w, _)| w == v) {
            vars.push((v.to_string(), 64));
        }
    }
    Obligation {
        name,
        vars,
        premises: vec![
            format!("(bvule index {})", lit64(ix.max)),
            match size {
                Some(n) => format!("(= access_size {})", lit64(n)),
                None => format!(
                    "(and (bvuge access_size {}) (bvule access_size {}))",
                    lit64(1),
                    lit64(MAX_SIZE)
                ),
            },
            "(bvuge bound min)".to_string(),
            format!("(bvule bound {})", lit64(ix.max_bound)),
        ],
        claim: String::new(),
        steps: Vec::new(),
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

/// `o` with `steps` (see [`Obligation::steps`]).
fn with_steps(mut o: Obligation, steps: Vec<String>) -> Obligation {
    o.steps = steps;
    o
}

/// Steps for a comparison against `of - K` computed in 64 bits, given `of >= K`: `K` fits
/// 64 bits and the subtraction does not wrap, so it is the exact one.
fn exact_difference(of: &str) -> Vec<String> {
    vec![
        format!("(bvuge {} {})", z128(of), end128()),
        format!("(= {} {})", z128(end64()), end128()),
        format!(
            "(= {} (bvsub {} {}))",
            z128(&format!("(bvsub {of} {})", end64())),
            z128(of),
            end128()
        ),
    ]
}

/// Every obligation of the plans' forms.
pub fn obligations() -> Vec<Obligation> {
    let mut out = Vec::new();
    for ix in INDEXES {
        {
            let size = None;
            let at = |what: &str| format!("{what}, {} index, every access size", ix.name);
            // AlwaysTraps (premise EndAboveMaxBound): no declared bound admits K. The largest
            // bound is the declared maximum, itself within the index type's limit.
            let mut o = base(at("AlwaysTraps given K > max_bound"), ix, size, &["max"]);
            o.premises.push("(bvule bound max)".to_string());
            o.premises
                .push(format!("(bvugt {} {})", end128(), z128("max")));
            o.claim = oob().to_string();
            out.push(o);
            // AlwaysTraps with a constant bound below K, or a constant index beyond the
            // largest bound (premises ConstantBound, ConstantIndex).
            let mut o = base(
                at("AlwaysTraps given a constant bound b < K"),
                ix,
                size,
                &["b"],
            );
            o.premises.push("(= bound b)".to_string());
            o.premises
                .push(format!("(bvult {} {})", z128("b"), end128()));
            o.claim = oob().to_string();
            out.push(o);
            let mut o = base(
                at("AlwaysTraps given a constant index i with i + K > max_bound"),
                ix,
                size,
                &["max"],
            );
            o.premises.push("(bvule bound max)".to_string());
            o.premises.push(format!(
                "(bvugt (bvadd {} {}) {})",
                z128("index"),
                end128(),
                z128("max")
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
                if reservation {
                    // The declaration: a bound never exceeds the reservation (the claim holds
                    // without it, but z3 takes seconds longer).
                    o.premises.push("(bvule bound reservation)".to_string());
                }
                o.premises.push(format!(
                    "(bvule (bvadd {} {}) {})",
                    z128("index_max"),
                    end128(),
                    faulting_end("min", reservation)
                ));
                o.claim = format!(
                    "(=> {} (bvule (bvadd {} {}) {}))",
                    oob(),
                    z128("index"),
                    end128(),
                    faulting_end("bound", reservation)
                );
                // index + K <= index_max + K <= faulting_end(min) <= faulting_end(bound).
                o.steps = vec![
                    format!(
                        "(bvule (bvadd {} {end}) (bvadd {} {end}))",
                        z128("index"),
                        z128("index_max"),
                        end = end128()
                    ),
                    format!(
                        "(bvule {} {})",
                        faulting_end("min", reservation),
                        faulting_end("bound", reservation)
                    ),
                ];
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
            out.push(with_steps(o, exact_difference("bound")));
            // Explicit, ConstantBound (premise ConstantBound(b)): against the immediate
            // `b - K`. The planner chooses this form only when b >= K (below, the access
            // always traps: the AlwaysTraps obligation above).
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
            out.push(with_steps(o, exact_difference("b")));
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
            Some(1),
            &[],
        );
        o.premises.push("(= offset #x0000000000000000)".to_string());
        o.claim = format!("(= (bvuge index bound) {})", oob());
        out.push(o);
    }
    out
}

/// An obligation over 64-bit variables `vars` and 128-bit addends named `*_w`. The kernel's
/// addends are `i128` sums of a few 64-bit values (it saturates them, which only weakens a
/// bound): each is assumed within 2^100 of zero, far from the 128-bit limits.
fn kernel(name: &str, vars: &[&str], premises: &[String], claim: String) -> Obligation {
    let mut premises = premises.to_vec();
    for v in vars.iter().filter(|v| v.ends_with("_w")) {
        premises.push(format!(
            "(and (bvslt {v} #x00000010000000000000000000000000) (bvsgt {v} #xfffffff0000000000000000000000000))"
        ));
    }
    Obligation {
        name: format!("PCC kernel: {name}"),
        vars: vars
            .iter()
            .map(|v| (v.to_string(), if v.ends_with("_w") { 128 } else { 64 }))
            .collect(),
        premises,
        claim,
        steps: Vec::new(),
    }
}

/// The arithmetic of the PCC kernel's rules (`verifier/src/lib.rs`): for each rule, when its
/// inputs have the facts it reads and its side conditions hold, the value the machine
/// computes has the fact it states. (These prove the rules' arithmetic as the kernel's
/// documentation states it, over every value; that the Rust code computes exactly those
/// bounds is what its unit tests and the mutants check.) `s` is a symbolic bound, `k` an
/// exact addend (128-bit, `_w`), unsigned 64-bit values are zero-extended to 128 bits.
pub fn kernel_obligations() -> Vec<Obligation> {
    let z = |t: &str| z128(t);
    let le_sym = |v: &str, k: &str| format!("(bvsle (bvsub {} {}) {k})", z(v), z("s"));
    let mut out = vec![
        // add: a in [alo, ahi], b in [blo, bhi], ahi + bhi < 2^64: the 64-bit sum is exact
        // and in [alo + blo, ahi + bhi]; with a <= s + ka, a + b <= s + ka + bhi.
        with_steps(kernel(
            "sum of two ranges that cannot wrap",
            &["a", "b", "alo", "ahi", "blo", "bhi", "s", "ka_w"],
            &[
                "(bvule alo a)".into(),
                "(bvule a ahi)".into(),
                "(bvule blo b)".into(),
                "(bvule b bhi)".into(),
                format!("(bvult (bvadd {} {}) #x00000000000000010000000000000000)", z("ahi"), z("bhi")),
                le_sym("a", "ka_w"),
            ],
            format!(
                "(and (= {} (bvadd {} {})) (bvule (bvadd alo blo) (bvadd a b)) (bvule (bvadd a b) (bvadd ahi bhi)) (bvsle (bvsub {} {}) (bvadd ka_w {})))",
                z("(bvadd a b)"),
                z("a"),
                z("b"),
                z("(bvadd a b)"),
                z("s"),
                z("bhi")
            ),
        ), vec![
            format!("(= {} (bvadd {} {}))", z("(bvadd a b)"), z("a"), z("b")),
            format!("(= {} (bvadd {} {}))", z("(bvadd ahi bhi)"), z("ahi"), z("bhi")),
            format!("(= {} (bvadd {} {}))", z("(bvadd alo blo)"), z("alo"), z("blo")),
            format!("(bvsle (bvsub (bvadd {} {}) {}) (bvadd ka_w {}))", z("a"), z("b"), z("s"), z("b")),
            format!("(bvsle (bvadd ka_w {}) (bvadd ka_w {}))", z("b"), z("bhi")),
            "(bvule (bvadd alo blo) (bvadd a b))".into(),
            "(bvule (bvadd a b) (bvadd ahi bhi))".into(),
            format!("(bvsle (bvsub {} {}) (bvadd ka_w {}))", z("(bvadd a b)"), z("s"), z("bhi")),
        ]),
        // sub_imm: a in [lo, hi], lo >= c: a - c in [lo - c, hi - c], and a <= s + ka gives
        // a - c <= s + ka - c.
        with_steps(kernel(
            "a constant subtracted from a range above it",
            &["a", "lo", "hi", "c", "s", "ka_w"],
            &[
                "(bvule lo a)".into(),
                "(bvule a hi)".into(),
                "(bvuge lo c)".into(),
                le_sym("a", "ka_w"),
            ],
            format!(
                "(and (bvule (bvsub lo c) (bvsub a c)) (bvule (bvsub a c) (bvsub hi c)) (bvsle (bvsub {} {}) (bvsub ka_w {})))",
                z("(bvsub a c)"),
                z("s"),
                z("c")
            ),
        ), vec![
            format!("(= {} (bvsub {} {}))", z("(bvsub a c)"), z("a"), z("c")),
            format!("(= {} (bvsub {} {}))", z("(bvsub hi c)"), z("hi"), z("c")),
            format!("(= {} (bvsub {} {}))", z("(bvsub lo c)"), z("lo"), z("c")),
            format!("(= (bvsub {} {}) (bvsub (bvsub {} {}) {}))", z("(bvsub a c)"), z("s"), z("a"), z("s"), z("c")),
            format!("(bvsle (bvsub (bvsub {} {}) {}) (bvsub ka_w {}))", z("a"), z("s"), z("c"), z("c")),
            "(bvule (bvsub lo c) (bvsub a c))".into(),
            "(bvule (bvsub a c) (bvsub hi c))".into(),
            format!("(bvsle (bvsub {} {}) (bvsub ka_w {}))", z("(bvsub a c)"), z("s"), z("c")),
        ]),
        // zero_extend from 32: a value below 2^32 is its own zero-extension.
        kernel(
            "zero-extension of a value that fits",
            &["a"],
            &["(bvule a #x00000000ffffffff)".into()],
            "(= a ((_ zero_extend 32) ((_ extract 31 0) a)))".into(),
        ),
        // shl_imm by 3 (the kernel's rule for any k; 3 is the table index's scale): when
        // hi << 3 loses no bit, a << 3 is in [lo << 3, hi << 3].
        kernel(
            "a shift of a range that loses no bit",
            &["a", "lo", "hi"],
            &[
                "(bvule lo a)".into(),
                "(bvule a hi)".into(),
                "(= (bvlshr (bvshl hi #x0000000000000003) #x0000000000000003) hi)".into(),
            ],
            "(and (bvule (bvshl lo #x0000000000000003) (bvshl a #x0000000000000003)) (bvule (bvshl a #x0000000000000003) (bvshl hi #x0000000000000003)))".into(),
        ),
        // assume x <= y (x < y): x's static and symbolic upper bounds from y's.
        kernel(
            "past a trap on x > y, x has y's upper bounds",
            &["x", "y", "yhi", "s", "ky_w"],
            &[
                "(not (bvugt x y))".into(),
                "(bvule y yhi)".into(),
                le_sym("y", "ky_w"),
            ],
            format!("(and (bvule x yhi) {})", le_sym("x", "ky_w")),
        ),
        kernel(
            "past a trap on x >= y, x has y's upper bounds minus one",
            &["x", "y", "yhi", "s", "ky_w"],
            &[
                "(not (bvuge x y))".into(),
                "(bvule y yhi)".into(),
                le_sym("y", "ky_w"),
            ],
            format!(
                "(and (bvule x (bvsub yhi #x0000000000000001)) {})",
                le_sym("x", "(bvsub ky_w #x00000000000000000000000000000001)")
            ),
        ),
        // Through an exact sum: x = a + c without wrap, x <= u: a <= u - c.
        with_steps(kernel(
            "a bound on an exact sum bounds its operand",
            &["x", "a", "c", "u", "s", "ku_w"],
            &[
                "(= x (bvadd a c))".into(),
                format!("(bvult (bvadd {} {}) #x00000000000000010000000000000000)", z("a"), z("c")),
                "(bvule x u)".into(),
                le_sym("x", "ku_w"),
            ],
            format!(
                "(and (bvule a (bvsub u c)) {})",
                le_sym("a", &format!("(bvsub ku_w {})", z("c")))
            ),
        ), vec![
            format!("(= {} (bvadd {} {}))", z("x"), z("a"), z("c")),
            format!("(bvuge {} {})", z("u"), z("c")),
            format!("(= {} (bvsub {} {}))", z("(bvsub u c)"), z("u"), z("c")),
            format!("(bvule a (bvsub u c))"),
            format!("(= (bvsub {} {}) (bvsub (bvsub {} {}) {}))", z("a"), z("s"), z("x"), z("s"), z("c")),
            format!("(bvsle (bvsub (bvsub {} {}) {}) (bvsub ku_w {}))", z("x"), z("s"), z("c"), z("c")),
        ]),
        // A 32-bit comparison of a register with unknown upper half: its low half, zero
        // extended, is bounded.
        kernel(
            "past a 32-bit trap on x > y, the zero-extension of x's low half is at most y",
            &["x", "y"],
            &[
                "(bvule y #x00000000ffffffff)".into(),
                "(not (bvugt ((_ extract 31 0) x) ((_ extract 31 0) y)))".into(),
            ],
            "(bvule ((_ zero_extend 32) ((_ extract 31 0) x)) y)".into(),
        ),
    ];
    // Within the guard after the bound: every byte below n + guard. One obligation for
    // every width from 1 to 16 bytes, which z3 decides faster than any one width (measured:
    // 1.5 s against 9.8 s for the five widths the kernel uses).
    let w = "w";
    out.push(with_steps(
        kernel(
            "an access of w bytes at off <= bound + k, k + w <= guard, ends in the guard, every w from 1 to 16",
            &["off", "n", "guard", "k_w", "w"],
            &[
                format!("(bvsle (bvsub {} {}) k_w)", z("off"), z("n")),
                format!("(bvsle (bvadd k_w {}) {})", z(w), z("guard")),
                format!("(and (bvuge w {}) (bvule w {}))", lit64(1), lit64(16)),
            ],
            format!(
                "(bvule (bvadd {} {}) (bvadd {} {}))",
                z("off"),
                z(w),
                z("n"),
                z("guard")
            ),
        ),
        vec![
            format!(
                "(bvsle (bvadd (bvsub {} {}) {}) (bvadd k_w {}))",
                z("off"),
                z("n"),
                z(w),
                z(w)
            ),
            format!(
                "(bvsle (bvadd (bvsub {} {}) {}) {})",
                z("off"),
                z("n"),
                z(w),
                z("guard")
            ),
        ],
    ));
    // The other access checks, for each width.
    for w in [1u64, 2, 4, 8, 16] {
        let wl = lit64(w);
        // In bounds symbolically: off <= n + k, k + w <= 0: [off, off + w) within [0, n).
        out.push(kernel(
            &format!("an access of {w} bytes at off <= bound + k, k + {w} <= 0, is in bounds"),
            &["off", "n", "k_w"],
            &[
                format!("(bvsle (bvsub {} {}) k_w)", z("off"), z("n")),
                format!(
                    "(bvsle (bvadd k_w {}) #x00000000000000000000000000000000)",
                    z(&wl)
                ),
            ],
            format!("(bvule (bvadd {} {}) {})", z("off"), z(&wl), z("n")),
        ));
        // g32: made only when index <= bound - offset - w (unchecked), given bound >= offset
        // + w: the access ends within the bound.
        out.push(kernel(
            &format!(
                "a g32 access of {w} bytes ends within the bound, given bound >= offset + {w}"
            ),
            &["index", "offset", "bound"],
            &[
                "(bvule index #x00000000ffffffff)".into(),
                "(bvule offset #x000000000000ffff)".into(),
                format!("(bvuge {} (bvadd {} {}))", z("bound"), z("offset"), z(&wl)),
                format!("(not (bvugt index (bvsub (bvsub bound offset) {wl})))"),
            ],
            format!(
                "(bvule (bvadd {} {} {}) {})",
                z("index"),
                z("offset"),
                z(&wl),
                z("bound")
            ),
        ));
        // A null case within the null page: every byte faults.
        out.push(kernel(
            &format!(
                "a null case of {w} bytes at [a, b], b + {w} <= reach, is within the null page"
            ),
            &["addr", "b", "reach"],
            &[
                "(bvule addr b)".into(),
                format!("(bvule (bvadd {} {}) {})", z("b"), z(&wl), z("reach")),
            ],
            format!("(bvule (bvadd {} {}) {})", z("addr"), z(&wl), z("reach")),
        ));
    }
    out
}

/// Pulley's `g32`: the access traps when `zext(index) > bound - rebase - offset16 - size`,
/// computed by the interpreter in 64 bits without a wrap check, where the plan moved
/// `rebase` (the offset's bits above 16) into base and bound. With `premise`, the plan's
/// `bound >= K` (MinCovers or ConstantBound); without it, the broken plan.
fn g32(ix: Index, size: Option<u64>, premise: bool) -> Obligation {
    let mut o =
        base(
            format!(
            "G32: index > bound - rebase - offset16 - size is the trap condition{}, i32 index, {}",
            if premise { " given bound >= K" } else { " (no bound >= K)" },
            size.map_or("every access size".to_string(), |n| format!("{n}-byte access"))
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

/// `K` in a counterexample, as a 64-bit register holds it.
fn k(v: &dyn Fn(&str) -> u64) -> u64 {
    v("offset").wrapping_add(v("access_size"))
}

/// Whether a broken comparison traps, given a counterexample's variables (0 for a variable
/// it does not name).
type BrokenTraps = fn(&dyn Fn(&str) -> u64) -> bool;

/// A deliberately broken form: the obligation z3 must refute, and the broken comparison
/// itself, whether it traps, evaluated on a counterexample.
pub struct Broken {
    /// The obligation.
    pub obligation: Obligation,
    /// Whether the broken comparison traps, given a counterexample's variables (0 for a
    /// variable it does not name).
    traps: BrokenTraps,
}

/// Deliberately broken versions of the forms, each of which z3 must refute.
pub fn broken() -> Vec<Broken> {
    let ix = INDEXES[0];
    let mut out = Vec::new();
    // K off by one: `index > bound - (K - 1)`.
    let mut o = base(
        "broken: index > bound - (K - 1), i32 index, 4-byte access".to_string(),
        ix,
        Some(4),
        &[],
    );
    o.premises
        .push(format!("(bvuge {} {})", z128("min"), end128()));
    o.claim = format!(
        "(= (bvugt index (bvsub bound (bvsub {} #x0000000000000001))) {})",
        end64(),
        oob()
    );
    out.push(Broken {
        obligation: o,
        traps: |v| v("index") > v("bound").wrapping_sub(k(v).wrapping_sub(1)),
    });
    // A dropped zero-extension: the check and the address use a register whose low 32
    // bits are the index and whose upper bits are whatever they were.
    let mut o = base(
        "broken: the i32 index compared without its zero-extension, 4-byte access".to_string(),
        ix,
        Some(4),
        &["reg"],
    );
    o.premises
        .push(format!("(bvuge {} {})", z128("min"), end128()));
    o.premises
        .push("(= index ((_ zero_extend 32) ((_ extract 31 0) reg)))".to_string());
    o.claim = format!("(= (bvugt reg (bvsub bound {})) {})", end64(), oob());
    out.push(Broken {
        obligation: o,
        traps: |v| v("reg") > v("bound").wrapping_sub(k(v)),
    });
    // `ja` for `jae` in the one-byte form.
    let mut o = base(
        "broken: index > bound for K = 1 (ja for jae)".to_string(),
        ix,
        Some(1),
        &[],
    );
    o.premises.push("(= offset #x0000000000000000)".to_string());
    o.claim = format!("(= (bvugt index bound) {})", oob());
    out.push(Broken {
        obligation: o,
        traps: |v| v("index") > v("bound"),
    });
    // g32 without `bound >= K`.
    out.push(Broken {
        obligation: g32(ix, Some(4), false),
        traps: |v| {
            let offset = v("offset");
            v("index")
                > v("bound")
                    .wrapping_sub(offset & !0xffff)
                    .wrapping_sub(offset & 0xffff)
                    .wrapping_sub(v("access_size"))
        },
    });
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
        if let (Verdict::Refuted(m), false) = (
            &self.verdict,
            self.obligation.name.starts_with("PCC kernel"),
        ) {
            let get = |n: &str| model_get(m, n);
            // A store's value too, when the obligation has one.
            let value = get("value").map_or(String::new(), |v| format!(", {v:#x}"));
            write!(
                f,
                "\n    as a run line of a function with offset {:#x}: ; run: %f(&heap0, {:#x}, {:#x}{value})",
                get("offset").unwrap_or(0),
                model_value(m, "bound"),
                model_value(m, "index")
            )?;
        }
        Ok(())
    }
}

/// A counterexample's value of the variable `name`, if it has that variable.
pub(super) fn model_get(m: &[(String, u128)], name: &str) -> Option<u128> {
    m.iter().find(|(v, _)| v == name).map(|x| x.1)
}

/// A counterexample's value of `name` (`index`, `bound`). A Souper candidate names an
/// input narrower than 64 bits after its CLIF value (`%index2`, `%bound1`), and `%index`
/// is then its zero-extension, not a variable.
fn model_value(m: &[(String, u128)], name: &str) -> u128 {
    let get = |n: &str| model_get(m, n);
    let narrow = match name {
        "index" => "index2",
        _ => "bound1",
    };
    get(name).or_else(|| get(narrow)).unwrap_or(0)
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

/// The obligations of `set` whose premises contradict each other (an obligation with no
/// input that meets its premises is proven whatever its claim): each premise set must be
/// satisfiable, which z3 shows by refuting `false` under it. Obligations with the same
/// variables and premises (the access kinds of one memory and target) share one check.
pub fn vacuous(set: &[Obligation]) -> Vec<String> {
    let mut groups: Vec<(Obligation, Vec<&str>)> = Vec::new();
    for o in set {
        match groups
            .iter_mut()
            .find(|(g, _)| g.vars == o.vars && g.premises == o.premises)
        {
            Some((_, names)) => names.push(&o.name),
            None => groups.push((
                Obligation {
                    claim: "false".to_string(),
                    steps: Vec::new(),
                    ..o.clone()
                },
                vec![&o.name],
            )),
        }
    }
    let (falses, names): (Vec<_>, Vec<_>) = groups.into_iter().unzip();
    run(falses)
        .into_iter()
        .zip(names)
        .filter(|(l, _)| !matches!(l.verdict, Verdict::Refuted(_)))
        .flat_map(|(l, names)| {
            names
                .into_iter()
                .map(move |n| format!("{n}: {}", l.verdict))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Decides the broken forms. Each line comes with, for a refutation, the counterexample run
/// through `meta/`'s trap condition (the interpreter's) and through the broken comparison,
/// which must disagree; `None` when they agree or it was not refuted.
///
/// Then the legalizer's own mutations ([`legalized::broken`]): each counterexample is run on
/// the interpreter through the instruction and through the broken expansion.
pub fn run_broken() -> Result<Vec<(Line, Option<String>)>, String> {
    let mut set = broken();
    set.extend(broken_souper()?);
    let legalizations = legalized::broken()?;
    let obligations = set
        .iter()
        .map(|b| b.obligation.clone())
        .chain(legalizations.iter().map(|b| b.obligation.clone()))
        .collect();
    let mut lines = run(obligations).into_iter();
    let mut out = Vec::new();
    for b in set {
        let l = lines.next().ok_or("an obligation without a line")?;
        let why = disagreement(&l, b.traps);
        out.push((l, why));
    }
    for b in legalizations {
        let l = lines.next().ok_or("an obligation without a line")?;
        let why = match &l.verdict {
            Verdict::Refuted(m) => b.disagreement(m),
            _ => None,
        };
        out.push((l, why));
    }
    #[cfg(feature = "pcc-mutants")]
    {
        let lowerings = lowered::broken()?;
        let lines = run(lowerings.iter().map(|b| b.obligation.clone()).collect());
        for (l, b) in lines.into_iter().zip(lowerings) {
            let why = match &l.verdict {
                Verdict::Refuted(m) => b.disagreement(m),
                _ => None,
            };
            out.push((l, why));
        }
    }
    Ok(out)
}

/// The case H Souper candidate with its text broken, each of which z3 must refute as
/// [`souper::obligation`] reads it: `K - 1` written for `K`, and the bound's range without
/// the minimum size that keeps `bound - K` from wrapping. (Its i32 index is `%index2`.)
fn broken_souper() -> Result<Vec<Broken>, String> {
    let e = legalized::case_h_souper()?;
    let mut out = Vec::new();
    let cases: [(&str, &str, &str, BrokenTraps); 2] = [
        ("K - 1", ", 20:i64", ", 19:i64", |get| {
            get("index2") > get("bound").wrapping_sub(19)
        }),
        ("the minimum dropped", "range=[65536,", "range=[0,", |get| {
            get("index2") > get("bound").wrapping_sub(20)
        }),
    ];
    for (what, from, to, traps) in cases {
        let cand = e.cand.replacen(from, to, 1);
        if cand == e.cand {
            return Err(format!(
                "the case H Souper candidate no longer has `{from}` to break:\n{}",
                e.cand
            ));
        }
        let mut o = souper::obligation(&souper::Export {
            cand,
            lhs: e.lhs.clone(),
        })?;
        o.name = format!("broken Souper candidate ({what}): {}", o.name);
        out.push(Broken {
            obligation: o,
            traps,
        });
    }
    Ok(out)
}

fn disagreement(l: &Line, broken_traps: BrokenTraps) -> Option<String> {
    let Verdict::Refuted(m) = &l.verdict else {
        return None;
    };
    let get = |n: &str| model_get(m, n).unwrap_or(0) as u64;
    let (index, bound) = (model_value(m, "index"), model_value(m, "bound"));
    let traps = crate::semantics::out_of_bounds(
        index as u64,
        get("offset"),
        get("access_size"),
        bound as u64,
    );
    let broken = broken_traps(&get);
    let says = |t: bool| if t { "traps" } else { "does not trap" };
    (traps != broken).then(|| {
        format!(
            "the interpreter {} there, the broken code {}",
            says(traps),
            says(broken)
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
        for l in run(obligations()
            .into_iter()
            .chain(kernel_obligations())
            .collect())
        {
            assert_eq!(l.verdict, Verdict::Proven, "{l}");
        }
        for (l, why) in run_broken().expect("the broken legalizations build") {
            assert!(why.is_some(), "{l}");
        }
    }
}
