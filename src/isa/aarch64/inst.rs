//! AArch64 machine instructions over virtual registers, and their operands for regalloc2.
//!
//! Instructions are three-address, as the hardware is. As on x86_64, a comparison is never a
//! machine instruction of its own: it is part of the instruction that consumes the flags
//! (branch, trap, `csel`, `cset`), so nothing the allocator inserts between two instructions
//! can clobber live flags. Encoding is in `emit.rs`, through `dynasm`.

use crate::ir::TrapCode;
use crate::machinst::{MachBlock, MachInst, PReg, PRegSet, RegClass, Role, VReg};

/// An integer operation's width: `W` (32 bits, which zeroes the upper half of the register)
/// or `X` (64 bits). i8 and i16 values are computed with `W` operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Size {
    /// 32 bits.
    W,
    /// 64 bits.
    X,
}

impl Size {
    /// The width of an integer type's operations.
    pub fn of_bits(bits: u32) -> Size {
        if bits == 64 {
            Size::X
        } else {
            Size::W
        }
    }
    /// The width in bits.
    pub fn bits(self) -> u8 {
        match self {
            Size::W => 32,
            Size::X => 64,
        }
    }
}

/// The condition codes, numbered as the hardware encodes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Cond {
    Eq = 0,
    Ne = 1,
    /// Unsigned `>=` (carry set).
    Hs = 2,
    /// Unsigned `<` (carry clear).
    Lo = 3,
    Mi = 4,
    Pl = 5,
    Vs = 6,
    Vc = 7,
    /// Unsigned `>`.
    Hi = 8,
    /// Unsigned `<=`.
    Ls = 9,
    Ge = 10,
    Lt = 11,
    Gt = 12,
    Le = 13,
}

impl Cond {
    /// The condition that holds exactly when `self` does not (the hardware flips bit 0).
    pub fn invert(self) -> Cond {
        use Cond::*;
        match self {
            Eq => Ne,
            Ne => Eq,
            Hs => Lo,
            Lo => Hs,
            Mi => Pl,
            Pl => Mi,
            Vs => Vc,
            Vc => Vs,
            Hi => Ls,
            Ls => Hi,
            Ge => Lt,
            Lt => Ge,
            Gt => Le,
            Le => Gt,
        }
    }
    /// The condition with the operands of the comparison exchanged.
    pub fn swap(self) -> Cond {
        use Cond::*;
        match self {
            Hs => Ls,
            Ls => Hs,
            Lo => Hi,
            Hi => Lo,
            Ge => Le,
            Le => Ge,
            Lt => Gt,
            Gt => Lt,
            c => c,
        }
    }
    /// The hardware's number.
    pub fn bits(self) -> u32 {
        self as u32
    }
}

/// The second operand of an addition, subtraction or comparison: a register, or a 12-bit
/// unsigned immediate, optionally shifted left by 12.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rim {
    /// A register.
    Reg(VReg),
    /// `imm12` or `imm12 << 12` (the value is the shifted one).
    Imm(u32),
}

impl Rim {
    /// `k` as an arithmetic immediate, when it is one.
    pub fn imm(k: u64) -> Option<Rim> {
        (k < 1 << 12 || (k < 1 << 24 && k.trailing_zeros() >= 12)).then_some(Rim::Imm(k as u32))
    }
}

/// An address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Amode {
    /// `[base, #disp]`: scaled unsigned 12-bit offset or unscaled 9-bit signed one (`ldur`);
    /// lowering makes every displacement one of them.
    Imm {
        /// The base register.
        base: VReg,
        /// The displacement.
        disp: i64,
    },
    /// `[base, index]` with a 64-bit index, or `[base, windex, uxtw]` with a 32-bit one
    /// (zero-extended by the hardware): the bounds-checked accesses' mode.
    Reg {
        /// The base register.
        base: VReg,
        /// The index register.
        index: VReg,
        /// The index is 32 bits, zero-extended (`uxtw`).
        uxtw: bool,
    },
}

impl Amode {
    /// Whether `disp` can be the displacement of an access of `bytes` bytes.
    pub fn fits(disp: i64, bytes: u64) -> bool {
        let b = bytes as i64;
        (-256..256).contains(&disp) || (disp >= 0 && disp % b == 0 && disp / b < 4096)
    }
}

/// Two-register integer operations `dst = a op b`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum AluOp {
    Add,
    Sub,
    And,
    Orr,
    Eor,
    Mul,
    Lsl,
    Lsr,
    Asr,
    Ror,
    Udiv,
    Sdiv,
    /// `umulh`, `smulh`: the high half of the 64-bit product.
    Umulh,
    Smulh,
}

/// One-operand integer operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum UnaryOp {
    Neg,
    /// `mvn`.
    Not,
    /// `rev`: byte reversal of the whole width.
    Rev,
    /// `rev16` then a 16-bit zero extension: byte swap of the low halfword.
    Rev16,
    Clz,
    /// `rbit` then `clz`.
    Ctz,
    /// `cnt` of the bytes in a vector register, summed.
    Popcnt,
}

/// Extensions between integer widths (`uxtb`, `sxth`, `mov wd, wn`, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum ExtOp {
    Zx8,
    Zx16,
    /// `mov wd, wn`: clears the upper half.
    Zx32,
    Sx8To32,
    Sx16To32,
    Sx8To64,
    Sx16To64,
    Sx32To64,
}

/// What sets the flags a consumer tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Test {
    /// `cmp a, b` of `size`, then `cond`.
    Cmp {
        /// Operand width.
        size: Size,
        /// The condition on `a` and `b`.
        cond: Cond,
        /// The first operand.
        a: VReg,
        /// The second operand.
        b: Rim,
    },
    /// `x != 0` (or `x == 0` with `zero`): `cbnz`/`cbz` in a branch, `cmp x, #0` elsewhere.
    NonZero {
        /// Operand width.
        size: Size,
        /// The tested register.
        x: VReg,
        /// Holds when `x` is zero instead.
        zero: bool,
    },
}

impl Test {
    /// The test that holds exactly when `self` does not.
    pub fn invert(self) -> Test {
        match self {
            Test::Cmp { size, cond, a, b } => Test::Cmp {
                size,
                cond: cond.invert(),
                a,
                b,
            },
            Test::NonZero { size, x, zero } => Test::NonZero {
                size,
                x,
                zero: !zero,
            },
        }
    }
    fn visit(&mut self, f: &mut dyn FnMut(&mut VReg, Role)) {
        match self {
            Test::Cmp { a, b, .. } => {
                f(a, Role::Use);
                if let Rim::Reg(b) = b {
                    f(b, Role::Use);
                }
            }
            Test::NonZero { x, .. } => f(x, Role::Use),
        }
    }
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
    /// Bytes read.
    pub fn bytes(self) -> u64 {
        use LoadOp::*;
        match self {
            U8 | S8To32 | S8To64 => 1,
            U16 | S16To32 | S16To64 => 2,
            U32 | S32To64 | F32 => 4,
            X64 | F64 => 8,
        }
    }
}

/// Stores, by width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum StoreOp {
    B,
    H,
    W,
    X,
    F32,
    F64,
}

impl StoreOp {
    /// Bytes written.
    pub fn bytes(self) -> u64 {
        match self {
            StoreOp::B => 1,
            StoreOp::H => 2,
            StoreOp::W | StoreOp::F32 => 4,
            StoreOp::X | StoreOp::F64 => 8,
        }
    }
}

/// Scalar float arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum FAluOp {
    Add,
    Sub,
    Mul,
    Div,
    /// `fmin`: NaN-propagating, `-0 < +0`, as CLIF's.
    Min,
    /// `fmax`.
    Max,
}

/// One-operand float operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum FUnOp {
    Sqrt,
    Neg,
    Abs,
    /// `frintn`, `frintm`, `frintp`, `frintz`: nearest even, floor, ceil, trunc.
    Nearest,
    Floor,
    Ceil,
    Trunc,
    /// f32 to f64.
    Promote,
    /// f64 to f32.
    Demote,
}

/// An AArch64 machine instruction (or a short fixed sequence) over virtual registers.
#[derive(Clone, Debug)]
pub enum MInst {
    /// Defines the function's parameters that arrive in argument registers.
    Args {
        /// Parameter registers and where they arrive.
        args: Vec<(VReg, PReg)>,
    },
    /// Loads the parameter the caller passed in stack slot `slot` (above the frame record).
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
    /// `dst = a op b`.
    Alu {
        /// The operation.
        op: AluOp,
        /// Width.
        size: Size,
        /// Result.
        dst: VReg,
        /// First operand.
        a: VReg,
        /// Second operand.
        b: VReg,
    },
    /// `dst = a + imm` or `a - imm` with an arithmetic immediate.
    AluImm {
        /// Subtract rather than add.
        sub: bool,
        /// Width.
        size: Size,
        /// Result.
        dst: VReg,
        /// First operand.
        a: VReg,
        /// The immediate (a [`Rim::imm`] value).
        imm: u32,
    },
    /// `dst = a + zext32(b)` (`add xd, xn, wm, uxtw`): a base plus a 32-bit index.
    AddUxtw {
        /// Result.
        dst: VReg,
        /// The 64-bit operand.
        a: VReg,
        /// The 32-bit operand.
        b: VReg,
    },
    /// `dst = c - a * b` (`msub`: the remainder after a division).
    Msub {
        /// Width.
        size: Size,
        /// Result.
        dst: VReg,
        /// Factors.
        a: VReg,
        /// Factors.
        b: VReg,
        /// Minuend.
        c: VReg,
    },
    /// `dst = a shift amount` by an immediate (`lsl`, `lsr`, `asr`, `ror` of `size`).
    ShiftImm {
        /// The shift (`Lsl`, `Lsr`, `Asr` or `Ror`).
        op: AluOp,
        /// Width.
        size: Size,
        /// Result.
        dst: VReg,
        /// The shifted value.
        a: VReg,
        /// The amount, below the width.
        amount: u8,
    },
    /// `dst = op a`.
    Unary {
        /// The operation.
        op: UnaryOp,
        /// Width.
        size: Size,
        /// Result.
        dst: VReg,
        /// Operand.
        a: VReg,
        /// A float scratch register (`Popcnt` only; unused otherwise).
        tmp: Option<VReg>,
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
    /// An integer constant (`movz`/`movn` and `movk`s); a `W` constant is zero-extended.
    Imm {
        /// Width.
        size: Size,
        /// Result.
        dst: VReg,
        /// The bits.
        imm: u64,
    },
    /// `dst = test ? 1 : 0` (`cset`).
    CSet {
        /// The condition.
        test: Test,
        /// Result.
        dst: VReg,
    },
    /// `dst = test ? t : f` (`csel`, `fcsel` for floats).
    CSel {
        /// The condition.
        test: Test,
        /// Result.
        dst: VReg,
        /// Value when the condition holds.
        t: VReg,
        /// Value otherwise.
        f: VReg,
    },
    /// `csdb`: no instruction after it uses a conditional select's result predicted.
    Csdb,
    /// The Spectre guard of an explicit check: `dst = test ? 0 : f` (`csel dst, xzr, f`),
    /// then `csdb` when the target asks for it, so that no speculative access uses an
    /// out-of-bounds address.
    CSelZero {
        /// The out-of-bounds condition.
        test: Test,
        /// Result: the address, or null.
        dst: VReg,
        /// The address.
        f: VReg,
        /// Emit `csdb` after the `csel`.
        csdb: bool,
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
    /// `dst = a + b` (64 or 32 bits), trapping with `code` on unsigned overflow (`adds`, then
    /// `b.hs` to the trap island).
    AddTrap {
        /// Width.
        size: Size,
        /// Result.
        dst: VReg,
        /// First operand.
        a: VReg,
        /// Second operand.
        b: Rim,
        /// Trap code.
        code: TrapCode,
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
    /// `dst = a op b` on scalars.
    FAlu {
        /// The operation.
        op: FAluOp,
        /// f64 rather than f32.
        wide: bool,
        /// Result.
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
    /// Moves bits between an integer and a float register (`fmov`).
    Bitcast {
        /// 64 bits rather than 32.
        wide: bool,
        /// Result (either class).
        dst: VReg,
        /// Operand (the other class).
        src: VReg,
    },
    /// A float comparison's result as 0 or 1 (`fcmp`, `cset`), with CLIF's unordered
    /// semantics for each condition.
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
    },
    /// Integer to float (`scvtf`/`ucvtf`).
    IntToFloat {
        /// Signed source.
        signed: bool,
        /// The source is 64 bits.
        src_wide: bool,
        /// The result is f64.
        dst_wide: bool,
        /// Result.
        dst: VReg,
        /// Operand.
        src: VReg,
    },
    /// Float to integer, truncating (`fcvtzs`/`fcvtzu`, which saturate and make NaN 0); the
    /// trapping form first tests for NaN (`bad_toint`) and the range (`int_ovf`) with the
    /// float bounds, as CLIF's `fcvt_to_*int` must trap there.
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
        /// Float scratch register (the trapping form's bounds).
        tmp: VReg,
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
    /// Branches to the trap island of `code` when the condition holds.
    TrapIf {
        /// The condition.
        test: Test,
        /// Trap code.
        code: TrapCode,
    },
    /// `udf`, a trap site with `code`.
    Trap {
        /// Trap code.
        code: TrapCode,
    },
    /// A direct call (`bl`); the offset is patched when the code is placed.
    Call {
        /// The callee's name.
        callee: String,
        /// Arguments and their registers.
        args: Vec<(VReg, PReg)>,
        /// Slots of the outgoing area the call uses (stack arguments, then stack results).
        stack_args: u32,
        /// Results and their registers.
        rets: Vec<(VReg, PReg)>,
    },
    /// Stores a return value that goes on the stack into the caller's slot `slot`.
    StoreRet {
        /// The value.
        src: VReg,
        /// Its slot.
        slot: u32,
    },
    /// Loads a result the call just made left in slot `slot` of the outgoing area.
    LoadCallRet {
        /// The result.
        dst: VReg,
        /// Its slot.
        slot: u32,
    },
    /// Stores a stack argument of the next call into slot `slot` of the outgoing area.
    StoreCallArg {
        /// The argument.
        src: VReg,
        /// Its slot, in order of the stack arguments.
        slot: u32,
    },
}

/// AArch64 register numbers with a role.
#[allow(missing_docs)]
pub mod regs {
    /// The allocator's scratch register for cyclic moves (IP0).
    pub const X16: usize = 16;
    /// Emission's own scratch register: large frame offsets, jump tables, host stubs (IP1).
    pub const X17: usize = 17;
    pub const FP: usize = 29;
    pub const LR: usize = 30;
    /// The float scratch register of the allocator.
    pub const V31: usize = 31;
}

/// The integer register `xn`.
pub fn gpr(n: usize) -> PReg {
    PReg::new(n, RegClass::Int)
}

/// The float register `vn`.
pub fn vreg_f(n: usize) -> PReg {
    PReg::new(n, RegClass::Float)
}

/// The integer registers handed out besides the callee-saved ones: every caller-saved
/// register but the scratch registers `x16`/`x17` and the platform register `x18`.
pub const CALLER_SAVED_INT: [usize; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

/// The callee-saved integer registers handed out (saved by the prologue when used).
pub const CALLEE_SAVED_INT: [usize; 10] = [19, 20, 21, 22, 23, 24, 25, 26, 27, 28];

/// The float registers handed out: the caller-saved ones (`v0-v7`, `v16-v30`); the
/// callee-saved `v8-v15` are never used, so no prologue saves them.
pub fn float_regs() -> Vec<usize> {
    (0..8).chain(16..31).collect()
}

/// Registers a call may overwrite.
pub fn caller_saved() -> PRegSet {
    let mut s = PRegSet::empty();
    for r in CALLER_SAVED_INT {
        s.add(gpr(r));
    }
    for r in float_regs() {
        s.add(vreg_f(r));
    }
    s
}

impl Amode {
    fn visit(&mut self, f: &mut dyn FnMut(&mut VReg, Role)) {
        match self {
            Amode::Imm { base, .. } => f(base, Role::Use),
            Amode::Reg { base, index, .. } => {
                f(base, Role::Use);
                f(index, Role::Use);
            }
        }
    }
}

impl MInst {
    /// Calls `f` on every register operand, in the order regalloc2 sees them and emission
    /// reads their allocations.
    fn operand_roles(&mut self, f: &mut dyn FnMut(&mut VReg, Role)) {
        use Role::*;
        match self {
            MInst::Args { args } => args.iter_mut().for_each(|(v, p)| f(v, FixedDef(*p))),
            MInst::StackArg { dst, .. } | MInst::LoadCallRet { dst, .. } => f(dst, Def),
            MInst::Ret { rets } => rets.iter_mut().for_each(|(v, p)| f(v, FixedUse(*p))),
            MInst::Alu { dst, a, b, .. } | MInst::FAlu { dst, a, b, .. } => {
                f(a, Use);
                f(b, Use);
                f(dst, Def);
            }
            MInst::AddUxtw { dst, a, b } => {
                f(a, Use);
                f(b, Use);
                f(dst, Def);
            }
            MInst::AluImm { dst, a, .. } | MInst::ShiftImm { dst, a, .. } => {
                f(a, Use);
                f(dst, Def);
            }
            MInst::Msub { dst, a, b, c, .. } => {
                f(a, Use);
                f(b, Use);
                f(c, Use);
                f(dst, Def);
            }
            MInst::Unary { dst, a, tmp, .. } => {
                f(a, Use);
                if let Some(t) = tmp {
                    f(t, Temp);
                }
                f(dst, Def);
            }
            MInst::Ext { dst, src, .. }
            | MInst::Mov { dst, src }
            | MInst::FUn { dst, src, .. }
            | MInst::Bitcast { dst, src, .. }
            | MInst::IntToFloat { dst, src, .. } => {
                f(src, Use);
                f(dst, Def);
            }
            MInst::FloatToInt { dst, src, tmp, .. } => {
                f(src, Use);
                f(tmp, Temp);
                f(dst, Def);
            }
            MInst::Imm { dst, .. } => f(dst, Def),
            MInst::FImm { dst, tmp, .. } => {
                f(tmp, Temp);
                f(dst, Def);
            }
            MInst::CSet { test, dst } => {
                test.visit(f);
                f(dst, Def);
            }
            MInst::CSel {
                test,
                dst,
                t,
                f: fv,
            } => {
                test.visit(f);
                f(t, Use);
                f(fv, Use);
                f(dst, Def);
            }
            MInst::CSelZero {
                test, dst, f: fv, ..
            } => {
                test.visit(f);
                f(fv, Use);
                f(dst, Def);
            }
            MInst::FCmp { dst, a, b, .. } => {
                f(a, Use);
                f(b, Use);
                f(dst, Def);
            }
            MInst::Load { dst, amode, .. } => {
                amode.visit(f);
                f(dst, Def);
            }
            MInst::Store { src, amode, .. } => {
                amode.visit(f);
                f(src, Use);
            }
            MInst::AddTrap { dst, a, b, .. } => {
                f(a, Use);
                if let Rim::Reg(b) = b {
                    f(b, Use);
                }
                f(dst, Def);
            }
            MInst::Jump { .. } | MInst::Trap { .. } | MInst::Csdb => {}
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
            MInst::StoreCallArg { src, .. } | MInst::StoreRet { src, .. } => f(src, Use),
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
            MInst::Alu {
                op: AluOp::Add
                    | AluOp::Sub
                    | AluOp::And
                    | AluOp::Orr
                    | AluOp::Eor
                    | AluOp::Mul
                    | AluOp::Lsl
                    | AluOp::Lsr
                    | AluOp::Asr
                    | AluOp::Ror
                    | AluOp::Umulh
                    | AluOp::Smulh,
                ..
            } | MInst::AluImm { .. }
                | MInst::AddUxtw { .. }
                | MInst::Msub { .. }
                | MInst::ShiftImm { .. }
                | MInst::Unary { .. }
                | MInst::Ext { .. }
                | MInst::Mov { .. }
                | MInst::Imm { .. }
                | MInst::CSet { .. }
                | MInst::CSel { .. }
                | MInst::FImm { .. }
                | MInst::FAlu { .. }
                | MInst::FUn { .. }
                | MInst::Bitcast { .. }
                | MInst::FCmp { .. }
                | MInst::IntToFloat { .. }
                | MInst::FloatToInt { sat: true, .. }
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
