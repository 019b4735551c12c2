//! What every backend's ISLE context has in common: the context itself ([`IsleContext`],
//! whose backend-specific constructors each backend adds in its `lower.rs`), the Rust names
//! the generated code uses for the prelude's types, and the implementations of the prelude's
//! terms. Backends expand [`isle_prelude_types`] at module level and [`isle_prelude_methods`]
//! inside their `impl generated::Context`, as upstream Cranelift's backends do with their own
//! prelude macros.

use super::lower::{Backend, Lower};
use super::{CodegenError, RegClass, VReg};
use crate::ir::{Inst, InstructionData, Type, Value};

/// The state the ISLE rules of backend `B` run in while lowering one instruction.
pub struct IsleContext<'a, 'f, B: Backend> {
    /// The function's lowering state.
    pub lower: &'a mut Lower<'f, B::MInst>,
    /// The backend and its settings.
    pub backend: &'a B,
    /// The first error a constructor recorded (rules cannot return errors).
    pub error: Option<CodegenError>,
}

impl<'a, 'f, B: Backend> IsleContext<'a, 'f, B> {
    /// A context for lowering one instruction.
    pub fn new(lower: &'a mut Lower<'f, B::MInst>, backend: &'a B) -> Self {
        IsleContext {
            lower,
            backend,
            error: None,
        }
    }
    /// The registers of the lowered instruction, or the error a constructor recorded, or "no
    /// lowering" (see [`super::lower::lowering_result`]).
    pub fn finish(self, inst: Inst, out: Option<Vec<VReg>>) -> Result<Vec<VReg>, CodegenError> {
        super::lower::lowering_result(self.lower.func, inst, B::NAME, out, self.error)
    }
    /// The target's name, for messages.
    pub fn target_name(&self) -> &'static str {
        B::NAME
    }
    /// The bounds-checked access `inst`, as backends render it.
    pub fn access(&self, inst: Inst) -> super::access::Access {
        super::access::Access::of(self.lower.func, inst)
            .expect("a rule for bounds-checked accesses matched")
    }
    /// The register holding an access's `base`.
    pub fn access_base(&mut self, a: &super::access::Access) -> VReg {
        self.put_value(a.base)
    }
    /// For an access its run's check covers (`crate::plan::Form::Covered`): the access (its
    /// base made, as for every form) and the address `leader` recorded for the run.
    pub fn covered_access(&mut self, inst: Inst, leader: Inst) -> (super::access::Access, VReg) {
        let a = self.access(inst);
        self.access_base(&a);
        let addr = self
            .lower
            .checked_by(leader)
            .expect("a covered access follows its leader's check");
        (a, addr)
    }
    /// The register holding an access's `bound`.
    pub fn access_bound(&mut self, a: &super::access::Access) -> VReg {
        self.put_value(a.bound)
    }
    /// `make()`, a value derived from IR value `v` alone, made once where `v` is defined
    /// (see [`Lower::derive`]).
    pub fn derived(
        &mut self,
        v: Value,
        key: super::lower::Derived,
        make: impl FnOnce(&mut Self) -> VReg,
    ) -> VReg {
        match self.lower.derive(v, key) {
            Ok(r) => r,
            Err(d) => {
                let r = make(self);
                self.lower.derived(d, r)
            }
        }
    }
    /// Records `e` (the first one counts) for [`IsleContext::finish`].
    pub fn fail(&mut self, e: CodegenError) {
        self.error.get_or_insert(e);
    }
    /// A fresh virtual register.
    pub fn vreg(&mut self, class: RegClass) -> VReg {
        self.lower.alloc_vreg(class)
    }
    /// Appends a machine instruction.
    pub fn emit(&mut self, i: B::MInst) {
        self.lower.emit(i)
    }
    /// The IR instruction's data.
    pub fn data(&self, inst: Inst) -> &InstructionData {
        &self.lower.func.dfg.insts[inst]
    }
    /// The type of an IR value.
    pub fn ty(&self, v: Value) -> Type {
        self.lower.func.dfg.value_type(v)
    }
    /// The register holding `v` (lowering its deferred definition here if needed); on an
    /// internal error, records it and returns a placeholder.
    pub fn put_value(&mut self, v: Value) -> VReg {
        let backend = self.backend;
        match self.lower.put(backend, v) {
            Ok(r) => r,
            Err(e) => {
                self.fail(e);
                VReg::new(0, RegClass::Int)
            }
        }
    }
}

/// The types the generated lowering code names, and the type constants of the prelude.
#[macro_export]
#[doc(hidden)]
macro_rules! isle_prelude_types {
    () => {
        type Reg = $crate::machinst::VReg;
        type InstOutput = Vec<$crate::machinst::VReg>;
        type Unit = ();
        type ValueList = $crate::ir::ValueListRef;
        type ValueSlice = $crate::ir::ValueListRef;
        type ValueArray2 = [$crate::ir::Value; 2];
        type ValueArray3 = [$crate::ir::Value; 3];
        type ValueArray4 = [$crate::ir::Value; 4];
        #[allow(dead_code)]
        type BlockCall = $crate::ir::BlockCallRef;
        #[allow(dead_code)]
        type JumpTable = $crate::ir::JumpTableRef;
        use $crate::ir::InstructionDataView as InstructionData_;
        use $crate::ir::{FloatCC, IntCC};
        #[allow(unused_imports)]
        use $crate::plan::{BoundLoad, Compare, ExplicitCheck, Form};
        const I8: $crate::ir::Type = $crate::ir::types::I8;
        const I16: $crate::ir::Type = $crate::ir::types::I16;
        const I32: $crate::ir::Type = $crate::ir::types::I32;
        const I64: $crate::ir::Type = $crate::ir::types::I64;
        const F32: $crate::ir::Type = $crate::ir::types::F32;
        const F64: $crate::ir::Type = $crate::ir::types::F64;
    };
}

/// The implementations of the prelude's terms (`src/machinst/prelude.isle`).
#[macro_export]
#[doc(hidden)]
macro_rules! isle_prelude_methods {
    () => {
        fn inst_data_value(
            &mut self,
            inst: $crate::ir::Inst,
        ) -> Option<($crate::ir::Type, $crate::ir::InstructionDataView)> {
            let dfg = &self.lower.func.dfg;
            Some((
                dfg.ctrl_type(inst),
                $crate::ir::InstructionDataView::of(inst, &dfg.insts[inst]),
            ))
        }
        fn unpack_value_array_2(
            &mut self,
            a: [$crate::ir::Value; 2],
        ) -> Option<($crate::ir::Value, $crate::ir::Value)> {
            Some((a[0], a[1]))
        }
        fn unpack_value_array_3(
            &mut self,
            a: [$crate::ir::Value; 3],
        ) -> Option<($crate::ir::Value, $crate::ir::Value, $crate::ir::Value)> {
            Some((a[0], a[1], a[2]))
        }
        fn unpack_value_array_4(
            &mut self,
            a: [$crate::ir::Value; 4],
        ) -> Option<(
            $crate::ir::Value,
            $crate::ir::Value,
            $crate::ir::Value,
            $crate::ir::Value,
        )> {
            Some((a[0], a[1], a[2], a[3]))
        }
        fn value_list_slice(
            &mut self,
            l: $crate::ir::ValueListRef,
        ) -> Option<$crate::ir::ValueListRef> {
            Some(l)
        }
        fn put(&mut self, v: $crate::ir::Value) -> $crate::machinst::VReg {
            self.put_value(v)
        }
        fn output(&mut self, r: $crate::machinst::VReg) -> Vec<$crate::machinst::VReg> {
            vec![r]
        }
        fn output_none(&mut self) -> Vec<$crate::machinst::VReg> {
            Vec::new()
        }
        fn ty_32(&mut self, ty: $crate::ir::Type) -> Option<$crate::ir::Type> {
            use $crate::ir::types;
            (ty == types::I8 || ty == types::I16 || ty == types::I32).then_some(ty)
        }
        fn value_type(&mut self, v: $crate::ir::Value) -> $crate::ir::Type {
            self.ty(v)
        }
        fn u64_from_imm64(&mut self, imm: $crate::ir::Imm64) -> Option<u64> {
            Some(imm.0 as u64)
        }
        fn val_ty(&mut self, v: $crate::ir::Value) -> Option<$crate::ir::Type> {
            Some(self.ty(v))
        }
        fn plan_form(&mut self, inst: $crate::ir::Inst) -> $crate::plan::Form {
            self.lower.plan(inst).form()
        }
        fn unsupported_plan(&mut self, inst: $crate::ir::Inst) -> Vec<$crate::machinst::VReg> {
            let form = self.lower.plan(inst).form();
            self.fail($crate::machinst::CodegenError::new(format!(
                "{}: no rendering of the plan {form:?}",
                self.target_name()
            )));
            Vec::new()
        }
    };
}
