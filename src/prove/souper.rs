//! Souper IR export of the proven legalized checks (`clif-bounds prove --souper DIR`).
//!
//! For each expansion whose checks trap exactly when the instruction does (cases E, F, H
//! and I with `trapnz`, no Spectre select), two files are written through the `souper-ir`
//! crate:
//!
//! - `NNN.opt`, a candidate: the exploded check, `meta/`'s trap condition
//!   ([`crate::semantics::OUT_OF_BOUNDS_SOUPER`]), the declaration's facts and the access's
//!   offset and size as ranges of the inputs, and `cand <exploded> <meta>`: the equivalence
//!   z3 proved, for Souper to check or to use;
//! - `NNN.lhs`, the exploded check alone as a harvested left-hand side (`infer`), for
//!   Souper's synthesis to search for a cheaper form.
//!
//! Souper has no memory, traps or `ugt`/`uge`: the trap condition is the disjunction of the
//! checks' conditions (`uadd_overflow_trap` becomes `uadd.with.overflow` and its carry), and
//! `a > b` is written `ult b, a`.

use crate::ir::{Function, InstructionData, IntCC, Opcode, Value};
use std::collections::HashMap;

/// What an exported check is about.
pub struct Facts {
    /// Which configuration (a comment in each file).
    pub name: String,
    /// The legalized function, and its parameters holding the bound and the index.
    pub bound: Value,
    /// The index parameter.
    pub index: Value,
    /// The access's offset and size, and the range of the bound.
    pub offset: u64,
    /// Bytes accessed.
    pub size: u64,
    /// The declaration's smallest bound.
    pub min: u64,
    /// Its largest bound.
    pub max_bound: u128,
    /// A constant bound, if the bound operand is one.
    pub const_bound: Option<u64>,
}

/// A candidate and a left-hand side, as Souper text written by `souper-ir`.
pub struct Export {
    /// `cand exploded meta`, with path conditions.
    pub cand: String,
    /// `infer exploded`, with path conditions.
    pub lhs: String,
}

/// The Souper type of a CLIF integer value (comparison results are `i1` in Souper).
fn ty(func: &Function, v: Value) -> String {
    format!("i{}", func.dfg.value_type(v).bits())
}

/// The Souper export of `func`'s checks, or `None` when it has none or uses an opcode this
/// translation does not know (then there is nothing exact to export).
pub fn export(func: &Function, facts: &Facts) -> Result<Option<Export>, String> {
    let entry = func.layout.entry_block().ok_or("no entry block")?;
    let mut env: HashMap<Value, String> = HashMap::new();
    let mut head = vec![format!("; {}", facts.name)];
    // The declaration's facts are ranges on the inputs (`souper-ir` prints only what the
    // root depends on, so path conditions would be lost; attributes stay with their var).
    // A range is `[lo, hi)` in the value's width, wrapping as LLVM's constant ranges do.
    let range = |lo: u128, hi: u128, bits: u32| {
        let top = 1u128 << bits;
        match (lo, hi) {
            (0, h) if h >= top => String::new(),
            (l, h) => format!(" (range=[{l},{}))", h % top),
        }
    };
    let (lo, hi) = match facts.const_bound {
        Some(b) => (u128::from(b), u128::from(b) + 1),
        None => (u128::from(facts.min), facts.max_bound + 1),
    };
    for (v, name, (lo, hi)) in [
        (facts.index, "index", (0, u128::MAX)),
        (facts.bound, "bound", (lo, hi)),
    ] {
        let bits = func.dfg.value_type(v).bits();
        let range = range(lo, hi, bits);
        if bits == 64 {
            head.push(format!("%{name}:i64 = var{range}"));
            env.insert(v, format!("%{name}"));
        } else {
            head.push(format!("%{name}{}:i{bits} = var{range}", v.as_u32()));
            head.push(format!("%{name}:i64 = zext %{name}{}", v.as_u32()));
            env.insert(v, format!("%{name}{}", v.as_u32()));
        }
    }
    for (name, x) in [("offset", facts.offset), ("access_size", facts.size)] {
        let x = u128::from(x);
        head.push(format!("%{name}:i64 = var{}", range(x, x + 1, 64)));
    }
    let mut body = Vec::new();
    let mut traps = Vec::new();
    for &inst in func.layout.block_insts(entry) {
        let data = &func.dfg.insts[inst];
        // Only the check's data flow: instructions of the address and the access read the
        // base, which the check never does.
        if !data.arguments().iter().all(|a| env.contains_key(a)) {
            continue;
        }
        let arg = |i: usize| env[&data.arguments()[i]].clone();
        let result = func.dfg.inst_results(inst).first().copied();
        let name = result.map(|r| format!("%v{}", r.as_u32()));
        let rhs = match (data, data.opcode()) {
            (InstructionData::UnaryImm { imm, .. }, Opcode::Iconst) => {
                let r = result.ok_or("iconst without a result")?;
                let bits = func.dfg.value_type(r).bits();
                let x = (imm.0 as u64) & (u64::MAX >> (64 - bits));
                env.insert(r, format!("{x}:i{bits}"));
                continue;
            }
            (_, Opcode::Uextend) => format!("zext {}", arg(0)),
            (_, Opcode::Ireduce) => format!("trunc {}", arg(0)),
            (_, Opcode::Iadd) => format!("add {}, {}", arg(0), arg(1)),
            (_, Opcode::Isub) => format!("sub {}, {}", arg(0), arg(1)),
            (InstructionData::IntCompare { cond, .. }, _) => {
                let (a, b) = (arg(0), arg(1));
                let rhs = match cond {
                    IntCC::UnsignedGreaterThan => format!("ult {b}, {a}"),
                    IntCC::UnsignedGreaterThanOrEqual => format!("ule {b}, {a}"),
                    IntCC::UnsignedLessThan => format!("ult {a}, {b}"),
                    IntCC::UnsignedLessThanOrEqual => format!("ule {a}, {b}"),
                    _ => return Ok(None),
                };
                let n = name.ok_or("icmp without a result")?;
                body.push(format!("{n}:i1 = {rhs}"));
                env.insert(result.ok_or("icmp without a result")?, n);
                continue;
            }
            (_, Opcode::Trapnz) => {
                traps.push(arg(0));
                continue;
            }
            (_, Opcode::UaddOverflowTrap) => {
                let r = result.ok_or("uadd_overflow_trap without a result")?;
                let n = format!("%v{}", r.as_u32());
                body.push(format!("{n}o = uadd.with.overflow {}, {}", arg(0), arg(1)));
                body.push(format!("{n}:{} = extractvalue {n}o, 0:i32", ty(func, r)));
                body.push(format!("{n}c:i1 = extractvalue {n}o, 1:i32"));
                traps.push(format!("{n}c"));
                env.insert(r, n);
                continue;
            }
            (_, Opcode::Return) => continue,
            _ => return Ok(None),
        };
        let r = result.ok_or("an operation without a result")?;
        let n = name.ok_or("an operation without a result")?;
        body.push(format!("{n}:{} = {rhs}", ty(func, r)));
        env.insert(r, n);
    }
    let Some(mut trap) = traps.first().cloned() else {
        return Ok(None);
    };
    for (i, t) in traps.iter().enumerate().skip(1) {
        body.push(format!("%trap{i}:i1 = or {trap}, {t}"));
        trap = format!("%trap{i}");
    }
    let statements = head
        .iter()
        .chain(&body)
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    let meta = crate::semantics::OUT_OF_BOUNDS_SOUPER;
    let oob = meta
        .lines()
        .last()
        .and_then(|l| l.split(':').next())
        .ok_or("meta's Souper condition is empty")?;
    let cand = format!("{statements}\n{meta}\ncand {trap} {oob}\n");
    let lhs = format!("{statements}\ninfer {trap}\n");
    // Written through souper-ir: parsed, then printed by it.
    let cand = souper_ir::parse::parse_replacements_str(&cand, None)
        .map_err(|e| format!("{e}\n{cand}"))?
        .iter()
        .map(|r| r.to_string())
        .collect::<String>();
    let lhs = souper_ir::parse::parse_left_hand_sides_str(&lhs, None)
        .map_err(|e| format!("{e}\n{lhs}"))?
        .iter()
        .map(|r| r.to_string())
        .collect::<String>();
    Ok(Some(Export {
        cand: format!("; {}\n{cand}", facts.name),
        lhs: format!("; {}\n{lhs}", facts.name),
    }))
}

/// Writes each distinct export into `dir` as `NNN.opt` and `NNN.lhs`; returns how many.
pub fn write<'e>(
    dir: &std::path::Path,
    exports: impl Iterator<Item = &'e Export>,
) -> std::io::Result<usize> {
    std::fs::create_dir_all(dir)?;
    // Configurations that differ only where the check does not look (the memory's guard,
    // say) give the same Souper: one file each.
    let mut seen = std::collections::HashSet::new();
    let mut n = 0;
    for e in exports {
        let body = |t: &str| t.lines().skip(1).collect::<Vec<_>>().join("\n");
        if !seen.insert(body(&e.cand)) {
            continue;
        }
        std::fs::write(dir.join(format!("{n:03}.opt")), &e.cand)?;
        std::fs::write(dir.join(format!("{n:03}.lhs")), &e.lhs)?;
        n += 1;
    }
    Ok(n)
}

/// Reads back every `.opt` and `.lhs` file in `dir` with `souper-ir` and checks that printing
/// what it parsed gives the file again (after the first line, a comment); returns how many
/// files were checked.
pub fn check_round_trip(dir: &std::path::Path) -> Result<usize, String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("opt" | "lhs")))
        .collect();
    names.sort();
    for path in &names {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let printed: String = if path.extension().is_some_and(|e| e == "opt") {
            souper_ir::parse::parse_replacements_file(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .iter()
                .map(|r| r.to_string())
                .collect()
        } else {
            souper_ir::parse::parse_left_hand_sides_file(path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .iter()
                .map(|r| r.to_string())
                .collect()
        };
        let body = text.split_once('\n').map_or("", |(_, b)| b);
        if printed != body {
            return Err(format!(
                "{}: souper-ir prints it back differently:\n{printed}",
                path.display()
            ));
        }
    }
    Ok(names.len())
}
