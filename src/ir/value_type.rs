//! Value types.

use core::fmt;

/// A scalar value type: `i8 i16 i32 i64 f32 f64`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Type(u8);

/// The type constants.
pub mod types {
    use super::Type;
    /// No type: the controlling type of a non-polymorphic instruction.
    pub const INVALID: Type = Type(0);
    /// 8-bit integer.
    pub const I8: Type = Type(1);
    /// 16-bit integer.
    pub const I16: Type = Type(2);
    /// 32-bit integer.
    pub const I32: Type = Type(3);
    /// 64-bit integer.
    pub const I64: Type = Type(4);
    /// IEEE 754 single precision.
    pub const F32: Type = Type(5);
    /// IEEE 754 double precision.
    pub const F64: Type = Type(6);
}

use types::*;

impl Type {
    /// Every valid type.
    pub const ALL: [Type; 6] = [I8, I16, I32, I64, F32, F64];

    /// Width in bits (0 for `INVALID`).
    pub fn bits(self) -> u32 {
        match self {
            I8 => 8,
            I16 => 16,
            I32 => 32,
            I64 | F64 => 64,
            F32 => 32,
            _ => 0,
        }
    }

    /// Width in bytes.
    pub fn bytes(self) -> u32 {
        self.bits() / 8
    }

    /// An integer type?
    pub fn is_int(self) -> bool {
        matches!(self, I8 | I16 | I32 | I64)
    }

    /// A float type?
    pub fn is_float(self) -> bool {
        matches!(self, F32 | F64)
    }

    /// The integer type of `bits` bits, if there is one.
    pub fn int(bits: u32) -> Option<Type> {
        match bits {
            8 => Some(I8),
            16 => Some(I16),
            32 => Some(I32),
            64 => Some(I64),
            _ => None,
        }
    }

    /// Parses a CLIF type name.
    pub fn from_name(s: &str) -> Option<Type> {
        Type::ALL.into_iter().find(|t| t.to_string() == s)
    }

    /// The types written as a comma-separated list: `i32, i64`.
    pub fn list(ts: &[Type]) -> String {
        let mut s = String::new();
        let _ = super::immediates::write_comma_list(&mut s, ts);
        s
    }

    /// All ones in the low `bits()` bits.
    pub fn mask(self) -> u64 {
        match self.bits() {
            64 => u64::MAX,
            0 => 0,
            b => (1u64 << b) - 1,
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match *self {
            I8 => "i8",
            I16 => "i16",
            I32 => "i32",
            I64 => "i64",
            F32 => "f32",
            F64 => "f64",
            _ => "INVALID",
        })
    }
}

impl fmt::Debug for Type {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The type sets of the instruction definitions (see `meta/src/cdsl.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeSet {
    /// `i32` only.
    I32,
    /// `i8 i16 i32 i64`.
    Int,
    /// `i32 i64`.
    Addr,
    /// `f32 f64`.
    Float,
    /// Every scalar type.
    Any,
}

impl TypeSet {
    /// Membership.
    pub fn contains(self, t: Type) -> bool {
        match self {
            TypeSet::I32 => t == I32,
            TypeSet::Int => t.is_int(),
            TypeSet::Addr => t == I32 || t == I64,
            TypeSet::Float => t.is_float(),
            TypeSet::Any => t.is_int() || t.is_float(),
        }
    }
}

impl fmt::Display for TypeSet {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(match self {
            TypeSet::I32 => "i32",
            TypeSet::Int => "an integer type (i8, i16, i32, i64)",
            TypeSet::Addr => "i32 or i64",
            TypeSet::Float => "a float type (f32, f64)",
            TypeSet::Any => "a scalar type",
        })
    }
}
