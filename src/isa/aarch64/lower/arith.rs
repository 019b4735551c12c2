//! Integer arithmetic, shifts, bit operations, division and `fcopysign`: the constructors of
//! `lower.isle` that compute values in registers.

use super::*;

impl IsleContext<'_, '_> {
    pub(super) fn lower_alu(&mut self, ty: Type, op: AluOp, x: Value, y: Value) -> VReg {
        let size = int_size(ty);
        let bits = ty.bits();
        let konst = |cx: &Self, v: Value| cx.lower.iconst(v).map(|k| k & mask(bits));
        // A constant first operand of a commutative operation goes second.
        let commutes = !matches!(op, AluOp::Sub);
        let (x, y) = if commutes && konst(self, x).is_some() && konst(self, y).is_none() {
            (y, x)
        } else {
            (x, y)
        };
        if let Some(k) = konst(self, y) {
            match op {
                // `x + k`, `x - k`, also as the subtraction or addition of `-k`.
                AluOp::Add | AluOp::Sub => {
                    let neg = k.wrapping_neg() & mask(bits);
                    let sub = op == AluOp::Sub;
                    let imm = match (Rim::imm(k), Rim::imm(neg)) {
                        (Some(Rim::Imm(i)), _) => Some((sub, i)),
                        (_, Some(Rim::Imm(i))) => Some((!sub, i)),
                        _ => None,
                    };
                    if let Some((sub, i)) = imm {
                        let a = self.put_value(x);
                        return self.alu_imm(sub, size, a, i);
                    }
                }
                AluOp::Mul if k.is_power_of_two() => {
                    let a = self.put_value(x);
                    let dst = self.vreg(RegClass::Int);
                    self.emit(MInst::ShiftImm {
                        op: AluOp::Lsl,
                        size,
                        dst,
                        a,
                        amount: k.trailing_zeros() as u8,
                    });
                    return dst;
                }
                _ => {}
            }
        }
        let a = self.put_value(x);
        let b = self.put_value(y);
        self.alu_reg(op, size, a, b)
    }

    /// Shifts and `rotr`. CLIF takes the amount modulo the width: the hardware does for 32
    /// and 64 bits; i8 and i16 mask it and shift their exact bits.
    pub(super) fn lower_shift(&mut self, ty: Type, op: AluOp, x: Value, y: Value) -> VReg {
        let bits = ty.bits();
        let size = int_size(ty);
        if bits < 32 {
            return self.narrow_shift(ty, op, x, y);
        }
        if let Some(k) = self.lower.iconst(y) {
            let a = self.put_value(x);
            let amount = (k % u64::from(bits)) as u8;
            if amount == 0 {
                return a;
            }
            let dst = self.vreg(RegClass::Int);
            self.emit(MInst::ShiftImm {
                op,
                size,
                dst,
                a,
                amount,
            });
            return dst;
        }
        let a = self.put_value(x);
        let b = self.put_value(y);
        self.alu_reg(op, size, a, b)
    }

    /// An i8 or i16 shift or rotate, on the exact bits of `x` in a 32-bit register.
    fn narrow_shift(&mut self, ty: Type, op: AluOp, x: Value, y: Value) -> VReg {
        let bits = ty.bits();
        let amount = match self.lower.iconst(y) {
            Some(k) => Ok((k % u64::from(bits)) as u8),
            None => Err(self.put_value(y)),
        };
        if op == AluOp::Ror {
            return self.narrow_rotr(ty, x, amount);
        }
        let a = self.exact(x, op == AluOp::Asr);
        match amount {
            Ok(0) => a,
            Ok(k) => {
                let dst = self.vreg(RegClass::Int);
                self.emit(MInst::ShiftImm {
                    op,
                    size: Size::W,
                    dst,
                    a,
                    amount: k,
                });
                dst
            }
            Err(r) => {
                let m = self.const_reg(Size::W, u64::from(bits) - 1);
                let k = self.alu_reg(AluOp::And, Size::W, r, m);
                self.alu_reg(op, Size::W, a, k)
            }
        }
    }

    /// `rotl` is `rotr` by the amount's negation (modulo the width).
    pub(super) fn lower_rotl(&mut self, ty: Type, x: Value, y: Value) -> VReg {
        let bits = u64::from(ty.bits());
        if let Some(k) = self.lower.iconst(y) {
            let k = (bits - k % bits) % bits;
            if ty.bits() < 32 {
                return self.narrow_rotr(ty, x, Ok(k as u8));
            }
            return self.wide_rotr(ty, x, Ok(k as u8));
        }
        let r = self.put_value(y);
        let zero = self.const_reg(Size::W, 0);
        let neg = self.alu_reg(AluOp::Sub, Size::W, zero, r);
        if ty.bits() < 32 {
            return self.narrow_rotr(ty, x, Err(neg));
        }
        self.wide_rotr(ty, x, Err(neg))
    }

    fn wide_rotr(&mut self, ty: Type, x: Value, amount: Result<u8, VReg>) -> VReg {
        let size = int_size(ty);
        let a = self.put_value(x);
        match amount {
            Ok(0) => a,
            Ok(k) => {
                let dst = self.vreg(RegClass::Int);
                self.emit(MInst::ShiftImm {
                    op: AluOp::Ror,
                    size,
                    dst,
                    a,
                    amount: k,
                });
                dst
            }
            Err(r) => self.alu_reg(AluOp::Ror, size, a, r),
        }
    }

    /// An i8 or i16 `rotr` by a register amount (taken modulo the width).
    fn narrow_rotr(&mut self, ty: Type, x: Value, amount: Result<u8, VReg>) -> VReg {
        let bits = u64::from(ty.bits());
        let a = self.exact(x, false);
        let k = match amount {
            Ok(k) => self.const_reg(Size::W, u64::from(k) % bits),
            Err(r) => {
                let m = self.const_reg(Size::W, bits - 1);
                self.alu_reg(AluOp::And, Size::W, r, m)
            }
        };
        let right = self.alu_reg(AluOp::Lsr, Size::W, a, k);
        let w = self.const_reg(Size::W, bits);
        let back = self.alu_reg(AluOp::Sub, Size::W, w, k);
        let left = self.alu_reg(AluOp::Lsl, Size::W, a, back);
        self.alu_reg(AluOp::Orr, Size::W, right, left)
    }

    pub(super) fn lower_unary(&mut self, ty: Type, op: UnaryOp, x: Value) -> VReg {
        let bits = ty.bits();
        let size = int_size(ty);
        let un = |cx: &mut Self, op: UnaryOp, a: VReg| {
            let dst = cx.vreg(RegClass::Int);
            let tmp = (op == UnaryOp::Popcnt).then(|| cx.vreg(RegClass::Float));
            cx.emit(MInst::Unary {
                op,
                size,
                dst,
                a,
                tmp,
            });
            dst
        };
        match (op, bits) {
            (UnaryOp::Rev, 8) => self.put_value(x),
            (UnaryOp::Rev, 16) => {
                let a = self.put_value(x);
                un(self, UnaryOp::Rev16, a)
            }
            // The count of the exact bits, less the zeros above them in 32 bits.
            (UnaryOp::Clz, 8 | 16) => {
                let a = self.exact(x, false);
                let n = un(self, UnaryOp::Clz, a);
                self.alu_imm(true, Size::W, n, 32 - bits)
            }
            // A one just above the width stops the count there for a zero.
            (UnaryOp::Ctz, 8 | 16) => {
                let a = self.put_value(x);
                let stop = self.const_reg(Size::W, 1 << bits);
                let a = self.alu_reg(AluOp::Orr, Size::W, a, stop);
                un(self, UnaryOp::Ctz, a)
            }
            (UnaryOp::Popcnt, 8 | 16) => {
                let a = self.exact(x, false);
                un(self, UnaryOp::Popcnt, a)
            }
            _ => {
                let a = self.put_value(x);
                un(self, op, a)
            }
        }
    }

    /// Division and remainder. AArch64's `udiv`/`sdiv` do not fault: a zero divisor gives 0
    /// and `MIN / -1` gives `MIN`, so the traps CLIF requires are explicit (`int_divz`, and
    /// `int_ovf` for `sdiv`). The remainder is `x - (x / y) * y` (`msub`), which is 0 for
    /// `MIN % -1`, as CLIF's `srem` is.
    pub(super) fn lower_divide(
        &mut self,
        ty: Type,
        signed: bool,
        rem: bool,
        x: Value,
        y: Value,
    ) -> VReg {
        let size = int_size(ty);
        let bits = ty.bits();
        let a = self.exact(x, signed);
        let b = self.exact(y, signed);
        let divisor_known_nonzero = self.lower.iconst(y).is_some_and(|k| k & mask(bits) != 0);
        if !divisor_known_nonzero {
            self.emit(MInst::TrapIf {
                test: Test::NonZero {
                    size,
                    x: b,
                    zero: true,
                },
                code: TrapCode::INTEGER_DIVISION_BY_ZERO,
            });
        }
        let minus_one = self
            .lower
            .iconst(y)
            .is_none_or(|k| k & mask(bits) == mask(bits));
        if signed && !rem && minus_one {
            // `y == -1 && x == MIN`, both as the extended registers hold them.
            let width = if bits == 64 { 64 } else { 32 };
            let ones = self.const_reg(size, mask(width));
            let min = self.const_reg(size, (1u64 << (bits - 1)).wrapping_neg() & mask(width));
            let is_m1 = self.vreg(RegClass::Int);
            self.emit(MInst::CSet {
                test: Test::Cmp {
                    size,
                    cond: Cond::Eq,
                    a: b,
                    b: Rim::Reg(ones),
                },
                dst: is_m1,
            });
            let is_min = self.vreg(RegClass::Int);
            self.emit(MInst::CSet {
                test: Test::Cmp {
                    size,
                    cond: Cond::Eq,
                    a,
                    b: Rim::Reg(min),
                },
                dst: is_min,
            });
            let both = self.alu_reg(AluOp::And, Size::W, is_m1, is_min);
            self.emit(MInst::TrapIf {
                test: Test::NonZero {
                    size: Size::W,
                    x: both,
                    zero: false,
                },
                code: TrapCode::INTEGER_OVERFLOW,
            });
        }
        let op = if signed { AluOp::Sdiv } else { AluOp::Udiv };
        let q = self.alu_reg(op, size, a, b);
        if !rem {
            return q;
        }
        let dst = self.vreg(RegClass::Int);
        self.emit(MInst::Msub {
            size,
            dst,
            a: q,
            b,
            c: a,
        });
        dst
    }

    /// `fcopysign`: the magnitude bits of `x` and the sign bit of `y`, by integer operations
    /// on the bits.
    pub(super) fn lower_fcopysign(&mut self, ty: Type, x: Value, y: Value) -> VReg {
        let wide = ty == F64;
        let size = if wide { Size::X } else { Size::W };
        let sign = if wide { 1u64 << 63 } else { 1u64 << 31 };
        let to_int = |cx: &mut Self, v: Value| {
            let src = cx.put_value(v);
            let dst = cx.vreg(RegClass::Int);
            cx.emit(MInst::Bitcast { wide, dst, src });
            dst
        };
        let (xi, yi) = (to_int(self, x), to_int(self, y));
        let magnitude_mask = self.const_reg(size, !sign & mask(size.bits().into()));
        let sign_mask = self.const_reg(size, sign);
        let m = self.alu_reg(AluOp::And, size, xi, magnitude_mask);
        let s = self.alu_reg(AluOp::And, size, yi, sign_mask);
        let bits = self.alu_reg(AluOp::Orr, size, m, s);
        let dst = self.vreg(RegClass::Float);
        self.emit(MInst::Bitcast {
            wide,
            dst,
            src: bits,
        });
        dst
    }
}
