//! The targets this project knows, and the facts about them that the IR passes need.

use crate::ir::{types, Endianness, Type};

/// A compilation target, as named on a CLIF `target` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// The name: `x86_64`, `aarch64`, `pulley64`, ...
    pub name: &'static str,
    /// The pointer type: `base` and `bound` of a bounds-checked access have it.
    pub pointer: Type,
    /// Native byte order.
    pub endianness: Endianness,
    /// The Pulley interpreter: no `select_spectre_guard`, loads of both byte orders.
    ///
    /// Also: a fault in a declared faulting range (guard, reservation) is not a trap there.
    /// The interpreter dereferences host pointers, so such a fault would be a fault of the
    /// host process. Code for Pulley never relies on faulting ranges, only on its null
    /// checks (see [`Target::faulting_ranges_trap`]).
    pub pulley: bool,
}

const fn target(name: &'static str, pointer: Type, endianness: Endianness, pulley: bool) -> Target {
    Target {
        name,
        pointer,
        endianness,
        pulley,
    }
}

/// Every known target.
pub const TARGETS: &[Target] = &[
    target("x86_64", types::I64, Endianness::Little, false),
    target("aarch64", types::I64, Endianness::Little, false),
    target("riscv64", types::I64, Endianness::Little, false),
    target("s390x", types::I64, Endianness::Big, false),
    target("pulley32", types::I32, Endianness::Little, true),
    Target::PULLEY64,
    target("pulley32be", types::I32, Endianness::Big, true),
    target("pulley64be", types::I64, Endianness::Big, true),
];

impl Target {
    /// 64-bit little-endian Pulley, the target of `isa::pulley`.
    pub const PULLEY64: Target = target("pulley64", types::I64, Endianness::Little, true);

    /// The target named `name`.
    pub fn lookup(name: &str) -> Option<&'static Target> {
        TARGETS.iter().find(|t| t.name == name)
    }

    /// Whether a fault in a memory's declared faulting ranges (the guard after the bound, the
    /// reservation) reaches the program as a trap, so a lowering may omit checks they cover.
    /// True for native code, which runs under a signal handler; false for Pulley, as
    /// Wasmtime does on Pulley (no signals-based traps, so every check is explicit).
    pub fn faulting_ranges_trap(&self) -> bool {
        !self.pulley
    }

    /// The target named `name`, or an error listing the known ones.
    pub fn lookup_or_err(name: &str) -> Result<&'static Target, String> {
        Target::lookup(name).ok_or_else(|| {
            let known: Vec<&str> = TARGETS.iter().map(|t| t.name).collect();
            format!("unknown target `{name}` (known: {})", known.join(", "))
        })
    }
}
