//! Integer arithmetic with immediates and fused multiply-add: the constructors of
//! `lower.isle` that choose Pulley's immediate and fused forms.

use super::*;

impl IsleContext<'_, '_> {
    pub(super) fn lower_imm_of(&mut self, ty: Type, op: &ImmOp, v: Value) -> Option<i64> {
        let k = self.lower.iconst(v)?;
        let wide = if ty == I64 {
            true
        } else if ty == I32 {
            false
        } else {
            return None;
        };
        // The constant as the operation sees it: the low 32 bits for 32-bit operations.
        let k = if wide { k } else { k & 0xffff_ffff };
        match op {
            ImmOp::Add | ImmOp::Sub => u32::try_from(k).ok().map(i64::from),
            ImmOp::Shl | ImmOp::ShrU | ImmOp::ShrS => Some((k & if wide { 63 } else { 31 }) as i64),
            // Sign-extended 32-bit immediates: any 32-bit constant, or a 64-bit one in range.
            _ if !wide => Some(i64::from(k as u32 as i32)),
            _ => i32::try_from(k as i64).ok().map(i64::from),
        }
    }

    pub(super) fn lower_mul_add(
        &mut self,
        ty: Type,
        product: Value,
        addend: Value,
    ) -> Option<VReg> {
        if ty != I32 && ty != I64 {
            return None;
        }
        let m = self.lower.def_inst(product)?;
        if !self.lower.is_deferred(m) || self.lower.func.dfg.opcode(m) != Opcode::Imul {
            return None;
        }
        let [a, b] = self.lower.func.dfg.insts[m].arguments()[..] else {
            return None;
        };
        // With a constant operand, the immediate forms of multiply (or shift) and add are
        // smaller than materialising the constant for the multiply-add.
        if [a, b, addend]
            .iter()
            .any(|&v| self.lower.iconst(v).is_some())
        {
            return None;
        }
        self.lower.sink(m);
        let (a, b, c) = (self.put_value(a), self.put_value(b), self.put_value(addend));
        let dst = self.vreg(RegClass::Int);
        self.emit(MInst::MulAdd {
            wide: ty == I64,
            dst,
            a,
            b,
            c,
        });
        Some(dst)
    }

    pub(super) fn lower_pow2_of(&mut self, ty: Type, v: Value) -> Option<i64> {
        let k = self.lower.iconst(v)?;
        let k = match ty {
            t if t == I64 => k,
            t if t == I32 => k & 0xffff_ffff,
            _ => return None,
        };
        k.is_power_of_two().then(|| i64::from(k.trailing_zeros()))
    }

    pub(super) fn lower_bin_imm(&mut self, ty: Type, op: &ImmOp, a: VReg, imm: i64) -> VReg {
        let dst = self.vreg(RegClass::Int);
        self.emit(MInst::BinImm {
            op: *op,
            wide: ty == I64,
            dst,
            a,
            imm,
        });
        dst
    }
}
