//! What every backend's ISLE context has in common: the Rust names the generated code uses
//! for the prelude's types, and the implementations of the prelude's terms. Backends expand
//! [`isle_prelude_types`] at module level and [`isle_prelude_methods`] inside their
//! `impl generated::Context`, as upstream Cranelift's backends do with their own prelude
//! macros. The context must have a `lower: &mut Lower` field and `put_value`/`ty` methods.

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
    };
}
