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
    /// How an access through a null address is known to trap: what the Spectre form of a
    /// check (select a null address when out of bounds) relies on.
    pub null_check: NullCheck,
    /// The bounds-checking addressing modes, where the target has them.
    pub checked_modes: Option<CheckedModes>,
    /// A comparison may read one operand from memory (x86's `cmp reg, mem`).
    pub compare_with_memory: bool,
    /// The largest displacement an addressing mode holds.
    pub max_displacement: u64,
    /// A store that crosses from a writable page into one that faults may still write the
    /// writable part (Arm leaves it implementation-defined; QEMU does it; Wasmtime issue
    /// #7237). A trapping Wasm store must write nothing, so a store whose plan relies on a
    /// faulting range is probed first ([`crate::plan::Plan::probe_store`]).
    pub stores_may_tear: bool,
}

/// How an access through a possibly-null address traps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NullCheck {
    /// The access instruction tests its base register for null before adding the
    /// displacement, whatever the displacement (Pulley's `*_z` modes); native byte order only.
    BaseRegister,
    /// The first `reach` bytes of the address space are never mapped: an access within
    /// `reach` of null faults. (Linux keeps the first 64 KiB unmapped, `vm.mmap_min_addr`,
    /// and the top half for the kernel; one page is the margin every system keeps.)
    Unmapped {
        /// The distance from null that still faults.
        reach: u64,
    },
}

/// Addressing modes that check the bound themselves (Pulley's `*_g32` and `*_g32bne`): the
/// access traps when `zext(index) > bound - offset - size`, a subtraction the interpreter
/// does not check, so they need `bound >= offset + size` proven.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckedModes {
    /// The largest offset of `g32` (its offset field is 16 bits).
    pub offset_max: u64,
    /// The largest access offset of `g32bne` (8 bits).
    pub bne_offset_max: u64,
    /// The largest offset of the bound's address in `g32bne` (8 bits).
    pub bne_bound_offset_max: u64,
}

const PAGE: NullCheck = NullCheck::Unmapped { reach: 4096 };

const fn target(name: &'static str, pointer: Type, endianness: Endianness, pulley: bool) -> Target {
    Target {
        name,
        pointer,
        endianness,
        pulley,
        null_check: if pulley {
            NullCheck::BaseRegister
        } else {
            PAGE
        },
        checked_modes: if pulley {
            Some(CheckedModes {
                offset_max: u16::MAX as u64,
                bne_offset_max: u8::MAX as u64,
                bne_bound_offset_max: u8::MAX as u64,
            })
        } else {
            None
        },
        compare_with_memory: false,
        max_displacement: i32::MAX as u64,
        stores_may_tear: false,
    }
}

/// Every known target.
pub const TARGETS: &[Target] = &[
    Target::X86_64,
    Target::AARCH64,
    target("riscv64", types::I64, Endianness::Little, false),
    target("s390x", types::I64, Endianness::Big, false),
    target("pulley32", types::I32, Endianness::Little, true),
    Target::PULLEY64,
    target("pulley32be", types::I32, Endianness::Big, true),
    target("pulley64be", types::I64, Endianness::Big, true),
];

impl Target {
    /// x86_64, the target of `isa::x64`.
    pub const X86_64: Target = Target {
        compare_with_memory: true,
        ..target("x86_64", types::I64, Endianness::Little, false)
    };

    /// aarch64, the target of `isa::aarch64`. Its register-indexed addressing mode (`[base,
    /// index]`, `[base, windex, uxtw]`) has no displacement: a bounds-checked access's offset
    /// goes into its base.
    pub const AARCH64: Target = Target {
        max_displacement: 0,
        stores_may_tear: true,
        ..target("aarch64", types::I64, Endianness::Little, false)
    };

    /// Whether an access of the given byte order through a null address traps.
    pub fn null_traps(&self, foreign_order: bool) -> bool {
        match self.null_check {
            NullCheck::BaseRegister => !foreign_order,
            NullCheck::Unmapped { .. } => true,
        }
    }

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
