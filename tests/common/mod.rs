//! Helpers shared by the test binaries that drive real Cranelift 0.135.8.

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
