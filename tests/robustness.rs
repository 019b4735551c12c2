//! Malformed input never panics, and errors say where and what.
//!
//! - Mutation test: every filetest, mutated a few dozen ways (bytes deleted, duplicated,
//!   replaced by CLIF-ish tokens, lines swapped), goes through parser, verifier and
//!   interpreter; none may panic. Deterministic (fixed seed) and bounded.
//! - Parser errors: line, column, the source line and the expected thing.

use clif_bounds::fuzzing::exercise;
use clif_bounds::parser::parse_file;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

/// xorshift64*: a fixed-seed generator so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TOKENS: &[&str] = &[
    "v0",
    "v1",
    "v9999",
    "v1048577",
    "block0",
    "block1",
    "block77",
    "mem0",
    "mem1",
    "fn0",
    "sig0",
    "region0",
    "0",
    "-1",
    "+0xffff_ffff_ffff_ffff",
    "0xffff_ffff_ffff_ffff",
    "-0x8000_0000_0000_0001",
    "18446744073709551616",
    "(",
    ")",
    ",",
    "=",
    ":",
    "{",
    "}",
    "->",
    ";",
    "\n",
    "i8",
    "i64",
    "f32",
    "f128",
    "i32x4",
    "notrap",
    "heap_oob",
    "user0",
    "user251",
    "big",
    "little",
    "aligned",
    "u8",
    "s32",
    "i16",
    "bounds_checked_load.i64",
    "bounds_checked_store",
    "load.i32",
    "iconst.i8",
    "iadd",
    "brif",
    "jump",
    "return",
    "call",
    "trap",
    "0x1.8p3",
    "-NaN:0x1",
    "+sNaN:0x0",
    "memory index i32",
    "min 0",
    "max 0",
    "guard 0xffff_ffff_ffff_ffff",
    "reservation 0",
    "%f",
    "u0:1",
    "\"",
    "é",
    "\u{0}",
];

fn mutate(src: &str, rng: &mut Rng) -> String {
    let mut s: Vec<char> = src.chars().collect();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(s.len() + 1);
        match rng.below(5) {
            0 if !s.is_empty() => {
                let end = (at + 1 + rng.below(12)).min(s.len());
                s.drain(at.min(end)..end);
            }
            1 if !s.is_empty() => {
                let end = (at + 1 + rng.below(40)).min(s.len());
                let piece: Vec<char> = s[at.min(end)..end].to_vec();
                let to = rng.below(s.len() + 1);
                s.splice(to..to, piece);
            }
            2 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                let sep = if rng.below(2) == 0 { " " } else { "" };
                let text: Vec<char> = format!("{sep}{t}{sep}").chars().collect();
                s.splice(at..at, text);
            }
            3 if !s.is_empty() => {
                let end = (at + 1 + rng.below(8)).min(s.len());
                let t: Vec<char> = TOKENS[rng.below(TOKENS.len())].chars().collect();
                s.splice(at.min(end)..end, t);
            }
            _ => {
                let text: String = s.iter().collect();
                let mut lines: Vec<&str> = text.lines().collect();
                if lines.len() > 2 {
                    let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
                    lines.swap(a, b);
                }
                s = lines.join("\n").chars().collect();
            }
        }
    }
    s.into_iter().collect()
}

fn filetest_sources() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/filetests");
    clif_bounds::filetest::clif_files(&[dir])
        .into_iter()
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect()
}

/// Property: for any text that parses, printing is a fixed point of parse-then-print.
fn fixed_point(text: &str) -> Result<(), String> {
    let Ok(file) = parse_file(text) else {
        return Ok(());
    };
    for pf in &file.functions {
        let printed = pf.func.to_string();
        let again = clif_bounds::parser::parse_function(&printed)
            .map_err(|d| format!("printed text does not parse: {}\n{printed}", d.message))?
            .to_string();
        if again != printed {
            return Err(format!("--- printed\n{printed}--- printed again\n{again}"));
        }
    }
    Ok(())
}

#[test]
fn mutated_filetests_never_panic_and_print_at_a_fixed_point() {
    let mutants_per_file = 64;
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let (mut total, mut parsed, mut verified, mut interpreted) = (0, 0, 0, 0);
    let mut panics = Vec::new();
    let mut fixed_point_failures = Vec::new();
    std::panic::set_hook(Box::new(|_| {}));
    for (name, src) in filetest_sources() {
        for _ in 0..mutants_per_file {
            let text = mutate(&src, &mut rng);
            total += 1;
            match catch_unwind(AssertUnwindSafe(|| (exercise(&text), fixed_point(&text)))) {
                Ok((_, Err(why))) => {
                    fixed_point_failures.push(format!("mutant of {name}: {why}\n{text}"))
                }
                Ok((r, Ok(()))) => {
                    parsed += usize::from(r.parsed);
                    verified += usize::from(r.verified);
                    interpreted += usize::from(r.interpreted);
                }
                Err(e) => {
                    let msg = e
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    panics.push(format!("mutant of {name} panicked: {msg}\n{text}"));
                }
            }
        }
    }
    let _ = std::panic::take_hook();
    println!("{total} mutants: {parsed} parsed, {verified} verified, {interpreted} interpreted");
    assert!(
        panics.is_empty(),
        "{} panics; first:\n{}",
        panics.len(),
        panics[0]
    );
    // The mutations must exercise every stage, or the test proves little.
    assert!(parsed * 10 > total && verified * 20 > total && interpreted * 20 > total);
}

/// Parses `src` and returns the rendered error.
fn error_of(src: &str) -> (String, (usize, usize), String) {
    let d = parse_file(src).expect_err("expected a parse error");
    (d.message.clone(), d.line_col(src), d.render("t.clif", src))
}

#[test]
fn parse_errors_have_locations() {
    let cases: &[(&str, &str, (usize, usize))] = &[
        (
            "function %f() {\nblock0:\n    v0 = frobnicate v1\n}\n",
            "unsupported or unknown instruction `frobnicate`",
            (3, 10),
        ),
        (
            "function %f(i32) -> i32 {\nblock0(v0: i32):\n    return v7\n}\n",
            "use of undefined value v7",
            (3, 12),
        ),
        (
            "function %f() {\nblock0:\n    v0 = iconst.i8 256\n    return\n}\n",
            "immediate 256 does not fit in i8",
            (3, 20),
        ),
        (
            "function %f() {\n    mem0 = memory index i16, min 0\nblock0:\n    return\n}\n",
            "a memory's index type must be i32 or i64, not i16",
            (2, 25),
        ),
        (
            "function %f(i64, i64, i32) -> i32 {\nblock0(v0: i64, v1: i64, v2: i32):\n    v3 = bounds_checked_load.i32 mem0 v0, v1, v2\n    return v3\n}\n",
            "undeclared memory mem0",
            (3, 34),
        ),
        (
            "function %f(i64, i64, i64) -> i32 {\n    mem0 = memory index i64, min 0\nblock0(v0: i64, v1: i64, v2: i64):\n    v3 = bounds_checked_load.i32 mem0 v0, v1, v2-4\n    return v3\n}\n",
            "bounds-checked offsets are unsigned; `-4` is negative",
            (4, 49),
        ),
        (
            "function %f(i64) {\nblock0(v0: i64):\n    v1 = load.i32 v0+0x8000_0000\n    return\n}\n",
            "offset +0x8000_0000 does not fit in a signed 32-bit offset",
            (3, 21),
        ),
        (
            "function %f() {\nblock0:\n    v1 = iconst.i32 1\n    v1 = iconst.i32 2\n    return\n}\n",
            "v1 is defined twice",
            (4, 5),
        ),
        (
            "function %f() {\nblock0:\n    jump block9\n}\n",
            "undefined block block9",
            (3, 10),
        ),
        (
            "function %f() {\nblock0:\n    v0 = iconst 1\n    return\n}\n",
            "`iconst` needs a type suffix, e.g. `iconst.i32`",
            (3, 10),
        ),
        (
            "function %f(i128) {\nblock0(v0: i128):\n    return\n}\n",
            "unsupported type `i128`",
            (1, 13),
        ),
        (
            "function %f() {\nblock0:\n    v0 = f32const 1.5\n    return\n}\n",
            "floats are written in hexadecimal",
            (3, 19),
        ),
        (
            "function %f() {\n    gv0 = vmctx\nblock0:\n    return\n}\n",
            "unsupported declaration `gv0`",
            (2, 5),
        ),
        (
            "function %f(i64) {\nblock0(v0: i64):\n    v1 = load.i32 big little v0\n    return\n}\n",
            "cannot set both big and little endian",
            (3, 23),
        ),
        (
            "function %f() {\nblock0:\n    v99999999 = iconst.i32 0\n    return\n}\n",
            "entity numbers above",
            (3, 5),
        ),
        (
            "function %f() {\nblock0:\n    trap user0\n}\n",
            "unknown trap code `user0`",
            (3, 10),
        ),
    ];
    for (src, message, at) in cases {
        let (got, line_col, rendered) = error_of(src);
        assert!(
            got.contains(message),
            "expected `{message}`, got `{got}` for:\n{src}"
        );
        assert_eq!(line_col, *at, "wrong location for `{got}`");
        // The rendering names the file, line and column and shows the line.
        let line = src.lines().nth(at.0 - 1).unwrap();
        assert!(
            rendered.contains(&format!("t.clif:{}:{}", at.0, at.1)),
            "{rendered}"
        );
        assert!(rendered.contains(line.trim()), "{rendered}");
    }
}

#[test]
fn verifier_errors_point_at_the_instruction() {
    let src = "function %f(i64, i64, i32) -> i32 {\n    mem0 = memory index i64, min 0\n\nblock0(v0: i64, v1: i64, v2: i32):\n    v3 = bounds_checked_load.i32 mem0 v0, v1, v2\n    return v3\n}\n";
    let f = clif_bounds::parser::parse_function(src).unwrap();
    let errs =
        clif_bounds::ir_verifier::verify_function(&f, clif_bounds::ir::types::I64).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].line_col(src), (5, 5));
    let rendered = errs[0].render("t.clif", src);
    assert!(
        rendered.contains("index v2 has type i32, but mem0 is indexed by i64"),
        "{rendered}"
    );
    assert!(rendered.contains("t.clif:5:5"), "{rendered}");
}

#[test]
fn large_functions_parse_verify_and_run() {
    // A translator emits functions with tens of thousands of values; nothing on the path may
    // be quadratic or recurse per instruction.
    let n = 50_000;
    let mut src = String::from("function %big(i64) -> i64 fast {\nblock0(v0: i64):\n");
    for i in 1..=n {
        src.push_str(&format!("    v{i} = iadd v{}, v0\n", i - 1));
    }
    src.push_str(&format!("    return v{n}\n}}\n"));
    let f = clif_bounds::parser::parse_function(&src).unwrap();
    clif_bounds::ir_verifier::verify_function(&f, clif_bounds::ir::types::I64).unwrap();
    let mut interp = clif_bounds::interpreter::Interpreter::new([&f], clif_bounds::ir::types::I64);
    let arg = clif_bounds::interpreter::DataValue::new(clif_bounds::ir::types::I64, 3);
    let out = interp.call("%big", &[arg]).unwrap();
    assert_eq!(
        out,
        clif_bounds::interpreter::Outcome::Returned(vec![
            clif_bounds::interpreter::DataValue::new(clif_bounds::ir::types::I64, 3 * (n + 1))
        ])
    );
    assert_eq!(f.to_string(), src);
}
