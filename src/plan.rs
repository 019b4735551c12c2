//! The one planner: how each bounds-checked access is made safe.
//!
//! The trap condition is the instruction's definition (`semantics::out_of_bounds`: the access
//! traps when `index + K > bound` without wrapping, with `K = offset + size` from
//! `semantics::static_end`). What this module decides, once per access, is how much of that
//! condition the code must test and how, under the facts the memory declaration, constant
//! operands, the access's run and the target give:
//!
//! - no check at all, because the access can never be in bounds ([`Form::AlwaysTraps`]), is
//!   in bounds for every execution ([`Form::InBounds`]), or every out-of-bounds address lands
//!   in a range that faults ([`Form::Faults`]);
//! - no check of its own, because an earlier access of its run checks an end at least as
//!   large
//!   ([`Form::Covered`], see `plan::share`);
//! - an access that checks itself ([`Form::G32`], [`Form::G32Bne`]: Pulley's bounds-checking
//!   addressing modes, which compute `bound - K` without wrapping checks);
//! - an explicit comparison ([`Form::Explicit`]), whose form ([`Compare`]) is the cheapest one
//!   that is exact under the premises, consumed by a branch to a trap or, with Spectre
//!   mitigation, by selecting a null address.
//!
//! Every plan records the [`Premise`]s it relied on, so that a checker (proof-carrying code)
//! or a prover can re-establish each one, and every consumer only *renders* a plan: the
//! legalizer as CLIF, each backend as machine code. [`Plan`] has no public constructor: code
//! that emits an access without a check of its own can only be reached with a plan from here.
//!
//! ```compile_fail
//! // A backend cannot make up a plan.
//! let p = clif_bounds::plan::Plan { k: 4, form: clif_bounds::plan::Form::Faults, premises: Default::default() };
//! ```

use crate::ir::{types, Function, Inst, InstructionData, MemoryData, Opcode, Type, Value};
pub mod share;

use crate::target::{NullCheck, Target};
use share::Shared;
use smallvec::SmallVec;
use std::collections::HashMap;
use std::fmt;

/// What is known about one access when planning it, read off the IR.
#[derive(Clone, Copy, Debug)]
pub struct AccessFacts {
    /// The access.
    pub inst: Inst,
    /// The memory's declaration: `min <= bound <= max`, and the faulting ranges.
    pub mem: MemoryData,
    /// The index type (i32 or i64).
    pub index_ty: Type,
    /// The index, when it is a constant.
    pub const_index: Option<u64>,
    /// The bound, when it is a constant.
    pub const_bound: Option<u64>,
    /// The static offset.
    pub offset: u64,
    /// `K = offset + size`, from the instruction's definition.
    pub k: u64,
    /// The access is in the target's foreign byte order.
    pub foreign_order: bool,
    /// The accessed value lives in an integer register.
    pub integer: bool,
    /// A store rather than a load.
    pub store: bool,
    /// The bound is a trusted (`notrap`), native-order 64-bit load whose only use is this
    /// access and which lowering has not made yet: a backend may fold it into the access.
    pub bound_load: Option<BoundLoad>,
}

/// The load defining an access's bound, when it can be folded into the access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BoundLoad {
    /// The load.
    pub inst: Inst,
    /// Its address operand.
    pub addr: Value,
    /// Its offset.
    pub offset: i32,
}

impl AccessFacts {
    /// The facts of bounds-checked access `inst` of `func` (`None` for other instructions);
    /// `deferred` says whether lowering has yet to make an instruction's result, so that the
    /// access may fold it.
    pub fn of(
        func: &Function,
        target: &Target,
        inst: Inst,
        deferred: &dyn Fn(Inst) -> bool,
    ) -> Option<AccessFacts> {
        let dfg = &func.dfg;
        let a = dfg.insts[inst].bounds_checked_access()?;
        let ty = dfg.ctrl_type(inst);
        let bound_load = match dfg.value_def(a.bound) {
            crate::ir::ValueDef::Result(load, _) if deferred(load) => match dfg.insts[load] {
                InstructionData::Load {
                    opcode: Opcode::Load,
                    flags,
                    arg,
                    offset,
                } if flags.trap_code.is_none()
                    && flags.endianness.unwrap_or(target.endianness) == target.endianness
                    && dfg.value_type(a.bound) == types::I64 =>
                {
                    Some(BoundLoad {
                        inst: load,
                        addr: arg,
                        offset: offset.0,
                    })
                }
                _ => None,
            },
            _ => None,
        };
        Some(AccessFacts {
            inst,
            mem: func.memories[a.memory],
            index_ty: dfg.value_type(a.index),
            const_index: dfg.iconst_value(a.index),
            const_bound: dfg.iconst_value(a.bound),
            offset: a.offset,
            k: a.end(ty),
            foreign_order: a.flags.endianness.unwrap_or(target.endianness) != target.endianness,
            integer: !ty.is_float(),
            store: a.value.is_some(),
            bound_load,
        })
    }
}

/// How an access is made safe, with the premises that justify it. Made only by this module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    k: u64,
    form: Form,
    premises: SmallVec<[Premise; 2]>,
    probe_store: bool,
}

/// The shape of a plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// No execution is in bounds: trap unconditionally. A backend that renders it as a
    /// comparison instead renders `check`, which is always out of bounds.
    AlwaysTraps {
        /// `index + end > bound` with the carry checked: true in every execution.
        check: ExplicitCheck,
    },
    /// In bounds for every execution: a plain access at `base + disp`, `disp` being the
    /// zero-extended constant index plus the offset.
    InBounds {
        /// The access's distance from `base`.
        disp: u64,
    },
    /// Every out-of-bounds address faults: a plain access at `base + index + offset` that
    /// is a trap site.
    Faults,
    /// An earlier access of the run checked an end at least this access's: a plain access
    /// relative to the leader's checked address.
    Covered {
        /// The run's first access, whose plan is [`Form::Explicit`].
        leader: Inst,
        /// The checked address is null when the run is out of bounds (Spectre form): the
        /// access must be a trap site and stay within the target's null reach.
        nullable: bool,
        /// This access's offset minus the leader's.
        delta: i64,
    },
    /// Pulley's `*_g32` modes: the access traps when `index > bound - offset - size`. The
    /// mode's offset is 16 bits: `rebase` (a multiple of 2^16) moves into both `base` and
    /// `bound` first.
    G32 {
        /// Moved from the offset into `base + rebase` and `bound - rebase`.
        rebase: u64,
        /// What is left of the offset.
        offset: u16,
    },
    /// Pulley's `*_g32bne` modes: as `G32`, with the bound loaded from `*(addr + offset)` by
    /// the access itself.
    G32Bne {
        /// The folded bound load.
        bound: BoundLoad,
        /// The access's offset.
        offset: u8,
    },
    /// An explicit comparison before a plain access.
    Explicit {
        /// The comparison and how it is consumed.
        check: ExplicitCheck,
    },
}

/// An explicit check: a comparison, the end it checks, and how its result is consumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExplicitCheck {
    /// The comparison.
    pub compare: Compare,
    /// The end it checks: `K`, or the run's largest `K` when this access leads a run.
    pub end: u64,
    /// Spectre form: out of bounds, the address becomes null and the access traps there;
    /// otherwise a branch to a trap.
    pub null_select: bool,
    /// Part of the offset too large for the target's displacement, added to the base
    /// (once, where the base is defined) instead.
    pub rebase: u64,
    /// The bound's load, when the comparison may read the bound from memory itself
    /// ([`Target::compare_with_memory`]) instead of from a register.
    pub bound_load: Option<BoundLoad>,
}

/// The comparison of an explicit check, true when out of bounds; `index` is zero-extended to
/// pointer width, `end` the checked end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compare {
    /// `index > limit` with the constant `limit = bound - end`.
    ConstantBound {
        /// `bound - end`.
        limit: u64,
    },
    /// `index >= bound`, for `end == 1`.
    OneByte,
    /// `index > bound`: the guard after the bound catches the rest.
    Guard,
    /// `index > bound - end`, computed once where the bound is defined.
    BoundMinusEnd,
    /// `index + end > bound`; `may_wrap` when the sum can exceed the pointer width, so it
    /// must trap on the carry.
    EndAboveBound {
        /// The sum can wrap at pointer width.
        may_wrap: bool,
    },
}

/// A fact a plan relies on. Each is checkable from the memory declaration, the IR and the
/// target alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Premise {
    /// `K` exceeds the largest bound the memory can have (`max_bound`).
    EndAboveMaxBound {
        /// The largest bound, under the index type, the declared maximum and pointer width.
        max_bound: u128,
    },
    /// `K` does not fit the pointer width (case B of RFC.md).
    EndAbovePointerWidth,
    /// The index is this constant.
    ConstantIndex(u64),
    /// The bound is this constant.
    ConstantBound(u64),
    /// `bound >= min >= end`: the declared minimum size covers `end`.
    MinCovers {
        /// The end covered.
        end: u64,
    },
    /// Every end the index allows lies within the faulting range after the minimum bound:
    /// `index_max + K <= faulting_end(min)`, and faults are traps on this target.
    FaultingRangeCovers {
        /// The largest index.
        index_max: u128,
        /// `faulting_end(min)`.
        faulting_end: u128,
    },
    /// The guard after the bound is at least `end` bytes, and faults are traps.
    GuardCovers {
        /// The end covered.
        end: u64,
    },
    /// `index + end` cannot wrap at pointer width.
    SumFits,
    /// The run's first access checks an end at least this access's (`plan::share`): on a
    /// leader, the run's largest end, which it checks for the run.
    RunCheckedBy {
        /// The run's first access.
        leader: Inst,
        /// The end it checks.
        end: u64,
    },
    /// The index is wider than a pointer: the renderer traps when its bits above the pointer
    /// width are set (no bound can admit such an index), then checks the narrowed index.
    IndexNarrowed,
    /// An access within this distance of a null address faults, so a null checked address
    /// still traps ([`Target::null_check`]).
    NullReach {
        /// The distance.
        delta: i64,
    },
    /// The access instruction itself tests its base register for null.
    NullTestedByAccess,
    /// The access is a trap site: its fault is reported with its trap code.
    FaultIsTrap,
}

/// Which exploded form an access receives from the legalizer: the cases of RFC.md's table,
/// named after Wasmtime's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Case {
    /// Always traps: `offset + size` exceeds the largest bound.
    A,
    /// Always traps on a 32-bit host: `offset + size >= 2^32`.
    B,
    /// No check: guard pages catch every out-of-bounds access.
    C,
    /// No check: a constant index provably in bounds.
    D,
    /// One compare against a constant.
    E,
    /// One `uge` compare for a 1-byte access.
    F,
    /// One compare; the guard catches the rest.
    G,
    /// `isub` then compare, justified by the minimum size.
    H,
    /// Overflow-checked add then compare.
    I,
}

impl Case {
    /// Every case, in order.
    pub const ALL: [Case; 9] = [
        Case::A,
        Case::B,
        Case::C,
        Case::D,
        Case::E,
        Case::F,
        Case::G,
        Case::H,
        Case::I,
    ];
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl Plan {
    /// `K`: this access's `offset + size`.
    pub fn k(&self) -> u64 {
        self.k
    }

    /// The plan's shape.
    pub fn form(&self) -> Form {
        self.form
    }

    /// The premises the plan relies on.
    pub fn premises(&self) -> &[Premise] {
        &self.premises
    }

    /// The legalization case of RFC.md this plan is, for plans the legalizer makes.
    pub fn case(&self) -> Case {
        match self.form {
            Form::AlwaysTraps { .. } if self.premises.contains(&Premise::EndAbovePointerWidth) => {
                Case::B
            }
            Form::AlwaysTraps { .. } => Case::A,
            Form::InBounds { .. } => Case::D,
            Form::Faults => Case::C,
            Form::Explicit { check } => match check.compare {
                Compare::ConstantBound { .. } => Case::E,
                Compare::OneByte => Case::F,
                Compare::Guard => Case::G,
                Compare::BoundMinusEnd => Case::H,
                Compare::EndAboveBound { .. } => Case::I,
            },
            Form::Covered { .. } | Form::G32 { .. } | Form::G32Bne { .. } => {
                unreachable!("the legalizer plans no runs and no Pulley modes")
            }
        }
    }

    /// Whether the access instruction may fault and must report the fault as a trap.
    pub fn access_is_trap_site(&self) -> bool {
        self.premises.contains(&Premise::FaultIsTrap)
    }

    /// Whether a store must be preceded by a load of the same bytes at the same address, a
    /// trap site too ([`Target::stores_may_tear`]): the store may begin in bounds and end in
    /// a faulting range, where the target may write its first part before faulting, and the
    /// load faults with no effect wherever the store would.
    pub fn probe_store(&self) -> bool {
        self.probe_store
    }
}

/// What a consumer of plans can render, beyond the target's facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Renderer {
    /// `enable_heap_access_spectre_mitigation`.
    pub spectre: bool,
    /// Runs of accesses share one check (backends; the legalizer expands each alone).
    pub runs: bool,
    /// The target's bounds-checking addressing modes may be used (Pulley's `g32`).
    pub checked_modes: bool,
    /// The plan becomes CLIF (the legalizer), not machine code. Its plain accesses carry the
    /// trap code, which every lowering honours on a null address in either byte order, so
    /// the Spectre form needs no null-testing addressing mode.
    pub legalized: bool,
}

/// Plans every bounds-checked access of one block, in order, given the block's runs
/// (`share::runs`). A covered access relies on its leader's plan, made first.
pub fn plan_block(
    func: &Function,
    target: &Target,
    renderer: Renderer,
    block: crate::ir::Block,
    runs: &HashMap<Inst, Shared>,
    deferred: &dyn Fn(Inst) -> bool,
) -> HashMap<Inst, Plan> {
    let mut plans: HashMap<Inst, Plan> = HashMap::new();
    for &inst in func.layout.block_insts(block) {
        let Some(facts) = AccessFacts::of(func, target, inst, deferred) else {
            continue;
        };
        let run = runs.get(&inst).map(|s| match *s {
            Shared::Leader { end } => Run::Leads { end },
            Shared::Covered { leader } => Run::Follows {
                leader,
                plan: plans.get(&leader),
                leader_offset: func.dfg.insts[leader]
                    .bounds_checked_access()
                    .map_or(0, |l| l.offset),
            },
        });
        let p = plan(&facts, target, renderer, run);
        plans.insert(inst, p);
    }
    plans
}

/// An access's place in its run, as [`plan`] sees it.
#[derive(Clone, Copy, Debug)]
pub enum Run<'p> {
    /// It leads a run whose largest end is `end`.
    Leads {
        /// The run's largest `K`.
        end: u64,
    },
    /// It follows `leader`, planned as `plan`.
    Follows {
        /// The run's first access.
        leader: Inst,
        /// The leader's plan.
        plan: Option<&'p Plan>,
        /// The leader's offset.
        leader_offset: u64,
    },
}

/// The premises of one plan.
type Premises = SmallVec<[Premise; 2]>;

/// The plan for one access: the cheapest form that is correct for every execution the facts
/// allow. Backends and the legalizer render its result and never re-derive a premise.
///
/// The forms are tried in order; each stage returns a form only with the premises that make
/// it sound: in bounds for every execution, covered by its run's check, every out-of-bounds
/// address faulting, one of the target's bounds-checking modes, and otherwise an explicit
/// check (which, when no execution can be in bounds, always traps).
pub fn plan(facts: &AccessFacts, target: &Target, r: Renderer, run: Option<Run>) -> Plan {
    let mut premises = Premises::new();
    if facts.index_ty.bits() > target.pointer.bits() {
        premises.push(Premise::IndexNarrowed);
    }
    let never_in_bounds = always_traps(facts, target, facts.k).is_some();
    let form = None
        .or_else(|| in_bounds(facts, never_in_bounds, &mut premises))
        .or_else(|| covered(facts, target, r, run, &mut premises))
        .or_else(|| faulting(facts, target, never_in_bounds, &mut premises))
        .or_else(|| checked_mode(facts, target, r, &mut premises))
        .unwrap_or_else(|| explicit(facts, target, r, run, &mut premises));
    // A store that may begin in bounds and end in a faulting range, on a target where such
    // a store may write its first part before it faults: every trap site but an access
    // through the null address of a Spectre guard, unless that guard's check was
    // `index > bound` alone (an address it lets through may still end in the guard).
    let probe_store = facts.store
        && target.stores_may_tear
        && premises.contains(&Premise::FaultIsTrap)
        && match form {
            Form::Explicit { check } if check.null_select => check.compare == Compare::Guard,
            _ => true,
        };
    Plan {
        k: facts.k,
        form,
        premises,
        probe_store,
    }
}

/// A constant index in bounds for the smallest memory (case D).
fn in_bounds(f: &AccessFacts, never_in_bounds: bool, p: &mut Premises) -> Option<Form> {
    let i = f.const_index.filter(|_| !never_in_bounds)?;
    if u128::from(i) + u128::from(f.k) > u128::from(f.mem.min) {
        return None;
    }
    p.push(Premise::ConstantIndex(i));
    p.push(Premise::MinCovers { end: i + f.k });
    Some(Form::InBounds { disp: i + f.offset })
}

/// A later access of a run whose leader's explicit check covers it, when the leader's
/// address can serve it: in the Spectre form that address may be null, and this access must
/// still trap there.
fn covered(
    f: &AccessFacts,
    target: &Target,
    r: Renderer,
    run: Option<Run>,
    p: &mut Premises,
) -> Option<Form> {
    let Some(Run::Follows {
        leader,
        plan: Some(lp),
        leader_offset,
    }) = run.filter(|_| r.runs)
    else {
        return None;
    };
    let Form::Explicit { check } = lp.form else {
        return None;
    };
    let null_select = check.null_select;
    let delta = f.offset.wrapping_sub(leader_offset) as i64;
    let reachable = !null_select
        || match target.null_check {
            // The leader's null-or-checked address is its own `base + index + offset`: this
            // access stays within reach of null.
            NullCheck::Unmapped { reach } => delta.unsigned_abs() < reach,
            // The address is the leader's `base + index`, tested by the access itself, which
            // needs a null-testing mode and the whole offset in its displacement (the
            // leader's too).
            NullCheck::BaseRegister => {
                !f.foreign_order && check.rebase == 0 && f.offset <= target.max_displacement
            }
        };
    let addressable = match target.null_check {
        NullCheck::Unmapped { .. } => true,
        // Relative to the leader's `base + index`: the offset is the displacement.
        NullCheck::BaseRegister => f.offset <= target.max_displacement,
    };
    if !(reachable && addressable) {
        return None;
    }
    p.push(Premise::RunCheckedBy {
        leader,
        end: check.end,
    });
    if null_select {
        p.push(match target.null_check {
            NullCheck::Unmapped { .. } => Premise::NullReach { delta },
            NullCheck::BaseRegister => Premise::NullTestedByAccess,
        });
    }
    if null_select || target.faulting_ranges_trap() {
        // A nullable address faults on null; a run checked with only `index > bound` leaves
        // the guard to fault for the others.
        p.push(Premise::FaultIsTrap);
    }
    Some(Form::Covered {
        leader,
        nullable: null_select,
        delta,
    })
}

/// Every out-of-bounds address lands in a range that faults, and faults are traps (case C).
fn faulting(
    f: &AccessFacts,
    target: &Target,
    never_in_bounds: bool,
    p: &mut Premises,
) -> Option<Form> {
    if !target.faulting_ranges_trap() || never_in_bounds {
        return None;
    }
    let index_max = index_max(f.index_ty, target.pointer);
    // The faulting range is shortest when the bound is at its minimum.
    let faulting_end = f.mem.faulting_end(f.mem.min);
    if index_max + u128::from(f.k) > faulting_end {
        return None;
    }
    p.push(Premise::FaultingRangeCovers {
        index_max,
        faulting_end,
    });
    p.push(Premise::FaultIsTrap);
    Some(Form::Faults)
}

/// Pulley's bounds-checking modes, for i32 indexes in native order. Their unchecked
/// `bound - offset - size` needs `bound >= K`.
fn checked_mode(f: &AccessFacts, target: &Target, r: Renderer, p: &mut Premises) -> Option<Form> {
    let modes = target.checked_modes.filter(|_| r.checked_modes)?;
    if f.index_ty != types::I32 || f.foreign_order {
        return None;
    }
    let k = f.k;
    // g32bne reads the bound itself; only the minimum size can vouch for it.
    if let (true, Some(b), Ok(offset)) = (
        f.integer && f.mem.min >= k,
        f.bound_load,
        u8::try_from(f.offset),
    ) {
        if u64::try_from(b.offset).is_ok_and(|o| o <= modes.bne_bound_offset_max)
            && u64::from(offset) <= modes.bne_offset_max
        {
            p.push(Premise::MinCovers { end: k });
            return Some(Form::G32Bne { bound: b, offset });
        }
    }
    let covers =
        if f.mem.min >= k || crate::mutants::active(crate::mutants::Mutant::G32WithoutPremise) {
            Premise::MinCovers { end: k }
        } else {
            Premise::ConstantBound(f.const_bound.filter(|&b| b >= k)?)
        };
    p.push(covers);
    // `bound - rebase` cannot wrap: `bound >= K > rebase`.
    let rebase = f.offset & !modes.offset_max;
    Some(Form::G32 {
        rebase,
        offset: (f.offset - rebase) as u16,
    })
}

/// An explicit check, of the run's largest end when this access leads a run: always trapping
/// when no execution can be in bounds, else the cheapest exact comparison.
fn explicit(
    f: &AccessFacts,
    target: &Target,
    r: Renderer,
    run: Option<Run>,
    p: &mut Premises,
) -> Form {
    let end = match run.filter(|_| r.runs) {
        Some(Run::Leads { end }) => end,
        _ => f.k,
    };
    if end != f.k {
        p.push(Premise::RunCheckedBy {
            leader: f.inst,
            end,
        });
    }
    let widened = AccessFacts { k: end, ..*f };
    // The legalizer's plain accesses carry the trap code, which every lowering honours on
    // null in either byte order.
    let null_select = r.spectre && (r.legalized || target.null_traps(f.foreign_order));
    if let Some(premise) = always_traps(&widened, target, end) {
        p.push(premise);
        if let Some(pw) = pointer_width_premise(target, end) {
            p.push(pw);
        }
        // Backends that cannot branch unconditionally still render a comparison that is
        // always true; the legalizer and x86_64 trap outright.
        return Form::AlwaysTraps {
            check: ExplicitCheck {
                compare: Compare::EndAboveBound { may_wrap: true },
                end,
                null_select,
                rebase: rebase(f, target),
                bound_load: None,
            },
        };
    }
    let index_max = index_max(f.index_ty, target.pointer);
    let (compare, premise) = compare(&widened, target, index_max);
    // x86_64 compares with the bound in memory: a bound loaded right here is cheaper
    // compared with `index + end` in one `cmp` than subtracted in a register first, where
    // the sum cannot wrap (an i32 index plus an end that fits a displacement).
    let compare = match (compare, premise) {
        (Compare::BoundMinusEnd, _)
            if target.compare_with_memory
                && f.bound_load.is_some()
                && end <= target.max_displacement
                && f.index_ty == types::I32 =>
        {
            p.push(Premise::SumFits);
            Compare::EndAboveBound { may_wrap: false }
        }
        (c, Some(premise)) => {
            p.push(premise);
            c
        }
        (c, None) => c,
    };
    if null_select || compare == Compare::Guard {
        p.push(Premise::FaultIsTrap);
    }
    if null_select {
        p.push(match target.null_check {
            NullCheck::Unmapped { .. } => Premise::NullReach { delta: 0 },
            NullCheck::BaseRegister => Premise::NullTestedByAccess,
        });
    }
    Form::Explicit {
        check: ExplicitCheck {
            compare,
            end,
            null_select,
            rebase: rebase(f, target),
            bound_load: f.bound_load.filter(|_| target.compare_with_memory),
        },
    }
}

/// The part of the offset that does not fit the target's displacement.
fn rebase(facts: &AccessFacts, target: &Target) -> u64 {
    if facts.offset > target.max_displacement {
        facts.offset
    } else {
        0
    }
}

/// The largest index the index type and the pointer width allow.
fn index_max(index_ty: Type, pointer: Type) -> u128 {
    let index: u128 = if index_ty == types::I32 {
        u32::MAX.into()
    } else {
        u64::MAX.into()
    };
    index.min((1u128 << pointer.bits()) - 1)
}

fn pointer_width_premise(target: &Target, k: u64) -> Option<Premise> {
    (u128::from(k) > (1u128 << target.pointer.bits()) - 1).then_some(Premise::EndAbovePointerWidth)
}

/// Why no execution of the access checked to end `k` is in bounds, if none is.
fn always_traps(facts: &AccessFacts, target: &Target, k: u64) -> Option<Premise> {
    let k128 = u128::from(k);
    let max_bound = facts.mem.max_bound(target.pointer);
    if k128 > max_bound {
        return Some(Premise::EndAboveMaxBound { max_bound });
    }
    if let Some(i) = facts.const_index {
        if u128::from(i) + k128 > max_bound {
            return Some(Premise::ConstantIndex(i));
        }
    }
    if let Some(b) = facts.const_bound {
        let beyond = facts
            .const_index
            .is_some_and(|i| crate::semantics::out_of_bounds(i, 0, k, b));
        if u128::from(b) < k128 || beyond {
            return Some(Premise::ConstantBound(b));
        }
    }
    None
}

/// The cheapest comparison exact under the facts, in the order of RFC.md's table, and the
/// premise that makes it exact.
fn compare(facts: &AccessFacts, target: &Target, index_max: u128) -> (Compare, Option<Premise>) {
    let end = facts.k;
    let k = u128::from(end);
    if let Some(b) = facts.const_bound {
        return (
            Compare::ConstantBound { limit: b - end },
            Some(Premise::ConstantBound(b)),
        );
    }
    if end == 1 {
        return (Compare::OneByte, None);
    }
    if target.faulting_ranges_trap() && k <= u128::from(facts.mem.guard) {
        return (Compare::Guard, Some(Premise::GuardCovers { end }));
    }
    if k <= u128::from(facts.mem.min) {
        return (Compare::BoundMinusEnd, Some(Premise::MinCovers { end }));
    }
    let may_wrap = index_max + k > (1u128 << target.pointer.bits()) - 1;
    (
        Compare::EndAboveBound { may_wrap },
        (!may_wrap).then_some(Premise::SumFits),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(mem: MemoryData, index_ty: Type, k: u64) -> AccessFacts {
        AccessFacts {
            inst: Inst::from_u32(0),
            mem,
            index_ty,
            const_index: None,
            const_bound: None,
            offset: k.saturating_sub(4),
            k,
            foreign_order: false,
            integer: true,
            store: false,
            bound_load: None,
        }
    }

    fn mem(min: u64, guard: u64, reservation: Option<u64>) -> MemoryData {
        MemoryData {
            index_type: types::I32,
            min,
            max: None,
            reservation,
            guard,
        }
    }

    const NONE: Renderer = Renderer {
        spectre: false,
        runs: false,
        checked_modes: false,
        legalized: false,
    };

    #[test]
    fn faulting_ranges_are_relied_on_only_where_faults_trap() {
        let f = facts(mem(0, 1 << 31, Some(1 << 32)), types::I32, 8);
        let p = plan(&f, &Target::X86_64, NONE, None);
        assert_eq!(p.form(), Form::Faults);
        assert!(p.access_is_trap_site());
        let p = plan(&f, &Target::PULLEY64, NONE, None);
        assert!(
            matches!(
                p.form(),
                Form::Explicit {
                    check: ExplicitCheck {
                        compare: Compare::EndAboveBound { may_wrap: false },
                        ..
                    }
                }
            ),
            "{p:?}"
        );
    }

    #[test]
    fn g32_needs_bound_at_least_k() {
        let pulley = &Target::PULLEY64;
        let r = Renderer {
            checked_modes: true,
            ..NONE
        };
        let p = plan(
            &facts(mem(0x1_0000, 0, None), types::I32, 0x1_0000),
            pulley,
            r,
            None,
        );
        assert!(
            matches!(
                p.form(),
                Form::G32 {
                    rebase: 0,
                    offset: 0xfffc
                }
            ),
            "{p:?}"
        );
        assert!(p.premises().contains(&Premise::MinCovers { end: 0x1_0000 }));
        // One byte more than the minimum: the interpreter's subtraction could wrap.
        let p = plan(
            &facts(mem(0x1_0000, 0, None), types::I32, 0x1_0001),
            pulley,
            r,
            None,
        );
        assert!(matches!(p.form(), Form::Explicit { .. }), "{p:?}");
    }

    /// Every plan is exact under its premises, for every index and bound the declaration
    /// allows (sampled at the edges): an access that always traps is out of bounds, one in
    /// bounds is not, a faulting plan's out-of-bounds accesses end within the faulting range,
    /// Pulley's modes trap exactly when the access is out of bounds (their unchecked `bound -
    /// K` never wraps), and each explicit comparison is the trap condition itself (the guard
    /// form: or the guard catches the rest).
    #[test]
    fn every_plan_is_exact_under_its_declaration() {
        let mut plans = 0;
        let mut points = 0u64;
        let mut forms = std::collections::BTreeSet::new();
        for target in [&Target::X86_64, &Target::PULLEY64] {
            for spectre in [false, true] {
                let r = Renderer {
                    spectre,
                    runs: false,
                    checked_modes: true,
                    legalized: false,
                };
                for index_ty in [types::I32, types::I64] {
                    for (min, max) in [(0, None), (0x1_0000, Some(0x1_0000)), (0x1_0000, None)] {
                        for guard in [0, 0x1_0000, 1 << 31] {
                            for reservation in [None, Some(1 << 32)] {
                                let mem = MemoryData {
                                    index_type: index_ty,
                                    min,
                                    max,
                                    reservation,
                                    guard,
                                };
                                for offset in [0, 4, 0xfff8, 0xfffd, 0xfffe, 0xffff_0000, 1 << 33] {
                                    for size in [1, 4, 8] {
                                        for konst in [None, Some(0), Some(0xfff8), Some(1 << 32)] {
                                            let f = AccessFacts {
                                                const_index: konst.filter(|_| offset == 0),
                                                const_bound: konst.filter(|_| offset == 4),
                                                offset,
                                                k: offset + size,
                                                ..facts(mem, index_ty, offset + size)
                                            };
                                            let p = plan(&f, target, r, None);
                                            plans += 1;
                                            forms.insert(
                                                format!("{:?}", p.form())
                                                    .split([' ', '{'])
                                                    .next()
                                                    .unwrap()
                                                    .to_string(),
                                            );
                                            points += check_plan(&f, &p, target);
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        // Every form the planner has without runs and bound loads was exercised.
        for form in ["AlwaysTraps", "InBounds", "Faults", "G32", "Explicit"] {
            assert!(forms.contains(form), "no {form} plan in {forms:?}");
        }
        assert!(
            plans > 1000 && points > 100_000,
            "{plans} plans, {points} points"
        );
    }

    /// Checks `p` against the trap condition at every sampled index and bound `f` allows;
    /// returns the number of points.
    fn check_plan(f: &AccessFacts, p: &Plan, target: &Target) -> u64 {
        const EDGES: [u64; 12] = [
            0,
            1,
            0xfff7,
            0xfff8,
            0x1_0000,
            0xffff_fffb,
            0xffff_fffc,
            0xffff_ffff,
            1 << 32,
            u64::MAX - 8,
            u64::MAX - 1,
            u64::MAX,
        ];
        let max_bound = f.mem.max_bound(target.pointer);
        let index_max = index_max(f.index_ty, target.pointer);
        let k = u128::from(f.k);
        let mut points = 0;
        for &index in &EDGES {
            let index = f.const_index.unwrap_or(index);
            if u128::from(index) > index_max {
                continue;
            }
            for &bound in EDGES.iter().chain(&[f.mem.min, f.k, f.k - 1]) {
                let bound = f.const_bound.unwrap_or(bound);
                let declared = bound >= f.mem.min
                    && u128::from(bound) <= max_bound
                    && f.mem.reservation.is_none_or(|r| bound <= r);
                if !declared {
                    continue;
                }
                points += 1;
                let oob = crate::semantics::out_of_bounds(index, f.offset, f.k - f.offset, bound);
                let (i, b) = (u128::from(index), u128::from(bound));
                let at = format!("{p:?} index {index:#x} bound {bound:#x} {f:?}");
                match p.form() {
                    Form::AlwaysTraps { .. } => assert!(oob, "{at}"),
                    Form::InBounds { disp } => {
                        assert!(!oob, "{at}");
                        assert_eq!(disp, index + f.offset, "{at}");
                    }
                    Form::Faults => {
                        assert!(target.faulting_ranges_trap(), "{at}");
                        assert!(!oob || i + k <= f.mem.faulting_end(bound), "{at}");
                    }
                    Form::G32 { rebase, offset } => {
                        assert!(b >= k && rebase < f.k, "{at}");
                        let limit = (bound - rebase) - u64::from(offset) - (f.k - f.offset);
                        assert_eq!(index > limit, oob, "{at}");
                    }
                    Form::Explicit { check } => {
                        let end = u128::from(check.end);
                        let c = match check.compare {
                            Compare::ConstantBound { limit } => {
                                assert_eq!(f.const_bound, Some(bound), "{at}");
                                i > u128::from(limit)
                            }
                            Compare::OneByte => i >= b,
                            Compare::Guard => i > b,
                            Compare::BoundMinusEnd => {
                                assert!(b >= end, "{at}");
                                i > b - end
                            }
                            Compare::EndAboveBound { may_wrap } => {
                                let sum = i + end;
                                assert!(may_wrap || sum <= u128::from(u64::MAX), "{at}");
                                sum > b
                            }
                        };
                        if check.compare == Compare::Guard {
                            // Not out of bounds by the comparison: the guard catches the rest.
                            assert!(c || !oob || i + k <= f.mem.faulting_end(bound), "{at}");
                            assert!(!c || oob, "{at}");
                        } else {
                            assert_eq!(c, oob, "{at}");
                        }
                    }
                    Form::Covered { .. } | Form::G32Bne { .. } => {
                        unreachable!("no runs and no bound loads here")
                    }
                }
            }
        }
        points
    }
}
