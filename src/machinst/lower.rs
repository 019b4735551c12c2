//! Lowering from the IR to machine instructions: block order, edge splitting, value to
//! virtual register mapping, and the context a backend's ISLE rules run in.
//!
//! Blocks are lowered in reverse postorder, so every definition is lowered before its uses
//! (block parameters have their registers from the start). Within a block instructions are
//! lowered forward. A `load` whose single use is later in the same block, with nothing in
//! between that writes memory or calls, is *deferred*: it is lowered where its user first asks
//! for its register, or never, when the user folds it into itself (Pulley's `g32bne` mode reads
//! the bound from memory). Pure instructions whose results are unused are not lowered.

use super::vcode::{VBlock, VCode};
use super::{CodegenError, MachBlock, MachInst, RegClass, VReg};
use crate::cfg::{branch_destinations, reverse_postorder};
use crate::ir::{Block, Function, Inst, InstructionData, Opcode, Type, Value, ValueDef};
use cranelift_entity::SecondaryMap;

/// What a backend provides to the generic lowering driver.
pub trait Backend {
    /// The backend's machine instruction.
    type MInst: super::abi::AbiInst;
    /// The target: its name (for messages) and the facts the planner reads.
    const TARGET: &'static crate::target::Target;
    /// The target's name, for messages (`x86_64`, `pulley64`).
    const NAME: &'static str = Self::TARGET.name;
    /// The calling convention.
    const CALL_CONV: &'static super::abi::CallConv;
    /// `enable_heap_access_spectre_mitigation`.
    fn spectre(&self) -> bool;
    /// Whether proof-carrying code checks this backend's lowered code (`enable_pcc`).
    fn pcc(&self) -> bool {
        false
    }
    /// The register class holding values of `ty`, or an error naming the unsupported type:
    /// integers up to 64 bits in integer registers, f32/f64 in float registers.
    fn reg_class(&self, ty: Type) -> Result<RegClass, CodegenError> {
        use crate::ir::types;
        match ty {
            t if [types::I8, types::I16, types::I32, types::I64].contains(&t) => Ok(RegClass::Int),
            t if t == types::F32 || t == types::F64 => Ok(RegClass::Float),
            t => Err(CodegenError::new(format!(
                "{} has no registers for values of type {t}",
                Self::NAME
            ))),
        }
    }
    /// Runs the backend's ISLE `lower` term on one instruction (its generated
    /// `constructor_lower`): the registers of the results, or `None` when no rule matched.
    fn isle_lower(
        ctx: &mut super::isle::IsleContext<'_, '_, Self>,
        inst: Inst,
    ) -> Option<Vec<VReg>>
    where
        Self: Sized;
    /// Lowers one instruction, returning the registers of its results in order.
    fn lower_inst(
        &self,
        ctx: &mut Lower<'_, Self::MInst>,
        inst: Inst,
    ) -> Result<Vec<VReg>, CodegenError>
    where
        Self: Sized,
    {
        let mut isle = super::isle::IsleContext::new(ctx, self);
        let out = Self::isle_lower(&mut isle, inst);
        isle.finish(inst, out)
    }
    /// The pseudo-instruction at the top of the entry block that defines the parameters in
    /// their argument registers.
    fn gen_args(&self, params: &[(VReg, Type)]) -> Result<Vec<Self::MInst>, CodegenError> {
        super::abi::gen_args(Self::CALL_CONV, params)
    }
    /// A fresh register holding `v` made right here, when that is no dearer than a copy (a
    /// small constant): a branch argument then needs no copy of a register that lives across
    /// the whole loop.
    fn remat(&self, _ctx: &mut Lower<'_, Self::MInst>, _v: Value) -> Option<VReg> {
        None
    }
}

/// The state of lowering one function.
pub struct Lower<'f, I: MachInst> {
    /// The function being lowered.
    pub func: &'f Function,
    value_regs: SecondaryMap<Value, Option<VReg>>,
    uses: SecondaryMap<Value, u32>,
    deferred: SecondaryMap<Inst, bool>,
    next_vreg: usize,
    insts: Vec<I>,
    /// For each instruction of `insts`: whether it was emitted while lowering a
    /// bounds-checked access (whose memory accesses proof-carrying code must prove).
    in_access: Vec<bool>,
    /// Whether the IR instruction being lowered (deferred ones nest) is a bounds-checked
    /// access.
    cur_in_access: bool,
    /// The bounds-checked accesses lowered, for proof-carrying code's declarations.
    accesses: Vec<super::access::Access>,
    /// `enable_pcc`: `in_access` and `accesses` are recorded only then.
    pcc: bool,
    /// The machine block of each IR block that is reached.
    block_map: SecondaryMap<Block, Option<MachBlock>>,
    /// Successor machine blocks of the terminator being lowered, and the edge blocks needing
    /// arguments (IR target, its args) in the same order.
    cur_targets: Vec<MachBlock>,
    cur_args: Vec<Vec<VReg>>,
    memo: std::collections::HashMap<Memo, VReg>,
    /// The IR block being lowered.
    cur_block: Option<Block>,
    /// Values computed where an IR value is defined (see [`Lower::hoist_to`]), by that value
    /// and a backend-chosen key: valid in the whole function.
    at_def: std::collections::HashMap<(Value, Derived), VReg>,
    /// Instructions to place at the end of an IR block, before its terminator.
    appendix: SecondaryMap<Block, Vec<(I, bool)>>,
    /// The current block's runs of accesses that may share one check.
    shared: std::collections::HashMap<Inst, crate::plan::share::Shared>,
    /// The current block's plans for its bounds-checked accesses (`crate::plan`).
    plans: std::collections::HashMap<Inst, crate::plan::Plan>,
    /// The register holding the address a run's leader checked for the whole run, by
    /// leader; current block.
    checked: std::collections::HashMap<Inst, VReg>,
}

/// A `call` as backends lower it.
pub struct CallParts {
    /// The callee's name as written in the IR.
    pub callee: String,
    /// Whether the callee is in the same module (`colocated`).
    pub colocated: bool,
    /// The argument values.
    pub args: Vec<Value>,
    /// Their types.
    pub arg_tys: Vec<Type>,
    /// The types of the results, from the callee's signature.
    pub ret_tys: Vec<Type>,
}

/// A machine value lowering makes once and then reuses ([`Lower::memoized`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Memo {
    /// The constant `imm`, made by an operation of `bits` bits.
    Const {
        /// The value.
        imm: u64,
        /// The width of the operation that made it.
        bits: u8,
    },
    /// The sum of two registers.
    AddRegs(VReg, VReg),
    /// A register zero-extended from 32 to 64 bits.
    Zext32(VReg),
    /// A value derived from one IR value ([`Lower::derive`]).
    Derived(Value, Derived),
}

/// What is derived from an IR value ([`Lower::derive`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Derived {
    /// `v - k` (for a constant `v`: that constant).
    Minus(u64),
    /// `v + k`.
    Plus(u64),
    /// A zero register made where `v` is (the null address of a Spectre check on bound `v`).
    Zero,
}

/// Where [`Lower::hoist_to`] redirected emission, to be undone by [`Lower::end_hoist`].
pub struct Hoist {
    block: Block,
    mark: usize,
    memo: std::collections::HashMap<Memo, VReg>,
}

/// A value derived from one IR value that [`Lower::derive`] found not made yet: make it,
/// then hand the register to [`Lower::derived`].
pub enum Derivation {
    /// Made here, once per block (the IR value is defined in this block).
    Here(Memo),
    /// Made where the IR value is defined: emission is redirected there until `derived`.
    There(Hoist, Value, Derived),
}

impl<'f, I: MachInst> Lower<'f, I> {
    /// A register computed earlier in the current block for `key`, so repeated
    /// machine-level values (constants, addresses) are made once. Valid within one block
    /// only: the table is emptied at each block start.
    pub fn memoized(&self, key: Memo) -> Option<VReg> {
        self.memo.get(&key).copied()
    }

    /// Records `reg` as the value of `key` for the rest of the block.
    pub fn memoize(&mut self, key: Memo, reg: VReg) {
        self.memo.insert(key, reg);
    }

    /// The block where a value derived from `v` alone is best computed, when it is another
    /// block than the current one: the block defining `v`, which dominates every use of `v`.
    /// A value made there is computed once per execution of that block (before a loop, say)
    /// instead of at every use. `None` when `v` is defined in the current block, or its
    /// definition was deferred to its use here.
    pub fn hoist_target(&self, v: Value) -> Option<Block> {
        let block = match self.func.dfg.value_def(v) {
            ValueDef::Result(inst, _) if !self.deferred[inst] => self.func.layout.inst_block(inst),
            ValueDef::Param(b, _) => Some(b),
            _ => None,
        }?;
        (Some(block) != self.cur_block).then_some(block)
    }

    /// The register made earlier by a hoisted computation on `v` for `key`.
    pub fn hoisted(&self, v: Value, key: Derived) -> Option<VReg> {
        self.at_def.get(&(v, key)).copied()
    }

    /// From here on, emitted instructions go to the end of `block` (see
    /// [`Lower::hoist_target`]), with an empty per-block memo: registers of the current
    /// block are not available there.
    pub fn hoist_to(&mut self, block: Block) -> Hoist {
        Hoist {
            block,
            mark: self.insts.len(),
            memo: std::mem::take(&mut self.memo),
        }
    }

    /// Ends a [`Lower::hoist_to`]: moves what was emitted since to its block and records
    /// `reg` as the value of `(v, key)` for the rest of the function.
    pub fn end_hoist(&mut self, h: Hoist, v: Value, key: Derived, reg: VReg) {
        let moved = self.insts.split_off(h.mark);
        let in_access = match self.pcc {
            true => self.in_access.split_off(h.mark),
            false => Vec::new(),
        };
        self.appendix[h.block].extend(
            moved
                .into_iter()
                .zip(in_access.into_iter().chain(std::iter::repeat(false))),
        );
        self.memo = h.memo;
        self.at_def.insert((v, key), reg);
    }

    /// A value computed from IR value `v` alone (`key` says which: `bound - k`, say),
    /// placed where `v` is defined when that is another block (once before a loop instead
    /// of on every iteration) and made once per function there; made once per block in the
    /// current block otherwise. `Ok` when it exists already; else emit it and pass its
    /// register to [`Lower::derived`]:
    /// `match ctx.derive(v, key) { Ok(r) => r, Err(d) => { let r = make(ctx); ctx.derived(d, r) } }`.
    pub fn derive(&mut self, v: Value, key: Derived) -> Result<VReg, Derivation> {
        let Some(block) = self.hoist_target(v) else {
            let memo = Memo::Derived(v, key);
            return self.memoized(memo).ok_or(Derivation::Here(memo));
        };
        if let Some(r) = self.hoisted(v, key) {
            return Ok(r);
        }
        Err(Derivation::There(self.hoist_to(block), v, key))
    }

    /// Records `reg` as the value [`Lower::derive`] asked for and ends its redirection.
    pub fn derived(&mut self, d: Derivation, reg: VReg) -> VReg {
        match d {
            Derivation::Here(memo) => self.memoize(memo, reg),
            Derivation::There(h, v, key) => self.end_hoist(h, v, key, reg),
        }
        reg
    }

    /// The plan of the bounds-checked access `inst` of the current block: how it is made
    /// safe (`crate::plan`), decided once for each access before the block is lowered.
    pub fn plan(&self, inst: Inst) -> &crate::plan::Plan {
        &self.plans[&inst]
    }

    /// Records `addr`, the address `leader` checked for its whole run, for the accesses its
    /// run covers ([`crate::plan::Form::Covered`]).
    pub fn record_checked(&mut self, leader: Inst, addr: VReg) {
        self.checked.insert(leader, addr);
    }

    /// The address `leader` recorded with [`Lower::record_checked`].
    pub fn checked_by(&self, leader: Inst) -> Option<VReg> {
        self.checked.get(&leader).copied()
    }

    /// Whether `access` is in a run of accesses that may share one check.
    pub fn in_run(&self, access: Inst) -> bool {
        self.shared.contains_key(&access)
    }

    /// For a later access of a run (see [`crate::plan::share`]), the run's first access.
    pub fn run_leader(&self, access: Inst) -> Option<Inst> {
        match self.shared.get(&access)? {
            crate::plan::share::Shared::Covered { leader } => Some(*leader),
            crate::plan::share::Shared::Leader { .. } => None,
        }
    }

    /// A fresh virtual register of `class`.
    pub fn alloc_vreg(&mut self, class: RegClass) -> VReg {
        let v = VReg::new(self.next_vreg, class);
        self.next_vreg += 1;
        v
    }

    /// Appends `inst` to the block being lowered.
    pub fn emit(&mut self, inst: I) {
        self.insts.push(inst);
        if self.pcc {
            self.in_access.push(self.cur_in_access);
        }
    }

    /// How many times `v` is used (instruction operands and branch arguments).
    pub fn use_count(&self, v: Value) -> u32 {
        self.uses[v]
    }

    /// For `v` defined as `ishl.i32 x, c` with a constant `c` (possibly zero-extended to
    /// i64), `x` and `c`: the shape of a shifted Wasm index (used by a test-only mutant).
    pub fn shifted_i32(&self, v: Value) -> Option<(Value, u8)> {
        let dfg = &self.func.dfg;
        let mut v = v;
        if let Some(d) = self.def_inst(v) {
            if dfg.opcode(d) == Opcode::Uextend {
                v = dfg.insts[d].arguments()[0];
            }
        }
        let d = self.def_inst(v)?;
        if dfg.opcode(d) != Opcode::Ishl || dfg.value_type(v) != crate::ir::types::I32 {
            return None;
        }
        let args = dfg.insts[d].arguments();
        Some((args[0], self.iconst(args[1])? as u8))
    }

    /// The instruction defining `v`, if it is an instruction result.
    pub fn def_inst(&self, v: Value) -> Option<Inst> {
        match self.func.dfg.value_def(v) {
            ValueDef::Result(inst, _) => Some(inst),
            _ => None,
        }
    }

    /// The constant `v` is defined as, if it comes from an `iconst`.
    pub fn iconst(&self, v: Value) -> Option<u64> {
        self.func.dfg.iconst_value(v)
    }

    /// Whether `inst` was deferred and not yet lowered: its single user may fold it.
    pub fn is_deferred(&self, inst: Inst) -> bool {
        self.deferred[inst]
    }

    /// Folds a deferred instruction into its user: it will never be lowered on its own.
    pub fn sink(&mut self, inst: Inst) {
        debug_assert!(self.deferred[inst]);
        self.deferred[inst] = false;
    }

    /// When condition `c` (of a branch, trap or select) is an `icmp`, possibly widened by a
    /// `uextend`, that waits to be lowered for this use only, sinks both into the user, which
    /// folds the comparison into itself (a compare-and-branch, a flag test): the comparison's
    /// condition and operands.
    pub fn sink_compare(&mut self, c: Value) -> Option<(crate::ir::IntCC, Value, Value)> {
        let dfg = &self.func.dfg;
        let mut inner = c;
        let mut extension = None;
        if let Some(d) = self.def_inst(inner) {
            if self.is_deferred(d) && dfg.opcode(d) == Opcode::Uextend {
                extension = Some(d);
                inner = dfg.insts[d].arguments()[0];
            }
        }
        let d = self.def_inst(inner)?;
        if !self.is_deferred(d) {
            return None;
        }
        let InstructionData::IntCompare {
            opcode: Opcode::Icmp,
            cond,
            args: [x, y],
        } = dfg.insts[d]
        else {
            return None;
        };
        if let Some(e) = extension {
            self.sink(e);
        }
        self.sink(d);
        Some((cond, x, y))
    }

    /// The successor machine blocks of the terminator being lowered, in the order of its
    /// block calls (`brif`: then, else; `br_table`: default, then the table).
    pub fn targets(&self) -> &[MachBlock] {
        &self.cur_targets
    }

    /// The parts of `call` instruction `inst`, or `None` for another instruction.
    pub fn call_parts(&self, inst: Inst) -> Option<CallParts> {
        let dfg = &self.func.dfg;
        let InstructionData::Call { func_ref, args, .. } = &dfg.insts[inst] else {
            return None;
        };
        let ext = &dfg.ext_funcs[*func_ref];
        let sig = &dfg.signatures[ext.signature];
        Some(CallParts {
            callee: ext.name.clone(),
            colocated: ext.colocated,
            args: args.to_vec(),
            arg_tys: args.iter().map(|&v| dfg.value_type(v)).collect(),
            ret_tys: sig.returns.iter().map(|p| p.value_type).collect(),
        })
    }

    /// Whether `v` is defined in another block than `inst`'s (a block parameter counts as
    /// defined in its block) that lies on a cycle of the CFG: a value a loop carries. (A
    /// depth-first search per call; it is asked once per returned value.)
    pub fn defined_on_a_cycle_elsewhere(&self, v: Value, inst: Inst) -> bool {
        let def_block = match self.func.dfg.value_def(v) {
            ValueDef::Result(i, _) => self.func.layout.inst_block(i),
            ValueDef::Param(b, _) => Some(b),
            ValueDef::Unused => None,
        };
        let Some(def_block) = def_block else {
            return false;
        };
        if Some(def_block) == self.func.layout.inst_block(inst) {
            return false;
        }
        // On a cycle: reachable again from its own successors.
        let mut seen = std::collections::HashSet::new();
        let mut todo = crate::cfg::succs(self.func, def_block);
        while let Some(b) = todo.pop() {
            if b == def_block {
                return true;
            }
            if seen.insert(b) {
                todo.extend(crate::cfg::succs(self.func, b));
            }
        }
        false
    }

    /// The register holding `v`, lowering its deferred definition here if needed.
    pub fn put(&mut self, backend: &dyn DynBackend<I>, v: Value) -> Result<VReg, CodegenError> {
        if let Some(r) = self.value_regs[v] {
            return Ok(r);
        }
        match self.def_inst(v) {
            Some(inst) if self.deferred[inst] => {
                self.deferred[inst] = false;
                self.lower_one(backend, inst)?;
                Ok(self.value_regs[v].expect("a lowered instruction defines its results"))
            }
            _ => Err(CodegenError::new(format!(
                "internal error: {v} is used before it is lowered"
            ))),
        }
    }

    fn lower_one(&mut self, backend: &dyn DynBackend<I>, inst: Inst) -> Result<(), CodegenError> {
        let access = if self.pcc {
            super::access::Access::of(self.func, inst)
        } else {
            None
        };
        self.accesses.extend(access);
        // Emitted from here until the instruction is lowered (deferred ones nest).
        let outer = std::mem::replace(&mut self.cur_in_access, access.is_some());
        let regs = backend.lower_inst_dyn(self, inst);
        self.cur_in_access = outer;
        let regs = regs?;
        let results = self.func.dfg.inst_results(inst);
        if regs.len() != results.len() {
            return Err(CodegenError::new(format!(
                "internal error: lowering {inst} gave {} registers for {} results",
                regs.len(),
                results.len()
            )));
        }
        for (&v, r) in results.iter().zip(regs) {
            self.value_regs[v] = Some(r);
        }
        Ok(())
    }
}

/// The result of running a backend's ISLE `lower` term on `inst`: its registers, or the
/// error a constructor recorded (with the instruction's text), or "no lowering" when no rule
/// matched. `isa` names the target in that message.
pub fn lowering_result(
    func: &Function,
    inst: Inst,
    isa: &str,
    out: Option<Vec<VReg>>,
    error: Option<CodegenError>,
) -> Result<Vec<VReg>, CodegenError> {
    let text = || crate::printer::inst_to_string(func, inst);
    if let Some(e) = error {
        // An error from a deferred instruction lowered for its user already names it.
        if e.message.contains(" (in `") {
            return Err(e);
        }
        return Err(CodegenError::new(format!(
            "{} (in `{}`)",
            e.message,
            text()
        )));
    }
    out.ok_or_else(|| CodegenError::new(format!("{isa} has no lowering for `{}`", text())))
}

/// Object-safe view of a [`Backend`], so the context can lower deferred instructions.
pub trait DynBackend<I: MachInst> {
    /// [`Backend::lower_inst`].
    fn lower_inst_dyn(&self, ctx: &mut Lower<'_, I>, inst: Inst)
        -> Result<Vec<VReg>, CodegenError>;
}

impl<B: Backend> DynBackend<B::MInst> for B {
    fn lower_inst_dyn(
        &self,
        ctx: &mut Lower<'_, B::MInst>,
        inst: Inst,
    ) -> Result<Vec<VReg>, CodegenError> {
        self.lower_inst(ctx, inst)
    }
}

fn may_write_memory(op: Opcode) -> bool {
    op.can_store() || op.is_call() || op.other_side_effects()
}

/// The mid-end every backend runs, then lowering: value numbering over the dominator tree,
/// loop-invariant code motion, and value numbering again (it merges what LICM brought into
/// one preheader from several blocks); then an access the planner finds always out of
/// bounds becomes a bare `trap`, ending its block (`opt::traps`).
pub fn optimize_and_lower<B: Backend>(
    func: &Function,
    backend: &B,
) -> Result<VCode<B::MInst>, CodegenError> {
    let mut func = func.clone();
    crate::opt::optimize(&mut func);
    crate::opt::traps::run(&mut func, B::TARGET, renderer(backend));
    lower(&func, backend)
}

/// How a backend renders plans (the legalizer's renderer differs).
fn renderer<B: Backend>(backend: &B) -> crate::plan::Renderer {
    crate::plan::Renderer {
        spectre: backend.spectre(),
        runs: true,
        checked_modes: true,
        legalized: false,
    }
}

/// Lowers `func` with `backend` into machine instructions ready for register allocation.
pub fn lower<B: Backend>(func: &Function, backend: &B) -> Result<VCode<B::MInst>, CodegenError> {
    let order = reverse_postorder(func);
    let entry = *order
        .first()
        .ok_or_else(|| CodegenError::new("the function has no blocks"))?;

    // Predecessor edge counts, to find critical edges (a source with several successors, a
    // target with several incoming edges).
    let mut incoming: SecondaryMap<Block, u32> = SecondaryMap::new();
    for &b in &order {
        if let Some(&t) = func.layout.block_insts(b).last() {
            for (s, _) in branch_destinations(&func.dfg.insts[t]) {
                incoming[s] += 1;
            }
        }
    }

    // Emission order: each block followed by the edge blocks of its split edges.
    // `edges[i]` = (source IR block, successor index, target IR block) for edge block i.
    let mut block_map: SecondaryMap<Block, Option<MachBlock>> = SecondaryMap::new();
    let mut layout: Vec<Result<Block, (Block, usize, Block)>> = Vec::new();
    let mut edge_of: std::collections::HashMap<(Block, usize), MachBlock> = Default::default();
    for &b in &order {
        block_map[b] = Some(MachBlock::new(layout.len()));
        layout.push(Ok(b));
        if let Some(&t) = func.layout.block_insts(b).last() {
            let dests = branch_destinations(&func.dfg.insts[t]);
            if dests.len() > 1 {
                for (i, (s, _)) in dests.iter().enumerate() {
                    if incoming[*s] > 1 {
                        edge_of.insert((b, i), MachBlock::new(layout.len()));
                        layout.push(Err((b, i, *s)));
                    }
                }
            }
        }
    }

    let mut uses: SecondaryMap<Value, u32> = SecondaryMap::new();
    for &b in &order {
        for &inst in func.layout.block_insts(b) {
            let data = &func.dfg.insts[inst];
            for &v in data.arguments() {
                uses[v] += 1;
            }
            for (_, args) in branch_destinations(data) {
                for &v in args {
                    uses[v] += 1;
                }
            }
        }
    }

    let mut ctx: Lower<'_, B::MInst> = Lower {
        func,
        value_regs: SecondaryMap::new(),
        uses,
        deferred: SecondaryMap::new(),
        next_vreg: 0,
        insts: Vec::new(),
        in_access: Vec::new(),
        cur_in_access: false,
        accesses: Vec::new(),
        pcc: backend.pcc(),
        block_map,
        cur_targets: Vec::new(),
        cur_args: Vec::new(),
        memo: Default::default(),
        cur_block: None,
        at_def: Default::default(),
        appendix: SecondaryMap::new(),
        shared: Default::default(),
        plans: Default::default(),
        checked: Default::default(),
    };

    // Block parameters get their registers up front: branches to them may be lowered first.
    for &b in &order {
        for &p in func.dfg.block_params(b) {
            let class = backend.reg_class(func.dfg.value_type(p))?;
            ctx.value_regs[p] = Some(ctx.alloc_vreg(class));
        }
    }

    let mut blocks: Vec<VBlock> = Vec::with_capacity(layout.len());
    for item in &layout {
        let start = ctx.insts.len() as u32;
        let mut vb = VBlock {
            start,
            ..VBlock::default()
        };
        match *item {
            Ok(b) => {
                let params: Vec<VReg> = func
                    .dfg
                    .block_params(b)
                    .iter()
                    .map(|&p| ctx.value_regs[p].unwrap())
                    .collect();
                if b == entry {
                    let typed: Vec<(VReg, Type)> = func
                        .dfg
                        .block_params(b)
                        .iter()
                        .zip(&params)
                        .map(|(&p, &r)| (r, func.dfg.value_type(p)))
                        .collect();
                    for i in backend.gen_args(&typed)? {
                        ctx.emit(i);
                    }
                } else {
                    vb.params = params;
                }
                lower_block(&mut ctx, backend, b, &edge_of, &mut vb)?;
            }
            Err((_, _, target)) => {
                let m = ctx.block_map[target].unwrap();
                ctx.emit(B::MInst::gen_jump(m));
                vb.succs.push(m);
                vb.branch_args.push(Vec::new());
            }
        }
        vb.end = ctx.insts.len() as u32;
        blocks.push(vb);
    }

    // Edge blocks carry the arguments of the edges they split. Those of one source are
    // adjacent: its destinations are read once (a `br_table` may have thousands).
    let (mut source, mut dests) = (None, Vec::new());
    for (i, item) in layout.iter().enumerate() {
        if let Err((src, succ, _)) = *item {
            if source != Some(src) {
                let t = *func.layout.block_insts(src).last().unwrap();
                (source, dests) = (Some(src), branch_destinations(&func.dfg.insts[t]));
            }
            let args = dests[succ]
                .1
                .iter()
                .map(|&v| ctx.value_regs[v].ok_or_else(|| unlowered(v)))
                .collect::<Result<Vec<_>, _>>()?;
            blocks[i].branch_args[0] = args;
        }
    }
    for i in 0..blocks.len() {
        for s in blocks[i].succs.clone() {
            blocks[s.index()].preds.push(MachBlock::new(i));
        }
    }

    let num_vregs = ctx.next_vreg;
    let pcc = backend.pcc().then(|| {
        let start = std::time::Instant::now();
        let mut info = super::pcc::declarations::<B>(
            func,
            &ctx.value_regs,
            &ctx.accesses,
            &ctx.block_map,
            num_vregs,
        );
        info.nanos = start.elapsed().as_nanos() as u64;
        info
    });
    let in_access = ctx.in_access.into_iter().chain(std::iter::repeat(false));
    let insts = ctx.insts.into_iter().zip(in_access).collect();
    let insts = place_appendices(insts, &mut blocks, &layout, &mut ctx.appendix);
    let insts = remove_dead(insts, &mut blocks);
    let (insts, in_access): (Vec<B::MInst>, Vec<bool>) = insts.into_iter().unzip();
    let mut vcode = VCode::new(insts, blocks, num_vregs);
    if let Some(mut info) = pcc {
        info.in_access = in_access;
        vcode.pcc = Some(info);
    }
    Ok(vcode)
}

/// Puts the instructions hoisted into each IR block just before its terminator (the last
/// instruction: a branch reads registers only, so what precedes it may define more).
fn place_appendices<I: MachInst>(
    insts: Vec<(I, bool)>,
    blocks: &mut [VBlock],
    layout: &[Result<Block, (Block, usize, Block)>],
    appendix: &mut SecondaryMap<Block, Vec<(I, bool)>>,
) -> Vec<(I, bool)> {
    if layout
        .iter()
        .all(|item| item.map_or(true, |b| appendix[b].is_empty()))
    {
        return insts;
    }
    let mut out = Vec::with_capacity(insts.len());
    let mut insts = insts.into_iter();
    for (vb, item) in blocks.iter_mut().zip(layout) {
        let n = (vb.end - vb.start) as usize;
        vb.start = out.len() as u32;
        out.extend(insts.by_ref().take(n - 1));
        if let Ok(b) = *item {
            out.append(&mut appendix[b]);
        }
        out.extend(insts.by_ref().take(1));
        vb.end = out.len() as u32;
    }
    out
}

/// Drops pure machine instructions none of whose results is used, until none is left.
/// Lowering leaves such instructions behind when a value it materialised (a constant LICM
/// hoisted, say) ends up folded into every user as an immediate.
fn remove_dead<I: MachInst>(insts: Vec<(I, bool)>, blocks: &mut [VBlock]) -> Vec<(I, bool)> {
    use regalloc2::OperandKind;
    let operands: Vec<Vec<regalloc2::Operand>> = insts
        .iter()
        .map(|(i, _)| {
            let mut ops = Vec::new();
            i.operands(&mut ops);
            ops
        })
        .collect();
    let mut uses: std::collections::HashMap<VReg, u32> = Default::default();
    let count = |v: VReg, uses: &mut std::collections::HashMap<VReg, u32>, d: i32| {
        let n = uses.entry(v).or_default();
        *n = n.wrapping_add_signed(d);
    };
    for ops in &operands {
        for op in ops.iter().filter(|o| o.kind() == OperandKind::Use) {
            count(op.vreg(), &mut uses, 1);
        }
    }
    for b in blocks.iter() {
        for &v in b.branch_args.iter().flatten() {
            count(v, &mut uses, 1);
        }
    }
    let mut dead = vec![false; insts.len()];
    loop {
        let mut changed = false;
        for i in (0..insts.len()).rev() {
            let defs = || operands[i].iter().filter(|o| o.kind() == OperandKind::Def);
            if dead[i]
                || !insts[i].0.is_pure()
                || defs().any(|o| uses.get(&o.vreg()).copied().unwrap_or(0) > 0)
            {
                continue;
            }
            dead[i] = true;
            changed = true;
            for op in operands[i].iter().filter(|o| o.kind() == OperandKind::Use) {
                count(op.vreg(), &mut uses, -1);
            }
        }
        if !changed {
            break;
        }
    }
    let mut kept = Vec::with_capacity(insts.len());
    for b in blocks.iter_mut() {
        let (start, end) = (b.start as usize, b.end as usize);
        b.start = kept.len() as u32;
        kept.extend((start..end).filter(|&i| !dead[i]).map(|i| insts[i].clone()));
        b.end = kept.len() as u32;
    }
    kept
}

fn unlowered(v: Value) -> CodegenError {
    CodegenError::new(format!("internal error: {v} is not lowered"))
}

fn lower_block<B: Backend>(
    ctx: &mut Lower<'_, B::MInst>,
    backend: &B,
    b: Block,
    edge_of: &std::collections::HashMap<(Block, usize), MachBlock>,
    vb: &mut VBlock,
) -> Result<(), CodegenError> {
    let func = ctx.func;
    let insts = func.layout.block_insts(b);
    ctx.memo.clear();
    ctx.cur_block = Some(b);
    ctx.shared = crate::plan::share::runs(func, b);
    ctx.checked.clear();
    // Which instructions may be deferred to their single user later in this block: pure
    // ones, and `notrap` loads with no memory write or call in between.
    for (i, &inst) in insts.iter().enumerate() {
        let op = func.dfg.opcode(inst);
        let notrap_load = matches!(
            &func.dfg.insts[inst],
            InstructionData::Load { opcode: Opcode::Load, flags, .. } if flags.trap_code.is_none()
        );
        let pure = crate::opt::is_pure(op);
        if !notrap_load && !pure {
            continue;
        }
        let [v] = func.dfg.inst_results(inst) else {
            continue;
        };
        if ctx.uses[*v] != 1 {
            continue;
        }
        let user = insts[i + 1..]
            .iter()
            .position(|&u| func.dfg.insts[u].arguments().contains(v));
        if let Some(pos) = user {
            let between = &insts[i + 1..i + 1 + pos];
            if pure
                || !between
                    .iter()
                    .any(|&u| may_write_memory(func.dfg.opcode(u)))
            {
                ctx.deferred[inst] = true;
            }
        }
    }

    ctx.plans = crate::plan::plan_block(func, B::TARGET, renderer(backend), b, &ctx.shared, &|i| {
        ctx.deferred[i]
    });

    for &inst in insts {
        if ctx.deferred[inst] {
            continue;
        }
        let data = &func.dfg.insts[inst];
        let op = data.opcode();
        let results = func.dfg.inst_results(inst);
        // Unused results of instructions without effects are dropped (reads included).
        let pure = crate::opt::is_pure(op) || (op.can_load() && !op.can_trap() && !op.can_store());
        if pure && !results.is_empty() && results.iter().all(|&v| ctx.uses[v] == 0) {
            continue;
        }
        if op.is_terminator() {
            let dests = branch_destinations(data);
            ctx.cur_targets.clear();
            ctx.cur_args.clear();
            for (i, (s, args)) in dests.iter().enumerate() {
                let target = match edge_of.get(&(b, i)) {
                    Some(&e) => {
                        ctx.cur_args.push(Vec::new());
                        e
                    }
                    None => {
                        let regs = args
                            .iter()
                            .map(|&v| match backend.remat(ctx, v) {
                                Some(r) => Ok(r),
                                None => ctx.value_regs[v].ok_or_else(|| unlowered(v)),
                            })
                            .collect::<Result<Vec<_>, _>>();
                        // Arguments may come from deferred loads; materialise them.
                        let regs = match regs {
                            Ok(r) => r,
                            Err(_) => {
                                let mut r = Vec::new();
                                for &v in *args {
                                    r.push(ctx.put(backend, v)?);
                                }
                                r
                            }
                        };
                        ctx.cur_args.push(regs);
                        ctx.block_map[*s].unwrap()
                    }
                };
                ctx.cur_targets.push(target);
            }
            vb.succs = ctx.cur_targets.clone();
            vb.branch_args = ctx.cur_args.clone();
        }
        ctx.lower_one(backend, inst)?;
    }
    Ok(())
}
