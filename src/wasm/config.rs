//! Memory configurations, spelled with Wasmtime's knobs, and the memory declaration each
//! one gives a translated function.

use crate::ir::{types, MemoryData};
use std::fmt;

/// The runtime never grows a memory64 memory beyond this many bytes.
pub const MEMORY64_LIMIT: u64 = 1 << 48;

/// The runtime never grows a table beyond this many elements (80 MB of references):
/// `table.grow` past it returns -1, as Wasm allows any growth to fail, and a module whose
/// tables start larger does not instantiate.
pub const TABLE_LIMIT: u64 = 10_000_000;

/// The linear memory a table of type `ty` lives in: one 8-byte page per element, byte
/// offsets as 64-bit indices, at most the declared maximum or [`TABLE_LIMIT`] elements.
/// Pages this small get no guard and no reservation to rely on (see
/// [`MemoryConfig::plan`]), so every table access is checked in full.
pub fn table_memory(ty: &wasmparser::TableType) -> wasmparser::MemoryType {
    wasmparser::MemoryType {
        memory64: true,
        shared: false,
        initial: ty.initial,
        maximum: Some(ty.maximum.map_or(TABLE_LIMIT, |m| m.min(TABLE_LIMIT))),
        page_size_log2: Some(super::module::REF_SIZE_LOG2),
    }
}

/// The linear memory a global lives in when several instances share it (a mutable global
/// that is imported or exported, [`super::module::Module::global_cells`]): one 8-byte page
/// that never grows, so that its bound is a constant and an access at 0 needs no check.
pub fn global_cell_memory() -> wasmparser::MemoryType {
    wasmparser::MemoryType {
        memory64: true,
        shared: false,
        initial: 1,
        maximum: Some(1),
        page_size_log2: Some(3),
    }
}

/// How the runtime lays out linear memories, with the meaning of Wasmtime's options of the
/// same names (`-O memory-reservation=..,memory-guard-size=..,memory-may-move=..`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryConfig {
    /// Virtual bytes reserved for a memory up front. A memory whose maximum fits (or that may
    /// not move) lives in this reservation forever, and its code relies on that.
    pub reservation: u64,
    /// Inaccessible bytes after the reservation (after the accessible bytes when the memory
    /// has no fixed reservation).
    pub guard: u64,
    /// Whether growth may move a memory to a new, larger mapping.
    pub may_move: bool,
}

impl MemoryConfig {
    /// Wasmtime's classic static memory: a 4 GiB reservation plus a 2 GiB guard, never
    /// moving. 32-bit accesses with offsets below 2 GiB need no check at all.
    pub const STATIC: MemoryConfig = MemoryConfig {
        reservation: 4 << 30,
        guard: 2 << 30,
        may_move: false,
    };
    /// A memory that grows by moving, with a 64 KiB guard after its accessible bytes.
    pub const DYNAMIC_GUARD: MemoryConfig = MemoryConfig {
        reservation: 0,
        guard: 64 << 10,
        may_move: true,
    };
    /// A memory that grows by moving, with nothing inaccessible after it: every access is
    /// checked in full.
    pub const DYNAMIC: MemoryConfig = MemoryConfig {
        reservation: 0,
        guard: 0,
        may_move: true,
    };

    /// The named presets, for listings and tests.
    pub const PRESETS: [(&'static str, MemoryConfig); 3] = [
        ("static", MemoryConfig::STATIC),
        ("dynamic-guard", MemoryConfig::DYNAMIC_GUARD),
        ("dynamic", MemoryConfig::DYNAMIC),
    ];

    /// Parses a preset name or a comma-separated list of knobs starting from the `dynamic`
    /// preset: `reservation=4GiB,guard=2GiB,may-move=no`.
    pub fn parse(text: &str) -> Result<MemoryConfig, String> {
        if let Some((_, c)) = Self::PRESETS.iter().find(|(n, _)| *n == text) {
            return Ok(*c);
        }
        let mut c = MemoryConfig::DYNAMIC;
        for item in text.split(',').map(str::trim) {
            let Some((key, value)) = item.split_once('=') else {
                return Err(format!(
                    "memory configuration `{text}`: expected a preset (static, dynamic-guard, dynamic) or `knob=value` items, found `{item}`"
                ));
            };
            match key.trim() {
                "reservation" | "memory-reservation" => c.reservation = parse_size(value)?,
                "guard" | "memory-guard-size" => c.guard = parse_size(value)?,
                "may-move" | "memory-may-move" => {
                    c.may_move = match value.trim() {
                        "yes" | "y" | "true" => true,
                        "no" | "n" | "false" => false,
                        v => return Err(format!("may-move: expected yes or no, found `{v}`")),
                    }
                }
                k => {
                    return Err(format!(
                        "unknown memory knob `{k}` (known: reservation, guard, may-move)"
                    ))
                }
            }
        }
        Ok(c)
    }

    /// How a memory of the given type is laid out under this configuration.
    pub fn plan(
        &self,
        memory64: bool,
        page_size_log2: u32,
        min: u64,
        max: Option<u64>,
    ) -> MemoryPlan {
        let bytes =
            |pages: u64| u64::try_from(u128::from(pages) << page_size_log2).unwrap_or(u64::MAX);
        let min_bytes = bytes(min);
        // The largest size: 2^32 bytes for memory32 (the type's limit); for memory64 the
        // runtime's own limit of 2^48 bytes, the user address space of x86-64 and aarch64
        // hosts, so that a bound plus a guard always fits 64 bits.
        let type_limit: u128 = if memory64 {
            MEMORY64_LIMIT.into()
        } else {
            1 << 32
        };
        let declared = max.map_or(type_limit, |m| u128::from(m) << page_size_log2);
        let max_bytes = u64::try_from(declared.min(type_limit)).ok();
        let fits = max_bytes.is_some_and(|m| m <= self.reservation);
        // Pages smaller than the host's cannot end where a protected page starts, so such
        // memories get no guard and no reservation to rely on: every access is checked.
        let small_pages = page_size_log2 < 12;
        let guard = if small_pages { 0 } else { self.guard };
        let reservation = if small_pages {
            None
        } else if !self.may_move || fits {
            // Never moves: the reservation is fixed, at least the minimum size.
            Some(self.reservation.max(min_bytes))
        } else {
            None
        };
        let max_bytes = match (reservation, max_bytes) {
            (Some(r), Some(m)) => Some(m.min(r)),
            (Some(r), None) => Some(r),
            (None, m) => m,
        };
        MemoryPlan {
            memory64,
            page_size_log2,
            min_bytes,
            max_bytes,
            reservation,
            guard,
        }
    }
}

/// One memory's layout: sizes in bytes, fixed reservation or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryPlan {
    /// A memory64 memory (i64 indices).
    pub memory64: bool,
    /// log2 of the page size (16 for 64 KiB pages).
    pub page_size_log2: u32,
    /// Initial size.
    pub min_bytes: u64,
    /// The largest size growth may reach (the type's maximum, capped by a fixed reservation).
    pub max_bytes: Option<u64>,
    /// The fixed reservation, if the memory never moves.
    pub reservation: Option<u64>,
    /// Inaccessible bytes after the reservation or the accessible bytes.
    pub guard: u64,
}

impl MemoryPlan {
    /// The declaration a function gets for this memory: what the runtime promises about
    /// every bound the function will see.
    pub fn declaration(&self) -> MemoryData {
        MemoryData {
            index_type: if self.memory64 {
                types::I64
            } else {
                types::I32
            },
            min: self.min_bytes,
            max: self.max_bytes,
            reservation: self.reservation,
            guard: self.guard,
        }
    }
}

impl fmt::Display for MemoryConfig {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if let Some((name, _)) = Self::PRESETS.iter().find(|(_, c)| c == self) {
            return f.write_str(name);
        }
        write!(
            f,
            "reservation={},guard={},may-move={}",
            show_size(self.reservation),
            show_size(self.guard),
            if self.may_move { "yes" } else { "no" }
        )
    }
}

/// `4GiB`, `64KiB`, `0x1000`, `4096`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, unit) = match t.find(|c: char| c.is_ascii_alphabetic() && !t.starts_with("0x")) {
        Some(i) => t.split_at(i),
        None => (t, ""),
    };
    let n = match digits.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => digits.parse(),
    }
    .map_err(|_| format!("size `{text}`: expected a number such as 4GiB, 64KiB or 0x1000"))?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" | "kb" => 10,
        "m" | "mib" | "mb" => 20,
        "g" | "gib" | "gb" => 30,
        "t" | "tib" | "tb" => 40,
        u => {
            return Err(format!(
                "size `{text}`: unknown unit `{u}` (B, KiB, MiB, GiB, TiB)"
            ))
        }
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("size `{text}` does not fit 64 bits"))
}

fn show_size(n: u64) -> String {
    for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if n != 0 && n.is_multiple_of(1 << shift) {
            return format!("{}{unit}", n >> shift);
        }
    }
    n.to_string()
}
