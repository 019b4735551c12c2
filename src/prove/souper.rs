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
use clif_bounds_verifier::smt::Obligation;
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

/// The obligation that the candidate `export.cand` states, read back with `souper-ir` and
/// given Souper's meaning: its variables with their `range` attributes as premises, and
/// `cand lhs rhs` as the claim `lhs = rhs`. What z3 proved of the legalized CLIF implies it,
/// but this proves the text a Souper user reads, so a translation slip in the export (an
/// operand order, a range off by one) is refuted here rather than shipped.
pub fn obligation(export: &Export) -> Result<Obligation, String> {
    use souper_ir::ast::{
        AssignmentRhs, Attribute, Instruction as I, Operand, Replacement, Statement,
    };
    let body = export.cand.split_once('\n').map_or("", |(_, b)| b);
    let name = export
        .cand
        .lines()
        .next()
        .unwrap_or("")
        .trim_start_matches("; ");
    let replacements = souper_ir::parse::parse_replacements_str(body, None)
        .map_err(|e| format!("{name}: souper-ir cannot read the candidate: {e}"))?;
    let [Replacement::Cand { statements, cand }] = &replacements[..] else {
        return Err(format!("{name}: expected one `cand` replacement"));
    };
    // Each value as an SMT term and its width; `uadd.with.overflow` gives a pair.
    enum Val {
        Bits(String, u32),
        Pair(String, String, u32),
    }
    let mut vals: HashMap<souper_ir::ast::Id<Statement>, Val> = HashMap::new();
    let mut vars = Vec::new();
    let mut premises = Vec::new();
    let lit = |value: i128, bits: u32| {
        let mask = u128::MAX >> (128 - bits);
        format!("(_ bv{} {bits})", (value as u128) & mask)
    };
    let bool_bv = |t: String| format!("(ite {t} #b1 #b0)");
    for (id, s) in statements.iter() {
        let Statement::Assignment(a) = s else {
            return Err(format!(
                "{name}: a path condition, which the export never writes"
            ));
        };
        let width = a.r#type.map(|t| u32::from(t.width));
        let operand = |o: &Operand, want: Option<u32>| -> Result<(String, u32), String> {
            match o {
                Operand::Value(v) => match vals.get(&souper_ir::ast::Id::from(*v)) {
                    Some(Val::Bits(t, w)) => Ok((t.clone(), *w)),
                    _ => Err(format!(
                        "{name}: `{}` uses a value that is not a bit-vector",
                        a.name
                    )),
                },
                Operand::Constant(c) => {
                    let w = c
                        .r#type
                        .map(|t| u32::from(t.width))
                        .or(want)
                        .ok_or_else(|| {
                            format!("{name}: `{}` has a constant of no known width", a.name)
                        })?;
                    Ok((lit(c.value, w), w))
                }
            }
        };
        let need = |w: Option<u32>| w.ok_or_else(|| format!("{name}: `{}` has no type", a.name));
        let val = match &a.value {
            AssignmentRhs::Var => {
                let w = need(width)?;
                let v = a.name.trim_start_matches('%').to_string();
                for attr in &a.attributes {
                    if let Attribute::Range(lo, hi) = attr {
                        // LLVM's constant range: `[lo, hi)`, wrapping when `lo > hi`; equal
                        // ends are not a range LLVM accepts.
                        if lo == hi {
                            return Err(format!(
                                "{name}: `{}` has the empty range [{lo},{hi})",
                                a.name
                            ));
                        }
                        let (lo, hi) = (lit(*lo, w), lit(*hi, w));
                        premises.push(format!(
                            "(ite (bvule {lo} {hi}) (and (bvule {lo} {v}) (bvult {v} {hi})) (or (bvule {lo} {v}) (bvult {v} {hi})))"
                        ));
                    }
                }
                vars.push((v.clone(), w));
                Val::Bits(v, w)
            }
            AssignmentRhs::Instruction(i) => {
                let bin = |op: &str, x: &Operand, y: &Operand| -> Result<Val, String> {
                    let (x, w) = operand(x, width)?;
                    let (y, wy) = operand(y, Some(w))?;
                    if w != wy {
                        return Err(format!("{name}: `{}` mixes i{w} and i{wy}", a.name));
                    }
                    Ok(Val::Bits(format!("({op} {x} {y})"), w))
                };
                let cmp = |op: &str, x: &Operand, y: &Operand| -> Result<Val, String> {
                    // A comparison's width is its operands': an untyped constant takes the
                    // other's.
                    let (x, y) = match (operand(x, None), operand(y, None)) {
                        (Ok(x), Ok(y)) => (x, y),
                        (Ok(x), Err(_)) => {
                            let y = operand(y, Some(x.1))?;
                            (x, y)
                        }
                        (Err(_), Ok(y)) => (operand(x, Some(y.1))?, y),
                        (Err(e), Err(_)) => return Err(e),
                    };
                    Ok(Val::Bits(bool_bv(format!("({op} {} {})", x.0, y.0)), 1))
                };
                match i {
                    I::Add { a: x, b: y } => bin("bvadd", x, y)?,
                    I::Sub { a: x, b: y } => bin("bvsub", x, y)?,
                    I::Or { a: x, b: y } => bin("bvor", x, y)?,
                    I::Ult { a: x, b: y } => cmp("bvult", x, y)?,
                    I::Ule { a: x, b: y } => cmp("bvule", x, y)?,
                    I::Zext { a: x } => {
                        let w = need(width)?;
                        let (x, from) = operand(x, None)?;
                        if from > w {
                            return Err(format!("{name}: `{}` extends i{from} to i{w}", a.name));
                        }
                        Val::Bits(format!("((_ zero_extend {}) {x})", w - from), w)
                    }
                    I::Trunc { a: x } => {
                        let w = need(width)?;
                        let (x, from) = operand(x, None)?;
                        if from < w {
                            return Err(format!("{name}: `{}` truncates i{from} to i{w}", a.name));
                        }
                        Val::Bits(format!("((_ extract {} 0) {x})", w - 1), w)
                    }
                    I::UaddWithOverflow { a: x, b: y } => {
                        let (x, w) = operand(x, None)?;
                        let (y, _) = operand(y, Some(w))?;
                        let carry = format!(
                            "((_ extract {w} {w}) (bvadd ((_ zero_extend 1) {x}) ((_ zero_extend 1) {y})))"
                        );
                        Val::Pair(format!("(bvadd {x} {y})"), carry, w)
                    }
                    I::ExtractValue {
                        a: Operand::Value(v),
                        b: Operand::Constant(c),
                    } => match (vals.get(&souper_ir::ast::Id::from(*v)), c.value) {
                        (Some(Val::Pair(sum, _, w)), 0) => Val::Bits(sum.clone(), *w),
                        (Some(Val::Pair(_, carry, _)), 1) => Val::Bits(carry.clone(), 1),
                        _ => {
                            return Err(format!("{name}: `{}` extracts no value of a pair", a.name))
                        }
                    },
                    other => {
                        return Err(format!(
                            "{name}: `{}`: this translation does not know `{other:?}`",
                            a.name
                        ))
                    }
                }
            }
            other => return Err(format!("{name}: `{}`: no meaning for {other:?}", a.name)),
        };
        if let (Val::Bits(_, w), Some(t)) = (&val, width) {
            if *w != t {
                return Err(format!(
                    "{name}: `{}` is typed i{t} but computes i{w}",
                    a.name
                ));
            }
        }
        vals.insert(id, val);
    }
    let side = |o: &Operand| match o {
        Operand::Value(v) => match vals.get(&souper_ir::ast::Id::from(*v)) {
            Some(Val::Bits(t, w)) => Ok((t.clone(), *w)),
            _ => Err(format!(
                "{name}: `cand` names a value that is not a bit-vector"
            )),
        },
        Operand::Constant(_) => Err(format!(
            "{name}: `cand` of a constant, which the export never writes"
        )),
    };
    let ((lhs, lw), (rhs, rw)) = (side(&cand.lhs)?, side(&cand.rhs)?);
    if lw != rw {
        return Err(format!("{name}: `cand` of i{lw} and i{rw}"));
    }
    Ok(Obligation {
        name: format!("Souper candidate as written: {name}"),
        vars,
        premises,
        claim: format!("(= {lhs} {rhs})"),
        steps: Vec::new(),
    })
}

/// One obligation per distinct candidate of `exports` (as [`write`] writes them).
pub fn obligations<'e>(
    exports: impl Iterator<Item = &'e Export>,
) -> Result<Vec<Obligation>, String> {
    let mut seen = std::collections::HashSet::new();
    exports
        .filter(|e| seen.insert(e.cand.lines().skip(1).collect::<Vec<_>>().join("\n")))
        .map(obligation)
        .collect()
}
