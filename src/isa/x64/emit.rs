//! Register allocation and encoding of x86-64 code with `cranelift-assembler-x64`.
//!
//! Frame: a function with calls, spills or callee-saved registers in use opens with
//! `push rbp; mov rbp, rsp`, pushes the callee-saved registers it uses, and reserves its spill
//! slots below them (`rsp + 8*i`) so that `rsp` is 16-byte aligned at calls. A leaf function
//! that needs none of that has no frame. `r11` and `xmm15` are never allocated: they are the
//! allocator's scratch registers for cyclic moves.

use super::inst::{
    gpr, regs, AluOp, Amode, Cc, CountOp, ExtOp, FAluOp, FUnOp, LoadOp, MInst, Rmi, ShiftOp, Size,
    StoreOp, Test, UnaryOp,
};
use crate::ir::{FloatCC, TrapCode};
use crate::machinst::buffer::{CodeBuffer, Label};
use crate::machinst::vcode::VCode;
use crate::machinst::{CodegenError, CompiledCode, MachBlock, PReg, PRegSet, RegClass, VReg};
use cranelift_assembler_x64 as asm;
use cranelift_assembler_x64::inst as i;
use regalloc2::{Allocation, Edit, MachineEnv, RegallocOptions};
use std::num::NonZeroU8;

/// The register types the assembler is instantiated with: hardware encodings.
pub struct Regs;

impl asm::Registers for Regs {
    type ReadGpr = u8;
    type ReadWriteGpr = u8;
    type WriteGpr = u8;
    type ReadXmm = u8;
    type ReadWriteXmm = u8;
    type WriteXmm = u8;
}

impl asm::CodeSink for CodeBuffer {
    fn put1(&mut self, v: u8) {
        self.data.push(v);
    }
    fn put2(&mut self, v: u16) {
        self.data.extend_from_slice(&v.to_le_bytes());
    }
    fn put4(&mut self, v: u32) {
        self.data.extend_from_slice(&v.to_le_bytes());
    }
    fn put8(&mut self, v: u64) {
        self.data.extend_from_slice(&v.to_le_bytes());
    }
    fn add_trap(&mut self, code: asm::TrapCode) {
        let at = self.offset();
        let code = TrapCode::from_raw(code.0.get()).expect("non-zero by construction");
        CodeBuffer::add_trap(self, at, code);
    }
    fn use_target(&mut self, target: asm::DeferredTarget) {
        // RIP-relative operands (only `lea` of a jump table here): the 32-bit field starts
        // here and is relative to its own end, which is the end of the instruction.
        if let asm::DeferredTarget::Label(l) = target {
            let at = self.offset();
            self.use_label(at, at + 4, Label::from_index(l.0));
        }
    }
    fn known_offset(&self, offset: asm::KnownOffset) -> i32 {
        panic!("no known offsets are used (asked for {offset})")
    }
}

fn trap_code(code: TrapCode) -> asm::TrapCode {
    asm::TrapCode(NonZeroU8::new(code.as_raw()).expect("trap codes are non-zero"))
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
    let xmms: Vec<usize> = (0..15).collect();
    MachineEnv {
        // Caller-saved registers first: they cost nothing in the prologue.
        preferred_regs_by_class: [
            set(RegClass::Int, &[0, 1, 2, 6, 7, 8, 9, 10]),
            set(RegClass::Float, &xmms),
            PRegSet::empty(),
        ],
        non_preferred_regs_by_class: [
            set(RegClass::Int, &[3, 12, 13, 14, 15]),
            PRegSet::empty(),
            PRegSet::empty(),
        ],
        scratch_by_class: [
            Some(gpr(regs::R11)),
            Some(PReg::new(15, RegClass::Float)),
            None,
        ],
        fixed_stack_slots: Vec::new(),
    }
}

const CALLEE_SAVED: [u8; 5] = [3, 12, 13, 14, 15];

/// Allocates registers and encodes the function.
pub fn emit(vcode: &VCode<MInst>) -> Result<CompiledCode, CodegenError> {
    let out = regalloc2::run(vcode, &machine_env(), &RegallocOptions::default())
        .map_err(|e| CodegenError::new(format!("register allocation failed: {e}")))?;
    crate::machinst::pcc::check_allocation(vcode, &machine_env(), &out)?;

    let mut saved: Vec<u8> = Vec::new();
    let mut note = |a: Allocation| {
        if let Some(p) = a.as_reg() {
            let n = p.hw_enc() as u8;
            if p.class() == RegClass::Int && CALLEE_SAVED.contains(&n) && !saved.contains(&n) {
                saved.push(n);
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
    // The outgoing-argument area at the bottom of the frame, below the spill slots: the
    // largest call's slots, in a 16-byte multiple so that calls stay aligned. The caller's
    // slots (stack parameters and results) are reached through the frame pointer.
    let (outgoing, stack_params) = crate::machinst::abi::stack_needs(&vcode.insts);
    let outgoing = outgoing.next_multiple_of(16);
    let spill_bytes = out.num_spillslots as u32 * 8;
    // After `push rbp` the stack is 16-byte aligned; with calls, the saved registers and the
    // spill area together keep it so.
    let save_bytes = saved.len() as u32 * 8;
    let reserve = if has_calls {
        (spill_bytes + save_bytes).next_multiple_of(16) - save_bytes + outgoing
    } else {
        spill_bytes
    };
    let frame = has_calls || spill_bytes > 0 || !saved.is_empty() || stack_params;

    let mut e = Emitter {
        buf: CodeBuffer::default(),
        block_labels: Vec::new(),
        frame: frame.then_some((reserve, saved.clone())),
        next: None,
        tables: Vec::new(),
        outgoing: outgoing as i32,
    };
    let emitted = crate::machinst::emit::emit_blocks(vcode, &out, &mut e)?;
    for (code, label) in e.buf.take_islands() {
        e.buf.bind(label);
        i::ud2_zo::new(trap_code(code)).encode(&mut e.buf);
    }
    e.buf
        .place_jump_tables(std::mem::take(&mut e.tables), &e.block_labels);
    let mut code = e.buf.finish(frame.then_some(reserve + save_bytes));
    if vcode.pcc.is_some() {
        code.decoded = Some(super::pcc::decode_accesses(&code.code, &emitted)?);
    }
    Ok(code)
}

struct Emitter {
    buf: CodeBuffer,
    block_labels: Vec<Label>,
    /// The spill area's size and the callee-saved registers pushed, when there is a frame.
    frame: Option<(u32, Vec<u8>)>,
    next: Option<Label>,
    /// Jump tables to place after the code.
    tables: Vec<(Label, Vec<MachBlock>)>,
    /// Bytes of the outgoing-argument area below the spill slots.
    outgoing: i32,
}

impl crate::machinst::emit::Emit<MInst> for Emitter {
    fn buf(&mut self) -> &mut CodeBuffer {
        &mut self.buf
    }
    fn begin(&mut self, block_labels: Vec<Label>) {
        self.block_labels = block_labels;
        if let Some((reserve, saved)) = self.frame.clone() {
            self.prologue(reserve, &saved);
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

/// The hardware encoding of an allocated register.
fn n(v: VReg) -> u8 {
    v.vreg() as u8
}

fn mem(m: &Amode, trap: Option<TrapCode>) -> asm::Amode<u8> {
    let trap = trap.map(trap_code);
    match m.index {
        None => asm::Amode::ImmReg {
            base: n(m.base),
            simm32: asm::AmodeOffsetPlusKnownOffset {
                simm32: m.disp.into(),
                offset: None,
            },
            trap,
        },
        Some(index) => asm::Amode::ImmRegRegShift {
            base: n(m.base),
            index: asm::NonRspGpr::new(n(index)),
            scale: if crate::mutants::active(crate::mutants::Mutant::EmissionDiffers) {
                asm::Scale::Four
            } else {
                asm::Scale::One
            },
            simm32: m.disp.into(),
            trap,
        },
    }
}

/// The 8-byte stack slot at `disp` from `reg` (`rsp` or `rbp`).
fn frame_slot(reg: usize, disp: i32) -> asm::Amode<u8> {
    mem(
        &Amode {
            base: VReg::new(reg, RegClass::Int),
            index: None,
            disp,
        },
        None,
    )
}

type GM = asm::GprMem<u8, u8>;

/// Encodes the form of `size` among four instructions taking the same operands.
macro_rules! by_size {
    ($sink:expr, $size:expr, $b:ident, $w:ident, $l:ident, $q:ident, $($arg:expr),*) => {
        match $size {
            Size::B => i::$b::<Regs>::new($($arg),*).encode($sink),
            Size::W => i::$w::<Regs>::new($($arg),*).encode($sink),
            Size::L => i::$l::<Regs>::new($($arg),*).encode($sink),
            Size::Q => i::$q::<Regs>::new($($arg),*).encode($sink),
        }
    };
}

impl Emitter {
    fn s(&mut self) -> &mut CodeBuffer {
        &mut self.buf
    }

    fn prologue(&mut self, reserve: u32, saved: &[u8]) {
        i::pushq_o::<Regs>::new(regs::RBP as u8).encode(&mut self.buf);
        i::movq_mr::<Regs>::new(GM::Gpr(regs::RBP as u8), regs::RSP as u8).encode(&mut self.buf);
        for &r in saved {
            i::pushq_o::<Regs>::new(r).encode(&mut self.buf);
        }
        if reserve > 0 {
            i::subq_mi_sxl::<Regs>::new(GM::Gpr(regs::RSP as u8), reserve as i32)
                .encode(&mut self.buf);
        }
    }

    fn epilogue(&mut self) {
        let Some((reserve, saved)) = self.frame.clone() else {
            return;
        };
        if reserve > 0 {
            i::addq_mi_sxl::<Regs>::new(GM::Gpr(regs::RSP as u8), reserve as i32)
                .encode(&mut self.buf);
        }
        for &r in saved.iter().rev() {
            i::popq_o::<Regs>::new(r).encode(&mut self.buf);
        }
        i::popq_o::<Regs>::new(regs::RBP as u8).encode(&mut self.buf);
    }

    /// A `jcc rel32` (or `jmp` for `None`) to `label`.
    fn jump(&mut self, cc: Option<Cc>, label: Label) {
        macro_rules! j {
            ($($c:ident => $ins:ident),*) => {
                match cc {
                    None => i::jmp_d32::new(0).encode(&mut self.buf),
                    $(Some(Cc::$c) => i::$ins::new(0).encode(&mut self.buf),)*
                }
            };
        }
        j!(E => je_d32, Ne => jne_d32, L => jl_d32, Le => jle_d32, G => jg_d32, Ge => jge_d32,
           B => jb_d32, Be => jbe_d32, A => ja_d32, Ae => jae_d32, P => jp_d32, Np => jnp_d32,
           O => jo_d32, No => jno_d32, S => js_d32, Ns => jns_d32);
        let end = self.buf.offset();
        self.buf.use_label(end - 4, end, label);
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

    /// The spill slot regalloc2 allocated: above the outgoing-argument area.
    fn slot(&self, a: Allocation) -> asm::Amode<u8> {
        let index = a.as_stack().expect("a stack slot").index() as i32;
        frame_slot(regs::RSP, self.outgoing + index * 8)
    }

    fn emit_move(&mut self, from: Allocation, to: Allocation) -> Result<(), CodegenError> {
        match (from.as_reg(), to.as_reg()) {
            (Some(f), Some(t)) => self.mov(t.class(), t.hw_enc() as u8, f.hw_enc() as u8),
            (Some(f), None) => self.store_slot(self.slot(to), f.class(), f.hw_enc() as u8),
            (None, Some(t)) => self.load_slot(t.class(), t.hw_enc() as u8, self.slot(from)),
            (None, None) => {
                return Err(CodegenError::new(
                    "internal error: regalloc2 asked for a stack-to-stack move",
                ))
            }
        }
        Ok(())
    }

    /// Stores a whole register (of either class) to an 8-byte stack slot.
    fn store_slot(&mut self, m: asm::Amode<u8>, class: RegClass, r: u8) {
        match class {
            RegClass::Int => i::movq_mr::<Regs>::new(m, r).encode(self.s()),
            _ => i::movsd_c_m::<Regs>::new(m, r).encode(self.s()),
        }
    }

    /// Loads a whole register (of either class) from an 8-byte stack slot.
    fn load_slot(&mut self, class: RegClass, r: u8, m: asm::Amode<u8>) {
        match class {
            RegClass::Int if crate::mutants::active(crate::mutants::Mutant::ReloadNarrowed) => {
                i::movl_rm::<Regs>::new(r, m).encode(self.s())
            }
            RegClass::Int => i::movq_rm::<Regs>::new(r, m).encode(self.s()),
            _ => i::movsd_a_m::<Regs>::new(r, m).encode(self.s()),
        }
    }

    fn mov(&mut self, class: RegClass, dst: u8, src: u8) {
        if dst == src {
            return;
        }
        match class {
            RegClass::Int => i::movq_mr::<Regs>::new(GM::Gpr(dst), src).encode(self.s()),
            _ => i::movaps_a::<Regs>::new(dst, src).encode(self.s()),
        }
    }

    /// Sets the flags for `test` and returns the condition that says it holds.
    fn test(&mut self, test: &Test) -> Cc {
        match *test {
            Test::Cmp { size, cc, a, b } => {
                let a = n(a);
                match b {
                    Rmi::Reg(r) => {
                        by_size!(
                            &mut self.buf,
                            size,
                            cmpb_rm,
                            cmpw_rm,
                            cmpl_rm,
                            cmpq_rm,
                            a,
                            GM::Gpr(n(r))
                        )
                    }
                    Rmi::Mem(m) => {
                        by_size!(
                            &mut self.buf,
                            size,
                            cmpb_rm,
                            cmpw_rm,
                            cmpl_rm,
                            cmpq_rm,
                            a,
                            mem(&m, None)
                        )
                    }
                    Rmi::Imm(k) => match size {
                        Size::B => i::cmpb_mi::<Regs>::new(GM::Gpr(a), k as u8).encode(self.s()),
                        Size::W => i::cmpw_mi::<Regs>::new(GM::Gpr(a), k as u16).encode(self.s()),
                        Size::L => match i8::try_from(k) {
                            Ok(k8) => i::cmpl_mi_sxb::<Regs>::new(GM::Gpr(a), k8).encode(self.s()),
                            Err(_) => {
                                i::cmpl_mi::<Regs>::new(GM::Gpr(a), k as u32).encode(self.s())
                            }
                        },
                        Size::Q => match i8::try_from(k) {
                            Ok(k8) => i::cmpq_mi_sxb::<Regs>::new(GM::Gpr(a), k8).encode(self.s()),
                            Err(_) => i::cmpq_mi::<Regs>::new(GM::Gpr(a), k).encode(self.s()),
                        },
                    },
                }
                cc
            }
            Test::NonZero { size, x, zero } => {
                let x = n(x);
                by_size!(
                    &mut self.buf,
                    size,
                    testb_mr,
                    testw_mr,
                    testl_mr,
                    testq_mr,
                    GM::Gpr(x),
                    x
                );
                if zero {
                    Cc::E
                } else {
                    Cc::Ne
                }
            }
        }
    }

    fn cvt_from_i64(&mut self, dst_wide: bool, d: u8, s: u8) {
        if dst_wide {
            i::cvtsi2sdq_a::<Regs>::new(d, GM::Gpr(s)).encode(self.s());
        } else {
            i::cvtsi2ssq_a::<Regs>::new(d, GM::Gpr(s)).encode(self.s());
        }
    }

    /// `cvtt` of `src` into `d`, 32 or 64 bits wide.
    fn cvtt(&mut self, src_wide: bool, wide: bool, d: u8, src: u8) {
        match (src_wide, wide) {
            (false, false) => i::cvttss2si_a::<Regs>::new(d, src).encode(self.s()),
            (false, true) => i::cvttss2si_aq::<Regs>::new(d, src).encode(self.s()),
            (true, false) => i::cvttsd2si_a::<Regs>::new(d, src).encode(self.s()),
            (true, true) => i::cvttsd2si_aq::<Regs>::new(d, src).encode(self.s()),
        }
    }

    /// `ucomiss`/`ucomisd a, b`.
    fn ucomis(&mut self, wide: bool, a: u8, b: u8) {
        if wide {
            i::ucomisd_a::<Regs>::new(a, b).encode(self.s());
        } else {
            i::ucomiss_a::<Regs>::new(a, b).encode(self.s());
        }
    }

    /// The float constant `value` (of the source's width) in `x`, through `g`.
    fn float_const(&mut self, wide: bool, x: u8, g: u8, value: f64) {
        if wide {
            self.imm(Size::Q, g, value.to_bits());
            i::movq_a::<Regs>::new(x, GM::Gpr(g)).encode(self.s());
        } else {
            self.imm(Size::L, g, u64::from((value as f32).to_bits()));
            i::movd_a::<Regs>::new(x, GM::Gpr(g)).encode(self.s());
        }
    }

    /// The NaN test of a conversion: trapping ones trap `bad_toint`; saturating ones give 0
    /// and jump to `done`.
    fn nan_check(&mut self, sat: bool, src_wide: bool, d: u8, src: u8, done: Label) {
        self.ucomis(src_wide, src, src);
        if sat {
            let ordered = self.buf.new_label();
            self.jump(Some(Cc::Np), ordered);
            i::xorl_rm::<Regs>::new(d, GM::Gpr(d)).encode(self.s());
            self.jump(None, done);
            self.buf.bind(ordered);
        } else {
            let l = self.buf.trap_island(TrapCode::BAD_CONVERSION_TO_INTEGER);
            self.jump(Some(Cc::P), l);
        }
    }

    /// Float to integer conversion (see [`MInst::FloatToInt`]).
    fn float_to_int(
        &mut self,
        (signed, sat, src_wide, wide): (bool, bool, bool, bool),
        d: u8,
        src: u8,
        [tx, tx2]: [u8; 2],
        g: u8,
    ) {
        let done = self.buf.new_label();
        let ovf = TrapCode::INTEGER_OVERFLOW;
        let size = if wide { Size::Q } else { Size::L };
        if signed {
            // The most negative integer is also what the CPU returns for NaN and out of
            // range: only then look closer (`cmp d, 1` overflows only for it).
            self.cvtt(src_wide, wide, d, src);
            let cmp1 = Test::Cmp {
                size,
                cc: Cc::No,
                a: VReg::new(d as usize, RegClass::Int),
                b: Rmi::Imm(1),
            };
            let cc = self.test(&cmp1);
            self.jump(Some(cc), done);
            self.nan_check(sat, src_wide, d, src, done);
            // Valid only if `src` truncates to that integer: below zero and above the limit.
            i::xorps_a::<Regs>::new(tx, tx).encode(self.s());
            self.ucomis(src_wide, src, tx);
            if sat {
                // Negative: the minimum is right. Positive: the maximum.
                self.jump(Some(Cc::B), done);
                self.imm(
                    size,
                    d,
                    if wide {
                        i64::MAX as u64
                    } else {
                        i32::MAX as u64
                    },
                );
            } else {
                let l = self.buf.trap_island(ovf);
                self.jump(Some(Cc::Ae), l);
                // f64 to i32: -2^31 - 1 < src is valid; otherwise -2^N <= src is.
                let (limit, cc) = if src_wide && !wide {
                    (-2147483649.0, Cc::Be)
                } else if wide {
                    (-9223372036854775808.0, Cc::B)
                } else {
                    (-2147483648.0, Cc::B)
                };
                self.float_const(src_wide, tx, g, limit);
                self.ucomis(src_wide, src, tx);
                self.jump(Some(cc), l);
            }
        } else if !wide {
            // Unsigned 32-bit: the 64-bit signed conversion is exact for every valid input;
            // valid when its upper half is zero.
            self.nan_check(sat, src_wide, d, src, done);
            if sat {
                let nonneg = self.buf.new_label();
                i::xorps_a::<Regs>::new(tx, tx).encode(self.s());
                self.ucomis(src_wide, src, tx);
                self.jump(Some(Cc::Ae), nonneg);
                i::xorl_rm::<Regs>::new(d, GM::Gpr(d)).encode(self.s());
                self.jump(None, done);
                self.buf.bind(nonneg);
            }
            self.cvtt(src_wide, true, d, src);
            self.mov(RegClass::Int, g, d);
            i::shrq_mi::<Regs>::new(GM::Gpr(g), 32u8).encode(self.s());
            if sat {
                self.jump(Some(Cc::E), done);
                self.imm(Size::L, d, u64::from(u32::MAX));
            } else {
                let l = self.buf.trap_island(ovf);
                self.jump(Some(Cc::Ne), l);
            }
        } else {
            // Unsigned 64-bit: below 2^63 the signed conversion; from 2^63 the conversion of
            // `src - 2^63` with the top bit set again.
            self.nan_check(sat, src_wide, d, src, done);
            let big = self.buf.new_label();
            self.float_const(src_wide, tx, g, 9223372036854775808.0);
            self.ucomis(src_wide, src, tx);
            self.jump(Some(Cc::Ae), big);
            self.cvtt(src_wide, true, d, src);
            i::testq_mr::<Regs>::new(GM::Gpr(d), d).encode(self.s());
            self.jump(Some(Cc::Ns), done);
            // Negative: src <= -1.
            if sat {
                i::xorl_rm::<Regs>::new(d, GM::Gpr(d)).encode(self.s());
                self.jump(None, done);
            } else {
                let l = self.buf.trap_island(ovf);
                self.jump(None, l);
            }
            self.buf.bind(big);
            self.mov(RegClass::Float, tx2, src);
            if src_wide {
                i::subsd_a::<Regs>::new(tx2, tx).encode(self.s());
            } else {
                i::subss_a::<Regs>::new(tx2, tx).encode(self.s());
            }
            self.cvtt(src_wide, true, d, tx2);
            i::testq_mr::<Regs>::new(GM::Gpr(d), d).encode(self.s());
            let too_big = self.buf.new_label();
            self.jump(Some(Cc::S), too_big);
            self.imm(Size::Q, g, 1 << 63);
            i::xorq_rm::<Regs>::new(d, GM::Gpr(g)).encode(self.s());
            self.jump(None, done);
            self.buf.bind(too_big);
            if sat {
                self.imm(Size::Q, d, u64::MAX);
            } else {
                let l = self.buf.trap_island(ovf);
                self.jump(None, l);
            }
        }
        self.buf.bind(done);
    }

    fn setcc(&mut self, cc: Cc, dst: u8) {
        let d = GM::Gpr(dst);
        macro_rules! set {
            ($($c:ident => $ins:ident),*) => {
                match cc { $(Cc::$c => i::$ins::<Regs>::new(d).encode(self.s()),)* }
            };
        }
        set!(E => sete_m, Ne => setne_m, L => setl_m, Le => setle_m, G => setg_m,
             Ge => setge_m, B => setb_m, Be => setbe_m, A => seta_m, Ae => setae_m,
             P => setp_m, Np => setnp_m, O => seto_m, No => setno_m, S => sets_m,
             Ns => setns_m);
    }

    fn cmov(&mut self, cc: Cc, dst: u8, src: u8) {
        let s = GM::Gpr(src);
        macro_rules! cmov {
            ($($c:ident => $ins:ident),*) => {
                match cc { $(Cc::$c => i::$ins::<Regs>::new(dst, s).encode(self.s()),)* }
            };
        }
        cmov!(E => cmoveq_rm, Ne => cmovneq_rm, L => cmovlq_rm, Le => cmovleq_rm,
              G => cmovgq_rm, Ge => cmovgeq_rm, B => cmovbq_rm, Be => cmovbeq_rm,
              A => cmovaq_rm, Ae => cmovaeq_rm, P => cmovpq_rm, Np => cmovnpq_rm,
              O => cmovoq_rm, No => cmovnoq_rm, S => cmovsq_rm, Ns => cmovnsq_rm);
    }

    fn alu(&mut self, op: AluOp, size: Size, dst: u8, b: Rmi) {
        let d = GM::Gpr(dst);
        let wide = size == Size::Q;
        macro_rules! rm {
            ($l:ident, $q:ident, $src:expr) => {
                if wide {
                    i::$q::<Regs>::new(dst, $src).encode(self.s())
                } else {
                    i::$l::<Regs>::new(dst, $src).encode(self.s())
                }
            };
        }
        macro_rules! mi {
            ($lb:ident, $l:ident, $qb:ident, $q:ident, $k:expr) => {
                match (wide, i8::try_from($k)) {
                    (false, Ok(k8)) => i::$lb::<Regs>::new(d, k8).encode(self.s()),
                    (false, Err(_)) => i::$l::<Regs>::new(d, $k as u32).encode(self.s()),
                    (true, Ok(k8)) => i::$qb::<Regs>::new(d, k8).encode(self.s()),
                    (true, Err(_)) => i::$q::<Regs>::new(d, $k).encode(self.s()),
                }
            };
        }
        macro_rules! alu {
            ($src:expr) => {
                match op {
                    AluOp::Add => rm!(addl_rm, addq_rm, $src),
                    AluOp::Sub => rm!(subl_rm, subq_rm, $src),
                    AluOp::And => rm!(andl_rm, andq_rm, $src),
                    AluOp::Or => rm!(orl_rm, orq_rm, $src),
                    AluOp::Xor => rm!(xorl_rm, xorq_rm, $src),
                    AluOp::Mul => rm!(imull_rm, imulq_rm, $src),
                }
            };
        }
        match b {
            Rmi::Reg(r) => alu!(GM::Gpr(n(r))),
            Rmi::Mem(m) => alu!(mem(&m, None)),
            Rmi::Imm(k) => match op {
                AluOp::Add => mi!(addl_mi_sxb, addl_mi, addq_mi_sxb, addq_mi_sxl, k),
                AluOp::Sub => mi!(subl_mi_sxb, subl_mi, subq_mi_sxb, subq_mi_sxl, k),
                AluOp::And => mi!(andl_mi_sxb, andl_mi, andq_mi_sxb, andq_mi_sxl, k),
                AluOp::Or => mi!(orl_mi_sxb, orl_mi, orq_mi_sxb, orq_mi_sxl, k),
                AluOp::Xor => mi!(xorl_mi_sxb, xorl_mi, xorq_mi_sxb, xorq_mi_sxl, k),
                AluOp::Mul => self.mul_imm(size, dst, dst, k),
            },
        }
    }

    fn mul_imm(&mut self, size: Size, dst: u8, a: u8, k: i32) {
        let a = GM::Gpr(a);
        match (size == Size::Q, i8::try_from(k)) {
            (false, Ok(k8)) => i::imull_rmi_sxb::<Regs>::new(dst, a, k8).encode(self.s()),
            (false, Err(_)) => i::imull_rmi::<Regs>::new(dst, a, k as u32).encode(self.s()),
            (true, Ok(k8)) => i::imulq_rmi_sxb::<Regs>::new(dst, a, k8).encode(self.s()),
            (true, Err(_)) => i::imulq_rmi_sxl::<Regs>::new(dst, a, k).encode(self.s()),
        }
    }

    fn imm(&mut self, size: Size, dst: u8, imm: u64) {
        let d = GM::Gpr(dst);
        let imm = if size == Size::Q {
            imm
        } else {
            imm & 0xffff_ffff
        };
        if imm == 0 {
            i::xorl_rm::<Regs>::new(dst, GM::Gpr(dst)).encode(self.s());
        } else if let Ok(k) = u32::try_from(imm) {
            // A 32-bit move zero-extends.
            i::movl_oi::<Regs>::new(dst, k).encode(self.s());
        } else if let Ok(k) = i32::try_from(imm as i64) {
            i::movq_mi_sxl::<Regs>::new(d, k).encode(self.s());
        } else {
            i::movabsq_oi::<Regs>::new(dst, imm).encode(self.s());
        }
    }

    fn emit_inst(&mut self, inst: &MInst) -> Result<(), CodegenError> {
        match inst {
            MInst::Args { .. } => {}
            MInst::StackArg { dst, slot } => {
                // Above the saved frame pointer and the return address.
                let m = frame_slot(regs::RBP, 16 + 8 * *slot as i32);
                self.load_slot(dst.class(), n(*dst), m);
            }
            MInst::Ret { .. } => {
                self.epilogue();
                i::retq_zo::new().encode(self.s());
            }
            MInst::Alu {
                op, size, dst, b, ..
            } => self.alu(*op, *size, n(*dst), *b),
            MInst::MulImm { size, dst, a, imm } => self.mul_imm(*size, n(*dst), n(*a), *imm),
            MInst::AluMem {
                op,
                size,
                amode,
                b,
                trap,
            } => {
                let m = mem(amode, *trap);
                let wide = *size == Size::Q;
                macro_rules! rmw {
                    ($lr:ident, $qr:ident, $lb:ident, $l:ident, $qb:ident, $q:ident) => {
                        match (*b, wide) {
                            (Rmi::Reg(r), false) => i::$lr::<Regs>::new(m, n(r)).encode(self.s()),
                            (Rmi::Reg(r), true) => i::$qr::<Regs>::new(m, n(r)).encode(self.s()),
                            (Rmi::Imm(k), w) => match (w, i8::try_from(k)) {
                                (false, Ok(k8)) => i::$lb::<Regs>::new(m, k8).encode(self.s()),
                                (false, Err(_)) => i::$l::<Regs>::new(m, k as u32).encode(self.s()),
                                (true, Ok(k8)) => i::$qb::<Regs>::new(m, k8).encode(self.s()),
                                (true, Err(_)) => i::$q::<Regs>::new(m, k).encode(self.s()),
                            },
                            (Rmi::Mem(_), _) => {
                                return Err(CodegenError::new(
                                    "internal error: a read-modify-write with two memory operands",
                                ))
                            }
                        }
                    };
                }
                match op {
                    AluOp::Add => rmw!(
                        addl_mr,
                        addq_mr,
                        addl_mi_sxb,
                        addl_mi,
                        addq_mi_sxb,
                        addq_mi_sxl
                    ),
                    AluOp::Sub => rmw!(
                        subl_mr,
                        subq_mr,
                        subl_mi_sxb,
                        subl_mi,
                        subq_mi_sxb,
                        subq_mi_sxl
                    ),
                    AluOp::And => rmw!(
                        andl_mr,
                        andq_mr,
                        andl_mi_sxb,
                        andl_mi,
                        andq_mi_sxb,
                        andq_mi_sxl
                    ),
                    AluOp::Or => rmw!(orl_mr, orq_mr, orl_mi_sxb, orl_mi, orq_mi_sxb, orq_mi_sxl),
                    AluOp::Xor => rmw!(
                        xorl_mr,
                        xorq_mr,
                        xorl_mi_sxb,
                        xorl_mi,
                        xorq_mi_sxb,
                        xorq_mi_sxl
                    ),
                    AluOp::Mul => {
                        return Err(CodegenError::new(
                            "internal error: x86 has no read-modify-write multiply",
                        ))
                    }
                }
            }
            MInst::Lea { dst, amode } => {
                i::leaq_rm::<Regs>::new(n(*dst), mem(amode, None)).encode(self.s())
            }
            MInst::Shift {
                op,
                size,
                dst,
                amount,
                ..
            } => {
                let d = GM::Gpr(n(*dst));
                macro_rules! sh {
                    ($b:ident, $w:ident, $l:ident, $q:ident, $bc:ident, $wc:ident, $lc:ident, $qc:ident) => {
                        match amount {
                            Ok(k) => by_size!(&mut self.buf, size, $b, $w, $l, $q, d, *k),
                            Err(_) => {
                                let cl = regs::RCX as u8;
                                by_size!(&mut self.buf, size, $bc, $wc, $lc, $qc, d, cl)
                            }
                        }
                    };
                }
                match op {
                    ShiftOp::Shl => {
                        sh!(shlb_mi, shlw_mi, shll_mi, shlq_mi, shlb_mc, shlw_mc, shll_mc, shlq_mc)
                    }
                    ShiftOp::ShrU => {
                        sh!(shrb_mi, shrw_mi, shrl_mi, shrq_mi, shrb_mc, shrw_mc, shrl_mc, shrq_mc)
                    }
                    ShiftOp::ShrS => {
                        sh!(sarb_mi, sarw_mi, sarl_mi, sarq_mi, sarb_mc, sarw_mc, sarl_mc, sarq_mc)
                    }
                    ShiftOp::Rotl => {
                        sh!(rolb_mi, rolw_mi, roll_mi, rolq_mi, rolb_mc, rolw_mc, roll_mc, rolq_mc)
                    }
                    ShiftOp::Rotr => {
                        sh!(rorb_mi, rorw_mi, rorl_mi, rorq_mi, rorb_mc, rorw_mc, rorl_mc, rorq_mc)
                    }
                }
            }
            MInst::Unary { op, size, dst, .. } => {
                let d = n(*dst);
                match (op, size) {
                    (UnaryOp::Neg, _) => {
                        by_size!(
                            &mut self.buf,
                            size,
                            negb_m,
                            negw_m,
                            negl_m,
                            negq_m,
                            GM::Gpr(d)
                        )
                    }
                    (UnaryOp::Not, _) => {
                        by_size!(
                            &mut self.buf,
                            size,
                            notb_m,
                            notw_m,
                            notl_m,
                            notq_m,
                            GM::Gpr(d)
                        )
                    }
                    (UnaryOp::Bswap, Size::Q) => i::bswapq_o::<Regs>::new(d).encode(self.s()),
                    (UnaryOp::Bswap, Size::W) => {
                        i::rolw_mi::<Regs>::new(GM::Gpr(d), 8u8).encode(self.s())
                    }
                    (UnaryOp::Bswap, _) => i::bswapl_o::<Regs>::new(d).encode(self.s()),
                }
            }
            MInst::Count { op, size, dst, src } => {
                let (d, s) = (n(*dst), GM::Gpr(n(*src)));
                let q = *size == Size::Q;
                match (op, q) {
                    (CountOp::Lzcnt, false) => i::lzcntl_rm::<Regs>::new(d, s).encode(self.s()),
                    (CountOp::Lzcnt, true) => i::lzcntq_rm::<Regs>::new(d, s).encode(self.s()),
                    (CountOp::Tzcnt, false) => i::tzcntl_a::<Regs>::new(d, s).encode(self.s()),
                    (CountOp::Tzcnt, true) => i::tzcntq_a::<Regs>::new(d, s).encode(self.s()),
                    (CountOp::Popcnt, false) => i::popcntl_rm::<Regs>::new(d, s).encode(self.s()),
                    (CountOp::Popcnt, true) => i::popcntq_rm::<Regs>::new(d, s).encode(self.s()),
                }
            }
            MInst::Ext { op, dst, src } => {
                let (d, s) = (n(*dst), GM::Gpr(n(*src)));
                match op {
                    ExtOp::Zx8 => i::movzbl_rm::<Regs>::new(d, s).encode(self.s()),
                    ExtOp::Zx16 => i::movzwl_rm::<Regs>::new(d, s).encode(self.s()),
                    ExtOp::Zx32 => i::movl_rm::<Regs>::new(d, s).encode(self.s()),
                    ExtOp::Sx8To32 => i::movsbl_rm::<Regs>::new(d, s).encode(self.s()),
                    ExtOp::Sx16To32 => i::movswl_rm::<Regs>::new(d, s).encode(self.s()),
                    ExtOp::Sx8To64 => i::movsbq_rm::<Regs>::new(d, s).encode(self.s()),
                    ExtOp::Sx16To64 => i::movswq_rm::<Regs>::new(d, s).encode(self.s()),
                    ExtOp::Sx32To64 => i::movslq_rm::<Regs>::new(d, s).encode(self.s()),
                }
            }
            MInst::Mov { dst, src } => self.mov(dst.class(), n(*dst), n(*src)),
            MInst::Imm { size, dst, imm } => self.imm(*size, n(*dst), *imm),
            MInst::FImm {
                wide,
                dst,
                tmp,
                bits,
            } => {
                let d = n(*dst);
                if *bits == 0 {
                    i::xorps_a::<Regs>::new(d, d).encode(self.s());
                } else {
                    let t = n(*tmp);
                    self.imm(if *wide { Size::Q } else { Size::L }, t, *bits);
                    if *wide {
                        i::movq_a::<Regs>::new(d, GM::Gpr(t)).encode(self.s())
                    } else {
                        i::movd_a::<Regs>::new(d, GM::Gpr(t)).encode(self.s())
                    }
                }
            }
            MInst::FAlu {
                op, wide, dst, b, ..
            } => {
                let (d, b) = (n(*dst), n(*b));
                macro_rules! f {
                    ($s:ident, $d:ident) => {
                        if *wide {
                            i::$d::<Regs>::new(d, b).encode(self.s())
                        } else {
                            i::$s::<Regs>::new(d, b).encode(self.s())
                        }
                    };
                }
                match op {
                    FAluOp::Add => f!(addss_a, addsd_a),
                    FAluOp::Sub => f!(subss_a, subsd_a),
                    FAluOp::Mul => f!(mulss_a, mulsd_a),
                    FAluOp::Div => f!(divss_a, divsd_a),
                    FAluOp::Min | FAluOp::Max => {
                        // minss/maxss return the second operand for NaNs and equal
                        // operands; CLIF wants NaN propagated and -0 < +0.
                        let (minmax, nan, done) = (
                            self.buf.new_label(),
                            self.buf.new_label(),
                            self.buf.new_label(),
                        );
                        f!(ucomiss_a, ucomisd_a);
                        self.jump(Some(Cc::Ne), minmax);
                        self.jump(Some(Cc::P), nan);
                        // Equal: the operands differ at most in the sign of zero.
                        if *op == FAluOp::Min {
                            i::orps_a::<Regs>::new(d, b).encode(self.s());
                        } else {
                            i::andps_a::<Regs>::new(d, b).encode(self.s());
                        }
                        self.jump(None, done);
                        self.buf.bind(nan);
                        f!(addss_a, addsd_a);
                        self.jump(None, done);
                        self.buf.bind(minmax);
                        if *op == FAluOp::Min {
                            f!(minss_a, minsd_a)
                        } else {
                            f!(maxss_a, maxsd_a)
                        }
                        self.buf.bind(done);
                    }
                }
            }
            MInst::FUn { op, wide, dst, src } => {
                let (d, s) = (n(*dst), n(*src));
                match (op, wide) {
                    (FUnOp::Sqrt, false) => i::sqrtss_a::<Regs>::new(d, s).encode(self.s()),
                    (FUnOp::Sqrt, true) => i::sqrtsd_a::<Regs>::new(d, s).encode(self.s()),
                    (FUnOp::Round(m), false) => {
                        i::roundss_rmi::<Regs>::new(d, s, *m).encode(self.s())
                    }
                    (FUnOp::Round(m), true) => {
                        i::roundsd_rmi::<Regs>::new(d, s, *m).encode(self.s())
                    }
                    (FUnOp::Promote, _) => i::cvtss2sd_a::<Regs>::new(d, s).encode(self.s()),
                    (FUnOp::Demote, _) => i::cvtsd2ss_a::<Regs>::new(d, s).encode(self.s()),
                }
            }
            MInst::Bitcast { wide, dst, src } => {
                let (d, s) = (n(*dst), n(*src));
                match (dst.class(), wide) {
                    (RegClass::Int, false) => {
                        i::movd_b::<Regs>::new(GM::Gpr(d), s).encode(self.s())
                    }
                    (RegClass::Int, true) => i::movq_b::<Regs>::new(GM::Gpr(d), s).encode(self.s()),
                    (_, false) => i::movd_a::<Regs>::new(d, GM::Gpr(s)).encode(self.s()),
                    (_, true) => i::movq_a::<Regs>::new(d, GM::Gpr(s)).encode(self.s()),
                }
            }
            MInst::IntToFloat {
                src_wide,
                dst_wide,
                dst,
                src,
            } => {
                let (d, s) = (n(*dst), GM::Gpr(n(*src)));
                match (src_wide, dst_wide) {
                    (false, false) => i::cvtsi2ssl_a::<Regs>::new(d, s).encode(self.s()),
                    (true, false) => i::cvtsi2ssq_a::<Regs>::new(d, s).encode(self.s()),
                    (false, true) => i::cvtsi2sdl_a::<Regs>::new(d, s).encode(self.s()),
                    (true, true) => i::cvtsi2sdq_a::<Regs>::new(d, s).encode(self.s()),
                }
            }
            MInst::FloatToInt {
                signed,
                sat,
                src_wide,
                dst_wide,
                dst,
                src,
                tmp_x,
                tmp_x2,
                tmp_g,
            } => self.float_to_int(
                (*signed, *sat, *src_wide, *dst_wide),
                n(*dst),
                n(*src),
                [n(*tmp_x), n(*tmp_x2)],
                n(*tmp_g),
            ),
            MInst::U64ToFloat {
                dst_wide,
                dst,
                src,
                tmp1,
                tmp2,
            } => {
                let (d, s, t1, t2) = (n(*dst), n(*src), n(*tmp1), n(*tmp2));
                let (big, done) = (self.buf.new_label(), self.buf.new_label());
                i::testq_mr::<Regs>::new(GM::Gpr(s), s).encode(self.s());
                self.jump(Some(Cc::L), big);
                self.cvt_from_i64(*dst_wide, d, s);
                self.jump(None, done);
                self.buf.bind(big);
                self.mov(RegClass::Int, t1, s);
                i::shrq_mi::<Regs>::new(GM::Gpr(t1), 1u8).encode(self.s());
                self.mov(RegClass::Int, t2, s);
                i::andl_mi_sxb::<Regs>::new(GM::Gpr(t2), 1i8).encode(self.s());
                i::orq_rm::<Regs>::new(t1, GM::Gpr(t2)).encode(self.s());
                self.cvt_from_i64(*dst_wide, d, t1);
                if *dst_wide {
                    i::addsd_a::<Regs>::new(d, d).encode(self.s());
                } else {
                    i::addss_a::<Regs>::new(d, d).encode(self.s());
                }
                self.buf.bind(done);
            }
            MInst::SetCc { test, dst } => {
                let cc = self.test(test);
                let d = n(*dst);
                self.setcc(cc, d);
                i::movzbl_rm::<Regs>::new(d, GM::Gpr(d)).encode(self.s());
            }
            MInst::FCmp {
                cond,
                wide,
                dst,
                a,
                b,
                tmp,
            } => {
                let (d, t) = (n(*dst), n(*tmp));
                let (a, b) = (n(*a), n(*b));
                let ucomis = |e: &mut Self, x: u8, y: u8| {
                    if *wide {
                        i::ucomisd_a::<Regs>::new(x, y).encode(e.s())
                    } else {
                        i::ucomiss_a::<Regs>::new(x, y).encode(e.s())
                    }
                };
                // Unordered sets ZF, PF and CF: `a` / `ae` on swapped operands exclude it.
                match cond {
                    FloatCC::Equal | FloatCC::NotEqual => {
                        ucomis(self, a, b);
                        let eq = *cond == FloatCC::Equal;
                        self.setcc(if eq { Cc::E } else { Cc::Ne }, d);
                        self.setcc(if eq { Cc::Np } else { Cc::P }, t);
                        if eq {
                            i::andl_rm::<Regs>::new(d, GM::Gpr(t)).encode(self.s());
                        } else {
                            i::orl_rm::<Regs>::new(d, GM::Gpr(t)).encode(self.s());
                        }
                    }
                    FloatCC::LessThan => {
                        ucomis(self, b, a);
                        self.setcc(Cc::A, d);
                    }
                    FloatCC::LessThanOrEqual => {
                        ucomis(self, b, a);
                        self.setcc(Cc::Ae, d);
                    }
                    FloatCC::GreaterThan => {
                        ucomis(self, a, b);
                        self.setcc(Cc::A, d);
                    }
                    FloatCC::GreaterThanOrEqual => {
                        ucomis(self, a, b);
                        self.setcc(Cc::Ae, d);
                    }
                    other => {
                        return Err(CodegenError::new(format!(
                            "internal error: fcmp {other} reached emission"
                        )))
                    }
                }
                i::movzbl_rm::<Regs>::new(d, GM::Gpr(d)).encode(self.s());
            }
            MInst::Select { test, dst, t, .. } => {
                let cc = self.test(test);
                let (d, t) = (n(*dst), n(*t));
                if dst.class() == RegClass::Int {
                    self.cmov(cc, d, t);
                } else {
                    let skip = self.buf.new_label();
                    self.jump(Some(cc.invert()), skip);
                    self.mov(RegClass::Float, d, t);
                    self.buf.bind(skip);
                }
            }
            MInst::Load {
                op,
                dst,
                amode,
                trap,
            } => {
                let (d, m) = (n(*dst), mem(amode, *trap));
                match op {
                    LoadOp::U8 => i::movzbl_rm::<Regs>::new(d, m).encode(self.s()),
                    LoadOp::S8To32 => i::movsbl_rm::<Regs>::new(d, m).encode(self.s()),
                    LoadOp::S8To64 => i::movsbq_rm::<Regs>::new(d, m).encode(self.s()),
                    LoadOp::U16 => i::movzwl_rm::<Regs>::new(d, m).encode(self.s()),
                    LoadOp::S16To32 => i::movswl_rm::<Regs>::new(d, m).encode(self.s()),
                    LoadOp::S16To64 => i::movswq_rm::<Regs>::new(d, m).encode(self.s()),
                    LoadOp::U32 => i::movl_rm::<Regs>::new(d, m).encode(self.s()),
                    LoadOp::S32To64 => i::movslq_rm::<Regs>::new(d, m).encode(self.s()),
                    LoadOp::X64 => i::movq_rm::<Regs>::new(d, m).encode(self.s()),
                    LoadOp::F32 => i::movss_a_m::<Regs>::new(d, m).encode(self.s()),
                    LoadOp::F64 => i::movsd_a_m::<Regs>::new(d, m).encode(self.s()),
                }
            }
            MInst::Store {
                op,
                src,
                amode,
                trap,
            } => {
                let (s, m) = (n(*src), mem(amode, *trap));
                match op {
                    StoreOp::B => i::movb_mr::<Regs>::new(m, s).encode(self.s()),
                    StoreOp::W => i::movw_mr::<Regs>::new(m, s).encode(self.s()),
                    StoreOp::L => i::movl_mr::<Regs>::new(m, s).encode(self.s()),
                    StoreOp::Q => i::movq_mr::<Regs>::new(m, s).encode(self.s()),
                    StoreOp::F32 => i::movss_c_m::<Regs>::new(m, s).encode(self.s()),
                    StoreOp::F64 => i::movsd_c_m::<Regs>::new(m, s).encode(self.s()),
                }
            }
            MInst::AddTrap {
                size, dst, b, code, ..
            } => {
                self.alu(AluOp::Add, *size, n(*dst), *b);
                let l = self.buf.trap_island(*code);
                self.jump(Some(Cc::B), l);
            }
            MInst::SignHi { size, .. } => {
                let (rax, rdx) = (regs::RAX as u8, regs::RDX as u8);
                if *size == Size::Q {
                    i::cqto_zo::<Regs>::new(rdx, rax).encode(self.s())
                } else {
                    i::cltd_zo::<Regs>::new(rdx, rax).encode(self.s())
                }
            }
            MInst::Div {
                signed,
                rem_wanted,
                size,
                b,
                ..
            } => {
                let (rax, rdx) = (regs::RAX as u8, regs::RDX as u8);
                let b = n(*b);
                let q = *size == Size::Q;
                let divz = trap_code(TrapCode::INTEGER_DIVISION_BY_ZERO);
                if *signed {
                    // b = -1: the quotient is -a (int_ovf for INT_MIN), the remainder 0.
                    let (divide, done) = (self.buf.new_label(), self.buf.new_label());
                    let minus_one = Test::Cmp {
                        size: *size,
                        cc: Cc::Ne,
                        a: VReg::new(b as usize, RegClass::Int),
                        b: Rmi::Imm(-1),
                    };
                    let cc = self.test(&minus_one);
                    self.jump(Some(cc), divide);
                    if *rem_wanted {
                        i::xorl_rm::<Regs>::new(rdx, GM::Gpr(rdx)).encode(self.s());
                    } else {
                        if q {
                            i::negq_m::<Regs>::new(GM::Gpr(rax)).encode(self.s());
                        } else {
                            i::negl_m::<Regs>::new(GM::Gpr(rax)).encode(self.s());
                        }
                        let ovf = self.buf.trap_island(TrapCode::INTEGER_OVERFLOW);
                        self.jump(Some(Cc::O), ovf);
                    }
                    self.jump(None, done);
                    self.buf.bind(divide);
                    if q {
                        i::idivq_m::<Regs>::new(rax, rdx, GM::Gpr(b), divz).encode(self.s());
                    } else {
                        i::idivl_m::<Regs>::new(rax, rdx, GM::Gpr(b), divz).encode(self.s());
                    }
                    self.buf.bind(done);
                } else if q {
                    i::divq_m::<Regs>::new(rax, rdx, GM::Gpr(b), divz).encode(self.s());
                } else {
                    i::divl_m::<Regs>::new(rax, rdx, GM::Gpr(b), divz).encode(self.s());
                }
            }
            MInst::Jump { target } => self.jump_to(*target),
            MInst::Br {
                test,
                taken,
                not_taken,
            } => {
                let cc = self.test(test);
                if self.falls_into(*taken) {
                    let l = self.block_labels[not_taken.index()];
                    self.jump(Some(cc.invert()), l);
                } else {
                    let l = self.block_labels[taken.index()];
                    self.jump(Some(cc), l);
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
                let len = targets.len() as u32;
                i::cmpl_mi::<Regs>::new(GM::Gpr(idx), len).encode(self.s());
                let l = self.block_labels[default.index()];
                self.jump(Some(Cc::Ae), l);
                let table = self.buf.new_label();
                let rip = asm::Amode::RipRelative {
                    target: asm::DeferredTarget::Label(asm::Label(table.index())),
                };
                i::leaq_rm::<Regs>::new(t1, rip).encode(self.s());
                // The index is an i32 and so zero-extended: scaled by 4 it stays in range.
                let entry = asm::Amode::ImmRegRegShift {
                    base: t1,
                    index: asm::NonRspGpr::new(idx),
                    scale: asm::Scale::Four,
                    simm32: 0.into(),
                    trap: None,
                };
                i::movslq_rm::<Regs>::new(t2, entry).encode(self.s());
                i::addq_rm::<Regs>::new(t1, GM::Gpr(t2)).encode(self.s());
                i::jmpq_m::<Regs>::new(GM::Gpr(t1)).encode(self.s());
                self.tables.push((table, targets.clone()));
            }
            MInst::TrapIf { test, code } => {
                let cc = self.test(test);
                let l = self.buf.trap_island(*code);
                self.jump(Some(cc), l);
            }
            MInst::Trap { code } => i::ud2_zo::new(trap_code(*code)).encode(self.s()),
            // The stack arguments are in the outgoing area at the bottom of the frame, where
            // the callee finds them above its return address.
            MInst::StoreCallArg { src, slot } => {
                let m = frame_slot(regs::RSP, 8 * *slot as i32);
                self.store_slot(m, src.class(), n(*src));
            }
            MInst::LoadCallRet { dst, slot } => {
                let m = frame_slot(regs::RSP, 8 * *slot as i32);
                self.load_slot(dst.class(), n(*dst), m);
            }
            // The caller's slots are above the return address, as the stack parameters.
            MInst::StoreRet { src, slot } => {
                let m = frame_slot(regs::RBP, 16 + 8 * *slot as i32);
                self.store_slot(m, src.class(), n(*src));
            }
            MInst::Call { callee, .. } => {
                let at = self.buf.offset();
                i::callq_d::new(0).encode(self.s());
                self.buf.add_reloc(at, callee);
            }
        }
        Ok(())
    }
}
