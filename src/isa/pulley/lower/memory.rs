//! Ordinary loads and stores, and the one place that turns an access width, extension and
//! byte order into a Pulley operation, which the bounds-checked accesses use too.

use super::*;

/// The Pulley access for a value of `ty` moved as `kind`, in `endianness`, and for loads into
/// an i64 of fewer than 64 bits the extension to apply after the 32-bit load. Width and
/// signedness come from the access kind's generated definition.
pub(super) fn mem_op(ty: Type, kind: AccessKind, big: bool) -> Option<(MemOp, Option<UnOp>)> {
    use MemOp::*;
    let size = kind.access_size(ty);
    let signed = kind.extension() == Extension::Sign;
    let op = match (ty.is_float(), size, signed) {
        (true, 4, _) => F32,
        (true, 8, _) => F64,
        (false, 1, false) => X8U,
        (false, 1, true) => X8S,
        (false, 2, false) => X16U,
        (false, 2, true) => X16S,
        (false, 4, _) => X32,
        (false, 8, _) => X64,
        _ => return None,
    };
    let widen = (ty == I64 && size < 8).then_some(if signed { UnOp::Sext32 } else { UnOp::Zext32 });
    let op = if big {
        match op {
            X16U => X16UBe,
            X16S => X16SBe,
            X32 => X32Be,
            X64 => X64Be,
            F32 => F32Be,
            F64 => F64Be,
            other => other,
        }
    } else {
        op
    };
    Some((op, widen))
}

impl IsleContext<'_, '_> {
    /// A plain access in its own byte order, or a recorded error.
    fn plain(&mut self, inst: Inst) -> Option<(PlainAccess, MemOp, Option<UnOp>)> {
        let p = PlainAccess::of(self.lower.func, inst).expect("the rule matched a load or store");
        let ops = mem_op(p.ty, p.kind, p.big_endian());
        if ops.is_none() {
            let (ty, kind) = (p.ty, p.kind);
            self.fail(CodegenError::new(format!(
                "pulley64 cannot access {ty} as {kind:?}"
            )));
        }
        ops.map(|(op, widen)| (p, op, widen))
    }

    pub(super) fn lower_plain_load(&mut self, inst: Inst) -> VReg {
        let Some((p, op, widen)) = self.plain(inst) else {
            return VReg::new(0, RegClass::Int);
        };
        let base = self.put_value(p.addr);
        let amode = self.plain_amode(base, p.offset, p.flags, op);
        self.load_value(op, widen, amode, p.flags.trap_code)
    }

    /// The load `op` at `amode` (a trap site with code `trap`), extended by `widen`.
    pub(super) fn load_value(
        &mut self,
        op: MemOp,
        widen: Option<UnOp>,
        amode: Amode,
        trap: Option<TrapCode>,
    ) -> VReg {
        let dst = self.vreg(op.class());
        self.emit(MInst::Load {
            op,
            dst,
            amode,
            trap,
        });
        match widen {
            Some(w) => self.un_reg(w, dst),
            None => dst,
        }
    }

    /// The store `op` of `src` at `amode` (a trap site with code `trap`).
    pub(super) fn store_value(
        &mut self,
        op: MemOp,
        src: VReg,
        amode: Amode,
        trap: Option<TrapCode>,
    ) {
        self.emit(MInst::Store {
            op,
            src,
            amode,
            trap,
        });
    }

    pub(super) fn lower_plain_store(&mut self, inst: Inst) {
        let Some((p, op, _)) = self.plain(inst) else {
            return;
        };
        let src = self.put_value(p.store_value.expect("a store has a value"));
        let base = self.put_value(p.addr);
        let amode = self.plain_amode(base, p.offset, p.flags, op);
        self.store_value(op, src, amode, p.flags.trap_code);
    }

    pub(super) fn plain_amode(
        &mut self,
        base: VReg,
        offset: i32,
        flags: MemFlags,
        op: MemOp,
    ) -> Amode {
        let may_trap = flags.trap_code.is_some();
        if may_trap && op.big_endian() {
            // No `z` mode for big-endian accesses: test for null explicitly.
            let zero = self.const_reg(0);
            self.emit(MInst::TrapIf {
                cond: BrCond::Eq64,
                a: base,
                b: zero,
                code: flags.trap_code.unwrap(),
            });
            return Amode::O32 { base, offset };
        }
        if may_trap {
            Amode::Z { base, offset }
        } else {
            Amode::O32 { base, offset }
        }
    }
}
