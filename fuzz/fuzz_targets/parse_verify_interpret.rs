//! `cargo fuzz run parse_verify_interpret`: arbitrary bytes, as text, through the parser, the
//! verifier and the interpreter. Seed the corpus with `tests/filetests`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        clif_bounds::fuzzing::exercise(text);
    }
});
