//! Ordinary loads and stores (`load`, `store` and their narrow forms), and the one place
//! that turns an access width, extension and byte order into x86 instructions, which the
//! bounds-checked accesses use too.

use super::*;

/// The load of a value of `ty` moved as `kind`, or `None` when x86 has none.
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

pub(super) fn store_op(ty: Type, kind: AccessKind) -> Option<StoreOp> {
    Some(match (ty.is_float(), kind.access_size(ty)) {
        (true, 4) => StoreOp::F32,
        (true, 8) => StoreOp::F64,
        (false, 1) => StoreOp::B,
        (false, 2) => StoreOp::W,
        (false, 4) => StoreOp::L,
        (false, 8) => StoreOp::Q,
        _ => return None,
    })
}

impl IsleContext<'_, '_> {
    pub(super) fn lower_plain_load(&mut self, inst: Inst) -> VReg {
        let p = PlainAccess::of(self.lower.func, inst).expect("the rule matched a load");
        let Some(op) = load_op(p.ty, p.kind) else {
            let (ty, kind) = (p.ty, p.kind);
            self.fail(CodegenError::new(format!(
                "x86_64 cannot load {ty} as {kind:?}"
            )));
            return self.placeholder();
        };
        let amode = self.plain_address(&p);
        self.load_value(op, p.big_endian(), amode, p.flags.trap_code)
    }

    pub(super) fn lower_plain_store(&mut self, inst: Inst) {
        let p = PlainAccess::of(self.lower.func, inst).expect("the rule matched a store");
        let Some(op) = store_op(p.ty, p.kind) else {
            let (ty, kind) = (p.ty, p.kind);
            self.fail(CodegenError::new(format!(
                "x86_64 cannot store {ty} as {kind:?}"
            )));
            return;
        };
        let src = self.put_value(p.store_value.expect("a store has a value"));
        let amode = self.plain_address(&p);
        self.store_value(op, p.big_endian(), src, amode, p.flags.trap_code);
    }

    /// `offset(addr)`.
    fn plain_address(&mut self, p: &PlainAccess) -> Amode {
        Amode {
            base: self.put_value(p.addr),
            index: None,
            disp: p.offset,
        }
    }

    /// Loads `op` at `amode`. Big-endian: the unsigned load of the access's width, a byte
    /// swap, then the extension (or the move to a float register) the access asks for.
    pub(super) fn load_value(
        &mut self,
        op: LoadOp,
        big: bool,
        amode: Amode,
        trap: Option<TrapCode>,
    ) -> VReg {
        use LoadOp::*;
        let raw = match op {
            U16 | S16To32 | S16To64 => Some((U16, Size::W)),
            U32 | S32To64 | F32 => Some((U32, Size::L)),
            X64 | F64 => Some((X64, Size::Q)),
            U8 | S8To32 | S8To64 => None,
        };
        let Some((raw, size)) = raw.filter(|_| big) else {
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
        // A 16-bit rotate keeps the zeros above the loaded halfword.
        let swapped = self.vreg(RegClass::Int);
        self.emit(MInst::Unary {
            op: UnaryOp::Bswap,
            size,
            dst: swapped,
            a: r,
        });
        let ext = |cx: &mut Self, op| {
            let dst = cx.vreg(RegClass::Int);
            cx.emit(MInst::Ext {
                op,
                dst,
                src: swapped,
            });
            dst
        };
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
            S16To32 => ext(self, ExtOp::Sx16To32),
            S16To64 => ext(self, ExtOp::Sx16To64),
            S32To64 => ext(self, ExtOp::Sx32To64),
            F32 => to_float(self, false),
            F64 => to_float(self, true),
            _ => swapped,
        }
    }

    /// Stores `src` as `op` at `amode`; big-endian: byte-swapped first (floats through an
    /// integer register).
    pub(super) fn store_value(
        &mut self,
        op: StoreOp,
        big: bool,
        src: VReg,
        amode: Amode,
        trap: Option<TrapCode>,
    ) {
        let (int_op, size) = match op {
            StoreOp::W => (StoreOp::W, Size::W),
            StoreOp::L | StoreOp::F32 => (StoreOp::L, Size::L),
            StoreOp::Q | StoreOp::F64 => (StoreOp::Q, Size::Q),
            StoreOp::B => (StoreOp::B, Size::B),
        };
        if !big || size == Size::B {
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
                wide: size == Size::Q,
                dst,
                src,
            });
            dst
        } else {
            src
        };
        let swapped = self.vreg(RegClass::Int);
        self.emit(MInst::Unary {
            op: UnaryOp::Bswap,
            size,
            dst: swapped,
            a: bits,
        });
        self.emit(MInst::Store {
            op: int_op,
            src: swapped,
            amode,
            trap,
        });
    }
}
