//! Read-modify-write fusion: a bounds-checked load, an ALU operation on its value and a
//! bounds-checked store of the result at the same place in one run become one x86
//! instruction after the run's check.

use super::*;

/// A load, an operation on its value and a store of the result at the same place, which
/// one x86 instruction (`addl %r, disp(base)`) can do: see [`IsleContext::read_modify_write`].
pub(super) struct Rmw {
    pub(super) load: Inst,
    pub(super) op_inst: Inst,
    pub(super) op: AluOp,
    /// The operation's other operand.
    pub(super) other: Value,
}

impl IsleContext<'_, '_> {
    /// The read-modify-write that `inst` (the load or the store) is part of, if any: a
    /// bounds-checked i32/i64 load whose only use is an `iadd`/`isub`/`band`/`bor`/`bxor`
    /// (the load's value first for `isub`) deferred to its only use, a bounds-checked store
    /// of that result, and both accesses of one run (`plan::share`: same memory, base,
    /// bound, index and trap code, nothing observable in between) at the same offset, width
    /// and byte order. Then the load is not made on its own: the store reads, operates and
    /// writes in one instruction, after the run's check, and traps where the load would have.
    pub(super) fn read_modify_write(&self, inst: Inst) -> Option<Rmw> {
        let func = self.lower.func;
        let dfg = &func.dfg;
        let c = Access::of(func, inst)?;
        if c.store_value.is_some() {
            return self.rmw_of_store(inst);
        }
        // A load: the read-modify-write of the store its value reaches, if that one is
        // made with this load. The store must be in the load's run, so a load in no run
        // (most of them) is not looked at further.
        if !self.lower.in_run(inst) {
            return None;
        }
        let op_inst = self.only_user(dfg.first_result(inst))?;
        let [r] = dfg.inst_results(op_inst) else {
            return None;
        };
        let store = self.only_user(*r)?;
        self.rmw_of_store(store).filter(|rmw| rmw.load == inst)
    }

    /// The read-modify-write a store is the end of: its value is an operation on the value
    /// of a matching load (the first operand that is one).
    pub(super) fn rmw_of_store(&self, store: Inst) -> Option<Rmw> {
        let func = self.lower.func;
        let dfg = &func.dfg;
        let s = Access::of(func, store)?;
        let op_inst = self.lower.def_inst(s.store_value?)?;
        if !self.lower.is_deferred(op_inst) || self.lower.use_count(dfg.first_result(op_inst)) != 1
        {
            return None;
        }
        let op = match dfg.opcode(op_inst) {
            Opcode::Iadd => AluOp::Add,
            Opcode::Isub => AluOp::Sub,
            Opcode::Band => AluOp::And,
            Opcode::Bor => AluOp::Or,
            Opcode::Bxor => AluOp::Xor,
            _ => return None,
        };
        let [a, b] = dfg.insts[op_inst].arguments()[..] else {
            return None;
        };
        // `isub` only reads the load as its first operand.
        let candidates: &[(Value, Value)] = if op == AluOp::Sub {
            &[(a, b)]
        } else {
            &[(a, b), (b, a)]
        };
        let leader = |i| self.lower.run_leader(i).unwrap_or(i);
        candidates.iter().find_map(|&(loaded, other)| {
            let load = self.lower.def_inst(loaded)?;
            let l = Access::of(func, load)?;
            // (Both are in one run, so both name their trap code: equal `trap`s are equal
            // flags.)
            let same_place = l.store_value.is_none()
                && (l.memory, l.base, l.bound, l.index, l.offset)
                    == (s.memory, s.base, s.bound, s.index, s.offset)
                && l.kind == AccessKind::Full
                && s.kind == AccessKind::Full
                && l.ty == s.ty
                && (l.ty == I32 || l.ty == I64)
                && !l.big_endian
                && !s.big_endian
                && l.trap == s.trap;
            // One run: nothing observable between the read and the write.
            let one_run = self.lower.run_leader(store).is_some() && leader(store) == leader(load);
            (same_place && one_run && loaded != other && self.lower.use_count(loaded) == 1)
                .then_some(Rmw {
                    load,
                    op_inst,
                    op,
                    other,
                })
        })
    }

    /// The instruction of the current block using `v`, when `v` has one use there.
    pub(super) fn only_user(&self, v: Value) -> Option<Inst> {
        if self.lower.use_count(v) != 1 {
            return None;
        }
        let func = self.lower.func;
        let block = func.layout.inst_block(match func.dfg.value_def(v) {
            ValueDef::Result(i, _) => i,
            _ => return None,
        })?;
        func.layout
            .block_insts(block)
            .iter()
            .copied()
            .find(|&i| func.dfg.insts[i].arguments().contains(&v))
    }
}
