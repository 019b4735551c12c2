//! Writes functions as CLIF text, laid out exactly as Cranelift 0.135's writer lays them out,
//! so that text without the new instructions is byte-for-byte what upstream would print.

use crate::ir::immediates::write_comma_list;
use crate::ir::{Function, Inst, InstructionData, ValueDef};
use core::fmt::{self, Write};

/// A function as text: `format!("{}", DisplayFunction(&f))`, or `f.to_string()`.
pub struct DisplayFunction<'a>(pub &'a Function);

impl fmt::Display for DisplayFunction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write_function(f, self.0)
    }
}

impl fmt::Display for Function {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write_function(f, self)
    }
}

/// Writes `func` to `w`.
pub fn write_function(w: &mut dyn Write, func: &Function) -> fmt::Result {
    writeln!(w, "function {}{} {{", func.name, func.signature)?;
    let mut any = false;
    for (r, data) in func.alias_regions.iter() {
        writeln!(w, "    {r} = {} \"{}\"", data.user_id, data.description)?;
        any = true;
    }
    for (s, sig) in func.dfg.signatures.iter() {
        writeln!(w, "    {s} = {sig}")?;
        any = true;
    }
    for (fr, ext) in func.dfg.ext_funcs.iter() {
        let colocated = if ext.colocated { "colocated " } else { "" };
        writeln!(w, "    {fr} = {colocated}{} {}", ext.name, ext.signature)?;
        any = true;
    }
    for (m, data) in func.memories.iter() {
        writeln!(w, "    {m} = {data}")?;
        any = true;
    }
    if let Some(size) = func.vmctx_struct {
        write!(w, "    mt0 = struct ")?;
        crate::ir::immediates::write_unsigned(w, size)?;
        writeln!(w, ", vmctx")?;
        any = true;
    }
    for &block in func.layout.blocks() {
        if any {
            writeln!(w)?;
        }
        any = true;
        write!(w, "{block}")?;
        let params = func.dfg.block_params(block);
        if !params.is_empty() {
            write!(w, "(")?;
            for (i, &p) in params.iter().enumerate() {
                if i > 0 {
                    write!(w, ", ")?;
                }
                write!(w, "{p}: {}", func.dfg.value_type(p))?;
            }
            write!(w, ")")?;
        }
        writeln!(w, ":")?;
        for &inst in func.layout.block_insts(block) {
            write!(w, "    ")?;
            write_instruction(w, func, inst)?;
            writeln!(w)?;
        }
    }
    writeln!(w, "}}")
}

/// Whether `inst` needs a `.type` suffix: as upstream, when its controlling type is not
/// inferred from an operand, or when that operand is defined in another block (upstream's
/// reader infers types in one pass and cannot look ahead).
fn type_suffix(func: &Function, inst: Inst) -> Option<crate::ir::Type> {
    use crate::ir::CtrlConstraint;
    let data = &func.dfg.insts[inst];
    let ctrl = func.dfg.ctrl_type(inst);
    match data.opcode().constraints().ctrl {
        CtrlConstraint::None => None,
        CtrlConstraint::Explicit(_) => Some(ctrl),
        CtrlConstraint::FromOperand(n, _) => {
            let operand = *data.arguments().get(n)?;
            let def_block = match func.dfg.value_def(operand) {
                ValueDef::Result(i, _) => func.layout.inst_block(i),
                ValueDef::Param(b, _) => Some(b),
                ValueDef::Unused => None,
            };
            if def_block.is_some() && def_block == func.layout.inst_block(inst) {
                None
            } else {
                Some(ctrl)
            }
        }
    }
}

/// Writes one instruction without indentation or newline.
pub fn write_instruction(w: &mut dyn Write, func: &Function, inst: Inst) -> fmt::Result {
    let dfg = &func.dfg;
    let results = dfg.inst_results(inst);
    for (i, r) in results.iter().enumerate() {
        write!(w, "{}{r}", if i > 0 { ", " } else { "" })?;
    }
    if !results.is_empty() {
        write!(w, " = ")?;
    }
    let data = &dfg.insts[inst];
    write!(w, "{}", data.opcode())?;
    if let Some(t) = type_suffix(func, inst) {
        write!(w, ".{t}")?;
    }
    write_operands(w, func, inst)?;
    write_constant_operands(w, func, inst)
}

/// As upstream, a trailing comment shows the value of each operand defined by a constant:
/// `v3 = iadd v1, v2  ; v2 = 1`.
fn write_constant_operands(w: &mut dyn Write, func: &Function, inst: Inst) -> fmt::Result {
    let dfg = &func.dfg;
    let data = &dfg.insts[inst];
    let branch_args = data
        .branch_destinations()
        .into_iter()
        .flat_map(|c| c.args.iter());
    let mut sep = "  ; ";
    for &arg in data.arguments().iter().chain(branch_args) {
        let ValueDef::Result(src, _) = dfg.value_def(arg) else {
            continue;
        };
        match &dfg.insts[src] {
            InstructionData::UnaryImm { imm, .. } => write!(
                w,
                "{sep}{arg} = {}",
                sign_extended(*imm, dfg.ctrl_type(src))
            )?,
            InstructionData::UnaryIeee32 { imm, .. } => write!(w, "{sep}{arg} = {imm}")?,
            InstructionData::UnaryIeee64 { imm, .. } => write!(w, "{sep}{arg} = {imm}")?,
            _ => continue,
        }
        sep = ", ";
    }
    Ok(())
}

fn sign_extended(imm: crate::ir::Imm64, ty: crate::ir::Type) -> crate::ir::Imm64 {
    let shift = 64 - ty.bits().max(1);
    crate::ir::Imm64((imm.0 << shift) >> shift)
}

fn write_operands(w: &mut dyn Write, func: &Function, inst: Inst) -> fmt::Result {
    let dfg = &func.dfg;
    use InstructionData::*;
    match &dfg.insts[inst] {
        Unary { arg, .. } => write!(w, " {arg}"),
        // As upstream: the immediate sign-extended from the type's width.
        UnaryImm { imm, .. } => write!(w, " {}", sign_extended(*imm, dfg.ctrl_type(inst))),
        UnaryIeee32 { imm, .. } => write!(w, " {imm}"),
        UnaryIeee64 { imm, .. } => write!(w, " {imm}"),
        Binary { args, .. } => write!(w, " {}, {}", args[0], args[1]),
        Ternary { args, .. } => write!(w, " {}, {}, {}", args[0], args[1], args[2]),
        IntCompare { cond, args, .. } => write!(w, " {cond} {}, {}", args[0], args[1]),
        FloatCompare { cond, args, .. } => write!(w, " {cond} {}, {}", args[0], args[1]),
        LoadNoOffset { flags, arg, .. } => write!(w, "{flags} {arg}"),
        Load {
            flags, arg, offset, ..
        } => write!(w, "{flags} {arg}{offset}"),
        Store {
            flags,
            args,
            offset,
            ..
        } => write!(w, "{flags} {}, {}{offset}", args[0], args[1]),
        Trap { code, .. } => write!(w, " {code}"),
        CondTrap { arg, code, .. } => write!(w, " {arg}, {code}"),
        IntAddTrap { args, code, .. } => write!(w, " {}, {}, {code}", args[0], args[1]),
        Jump { destination, .. } => write!(w, " {destination}"),
        Brif {
            arg,
            block_then,
            block_else,
            ..
        } => write!(w, " {arg}, {block_then}, {block_else}"),
        BranchTable { arg, table, .. } => write!(w, " {arg}, {table}"),
        MultiAry { args, .. } if args.is_empty() => Ok(()),
        MultiAry { args, .. } => {
            write!(w, " ")?;
            write_comma_list(w, args)
        }
        Call { func_ref, args, .. } => {
            write!(w, " {func_ref}(")?;
            write_comma_list(w, args)?;
            write!(w, ")")
        }
        BoundsCheckedLoad {
            access,
            flags,
            memory,
            args,
            offset,
            ..
        } => {
            if let Some(k) = access.text() {
                write!(w, " {k}")?;
            }
            write!(
                w,
                "{flags} {memory} {}, {}, {}{offset}",
                args[0], args[1], args[2]
            )
        }
        BoundsCheckedStore {
            access,
            flags,
            memory,
            args,
            offset,
            ..
        } => {
            if let Some(k) = access.text() {
                write!(w, " {k}")?;
            }
            write!(
                w,
                "{flags} {memory} {}, {}, {}, {}{offset}",
                args[0], args[1], args[2], args[3]
            )
        }
    }
}

/// One instruction as a string, for diagnostics.
pub fn inst_to_string(func: &Function, inst: Inst) -> String {
    let mut s = String::new();
    let _ = write_instruction(&mut s, func, inst);
    s
}
