//! x86-64 machine instructions over virtual registers, and their operands for regalloc2.
//!
//! Instructions are in two-address form where the hardware is (`dst` reuses the register of
//! the first source), which regalloc2 expresses as a reuse constraint. A comparison is never
//! a machine instruction of its own: it is part of the instruction that consumes the flags
//! (branch, trap, conditional move, `setcc`), so nothing the allocator inserts between two
//! instructions can clobber live flags. Encoding is in `emit.rs`, through
//! `cranelift-assembler-x64`.

use crate::ir::TrapCode;
use crate::machinst::{MachBlock, MachInst, PReg, PRegSet, RegClass, Role, VReg};

/// An integer operation's width. 8- and 16-bit values are computed with 32-bit operations
/// wherever the bits above them do not matter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Size {
    B,
    W,
    L,
    Q,
}

impl Size {
    /// The width of an integer type's operations (`L` for i8/i16/i32, `Q` for i64).
    pub fn of_bits(bits: u32) -> Size {
        if bits == 64 {
            Size::Q
        } else {
            Size::L
        }
    }
    /// The width in bits.
    pub fn bits(self) -> u8 {
        match self {
            Size::B => 8,
            Size::W => 16,
            Size::L => 32,
            Size::Q => 64,
        }
    }
    /// The exact width of an integer type, for comparisons.
    pub fn exact(bits: u32) -> Size {
        match bits {
            8 => Size::B,
            16 => Size::W,
            32 => Size::L,
            _ => Size::Q,
        }
    }
}

/// `disp(base, index)`: the index is used with scale 1, as the bounds check covered it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Amode {
    /// The base register.
    pub base: VReg,
    /// The index register, zero-extended to 64 bits.
    pub index: Option<VReg>,
    /// The displacement.
    pub disp: i32,
}

/// A register, an immediate or a memory operand (the second operand of an ALU operation or
/// a comparison).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rmi {
    /// A register.
    Reg(VReg),
    /// A sign-extended 32-bit immediate.
    Imm(i32),
    /// A value read from memory (a trusted `notrap` load folded into its only user).
    Mem(Amode),
}

/// Two-address integer operations `dst = a op b`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum AluOp {
    Add,
    Sub,
    And,
    Or,
    Xor,
    Mul,
}

/// Shifts and rotates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum ShiftOp {
    Shl,
    ShrU,
    ShrS,
    Rotl,
    Rotr,
}

/// One-operand integer operations in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum UnaryOp {
    Neg,
    Not,
    Bswap,
}

/// Bit counts (LZCNT, TZCNT, POPCNT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum CountOp {
    Lzcnt,
    Tzcnt,
    Popcnt,
}

/// Extensions between integer widths. Every result keeps the invariant of this backend: an
/// i32 value has its upper 32 bits zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum ExtOp {
    /// `movzbl`: 8 to 32 (and so to 64) bits, zero-extended.
    Zx8,
    Zx16,
    /// `movl r32, r32`.
    Zx32,
    Sx8To32,
    Sx16To32,
    Sx8To64,
    Sx16To64,
    Sx32To64,
}

/// The condition codes a flag consumer tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Cc {
    E,
    Ne,
    L,
    Le,
    G,
    Ge,
    B,
    Be,
    A,
    Ae,
    P,
    Np,
    O,
    No,
    S,
    Ns,
}

impl Cc {
    /// The condition that holds exactly when `self` does not.
    pub fn invert(self) -> Cc {
        use Cc::*;
        match self {
            E => Ne,
            Ne => E,
            L => Ge,
            Ge => L,
            Le => G,
            G => Le,
            B => Ae,
            Ae => B,
            Be => A,
            A => Be,
            P => Np,
            Np => P,
            O => No,
            No => O,
            S => Ns,
            Ns => S,
        }
    }
    /// The condition with the operands of the comparison exchanged.
    pub fn swap(self) -> Cc {
        use Cc::*;
        match self {
            L => G,
            G => L,
            Le => Ge,
            Ge => Le,
            B => A,
            A => B,
            Be => Ae,
            Ae => Be,
            c => c,
        }
    }
}

/// What sets the flags a consumer tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Test {
    /// `cmp a, b` of `size`, then `cc`.
    Cmp {
        /// Operand width.
        size: Size,
        /// The condition on `a` and `b`.
        cc: Cc,
        /// The first operand.
        a: VReg,
        /// The second operand.
        b: Rmi,
    },
    /// `test x, x`: holds when `x` is non-zero (or zero, with `zero`).
    NonZero {
        /// Operand width.
        size: Size,
        /// The tested register.
        x: VReg,
        /// Holds when `x` is zero instead.
        zero: bool,
    },
}

/// Loads, by the width and extension they make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum LoadOp {
    U8,
    S8To32,
    S8To64,
    U16,
    S16To32,
    S16To64,
    U32,
    S32To64,
    X64,
    F32,
    F64,
}

impl LoadOp {
    /// The register class of the loaded value.
    pub fn class(self) -> RegClass {
        match self {
            LoadOp::F32 | LoadOp::F64 => RegClass::Float,
            _ => RegClass::Int,
        }
    }
}

/// Stores, by width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum StoreOp {
    B,
    W,
    L,
    Q,
    F32,
    F64,
}

/// Scalar SSE arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum FAluOp {
    Add,
    Sub,
    Mul,
    Div,
    /// CLIF's `fmin`: NaN-propagating, `-0 < +0`.
    Min,
    /// CLIF's `fmax`.
    Max,
}

/// One-operand float operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum FUnOp {
    Sqrt,
    /// `roundss`/`roundsd` with the immediate: 0 nearest, 1 floor, 2 ceil, 3 trunc.
    Round(u8),
    /// f32 to f64.
    Promote,
    /// f64 to f32.
    Demote,
}

/// An x86-64 machine instruction (or a short fixed sequence) over virtual registers.
#[derive(Clone, Debug)]
pub enum MInst {
    /// Defines the function's parameters that arrive in argument registers.
    Args {
        /// Parameter registers and where they arrive.
        args: Vec<(VReg, PReg)>,
    },
    /// Loads the parameter the caller passed in stack slot `slot` (above the return address,
    /// through the frame pointer). One instruction per parameter: a function may have more
    /// of them than there are registers.
    StackArg {
        /// The parameter.
        dst: VReg,
        /// Its slot, in order of the stack parameters.
        slot: u32,
    },
    /// Returns the values in their return registers.
    Ret {
        /// Returned registers and where they go.
        rets: Vec<(VReg, PReg)>,
    },
    /// `dst = a op b`, in place.
    Alu {
        /// The operation.
        op: AluOp,
        /// Width (`L` or `Q`).
        size: Size,
        /// Result, in `a`'s register.
        dst: VReg,
        /// First operand.
        a: VReg,
        /// Second operand.
        b: Rmi,
    },
    /// `*amode = *amode op b` in one read-modify-write instruction (`addl %r, disp(base)`).
    AluMem {
        /// The operation (not `Mul`).
        op: AluOp,
        /// Width (`L` or `Q`).
        size: Size,
        /// The location read and written.
        amode: Amode,
        /// The other operand.
        b: Rmi,
        /// The trap code of a fault at this access, if it may fault.
        trap: Option<TrapCode>,
    },
    /// `dst = a * imm` (three-operand `imul`).
    MulImm {
        /// Width (`L` or `Q`).
        size: Size,
        /// Result.
        dst: VReg,
        /// Multiplicand.
        a: VReg,
        /// Multiplier.
        imm: i32,
    },
    /// `dst = lea amode` (64-bit address arithmetic that leaves the flags alone).
    Lea {
        /// Result.
        dst: VReg,
        /// The address computed.
        amode: Amode,
    },
    /// `dst = a shift amount`, in place; a register amount is in `cl`.
    Shift {
        /// The shift.
        op: ShiftOp,
        /// Width: the exact width of i8/i16 values (their bits above shift in otherwise).
        size: Size,
        /// Result, in `a`'s register.
        dst: VReg,
        /// The shifted value.
        a: VReg,
        /// The amount: an immediate, or a register (fixed to `rcx`).
        amount: Result<u8, VReg>,
    },
    /// `dst = op a`, in place.
    Unary {
        /// The operation.
        op: UnaryOp,
        /// Width.
        size: Size,
        /// Result.
        dst: VReg,
        /// Operand.
        a: VReg,
    },
    /// `dst = count(src)`.
    Count {
        /// The count.
        op: CountOp,
        /// Width (`L` or `Q`).
        size: Size,
        /// Result.
        dst: VReg,
        /// Operand.
        src: VReg,
    },
    /// `dst = extend(src)`.
    Ext {
        /// The extension.
        op: ExtOp,
        /// Result.
        dst: VReg,
        /// Operand.
        src: VReg,
    },
    /// A register copy of either class.
    Mov {
        /// Copy.
        dst: VReg,
        /// Original.
        src: VReg,
    },
    /// An integer constant; i32 constants (`size` `L`) are zero-extended.
    Imm {
        /// Width.
        size: Size,
        /// Result.
        dst: VReg,
        /// The bits.
        imm: u64,
    },
    /// A float constant, through an integer register.
    FImm {
        /// f64 rather than f32.
        wide: bool,
        /// Result.
        dst: VReg,
        /// Scratch integer register.
        tmp: VReg,
        /// The bits.
        bits: u64,
    },
    /// `dst = a op b` on scalars, in place.
    FAlu {
        /// The operation.
        op: FAluOp,
        /// f64 rather than f32.
        wide: bool,
        /// Result, in `a`'s register.
        dst: VReg,
        /// First operand.
        a: VReg,
        /// Second operand.
        b: VReg,
    },
    /// `dst = op src`.
    FUn {
        /// The operation.
        op: FUnOp,
        /// f64 rather than f32 (of the source).
        wide: bool,
        /// Result.
        dst: VReg,
        /// Operand.
        src: VReg,
    },
    /// Moves bits between an integer and a float register (`movd`/`movq`).
    Bitcast {
        /// 64 bits rather than 32.
        wide: bool,
        /// Result (either class).
        dst: VReg,
        /// Operand (the other class).
        src: VReg,
    },
    /// Signed integer to float (`cvtsi2ss`/`cvtsi2sd`).
    IntToFloat {
        /// The source is 64 bits.
        src_wide: bool,
        /// The result is f64.
        dst_wide: bool,
        /// Result.
        dst: VReg,
        /// Operand.
        src: VReg,
    },
    /// Float to integer, truncating: trapping (`bad_toint` for NaN, `int_ovf` out of range)
    /// or saturating (NaN is 0). A short sequence around `cvttss2si`/`cvttsd2si`, whose
    /// out-of-range result (the most negative integer) is told apart from a true one.
    FloatToInt {
        /// Signed result.
        signed: bool,
        /// Saturating rather than trapping.
        sat: bool,
        /// The source is f64.
        src_wide: bool,
        /// The result is i64.
        dst_wide: bool,
        /// Result.
        dst: VReg,
        /// Operand.
        src: VReg,
        /// Float scratch registers.
        tmp_x: VReg,
        /// Float scratch registers.
        tmp_x2: VReg,
        /// Integer scratch register.
        tmp_g: VReg,
    },
    /// Unsigned i64 to float: the signed conversion, or for values with the top bit set the
    /// conversion of half the value (its low bit kept for rounding), doubled.
    U64ToFloat {
        /// The result is f64.
        dst_wide: bool,
        /// Result.
        dst: VReg,
        /// Operand.
        src: VReg,
        /// Integer scratch registers.
        tmp1: VReg,
        /// Integer scratch registers.
        tmp2: VReg,
    },
    /// `dst = test ? 1 : 0` (`setcc` and `movzbl`).
    SetCc {
        /// The condition.
        test: Test,
        /// Result (i8, zero-extended).
        dst: VReg,
    },
    /// A float comparison's result as 0 or 1 (`ucomis` and `setcc`, with the parity flag
    /// for the unordered outcome). `cond` is one of `eq`, `ne`, `lt`, `le` (the callers swap
    /// `gt` and `ge`).
    FCmp {
        /// The condition.
        cond: crate::ir::FloatCC,
        /// f64 rather than f32.
        wide: bool,
        /// Result.
        dst: VReg,
        /// First operand.
        a: VReg,
        /// Second operand.
        b: VReg,
        /// Scratch register for the second flag of `eq`/`ne`.
        tmp: VReg,
    },
    /// `dst = test ? t : f`: a conditional move for integers (also the Spectre guard, which
    /// must not branch), a short branch around a copy for floats. `dst` reuses `f`.
    Select {
        /// The condition.
        test: Test,
        /// Result.
        dst: VReg,
        /// Value when the condition holds.
        t: VReg,
        /// Value otherwise.
        f: VReg,
    },
    /// A load.
    Load {
        /// Width and extension.
        op: LoadOp,
        /// Result.
        dst: VReg,
        /// Address.
        amode: Amode,
        /// The trap code of a fault at this access (a trap site), if it may fault.
        trap: Option<TrapCode>,
    },
    /// A store.
    Store {
        /// Width.
        op: StoreOp,
        /// Stored value.
        src: VReg,
        /// Address.
        amode: Amode,
        /// The trap code of a fault at this access, if it may fault.
        trap: Option<TrapCode>,
    },
    /// `dst = a + b`, trapping with `code` on unsigned overflow (`add`, `jb` to an island).
    AddTrap {
        /// Width.
        size: Size,
        /// Result, in `a`'s register.
        dst: VReg,
        /// First operand.
        a: VReg,
        /// Second operand.
        b: Rmi,
        /// Trap code.
        code: TrapCode,
    },
    /// Division and remainder of `hi:a` by `b`, both results made (one is usually dead).
    /// A zero divisor faults at the `div` (a trap site with `int_divz`); the signed form
    /// tests for `-1` first, as `INT_MIN / -1` must trap with `int_ovf` and `INT_MIN % -1` is
    /// 0, where `idiv` would fault for both.
    Div {
        /// Signed.
        signed: bool,
        /// The remainder is the wanted result (for `-1`: 0 rather than an overflow check).
        rem_wanted: bool,
        /// Width (`L` or `Q`).
        size: Size,
        /// Dividend (fixed to `rax`).
        a: VReg,
        /// Its upper half (fixed to `rdx`): 0, or `a`'s sign from [`MInst::SignHi`].
        hi: VReg,
        /// Divisor.
        b: VReg,
        /// Quotient (`rax`).
        quot: VReg,
        /// Remainder (`rdx`).
        rem: VReg,
    },
    /// `cltd`/`cqto`: `dst` (`rdx`) filled with the sign of `src` (`rax`).
    SignHi {
        /// Width (`L` or `Q`).
        size: Size,
        /// The sign bits.
        dst: VReg,
        /// The value.
        src: VReg,
    },
    /// Unconditional jump.
    Jump {
        /// Target.
        target: MachBlock,
    },
    /// Conditional branch.
    Br {
        /// The condition.
        test: Test,
        /// Target when it holds.
        taken: MachBlock,
        /// Target otherwise.
        not_taken: MachBlock,
    },
    /// `br_table`: a bounds check against the table length, then an indirect jump through a
    /// table of 32-bit offsets placed after the code.
    BrTable {
        /// The index (i32, zero-extended).
        idx: VReg,
        /// Scratch registers.
        tmp1: VReg,
        /// Scratch registers.
        tmp2: VReg,
        /// Target of indices beyond the table.
        default: MachBlock,
        /// The table.
        targets: Vec<MachBlock>,
    },
    /// Jumps to the trap island of `code` when the condition holds.
    TrapIf {
        /// The condition.
        test: Test,
        /// Trap code.
        code: TrapCode,
    },
    /// `ud2`, a trap site with `code`.
    Trap {
        /// Trap code.
        code: TrapCode,
    },
    /// A direct call; the callee's address is patched when the code is placed.
    Call {
        /// The callee's name.
        callee: String,
        /// Arguments and their registers.
        args: Vec<(VReg, PReg)>,
        /// Slots of the outgoing area the call uses: its stack arguments (which the
        /// `StoreCallArg`s before it store), then its stack results (which the
        /// `LoadCallRet`s after it load).
        stack_args: u32,
        /// Results and their registers.
        rets: Vec<(VReg, PReg)>,
    },
    /// Stores a return value that goes on the stack into the caller's slot `slot` (counted
    /// as its stack arguments are, after them), before the function returns.
    StoreRet {
        /// The value.
        src: VReg,
        /// Its slot.
        slot: u32,
    },
    /// Loads a result the call just made left in slot `slot` of the outgoing area (after
    /// its stack arguments).
    LoadCallRet {
        /// The result.
        dst: VReg,
        /// Its slot.
        slot: u32,
    },
    /// Stores a stack argument of the next call into slot `slot` of the outgoing-argument
    /// area at the bottom of the frame. One instruction per argument: a call may have more
    /// of them than there are registers.
    StoreCallArg {
        /// The argument.
        src: VReg,
        /// Its slot, in order of the stack arguments.
        slot: u32,
    },
}

/// x86-64 register numbers.
#[allow(missing_docs)]
pub mod regs {
    pub const RAX: usize = 0;
    pub const RCX: usize = 1;
    pub const RDX: usize = 2;
    pub const RBX: usize = 3;
    pub const RSP: usize = 4;
    pub const RBP: usize = 5;
    pub const RSI: usize = 6;
    pub const RDI: usize = 7;
    pub const R11: usize = 11;
}

/// The integer register `n`.
pub fn gpr(n: usize) -> PReg {
    PReg::new(n, RegClass::Int)
}

/// The float register `xmm<n>`.
pub fn xmm(n: usize) -> PReg {
    PReg::new(n, RegClass::Float)
}

/// Registers a System V call may overwrite: the integer argument and scratch registers
/// (without `r11`, reserved as the allocator's scratch) and every `xmm` register.
pub fn caller_saved() -> PRegSet {
    let mut s = PRegSet::empty();
    for r in [0, 1, 2, 6, 7, 8, 9, 10] {
        s.add(gpr(r));
    }
    for r in 0..15 {
        s.add(xmm(r));
    }
    s
}

impl Amode {
    fn visit(&mut self, f: &mut dyn FnMut(&mut VReg, Role)) {
        f(&mut self.base, Role::Use);
        if let Some(i) = &mut self.index {
            f(i, Role::Use);
        }
    }
}

impl Rmi {
    fn visit(&mut self, f: &mut dyn FnMut(&mut VReg, Role)) {
        match self {
            Rmi::Reg(r) => f(r, Role::Use),
            Rmi::Imm(_) => {}
            Rmi::Mem(m) => m.visit(f),
        }
    }
}

impl Test {
    fn visit(&mut self, f: &mut dyn FnMut(&mut VReg, Role)) {
        match self {
            Test::Cmp { a, b, .. } => {
                f(a, Role::Use);
                b.visit(f);
            }
            Test::NonZero { x, .. } => f(x, Role::Use),
        }
    }
    /// The number of register operands the test reads.
    fn count(&self) -> usize {
        let mut n = 0;
        self.clone().visit(&mut |_, _| n += 1);
        n
    }
}

impl MInst {
    /// Calls `f` on every register operand, in the order regalloc2 sees them and emission
    /// reads their allocations.
    fn operand_roles(&mut self, f: &mut dyn FnMut(&mut VReg, Role)) {
        use Role::*;
        match self {
            MInst::Args { args } => args.iter_mut().for_each(|(v, p)| f(v, FixedDef(*p))),
            MInst::StackArg { dst, .. } => f(dst, Def),
            MInst::Ret { rets } => rets.iter_mut().for_each(|(v, p)| f(v, FixedUse(*p))),
            MInst::Alu { dst, a, b, .. } => {
                f(a, Use);
                b.visit(f);
                f(dst, Reuse(0));
            }
            MInst::AddTrap { dst, a, b, .. } => {
                f(a, Use);
                b.visit(f);
                f(dst, Reuse(0));
            }
            MInst::AluMem { amode, b, .. } => {
                amode.visit(f);
                b.visit(f);
            }
            MInst::MulImm { dst, a, .. } => {
                f(a, Use);
                f(dst, Def);
            }
            MInst::Lea { dst, amode } => {
                amode.visit(f);
                f(dst, Def);
            }
            MInst::Shift { dst, a, amount, .. } => {
                f(a, Use);
                if let Err(c) = amount {
                    f(c, FixedUse(gpr(regs::RCX)));
                }
                f(dst, Reuse(0));
            }
            MInst::Unary { dst, a, .. } => {
                f(a, Use);
                f(dst, Reuse(0));
            }
            MInst::Count { dst, src, .. }
            | MInst::Ext { dst, src, .. }
            | MInst::Mov { dst, src }
            | MInst::FUn { dst, src, .. }
            | MInst::Bitcast { dst, src, .. }
            | MInst::IntToFloat { dst, src, .. } => {
                f(src, Use);
                f(dst, Def);
            }
            MInst::Imm { dst, .. } => f(dst, Def),
            MInst::FloatToInt {
                dst,
                src,
                tmp_x,
                tmp_x2,
                tmp_g,
                ..
            } => {
                f(src, Use);
                f(tmp_x, Temp);
                f(tmp_x2, Temp);
                f(tmp_g, Temp);
                f(dst, Def);
            }
            MInst::U64ToFloat {
                dst,
                src,
                tmp1,
                tmp2,
                ..
            } => {
                f(src, Use);
                f(tmp1, Temp);
                f(tmp2, Temp);
                f(dst, Def);
            }
            MInst::FImm { dst, tmp, .. } => {
                f(tmp, Temp);
                f(dst, Def);
            }
            MInst::FAlu { dst, a, b, .. } => {
                f(a, Use);
                f(b, Use);
                f(dst, Reuse(0));
            }
            MInst::SetCc { test, dst } => {
                test.visit(f);
                f(dst, Def);
            }
            MInst::FCmp { dst, a, b, tmp, .. } => {
                f(a, Use);
                f(b, Use);
                f(tmp, Temp);
                f(dst, Def);
            }
            MInst::Select {
                test,
                dst,
                t,
                f: fv,
            } => {
                let n = test.count();
                test.visit(f);
                f(fv, Use);
                f(t, Use);
                f(dst, Reuse(n));
            }
            MInst::Load { dst, amode, .. } => {
                amode.visit(f);
                f(dst, Def);
            }
            MInst::Store { src, amode, .. } => {
                amode.visit(f);
                f(src, Use);
            }
            MInst::Div {
                a,
                hi,
                b,
                quot,
                rem,
                ..
            } => {
                f(a, FixedUse(gpr(regs::RAX)));
                f(hi, FixedUse(gpr(regs::RDX)));
                f(b, Use);
                f(quot, FixedDef(gpr(regs::RAX)));
                f(rem, FixedDef(gpr(regs::RDX)));
            }
            MInst::SignHi { dst, src, .. } => {
                f(src, FixedUse(gpr(regs::RAX)));
                f(dst, FixedDef(gpr(regs::RDX)));
            }
            MInst::Jump { .. } | MInst::Trap { .. } => {}
            MInst::Br { test, .. } | MInst::TrapIf { test, .. } => test.visit(f),
            MInst::BrTable {
                idx, tmp1, tmp2, ..
            } => {
                f(idx, Use);
                f(tmp1, Temp);
                f(tmp2, Temp);
            }
            MInst::Call { args, rets, .. } => {
                args.iter_mut().for_each(|(v, p)| f(v, FixedUse(*p)));
                rets.iter_mut().for_each(|(v, p)| f(v, FixedDef(*p)));
            }
            MInst::StoreCallArg { src, .. } => f(src, Use),
            MInst::StoreRet { src, .. } => f(src, Use),
            MInst::LoadCallRet { dst, .. } => f(dst, Def),
        }
    }
}

impl crate::machinst::abi::AbiInst for MInst {
    fn gen_args(args: Vec<(VReg, PReg)>) -> Self {
        MInst::Args { args }
    }
    fn gen_stack_arg(dst: VReg, slot: u32) -> Self {
        MInst::StackArg { dst, slot }
    }
    fn gen_ret(rets: Vec<(VReg, PReg)>) -> Self {
        MInst::Ret { rets }
    }
    fn gen_store_ret(src: VReg, slot: u32) -> Self {
        MInst::StoreRet { src, slot }
    }
    fn gen_call(
        callee: String,
        args: Vec<(VReg, PReg)>,
        slots: u32,
        rets: Vec<(VReg, PReg)>,
    ) -> Self {
        MInst::Call {
            callee,
            args,
            stack_args: slots,
            rets,
        }
    }
    fn gen_store_call_arg(src: VReg, slot: u32) -> Self {
        MInst::StoreCallArg { src, slot }
    }
    fn gen_load_call_ret(dst: VReg, slot: u32) -> Self {
        MInst::LoadCallRet { dst, slot }
    }
    fn call_slots(&self) -> Option<u32> {
        match self {
            MInst::Call { stack_args, .. } => Some(*stack_args),
            _ => None,
        }
    }
    fn uses_caller_slots(&self) -> bool {
        matches!(self, MInst::StackArg { .. } | MInst::StoreRet { .. })
    }
    fn gen_move(dst: VReg, src: VReg) -> Self {
        MInst::Mov { dst, src }
    }
}

impl MachInst for MInst {
    fn gen_jump(target: MachBlock) -> Self {
        MInst::Jump { target }
    }
    fn visit(&mut self, f: &mut dyn FnMut(&mut VReg, Role)) {
        self.operand_roles(f)
    }

    fn clobbers(&self) -> PRegSet {
        match self {
            MInst::Call { rets, .. } => {
                let mut s = caller_saved();
                for (_, p) in rets {
                    s.remove(*p);
                }
                s
            }
            _ => PRegSet::empty(),
        }
    }

    fn is_pure(&self) -> bool {
        matches!(
            self,
            MInst::Alu { .. }
                | MInst::MulImm { .. }
                | MInst::Lea { .. }
                | MInst::Shift { .. }
                | MInst::Unary { .. }
                | MInst::Count { .. }
                | MInst::Ext { .. }
                | MInst::Mov { .. }
                | MInst::Imm { .. }
                | MInst::FImm { .. }
                | MInst::FAlu { .. }
                | MInst::FUn { .. }
                | MInst::Bitcast { .. }
                | MInst::IntToFloat { .. }
                | MInst::SetCc { .. }
                | MInst::FCmp { .. }
                | MInst::Select { .. }
                | MInst::SignHi { .. }
                | MInst::U64ToFloat { .. }
                // A trusted load has no effect beyond its result.
                | MInst::Load { trap: None, .. }
        )
    }

    fn is_ret(&self) -> bool {
        matches!(self, MInst::Ret { .. })
    }

    fn jump_target(&self) -> Option<MachBlock> {
        match self {
            MInst::Jump { target } => Some(*target),
            _ => None,
        }
    }

    fn branch_targets(&self) -> Vec<MachBlock> {
        match self {
            MInst::Jump { target } => vec![*target],
            MInst::Br {
                taken, not_taken, ..
            } => vec![*taken, *not_taken],
            MInst::BrTable {
                default, targets, ..
            } => std::iter::once(*default)
                .chain(targets.iter().copied())
                .collect(),
            _ => Vec::new(),
        }
    }
}
