//! The IR verifier.
//!
//! Checks, in this order: memory declarations; block structure (every block ends in exactly
//! one terminator); branch targets and their arguments; SSA (every use is defined and
//! dominated by its definition); the type constraints generated from `meta/`; per-opcode rules
//! (extension widths, call and return signatures); and the bounds-checked accesses' own rules.
//! All errors are collected, each with the span of the offending entity. Dominance comes
//! from `crate::cfg`, the same dominator tree the mid-end uses.
//!
//! (Named `ir_verifier` so that it is never confused with the top-level `verifier/` crate,
//! the proof-carrying-code kernel, which checks machine code rather than the IR.)

use crate::diagnostics::Diagnostic;
use crate::ir::*;
use crate::printer::inst_to_string;
use crate::semantics::Extension;
use cranelift_entity::SecondaryMap;

/// Verifies `func` for a target whose pointers have type `pointer` (`i64` or `i32`).
pub fn verify_function(func: &Function, pointer: Type) -> Result<(), Vec<Diagnostic>> {
    let mut v = Verifier {
        func,
        pointer,
        errors: Vec::new(),
    };
    v.memories();
    if v.structure() {
        v.instructions();
    }
    if v.errors.is_empty() {
        Ok(())
    } else {
        Err(v.errors)
    }
}

struct Verifier<'a> {
    func: &'a Function,
    pointer: Type,
    errors: Vec<Diagnostic>,
}

impl Verifier<'_> {
    fn at_inst(&mut self, inst: Inst, msg: impl Into<String>) {
        let text = inst_to_string(self.func, inst);
        self.errors.push(Diagnostic::new(
            self.func.srcmap.insts[inst],
            format!("`{text}`: {}", msg.into()),
        ));
    }

    fn at_block(&mut self, block: Block, msg: impl Into<String>) {
        self.errors.push(Diagnostic::new(
            self.func.srcmap.blocks[block],
            format!("{block}: {}", msg.into()),
        ));
    }

    fn memories(&mut self) {
        if let Some(size) = self.func.vmctx_struct {
            let span = self.func.srcmap.vmctx_struct;
            if !self.func.signature.params.iter().any(|p| p.vmctx) {
                self.errors.push(Diagnostic::new(
                    span,
                    "mt0 describes the `vmctx` parameter, and the signature has none",
                ));
            }
            if size == 0 {
                self.errors.push(Diagnostic::new(
                    span,
                    "mt0: a struct of 0 bytes has no fields",
                ));
            }
        }
        let ptr_max: u128 = (1u128 << self.pointer.bits()) - 1;
        for (m, mem) in self.func.memories.iter() {
            let span = self.func.srcmap.memories[m];
            let mut err = |msg: String| {
                self.errors
                    .push(Diagnostic::new(span, format!("{m}: {msg}")))
            };
            let index_limit: u128 = if mem.index_type == types::I32 {
                1 << 32
            } else {
                1 << 64
            };
            if let Some(max) = mem.max {
                if mem.min > max {
                    err(format!("min {:#x} is larger than max {max:#x}", mem.min));
                }
                if u128::from(max) > index_limit {
                    err(format!(
                        "max {max:#x} exceeds what an {} index can address (0x1_0000_0000 bytes)",
                        mem.index_type
                    ));
                }
            }
            if u128::from(mem.min) > index_limit.min(ptr_max) {
                err(format!(
                    "min {:#x} exceeds the largest bound a {}-bit pointer or {} index allows",
                    mem.min,
                    self.pointer.bits(),
                    mem.index_type
                ));
            }
            match mem.reservation {
                Some(r) => {
                    match mem.max {
                        Some(max) if max <= r => {}
                        Some(max) => err(format!(
                            "max {max:#x} is larger than the reservation {r:#x}: a memory cannot grow beyond its fixed reservation"
                        )),
                        None => err(format!(
                            "a memory with a reservation needs a max no larger than it ({r:#x})"
                        )),
                    }
                    if u128::from(r) + u128::from(mem.guard) > ptr_max + 1 {
                        err(format!(
                            "reservation {r:#x} plus guard {:#x} exceeds the {}-bit address space",
                            mem.guard,
                            self.pointer.bits()
                        ));
                    }
                }
                None => {
                    if mem.max_bound(self.pointer) + u128::from(mem.guard) > ptr_max + 1 {
                        err(format!(
                            "the largest bound plus guard {:#x} exceeds the {}-bit address space; declare a smaller max or guard",
                            mem.guard,
                            self.pointer.bits()
                        ));
                    }
                }
            }
        }
    }

    /// Block structure and branch targets; `false` if too broken to go on.
    fn structure(&mut self) -> bool {
        let func = self.func;
        let Some(entry) = func.layout.entry_block() else {
            self.errors.push(Diagnostic::new(
                func.srcmap.function,
                "function has no blocks",
            ));
            return false;
        };
        let params: Vec<Type> = func
            .dfg
            .block_params(entry)
            .iter()
            .map(|&v| func.dfg.value_type(v))
            .collect();
        let sig: Vec<Type> = func.signature.params.iter().map(|p| p.value_type).collect();
        if params != sig {
            self.at_block(
                entry,
                format!(
                    "entry block parameters ({}) must match the signature's parameters ({})",
                    Type::list(&params),
                    Type::list(&sig)
                ),
            );
        }
        let mut ok = true;
        for &block in func.layout.blocks() {
            let insts = func.layout.block_insts(block);
            let Some(&last) = insts.last() else {
                self.at_block(block, "block is empty; it must end with a terminator");
                ok = false;
                continue;
            };
            if !func.dfg.opcode(last).is_terminator() {
                self.at_inst(last, "the last instruction of a block must be a terminator (jump, brif, return, trap)");
                ok = false;
            }
            for &inst in &insts[..insts.len() - 1] {
                if func.dfg.opcode(inst).is_terminator() {
                    self.at_inst(
                        inst,
                        "a terminator must be the last instruction of its block",
                    );
                    ok = false;
                }
            }
            for call in func.dfg.insts[last].branch_destinations() {
                let target = call.block;
                if !func.layout.is_block_inserted(target) {
                    self.at_inst(
                        last,
                        format!("branch to {target}, which is not in the function"),
                    );
                    ok = false;
                    continue;
                }
                if target == entry {
                    self.at_inst(last, format!("branch to the entry block {entry}"));
                }
                let want = func.dfg.block_params(target);
                if want.len() != call.args.len() {
                    self.at_inst(
                        last,
                        format!(
                            "{target} takes {} argument{}, but {} {} passed",
                            want.len(),
                            if want.len() == 1 { "" } else { "s" },
                            call.args.len(),
                            if call.args.len() == 1 { "is" } else { "are" }
                        ),
                    );
                    continue;
                }
                for (i, (&a, &p)) in call.args.iter().zip(want).enumerate() {
                    let (ta, tp) = (func.dfg.value_type(a), func.dfg.value_type(p));
                    if ta != tp {
                        self.at_inst(
                            last,
                            format!("argument {i} to {target} is {a} of type {ta}, but parameter {p} has type {tp}"),
                        );
                    }
                }
            }
        }
        ok
    }

    fn instructions(&mut self) {
        let func = self.func;
        let dom = crate::cfg::DomTree::new(func);
        let mut position: SecondaryMap<Inst, u32> = SecondaryMap::new();
        for &b in func.layout.blocks() {
            for (i, &inst) in func.layout.block_insts(b).iter().enumerate() {
                position[inst] = i as u32;
            }
        }
        for &block in func.layout.blocks() {
            for &inst in func.layout.block_insts(block) {
                let data = &func.dfg.insts[inst];
                let mut uses: Vec<Value> = data.arguments().to_vec();
                for call in data.branch_destinations() {
                    uses.extend(&call.args);
                }
                for v in uses {
                    let def_ok = match func.dfg.value_def(v) {
                        ValueDef::Unused => {
                            self.at_inst(inst, format!("use of undefined value {v}"));
                            continue;
                        }
                        ValueDef::Param(b, _) => {
                            dom.block_dominates(b, block) || !dom.reachable(block)
                        }
                        ValueDef::Result(d, _) => match func.layout.inst_block(d) {
                            None => false,
                            Some(db) if db == block => position[d] < position[inst],
                            Some(db) => dom.block_dominates(db, block) || !dom.reachable(block),
                        },
                    };
                    if !def_ok {
                        self.at_inst(
                            inst,
                            format!("use of {v}, whose definition does not dominate this use"),
                        );
                    }
                }
                // Opcode rules assume well-typed operands; after a type error they would only
                // repeat it in other words.
                if self.types(inst) {
                    self.opcode_rules(inst);
                }
            }
        }
    }

    /// Checks the type constraints of `inst`; `false` if any failed (reported once).
    fn types(&mut self, inst: Inst) -> bool {
        let func = self.func;
        let data = &func.dfg.insts[inst];
        let opcode = data.opcode();
        let c = opcode.constraints();
        let args = data.arguments();
        let ctrl = func.dfg.ctrl_type(inst);
        match c.ctrl {
            CtrlConstraint::None => {}
            CtrlConstraint::Explicit(set) => {
                if !set.contains(ctrl) {
                    self.at_inst(
                        inst,
                        format!("`{opcode}` is not defined for {ctrl}; its type must be {set}"),
                    );
                    return false;
                }
            }
            CtrlConstraint::FromOperand(n, set) => {
                if !set.contains(ctrl) {
                    self.at_inst(
                        inst,
                        format!("`{opcode}` is not defined for {ctrl}; operand {n} must be {set}"),
                    );
                    return false;
                }
            }
        }
        if c.variable_results {
            return true;
        }
        for (i, (&a, oc)) in args.iter().zip(c.operands).enumerate() {
            let t = func.dfg.value_type(a);
            let (ok, want) = match *oc {
                OperandConstraint::Ctrl => (t == ctrl, ctrl.to_string()),
                OperandConstraint::Free(set) => (set.contains(t), set.to_string()),
                OperandConstraint::Pointer => (
                    t == self.pointer,
                    format!("the pointer type {}", self.pointer),
                ),
            };
            if !ok {
                self.at_inst(
                    inst,
                    format!("operand {i} ({a}) has type {t}, but must be {want}"),
                );
                return false;
            }
        }
        true
    }

    fn opcode_rules(&mut self, inst: Inst) {
        let func = self.func;
        let dfg = &func.dfg;
        let data = &dfg.insts[inst];
        let opcode = data.opcode();
        let ctrl = dfg.ctrl_type(inst);
        let arg_ty = |i: usize| dfg.value_type(data.arguments()[i]);
        use Opcode::*;
        match opcode {
            Uextend | Sextend if arg_ty(0).bits() >= ctrl.bits() => self.at_inst(
                inst,
                format!(
                    "`{opcode}` must widen: {} to {ctrl} is not wider",
                    arg_ty(0)
                ),
            ),
            Ireduce if arg_ty(0).bits() <= ctrl.bits() => self.at_inst(
                inst,
                format!(
                    "`ireduce` must narrow: {} to {ctrl} is not narrower",
                    arg_ty(0)
                ),
            ),
            Bitcast if arg_ty(0).bits() != ctrl.bits() => self.at_inst(
                inst,
                format!("`bitcast` keeps the width: {} and {ctrl} differ", arg_ty(0)),
            ),
            Bswap if ctrl == types::I8 => {
                self.at_inst(inst, "`bswap` needs at least two bytes: i16, i32 or i64")
            }
            Fpromote if !(arg_ty(0) == types::F32 && ctrl == types::F64) => {
                self.at_inst(inst, "`fpromote` converts f32 to f64")
            }
            Fdemote if !(arg_ty(0) == types::F64 && ctrl == types::F32) => {
                self.at_inst(inst, "`fdemote` converts f64 to f32")
            }
            // uload32/sload32 always produce i64, so they need no check here.
            Uload8 | Sload8 | Uload16 | Sload16 | Istore8 | Istore16 | Istore32 => {
                let bits = match opcode {
                    Uload8 | Sload8 | Istore8 => 8,
                    Uload16 | Sload16 | Istore16 => 16,
                    _ => 32,
                };
                if ctrl.bits() <= bits {
                    self.at_inst(
                        inst,
                        format!("`{opcode}` accesses {bits} bits, so its type must be wider than {ctrl}"),
                    );
                }
            }
            Return => {
                let want: Vec<Type> = func
                    .signature
                    .returns
                    .iter()
                    .map(|p| p.value_type)
                    .collect();
                let got: Vec<Type> = data
                    .arguments()
                    .iter()
                    .map(|&v| dfg.value_type(v))
                    .collect();
                if want != got {
                    self.at_inst(
                        inst,
                        format!(
                            "returns ({}) but the signature returns ({})",
                            Type::list(&got),
                            Type::list(&want)
                        ),
                    );
                }
            }
            Call => {
                if let InstructionData::Call { func_ref, args, .. } = data {
                    let sig = &dfg.signatures[dfg.ext_funcs[*func_ref].signature];
                    let want: Vec<Type> = sig.params.iter().map(|p| p.value_type).collect();
                    let got: Vec<Type> = args.iter().map(|&v| dfg.value_type(v)).collect();
                    if want != got {
                        self.at_inst(
                            inst,
                            format!(
                                "passes ({}) but {func_ref} takes ({})",
                                Type::list(&got),
                                Type::list(&want)
                            ),
                        );
                    }
                }
            }
            BoundsCheckedLoad | BoundsCheckedStore => self.bounds_checked(inst),
            _ => {}
        }
    }

    fn bounds_checked(&mut self, inst: Inst) {
        let func = self.func;
        let dfg = &func.dfg;
        let Some(BoundsCheckedAccess {
            access,
            flags,
            memory,
            value,
            index,
            offset,
            ..
        }) = dfg.insts[inst].bounds_checked_access()
        else {
            return;
        };
        let is_store = value.is_some();
        let ty = dfg.ctrl_type(inst);
        let Some(mem) = func.memories.get(memory) else {
            self.at_inst(inst, format!("{memory} is not declared"));
            return;
        };
        let index_ty = dfg.value_type(index);
        if index_ty != mem.index_type {
            self.at_inst(
                inst,
                format!(
                    "index {index} has type {index_ty}, but {memory} is indexed by {}",
                    mem.index_type
                ),
            );
        }
        match (access.extension(), is_store) {
            (Extension::None, _) => {}
            (Extension::Zero | Extension::Sign, true) => self.at_inst(
                inst,
                format!(
                    "access kind `{access}` extends a load; a store that keeps only the low bytes is spelled `i{}`",
                    access.access_size(ty) * 8
                ),
            ),
            (Extension::Truncate, false) => self.at_inst(
                inst,
                format!(
                    "access kind `{access}` truncates a store; a narrow load is spelled `u{0}` or `s{0}`",
                    access.access_size(ty) * 8
                ),
            ),
            _ => {
                if !ty.is_int() || access.access_size(ty) >= ty.bytes() {
                    self.at_inst(
                        inst,
                        format!("access kind `{access}` must be narrower than the integer type, not {ty}"),
                    );
                }
            }
        }
        if flags.trap_code.is_none() {
            self.at_inst(
                inst,
                "`notrap` is not allowed: a bounds-checked access traps when out of bounds",
            );
        }
        let size = u64::from(access.access_size(ty));
        if crate::semantics::always_out_of_bounds(offset, size) {
            self.at_inst(
                inst,
                format!("offset {:#x} plus the access size {size} overflows 64 bits: every execution would trap", offset),
            );
        }
    }
}
