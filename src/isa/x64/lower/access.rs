//! The bounds-checked accesses: each is rendered from its plan (`crate::plan`), one
//! constructor per form, and this file never decides whether an access is safe. The access
//! itself is one instruction on `disp(base, index)`.

use super::*;
use crate::mutants::{active, Mutant};

/// The address of a bounds-checked access, and whether the access is a trap site.
#[derive(Clone, Copy, Debug)]
pub struct Address {
    amode: Amode,
    trap: bool,
}

impl IsleContext<'_, '_> {
    pub(super) fn lower_address_always_traps(&mut self, inst: Inst) -> Address {
        let a = self.access(inst);
        let base = self.access_base(&a);
        self.index64(&a);
        self.emit(MInst::Trap { code: a.trap });
        Address {
            amode: Amode {
                base,
                index: None,
                disp: 0,
            },
            trap: false,
        }
    }

    pub(super) fn lower_address_in_bounds(&mut self, inst: Inst, disp: u64) -> Address {
        let a = self.access(inst);
        let base = self.access_base(&a);
        let (base, disp) = match i32::try_from(disp) {
            Ok(d) => (base, d),
            Err(_) => (self.add_const(base, disp), 0),
        };
        Address {
            amode: Amode {
                base,
                index: None,
                disp,
            },
            trap: false,
        }
    }

    pub(super) fn lower_address_faulting(&mut self, inst: Inst) -> Address {
        let a = self.access(inst);
        let base = self.access_base(&a);
        let index = self.index64(&a);
        let index = self.mutant_shifted_index(&a, index);
        let (base, disp) = self.far_base(&a, base);
        Address {
            amode: Amode {
                base,
                index: Some(index),
                disp,
            },
            // The faulting range, or a guard a run's `index > bound` check relied on.
            trap: self.lower.plan(inst).access_is_trap_site(),
        }
    }

    pub(super) fn lower_address_covered(
        &mut self,
        inst: Inst,
        leader: Inst,
        nullable: bool,
        delta: i64,
    ) -> Address {
        if !nullable {
            // `disp(base, index)`, as if the run's check were this access's own.
            let mut addr = self.lower_address_faulting(inst);
            if active(Mutant::CoveredPastEnd) {
                addr.amode.disp += 1;
            }
            return addr;
        }
        // The leader's `base + index + offset`, or null; the plan keeps `delta` within the
        // target's null reach.
        let (_, addr) = self.covered_access(inst, leader);
        Address {
            amode: Amode {
                base: addr,
                index: None,
                disp: delta as i32 + i32::from(active(Mutant::CoveredPastEnd)),
            },
            trap: true,
        }
    }

    pub(super) fn lower_access_at(&mut self, inst: Inst, addr: Address) -> Vec<VReg> {
        let a = self.access(inst);
        let (ty, kind) = (a.ty, a.kind);
        let op = match a.store_value {
            Some(_) => store_op(ty, kind).map(Err),
            None => load_op(ty, kind).map(Ok),
        };
        let Some(op) = op else {
            self.fail(CodegenError::new(format!(
                "x86_64: no bounds-checked access of {ty} as {kind:?}"
            )));
            return if a.store_value.is_some() {
                Vec::new()
            } else {
                vec![self.placeholder()]
            };
        };
        let Address { amode, trap } = addr;
        let trap = trap.then_some(a.trap);
        let op = match op {
            Ok(LoadOp::U32) if active(Mutant::WiderAccess) => Ok(LoadOp::X64),
            Err(StoreOp::L) if active(Mutant::WiderAccess) => Err(StoreOp::Q),
            op => op,
        };
        let rmw = self.read_modify_write(a.inst);
        match (a.store_value, op, rmw) {
            (Some(_), Err(_), Some(rmw)) => {
                self.lower.sink(rmw.op_inst);
                let size = int_size(self.ty(rmw.other));
                let b = self.rmi(rmw.other, size);
                // The read faults where the elided load would have, with the same code.
                self.emit(MInst::AluMem {
                    op: rmw.op,
                    size,
                    amode,
                    b,
                    trap: trap.or(Some(a.trap)),
                });
                Vec::new()
            }
            (Some(x), Err(op), None) => {
                let src = self.put_value(x);
                self.store_value(op, a.big_endian, src, amode, trap);
                Vec::new()
            }
            // The store of the read-modify-write will read this value itself.
            (_, Ok(_), Some(_)) => vec![self.vreg(RegClass::Int)],
            (_, Ok(op), None) => vec![self.load_value(op, a.big_endian, amode, trap)],
            (None, Err(_), _) => unreachable!("stores have a value"),
        }
    }

    /// The index as a 64-bit register: an i32 is zero-extended already.
    pub(super) fn index64(&mut self, a: &Access) -> VReg {
        let index = self.put_value(a.index);
        if active(Mutant::MissingZeroExtension) && a.index_ty == I32 {
            let r = self.vreg(RegClass::Int);
            self.emit(MInst::Ext {
                op: ExtOp::Sx32To64,
                dst: r,
                src: index,
            });
            return r;
        }
        index
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
        self.emit(MInst::Shift {
            op: ShiftOp::Shl,
            size: Size::Q,
            dst,
            a: x,
            amount: Ok(c),
        });
        dst
    }

    /// `base + k` as the base of an address whose displacement is 0, when `k` does not fit
    /// i32, made once where `base` is defined.
    pub(super) fn far_base(&mut self, a: &Access, base: VReg) -> (VReg, i32) {
        let rebase = if i32::try_from(a.offset).is_ok() {
            0
        } else {
            a.offset
        };
        self.rebased(a, base, rebase)
    }

    /// The bound as the second operand of a comparison: the bound's load folded into the
    /// `cmp` when the plan says the comparison may read it from memory.
    pub(super) fn bound_operand(&mut self, a: &Access, load: Option<BoundLoad>) -> Rmi {
        if let Some(l) = load {
            self.lower.sink(l.inst);
            let base = self.put_value(l.addr);
            return Rmi::Mem(Amode {
                base,
                index: None,
                disp: l.offset,
            });
        }
        Rmi::Reg(self.access_bound(a))
    }

    /// `base + rebase` (made once, where `base` is defined) and the displacement left: the
    /// plan moves an offset too large for a displacement into the base.
    fn rebased(&mut self, a: &Access, base: VReg, rebase: u64) -> (VReg, i32) {
        if rebase == 0 {
            return (base, a.offset as i32);
        }
        let b = self.derived(a.base, Derived::Plus(rebase), |cx| {
            cx.add_const(base, rebase)
        });
        (b, (a.offset - rebase) as i32)
    }

    /// The explicit check of `a` for `end` with `compare` (the plan's), and the address of
    /// its access.
    pub(super) fn explicit_check(&mut self, inst: Inst, check: ExplicitCheck) -> Address {
        let a = &self.access(inst);
        let base = self.access_base(a);
        let (mut compare, mut end, null_select) = (check.compare, check.end, check.null_select);
        if active(Mutant::KOffByOne) {
            end -= 1;
            compare = match compare {
                Compare::ConstantBound { limit } => Compare::ConstantBound { limit: limit + 1 },
                Compare::OneByte => Compare::Guard,
                c => c,
            };
        }
        let index = self.index64(a);
        // The out-of-bounds condition, as a flag test.
        let cmp = |cc, a: VReg, b: Rmi| Test::Cmp {
            size: Size::Q,
            cc,
            a,
            b,
        };
        let test = match compare {
            Compare::ConstantBound { limit } => match imm32(limit, Size::Q) {
                Some(k) => cmp(Cc::A, index, Rmi::Imm(k)),
                None => {
                    let l = self.derived(a.bound, Derived::Minus(end), |cx| {
                        cx.const_reg(Size::Q, limit)
                    });
                    cmp(Cc::A, index, Rmi::Reg(l))
                }
            },
            Compare::OneByte => {
                let b = self.bound_operand(a, check.bound_load);
                cmp(Cc::Ae, index, b)
            }
            Compare::Guard => {
                let b = self.bound_operand(a, check.bound_load);
                cmp(Cc::A, index, b)
            }
            // `bound - K` once, where the bound is defined (outside the loop).
            Compare::BoundMinusEnd => {
                let bound = self.access_bound(a);
                let bk = self.derived(a.bound, Derived::Minus(end), |cx| cx.sub_const(bound, end));
                cmp(Cc::A, index, Rmi::Reg(bk))
            }
            // With the bound compared in memory when it is loaded right here.
            Compare::EndAboveBound { may_wrap: false } => {
                let sum = self.add_const(index, end);
                let b = self.bound_operand(a, check.bound_load);
                cmp(Cc::A, sum, b)
            }
            // `index + K` may wrap: it traps on the carry first.
            Compare::EndAboveBound { may_wrap: true } => {
                let k = match imm32(end, Size::Q) {
                    Some(k) => Rmi::Imm(k),
                    None => Rmi::Reg(self.const_reg(Size::Q, end)),
                };
                let sum = self.vreg(RegClass::Int);
                self.emit(MInst::AddTrap {
                    size: Size::Q,
                    dst: sum,
                    a: index,
                    b: k,
                    code: a.trap,
                });
                let b = self.bound_operand(a, check.bound_load);
                cmp(Cc::A, sum, b)
            }
        };
        if !null_select {
            if !active(Mutant::DroppedCheck) {
                self.emit(MInst::TrapIf { test, code: a.trap });
            }
            let (base, disp) = self.rebased(a, base, check.rebase);
            // Later accesses of the run use `disp(base, index)` themselves.
            self.lower.record_checked(a.inst, index);
            let index = self.mutant_shifted_index(a, index);
            Address {
                amode: Amode {
                    base,
                    index: Some(index),
                    disp,
                },
                trap: self.lower.plan(a.inst).access_is_trap_site(),
            }
        } else {
            // addr = base + index + offset; out of bounds, a conditional move makes it null.
            // Later accesses of the run address relative to it (`Form::Covered`).
            let (b, disp) = self.rebased(a, base, check.rebase);
            let addr = self.lea(b, Some(index), disp);
            let zero = self.derived(a.bound, Derived::Zero, |cx| cx.const_reg(Size::Q, 0));
            let safe = self.vreg(RegClass::Int);
            let (t, f) = match active(Mutant::SpectreWrongOperand) {
                false => (zero, addr),
                true => (addr, zero),
            };
            self.emit(MInst::Select {
                test,
                dst: safe,
                t,
                f,
            });
            let safe = if active(Mutant::SpectreSelectDropped) {
                addr
            } else {
                safe
            };
            self.lower.record_checked(a.inst, safe);
            Address {
                amode: Amode {
                    base: safe,
                    index: None,
                    disp: 0,
                },
                trap: true,
            }
        }
    }
}
