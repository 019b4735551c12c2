//! The bounds-checked accesses: each is rendered from its plan (`crate::plan`), one
//! constructor per form, and this file never decides whether an access is safe.
//!
//! The access itself is one instruction on `[base', index]`, or `[base', windex, uxtw]` for an
//! i32 index: the hardware zero-extends the 32-bit index, so no extension is emitted. aarch64's
//! register-indexed mode has no displacement (`Target::AARCH64.max_displacement` is 0), so the
//! planner moves the whole offset into the base: `base' = base + offset`, made once where the
//! base is defined.

use super::*;
use crate::mutants::{active, Mutant};
use crate::plan::{Compare, ExplicitCheck};

/// The address of a bounds-checked access, and whether the access is a trap site.
#[derive(Clone, Copy, Debug)]
pub struct Address {
    amode: Amode,
    trap: bool,
}

/// The bytes the access moves (an `uload8` of an i32 moves one), which decide which
/// displacements its instruction's immediate holds.
fn width(a: &Access) -> u64 {
    match a.store_value {
        Some(_) => store_op(a.ty, a.kind).map(StoreOp::bytes),
        None => load_op(a.ty, a.kind).map(LoadOp::bytes),
    }
    // No such access: `lower_access_at` reports it.
    .unwrap_or(1)
}

impl IsleContext<'_, '_> {
    pub(super) fn lower_address_always_traps(&mut self, inst: Inst) -> Address {
        let a = self.access(inst);
        let base = self.access_base(&a);
        self.put_value(a.index);
        self.emit(MInst::Trap { code: a.trap });
        Address {
            amode: Amode::Imm { base, disp: 0 },
            trap: false,
        }
    }

    pub(super) fn lower_address_in_bounds(&mut self, inst: Inst, disp: u64) -> Address {
        let a = self.access(inst);
        let base = self.access_base(&a);
        let amode = match i64::try_from(disp) {
            Ok(d) => self.base_disp(base, d, width(&a)),
            Err(_) => Amode::Imm {
                base: self.add_const(base, disp),
                disp: 0,
            },
        };
        Address { amode, trap: false }
    }

    pub(super) fn lower_address_faulting(&mut self, inst: Inst) -> Address {
        let a = self.access(inst);
        let base = self.access_base(&a);
        let base = self.rebased(&a, base, a.offset);
        // The faulting range, or a guard a run's `index > bound` check relied on.
        let trap = self.lower.plan(inst).access_is_trap_site();
        Address {
            amode: self.indexed(&a, base),
            trap,
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
            // `[base + offset, index]`, as if the run's check were this access's own.
            let mut addr = self.lower_address_faulting(inst);
            if active(Mutant::CoveredPastEnd) {
                if let Amode::Reg { base, .. } = &mut addr.amode {
                    *base = self.add_const(*base, 1);
                }
            }
            return addr;
        }
        // The leader's `base + index + offset`, or null; the plan keeps `delta` within the
        // target's null reach.
        let (a, addr) = self.covered_access(inst, leader);
        let delta = delta + i64::from(active(Mutant::CoveredPastEnd));
        Address {
            amode: self.base_disp(addr, delta, width(&a)),
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
                "aarch64: no bounds-checked access of {ty} as {kind:?}"
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
            Err(StoreOp::W) if active(Mutant::WiderAccess) => Err(StoreOp::X),
            op => op,
        };
        match (a.store_value, op) {
            (Some(x), Err(op)) => {
                let src = self.put_value(x);
                // The planner decides (`Target::stores_may_tear`).
                if self.lower.plan(inst).probe_store() {
                    self.probe(op, amode, trap);
                }
                self.store_value(op, a.big_endian, src, amode, trap);
                Vec::new()
            }
            (None, Ok(op)) => vec![self.load_value(op, a.big_endian, amode, trap)],
            _ => unreachable!("loads have a load op, stores a store op"),
        }
    }

    /// A load of the bytes a store that may fault is about to write, from the same address:
    /// on Arm, a store that straddles a page boundary and faults on one page may still write
    /// the other (implementation-defined; QEMU does, and so may hardware: Wasmtime issue
    /// #7237), but Wasm requires a trapping store to change nothing. The load faults with no
    /// effect wherever the store would, so the store runs only when all of it is writable.
    fn probe(&mut self, op: StoreOp, amode: Amode, trap: Option<TrapCode>) {
        let op = match op {
            StoreOp::B => LoadOp::U8,
            StoreOp::H => LoadOp::U16,
            StoreOp::W => LoadOp::U32,
            StoreOp::X => LoadOp::X64,
            StoreOp::F32 => LoadOp::F32,
            StoreOp::F64 => LoadOp::F64,
        };
        let dst = self.vreg(op.class());
        self.emit(MInst::Load {
            op,
            dst,
            amode,
            trap,
        });
    }

    /// `[base, index]` for the access: `uxtw` extends an i32 index in the access itself.
    fn indexed(&mut self, a: &Access, base: VReg) -> Amode {
        if active(Mutant::ShiftedIndexFolded) {
            // CVE-2023-26489's class: for an index `ishl.i32 x, c` (or its zero-extension
            // to i64), the address uses `x << c` computed in 64 bits, as a shifted register
            // operand would.
            if let Some((x, c)) = self.lower.shifted_i32(a.index) {
                let x = self.put_value(x);
                let index = self.vreg(RegClass::Int);
                self.emit(MInst::ShiftImm {
                    op: AluOp::Lsl,
                    size: Size::X,
                    dst: index,
                    a: x,
                    amount: c & 63,
                });
                return Amode::Reg {
                    base,
                    index,
                    uxtw: false,
                };
            }
        }
        let index = self.put_value(a.index);
        if a.index_ty != I32 {
            return Amode::Reg {
                base,
                index,
                uxtw: false,
            };
        }
        if active(Mutant::MissingZeroExtension) {
            // The index sign-extended instead (Winch aarch64's bug class).
            let index = self.ext_reg(ExtOp::Sx32To64, index);
            return Amode::Reg {
                base,
                index,
                uxtw: false,
            };
        }
        Amode::Reg {
            base,
            index,
            uxtw: true,
        }
    }

    /// `base + rebase`, made once where `base` is defined.
    fn rebased(&mut self, a: &Access, base: VReg, rebase: u64) -> VReg {
        if rebase == 0 {
            return base;
        }
        self.derived(a.base, Derived::Plus(rebase), |cx| {
            cx.add_const(base, rebase)
        })
    }

    /// The index as a 64-bit register, for a comparison or an address computed from it: an
    /// i32 index is zero-extended already (the i32 invariant of this backend).
    fn index64(&mut self, a: &Access) -> VReg {
        let index = self.put_value(a.index);
        if active(Mutant::MissingZeroExtension) && a.index_ty == I32 {
            return self.ext_reg(ExtOp::Sx32To64, index);
        }
        index
    }

    /// The explicit check of `a` for `end` with `compare` (the plan's), and the address of
    /// its access.
    pub(super) fn explicit_check(&mut self, inst: Inst, check: ExplicitCheck) -> Address {
        let a = &self.access(inst);
        let base = self.access_base(a);
        let (mut compare, mut end) = (check.compare, check.end);
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
        let cmp = |cond, a: VReg, b: Rim| Test::Cmp {
            size: Size::X,
            cond,
            a,
            b,
        };
        let test = match compare {
            Compare::ConstantBound { limit } => match Rim::imm(limit) {
                Some(k) => cmp(Cond::Hi, index, k),
                None => {
                    let l = self.derived(a.bound, Derived::Minus(end), |cx| {
                        cx.const_reg(Size::X, limit)
                    });
                    cmp(Cond::Hi, index, Rim::Reg(l))
                }
            },
            Compare::OneByte => {
                let bound = self.access_bound(a);
                cmp(Cond::Hs, index, Rim::Reg(bound))
            }
            Compare::Guard => {
                let bound = self.access_bound(a);
                cmp(Cond::Hi, index, Rim::Reg(bound))
            }
            // `bound - K` once, where the bound is defined (outside the loop).
            Compare::BoundMinusEnd => {
                let bound = self.access_bound(a);
                let bk = self.derived(a.bound, Derived::Minus(end), |cx| cx.sub_const(bound, end));
                cmp(Cond::Hi, index, Rim::Reg(bk))
            }
            Compare::EndAboveBound { may_wrap: false } => {
                let sum = self.add_const(index, end);
                let bound = self.access_bound(a);
                cmp(Cond::Hi, sum, Rim::Reg(bound))
            }
            // `index + K` may wrap: it traps on the carry first.
            Compare::EndAboveBound { may_wrap: true } => {
                let k = match Rim::imm(end) {
                    Some(k) => k,
                    None => Rim::Reg(self.const_reg(Size::X, end)),
                };
                let sum = self.vreg(RegClass::Int);
                self.emit(MInst::AddTrap {
                    size: Size::X,
                    dst: sum,
                    a: index,
                    b: k,
                    code: a.trap,
                });
                let bound = self.access_bound(a);
                cmp(Cond::Hi, sum, Rim::Reg(bound))
            }
        };
        let base = self.rebased(a, base, check.rebase);
        if !check.null_select {
            if !active(Mutant::DroppedCheck) {
                self.emit(MInst::TrapIf { test, code: a.trap });
            }
            // Later accesses of the run use `[base', index]` themselves.
            self.lower.record_checked(a.inst, index);
            let trap = self.lower.plan(a.inst).access_is_trap_site();
            return Address {
                amode: self.indexed(a, base),
                trap,
            };
        }
        // addr = base' + index; out of bounds, `csel` makes it null (then `csdb` when the
        // target asks for it). Later accesses of the run address relative to it
        // (`Form::Covered`).
        let addr = self.vreg(RegClass::Int);
        match self.indexed(a, base) {
            Amode::Reg {
                base,
                index,
                uxtw: true,
            } => self.emit(MInst::AddUxtw {
                dst: addr,
                a: base,
                b: index,
            }),
            Amode::Reg { base, index, .. } => self.emit(MInst::Alu {
                op: AluOp::Add,
                size: Size::X,
                dst: addr,
                a: base,
                b: index,
            }),
            Amode::Imm { .. } => unreachable!("indexed addresses have an index"),
        }
        let safe = if active(Mutant::SpectreSelectDropped) {
            addr
        } else {
            let safe = self.vreg(RegClass::Int);
            // The mutant selects the address when out of bounds, and null when in bounds.
            let test = match active(Mutant::SpectreWrongOperand) {
                false => test,
                true => test.invert(),
            };
            self.emit(MInst::CSelZero {
                test,
                dst: safe,
                f: addr,
                csdb: self.backend.csdb,
            });
            safe
        };
        self.lower.record_checked(a.inst, safe);
        Address {
            amode: Amode::Imm {
                base: safe,
                disp: 0,
            },
            trap: true,
        }
    }
}
