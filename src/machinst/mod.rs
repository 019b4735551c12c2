//! The machine layer every backend shares: machine instructions over virtual registers
//! ([`vcode::VCode`]), lowering from the IR driven by a backend's ISLE rules ([`lower`]),
//! register allocation by `regalloc2`, and a code buffer with labels, fix-ups, out-of-line
//! trap islands, a trap table and call relocations ([`buffer`]).
//!
//! A backend supplies a [`MachInst`] type, the ISLE rules that choose its instructions, its
//! register environment, and emission. Proof-carrying code ([`pcc`]) checks the lowered
//! machine instructions of a function against the regions its accesses declare.

pub mod abi;
pub mod access;
pub mod buffer;
pub mod emit;
pub mod isle;
pub mod lower;
pub mod pcc;
pub mod vcode;

use crate::ir::TrapCode;
pub use regalloc2::{Allocation, Operand, PReg, PRegSet, RegClass, VReg};
use std::collections::BTreeMap;
use std::fmt;

/// A block of machine code, as regalloc2 numbers it (emission order).
pub type MachBlock = regalloc2::Block;

/// How an instruction uses one of its register operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Read.
    Use,
    /// Written (late: may share a register with a use).
    Def,
    /// Written into the register of operand `n` (two-address form).
    Reuse(usize),
    /// Read from a fixed register.
    FixedUse(PReg),
    /// Written to a fixed register.
    FixedDef(PReg),
    /// A scratch register: written early, dead after.
    Temp,
}

/// The target-independent properties of a backend's machine instruction.
pub trait MachInst: Clone + fmt::Debug {
    /// Calls `f` on every register operand with its role, in one fixed order: operand
    /// collection, allocation and emission all walk it, so their orders cannot drift apart.
    fn visit(&mut self, f: &mut dyn FnMut(&mut VReg, Role));
    /// Reports the instruction's register operands, in the order emission reads allocations.
    fn operands(&self, collect: &mut Vec<Operand>) {
        self.clone().visit(&mut |v, role| {
            collect.push(match role {
                Role::Use => Operand::reg_use(*v),
                Role::Def => Operand::reg_def(*v),
                Role::Reuse(n) => Operand::reg_reuse_def(*v, n),
                Role::FixedUse(p) => Operand::reg_fixed_use(*v, p),
                Role::FixedDef(p) => Operand::reg_fixed_def(*v, p),
                Role::Temp => Operand::reg_temp(*v),
            })
        });
    }
    /// Physical registers the instruction overwrites beyond its defs (calls).
    fn clobbers(&self) -> PRegSet {
        PRegSet::empty()
    }
    /// Whether the instruction only writes its register results: no memory access, trap,
    /// control flow or clobber. Lowering drops such an instruction when no result is used.
    fn is_pure(&self) -> bool {
        false
    }
    /// An unconditional branch to `target` (split edges are made of one).
    fn gen_jump(target: MachBlock) -> Self
    where
        Self: Sized;
    /// Whether the instruction returns from the function.
    fn is_ret(&self) -> bool;
    /// The successor blocks when the instruction ends a block with a branch.
    fn branch_targets(&self) -> Vec<MachBlock>;
    /// The target of an unconditional jump.
    fn jump_target(&self) -> Option<MachBlock>;
    /// Calls `f` on every register operand, in the order of [`MachInst::operands`].
    fn visit_regs(&mut self, f: &mut dyn FnMut(&mut VReg)) {
        self.visit(&mut |v, _| f(v));
    }
    /// Replaces each virtual register operand by the physical register regalloc2 gave it
    /// (as a `VReg` numbered by hardware encoding), in operand order.
    fn allocate(&mut self, allocs: &[Allocation]) {
        let mut k = 0;
        self.visit_regs(&mut |v| {
            let p = allocs[k]
                .as_reg()
                .expect("operands are register-constrained");
            *v = VReg::new(p.hw_enc(), p.class());
            k += 1;
        });
    }
}

/// Where a trap site's code comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrapSite {
    /// The trap code reported for a trap at this site.
    pub code: TrapCode,
}

/// A call site whose target is another function, to be resolved by whoever places the code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reloc {
    /// Offset of the calling instruction in the function's code.
    pub offset: u32,
    /// Name of the callee as written in the IR (`%memory_grow`, `u0:3`).
    pub callee: String,
}

/// The machine code of one function.
#[derive(Clone, Debug, Default)]
pub struct CompiledCode {
    /// The encoded instructions.
    pub code: Vec<u8>,
    /// Code offset of each instruction that may trap, and the trap code it reports.
    pub traps: BTreeMap<u32, TrapSite>,
    /// Calls to patch when the function is placed.
    pub relocs: Vec<Reloc>,
    /// The stack frame: bytes beyond the saved frame pointer and return address, or `None`
    /// for a function that sets up no frame (which a backtrace must know: such a function's
    /// return address is not in a frame of its own).
    pub frame: Option<u32>,
    /// What proof-carrying code proved, when it was enabled.
    pub pcc: Option<pcc::PccReport>,
    /// Under `enable_pcc`: how many emitted memory accesses were decoded back and found to
    /// be the proven ones (addressing mode, registers, displacement, width).
    pub decoded: Option<u64>,
}

/// A backend could not compile a function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodegenError {
    /// What is wrong, naming the instruction when there is one.
    pub message: String,
}

impl fmt::Display for CodegenError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CodegenError {}

impl CodegenError {
    /// An error with `message`.
    pub fn new(message: impl Into<String>) -> Self {
        CodegenError {
            message: message.into(),
        }
    }
}
