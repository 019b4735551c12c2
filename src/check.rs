//! How much of a bounds check the code must make, from what is known about one access.
//!
//! The condition itself is the instruction's definition (`semantics::out_of_bounds`: the
//! access traps when `index + offset + size > bound`, without wrapping). What this module
//! decides is which cheaper comparison proves that condition under the memory's declared
//! facts, or that none is needed. The legalizer and every backend take their choice from
//! [`CheckFacts::plan`], so the reasoning that makes a form sound lives in one place; each
//! consumer only renders the chosen form (as CLIF, or as machine code). The forms are the
//! cases of RFC.md's legalization table.

use crate::ir::{types, MemoryData, Type};

/// What is known about one access when choosing its check.
#[derive(Clone, Copy, Debug)]
pub struct CheckFacts {
    /// The memory's declaration: `min <= bound <= max`, and the faulting ranges.
    pub mem: MemoryData,
    /// The index type (i32 or i64).
    pub index_ty: Type,
    /// The target's pointer type.
    pub pointer: Type,
    /// The index, when it is a constant.
    pub const_index: Option<u64>,
    /// The bound, when it is a constant.
    pub const_bound: Option<u64>,
    /// `K`: the end to check, `offset + size` (a backend checking several accesses at once
    /// passes the largest).
    pub end: u64,
    /// A fault in the declared faulting ranges is a trap on this target
    /// ([`crate::target::Target::faulting_ranges_trap`]).
    pub faulting_ranges_trap: bool,
}

/// The check an access needs, with `K` its end and `index` zero-extended to pointer width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// No execution is in bounds: `K` exceeds the largest possible bound, or the constant
    /// index and bound say so (cases A, B).
    AlwaysTraps,
    /// A constant index with `index + K <= min`: always in bounds (case D).
    InBounds,
    /// Every out-of-bounds access touches a faulting byte (case C).
    Faults,
    /// `index > limit` with the constant `limit = bound - K` (case E).
    ConstantBound {
        /// `bound - K`.
        limit: u64,
    },
    /// `index >= bound`, for `K == 1` (case F).
    OneByte,
    /// `index > bound`; the guard after the bound catches the rest (case G).
    Guard,
    /// `index > bound - K`, where `bound >= K` is proven by `min` (case H).
    BoundMinusEnd,
    /// `index + K > bound`; `may_wrap` when the sum can exceed the pointer width, so it must
    /// trap on overflow (case I).
    EndAboveBound {
        /// The sum can wrap at pointer width.
        may_wrap: bool,
    },
}

impl CheckFacts {
    /// The largest index the index type and the pointer width allow.
    fn index_max(&self) -> u128 {
        let index: u128 = if self.index_ty == types::I32 {
            u32::MAX.into()
        } else {
            u64::MAX.into()
        };
        index.min((1u128 << self.pointer.bits()) - 1)
    }

    /// The cheapest check that is correct for every execution the facts allow, in the
    /// order of RFC.md's table.
    pub fn plan(&self) -> Check {
        let k = u128::from(self.end);
        let max_bound = self.mem.max_bound(self.pointer);
        let always_traps = k > max_bound
            || self
                .const_index
                .is_some_and(|i| u128::from(i) + k > max_bound)
            || self.const_bound.is_some_and(|b| u128::from(b) < k)
            || matches!((self.const_index, self.const_bound), (Some(i), Some(b))
                if crate::semantics::out_of_bounds(i, 0, self.end, b));
        if always_traps {
            return Check::AlwaysTraps;
        }
        let min = u128::from(self.mem.min);
        // Where faults are not traps (Pulley), nothing beyond the bound may be relied on.
        let (guard, min_faulting_end) = if self.faulting_ranges_trap {
            // The faulting range is shortest when the bound is at its minimum.
            (
                u128::from(self.mem.guard),
                self.mem.faulting_end(self.mem.min),
            )
        } else {
            (0, min)
        };
        if self.const_index.is_some_and(|i| u128::from(i) + k <= min) {
            Check::InBounds
        } else if self.index_max() + k <= min_faulting_end {
            Check::Faults
        } else if let Some(b) = self.const_bound {
            Check::ConstantBound {
                limit: b - self.end,
            }
        } else if self.end == 1 {
            Check::OneByte
        } else if k <= guard {
            Check::Guard
        } else if k <= min {
            Check::BoundMinusEnd
        } else {
            Check::EndAboveBound {
                may_wrap: self.index_max() + k > (1u128 << self.pointer.bits()) - 1,
            }
        }
    }
}
