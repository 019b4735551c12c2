//! Integer and floating-point arithmetic, comparisons, conversions and division: the
//! constructors of `lower.isle` that compute values in registers.

use super::*;

impl IsleContext<'_, '_> {
    pub(super) fn lower_float_to_int(
        &mut self,
        ty: Type,
        x: Value,
        signed: bool,
        sat: bool,
    ) -> VReg {
        if ty != I32 && ty != I64 {
            self.fail(CodegenError::new(format!(
                "x86_64: float conversions to {ty} are not lowered"
            )));
            return self.placeholder();
        }
        let src = self.put_value(x);
        let (tmp_x, tmp_x2) = (self.vreg(RegClass::Float), self.vreg(RegClass::Float));
        let (tmp_g, dst) = (self.vreg(RegClass::Int), self.vreg(RegClass::Int));
        self.emit(MInst::FloatToInt {
            signed,
            sat,
            src_wide: self.ty(x) == F64,
            dst_wide: ty == I64,
            dst,
            src,
            tmp_x,
            tmp_x2,
            tmp_g,
        });
        dst
    }

    pub(super) fn lower_alu(&mut self, ty: Type, op: &AluOp, x: Value, y: Value) -> VReg {
        let size = int_size(ty);
        let commutes = *op != AluOp::Sub;
        let konst = |cx: &Self, v: Value| cx.lower.iconst(v).and_then(|k| imm32(k, size));
        let (x, y) = if commutes && konst(self, x).is_some() && konst(self, y).is_none() {
            (y, x)
        } else {
            (x, y)
        };
        // An identity (`x + 0`, `x * 1`, `x & -1`, ...) is `x` itself.
        if let Some(k) = self.lower.iconst(y) {
            let mask = if size == Size::Q {
                u64::MAX
            } else {
                0xffff_ffff
            };
            let k = k
                & mask
                & if ty.bits() < 32 {
                    (1 << ty.bits()) - 1
                } else {
                    u64::MAX
                };
            let ones = mask
                & if ty.bits() < 32 {
                    (1 << ty.bits()) - 1
                } else {
                    u64::MAX
                };
            let identity = match op {
                AluOp::Add | AluOp::Sub | AluOp::Or | AluOp::Xor => k == 0,
                AluOp::Mul => k == 1,
                AluOp::And => k == ones,
            };
            if identity {
                return self.put_value(x);
            }
        }
        if *op == AluOp::Mul {
            if let Some(k) = self.lower.iconst(y) {
                let k = if size == Size::Q { k } else { k & 0xffff_ffff };
                if k.is_power_of_two() {
                    let a = self.put_value(x);
                    let dst = self.vreg(RegClass::Int);
                    self.emit(MInst::Shift {
                        op: ShiftOp::Shl,
                        size,
                        dst,
                        a,
                        amount: Ok(k.trailing_zeros() as u8),
                    });
                    return dst;
                }
                if let Some(imm) = imm32(k, size) {
                    let a = self.put_value(x);
                    let dst = self.vreg(RegClass::Int);
                    self.emit(MInst::MulImm { size, dst, a, imm });
                    return dst;
                }
            }
        }
        let a = self.put_value(x);
        let b = self.rmi(y, size);
        self.alu_reg(*op, size, a, b)
    }

    pub(super) fn lower_shift(&mut self, ty: Type, op: &ShiftOp, x: Value, y: Value) -> VReg {
        let bits = ty.bits();
        // i8/i16 shifts operate on exactly their width so that the unspecified bits above
        // do not shift in; x86 masks register amounts to 5 bits there, CLIF to the width.
        let size = match bits {
            8 => Size::B,
            16 => Size::W,
            _ => int_size(ty),
        };
        let amount = match self.lower.iconst(y) {
            Some(k) => Ok((k % u64::from(bits)) as u8),
            None => {
                let r = self.put_value(y);
                if bits < 32 && !matches!(op, ShiftOp::Rotl | ShiftOp::Rotr) {
                    Err(self.alu_reg(AluOp::And, Size::L, r, Rmi::Imm(bits as i32 - 1)))
                } else {
                    Err(r)
                }
            }
        };
        let a = self.put_value(x);
        let dst = self.vreg(RegClass::Int);
        self.emit(MInst::Shift {
            op: *op,
            size,
            dst,
            a,
            amount,
        });
        dst
    }

    pub(super) fn lower_unary(&mut self, ty: Type, op: &UnaryOp, x: Value) -> VReg {
        let size = match (op, ty.bits()) {
            (UnaryOp::Bswap, 16) => Size::W,
            (UnaryOp::Bswap, 8) => {
                return self.put_value(x);
            }
            _ => int_size(ty),
        };
        let a = self.put_value(x);
        let dst = self.vreg(RegClass::Int);
        self.emit(MInst::Unary {
            op: *op,
            size,
            dst,
            a,
        });
        dst
    }

    pub(super) fn lower_count(&mut self, ty: Type, op: &CountOp, x: Value) -> VReg {
        if ty != I32 && ty != I64 {
            self.fail(CodegenError::new(format!(
                "x86_64: bit counts of {ty} are not lowered"
            )));
            return self.placeholder();
        }
        let src = self.put_value(x);
        let dst = self.vreg(RegClass::Int);
        self.emit(MInst::Count {
            op: *op,
            size: int_size(ty),
            dst,
            src,
        });
        dst
    }

    pub(super) fn lower_fcmp_set(&mut self, cc: &FloatCC, x: Value, y: Value) -> VReg {
        use FloatCC::*;
        if !matches!(
            cc,
            Equal | NotEqual | LessThan | LessThanOrEqual | GreaterThan | GreaterThanOrEqual
        ) {
            self.fail(CodegenError::new(format!(
                "x86_64: fcmp {cc} is not lowered (Wasm uses eq, ne, lt, le, gt, ge)"
            )));
            return self.placeholder();
        }
        let (a, b) = (self.put_value(x), self.put_value(y));
        let (dst, tmp) = (self.vreg(RegClass::Int), self.vreg(RegClass::Int));
        self.emit(MInst::FCmp {
            cond: *cc,
            wide: self.ty(x) == F64,
            dst,
            a,
            b,
            tmp,
        });
        dst
    }

    pub(super) fn lower_divide(
        &mut self,
        ty: Type,
        signed: bool,
        rem: bool,
        x: Value,
        y: Value,
    ) -> VReg {
        if ty != I32 && ty != I64 {
            self.fail(CodegenError::new(format!(
                "x86_64: division of {ty} is not lowered"
            )));
            return self.placeholder();
        }
        let size = int_size(ty);
        let a = self.put_value(x);
        let b = self.put_value(y);
        let hi = if signed {
            let dst = self.vreg(RegClass::Int);
            self.emit(MInst::SignHi { size, dst, src: a });
            dst
        } else {
            self.const_reg(Size::L, 0)
        };
        let (quot, r) = (self.vreg(RegClass::Int), self.vreg(RegClass::Int));
        self.emit(MInst::Div {
            signed,
            rem_wanted: rem,
            size,
            a,
            hi,
            b,
            quot,
            rem: r,
        });
        if rem {
            r
        } else {
            quot
        }
    }

    pub(super) fn lower_add_overflow_trap(
        &mut self,
        ty: Type,
        x: Value,
        y: Value,
        code: TrapCode,
    ) -> VReg {
        let size = int_size(ty);
        let a = self.put_value(x);
        let b = self.rmi(y, size);
        let dst = self.vreg(RegClass::Int);
        self.emit(MInst::AddTrap {
            size,
            dst,
            a,
            b,
            code,
        });
        dst
    }

    pub(super) fn lower_falu(&mut self, ty: Type, op: &FAluOp, x: Value, y: Value) -> VReg {
        let (a, b) = (self.put_value(x), self.put_value(y));
        let dst = self.vreg(RegClass::Float);
        self.emit(MInst::FAlu {
            op: *op,
            wide: ty == F64,
            dst,
            a,
            b,
        });
        dst
    }

    pub(super) fn lower_fsign(&mut self, ty: Type, op: u8, x: Value, y: Value) -> VReg {
        let wide = ty == F64;
        let (size, sign) = if wide {
            (Size::Q, 1u64 << 63)
        } else {
            (Size::L, 1u64 << 31)
        };
        let to_int = |cx: &mut Self, v: Value| {
            let src = cx.put_value(v);
            let dst = cx.vreg(RegClass::Int);
            cx.emit(MInst::Bitcast { wide, dst, src });
            dst
        };
        let bits = to_int(self, x);
        let mask = self.const_reg(size, sign);
        let out = match op {
            // fabs: clear the sign.
            0 => {
                let m = self.const_reg(size, !sign & if wide { u64::MAX } else { 0xffff_ffff });
                self.alu_reg(AluOp::And, size, bits, Rmi::Reg(m))
            }
            // fneg: flip it.
            1 => self.alu_reg(AluOp::Xor, size, bits, Rmi::Reg(mask)),
            // fcopysign: |x| | (y & sign).
            _ => {
                let m = self.const_reg(size, !sign & if wide { u64::MAX } else { 0xffff_ffff });
                let mag = self.alu_reg(AluOp::And, size, bits, Rmi::Reg(m));
                let ybits = to_int(self, y);
                let s = self.alu_reg(AluOp::And, size, ybits, Rmi::Reg(mask));
                self.alu_reg(AluOp::Or, size, mag, Rmi::Reg(s))
            }
        };
        let dst = self.vreg(RegClass::Float);
        self.emit(MInst::Bitcast {
            wide,
            dst,
            src: out,
        });
        dst
    }

    pub(super) fn lower_int_to_float(&mut self, ty: Type, x: Value, signed: bool) -> VReg {
        let src_ty = self.ty(x);
        let src = self.put_value(x);
        let (src, src_wide) = match (src_ty.bits(), signed) {
            (64, true) => (src, true),
            (64, false) => {
                let dst = self.vreg(RegClass::Float);
                let (tmp1, tmp2) = (self.vreg(RegClass::Int), self.vreg(RegClass::Int));
                self.emit(MInst::U64ToFloat {
                    dst_wide: ty == F64,
                    dst,
                    src,
                    tmp1,
                    tmp2,
                });
                return dst;
            }
            // An unsigned i32 is zero-extended: its 64-bit signed conversion is exact.
            (32, false) => (src, true),
            (32, true) => (src, false),
            (8, s) | (16, s) => {
                let op = match (src_ty.bits(), s) {
                    (8, true) => ExtOp::Sx8To32,
                    (8, false) => ExtOp::Zx8,
                    (_, true) => ExtOp::Sx16To32,
                    _ => ExtOp::Zx16,
                };
                let dst = self.vreg(RegClass::Int);
                self.emit(MInst::Ext { op, dst, src });
                (dst, false)
            }
            _ => (src, true),
        };
        let dst = self.vreg(RegClass::Float);
        self.emit(MInst::IntToFloat {
            src_wide,
            dst_wide: ty == F64,
            dst,
            src,
        });
        dst
    }

    pub(super) fn lower_bitcast_reg(&mut self, ty: Type, x: Value) -> VReg {
        let src = self.put_value(x);
        let wide = ty.bits() == 64;
        let class = if ty.is_float() {
            RegClass::Float
        } else {
            RegClass::Int
        };
        if class == src.class() {
            return src;
        }
        let dst = self.vreg(class);
        self.emit(MInst::Bitcast { wide, dst, src });
        dst
    }

    pub(super) fn fun(&mut self, op: FUnOp, wide: bool, x: Value) -> VReg {
        let src = self.put_value(x);
        let dst = self.vreg(RegClass::Float);
        self.emit(MInst::FUn { op, wide, dst, src });
        dst
    }
}
