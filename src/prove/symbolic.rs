//! What the evaluators of code (CLIF in [`super::legalized`], machine instructions beside
//! each ISA) report about one access, as SMT-LIB terms over the instruction's variables, and
//! the bit-vector helpers they share. The claim such an [`Execution`] must meet is
//! `Setup::claim`, written once for every kind of code.

use crate::ir::{Endianness, TrapCode};

/// What a piece of code does, symbolically.
#[derive(Clone, Debug, Default)]
pub struct Execution {
    /// Conditions under which a check traps, with its trap code.
    pub traps: Vec<(String, TrapCode)>,
    /// The one memory access the code makes, if it makes one.
    pub access: Option<Access>,
    /// A load's result, at the width of the instruction's type.
    pub result: Option<String>,
    /// Why the code cannot equal the instruction, whatever the inputs.
    pub wrong: Vec<String>,
    /// How many of [`Execution::traps`] the code checks before its access (set by
    /// [`Execution::record`]): out of bounds, only these may keep the access from happening.
    pub checks_before: usize,
    /// Conditions under which the code has no defined behaviour (an operation the machine
    /// does not define there, such as a `g32` bound subtraction past zero, which panics a
    /// debug build of `pulley-interpreter`): the claim requires that none holds.
    pub undefined: Vec<String>,
    /// Variables the evaluation made up (bits a register holds that nothing defined), with
    /// their widths: the claim must hold for every value of these too.
    pub unknowns: Vec<(String, u32)>,
}

/// One memory access.
#[derive(Clone, Debug)]
pub struct Access {
    /// The address of the first byte (pointer width).
    pub addr: String,
    /// The register a base-register null check tests (Pulley's `_z` modes; any CLIF access
    /// on a target whose null check is of that kind), if the access makes one.
    pub null_tested: Option<String>,
    /// Width in bits.
    pub bits: u32,
    /// The trap code of a fault of this access; `None`: it must not fault.
    pub trap: Option<TrapCode>,
    /// It accesses bytes in the order foreign to the target (no null check applies then).
    pub foreign: bool,
    /// For a store, the bytes written, packed as the variable `mem` is.
    pub stored: Option<String>,
}

impl Execution {
    /// Records the code's access, after the checks recorded so far.
    pub fn record(&mut self, a: Access) -> Result<(), String> {
        if self.access.is_some() {
            return Err("the code accesses memory twice".into());
        }
        self.access = Some(a);
        self.checks_before = self.traps.len();
        Ok(())
    }
}

/// The literal `x` of `bits` bits.
pub fn lit(bits: u32, x: u128) -> String {
    format!("(_ bv{x} {bits})")
}

/// `t`, `from` bits wide, zero-extended to `to` bits.
pub fn zext(t: &str, from: u32, to: u32) -> String {
    if from == to {
        t.to_string()
    } else {
        format!("((_ zero_extend {}) {t})", to - from)
    }
}

/// `t`, `from` bits wide, sign-extended to `to` bits.
pub fn sext(t: &str, from: u32, to: u32) -> String {
    if from == to {
        t.to_string()
    } else {
        format!("((_ sign_extend {}) {t})", to - from)
    }
}

/// The low `to` bits of `t`, `from` bits wide.
pub fn low(t: &str, from: u32, to: u32) -> String {
    if from == to {
        t.to_string()
    } else {
        format!("((_ extract {} 0) {t})", to - 1)
    }
}

/// The bytes of a `bits`-bit term in reverse order.
pub fn bswap(t: &str, bits: u32) -> String {
    if bits == 8 {
        return t.to_string();
    }
    let bytes: Vec<String> = (0..bits / 8)
        .map(|i| format!("((_ extract {} {}) {t})", 8 * i + 7, 8 * i))
        .collect();
    format!("(concat {})", bytes.join(" "))
}

/// Whether the unsigned sum of the `bits`-bit terms `a` and `b` carries out of `bits` bits:
/// the overflow `uadd_overflow_trap`, x86's `add`+`jb` and Pulley's `xadd*_uoverflow_trap`
/// trap on.
pub fn carries(a: &str, b: &str, bits: u32) -> String {
    let sum = format!(
        "(bvadd {} {})",
        zext(a, bits, bits + 1),
        zext(b, bits, bits + 1)
    );
    format!("(= ((_ extract {bits} {bits}) {sum}) #b1)")
}

/// What `bits / 8` bytes of memory mean as a value in byte order `order`. The bytes are the
/// variable `mem`, packed with the lowest address in the lowest bits. This is the memory
/// model of CLIF and of every machine here, shared by the instruction and the code.
pub fn bytes_as_value(order: Endianness, bits: u32) -> String {
    match order {
        Endianness::Little => "mem".to_string(),
        Endianness::Big => bswap("mem", bits),
    }
}

/// The bytes a store of the `bits`-bit `v` in byte order `order` writes, packed as `mem`.
pub fn value_as_bytes(v: &str, order: Endianness, bits: u32) -> String {
    match order {
        Endianness::Little => v.to_string(),
        Endianness::Big => bswap(v, bits),
    }
}

/// How control goes on after a machine instruction.
pub enum Flow {
    /// To the next instruction.
    Next,
    /// To the start of this block.
    Jump(crate::machinst::MachBlock),
    /// Nowhere: the function returned or trapped.
    Stop,
}

/// The state of a symbolic machine: a term for each virtual register (64 bits for integer
/// registers, the value's width for float ones), and what the code did so far.
#[derive(Default)]
pub struct Machine {
    /// The registers defined so far.
    pub regs: std::collections::HashMap<crate::machinst::VReg, String>,
    /// The function's parameters, in order, as the calling convention passes them.
    pub params: Vec<String>,
    /// What the code did.
    pub e: Execution,
    /// The returned registers' terms.
    pub returned: Vec<String>,
}

impl Machine {
    /// The term in `v`.
    pub fn get(&self, v: crate::machinst::VReg) -> Result<String, String> {
        self.regs
            .get(&v)
            .cloned()
            .ok_or_else(|| format!("v{} is read before it is written", v.vreg()))
    }

    /// Writes `t` to `v`.
    pub fn set(&mut self, v: crate::machinst::VReg, t: String) {
        self.regs.insert(v, t);
    }

    /// A fresh unconstrained `bits`-bit variable: bits no instruction defined.
    pub fn unknown(&mut self, bits: u32) -> String {
        let name = format!("unknown{}", self.e.unknowns.len());
        self.e.unknowns.push((name.clone(), bits));
        name
    }

    /// A 64-bit register whose low 32 bits are `t` and whose upper bits are unknown.
    pub fn low32(&mut self, t: String) -> String {
        self.param(&t, 32)
    }

    /// A 64-bit parameter register holding the `bits`-bit `t` in its low bits and unknown
    /// bits above them: what both System V and Pulley promise of a narrow integer argument.
    pub fn param(&mut self, t: &str, bits: u32) -> String {
        match bits {
            64 => t.to_string(),
            _ => {
                let upper = self.unknown(64 - bits);
                format!("(concat {upper} {t})")
            }
        }
    }

    /// Defines the parameter registers `args`, in the order of the function's parameters
    /// (an `Args` pseudo-instruction).
    pub fn args<P>(&mut self, args: &[(crate::machinst::VReg, P)]) -> Result<(), String> {
        for (i, (v, _)) in args.iter().enumerate() {
            let p = self
                .params
                .get(i)
                .cloned()
                .ok_or("more arguments than parameters")?;
            self.set(*v, p);
        }
        Ok(())
    }

    /// Returns the registers `rets` (a `Ret`): the run stops.
    pub fn ret<P>(&mut self, rets: &[(crate::machinst::VReg, P)]) -> Result<Flow, String> {
        for (v, _) in rets {
            let t = self.get(*v)?;
            self.returned.push(t);
        }
        Ok(Flow::Stop)
    }

    /// Records the access, after the checks made so far.
    pub fn access(&mut self, a: Access) -> Result<(), String> {
        self.e.record(a)
    }
}

/// The semantics of a backend's machine instructions, for the prover: each instruction
/// updates a [`Machine`]. Lives beside each ISA (`src/isa/*/smt.rs`).
pub trait Semantics {
    /// Executes `self`.
    fn execute(&self, m: &mut Machine) -> Result<Flow, String>;
}

/// Runs `vcode` from its entry with the parameters `params` makes (as the convention passes
/// them)
/// until it returns or traps. Only code without conditional branches (conditional traps
/// are not branches) can be run: that is every single-access function's.
pub fn run<I: Semantics + crate::machinst::MachInst>(
    vcode: &crate::machinst::vcode::VCode<I>,
    params: impl FnOnce(&mut Machine) -> Vec<String>,
) -> Result<Machine, String> {
    let mut m = Machine::default();
    m.params = params(&mut m);
    let mut block = 0usize;
    // Each block at most once: the code has no loops.
    for _ in 0..=vcode.blocks.len() {
        let b = vcode
            .blocks
            .get(block)
            .ok_or("a jump out of the function")?;
        let mut next = None;
        for inst in &vcode.insts[b.start as usize..b.end as usize] {
            match inst.execute(&mut m)? {
                Flow::Next => {}
                Flow::Jump(t) => {
                    next = Some(t.index());
                    break;
                }
                Flow::Stop => return Ok(m),
            }
        }
        block = next.ok_or("a block that ends without a jump, return or trap")?;
    }
    Err("the code loops".into())
}
