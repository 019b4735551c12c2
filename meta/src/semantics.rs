//! The semantics of the bounds-checked accesses, as data.
//!
//! The trap condition and the effective address are written once here as expressions over the
//! instruction's inputs. [`gen_rust`] renders them as the Rust functions the interpreter (and
//! later the legalizer's oracle tests) call, and as SMT-LIB terms the proof machinery asserts.
//! The access kinds (which bytes move, how they are extended) are a table here too.

use std::fmt::Write;

/// An input of the bounds-check semantics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Var {
    /// The memory's base address (pointer width).
    Base,
    /// The bound in bytes (pointer width).
    Bound,
    /// The index, zero-extended from the memory's index type to 64 bits.
    Index,
    /// The static offset (`u64`).
    Offset,
    /// The number of bytes accessed.
    AccessSize,
}

impl Var {
    fn name(self) -> &'static str {
        match self {
            Var::Base => "base",
            Var::Bound => "bound",
            Var::Index => "index",
            Var::Offset => "offset",
            Var::AccessSize => "access_size",
        }
    }
}

/// An expression over [`Var`]s, all 64-bit unsigned inputs.
#[derive(Clone, Debug)]
pub enum Expr {
    /// An input.
    Var(Var),
    /// Addition in unbounded integers (rendered at 128 bits: three 64-bit terms cannot wrap).
    Add(Vec<Expr>),
    /// Addition modulo 2^64, as pointer arithmetic does.
    WrappingAdd(Vec<Expr>),
    /// Unsigned greater-than on unbounded integers.
    Ugt(Box<Expr>, Box<Expr>),
}

/// `end = zext(index) + offset + access_size` (never wraps), the one number the check is about.
pub fn end() -> Expr {
    Expr::Add(vec![
        Expr::Var(Var::Index),
        Expr::Var(Var::Offset),
        Expr::Var(Var::AccessSize),
    ])
}

/// `K = offset + access_size` (never wraps): the end of the access relative to the index,
/// which a check compares. `end() = index + K`.
pub fn static_end() -> Expr {
    Expr::Add(vec![Expr::Var(Var::Offset), Expr::Var(Var::AccessSize)])
}

/// The access traps iff this holds: `end > bound`.
pub fn out_of_bounds() -> Expr {
    Expr::Ugt(Box::new(end()), Box::new(Expr::Var(Var::Bound)))
}

/// The address of the first accessed byte: `base + zext(index) + offset`.
pub fn effective_address() -> Expr {
    Expr::WrappingAdd(vec![
        Expr::Var(Var::Base),
        Expr::Var(Var::Index),
        Expr::Var(Var::Offset),
    ])
}

fn rust(e: &Expr, wide: bool) -> String {
    match e {
        Expr::Var(v) if wide => format!("u128::from({})", v.name()),
        Expr::Var(v) => v.name().to_string(),
        Expr::Add(xs) => {
            let parts: Vec<String> = xs.iter().map(|x| rust(x, true)).collect();
            format!("({})", parts.join(" + "))
        }
        Expr::WrappingAdd(xs) => {
            let mut s = rust(&xs[0], false);
            for x in &xs[1..] {
                s = format!("{s}.wrapping_add({})", rust(x, false));
            }
            s
        }
        Expr::Ugt(a, b) => format!("{} > {}", rust(a, true), rust(b, true)),
    }
}

/// SMT-LIB over 64-bit inputs; unbounded arithmetic is done at 128 bits.
fn smt(e: &Expr, wide: bool) -> String {
    match e {
        Expr::Var(v) if wide => format!("((_ zero_extend 64) {})", v.name()),
        Expr::Var(v) => v.name().to_string(),
        Expr::Add(xs) => {
            let parts: Vec<String> = xs.iter().map(|x| smt(x, true)).collect();
            format!("(bvadd {})", parts.join(" "))
        }
        Expr::WrappingAdd(xs) => {
            let parts: Vec<String> = xs.iter().map(|x| smt(x, false)).collect();
            format!("(bvadd {})", parts.join(" "))
        }
        Expr::Ugt(a, b) => format!("(bvugt {} {})", smt(a, true), smt(b, true)),
    }
}

/// Souper IR statements computing `e`, appended to `out`; returns the operand that holds it.
/// Inputs are the 64-bit Souper variables `%index`, `%offset`, `%access_size`, `%bound`
/// (declared by the caller); unbounded arithmetic is done at 128 bits, as in [`smt`]. Souper
/// has no `ugt`: `a > b` is written `ult b, a`.
fn souper(e: &Expr, wide: bool, out: &mut Vec<String>) -> String {
    let fresh = |ty: &str, rhs: String, out: &mut Vec<String>| {
        let name = format!("%oob{}", out.len());
        out.push(format!("{name}:{ty} = {rhs}"));
        name
    };
    match e {
        Expr::Var(v) if wide => fresh("i128", format!("zext %{}", v.name()), out),
        Expr::Var(v) => format!("%{}", v.name()),
        Expr::Add(xs) | Expr::WrappingAdd(xs) => {
            let wide = matches!(e, Expr::Add(_));
            let ty = if wide { "i128" } else { "i64" };
            let mut acc = souper(&xs[0], wide, out);
            for x in &xs[1..] {
                let y = souper(x, wide, out);
                acc = fresh(ty, format!("add {acc}, {y}"), out);
            }
            acc
        }
        Expr::Ugt(a, b) => {
            let (a, b) = (souper(a, true, out), souper(b, true, out));
            fresh("i1", format!("ult {b}, {a}"), out)
        }
    }
}

/// How a bounds-checked access moves bytes between memory and a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extension {
    /// The full width of the value's type.
    None,
    /// A narrow load, zero-extended.
    Zero,
    /// A narrow load, sign-extended.
    Sign,
    /// A narrow store of the low bytes.
    Truncate,
}

/// One access kind: its CLIF spelling (`None` for the full width, which is not written), the
/// number of bytes (`None`: the width of the type), and the extension.
pub struct AccessKindDef {
    /// The `CamelCase` variant name.
    pub variant: &'static str,
    /// The text spelling.
    pub text: Option<&'static str>,
    /// Bytes accessed, if narrower than the type.
    pub bytes: Option<u8>,
    /// Extension or truncation.
    pub extension: Extension,
}

/// Every access kind.
pub const ACCESS_KINDS: &[AccessKindDef] = &[
    AccessKindDef {
        variant: "Full",
        text: None,
        bytes: None,
        extension: Extension::None,
    },
    AccessKindDef {
        variant: "U8",
        text: Some("u8"),
        bytes: Some(1),
        extension: Extension::Zero,
    },
    AccessKindDef {
        variant: "S8",
        text: Some("s8"),
        bytes: Some(1),
        extension: Extension::Sign,
    },
    AccessKindDef {
        variant: "U16",
        text: Some("u16"),
        bytes: Some(2),
        extension: Extension::Zero,
    },
    AccessKindDef {
        variant: "S16",
        text: Some("s16"),
        bytes: Some(2),
        extension: Extension::Sign,
    },
    AccessKindDef {
        variant: "U32",
        text: Some("u32"),
        bytes: Some(4),
        extension: Extension::Zero,
    },
    AccessKindDef {
        variant: "S32",
        text: Some("s32"),
        bytes: Some(4),
        extension: Extension::Sign,
    },
    AccessKindDef {
        variant: "I8",
        text: Some("i8"),
        bytes: Some(1),
        extension: Extension::Truncate,
    },
    AccessKindDef {
        variant: "I16",
        text: Some("i16"),
        bytes: Some(2),
        extension: Extension::Truncate,
    },
    AccessKindDef {
        variant: "I32",
        text: Some("i32"),
        bytes: Some(4),
        extension: Extension::Truncate,
    },
];

/// Renders `semantics.rs`: the access-kind enum and the bounds-check functions.
pub fn gen_rust() -> String {
    let mut s = String::from(
        "// Generated by clif-bounds-meta from meta/src/semantics.rs. Do not edit.\n\n",
    );
    s.push_str(
        "/// Which bytes a bounds-checked access moves and how they are extended or truncated.\n\
         #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]\n\
         pub enum AccessKind {\n",
    );
    for k in ACCESS_KINDS {
        let doc = match (k.text, k.extension) {
            (None, _) => "The full width of the value's type.".to_string(),
            (Some(t), Extension::Zero) => {
                format!("`{t}`: {} bytes, zero-extended.", k.bytes.unwrap())
            }
            (Some(t), Extension::Sign) => {
                format!("`{t}`: {} bytes, sign-extended.", k.bytes.unwrap())
            }
            (Some(t), _) => format!("`{t}`: the low {} bytes, stored.", k.bytes.unwrap()),
        };
        if k.text.is_none() {
            s.push_str("    #[default]\n");
        }
        writeln!(s, "    /// {doc}\n    {},", k.variant).unwrap();
    }
    s.push_str("}\n\n");
    s.push_str("/// Extension or truncation of an access kind.\n#[derive(Clone, Copy, Debug, PartialEq, Eq)]\npub enum Extension {\n    /// Full width.\n    None,\n    /// Zero-extending load.\n    Zero,\n    /// Sign-extending load.\n    Sign,\n    /// Truncating store.\n    Truncate,\n}\n\n");
    s.push_str("impl AccessKind {\n");
    s.push_str("    /// Every access kind.\n    pub const ALL: &'static [AccessKind] = &[");
    for k in ACCESS_KINDS {
        write!(s, "AccessKind::{}, ", k.variant).unwrap();
    }
    s.push_str("];\n\n");
    s.push_str("    /// The text spelling; `None` for the full width, which is not written.\n    pub fn text(self) -> Option<&'static str> {\n        match self {\n");
    for k in ACCESS_KINDS {
        writeln!(s, "            AccessKind::{} => {:?},", k.variant, k.text).unwrap();
    }
    s.push_str("        }\n    }\n\n");
    s.push_str("    /// Parses a spelling.\n    pub fn from_text(t: &str) -> Option<AccessKind> {\n        match t {\n");
    for k in ACCESS_KINDS {
        if let Some(t) = k.text {
            writeln!(s, "            {t:?} => Some(AccessKind::{}),", k.variant).unwrap();
        }
    }
    s.push_str("            _ => None,\n        }\n    }\n\n");
    s.push_str("    /// Bytes accessed when narrower than the value type; `None` for the full width.\n    pub fn narrow_bytes(self) -> Option<u8> {\n        match self {\n");
    for k in ACCESS_KINDS {
        writeln!(s, "            AccessKind::{} => {:?},", k.variant, k.bytes).unwrap();
    }
    s.push_str("        }\n    }\n\n");
    s.push_str("    /// Extension or truncation.\n    pub fn extension(self) -> Extension {\n        match self {\n");
    for k in ACCESS_KINDS {
        writeln!(
            s,
            "            AccessKind::{} => Extension::{:?},",
            k.variant, k.extension
        )
        .unwrap();
    }
    s.push_str("        }\n    }\n}\n\n");

    writeln!(
        s,
        "/// Whether a bounds-checked access traps: `{}`.\n///\n/// `index` is already zero-extended from the memory's index type.\n#[inline]\npub fn out_of_bounds(index: u64, offset: u64, access_size: u64, bound: u64) -> bool {{\n    {}\n}}\n",
        smt(&out_of_bounds(), false),
        rust(&out_of_bounds(), false)
    )
    .unwrap();
    writeln!(
        s,
        "/// `K`, the end of an access relative to its index: `{}`. Every check compares it.\n#[inline]\n#[allow(unused_parens)]\npub fn static_end(offset: u64, access_size: u64) -> u128 {{\n    {}\n}}\n",
        smt(&static_end(), false),
        rust(&static_end(), false)
    )
    .unwrap();
    writeln!(
        s,
        "/// The address of the first byte of an in-bounds access.\n#[inline]\npub fn effective_address(base: u64, index: u64, offset: u64) -> u64 {{\n    {}\n}}\n",
        rust(&effective_address(), false)
    )
    .unwrap();
    writeln!(
        s,
        "/// SMT-LIB term (inputs `index offset access_size bound`, 64-bit bit-vectors) that is true\n/// iff the access traps.\npub const OUT_OF_BOUNDS_SMT: &str = {:?};\n",
        smt(&out_of_bounds(), false)
    )
    .unwrap();
    let mut statements = Vec::new();
    let oob = souper(&out_of_bounds(), false, &mut statements);
    writeln!(
        s,
        "/// Souper IR statements (inputs the 64-bit variables `%index %offset %access_size\n/// %bound`, declared by the user) whose last value, `{oob}`, is true iff the access traps.\npub const OUT_OF_BOUNDS_SOUPER: &str = {:?};\n",
        statements.join("\n")
    )
    .unwrap();
    writeln!(
        s,
        "/// SMT-LIB term (inputs `base index offset`, 64-bit bit-vectors) for the accessed address.\npub const EFFECTIVE_ADDRESS_SMT: &str = {:?};",
        smt(&effective_address(), false)
    )
    .unwrap();
    s
}
