//! The instruction equals its legalized form: for each configuration the legalizer is given
//! (target, Spectre setting, memory declaration, index type, offset, access), the CLIF that
//! [`crate::legalize`] really emits is evaluated symbolically, over every base, bound, index,
//! stored value and memory content, and z3 shows that
//!
//! - when `meta/`'s trap condition holds, the expansion traps, with the instruction's trap
//!   code: by one of its checks (`trapnz`, `uadd_overflow_trap`), or by an access that faults
//!   where the target promises a fault (the null page, the base-register null check of
//!   Pulley's accesses, the memory's declared faulting range on native targets);
//! - otherwise it does not trap, accesses `meta/`'s effective address with the instruction's
//!   width, and loads (or stores) the instruction's value.
//!
//! The offset and the access are constants of each configuration (the legalizer's output
//! depends on them); the forms themselves are proven for every offset by [`super::obligations`].
//! What a CLIF instruction computes is written once, in [`Eval`], for the opcodes the
//! legalizer emits; any other opcode is a failed obligation, not a silent gap.

use super::souper::Export;
use super::{faulting_end, lit64, z128};
use crate::interpreter::{DataValue, Interpreter, Outcome};
use crate::ir::{
    types, Endianness, Function, Inst, InstructionData, MemFlags, Opcode, TrapCode, Type, Value,
};
use crate::legalize::{legalize_with, Case, Mutation, Settings};
use crate::semantics::{AccessKind, Extension, EFFECTIVE_ADDRESS_SMT, OUT_OF_BOUNDS_SMT};
use crate::target::{NullCheck, Target};
use clif_bounds_verifier::smt::Obligation;
use std::collections::HashMap;

/// One configuration of the legalizer: the CLIF of one access, and the settings.
struct Config {
    target: &'static Target,
    spectre: bool,
    /// The memory declaration, as written after `mem0 = memory `.
    memory: String,
    index: Type,
    /// `Some(c)`: the index is the constant `c`.
    const_index: Option<u64>,
    /// `Some(c)`: the bound is the constant `c`.
    const_bound: Option<u64>,
    offset: u64,
    ty: Type,
    kind: AccessKind,
    big: bool,
    store: bool,
}

impl Config {
    /// The function: `(base, bound, index[, value])`, one access of `mem0`.
    fn clif(&self) -> String {
        let p = self.target.pointer;
        let mut params = format!("{p}, {p}, {}", self.index);
        if self.store {
            params.push_str(&format!(", {}", self.ty));
        }
        let mut body = String::new();
        let bound = match self.const_bound {
            Some(c) => {
                body.push_str(&format!("    v10 = iconst.{p} {c:#x}\n"));
                "v10"
            }
            None => "v1",
        };
        let index = match self.const_index {
            Some(c) => {
                body.push_str(&format!("    v11 = iconst.{} {c:#x}\n", self.index));
                "v11"
            }
            None => "v2",
        };
        let order = if self.big { " big" } else { " little" };
        let (access, ret, sig_ret) = if self.store {
            (
                format!(
                    "bounds_checked_store {}{order} mem0 v3, v0, {bound}, {index}+{:#x}",
                    self.kind, self.offset
                ),
                "return",
                String::new(),
            )
        } else {
            (
                format!(
                    "v4 = bounds_checked_load.{} {}{order} mem0 v0, {bound}, {index}+{:#x}",
                    self.ty, self.kind, self.offset
                ),
                "return v4",
                format!(" -> {}", self.ty),
            )
        };
        let block_params: Vec<String> = params
            .split(", ")
            .enumerate()
            .map(|(i, t)| format!("v{i}: {t}"))
            .collect();
        format!(
            "function %f({params}){sig_ret} fast {{\n    mem0 = memory {}\n\nblock0({}):\n{body}    {access}\n    {ret}\n}}\n",
            self.memory,
            block_params.join(", ")
        )
    }

    fn describe(&self) -> String {
        let access = if self.store {
            format!("store.{}", self.ty)
        } else {
            format!("load.{}", self.ty)
        };
        let kind = match self.kind.text() {
            Some(k) => format!(" {k}"),
            None => String::new(),
        };
        let mut s = format!(
            "{}, spectre {}: {access}{kind} {}, {} index",
            self.target.name,
            if self.spectre { "on" } else { "off" },
            if self.big { "big" } else { "little" },
            self.index
        );
        if let Some(c) = self.const_index {
            s.push_str(&format!(" (constant {c:#x})"));
        }
        s.push_str(&format!(
            ", offset {:#x}, memory {}",
            self.offset, self.memory
        ));
        if let Some(c) = self.const_bound {
            s.push_str(&format!(" (bound constant {c:#x})"));
        }
        s
    }
}

fn lit(bits: u32, x: u128) -> String {
    format!("(_ bv{x} {bits})")
}

fn zext(t: &str, from: u32, to: u32) -> String {
    if from == to {
        t.to_string()
    } else {
        format!("((_ zero_extend {}) {t})", to - from)
    }
}

fn low(t: &str, from: u32, to: u32) -> String {
    if from == to {
        t.to_string()
    } else {
        format!("((_ extract {} 0) {t})", to - 1)
    }
}

/// The bytes of an `bits`-bit term in reverse order.
fn bswap(t: &str, bits: u32) -> String {
    if bits == 8 {
        return t.to_string();
    }
    let bytes: Vec<String> = (0..bits / 8)
        .map(|i| format!("((_ extract {} {}) {t})", 8 * i + 7, 8 * i))
        .collect();
    format!("(concat {})", bytes.join(" "))
}

/// What `n` bytes of memory mean as a value in byte order `order`. The bytes are the
/// variable `mem`, packed with the lowest address in the lowest bits. This is CLIF's memory
/// model, shared by the instruction and the loads and stores of its expansion.
fn bytes_as_value(order: Endianness, bits: u32) -> String {
    match order {
        Endianness::Little => "mem".to_string(),
        Endianness::Big => bswap("mem", bits),
    }
}

/// The bytes a store of the low `bits` of `v` in byte order `order` writes, packed as `mem`.
fn value_as_bytes(v: &str, order: Endianness, bits: u32) -> String {
    match order {
        Endianness::Little => v.to_string(),
        Endianness::Big => bswap(v, bits),
    }
}

/// The one memory access an expansion makes.
struct Accessed {
    /// The address register (pointer width) and the immediate offset.
    reg: String,
    offset: i32,
    bits: u32,
    flags: MemFlags,
    /// For a store, the bytes written (packed as `mem`).
    stored: Option<String>,
}

/// A symbolic evaluation of straight-line CLIF.
struct Eval<'f> {
    func: &'f Function,
    target: &'static Target,
    env: HashMap<Value, String>,
    /// Conditions under which a check traps, with its trap code.
    traps: Vec<(String, TrapCode)>,
    access: Option<Accessed>,
    /// Why the expansion cannot equal the instruction, whatever z3 says.
    wrong: Vec<String>,
}

impl Eval<'_> {
    fn bits(&self, v: Value) -> u32 {
        self.func.dfg.value_type(v).bits()
    }

    fn get(&self, v: Value) -> Result<String, String> {
        self.env
            .get(&v)
            .cloned()
            .ok_or_else(|| format!("{v} is used before it is defined"))
    }

    fn order(&self, flags: &MemFlags) -> Endianness {
        flags.endianness.unwrap_or(self.target.endianness)
    }

    /// Evaluates `inst`.
    fn step(&mut self, inst: Inst) -> Result<(), String> {
        let dfg = &self.func.dfg;
        let data = &dfg.insts[inst];
        let op = data.opcode();
        let result = dfg.inst_results(inst).first().copied();
        let out_bits = result.map_or(0, |r| self.bits(r));
        let bool8 = |c: String| format!("(ite {c} #x01 #x00)");
        let term = match (data, op) {
            (InstructionData::UnaryImm { imm, .. }, Opcode::Iconst) => Some(lit(
                out_bits,
                (imm.0 as u64 as u128) & ((1u128 << out_bits) - 1),
            )),
            (InstructionData::UnaryIeee32 { imm, .. }, _) => Some(lit(32, imm.0.into())),
            (InstructionData::UnaryIeee64 { imm, .. }, _) => Some(lit(64, imm.0.into())),
            (InstructionData::Unary { arg, .. }, _) => {
                let (a, from) = (self.get(*arg)?, self.bits(*arg));
                Some(match op {
                    Opcode::Uextend => zext(&a, from, out_bits),
                    Opcode::Sextend => format!("((_ sign_extend {}) {a})", out_bits - from),
                    Opcode::Ireduce => low(&a, from, out_bits),
                    Opcode::Bswap => bswap(&a, from),
                    _ => return Err(format!("no semantics for `{op}`")),
                })
            }
            // A bit pattern reinterpreted: the same bits (flags matter only for vectors).
            (InstructionData::LoadNoOffset { arg, .. }, Opcode::Bitcast) => Some(self.get(*arg)?),
            (InstructionData::Binary { args, .. }, _) => {
                let (a, b) = (self.get(args[0])?, self.get(args[1])?);
                Some(match op {
                    Opcode::Iadd => format!("(bvadd {a} {b})"),
                    Opcode::Isub => format!("(bvsub {a} {b})"),
                    _ => return Err(format!("no semantics for `{op}`")),
                })
            }
            (InstructionData::IntCompare { cond, args, .. }, _) => {
                let (a, b) = (self.get(args[0])?, self.get(args[1])?);
                use crate::ir::IntCC::*;
                let c = match cond {
                    Equal => format!("(= {a} {b})"),
                    NotEqual => format!("(not (= {a} {b}))"),
                    UnsignedGreaterThan => format!("(bvugt {a} {b})"),
                    UnsignedGreaterThanOrEqual => format!("(bvuge {a} {b})"),
                    UnsignedLessThan => format!("(bvult {a} {b})"),
                    UnsignedLessThanOrEqual => format!("(bvule {a} {b})"),
                    c => return Err(format!("no semantics for `icmp {c}`")),
                };
                Some(bool8(c))
            }
            (
                InstructionData::Ternary { args, .. },
                Opcode::Select | Opcode::SelectSpectreGuard,
            ) => {
                let (c, x, y) = (self.get(args[0])?, self.get(args[1])?, self.get(args[2])?);
                let w = self.bits(args[0]);
                Some(format!("(ite (= {c} {}) {y} {x})", lit(w, 0)))
            }
            (InstructionData::CondTrap { arg, code, .. }, Opcode::Trapnz | Opcode::Trapz) => {
                let (c, w) = (self.get(*arg)?, self.bits(*arg));
                let zero = format!("(= {c} {})", lit(w, 0));
                let cond = if op == Opcode::Trapz {
                    zero
                } else {
                    format!("(not {zero})")
                };
                self.traps.push((cond, *code));
                None
            }
            (InstructionData::IntAddTrap { args, code, .. }, Opcode::UaddOverflowTrap) => {
                let (a, b) = (self.get(args[0])?, self.get(args[1])?);
                let w = self.bits(args[0]);
                let wide = format!("(bvadd {} {})", zext(&a, w, w + 1), zext(&b, w, w + 1));
                self.traps
                    .push((format!("(= ((_ extract {w} {w}) {wide}) #b1)"), *code));
                Some(format!("(bvadd {a} {b})"))
            }
            (
                InstructionData::Load {
                    flags, arg, offset, ..
                },
                _,
            ) => {
                let bits = match op {
                    Opcode::Load => out_bits,
                    Opcode::Uload8 | Opcode::Sload8 => 8,
                    Opcode::Uload16 | Opcode::Sload16 => 16,
                    Opcode::Uload32 | Opcode::Sload32 => 32,
                    _ => return Err(format!("no semantics for `{op}`")),
                };
                let raw = bytes_as_value(self.order(flags), bits);
                let value = match op {
                    Opcode::Sload8 | Opcode::Sload16 | Opcode::Sload32 => {
                        format!("((_ sign_extend {}) {raw})", out_bits - bits)
                    }
                    _ => zext(&raw, bits, out_bits),
                };
                self.accessed(Accessed {
                    reg: self.get(*arg)?,
                    offset: offset.0,
                    bits,
                    flags: *flags,
                    stored: None,
                })?;
                Some(value)
            }
            (
                InstructionData::Store {
                    flags,
                    args,
                    offset,
                    ..
                },
                _,
            ) => {
                let (v, w) = (self.get(args[0])?, self.bits(args[0]));
                let bits = match op {
                    Opcode::Store => w,
                    Opcode::Istore8 => 8,
                    Opcode::Istore16 => 16,
                    Opcode::Istore32 => 32,
                    _ => return Err(format!("no semantics for `{op}`")),
                };
                let stored = value_as_bytes(&low(&v, w, bits), self.order(flags), bits);
                self.accessed(Accessed {
                    reg: self.get(args[1])?,
                    offset: offset.0,
                    bits,
                    flags: *flags,
                    stored: Some(stored),
                })?;
                None
            }
            (_, Opcode::Return) => None,
            _ => return Err(format!("no semantics for `{op}`")),
        };
        if let (Some(r), Some(t)) = (result, term) {
            self.env.insert(r, t);
        }
        Ok(())
    }

    fn accessed(&mut self, a: Accessed) -> Result<(), String> {
        if self.access.is_some() {
            return Err("the expansion accesses memory twice".into());
        }
        self.access = Some(a);
        Ok(())
    }
}

/// Why a configuration has no obligation.
enum NoObligation {
    /// The IR verifier rejects its CLIF (an access kind that does not fit the type).
    Invalid(String),
    /// It cannot be evaluated (the expansion uses an opcode [`Eval`] has no semantics for).
    Failed(String),
}

impl From<String> for NoObligation {
    fn from(e: String) -> Self {
        NoObligation::Failed(e)
    }
}

impl From<&str> for NoObligation {
    fn from(e: &str) -> Self {
        NoObligation::Failed(e.to_string())
    }
}

/// One configuration's obligation, the case the legalizer chose, the Souper export of the
/// check, and the function before and after legalization.
struct Built {
    obligation: Obligation,
    case: Case,
    souper: Option<Export>,
    original: Function,
    legalized: Function,
}

/// The obligation of one configuration, legalized with `mutation` (a deliberately wrong
/// legalizer, for `prove --broken`).
fn obligation(c: &Config, mutation: Option<Mutation>) -> Result<Built, NoObligation> {
    let text = c.clif();
    let mut func =
        crate::parser::parse_function(&text).map_err(|e| NoObligation::Invalid(format!("{e}")))?;
    crate::ir_verifier::verify_function(&func, c.target.pointer).map_err(|d| {
        let msgs: Vec<String> = d.iter().map(|d| d.message.clone()).collect();
        NoObligation::Invalid(msgs.join("; "))
    })?;
    let entry = func.layout.entry_block().ok_or("no entry block")?;
    let original = *func
        .layout
        .block_insts(entry)
        .iter()
        .find(|&&i| func.dfg.insts[i].bounds_checked_access().is_some())
        .ok_or("no access")?;
    let parts = func.dfg.insts[original]
        .bounds_checked_access()
        .ok_or("no access")?;
    let mem = func.memories[parts.memory];
    let ty = func.dfg.ctrl_type(original);
    let result = func.dfg.inst_results(original).first().copied();
    let settings = Settings {
        target: *c.target,
        spectre: c.spectre,
    };
    let original = func.clone();
    let case = legalize_with(&mut func, &settings, mutation)
        .first()
        .map(|&(_, case)| case)
        .ok_or("the legalizer expanded nothing")?;

    let pw = c.target.pointer.bits();
    let iw = c.index.bits();
    let max_pw = (1u128 << pw) - 1;
    let max_bound = mem.max_bound(c.target.pointer).min(max_pw);
    let entry_params = func.dfg.block_params(entry).to_vec();
    // Only checks that trap exactly when the instruction does are an equivalence.
    let souper = match case {
        Case::E | Case::F | Case::H | Case::I if !c.spectre => super::souper::export(
            &func,
            &super::souper::Facts {
                name: c.describe(),
                bound: entry_params[1],
                index: entry_params[2],
                offset: c.offset,
                size: u64::from(parts.access.access_size(ty)),
                min: mem.min,
                max_bound,
                const_bound: c.const_bound,
            },
        )?,
        _ => None,
    };
    let size = u64::from(parts.access.access_size(ty));
    let bits = size as u32 * 8;
    let code = parts.trap_code();
    let order = parts.flags.endianness.unwrap_or(c.target.endianness);

    // meta's variables are 64-bit; the function's parameters are their low bits.
    let mut vars: Vec<(String, u32)> = ["base", "bound", "index", "offset", "access_size"]
        .iter()
        .map(|v| (v.to_string(), 64))
        .collect();
    vars.push(("mem".into(), bits));
    vars.push(("guard".into(), 64));
    let mut premises = vec![
        format!("(= offset {})", lit64(c.offset)),
        format!("(= access_size {})", lit64(size)),
        format!("(bvule base {})", lit(64, max_pw)),
        format!("(bvuge bound {})", lit64(mem.min)),
        format!("(bvule bound {})", lit(64, max_bound)),
        format!("(bvule index {})", lit(64, (1u128 << iw) - 1)),
        format!("(= guard {})", lit64(mem.guard)),
    ];
    let reservation = mem.reservation.is_some();
    if let Some(r) = mem.reservation {
        vars.push(("reservation".into(), 64));
        premises.push(format!("(= reservation {})", lit64(r)));
    }
    if let Some(b) = c.const_bound {
        premises.push(format!("(= bound {})", lit64(b)));
    }
    if let Some(i) = c.const_index {
        premises.push(format!("(= index {})", lit64(i)));
    }
    // The memory and its faulting range lie in the address space, clear of the null page.
    let reach = match c.target.null_check {
        NullCheck::Unmapped { reach } => reach,
        NullCheck::BaseRegister => 1,
    };
    premises.push(format!("(bvuge base {})", lit64(reach)));
    premises.push(format!(
        "(bvule (bvadd {} {}) {})",
        z128("base"),
        faulting_end("bound", reservation),
        lit(128, max_pw + 1)
    ));

    let mut eval = Eval {
        func: &func,
        target: c.target,
        env: HashMap::new(),
        traps: Vec::new(),
        access: None,
        wrong: Vec::new(),
    };
    let params = func.dfg.block_params(entry).to_vec();
    eval.env.insert(params[0], low("base", 64, pw));
    eval.env.insert(params[1], low("bound", 64, pw));
    eval.env.insert(params[2], low("index", 64, iw));
    if c.store {
        vars.push(("value".into(), ty.bits()));
        eval.env.insert(params[3], "value".into());
    }
    for &inst in func.layout.block_insts(entry) {
        eval.step(inst)?;
    }
    for (_, t) in &eval.traps {
        if *t != code {
            eval.wrong.push(format!(
                "a check traps with {t}, the instruction with {code}"
            ));
        }
    }
    let checks = match eval.traps.len() {
        0 => "false".to_string(),
        _ => format!(
            "(or false {})",
            eval.traps
                .iter()
                .map(|(t, _)| t.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ),
    };
    let oob = OUT_OF_BOUNDS_SMT;
    let ea = low(EFFECTIVE_ADDRESS_SMT, 64, pw);
    let claim = match &eval.access {
        // No access: the expansion must always trap.
        None => format!("(=> (not {oob}) false)"),
        Some(a) => {
            if a.bits != bits {
                eval.wrong.push(format!(
                    "the expansion accesses {} bytes, the instruction {size}",
                    a.bits / 8
                ));
            }
            // The address of the first byte, and the end, exact.
            let addr = format!(
                "(bvadd {} {})",
                a.reg,
                lit(pw, (a.offset as i64 as u128) & max_pw)
            );
            let end = format!(
                "(bvadd {} {})",
                zext(&a.reg, pw, 128),
                lit(128, (a.offset as i64 as i128 as u128) + u128::from(size))
            );
            let may_fault = a.flags.trap_code == Some(code);
            let foreign = a.flags.endianness.is_some_and(|o| o != c.target.endianness);
            let null_fault = match c.target.null_check {
                _ if !may_fault => "false".to_string(),
                NullCheck::Unmapped { reach } => {
                    format!("(bvule {end} {})", lit(128, reach.into()))
                }
                NullCheck::BaseRegister if !foreign => format!("(= {} {})", a.reg, lit(pw, 0)),
                NullCheck::BaseRegister => "false".to_string(),
            };
            let range_fault = if may_fault && c.target.faulting_ranges_trap() {
                format!(
                    "(and (bvugt {end} (bvadd {} {})) (bvule {end} (bvadd {} {})))",
                    z128("base"),
                    z128("bound"),
                    z128("base"),
                    faulting_end("bound", reservation)
                )
            } else {
                "false".to_string()
            };
            let same = match (&a.stored, result) {
                (Some(stored), _) => {
                    let v = low("value", ty.bits(), bits);
                    format!("(= {stored} {})", value_as_bytes(&v, order, bits))
                }
                (None, Some(r)) => {
                    let raw = bytes_as_value(order, bits);
                    let want = match parts.access.extension() {
                        Extension::Sign => {
                            format!("((_ sign_extend {}) {raw})", ty.bits() - bits)
                        }
                        _ => zext(&raw, bits, ty.bits()),
                    };
                    format!("(= {} {want})", eval.get(r)?)
                }
                (None, None) => return Err("a load without a result".into()),
            };
            format!(
                "(and (=> {oob} (or {checks} {null_fault} {range_fault})) (=> (not {oob}) (and (not {checks}) (= {addr} {ea}) {same})))"
            )
        }
    };
    let claim = match eval.wrong.is_empty() {
        true => claim,
        false => "false".to_string(),
    };
    let mut name = format!("legalized, case {case}: {}", c.describe());
    if !eval.wrong.is_empty() {
        name.push_str(&format!(" [{}]", eval.wrong.join("; ")));
    }
    let obligation = Obligation {
        name,
        vars,
        premises,
        claim,
        steps: Vec::new(),
    };
    Ok(Built {
        obligation,
        case,
        souper,
        original,
        legalized: func,
    })
}

/// The memories of a 32-bit host (smaller, to fit its address space with their guards).
const MEMORIES_32: &[(&str, Type)] = &[
    (
        "index i32, min 0x10000, max 0x4000_0000, reservation 0x4000_0000, guard 0x1000_0000",
        types::I32,
    ),
    (
        "index i32, min 0, max 0x4000_0000, guard 0x10000",
        types::I32,
    ),
    ("index i32, min 0, max 0x8000_0000, guard 0", types::I32),
    (
        "index i32, min 0x10000, max 0x8000_0000, guard 0",
        types::I32,
    ),
    ("index i32, min 0x10000, max 0x10000, guard 0", types::I32),
    ("index i64, min 0, max 0x8000_0000, guard 0", types::I64),
    (
        "index i64, min 0x10000, max 0x4000_0000, guard 0x10000",
        types::I64,
    ),
];

const MEMORIES: &[(&str, Type)] = &[
    // Wasmtime's 64-bit default: 4 GiB reserved, 2 GiB guard.
    (
        "index i32, min 0x10000, max 0x1_0000_0000, reservation 0x1_0000_0000, guard 0x8000_0000",
        types::I32,
    ),
    // Dynamic, with a guard; without one; with a minimum size.
    (
        "index i32, min 0, max 0x1_0000_0000, guard 0x10000",
        types::I32,
    ),
    ("index i32, min 0, max 0x1_0000_0000, guard 0", types::I32),
    (
        "index i32, min 0x10000, max 0x1_0000_0000, guard 0",
        types::I32,
    ),
    // A small fixed-size memory.
    ("index i32, min 0x10000, max 0x10000, guard 0", types::I32),
    // memory64.
    ("index i64, min 0, guard 0", types::I64),
    (
        "index i64, min 0x10000, max 0x1_0000_0000_0000, guard 0x10000",
        types::I64,
    ),
];

const OFFSETS: &[u64] = &[
    0,
    0x10,
    0xfff0,
    0x7fff_fff0,
    0x8000_0000,
    0xffff_fff0,
    0x1_0000_0000,
    0xffff_ffff_ffff_fff0,
];

/// The configurations of the bounds checks: every target kind, both Spectre settings, the
/// memories and offsets above (which between them make the legalizer choose every case), a
/// constant index and a constant bound; 1-, 4- and 8-byte loads.
fn check_configs() -> Vec<Config> {
    let targets = ["x86_64", "pulley64", "pulley32"];
    let mut out = Vec::new();
    for t in targets {
        let target = Target::lookup(t).expect("a known target");
        for spectre in [false, true] {
            let cfg = |memory: &str, index, offset, ty| Config {
                target,
                spectre,
                memory: memory.to_string(),
                index,
                const_index: None,
                const_bound: None,
                offset,
                ty,
                kind: AccessKind::Full,
                big: false,
                store: false,
            };
            let memories = match target.pointer.bits() {
                32 => MEMORIES_32,
                _ => MEMORIES,
            };
            for &(memory, index) in memories {
                for &offset in OFFSETS {
                    out.push(cfg(memory, index, offset, types::I32));
                }
                out.push(cfg(memory, index, 0, types::I8));
                out.push(cfg(memory, index, 0x10, types::I64));
            }
            let small = "index i32, min 0x10000, max 0x1_0000_0000, guard 0";
            out.push(Config {
                const_index: Some(0x100),
                ..cfg(small, types::I32, 0x10, types::I32)
            });
            out.push(Config {
                const_bound: Some(0x20000),
                ..cfg(small, types::I32, 0x10, types::I32)
            });
            out.push(Config {
                const_bound: Some(0x10000),
                ..cfg(small, types::I32, 0x1_0000, types::I32)
            });
        }
    }
    out
}

/// The configurations of the values moved: every access kind of every type, both byte
/// orders, loads and stores, on a target that swaps foreign orders (x86_64), one that
/// accesses both orders (pulley64), and a big-endian one (s390x). The index is a constant
/// in bounds (case D), so that these obligations are about the bytes moved.
fn value_configs() -> Vec<Config> {
    let mut out = Vec::new();
    for t in ["x86_64", "pulley64", "s390x"] {
        let target = Target::lookup(t).expect("a known target");
        for store in [false, true] {
            for ty in [
                types::I8,
                types::I16,
                types::I32,
                types::I64,
                types::F32,
                types::F64,
            ] {
                for &kind in AccessKind::ALL {
                    for big in [false, true] {
                        out.push(Config {
                            target,
                            spectre: false,
                            memory: "index i32, min 0x10000, max 0x1_0000_0000, guard 0".into(),
                            index: types::I32,
                            // The checks are the check configurations' part; a constant
                            // index keeps these obligations about the bytes.
                            const_index: Some(0x100),
                            const_bound: None,
                            offset: 0x10,
                            ty,
                            kind,
                            big,
                            store,
                        });
                    }
                }
            }
        }
    }
    out
}

/// The legalized forms' obligations.
pub struct Legalized {
    /// One per configuration.
    pub obligations: Vec<Obligation>,
    /// The configurations no obligation could be built for, and why: each is a failure.
    pub failed: Vec<String>,
    /// The cases the legalizer chose, by target name.
    pub cases: Vec<(&'static str, Case)>,
    /// The Souper export of each obligation that has one, by obligation name.
    pub souper: Vec<(String, Export)>,
}

/// Every obligation of the legalized forms. Value configurations the IR verifier rejects
/// (an access kind that does not fit its type) are not instructions and are left out; a
/// check configuration it rejects is a failure (the configurations are wrong).
pub fn obligations() -> Legalized {
    let mut out = Legalized {
        obligations: Vec::new(),
        failed: Vec::new(),
        cases: Vec::new(),
        souper: Vec::new(),
    };
    let checks = check_configs().into_iter().map(|c| (c, false));
    let values = value_configs().into_iter().map(|c| (c, true));
    for (c, may_be_invalid) in checks.chain(values) {
        match obligation(&c, None) {
            Ok(b) => {
                out.cases.push((c.target.name, b.case));
                if let Some(e) = b.souper {
                    out.souper.push((b.obligation.name.clone(), e));
                }
                out.obligations.push(b.obligation);
            }
            Err(NoObligation::Invalid(_)) if may_be_invalid => {}
            Err(NoObligation::Invalid(e) | NoObligation::Failed(e)) => {
                out.failed
                    .push(format!("legalized: {}: {e}\n{}", c.describe(), c.clif()))
            }
        }
    }
    out
}

/// A deliberately wrong legalization: its obligation, which z3 must refute, and the
/// functions to run a counterexample on.
pub struct Broken {
    /// The obligation.
    pub obligation: Obligation,
    original: Function,
    legalized: Function,
    pointer: Type,
    index: Type,
}

/// Where the memory of a counterexample run lives (the broken obligations assume it).
const BASE: u64 = 0x1_0000_0000;
/// How many bytes after the bound are mapped in a counterexample run.
const AFTER: u64 = 0x1000;

/// The legalizer with each of its test-only mutations (an off-by-one `K`; the `isub bound, K`
/// form without the minimum size that keeps it from wrapping), in the forms they break.
pub fn broken() -> Result<Vec<Broken>, String> {
    let x86 = Target::lookup("x86_64").expect("a known target");
    let at = |memory: &str, spectre| Config {
        target: x86,
        spectre,
        memory: memory.to_string(),
        index: types::I32,
        const_index: None,
        const_bound: None,
        offset: 0x10,
        ty: types::I32,
        kind: AccessKind::Full,
        big: false,
        store: false,
    };
    let sized = "index i32, min 0x10000, max 0x1_0000_0000, guard 0";
    let empty = "index i32, min 0, max 0x1_0000_0000, guard 0";
    let mut out = Vec::new();
    for (what, c, m) in [
        ("K - 1", at(sized, false), Mutation::KMinusOne),
        ("K - 1", at(sized, true), Mutation::KMinusOne),
        ("K - 1", at(empty, false), Mutation::KMinusOne),
        (
            "isub without min >= K",
            at(empty, false),
            Mutation::IsubWithoutProof,
        ),
    ] {
        let b = obligation(&c, Some(m)).map_err(|e| match e {
            NoObligation::Invalid(e) | NoObligation::Failed(e) => e,
        })?;
        let mut o = b.obligation;
        o.name = format!("broken legalizer ({what}): {}", o.name);
        // A counterexample the interpreter can run: this base, a bound of at most 1 MiB,
        // an index that ends within the mapped bytes after the bound.
        o.premises.push(format!("(= base {})", lit64(BASE)));
        o.premises.push(format!("(bvule bound {})", lit64(1 << 20)));
        o.premises
            .push(format!("(bvule index (bvadd bound {}))", lit64(AFTER / 2)));
        out.push(Broken {
            obligation: o,
            original: b.original,
            legalized: b.legalized,
            pointer: c.target.pointer,
            index: c.index,
        });
    }
    Ok(out)
}

impl Broken {
    /// Runs a counterexample on the interpreter, through the instruction and through the
    /// broken expansion, over a memory of `bound` bytes followed by other mapped bytes (what
    /// lies after a memory without a guard); `Some` says how they disagree.
    pub fn disagreement(&self, model: &[(String, u128)]) -> Option<String> {
        let get = |n: &str| model.iter().find(|(v, _)| v == n).map_or(0, |x| x.1 as u64);
        let (bound, index) = (get("bound"), get("index"));
        let run = |f: &Function| -> Result<Outcome, String> {
            let mut interp = Interpreter::new([f], self.pointer);
            interp
                .memory
                .map_at("heap", BASE, bound + AFTER)
                .map_err(|e| e.0)?;
            let args = [
                DataValue::new(self.pointer, BASE),
                DataValue::new(self.pointer, bound),
                DataValue::new(self.index, index),
            ];
            interp.call(&f.name, &args).map_err(|e| e.0)
        };
        let show = |o: &Result<Outcome, String>| match o {
            Ok(Outcome::Trapped(t)) => format!("traps {}", t.code),
            Ok(Outcome::Returned(v)) => format!(
                "returns {}",
                v.iter()
                    .map(|v| format!("{:#x}", v.bits))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Err(e) => format!("fails ({e})"),
        };
        let (want, got) = (run(&self.original), run(&self.legalized));
        // Where each traps is no difference; the trap code or a returned value is.
        let same = match (&want, &got) {
            (Ok(Outcome::Trapped(a)), Ok(Outcome::Trapped(b))) => a.code == b.code,
            (Ok(a), Ok(b)) => a == b,
            _ => true,
        };
        (!same).then(|| {
            format!(
                "on the interpreter, with base {BASE:#x}, bound {bound:#x}, index {index:#x}: the instruction {}, the broken expansion {}",
                show(&want),
                show(&got)
            )
        })
    }
}
