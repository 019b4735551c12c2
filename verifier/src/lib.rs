//! The trusted kernel of proof-carrying code (PCC) for `clif-bounds`: a language of facts
//! about the values of machine code, the rules that derive facts from the operations machine
//! instructions perform, and the check that every memory access lies inside a declared
//! region or inside a range that faults.
//!
//! The kernel knows no IR, no backend and no register allocator. A *value* is a number (a
//! backend's SSA virtual register before allocation); an ISA describes each of its machine
//! instructions to the kernel as the operations of this crate ([`Checker::add`],
//! [`Checker::compare`], [`Checker::assume`], [`Checker::access`], ...), and the kernel
//! answers with facts or with a [`PccError`] that says which fact was needed and which was
//! had.
//!
//! # The soundness claim
//!
//! Let a function's machine code be checked without error against [`Declarations`] `D`.
//! Then, in every execution in which `D`'s assumptions hold (below), every memory access
//! the ISA reported to [`Checker::access`] or [`Checker::g32`]
//! - reads or writes only bytes of `[base, base + bound)` of a declared [`Region`] (the
//!   linear memory's accessible bytes, for the `bound` value paired with that `base`), or
//! - touches a byte of a range that faults: `[base + bound, base + faulting_end(bound))` or
//!   `[0, null_reach)`, on a target whose faults there are traps, at an instruction that is
//!   a trap site, or
//! - is not made: the instruction itself tests the address first (Pulley's `_z` and `g32`
//!   modes) and traps.
//!
//! # What is trusted
//!
//! - This crate: the fact language, each rule below, and [`Checker::access`].
//! - The assumptions `D` states: for each region, the memory type (`min <= bound <= max`,
//!   the faulting range after the bound) and that `base`/`bound` are the operands one
//!   bounds-checked access was given; for each field, that reading it yields the value it
//!   holds; that faults in faulting ranges and below `null_reach` are reported as traps.
//!   These come from the IR and the runtime, not from the code being checked.
//! - Each ISA's transfer rules: that the kernel operations an ISA names for an instruction
//!   are what the instruction does, and the convention they assume where no instruction
//!   says more (x86_64: a register holding an i32 parameter or call result has its upper
//!   half clear; checked where this code passes such values on, assumed where it receives
//!   them). They are kept beside each ISA's instructions, as one
//!   exhaustive `match`, so that a new instruction does not compile without its rule.
//! - The walk that presents instructions in an order where every definition comes before
//!   its uses and every assumption ([`Checker::assume`]) is visible only where it holds
//!   (scopes follow the dominator tree, [`Checker::mark`] / [`Checker::undo`]).
//!
//! What is *not* trusted: lowering, the planner's decisions, the optimizer. A lowering bug
//! that drops or weakens a check, widens an access or misplaces an address makes an access
//! unprovable, and the check fails.
//!
//! # Invariants
//!
//! - A [`Fact`] stated about a value holds for that value at every point where the checker
//!   states it. Values are SSA, so a fact established by a definition holds everywhere the
//!   definition dominates; facts from [`Checker::assume`] hold only in the scope they were
//!   made in.
//! - Integers are unsigned 64-bit register contents; ranges never wrap. A rule whose result
//!   could wrap answers the full range instead.
//! - A symbolic upper bound `v <= bound + k` names a value that is the bound of a region;
//!   `k` is exact arithmetic (`i128`), never wrapped.

#![deny(missing_docs)]

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

/// A hasher for value numbers (small integers): one multiplication, no per-map seed. The
/// checker looks facts up for every operand of every instruction, and the standard hasher's
/// cost showed in the proof's time.
#[derive(Default)]
struct ValueHasher(u64);

impl Hasher for ValueHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(v)).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

type Map<T> = HashMap<Value, T, BuildHasherDefault<ValueHasher>>;
type Set = HashSet<Value, BuildHasherDefault<ValueHasher>>;

/// A machine value: a virtual register number, before register allocation.
pub type Value = u32;

/// A linear memory's type: what every execution guarantees about its bound and the bytes
/// after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryType {
    /// The bound is at least this many bytes.
    pub min: u64,
    /// The bound is at most this many bytes.
    pub max: u64,
    /// The end (from the base, exclusive) of the faulting range for the smallest bound:
    /// every bound's faulting range `[bound, faulting_end(bound))` reaches at least this far
    /// (the declaration's `faulting_end(min)`).
    pub least_faulting_end: u128,
    /// Bytes after every bound that fault: `[bound, bound + guard)` is always faulting.
    pub guard: u64,
    /// The base may change when the memory grows (no reservation).
    pub may_move: bool,
}

/// A linear memory as one access sees it: its base and bound values and its type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// The memory's type.
    pub memory: MemoryType,
    /// The value holding the base address.
    pub base: Value,
    /// The value holding the bound (whether or not the machine code ever materialises it).
    pub bound: Value,
    /// The bound, when it is a constant of the IR.
    pub bound_const: Option<u64>,
}

/// A field of the VM context: reading `offset` bytes past value `addr` yields value
/// `holds` (the base or bound of a region, as the IR defines them by loads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// The value the field is addressed from (the VM context).
    pub addr: Value,
    /// Byte offset of the field.
    pub offset: i64,
    /// The value the field holds.
    pub holds: Value,
    /// Whether the field is read-only while the function runs.
    pub readonly: bool,
    /// Where the read that yields `holds` is: in block `.0`, after `.1` calls of that block.
    /// A field that calls may change (a memory's bound or movable base after `memory.grow`)
    /// holds different values at different points; a read is matched to its holder by this.
    pub at: (u32, u32),
}

/// Everything the kernel assumes about a function: its regions and fields, and the target's
/// faulting behaviour.
#[derive(Clone, Debug, Default)]
pub struct Declarations {
    /// The regions, one per distinct `(base, bound)` pair of bounds-checked accesses.
    pub regions: Vec<Region>,
    /// The VM context fields the function reads bases and bounds from.
    pub fields: Vec<Field>,
    /// Structs: value `.0` points to `.1` accessible bytes (the VM context).
    pub structs: Vec<(Value, u64)>,
    /// Accesses within this many bytes of address 0 fault (0: none do).
    pub null_reach: u64,
    /// Faults in faulting ranges (guards, unmapped reservations, the null page) are
    /// reported as traps with the access's trap code.
    pub faults_trap: bool,
}

/// A symbolic quantity: the value of region bound `bound`, plus `k`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sym {
    /// A value that is the bound of a region.
    pub bound: Value,
    /// The exact addend.
    pub k: i128,
}

impl Sym {
    fn plus(self, k: i128) -> Sym {
        Sym {
            bound: self.bound,
            // Saturating: an upper bound moved toward either limit only gets weaker.
            k: self.k.saturating_add(k),
        }
    }
}

/// A comparison operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    /// A value.
    Value(Value),
    /// A constant.
    Imm(u64),
}

/// A condition on two operands. Signed and float conditions are [`Cc::Other`]: they
/// refine nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Cc {
    Eq,
    Ne,
    Ult,
    Ule,
    Ugt,
    Uge,
    Other,
}

/// A comparison of `a` and `b` on their low `bits` bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cmp {
    /// The condition.
    pub cc: Cc,
    /// Left operand.
    pub a: Operand,
    /// Right operand.
    pub b: Operand,
    /// Compared width: 32 or 64.
    pub bits: u8,
}

/// What is known about a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fact {
    /// An integer `lo <= v <= hi`, and `v <= le` when `le` is given.
    Int {
        /// Least value.
        lo: u64,
        /// Greatest value.
        hi: u64,
        /// A symbolic upper bound.
        le: Option<Sym>,
    },
    /// A pointer `base + off` into the region(s) whose base is value `base`, with
    /// `lo <= off <= hi` and `off <= le`; or, when `null` is given, possibly instead an
    /// absolute address in `[null.0, null.1]` (a Spectre guard replaced it by null and
    /// something was added since).
    Ptr {
        /// The base value.
        base: Value,
        /// Least offset.
        lo: u64,
        /// Greatest offset.
        hi: u64,
        /// A symbolic upper bound on the offset.
        le: Option<Sym>,
        /// The range of the null case.
        null: Option<(u64, u64)>,
    },
    /// 1 when the comparison holds, 0 otherwise, in the low bit of a flag or a register
    /// whose value is at most the second field (what the rest of the register holds differs
    /// between ISAs: `u64::MAX` until a zero-extension bounds it).
    Bool(Cmp, u64),
}

impl Fact {
    /// Nothing known: any 64-bit integer.
    pub const ANY: Fact = Fact::Int {
        lo: 0,
        hi: u64::MAX,
        le: None,
    };

    /// The constant `k`.
    pub fn constant(k: u64) -> Fact {
        Fact::Int {
            lo: k,
            hi: k,
            le: None,
        }
    }

    /// Any integer of `bits` bits (zero-extended).
    pub fn bits(bits: u8) -> Fact {
        Fact::Int {
            lo: 0,
            hi: mask(bits),
            le: None,
        }
    }

    /// The constant this fact pins down, if any.
    pub fn as_constant(&self) -> Option<u64> {
        match *self {
            Fact::Int { lo, hi, .. } if lo == hi => Some(lo),
            _ => None,
        }
    }

    /// Whether every value this fact allows, `other` allows too.
    pub fn implies(&self, other: &Fact) -> bool {
        match (*self, *other) {
            (_, o) if o == Fact::ANY => true,
            (
                Fact::Int { lo, hi, le },
                Fact::Int {
                    lo: l2,
                    hi: h2,
                    le: e2,
                },
            ) => {
                lo >= l2
                    && hi <= h2
                    && match (le, e2) {
                        (_, None) => true,
                        (Some(a), Some(b)) => a.bound == b.bound && a.k <= b.k,
                        (None, Some(_)) => false,
                    }
            }
            // A condition as an integer: the whole register's range.
            (
                Fact::Bool(_, hi),
                Fact::Int {
                    lo: 0,
                    hi: h2,
                    le: None,
                },
            ) => hi <= h2,
            (a, b) => a == b,
        }
    }
}

fn mask(bits: u8) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

impl fmt::Display for Sym {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.k {
            0 => write!(f, "v{}", self.bound),
            k if k < 0 => write!(f, "v{} - {:#x}", self.bound, -k),
            k => write!(f, "v{} + {k:#x}", self.bound),
        }
    }
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Operand::Value(v) => write!(f, "v{v}"),
            Operand::Imm(k) => write!(f, "{k:#x}"),
        }
    }
}

impl fmt::Display for Fact {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match *self {
            Fact::Int { lo, hi, le } => {
                if lo == hi && le.is_none() {
                    return write!(f, "== {lo:#x}");
                }
                write!(f, "range({lo:#x}, {hi:#x})")?;
                if let Some(s) = le {
                    write!(f, " <= {s}")?;
                }
                Ok(())
            }
            Fact::Ptr {
                base,
                lo,
                hi,
                le,
                null,
            } => {
                write!(f, "mem(v{base}, {lo:#x}, {hi:#x})")?;
                if let Some(s) = le {
                    write!(f, " offset <= {s}")?;
                }
                if let Some((a, b)) = null {
                    write!(f, " or null+[{a:#x}, {b:#x}]")?;
                }
                Ok(())
            }
            Fact::Bool(c, hi) => {
                write!(f, "flags({:?}{} {}, {})", c.cc, c.bits, c.a, c.b)?;
                if hi != u64::MAX {
                    write!(f, " <= {hi:#x}")?;
                }
                Ok(())
            }
        }
    }
}

/// A fact that was needed and not had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PccError {
    /// What the check needed.
    pub needed: String,
    /// What was known.
    pub had: String,
}

impl fmt::Display for PccError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "needed {}, had {}", self.needed, self.had)
    }
}

impl std::error::Error for PccError {}

fn err<T>(needed: impl Into<String>, had: impl fmt::Display) -> Result<T, PccError> {
    Err(PccError {
        needed: needed.into(),
        had: had.to_string(),
    })
}

/// How an access was proven safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proof {
    /// Every byte is inside a region's accessible range.
    Accessible,
    /// Every byte is accessible or inside a faulting range, and a fault there is a trap.
    AccessibleOrFaults,
    /// A VM context field.
    Field,
    /// A stack slot of the frame.
    Stack,
    /// It never touches memory: no execution reaches it (an assumption in scope contradicts
    /// the facts: the check before it always fails, as for any access to a memory whose
    /// bound is 0), or its base is always null and the instruction traps on null.
    NeverAccesses,
}

/// An address as an access computes it: `base + index + disp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Address {
    /// The base register's value.
    pub base: Value,
    /// The index register's value (zero-extended to 64 bits by the hardware when `index32`).
    pub index: Option<Value>,
    /// The constant displacement.
    pub disp: i64,
}

/// A sum the checker can reason back through: `v = a + b + disp` modulo 2^64. Re-derived
/// from its operands' facts where they are narrower, it is exact whenever the re-derived
/// range does not wrap (the rules answer "anything" when it might). `no_wrap`: it never
/// wraps, so a bound on `v` bounds `a` too.
#[derive(Clone, Copy, Debug)]
struct Sum {
    a: Value,
    b: Operand,
    disp: i64,
    no_wrap: bool,
    /// The width of the sum: one that never wraps stays below `2^bits`.
    bits: u8,
}

/// The checker's state for one function: declarations, the fact of every defined value,
/// exact sums, and the assumptions in scope.
pub struct Checker {
    decls: Declarations,
    facts: Map<Fact>,
    sums: Map<Sum>,
    /// Upper bounds assumed on values, innermost last: `(value, static, symbolic)`.
    assumed: Vec<(Value, u64, Option<Sym>)>,
    /// Upper bounds assumed on the low 32 bits of values whose upper bits are unknown (a
    /// 32-bit comparison on Pulley), for their zero-extension.
    assumed_low32: Vec<(Value, u64)>,
    /// The current block and the number of calls made in it so far.
    at: (u32, u32),
    /// Values defined so far on the walk.
    defined: Set,
    /// Bases of memories that may move such that a call may have run since they were loaded
    /// (on some path to here): the call may have grown the memory, and they may point to
    /// freed memory.
    stale: Set,
    /// Declared values whose next definition was shown to produce them ([`Checker::param`],
    /// [`Checker::read_into`], [`Checker::constant`]).
    vouched: Set,
    /// The first rule violated by a definition, for [`Checker::take_violation`].
    violation: Option<PccError>,
    /// Assumptions in scope that no values satisfy: code under one never runs.
    infeasible: usize,
}

/// A scope for [`Checker::undo`].
#[derive(Clone, Copy, Debug)]
pub struct Mark {
    assumed: usize,
    assumed_low32: usize,
    infeasible: usize,
}

impl Checker {
    /// A checker for a function with declarations `decls`: region bases and bounds have the
    /// facts their types give them.
    pub fn new(decls: Declarations) -> Checker {
        let mut facts = Map::default();
        for r in &decls.regions {
            facts.insert(
                r.base,
                Fact::Ptr {
                    base: r.base,
                    lo: 0,
                    hi: 0,
                    le: None,
                    null: None,
                },
            );
            let (lo, hi) = match r.bound_const {
                Some(k) => (k, k),
                None => (r.memory.min, r.memory.max.max(r.memory.min)),
            };
            facts.insert(
                r.bound,
                Fact::Int {
                    lo,
                    hi,
                    le: Some(Sym {
                        bound: r.bound,
                        k: 0,
                    }),
                },
            );
        }
        for &(v, _) in &decls.structs {
            facts.insert(
                v,
                Fact::Ptr {
                    base: v,
                    lo: 0,
                    hi: 0,
                    le: None,
                    null: None,
                },
            );
        }
        Checker {
            decls,
            facts,
            sums: Map::default(),
            assumed: Vec::new(),
            assumed_low32: Vec::new(),
            at: (0, 0),
            defined: Default::default(),
            stale: Default::default(),
            vouched: Default::default(),
            violation: None,
            infeasible: 0,
        }
    }

    /// The walk enters block `b`.
    pub fn enter_block(&mut self, b: u32) {
        self.at = (b, 0);
    }

    /// A call is made here: fields calls may change hold their next values, and the bases
    /// of memories that may move are stale until they are loaded again.
    pub fn call(&mut self) {
        self.at.1 += 1;
        let moving = self.moving_bases();
        self.stale.extend(moving);
    }

    /// The bases of memories that may move.
    pub fn moving_bases(&self) -> Vec<Value> {
        self.decls
            .regions
            .iter()
            .filter(|r| r.memory.may_move)
            .map(|r| r.base)
            .collect()
    }

    /// The bases that may be stale on entry to the block being entered (the walk computes
    /// them by a forward dataflow over all paths, [`Checker::moving_bases`]).
    pub fn set_stale(&mut self, stale: impl IntoIterator<Item = Value>) {
        self.stale.clear();
        self.stale.extend(stale);
    }

    /// The first rule a definition violated since the last call, if any.
    pub fn take_violation(&mut self) -> Option<PccError> {
        self.violation.take()
    }

    /// `v` is a parameter or call result: the IR's contract names it (a declared base or
    /// bound may be one).
    pub fn param(&mut self, v: Value, fact: Fact) {
        self.vouched.insert(v);
        self.define(v, fact);
    }

    /// `v` is loaded, `width` bytes, from `addr`: a declared base or bound must be loaded
    /// whole from the field that holds it.
    pub fn read_into(&mut self, v: Value, addr: Address, width: u64) {
        if !self.is_declared(v) {
            return;
        }
        let holds = addr.index.is_none()
            && width == 8
            && self
                .decls
                .fields
                .iter()
                .any(|f| f.addr == addr.base && f.offset == addr.disp && f.holds == v);
        if holds {
            self.vouched.insert(v);
        }
    }

    /// Whether `v` is a declared base or bound (its fact comes from the declarations and
    /// no instruction may restate it).
    pub fn is_declared(&self, v: Value) -> bool {
        self.decls
            .regions
            .iter()
            .any(|r| r.base == v || r.bound == v)
            || self.decls.structs.iter().any(|s| s.0 == v)
    }

    /// States the fact of a value an instruction defines. A declared base or bound keeps its
    /// declared fact, provided its definition was shown to produce it (a parameter, a
    /// whole read of its field, its constant); any other definition of it, or a second
    /// definition of any value (the code must be in SSA form), is a violation.
    pub fn define(&mut self, v: Value, fact: Fact) {
        if !self.defined.insert(v) {
            self.violate(format!("one definition of v{v} (SSA form)"), "a second one");
            return;
        }
        // A base defined here is fresh, whatever calls came before.
        self.stale.remove(&v);
        if self.is_declared(v) {
            if !self.vouched.remove(&v) {
                self.violate(
                    format!("v{v}, a declared base or bound, defined as a parameter, by a whole read of its field or as its constant"),
                    format!("another definition, {fact}"),
                );
            }
            return;
        }
        self.facts.insert(v, fact);
    }

    fn violate(&mut self, needed: String, had: impl fmt::Display) {
        self.violation.get_or_insert(PccError {
            needed,
            had: had.to_string(),
        });
    }

    /// The fact of `v` here: its definition's, re-derived through exact sums, narrowed by the
    /// assumptions in scope.
    pub fn fact(&self, v: Value) -> Fact {
        self.fact_at_depth(v, 0)
    }

    fn fact_at_depth(&self, v: Value, depth: u32) -> Fact {
        let mut f = match self.sums.get(&v) {
            // Re-derive a sum from its operands' facts here, which assumptions may have
            // narrowed since it was defined: values are immutable, so `v = a + b` still holds.
            Some(s) if depth < 6 => {
                let a = self.fact_at_depth(s.a, depth + 1);
                let b = match s.b {
                    Operand::Value(b) => self.fact_at_depth(b, depth + 1),
                    Operand::Imm(k) => Fact::constant(k),
                };
                match offset_by(add_exact(&a, &b), s.disp) {
                    Fact::Int { lo, hi, le } if s.no_wrap => Fact::Int {
                        lo: lo.min(mask(s.bits)),
                        hi: hi.min(mask(s.bits)),
                        le,
                    },
                    f => f,
                }
            }
            _ => self.facts.get(&v).copied().unwrap_or(Fact::ANY),
        };
        for &(w, hi, le) in &self.assumed {
            if w == v {
                f = narrow(f, hi, le);
            }
        }
        f
    }

    fn operand(&self, o: Operand) -> Fact {
        match o {
            Operand::Value(v) => self.fact(v),
            Operand::Imm(k) => Fact::constant(k),
        }
    }

    /// The declared field `addr + offset` as read here: the holder whose load is at this
    /// point (block and calls before), or, for a read-only field, any holder; `None` when it
    /// is not declared, or when a field calls may change is read where none of its loads is.
    pub fn field(&self, addr: Value, offset: i64) -> Option<&Field> {
        let mut holders = self
            .decls
            .fields
            .iter()
            .filter(|f| f.addr == addr && f.offset == offset);
        let first = holders.clone().next()?;
        if let Some(here) = holders.clone().find(|f| f.at == self.at) {
            return Some(here);
        }
        // A field calls may change is read only where one of its loads is: elsewhere it may
        // hold another value. A read-only one holds one value everywhere.
        if holders.all(|f| f.readonly) {
            return Some(first);
        }
        None
    }

    /// A scope mark for [`Checker::undo`].
    pub fn mark(&self) -> Mark {
        Mark {
            assumed: self.assumed.len(),
            assumed_low32: self.assumed_low32.len(),
            infeasible: self.infeasible,
        }
    }

    /// Drops the assumptions (and the calls' effects) made since `mark`.
    pub fn undo(&mut self, mark: Mark) {
        self.assumed.truncate(mark.assumed);
        self.assumed_low32.truncate(mark.assumed_low32);
        self.infeasible = mark.infeasible;
    }

    // ---- Arithmetic rules --------------------------------------------------------------

    /// `v = a + b` on `bits` bits, the result zero-extended to 64 (x86's 32-bit operations;
    /// an ISA whose 32-bit operations leave the upper bits undefined does not use this for
    /// them). `exact`: the machine instruction traps instead of wrapping, so `v = a + b`
    /// exactly wherever execution continues.
    pub fn add(&mut self, v: Value, a: Value, b: Operand, bits: u8, exact: bool) {
        let (fa, fb) = (self.fact(a), self.operand(b));
        let sum = add_checked(&fa, &fb);
        let (f, no_wrap, record) = if bits == 64 {
            // `v = a + b` modulo 2^64 always; exactly when it cannot wrap, or when the
            // instruction traps instead of wrapping.
            (sum.unwrap_or(Fact::ANY), sum.is_some() || exact, true)
        } else if fits(&fa, bits) && fits(&fb, bits) {
            match sum {
                Some(f @ Fact::Int { hi, .. }) if hi <= mask(bits) => (f, true, true),
                // Where execution continues the sum did not wrap.
                _ if exact => (Fact::bits(bits), true, true),
                // A 32-bit sum that may wrap is not re-derived: its operands could narrow to
                // ranges whose sum still wraps at 32 bits.
                _ => (Fact::bits(bits), false, false),
            }
        } else {
            (Fact::bits(bits), false, false)
        };
        if record {
            self.sums.insert(
                v,
                Sum {
                    a,
                    b,
                    disp: 0,
                    no_wrap,
                    bits,
                },
            );
        }
        self.define(v, f);
    }

    /// `v = base + index + disp` in 64 bits (an address computed into a register, `lea`).
    pub fn address_of(&mut self, v: Value, a: Address) {
        let f = self.address(a, false);
        let b = a.index.map_or(Operand::Imm(0), Operand::Value);
        self.sums.insert(
            v,
            Sum {
                a: a.base,
                b,
                disp: a.disp,
                no_wrap: f != Fact::ANY,
                bits: 64,
            },
        );
        self.define(v, f);
    }

    /// `v = a << k` on `bits` bits (the bits shifted out lost; for 32 bits, the result
    /// zero-extended).
    pub fn shl_imm(&mut self, v: Value, a: Value, k: u32, bits: u8) {
        let f = match self.fact(a) {
            Fact::Int { lo, hi, .. }
                if k < 64
                    && hi
                        .checked_shl(k)
                        .is_some_and(|h| h >> k == hi && h <= mask(bits)) =>
            {
                Fact::Int {
                    lo: lo << k,
                    hi: hi << k,
                    le: None,
                }
            }
            _ => Fact::bits(bits),
        };
        self.define(v, f);
    }

    /// `v = a - k` on `bits` bits (wrapping).
    pub fn sub_imm(&mut self, v: Value, a: Value, k: u64, bits: u8) {
        let f = match self.fact(a) {
            Fact::Int { lo, hi, le } if lo >= k && hi <= mask(bits) => Fact::Int {
                lo: lo - k,
                hi: hi - k,
                le: le.map(|s| s.plus(-i128::from(k))),
            },
            Fact::Ptr {
                base,
                lo,
                hi,
                le,
                null: None,
            } if lo >= k && bits == 64 => Fact::Ptr {
                base,
                lo: lo - k,
                hi: hi - k,
                le: le.map(|s| s.plus(-i128::from(k))),
                null: None,
            },
            _ => Fact::bits(bits),
        };
        self.define(v, f);
    }

    /// `v = a` (a copy).
    pub fn copy(&mut self, v: Value, a: Value) {
        let f = self.fact(a);
        self.define(v, f);
        if let Some(s) = self.sums.get(&a).copied() {
            self.sums.insert(v, s);
        }
    }

    /// `v` = the low `from` bits of `a`, zero-extended.
    pub fn zero_extend(&mut self, v: Value, a: Value, from: u8) {
        let mut f = match self.fact(a) {
            f @ Fact::Int { hi, .. } if hi <= mask(from) => f,
            // A condition lives in the low bit: extending keeps it, and bounds the rest.
            Fact::Bool(c, hi) => Fact::Bool(c, hi.min(mask(from))),
            _ => Fact::bits(from),
        };
        if from == 32 {
            for &(w, hi) in &self.assumed_low32 {
                if w == a {
                    f = narrow(f, hi, None);
                }
            }
        }
        self.define(v, f);
    }

    /// `v` = some result of `bits` bits, zero-extended (what x86's 32-bit operations write).
    pub fn any_of_width(&mut self, v: Value, bits: u8) {
        self.define(v, Fact::bits(bits));
    }

    /// `v` = the constant `k` (a declared constant bound must be exactly its constant).
    pub fn constant(&mut self, v: Value, k: u64) {
        if self
            .decls
            .regions
            .iter()
            .any(|r| r.bound == v && r.bound_const == Some(k))
        {
            self.vouched.insert(v);
        }
        self.define(v, Fact::constant(k));
    }

    /// `v` = 1 when `cmp` holds, else 0.
    pub fn compare(&mut self, v: Value, cmp: Cmp) {
        self.define(v, Fact::Bool(cmp, u64::MAX));
    }

    /// `v = cmp ? t : f` (a conditional move: the Spectre guard's shape).
    pub fn select(&mut self, v: Value, cmp: Cmp, t: Value, f: Value) {
        let m = self.mark();
        self.assume(cmp, true);
        let (ft, t_never) = (self.fact(t), self.infeasible > m.infeasible);
        self.undo(m);
        self.assume(cmp, false);
        let (ff, f_never) = (self.fact(f), self.infeasible > m.infeasible);
        self.undo(m);
        // An arm whose condition no values satisfy is never chosen.
        let fact = match (t_never, f_never) {
            (true, false) => ff,
            (false, true) => ft,
            _ => join(&ft, &ff),
        };
        self.define(v, fact);
    }

    /// `v = cmp ? 0 : f` (aarch64's `csel v, xzr, f`: the Spectre guard selecting null).
    pub fn select_zero(&mut self, v: Value, cmp: Cmp, f: Value) {
        let m = self.mark();
        self.assume(cmp, true);
        let t_never = self.infeasible > m.infeasible;
        self.undo(m);
        self.assume(cmp, false);
        let (ff, f_never) = (self.fact(f), self.infeasible > m.infeasible);
        self.undo(m);
        let zero = Fact::constant(0);
        let fact = match (t_never, f_never) {
            (true, false) => ff,
            (false, true) => zero,
            _ => join(&zero, &ff),
        };
        self.define(v, fact);
    }

    /// `v = cond != 0 ? t : f` where `cond` is a value (Pulley's `xselect`).
    pub fn select_on(&mut self, v: Value, cond: Value, t: Value, f: Value) {
        match self.fact(cond) {
            Fact::Bool(cmp, _) => self.select(v, cmp, t, f),
            _ => {
                let j = join(&self.fact(t), &self.fact(f));
                self.define(v, j);
            }
        }
    }

    // ---- Assumptions from branches and traps -------------------------------------------

    /// Assumes that `cmp` holds (or, with `holds` false, that it does not) from here to the
    /// end of the current scope: what execution past a conditional trap, or along a branch
    /// edge, knows.
    pub fn assume(&mut self, cmp: Cmp, holds: bool) {
        // Normalise to `x <= y` (or `x < y` when strict).
        use Cc::*;
        let (x, y, strict) = match (cmp.cc, holds) {
            (Ult, true) | (Uge, false) => (cmp.a, cmp.b, true),
            (Ule, true) | (Ugt, false) => (cmp.a, cmp.b, false),
            (Ugt, true) | (Ule, false) => (cmp.b, cmp.a, true),
            (Uge, true) | (Ult, false) => (cmp.b, cmp.a, false),
            (Eq, true) => {
                self.assume(Cmp { cc: Ule, ..cmp }, true);
                self.assume(Cmp { cc: Uge, ..cmp }, true);
                return;
            }
            _ => return,
        };
        let Operand::Value(x) = x else { return };
        let (fx, fy) = (self.fact(x), self.operand(y));
        let Fact::Int { hi, le, .. } = fy else { return };
        let s = u64::from(strict);
        let Some(hi) = hi.checked_sub(s) else {
            // `x < 0`: no value.
            self.infeasible += 1;
            return;
        };
        // A 32-bit comparison says something about the registers only when both hold
        // 32-bit values; otherwise, with a 32-bit `y`, it bounds the low half of `x`.
        if cmp.bits < 64 && !(fits(&fx, cmp.bits) && fits(&fy, cmp.bits)) {
            if cmp.bits == 32 && fits(&fy, 32) {
                self.assumed_low32.push((x, hi));
            }
            return;
        }
        self.bound_above(x, hi, le.map(|l| l.plus(-i128::from(s))), 0);
    }

    /// Whether no execution reaches here: an assumption in scope contradicts the facts, or
    /// the code before traps unconditionally.
    pub fn never_runs(&self) -> bool {
        self.infeasible > 0
    }

    /// Execution never continues past here in the current scope: the code just checked
    /// traps unconditionally, and so does every path through it.
    pub fn never_continues(&mut self) {
        self.infeasible += 1;
    }

    /// Assumes that value `cond` is non-zero in its low `bits` bits (or, with `holds` false,
    /// zero): what a branch on it tells its successor.
    pub fn assume_value(&mut self, cond: Value, bits: u8, holds: bool) {
        match self.fact(cond) {
            Fact::Bool(cmp, _) => self.assume(cmp, holds),
            _ => self.assume(
                Cmp {
                    cc: Cc::Ne,
                    a: Operand::Value(cond),
                    b: Operand::Imm(0),
                    bits,
                },
                holds,
            ),
        }
    }

    fn bound_above(&mut self, x: Value, hi: u64, le: Option<Sym>, depth: u32) {
        // `x <= hi < lo <= x`: no value.
        if matches!(self.fact(x), Fact::Int { lo, .. } if lo > hi) {
            self.infeasible += 1;
        }
        self.assumed.push((x, hi, le));
        // Through an exact sum `x = a + k`: `a <= hi - k`.
        if depth < 6 {
            if let Some(Sum {
                a,
                b,
                disp,
                no_wrap: true,
                ..
            }) = self.sums.get(&x).copied()
            {
                let k = match b {
                    Operand::Imm(k) => Some(k),
                    Operand::Value(b) => self.fact(b).as_constant(),
                };
                let k = k.and_then(|k| k.checked_add_signed(disp));
                if let (Some(k), Fact::Int { .. } | Fact::Bool(..)) = (k, self.fact(a)) {
                    // `hi < k` leaves no value for the integer `a` (`a + k` cannot wrap):
                    // execution never continues here. (Bounding `a` by 0 would not say so:
                    // with a bound of 0, even offset 0 is out of bounds.) A pointer's sum
                    // does not wrap in offsets only, so it says nothing of the address.
                    if hi < k {
                        self.infeasible += 1;
                    }
                    let h = hi.saturating_sub(k);
                    let l = le.map(|l| l.plus(-i128::from(k)));
                    self.bound_above(a, h, l, depth + 1);
                }
            }
        }
    }

    // ---- Memory accesses ---------------------------------------------------------------

    /// The fact of address `a`, where the hardware zero-extends a 32-bit index when
    /// `index32`.
    pub fn address(&self, a: Address, index32: bool) -> Fact {
        let mut f = self.fact(a.base);
        if let Some(i) = a.index {
            let mut fi = self.fact(i);
            if index32 && !fits(&fi, 32) {
                fi = Fact::bits(32);
            }
            f = add_exact(&f, &fi);
        }
        offset_by(f, a.disp)
    }

    /// Checks an access of `width` bytes at `addr`. `trap_site`: a fault at the instruction
    /// is reported as a trap. `null_checked`: the instruction traps instead of accessing
    /// when its base register is null (Pulley's `_z` modes).
    pub fn access(
        &self,
        addr: Address,
        width: u64,
        trap_site: bool,
        null_checked: bool,
    ) -> Result<Proof, PccError> {
        if self.infeasible > 0 {
            return Ok(Proof::NeverAccesses);
        }
        let mut base = self.fact(addr.base);
        if null_checked {
            base = match base {
                // Always null (the Spectre guard's null arm is the only one reachable).
                Fact::Int { hi: 0, .. } => return Ok(Proof::NeverAccesses),
                Fact::Ptr {
                    null: Some((0, 0)),
                    base,
                    lo,
                    hi,
                    le,
                } => Fact::Ptr {
                    base,
                    lo,
                    hi,
                    le,
                    null: None,
                },
                Fact::Ptr { null: Some(_), .. } => {
                    return err(
                        "a base register that is exactly null in its null case",
                        base,
                    );
                }
                f => f,
            };
        }
        let f = {
            let mut f = base;
            if let Some(i) = addr.index {
                f = add_exact(&f, &self.fact(i));
            }
            offset_by(f, addr.disp)
        };
        self.check_pointer(f, width, trap_site)
    }

    /// Checks Pulley's `g32` access: `base + zext(index) + offset`, made only when
    /// `zext(index) <= bound - offset - width` (computed by the interpreter without a wrap
    /// check). `bound` is a value, or the value a field read yields.
    pub fn g32(
        &self,
        base: Value,
        bound: Value,
        index: Value,
        offset: u64,
        width: u64,
    ) -> Result<Proof, PccError> {
        let fb = self.fact(bound);
        let Some(end) = offset.checked_add(width) else {
            return err("an offset and width that fit 64 bits", fb);
        };
        let Fact::Int { lo, hi, le } = fb else {
            return err("an integer bound for g32", fb);
        };
        if lo < end {
            return err(
                format!("a g32 bound of at least offset + size = {end:#x} (the interpreter subtracts without a wrap check)"),
                fb,
            );
        }
        let fi = self.fact(index);
        let ihi = match fi {
            Fact::Int { hi: h, .. } if h <= mask(32) => h,
            _ => mask(32),
        };
        let index = Fact::Int {
            lo: 0,
            hi: ihi.min(hi - end),
            le: le.map(|s| s.plus(-i128::from(end))),
        };
        let f = match i64::try_from(offset) {
            Ok(o) => offset_by(add_exact(&self.fact(base), &index), o),
            Err(_) => Fact::ANY,
        };
        self.check_pointer(f, width, false)
    }

    /// Checks that a write of `width` bytes at `addr` does not touch a declared field (a
    /// field holding a base or bound: reading it must yield what it holds).
    pub fn write(&self, addr: Address, width: u64) -> Result<(), PccError> {
        let f = self.address(addr, false);
        let Fact::Ptr { base, lo, hi, .. } = f else {
            return Ok(());
        };
        let end = u128::from(hi) + u128::from(width);
        for field in self.decls.fields.iter().filter(|x| x.addr == base) {
            let (a, b) = (i128::from(field.offset), i128::from(field.offset) + 8);
            if i128::from(lo) < b && (end as i128) > a {
                return err(
                    format!(
                        "no write into the field at v{base} + {:#x}, which holds v{}",
                        field.offset, field.holds
                    ),
                    f,
                );
            }
        }
        Ok(())
    }

    /// Checks a read of VM context field `addr + offset`.
    pub fn field_access(&self, addr: Value, offset: i64) -> Result<Proof, PccError> {
        match self.field(addr, offset) {
            Some(_) => Ok(Proof::Field),
            None => err(
                format!("a declared field at v{addr} + {offset:#x}"),
                self.fact(addr),
            ),
        }
    }

    fn check_pointer(&self, f: Fact, width: u64, trap_site: bool) -> Result<Proof, PccError> {
        // Always an address in the null page (a Spectre guard whose non-null arm is never
        // chosen): it faults at a trap site, and touches nothing.
        if let Fact::Int { hi, .. } = f {
            let end = u128::from(hi) + u128::from(width);
            if self.decls.faults_trap && trap_site && end <= u128::from(self.decls.null_reach) {
                return Ok(Proof::NeverAccesses);
            }
        }
        let Fact::Ptr {
            base,
            lo: _,
            hi,
            le,
            null,
        } = f
        else {
            return err(
                format!("a pointer into a declared memory, {width} bytes"),
                f,
            );
        };
        // A struct (the VM context): every byte inside it.
        if let Some(&(_, size)) = self.decls.structs.iter().find(|s| s.0 == base) {
            let end = u128::from(hi) + u128::from(width);
            return match (null, end <= u128::from(size)) {
                (None, true) => Ok(Proof::Field),
                _ => err(
                    format!("{width} bytes within the {size:#x}-byte struct at v{base}"),
                    f,
                ),
            };
        }
        let regions: Vec<&Region> = self
            .decls
            .regions
            .iter()
            .filter(|r| r.base == base)
            .collect();
        if regions.is_empty() {
            return err(format!("a region whose base is v{base}"), f);
        }
        if self.stale.contains(&base) {
            return err(
                format!("a base of a memory that may move, loaded after the last call (v{base} was loaded before it)"),
                f,
            );
        }
        let faults = self.decls.faults_trap && trap_site;
        if let Some((_, nhi)) = null {
            let end = u128::from(nhi) + u128::from(width);
            if !(faults && end <= u128::from(self.decls.null_reach)) {
                return err(
                    format!(
                        "a null case within the {:#x} bytes that fault, at a trap site",
                        self.decls.null_reach
                    ),
                    f,
                );
            }
        }
        let end = u128::from(hi) + u128::from(width);
        let w = i128::from(width);
        // In bounds: symbolically against a bound paired with this base, or statically
        // below the least bound.
        let in_bounds = regions.iter().any(|r| {
            let sym = le.is_some_and(|s| s.bound == r.bound && s.k.saturating_add(w) <= 0);
            let least = r.bound_const.unwrap_or(r.memory.min).max(r.memory.min);
            sym || end <= u128::from(least)
        });
        if in_bounds {
            return Ok(Proof::Accessible);
        }
        // Or in bounds or faulting: statically below the least faulting end, or
        // symbolically within the guard after a bound paired with this base (for every
        // bound `n`, `[n, n + guard)` faults).
        if faults
            && regions.iter().any(|r| {
                let sym = le.is_some_and(|s| {
                    s.bound == r.bound && s.k.saturating_add(w) <= i128::from(r.memory.guard)
                });
                sym || end <= r.memory.least_faulting_end
            })
        {
            return Ok(Proof::AccessibleOrFaults);
        }
        err(
            format!(
                "{width} bytes within the bound{}",
                if faults {
                    " or the faulting range after it"
                } else if self.decls.faults_trap {
                    " (or the faulting range, at a trap site)"
                } else {
                    ""
                }
            ),
            f,
        )
    }
}

/// The fact of a value known to fit `bits` bits.
fn fits(f: &Fact, bits: u8) -> bool {
    matches!(f, Fact::Int { hi, .. } | Fact::Bool(_, hi) if *hi <= mask(bits))
}

/// `a + b`, or anything when it may exceed 64 bits (wrap).
fn add_exact(a: &Fact, b: &Fact) -> Fact {
    add_checked(a, b).unwrap_or(Fact::ANY)
}

/// `a + b`, or `None` when it may exceed 64 bits (wrap) or means nothing (two pointers).
fn add_checked(a: &Fact, b: &Fact) -> Option<Fact> {
    let int = |f: &Fact| match *f {
        Fact::Int { lo, hi, le } => Some((lo, hi, le)),
        // A condition as an integer: at most what is known of the whole register.
        Fact::Bool(_, hi) => Some((0, hi, None)),
        Fact::Ptr { .. } => None,
    };
    // The symbolic bound of a sum: one side's, plus the other side's constant range top.
    let sym = |la: Option<Sym>, hb: u64, lb: Option<Sym>, ha: u64| match (la, lb) {
        (Some(s), None) => Some(s.plus(i128::from(hb))),
        (None, Some(s)) => Some(s.plus(i128::from(ha))),
        _ => None,
    };
    match (int(a), int(b)) {
        (Some((alo, ahi, ale)), Some((blo, bhi, ble))) => Some(Fact::Int {
            lo: alo.saturating_add(blo),
            hi: ahi.checked_add(bhi)?,
            le: sym(ale, bhi, ble, ahi),
        }),
        (Some(i), None) => add_checked(
            b,
            &Fact::Int {
                lo: i.0,
                hi: i.1,
                le: i.2,
            },
        ),
        (None, Some((ilo, ihi, ile))) => {
            let Fact::Ptr {
                base,
                lo,
                hi,
                le,
                null,
            } = *a
            else {
                return None;
            };
            let null = match null {
                None => None,
                Some((a, b)) => Some((a.checked_add(ilo)?, b.checked_add(ihi)?)),
            };
            Some(Fact::Ptr {
                base,
                lo: lo.checked_add(ilo)?,
                hi: hi.checked_add(ihi)?,
                le: sym(le, ihi, ile, hi),
                null,
            })
        }
        // Two pointers added: nothing meaningful.
        (None, None) => None,
    }
}

/// `f + d` for a signed constant `d`.
fn offset_by(f: Fact, d: i64) -> Fact {
    if d >= 0 {
        return add_exact(&f, &Fact::constant(d as u64));
    }
    let m = d.unsigned_abs();
    match f {
        Fact::Ptr {
            base,
            lo,
            hi,
            le,
            null,
        } if lo >= m && null.is_none_or(|(a, _)| a >= m) => Fact::Ptr {
            base,
            lo: lo - m,
            hi: hi - m,
            le: le.map(|s| s.plus(-i128::from(m))),
            null: null.map(|(a, b)| (a - m, b - m)),
        },
        Fact::Int { lo, hi, le } if lo >= m => Fact::Int {
            lo: lo - m,
            hi: hi - m,
            le: le.map(|s| s.plus(-i128::from(m))),
        },
        _ => Fact::ANY,
    }
}

/// `f` narrowed by an assumed upper bound.
fn narrow(f: Fact, hi: u64, le: Option<Sym>) -> Fact {
    match f {
        // A bound below `lo` leaves no value (a path that cannot run); `lo <= hi` is kept
        // so that every rule's arithmetic stays in range.
        Fact::Int { lo, hi: h, le: l } => Fact::Int {
            lo: lo.min(h.min(hi)),
            hi: h.min(hi),
            // The newest symbolic bound, or the tighter of two on the same bound.
            le: match (l, le) {
                (Some(a), Some(b)) if a.bound == b.bound => Some(if a.k <= b.k { a } else { b }),
                (a, None) => a,
                (_, b) => b,
            },
        },
        // A condition bounded as an integer becomes one (its condition no longer matters
        // where its value is compared as a number).
        Fact::Bool(_, h) => Fact::Int {
            lo: 0,
            hi: h.min(hi),
            le,
        },
        p => p,
    }
}

/// A fact true of both `a` and `b`.
fn join(a: &Fact, b: &Fact) -> Fact {
    match (*a, *b) {
        (
            Fact::Int { lo, hi, le },
            Fact::Int {
                lo: l2,
                hi: h2,
                le: e2,
            },
        ) => Fact::Int {
            lo: lo.min(l2),
            hi: hi.max(h2),
            le: match (le, e2) {
                (Some(x), Some(y)) if x.bound == y.bound => Some(if x.k >= y.k { x } else { y }),
                _ => None,
            },
        },
        (p @ Fact::Ptr { .. }, Fact::Int { lo, hi, le: None })
        | (Fact::Int { lo, hi, le: None }, p @ Fact::Ptr { .. }) => {
            let Fact::Ptr {
                base,
                lo: pl,
                hi: ph,
                le,
                null,
            } = p
            else {
                unreachable!()
            };
            let null = match null {
                None => (lo, hi),
                Some((a, b)) => (a.min(lo), b.max(hi)),
            };
            Fact::Ptr {
                base,
                lo: pl,
                hi: ph,
                le,
                null: Some(null),
            }
        }
        (
            Fact::Ptr {
                base,
                lo,
                hi,
                le,
                null,
            },
            Fact::Ptr {
                base: b2,
                lo: l2,
                hi: h2,
                le: e2,
                null: n2,
            },
        ) if base == b2 => Fact::Ptr {
            base,
            lo: lo.min(l2),
            hi: hi.max(h2),
            le: match (le, e2) {
                (Some(x), Some(y)) if x.bound == y.bound => Some(if x.k >= y.k { x } else { y }),
                (None, None) => None,
                _ => None,
            },
            null: match (null, n2) {
                (None, n) | (n, None) => n,
                (Some((a, b)), Some((c, d))) => Some((a.min(c), b.max(d))),
            },
        },
        _ => Fact::ANY,
    }
}

#[cfg(feature = "smt")]
pub mod smt;

#[cfg(test)]
mod tests;
