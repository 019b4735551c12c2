//! Wasm function bodies to CLIF, in the style of Cranelift's Wasm translator: an operand
//! stack of SSA values, a stack of control frames, locals as SSA-builder variables, and
//! everything else reached through the `vmctx` parameter.
//!
//! Every linear-memory access becomes one `bounds_checked_load`/`bounds_checked_store`
//! naming a memory declaration that states what the runtime guarantees under the configured
//! [`MemoryConfig`]. Its base and bound are `notrap aligned` loads from the vmctx right
//! before the access, so `memory.grow` (a call into the runtime) needs no special reload.

use super::config::{global_cell_memory, table_memory, MemoryConfig, MemoryPlan};
use super::module::{clif_type, Module, REF_SIZE_LOG2};
use super::{traps, SegmentKind, VmLayout, WasmError};
use crate::frontend::{FunctionBuilder, Variable};
use crate::ir::{
    types, AbiParam, AccessKind, AliasRegion, AliasRegionData, Block, BlockCall, Endianness,
    ExtFuncData, FloatCC, FuncRef, Function, Ieee32, Ieee64, InstBuilder, IntCC, JumpTable,
    MemFlags, Memory, MemoryData, Offset32, Offset64, Signature, TrapCode, Type, Value,
};
use cranelift_entity::EntityRef;
use std::collections::HashMap;
use wasmparser::{BlockType, FuncType, MemArg, MemArgTarget, Operator};

/// The external name of the runtime's `memory.grow`: `(vmctx, memory index, delta pages)`
/// returning the old size in pages or -1.
pub use crate::isa::MEMORY_GROW;

/// The external name of the runtime's calls to imported functions: `(vmctx, function
/// index)` with the arguments in the vmctx's call area ([`VmLayout::call_area`]), returning
/// 0 with the results there, or 1 when the function trapped.
pub use crate::isa::CALL_IMPORT;

/// The external name of the runtime's calls through another instance's function reference:
/// `(vmctx, type index, reference)`, otherwise as [`CALL_IMPORT`].
pub use crate::isa::CALL_REF;

/// A translated module: one CLIF function per Wasm function (an imported one's passes the
/// call on to the host, [`CALL_IMPORT`]).
#[derive(Clone, Debug)]
pub struct Translation {
    /// The functions, in Wasm function index order.
    pub functions: Vec<Function>,
    /// Wasm function index of each entry of `functions`.
    pub indices: Vec<u32>,
    /// The vmctx layout the code assumes.
    pub layout: VmLayout,
    /// How each memory is laid out.
    pub plans: Vec<MemoryPlan>,
}

impl Translation {
    /// The return types of Wasm function `index`, or an error when it has no code here.
    pub fn returns(&self, index: u32) -> Result<Vec<crate::ir::Type>, String> {
        let pos = self
            .indices
            .iter()
            .position(|&i| i == index)
            .ok_or_else(|| format!("function {index} has no code"))?;
        Ok(self.functions[pos]
            .signature
            .returns
            .iter()
            .map(|p| p.value_type)
            .collect())
    }
}

/// The CLIF name of Wasm function `index`, as Wasmtime names them.
pub fn func_name(index: u32) -> String {
    format!("u0:{index}")
}

/// The memory layout of each of the module's memories, then of each of its tables (see
/// [`VmLayout::table`]) and global cells ([`VmLayout::global_cell`]), under `config`.
pub fn plans(module: &Module, layout: &VmLayout, config: &MemoryConfig) -> Vec<MemoryPlan> {
    let tables = module.tables.iter().map(|t| table_memory(&t.ty));
    let cells = layout.global_cells().iter().map(|_| global_cell_memory());
    module
        .memories
        .iter()
        .map(|m| m.ty)
        .chain(tables)
        .chain(cells)
        .map(|ty| config.plan(ty.memory64, ty.page_size_log2(), ty.initial, ty.maximum))
        .collect()
}

/// Whether the translator takes the module: `Ok` when it validates and translates (under
/// any memory configuration: support does not depend on the layout), else the error.
pub fn supported(bytes: &[u8]) -> Result<(), WasmError> {
    let m = super::module::parse(bytes)?;
    translate_module(&m, &MemoryConfig::DYNAMIC).map(drop)
}

/// Translates every defined function of `module`.
pub fn translate_module(module: &Module, config: &MemoryConfig) -> Result<Translation, WasmError> {
    let layout = VmLayout::new(module)?;
    let plans = plans(module, &layout, config);
    // (An imported table needs nothing of its own: a table is a memory of 8-byte pages,
    // always checked against the bound in the vmctx, whoever owns it.)
    if module.tables.iter().any(|t| t.ty.table64) {
        return Err(WasmError::unsupported("64-bit tables (memory64's table64)"));
    }
    let mut functions = Vec::new();
    let mut indices = Vec::new();
    for (index, f) in module.funcs.iter().enumerate() {
        let index = index as u32;
        let mut func = Function::new(func_name(index), signature(&f.ty)?);
        // What `vmctx` points to: the layout's bytes (the runtime allocates exactly these).
        func.vmctx_struct = Some(u64::from(layout.size())).filter(|&s| s > 0);
        let translator = FuncTranslator::new(module, &layout, &plans, &mut func)?;
        match &f.body {
            Some(body) => translator.translate(body)?,
            None => translator.import(index)?,
        }
        functions.push(func);
        indices.push(index);
    }
    Ok(Translation {
        functions,
        indices,
        layout,
        plans,
    })
}

/// The CLIF signature of a Wasm function type: the vmctx first, then the Wasm parameters.
pub fn signature(ty: &FuncType) -> Result<Signature, WasmError> {
    let mut params = vec![AbiParam {
        vmctx: true,
        ..AbiParam::new(types::I64)
    }];
    for &p in ty.params() {
        params.push(AbiParam::new(clif_type(p)?));
    }
    let returns = ty
        .results()
        .iter()
        .map(|&r| clif_type(r).map(AbiParam::new))
        .collect::<Result<_, _>>()?;
    Ok(Signature {
        params,
        returns,
        ..Signature::default()
    })
}

/// What a control frame is.
enum Kind {
    Block,
    Loop {
        header: Block,
    },
    If {
        else_block: Block,
        /// The block parameters' values on entry, which the else arm starts from.
        else_params: Vec<Value>,
        has_else: bool,
    },
    /// A frame opened in unreachable code: no blocks, only nesting.
    Dead,
}

struct Frame {
    kind: Kind,
    /// The continuation after `end`, with one parameter per result.
    dest: Block,
    num_params: usize,
    num_results: usize,
    /// Operand stack height below the frame's parameters.
    height: usize,
    /// Whether anything branches to `dest`.
    dest_reachable: bool,
}

struct FuncTranslator<'m, 'f> {
    module: &'m Module<'m>,
    layout: &'m VmLayout,
    plans: &'m [MemoryPlan],
    b: FunctionBuilder<'f>,
    vmctx: Value,
    stack: Vec<Value>,
    frames: Vec<Frame>,
    reachable: bool,
    memories: HashMap<u32, Memory>,
    /// The alias regions `vmctx`, `heap` and `tables`, declared on first use.
    regions: Option<(AliasRegion, AliasRegion, AliasRegion)>,
    callees: HashMap<u32, FuncRef>,
    grow: Option<FuncRef>,
    results: Vec<Type>,
}

/// One side of a bulk operation: a memory (a linear memory, a table, or a segment), its
/// base and bound, what its range is checked against, where the range starts, and how its
/// items are addressed.
struct Side {
    memory: Memory,
    base: Value,
    bound: Value,
    /// The bound of the range check: `bound`, or 0 for a dropped segment.
    limit: Value,
    /// The range's first byte offset, in the memory's index type.
    start: Value,
    /// Whether the memory's indices are 64-bit.
    memory64: bool,
    /// Whether its items are 8-byte references (a table, an element segment), their
    /// element indices scaled to byte offsets; otherwise bytes.
    refs: bool,
    /// The flags of its accesses, with their trap code.
    flags: MemFlags,
}

impl Side {
    /// The trap code of its accesses and range checks.
    fn code(&self) -> TrapCode {
        self.flags.trap_code.unwrap_or(TrapCode::HEAP_OUT_OF_BOUNDS)
    }
}

impl<'m, 'f> FuncTranslator<'m, 'f> {
    fn new(
        module: &'m Module<'m>,
        layout: &'m VmLayout,
        plans: &'m [MemoryPlan],
        func: &'f mut Function,
    ) -> Result<Self, WasmError> {
        let results = func
            .signature
            .returns
            .iter()
            .map(|p| p.value_type)
            .collect();
        let mut b = FunctionBuilder::new(func);
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        b.seal_block(entry);
        let vmctx = b.block_params(entry)[0];
        Ok(FuncTranslator {
            module,
            layout,
            plans,
            b,
            vmctx,
            stack: Vec::new(),
            frames: Vec::new(),
            reachable: true,
            memories: HashMap::new(),
            regions: None,
            callees: HashMap::new(),
            grow: None,
            results,
        })
    }

    fn translate(mut self, body: &wasmparser::FunctionBody) -> Result<(), WasmError> {
        // Parameters and locals are variables 0.., in Wasm's local index order.
        let entry = self
            .b
            .current_block()
            .expect("positioned at the entry block");
        let params: Vec<Value> = self.b.block_params(entry)[1..].to_vec();
        let mut next = 0usize;
        for p in params {
            let var = Variable::new(next);
            self.b.declare_var(var, self.b.func.dfg.value_type(p));
            self.b.def_var(var, p);
            next += 1;
        }
        for local in body.get_locals_reader()? {
            let (count, ty) = local?;
            let ty = clif_type(ty)?;
            if count > 50_000 {
                return Err(WasmError::unsupported(
                    "more than 50,000 locals in one group",
                ));
            }
            for _ in 0..count {
                let var = Variable::new(next);
                self.b.declare_var(var, ty);
                let zero = self.zero(ty);
                self.b.def_var(var, zero);
                next += 1;
            }
        }
        // The function body is a block whose continuation returns.
        let ret = self.b.create_block();
        for &ty in &self.results.clone() {
            self.b.append_block_param(ret, ty);
        }
        self.frames.push(Frame {
            kind: Kind::Block,
            dest: ret,
            num_params: 0,
            num_results: self.results.len(),
            height: 0,
            dest_reachable: false,
        });
        let mut reader = body.get_operators_reader()?;
        while !reader.eof() {
            let offset = reader.original_position();
            let op = reader.read()?;
            self.operator(op).map_err(|e| e.at(offset))?;
        }
        self.b
            .finalize()
            .map_err(|e| WasmError::unsupported(format!("(internal) SSA construction: {e}")))
    }

    /// The body of imported function `index`: the arguments go to the call area, the host
    /// calls whatever the import resolved to, and the results come back from the call area.
    /// An imported function that traps makes its caller trap ([`traps::IMPORT_TRAPPED`]),
    /// which the store reports as the imported function's own trap.
    ///
    /// (Going through the host keeps every instance's code on its own: a direct call into
    /// another instance's code would need the IR's indirect calls, which it does not have.)
    fn import(mut self, index: u32) -> Result<(), WasmError> {
        let entry = self
            .b
            .current_block()
            .expect("positioned at the entry block");
        let params = self.b.block_params(entry)[1..].to_vec();
        let index = self.b.ins().iconst(types::I32, i64::from(index).into());
        let results = self.results.clone();
        let results = self.call_through_host(CALL_IMPORT, &[index], &params, &results);
        self.b.ins().return_(&results);
        self.b
            .finalize()
            .map_err(|e| WasmError::unsupported(format!("(internal) SSA construction: {e}")))
    }

    /// A call the host makes for this code ([`CALL_IMPORT`], [`CALL_REF`]): `args` go to the
    /// call area, `host` is called with the vmctx and `operands`, and the results, of types
    /// `results`, come back from the call area. When the callee does not return, the host
    /// says so and this code traps with [`traps::IMPORT_TRAPPED`], which the store reports
    /// as the callee's own trap.
    fn call_through_host(
        &mut self,
        host: &str,
        operands: &[Value],
        args: &[Value],
        results: &[Type],
    ) -> Vec<Value> {
        let area = self.layout.call_area();
        let flags = self.vmctx_flags();
        for (i, &a) in args.iter().enumerate() {
            let at = Offset32((area + 8 * i as u32) as i32);
            self.b.ins().store(flags, a, self.vmctx, at);
        }
        let mut params = vec![AbiParam {
            vmctx: true,
            ..AbiParam::new(types::I64)
        }];
        for &o in operands {
            params.push(AbiParam::new(self.b.func.dfg.value_type(o)));
        }
        let sig = Signature {
            params,
            returns: vec![AbiParam::new(types::I32)],
            ..Signature::default()
        };
        let f = self.func_ref(host.to_string(), sig);
        self.b.func.dfg.ext_funcs[f].colocated = false;
        let mut call_args = vec![self.vmctx];
        call_args.extend_from_slice(operands);
        let call = self.b.ins().call(f, &call_args);
        let trapped = self.b.func.dfg.inst_results(call)[0];
        self.b.ins().trapnz(trapped, traps::IMPORT_TRAPPED);
        results
            .iter()
            .enumerate()
            .map(|(i, &ty)| self.vmctx_load(ty, area + 8 * i as u32, false))
            .collect()
    }

    fn zero(&mut self, ty: Type) -> Value {
        match ty {
            types::F32 => self.b.ins().f32const(Ieee32(0)),
            types::F64 => self.b.ins().f64const(Ieee64(0)),
            _ => self.b.ins().iconst(ty, 0.into()),
        }
    }

    fn pop(&mut self) -> Value {
        self.stack
            .pop()
            .expect("validated Wasm never pops an empty stack")
    }

    fn pop2(&mut self) -> (Value, Value) {
        let y = self.pop();
        let x = self.pop();
        (x, y)
    }

    fn popn(&mut self, n: usize) -> Vec<Value> {
        self.stack.split_off(self.stack.len() - n)
    }

    fn peekn(&self, n: usize) -> Vec<Value> {
        self.stack[self.stack.len() - n..].to_vec()
    }

    fn push(&mut self, v: Value) {
        self.stack.push(v);
    }

    fn block_types(&self, ty: BlockType) -> Result<(Vec<Type>, Vec<Type>), WasmError> {
        Ok(match ty {
            BlockType::Empty => (vec![], vec![]),
            BlockType::Type(t) => (vec![], vec![clif_type(t)?]),
            BlockType::FuncType(i) => {
                let Some(Some(f)) = self.module.types.get(i as usize) else {
                    return Err(WasmError::unsupported(
                        "block types that are not function types",
                    ));
                };
                let conv = |ts: &[wasmparser::ValType]| {
                    ts.iter()
                        .map(|&t| clif_type(t))
                        .collect::<Result<Vec<_>, _>>()
                };
                (conv(f.params())?, conv(f.results())?)
            }
        })
    }

    fn block_with_params(&mut self, tys: &[Type]) -> Block {
        let block = self.b.create_block();
        for &ty in tys {
            self.b.append_block_param(block, ty);
        }
        block
    }

    /// The branch target of `br depth` and how many values it takes.
    fn target(&mut self, depth: u32) -> (Block, usize) {
        let i = self.frames.len() - 1 - depth as usize;
        let frame = &mut self.frames[i];
        match frame.kind {
            Kind::Loop { header } => (header, frame.num_params),
            _ => {
                frame.dest_reachable = true;
                (frame.dest, frame.num_results)
            }
        }
    }

    fn operator(&mut self, op: Operator) -> Result<(), WasmError> {
        if !self.reachable {
            return self.unreachable_operator(op);
        }
        use Operator as O;
        macro_rules! bin {
            ($m:ident) => {{
                let (x, y) = self.pop2();
                let v = self.b.ins().$m(x, y);
                self.push(v);
            }};
        }
        macro_rules! un {
            ($m:ident) => {{
                let x = self.pop();
                let v = self.b.ins().$m(x);
                self.push(v);
            }};
        }
        macro_rules! conv {
            ($m:ident, $ty:expr) => {{
                let x = self.pop();
                let v = self.b.ins().$m($ty, x);
                self.push(v);
            }};
        }
        macro_rules! icmp {
            ($cc:ident) => {{
                let (x, y) = self.pop2();
                let c = self.b.ins().icmp(IntCC::$cc, x, y);
                let v = self.b.ins().uextend(types::I32, c);
                self.push(v);
            }};
        }
        macro_rules! fcmp {
            ($cc:ident) => {{
                let (x, y) = self.pop2();
                let c = self.b.ins().fcmp(FloatCC::$cc, x, y);
                let v = self.b.ins().uextend(types::I32, c);
                self.push(v);
            }};
        }
        macro_rules! sext_in {
            ($narrow:expr, $wide:expr) => {{
                let x = self.pop();
                let n = self.b.ins().ireduce($narrow, x);
                let v = self.b.ins().sextend($wide, n);
                self.push(v);
            }};
        }
        macro_rules! load {
            ($memarg:expr, $ty:expr, $access:ident) => {
                self.load($memarg, $ty, AccessKind::$access)?
            };
        }
        macro_rules! store {
            ($memarg:expr, $access:ident) => {
                self.store($memarg, AccessKind::$access)?
            };
        }
        let (i32_, i64_, f32_, f64_) = (types::I32, types::I64, types::F32, types::F64);
        match op {
            // Control.
            O::Nop => {}
            O::Unreachable => {
                self.b.ins().trap(traps::UNREACHABLE);
                self.reachable = false;
            }
            O::Block { blockty } => {
                let (params, results) = self.block_types(blockty)?;
                let dest = self.block_with_params(&results);
                self.frames.push(Frame {
                    kind: Kind::Block,
                    dest,
                    num_params: params.len(),
                    num_results: results.len(),
                    height: self.stack.len() - params.len(),
                    dest_reachable: false,
                });
            }
            O::Loop { blockty } => {
                let (params, results) = self.block_types(blockty)?;
                let header = self.block_with_params(&params);
                let dest = self.block_with_params(&results);
                let args = self.popn(params.len());
                self.b.ins().jump(BlockCall::new(header, args));
                self.b.switch_to_block(header);
                let height = self.stack.len();
                let header_params = self.b.block_params(header).to_vec();
                self.stack.extend(header_params);
                self.frames.push(Frame {
                    kind: Kind::Loop { header },
                    dest,
                    num_params: params.len(),
                    num_results: results.len(),
                    height,
                    dest_reachable: false,
                });
            }
            O::If { blockty } => {
                let (params, results) = self.block_types(blockty)?;
                let c = self.pop();
                let else_block = self.branch(c);
                let dest = self.block_with_params(&results);
                self.frames.push(Frame {
                    kind: Kind::If {
                        else_block,
                        else_params: self.peekn(params.len()),
                        has_else: false,
                    },
                    dest,
                    num_params: params.len(),
                    num_results: results.len(),
                    height: self.stack.len() - params.len(),
                    dest_reachable: false,
                });
            }
            O::Else => self.else_()?,
            O::End => self.end()?,
            O::Br { relative_depth } => {
                let (target, n) = self.target(relative_depth);
                let args = self.peekn(n);
                self.b.ins().jump(BlockCall::new(target, args));
                self.reachable = false;
            }
            O::BrIf { relative_depth } => {
                let c = self.pop();
                let (target, n) = self.target(relative_depth);
                let args = self.peekn(n);
                let next = self.b.create_block();
                self.b.ins().brif(
                    c,
                    BlockCall::new(target, args),
                    BlockCall::new(next, vec![]),
                );
                self.b.seal_block(next);
                self.b.switch_to_block(next);
            }
            O::BrTable { targets } => {
                let index = self.pop();
                let depths = targets
                    .targets()
                    .collect::<Result<Vec<u32>, _>>()
                    .map_err(WasmError::from)?;
                let default = targets.default();
                let (_, n) = self.target(default);
                let args = self.peekn(n);
                // Jump-table entries carry no arguments: with results, each distinct target
                // gets an edge block that passes them.
                let mut edges: HashMap<u32, Block> = HashMap::new();
                let mut call_for = |this: &mut Self, depth: u32| -> BlockCall {
                    let (target, _) = this.target(depth);
                    if n == 0 {
                        return BlockCall::new(target, vec![]);
                    }
                    let edge = *edges.entry(depth).or_insert_with(|| this.b.create_block());
                    BlockCall::new(edge, vec![])
                };
                let default_call = call_for(self, default);
                let table: Vec<BlockCall> = depths.iter().map(|&d| call_for(self, d)).collect();
                self.b.ins().br_table(
                    index,
                    JumpTable {
                        default: default_call,
                        targets: table,
                    },
                );
                let mut edges: Vec<(u32, Block)> = edges.into_iter().collect();
                edges.sort_by_key(|&(_, b)| b);
                for (depth, edge) in edges {
                    self.b.seal_block(edge);
                    self.b.switch_to_block(edge);
                    let (target, _) = self.target(depth);
                    self.b.ins().jump(BlockCall::new(target, args.clone()));
                }
                self.reachable = false;
            }
            O::Return => {
                let vals = self.popn(self.results.len());
                self.b.ins().return_(&vals);
                self.reachable = false;
            }
            O::Call { function_index } => self.call(function_index)?,
            O::CallIndirect {
                type_index,
                table_index,
            } => self.call_indirect(type_index, table_index)?,
            O::Drop => {
                self.pop();
            }
            O::Select | O::TypedSelect { .. } => {
                let c = self.pop();
                let (x, y) = self.pop2();
                let v = self.b.ins().select(c, x, y);
                self.push(v);
            }

            // Variables.
            O::LocalGet { local_index } => {
                let v = self.b.use_var(Variable::new(local_index as usize));
                self.push(v);
            }
            O::LocalSet { local_index } => {
                let v = self.pop();
                self.b.def_var(Variable::new(local_index as usize), v);
            }
            O::LocalTee { local_index } => {
                let v = *self.stack.last().expect("validated");
                self.b.def_var(Variable::new(local_index as usize), v);
            }
            O::GlobalGet { global_index } => {
                let ty = clif_type(self.module.globals[global_index as usize].ty.content_type)?;
                let v = match self.layout.global_cell(global_index) {
                    Some(cell) => {
                        let (flags, memory, base, bound, zero) = self.cell(cell);
                        self.b.ins().bounds_checked_load(
                            ty,
                            AccessKind::Full,
                            flags,
                            memory,
                            base,
                            bound,
                            zero,
                            Offset64(0),
                        )
                    }
                    None => self.vmctx_load(ty, self.layout.global(global_index), false),
                };
                self.push(v);
            }
            O::GlobalSet { global_index } => {
                let v = self.pop();
                match self.layout.global_cell(global_index) {
                    Some(cell) => {
                        let (flags, memory, base, bound, zero) = self.cell(cell);
                        self.b.ins().bounds_checked_store(
                            AccessKind::Full,
                            flags,
                            memory,
                            v,
                            base,
                            bound,
                            zero,
                            Offset64(0),
                        );
                    }
                    None => {
                        let off = self.layout.global(global_index);
                        let flags = self.vmctx_flags();
                        self.b
                            .ins()
                            .store(flags, v, self.vmctx, Offset32(off as i32));
                    }
                }
            }

            // Constants.
            O::I32Const { value } => {
                let v = self.b.ins().iconst(i32_, i64::from(value).into());
                self.push(v);
            }
            O::I64Const { value } => {
                let v = self.b.ins().iconst(i64_, value.into());
                self.push(v);
            }
            O::F32Const { value } => {
                let v = self.b.ins().f32const(Ieee32(value.bits()));
                self.push(v);
            }
            O::F64Const { value } => {
                let v = self.b.ins().f64const(Ieee64(value.bits()));
                self.push(v);
            }

            // Memory.
            O::I32Load { memarg } => load!(memarg, i32_, Full),
            O::I64Load { memarg } => load!(memarg, i64_, Full),
            O::F32Load { memarg } => load!(memarg, f32_, Full),
            O::F64Load { memarg } => load!(memarg, f64_, Full),
            O::I32Load8S { memarg } => load!(memarg, i32_, S8),
            O::I32Load8U { memarg } => load!(memarg, i32_, U8),
            O::I32Load16S { memarg } => load!(memarg, i32_, S16),
            O::I32Load16U { memarg } => load!(memarg, i32_, U16),
            O::I64Load8S { memarg } => load!(memarg, i64_, S8),
            O::I64Load8U { memarg } => load!(memarg, i64_, U8),
            O::I64Load16S { memarg } => load!(memarg, i64_, S16),
            O::I64Load16U { memarg } => load!(memarg, i64_, U16),
            O::I64Load32S { memarg } => load!(memarg, i64_, S32),
            O::I64Load32U { memarg } => load!(memarg, i64_, U32),
            O::I32Store { memarg }
            | O::I64Store { memarg }
            | O::F32Store { memarg }
            | O::F64Store { memarg } => store!(memarg, Full),
            O::I32Store8 { memarg } | O::I64Store8 { memarg } => store!(memarg, I8),
            O::I32Store16 { memarg } | O::I64Store16 { memarg } => store!(memarg, I16),
            O::I64Store32 { memarg } => store!(memarg, I32),
            O::MemorySize { mem } => {
                let pages = self.pages(mem);
                let v = self.narrow(pages, self.plans[mem as usize].memory64);
                self.push(v);
            }
            O::MemoryFill { mem } => self.memory_fill(mem)?,
            O::MemoryCopy { dst_mem, src_mem } => self.memory_copy(dst_mem, src_mem)?,
            O::MemoryInit { data_index, mem } => self.memory_init(data_index, mem)?,
            O::DataDrop { data_index } => self.drop_segment(SegmentKind::Data, data_index),
            O::MemoryGrow { mem } => {
                let delta = self.pop();
                let delta = self.widen(delta, true);
                let old = self.grow(mem, delta);
                let v = self.narrow(old, self.plans[mem as usize].memory64);
                self.push(v);
            }

            // References and tables.
            O::RefNull { .. } => {
                let v = self.b.ins().iconst(i64_, 0.into());
                self.push(v);
            }
            O::RefIsNull => {
                let r = self.pop();
                let null = self.b.ins().iconst(i64_, 0.into());
                let c = self.b.ins().icmp(IntCC::Equal, r, null);
                let v = self.b.ins().uextend(i32_, c);
                self.push(v);
            }
            O::RefFunc { function_index } => {
                // `func_ref_bits` of the instance's base.
                let base = self.vmctx_load(i64_, self.layout.func_refs(), true);
                let f = self
                    .b
                    .ins()
                    .iconst(i64_, (i64::from(function_index) + 1).into());
                let v = self.b.ins().iadd(base, f);
                self.push(v);
            }
            O::TableGet { table } => {
                let index = self.pop();
                let side = self.table_side(table, index);
                let zero = self.b.ins().iconst(i32_, 0.into());
                let v = self.ref_load(&side, zero);
                self.push(v);
            }
            O::TableSet { table } => {
                let (index, value) = self.pop2();
                let side = self.table_side(table, index);
                let zero = self.b.ins().iconst(i32_, 0.into());
                self.ref_store(&side, zero, value);
            }
            O::TableSize { table } => {
                let elems = self.pages(self.layout.table(table));
                let v = self.b.ins().ireduce(i32_, elems);
                self.push(v);
            }
            O::TableGrow { table } => self.table_grow(table),
            O::TableFill { table } => self.table_fill(table),
            O::TableCopy {
                dst_table,
                src_table,
            } => {
                let len = self.pop();
                let (dst, src) = self.pop2();
                let to = self.table_side(dst_table, dst);
                let from = self.table_side(src_table, src);
                self.copy(&to, &from, len, true);
            }
            O::TableInit { elem_index, table } => {
                let len = self.pop();
                let (dst, src) = self.pop2();
                let to = self.table_side(table, dst);
                let from = self.segment_side(SegmentKind::Elem, elem_index, src)?;
                self.copy(&to, &from, len, false);
            }
            O::ElemDrop { elem_index } => self.drop_segment(SegmentKind::Elem, elem_index),

            // Integer arithmetic.
            O::I32Add | O::I64Add => bin!(iadd),
            O::I32Sub | O::I64Sub => bin!(isub),
            O::I32Mul | O::I64Mul => bin!(imul),
            O::I32DivS | O::I64DivS => bin!(sdiv),
            O::I32DivU | O::I64DivU => bin!(udiv),
            O::I32RemS | O::I64RemS => bin!(srem),
            O::I32RemU | O::I64RemU => bin!(urem),
            O::I32And | O::I64And => bin!(band),
            O::I32Or | O::I64Or => bin!(bor),
            O::I32Xor | O::I64Xor => bin!(bxor),
            O::I32Shl | O::I64Shl => bin!(ishl),
            O::I32ShrS | O::I64ShrS => bin!(sshr),
            O::I32ShrU | O::I64ShrU => bin!(ushr),
            O::I32Rotl | O::I64Rotl => bin!(rotl),
            O::I32Rotr | O::I64Rotr => bin!(rotr),
            O::I32Clz | O::I64Clz => un!(clz),
            O::I32Ctz | O::I64Ctz => un!(ctz),
            O::I32Popcnt | O::I64Popcnt => un!(popcnt),
            O::I32Eqz | O::I64Eqz => {
                let x = self.pop();
                let ty = self.b.func.dfg.value_type(x);
                let zero = self.b.ins().iconst(ty, 0.into());
                let c = self.b.ins().icmp(IntCC::Equal, x, zero);
                let v = self.b.ins().uextend(i32_, c);
                self.push(v);
            }
            O::I32Eq | O::I64Eq => icmp!(Equal),
            O::I32Ne | O::I64Ne => icmp!(NotEqual),
            O::I32LtS | O::I64LtS => icmp!(SignedLessThan),
            O::I32LtU | O::I64LtU => icmp!(UnsignedLessThan),
            O::I32GtS | O::I64GtS => icmp!(SignedGreaterThan),
            O::I32GtU | O::I64GtU => icmp!(UnsignedGreaterThan),
            O::I32LeS | O::I64LeS => icmp!(SignedLessThanOrEqual),
            O::I32LeU | O::I64LeU => icmp!(UnsignedLessThanOrEqual),
            O::I32GeS | O::I64GeS => icmp!(SignedGreaterThanOrEqual),
            O::I32GeU | O::I64GeU => icmp!(UnsignedGreaterThanOrEqual),

            // Conversions.
            O::I32WrapI64 => conv!(ireduce, i32_),
            O::I64ExtendI32S => conv!(sextend, i64_),
            O::I64ExtendI32U => conv!(uextend, i64_),
            O::I32Extend8S => sext_in!(types::I8, i32_),
            O::I32Extend16S => sext_in!(types::I16, i32_),
            O::I64Extend8S => sext_in!(types::I8, i64_),
            O::I64Extend16S => sext_in!(types::I16, i64_),
            O::I64Extend32S => sext_in!(i32_, i64_),
            O::I32ReinterpretF32 => self.bitcast(i32_),
            O::I64ReinterpretF64 => self.bitcast(i64_),
            O::F32ReinterpretI32 => self.bitcast(f32_),
            O::F64ReinterpretI64 => self.bitcast(f64_),
            O::I32TruncF32S | O::I32TruncF64S => conv!(fcvt_to_sint, i32_),
            O::I32TruncF32U | O::I32TruncF64U => conv!(fcvt_to_uint, i32_),
            O::I64TruncF32S | O::I64TruncF64S => conv!(fcvt_to_sint, i64_),
            O::I64TruncF32U | O::I64TruncF64U => conv!(fcvt_to_uint, i64_),
            O::I32TruncSatF32S | O::I32TruncSatF64S => conv!(fcvt_to_sint_sat, i32_),
            O::I32TruncSatF32U | O::I32TruncSatF64U => conv!(fcvt_to_uint_sat, i32_),
            O::I64TruncSatF32S | O::I64TruncSatF64S => conv!(fcvt_to_sint_sat, i64_),
            O::I64TruncSatF32U | O::I64TruncSatF64U => conv!(fcvt_to_uint_sat, i64_),
            O::F32ConvertI32S | O::F32ConvertI64S => conv!(fcvt_from_sint, f32_),
            O::F32ConvertI32U | O::F32ConvertI64U => conv!(fcvt_from_uint, f32_),
            O::F64ConvertI32S | O::F64ConvertI64S => conv!(fcvt_from_sint, f64_),
            O::F64ConvertI32U | O::F64ConvertI64U => conv!(fcvt_from_uint, f64_),
            O::F32DemoteF64 => conv!(fdemote, f32_),
            O::F64PromoteF32 => conv!(fpromote, f64_),

            // Floating point.
            O::F32Add | O::F64Add => bin!(fadd),
            O::F32Sub | O::F64Sub => bin!(fsub),
            O::F32Mul | O::F64Mul => bin!(fmul),
            O::F32Div | O::F64Div => bin!(fdiv),
            O::F32Min | O::F64Min => bin!(fmin),
            O::F32Max | O::F64Max => bin!(fmax),
            O::F32Copysign | O::F64Copysign => bin!(fcopysign),
            O::F32Abs | O::F64Abs => un!(fabs),
            O::F32Neg | O::F64Neg => un!(fneg),
            O::F32Sqrt | O::F64Sqrt => un!(sqrt),
            O::F32Ceil | O::F64Ceil => un!(ceil),
            O::F32Floor | O::F64Floor => un!(floor),
            O::F32Trunc | O::F64Trunc => un!(trunc),
            O::F32Nearest | O::F64Nearest => un!(nearest),
            O::F32Eq | O::F64Eq => fcmp!(Equal),
            O::F32Ne | O::F64Ne => fcmp!(NotEqual),
            O::F32Lt | O::F64Lt => fcmp!(LessThan),
            O::F32Gt | O::F64Gt => fcmp!(GreaterThan),
            O::F32Le | O::F64Le => fcmp!(LessThanOrEqual),
            O::F32Ge | O::F64Ge => fcmp!(GreaterThanOrEqual),

            op => return Err(WasmError::unsupported(operator_name(&op))),
        }
        Ok(())
    }

    /// In unreachable code only the nesting of control frames matters.
    fn unreachable_operator(&mut self, op: Operator) -> Result<(), WasmError> {
        match op {
            Operator::Block { .. } | Operator::Loop { .. } | Operator::If { .. } => {
                let dest = Block::new(0); // never used: dead frames create no blocks
                self.frames.push(Frame {
                    kind: Kind::Dead,
                    dest,
                    num_params: 0,
                    num_results: 0,
                    height: self.stack.len(),
                    dest_reachable: false,
                });
                Ok(())
            }
            Operator::Else => self.else_(),
            Operator::End => self.end(),
            _ => Ok(()),
        }
    }

    fn else_(&mut self) -> Result<(), WasmError> {
        let reachable = self.reachable;
        let frame = self.frames.last_mut().expect("validated: else inside if");
        let Kind::If {
            else_block,
            ref else_params,
            ref mut has_else,
        } = frame.kind
        else {
            return Ok(()); // a dead `if`: its else arm is dead too
        };
        *has_else = true;
        let else_params = else_params.clone();
        let (dest, n, height) = (frame.dest, frame.num_results, frame.height);
        if reachable {
            frame.dest_reachable = true;
            let args = self.popn(n);
            self.b.ins().jump(BlockCall::new(dest, args));
        }
        self.stack.truncate(height);
        self.b.switch_to_block(else_block);
        self.stack.extend(else_params);
        self.reachable = true;
        Ok(())
    }

    fn end(&mut self) -> Result<(), WasmError> {
        let mut frame = self.frames.pop().expect("validated: end closes a frame");
        if let Kind::Dead = frame.kind {
            return Ok(());
        }
        if self.reachable {
            frame.dest_reachable = true;
            let args = self.popn(frame.num_results);
            self.b.ins().jump(BlockCall::new(frame.dest, args));
        }
        match frame.kind {
            Kind::If {
                else_block,
                else_params,
                has_else: false,
            } => {
                // No else arm: the parameters flow through as the results.
                self.b.switch_to_block(else_block);
                self.b.ins().jump(BlockCall::new(frame.dest, else_params));
                frame.dest_reachable = true;
            }
            Kind::Loop { header } => self.b.seal_block(header),
            _ => {}
        }
        self.stack.truncate(frame.height);
        self.b.seal_block(frame.dest);
        self.reachable = frame.dest_reachable;
        if !frame.dest_reachable {
            return Ok(());
        }
        self.b.switch_to_block(frame.dest);
        let results = self.b.block_params(frame.dest).to_vec();
        if self.frames.is_empty() {
            self.b.ins().return_(&results);
            self.reachable = false;
        } else {
            self.stack.extend(results);
        }
        Ok(())
    }

    fn bitcast(&mut self, ty: Type) {
        let x = self.pop();
        let v = self.b.ins().bitcast(ty, MemFlags::default_for_bitcast(), x);
        self.push(v);
    }

    /// The alias regions of the vmctx fields, of linear memories and of tables. No byte is
    /// reachable in two of them (the runtime maps memories and tables apart from the
    /// vmctx; segment contents inside it are never written and no field overlaps them),
    /// so a loop that writes only linear memory cannot change a vmctx field it reads,
    /// which lets an optimiser hoist the load of a bound out of a loop without calls.
    fn regions(&mut self) -> (AliasRegion, AliasRegion, AliasRegion) {
        if let Some(r) = self.regions {
            return r;
        }
        let regions = &mut self.b.func.alias_regions;
        let mut declare = |user_id, description: &str| {
            regions.push(AliasRegionData {
                user_id,
                description: description.into(),
            })
        };
        let r = (
            declare(0, "vmctx"),
            declare(1, "heap"),
            declare(2, "tables"),
        );
        self.regions = Some(r);
        r
    }

    fn vmctx_flags(&mut self) -> MemFlags {
        MemFlags {
            region: Some(self.regions().0),
            ..MemFlags::trusted()
        }
    }

    fn vmctx_load(&mut self, ty: Type, offset: u32, readonly: bool) -> Value {
        let flags = MemFlags {
            readonly,
            ..self.vmctx_flags()
        };
        self.b
            .ins()
            .load(ty, flags, self.vmctx, Offset32(offset as i32))
    }

    /// The memory declaration, base and bound for an access to memory `index`.
    fn heap(&mut self, memarg: &MemArg) -> Result<(Memory, Value, Value), WasmError> {
        let MemArgTarget::Memory(index) = memarg.target else {
            return Err(WasmError::unsupported("GC array accesses"));
        };
        if memarg.ordering.is_some() {
            return Err(WasmError::unsupported("atomic memory accesses"));
        }
        Ok(self.memory(index))
    }

    /// The memory declaration, base and bound of memory `index`.
    fn memory(&mut self, index: u32) -> (Memory, Value, Value) {
        let plan = self.plans[index as usize];
        let memory = match self.memories.get(&index) {
            Some(&m) => m,
            None => {
                let m = self.b.func.memories.push(plan.declaration());
                self.memories.insert(index, m);
                m
            }
        };
        // A memory that never moves has a base that never changes: the load is readonly,
        // so an optimiser may hoist it out of loops. One whose maximum is its minimum never
        // grows, so it never moves, and its bound is that size: a constant.
        let fixed_size = plan.max_bytes == Some(plan.min_bytes);
        let base = self.vmctx_load(
            types::I64,
            VmLayout::memory_base(index),
            plan.reservation.is_some() || fixed_size,
        );
        let bound = if fixed_size {
            self.b
                .ins()
                .iconst(types::I64, (plan.min_bytes as i64).into())
        } else {
            self.vmctx_load(types::I64, VmLayout::memory_bound(index), false)
        };
        (memory, base, bound)
    }

    /// Traps with `code` unless `[start, start + len)` lies within `bound`: the bulk
    /// operations check their whole range before they write anything (Wasm 2.0). 32-bit
    /// values are zero-extended, so their sum cannot wrap; a 64-bit sum traps if it does.
    fn check_range(&mut self, code: TrapCode, bound: Value, start: Value, len: Value) {
        let end = if self.b.func.dfg.value_type(start) == types::I64 {
            self.b.ins().uadd_overflow_trap(start, len, code)
        } else {
            let start = self.b.ins().uextend(types::I64, start);
            let len = self.b.ins().uextend(types::I64, len);
            self.b.ins().iadd(start, len)
        };
        let oob = self.b.ins().icmp(IntCC::UnsignedGreaterThan, end, bound);
        self.b.ins().trapnz(oob, code);
    }

    /// `memory.fill`: after the range check, bounds-checked stores of eight copies of the
    /// byte while eight bytes are left, then one per byte (every linear-memory access stays
    /// the instruction, so PCC and the proofs cover these too; each store's check can no
    /// longer fail).
    fn memory_fill(&mut self, mem: u32) -> Result<(), WasmError> {
        let len = self.pop();
        let (start, value) = self.pop2();
        let to = self.side(mem, start);
        let len = self.extent(&to, len);
        self.check_range(to.code(), to.bound, to.start, len);
        let ty = self.b.func.dfg.value_type(start);
        let zero = self.b.ins().iconst(ty, 0.into());
        let byte = self.b.ins().iconst(types::I32, 0xff.into());
        let byte = self.b.ins().band(value, byte);
        let byte = self.b.ins().uextend(types::I64, byte);
        let ones = self
            .b
            .ins()
            .iconst(types::I64, 0x0101_0101_0101_0101i64.into());
        let eight = self.b.ins().imul(byte, ones);
        let stop = self.chunk_loop(zero, len, false, 8, |t, i| {
            t.store_item(&to, i, AccessKind::Full, eight)
        });
        self.byte_loop(stop, len, false, |t, i| {
            t.store_item(&to, i, AccessKind::I8, value)
        });
        Ok(())
    }

    /// `table.fill`: `table.set` of each element of the range, after the range check.
    fn table_fill(&mut self, table: u32) {
        let len = self.pop();
        let (start, value) = self.pop2();
        let to = self.table_side(table, start);
        let bytes = self.extent(&to, len);
        self.check_range(to.code(), to.bound, to.start, bytes);
        let zero = self.b.ins().iconst(types::I32, 0.into());
        self.byte_loop(zero, len, false, |t, i| t.ref_store(&to, i, value));
    }

    /// `table.grow`: the runtime grows the table's memory by `delta` 8-byte pages (it is
    /// `memory.grow` of the table's memory index), then the new elements get `init`.
    fn table_grow(&mut self, table: u32) {
        let (init, delta) = self.pop2();
        let wide = self.widen(delta, true);
        let old = self.grow(self.layout.table(table), wide);
        let old = self.narrow(old, false);
        let failed = self.b.ins().iconst(types::I32, (-1i64).into());
        let grew = self.b.ins().icmp(IntCC::NotEqual, old, failed);
        let done = self.b.create_block();
        let skip = self.branch(grew);
        let to = self.table_side(table, old);
        let zero = self.b.ins().iconst(types::I32, 0.into());
        self.byte_loop(zero, delta, false, |t, i| t.ref_store(&to, i, init));
        self.b.ins().jump(BlockCall::new(done, vec![]));
        self.b.switch_to_block(skip);
        self.b.ins().jump(BlockCall::new(done, vec![]));
        self.b.seal_block(done);
        self.b.switch_to_block(done);
        self.push(old);
    }

    /// `memory.copy`.
    fn memory_copy(&mut self, dst_mem: u32, src_mem: u32) -> Result<(), WasmError> {
        let len = self.pop();
        let (dst, src) = self.pop2();
        let to = self.side(dst_mem, dst);
        let from = self.side(src_mem, src);
        self.copy(&to, &from, len, true);
        Ok(())
    }

    /// `memory.init`.
    fn memory_init(&mut self, seg: u32, mem: u32) -> Result<(), WasmError> {
        let len = self.pop();
        let (dst, src) = self.pop2();
        let to = self.side(mem, dst);
        let from = self.segment_side(SegmentKind::Data, seg, src)?;
        self.copy(&to, &from, len, false);
        Ok(())
    }

    /// The bulk copies (`memory.copy`, `memory.init`, `table.copy`, `table.init`): after
    /// both range checks, one item (a byte, or a reference) at a time, each a bounds-checked
    /// load and store. When the two ranges may `overlap`, forward when the destination is
    /// at or below the source and backward otherwise, as if through a buffer.
    fn copy(&mut self, to: &Side, from: &Side, len: Value, overlap: bool) {
        // Each range is checked in its own memory's address type.
        let slen = self.extent(from, len);
        let dlen = self.extent(to, len);
        self.check_range(from.code(), from.limit, from.start, slen);
        self.check_range(to.code(), to.bound, to.start, dlen);
        let ty = self.b.func.dfg.value_type(len);
        let zero = self.b.ins().iconst(ty, 0.into());
        if !overlap {
            self.copy_loop(from, to, zero, len, false);
            return;
        }
        let (d, s) = (self.widen(to.start, true), self.widen(from.start, true));
        let forward = self.b.ins().icmp(IntCC::UnsignedLessThanOrEqual, d, s);
        let done = self.b.create_block();
        let bwd = self.branch(forward);
        self.copy_loop(from, to, zero, len, false);
        self.b.ins().jump(BlockCall::new(done, vec![]));
        self.b.switch_to_block(bwd);
        self.copy_loop(from, to, zero, len, true);
        self.b.ins().jump(BlockCall::new(done, vec![]));
        self.b.seal_block(done);
        self.b.switch_to_block(done);
    }

    /// Memory `index` as one side of a bulk operation whose range starts at `start`.
    fn side(&mut self, index: u32, start: Value) -> Side {
        let (memory, base, bound) = self.memory(index);
        Side {
            memory,
            base,
            bound,
            limit: bound,
            start,
            memory64: self.plans[index as usize].memory64,
            refs: false,
            flags: self.heap_flags(),
        }
    }

    /// The flags, memory declaration, base, bound and index 0 of the one access to the
    /// global cell of memory index `cell`: the bounds-checked instruction on a memory of
    /// constant size 8, whose check the planner removes.
    fn cell(&mut self, cell: u32) -> (MemFlags, Memory, Value, Value, Value) {
        let (memory, base, bound) = self.memory(cell);
        let zero = self.b.ins().iconst(types::I64, 0.into());
        (self.heap_flags(), memory, base, bound, zero)
    }

    /// Table `table` as one side of a bulk operation (or a single access) whose range
    /// starts at element `start`: its memory, with `start` scaled to a byte offset.
    fn table_side(&mut self, table: u32, start: Value) -> Side {
        let start = self.scaled(start);
        let flags = self.table_flags();
        Side {
            refs: true,
            flags,
            // A table's plan has 64-bit indices: its byte offsets.
            ..self.side(self.layout.table(table), start)
        }
    }

    /// Data or element segment `seg` as the source of `memory.init` or `table.init` from
    /// item `start`: a read-only memory of its own (declared with its length as maximum;
    /// its base and length in the vmctx), checked against 0 items once dropped.
    fn segment_side(
        &mut self,
        kind: SegmentKind,
        seg: u32,
        start: Value,
    ) -> Result<Side, WasmError> {
        let refs = kind == SegmentKind::Elem;
        let slots = self.layout.segment(kind, seg);
        // Its declared maximum: a passive segment's length, 0 for the dropped others.
        let max = slots.contents.map_or(0, |(_, len)| u64::from(len));
        let memory = self.b.func.memories.push(MemoryData {
            index_type: if refs { types::I64 } else { types::I32 },
            min: 0,
            max: Some(max),
            reservation: None,
            guard: 0,
        });
        let base = self.vmctx_load(types::I64, slots.base, true);
        let bound = self.vmctx_load(types::I64, slots.len, true);
        let dropped = self.vmctx_load(types::I64, slots.dropped, false);
        let zero = self.b.ins().iconst(types::I64, 0.into());
        let limit = self.b.ins().select(dropped, zero, bound);
        let (start, flags) = match refs {
            true => (self.scaled(start), self.table_flags()),
            false => (start, self.heap_flags()),
        };
        Ok(Side {
            memory,
            base,
            bound,
            limit,
            start,
            memory64: refs,
            refs,
            flags,
        })
    }

    /// `data.drop` or `elem.drop`: a dropped segment has length 0 for `memory.init` and
    /// `table.init`, so every later one of it but an empty one at 0 traps.
    fn drop_segment(&mut self, kind: SegmentKind, seg: u32) {
        let one = self.b.ins().iconst(types::I64, 1.into());
        let off = self.layout.segment(kind, seg).dropped;
        let flags = self.vmctx_flags();
        self.b
            .ins()
            .store(flags, one, self.vmctx, Offset32(off as i32));
    }

    /// The offset of table slot `i` (an i32): `i * 8` as an i64, which cannot wrap.
    fn scaled(&mut self, i: Value) -> Value {
        let wide = self.b.ins().uextend(types::I64, i);
        let shift = self
            .b
            .ins()
            .iconst(types::I64, i64::from(REF_SIZE_LOG2).into());
        self.b.ins().ishl(wide, shift)
    }

    /// `len` items of `side` in its index type: bytes, or references of 8 bytes.
    fn extent(&mut self, side: &Side, len: Value) -> Value {
        match side.refs {
            true => self.scaled(len),
            false => self.widen(len, side.memory64),
        }
    }

    /// Memory `index`'s size (a table's: [`VmLayout::table`]) in pages, as an i64.
    fn pages(&mut self, index: u32) -> Value {
        let log2 = self.plans[index as usize].page_size_log2;
        let bound = self.vmctx_load(types::I64, VmLayout::memory_bound(index), false);
        let shift = self.b.ins().iconst(types::I64, i64::from(log2).into());
        self.b.ins().ushr(bound, shift)
    }

    /// Grows memory `index` (a table's: [`VmLayout::table`]) by `delta` pages, an i64,
    /// through the runtime: the old size in pages, or -1, as an i64.
    fn grow(&mut self, index: u32, delta: Value) -> Value {
        let grow = self.grow_ref();
        let index = self.b.ins().iconst(types::I32, i64::from(index).into());
        let call = self.b.ins().call(grow, &[self.vmctx, index, delta]);
        self.b.func.dfg.first_result(call)
    }

    /// An i64 size or index `v` as the address type of a memory: itself for a 64-bit one,
    /// its low 32 bits otherwise.
    fn narrow(&mut self, v: Value, memory64: bool) -> Value {
        match memory64 {
            true => v,
            false => self.b.ins().ireduce(types::I32, v),
        }
    }

    /// `v` zero-extended to i64 when `to64` and it is narrower: between a 32- and a 64-bit
    /// memory a length or an offset has the narrower type (Wasm's memory64), and each side
    /// computes in its own memory's address type.
    fn widen(&mut self, v: Value, to64: bool) -> Value {
        match to64 && self.b.func.dfg.value_type(v) != types::I64 {
            true => self.b.ins().uextend(types::I64, v),
            false => v,
        }
    }

    /// Where item `i` of `side`'s range is.
    fn item(&mut self, side: &Side, i: Value) -> Value {
        let i = self.extent(side, i);
        self.b.ins().iadd(side.start, i)
    }

    /// Item `i` of `side`'s range as a `ty` value: a bounds-checked load of `kind`.
    fn load_item(&mut self, side: &Side, i: Value, ty: Type, kind: AccessKind) -> Value {
        let at = self.item(side, i);
        self.load_at(side, at, 0, ty, kind)
    }

    /// Stores `value` to item `i` of `side`'s range: a bounds-checked store of `kind`.
    fn store_item(&mut self, side: &Side, i: Value, kind: AccessKind, value: Value) {
        let at = self.item(side, i);
        self.store_at(side, at, 0, kind, value);
    }

    /// A bounds-checked load of `kind` from `side`'s memory at address `at` plus `offset`.
    fn load_at(
        &mut self,
        side: &Side,
        at: Value,
        offset: u64,
        ty: Type,
        kind: AccessKind,
    ) -> Value {
        self.b.ins().bounds_checked_load(
            ty,
            kind,
            side.flags,
            side.memory,
            side.base,
            side.bound,
            at,
            Offset64(offset),
        )
    }

    /// A bounds-checked store of `kind` to `side`'s memory at address `at` plus `offset`.
    fn store_at(&mut self, side: &Side, at: Value, offset: u64, kind: AccessKind, value: Value) {
        self.b.ins().bounds_checked_store(
            kind,
            side.flags,
            side.memory,
            value,
            side.base,
            side.bound,
            at,
            Offset64(offset),
        );
    }

    /// Reference `i` (an i32) of a table or element segment range.
    fn ref_load(&mut self, side: &Side, i: Value) -> Value {
        self.load_item(side, i, types::I64, AccessKind::Full)
    }

    /// Stores reference `value` to slot `i` of a table range.
    fn ref_store(&mut self, side: &Side, i: Value, value: Value) {
        self.store_item(side, i, AccessKind::Full, value)
    }

    /// Copies items `[zero, len)` of `from`'s range to `to`'s, upward or downward: references
    /// one at a time; bytes 32 at a time (four `i64` loads, then four stores, at offsets of
    /// one index: one check each side for the four) while 32 are left, then eight at a time,
    /// then one at a time. Each chunk is read whole before it is written, and in the
    /// direction [`Self::copy`] picks for overlapping ranges no chunk's write reaches bytes
    /// a later chunk reads, so the copy is as if through a buffer.
    fn copy_loop(&mut self, from: &Side, to: &Side, zero: Value, len: Value, down: bool) {
        let copy = |t: &mut Self, i: Value| t.copy_item(from, to, i);
        if from.refs {
            self.byte_loop(zero, len, down, copy);
            return;
        }
        let words = |n: u64| {
            move |t: &mut Self, i: Value| {
                let (src, dst) = (t.item(from, i), t.item(to, i));
                let words: Vec<Value> = (0..n)
                    .map(|k| t.load_at(from, src, 8 * k, types::I64, AccessKind::Full))
                    .collect();
                for (k, w) in (0..).zip(words) {
                    t.store_at(to, dst, 8 * k, AccessKind::Full, w);
                }
            }
        };
        match down {
            false => {
                let stop = self.chunk_loop(zero, len, false, 32, words(4));
                let stop = self.chunk_loop(stop, len, false, 8, words(1));
                self.byte_loop(stop, len, false, copy);
            }
            true => {
                let stop = self.chunk_loop(zero, len, true, 32, words(4));
                let stop = self.chunk_loop(zero, stop, true, 8, words(1));
                self.byte_loop(zero, stop, true, copy);
            }
        }
    }

    /// Copies item `i` of `from`'s range to `to`'s: a bounds-checked load and store of a
    /// reference, or of a byte.
    fn copy_item(&mut self, from: &Side, to: &Side, i: Value) {
        let (ty, load, store) = match from.refs {
            true => (types::I64, AccessKind::Full, AccessKind::Full),
            false => (types::I32, AccessKind::U8, AccessKind::I8),
        };
        let v = self.load_item(from, i, ty, load);
        self.store_item(to, i, store, v);
    }

    /// Branches on `c` to two new blocks, each with this one block as its predecessor, and
    /// continues in the one taken when `c` is true; returns the other.
    fn branch(&mut self, c: Value) -> Block {
        let (then, other) = (self.b.create_block(), self.b.create_block());
        self.b.ins().brif(
            c,
            BlockCall::new(then, vec![]),
            BlockCall::new(other, vec![]),
        );
        self.b.seal_block(then);
        self.b.seal_block(other);
        self.b.switch_to_block(then);
        other
    }

    /// Runs `body(i)` for each `i` in `[zero, len)`: upward, or downward from `len - 1`
    /// when `down`. Continues in a new block after the loop.
    fn byte_loop(
        &mut self,
        zero: Value,
        len: Value,
        down: bool,
        body: impl FnMut(&mut Self, Value),
    ) {
        self.chunk_loop(zero, len, down, 1, body);
    }

    /// Runs `body(i)` on chunks of `step` items of `[zero, len)` while a whole chunk is
    /// left: upward from `zero` (`i = zero, zero + step, ...`), or downward from the top
    /// when `down` (`i = len - step, len - 2 * step, ...`). Continues in a new block after
    /// the loop and returns where it stopped: upward the first item not done, downward one
    /// past the last item not done. What is left is fewer than `step` items.
    fn chunk_loop(
        &mut self,
        zero: Value,
        len: Value,
        down: bool,
        step: u64,
        mut body: impl FnMut(&mut Self, Value),
    ) -> Value {
        let ty = self.b.func.dfg.value_type(len);
        let header = self.block_with_params(&[ty]);
        let first = if down { len } else { zero };
        self.b.ins().jump(BlockCall::new(header, vec![first]));
        self.b.switch_to_block(header);
        let i = self.b.block_params(header)[0];
        let step_v = self.b.ins().iconst(ty, (step as i64).into());
        // Upward, `i` is the next item; downward, `i` is one past it.
        let more = match (down, step) {
            (false, 1) => self.b.ins().icmp(IntCC::UnsignedLessThan, i, len),
            (true, 1) => self.b.ins().icmp(IntCC::NotEqual, i, zero),
            (false, _) => {
                // `i <= len` throughout, so the difference does not wrap.
                let left = self.b.ins().isub(len, i);
                self.b
                    .ins()
                    .icmp(IntCC::UnsignedGreaterThanOrEqual, left, step_v)
            }
            (true, _) => self
                .b
                .ins()
                .icmp(IntCC::UnsignedGreaterThanOrEqual, i, step_v),
        };
        let exit = self.branch(more);
        let (at, next) = match down {
            false => (i, self.b.ins().iadd(i, step_v)),
            true => {
                let j = self.b.ins().isub(i, step_v);
                (j, j)
            }
        };
        body(self, at);
        self.b.ins().jump(BlockCall::new(header, vec![next]));
        self.b.seal_block(header);
        self.b.switch_to_block(exit);
        i
    }

    /// The flags of a table or element segment access: a table index past the end is
    /// Wasm's table trap, not a memory's.
    fn table_flags(&mut self) -> MemFlags {
        MemFlags {
            trap_code: Some(traps::TABLE_OUT_OF_BOUNDS),
            endianness: Some(Endianness::Little),
            region: Some(self.regions().2),
            ..MemFlags::default()
        }
    }

    fn heap_flags(&mut self) -> MemFlags {
        MemFlags {
            endianness: Some(Endianness::Little),
            region: Some(self.regions().1),
            ..MemFlags::default()
        }
    }

    /// An access whose offset plus size does not fit 64 bits traps on every execution; the
    /// verifier rejects it as an instruction, so it becomes the trap it always is.
    fn always_out_of_bounds(&mut self, memarg: &MemArg, access: AccessKind, ty: Type) -> bool {
        let size = u64::from(access.access_size(ty));
        if !crate::semantics::always_out_of_bounds(memarg.offset, size) {
            return false;
        }
        self.b.ins().trap(TrapCode::HEAP_OUT_OF_BOUNDS);
        self.reachable = false;
        true
    }

    fn load(&mut self, memarg: MemArg, ty: Type, access: AccessKind) -> Result<(), WasmError> {
        if self.always_out_of_bounds(&memarg, access, ty) {
            return Ok(());
        }
        let index = self.pop();
        let (memory, base, bound) = self.heap(&memarg)?;
        let flags = self.heap_flags();
        let v = self.b.ins().bounds_checked_load(
            ty,
            access,
            flags,
            memory,
            base,
            bound,
            index,
            Offset64(memarg.offset),
        );
        self.push(v);
        Ok(())
    }

    fn store(&mut self, memarg: MemArg, access: AccessKind) -> Result<(), WasmError> {
        let (index, x) = self.pop2();
        let ty = self.b.func.dfg.value_type(x);
        if self.always_out_of_bounds(&memarg, access, ty) {
            return Ok(());
        }
        let (memory, base, bound) = self.heap(&memarg)?;
        let flags = self.heap_flags();
        self.b.ins().bounds_checked_store(
            access,
            flags,
            memory,
            x,
            base,
            bound,
            index,
            Offset64(memarg.offset),
        );
        Ok(())
    }

    fn func_ref(&mut self, name: String, sig: Signature) -> FuncRef {
        let sig = self.b.func.dfg.signatures.push(sig);
        self.b.func.dfg.ext_funcs.push(ExtFuncData {
            name,
            signature: sig,
            colocated: true,
        })
    }

    fn grow_ref(&mut self) -> FuncRef {
        if let Some(f) = self.grow {
            return f;
        }
        let sig = Signature {
            params: vec![
                AbiParam {
                    vmctx: true,
                    ..AbiParam::new(types::I64)
                },
                AbiParam::new(types::I32),
                AbiParam::new(types::I64),
            ],
            returns: vec![AbiParam::new(types::I64)],
            ..Signature::default()
        };
        let f = self.func_ref(MEMORY_GROW.to_string(), sig);
        self.b.func.dfg.ext_funcs[f].colocated = false;
        self.grow = Some(f);
        f
    }

    fn callee(&mut self, index: u32) -> Result<FuncRef, WasmError> {
        if let Some(&f) = self.callees.get(&index) {
            return Ok(f);
        }
        let sig = signature(&self.module.funcs[index as usize].ty)?;
        let f = self.func_ref(func_name(index), sig);
        self.callees.insert(index, f);
        Ok(f)
    }

    fn call(&mut self, index: u32) -> Result<(), WasmError> {
        let callee = self.callee(index)?;
        let n = self.module.funcs[index as usize].ty.params().len();
        let mut args = vec![self.vmctx];
        args.extend(self.popn(n));
        let call = self.b.ins().call(callee, &args);
        let results = self.b.func.dfg.inst_results(call).to_vec();
        self.stack.extend(results);
        Ok(())
    }

    /// `call_indirect`: the slot is a bounds-checked load from the table, then a
    /// `br_table` on the reference dispatches to a direct call of each of the instance's
    /// functions a reference can name ([`Module::referenced`]) that has the expected type,
    /// with a trap for functions of another type. Any other reference (null, or another
    /// instance's function in a table they share) is called through the host, which traps
    /// for null and for another type.
    fn call_indirect(&mut self, type_index: u32, table: u32) -> Result<(), WasmError> {
        let Some(Some(ty)) = self.module.types.get(type_index as usize).cloned() else {
            return Err(WasmError::unsupported(
                "call_indirect with a non-function type",
            ));
        };
        if self.module.tables[table as usize].ty.table64 {
            return Err(WasmError::unsupported("64-bit tables"));
        }
        let index = self.pop();
        let mut args = vec![self.vmctx];
        args.extend(self.popn(ty.params().len()));
        let side = self.table_side(table, index);
        let zero = self.b.ins().iconst(types::I32, 0.into());
        let slot = self.ref_load(&side, zero);
        // The instance's own function `f` is `base + f + 1`, so `slot - base` is 1..=top
        // for every function it can name. Anything else becomes 0, the target that goes
        // through the host; only then is the index narrowed.
        let base = self.vmctx_load(types::I64, self.layout.func_refs(), true);
        let own = self.b.ins().isub(slot, base);
        let referenced = &self.module.referenced;
        let top = referenced.last().map_or(0, |&f| f + 1);
        let past = self.b.ins().iconst(types::I64, i64::from(top).into());
        let other = self.b.ins().icmp(IntCC::UnsignedGreaterThan, own, past);
        let zero64 = self.b.ins().iconst(types::I64, 0.into());
        let own = self.b.ins().select(other, zero64, own);
        let own = self.b.ins().ireduce(types::I32, own);

        let results: Vec<Type> = ty
            .results()
            .iter()
            .map(|&r| clif_type(r))
            .collect::<Result<_, _>>()?;
        let merge = self.block_with_params(&results);
        let host_block = self.b.create_block();
        let sig_block = self.b.create_block();
        let mut targets = vec![BlockCall::new(host_block, vec![])];
        let mut calls = Vec::new();
        for f in 0..top {
            let matches = referenced.contains(&f) && self.module.funcs[f as usize].ty == ty;
            if matches {
                let block = self.b.create_block();
                calls.push((f, block));
                targets.push(BlockCall::new(block, vec![]));
            } else {
                targets.push(BlockCall::new(sig_block, vec![]));
            }
        }
        self.b.ins().br_table(
            own,
            JumpTable {
                default: BlockCall::new(host_block, vec![]),
                targets,
            },
        );
        for b in [host_block, sig_block] {
            self.b.seal_block(b);
        }
        self.b.switch_to_block(sig_block);
        self.b.ins().trap(traps::BAD_SIGNATURE);
        self.b.switch_to_block(host_block);
        let ty_index = self
            .b
            .ins()
            .iconst(types::I32, i64::from(type_index).into());
        let rets = self.call_through_host(CALL_REF, &[ty_index, slot], &args[1..], &results);
        self.b.ins().jump(BlockCall::new(merge, rets));
        for (f, block) in calls {
            self.b.seal_block(block);
            self.b.switch_to_block(block);
            let callee = self.callee(f)?;
            let call = self.b.ins().call(callee, &args);
            let rets = self.b.func.dfg.inst_results(call).to_vec();
            self.b.ins().jump(BlockCall::new(merge, rets));
        }
        self.b.seal_block(merge);
        self.b.switch_to_block(merge);
        let params = self.b.block_params(merge).to_vec();
        self.stack.extend(params);
        Ok(())
    }
}

/// `i32.atomic.load` style names from wasmparser's operator names, for error messages.
fn operator_name(op: &Operator) -> String {
    let debug = format!("{op:?}");
    let name = debug
        .split([' ', '{', '('])
        .next()
        .unwrap_or("?")
        .to_string();
    format!("the `{name}` instruction")
}
