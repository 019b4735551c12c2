//! The x86_64 backend: System V machine code encoded with `cranelift-assembler-x64`, run
//! in-process by [`run`] through [`crate::native`].

pub mod abi;
pub mod emit;
pub mod inst;
pub mod lower;
pub mod pcc;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub mod run;
#[cfg(feature = "prove")]
pub mod smt;

use crate::ir::Function;
use crate::machinst::{CodegenError, CompiledCode};
pub use lower::X64Backend;

/// Compiles one function to x86-64 machine code (after the shared mid-end passes, see
/// [`crate::machinst::lower::optimize_and_lower`]).
pub fn compile(func: &Function, backend: &X64Backend) -> Result<CompiledCode, CodegenError> {
    crate::machinst::pcc::compile(func, backend, emit::emit)
}

/// The disassembly of `code` (capstone, AT&T syntax as in upstream's filetests), one
/// instruction per line with its offset.
pub fn disassemble(code: &[u8]) -> String {
    use capstone::arch::BuildsCapstone;
    use capstone::arch::BuildsCapstoneSyntax;
    let cs = match capstone::Capstone::new()
        .x86()
        .mode(capstone::arch::x86::ArchMode::Mode64)
        .syntax(capstone::arch::x86::ArchSyntax::Att)
        .build()
    {
        Ok(cs) => cs,
        Err(e) => return format!("<capstone: {e}>"),
    };
    let insns = cs.disasm_all(code, 0);
    let text = match insns {
        Ok(insns) => {
            let mut out = String::new();
            let mut end = 0;
            for i in insns.iter() {
                let text = match (i.mnemonic(), i.op_str()) {
                    (Some(m), Some(o)) if !o.is_empty() => format!("{m} {o}"),
                    (Some(m), _) => m.to_string(),
                    _ => "?".to_string(),
                };
                out.push_str(&format!("{:>4x}: {text}\n", i.address()));
                end = i.address() as usize + i.len();
            }
            // Jump tables after the code are data, not instructions.
            if end < code.len() {
                out.push_str(&format!(
                    "{end:>4x}: <{} bytes of data>\n",
                    code.len() - end
                ));
            }
            out
        }
        Err(e) => format!("<capstone: {e}>"),
    };
    text
}

/// The instructions of `code` that do the function's work: all but the frame's `push rbp`,
/// `mov rbp, rsp`, `mov rsp, rbp`, `pop rbp`, the `ret` and the `ud2` of trap islands. Data
/// after the code (jump tables, and the constants Cranelift loads `%rip`-relative) is not
/// counted: nothing from the first byte a `%rip`-relative operand reads. Used to compare
/// per-access code with upstream's and Wasmtime's on the same function.
pub fn count_work_instructions(code: &[u8]) -> usize {
    let lines: Vec<(usize, String)> = disassemble(code)
        .lines()
        .filter_map(|l| {
            let (at, text) = l.split_once(": ")?;
            Some((
                usize::from_str_radix(at.trim(), 16).ok()?,
                text.trim().to_string(),
            ))
        })
        .collect();
    // Where each instruction ends: where the next begins (the last ends with the code).
    let ends: Vec<usize> = (0..lines.len())
        .map(|i| lines.get(i + 1).map_or(code.len(), |l| l.0))
        .collect();
    let data = lines
        .iter()
        .zip(&ends)
        .filter_map(|((_, text), &end)| {
            let (disp, _) = text.split_once("(%rip)")?;
            let disp = disp.rsplit([' ', ',', '*']).next()?;
            let (neg, hex) = match disp.strip_prefix('-') {
                Some(h) => (true, h),
                None => (false, disp),
            };
            let d = i64::from_str_radix(hex.strip_prefix("0x").unwrap_or(hex), 16).ok()?;
            let d = if neg { -d } else { d };
            usize::try_from(end as i64 + d).ok()
        })
        .min()
        .unwrap_or(code.len());
    lines
        .iter()
        .zip(&ends)
        .filter(|((_, t), &end)| {
            end <= data
                && !t.starts_with('<')
                && !matches!(
                    t.as_str(),
                    "pushq %rbp"
                        | "movq %rsp, %rbp"
                        | "movq %rbp, %rsp"
                        | "popq %rbp"
                        | "retq"
                        | "ud2"
                )
        })
        .count()
}
