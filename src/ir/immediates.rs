//! Immediate operands and their CLIF spellings.
//!
//! The spellings follow Cranelift 0.135 so that text round-trips through the real reader:
//! integers below 10,000 in decimal and larger ones in hexadecimal grouped by 16 bits
//! (`0x0001_0000`), floats in hexadecimal scientific notation (`0x1.8000000000000p1`).

use super::entities::{AliasRegion, Block, Value};
use core::fmt;

/// Writes `x` as upstream does: `0x` then 16-bit groups separated by `_`.
pub fn write_hex(f: &mut dyn fmt::Write, x: u64) -> fmt::Result {
    let mut shift = (63 - (x | 1).leading_zeros()) & !15;
    write!(f, "0x{:04x}", (x >> shift) & 0xffff)?;
    while shift > 0 {
        shift -= 16;
        write!(f, "_{:04x}", (x >> shift) & 0xffff)?;
    }
    Ok(())
}

/// Writes `items` separated by `, `.
pub fn write_comma_list<T: fmt::Display>(f: &mut dyn fmt::Write, items: &[T]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        write!(f, "{}{item}", if i > 0 { ", " } else { "" })?;
    }
    Ok(())
}

/// Writes an unsigned number: decimal below 10,000, else grouped hexadecimal.
pub fn write_unsigned(f: &mut dyn fmt::Write, x: u64) -> fmt::Result {
    if x < 10_000 {
        write!(f, "{x}")
    } else {
        write_hex(f, x)
    }
}

/// Parses an unsigned decimal or `0x` hexadecimal number; `_` may separate digits.
pub fn parse_u64(s: &str) -> Result<u64, String> {
    let (digits, radix) = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => (h, 16),
        None => (s, 10),
    };
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    if clean.is_empty() || digits.starts_with('_') {
        return Err(format!("expected a number, found `{s}`"));
    }
    u64::from_str_radix(&clean, radix).map_err(|e| match e.kind() {
        core::num::IntErrorKind::PosOverflow => format!("`{s}` does not fit in 64 bits"),
        _ => format!("`{s}` is not a valid number"),
    })
}

/// Parses a signed number in the range -2^63 ..= 2^64-1 (the "range and a half" upstream
/// accepts), returned as its 64-bit pattern.
pub fn parse_i64_bits(s: &str) -> Result<u64, String> {
    if let Some(rest) = s.strip_prefix('-') {
        let v = parse_u64(rest)?;
        if v > 1 << 63 {
            return Err(format!("`{s}` is below -2^63"));
        }
        Ok(v.wrapping_neg())
    } else {
        parse_u64(s.strip_prefix('+').unwrap_or(s))
    }
}

/// A 64-bit integer immediate (`iconst`). Stored as the bit pattern, masked to the
/// controlling type's width when the instruction is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Imm64(pub i64);

impl From<i64> for Imm64 {
    fn from(x: i64) -> Self {
        Imm64(x)
    }
}

impl fmt::Display for Imm64 {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.0 < 10_000 {
            write!(f, "{}", self.0)
        } else {
            write_hex(f, self.0 as u64)
        }
    }
}

/// A signed 32-bit offset of an ordinary load or store, written `+16` or `-8` after the
/// address (nothing for 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Offset32(pub i32);

impl fmt::Display for Offset32 {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.0 == 0 {
            return Ok(());
        }
        f.write_str(if self.0 < 0 { "-" } else { "+" })?;
        write_unsigned(f, u64::from(self.0.unsigned_abs()))
    }
}

/// The unsigned 64-bit static offset of a bounds-checked access, written `+0x1000` after the
/// index (nothing for 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Offset64(pub u64);

impl fmt::Display for Offset64 {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.0 == 0 {
            return Ok(());
        }
        f.write_str("+")?;
        write_unsigned(f, self.0)
    }
}

/// An `f32` immediate, as bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Ieee32(pub u32);

/// An `f64` immediate, as bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Ieee64(pub u64);

impl fmt::Display for Ieee32 {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        format_float(f, u64::from(self.0), 8, 23)
    }
}

impl fmt::Display for Ieee64 {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        format_float(f, self.0, 11, 52)
    }
}

impl Ieee32 {
    /// Parses the CLIF spelling.
    pub fn parse(s: &str) -> Result<Ieee32, String> {
        parse_float(s, 8, 23).map(|b| Ieee32(b as u32))
    }
}

impl Ieee64 {
    /// Parses the CLIF spelling.
    pub fn parse(s: &str) -> Result<Ieee64, String> {
        parse_float(s, 11, 52).map(Ieee64)
    }
}

/// Formats IEEE bits with `w` exponent bits and `t` trailing significand bits in CLIF's
/// notation: `0.0`, `0x1.<hex>p<exp>`, subnormals `0x0.<hex>p<emin>`, `+Inf`, `+NaN`,
/// `+NaN:0x<payload>`, `+sNaN:0x<payload>`, each with a leading `-` when negative.
fn format_float(f: &mut dyn fmt::Write, bits: u64, w: u32, t: u32) -> fmt::Result {
    let sign = (bits >> (w + t)) & 1 != 0;
    let max_e = (1u64 << w) - 1;
    let e_bits = (bits >> t) & max_e;
    let t_bits = bits & ((1u64 << t) - 1);
    let bias = (1i64 << (w - 1)) - 1;
    let digits = t.div_ceil(4) as usize;
    let aligned = t_bits << (4 * digits as u32 - t);
    if sign {
        f.write_str("-")?;
    }
    if e_bits == max_e {
        if !sign {
            f.write_str("+")?;
        }
        let quiet = 1u64 << (t - 1);
        return if t_bits == 0 {
            f.write_str("Inf")
        } else if t_bits & quiet != 0 {
            let payload = t_bits & (quiet - 1);
            if payload == 0 {
                f.write_str("NaN")
            } else {
                write!(f, "NaN:0x{payload:x}")
            }
        } else {
            write!(f, "sNaN:0x{t_bits:x}")
        };
    }
    if e_bits == 0 {
        if t_bits == 0 {
            return f.write_str("0.0");
        }
        return write!(f, "0x0.{aligned:0digits$x}p{}", 1 - bias);
    }
    write!(f, "0x1.{aligned:0digits$x}p{}", e_bits as i64 - bias)
}

/// Parses CLIF's float notation (see [`format_float`]); hexadecimal values must be exact.
fn parse_float(s: &str, w: u32, t: u32) -> Result<u64, String> {
    let bad = |why: &str| format!("invalid float `{s}`: {why}");
    let (sign, body) = match s.as_bytes().first() {
        Some(b'-') => (1u64 << (w + t), &s[1..]),
        Some(b'+') => (0, &s[1..]),
        _ => (0, s),
    };
    let max_e = ((1u64 << w) - 1) << t;
    let quiet = 1u64 << (t - 1);
    match body {
        "0.0" => return Ok(sign),
        "Inf" => return Ok(sign | max_e),
        "NaN" => return Ok(sign | max_e | quiet),
        _ => {}
    }
    if let Some(p) = body.strip_prefix("NaN:0x") {
        let payload = u64::from_str_radix(p, 16).map_err(|_| bad("bad NaN payload"))?;
        if payload >= quiet {
            return Err(bad("NaN payload too large"));
        }
        return Ok(sign | max_e | quiet | payload);
    }
    if let Some(p) = body.strip_prefix("sNaN:0x") {
        let payload = u64::from_str_radix(p, 16).map_err(|_| bad("bad sNaN payload"))?;
        if payload == 0 || payload >= quiet {
            return Err(bad("sNaN payload must be non-zero and below the quiet bit"));
        }
        return Ok(sign | max_e | payload);
    }
    let hex = body
        .strip_prefix("0x")
        .ok_or_else(|| bad("floats are written in hexadecimal, e.g. 0x1.8p1"))?;
    let (mantissa, exp) = match hex.split_once('p') {
        Some((m, e)) => (m, e.parse::<i32>().map_err(|_| bad("bad exponent"))?),
        None => (hex, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(bad("no digits"));
    }
    let mut sig: u128 = 0;
    let mut ndigits = 0;
    for c in int_part.chars().chain(frac_part.chars()) {
        let d = c.to_digit(16).ok_or_else(|| bad("invalid digit"))?;
        ndigits += 1;
        if ndigits > 30 {
            return Err(bad("too many digits"));
        }
        sig = (sig << 4) | u128::from(d);
    }
    if sig == 0 {
        return Ok(sign);
    }
    // value = sig * 2^(exp - 4*len(frac))
    let mut e = i64::from(exp) - 4 * frac_part.len() as i64;
    // Normalise so that the leading one is at bit t.
    let top = 127 - sig.leading_zeros() as i64;
    let shift = top - i64::from(t);
    if shift > 0 {
        if sig & ((1u128 << shift) - 1) != 0 {
            return Err(bad("too many significant bits for the type"));
        }
        sig >>= shift;
    } else {
        sig <<= -shift;
    }
    e += shift + i64::from(t);
    let bias = (1i64 << (w - 1)) - 1;
    let biased = e + bias;
    if biased >= (1i64 << w) - 1 {
        return Err(bad("exponent too large"));
    }
    if biased <= 0 {
        // Subnormal: shift the significand right, exactly.
        let sh = 1 - biased;
        if sh > i64::from(t) + 1 || sig & ((1u128 << sh) - 1) != 0 {
            return Err(bad("not representable as a subnormal"));
        }
        return Ok(sign | (sig >> sh) as u64);
    }
    Ok(sign | ((biased as u64) << t) | (sig as u64 & ((1u64 << t) - 1)))
}

macro_rules! cond_codes {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[allow(missing_docs)]
        pub enum $name { $($variant,)* }

        impl $name {
            /// Every condition code.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// Parses the CLIF spelling.
            pub fn from_text(s: &str) -> Option<$name> {
                match s { $($text => Some($name::$variant),)* _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(match self { $($name::$variant => $text,)* })
            }
        }
    };
}

cond_codes! {
    /// Integer comparison conditions.
    IntCC {
        Equal = "eq",
        NotEqual = "ne",
        SignedLessThan = "slt",
        SignedGreaterThanOrEqual = "sge",
        SignedGreaterThan = "sgt",
        SignedLessThanOrEqual = "sle",
        UnsignedLessThan = "ult",
        UnsignedGreaterThanOrEqual = "uge",
        UnsignedGreaterThan = "ugt",
        UnsignedLessThanOrEqual = "ule",
    }
}

cond_codes! {
    /// Float comparison conditions.
    FloatCC {
        Ordered = "ord",
        Unordered = "uno",
        Equal = "eq",
        NotEqual = "ne",
        OrderedNotEqual = "one",
        UnorderedOrEqual = "ueq",
        LessThan = "lt",
        LessThanOrEqual = "le",
        GreaterThan = "gt",
        GreaterThanOrEqual = "ge",
        UnorderedOrLessThan = "ult",
        UnorderedOrLessThanOrEqual = "ule",
        UnorderedOrGreaterThan = "ugt",
        UnorderedOrGreaterThanOrEqual = "uge",
    }
}

/// A trap code: one of the reserved codes or a user code `user1` ..= `user250`, with the same
/// numbering as Cranelift 0.135 (`heap_oob` is 253).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrapCode(u8);

impl TrapCode {
    /// `stk_ovf`.
    pub const STACK_OVERFLOW: TrapCode = TrapCode(251);
    /// `int_ovf`.
    pub const INTEGER_OVERFLOW: TrapCode = TrapCode(252);
    /// `heap_oob`: the default trap code of memory accesses.
    pub const HEAP_OUT_OF_BOUNDS: TrapCode = TrapCode(253);
    /// `int_divz`.
    pub const INTEGER_DIVISION_BY_ZERO: TrapCode = TrapCode(254);
    /// `bad_toint`.
    pub const BAD_CONVERSION_TO_INTEGER: TrapCode = TrapCode(255);

    const NAMED: [(TrapCode, &'static str); 5] = [
        (TrapCode::STACK_OVERFLOW, "stk_ovf"),
        (TrapCode::INTEGER_OVERFLOW, "int_ovf"),
        (TrapCode::HEAP_OUT_OF_BOUNDS, "heap_oob"),
        (TrapCode::INTEGER_DIVISION_BY_ZERO, "int_divz"),
        (TrapCode::BAD_CONVERSION_TO_INTEGER, "bad_toint"),
    ];

    /// A user trap code, 1 ..= 250.
    pub const fn user(n: u8) -> Option<TrapCode> {
        if n >= 1 && n <= 250 {
            Some(TrapCode(n))
        } else {
            None
        }
    }

    /// The raw byte (as upstream's `TrapCode::as_raw`).
    pub fn as_raw(self) -> u8 {
        self.0
    }

    /// The trap code of a raw byte (as upstream's `TrapCode::from_raw`); `None` for 0.
    pub fn from_raw(byte: u8) -> Option<TrapCode> {
        (byte != 0).then_some(TrapCode(byte))
    }

    /// Parses the CLIF spelling.
    pub fn from_text(s: &str) -> Option<TrapCode> {
        if let Some((code, _)) = TrapCode::NAMED.iter().find(|(_, n)| *n == s) {
            return Some(*code);
        }
        let n = s.strip_prefix("user")?;
        if n.starts_with('0') && n.len() > 1 || n.starts_with('+') {
            return None;
        }
        TrapCode::user(n.parse().ok()?)
    }
}

impl fmt::Display for TrapCode {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match TrapCode::NAMED.iter().find(|(c, _)| c == self) {
            Some((_, name)) => f.write_str(name),
            None => write!(f, "user{}", self.0),
        }
    }
}

/// Byte order of a memory access.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endianness {
    /// Least significant byte first.
    Little,
    /// Most significant byte first.
    Big,
}

/// Memory flags of a load, store or bounds-checked access.
///
/// As in Cranelift 0.135, an access traps with `heap_oob` unless the flags say otherwise
/// (`notrap` or another trap code); the default is not printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MemFlags {
    /// The trap code reported when the access faults; `None` is `notrap`.
    pub trap_code: Option<TrapCode>,
    /// `aligned`: a hint that the address is aligned to the access size.
    pub aligned: bool,
    /// `readonly`: the memory does not change during the function.
    pub readonly: bool,
    /// `can_move`: the access may be moved across its guarding control flow.
    pub can_move: bool,
    /// Explicit byte order; `None` is the target's.
    pub endianness: Option<Endianness>,
    /// The alias region, as upstream: two accesses in different regions never touch the same
    /// bytes, so an optimiser may move a load across a store of another region. No region:
    /// may alias anything.
    pub region: Option<AliasRegion>,
}

impl Default for MemFlags {
    fn default() -> Self {
        MemFlags {
            trap_code: Some(TrapCode::HEAP_OUT_OF_BOUNDS),
            aligned: false,
            readonly: false,
            can_move: false,
            endianness: None,
            region: None,
        }
    }
}

impl MemFlags {
    /// Flags for an access that never traps and is aligned (vmctx loads).
    pub fn trusted() -> Self {
        MemFlags {
            trap_code: None,
            aligned: true,
            ..MemFlags::default()
        }
    }

    /// The flags of a `bitcast` between scalars: no byte order, no trap code (a bitcast
    /// never accesses memory; upstream prints it without flags).
    pub fn default_for_bitcast() -> Self {
        MemFlags {
            trap_code: Some(TrapCode::HEAP_OUT_OF_BOUNDS),
            ..MemFlags::default()
        }
    }

    /// Applies one flag word; `Ok(false)` if the word is not a flag.
    pub fn set_by_name(&mut self, word: &str) -> Result<bool, String> {
        match word {
            "notrap" => self.trap_code = None,
            "aligned" => self.aligned = true,
            "readonly" => self.readonly = true,
            "can_move" => self.can_move = true,
            "little" | "big" => {
                let e = if word == "little" {
                    Endianness::Little
                } else {
                    Endianness::Big
                };
                if self.endianness.is_some_and(|old| old != e) {
                    return Err("cannot set both big and little endian".into());
                }
                self.endianness = Some(e);
            }
            other => match TrapCode::from_text(other) {
                Some(code) => self.trap_code = Some(code),
                None => return Ok(false),
            },
        }
        Ok(true)
    }
}

impl fmt::Display for MemFlags {
    /// Writes each flag with a leading space, in upstream's order.
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.trap_code {
            None => f.write_str(" notrap")?,
            Some(TrapCode::HEAP_OUT_OF_BOUNDS) => {}
            Some(code) => write!(f, " {code}")?,
        }
        for (set, name) in [
            (self.aligned, "aligned"),
            (self.readonly, "readonly"),
            (self.can_move, "can_move"),
            (self.endianness == Some(Endianness::Big), "big"),
            (self.endianness == Some(Endianness::Little), "little"),
        ] {
            if set {
                write!(f, " {name}")?;
            }
        }
        if let Some(r) = self.region {
            write!(f, " {r}")?;
        }
        Ok(())
    }
}

/// A branch target with its arguments: `block3(v1, v2)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BlockCall {
    /// The target.
    pub block: Block,
    /// The values passed to its parameters.
    pub args: Vec<Value>,
}

impl BlockCall {
    /// A call of `block` with `args`.
    pub fn new(block: Block, args: Vec<Value>) -> Self {
        BlockCall { block, args }
    }
}

impl fmt::Display for BlockCall {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.block)?;
        if !self.args.is_empty() {
            write!(f, "(")?;
            write_comma_list(f, &self.args)?;
            write!(f, ")")?;
        }
        Ok(())
    }
}

/// The targets of a `br_table`, written inline as upstream writes them:
/// `block_default, [block1, block2(v1)]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct JumpTable {
    /// Where an out-of-range index goes.
    pub default: BlockCall,
    /// Where index `i` goes.
    pub targets: Vec<BlockCall>,
}

impl fmt::Display for JumpTable {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}, [", self.default)?;
        write_comma_list(f, &self.targets)?;
        write!(f, "]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_groups_like_upstream() {
        let s = |x| {
            let mut s = String::new();
            write_unsigned(&mut s, x).unwrap();
            s
        };
        assert_eq!(s(9999), "9999");
        assert_eq!(s(10_000), "0x2710");
        assert_eq!(s(0x1_0000), "0x0001_0000");
        assert_eq!(s(u64::MAX), "0xffff_ffff_ffff_ffff");
    }

    #[test]
    fn floats_round_trip() {
        for x in [
            0.0f64,
            -0.0,
            1.0,
            -1.5,
            0.1,
            1e300,
            5e-324,
            2.2250738585072014e-308,
            f64::MAX,
            f64::INFINITY,
            -f64::INFINITY,
            f64::NAN,
        ] {
            let bits = Ieee64(x.to_bits());
            let text = bits.to_string();
            assert_eq!(Ieee64::parse(&text), Ok(bits), "{text}");
        }
        for x in [
            0.0f32,
            -2.5,
            1e-45,
            f32::MIN_POSITIVE,
            f32::MAX,
            3.4e38,
            0.3,
        ] {
            let bits = Ieee32(x.to_bits());
            let text = bits.to_string();
            assert_eq!(Ieee32::parse(&text), Ok(bits), "{text}");
        }
        assert_eq!(Ieee32(1.0f32.to_bits()).to_string(), "0x1.000000p0");
        assert_eq!(Ieee64::parse("0x1.8p1"), Ok(Ieee64(3.0f64.to_bits())));
        assert!(Ieee32::parse("0x1.0000001p0").is_err());
        assert!(Ieee32::parse("1.5").is_err());
    }

    #[test]
    fn trap_codes() {
        assert_eq!(TrapCode::HEAP_OUT_OF_BOUNDS.to_string(), "heap_oob");
        assert_eq!(TrapCode::from_text("user7"), TrapCode::user(7));
        assert_eq!(TrapCode::from_text("user0"), None);
        assert_eq!(TrapCode::from_text("user251"), None);
    }
}
