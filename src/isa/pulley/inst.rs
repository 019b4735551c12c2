//! Pulley machine instructions over virtual registers, and their operands for regalloc2.
//!
//! Most Pulley operations are "registers in, one register out"; they are grouped by shape
//! ([`BinOp`], [`UnOp`]) and each shape is defined once by a table that also generates the
//! encoder call, so the operand order regalloc2 sees is the order emission reads.

use crate::ir::TrapCode;
use crate::machinst::{MachBlock, MachInst, PReg, PRegSet, RegClass, Role, VReg};

use pulley_interpreter::encode;
use pulley_interpreter::regs::BinaryOperands;
use pulley_interpreter::regs::Reg as _;
use pulley_interpreter::{FReg, XReg};

/// The Pulley integer register numbered `n` (after allocation).
pub fn xr(n: u8) -> XReg {
    XReg::new(n).expect("allocated integer registers are x0-x29, sp or spilltmp0")
}

/// The Pulley float register numbered `n`.
pub fn fr(n: u8) -> FReg {
    FReg::new(n).expect("allocated float registers are f0-f31")
}

macro_rules! class_of {
    (x) => {
        RegClass::Int
    };
    (f) => {
        RegClass::Float
    };
}

macro_rules! reg_of {
    (x, $n:expr) => {
        xr($n)
    };
    (f, $n:expr) => {
        fr($n)
    };
}

macro_rules! bin_ops {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $enc:ident [$form:ident];)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[allow(missing_docs)]
        pub enum $name { $($variant,)* }
        impl $name {
            /// The Pulley mnemonic.
            pub fn mnemonic(self) -> &'static str {
                match self { $($name::$variant => stringify!($enc),)* }
            }
            /// Register classes of destination, first and second source.
            pub fn classes(self) -> [RegClass; 3] {
                match self { $($name::$variant => bin_ops!(@classes $form),)* }
            }
            /// Encodes `dst = op(a, b)` on allocated register numbers.
            pub fn encode(self, sink: &mut Vec<u8>, dst: u8, a: u8, b: u8) {
                match self { $($name::$variant => bin_ops!(@enc $form $enc sink dst a b),)* }
            }
        }
    };
    (@classes bx) => { [RegClass::Int; 3] };
    (@classes bf) => { [RegClass::Float; 3] };
    (@classes xff) => { [RegClass::Int, RegClass::Float, RegClass::Float] };
    (@enc bx $enc:ident $s:ident $d:ident $a:ident $b:ident) => {
        encode::$enc($s, BinaryOperands::new(xr($d), xr($a), xr($b)))
    };
    (@enc bf $enc:ident $s:ident $d:ident $a:ident $b:ident) => {
        encode::$enc($s, BinaryOperands::new(fr($d), fr($a), fr($b)))
    };
    (@enc xff $enc:ident $s:ident $d:ident $a:ident $b:ident) => {
        encode::$enc($s, xr($d), fr($a), fr($b))
    };
}

macro_rules! un_ops {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $enc:ident [$form:ident];)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[allow(missing_docs)]
        pub enum $name { $($variant,)* }
        impl $name {
            /// The Pulley mnemonic.
            pub fn mnemonic(self) -> &'static str {
                match self { $($name::$variant => stringify!($enc),)* }
            }
            /// Register classes of destination and source.
            pub fn classes(self) -> [RegClass; 2] {
                match self { $($name::$variant => un_ops!(@classes $form),)* }
            }
            /// Encodes `dst = op(src)` on allocated register numbers.
            pub fn encode(self, sink: &mut Vec<u8>, dst: u8, src: u8) {
                match self { $($name::$variant => un_ops!(@enc $form $enc sink dst src),)* }
            }
        }
    };
    (@classes xx) => { [class_of!(x), class_of!(x)] };
    (@classes ff) => { [class_of!(f), class_of!(f)] };
    (@classes fx) => { [class_of!(f), class_of!(x)] };
    (@classes xf) => { [class_of!(x), class_of!(f)] };
    (@enc xx $enc:ident $s:ident $d:ident $a:ident) => { encode::$enc($s, reg_of!(x, $d), reg_of!(x, $a)) };
    (@enc ff $enc:ident $s:ident $d:ident $a:ident) => { encode::$enc($s, reg_of!(f, $d), reg_of!(f, $a)) };
    (@enc fx $enc:ident $s:ident $d:ident $a:ident) => { encode::$enc($s, reg_of!(f, $d), reg_of!(x, $a)) };
    (@enc xf $enc:ident $s:ident $d:ident $a:ident) => { encode::$enc($s, reg_of!(x, $d), reg_of!(f, $a)) };
}

bin_ops! {
    /// `dst = op(src1, src2)`.
    BinOp {
        Xadd32 = xadd32[bx]; Xadd64 = xadd64[bx];
        Xsub32 = xsub32[bx]; Xsub64 = xsub64[bx];
        Xmul32 = xmul32[bx]; Xmul64 = xmul64[bx];
        Xdiv32S = xdiv32_s[bx]; Xdiv64S = xdiv64_s[bx];
        Xdiv32U = xdiv32_u[bx]; Xdiv64U = xdiv64_u[bx];
        Xrem32S = xrem32_s[bx]; Xrem64S = xrem64_s[bx];
        Xrem32U = xrem32_u[bx]; Xrem64U = xrem64_u[bx];
        Xband32 = xband32[bx]; Xband64 = xband64[bx];
        Xbor32 = xbor32[bx]; Xbor64 = xbor64[bx];
        Xbxor32 = xbxor32[bx]; Xbxor64 = xbxor64[bx];
        Xshl32 = xshl32[bx]; Xshl64 = xshl64[bx];
        Xshr32S = xshr32_s[bx]; Xshr64S = xshr64_s[bx];
        Xshr32U = xshr32_u[bx]; Xshr64U = xshr64_u[bx];
        Xrotl32 = xrotl32[bx]; Xrotl64 = xrotl64[bx];
        Xrotr32 = xrotr32[bx]; Xrotr64 = xrotr64[bx];
        Xeq32 = xeq32[bx]; Xeq64 = xeq64[bx];
        Xneq32 = xneq32[bx]; Xneq64 = xneq64[bx];
        Xslt32 = xslt32[bx]; Xslt64 = xslt64[bx];
        Xslteq32 = xslteq32[bx]; Xslteq64 = xslteq64[bx];
        Xult32 = xult32[bx]; Xult64 = xult64[bx];
        Xulteq32 = xulteq32[bx]; Xulteq64 = xulteq64[bx];
        Fadd32 = fadd32[bf]; Fadd64 = fadd64[bf];
        Fsub32 = fsub32[bf]; Fsub64 = fsub64[bf];
        Fmul32 = fmul32[bf]; Fmul64 = fmul64[bf];
        Fdiv32 = fdiv32[bf]; Fdiv64 = fdiv64[bf];
        Fminimum32 = fminimum32[bf]; Fminimum64 = fminimum64[bf];
        Fmaximum32 = fmaximum32[bf]; Fmaximum64 = fmaximum64[bf];
        Fcopysign32 = fcopysign32[bf]; Fcopysign64 = fcopysign64[bf];
        Feq32 = feq32[xff]; Feq64 = feq64[xff];
        Fneq32 = fneq32[xff]; Fneq64 = fneq64[xff];
        Flt32 = flt32[xff]; Flt64 = flt64[xff];
        Flteq32 = flteq32[xff]; Flteq64 = flteq64[xff];
    }
}

un_ops! {
    /// `dst = op(src)`.
    UnOp {
        Xmov = xmov[xx]; Fmov = fmov[ff];
        Zext8 = zext8[xx]; Zext16 = zext16[xx]; Zext32 = zext32[xx];
        Sext8 = sext8[xx]; Sext16 = sext16[xx]; Sext32 = sext32[xx];
        Xneg32 = xneg32[xx]; Xneg64 = xneg64[xx];
        Xbnot32 = xbnot32[xx]; Xbnot64 = xbnot64[xx];
        Xclz32 = xclz32[xx]; Xclz64 = xclz64[xx];
        Xctz32 = xctz32[xx]; Xctz64 = xctz64[xx];
        Xpopcnt32 = xpopcnt32[xx]; Xpopcnt64 = xpopcnt64[xx];
        Bswap32 = bswap32[xx]; Bswap64 = bswap64[xx];
        Fneg32 = fneg32[ff]; Fneg64 = fneg64[ff];
        Fabs32 = fabs32[ff]; Fabs64 = fabs64[ff];
        Fsqrt32 = fsqrt32[ff]; Fsqrt64 = fsqrt64[ff];
        Fceil32 = fceil32[ff]; Fceil64 = fceil64[ff];
        Ffloor32 = ffloor32[ff]; Ffloor64 = ffloor64[ff];
        Ftrunc32 = ftrunc32[ff]; Ftrunc64 = ftrunc64[ff];
        Fnearest32 = fnearest32[ff]; Fnearest64 = fnearest64[ff];
        F32FromF64 = f32_from_f64[ff]; F64FromF32 = f64_from_f32[ff];
        F32FromX32S = f32_from_x32_s[fx]; F32FromX32U = f32_from_x32_u[fx];
        F32FromX64S = f32_from_x64_s[fx]; F32FromX64U = f32_from_x64_u[fx];
        F64FromX32S = f64_from_x32_s[fx]; F64FromX32U = f64_from_x32_u[fx];
        F64FromX64S = f64_from_x64_s[fx]; F64FromX64U = f64_from_x64_u[fx];
        X32FromF32S = x32_from_f32_s[xf]; X32FromF32U = x32_from_f32_u[xf];
        X32FromF64S = x32_from_f64_s[xf]; X32FromF64U = x32_from_f64_u[xf];
        X64FromF32S = x64_from_f32_s[xf]; X64FromF32U = x64_from_f32_u[xf];
        X64FromF64S = x64_from_f64_s[xf]; X64FromF64U = x64_from_f64_u[xf];
        X32FromF32SSat = x32_from_f32_s_sat[xf]; X32FromF32USat = x32_from_f32_u_sat[xf];
        X32FromF64SSat = x32_from_f64_s_sat[xf]; X32FromF64USat = x32_from_f64_u_sat[xf];
        X64FromF32SSat = x64_from_f32_s_sat[xf]; X64FromF32USat = x64_from_f32_u_sat[xf];
        X64FromF64SSat = x64_from_f64_s_sat[xf]; X64FromF64USat = x64_from_f64_u_sat[xf];
        BitcastIntFromFloat32 = bitcast_int_from_float_32[xf];
        BitcastIntFromFloat64 = bitcast_int_from_float_64[xf];
        BitcastFloatFromInt32 = bitcast_float_from_int_32[fx];
        BitcastFloatFromInt64 = bitcast_float_from_int_64[fx];
    }
}

/// Operations with an immediate second operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum ImmOp {
    Add,
    Sub,
    Mul,
    And,
    Or,
    Xor,
    Shl,
    ShrU,
    ShrS,
}

impl BinOp {
    /// Division and remainder trap (by zero, or signed overflow).
    pub fn can_trap(self) -> bool {
        use BinOp::*;
        matches!(
            self,
            Xdiv32S | Xdiv64S | Xdiv32U | Xdiv64U | Xrem32S | Xrem64S | Xrem32U | Xrem64U
        )
    }
}

impl UnOp {
    /// Float-to-integer conversions trap on NaN and overflow, unless saturating.
    pub fn can_trap(self) -> bool {
        let m = self.mnemonic();
        m.starts_with('x') && m.contains("_from_f") && !m.ends_with("_sat")
    }
}

/// What a memory operation reads or writes: width, extension, byte order and register class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum MemOp {
    X8U,
    X8S,
    X16U,
    X16S,
    X32,
    X64,
    X16UBe,
    X16SBe,
    X32Be,
    X64Be,
    F32,
    F64,
    F32Be,
    F64Be,
}

impl MemOp {
    /// Bytes accessed.
    pub fn size(self) -> u64 {
        use MemOp::*;
        match self {
            X8U | X8S => 1,
            X16U | X16S | X16UBe | X16SBe => 2,
            X32 | X32Be | F32 | F32Be => 4,
            X64 | X64Be | F64 | F64Be => 8,
        }
    }
    /// The register class of the loaded or stored value.
    pub fn class(self) -> RegClass {
        use MemOp::*;
        match self {
            F32 | F64 | F32Be | F64Be => RegClass::Float,
            _ => RegClass::Int,
        }
    }
    /// Whether the access is big-endian (only the `o32` mode has those).
    pub fn big_endian(self) -> bool {
        use MemOp::*;
        matches!(self, X16UBe | X16SBe | X32Be | X64Be | F32Be | F64Be)
    }
}

/// A Pulley addressing mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Amode {
    /// `base + offset`; never traps by itself.
    O32 {
        /// Host address.
        base: VReg,
        /// Byte offset.
        offset: i32,
    },
    /// `base + offset`; traps when `base` is null.
    Z {
        /// Host address or null.
        base: VReg,
        /// Byte offset.
        offset: i32,
    },
    /// `base + zext(index) + offset`, trapping when `zext(index) > bound - offset - size`.
    /// Only sound when `bound >= offset + size`: the interpreter subtracts unchecked.
    G32 {
        /// Memory base.
        base: VReg,
        /// Memory bound in bytes.
        bound: VReg,
        /// 32-bit index.
        index: VReg,
        /// Static offset.
        offset: u16,
    },
    /// As [`Amode::G32`] with the bound loaded from `*(bound_addr + bound_offset)`.
    G32Bne {
        /// Memory base.
        base: VReg,
        /// Address the bound is loaded from.
        bound_addr: VReg,
        /// Offset of the bound from `bound_addr`.
        bound_offset: u8,
        /// 32-bit index.
        index: VReg,
        /// Static offset.
        offset: u8,
    },
}

impl Amode {
    fn regs_mut(&mut self) -> Vec<&mut VReg> {
        match self {
            Amode::O32 { base, .. } | Amode::Z { base, .. } => vec![base],
            Amode::G32 {
                base, bound, index, ..
            } => vec![base, bound, index],
            Amode::G32Bne {
                base,
                bound_addr,
                index,
                ..
            } => vec![base, bound_addr, index],
        }
    }
}

/// Conditions of the compare-and-branch forms (`br_if_x*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum BrCond {
    Eq32,
    Neq32,
    Slt32,
    Slteq32,
    Ult32,
    Ulteq32,
    Eq64,
    Neq64,
    Slt64,
    Slteq64,
    Ult64,
    Ulteq64,
}

impl BrCond {
    /// The condition that holds exactly when `self(a, b)` does not, as `(condition, swap)`:
    /// `!(a < b)` is `b <= a`.
    pub fn inverse(self) -> (BrCond, bool) {
        use BrCond::*;
        match self {
            Eq32 => (Neq32, false),
            Neq32 => (Eq32, false),
            Eq64 => (Neq64, false),
            Neq64 => (Eq64, false),
            Slt32 => (Slteq32, true),
            Slteq32 => (Slt32, true),
            Ult32 => (Ulteq32, true),
            Ulteq32 => (Ult32, true),
            Slt64 => (Slteq64, true),
            Slteq64 => (Slt64, true),
            Ult64 => (Ulteq64, true),
            Ulteq64 => (Ult64, true),
        }
    }
}

/// Conditions of the compare-with-immediate branches (`br_if_x*_{i8,i32,u8,u32}`):
/// taken when `a cond imm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum ImmCond {
    Eq,
    Neq,
    Slt,
    Sgt,
    Slteq,
    Sgteq,
    Ult,
    Ugt,
    Ulteq,
    Ugteq,
}

impl ImmCond {
    /// The condition that holds exactly when `self` does not.
    pub fn inverse(self) -> ImmCond {
        use ImmCond::*;
        match self {
            Eq => Neq,
            Neq => Eq,
            Slt => Sgteq,
            Sgteq => Slt,
            Sgt => Slteq,
            Slteq => Sgt,
            Ult => Ugteq,
            Ugteq => Ult,
            Ugt => Ulteq,
            Ulteq => Ugt,
        }
    }

    /// The condition with its operands swapped: `k < a` is `a > k`.
    pub fn mirror(self) -> ImmCond {
        use ImmCond::*;
        match self {
            Eq | Neq => self,
            Slt => Sgt,
            Sgt => Slt,
            Slteq => Sgteq,
            Sgteq => Slteq,
            Ult => Ugt,
            Ugt => Ult,
            Ulteq => Ugteq,
            Ugteq => Ulteq,
        }
    }

    /// The immediate for comparing with the constant `k` (its low 32 bits when not `wide`),
    /// if an encoding holds it: signed conditions and equality take a sign-extended `i32`,
    /// unsigned ones a zero-extended `u32`.
    pub fn immediate(self, wide: bool, k: u64) -> Option<i64> {
        use ImmCond::*;
        let unsigned = matches!(self, Ult | Ugt | Ulteq | Ugteq);
        match (wide, unsigned) {
            (false, false) => Some(i64::from(k as u32 as i32)),
            (false, true) => Some(i64::from(k as u32)),
            (true, false) => i32::try_from(k as i64).ok().map(i64::from),
            (true, true) => u32::try_from(k).ok().map(i64::from),
        }
    }
}

/// A Pulley machine instruction.
#[derive(Clone, Debug)]
pub enum MInst {
    /// Defines the function parameters in their argument registers.
    Args {
        /// (value, argument register).
        args: Vec<(VReg, PReg)>,
    },
    /// Loads the parameter the caller passed in stack slot `slot` (above the frame's saved
    /// `lr` and `fp`). One instruction per parameter: a function may have more of them
    /// than there are registers.
    StackArg {
        /// The parameter.
        dst: VReg,
        /// Its slot, in order of the stack parameters.
        slot: u32,
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
    /// area at the bottom of the frame, one instruction per argument.
    StoreCallArg {
        /// The argument.
        src: VReg,
        /// Its slot, in order of the stack arguments.
        slot: u32,
    },
    /// Returns `rets` (already in place) after tearing down the frame.
    Ret {
        /// (value, return register).
        rets: Vec<(VReg, PReg)>,
    },
    /// An operation of shape `dst = op(a, b)`.
    Bin {
        /// Which.
        op: BinOp,
        /// Result.
        dst: VReg,
        /// First source.
        a: VReg,
        /// Second source.
        b: VReg,
    },
    /// `dst = a * b + c` (wrapping).
    MulAdd {
        /// 64-bit rather than 32-bit.
        wide: bool,
        /// Result.
        dst: VReg,
        /// Factor.
        a: VReg,
        /// Factor.
        b: VReg,
        /// Addend.
        c: VReg,
    },
    /// `dst = op(a, imm)`, in the narrowest encoding the immediate fits (chosen at emission;
    /// lowering guarantees one exists).
    BinImm {
        /// Which.
        op: ImmOp,
        /// 64-bit rather than 32-bit.
        wide: bool,
        /// Result.
        dst: VReg,
        /// Register operand.
        a: VReg,
        /// The immediate: unsigned for add/sub (u32), signed for the others (i32), the shift
        /// amount for shifts.
        imm: i64,
    },
    /// `dst = a + b`, trapping with `code` when the unsigned sum overflows.
    AddTrap {
        /// 64-bit rather than 32-bit.
        wide: bool,
        /// Result.
        dst: VReg,
        /// First addend.
        a: VReg,
        /// Second addend.
        b: VReg,
        /// Trap code on overflow.
        code: TrapCode,
    },
    /// An operation of shape `dst = op(src)`.
    Un {
        /// Which.
        op: UnOp,
        /// Result.
        dst: VReg,
        /// Source.
        src: VReg,
    },
    /// `dst = imm` (64 bits).
    XConst {
        /// Result.
        dst: VReg,
        /// Value.
        imm: i64,
    },
    /// `dst = float with bits` (32 or 64 bits).
    FConst {
        /// Result.
        dst: VReg,
        /// Bit pattern.
        bits: u64,
        /// f64 rather than f32.
        wide: bool,
    },
    /// `dst = cond != 0 ? a : b` (32-bit condition).
    Select {
        /// Result.
        dst: VReg,
        /// Condition.
        cond: VReg,
        /// If non-zero.
        a: VReg,
        /// If zero.
        b: VReg,
    },
    /// A load.
    Load {
        /// Width, extension, byte order.
        op: MemOp,
        /// Result.
        dst: VReg,
        /// Address.
        amode: Amode,
        /// The trap code a fault at this load reports (null base, out of bounds).
        trap: Option<TrapCode>,
    },
    /// A store.
    Store {
        /// Width, byte order.
        op: MemOp,
        /// Value.
        src: VReg,
        /// Address.
        amode: Amode,
        /// The trap code a fault at this store reports.
        trap: Option<TrapCode>,
    },
    /// Unconditional branch.
    Jump {
        /// Destination.
        target: MachBlock,
    },
    /// `if cond (low 32 bits) != 0 goto taken else goto not_taken`.
    BrIf {
        /// Condition.
        cond: VReg,
        /// When non-zero.
        taken: MachBlock,
        /// When zero.
        not_taken: MachBlock,
    },
    /// `if cond(a, b) goto taken else goto not_taken`.
    BrCmp {
        /// Comparison.
        cond: BrCond,
        /// Left operand.
        a: VReg,
        /// Right operand.
        b: VReg,
        /// When the comparison holds.
        taken: MachBlock,
        /// Otherwise.
        not_taken: MachBlock,
    },
    /// `if cond(a, imm) goto taken else goto not_taken`.
    BrCmpImm {
        /// Comparison.
        cond: ImmCond,
        /// 64-bit rather than 32-bit.
        wide: bool,
        /// Register operand.
        a: VReg,
        /// The immediate, from [`ImmCond::immediate`].
        imm: i64,
        /// When the comparison holds.
        taken: MachBlock,
        /// Otherwise.
        not_taken: MachBlock,
    },
    /// Jump table: `targets[min(idx, len)]`, with `default` last.
    BrTable {
        /// 32-bit index.
        idx: VReg,
        /// Out-of-range destination.
        default: MachBlock,
        /// In-range destinations.
        targets: Vec<MachBlock>,
    },
    /// `if cond(a, b) trap code` (branch to an out-of-line trap island).
    TrapIf {
        /// Comparison.
        cond: BrCond,
        /// Left operand.
        a: VReg,
        /// Right operand.
        b: VReg,
        /// Trap code.
        code: TrapCode,
    },
    /// `if cond(a, imm) trap code` (branch to an out-of-line trap island).
    TrapIfImm {
        /// Comparison.
        cond: ImmCond,
        /// 64-bit rather than 32-bit.
        wide: bool,
        /// Register operand.
        a: VReg,
        /// The immediate, from [`ImmCond::immediate`].
        imm: i64,
        /// Trap code.
        code: TrapCode,
    },
    /// `if x (low 32 bits) != 0` (or `== 0` when `zero`) trap.
    TrapIfNonzero {
        /// Tested value.
        x: VReg,
        /// Trap on zero instead.
        zero: bool,
        /// Trap code.
        code: TrapCode,
    },
    /// Unconditional trap.
    Trap {
        /// Trap code.
        code: TrapCode,
    },
    /// A call of a function named in the IR (placed by the linker: another function or a host
    /// stub).
    Call {
        /// Callee name.
        callee: String,
        /// Arguments in their registers.
        args: Vec<(VReg, PReg)>,
        /// Slots of the outgoing area the call uses: its stack arguments (which the
        /// `StoreCallArg`s before it store), then its stack results (which the
        /// `LoadCallRet`s after it load).
        stack_args: u32,
        /// Results in their registers.
        rets: Vec<(VReg, PReg)>,
    },
}

/// Registers every call clobbers: x0-x15 and all float registers.
pub fn caller_saved() -> PRegSet {
    let mut s = PRegSet::empty();
    for i in 0..16 {
        s.add(PReg::new(i, RegClass::Int));
    }
    for i in 0..31 {
        s.add(PReg::new(i, RegClass::Float));
    }
    s
}

impl MInst {
    /// Visits every register operand in a fixed order (operand collection and emission both
    /// walk it, so their orders cannot drift apart).
    fn operand_roles(&mut self, f: &mut dyn FnMut(&mut VReg, Role)) {
        use Role::*;
        match self {
            MInst::Args { args } => args.iter_mut().for_each(|(v, p)| f(v, FixedDef(*p))),
            MInst::StackArg { dst, .. } => f(dst, Def),
            MInst::StoreCallArg { src, .. } => f(src, Use),
            MInst::StoreRet { src, .. } => f(src, Use),
            MInst::LoadCallRet { dst, .. } => f(dst, Def),
            MInst::Ret { rets } => rets.iter_mut().for_each(|(v, p)| f(v, FixedUse(*p))),
            MInst::Bin { dst, a, b, .. } | MInst::AddTrap { dst, a, b, .. } => {
                f(a, Use);
                f(b, Use);
                f(dst, Def);
            }
            MInst::MulAdd { dst, a, b, c, .. } => {
                f(a, Use);
                f(b, Use);
                f(c, Use);
                f(dst, Def);
            }
            MInst::Select { dst, cond, a, b } => {
                f(cond, Use);
                f(a, Use);
                f(b, Use);
                f(dst, Def);
            }
            MInst::Un { dst, src, .. } | MInst::BinImm { dst, a: src, .. } => {
                f(src, Use);
                f(dst, Def);
            }
            MInst::XConst { dst, .. } | MInst::FConst { dst, .. } => f(dst, Def),
            MInst::Load { dst, amode, .. } => {
                for r in amode.regs_mut() {
                    f(r, Use);
                }
                f(dst, Def);
            }
            MInst::Store { src, amode, .. } => {
                for r in amode.regs_mut() {
                    f(r, Use);
                }
                f(src, Use);
            }
            MInst::Jump { .. } | MInst::Trap { .. } => {}
            MInst::BrIf { cond, .. } => f(cond, Use),
            MInst::BrTable { idx, .. } => f(idx, Use),
            MInst::TrapIf { a, b, .. } | MInst::BrCmp { a, b, .. } => {
                f(a, Use);
                f(b, Use);
            }
            MInst::TrapIfImm { a, .. } | MInst::BrCmpImm { a, .. } => f(a, Use),
            MInst::TrapIfNonzero { x, .. } => f(x, Use),
            MInst::Call { args, rets, .. } => {
                args.iter_mut().for_each(|(v, p)| f(v, FixedUse(*p)));
                rets.iter_mut().for_each(|(v, p)| f(v, FixedDef(*p)));
            }
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
        let op = match src.class() {
            RegClass::Float => UnOp::Fmov,
            _ => UnOp::Xmov,
        };
        MInst::Un { op, dst, src }
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
        match self {
            MInst::Bin { op, .. } => !op.can_trap(),
            MInst::Un { op, .. } => !op.can_trap(),
            MInst::BinImm { .. }
            | MInst::MulAdd { .. }
            | MInst::XConst { .. }
            | MInst::FConst { .. }
            | MInst::Select { .. } => true,
            _ => false,
        }
    }
    fn is_ret(&self) -> bool {
        matches!(self, MInst::Ret { .. } | MInst::Trap { .. })
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
            MInst::BrIf {
                taken, not_taken, ..
            }
            | MInst::BrCmp {
                taken, not_taken, ..
            }
            | MInst::BrCmpImm {
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
