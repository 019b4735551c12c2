//! Proof-carrying code on lowered machine code (`enable_pcc`): every memory access of a
//! function's machine instructions is proven, by the trusted kernel of the `verifier/` crate
//! ([`clif_bounds_verifier`]), to lie inside a declared region or inside a range that
//! faults.
//!
//! What is declared comes from the IR, never from lowering's choices: each bounds-checked
//! access's `base` and `bound` operands and its memory's declaration form a region; a base
//! or bound defined by a `load` is a field of the VM context ([`declarations`]). Each ISA
//! describes its instructions to the kernel in its `pcc.rs`, one exhaustive `match`
//! ([`PccInst`]); [`check`] walks the blocks along the dominator tree, so an assumption made
//! past a conditional trap is visible exactly where it holds.
//!
//! The check runs before register allocation, on SSA virtual registers. Below it,
//! regalloc2's own checker validates the allocation and each emitted access is decoded back
//! and compared with the instruction that was proven (in each ISA's `emit.rs`).

use super::lower::Backend;
use super::vcode::VCode;
use super::{CodegenError, MachInst, VReg};
use crate::ir::{Function, Value};
pub use clif_bounds_verifier as kernel;

use clif_bounds_verifier::{Address, Checker, Fact, PccError, Proof};
use cranelift_entity::SecondaryMap;

/// What the check of one function needs beyond its instructions.
#[derive(Clone, Debug, Default)]
pub struct PccInfo {
    /// The regions and fields of the function (from the IR).
    pub decls: kernel::Declarations,
    /// For each instruction: emitted while lowering a bounds-checked access, so each of its
    /// memory accesses must be proven.
    pub in_access: Vec<bool>,
    /// For each virtual register holding an IR integer value: its width in bits (0 when
    /// the register holds no IR value or a float).
    pub value_bits: Vec<u8>,
    /// Time spent taking the declarations, in nanoseconds (part of the proof's cost).
    pub nanos: u64,
}

/// Counts of the memory accesses of checked functions, by how they were proven.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PccReport {
    /// Functions checked.
    pub functions: u64,
    /// Linear-memory accesses proven inside the accessible range.
    pub linear: u64,
    /// Linear-memory accesses proven accessible or inside a faulting range (or a trapping
    /// null page) at a trap site.
    pub linear_or_faults: u64,
    /// Accesses of a declared struct: the VM context (`mt0 = struct SIZE, vmctx`: its base
    /// and bound fields of memories and tables, globals, segment fields), or a trampoline's
    /// value array.
    pub vmctx: u64,
    /// Accesses of the frame's stack slots (parameters and outgoing arguments).
    pub stack: u64,
    /// Accesses that never touch memory: after a check that always fails (any access to a
    /// memory whose bound is 0), or through a Spectre guard that always chooses null.
    pub never: u64,
    /// Ordinary `load`s and `store`s through addresses outside every declared region (the
    /// IR declares no type for them): not proven.
    pub unproven: u64,
    /// Emitted accesses decoded back (capstone, Pulley's decoder) and found to be the
    /// proven ones.
    pub decoded: u64,
    /// Time spent checking, in nanoseconds.
    pub check_nanos: u64,
}

impl PccReport {
    /// Adds `other`'s counts.
    pub fn add(&mut self, other: &PccReport) {
        self.functions += other.functions;
        self.linear += other.linear;
        self.linear_or_faults += other.linear_or_faults;
        self.vmctx += other.vmctx;
        self.stack += other.stack;
        self.never += other.never;
        self.unproven += other.unproven;
        self.check_nanos += other.check_nanos;
        self.decoded += other.decoded;
    }
}

impl std::fmt::Display for PccReport {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "pcc: {} functions; accesses proven: {} linear memory ({} in bounds, {} in bounds or faulting), {} vmctx struct, {} stack; {} unproven (plain accesses outside declared regions); {} emitted accesses decoded back as proven",
            self.functions,
            self.linear + self.linear_or_faults,
            self.linear,
            self.linear_or_faults,
            self.vmctx,
            self.stack,
            self.unproven,
            self.decoded
        )?;
        if self.never > 0 {
            write!(
                f,
                "; {} accesses that never touch memory (after a check that always fails)",
                self.never
            )?;
        }
        Ok(())
    }
}

/// A value's number for the kernel: its virtual register, or, for an IR value that no
/// register holds (a constant bound compared as an immediate), a number no register has.
fn value_id(value_regs: &SecondaryMap<Value, Option<VReg>>, v: Value) -> kernel::Value {
    use cranelift_entity::EntityRef;
    match value_regs[v] {
        Some(r) => r.vreg() as kernel::Value,
        None => u32::MAX - v.index() as u32,
    }
}

/// The declarations of a lowered function: one region for each distinct `(base, bound)`
/// pair of its bounds-checked accesses, with the memory's declaration as its type, and a
/// field for each base or bound the IR loads.
pub fn declarations<B: Backend>(
    func: &Function,
    value_regs: &SecondaryMap<Value, Option<VReg>>,
    accesses: &[super::access::Access],
    block_map: &SecondaryMap<crate::ir::Block, Option<super::MachBlock>>,
    num_vregs: usize,
) -> PccInfo {
    let target = B::TARGET;
    let id = |v| value_id(value_regs, v);
    let mut decls = kernel::Declarations {
        null_reach: match target.null_check {
            crate::target::NullCheck::Unmapped { reach } => reach,
            crate::target::NullCheck::BaseRegister => 0,
        },
        faults_trap: target.faulting_ranges_trap(),
        ..Default::default()
    };
    let mut calls_before = std::collections::HashMap::new();
    for a in accesses {
        let m = func.memories[a.memory];
        let max = m.max_bound(target.pointer).min(u128::from(u64::MAX)) as u64;
        // A base loaded `readonly` is the IR's promise that it does not change while the
        // function runs: that memory does not move under it, whatever its declaration allows.
        let base_readonly = match func.dfg.value_def(a.base) {
            crate::ir::ValueDef::Result(def, _) => super::access::PlainAccess::of(func, def)
                .is_some_and(|l| l.store_value.is_none() && l.flags.readonly),
            _ => false,
        };
        let region = kernel::Region {
            memory: kernel::MemoryType {
                min: m.min,
                max,
                least_faulting_end: m.faulting_end(m.min),
                guard: m.guard,
                may_move: m.reservation.is_none() && !base_readonly,
            },
            base: id(a.base),
            bound: id(a.bound),
            bound_const: func.dfg.iconst_value(a.bound),
        };
        if !decls.regions.contains(&region) {
            decls.regions.push(region);
        }
        for v in [a.base, a.bound] {
            let crate::ir::ValueDef::Result(def, _) = func.dfg.value_def(v) else {
                continue;
            };
            let Some(load) = super::access::PlainAccess::of(func, def) else {
                continue;
            };
            if load.store_value.is_some() {
                continue;
            }
            // Where the load is: its machine block, and how many calls precede it there
            // (machine calls are the IR's calls, in the same order).
            let Some(block) = func.layout.inst_block(def) else {
                continue;
            };
            let calls = *calls_before.entry(def).or_insert_with(|| {
                func.layout
                    .block_insts(block)
                    .iter()
                    .take_while(|&&i| i != def)
                    .filter(|&&i| func.dfg.opcode(i).is_call())
                    .count() as u32
            });
            let field = kernel::Field {
                addr: id(load.addr),
                offset: i64::from(load.offset),
                holds: id(v),
                readonly: load.flags.readonly,
                at: (
                    block_map[block].map_or(u32::MAX, |b| b.index() as u32),
                    calls,
                ),
            };
            if !decls.fields.contains(&field) {
                decls.fields.push(field);
            }
        }
    }
    // The VM context's struct type: what its parameter points to.
    if let (Some(size), Some(entry)) = (func.vmctx_struct, func.layout.entry_block()) {
        for (p, param) in func
            .dfg
            .block_params(entry)
            .iter()
            .zip(&func.signature.params)
        {
            if param.vmctx {
                decls.structs.push((id(*p), size));
            }
        }
    }
    // What each register holds is what its *defining* value's type promises. A value
    // lowered as its operand's register (x64's free `uextend.i64` of an i32, a narrowing
    // `ireduce` to i8/i16) shares that register without defining it: a zero-extension is
    // still the i32 it extends, and an i8 view of an i64 says nothing of the upper bits.
    // (Letting the last value written win made an i64 parameter narrowed to i8 look like
    // a 32-bit value, and an i32 extended for free look like an arbitrary 64-bit one.)
    let mut value_bits = vec![0u8; num_vregs];
    for (v, r) in value_regs.iter() {
        let (Some(r), ty) = (r, func.dfg.value_type(v)) else {
            continue;
        };
        let alias = match func.dfg.value_def(v) {
            crate::ir::ValueDef::Result(inst, _) => func.dfg.insts[inst]
                .arguments()
                .iter()
                .any(|&a| value_regs[a] == Some(*r)),
            _ => false,
        };
        if ty.is_int() && !alias {
            value_bits[r.vreg()] = ty.bits() as u8;
        }
    }
    PccInfo {
        decls,
        in_access: Vec::new(),
        value_bits,
        nanos: 0,
    }
}

/// A machine instruction as the kernel sees it. Each ISA implements this beside its
/// instructions, as one exhaustive `match`: a new instruction does not compile until it has
/// a rule.
pub trait PccInst: MachInst {
    /// Describes the instruction to the checker: the facts of what it defines, the
    /// assumptions execution past it may make, and each memory access it makes.
    fn pcc(&self, cx: &mut Cx<'_>) -> Result<(), PccError>;
    /// Whether the instruction calls another function (which may grow a memory).
    fn is_call(&self) -> bool;
    /// Whether the instruction always traps: nothing after it in its block ever runs.
    fn always_traps(&self) -> bool;
    /// What the ISA's convention guarantees about a register holding an IR integer of
    /// `bits` bits where no instruction says more (parameters, call results, block
    /// parameters): checked wherever such a value is passed on.
    fn value_fact(bits: u8) -> Fact;
    /// When this instruction ends a block with a conditional branch: what holds on entry to
    /// `succ` when the branch goes there (the checker applies it when `succ` has no other
    /// predecessor).
    fn edge(&self, succ: super::MachBlock, cx: &mut Cx<'_>);
}

/// The checker as one instruction's rule sees it.
pub struct Cx<'a> {
    /// The kernel.
    pub k: &'a mut Checker,
    in_access: bool,
    value_bits: &'a [u8],
    value_fact: fn(u8) -> Fact,
    report: &'a mut PccReport,
}

/// The kernel's number for a virtual register.
pub fn id(v: VReg) -> kernel::Value {
    v.vreg() as kernel::Value
}

impl Cx<'_> {
    /// A memory access of `width` bytes at `addr` (`index32`: the hardware zero-extends a
    /// 32-bit index). An access lowered from a bounds-checked instruction, or through an
    /// address derived from a memory's base, must be proven; a read of a declared field is;
    /// any other is counted as unproven.
    pub fn memory(
        &mut self,
        addr: Address,
        width: u64,
        trap_site: bool,
        null_checked: bool,
        write: bool,
    ) -> Result<(), PccError> {
        if write {
            self.k.write(addr, width)?;
        }
        let through_region = matches!(self.k.address(addr, false), Fact::Ptr { .. })
            || matches!(self.k.fact(addr.base), Fact::Ptr { .. });
        if self.in_access || through_region {
            let p = self.k.access(addr, width, trap_site, null_checked)?;
            self.count(p);
        } else if addr.index.is_none() && self.k.field(addr.base, addr.disp).is_some() {
            self.count(Proof::Field);
        } else {
            self.report.unproven += 1;
        }
        Ok(())
    }

    /// Pulley's `g32` access (see [`Checker::g32`]).
    pub fn g32(
        &mut self,
        base: VReg,
        bound: kernel::Value,
        index: VReg,
        offset: u64,
        width: u64,
    ) -> Result<(), PccError> {
        let p = self.k.g32(id(base), bound, id(index), offset, width)?;
        self.count(p);
        Ok(())
    }

    /// A read of the VM context field at `addr + offset`: the value it holds.
    pub fn field(&mut self, addr: VReg, offset: i64) -> Result<kernel::Value, PccError> {
        self.k.field_access(id(addr), offset)?;
        self.count(Proof::Field);
        Ok(self.k.field(id(addr), offset).expect("checked").holds)
    }

    /// A call: fields calls may change hold their next values after it.
    pub fn call(&mut self) {
        self.k.call();
    }

    /// An access of the frame's own stack slots (laid out by emission, not addressable by
    /// the function's values).
    pub fn stack(&mut self) {
        self.count(Proof::Stack);
    }

    /// `v` is loaded from a stack slot of the convention (a parameter or a call's result
    /// passed on the stack): a frame access, defining an IR value as the convention passes it.
    pub fn abi_load(&mut self, v: VReg) {
        self.stack();
        self.abi_def(v);
    }

    /// `v` is stored to a stack slot of the convention (an argument or a result passed on
    /// the stack): a frame access, passing on an IR value.
    pub fn abi_store(&mut self, v: VReg) -> Result<(), PccError> {
        self.stack();
        self.abi_use(v)
    }

    /// `v` holds an IR value as the convention passes it (a parameter, a call result).
    pub fn abi_def(&mut self, v: VReg) {
        let f = self.abi_fact(v);
        self.k.param(id(v), f);
    }

    /// `v` is passed on as an IR value (a call argument, a returned value): it must have
    /// what the convention promises the receiver.
    pub fn abi_use(&mut self, v: VReg) -> Result<(), PccError> {
        let want = self.abi_fact(v);
        let had = self.k.fact(id(v));
        if had.implies(&want) {
            Ok(())
        } else {
            Err(PccError {
                needed: format!("v{} {want} (the convention's promise)", v.vreg()),
                had: had.to_string(),
            })
        }
    }

    fn abi_fact(&self, v: VReg) -> Fact {
        match self.value_bits.get(v.vreg()).copied().unwrap_or(0) {
            0 => Fact::ANY,
            bits => (self.value_fact)(bits),
        }
    }

    fn count(&mut self, p: Proof) {
        match p {
            Proof::Accessible => self.report.linear += 1,
            Proof::AccessibleOrFaults => self.report.linear_or_faults += 1,
            Proof::Field => self.report.vmctx += 1,
            Proof::Stack => self.report.stack += 1,
            Proof::NeverAccesses => self.report.never += 1,
        }
    }
}

/// For each block, the bases of memories that may move that may be stale on entry: a
/// forward "may" dataflow over every path, where a call makes every such base stale and its
/// (re)definition makes it fresh. A base used where a call may have run since its load, on
/// any path (a loop's back edge included), is stale there.
fn stale_on_entry<I: PccInst>(
    vcode: &VCode<I>,
    moving: &[kernel::Value],
) -> Vec<std::collections::BTreeSet<kernel::Value>> {
    use std::collections::BTreeSet;
    let n = vcode.blocks.len();
    let mut entry: Vec<BTreeSet<kernel::Value>> = vec![BTreeSet::new(); n];
    if moving.is_empty() {
        return entry;
    }
    let mut ops = Vec::new();
    let mut transfer = |b: usize, mut s: BTreeSet<kernel::Value>| {
        let vb = &vcode.blocks[b];
        for p in &vb.params {
            s.remove(&id(*p));
        }
        for inst in &vcode.insts[vb.start as usize..vb.end as usize] {
            if inst.is_call() {
                s.extend(moving.iter().copied());
            }
            ops.clear();
            inst.operands(&mut ops);
            for op in &ops {
                if op.kind() == regalloc2::OperandKind::Def {
                    s.remove(&(op.vreg().vreg() as kernel::Value));
                }
            }
        }
        s
    };
    let mut exit: Vec<BTreeSet<kernel::Value>> =
        (0..n).map(|b| transfer(b, BTreeSet::new())).collect();
    let mut changed = true;
    while changed {
        changed = false;
        for b in 0..n {
            let mut s = BTreeSet::new();
            for p in &vcode.blocks[b].preds {
                s.extend(exit[p.index()].iter().copied());
            }
            if s != entry[b] {
                entry[b] = s.clone();
                let out = transfer(b, s);
                if out != exit[b] {
                    exit[b] = out;
                }
                changed = true;
            }
        }
    }
    entry
}

/// Immediate dominators of the machine blocks (block 0 is the entry), by the iterative
/// algorithm of Cooper, Harvey and Kennedy over reverse postorder.
fn dominator_children<I: MachInst>(vcode: &VCode<I>) -> Vec<Vec<usize>> {
    let n = vcode.blocks.len();
    let mut order = Vec::with_capacity(n);
    let mut seen = vec![false; n];
    let mut stack = vec![(0usize, 0usize)];
    seen[0] = true;
    while let Some((b, i)) = stack.pop() {
        let succs = &vcode.blocks[b].succs;
        if i < succs.len() {
            stack.push((b, i + 1));
            let s = succs[i].index();
            if !seen[s] {
                seen[s] = true;
                stack.push((s, 0));
            }
        } else {
            order.push(b);
        }
    }
    order.reverse();
    let mut rpo = vec![usize::MAX; n];
    for (i, &b) in order.iter().enumerate() {
        rpo[b] = i;
    }
    let mut idom = vec![usize::MAX; n];
    idom[0] = 0;
    let mut changed = true;
    while changed {
        changed = false;
        for &b in order.iter().skip(1) {
            let mut new = usize::MAX;
            for p in &vcode.blocks[b].preds {
                let mut p = p.index();
                if idom[p] == usize::MAX {
                    continue;
                }
                if new == usize::MAX {
                    new = p;
                    continue;
                }
                let mut q = new;
                while p != q {
                    while rpo[p] > rpo[q] {
                        p = idom[p];
                    }
                    while rpo[q] > rpo[p] {
                        q = idom[q];
                    }
                }
                new = p;
            }
            if new != idom[b] {
                idom[b] = new;
                changed = true;
            }
        }
    }
    let mut children = vec![Vec::new(); n];
    for &b in order.iter().skip(1) {
        if idom[b] != usize::MAX {
            children[idom[b]].push(b);
        }
    }
    children
}

/// Checks every instruction of `vcode` (lowered with `enable_pcc`, so it carries its
/// [`PccInfo`]); `func` names the function in errors. An error names the machine
/// instruction, the fact needed and the fact had.
pub fn check<I: PccInst>(vcode: &VCode<I>, func: &str) -> Result<PccReport, CodegenError> {
    let info = vcode.pcc.as_ref().ok_or_else(|| {
        CodegenError::new("internal error: pcc: the function was lowered without its declarations")
    })?;
    if vcode.blocks.is_empty() {
        return Err(CodegenError::new(format!(
            "pcc: function {func} has no blocks"
        )));
    }
    let mut k = Checker::new(info.decls.clone());
    let mut report = PccReport {
        functions: 1,
        ..Default::default()
    };
    let children = dominator_children(vcode);
    let stale = stale_on_entry(vcode, &k.moving_bases());
    // Depth-first along the dominator tree; the stack holds (block, scope mark, entered).
    let mut stack = vec![(0usize, k.mark(), false)];
    while let Some((b, mark, entered)) = stack.pop() {
        if entered {
            k.undo(mark);
            continue;
        }
        let m = k.mark();
        stack.push((b, m, true));
        let vb = &vcode.blocks[b];
        k.enter_block(b as u32);
        k.set_stale(stale[b].iter().copied());
        // What the branch into a block with one predecessor tells it.
        let edge_from = match vb.preds[..] {
            [p] if b != 0 => vcode.blocks[p.index()]
                .end
                .checked_sub(1)
                .map(|t| &vcode.insts[t as usize]),
            _ => None,
        };
        let mut cx = Cx {
            k: &mut k,
            in_access: false,
            value_bits: &info.value_bits,
            value_fact: I::value_fact,
            report: &mut report,
        };
        if let Some(term) = edge_from {
            term.edge(super::MachBlock::new(b), &mut cx);
        }
        // A block no execution reaches (the branch into it cannot be taken, or it is reached
        // only through code that traps first) has nothing to check, and neither have the
        // blocks it dominates.
        if cx.k.never_runs() {
            for &c in children[b].iter().rev() {
                stack.push((c, k.mark(), false));
            }
            continue;
        }
        // A block parameter holds what its type promises; every incoming argument is checked
        // for it below. (A declared base or bound may not be one.)
        for &p in &vb.params {
            let f = cx.abi_fact(p);
            cx.k.define(id(p), f);
        }
        if let Some(e) = cx.k.take_violation() {
            return Err(CodegenError::new(format!(
                "pcc: function {func}: block {b}, its parameters: {e}"
            )));
        }
        let mut trapped = false;
        for i in vb.start..vb.end {
            let inst = &vcode.insts[i as usize];
            cx.in_access = info.in_access.get(i as usize).copied().unwrap_or(false);
            let r = inst.pcc(&mut cx);
            if let Some(e) = r.err().or_else(|| cx.k.take_violation()) {
                return Err(CodegenError::new(format!(
                    "pcc: function {func}: block {b}, instruction {i} `{inst:?}`: {e}"
                )));
            }
            // Past an unconditional trap nothing runs (x86_64's always-trapping access is
            // `ud2` followed by the access its result needs, never executed).
            if inst.always_traps() {
                trapped = true;
                break;
            }
        }
        // Nothing after an unconditional trap runs: neither the rest of this block nor the
        // blocks it dominates (each reached only through it), which are checked in this
        // scope below.
        if trapped {
            cx.k.never_continues();
        }
        // Block parameters hold what their type promises: every incoming argument must
        // (a block that traps first never branches).
        let branches = if trapped { &[][..] } else { &vb.succs[..] };
        for (s, args) in branches.iter().zip(&vb.branch_args) {
            for (&arg, &param) in args.iter().zip(&vcode.blocks[s.index()].params) {
                let want = cx.abi_fact(param);
                let had = cx.k.fact(id(arg));
                if !had.implies(&want) {
                    return Err(CodegenError::new(format!(
                        "pcc: function {func}: block {b}, branch to block {}: argument v{} for parameter v{}: needed {want}, had {had}",
                        s.index(),
                        arg.vreg(),
                        param.vreg()
                    )));
                }
            }
        }
        for &c in children[b].iter().rev() {
            stack.push((c, k.mark(), false));
        }
    }
    Ok(report)
}

/// The shared compile pipeline of every backend: the mid-end and lowering, the proof
/// (when `backend` enables it), then `emit` (register allocation and encoding).
pub fn compile<B: Backend>(
    func: &Function,
    backend: &B,
    emit: impl FnOnce(&VCode<B::MInst>) -> Result<super::CompiledCode, CodegenError>,
) -> Result<super::CompiledCode, CodegenError>
where
    B::MInst: PccInst,
{
    let vcode = super::lower::optimize_and_lower(func, backend)?;
    let report = match backend.pcc() {
        true => {
            let start = std::time::Instant::now();
            let mut r = check(&vcode, &func.name)?;
            let declarations = vcode.pcc.as_ref().map_or(0, |i| i.nanos);
            r.check_nanos = start.elapsed().as_nanos() as u64 + declarations;
            Some(r)
        }
        false => None,
    };
    let mut code = emit(&vcode)?;
    if let (Some(mut r), Some(n)) = (report, code.decoded) {
        r.decoded = n;
        code.pcc = Some(r);
    } else {
        code.pcc = report;
    }
    if let Some(r) = &code.pcc {
        TALLY.lock().unwrap_or_else(|e| e.into_inner()).add(r);
    }
    Ok(code)
}

/// Everything proven in this process so far, for commands that compile through layers that
/// do not hand the reports back (`wast`, `test`).
static TALLY: std::sync::Mutex<PccReport> = std::sync::Mutex::new(PccReport {
    functions: 0,
    linear: 0,
    linear_or_faults: 0,
    vmctx: 0,
    stack: 0,
    never: 0,
    unproven: 0,
    decoded: 0,
    check_nanos: 0,
});

/// What every `enable_pcc` compile of this process has proven so far.
pub fn tally() -> PccReport {
    *TALLY.lock().unwrap_or_else(|e| e.into_inner())
}

/// Under `enable_pcc` (the function was lowered with its [`PccInfo`]), regalloc2's own
/// checker validates the allocation: every use reads the virtual register it names, through
/// every move, spill and reload. The proof above is about virtual registers; this carries it
/// to the physical ones. (It does not model widths: that every integer move, spill and
/// reload keeps all 64 bits, so that a zero-extension survives it where CVE-2021-32629's
/// reload lost one, is checked on the encoding by each ISA's `decode_accesses`.)
pub fn check_allocation<I: MachInst>(
    vcode: &VCode<I>,
    env: &regalloc2::MachineEnv,
    out: &regalloc2::Output,
) -> Result<(), CodegenError> {
    if vcode.pcc.is_none() {
        return Ok(());
    }
    let mut checker = regalloc2::checker::Checker::new(vcode, env);
    checker.prepare(out);
    checker.run().map_err(|e| {
        CodegenError::new(format!(
            "pcc: regalloc2's checker rejected the allocation: {e:?}"
        ))
    })
}
