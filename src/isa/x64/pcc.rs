//! Proof-carrying code rules of the x86_64 instructions (see [`crate::machinst::pcc`]): what
//! each instruction tells the kernel, one arm per instruction.
//!
//! The convention the rules rely on and check: a register holding an IR integer of 32 bits
//! or fewer has its upper 32 bits clear (32-bit operations clear them; 8- and 16-bit
//! operations keep them), so an i32 index is used as a 64-bit address component as it is.
//! Parameters and call results are assumed to keep it; arguments, returned values and block
//! arguments are checked to.

use super::inst::{
    AluOp, Amode, Cc as XCc, ExtOp, LoadOp, MInst, Rmi, ShiftOp, Size, StoreOp, Test,
};
use crate::machinst::pcc::kernel::{Address, Cc, Cmp, Fact, Operand, PccError};
use crate::machinst::pcc::{id, Cx, PccInst};

fn address(a: &Amode) -> Address {
    Address {
        base: id(a.base),
        index: a.index.map(id),
        disp: i64::from(a.disp),
    }
}

fn bytes(size: Size) -> u64 {
    match size {
        Size::B => 1,
        Size::W => 2,
        Size::L => 4,
        Size::Q => 8,
    }
}

fn load_width(op: LoadOp) -> u64 {
    use LoadOp::*;
    match op {
        U8 | S8To32 | S8To64 => 1,
        U16 | S16To32 | S16To64 => 2,
        U32 | S32To64 | F32 => 4,
        X64 | F64 => 8,
    }
}

fn store_width(op: StoreOp) -> u64 {
    match op {
        StoreOp::B => 1,
        StoreOp::W => 2,
        StoreOp::L | StoreOp::F32 => 4,
        StoreOp::Q | StoreOp::F64 => 8,
    }
}

/// What an operation of `size` leaves in its destination register: a 32-bit operation
/// clears the upper half; an 8- or 16-bit one keeps the upper bits of `a` (the register it
/// writes in place).
fn result_of_width(
    cx: &mut Cx<'_>,
    size: Size,
    dst: crate::machinst::VReg,
    a: Option<crate::machinst::VReg>,
) {
    let f = match size {
        Size::L => Fact::bits(32),
        Size::Q => Fact::ANY,
        Size::B | Size::W => match a.map(|a| cx.k.fact(id(a))) {
            Some(Fact::Int { hi, .. }) if hi <= u64::from(u32::MAX) => Fact::bits(32),
            _ => Fact::ANY,
        },
    };
    cx.k.define(id(dst), f);
}

/// An `Rmi` as a comparison operand; a memory operand is a read, of a declared field when
/// the comparison reads a bound from the VM context.
fn operand(cx: &mut Cx<'_>, b: &Rmi, size: Size) -> Result<Option<Operand>, PccError> {
    Ok(match *b {
        Rmi::Reg(r) => Some(Operand::Value(id(r))),
        Rmi::Imm(i) => Some(Operand::Imm(match size {
            Size::Q => i64::from(i) as u64,
            _ => u64::from(i as u32),
        })),
        Rmi::Mem(m) if m.index.is_none() && cx.k.field(id(m.base), i64::from(m.disp)).is_some() => {
            Some(Operand::Value(cx.field(m.base, i64::from(m.disp))?))
        }
        Rmi::Mem(m) => {
            cx.memory(address(&m), bytes(size), false, false, false)?;
            None
        }
    })
}

/// The width a comparison or test of `size` looks at.
fn bits(size: Size) -> u8 {
    match size {
        Size::B => 8,
        Size::W => 16,
        Size::L => 32,
        Size::Q => 64,
    }
}

/// The comparison a flag test makes.
fn test(cx: &mut Cx<'_>, t: &Test) -> Result<Cmp, PccError> {
    Ok(match *t {
        Test::Cmp { size, cc, a, ref b } => {
            let b = operand(cx, b, size)?;
            let cc = match (cc, b) {
                (_, None) => Cc::Other,
                (XCc::A, _) => Cc::Ugt,
                (XCc::Ae, _) => Cc::Uge,
                (XCc::B, _) => Cc::Ult,
                (XCc::Be, _) => Cc::Ule,
                (XCc::E, _) => Cc::Eq,
                (XCc::Ne, _) => Cc::Ne,
                _ => Cc::Other,
            };
            Cmp {
                cc,
                a: Operand::Value(id(a)),
                b: b.unwrap_or(Operand::Imm(0)),
                bits: bits(size),
            }
        }
        Test::NonZero { size, x, zero } => Cmp {
            cc: if zero { Cc::Eq } else { Cc::Ne },
            a: Operand::Value(id(x)),
            b: Operand::Imm(0),
            bits: bits(size),
        },
    })
}

impl PccInst for MInst {
    fn edge(&self, succ: crate::machinst::MachBlock, cx: &mut Cx<'_>) {
        if let MInst::Br {
            test: t,
            taken,
            not_taken,
        } = self
        {
            // A test that reads memory was checked at the branch; its value there is not
            // known here.
            let reads_memory = matches!(t, Test::Cmp { b: Rmi::Mem(_), .. });
            if taken != not_taken && !reads_memory {
                if let Ok(cmp) = test(cx, t) {
                    cx.k.assume(cmp, succ == *taken);
                }
            }
        }
    }

    fn is_call(&self) -> bool {
        matches!(self, MInst::Call { .. })
    }

    fn always_traps(&self) -> bool {
        matches!(self, MInst::Trap { .. })
    }

    /// What a register holding a value of `bits` bits promises: an i32 has its upper half
    /// clear (the backend's invariant). An i8 or i16 promises nothing: `ireduce` to them is
    /// the operand's register as it is (and `smt.rs` models them so too).
    fn value_fact(bits: u8) -> Fact {
        if bits == 32 {
            Fact::bits(32)
        } else {
            Fact::ANY
        }
    }

    fn pcc(&self, cx: &mut Cx<'_>) -> Result<(), PccError> {
        match self {
            MInst::Args { args } => args.iter().for_each(|&(v, _)| cx.abi_def(v)),
            MInst::StackArg { dst, .. } | MInst::LoadCallRet { dst, .. } => cx.abi_load(*dst),
            MInst::Ret { rets } => {
                for &(v, _) in rets {
                    cx.abi_use(v)?;
                }
            }
            MInst::Alu {
                op,
                size,
                dst,
                a,
                b,
            } => {
                let bits = if *size == Size::Q { 64 } else { 32 };
                let (dst, a) = (*dst, *a);
                match (op, b) {
                    (_, Rmi::Mem(m)) => {
                        cx.memory(address(m), bytes(*size), false, false, false)?;
                        result_of_width(cx, *size, dst, None);
                    }
                    (AluOp::Add, Rmi::Reg(r)) => {
                        cx.k.add(id(dst), id(a), Operand::Value(id(*r)), bits, false)
                    }
                    (AluOp::Add, Rmi::Imm(i)) if *i >= 0 => {
                        cx.k.add(id(dst), id(a), Operand::Imm(*i as u64), bits, false)
                    }
                    (AluOp::Add, Rmi::Imm(i)) => {
                        cx.k.sub_imm(id(dst), id(a), i.unsigned_abs().into(), bits)
                    }
                    (AluOp::Sub, Rmi::Imm(i)) if *i >= 0 => {
                        cx.k.sub_imm(id(dst), id(a), *i as u64, bits)
                    }
                    (AluOp::And, Rmi::Imm(i)) if *i >= 0 => cx.k.define(
                        id(dst),
                        Fact::Int {
                            lo: 0,
                            hi: *i as u64,
                            le: None,
                        },
                    ),
                    _ => result_of_width(cx, *size, dst, Some(a)),
                }
            }
            MInst::AluMem {
                size,
                amode,
                b,
                trap,
                ..
            } => {
                if let Rmi::Mem(m) = b {
                    cx.memory(address(m), bytes(*size), false, false, false)?;
                }
                cx.memory(address(amode), bytes(*size), trap.is_some(), false, true)?;
            }
            MInst::MulImm { size, dst, .. } => result_of_width(cx, *size, *dst, None),
            MInst::Lea { dst, amode } => cx.k.address_of(id(*dst), address(amode)),
            MInst::Shift {
                op: ShiftOp::Shl,
                size: size @ (Size::L | Size::Q),
                dst,
                a,
                amount: Ok(k),
            } => cx.k.shl_imm(
                id(*dst),
                id(*a),
                u32::from(*k) & if *size == Size::Q { 63 } else { 31 },
                if *size == Size::Q { 64 } else { 32 },
            ),
            MInst::Shift { size, dst, a, .. } | MInst::Unary { size, dst, a, .. } => {
                result_of_width(cx, *size, *dst, Some(*a))
            }
            MInst::Count { dst, .. } => cx.k.define(
                id(*dst),
                Fact::Int {
                    lo: 0,
                    hi: 64,
                    le: None,
                },
            ),
            MInst::Ext { op, dst, src } => match op {
                ExtOp::Zx8 => cx.k.zero_extend(id(*dst), id(*src), 8),
                ExtOp::Zx16 => cx.k.zero_extend(id(*dst), id(*src), 16),
                ExtOp::Zx32 => cx.k.zero_extend(id(*dst), id(*src), 32),
                ExtOp::Sx8To32 | ExtOp::Sx16To32 => cx.k.any_of_width(id(*dst), 32),
                ExtOp::Sx8To64 | ExtOp::Sx16To64 | ExtOp::Sx32To64 => {
                    cx.k.define(id(*dst), Fact::ANY)
                }
            },
            MInst::Mov { dst, src } => cx.k.copy(id(*dst), id(*src)),
            MInst::Imm { size, dst, imm } => {
                let k = if *size == Size::Q {
                    *imm
                } else {
                    u64::from(*imm as u32)
                };
                cx.k.constant(id(*dst), k)
            }
            MInst::FImm { dst, tmp, .. } => {
                cx.k.define(id(*tmp), Fact::ANY);
                cx.k.define(id(*dst), Fact::ANY);
            }
            MInst::FAlu { dst, .. } | MInst::FUn { dst, .. } | MInst::IntToFloat { dst, .. } => {
                cx.k.define(id(*dst), Fact::ANY)
            }
            // `movd` to an integer register clears the upper half.
            MInst::Bitcast { wide, dst, .. } => {
                cx.k.define(id(*dst), if *wide { Fact::ANY } else { Fact::bits(32) })
            }
            MInst::FloatToInt {
                dst_wide,
                dst,
                tmp_x,
                tmp_x2,
                tmp_g,
                ..
            } => {
                for t in [tmp_x, tmp_x2, tmp_g] {
                    cx.k.define(id(*t), Fact::ANY);
                }
                cx.k.define(id(*dst), if *dst_wide { Fact::ANY } else { Fact::bits(32) });
            }
            MInst::U64ToFloat {
                dst, tmp1, tmp2, ..
            } => {
                for t in [dst, tmp1, tmp2] {
                    cx.k.define(id(*t), Fact::ANY);
                }
            }
            // `setcc` and `movzbl`: exactly 0 or 1.
            MInst::SetCc { test: t, dst } => {
                test(cx, t)?;
                cx.k.define(id(*dst), Fact::bits(1));
            }
            MInst::FCmp { dst, tmp, .. } => {
                cx.k.define(id(*tmp), Fact::ANY);
                cx.k.define(id(*dst), Fact::bits(1));
            }
            MInst::Select {
                test: t,
                dst,
                t: on,
                f,
            } => {
                let cmp = test(cx, t)?;
                cx.k.select(id(*dst), cmp, id(*on), id(*f));
            }
            MInst::Load {
                op,
                dst,
                amode,
                trap,
            } => {
                cx.memory(
                    address(amode),
                    load_width(*op),
                    trap.is_some(),
                    false,
                    false,
                )?;
                cx.k.read_into(id(*dst), address(amode), load_width(*op));
                let f = match op {
                    LoadOp::U8 => Fact::bits(8),
                    LoadOp::U16 => Fact::bits(16),
                    LoadOp::U32 | LoadOp::S8To32 | LoadOp::S16To32 => Fact::bits(32),
                    _ => Fact::ANY,
                };
                cx.k.define(id(*dst), f);
            }
            MInst::Store {
                op, amode, trap, ..
            } => cx.memory(
                address(amode),
                store_width(*op),
                trap.is_some(),
                false,
                true,
            )?,
            MInst::AddTrap {
                size, dst, a, b, ..
            } => {
                let bits = if *size == Size::Q { 64 } else { 32 };
                match operand(cx, b, *size)? {
                    Some(b) => cx.k.add(id(*dst), id(*a), b, bits, true),
                    None => result_of_width(cx, *size, *dst, None),
                }
            }
            MInst::Div {
                size, quot, rem, ..
            } => {
                result_of_width(cx, *size, *quot, None);
                result_of_width(cx, *size, *rem, None);
            }
            MInst::SignHi { size, dst, .. } => result_of_width(cx, *size, *dst, None),
            MInst::Jump { .. } | MInst::Trap { .. } => {}
            MInst::Br { test: t, .. } => {
                test(cx, t)?;
            }
            MInst::BrTable { tmp1, tmp2, .. } => {
                cx.k.define(id(*tmp1), Fact::ANY);
                cx.k.define(id(*tmp2), Fact::ANY);
            }
            // Past the trap, the condition does not hold.
            MInst::TrapIf { test: t, .. } => {
                let cmp = test(cx, t)?;
                cx.k.assume(cmp, false);
            }
            MInst::Call { args, rets, .. } => {
                for &(v, _) in args {
                    cx.abi_use(v)?;
                }
                cx.call();
                for &(v, _) in rets {
                    cx.abi_def(v);
                }
            }
            MInst::StoreCallArg { src, .. } | MInst::StoreRet { src, .. } => cx.abi_store(*src)?,
        }
        Ok(())
    }
}

/// The 64-bit name of integer register `n`, as capstone prints it.
fn gpr_name(n: usize) -> &'static str {
    const NAMES: [&str; 16] = [
        "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12",
        "r13", "r14", "r15",
    ];
    NAMES.get(n).copied().unwrap_or("?")
}

/// The memory operands a proven instruction's encoding must have: its addressing mode
/// (registers allocated) and width.
fn expected_operands(inst: &MInst) -> Vec<(Amode, u64)> {
    let in_test = |t: &Test| match t {
        Test::Cmp {
            size,
            b: Rmi::Mem(m),
            ..
        } => vec![(*m, bytes(*size))],
        _ => Vec::new(),
    };
    match inst {
        MInst::Load { op, amode, .. } => vec![(*amode, load_width(*op))],
        MInst::Store { op, amode, .. } => vec![(*amode, store_width(*op))],
        MInst::AluMem { size, amode, .. } => vec![(*amode, bytes(*size))],
        MInst::Alu {
            size,
            b: Rmi::Mem(m),
            ..
        }
        | MInst::AddTrap {
            size,
            b: Rmi::Mem(m),
            ..
        } => vec![(*m, bytes(*size))],
        MInst::TrapIf { test, .. }
        | MInst::Select { test, .. }
        | MInst::SetCc { test, .. }
        | MInst::Br { test, .. } => in_test(test),
        _ => Vec::new(),
    }
}

/// Decodes the encoding of every emitted instruction that accesses memory through an
/// addressing mode (with capstone, independently of the assembler that encoded it) and
/// checks that it is the access that was proven: the same base and index registers, scale
/// 1, the same displacement and width. An emission bug that re-addresses or widens an
/// access is below the proof; this catches it. Returns the number of accesses checked.
pub fn decode_accesses(
    code: &[u8],
    emitted: &[crate::machinst::emit::Emitted<MInst>],
) -> Result<u64, crate::machinst::CodegenError> {
    use crate::machinst::CodegenError;
    use capstone::arch::BuildsCapstone;
    thread_local! {
        // Building a Capstone handle costs more than decoding a function's accesses.
        static CAPSTONE: Result<capstone::Capstone, String> = capstone::Capstone::new()
            .x86()
            .mode(capstone::arch::x86::ArchMode::Mode64)
            .detail(true)
            .build()
            .map_err(|e| e.to_string());
    }
    CAPSTONE.with(|cs| {
        let cs = cs
            .as_ref()
            .map_err(|e| CodegenError::new(format!("pcc: capstone: {e}")))?;
        decode_with(cs, code, emitted)
    })
}

/// One memory operand as capstone decodes it: base, index, scale, displacement, bytes.
type MemOperand = (Option<String>, Option<String>, i32, i64, u64);

fn decode_with(
    cs: &capstone::Capstone,
    code: &[u8],
    emitted: &[crate::machinst::emit::Emitted<MInst>],
) -> Result<u64, crate::machinst::CodegenError> {
    use crate::machinst::emit::What;
    use crate::machinst::{CodegenError, RegClass};
    use capstone::arch::x86::X86OperandType;
    use capstone::arch::ArchOperand;
    let mut checked = 0;
    for e in emitted {
        let bytes_of = &code[e.start as usize..e.end as usize];
        let insns = cs
            .disasm_all(bytes_of, u64::from(e.start))
            .map_err(|err| CodegenError::new(format!("pcc: capstone: {err}")))?;
        // Memory operands (`lea` computes an address, it reads nothing), and the sizes of
        // every operand.
        let mut found: Vec<MemOperand> = Vec::new();
        let mut sizes = Vec::new();
        let mut text = Vec::new();
        for i in insns.iter() {
            text.push(format!(
                "{} {}",
                i.mnemonic().unwrap_or("?"),
                i.op_str().unwrap_or("")
            ));
            let detail = cs
                .insn_detail(i)
                .map_err(|err| CodegenError::new(format!("pcc: capstone: {err}")))?;
            for op in detail.arch_detail().operands() {
                let ArchOperand::X86Operand(op) = op else {
                    continue;
                };
                sizes.push(op.size);
                if let (X86OperandType::Mem(m), false) = (&op.op_type, i.mnemonic() == Some("lea"))
                {
                    let name =
                        |r: capstone::RegId| (r.0 != 0).then(|| cs.reg_name(r).unwrap_or_default());
                    found.push((
                        name(m.base()),
                        name(m.index()),
                        m.scale(),
                        m.disp(),
                        u64::from(op.size),
                    ));
                }
            }
        }
        let fail = |why: String| {
            CodegenError::new(format!(
                "pcc: the code emitted at {:#x} decodes as `{}`: {why}",
                e.start,
                text.join("; ")
            ))
        };
        let frame = |m: &MemOperand, base: &str| {
            m.0.as_deref() == Some(base) && m.1.is_none() && m.3 >= 0 && m.4 == 8
        };
        match &e.what {
            // An integer move, spill or reload keeps all 64 bits: a zero-extension made
            // before it survives it (CVE-2021-32629 lost one in a reload).
            What::Move(from, to) => {
                let int = from.as_reg().or(to.as_reg()).map(|r| r.class()) == Some(RegClass::Int);
                let whole = sizes.iter().all(|&s| s == 8)
                    && found.iter().all(|m| frame(m, "rbp") || frame(m, "rsp"));
                if int && !whole {
                    return Err(fail(format!(
                        "a move of an integer register narrower than 64 bits (operand sizes {sizes:?})"
                    )));
                }
                checked += found.len() as u64;
            }
            What::Inst(inst) => {
                let want: Vec<MemOperand> = expected_operands(inst)
                    .iter()
                    .map(|(a, w)| {
                        (
                            Some(gpr_name(a.base.vreg()).to_string()),
                            a.index.map(|i| gpr_name(i.vreg()).to_string()),
                            1,
                            i64::from(a.disp),
                            *w,
                        )
                    })
                    .collect();
                let ok = match inst {
                    // A parameter above the return address; an argument in the outgoing area.
                    MInst::StackArg { .. } | MInst::StoreRet { .. } => {
                        matches!(&found[..], [m] if frame(m, "rbp"))
                    }
                    MInst::StoreCallArg { .. } | MInst::LoadCallRet { .. } => {
                        matches!(&found[..], [m] if frame(m, "rsp"))
                    }
                    // The jump table's entry, read by index (checked against its length).
                    MInst::BrTable { .. } => found.len() <= 1,
                    _ => found == want,
                };
                if !ok {
                    return Err(fail(format!(
                        "memory operands {found:?}, expected {want:?} (base, index, scale, displacement, bytes) as proven for `{inst:?}`"
                    )));
                }
                checked += found.len() as u64;
            }
        }
    }
    Ok(checked)
}
