//! Our backends against the reference interpreter on random integer arithmetic.
//!
//! The bounds-checked accesses have their own oracle (`oracle.rs`); this covers what every
//! other lowering must get right for them to matter: operations on i8/i16/i32/i64 (whose
//! unspecified upper bits the x86_64 backend handles by an invariant: i32 values are kept
//! zero-extended), shifts and rotates by amounts beyond the width, every comparison, selects,
//! extensions and reductions, division and remainder with their traps, and constants that
//! become immediates (or vanish: `x + 0`, `x * 1`, `x & -1`). Each random function runs on the
//! interpreter, natively through our x86_64 backend and through our pulley64 backend, at
//! argument values chosen to hit the edges; results and trap codes must agree.

use clif_bounds::interpreter::{DataValue, Interpreter, Outcome};
use clif_bounds::ir::{types, Type};
use std::fmt::Write;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize].clone()
    }
}

const TYPES: [&str; 4] = ["i8", "i16", "i32", "i64"];

/// Constants at the edges of every width.
const EDGES: [u64; 10] = [
    0,
    1,
    2,
    u64::MAX,
    0x7f,
    0x80,
    0x7fff_ffff,
    0x8000_0000,
    0x8000_0000_0000_0000,
    0xffff_ffff,
];

/// A random function `(i64, i64, i64) -> i64`: the arguments reduced to one type, a chain of
/// operations on them and on constants, the result extended back to i64.
fn random_function(rng: &mut Rng) -> String {
    let ty = rng.pick(&TYPES);
    let mut body = String::new();
    let mut next = 10;
    let mut vals: Vec<String> = Vec::new();
    for p in ["v0", "v1", "v2"] {
        if ty == "i64" {
            vals.push(p.to_string());
        } else {
            let _ = writeln!(body, "    v{next} = ireduce.{ty} {p}");
            vals.push(format!("v{next}"));
            next += 1;
        }
    }
    let wide = matches!(ty, "i32" | "i64");
    let mut block = 0;
    for _ in 0..(3 + rng.next() % 6) {
        let a = rng.pick(&vals);
        let b = if rng.next().is_multiple_of(3) {
            let k = if rng.next().is_multiple_of(2) {
                rng.pick(&EDGES)
            } else {
                rng.next() % 70
            };
            let _ = writeln!(body, "    v{next} = iconst.{ty} {}", k & mask(ty));
            next += 1;
            format!("v{}", next - 1)
        } else {
            rng.pick(&vals)
        };
        let c = rng.pick(&vals);
        let op = rng.next() % 14;
        let line = match op {
            0 => format!("iadd {a}, {b}"),
            1 => format!("isub {a}, {b}"),
            2 => format!("imul {a}, {b}"),
            3 => format!("band {a}, {b}"),
            4 => format!("bor {a}, {b}"),
            5 => format!("bxor {a}, {b}"),
            6 => format!(
                "{} {a}, {b}",
                rng.pick(&["ishl", "ushr", "sshr", "rotl", "rotr"])
            ),
            7 => {
                let cc = rng.pick(&[
                    "eq", "ne", "slt", "sge", "sgt", "sle", "ult", "uge", "ugt", "ule",
                ]);
                let _ = writeln!(body, "    v{next} = icmp {cc} {a}, {b}");
                next += 1;
                format!("select v{}, {b}, {c}", next - 1)
            }
            8 if wide => format!("{} {a}, {b}", rng.pick(&["udiv", "sdiv", "urem", "srem"])),
            9 if wide => format!("{} {a}", rng.pick(&["clz", "ctz", "popcnt"])),
            10 => format!("bnot {a}"),
            11 if ty != "i64" => {
                // Through a wider type and back.
                let ext = rng.pick(&["uextend", "sextend"]);
                let _ = writeln!(body, "    v{next} = {ext}.i64 {a}");
                next += 1;
                format!("ireduce.{ty} v{}", next - 1)
            }
            12 => {
                // A branch on a comparison, merging two values.
                let cc = rng.pick(&["eq", "ult", "sgt"]);
                let _ = writeln!(body, "    v{next} = icmp {cc} {a}, {b}");
                let cond = next;
                block += 1;
                let _ = writeln!(
                    body,
                    "    brif v{cond}, block{block}({a}), block{block}({c})"
                );
                let _ = writeln!(body, "\nblock{block}(v{}: {ty}):", cond + 1);
                vals.push(format!("v{}", cond + 1));
                next += 2;
                continue;
            }
            _ => format!("iadd {a}, {c}"),
        };
        let _ = writeln!(body, "    v{next} = {line}");
        vals.push(format!("v{next}"));
        next += 1;
    }
    let last = vals.last().unwrap().clone();
    let ret = if ty == "i64" {
        last
    } else {
        let ext = rng.pick(&["uextend", "sextend"]);
        let _ = writeln!(body, "    v{next} = {ext}.i64 {last}");
        format!("v{next}")
    };
    format!(
        "function %f(i64, i64, i64) -> i64 {{\nblock0(v0: i64, v1: i64, v2: i64):\n{body}    return {ret}\n}}\n"
    )
}

fn mask(ty: &str) -> u64 {
    match ty {
        "i8" => 0xff,
        "i16" => 0xffff,
        "i32" => 0xffff_ffff,
        _ => u64::MAX,
    }
}

fn show(o: &Outcome) -> String {
    match o {
        Outcome::Returned(v) => format!("{:#x}", v[0].bits),
        Outcome::Trapped(t) => format!("trap {}", t.code),
    }
}

/// One compiled function, called with arguments.
type Runner = Box<dyn FnMut(&[DataValue]) -> Outcome>;

#[test]
fn random_arithmetic_agrees_with_the_interpreter() {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let (mut points, mut disagreements, mut pulley_skipped) = (0, Vec::new(), 0);
    let i64s = |v: [u64; 3]| v.map(|b| DataValue::new(types::I64, b));
    let rets: [Type; 1] = [types::I64];
    for _ in 0..300 {
        let text = random_function(&mut rng);
        let func = clif_bounds::parser::parse_function(&text)
            .unwrap_or_else(|d| panic!("{}\n{text}", d.message));
        clif_bounds::verifier::verify_function(&func, types::I64)
            .unwrap_or_else(|e| panic!("{}\n{text}", e[0].message));
        let mut backends: Vec<(String, Runner)> = Vec::new();
        for spectre in [false, true] {
            #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
            {
                let backend = clif_bounds::isa::x64::X64Backend { spectre };
                let image =
                    clif_bounds::isa::x64::run::X64Image::build(&[&func], &backend, &|_| None)
                        .unwrap_or_else(|e| panic!("x86_64: {e}\n{text}"));
                backends.push((
                    "x86_64".into(),
                    Box::new(move |args| {
                        use clif_bounds::isa::x64::run::Exit;
                        match image.call("%f", args, &rets).unwrap() {
                            Exit::Returned(v) => Outcome::Returned(v),
                            Exit::Trapped(code) => Outcome::Trapped(trap(code)),
                        }
                    }),
                ));
            }
            let backend = clif_bounds::isa::pulley::PulleyBackend { spectre };
            let code = match clif_bounds::isa::pulley::compile(&func, &backend) {
                Ok(code) => code,
                // pulley64 has no i8/i16 shifts, rotates or bit counts (yet): said below.
                Err(e) if e.message.contains("no operation for type i") => {
                    pulley_skipped += 1;
                    continue;
                }
                Err(e) => panic!("pulley64: {e}\n{text}"),
            };
            let image = clif_bounds::isa::pulley::run::PulleyImage::link(vec![("%f".into(), code)])
                .unwrap();
            let mut vm = clif_bounds::isa::pulley::run::fresh_vm().unwrap();
            backends.push((
                "pulley64".into(),
                Box::new(move |args| {
                    use clif_bounds::isa::pulley::run::Exit;
                    let mut no_host = |n: &str, _: &mut pulley_interpreter::interp::Vm| {
                        Err(format!("no host function {n}"))
                    };
                    match image
                        .call(&mut vm, "%f", args, &rets, &mut no_host)
                        .unwrap()
                    {
                        Exit::Returned(v) => Outcome::Returned(v),
                        Exit::Trapped(code) => Outcome::Trapped(trap(code)),
                    }
                }),
            ));
        }
        for _ in 0..8 {
            let pick = |rng: &mut Rng| {
                if rng.next().is_multiple_of(2) {
                    rng.pick(&EDGES)
                } else {
                    rng.next()
                }
            };
            let args = i64s([pick(&mut rng), pick(&mut rng), pick(&mut rng)]);
            let mut interp = Interpreter::new([&func], types::I64);
            let want = interp.call("%f", &args).unwrap();
            for (who, run) in &mut backends {
                points += 1;
                let got = run(&args);
                let same = match (&want, &got) {
                    (Outcome::Returned(a), Outcome::Returned(b)) => a[0].bits == b[0].bits,
                    (Outcome::Trapped(a), Outcome::Trapped(b)) => a.code == b.code,
                    _ => false,
                };
                if !same {
                    disagreements.push(format!(
                        "{who}, args {:x?}: interpreter {}, backend {}\n{text}",
                        args.map(|a| a.bits),
                        show(&want),
                        show(&got)
                    ));
                }
            }
        }
    }
    println!(
        "random arithmetic: {points} points, {} disagreements",
        disagreements.len()
    );
    if pulley_skipped > 0 {
        println!(
            "SKIPPED on pulley64 only: {pulley_skipped} compilations that need an i8/i16 shift, rotate or bit count, which the pulley64 backend does not lower yet"
        );
    }
    assert!(
        disagreements.is_empty(),
        "{}",
        disagreements[..disagreements.len().min(3)].join("\n")
    );
}

fn trap(code: clif_bounds::ir::TrapCode) -> clif_bounds::interpreter::Trap {
    clif_bounds::interpreter::Trap {
        code,
        location: String::new(),
    }
}
