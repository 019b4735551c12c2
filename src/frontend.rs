//! Building functions in SSA form from mutable variables, as `cranelift-frontend` does.
//!
//! A frontend (the Wasm translator) declares variables, defines and uses them in blocks, and
//! seals each block once all its predecessors are known. Uses are resolved with the algorithm
//! of Braun et al., "Simple and Efficient Construction of Static Single Assignment Form"
//! (CC 2013): a use with no definition in its block becomes a block parameter, and each
//! predecessor's branch passes that predecessor's value.
//!
//! Resolution is iterative (a worklist of predecessor edges), never recursive, so long chains
//! of blocks cannot overflow the host stack. Invariants the builder relies on:
//! - a block's own parameters (from `append_block_param`) are added before the builder adds
//!   any for variables, so branch arguments line up;
//! - no branch targets a block after it is sealed (reported by [`FunctionBuilder::finalize`]).
//!
//! A variable used where no definition reaches (on some path from the entry block) reads as
//! zero of its type.
//!
//! The construction adds a parameter wherever a block has several predecessors, even when
//! they all pass the same value (a local a loop never writes comes back around the back edge
//! as the parameter itself). [`FunctionBuilder::finalize`] removes such trivial parameters
//! (Braun et al., section 3.1), so the value stays visibly loop-invariant for GVN and LICM.

use crate::ir::{
    types, Block, DataFlowGraph, Function, Inst, InstBuilderBase, InstructionData, Type, Value,
};
use cranelift_entity::{entity_impl, SecondaryMap};
use std::collections::{HashMap, VecDeque};

/// A mutable variable of the frontend.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Variable(u32);
entity_impl!(Variable, "var");

/// A branch edge: the predecessor block, its branch instruction and which destination of
/// that branch.
#[derive(Clone, Copy, Debug)]
struct Edge {
    block: Block,
    inst: Inst,
    dest: usize,
}

/// Builds a function in SSA form.
pub struct FunctionBuilder<'f> {
    /// The function being built.
    pub func: &'f mut Function,
    position: Option<Block>,
    var_types: SecondaryMap<Variable, Option<Type>>,
    defs: HashMap<(Block, Variable), Value>,
    sealed: SecondaryMap<Block, bool>,
    preds: SecondaryMap<Block, Vec<Edge>>,
    /// Parameters created for variables in blocks not yet sealed.
    incomplete: SecondaryMap<Block, Vec<(Variable, Value)>>,
    /// Blocks that already received a parameter for a variable.
    has_var_params: SecondaryMap<Block, bool>,
    errors: Vec<String>,
}

impl<'f> FunctionBuilder<'f> {
    /// Starts building into `func` (usually empty, with its signature set).
    pub fn new(func: &'f mut Function) -> Self {
        FunctionBuilder {
            func,
            position: None,
            var_types: SecondaryMap::new(),
            defs: HashMap::new(),
            sealed: SecondaryMap::new(),
            preds: SecondaryMap::new(),
            incomplete: SecondaryMap::new(),
            has_var_params: SecondaryMap::new(),
            errors: Vec::new(),
        }
    }

    /// Creates a block (placed in the layout when first switched to).
    pub fn create_block(&mut self) -> Block {
        self.func.dfg.make_block()
    }

    /// Continues inserting at the end of `block`, placing it in the layout if needed.
    pub fn switch_to_block(&mut self, block: Block) {
        if !self.func.layout.is_block_inserted(block) {
            self.func.layout.append_block(block);
        }
        self.position = Some(block);
    }

    /// The block being filled.
    pub fn current_block(&self) -> Option<Block> {
        self.position
    }

    /// Gives the entry block one parameter per signature parameter.
    pub fn append_block_params_for_function_params(&mut self, block: Block) {
        let tys: Vec<Type> = self
            .func
            .signature
            .params
            .iter()
            .map(|p| p.value_type)
            .collect();
        for ty in tys {
            self.append_block_param(block, ty);
        }
    }

    /// Adds a parameter of the frontend's own (a Wasm block result, say) to `block`.
    pub fn append_block_param(&mut self, block: Block, ty: Type) -> Value {
        if self.has_var_params[block] {
            self.errors.push(format!(
                "{block}: a parameter was appended after parameters for variables"
            ));
        }
        self.func.dfg.append_block_param(block, ty)
    }

    /// The parameters of `block`.
    pub fn block_params(&self, block: Block) -> &[Value] {
        self.func.dfg.block_params(block)
    }

    /// Declares a variable and its type.
    pub fn declare_var(&mut self, var: Variable, ty: Type) {
        self.var_types[var] = Some(ty);
    }

    /// Assigns `value` to `var` at the current position.
    pub fn def_var(&mut self, var: Variable, value: Value) {
        let block = self.position.expect("def_var needs a current block");
        self.defs.insert((block, var), value);
    }

    /// The value of `var` at the current position.
    pub fn use_var(&mut self, var: Variable) -> Value {
        let block = self.position.expect("use_var needs a current block");
        self.resolve(block, var)
    }

    /// Declares that every predecessor of `block` is known.
    pub fn seal_block(&mut self, block: Block) {
        if self.sealed[block] {
            return;
        }
        self.sealed[block] = true;
        let pending = core::mem::take(&mut self.incomplete[block]);
        let mut work = Vec::new();
        for (var, _) in pending {
            for &edge in &self.preds[block] {
                work.push((edge, var));
            }
        }
        self.run(work);
    }

    /// Seals every block of the layout.
    pub fn seal_all_blocks(&mut self) {
        for block in self.func.layout.blocks().to_vec() {
            self.seal_block(block);
        }
    }

    /// Checks the builder's invariants; call when done.
    pub fn finalize(self) -> Result<(), String> {
        let mut errors = self.errors;
        for &b in self.func.layout.blocks() {
            if !self.sealed[b] {
                errors.push(format!("{b} was never sealed"));
            }
        }
        if errors.is_empty() {
            remove_trivial_params(self.func);
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// An instruction builder appending at the current position.
    pub fn ins(&mut self) -> FuncInstBuilder<'_, 'f> {
        FuncInstBuilder { builder: self }
    }

    fn var_type(&self, var: Variable) -> Type {
        self.var_types[var].unwrap_or(types::INVALID)
    }

    /// The value of `var` at the end of `block`, creating parameters as needed.
    fn resolve(&mut self, block: Block, var: Variable) -> Value {
        let (value, work) = self.lookup(block, var);
        self.run(work);
        value
    }

    /// Finds or creates the value of `var` at the end of `block` without recursion: walks up
    /// single-predecessor chains; a parameter created on the way is returned at once, and the
    /// predecessor edges that must pass its value are returned as work.
    fn lookup(&mut self, block: Block, var: Variable) -> (Value, Vec<(Edge, Variable)>) {
        let mut chain = Vec::new();
        let mut b = block;
        let (value, work) = loop {
            if let Some(&v) = self.defs.get(&(b, var)) {
                break (v, Vec::new());
            }
            if !self.sealed[b] {
                let p = self.var_param(b, var);
                self.incomplete[b].push((var, p));
                break (p, Vec::new());
            }
            match self.preds[b].len() {
                0 => break (self.zero_at_start(b, var), Vec::new()),
                1 if !chain.contains(&b) => {
                    chain.push(b);
                    b = self.preds[b][0].block;
                }
                _ => {
                    let p = self.var_param(b, var);
                    self.defs.insert((b, var), p);
                    let work = self.preds[b].iter().map(|&e| (e, var)).collect();
                    break (p, work);
                }
            }
        };
        self.defs.insert((b, var), value);
        for c in chain {
            self.defs.insert((c, var), value);
        }
        (value, work)
    }

    /// Resolves edges until none are left: each edge's branch passes the variable's value at
    /// the end of its predecessor. First in, first out: a block's parameters are created in
    /// order and their edges queued in that order, so every branch receives its arguments in
    /// parameter order.
    fn run(&mut self, work: Vec<(Edge, Variable)>) {
        let mut work: VecDeque<(Edge, Variable)> = work.into();
        while let Some((edge, var)) = work.pop_front() {
            let (v, more) = self.lookup(edge.block, var);
            work.extend(more);
            if let Some(call) = self.func.dfg.insts[edge.inst]
                .branch_destinations_mut()
                .into_iter()
                .nth(edge.dest)
            {
                call.args.push(v);
            }
        }
    }

    fn var_param(&mut self, block: Block, var: Variable) -> Value {
        self.has_var_params[block] = true;
        let ty = self.var_type(var);
        self.func.dfg.append_block_param(block, ty)
    }

    /// A zero of the variable's type at the start of `block`: the value of a variable no
    /// definition reaches.
    fn zero_at_start(&mut self, block: Block, var: Variable) -> Value {
        let (data, ctrl) = InstructionData::zero_constant(self.var_type(var));
        let inst = self.func.dfg.make_inst(data);
        self.func.dfg.make_inst_results(inst, ctrl);
        self.func.layout.prepend_inst(inst, block);
        self.func.dfg.first_result(inst)
    }
}

/// What the branches to a block pass for one parameter `p`, ignoring `p` itself.
#[derive(Clone, Copy, PartialEq)]
enum Incoming {
    Nothing,
    One(Value),
    Several,
}

/// Removes every block parameter all of whose incoming values are one value `v` (or the
/// parameter itself), replacing its uses by `v`, until none is left; returns how many went.
/// `v` dominates every predecessor, hence the block: the replacement keeps SSA form. Entry
/// parameters (the function's) always stay.
fn remove_trivial_params(func: &mut Function) -> usize {
    let mut alias: SecondaryMap<Value, Option<Value>> = SecondaryMap::new();
    let resolve = |alias: &SecondaryMap<Value, Option<Value>>, mut v: Value| {
        while let Some(a) = alias[v] {
            v = a;
        }
        v
    };
    let entry = func.layout.entry_block();
    let mut removed = 0;
    loop {
        // Resolve earlier replacements, then collect what each parameter receives.
        let mut incoming: HashMap<Block, Vec<Incoming>> = HashMap::new();
        let params: HashMap<Block, Vec<Value>> = func
            .layout
            .blocks()
            .iter()
            .map(|&b| (b, func.dfg.block_params(b).to_vec()))
            .collect();
        for &block in func.layout.blocks() {
            for &inst in func.layout.block_insts(block) {
                let data = &mut func.dfg.insts[inst];
                for v in data.arguments_mut() {
                    *v = resolve(&alias, *v);
                }
                for call in data.branch_destinations_mut() {
                    let params = &params[&call.block];
                    let seen = incoming
                        .entry(call.block)
                        .or_insert_with(|| vec![Incoming::Nothing; params.len()]);
                    for (i, v) in call.args.iter_mut().enumerate() {
                        *v = resolve(&alias, *v);
                        seen[i] = match seen[i] {
                            _ if Some(&*v) == params.get(i) => seen[i],
                            Incoming::Nothing => Incoming::One(*v),
                            Incoming::One(w) if w == *v => seen[i],
                            _ => Incoming::Several,
                        };
                    }
                }
            }
        }
        let mut trivial: Vec<(Block, usize)> = Vec::new();
        for (&block, seen) in &incoming {
            if Some(block) == entry {
                continue;
            }
            for (i, s) in seen.iter().enumerate() {
                let p = func.dfg.block_params(block)[i];
                // A cycle of parameters passing only each other (unreachable code) stays.
                if let Incoming::One(v) = *s {
                    if resolve(&alias, v) != p {
                        alias[p] = Some(v);
                        trivial.push((block, i));
                    }
                }
            }
        }
        if trivial.is_empty() {
            return removed;
        }
        removed += trivial.len();
        // Highest index first, so the lower indices stay valid.
        trivial.sort_by(|a, b| b.cmp(a));
        for &(block, i) in &trivial {
            func.dfg.remove_block_param(block, i);
        }
        for &b in func.layout.blocks() {
            for &inst in func.layout.block_insts(b) {
                for call in func.dfg.insts[inst].branch_destinations_mut() {
                    for &(block, i) in &trivial {
                        if call.block == block {
                            call.args.remove(i);
                        }
                    }
                }
            }
        }
    }
}

/// Appends instructions at the builder's position and records branch edges.
pub struct FuncInstBuilder<'b, 'f> {
    builder: &'b mut FunctionBuilder<'f>,
}

impl<'b, 'f> InstBuilderBase<'b> for FuncInstBuilder<'b, 'f> {
    fn data_flow_graph(&self) -> &DataFlowGraph {
        &self.builder.func.dfg
    }

    fn build(self, data: InstructionData, ctrl: Type) -> (Inst, &'b mut DataFlowGraph) {
        let b = self.builder;
        let block = b.position.expect("instructions need a current block");
        let dests: Vec<Block> = data.branch_destinations().iter().map(|c| c.block).collect();
        let inst = b.func.dfg.make_inst(data);
        b.func.dfg.make_inst_results(inst, ctrl);
        b.func.layout.append_inst(inst, block);
        for (dest, target) in dests.into_iter().enumerate() {
            if b.sealed[target] {
                b.errors
                    .push(format!("{block} branches to {target} after it was sealed"));
            }
            b.preds[target].push(Edge { block, inst, dest });
        }
        (inst, &mut b.func.dfg)
    }
}
