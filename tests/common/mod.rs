//! Helpers shared by the test binaries: real Cranelift 0.135.8's ISAs and a seeded random
//! generator. Each binary uses part of them.
#![allow(dead_code)]

use cranelift_codegen::isa::OwnedTargetIsa;
use cranelift_codegen::settings::{self, Configurable};

/// Real Cranelift's ISA `name` (`x86_64`, `aarch64`, `pulley64`, ...) at `opt_level=speed`,
/// with `enable_heap_access_spectre_mitigation` as given.
pub fn isa(name: &str, spectre: bool) -> OwnedTargetIsa {
    let mut b = settings::builder();
    b.set(
        "enable_heap_access_spectre_mitigation",
        &spectre.to_string(),
    )
    .unwrap();
    b.set("opt_level", "speed").unwrap();
    cranelift_codegen::isa::lookup_by_name(name)
        .unwrap_or_else(|e| panic!("{name}: {e:?}"))
        .finish(settings::Flags::new(b))
        .unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

/// A small seeded xorshift generator: the same sequence on every run.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// One of `items`.
    pub fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize].clone()
    }
}
