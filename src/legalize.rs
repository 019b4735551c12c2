//! Expands `bounds_checked_load`/`bounds_checked_store` into ordinary CLIF that real Cranelift
//! compiles: the fallback for targets without a fused lowering.
//!
//! This is the only code that writes the exploded forms as CLIF. Which form an access gets,
//! the cheapest that is correct for every execution the memory declaration allows, is
//! [`crate::plan::plan`]'s choice, shared with the backends; the cases follow
//! what Wasmtime's translator distinguishes (RFC.md, "Legalization"):
//!
//! | case | when | check |
//! |---|---|---|
//! | A | `offset + size` exceeds the largest possible bound | always traps |
//! | B | (A on a 32-bit host, where the bound is below 2^32) | always traps |
//! | C | the faulting range after the bound covers every possible end | none |
//! | D | the index is a constant and the access provably in bounds | none |
//! | E | the bound is a constant | `icmp ugt index, bound - K` |
//! | F | a 1-byte access at offset 0 | `icmp uge index, bound` |
//! | G | the guard after the bound covers `K = offset + size` | `icmp ugt index, bound` |
//! | H | the minimum size covers `K`, so `bound - K` cannot wrap | `isub bound, K` then `icmp ugt` |
//! | I | otherwise | `uadd_overflow_trap index, K` then `icmp ugt end, bound` |
//!
//! The out-of-bounds condition is consumed by `trapnz` or, with
//! `enable_heap_access_spectre_mitigation`, by `select_spectre_guard` of the address to 0 (a
//! plain `select` on Pulley, whose backend cannot lower `select_spectre_guard`): the access
//! then faults on the null page with its own trap code. The trap condition itself comes from
//! the instruction's definition; this module decides only how much of it the hardware checks.

use crate::ir::{
    types, BoundsCheckedAccess, DataFlowGraph, Function, Inst, InstBuilder, InstBuilderBase,
    InstructionData, MemFlags, Opcode, Type, Value,
};
pub use crate::plan::Case;
use crate::plan::{AccessFacts, Compare, Form, Renderer};
use crate::semantics::Extension;
use crate::target::Target;

/// How to expand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The target: its pointer width, byte order, and whether faults in a memory's declared
    /// faulting ranges are traps there ([`Target::faulting_ranges_trap`]; without that,
    /// cases C and G, which rely on such faults, are never chosen).
    pub target: Target,
    /// `enable_heap_access_spectre_mitigation`: redirect out-of-bounds addresses to 0 instead
    /// of branching to a trap.
    pub spectre: bool,
}

impl Default for Settings {
    /// As upstream Cranelift on x86_64: Spectre mitigation on.
    fn default() -> Self {
        Settings {
            target: Target::X86_64,
            spectre: true,
        }
    }
}

impl Settings {
    /// Settings for the target named `target` with `enable_heap_access_spectre_mitigation`
    /// as given.
    pub fn for_target(target: &str, spectre: bool) -> Result<Settings, String> {
        Settings::new(
            Some(target),
            &[(
                "enable_heap_access_spectre_mitigation".into(),
                spectre.to_string(),
            )],
        )
    }

    /// Settings from a target name and `set` lines (`enable_heap_access_spectre_mitigation`,
    /// true or false; others are ignored here).
    pub fn new(target: Option<&str>, sets: &[(String, String)]) -> Result<Settings, String> {
        let mut s = Settings::default();
        if let Some(name) = target {
            s.target = *Target::lookup_or_err(name)?;
        }
        for (name, value) in sets {
            if name == "enable_heap_access_spectre_mitigation" {
                s.spectre = match value.as_str() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    v => return Err(format!("`{name}` is true or false, not `{v}`")),
                };
            }
        }
        Ok(s)
    }

    /// The target's pointer type.
    pub fn pointer(&self) -> Type {
        self.target.pointer
    }

    /// The Spectre form uses a plain `select` (Pulley cannot lower `select_spectre_guard`).
    fn plain_select(&self) -> bool {
        self.target.pulley
    }

    /// The target lowers only native-order accesses (x64, aarch64 and riscv64 in Cranelift
    /// 0.135 reject `big` loads): other orders become a native access and a `bswap`. Pulley
    /// has loads and stores of both byte orders.
    fn native_only(&self) -> bool {
        !self.target.pulley
    }
}

/// Deliberate errors, for tests proving the oracle catches a wrong legalizer. Never set
/// outside such tests.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mutation {
    /// Compare against `offset + size - 1` (an off-by-one at the end of memory).
    KMinusOne,
    /// Choose the `isub bound, K` form without the minimum-size proof.
    IsubWithoutProof,
    /// Make the access first and check after it: a store out of bounds writes, then traps.
    AccessBeforeCheck,
    /// Trap whatever the operands (code that never accesses is not the instruction either).
    AlwaysTrap,
}

/// Expands every bounds-checked access of `func` and removes its memory declarations.
/// Returns the case chosen for each access, by the original instruction.
pub fn legalize(func: &mut Function, settings: &Settings) -> Vec<(Inst, Case)> {
    legalize_with(func, settings, None)
}

#[doc(hidden)]
pub fn legalize_with(
    func: &mut Function,
    settings: &Settings,
    mutation: Option<Mutation>,
) -> Vec<(Inst, Case)> {
    let mut cases = Vec::new();
    let blocks = func.layout.blocks().to_vec();
    for block in blocks {
        let old = func.layout.block_insts(block).to_vec();
        if !old.iter().any(|&i| is_bounds_checked(func.dfg.opcode(i))) {
            continue;
        }
        let mut new = Vec::with_capacity(old.len());
        for inst in old {
            if is_bounds_checked(func.dfg.opcode(inst)) {
                let span = func.srcmap.insts[inst];
                let start = new.len();
                let case = expand(func, inst, settings, mutation, &mut new);
                for &i in &new[start..] {
                    func.srcmap.insts[i] = span;
                }
                cases.push((inst, case));
            } else {
                new.push(inst);
            }
        }
        func.layout.set_block_insts(block, new);
    }
    func.memories.clear();
    func.srcmap.memories.clear();
    // Upstream has no memory types since PCC's removal; the fact is for our checker only.
    func.vmctx_struct = None;
    cases
}

fn is_bounds_checked(op: Opcode) -> bool {
    matches!(op, Opcode::BoundsCheckedLoad | Opcode::BoundsCheckedStore)
}

/// An insertion point that collects new instructions in order.
struct Emit<'a> {
    dfg: &'a mut DataFlowGraph,
    out: &'a mut Vec<Inst>,
}

impl<'f> InstBuilderBase<'f> for &'f mut Emit<'_> {
    fn data_flow_graph(&self) -> &DataFlowGraph {
        self.dfg
    }

    fn build(self, data: InstructionData, ctrl: Type) -> (Inst, &'f mut DataFlowGraph) {
        let inst = self.dfg.make_inst(data);
        self.dfg.make_inst_results(inst, ctrl);
        self.out.push(inst);
        (inst, &mut *self.dfg)
    }
}

/// An access being expanded: its operands and its type.
struct Access {
    parts: BoundsCheckedAccess,
    ty: Type,
}

impl core::ops::Deref for Access {
    type Target = BoundsCheckedAccess;
    fn deref(&self) -> &BoundsCheckedAccess {
        &self.parts
    }
}

/// How the legalizer renders plans: each access alone, no bounds-checking addressing modes.
fn renderer(settings: &Settings) -> Renderer {
    Renderer {
        spectre: settings.spectre,
        runs: false,
        checked_modes: false,
        legalized: true,
    }
}

fn expand(
    func: &mut Function,
    inst: Inst,
    settings: &Settings,
    mutation: Option<Mutation>,
    out: &mut Vec<Inst>,
) -> Case {
    let parts = func.dfg.insts[inst]
        .bounds_checked_access()
        .expect("expand is only called on bounds-checked accesses");
    let facts = AccessFacts::of(func, &settings.target, inst, &|_| false)
        .expect("expand is only called on bounds-checked accesses");
    let plan = crate::plan::plan(&facts, &settings.target, renderer(settings), None);
    let a = Access {
        ty: func.dfg.ctrl_type(inst),
        parts,
    };
    let result = func.dfg.detach_results(inst).first().copied();
    let pt = settings.pointer();
    let k = plan.k();
    let code = a.parts.trap_code();
    let index_ty = facts.index_ty;
    let mut e = Emit {
        dfg: &mut func.dfg,
        out,
    };

    if matches!(plan.form(), Form::AlwaysTraps { .. }) || mutation == Some(Mutation::AlwaysTrap) {
        let one = (&mut e).iconst(types::I8, 1.into());
        (&mut e).trapnz(one, code);
        if let Some(r) = result {
            // Never reached; the result still needs a definition.
            define_zero(&mut e, r, a.ty);
        }
        return plan.case();
    }

    // The index at pointer width. An i64 index on a 32-bit host must trap when its high half
    // is set: no 32-bit bound can admit it.
    let index = match (index_ty.bits(), pt.bits()) {
        (32, 64) => match facts.const_index {
            Some(c) => (&mut e).iconst(types::I64, (c as i64).into()),
            None => (&mut e).uextend(types::I64, a.index),
        },
        (64, 32) => {
            let limit = (&mut e).iconst(types::I64, 0xffff_ffff.into());
            let high = (&mut e).icmp(crate::ir::IntCC::UnsignedGreaterThan, a.index, limit);
            (&mut e).trapnz(high, code);
            (&mut e).ireduce(types::I32, a.index)
        }
        _ => a.index,
    };
    let k_checked = match mutation {
        Some(Mutation::KMinusOne) => k - 1,
        _ => k,
    };
    let (compare, null_select) = match plan.form() {
        Form::Explicit { check } => (Some(check.compare), check.null_select),
        _ => (None, false),
    };
    let compare = match (compare, mutation) {
        (Some(Compare::EndAboveBound { .. }), Some(Mutation::IsubWithoutProof)) => {
            Some(Compare::BoundMinusEnd)
        }
        (c, _) => c,
    };

    use crate::ir::IntCC::{UnsignedGreaterThan as Ugt, UnsignedGreaterThanOrEqual as Uge};
    let oob = compare.map(|compare| match compare {
        Compare::ConstantBound { limit } => {
            let limit = limit + (k - k_checked);
            let limit = (&mut e).iconst(pt, (limit as i64).into());
            (&mut e).icmp(Ugt, index, limit)
        }
        Compare::OneByte => (&mut e).icmp(Uge, index, a.bound),
        Compare::Guard => (&mut e).icmp(Ugt, index, a.bound),
        Compare::BoundMinusEnd => {
            let kv = (&mut e).iconst(pt, (k_checked as i64).into());
            let limit = (&mut e).isub(a.bound, kv);
            (&mut e).icmp(Ugt, index, limit)
        }
        // Even where the sum cannot wrap, the legalizer keeps the overflow-checked add that
        // its baseline (RFC.md) measures real Cranelift on.
        Compare::EndAboveBound { .. } => {
            let kv = (&mut e).iconst(pt, (k_checked as i64).into());
            let end = (&mut e).uadd_overflow_trap(index, kv, code);
            (&mut e).icmp(Ugt, end, a.bound)
        }
    });
    // The mutation's `isub` form is case H whatever the plan said.
    let case = match compare {
        Some(Compare::BoundMinusEnd) => Case::H,
        _ => plan.case(),
    };

    // The address, and how the condition is consumed.
    let (addr, offset) = match oob {
        Some(oob) if null_select => {
            let mut full = (&mut e).iadd(a.base, index);
            if a.offset != 0 {
                let o = (&mut e).iconst(pt, (a.offset as i64).into());
                full = (&mut e).iadd(full, o);
            }
            let null = (&mut e).iconst(pt, 0.into());
            let addr = if settings.plain_select() {
                (&mut e).select(oob, null, full)
            } else {
                (&mut e).select_spectre_guard(oob, null, full)
            };
            (addr, 0)
        }
        _ => {
            if let (Some(oob), false) = (oob, mutation == Some(Mutation::AccessBeforeCheck)) {
                (&mut e).trapnz(oob, code);
            }
            let addr = (&mut e).iadd(a.base, index);
            match i32::try_from(a.offset) {
                Ok(o) => (addr, o),
                Err(_) => {
                    let o = (&mut e).iconst(pt, (a.offset as i64).into());
                    ((&mut e).iadd(addr, o), 0)
                }
            }
        }
    };
    access(
        &mut e,
        &a,
        addr,
        offset,
        result,
        settings,
        plan.probe_store(),
    );
    if let (Some(oob), false, Some(Mutation::AccessBeforeCheck)) = (oob, null_select, mutation) {
        (&mut e).trapnz(oob, code);
    }
    case
}

/// The plain access at `addr + offset`, defining `result` for a load. A byte order the target
/// cannot access directly becomes a native-order access of the same bytes and a `bswap`. A
/// store the plan says to probe (`Plan::probe_store`) is preceded by a trapping load of the
/// same bytes, whose result nothing uses: Cranelift keeps it, as a load that may trap.
fn access(
    e: &mut Emit,
    a: &Access,
    addr: Value,
    offset: i32,
    result: Option<Value>,
    settings: &Settings,
    probe: bool,
) {
    let off = crate::ir::Offset32(offset);
    let bytes = a.access.access_size(a.ty);
    let mut flags = a.flags;
    let foreign = flags
        .endianness
        .is_some_and(|o| o != settings.target.endianness);
    if bytes == 1 {
        // A single byte has no order; some backends reject the flag anyway.
        flags.endianness = None;
    }
    let swap = settings.native_only() && foreign && bytes > 1;
    if swap {
        flags.endianness = Some(settings.target.endianness);
    }
    let raw_ty = Type::int(bytes * 8).expect("accesses are 1, 2, 4 or 8 bytes");
    match a.value {
        Some(x) => {
            let x = if swap {
                let mut v = x;
                if a.ty.is_float() {
                    v = e.bitcast(raw_ty, MemFlags::default_for_bitcast(), v);
                } else if raw_ty != a.ty {
                    v = e.ireduce(raw_ty, v);
                }
                e.bswap(v)
            } else {
                x
            };
            if probe {
                let mut load_flags = flags;
                load_flags.endianness = None;
                let _ = e.load(raw_ty, load_flags, addr, off);
            }
            let narrow = !swap && a.access.narrow_bytes().is_some();
            match (narrow, bytes) {
                (true, 1) => e.istore8(flags, x, addr, off),
                (true, 2) => e.istore16(flags, x, addr, off),
                (true, _) => e.istore32(flags, x, addr, off),
                (false, _) => e.store(flags, x, addr, off),
            };
        }
        None => {
            let r = result.expect("a load has a result");
            if swap {
                let raw = e.load(raw_ty, flags, addr, off);
                let mut v = e.bswap(raw);
                if a.ty.is_float() {
                    v = e.bitcast(a.ty, MemFlags::default_for_bitcast(), v);
                } else if raw_ty != a.ty {
                    v = match a.access.extension() {
                        Extension::Sign => e.sextend(a.ty, v),
                        _ => e.uextend(a.ty, v),
                    };
                }
                rename_last_result(e, v, r);
                return;
            }
            let opcode = match (a.access.narrow_bytes(), a.access.extension()) {
                (None, _) => Opcode::Load,
                (Some(1), Extension::Sign) => Opcode::Sload8,
                (Some(1), _) => Opcode::Uload8,
                (Some(2), Extension::Sign) => Opcode::Sload16,
                (Some(2), _) => Opcode::Uload16,
                (Some(_), Extension::Sign) => Opcode::Sload32,
                (Some(_), _) => Opcode::Uload32,
            };
            // uload32/sload32 are not polymorphic.
            let ctrl = if matches!(opcode, Opcode::Uload32 | Opcode::Sload32) {
                types::INVALID
            } else {
                a.ty
            };
            let inst = e.dfg.make_inst(InstructionData::Load {
                opcode,
                flags,
                arg: addr,
                offset: off,
            });
            e.dfg.attach_result(inst, r, a.ty);
            e.dfg.set_ctrl_type(inst, ctrl);
            e.out.push(inst);
        }
    }
}

/// Makes the last emitted instruction, which defined `v`, define `r` instead: the expansion
/// of a load ends by defining the original load's result.
fn rename_last_result(e: &mut Emit, v: Value, r: Value) {
    let inst = *e.out.last().expect("an instruction was emitted");
    let ty = e.dfg.value_type(v);
    debug_assert_eq!(e.dfg.inst_results(inst), &[v]);
    e.dfg.detach_results(inst);
    e.dfg.attach_result(inst, r, ty);
}

/// Defines `r` as a zero of type `ty`: the result of an access that never executes.
fn define_zero(e: &mut Emit, r: Value, ty: Type) {
    let (data, ctrl) = InstructionData::zero_constant(ty);
    let inst = e.dfg.make_inst(data);
    e.dfg.attach_result(inst, r, ty);
    e.dfg.set_ctrl_type(inst, ctrl);
    e.out.push(inst);
}
