//! The small definition language: operands, type constraints, formats and instructions.

/// A set of value types an operand or a controlling type variable may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeSet {
    /// `i32` only.
    I32,
    /// `i8 i16 i32 i64`.
    Int,
    /// `i32 i64`: the types an address or a memory index may have.
    Addr,
    /// `f32 f64`.
    Float,
    /// Every scalar type: `i8 i16 i32 i64 f32 f64`.
    Any,
}

impl TypeSet {
    /// The Rust expression (in the main crate) of this set's membership test for a `Type` `t`.
    pub fn rust_predicate(self) -> &'static str {
        match self {
            TypeSet::I32 => "TypeSet::I32",
            TypeSet::Int => "TypeSet::Int",
            TypeSet::Addr => "TypeSet::Addr",
            TypeSet::Float => "TypeSet::Float",
            TypeSet::Any => "TypeSet::Any",
        }
    }
}

/// How the type of a value operand is constrained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    /// The instruction's controlling type.
    Ctrl,
    /// Any type from the set, independent of the controlling type. Further relations (an
    /// extension source narrower than its result, say) are checked by the verifier.
    Free(TypeSet),
    /// The target's pointer type.
    Pointer,
}

/// The type of a result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultType {
    /// The controlling type.
    Ctrl,
    /// A fixed type, by its CLIF name.
    Fixed(&'static str),
}

/// Immediate operand kinds. `isle_name` is the ISLE type name upstream uses for the kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImmKind {
    /// A 64-bit integer constant.
    Imm64,
    /// An `f32` constant, as bits.
    Ieee32,
    /// An `f64` constant, as bits.
    Ieee64,
    /// An integer condition code.
    IntCC,
    /// A float condition code.
    FloatCC,
    /// A trap code.
    TrapCode,
    /// Memory flags (endianness, alignment, trap code, alias region).
    MemFlags,
    /// A signed 32-bit address offset (ordinary loads and stores).
    Offset32,
    /// An unsigned 64-bit static offset (the bounds-checked accesses).
    Offset64,
    /// Which bytes a bounds-checked access moves and how they are extended or truncated.
    AccessKind,
    /// A reference to a declared memory.
    Memory,
    /// A branch target with its block arguments.
    BlockCall,
    /// A default target and a list of targets (`br_table`), written inline.
    JumpTable,
    /// A reference to a declared external function.
    FuncRef,
    /// A variable-length list of values.
    ValueSlice,
}

impl ImmKind {
    /// The name of this kind as an ISLE type, and as a Rust type in the main crate.
    pub fn isle_name(self) -> &'static str {
        match self {
            ImmKind::Imm64 => "Imm64",
            ImmKind::Ieee32 => "Ieee32",
            ImmKind::Ieee64 => "Ieee64",
            ImmKind::IntCC => "IntCC",
            ImmKind::FloatCC => "FloatCC",
            ImmKind::TrapCode => "TrapCode",
            ImmKind::MemFlags => "MemFlags",
            ImmKind::Offset32 => "Offset32",
            ImmKind::Offset64 => "Offset64",
            ImmKind::AccessKind => "AccessKind",
            ImmKind::Memory => "Memory",
            ImmKind::BlockCall => "BlockCall",
            ImmKind::JumpTable => "JumpTable",
            ImmKind::FuncRef => "FuncRef",
            ImmKind::ValueSlice => "ValueSlice",
        }
    }
}

/// What kind of operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperandKind {
    /// An SSA value.
    Value(ValueType),
    /// An immediate.
    Imm(ImmKind),
}

/// One input operand: a name (used for builder parameters and ISLE extractors) and a kind.
#[derive(Clone, Debug)]
pub struct Operand {
    /// The operand name, as in upstream's definitions where they coincide.
    pub name: &'static str,
    /// Its kind.
    pub kind: OperandKind,
}

/// An instruction format: the shape of the `InstructionData` variant, and of the text.
///
/// The immediates come first in the variant, then the value operands, then the trailing
/// immediates, exactly as the operands appear in CLIF text; `values` is the number of fixed
/// value operands (`None` for a variable-length list).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    /// The variant name.
    pub name: &'static str,
    /// Immediates before the values: `(field name, kind)`.
    pub leading: &'static [(&'static str, ImmKind)],
    /// Number of fixed values, or `None` for a value list.
    pub values: Option<usize>,
    /// Immediates after the values.
    pub trailing: &'static [(&'static str, ImmKind)],
}

/// Effects an instruction may have, as the optimizer and lowerings must respect them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// Reads memory.
    pub can_load: bool,
    /// Writes memory.
    pub can_store: bool,
    /// May trap.
    pub can_trap: bool,
    /// Has effects beyond its results other than loads, stores and traps (a call).
    pub other_side_effects: bool,
    /// Ends a block.
    pub is_terminator: bool,
    /// Transfers control to blocks of the function.
    pub is_branch: bool,
    /// Calls a function.
    pub is_call: bool,
    /// Returns from the function.
    pub is_return: bool,
}

/// Where the controlling type variable comes from, if the instruction is polymorphic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ctrl {
    /// Not polymorphic: result types are fixed.
    None,
    /// Written as a `.type` suffix in the text (e.g. `iconst.i32`), from this set.
    Explicit(TypeSet),
    /// Inferred from the value operand with this index (among value operands), from this set.
    FromOperand(usize, TypeSet),
}

/// One instruction definition.
#[derive(Clone, Debug)]
pub struct Instruction {
    /// The CLIF name.
    pub name: &'static str,
    /// Semantics, precise enough to implement from.
    pub doc: &'static str,
    /// The format.
    pub format: Format,
    /// Input operands, in CLIF order.
    pub operands: Vec<Operand>,
    /// Result types.
    pub results: Vec<ResultType>,
    /// Whether results are variable (a call's results come from its signature).
    pub variable_results: bool,
    /// The controlling type variable.
    pub ctrl: Ctrl,
    /// Effects.
    pub effects: Effects,
    /// Whether this opcode exists in upstream Cranelift 0.135 with the same meaning.
    pub shared_with_upstream: bool,
}

impl Instruction {
    /// Starts a definition.
    pub fn new(name: &'static str, doc: &'static str, format: Format) -> Self {
        Instruction {
            name,
            doc,
            format,
            operands: Vec::new(),
            results: Vec::new(),
            variable_results: false,
            ctrl: Ctrl::None,
            effects: Effects::default(),
            shared_with_upstream: true,
        }
    }

    /// Adds a value operand.
    pub fn value(mut self, name: &'static str, ty: ValueType) -> Self {
        self.operands.push(Operand {
            name,
            kind: OperandKind::Value(ty),
        });
        self
    }

    /// Adds an immediate operand.
    pub fn imm(mut self, name: &'static str, kind: ImmKind) -> Self {
        self.operands.push(Operand {
            name,
            kind: OperandKind::Imm(kind),
        });
        self
    }

    /// Adds a result.
    pub fn result(mut self, ty: ResultType) -> Self {
        self.results.push(ty);
        self
    }

    /// Results come from a signature.
    pub fn variable_results(mut self) -> Self {
        self.variable_results = true;
        self
    }

    /// Sets the controlling type variable.
    pub fn ctrl(mut self, ctrl: Ctrl) -> Self {
        self.ctrl = ctrl;
        self
    }

    /// May read memory.
    pub fn can_load(mut self) -> Self {
        self.effects.can_load = true;
        self
    }

    /// May write memory.
    pub fn can_store(mut self) -> Self {
        self.effects.can_store = true;
        self
    }

    /// May trap.
    pub fn can_trap(mut self) -> Self {
        self.effects.can_trap = true;
        self
    }

    /// Ends its block.
    pub fn terminator(mut self) -> Self {
        self.effects.is_terminator = true;
        self
    }

    /// Branches to blocks.
    pub fn branch(mut self) -> Self {
        self.effects.is_branch = true;
        self.terminator()
    }

    /// Calls a function.
    pub fn call(mut self) -> Self {
        self.effects.is_call = true;
        self.effects.other_side_effects = true;
        self.effects.can_load = true;
        self.effects.can_store = true;
        self.effects.can_trap = true;
        self
    }

    /// Returns.
    pub fn returns(mut self) -> Self {
        self.effects.is_return = true;
        self.terminator()
    }

    /// Marks an instruction that upstream Cranelift does not have.
    pub fn new_in_this_project(mut self) -> Self {
        self.shared_with_upstream = false;
        self
    }

    /// The `CamelCase` opcode name.
    pub fn camel_name(&self) -> String {
        self.name
            .split('_')
            .map(|w| {
                let mut c = w.chars();
                match c.next() {
                    Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                    None => String::new(),
                }
            })
            .collect()
    }

    /// The value operands, in order.
    pub fn value_operands(&self) -> impl Iterator<Item = (&'static str, ValueType)> + '_ {
        self.operands.iter().filter_map(|o| match o.kind {
            OperandKind::Value(t) => Some((o.name, t)),
            OperandKind::Imm(_) => None,
        })
    }

    /// Checks that the operand list fits the format; the generators rely on it.
    pub fn check_format(&self) -> Result<(), String> {
        let imms: Vec<ImmKind> = self
            .operands
            .iter()
            .filter_map(|o| match o.kind {
                OperandKind::Imm(ImmKind::ValueSlice) => None,
                OperandKind::Imm(k) => Some(k),
                OperandKind::Value(_) => None,
            })
            .collect();
        let expected: Vec<ImmKind> = self
            .format
            .leading
            .iter()
            .chain(self.format.trailing)
            .map(|(_, k)| *k)
            .collect();
        if imms != expected {
            return Err(format!(
                "{}: immediates {imms:?} do not fit format {}",
                self.name, self.format.name
            ));
        }
        let values = self.value_operands().count();
        let varargs = self
            .operands
            .iter()
            .any(|o| matches!(o.kind, OperandKind::Imm(ImmKind::ValueSlice)));
        match self.format.values {
            Some(n) if n == values && !varargs => Ok(()),
            None if varargs => Ok(()),
            _ => Err(format!(
                "{}: {values} values do not fit format {}",
                self.name, self.format.name
            )),
        }
    }
}
