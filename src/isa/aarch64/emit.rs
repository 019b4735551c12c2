//! Register allocation and encoding of AArch64 code.
//!
//! Instructions are encoded with `dynasm!`, which checks each instruction's operand forms when
//! it expands and range-checks dynamic immediates when it runs (lowering only hands it
//! immediates that encode). Five encodings are written here by hand, because `dynasm` wants
//! their operand at expansion time or resolves labels itself: the condition-carrying `b.cond`,
//! `csel`, `csinc` and `fcsel` (conditions are computed), and the branches to labels (`b`,
//! `bl`, `b.cond`, `adr`), whose offsets [`CodeBuffer`] patches.
//!
//! Frame: a function with calls, spills, callee-saved registers in use or stack parameters
//! opens with `stp x29, x30, [sp, #-16]!; mov x29, sp` and one `sub sp` that reserves, from
//! the top, the callee-saved registers it uses (at `x29 - 8 * (i + 1)`), its spill slots and
//! the outgoing-argument area at the bottom (`sp + 8 * i`), 16-byte aligned. `x16` and `v31`
//! are never allocated: they are the allocator's scratch registers for cyclic moves. `x17` is
//! emission's scratch (large constants and offsets, float bounds); `x18` is the platform
//! register, never touched.

use super::inst::{
    gpr, regs, AluOp, Amode, Cond, ExtOp, FAluOp, FUnOp, LoadOp, MInst, Rim, Size, StoreOp, Test,
    UnaryOp, CALLEE_SAVED_INT,
};
use crate::ir::{FloatCC, TrapCode};
use crate::machinst::buffer::{CodeBuffer, FixupKind, Label};
use crate::machinst::vcode::VCode;
use crate::machinst::{CodegenError, CompiledCode, MachBlock, PReg, PRegSet, RegClass, VReg};
use dynasmrt::{dynasm, AssemblyOffset, DynasmApi};
use regalloc2::{Allocation, Edit, MachineEnv, RegallocOptions};
use smallvec::SmallVec;

impl Extend<u8> for CodeBuffer {
    fn extend<T: IntoIterator<Item = u8>>(&mut self, iter: T) {
        self.data.extend(iter)
    }
}

impl<'a> Extend<&'a u8> for CodeBuffer {
    fn extend<T: IntoIterator<Item = &'a u8>>(&mut self, iter: T) {
        self.data.extend(iter)
    }
}

impl DynasmApi for CodeBuffer {
    fn offset(&self) -> AssemblyOffset {
        AssemblyOffset(self.data.len())
    }
    fn push(&mut self, byte: u8) {
        self.data.push(byte)
    }
    fn align(&mut self, alignment: usize, with: u8) {
        while !self.data.len().is_multiple_of(alignment) {
            self.data.push(with)
        }
    }
}

/// `dynasm!` for AArch64 into the emitter's buffer.
macro_rules! a64 {
    ($e:expr; $($t:tt)*) => {
        dynasm!($e.buf ; .arch aarch64 ; $($t)*)
    };
}

/// The registers regalloc2 may hand out.
pub fn machine_env() -> MachineEnv {
    let set = |class, regs: &[usize]| {
        let mut s = PRegSet::empty();
        for &r in regs {
            s.add(PReg::new(r, class));
        }
        s
    };
    let caller_saved: Vec<usize> = (0..16).collect();
    // v8-v15 are callee-saved (their low halves): left out rather than saved.
    let floats: Vec<usize> = (0..8).chain(16..31).collect();
    MachineEnv {
        // Caller-saved registers first: they cost nothing in the prologue.
        preferred_regs_by_class: [
            set(RegClass::Int, &caller_saved),
            set(RegClass::Float, &floats),
            PRegSet::empty(),
        ],
        non_preferred_regs_by_class: [
            set(RegClass::Int, &CALLEE_SAVED_INT),
            PRegSet::empty(),
            PRegSet::empty(),
        ],
        scratch_by_class: [
            Some(gpr(regs::X16)),
            Some(PReg::new(regs::V31, RegClass::Float)),
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

    let mut saved: Vec<u32> = Vec::new();
    let mut note = |a: Allocation| {
        if let Some(p) = a.as_reg() {
            let n = p.hw_enc();
            if p.class() == RegClass::Int
                && CALLEE_SAVED_INT.contains(&n)
                && !saved.contains(&(n as u32))
            {
                saved.push(n as u32);
            }
        }
    };
    out.allocs.iter().for_each(|&a| note(a));
    for (_, Edit::Move { from, to }) in &out.edits {
        note(*from);
        note(*to);
    }
    saved.sort_unstable();
    let has_calls = vcode.insts.iter().any(|i| matches!(i, MInst::Call { .. }));
    let (outgoing, stack_params) = crate::machinst::abi::stack_needs(&vcode.insts);
    let spill_bytes = out.num_spillslots as u32 * 8;
    let save_bytes = saved.len() as u32 * 8;
    let reserve = (save_bytes + spill_bytes + outgoing).next_multiple_of(16);
    let frame = has_calls || reserve > 0 || stack_params;

    let mut e = Emitter {
        buf: CodeBuffer::default(),
        block_labels: Vec::new(),
        frame: frame.then_some((reserve, saved)),
        next: None,
        tables: Vec::new(),
        outgoing,
    };
    let emitted = crate::machinst::emit::emit_blocks(vcode, &out, &mut e)?;
    e.place_islands_and_tables();
    if let Some((at, rel)) = e.buf.out_of_range() {
        return Err(CodegenError::new(format!(
            "aarch64: the branch at offset {at:#x} reaches {rel} bytes, beyond its \
             instruction's range (conditional branches reach ±1 MiB): the function is too large"
        )));
    }
    let mut code = e.buf.finish(frame.then_some(reserve));
    if vcode.pcc.is_some() {
        code.decoded = Some(super::pcc::decode_accesses(&code.code, &emitted)?);
    }
    Ok(code)
}

struct Emitter {
    buf: CodeBuffer,
    block_labels: Vec<Label>,
    /// The bytes `sub sp` reserves and the callee-saved registers stored, with a frame.
    frame: Option<(u32, Vec<u32>)>,
    next: Option<Label>,
    /// Jump tables to place after the code.
    tables: Vec<(Label, Vec<MachBlock>)>,
    /// Bytes of the outgoing-argument area below the spill slots.
    outgoing: u32,
}

impl crate::machinst::emit::Emit<MInst> for Emitter {
    fn buf(&mut self) -> &mut CodeBuffer {
        &mut self.buf
    }
    fn begin(&mut self, block_labels: Vec<Label>) {
        self.block_labels = block_labels;
        if self.frame.is_some() {
            self.prologue();
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

/// The hardware number of an allocated register.
fn n(v: VReg) -> u32 {
    v.vreg() as u32
}

const SP: u32 = 31;
const ZR: u32 = 31;
const FP: u32 = regs::FP as u32;
const SCRATCH: u32 = regs::X17 as u32;

/// The `sf` bit of a 64-bit data-processing instruction.
fn sf(size: Size) -> u32 {
    match size {
        Size::W => 0,
        Size::X => 1 << 31,
    }
}

/// Loads or stores `$r` at `$amode` with the scaled (`ldr`), unscaled (`ldur`) or register
/// form of one access width.
macro_rules! access {
    ($e:expr, $amode:expr, $bytes:expr, $scaled:ident, $unscaled:ident, $R:ident, $r:expr) => {{
        let r = $r;
        match $amode {
            Amode::Imm { base, disp } => {
                let b = n(base);
                if disp >= 0 && (disp as u64).is_multiple_of($bytes) && disp / $bytes < 4096 {
                    let d = disp as u32;
                    a64!($e; $scaled $R(r), [X(b), #d]);
                } else if (-256..256).contains(&disp) {
                    let d = disp as i32;
                    a64!($e; $unscaled $R(r), [X(b), #d]);
                } else {
                    return Err(CodegenError::new(format!(
                        "internal error: displacement {disp} reached aarch64 emission"
                    )));
                }
            }
            Amode::Reg {
                base,
                index,
                uxtw: true,
            } => {
                let (b, i) = (n(base), n(index));
                a64!($e; $scaled $R(r), [X(b), W(i), UXTW]);
            }
            Amode::Reg { base, index, .. } => {
                let (b, i) = (n(base), n(index));
                a64!($e; $scaled $R(r), [X(b), X(i)]);
            }
        }
    }};
}

impl Emitter {
    /// After the code: the trap islands (`udf #code`), then the jump tables, whose entries
    /// are offsets of their blocks from the table's start.
    fn place_islands_and_tables(&mut self) {
        for (code, label) in self.buf.take_islands() {
            self.buf.bind(label);
            self.trap(code);
        }
        self.buf
            .place_jump_tables(std::mem::take(&mut self.tables), &self.block_labels);
    }

    fn word(&mut self, w: u32) {
        self.buf.data.extend_from_slice(&w.to_le_bytes());
    }

    fn prologue(&mut self) {
        let Some((reserve, saved)) = self.frame.clone() else {
            return;
        };
        a64!(self; stp x29, x30, [sp, #-16]! ; mov x29, sp);
        self.adjust_sp(false, reserve);
        for (i, &r) in saved.iter().enumerate() {
            let d = -8 * (i as i32 + 1);
            a64!(self; stur X(r), [X(FP), #d]);
        }
    }

    fn epilogue(&mut self) {
        let Some((_, saved)) = self.frame.clone() else {
            return;
        };
        for (i, &r) in saved.iter().enumerate() {
            let d = -8 * (i as i32 + 1);
            a64!(self; ldur X(r), [X(FP), #d]);
        }
        a64!(self; mov sp, x29 ; ldp x29, x30, [sp], #16);
    }

    /// `sub sp, sp, #bytes` (or `add`), through `x17` when `bytes` is no arithmetic immediate.
    fn adjust_sp(&mut self, add: bool, bytes: u32) {
        if bytes == 0 {
            return;
        }
        match Rim::imm(bytes.into()) {
            Some(Rim::Imm(k)) => self.add_imm(!add, Size::X, SP, SP, k, false),
            _ => {
                self.imm(Size::X, SCRATCH, bytes.into());
                if add {
                    a64!(self; add XSP(SP), XSP(SP), X(SCRATCH), UXTX);
                } else {
                    a64!(self; sub XSP(SP), XSP(SP), X(SCRATCH), UXTX);
                }
            }
        }
    }

    /// `add`/`sub` (or `adds`/`subs` when `flags`) of an arithmetic immediate (12 bits,
    /// possibly shifted by 12); register 31 is `sp`, or `zr` as the destination of `subs`.
    fn add_imm(&mut self, sub: bool, size: Size, d: u32, a: u32, k: u32, flags: bool) {
        let (k, shift) = if k < 1 << 12 { (k, 0) } else { (k >> 12, 1) };
        let op = match (sub, flags) {
            (false, false) => 0x1100_0000,
            (false, true) => 0x3100_0000,
            (true, false) => 0x5100_0000,
            (true, true) => 0x7100_0000,
        };
        // `dynasm` reads the shift of `#k, LSL #12` only as a literal; both are one encoding.
        self.word(sf(size) | op | shift << 22 | k << 10 | a << 5 | d);
    }

    /// A branch to `label`: `b` for `None`, else `b.cond`.
    fn jump(&mut self, cond: Option<Cond>, label: Label) {
        let at = self.buf.offset();
        match cond {
            None => {
                self.word(0x1400_0000);
                self.buf.use_label_as(at, at, label, FixupKind::Arm64Jump26);
            }
            Some(c) => {
                self.word(0x5400_0000 | c.bits());
                self.buf.use_label_as(at, at, label, FixupKind::Arm64Cond19);
            }
        }
    }

    fn falls_into(&self, target: MachBlock) -> bool {
        self.next == Some(self.block_labels[target.index()])
    }

    fn jump_to(&mut self, target: MachBlock) {
        if !self.falls_into(target) {
            let l = self.block_labels[target.index()];
            self.jump(None, l);
        }
    }

    /// `udf #code`, recorded as a trap site.
    fn trap(&mut self, code: TrapCode) {
        let at = self.buf.offset();
        self.buf.add_trap(at, code);
        let c = u32::from(code.as_raw());
        a64!(self; udf #c);
    }

    /// The spill slot regalloc2 allocated: above the outgoing-argument area.
    fn slot(&self, a: Allocation) -> i64 {
        let index = a.as_stack().expect("a stack slot").index() as i64;
        i64::from(self.outgoing) + index * 8
    }

    fn emit_move(&mut self, from: Allocation, to: Allocation) -> Result<(), CodegenError> {
        match (from.as_reg(), to.as_reg()) {
            (Some(f), Some(t)) => self.mov(t.class(), t.hw_enc() as u32, f.hw_enc() as u32),
            (Some(f), None) => {
                self.slot_access(true, f.class(), f.hw_enc() as u32, SP, self.slot(to))?
            }
            (None, Some(t)) => {
                self.slot_access(false, t.class(), t.hw_enc() as u32, SP, self.slot(from))?
            }
            (None, None) => {
                return Err(CodegenError::new(
                    "internal error: regalloc2 asked for a stack-to-stack move",
                ))
            }
        }
        Ok(())
    }

    /// Stores (`store`) or loads a whole register of either class at `base + disp`, the
    /// address made in `x17` first when no immediate form holds `disp`.
    fn slot_access(
        &mut self,
        store: bool,
        class: RegClass,
        r: u32,
        base: u32,
        disp: i64,
    ) -> Result<(), CodegenError> {
        let (base, disp) = if Amode::fits(disp, 8) {
            (base, disp)
        } else {
            self.imm(Size::X, SCRATCH, disp as u64);
            a64!(self; add XSP(SCRATCH), XSP(base), X(SCRATCH), UXTX);
            (SCRATCH, 0)
        };
        let amode = Amode::Imm {
            base: VReg::new(base as usize, RegClass::Int),
            disp,
        };
        let narrowed = crate::mutants::active(crate::mutants::Mutant::ReloadNarrowed);
        match (store, class) {
            (true, RegClass::Int) => access!(self, amode, 8, str, stur, X, r),
            (true, _) => access!(self, amode, 8, str, stur, D, r),
            (false, RegClass::Int) if narrowed => access!(self, amode, 4, ldr, ldur, W, r),
            (false, RegClass::Int) => access!(self, amode, 8, ldr, ldur, X, r),
            (false, _) => access!(self, amode, 8, ldr, ldur, D, r),
        }
        Ok(())
    }

    fn mov(&mut self, class: RegClass, d: u32, s: u32) {
        if d == s {
            return;
        }
        match class {
            RegClass::Int => a64!(self; mov X(d), X(s)),
            _ => a64!(self; fmov D(d), D(s)),
        }
    }

    /// The constant `imm` in `d`: `movz` or `movn` and a `movk` per remaining halfword. A `W`
    /// constant is the low 32 bits (the upper half of `d` zeroed).
    fn imm(&mut self, size: Size, d: u32, imm: u64) {
        let halves: u32 = if size == Size::X { 4 } else { 2 };
        let imm = if size == Size::X {
            imm
        } else {
            imm & 0xffff_ffff
        };
        let hw = |i: u32| ((imm >> (16 * i)) & 0xffff) as u32;
        let ones = (0..halves).filter(|&i| hw(i) == 0xffff).count();
        let zeros = (0..halves).filter(|&i| hw(i) == 0).count();
        // `movn` when more halfwords are all ones than all zeros: they come for free.
        let (inverted, skip) = if ones > zeros {
            (true, 0xffff)
        } else {
            (false, 0)
        };
        // A constant made of skipped halfwords alone (0 or all ones) is one instruction on
        // the lowest.
        let mut emitted: SmallVec<[u32; 4]> = (0..halves).filter(|&i| hw(i) != skip).collect();
        if emitted.is_empty() {
            emitted.push(0);
        }
        let mut first = true;
        for i in emitted {
            let h = hw(i);
            let opc: u32 = match (first, inverted) {
                (true, false) => 0x5280_0000, // movz
                (true, true) => 0x1280_0000,  // movn
                (false, _) => 0x7280_0000,    // movk
            };
            let field = if first && inverted { !h & 0xffff } else { h };
            // `dynasm` reads the shift of `movz`/`movk` only as a literal.
            self.word(sf(size) | opc | (i << 21) | field << 5 | d);
            first = false;
        }
    }

    /// Sets the flags for `test` and returns the condition that says it holds.
    fn test(&mut self, test: &Test) -> Cond {
        match *test {
            Test::Cmp { size, cond, a, b } => {
                let a = n(a);
                match (b, size) {
                    (Rim::Reg(b), Size::W) => {
                        let b = n(b);
                        a64!(self; cmp W(a), W(b));
                    }
                    (Rim::Reg(b), Size::X) => {
                        let b = n(b);
                        a64!(self; cmp X(a), X(b));
                    }
                    (Rim::Imm(k), size) => self.add_imm(true, size, ZR, a, k, true),
                }
                cond
            }
            Test::NonZero { size, x, zero } => {
                self.add_imm(true, size, ZR, n(x), 0, true);
                if zero {
                    Cond::Eq
                } else {
                    Cond::Ne
                }
            }
        }
    }

    /// `csinc d, a, b, cond` (`cset d, c` is `csinc d, zr, zr, !c`).
    fn csinc(&mut self, size: Size, d: u32, a: u32, b: u32, cond: Cond) {
        self.word(sf(size) | 0x1a80_0400 | b << 16 | cond.bits() << 12 | a << 5 | d);
    }

    fn cset(&mut self, d: u32, cond: Cond) {
        self.csinc(Size::W, d, ZR, ZR, cond.invert());
    }

    /// `csel d, t, f, cond`.
    fn csel(&mut self, d: u32, t: u32, f: u32, cond: Cond) {
        self.word(sf(Size::X) | 0x1a80_0000 | f << 16 | cond.bits() << 12 | t << 5 | d);
    }

    fn alu(&mut self, op: AluOp, size: Size, d: u32, a: u32, b: u32) {
        macro_rules! by_size {
            ($ins:ident) => {
                match size {
                    Size::W => a64!(self; $ins W(d), W(a), W(b)),
                    Size::X => a64!(self; $ins X(d), X(a), X(b)),
                }
            };
        }
        match op {
            AluOp::Add => by_size!(add),
            AluOp::Sub => by_size!(sub),
            AluOp::And => by_size!(and),
            AluOp::Orr => by_size!(orr),
            AluOp::Eor => by_size!(eor),
            AluOp::Mul => by_size!(mul),
            AluOp::Lsl => by_size!(lslv),
            AluOp::Lsr => by_size!(lsrv),
            AluOp::Asr => by_size!(asrv),
            AluOp::Ror => by_size!(rorv),
            AluOp::Udiv => by_size!(udiv),
            AluOp::Sdiv => by_size!(sdiv),
            AluOp::Umulh => a64!(self; umulh X(d), X(a), X(b)),
            AluOp::Smulh => a64!(self; smulh X(d), X(a), X(b)),
        }
    }

    fn shift_imm(
        &mut self,
        op: AluOp,
        size: Size,
        d: u32,
        a: u32,
        k: u32,
    ) -> Result<(), CodegenError> {
        match (op, size) {
            (AluOp::Lsl, Size::W) => a64!(self; lsl W(d), W(a), #k),
            (AluOp::Lsl, Size::X) => a64!(self; lsl X(d), X(a), #k),
            (AluOp::Lsr, Size::W) => a64!(self; lsr W(d), W(a), #k),
            (AluOp::Lsr, Size::X) => a64!(self; lsr X(d), X(a), #k),
            (AluOp::Asr, Size::W) => a64!(self; asr W(d), W(a), #k),
            (AluOp::Asr, Size::X) => a64!(self; asr X(d), X(a), #k),
            (AluOp::Ror, Size::W) => a64!(self; ror W(d), W(a), #k),
            (AluOp::Ror, Size::X) => a64!(self; ror X(d), X(a), #k),
            (op, _) => {
                return Err(CodegenError::new(format!(
                    "internal error: {op:?} by an immediate reached aarch64 emission"
                )))
            }
        }
        Ok(())
    }

    /// The float constant with bits `bits` in `d`, through `x17`.
    fn float_const(&mut self, wide: bool, d: u32, bits: u64) {
        if wide {
            self.imm(Size::X, SCRATCH, bits);
            a64!(self; fmov D(d), X(SCRATCH));
        } else {
            self.imm(Size::W, SCRATCH, bits);
            a64!(self; fmov S(d), W(SCRATCH));
        }
    }

    fn fcmp(&mut self, wide: bool, a: u32, b: u32) {
        if wide {
            a64!(self; fcmp D(a), D(b));
        } else {
            a64!(self; fcmp S(a), S(b));
        }
    }

    /// `fcvtzs`/`fcvtzu` (saturating; NaN gives 0).
    fn fcvtz(&mut self, signed: bool, src_wide: bool, dst_wide: bool, d: u32, s: u32) {
        match (signed, src_wide, dst_wide) {
            (true, false, false) => a64!(self; fcvtzs W(d), S(s)),
            (true, false, true) => a64!(self; fcvtzs X(d), S(s)),
            (true, true, false) => a64!(self; fcvtzs W(d), D(s)),
            (true, true, true) => a64!(self; fcvtzs X(d), D(s)),
            (false, false, false) => a64!(self; fcvtzu W(d), S(s)),
            (false, false, true) => a64!(self; fcvtzu X(d), S(s)),
            (false, true, false) => a64!(self; fcvtzu W(d), D(s)),
            (false, true, true) => a64!(self; fcvtzu X(d), D(s)),
        }
    }

    /// The trapping float-to-integer conversion: NaN traps `bad_toint`; a value whose
    /// truncation is out of the integer's range traps `int_ovf`. The bounds are exclusive and
    /// exact in the source format: below, `-2^(N-1) - 1` where the format holds it (f64 for
    /// i32) and else `-2^(N-1)` inclusive, or `-1` unsigned; above, `2^(N-1)` or `2^N`.
    fn float_to_int_trapping(
        &mut self,
        signed: bool,
        src_wide: bool,
        dst_wide: bool,
        d: u32,
        s: u32,
        t: u32,
    ) {
        let bits = if dst_wide { 64 } else { 32 };
        let bad = self.buf.trap_island(TrapCode::BAD_CONVERSION_TO_INTEGER);
        let ovf = self.buf.trap_island(TrapCode::INTEGER_OVERFLOW);
        self.fcmp(src_wide, s, s);
        self.jump(Some(Cond::Vs), bad);
        let to_bits = |x: f64| {
            if src_wide {
                x.to_bits()
            } else {
                u64::from((x as f32).to_bits())
            }
        };
        let (low, low_cond) = if !signed {
            (-1.0, Cond::Ls)
        } else if src_wide && !dst_wide {
            (-2147483649.0, Cond::Ls)
        } else {
            (-(2f64.powi(bits - 1)), Cond::Lo)
        };
        self.float_const(src_wide, t, to_bits(low));
        self.fcmp(src_wide, s, t);
        self.jump(Some(low_cond), ovf);
        let high = if signed {
            2f64.powi(bits - 1)
        } else {
            2f64.powi(bits)
        };
        self.float_const(src_wide, t, to_bits(high));
        self.fcmp(src_wide, s, t);
        self.jump(Some(Cond::Ge), ovf);
        self.fcvtz(signed, src_wide, dst_wide, d, s);
    }

    fn emit_inst(&mut self, inst: &MInst) -> Result<(), CodegenError> {
        match inst {
            MInst::Args { .. } => {}
            MInst::StackArg { dst, slot } => {
                // Above the saved frame pointer and link register.
                let disp = 16 + 8 * i64::from(*slot);
                self.slot_access(false, dst.class(), n(*dst), FP, disp)?;
            }
            MInst::Ret { .. } => {
                self.epilogue();
                a64!(self; ret);
            }
            MInst::Alu {
                op,
                size,
                dst,
                a,
                b,
            } => self.alu(*op, *size, n(*dst), n(*a), n(*b)),
            MInst::AluImm {
                sub,
                size,
                dst,
                a,
                imm,
            } => self.add_imm(*sub, *size, n(*dst), n(*a), *imm, false),
            MInst::AddUxtw { dst, a, b } => {
                let (d, a, b) = (n(*dst), n(*a), n(*b));
                a64!(self; add XSP(d), XSP(a), W(b), UXTW);
            }
            MInst::Msub { size, dst, a, b, c } => {
                let (d, a, b, c) = (n(*dst), n(*a), n(*b), n(*c));
                match size {
                    Size::W => a64!(self; msub W(d), W(a), W(b), W(c)),
                    Size::X => a64!(self; msub X(d), X(a), X(b), X(c)),
                }
            }
            MInst::ShiftImm {
                op,
                size,
                dst,
                a,
                amount,
            } => self.shift_imm(*op, *size, n(*dst), n(*a), u32::from(*amount))?,
            MInst::Unary {
                op,
                size,
                dst,
                a,
                tmp,
            } => {
                let (d, a) = (n(*dst), n(*a));
                match (op, size) {
                    (UnaryOp::Neg, Size::W) => a64!(self; neg W(d), W(a)),
                    (UnaryOp::Neg, Size::X) => a64!(self; neg X(d), X(a)),
                    (UnaryOp::Not, Size::W) => a64!(self; mvn W(d), W(a)),
                    (UnaryOp::Not, Size::X) => a64!(self; mvn X(d), X(a)),
                    (UnaryOp::Rev, Size::W) => a64!(self; rev W(d), W(a)),
                    (UnaryOp::Rev, Size::X) => a64!(self; rev X(d), X(a)),
                    (UnaryOp::Rev16, _) => a64!(self; rev16 W(d), W(a)),
                    (UnaryOp::Clz, Size::W) => a64!(self; clz W(d), W(a)),
                    (UnaryOp::Clz, Size::X) => a64!(self; clz X(d), X(a)),
                    (UnaryOp::Ctz, Size::W) => a64!(self; rbit W(d), W(a) ; clz W(d), W(d)),
                    (UnaryOp::Ctz, Size::X) => a64!(self; rbit X(d), X(a) ; clz X(d), X(d)),
                    (UnaryOp::Popcnt, size) => {
                        let Some(t) = tmp.map(n) else {
                            return Err(CodegenError::new(
                                "internal error: popcnt without its vector temporary",
                            ));
                        };
                        match size {
                            Size::W => a64!(self; fmov S(t), W(a)),
                            Size::X => a64!(self; fmov D(t), X(a)),
                        }
                        a64!(self; cnt V(t).B8, V(t).B8 ; addv B(t), V(t).B8 ; fmov W(d), S(t));
                    }
                }
            }
            MInst::Ext { op, dst, src } => {
                let (d, s) = (n(*dst), n(*src));
                match op {
                    ExtOp::Zx8 => a64!(self; uxtb W(d), W(s)),
                    ExtOp::Zx16 => a64!(self; uxth W(d), W(s)),
                    ExtOp::Zx32 => a64!(self; mov W(d), W(s)),
                    ExtOp::Sx8To32 => a64!(self; sxtb W(d), W(s)),
                    ExtOp::Sx16To32 => a64!(self; sxth W(d), W(s)),
                    ExtOp::Sx8To64 => a64!(self; sxtb X(d), W(s)),
                    ExtOp::Sx16To64 => a64!(self; sxth X(d), W(s)),
                    ExtOp::Sx32To64 => a64!(self; sxtw X(d), W(s)),
                }
            }
            MInst::Mov { dst, src } => self.mov(dst.class(), n(*dst), n(*src)),
            MInst::Imm { size, dst, imm } => self.imm(*size, n(*dst), *imm),
            MInst::CSet { test, dst } => {
                let c = self.test(test);
                self.cset(n(*dst), c);
            }
            MInst::CSel { test, dst, t, f } => {
                let c = self.test(test);
                let (d, t, f) = (n(*dst), n(*t), n(*f));
                if dst.class() == RegClass::Int {
                    self.csel(d, t, f, c);
                } else {
                    // fcsel (double): the whole register, whichever width the value has.
                    self.word(0x1e60_0c00 | f << 16 | c.bits() << 12 | t << 5 | d);
                }
            }
            MInst::Csdb => a64!(self; csdb),
            MInst::CSelZero { test, dst, f, csdb } => {
                let c = self.test(test);
                self.csel(n(*dst), ZR, n(*f), c);
                if *csdb {
                    a64!(self; csdb);
                }
            }
            MInst::Load {
                op,
                dst,
                amode,
                trap,
            } => {
                if let Some(code) = trap {
                    let at = self.buf.offset();
                    self.buf.add_trap(at, *code);
                }
                let (d, m) = (n(*dst), *amode);
                match op {
                    LoadOp::U8 => access!(self, m, 1, ldrb, ldurb, W, d),
                    LoadOp::S8To32 => access!(self, m, 1, ldrsb, ldursb, W, d),
                    LoadOp::S8To64 => access!(self, m, 1, ldrsb, ldursb, X, d),
                    LoadOp::U16 => access!(self, m, 2, ldrh, ldurh, W, d),
                    LoadOp::S16To32 => access!(self, m, 2, ldrsh, ldursh, W, d),
                    LoadOp::S16To64 => access!(self, m, 2, ldrsh, ldursh, X, d),
                    // The encoder writes an 8-byte load where a 4-byte one was proven:
                    // the decoding of the emitted code must catch it.
                    LoadOp::U32
                        if crate::mutants::active(crate::mutants::Mutant::EmissionDiffers) =>
                    {
                        access!(self, m, 8, ldr, ldur, X, d)
                    }
                    LoadOp::U32 => access!(self, m, 4, ldr, ldur, W, d),
                    LoadOp::S32To64 => access!(self, m, 4, ldrsw, ldursw, X, d),
                    LoadOp::X64 => access!(self, m, 8, ldr, ldur, X, d),
                    LoadOp::F32 => access!(self, m, 4, ldr, ldur, S, d),
                    LoadOp::F64 => access!(self, m, 8, ldr, ldur, D, d),
                }
            }
            MInst::Store {
                op,
                src,
                amode,
                trap,
            } => {
                if let Some(code) = trap {
                    let at = self.buf.offset();
                    self.buf.add_trap(at, *code);
                }
                let (s, m) = (n(*src), *amode);
                match op {
                    StoreOp::B => access!(self, m, 1, strb, sturb, W, s),
                    StoreOp::H => access!(self, m, 2, strh, sturh, W, s),
                    StoreOp::W => access!(self, m, 4, str, stur, W, s),
                    StoreOp::X => access!(self, m, 8, str, stur, X, s),
                    StoreOp::F32 => access!(self, m, 4, str, stur, S, s),
                    StoreOp::F64 => access!(self, m, 8, str, stur, D, s),
                }
            }
            MInst::AddTrap {
                size,
                dst,
                a,
                b,
                code,
            } => {
                let (d, a) = (n(*dst), n(*a));
                match (b, size) {
                    (Rim::Imm(k), size) => self.add_imm(false, *size, d, a, *k, true),
                    (Rim::Reg(b), Size::W) => {
                        let b = n(*b);
                        a64!(self; adds W(d), W(a), W(b));
                    }
                    (Rim::Reg(b), Size::X) => {
                        let b = n(*b);
                        a64!(self; adds X(d), X(a), X(b));
                    }
                }
                // Carry set: the unsigned sum wrapped.
                let l = self.buf.trap_island(*code);
                self.jump(Some(Cond::Hs), l);
            }
            MInst::FImm {
                wide,
                dst,
                tmp,
                bits,
            } => {
                let (d, t) = (n(*dst), n(*tmp));
                if *bits == 0 {
                    a64!(self; fmov D(d), xzr);
                } else if *wide {
                    self.imm(Size::X, t, *bits);
                    a64!(self; fmov D(d), X(t));
                } else {
                    self.imm(Size::W, t, *bits);
                    a64!(self; fmov S(d), W(t));
                }
            }
            MInst::FAlu {
                op,
                wide,
                dst,
                a,
                b,
            } => {
                let (d, a, b) = (n(*dst), n(*a), n(*b));
                macro_rules! f {
                    ($ins:ident) => {
                        if *wide {
                            a64!(self; $ins D(d), D(a), D(b))
                        } else {
                            a64!(self; $ins S(d), S(a), S(b))
                        }
                    };
                }
                // fmin/fmax propagate NaN and order -0 below +0, as CLIF's do.
                match op {
                    FAluOp::Add => f!(fadd),
                    FAluOp::Sub => f!(fsub),
                    FAluOp::Mul => f!(fmul),
                    FAluOp::Div => f!(fdiv),
                    FAluOp::Min => f!(fmin),
                    FAluOp::Max => f!(fmax),
                }
            }
            MInst::FUn { op, wide, dst, src } => {
                let (d, s) = (n(*dst), n(*src));
                macro_rules! f {
                    ($ins:ident) => {
                        if *wide {
                            a64!(self; $ins D(d), D(s))
                        } else {
                            a64!(self; $ins S(d), S(s))
                        }
                    };
                }
                match op {
                    FUnOp::Sqrt => f!(fsqrt),
                    FUnOp::Neg => f!(fneg),
                    FUnOp::Abs => f!(fabs),
                    FUnOp::Nearest => f!(frintn),
                    FUnOp::Floor => f!(frintm),
                    FUnOp::Ceil => f!(frintp),
                    FUnOp::Trunc => f!(frintz),
                    FUnOp::Promote => a64!(self; fcvt D(d), S(s)),
                    FUnOp::Demote => a64!(self; fcvt S(d), D(s)),
                }
            }
            MInst::Bitcast { wide, dst, src } => {
                let (d, s) = (n(*dst), n(*src));
                match (dst.class(), wide) {
                    (RegClass::Int, false) => a64!(self; fmov W(d), S(s)),
                    (RegClass::Int, true) => a64!(self; fmov X(d), D(s)),
                    (_, false) => a64!(self; fmov S(d), W(s)),
                    (_, true) => a64!(self; fmov D(d), X(s)),
                }
            }
            MInst::FCmp {
                cond,
                wide,
                dst,
                a,
                b,
            } => {
                let d = n(*dst);
                self.fcmp(*wide, n(*a), n(*b));
                // After `fcmp`: less N, equal ZC, greater C, unordered CV.
                use FloatCC::*;
                let one = |c| Some(c);
                let conds: (Cond, Option<Cond>) = match cond {
                    Equal => (Cond::Eq, None),
                    NotEqual => (Cond::Ne, None),
                    LessThan => (Cond::Mi, None),
                    LessThanOrEqual => (Cond::Ls, None),
                    GreaterThan => (Cond::Gt, None),
                    GreaterThanOrEqual => (Cond::Ge, None),
                    Ordered => (Cond::Vc, None),
                    Unordered => (Cond::Vs, None),
                    UnorderedOrLessThan => (Cond::Lt, None),
                    UnorderedOrLessThanOrEqual => (Cond::Le, None),
                    UnorderedOrGreaterThan => (Cond::Hi, None),
                    UnorderedOrGreaterThanOrEqual => (Cond::Hs, None),
                    OrderedNotEqual => (Cond::Mi, one(Cond::Gt)),
                    UnorderedOrEqual => (Cond::Eq, one(Cond::Vs)),
                };
                self.cset(d, conds.0);
                if let Some(c) = conds.1 {
                    self.cset(SCRATCH, c);
                    a64!(self; orr W(d), W(d), W(SCRATCH));
                }
            }
            MInst::IntToFloat {
                signed,
                src_wide,
                dst_wide,
                dst,
                src,
            } => {
                let (d, s) = (n(*dst), n(*src));
                match (signed, src_wide, dst_wide) {
                    (true, false, false) => a64!(self; scvtf S(d), W(s)),
                    (true, true, false) => a64!(self; scvtf S(d), X(s)),
                    (true, false, true) => a64!(self; scvtf D(d), W(s)),
                    (true, true, true) => a64!(self; scvtf D(d), X(s)),
                    (false, false, false) => a64!(self; ucvtf S(d), W(s)),
                    (false, true, false) => a64!(self; ucvtf S(d), X(s)),
                    (false, false, true) => a64!(self; ucvtf D(d), W(s)),
                    (false, true, true) => a64!(self; ucvtf D(d), X(s)),
                }
            }
            MInst::FloatToInt {
                signed,
                sat,
                src_wide,
                dst_wide,
                dst,
                src,
                tmp,
            } => {
                let (d, s) = (n(*dst), n(*src));
                if *sat {
                    self.fcvtz(*signed, *src_wide, *dst_wide, d, s);
                } else {
                    self.float_to_int_trapping(*signed, *src_wide, *dst_wide, d, s, n(*tmp));
                }
            }
            MInst::Jump { target } => self.jump_to(*target),
            MInst::Br {
                test,
                taken,
                not_taken,
            } => {
                let c = self.test(test);
                if self.falls_into(*taken) {
                    let l = self.block_labels[not_taken.index()];
                    self.jump(Some(c.invert()), l);
                } else {
                    let l = self.block_labels[taken.index()];
                    self.jump(Some(c), l);
                    self.jump_to(*not_taken);
                }
            }
            MInst::BrTable {
                idx,
                tmp1,
                tmp2,
                default,
                targets,
            } => {
                let (idx, t1, t2) = (n(*idx), n(*tmp1), n(*tmp2));
                let len = targets.len() as u64;
                match Rim::imm(len) {
                    Some(Rim::Imm(k)) => self.add_imm(true, Size::W, ZR, idx, k, true),
                    _ => {
                        self.imm(Size::W, SCRATCH, len);
                        a64!(self; cmp W(idx), W(SCRATCH));
                    }
                }
                let l = self.block_labels[default.index()];
                self.jump(Some(Cond::Hs), l);
                let table = self.buf.new_label();
                let at = self.buf.offset();
                self.word(0x1000_0000 | t1);
                self.buf.use_label_as(at, at, table, FixupKind::Arm64Adr21);
                // Entries are 32-bit offsets from the table's start.
                a64!(self; ldrsw X(t2), [X(t1), W(idx), UXTW #2]
                    ; add X(t1), X(t1), X(t2)
                    ; br X(t1));
                self.tables.push((table, targets.clone()));
            }
            MInst::TrapIf { test, code } => {
                let c = self.test(test);
                let l = self.buf.trap_island(*code);
                self.jump(Some(c), l);
            }
            MInst::Trap { code } => self.trap(*code),
            // The stack arguments are in the outgoing area at the bottom of the frame, where
            // the callee finds them at its `sp` on entry.
            MInst::StoreCallArg { src, slot } => {
                self.slot_access(true, src.class(), n(*src), SP, 8 * i64::from(*slot))?
            }
            MInst::LoadCallRet { dst, slot } => {
                self.slot_access(false, dst.class(), n(*dst), SP, 8 * i64::from(*slot))?
            }
            // The caller's slots are above the saved frame pointer and link register.
            MInst::StoreRet { src, slot } => {
                self.slot_access(true, src.class(), n(*src), FP, 16 + 8 * i64::from(*slot))?
            }
            MInst::Call { callee, .. } => {
                // `bl` with a zero offset: the runner patches the word offset (imm26).
                let at = self.buf.offset();
                self.word(0x9400_0000);
                self.buf.add_reloc(at, callee);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "emit_tests.rs"]
mod tests;
