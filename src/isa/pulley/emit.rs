//! Register allocation and emission of Pulley bytecode.
//!
//! Frame: with calls, spills, callee-saved registers in use or stack parameters the function
//! opens with `push_frame_save amt, {x16..x29 used}` (which also saves `lr` and `fp` above
//! the `amt` bytes) and returns through `pop_frame_restore`. From `sp` up: the outgoing
//! stack arguments of its calls (`sp + 8*k`), the spill slots, the saved registers, `fp` and
//! `lr`, and then the caller's outgoing area, where stack parameter `k` is
//! (`sp + amt + 16 + 8*k`). A leaf function that needs none of that has no frame at all.

use super::inst::{fr, xr, Amode, BrCond, ImmCond, ImmOp, MInst, MemOp, UnOp};
use crate::ir::TrapCode;
use crate::machinst::buffer::{CodeBuffer, Label};
use crate::machinst::vcode::VCode;
use crate::machinst::{CodegenError, CompiledCode, MachBlock, PReg, PRegSet, RegClass, VReg};
use pulley_interpreter::encode;
use pulley_interpreter::regs::{AddrG32, AddrG32Bne, AddrO32, AddrZ, BinaryOperands, UpperRegSet};
use pulley_interpreter::XReg;
use pulley_interpreter::U6;
use regalloc2::{Allocation, Edit, MachineEnv, RegallocOptions};

/// The registers regalloc2 may hand out on Pulley.
pub fn machine_env() -> MachineEnv {
    let set = |class, range: std::ops::Range<usize>| {
        let mut s = PRegSet::empty();
        for i in range {
            s.add(PReg::new(i, class));
        }
        s
    };
    MachineEnv {
        // Caller-saved registers first: they cost nothing in the prologue.
        preferred_regs_by_class: [
            set(RegClass::Int, 0..16),
            set(RegClass::Float, 0..31),
            PRegSet::empty(),
        ],
        non_preferred_regs_by_class: [
            set(RegClass::Int, 16..30),
            PRegSet::empty(),
            PRegSet::empty(),
        ],
        scratch_by_class: [
            Some(PReg::new(XReg::spilltmp0 as usize, RegClass::Int)),
            Some(PReg::new(31, RegClass::Float)),
            None,
        ],
        fixed_stack_slots: Vec::new(),
    }
}

/// Allocates registers and encodes the function.
pub fn emit(vcode: &VCode<MInst>) -> Result<CompiledCode, CodegenError> {
    let out = regalloc2::run(vcode, &machine_env(), &RegallocOptions::default())
        .map_err(|e| CodegenError::new(format!("register allocation failed: {e}")))?;
    crate::machinst::pcc::check_allocation(vcode, &machine_env(), &out)?;

    // Callee-saved registers in use, calls and spills decide the frame.
    let mut saved: u16 = 0;
    let mut note = |a: Allocation| {
        if let Some(p) = a.as_reg() {
            if p.class() == RegClass::Int && (16..30).contains(&p.hw_enc()) {
                saved |= 1 << (p.hw_enc() - 16);
            }
        }
    };
    out.allocs.iter().for_each(|&a| note(a));
    for (_, Edit::Move { from, to }) in &out.edits {
        note(*from);
        note(*to);
    }
    let has_calls = vcode.insts.iter().any(|i| matches!(i, MInst::Call { .. }));
    let (outgoing, stack_params) = crate::machinst::abi::stack_needs(&vcode.insts);
    let spill_bytes = out.num_spillslots as u32 * 8;
    let save_bytes = saved.count_ones() * 8;
    let amt = (outgoing + spill_bytes + save_bytes).next_multiple_of(16);
    let frame = has_calls || amt > 0 || stack_params;
    let amt = u16::try_from(amt).map_err(|_| {
        CodegenError::new(format!(
            "the stack frame needs {amt} bytes; Pulley frames are limited to 65535"
        ))
    })?;
    let regs = UpperRegSet::from_bitset(saved.into());

    let mut e = Emitter {
        buf: CodeBuffer::default(),
        block_labels: Vec::new(),
        frame: frame.then_some((amt, regs)),
        next: None,
        outgoing: outgoing as i32,
    };
    let emitted = crate::machinst::emit::emit_blocks(vcode, &out, &mut e)?;
    for (code, label) in e.buf.take_islands() {
        e.buf.bind(label);
        let at = e.buf.offset();
        encode::trap(&mut e.buf.data);
        e.buf.add_trap(at, code);
    }
    let mut code = e.buf.finish(frame.then_some(u32::from(amt)));
    if vcode.pcc.is_some() {
        code.decoded = Some(super::pcc::decode_accesses(&code.code, &emitted)?);
    }
    Ok(code)
}

struct Emitter {
    buf: CodeBuffer,
    /// The label each block's branches go to (forwarded blocks share their target's).
    block_labels: Vec<Label>,
    frame: Option<(u16, UpperRegSet<XReg>)>,
    /// The label of the block emitted next, for fall-through.
    next: Option<Label>,
    /// Bytes of the outgoing-argument area, below the spill slots.
    outgoing: i32,
}

impl crate::machinst::emit::Emit<MInst> for Emitter {
    fn buf(&mut self) -> &mut CodeBuffer {
        &mut self.buf
    }
    fn begin(&mut self, block_labels: Vec<Label>) {
        self.block_labels = block_labels;
        if let Some((amt, regs)) = self.frame {
            encode::push_frame_save(&mut self.buf.data, amt, regs);
        }
    }
    fn set_next(&mut self, next: Option<Label>) {
        self.next = next;
    }
    fn emit_move(&mut self, from: Allocation, to: Allocation) -> Result<(), CodegenError> {
        Emitter::emit_move(self, from, to)
    }
    fn emit_inst(&mut self, inst: &MInst) -> Result<(), CodegenError> {
        Emitter::emit_inst(self, inst)
    }
}

fn n(v: VReg) -> u8 {
    v.vreg() as u8
}

impl Emitter {
    fn sink(&mut self) -> &mut Vec<u8> {
        &mut self.buf.data
    }

    /// Emits `f` and records that its last four bytes are a branch offset to `label`,
    /// relative to the start of the instruction.
    fn branch(&mut self, label: Label, f: impl FnOnce(&mut Vec<u8>)) {
        let start = self.buf.offset();
        f(&mut self.buf.data);
        let end = self.buf.offset();
        self.buf.use_label(end - 4, start, label);
    }

    fn falls_into(&self, target: MachBlock) -> bool {
        self.next == Some(self.block_labels[target.index()])
    }

    fn jump_to(&mut self, target: MachBlock) {
        if !self.falls_into(target) {
            let l = self.block_labels[target.index()];
            self.branch(l, |s| encode::jump(s, 0));
        }
    }

    /// The `amt` of the frame, which a function with stack parameters or results always has
    /// (its caller's slots are at `sp + amt + 16` and up).
    fn frame_size(&self) -> i32 {
        let (amt, _) = self
            .frame
            .expect("a function with stack parameters or results has a frame");
        i32::from(amt)
    }

    /// Loads a whole register of either class from the 8 bytes at `sp + offset`.
    fn load_stack(&mut self, dst: VReg, offset: i32) {
        let at = AddrO32 {
            addr: XReg::sp,
            offset,
        };
        match dst.class() {
            RegClass::Int => encode::xload64le_o32(self.sink(), xr(n(dst)), at),
            _ => encode::fload64le_o32(self.sink(), fr(n(dst)), at),
        }
    }

    /// Stores a whole register of either class to the 8 bytes at `sp + offset`.
    fn store_stack(&mut self, src: VReg, offset: i32) {
        let at = AddrO32 {
            addr: XReg::sp,
            offset,
        };
        match src.class() {
            RegClass::Int => encode::xstore64le_o32(self.sink(), at, xr(n(src))),
            _ => encode::fstore64le_o32(self.sink(), at, fr(n(src))),
        }
    }

    fn emit_move(&mut self, from: Allocation, to: Allocation) -> Result<(), CodegenError> {
        let outgoing = self.outgoing;
        let slot = |a: Allocation| outgoing + (a.as_stack().unwrap().index() * 8) as i32;
        let sp = |offset| AddrO32 {
            addr: XReg::sp,
            offset,
        };
        match (from.as_reg(), to.as_reg()) {
            (Some(f), Some(t)) => match f.class() {
                RegClass::Int => {
                    encode::xmov(self.sink(), xr(t.hw_enc() as u8), xr(f.hw_enc() as u8))
                }
                _ => encode::fmov(self.sink(), fr(t.hw_enc() as u8), fr(f.hw_enc() as u8)),
            },
            (Some(f), None) => {
                let a = sp(slot(to));
                match f.class() {
                    RegClass::Int => encode::xstore64le_o32(self.sink(), a, xr(f.hw_enc() as u8)),
                    _ => encode::fstore64le_o32(self.sink(), a, fr(f.hw_enc() as u8)),
                }
            }
            (None, Some(t)) => {
                let a = sp(slot(from));
                match t.class() {
                    RegClass::Int
                        if crate::mutants::active(crate::mutants::Mutant::ReloadNarrowed) =>
                    {
                        encode::xload32le_o32(self.sink(), xr(t.hw_enc() as u8), a)
                    }
                    RegClass::Int => encode::xload64le_o32(self.sink(), xr(t.hw_enc() as u8), a),
                    _ => encode::fload64le_o32(self.sink(), fr(t.hw_enc() as u8), a),
                }
            }
            (None, None) => {
                return Err(CodegenError::new(
                    "internal error: regalloc2 asked for a stack-to-stack move",
                ))
            }
        }
        Ok(())
    }

    fn emit_inst(&mut self, inst: &MInst) -> Result<(), CodegenError> {
        match inst {
            MInst::Args { .. } => {}
            MInst::StackArg { dst, slot } => {
                let amt = self.frame_size();
                self.load_stack(*dst, amt + 16 + 8 * *slot as i32)
            }
            MInst::StoreCallArg { src, slot } => self.store_stack(*src, 8 * *slot as i32),
            MInst::LoadCallRet { dst, slot } => self.load_stack(*dst, 8 * *slot as i32),
            // The caller's slots are above the saved `lr` and `fp`, as the stack parameters.
            MInst::StoreRet { src, slot } => {
                let amt = self.frame_size();
                self.store_stack(*src, amt + 16 + 8 * *slot as i32)
            }
            MInst::Ret { .. } => {
                if let Some((amt, regs)) = self.frame {
                    encode::pop_frame_restore(self.sink(), amt, regs);
                }
                encode::ret(self.sink());
            }
            MInst::Bin { op, dst, a, b } => {
                let at = self.buf.offset();
                op.encode(self.sink(), n(*dst), n(*a), n(*b));
                // Division traps report their kind; the table entry names the site.
                if op.can_trap() {
                    self.buf.add_trap(at, TrapCode::INTEGER_DIVISION_BY_ZERO);
                }
            }
            MInst::MulAdd { wide, dst, a, b, c } => {
                let (d, a, b, c) = (xr(n(*dst)), xr(n(*a)), xr(n(*b)), xr(n(*c)));
                if *wide {
                    encode::xmadd64(self.sink(), d, a, b, c)
                } else {
                    encode::xmadd32(self.sink(), d, a, b, c)
                }
            }
            MInst::AddTrap {
                wide,
                dst,
                a,
                b,
                code,
            } => {
                let at = self.buf.offset();
                let ops = BinaryOperands::new(xr(n(*dst)), xr(n(*a)), xr(n(*b)));
                if *wide {
                    encode::xadd64_uoverflow_trap(self.sink(), ops)
                } else {
                    encode::xadd32_uoverflow_trap(self.sink(), ops)
                }
                self.buf.add_trap(at, *code);
            }
            MInst::BinImm {
                op,
                wide,
                dst,
                a,
                imm,
            } => encode_bin_imm(self.sink(), *op, *wide, xr(n(*dst)), xr(n(*a)), *imm),
            // A copy the allocator placed in one register already.
            MInst::Un {
                op: UnOp::Xmov | UnOp::Fmov,
                dst,
                src,
            } if n(*dst) == n(*src) => {}
            MInst::Un { op, dst, src } => {
                let at = self.buf.offset();
                op.encode(self.sink(), n(*dst), n(*src));
                if op.can_trap() {
                    self.buf.add_trap(at, TrapCode::BAD_CONVERSION_TO_INTEGER);
                }
            }
            MInst::XConst { dst, imm } => {
                let d = xr(n(*dst));
                let s = self.sink();
                match *imm {
                    0 => encode::xzero(s, d),
                    1 => encode::xone(s, d),
                    i if i8::try_from(i).is_ok() => encode::xconst8(s, d, i as i8),
                    i if i16::try_from(i).is_ok() => encode::xconst16(s, d, i as i16),
                    i if i32::try_from(i).is_ok() => encode::xconst32(s, d, i as i32),
                    i => encode::xconst64(s, d, i),
                }
            }
            MInst::FConst { dst, bits, wide } => {
                if *wide {
                    encode::fconst64(self.sink(), fr(n(*dst)), *bits)
                } else {
                    encode::fconst32(self.sink(), fr(n(*dst)), *bits as u32)
                }
            }
            MInst::Select { dst, cond, a, b } => {
                let (d, c, a, b) = (n(*dst), xr(n(*cond)), n(*a), n(*b));
                if dst.class() == RegClass::Int {
                    encode::xselect64(self.sink(), xr(d), c, xr(a), xr(b))
                } else {
                    encode::fselect64(self.sink(), fr(d), c, fr(a), fr(b))
                }
            }
            MInst::Load {
                op,
                dst,
                amode,
                trap,
            } => {
                let at = self.buf.offset();
                encode_load(self.sink(), *op, n(*dst), amode)?;
                if let (Some(code), false) = (trap, matches!(amode, Amode::O32 { .. })) {
                    self.buf.add_trap(at, *code);
                }
            }
            MInst::Store {
                op,
                src,
                amode,
                trap,
            } => {
                let at = self.buf.offset();
                encode_store(self.sink(), *op, n(*src), amode)?;
                if let (Some(code), false) = (trap, matches!(amode, Amode::O32 { .. })) {
                    self.buf.add_trap(at, *code);
                }
            }
            MInst::Jump { target } => self.jump_to(*target),
            MInst::BrIf {
                cond,
                taken,
                not_taken,
            } => {
                let c = xr(n(*cond));
                if self.falls_into(*taken) {
                    let l = self.block_labels[not_taken.index()];
                    self.branch(l, |s| encode::br_if_not32(s, c, 0));
                } else {
                    let l = self.block_labels[taken.index()];
                    self.branch(l, |s| encode::br_if32(s, c, 0));
                    self.jump_to(*not_taken);
                }
            }
            MInst::BrCmp {
                cond,
                a,
                b,
                taken,
                not_taken,
            } => {
                let (a, b) = (xr(n(*a)), xr(n(*b)));
                if self.falls_into(*taken) {
                    let (inv, swap) = cond.inverse();
                    let (a, b) = if swap { (b, a) } else { (a, b) };
                    let l = self.block_labels[not_taken.index()];
                    self.branch(l, |s| encode_br_cond(s, inv, a, b));
                } else {
                    let l = self.block_labels[taken.index()];
                    self.branch(l, |s| encode_br_cond(s, *cond, a, b));
                    self.jump_to(*not_taken);
                }
            }
            MInst::BrCmpImm {
                cond,
                wide,
                a,
                imm,
                taken,
                not_taken,
            } => {
                let a = xr(n(*a));
                if self.falls_into(*taken) {
                    let l = self.block_labels[not_taken.index()];
                    self.branch(l, |s| encode_br_imm(s, cond.inverse(), *wide, a, *imm));
                } else {
                    let l = self.block_labels[taken.index()];
                    self.branch(l, |s| encode_br_imm(s, *cond, *wide, a, *imm));
                    self.jump_to(*not_taken);
                }
            }
            MInst::BrTable {
                idx,
                default,
                targets,
            } => {
                let amt = targets.len() as u32 + 1;
                encode::br_table32(self.sink(), xr(n(*idx)), amt);
                for t in targets.iter().chain(std::iter::once(default)) {
                    let at = self.buf.offset();
                    self.sink().extend_from_slice(&0i32.to_le_bytes());
                    self.buf.use_label(at, at, self.block_labels[t.index()]);
                }
            }
            MInst::TrapIf { cond, a, b, code } => {
                let l = self.buf.trap_island(*code);
                let (a, b) = (xr(n(*a)), xr(n(*b)));
                self.branch(l, |s| encode_br_cond(s, *cond, a, b));
            }
            MInst::TrapIfImm {
                cond,
                wide,
                a,
                imm,
                code,
            } => {
                let l = self.buf.trap_island(*code);
                let a = xr(n(*a));
                self.branch(l, |s| encode_br_imm(s, *cond, *wide, a, *imm));
            }
            MInst::TrapIfNonzero { x, zero, code } => {
                let l = self.buf.trap_island(*code);
                let x = xr(n(*x));
                if *zero {
                    self.branch(l, |s| encode::br_if_not32(s, x, 0));
                } else {
                    self.branch(l, |s| encode::br_if32(s, x, 0));
                }
            }
            MInst::Trap { code } => {
                let at = self.buf.offset();
                encode::trap(self.sink());
                self.buf.add_trap(at, *code);
            }
            MInst::Call { callee, .. } => {
                let at = self.buf.offset();
                encode::call(self.sink(), 0);
                self.buf.add_reloc(at, callee);
            }
        }
        Ok(())
    }
}

fn encode_bin_imm(s: &mut Vec<u8>, op: ImmOp, wide: bool, d: XReg, a: XReg, imm: i64) {
    use ImmOp::*;
    let (u8_, s8) = (u8::try_from(imm).ok(), i8::try_from(imm).ok());
    let (u32_, s32) = (imm as u32, imm as i32);
    macro_rules! pick {
        ($small:ident, $big:ident, $narrow:expr, $full:expr) => {
            match $narrow {
                Some(k) => encode::$small(s, d, a, k),
                None => encode::$big(s, d, a, $full),
            }
        };
    }
    match (op, wide) {
        (Add, false) => pick!(xadd32_u8, xadd32_u32, u8_, u32_),
        (Add, true) => pick!(xadd64_u8, xadd64_u32, u8_, u32_),
        (Sub, false) => pick!(xsub32_u8, xsub32_u32, u8_, u32_),
        (Sub, true) => pick!(xsub64_u8, xsub64_u32, u8_, u32_),
        (Mul, false) => pick!(xmul32_s8, xmul32_s32, s8, s32),
        (Mul, true) => pick!(xmul64_s8, xmul64_s32, s8, s32),
        (And, false) => pick!(xband32_s8, xband32_s32, s8, s32),
        (And, true) => pick!(xband64_s8, xband64_s32, s8, s32),
        (Or, false) => pick!(xbor32_s8, xbor32_s32, s8, s32),
        (Or, true) => pick!(xbor64_s8, xbor64_s32, s8, s32),
        (Xor, false) => pick!(xbxor32_s8, xbxor32_s32, s8, s32),
        (Xor, true) => pick!(xbxor64_s8, xbxor64_s32, s8, s32),
        (Shl | ShrU | ShrS, _) => {
            let k = U6::new(imm as u8).expect("lowering masks shift amounts to 0..64");
            let ops = BinaryOperands::new(d, a, k);
            match (op, wide) {
                (Shl, false) => encode::xshl32_u6(s, ops),
                (Shl, true) => encode::xshl64_u6(s, ops),
                (ShrU, false) => encode::xshr32_u_u6(s, ops),
                (ShrU, true) => encode::xshr64_u_u6(s, ops),
                (_, false) => encode::xshr32_s_u6(s, ops),
                (_, true) => encode::xshr64_s_u6(s, ops),
            }
        }
    }
}

fn encode_br_cond(s: &mut Vec<u8>, cond: BrCond, a: XReg, b: XReg) {
    use BrCond::*;
    match cond {
        Eq32 => encode::br_if_xeq32(s, a, b, 0),
        Neq32 => encode::br_if_xneq32(s, a, b, 0),
        Slt32 => encode::br_if_xslt32(s, a, b, 0),
        Slteq32 => encode::br_if_xslteq32(s, a, b, 0),
        Ult32 => encode::br_if_xult32(s, a, b, 0),
        Ulteq32 => encode::br_if_xulteq32(s, a, b, 0),
        Eq64 => encode::br_if_xeq64(s, a, b, 0),
        Neq64 => encode::br_if_xneq64(s, a, b, 0),
        Slt64 => encode::br_if_xslt64(s, a, b, 0),
        Slteq64 => encode::br_if_xslteq64(s, a, b, 0),
        Ult64 => encode::br_if_xult64(s, a, b, 0),
        Ulteq64 => encode::br_if_xulteq64(s, a, b, 0),
    }
}

/// `br_if_x<cond><32|64>_<imm>`, in the one-byte immediate form when `imm` fits it.
fn encode_br_imm(s: &mut Vec<u8>, cond: ImmCond, wide: bool, a: XReg, imm: i64) {
    use ImmCond::*;
    macro_rules! signed {
        ($i8_32:ident, $i32_32:ident, $i8_64:ident, $i32_64:ident) => {
            match (wide, i8::try_from(imm)) {
                (false, Ok(k)) => encode::$i8_32(s, a, k, 0),
                (false, Err(_)) => encode::$i32_32(s, a, imm as i32, 0),
                (true, Ok(k)) => encode::$i8_64(s, a, k, 0),
                (true, Err(_)) => encode::$i32_64(s, a, imm as i32, 0),
            }
        };
    }
    macro_rules! unsigned {
        ($u8_32:ident, $u32_32:ident, $u8_64:ident, $u32_64:ident) => {
            match (wide, u8::try_from(imm)) {
                (false, Ok(k)) => encode::$u8_32(s, a, k, 0),
                (false, Err(_)) => encode::$u32_32(s, a, imm as u32, 0),
                (true, Ok(k)) => encode::$u8_64(s, a, k, 0),
                (true, Err(_)) => encode::$u32_64(s, a, imm as u32, 0),
            }
        };
    }
    match cond {
        Eq => signed!(
            br_if_xeq32_i8,
            br_if_xeq32_i32,
            br_if_xeq64_i8,
            br_if_xeq64_i32
        ),
        Neq => signed!(
            br_if_xneq32_i8,
            br_if_xneq32_i32,
            br_if_xneq64_i8,
            br_if_xneq64_i32
        ),
        Slt => signed!(
            br_if_xslt32_i8,
            br_if_xslt32_i32,
            br_if_xslt64_i8,
            br_if_xslt64_i32
        ),
        Sgt => signed!(
            br_if_xsgt32_i8,
            br_if_xsgt32_i32,
            br_if_xsgt64_i8,
            br_if_xsgt64_i32
        ),
        Slteq => signed!(
            br_if_xslteq32_i8,
            br_if_xslteq32_i32,
            br_if_xslteq64_i8,
            br_if_xslteq64_i32
        ),
        Sgteq => signed!(
            br_if_xsgteq32_i8,
            br_if_xsgteq32_i32,
            br_if_xsgteq64_i8,
            br_if_xsgteq64_i32
        ),
        Ult => unsigned!(
            br_if_xult32_u8,
            br_if_xult32_u32,
            br_if_xult64_u8,
            br_if_xult64_u32
        ),
        Ugt => unsigned!(
            br_if_xugt32_u8,
            br_if_xugt32_u32,
            br_if_xugt64_u8,
            br_if_xugt64_u32
        ),
        Ulteq => unsigned!(
            br_if_xulteq32_u8,
            br_if_xulteq32_u32,
            br_if_xulteq64_u8,
            br_if_xulteq64_u32
        ),
        Ugteq => unsigned!(
            br_if_xugteq32_u8,
            br_if_xugteq32_u32,
            br_if_xugteq64_u8,
            br_if_xugteq64_u32
        ),
    }
}

fn no_mode(op: MemOp, amode: &Amode) -> CodegenError {
    CodegenError::new(format!(
        "internal error: Pulley has no {op:?} access in addressing mode {amode:?}"
    ))
}

/// An addressing mode with allocated registers, as `pulley-interpreter`'s encoders take it.
enum Addr {
    O32(AddrO32),
    Z(AddrZ),
    G32(AddrG32),
    G32Bne(AddrG32Bne),
}

impl Addr {
    fn of(amode: &Amode) -> Addr {
        match *amode {
            Amode::O32 { base, offset } => Addr::O32(AddrO32 {
                addr: xr(n(base)),
                offset,
            }),
            Amode::Z { base, offset } => Addr::Z(AddrZ {
                addr: xr(n(base)),
                offset,
            }),
            Amode::G32 {
                base,
                bound,
                index,
                offset,
            } => Addr::G32(AddrG32 {
                host_heap_base: xr(n(base)),
                host_heap_bound: xr(n(bound)),
                wasm_addr: xr(n(index)),
                offset,
            }),
            Amode::G32Bne {
                base,
                bound_addr,
                bound_offset,
                index,
                offset,
            } => Addr::G32Bne(AddrG32Bne {
                host_heap_base: xr(n(base)),
                host_heap_bound_addr: xr(n(bound_addr)),
                host_heap_bound_offset: bound_offset,
                wasm_addr: xr(n(index)),
                offset,
            }),
        }
    }
}

fn encode_load(s: &mut Vec<u8>, op: MemOp, dst: u8, amode: &Amode) -> Result<(), CodegenError> {
    use MemOp::*;
    let op = match op {
        X32 if crate::mutants::active(crate::mutants::Mutant::EmissionDiffers) => X64,
        op => op,
    };
    let (d, f) = (xr(dst), fr(dst));
    match Addr::of(amode) {
        Addr::O32(a) => match op {
            X8U => encode::xload8_u32_o32(s, d, a),
            X8S => encode::xload8_s32_o32(s, d, a),
            X16U => encode::xload16le_u32_o32(s, d, a),
            X16S => encode::xload16le_s32_o32(s, d, a),
            X32 => encode::xload32le_o32(s, d, a),
            X64 => encode::xload64le_o32(s, d, a),
            X16UBe => encode::xload16be_u32_o32(s, d, a),
            X16SBe => encode::xload16be_s32_o32(s, d, a),
            X32Be => encode::xload32be_o32(s, d, a),
            X64Be => encode::xload64be_o32(s, d, a),
            F32 => encode::fload32le_o32(s, f, a),
            F64 => encode::fload64le_o32(s, f, a),
            F32Be => encode::fload32be_o32(s, f, a),
            F64Be => encode::fload64be_o32(s, f, a),
        },
        Addr::Z(a) => match op {
            X8U => encode::xload8_u32_z(s, d, a),
            X8S => encode::xload8_s32_z(s, d, a),
            X16U => encode::xload16le_u32_z(s, d, a),
            X16S => encode::xload16le_s32_z(s, d, a),
            X32 => encode::xload32le_z(s, d, a),
            X64 => encode::xload64le_z(s, d, a),
            F32 => encode::fload32le_z(s, f, a),
            F64 => encode::fload64le_z(s, f, a),
            _ => return Err(no_mode(op, amode)),
        },
        Addr::G32(a) => match op {
            X8U => encode::xload8_u32_g32(s, d, a),
            X8S => encode::xload8_s32_g32(s, d, a),
            X16U => encode::xload16le_u32_g32(s, d, a),
            X16S => encode::xload16le_s32_g32(s, d, a),
            X32 => encode::xload32le_g32(s, d, a),
            X64 => encode::xload64le_g32(s, d, a),
            F32 => encode::fload32le_g32(s, f, a),
            F64 => encode::fload64le_g32(s, f, a),
            _ => return Err(no_mode(op, amode)),
        },
        Addr::G32Bne(a) => match op {
            X8U => encode::xload8_u32_g32bne(s, d, a),
            X8S => encode::xload8_s32_g32bne(s, d, a),
            X16U => encode::xload16le_u32_g32bne(s, d, a),
            X16S => encode::xload16le_s32_g32bne(s, d, a),
            X32 => encode::xload32le_g32bne(s, d, a),
            X64 => encode::xload64le_g32bne(s, d, a),
            _ => return Err(no_mode(op, amode)),
        },
    }
    Ok(())
}

fn encode_store(s: &mut Vec<u8>, op: MemOp, src: u8, amode: &Amode) -> Result<(), CodegenError> {
    use MemOp::*;
    let (x, f) = (xr(src), fr(src));
    match Addr::of(amode) {
        Addr::O32(a) => match op {
            X8U | X8S => encode::xstore8_o32(s, a, x),
            X16U | X16S => encode::xstore16le_o32(s, a, x),
            X32 => encode::xstore32le_o32(s, a, x),
            X64 => encode::xstore64le_o32(s, a, x),
            X16UBe | X16SBe => encode::xstore16be_o32(s, a, x),
            X32Be => encode::xstore32be_o32(s, a, x),
            X64Be => encode::xstore64be_o32(s, a, x),
            F32 => encode::fstore32le_o32(s, a, f),
            F64 => encode::fstore64le_o32(s, a, f),
            F32Be => encode::fstore32be_o32(s, a, f),
            F64Be => encode::fstore64be_o32(s, a, f),
        },
        Addr::Z(a) => match op {
            X8U | X8S => encode::xstore8_z(s, a, x),
            X16U | X16S => encode::xstore16le_z(s, a, x),
            X32 => encode::xstore32le_z(s, a, x),
            X64 => encode::xstore64le_z(s, a, x),
            F32 => encode::fstore32le_z(s, a, f),
            F64 => encode::fstore64le_z(s, a, f),
            _ => return Err(no_mode(op, amode)),
        },
        Addr::G32(a) => match op {
            X8U | X8S => encode::xstore8_g32(s, a, x),
            X16U | X16S => encode::xstore16le_g32(s, a, x),
            X32 => encode::xstore32le_g32(s, a, x),
            X64 => encode::xstore64le_g32(s, a, x),
            F32 => encode::fstore32le_g32(s, a, f),
            F64 => encode::fstore64le_g32(s, a, f),
            _ => return Err(no_mode(op, amode)),
        },
        Addr::G32Bne(a) => match op {
            X8U | X8S => encode::xstore8_g32bne(s, a, x),
            X16U | X16S => encode::xstore16le_g32bne(s, a, x),
            X32 => encode::xstore32le_g32bne(s, a, x),
            X64 => encode::xstore64le_g32bne(s, a, x),
            _ => return Err(no_mode(op, amode)),
        },
    }
    Ok(())
}
