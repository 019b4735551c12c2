//! The bounds-check semantics, rendered from `meta/src/semantics.rs`.
//!
//! This is the only place the trap condition of `bounds_checked_load`/`bounds_checked_store`
//! exists as code; the interpreter calls it, and the proof machinery uses the SMT-LIB text.

include!(concat!(env!("OUT_DIR"), "/semantics.rs"));

impl AccessKind {
    /// The number of bytes an access of this kind moves for a value of type `ty`.
    pub fn access_size(self, ty: crate::ir::Type) -> u32 {
        self.narrow_bytes().map_or(ty.bytes(), u32::from)
    }
}

/// Whether an access with this offset and size traps for every index and bound: even index 0
/// ends past the largest 64-bit bound. The verifier rejects such instructions; frontends emit
/// the trap instead.
pub fn always_out_of_bounds(offset: u64, access_size: u64) -> bool {
    out_of_bounds(0, offset, access_size, u64::MAX)
}

impl core::fmt::Display for AccessKind {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        f.write_str(self.text().unwrap_or(""))
    }
}
