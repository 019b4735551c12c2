//! A validated Wasm module, read into the facts the translator and the runtime need.

use super::WasmError;
use std::collections::BTreeSet;
use wasmparser::{
    CompositeInnerType, ElementItems, ElementKind, ExternalKind, FuncType, GlobalType, MemoryType,
    Operator, Parser, Payload, TableType, TypeRef, ValType, Validator, WasmFeatures,
};

/// A constant expression (global initialisers, segment offsets), kept as a small program
/// evaluated at instantiation, when imported globals are known.
#[derive(Clone, Debug, PartialEq)]
pub enum ConstOp {
    /// `i32.const`.
    I32(i32),
    /// `i64.const`.
    I64(i64),
    /// `f32.const`, as bits.
    F32(u32),
    /// `f64.const`, as bits.
    F64(u64),
    /// `ref.null`.
    RefNull,
    /// `ref.func`.
    RefFunc(u32),
    /// `global.get` of an (imported, immutable) global.
    GlobalGet(u32),
    /// Extended constant expressions: `i32.add` and friends, with the width and operator.
    Arith {
        /// `true` for the `i64` form.
        wide: bool,
        /// `+`, `-` or `*`.
        op: char,
    },
}

/// An import's source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportName {
    /// Module name.
    pub module: String,
    /// Field name.
    pub field: String,
}

/// A global: type, and an initialiser or an import.
#[derive(Clone, Debug)]
pub struct Global {
    /// Value type and mutability.
    pub ty: GlobalType,
    /// The initialiser of a defined global.
    pub init: Vec<ConstOp>,
    /// The source of an imported global.
    pub import: Option<ImportName>,
}

/// A memory: its type, and its import if it is imported.
#[derive(Clone, Debug)]
pub struct Memory {
    /// The type.
    pub ty: MemoryType,
    /// The source of an imported memory.
    pub import: Option<ImportName>,
}

/// A table of references.
#[derive(Clone, Debug)]
pub struct Table {
    /// The type.
    pub ty: TableType,
    /// The value of every initial element, as a constant expression (`ref.null` when the
    /// table section gives none).
    pub init: Vec<ConstOp>,
    /// The source of an imported table.
    pub import: Option<ImportName>,
}

/// What an element segment is for.
#[derive(Clone, Debug, PartialEq)]
pub enum ElemMode {
    /// Copied into `table` at `offset` (a constant expression) at instantiation, then
    /// dropped.
    Active {
        /// The table it initialises.
        table: u32,
        /// Where.
        offset: Vec<ConstOp>,
    },
    /// Kept for `table.init` until `elem.drop`.
    Passive,
    /// Only declares functions `ref.func` may name; dropped from the start.
    Declared,
}

/// An element segment: every item a constant expression of a reference.
#[derive(Clone, Debug)]
pub struct ElemSegment {
    /// Active, passive or declarative.
    pub mode: ElemMode,
    /// The items, each a constant expression (`ref.func`, `ref.null`, `global.get`).
    pub items: Vec<Vec<ConstOp>>,
}

/// An active data segment.
#[derive(Clone, Debug)]
pub struct DataSegment {
    /// The memory it initialises.
    pub memory: u32,
    /// Where, as a constant expression.
    pub offset: Vec<ConstOp>,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// A function: its type, and the body of a defined function.
#[derive(Clone, Debug)]
pub struct Func<'a> {
    /// The signature.
    pub ty: FuncType,
    /// The body, for a defined function.
    pub body: Option<wasmparser::FunctionBody<'a>>,
    /// The source of an imported function.
    pub import: Option<ImportName>,
}

/// An exported item.
#[derive(Clone, Debug)]
pub struct Export {
    /// The export name.
    pub name: String,
    /// What kind of item.
    pub kind: ExternalKind,
    /// Its index in the kind's index space.
    pub index: u32,
}

/// A validated module.
#[derive(Clone, Debug, Default)]
pub struct Module<'a> {
    /// Function types by type index (`None` for non-function types).
    pub types: Vec<Option<FuncType>>,
    /// All functions, imported first.
    pub funcs: Vec<Func<'a>>,
    /// All memories, imported first.
    pub memories: Vec<Memory>,
    /// All globals, imported first.
    pub globals: Vec<Global>,
    /// All tables, imported first.
    pub tables: Vec<Table>,
    /// Every element segment, by its index.
    pub elems: Vec<ElemSegment>,
    /// The functions a reference may name (Wasm's "declared" functions: those of element
    /// segments, exports, and global and table initialisers); `ref.func` names only these, so they are
    /// every function a `call_indirect` can reach.
    pub referenced: BTreeSet<u32>,
    /// Active data segments.
    pub data: Vec<DataSegment>,
    /// Every data segment by its index: a passive one's bytes, `None` for an active one
    /// (dropped once instantiation has written it).
    pub passive_data: Vec<Option<Vec<u8>>>,
    /// Exports.
    pub exports: Vec<Export>,
    /// The start function.
    pub start: Option<u32>,
    /// Function names from the name section, by function index.
    pub names: std::collections::HashMap<u32, String>,
}

/// The Wasm features the translator accepts in validation: the 3.0 standard (multi-memory,
/// memory64, extended constants, ...) plus custom page sizes. Features it cannot translate
/// (SIMD, GC, exceptions, threads) still validate, and are rejected by name when used.
pub fn features() -> WasmFeatures {
    WasmFeatures::default() | WasmFeatures::CUSTOM_PAGE_SIZES
}

impl Module<'_> {
    /// The globals that live in cells of their own rather than in the vmctx: the mutable
    /// ones that are imported or exported, which several instances read and write.
    pub fn global_cells(&self) -> Vec<u32> {
        let exported: BTreeSet<u32> = self
            .exports
            .iter()
            .filter(|e| e.kind == ExternalKind::Global)
            .map(|e| e.index)
            .collect();
        (0..self.globals.len() as u32)
            .filter(|&g| {
                let global = &self.globals[g as usize];
                global.ty.mutable && (global.import.is_some() || exported.contains(&g))
            })
            .collect()
    }
}

/// Why a module is beyond Wasm 2.0 without SIMD (the standard the translator aims to cover
/// in full): the error of validating it with only that standard's features, or `None`
/// when it validates, or when it is not valid under any proposal either (then it is
/// invalid, not beyond). A script runner reports what such a module cannot do as a skip.
pub fn beyond_wasm2(bytes: &[u8]) -> Option<String> {
    Validator::new_with_features(WasmFeatures::all())
        .validate_all(bytes)
        .ok()?;
    let wasm2 = WasmFeatures::WASM2.difference(WasmFeatures::SIMD);
    Validator::new_with_features(wasm2)
        .validate_all(bytes)
        .err()
        .map(|e| e.message().to_string())
}

/// Validates `bytes` and reads the module.
pub fn parse(bytes: &[u8]) -> Result<Module<'_>, WasmError> {
    Validator::new_with_features(features())
        .validate_all(bytes)
        .map_err(|e| WasmError::invalid(e.message().to_string(), Some(e.offset())))?;
    let mut m = Module::default();
    let mut defined_funcs = Vec::new();
    let mut bodies = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(WasmError::from)? {
            Payload::TypeSection(r) => {
                for group in r {
                    for sub in group?.into_types() {
                        m.types.push(match sub.composite_type.inner {
                            CompositeInnerType::Func(f) if !sub.composite_type.shared => Some(f),
                            _ => None,
                        });
                    }
                }
            }
            Payload::ImportSection(r) => {
                for import in r.into_imports() {
                    let import = import?;
                    let name = Some(ImportName {
                        module: import.module.to_string(),
                        field: import.name.to_string(),
                    });
                    match import.ty {
                        TypeRef::Func(t) | TypeRef::FuncExact(t) => m.funcs.push(Func {
                            ty: func_type(&m, t)?,
                            body: None,
                            import: name,
                        }),
                        TypeRef::Memory(ty) => m.memories.push(Memory { ty, import: name }),
                        TypeRef::Global(ty) => m.globals.push(Global {
                            ty,
                            init: Vec::new(),
                            import: name,
                        }),
                        TypeRef::Table(ty) => m.tables.push(Table {
                            ty,
                            init: vec![ConstOp::RefNull],
                            import: name,
                        }),
                        TypeRef::Tag(_) => {
                            return Err(WasmError::unsupported("tag imports (exceptions)"))
                        }
                    }
                }
            }
            Payload::FunctionSection(r) => {
                for t in r {
                    defined_funcs.push(t?);
                }
            }
            Payload::TableSection(r) => {
                for t in r {
                    let t = t?;
                    let init = match &t.init {
                        wasmparser::TableInit::RefNull => vec![ConstOp::RefNull],
                        wasmparser::TableInit::Expr(e) => const_expr(e)?,
                    };
                    m.tables.push(Table {
                        ty: t.ty,
                        init,
                        import: None,
                    });
                }
            }
            Payload::MemorySection(r) => {
                for ty in r {
                    m.memories.push(Memory {
                        ty: ty?,
                        import: None,
                    });
                }
            }
            Payload::GlobalSection(r) => {
                for g in r {
                    let g = g?;
                    m.globals.push(Global {
                        ty: g.ty,
                        init: const_expr(&g.init_expr)?,
                        import: None,
                    });
                }
            }
            Payload::ExportSection(r) => {
                for e in r {
                    let e = e?;
                    m.exports.push(Export {
                        name: e.name.to_string(),
                        kind: e.kind,
                        index: e.index,
                    });
                }
            }
            Payload::StartSection { func, .. } => m.start = Some(func),
            // Names only label traps: a malformed name section is ignored, as the spec says.
            Payload::CustomSection(c) => {
                if let wasmparser::KnownCustom::Name(names) = c.as_known() {
                    for names in names.into_iter().flatten() {
                        if let wasmparser::Name::Function(map) = names {
                            for n in map.into_iter().flatten() {
                                m.names.insert(n.index, n.name.to_string());
                            }
                        }
                    }
                }
            }
            Payload::ElementSection(r) => {
                for e in r {
                    let e = e?;
                    let mode = match e.kind {
                        ElementKind::Active {
                            table_index,
                            offset_expr,
                        } => ElemMode::Active {
                            table: table_index.unwrap_or(0),
                            offset: const_expr(&offset_expr)?,
                        },
                        ElementKind::Passive => ElemMode::Passive,
                        ElementKind::Declared => ElemMode::Declared,
                    };
                    let mut items = Vec::new();
                    match e.items {
                        ElementItems::Functions(r) => {
                            for f in r {
                                items.push(vec![ConstOp::RefFunc(f?)]);
                            }
                        }
                        ElementItems::Expressions(_, r) => {
                            for expr in r {
                                items.push(const_expr(&expr?)?);
                            }
                        }
                    }
                    m.elems.push(ElemSegment { mode, items });
                }
            }
            Payload::DataSection(r) => {
                for d in r {
                    let d = d?;
                    m.passive_data.push(match d.kind {
                        wasmparser::DataKind::Passive => Some(d.data.to_vec()),
                        wasmparser::DataKind::Active { .. } => None,
                    });
                    if let wasmparser::DataKind::Active {
                        memory_index,
                        offset_expr,
                    } = d.kind
                    {
                        m.data.push(DataSegment {
                            memory: memory_index,
                            offset: const_expr(&offset_expr)?,
                            bytes: d.data.to_vec(),
                        });
                    }
                }
            }
            Payload::CodeSectionEntry(body) => bodies.push(body),
            _ => {}
        }
    }
    let named = |ops: &Vec<ConstOp>| -> Vec<u32> {
        ops.iter()
            .filter_map(|op| match op {
                ConstOp::RefFunc(f) => Some(*f),
                _ => None,
            })
            .collect()
    };
    m.referenced = m
        .elems
        .iter()
        .flat_map(|e| e.items.iter().flat_map(named))
        .chain(m.globals.iter().flat_map(|g| named(&g.init)))
        .chain(m.tables.iter().flat_map(|t| named(&t.init)))
        .chain(
            m.exports
                .iter()
                .filter(|e| matches!(e.kind, ExternalKind::Func | ExternalKind::FuncExact))
                .map(|e| e.index),
        )
        .collect();
    for (t, body) in defined_funcs.into_iter().zip(bodies) {
        m.funcs.push(Func {
            ty: func_type(&m, t)?,
            body: Some(body),
            import: None,
        });
    }
    Ok(m)
}

fn func_type(m: &Module, t: u32) -> Result<FuncType, WasmError> {
    m.types
        .get(t as usize)
        .cloned()
        .flatten()
        .ok_or_else(|| WasmError::unsupported("function types outside the MVP type system"))
}

fn const_expr(expr: &wasmparser::ConstExpr) -> Result<Vec<ConstOp>, WasmError> {
    let mut ops = Vec::new();
    let mut reader = expr.get_operators_reader();
    while !reader.eof() {
        let offset = reader.original_position();
        ops.push(match reader.read()? {
            Operator::I32Const { value } => ConstOp::I32(value),
            Operator::I64Const { value } => ConstOp::I64(value),
            Operator::F32Const { value } => ConstOp::F32(value.bits()),
            Operator::F64Const { value } => ConstOp::F64(value.bits()),
            Operator::RefNull { .. } => ConstOp::RefNull,
            Operator::RefFunc { function_index } => ConstOp::RefFunc(function_index),
            Operator::GlobalGet { global_index } => ConstOp::GlobalGet(global_index),
            Operator::I32Add => ConstOp::Arith {
                wide: false,
                op: '+',
            },
            Operator::I32Sub => ConstOp::Arith {
                wide: false,
                op: '-',
            },
            Operator::I32Mul => ConstOp::Arith {
                wide: false,
                op: '*',
            },
            Operator::I64Add => ConstOp::Arith {
                wide: true,
                op: '+',
            },
            Operator::I64Sub => ConstOp::Arith {
                wide: true,
                op: '-',
            },
            Operator::I64Mul => ConstOp::Arith {
                wide: true,
                op: '*',
            },
            Operator::End => continue,
            op => {
                return Err(
                    WasmError::unsupported(format!("constant expression operator {op:?}"))
                        .at(offset),
                )
            }
        });
    }
    Ok(ops)
}

/// log2 of a reference's size in bytes: references are i64s (see [`clif_type`]), in
/// tables and element segments too.
pub const REF_SIZE_LOG2: u32 = 3;

/// The bits of a reference to function `f` of an instance whose references start after
/// `base` (0 is null). Each instance of a store gets its own range of these, so a reference
/// names one function of one instance wherever it is stored ([`super::VmLayout::func_refs`]).
pub fn func_ref_bits(base: u64, f: u32) -> u64 {
    base + u64::from(f) + 1
}

/// The bits of the host's external reference `n` (0 is null).
pub fn extern_ref_bits(n: u32) -> u64 {
    u64::from(n) + 1
}

/// The CLIF type of a Wasm value type, or the feature that would be needed.
pub fn clif_type(ty: ValType) -> Result<crate::ir::Type, WasmError> {
    use crate::ir::types;
    Ok(match ty {
        ValType::I32 => types::I32,
        ValType::I64 => types::I64,
        ValType::F32 => types::F32,
        ValType::F64 => types::F64,
        ValType::V128 => return Err(WasmError::unsupported("v128 values (SIMD)")),
        // A reference is 64 bits: 0 is null, `f + 1` is function `f` of the instance, and
        // `n + 1` is the host's external reference `n`. Typed function references are
        // function references; the GC proposal's objects can never be made (its
        // instructions are rejected by name), so its reference types only ever hold null.
        ValType::Ref(_) => types::I64,
    })
}
