//! Functions: signature, preamble declarations, the data-flow graph and the block layout.

use super::entities::{AliasRegion, Block, FuncRef, Inst, Memory, SigRef, Value};
use super::instructions::{InstructionData, Opcode};
use super::value_type::{types, Type};
use core::fmt;
use cranelift_entity::{PrimaryMap, SecondaryMap};

/// A byte range in the source text an entity was parsed from; `0..0` when unknown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    /// First byte.
    pub start: u32,
    /// One past the last byte.
    pub end: u32,
}

impl Span {
    /// A span from byte offsets.
    pub fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    /// Whether the span is known.
    pub fn is_known(self) -> bool {
        self.end > self.start
    }
}

/// How an ABI parameter is extended to a register, as CLIF writes it after the type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum ArgumentExtension {
    /// Not extended.
    #[default]
    None,
    /// `uext`.
    Uext,
    /// `sext`.
    Sext,
}

/// A function parameter or return value: type, extension and purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AbiParam {
    /// The type.
    pub value_type: Type,
    /// `uext`/`sext`.
    pub extension: ArgumentExtension,
    /// `vmctx`: the parameter is the VM context pointer.
    pub vmctx: bool,
}

impl AbiParam {
    /// A plain parameter.
    pub fn new(value_type: Type) -> Self {
        AbiParam {
            value_type,
            extension: ArgumentExtension::None,
            vmctx: false,
        }
    }
}

impl fmt::Display for AbiParam {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.value_type)?;
        match self.extension {
            ArgumentExtension::None => {}
            ArgumentExtension::Uext => write!(f, " uext")?,
            ArgumentExtension::Sext => write!(f, " sext")?,
        }
        if self.vmctx {
            write!(f, " vmctx")?;
        }
        Ok(())
    }
}

/// The calling conventions Cranelift 0.135's text format names.
pub const CALL_CONVS: &[&str] = &[
    "fast",
    "tail",
    "system_v",
    "windows_fastcall",
    "apple_aarch64",
    "probestack",
    "winch",
    "patchable",
];

/// A function signature.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Signature {
    /// Parameters.
    pub params: Vec<AbiParam>,
    /// Return values.
    pub returns: Vec<AbiParam>,
    /// Calling convention, one of [`CALL_CONVS`].
    pub call_conv: &'static str,
}

impl Default for Signature {
    fn default() -> Self {
        Signature {
            params: Vec::new(),
            returns: Vec::new(),
            call_conv: "fast",
        }
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        use super::immediates::write_comma_list;
        write!(f, "(")?;
        write_comma_list(f, &self.params)?;
        write!(f, ")")?;
        if !self.returns.is_empty() {
            write!(f, " -> ")?;
            write_comma_list(f, &self.returns)?;
        }
        write!(f, " {}", self.call_conv)
    }
}

/// A declared external function: `fn0 = colocated %name sig0`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtFuncData {
    /// The name as written: `%name` or `u0:1`.
    pub name: String,
    /// Its signature.
    pub signature: SigRef,
    /// `colocated`.
    pub colocated: bool,
}

/// A declared alias region: `region0 = 7 "vmctx"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AliasRegionData {
    /// User identifier.
    pub user_id: u32,
    /// Description.
    pub description: String,
}

/// Facts about a linear memory that its producer guarantees for every execution of the
/// function, declared as
/// `mem0 = memory index i32, min 0x10000, max 0x1_0000_0000, reservation R, guard G`.
///
/// With `bound` the bound operand of an access naming the memory:
/// - `min <= bound <= max` always holds (`max` absent: no limit beyond the index type's);
/// - every byte from `base + bound` up to `base + (reservation or, if none, bound) + guard`
///   faults when accessed.
///
/// These facts never change which accesses trap (the instruction's semantics depend on the
/// `bound` operand only); they tell lowerings which checks the hardware makes for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MemoryData {
    /// `i32` or `i64`.
    pub index_type: Type,
    /// Minimum bound in bytes.
    pub min: u64,
    /// Maximum bound in bytes.
    pub max: Option<u64>,
    /// Fixed reservation in bytes: the memory never moves and `[bound, reservation)` faults.
    pub reservation: Option<u64>,
    /// Faulting bytes after the bound (or after the reservation when there is one).
    pub guard: u64,
}

impl MemoryData {
    /// The largest bound this memory can have, given its index type and the pointer width.
    pub fn max_bound(&self, pointer: Type) -> u128 {
        let index_limit: u128 = if self.index_type == types::I32 {
            1 << 32
        } else {
            1 << 64
        };
        let pointer_limit = (1u128 << pointer.bits()) - 1;
        let declared = self.max.map_or(u128::MAX, u128::from);
        declared.min(index_limit).min(pointer_limit)
    }

    /// The end (offset from `base`, exclusive) of the range guaranteed to fault beyond a bound
    /// `bound`: accesses to `[bound, faulting_end(bound))` fault.
    pub fn faulting_end(&self, bound: u64) -> u128 {
        let top = self.reservation.unwrap_or(bound).max(bound);
        u128::from(top) + u128::from(self.guard)
    }
}

impl fmt::Display for MemoryData {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        use super::immediates::write_unsigned;
        write!(f, "memory index {}, min ", self.index_type)?;
        write_unsigned(f, self.min)?;
        if let Some(max) = self.max {
            write!(f, ", max ")?;
            write_unsigned(f, max)?;
        }
        if let Some(r) = self.reservation {
            write!(f, ", reservation ")?;
            write_unsigned(f, r)?;
        }
        write!(f, ", guard ")?;
        write_unsigned(f, self.guard)
    }
}

/// Where a value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ValueDef {
    /// Result number `n` of an instruction.
    Result(Inst, usize),
    /// Parameter number `n` of a block.
    Param(Block, usize),
    /// A number the text skipped: never referenced by a valid function.
    #[default]
    Unused,
}

/// A value's type and definition.
#[derive(Clone, Copy, Debug, Default)]
pub struct ValueData {
    /// The type.
    pub ty: Type,
    /// The definition.
    pub def: ValueDef,
}

/// Instructions, values and blocks, independent of their order.
#[derive(Clone, Debug, Default)]
pub struct DataFlowGraph {
    /// Instruction operands.
    pub insts: PrimaryMap<Inst, InstructionData>,
    results: SecondaryMap<Inst, Vec<Value>>,
    ctrl_types: SecondaryMap<Inst, Type>,
    values: PrimaryMap<Value, ValueData>,
    block_params: PrimaryMap<Block, Vec<Value>>,
    /// Declared signatures.
    pub signatures: PrimaryMap<SigRef, Signature>,
    /// Declared external functions.
    pub ext_funcs: PrimaryMap<FuncRef, ExtFuncData>,
}

impl DataFlowGraph {
    /// Creates an instruction with no results yet.
    pub fn make_inst(&mut self, data: InstructionData) -> Inst {
        self.insts.push(data)
    }

    /// Creates the results of `inst` for controlling type `ctrl`, numbering them freshly.
    /// A call's results come from its callee's signature.
    pub fn make_inst_results(&mut self, inst: Inst, ctrl: Type) {
        let types = self.result_types(inst, ctrl);
        for ty in types {
            let v = self.values.push(ValueData {
                ty,
                def: ValueDef::Unused,
            });
            self.attach_result(inst, v, ty);
        }
        self.ctrl_types[inst] = ctrl;
    }

    /// The result types `inst` has under controlling type `ctrl`.
    pub fn result_types(&self, inst: Inst, ctrl: Type) -> Vec<Type> {
        let data = &self.insts[inst];
        let c = data.opcode().constraints();
        if c.variable_results {
            if let InstructionData::Call { func_ref, .. } = data {
                if let Some(ext) = self.ext_funcs.get(*func_ref) {
                    if let Some(sig) = self.signatures.get(ext.signature) {
                        return sig.returns.iter().map(|p| p.value_type).collect();
                    }
                }
            }
            return Vec::new();
        }
        c.result_types(ctrl).collect()
    }

    /// Makes `v` (which must exist, e.g. from [`DataFlowGraph::ensure_value`]) the next result
    /// of `inst`.
    pub fn attach_result(&mut self, inst: Inst, v: Value, ty: Type) {
        let n = self.results[inst].len();
        self.values[v] = ValueData {
            ty,
            def: ValueDef::Result(inst, n),
        };
        self.results[inst].push(v);
    }

    /// Removes the results of `inst` and returns them; they keep their types and may be
    /// attached to another instruction (a pass replacing `inst` keeps its result numbers).
    pub fn detach_results(&mut self, inst: Inst) -> Vec<Value> {
        core::mem::take(&mut self.results[inst])
    }

    /// The `iconst` immediate that defines `v`, zero-extended from its type, if any.
    pub fn iconst_value(&self, v: Value) -> Option<u64> {
        match self.value_def(v) {
            ValueDef::Result(i, 0) => match self.insts[i] {
                InstructionData::UnaryImm { imm, .. } => {
                    Some(imm.0 as u64 & self.value_type(v).mask())
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// Records the controlling type of `inst` (for printing and verification).
    pub fn set_ctrl_type(&mut self, inst: Inst, ctrl: Type) {
        self.ctrl_types[inst] = ctrl;
    }

    /// Makes sure value number `v` exists, filling skipped numbers with unused values, so that
    /// parsed text keeps its value numbers.
    pub fn ensure_value(&mut self, v: Value) {
        while self.values.len() <= v.as_u32() as usize {
            self.values.push(ValueData::default());
        }
    }

    /// Makes sure block number `b` exists.
    pub fn ensure_block(&mut self, b: Block) {
        while self.block_params.len() <= b.as_u32() as usize {
            self.block_params.push(Vec::new());
        }
    }

    /// Creates a block.
    pub fn make_block(&mut self) -> Block {
        self.block_params.push(Vec::new())
    }

    /// Appends a parameter of type `ty` to `block`.
    pub fn append_block_param(&mut self, block: Block, ty: Type) -> Value {
        let v = self.values.push(ValueData::default());
        self.attach_block_param(block, v, ty);
        v
    }

    /// Makes existing value `v` the next parameter of `block`.
    pub fn attach_block_param(&mut self, block: Block, v: Value, ty: Type) {
        let n = self.block_params[block].len();
        self.values[v] = ValueData {
            ty,
            def: ValueDef::Param(block, n),
        };
        self.block_params[block].push(v);
    }

    /// Removes parameter number `n` of `block`; the later ones move down by one. Branches to
    /// `block` must drop their argument number `n` too.
    pub fn remove_block_param(&mut self, block: Block, n: usize) {
        let v = self.block_params[block].remove(n);
        self.values[v].def = ValueDef::Unused;
        for (i, &p) in self.block_params[block].iter().enumerate().skip(n) {
            self.values[p].def = ValueDef::Param(block, i);
        }
    }

    /// The parameters of `block`.
    pub fn block_params(&self, block: Block) -> &[Value] {
        &self.block_params[block]
    }

    /// Number of block numbers in use.
    pub fn num_blocks(&self) -> usize {
        self.block_params.len()
    }

    /// Whether `v` names a defined value.
    pub fn value_is_valid(&self, v: Value) -> bool {
        self.values
            .get(v)
            .is_some_and(|d| d.def != ValueDef::Unused)
    }

    /// The type of `v`.
    pub fn value_type(&self, v: Value) -> Type {
        self.values.get(v).map_or(types::INVALID, |d| d.ty)
    }

    /// The definition of `v`.
    pub fn value_def(&self, v: Value) -> ValueDef {
        self.values.get(v).map_or(ValueDef::Unused, |d| d.def)
    }

    /// The results of `inst`.
    pub fn inst_results(&self, inst: Inst) -> &[Value] {
        &self.results[inst]
    }

    /// The first result of `inst`.
    pub fn first_result(&self, inst: Inst) -> Value {
        self.results[inst][0]
    }

    /// The controlling type `inst` was built with (`INVALID` if none).
    pub fn ctrl_type(&self, inst: Inst) -> Type {
        self.ctrl_types[inst]
    }

    /// Number of value numbers in use.
    pub fn num_values(&self) -> usize {
        self.values.len()
    }

    /// The opcode of `inst`.
    pub fn opcode(&self, inst: Inst) -> Opcode {
        self.insts[inst].opcode()
    }
}

/// The order of blocks and of the instructions in each block.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    blocks: Vec<Block>,
    inserted: SecondaryMap<Block, bool>,
    insts: SecondaryMap<Block, Vec<Inst>>,
    inst_block: SecondaryMap<Inst, Option<Block>>,
}

impl Layout {
    /// Appends a block.
    pub fn append_block(&mut self, block: Block) {
        self.blocks.push(block);
        self.inserted[block] = true;
    }

    /// Appends `inst` to `block`.
    pub fn append_inst(&mut self, inst: Inst, block: Block) {
        self.insts[block].push(inst);
        self.inst_block[inst] = Some(block);
    }

    /// Inserts `inst` as the first instruction of `block`.
    pub fn prepend_inst(&mut self, inst: Inst, block: Block) {
        self.insts[block].insert(0, inst);
        self.inst_block[inst] = Some(block);
    }

    /// Replaces the instructions of `block` (a pass rewriting a block in one sweep).
    pub fn set_block_insts(&mut self, block: Block, insts: Vec<Inst>) {
        for &i in &self.insts[block] {
            self.inst_block[i] = None;
        }
        for &i in &insts {
            self.inst_block[i] = Some(block);
        }
        self.insts[block] = insts;
    }

    /// Blocks in layout order.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// Whether `block` is in the layout.
    pub fn is_block_inserted(&self, block: Block) -> bool {
        self.inserted[block]
    }

    /// The entry block.
    pub fn entry_block(&self) -> Option<Block> {
        self.blocks.first().copied()
    }

    /// Instructions of `block`, in order.
    pub fn block_insts(&self, block: Block) -> &[Inst] {
        &self.insts[block]
    }

    /// The block containing `inst`.
    pub fn inst_block(&self, inst: Inst) -> Option<Block> {
        self.inst_block[inst]
    }
}

/// Source positions of a parsed function, for diagnostics.
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    /// Each instruction's line.
    pub insts: SecondaryMap<Inst, Span>,
    /// Each block header.
    pub blocks: SecondaryMap<Block, Span>,
    /// Each memory declaration.
    pub memories: SecondaryMap<Memory, Span>,
    /// The VM context's memory type declaration.
    pub vmctx_struct: Span,
    /// The function header.
    pub function: Span,
}

/// A function.
#[derive(Clone, Debug, Default)]
pub struct Function {
    /// The name as written: `%name` or `u0:1`.
    pub name: String,
    /// The signature.
    pub signature: Signature,
    /// Declared alias regions.
    pub alias_regions: PrimaryMap<AliasRegion, AliasRegionData>,
    /// Declared memories.
    pub memories: PrimaryMap<Memory, MemoryData>,
    /// `mt0 = struct SIZE, vmctx`: the `vmctx` parameter points to `SIZE` accessible bytes
    /// (the VM context), a fact proof-carrying code proves its accesses against.
    pub vmctx_struct: Option<u64>,
    /// Instructions and values.
    pub dfg: DataFlowGraph,
    /// Block and instruction order.
    pub layout: Layout,
    /// Where things were in the source text, if parsed.
    pub srcmap: SourceMap,
}

impl Function {
    /// An empty function.
    pub fn new(name: impl Into<String>, signature: Signature) -> Self {
        Function {
            name: name.into(),
            signature,
            ..Function::default()
        }
    }

    /// Whether the function uses the new bounds-checked instructions or declares memories,
    /// i.e. whether upstream Cranelift could not read it.
    pub fn uses_bounds_checked_accesses(&self) -> bool {
        !self.memories.is_empty()
            || self.vmctx_struct.is_some()
            || self
                .dfg
                .insts
                .values()
                .any(|d| !d.opcode().shared_with_upstream())
    }
}
