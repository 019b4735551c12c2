//! Ordinary loads and stores (`load`, `store` and their narrow forms), and the one place
//! that turns an access width, extension and byte order into AArch64 instructions, which the
//! bounds-checked accesses use too.

use super::*;

/// The load of a value of `ty` moved as `kind`, or `None` when AArch64 has none.
pub(super) fn load_op(ty: Type, kind: AccessKind) -> Option<LoadOp> {
    let size = kind.access_size(ty);
    let signed = kind.extension() == Extension::Sign;
    let wide = ty == I64;
    Some(match (ty.is_float(), size, signed, wide) {
        (true, 4, _, _) => LoadOp::F32,
        (true, 8, _, _) => LoadOp::F64,
        (false, 1, false, _) => LoadOp::U8,
        (false, 1, true, false) => LoadOp::S8To32,
        (false, 1, true, true) => LoadOp::S8To64,
        (false, 2, false, _) => LoadOp::U16,
        (false, 2, true, false) => LoadOp::S16To32,
        (false, 2, true, true) => LoadOp::S16To64,
        (false, 4, false, _) => LoadOp::U32,
        (false, 4, true, true) => LoadOp::S32To64,
        (false, 4, true, false) => LoadOp::U32,
        (false, 8, _, _) => LoadOp::X64,
        _ => return None,
    })
}

/// The store of a value of `ty` moved as `kind`, or `None` when AArch64 has none.
pub(super) fn store_op(ty: Type, kind: AccessKind) -> Option<StoreOp> {
    Some(match (ty.is_float(), kind.access_size(ty)) {
        (true, 4) => StoreOp::F32,
        (true, 8) => StoreOp::F64,
        (false, 1) => StoreOp::B,
        (false, 2) => StoreOp::H,
        (false, 4) => StoreOp::W,
        (false, 8) => StoreOp::X,
        _ => return None,
    })
}

impl IsleContext<'_, '_> {
    pub(super) fn lower_plain_load(&mut self, inst: Inst) -> VReg {
        let p = PlainAccess::of(self.lower.func, inst).expect("the rule matched a load");
        let Some(op) = load_op(p.ty, p.kind) else {
            let (ty, kind) = (p.ty, p.kind);
            self.fail(CodegenError::new(format!(
                "aarch64 cannot load {ty} as {kind:?}"
            )));
            return self.placeholder();
        };
        let amode = self.plain_address(&p, op.bytes());
        self.load_value(op, p.big_endian(), amode, p.flags.trap_code)
    }

    pub(super) fn lower_plain_store(&mut self, inst: Inst) {
        let p = PlainAccess::of(self.lower.func, inst).expect("the rule matched a store");
        let Some(op) = store_op(p.ty, p.kind) else {
            let (ty, kind) = (p.ty, p.kind);
            self.fail(CodegenError::new(format!(
                "aarch64 cannot store {ty} as {kind:?}"
            )));
            return;
        };
        let src = self.put_value(p.store_value.expect("a store has a value"));
        let amode = self.plain_address(&p, op.bytes());
        self.store_value(op, p.big_endian(), src, amode, p.flags.trap_code);
    }

    /// `[addr, #offset]`, or the offset added to the address first when no immediate form
    /// of an access of `bytes` holds it.
    fn plain_address(&mut self, p: &PlainAccess, bytes: u64) -> Amode {
        let base = self.put_value(p.addr);
        self.base_disp(base, i64::from(p.offset), bytes)
    }

    /// `[base, #disp]` when `disp` encodes for an access of `bytes`, else `[base + disp]`.
    pub(super) fn base_disp(&mut self, base: VReg, disp: i64, bytes: u64) -> Amode {
        if Amode::fits(disp, bytes) {
            return Amode::Imm { base, disp };
        }
        let base = if disp >= 0 {
            self.add_const(base, disp as u64)
        } else {
            self.sub_const(base, disp.unsigned_abs())
        };
        Amode::Imm { base, disp: 0 }
    }

    /// Loads `op` at `amode`. Big-endian: the unsigned load of the access's width, a byte
    /// reversal (`rev`, `rev16`), then the extension (or the move to a float register) the
    /// access asks for.
    pub(super) fn load_value(
        &mut self,
        op: LoadOp,
        big: bool,
        amode: Amode,
        trap: Option<TrapCode>,
    ) -> VReg {
        use LoadOp::*;
        let raw = match op {
            U16 | S16To32 | S16To64 => Some((U16, UnaryOp::Rev16, Size::W)),
            U32 | S32To64 | F32 => Some((U32, UnaryOp::Rev, Size::W)),
            X64 | F64 => Some((X64, UnaryOp::Rev, Size::X)),
            U8 | S8To32 | S8To64 => None,
        };
        let Some((raw, rev, size)) = raw.filter(|_| big) else {
            let dst = self.vreg(op.class());
            self.emit(MInst::Load {
                op,
                dst,
                amode,
                trap,
            });
            return dst;
        };
        let r = self.vreg(RegClass::Int);
        self.emit(MInst::Load {
            op: raw,
            dst: r,
            amode,
            trap,
        });
        let swapped = self.vreg(RegClass::Int);
        self.emit(MInst::Unary {
            op: rev,
            size,
            dst: swapped,
            a: r,
            tmp: None,
        });
        let to_float = |cx: &mut Self, wide| {
            let dst = cx.vreg(RegClass::Float);
            cx.emit(MInst::Bitcast {
                wide,
                dst,
                src: swapped,
            });
            dst
        };
        match op {
            S16To32 => self.ext_reg(ExtOp::Sx16To32, swapped),
            S16To64 => self.ext_reg(ExtOp::Sx16To64, swapped),
            S32To64 => self.ext_reg(ExtOp::Sx32To64, swapped),
            F32 => to_float(self, false),
            F64 => to_float(self, true),
            _ => swapped,
        }
    }

    /// Stores `src` as `op` at `amode`; big-endian: byte-reversed first (floats through an
    /// integer register).
    pub(super) fn store_value(
        &mut self,
        op: StoreOp,
        big: bool,
        src: VReg,
        amode: Amode,
        trap: Option<TrapCode>,
    ) {
        let (int_op, rev, size) = match op {
            StoreOp::H => (StoreOp::H, UnaryOp::Rev16, Size::W),
            StoreOp::W | StoreOp::F32 => (StoreOp::W, UnaryOp::Rev, Size::W),
            StoreOp::X | StoreOp::F64 => (StoreOp::X, UnaryOp::Rev, Size::X),
            StoreOp::B => (StoreOp::B, UnaryOp::Rev, Size::W),
        };
        if !big || op == StoreOp::B {
            self.emit(MInst::Store {
                op,
                src,
                amode,
                trap,
            });
            return;
        }
        let bits = if src.class() == RegClass::Float {
            let dst = self.vreg(RegClass::Int);
            self.emit(MInst::Bitcast {
                wide: size == Size::X,
                dst,
                src,
            });
            dst
        } else {
            src
        };
        let swapped = self.vreg(RegClass::Int);
        self.emit(MInst::Unary {
            op: rev,
            size,
            dst: swapped,
            a: bits,
            tmp: None,
        });
        self.emit(MInst::Store {
            op: int_op,
            src: swapped,
            amode,
            trap,
        });
    }
}
