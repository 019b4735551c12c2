//! The bounds-checked accesses: each is rendered from its plan (`crate::plan`), one
//! constructor per form, and this file never decides whether an access is safe.

use super::*;
use crate::mutants::{active, Mutant};

impl IsleContext<'_, '_> {
    pub(super) fn lower_address_in_bounds(&mut self, inst: Inst, disp: u64) -> Amode {
        let a = self.access(inst);
        let base = self.access_base(&a);
        self.amode(base, disp, false)
    }

    pub(super) fn lower_address_covered(
        &mut self,
        inst: Inst,
        leader: Inst,
        nullable: bool,
    ) -> Amode {
        let (a, addr) = self.covered_access(inst, leader);
        // The plan keeps the offset within the displacement.
        let offset = a.offset as i32 + i32::from(active(Mutant::CoveredPastEnd));
        if nullable {
            Amode::Z { base: addr, offset }
        } else {
            Amode::O32 { base: addr, offset }
        }
    }

    pub(super) fn lower_address_g32bne(
        &mut self,
        inst: Inst,
        bound: BoundLoad,
        offset: u8,
    ) -> Amode {
        let a = self.access(inst);
        let base = self.access_base(&a);
        self.lower.sink(bound.inst);
        let bound_addr = self.put_value(bound.addr);
        let index = self.put_value(a.index);
        Amode::G32Bne {
            base,
            bound_addr,
            bound_offset: bound.offset as u8,
            index,
            offset,
        }
    }

    pub(super) fn lower_address_g32(&mut self, inst: Inst, rebase: u64, offset: u16) -> Amode {
        let a = self.access(inst);
        let base = self.access_base(&a);
        let bound = self.access_bound(&a);
        let index = self.put_value(a.index);
        // For an offset beyond g32's 16 bits, the plan moves `rebase` into both base and
        // bound: `base + rebase` and `bound - rebase` (which cannot wrap, as `bound >= K >
        // rebase`) are loop-invariant, made once where base and bound are defined, and shared
        // by accesses in the same 64 KiB window. The access then checks `index > (bound -
        // rebase) - (offset - rebase) - size`, the same condition.
        let (base, bound) = if rebase == 0 {
            (base, bound)
        } else {
            (
                self.derived(a.base, Derived::Plus(rebase), |cx| {
                    cx.add_const(base, rebase)
                }),
                self.derived(a.bound, Derived::Minus(rebase), |cx| {
                    cx.sub_const(bound, rebase)
                }),
            )
        };
        Amode::G32 {
            base,
            bound,
            index,
            offset,
        }
    }

    pub(super) fn lower_access_at(&mut self, inst: Inst, amode: Amode) -> Vec<VReg> {
        let a = self.access(inst);
        let op = self.access_op(&a).map(|(op, widen)| match op {
            MemOp::X32 if active(Mutant::WiderAccess) => (MemOp::X64, widen),
            op => (op, widen),
        });
        let Some((op, widen)) = op else {
            self.fail(CodegenError::new(
                "pulley64: bounds-checked access of an unsupported type and kind",
            ));
            return Vec::new();
        };
        let trap = match amode {
            Amode::O32 { .. } => None,
            _ => Some(a.trap),
        };
        match a.store_value {
            Some(x) => {
                let src = self.put_value(x);
                self.store_value(op, src, amode, trap);
                Vec::new()
            }
            None => vec![self.load_value(op, widen, amode, trap)],
        }
    }

    /// The explicit form: the check the plan chose, then the address of a plain access.
    ///
    /// With `end` the checked end (the largest of the access's run, when it leads one), out
    /// of bounds means `index + end > bound`, computed without wrapping:
    /// - `OneByte`: `index >= bound`;
    /// - `BoundMinusEnd`, `ConstantBound`: `index > bound - end` (against an immediate for a
    ///   constant bound);
    /// - `EndAboveBound`: `index + end > bound`, with an overflow trap on the sum when it
    ///   may wrap.
    ///
    /// Without Spectre mitigation the condition branches to a trap island; with it
    /// (`null_select`), the address is replaced by null and the access uses the `z` mode,
    /// which traps on null. The checked address is recorded for the rest of the run.
    pub(super) fn explicit_check(&mut self, inst: Inst, check: ExplicitCheck) -> Amode {
        let a = &self.access(inst);
        let base = self.access_base(a);
        let (mut compare, mut end, null_select) = (check.compare, check.end, check.null_select);
        if active(Mutant::KOffByOne) {
            end -= 1;
            compare = match compare {
                Compare::ConstantBound { limit } => Compare::ConstantBound { limit: limit + 1 },
                Compare::OneByte => Compare::BoundMinusEnd,
                c => c,
            };
        }
        let index = self.put_value(a.index);
        let index = if a.index_ty == I32 && !active(Mutant::MissingZeroExtension) {
            let key = Memo::Zext32(index);
            match self.lower.memoized(key) {
                Some(r) => r,
                None => {
                    let r = self.un_reg(UnOp::Zext32, index);
                    self.lower.memoize(key, r);
                    r
                }
            }
        } else {
            index
        };
        if let (false, Compare::ConstantBound { limit }) = (null_select, compare) {
            // Compare the index with an immediate.
            if let Some(imm) = ImmCond::Ugt.immediate(true, limit) {
                if !active(Mutant::DroppedCheck) {
                    self.emit(MInst::TrapIfImm {
                        cond: ImmCond::Ugt,
                        wide: true,
                        a: index,
                        imm,
                        code: a.trap,
                    });
                }
                let index = self.mutant_shifted_index(a, index);
                let addr = self.add_regs(base, index);
                self.lower.record_checked(a.inst, addr);
                return self.amode(addr, a.offset, false);
            }
        }
        let bound = self.access_bound(a);
        // Out of bounds when `lhs < rhs` (`lhs <= rhs` for a one-byte end).
        let mut or_equal = false;
        let (lhs, rhs) = match compare {
            Compare::ConstantBound { limit } => (
                self.derived(a.bound, Derived::Minus(end), |cx| cx.const_reg(limit)),
                index,
            ),
            Compare::OneByte => {
                or_equal = true;
                (bound, index)
            }
            Compare::BoundMinusEnd => (
                self.derived(a.bound, Derived::Minus(end), |cx| cx.sub_const(bound, end)),
                index,
            ),
            Compare::EndAboveBound { may_wrap: false } => (bound, self.add_const(index, end)),
            // The guard form needs faults to be traps, which they are not on Pulley; should
            // a plan name it, the overflow-checked sum is exact without it.
            Compare::EndAboveBound { may_wrap: true } | Compare::Guard => {
                let k = self.const_reg(end);
                let end = self.vreg(RegClass::Int);
                self.emit(MInst::AddTrap {
                    wide: true,
                    dst: end,
                    a: index,
                    b: k,
                    code: a.trap,
                });
                (bound, end)
            }
        };
        let addr = {
            let index = self.mutant_shifted_index(a, index);
            self.add_regs(base, index)
        };
        if null_select {
            let cmp = if or_equal {
                BinOp::Xulteq64
            } else {
                BinOp::Xult64
            };
            let oob = self.bin_reg(cmp, lhs, rhs);
            // The null address, made where the bound is (before a loop, say).
            let zero = self.derived(a.bound, Derived::Zero, |cx| cx.const_reg(0));
            // The plan's rebase (an offset beyond the displacement) is added before the
            // select, so the null address stays null; the run's later accesses are then not
            // covered (the planner knows), so the address is recorded only without it.
            let addr = self.add_const(addr, check.rebase);
            let safe = match (
                active(Mutant::SpectreSelectDropped),
                active(Mutant::SpectreWrongOperand),
            ) {
                (true, _) => addr,
                (_, true) => self.select_reg_raw(oob, addr, zero),
                _ => self.select_reg_raw(oob, zero, addr),
            };
            if check.rebase == 0 {
                self.lower.record_checked(a.inst, safe);
            }
            Amode::Z {
                base: safe,
                offset: (a.offset - check.rebase) as i32,
            }
        } else if active(Mutant::DroppedCheck) {
            self.lower.record_checked(a.inst, addr);
            self.amode(addr, a.offset, false)
        } else {
            self.emit(MInst::TrapIf {
                cond: if or_equal {
                    BrCond::Ulteq64
                } else {
                    BrCond::Ult64
                },
                a: lhs,
                b: rhs,
                code: a.trap,
            });
            self.lower.record_checked(a.inst, addr);
            self.amode(addr, a.offset, false)
        }
    }

    /// The mutant of CVE-2023-26489: for an index defined as `ishl.i32 x, c`, the address
    /// uses `x << c` computed in 64 bits (as a scaled address mode would).
    fn mutant_shifted_index(&mut self, a: &Access, index: VReg) -> VReg {
        if !active(Mutant::ShiftedIndexFolded) {
            return index;
        }
        let Some((x, c)) = self.lower.shifted_i32(a.index) else {
            return index;
        };
        let x = self.put_value(x);
        let dst = self.vreg(RegClass::Int);
        self.emit(MInst::BinImm {
            op: ImmOp::Shl,
            wide: true,
            dst,
            a: x,
            imm: i64::from(c),
        });
        dst
    }

    /// The access, width and byte order, of `a`, and the extension after a narrow load into
    /// an i64.
    pub(super) fn access_op(&self, a: &Access) -> Option<(MemOp, Option<UnOp>)> {
        mem_op(a.ty, a.kind, a.big_endian)
    }
}
