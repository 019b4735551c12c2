//! Every instruction of the IR, defined once.
//!
//! The ordinary instructions keep upstream Cranelift 0.135's names, operand order and meaning
//! (a test compares their ISLE term signatures with upstream's generated `clif_lower.isle`).
//! The two new ones, `bounds_checked_load` and `bounds_checked_store`, are at the end.

use crate::cdsl::ValueType::{Ctrl as C, Free, Pointer};
use crate::cdsl::{Ctrl, Format, ImmKind as K, Instruction as I, ResultType as R, TypeSet as T};

macro_rules! formats {
    ($($name:ident: [$($l:ident: $lk:ident),*] $values:expr, [$($t:ident: $tk:ident),*];)*) => {
        /// The instruction formats.
        pub mod formats {
            use super::*;
            $(
                #[allow(missing_docs, non_upper_case_globals)]
                pub const $name: Format = Format {
                    name: stringify!($name),
                    leading: &[$((stringify!($l), K::$lk)),*],
                    values: $values,
                    trailing: &[$((stringify!($t), K::$tk)),*],
                };
            )*
            /// All formats, in declaration order.
            pub const ALL: &[Format] = &[$($name),*];
        }
    };
}

formats! {
    Unary: [] Some(1), [];
    UnaryImm: [imm: Imm64] Some(0), [];
    UnaryIeee32: [imm: Ieee32] Some(0), [];
    UnaryIeee64: [imm: Ieee64] Some(0), [];
    Binary: [] Some(2), [];
    Ternary: [] Some(3), [];
    IntCompare: [cond: IntCC] Some(2), [];
    FloatCompare: [cond: FloatCC] Some(2), [];
    LoadNoOffset: [flags: MemFlags] Some(1), [];
    Load: [flags: MemFlags] Some(1), [offset: Offset32];
    Store: [flags: MemFlags] Some(2), [offset: Offset32];
    Trap: [code: TrapCode] Some(0), [];
    CondTrap: [] Some(1), [code: TrapCode];
    IntAddTrap: [] Some(2), [code: TrapCode];
    Jump: [destination: BlockCall] Some(0), [];
    Brif: [] Some(1), [block_then: BlockCall, block_else: BlockCall];
    BranchTable: [] Some(1), [table: JumpTable];
    MultiAry: [] None, [];
    Call: [func_ref: FuncRef] None, [];
    BoundsCheckedLoad: [access: AccessKind, flags: MemFlags, memory: Memory] Some(3), [offset: Offset64];
    BoundsCheckedStore: [access: AccessKind, flags: MemFlags, memory: Memory] Some(4), [offset: Offset64];
}

use formats as f;

/// The documentation of `bounds_checked_load`. RFC.md quotes it verbatim (a test checks).
pub const BOUNDS_CHECKED_LOAD_DOC: &str = "\
Load from a linear memory, trapping if any accessed byte is out of bounds.

Operands: `base` and `bound` have the target's pointer type; `index` is the memory's index type
(`i32` or `i64`); `offset` is an unsigned 64-bit immediate; the access kind fixes
`access_size`, the number of bytes moved (the width of the result type, or 1, 2 or 4 bytes for
`u8`/`s8`, `u16`/`s16`, `u32`/`s32`, which zero- or sign-extend to the integer result type).

Let `end = zext(index) + offset + access_size`, computed in unbounded integers (it never
wraps). If `end > bound` the instruction traps with the trap code of its memory flags
(`heap_oob` by default) and has no other effect. Otherwise it reads `access_size` bytes at
address `base + zext(index) + offset` with the endianness of the flags and returns them,
extended as the access kind says. `aligned` is a hint and never causes a trap. `notrap` is
invalid on this instruction.

The declared memory never changes which executions trap: its facts (minimum and maximum
bound, guard and reservation sizes) only tell lowerings which checks they may omit.";

/// The documentation of `bounds_checked_store`. RFC.md quotes it verbatim (a test checks).
pub const BOUNDS_CHECKED_STORE_DOC: &str = "\
Store to a linear memory, trapping if any accessed byte is out of bounds.

Operands as for `bounds_checked_load`, with the stored value `x` first; the access kind is the
full width of `x`'s type, or `i8`, `i16`, `i32` to store only the low 1, 2 or 4 bytes of an
integer.

Let `end = zext(index) + offset + access_size`, computed in unbounded integers. If
`end > bound` the instruction traps with the trap code of its flags and writes nothing: no byte
of memory changes. Otherwise it writes `access_size` bytes of `x` at address
`base + zext(index) + offset` with the endianness of the flags.";

/// All instructions, in opcode order.
pub fn define() -> Vec<I> {
    let mut v = Vec::new();
    let int = T::Int;
    let flt = T::Float;

    // Control flow.
    v.push(
        I::new(
            "jump",
            "Jump to `block_call`'s block, passing its arguments.",
            f::Jump,
        )
        .imm("block_call", K::BlockCall)
        .branch(),
    );
    v.push(
        I::new(
            "brif",
            "Branch to `block_then` if `c` is non-zero, else to `block_else`.",
            f::Brif,
        )
        .value("c", Free(int))
        .imm("block_then", K::BlockCall)
        .imm("block_else", K::BlockCall)
        .branch(),
    );
    v.push(
        I::new(
            "br_table",
            "Branch to the target at index `x` of the table, or to its default target when `x` \
             is out of range (an unsigned comparison).",
            f::BranchTable,
        )
        .value("x", Free(T::I32))
        .imm("JT", K::JumpTable)
        .branch(),
    );
    v.push(
        I::new("trap", "Terminate execution with trap `code`.", f::Trap)
            .imm("code", K::TrapCode)
            .can_trap()
            .terminator(),
    );
    v.push(
        I::new("trapz", "Trap with `code` if `c` is zero.", f::CondTrap)
            .value("c", Free(int))
            .imm("code", K::TrapCode)
            .can_trap(),
    );
    v.push(
        I::new(
            "trapnz",
            "Trap with `code` if `c` is non-zero.",
            f::CondTrap,
        )
        .value("c", Free(int))
        .imm("code", K::TrapCode)
        .can_trap(),
    );
    v.push(
        I::new("return", "Return the values to the caller.", f::MultiAry)
            .imm("rvals", K::ValueSlice)
            .returns(),
    );
    v.push(
        I::new(
            "call",
            "Call a declared external function; the results are the callee's returns.",
            f::Call,
        )
        .imm("FN", K::FuncRef)
        .imm("args", K::ValueSlice)
        .variable_results()
        .call(),
    );

    // Memory.
    let loads = [
        (
            "load",
            "Load a value of the controlling type from `p + Offset`.",
            T::Any,
        ),
        (
            "uload8",
            "Load 8 bits from `p + Offset`, zero-extended.",
            int,
        ),
        (
            "sload8",
            "Load 8 bits from `p + Offset`, sign-extended.",
            int,
        ),
        (
            "uload16",
            "Load 16 bits from `p + Offset`, zero-extended.",
            int,
        ),
        (
            "sload16",
            "Load 16 bits from `p + Offset`, sign-extended.",
            int,
        ),
        (
            "uload32",
            "Load 32 bits from `p + Offset`, zero-extended.",
            int,
        ),
        (
            "sload32",
            "Load 32 bits from `p + Offset`, sign-extended.",
            int,
        ),
    ];
    for (name, doc, set) in loads {
        let i = I::new(name, doc, f::Load)
            .imm("MemFlags", K::MemFlags)
            .value("p", Pointer)
            .imm("Offset", K::Offset32)
            .can_load()
            .can_trap();
        // As upstream, a 32-bit extending load always produces an i64 and takes no suffix.
        v.push(if matches!(name, "uload32" | "sload32") {
            i.result(R::Fixed("i64"))
        } else {
            i.result(R::Ctrl).ctrl(Ctrl::Explicit(set))
        });
    }
    let stores = [
        ("store", "Store `x` to `p + Offset`.", T::Any),
        (
            "istore8",
            "Store the low 8 bits of `x` to `p + Offset`.",
            int,
        ),
        (
            "istore16",
            "Store the low 16 bits of `x` to `p + Offset`.",
            int,
        ),
        (
            "istore32",
            "Store the low 32 bits of `x` to `p + Offset`.",
            int,
        ),
    ];
    for (name, doc, set) in stores {
        v.push(
            I::new(name, doc, f::Store)
                .imm("MemFlags", K::MemFlags)
                .value("x", C)
                .value("p", Pointer)
                .imm("Offset", K::Offset32)
                .ctrl(Ctrl::FromOperand(0, set))
                .can_store()
                .can_trap(),
        );
    }

    // Constants.
    v.push(
        I::new("iconst", "An integer constant.", f::UnaryImm)
            .imm("N", K::Imm64)
            .result(R::Ctrl)
            .ctrl(Ctrl::Explicit(int)),
    );
    v.push(
        I::new("f32const", "An `f32` constant.", f::UnaryIeee32)
            .imm("N", K::Ieee32)
            .result(R::Fixed("f32")),
    );
    v.push(
        I::new("f64const", "An `f64` constant.", f::UnaryIeee64)
            .imm("N", K::Ieee64)
            .result(R::Fixed("f64")),
    );

    // Selects.
    for (name, doc) in [
        ("select", "`x` if `c` is non-zero, else `y`."),
        (
            "select_spectre_guard",
            "`x` if `c` is non-zero, else `y`, computed without a branch the CPU could \
             speculate past, so that a later access using the result cannot be speculated \
             with the other value.",
        ),
    ] {
        v.push(
            I::new(name, doc, f::Ternary)
                .value("c", Free(int))
                .value("x", C)
                .value("y", C)
                .result(R::Ctrl)
                .ctrl(Ctrl::FromOperand(1, T::Any)),
        );
    }

    // Integer comparison and arithmetic.
    v.push(
        I::new(
            "icmp",
            "Compare `x` and `y` with condition `Cond`: 1 if it holds, else 0.",
            f::IntCompare,
        )
        .imm("Cond", K::IntCC)
        .value("x", C)
        .value("y", C)
        .result(R::Fixed("i8"))
        .ctrl(Ctrl::FromOperand(0, int)),
    );
    let binary_int = [
        ("iadd", "Wrapping addition."),
        ("isub", "Wrapping subtraction."),
        ("imul", "Wrapping multiplication."),
        (
            "udiv",
            "Unsigned division; traps with `int_divz` if `y` is zero.",
        ),
        (
            "sdiv",
            "Signed division rounding toward zero; traps with `int_divz` if `y` is zero and \
             with `int_ovf` on `MIN / -1`.",
        ),
        (
            "urem",
            "Unsigned remainder; traps with `int_divz` if `y` is zero.",
        ),
        (
            "srem",
            "Signed remainder with the sign of `x`; traps with `int_divz` if `y` is zero.",
        ),
        ("band", "Bitwise and."),
        ("bor", "Bitwise or."),
        ("bxor", "Bitwise exclusive or."),
    ];
    for (name, doc) in binary_int {
        let mut i = I::new(name, doc, f::Binary)
            .value("x", C)
            .value("y", C)
            .result(R::Ctrl)
            .ctrl(Ctrl::FromOperand(0, int));
        if matches!(name, "udiv" | "sdiv" | "urem" | "srem") {
            i = i.can_trap();
        }
        v.push(i);
    }
    let shifts = [
        ("rotl", "Rotate left by `y` modulo the bit width."),
        ("rotr", "Rotate right by `y` modulo the bit width."),
        ("ishl", "Shift left by `y` modulo the bit width."),
        ("ushr", "Logical shift right by `y` modulo the bit width."),
        (
            "sshr",
            "Arithmetic shift right by `y` modulo the bit width.",
        ),
    ];
    for (name, doc) in shifts {
        v.push(
            I::new(name, doc, f::Binary)
                .value("x", C)
                .value("y", Free(int))
                .result(R::Ctrl)
                .ctrl(Ctrl::FromOperand(0, int)),
        );
    }
    for (name, doc) in [
        ("bnot", "Bitwise not."),
        ("clz", "Count leading zero bits."),
        ("ctz", "Count trailing zero bits."),
        ("popcnt", "Count one bits."),
        ("bswap", "Reverse the order of the bytes (i16, i32, i64)."),
    ] {
        v.push(
            I::new(name, doc, f::Unary)
                .value("x", C)
                .result(R::Ctrl)
                .ctrl(Ctrl::FromOperand(0, int)),
        );
    }
    v.push(
        I::new(
            "uadd_overflow_trap",
            "Unsigned addition `x + y`, trapping with `code` if it overflows the type.",
            f::IntAddTrap,
        )
        .value("x", C)
        .value("y", C)
        .imm("code", K::TrapCode)
        .result(R::Ctrl)
        .ctrl(Ctrl::FromOperand(0, T::Addr))
        .can_trap(),
    );

    // Conversions.
    for (name, doc, set) in [
        (
            "ireduce",
            "Keep the low bits of `x`; the result type is narrower.",
            int,
        ),
        ("uextend", "Zero-extend `x` to the wider result type.", int),
        ("sextend", "Sign-extend `x` to the wider result type.", int),
    ] {
        v.push(
            I::new(name, doc, f::Unary)
                .value("x", Free(int))
                .result(R::Ctrl)
                .ctrl(Ctrl::Explicit(set)),
        );
    }
    v.push(
        I::new(
            "bitcast",
            "Reinterpret the bits of `x` as the result type, which has the same width.",
            f::LoadNoOffset,
        )
        .imm("MemFlags", K::MemFlags)
        .value("x", Free(T::Any))
        .result(R::Ctrl)
        .ctrl(Ctrl::Explicit(T::Any)),
    );

    // Floating point.
    v.push(
        I::new(
            "fcmp",
            "Compare floats with condition `Cond`: 1 if it holds, else 0.",
            f::FloatCompare,
        )
        .imm("Cond", K::FloatCC)
        .value("x", C)
        .value("y", C)
        .result(R::Fixed("i8"))
        .ctrl(Ctrl::FromOperand(0, flt)),
    );
    for (name, doc) in [
        ("fadd", "IEEE 754 addition."),
        ("fsub", "IEEE 754 subtraction."),
        ("fmul", "IEEE 754 multiplication."),
        ("fdiv", "IEEE 754 division."),
        ("fcopysign", "`x` with the sign of `y`."),
        (
            "fmin",
            "The smaller operand; NaN if either is NaN; -0.0 < +0.0.",
        ),
        (
            "fmax",
            "The larger operand; NaN if either is NaN; -0.0 < +0.0.",
        ),
    ] {
        v.push(
            I::new(name, doc, f::Binary)
                .value("x", C)
                .value("y", C)
                .result(R::Ctrl)
                .ctrl(Ctrl::FromOperand(0, flt)),
        );
    }
    for (name, doc) in [
        ("sqrt", "Square root."),
        ("fneg", "Flip the sign bit."),
        ("fabs", "Clear the sign bit."),
        ("ceil", "Round toward +Inf."),
        ("floor", "Round toward -Inf."),
        ("trunc", "Round toward zero."),
        ("nearest", "Round to nearest, ties to even."),
    ] {
        v.push(
            I::new(name, doc, f::Unary)
                .value("x", C)
                .result(R::Ctrl)
                .ctrl(Ctrl::FromOperand(0, flt)),
        );
    }
    for (name, doc, from, to, traps) in [
        (
            "fpromote",
            "Convert `f32` to `f64` exactly.",
            flt,
            flt,
            false,
        ),
        (
            "fdemote",
            "Convert `f64` to `f32`, rounding to nearest.",
            flt,
            flt,
            false,
        ),
        (
            "fcvt_to_uint",
            "Convert to an unsigned integer rounding toward zero; traps with `bad_toint` on \
             NaN and `int_ovf` when out of range.",
            flt,
            int,
            true,
        ),
        (
            "fcvt_to_sint",
            "Convert to a signed integer rounding toward zero; traps with `bad_toint` on NaN \
             and `int_ovf` when out of range.",
            flt,
            int,
            true,
        ),
        (
            "fcvt_to_uint_sat",
            "Convert to an unsigned integer rounding toward zero, saturating; NaN gives 0.",
            flt,
            int,
            false,
        ),
        (
            "fcvt_to_sint_sat",
            "Convert to a signed integer rounding toward zero, saturating; NaN gives 0.",
            flt,
            int,
            false,
        ),
        (
            "fcvt_from_uint",
            "Convert an unsigned integer to the nearest float.",
            int,
            flt,
            false,
        ),
        (
            "fcvt_from_sint",
            "Convert a signed integer to the nearest float.",
            int,
            flt,
            false,
        ),
    ] {
        let mut i = I::new(name, doc, f::Unary)
            .value("x", Free(from))
            .result(R::Ctrl)
            .ctrl(Ctrl::Explicit(to));
        if traps {
            i = i.can_trap();
        }
        v.push(i);
    }

    // The new instructions.
    v.push(
        I::new(
            "bounds_checked_load",
            BOUNDS_CHECKED_LOAD_DOC,
            f::BoundsCheckedLoad,
        )
        .imm("access", K::AccessKind)
        .imm("MemFlags", K::MemFlags)
        .imm("memory", K::Memory)
        .value("base", Pointer)
        .value("bound", Pointer)
        .value("index", Free(T::Addr))
        .imm("offset", K::Offset64)
        .result(R::Ctrl)
        .ctrl(Ctrl::Explicit(T::Any))
        .can_load()
        .can_trap()
        .new_in_this_project(),
    );
    v.push(
        I::new(
            "bounds_checked_store",
            BOUNDS_CHECKED_STORE_DOC,
            f::BoundsCheckedStore,
        )
        .imm("access", K::AccessKind)
        .imm("MemFlags", K::MemFlags)
        .imm("memory", K::Memory)
        .value("x", C)
        .value("base", Pointer)
        .value("bound", Pointer)
        .value("index", Free(T::Addr))
        .imm("offset", K::Offset64)
        .ctrl(Ctrl::FromOperand(0, T::Any))
        .can_store()
        .can_trap()
        .new_in_this_project(),
    );

    for i in &v {
        if let Err(e) = i.check_format() {
            panic!("bad instruction definition: {e}");
        }
    }
    v
}
