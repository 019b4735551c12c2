//! The AArch64 backend: AAPCS64 machine code encoded with `dynasm`, disassembled with
//! capstone, run in-process on unicorn-engine over the host's memories ([`run`], feature
//! `aarch64-run`, on x86_64 Linux hosts). [`crate::isa::Backend::runnable`] includes it
//! (the differential tests, `test run` filetests, the fuzzer), as do the PCC corpus survey
//! and the mutants; it is not among [`crate::isa::BACKEND_TARGETS`] yet, the list the SMT
//! lowering proofs and the timed benchmark iterate.

pub mod abi;
pub mod emit;
pub mod inst;
pub mod lower;
pub mod pcc;
// The emulated code and stack sit above x86_64 Linux's user addresses (below 2^47).
#[cfg(all(feature = "aarch64-run", target_os = "linux", target_arch = "x86_64"))]
pub mod run;

use crate::ir::Function;
use crate::machinst::{CodegenError, CompiledCode};
pub use lower::Aarch64Backend;

/// Compiles one function to AArch64 machine code (after the shared mid-end passes, see
/// [`crate::machinst::lower::optimize_and_lower`]).
pub fn compile(func: &Function, backend: &Aarch64Backend) -> Result<CompiledCode, CodegenError> {
    crate::machinst::pcc::compile(func, backend, emit::emit)
}

/// Decodes `code` placed at `address` with capstone: each instruction's mnemonic and
/// operands, up to the first word that is no instruction (jump tables after the code).
/// Capstone 5 does not know `udf`, the permanently undefined instruction of trap islands
/// (its top 16 bits are zero): it is named here.
pub(crate) fn decode(code: &[u8], address: u64) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= code.len() {
        let word = u32::from_le_bytes(code[at..at + 4].try_into().expect("4 bytes"));
        if word >> 16 == 0 {
            out.push(("udf".to_string(), format!("#{word}")));
            at += 4;
            continue;
        }
        let run = decode_run(&code[at..], address + at as u64)?;
        if run.is_empty() {
            break;
        }
        at += 4 * run.len();
        out.extend(run);
    }
    Ok(out)
}

/// Capstone's decoding of `code` up to the first word it does not decode.
fn decode_run(code: &[u8], address: u64) -> Result<Vec<(String, String)>, String> {
    use capstone::arch::BuildsCapstone;
    thread_local! {
        // Building a Capstone handle costs more than decoding a function.
        static CAPSTONE: Result<capstone::Capstone, String> = capstone::Capstone::new()
            .arm64()
            .mode(capstone::arch::arm64::ArchMode::Arm)
            .build()
            .map_err(|e| e.to_string());
    }
    CAPSTONE.with(|cs| {
        let cs = cs.as_ref().map_err(|e| e.clone())?;
        let insns = cs.disasm_all(code, address).map_err(|e| e.to_string())?;
        Ok(insns
            .iter()
            .map(|i| {
                (
                    i.mnemonic().unwrap_or("?").to_string(),
                    i.op_str().unwrap_or("").to_string(),
                )
            })
            .collect())
    })
}

/// The disassembly of `code` (capstone), one instruction per line with its offset; data
/// after the code (jump tables) is summarized.
pub fn disassemble(code: &[u8]) -> String {
    match decode(code, 0) {
        Ok(lines) => {
            let mut out = String::new();
            for (k, (m, o)) in lines.iter().enumerate() {
                let text = if o.is_empty() {
                    m.clone()
                } else {
                    format!("{m} {o}")
                };
                out.push_str(&format!("{:>4x}: {text}\n", 4 * k));
            }
            let end = 4 * lines.len();
            if end < code.len() {
                out.push_str(&format!(
                    "{end:>4x}: <{} bytes of data>\n",
                    code.len() - end
                ));
            }
            out
        }
        Err(e) => format!("<capstone: {e}>"),
    }
}

/// The instructions of `code` that do the function's work: all but the frame's `stp x29,
/// x30`, `mov x29, sp`, `mov sp, x29`, `ldp x29, x30`, the `ret` and the `udf` of trap
/// islands (jump tables after the code are data). Used to compare per-access code with
/// upstream's on the same function; an error if capstone cannot decode it all.
pub fn count_work_instructions(code: &[u8]) -> Result<usize, String> {
    let lines = decode(code, 0)?;
    Ok(lines
        .iter()
        .filter(|(m, o)| {
            let frame = match m.as_str() {
                "ret" | "udf" => true,
                "stp" | "ldp" => o.starts_with("x29, x30"),
                "mov" => o == "x29, sp" || o == "sp, x29",
                _ => false,
            };
            !frame
        })
        .count())
}
