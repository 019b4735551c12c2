//! The routine fuzzers drive: any text goes through the parser, the verifier and, when it
//! verifies, the interpreter (with a small fuel budget and one mapped memory). It must return,
//! never panic; the in-suite mutation test and the `cargo fuzz` target both call it.

use crate::interpreter::{DataValue, Interpreter};
use crate::ir::types;
use crate::ir_verifier::verify_function;
use crate::parser::parse_file;

/// What one input reached, for statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reached {
    /// The text parsed.
    pub parsed: bool,
    /// At least one function verified.
    pub verified: bool,
    /// At least one function was run.
    pub interpreted: bool,
}

/// Parses, verifies and interprets `text`.
pub fn exercise(text: &str) -> Reached {
    let mut reached = Reached::default();
    let Ok(file) = parse_file(text) else {
        return reached;
    };
    reached.parsed = true;
    for pointer in [types::I64, types::I32] {
        let ok: Vec<_> = file
            .functions
            .iter()
            .map(|f| &f.func)
            .filter(|f| verify_function(f, pointer).is_ok())
            .collect();
        if ok.is_empty() || pointer == types::I32 {
            continue;
        }
        reached.verified = true;
        let mut interp = Interpreter::new(ok.iter().copied(), pointer);
        let Ok(base) = interp.memory.map("heap", 0x1_0000) else {
            continue;
        };
        for f in &ok {
            // Pointer-sized arguments get the memory's base then its size, so bounds-checked
            // accesses see a consistent memory; other arguments get small varied values.
            let mut pointers = [base, 0x1_0000].into_iter();
            let args: Vec<DataValue> = f
                .signature
                .params
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let bits = if p.value_type == pointer {
                        pointers.next().unwrap_or(i as u64)
                    } else {
                        (i as u64).wrapping_mul(0x9e37_79b9) & 0xffff
                    };
                    DataValue::new(p.value_type, bits)
                })
                .collect();
            interp.set_fuel(10_000);
            let _ = interp.call(&f.name, &args);
            reached.interpreted = true;
        }
    }
    reached
}
