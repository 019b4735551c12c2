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
use super::symbolic::{
    bswap, bytes_as_value, carries, lit, low, value_as_bytes, zext, Access, Execution,
};
use super::{faulting_end, lit64, model_get, z128};
use crate::interpreter::{DataValue, Interpreter, Outcome};
use crate::ir::{
    types, Endianness, Function, Inst, InstructionData, MemFlags, Opcode, TrapCode, Type, Value,
};
use crate::legalize::{legalize_with, Case, Mutation, Settings};
use crate::semantics::{AccessKind, Extension, EFFECTIVE_ADDRESS_SMT, OUT_OF_BOUNDS_SMT};
use crate::target::{NullCheck, Target};
use clif_bounds_verifier::smt::{Obligation, Verdict};
use std::collections::HashMap;

/// A counterexample as a filetest ([`Config::run_file`]).
pub(super) struct RunFile {
    /// The whole file.
    pub(super) text: String,
    /// What its run line expects: the interpreter's outcome (`traps heap_oob`, `== 0x..`).
    pub(super) want: String,
}

/// One configuration of the legalizer: the CLIF of one access, and the settings.
#[derive(Clone)]
pub(super) struct Config {
    pub(super) target: &'static Target,
    pub(super) spectre: bool,
    /// The memory declaration, as written after `mem0 = memory `.
    memory: String,
    pub(super) index: Type,
    /// `Some(c)`: the index is the constant `c`.
    const_index: Option<u64>,
    /// `Some(c)`: the bound is the constant `c`.
    const_bound: Option<u64>,
    offset: u64,
    pub(super) ty: Type,
    kind: AccessKind,
    big: bool,
    pub(super) store: bool,
}

impl Config {
    /// A counterexample `model` as a `test run` filetest anyone can paste and run: this
    /// configuration's function on a host memory `heap0` of `size` bytes (byte `i` holds
    /// `i`'s low byte), called with the model's bound, index and value, expecting what the
    /// interpreter does with the instruction there (the reference every backend must meet).
    pub(super) fn run_file(&self, model: &[(String, u128)], size: u64) -> Result<RunFile, String> {
        let get = |n: &str| model_get(model, n).unwrap_or(0) as u64;
        let mask = |t: Type| u64::MAX >> (64 - t.bits().min(64));
        let (bound, index) = (get("bound"), get("index") & mask(self.index));
        let value = get("value") & mask(self.ty);
        let func = crate::parser::parse_function(&self.clif())
            .map_err(|d| format!("the configuration's CLIF does not parse: {}", d.message))?;
        let mut interp = Interpreter::new([&func], self.target.pointer);
        let base = interp.memory.map("heap0", size).map_err(|e| e.0)?;
        let bytes: Vec<u8> = (0..size).map(|i| i as u8).collect();
        interp.memory.write(base, &bytes);
        let mut args = vec![
            DataValue::new(self.target.pointer, base),
            DataValue::new(self.target.pointer, bound),
            DataValue::new(self.index, index),
        ];
        let mut call = format!("%f(&heap0, {bound:#x}, {index:#x}");
        if self.store {
            // In run-line notation: a float as a float, not as its bits.
            let v = DataValue::new(self.ty, value);
            call.push_str(&format!(", {v}"));
            args.push(v);
        }
        let want = match interp.call(&func.name, &args).map_err(|e| e.0)? {
            Outcome::Trapped(t) => format!("traps {}", t.code),
            Outcome::Returned(v) => match v.first() {
                Some(v) => format!("== {v}"),
                None => "== []".to_string(),
            },
        };
        // Targets without a backend here (pulley32, s390x) are run on the interpreter only.
        let test = match crate::isa::BACKEND_TARGETS.contains(&self.target.name) {
            true => "run",
            false => "interpret",
        };
        let text = format!(
            "test {test}\nset enable_heap_access_spectre_mitigation={}\ntarget {}\n; host-memory: heap0 {size:#x}\n\n{}; run: {call}) {want}\n",
            self.spectre,
            self.target.name,
            self.clif()
        );
        Ok(RunFile { text, want })
    }

    /// The function: `(base, bound, index[, value])`, one access of `mem0`.
    pub(super) fn clif(&self) -> String {
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
        // `kind order`, or the order alone for the full width (whose kind prints empty).
        let order = if self.big { "big" } else { "little" };
        let order = match self.kind.to_string() {
            k if k.is_empty() => order.to_string(),
            k => format!("{k} {order}"),
        };
        let (access, ret, sig_ret) = if self.store {
            (
                format!(
                    "bounds_checked_store {order} mem0 v3, v0, {bound}, {index}+{:#x}",
                    self.offset
                ),
                "return",
                String::new(),
            )
        } else {
            (
                format!(
                    "v4 = bounds_checked_load.{} {order} mem0 v0, {bound}, {index}+{:#x}",
                    self.ty, self.offset
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

    pub(super) fn describe(&self) -> String {
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

/// A symbolic evaluation of straight-line CLIF.
struct Eval<'f> {
    func: &'f Function,
    target: &'static Target,
    env: HashMap<Value, String>,
    e: Execution,
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
                self.e.traps.push((cond, *code));
                None
            }
            (InstructionData::IntAddTrap { args, code, .. }, Opcode::UaddOverflowTrap) => {
                let (a, b) = (self.get(args[0])?, self.get(args[1])?);
                let w = self.bits(args[0]);
                self.e.traps.push((carries(&a, &b, w), *code));
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
                let reg = self.get(*arg)?;
                let value = match op {
                    Opcode::Sload8 | Opcode::Sload16 | Opcode::Sload32 => {
                        format!("((_ sign_extend {}) {raw})", out_bits - bits)
                    }
                    _ => zext(&raw, bits, out_bits),
                };
                self.accessed(reg, offset.0, bits, flags, None)?;
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
                let reg = self.get(args[1])?;
                self.accessed(reg, offset.0, bits, flags, Some(stored))?;
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

    /// The access at `reg + offset` (the target's null check, where it has one, tests
    /// `reg`).
    fn accessed(
        &mut self,
        reg: String,
        offset: i32,
        bits: u32,
        flags: &MemFlags,
        stored: Option<String>,
    ) -> Result<(), String> {
        let pw = self.target.pointer.bits();
        let offset = lit(pw, (offset as i64 as u128) & ((1u128 << pw) - 1));
        let addr = format!("(bvadd {reg} {offset})");
        // A store the plan probes (`Plan::probe_store`) follows a load of the same bytes at
        // the same address with the same trap code, whose value nothing uses: it faults
        // exactly where the store does and changes nothing, so the pair is one access, the
        // store's. This machine does not model a store that tears, so that a probe, where
        // present, matches its store is checked here, but not that it is present: the
        // legalization oracle's memory comparison on unicorn (which tears) checks that.
        if stored.is_some() {
            if let Some(probe) = &self.e.access {
                if probe.stored.is_none()
                    && probe.addr == addr
                    && probe.bits == bits
                    && probe.trap == flags.trap_code
                    && self.e.traps.len() == self.e.checks_before
                {
                    self.e.access = None;
                }
            }
        }
        self.e.record(Access {
            addr,
            null_tested: Some(reg),
            bits,
            trap: flags.trap_code,
            foreign: self.order(flags) != self.target.endianness,
            stored,
        })
    }
}

/// `(or t...)` of the terms `ts`.
fn any_of(ts: &[String]) -> String {
    format!("(or false {})", ts.join(" "))
}

/// Why a configuration has no obligation.
pub(super) enum NoObligation {
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

/// One configuration's instruction, and what z3 may assume about its inputs.
pub(super) struct Setup {
    /// The function, verified, before legalization.
    pub func: Function,
    /// Its access.
    pub inst: Inst,
    target: &'static Target,
    /// Pointer and index widths.
    pw: u32,
    iw: u32,
    pub(super) ty: Type,
    size: u64,
    code: TrapCode,
    order: Endianness,
    extension: Extension,
    reservation: bool,
    /// The instruction's result (loads).
    result: Option<Value>,
    min: u64,
    max_bound: u128,
    /// The variables (meta's, 64-bit, and the memory's bytes `mem`, the stored `value`).
    pub vars: Vec<(String, u32)>,
    /// The declaration's promises, the configuration's constants, the memory's layout.
    pub premises: Vec<String>,
}

/// Parses and verifies `c`'s function and states what its inputs may be.
pub(super) fn setup(c: &Config) -> Result<Setup, NoObligation> {
    let text = c.clif();
    let func =
        crate::parser::parse_function(&text).map_err(|e| NoObligation::Invalid(format!("{e}")))?;
    crate::ir_verifier::verify_function(&func, c.target.pointer).map_err(|d| {
        let msgs: Vec<String> = d.iter().map(|d| d.message.clone()).collect();
        NoObligation::Invalid(msgs.join("; "))
    })?;
    let entry = func.layout.entry_block().ok_or("no entry block")?;
    let inst = *func
        .layout
        .block_insts(entry)
        .iter()
        .find(|&&i| func.dfg.insts[i].bounds_checked_access().is_some())
        .ok_or("no access")?;
    let parts = func.dfg.insts[inst]
        .bounds_checked_access()
        .ok_or("no access")?;
    let mem = func.memories[parts.memory];
    let ty = func.dfg.ctrl_type(inst);
    let pw = c.target.pointer.bits();
    let iw = c.index.bits();
    let max_pw = (1u128 << pw) - 1;
    let max_bound = mem.max_bound(c.target.pointer).min(max_pw);
    let size = u64::from(parts.access.access_size(ty));

    // meta's variables are 64-bit; the function's parameters are their low bits.
    let mut vars: Vec<(String, u32)> = ["base", "bound", "index", "offset", "access_size"]
        .iter()
        .map(|v| (v.to_string(), 64))
        .collect();
    vars.push(("mem".into(), size as u32 * 8));
    vars.push(("guard".into(), 64));
    if c.store {
        vars.push(("value".into(), ty.bits()));
    }
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
    Ok(Setup {
        target: c.target,
        pw,
        iw,
        ty,
        size,
        code: parts.trap_code(),
        order: parts.flags.endianness.unwrap_or(c.target.endianness),
        extension: parts.access.extension(),
        reservation,
        result: func.dfg.inst_results(inst).first().copied(),
        min: mem.min,
        max_bound,
        vars,
        premises,
        func,
        inst,
    })
}

impl Setup {
    /// The terms the function's parameters `(base, bound, index[, value])` hold.
    pub(super) fn params(&self) -> [String; 4] {
        [
            low("base", 64, self.pw),
            low("bound", 64, self.pw),
            low("index", 64, self.iw),
            "value".to_string(),
        ]
    }

    /// The claim that code doing `e` equals the instruction: it traps (by a check with
    /// the instruction's code, or a fault the target promises) exactly when `meta/`'s
    /// condition holds, and otherwise accesses `meta/`'s address with the instruction's width
    /// and value. Returned with it: steps for z3 to decide first (its halves, where that is
    /// faster), and the reasons it is `false` when `e` is wrong whatever the inputs (a trap
    /// code, a width).
    pub(super) fn claim(&self, e: &Execution) -> (String, Vec<String>, Vec<String>) {
        let mut wrong = e.wrong.clone();
        let (pw, size, code) = (self.pw, self.size, self.code);
        let bits = size as u32 * 8;
        for (_, t) in &e.traps {
            if *t != code {
                wrong.push(format!(
                    "a check traps with {t}, the instruction with {code}"
                ));
            }
        }
        let any = |ts: &[(String, TrapCode)]| {
            any_of(&ts.iter().map(|(t, _)| t.clone()).collect::<Vec<_>>())
        };
        let checks = any(&e.traps);
        let oob = OUT_OF_BOUNDS_SMT;
        let ea = low(EFFECTIVE_ADDRESS_SMT, 64, pw);
        // The claim's conjuncts, each decided alone first (see `Obligation::steps`).
        let mut parts = Vec::new();
        let claim = match &e.access {
            // No access: the code must trap, and only where the instruction does.
            None => format!("(and {oob} {checks})"),
            Some(a) => {
                if a.bits != bits {
                    wrong.push(format!(
                        "the code accesses {} bytes, the instruction {size}",
                        a.bits / 8
                    ));
                }
                let end = format!(
                    "(bvadd {} {})",
                    zext(&a.addr, pw, 128),
                    lit(128, u128::from(size))
                );
                let null_fault = match (self.target.null_check, &a.null_tested) {
                    (NullCheck::Unmapped { reach }, _) => {
                        format!("(bvule {end} {})", lit(128, reach.into()))
                    }
                    (NullCheck::BaseRegister, Some(r)) if !a.foreign => {
                        format!("(= {r} {})", lit(pw, 0))
                    }
                    (NullCheck::BaseRegister, _) => "false".to_string(),
                };
                let ranges_trap = self.target.faulting_ranges_trap();
                let range_fault = match ranges_trap {
                    true => format!(
                        "(and (bvugt {end} (bvadd {} {})) (bvule {end} (bvadd {} {})))",
                        z128("base"),
                        z128("bound"),
                        z128("base"),
                        faulting_end("bound", self.reservation)
                    ),
                    false => "false".to_string(),
                };
                // A fault traps with the instruction's code only if the access carries it;
                // any other fault is a crash, in bounds or out.
                let traps_by_fault = match a.trap == Some(code) {
                    true => format!("(or {null_fault} {range_fault})"),
                    false => "false".to_string(),
                };
                let ty = self.ty.bits();
                let same = match (&a.stored, &e.result) {
                    (Some(stored), _) => {
                        let v = low("value", ty, bits);
                        format!("(= {stored} {})", value_as_bytes(&v, self.order, bits))
                    }
                    (None, Some(r)) => {
                        let raw = bytes_as_value(self.order, bits);
                        let want = match self.extension {
                            Extension::Sign => {
                                format!("((_ sign_extend {}) {raw})", ty - bits)
                            }
                            _ => zext(&raw, bits, ty),
                        };
                        format!("(= {r} {want})")
                    }
                    (None, None) => {
                        wrong.push("the code loads nothing it returns".into());
                        "false".to_string()
                    }
                };
                // Out of bounds, a check made before the access, or the access's own fault,
                // must stop it: a check after a store is too late. In bounds, nothing traps
                // or faults, and the access is the instruction's. (Of the faults, only the
                // null check's needs saying there: at `meta/`'s address, in bounds, the
                // access ends at or below `base + bound`, where the faulting range begins.)
                let halves = [
                    format!(
                        "(=> {oob} (or {} {traps_by_fault}))",
                        any(&e.traps[..e.checks_before])
                    ),
                    format!(
                        "(=> (not {oob}) (and (not {checks}) (not {null_fault}) (= {} {ea}) {same}))",
                        a.addr
                    ),
                ];
                // Where a fault in the faulting range may be what traps, z3 decides the two
                // halves faster apart (measured: case G and the guarded lowerings, 63 s of
                // z3 time to 42 s); elsewhere the extra checks cost more than they save.
                if ranges_trap && a.trap == Some(code) {
                    parts = halves.to_vec();
                }
                format!("(and {})", halves.join(" "))
            }
        };
        let claim = match e.undefined.is_empty() {
            true => claim,
            false => format!("(and (not {}) {claim})", any_of(&e.undefined)),
        };
        match wrong.is_empty() {
            true => (claim, parts, wrong),
            false => ("false".to_string(), Vec::new(), wrong),
        }
    }

    /// The obligation named `name` that code doing `e` equals the instruction.
    pub(super) fn obligation(&self, name: String, e: &Execution) -> Obligation {
        let (claim, parts, wrong) = self.claim(e);
        let name = match wrong.is_empty() {
            true => name,
            false => format!("{name} [{}]", wrong.join("; ")),
        };
        Obligation {
            name,
            vars: self.vars.iter().chain(&e.unknowns).cloned().collect(),
            premises: self.premises.clone(),
            claim,
            steps: parts,
        }
    }
}

/// The obligation of one configuration, legalized with `mutation` (a deliberately wrong
/// legalizer, for `prove --broken`).
fn obligation(c: &Config, mutation: Option<Mutation>) -> Result<Built, NoObligation> {
    let s = setup(c)?;
    let mut func = s.func.clone();
    let settings = Settings {
        target: *c.target,
        spectre: c.spectre,
    };
    let case = legalize_with(&mut func, &settings, mutation)
        .first()
        .map(|&(_, case)| case)
        .ok_or("the legalizer expanded nothing")?;
    let entry = func.layout.entry_block().ok_or("no entry block")?;
    let params = func.dfg.block_params(entry).to_vec();
    // Only checks that trap exactly when the instruction does are an equivalence; a
    // mutation's are not exported.
    let souper = match case {
        Case::E | Case::F | Case::H | Case::I if !c.spectre && mutation.is_none() => {
            super::souper::export(
                &func,
                &super::souper::Facts {
                    name: c.describe(),
                    bound: params[1],
                    index: params[2],
                    offset: c.offset,
                    size: s.size,
                    min: s.min,
                    max_bound: s.max_bound,
                    const_bound: c.const_bound,
                },
            )?
        }
        _ => None,
    };
    let mut eval = Eval {
        func: &func,
        target: c.target,
        env: HashMap::new(),
        e: Execution::default(),
    };
    for (v, t) in params.iter().zip(s.params()) {
        eval.env.insert(*v, t);
    }
    for &inst in func.layout.block_insts(entry) {
        eval.step(inst)?;
    }
    let mut e = eval.e;
    e.result = match s.result {
        Some(r) => Some(
            eval.env
                .get(&r)
                .cloned()
                .ok_or("the load's result is never defined")?,
        ),
        None => None,
    };
    let obligation = s.obligation(format!("legalized, case {case}: {}", c.describe()), &e);
    Ok(Built {
        obligation,
        case,
        souper,
        original: s.func,
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
pub(super) fn check_configs() -> Vec<Config> {
    let targets = ["x86_64", "aarch64", "pulley64", "pulley32"];
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
            // The checks of stores and of narrow and extending accesses, whose sizes and
            // value registers differ from the loads' above, with a symbolic index: in an
            // explicit check, and a store in a guard region.
            let guarded = match target.pointer.bits() {
                32 => "index i32, min 0, max 0x4000_0000, guard 0x10000",
                _ => "index i32, min 0, max 0x1_0000_0000, guard 0x10000",
            };
            let kinds = [
                (types::I32, AccessKind::Full, true),
                (types::I64, AccessKind::I8, true),
                (types::I16, AccessKind::Full, false),
                (types::I32, AccessKind::U16, false),
                (types::I64, AccessKind::S8, false),
            ];
            // Beyond a guard the size only moves the end within the guard: one store there.
            for (memory, kinds) in [(small, &kinds[..]), (guarded, &kinds[..1])] {
                for &(ty, kind, store) in kinds {
                    out.push(Config {
                        kind,
                        store,
                        ..cfg(memory, types::I32, 0x10, ty)
                    });
                }
            }
        }
    }
    out
}

/// The configurations of the values moved: every access kind of every type, both byte
/// orders, loads and stores, on a target that swaps foreign orders (x86_64), one that
/// accesses both orders (pulley64), and a big-endian one (s390x). The index is a constant
/// in bounds (case D), so that these obligations are about the bytes moved.
pub(super) fn value_configs() -> Vec<Config> {
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
    /// The configuration of each obligation, to reproduce a refutation.
    pub configs: Configs,
}

/// The configuration of each obligation, by obligation name.
#[derive(Default)]
pub struct Configs(pub(super) Vec<(String, Config)>);

/// The largest host memory a printed counterexample maps (its bound must fit).
const MAX_RUN_MEMORY: u64 = 0x100_0000;

impl Configs {
    /// The counterexample `model` of the obligation `o`, when it is one of these, as a
    /// filetest: pasted into a file, `clif-bounds test` runs it on the interpreter and the
    /// backend. The host memory is exactly the bound, in whole pages, so that past the
    /// bound nothing is mapped, as the memory's guard and faulting range promise; when z3's
    /// bound is not such a size (or over 16 MiB), z3 is asked again for one that is. `Err`
    /// says why none can be run.
    pub fn reproduce(
        &self,
        o: &Obligation,
        model: &[(String, u128)],
    ) -> Option<Result<String, String>> {
        let (_, c) = self.0.iter().find(|(n, _)| *n == o.name)?;
        reproduce(c, o, model)
    }
}

fn reproduce(
    c: &Config,
    o: &Obligation,
    model: &[(String, u128)],
) -> Option<Result<String, String>> {
    let bound = |m: &[(String, u128)]| model_get(m, "bound").unwrap_or(0);
    let runnable =
        |b: u128| b >= 0x1000 && b <= u128::from(MAX_RUN_MEMORY) && b.is_multiple_of(0x1000);
    if runnable(bound(model)) {
        return Some(c.run_file(model, bound(model) as u64).map(|r| r.text));
    }
    let mut small = o.clone();
    small.premises.extend([
        format!("(bvuge bound {})", lit64(0x1000)),
        format!("(bvule bound {})", lit64(MAX_RUN_MEMORY)),
        "(= ((_ extract 11 0) bound) #x000)".to_string(),
    ]);
    small.steps.clear();
    Some(match clif_bounds_verifier::smt::prove(&small).0 {
        Verdict::Refuted(m) => c.run_file(&m, bound(&m) as u64).map(|file| {
            format!(
                "; z3's counterexample has bound {:#x}; this one, a size a run maps, has {:#x}\n{}",
                bound(model),
                bound(&m),
                file.text
            )
        }),
        Verdict::Proven => Err(format!(
            "not a filetest: the counterexample's bound is {:#x}, and every counterexample needs a bound larger than the {MAX_RUN_MEMORY:#x} bytes a run maps",
            bound(model)
        )),
        Verdict::Unknown(why) => Err(format!(
            "not a filetest: the counterexample's bound is {:#x}, more than a run maps, and z3 found no smaller one: {why}",
            bound(model)
        )),
    })
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
        configs: Configs::default(),
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
                out.configs.0.push((b.obligation.name.clone(), c.clone()));
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
    /// A store's value type.
    stored: Option<Type>,
}

/// Where the memory of a counterexample run lives (the broken obligations assume it).
const BASE: u64 = 0x1_0000_0000;
/// How many bytes after the bound are mapped in a counterexample run.
const AFTER: u64 = 0x1000;

/// A configuration of one `load.i32` of `memory` at offset 0x10 with an i32 index: the
/// access the broken legalizations, lowerings and Souper candidates break.
pub(super) fn load_config(target: &str, spectre: bool, memory: &str) -> Config {
    Config {
        target: Target::lookup(target).expect("a known target"),
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
    }
}

/// The legalizer with each of its test-only mutations (an off-by-one `K`; the `isub bound, K`
/// form without the minimum size that keeps it from wrapping; a store made before its check;
/// code that always traps), in the forms they break.
pub fn broken() -> Result<Vec<Broken>, String> {
    let at = |memory: &str, spectre| load_config("x86_64", spectre, memory);
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
        // A load made before its check still traps where the instruction does: only a
        // store shows, in memory, that the access came first.
        (
            "store before its check",
            Config {
                store: true,
                ..at(sized, false)
            },
            Mutation::AccessBeforeCheck,
        ),
        ("always trap", at(sized, false), Mutation::AlwaysTrap),
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
            stored: c.store.then_some(c.ty),
        });
    }
    Ok(out)
}

/// The Souper candidate of the case H check (`index > bound - 20` for a 4-byte load at
/// offset 0x10 of a memory of at least 64 KiB, i32 index) as exported, for `prove --broken`
/// to break its text.
pub fn case_h_souper() -> Result<Export, String> {
    let c = load_config(
        "x86_64",
        false,
        "index i32, min 0x10000, max 0x1_0000_0000, guard 0",
    );
    let b = obligation(&c, None).map_err(|e| match e {
        NoObligation::Invalid(e) | NoObligation::Failed(e) => e,
    })?;
    b.souper
        .ok_or_else(|| format!("no Souper export for {}", c.describe()))
}

impl Broken {
    /// Runs a counterexample on the interpreter, through the instruction and through the
    /// broken expansion, over a memory of `bound` bytes followed by other mapped bytes (what
    /// lies after a memory without a guard); `Some` says how they disagree: in what they
    /// return or trap with, or, for a store, in the bytes they leave.
    pub fn disagreement(&self, model: &[(String, u128)]) -> Option<String> {
        let get = |n: &str| model_get(model, n).unwrap_or(0) as u64;
        let (bound, index) = (get("bound"), get("index"));
        // A stored value that differs from the bytes the memory is filled with.
        let value = (get("value") ^ 0x5a5a_5a5a_5a5a_5a5a)
            & self.stored.map_or(0, |t| u64::MAX >> (64 - t.bits()));
        let run = |f: &Function| -> Result<(Outcome, Vec<u8>), String> {
            let mut interp = Interpreter::new([f], self.pointer);
            interp
                .memory
                .map_at("heap", BASE, bound + AFTER)
                .map_err(|e| e.0)?;
            let mut args = vec![
                DataValue::new(self.pointer, BASE),
                DataValue::new(self.pointer, bound),
                DataValue::new(self.index, index),
            ];
            if let Some(t) = self.stored {
                args.push(DataValue::new(t, value));
            }
            let outcome = interp.call(&f.name, &args).map_err(|e| e.0)?;
            let bytes = interp
                .memory
                .read(BASE, bound + AFTER)
                .ok_or("the memory cannot be read back")?;
            Ok((outcome, bytes))
        };
        let (want, got) = (run(&self.original), run(&self.legalized));
        if let (Ok((_, a)), Ok((_, b))) = (&want, &got) {
            let at: Vec<String> = a
                .iter()
                .zip(b)
                .enumerate()
                .filter(|(_, (x, y))| x != y)
                .map(|(i, (x, y))| format!("[{i:#x}] {x:#04x} / {y:#04x}"))
                .collect();
            if !at.is_empty() {
                return Some(format!(
                    "on the interpreter, with base {BASE:#x}, bound {bound:#x}, index {index:#x}, value {value:#x}: the bytes the instruction / the broken expansion leave differ at {}",
                    at.join(", ")
                ));
            }
        }
        let (want, got) = (want.map(|w| w.0), got.map(|g| g.0));
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
