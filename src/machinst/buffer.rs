//! A code buffer with labels and fix-ups, out-of-line trap islands, a trap table and call
//! relocations.
//!
//! Every backend encodes its instructions into the byte vector itself and tells the buffer
//! where a relative offset to a label sits, in which field, and what position it is relative
//! to (Pulley: the start of the branch; x64: the end of the instruction; aarch64: the branch
//! itself, in words, in the instruction's immediate field). Labels are resolved once the
//! whole function is emitted.

use super::{CompiledCode, Reloc, TrapSite};
use crate::ir::TrapCode;
use std::collections::BTreeMap;

/// A position in the code, bound once emission reaches it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Label(u32);

impl Label {
    /// The label's number, for encoders that carry labels as integers.
    pub fn index(self) -> u32 {
        self.0
    }
    /// The label numbered `index` (see [`Label::index`]).
    pub fn from_index(index: u32) -> Label {
        Label(index)
    }
}

/// Where and how a label's relative offset is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FixupKind {
    /// A little-endian 32-bit byte offset (x64, Pulley, jump tables).
    Rel32,
    /// aarch64 `b`/`bl`: a word offset in bits 0..26 of the instruction (±128 MiB).
    Arm64Jump26,
    /// aarch64 `b.cond`/`cbz`/`cbnz`: a word offset in bits 5..24 (±1 MiB).
    Arm64Cond19,
    /// aarch64 `adr`: a byte offset split into bits 29..31 (low 2) and 5..24 (±1 MiB).
    Arm64Adr21,
}

#[derive(Clone, Copy, Debug)]
struct Fixup {
    /// Where the offset is stored (the instruction, for the aarch64 kinds).
    at: u32,
    /// The position the offset is relative to.
    base: u32,
    label: Label,
    kind: FixupKind,
}

/// The code of one function while it is emitted.
#[derive(Debug, Default)]
pub struct CodeBuffer {
    /// Encoded bytes so far.
    pub data: Vec<u8>,
    labels: Vec<Option<u32>>,
    fixups: Vec<Fixup>,
    traps: BTreeMap<u32, TrapSite>,
    relocs: Vec<Reloc>,
    islands: Vec<(TrapCode, Label)>,
}

impl CodeBuffer {
    /// The current offset.
    pub fn offset(&self) -> u32 {
        self.data.len() as u32
    }

    /// A fresh unbound label.
    pub fn new_label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() as u32 - 1)
    }

    /// Binds `label` to the current offset.
    pub fn bind(&mut self, label: Label) {
        debug_assert!(self.labels[label.0 as usize].is_none(), "label bound twice");
        self.labels[label.0 as usize] = Some(self.offset());
    }

    /// Records that the four bytes at `at` hold `label - base`, to be patched at the end.
    pub fn use_label(&mut self, at: u32, base: u32, label: Label) {
        self.use_label_as(at, base, label, FixupKind::Rel32);
    }

    /// Records that the field `kind` of the instruction or data at `at` holds `label - base`.
    pub fn use_label_as(&mut self, at: u32, base: u32, label: Label, kind: FixupKind) {
        self.fixups.push(Fixup {
            at,
            base,
            label,
            kind,
        });
    }

    /// The first label use whose offset does not fit its field, once every used label is
    /// bound: a function too large for its branches (aarch64's conditional branches reach
    /// ±1 MiB), which the backend reports as an error instead of emitting a wrong branch.
    pub fn out_of_range(&self) -> Option<(u32, i64)> {
        self.fixups.iter().find_map(|f| {
            let target = self.labels[f.label.0 as usize]?;
            let rel = i64::from(target) - i64::from(f.base);
            let fits = match f.kind {
                FixupKind::Rel32 => i32::try_from(rel).is_ok(),
                FixupKind::Arm64Jump26 => rel % 4 == 0 && (-(1 << 27)..1 << 27).contains(&rel),
                FixupKind::Arm64Cond19 => rel % 4 == 0 && (-(1 << 20)..1 << 20).contains(&rel),
                FixupKind::Arm64Adr21 => (-(1 << 20)..1 << 20).contains(&rel),
            };
            (!fits).then_some((f.at, rel))
        })
    }

    /// Records that the instruction at `offset` may trap with `code`.
    pub fn add_trap(&mut self, offset: u32, code: TrapCode) {
        self.traps.insert(offset, TrapSite { code });
    }

    /// Records a call at `offset` to the function named `callee`.
    pub fn add_reloc(&mut self, offset: u32, callee: &str) {
        self.relocs.push(Reloc {
            offset,
            callee: callee.to_string(),
        });
    }

    /// The label of the out-of-line island that traps with `code`; one island per code.
    pub fn trap_island(&mut self, code: TrapCode) -> Label {
        if let Some(&(_, label)) = self.islands.iter().find(|(c, _)| *c == code) {
            return label;
        }
        let label = self.new_label();
        self.islands.push((code, label));
        label
    }

    /// Hands out the requested trap islands so the backend can emit them after the body.
    pub fn take_islands(&mut self) -> Vec<(TrapCode, Label)> {
        std::mem::take(&mut self.islands)
    }

    /// Places jump tables after the code: at each table's label, one 32-bit entry per
    /// target block, its offset from the table's start (`block_labels` by block index).
    pub fn place_jump_tables(
        &mut self,
        tables: Vec<(Label, Vec<crate::machinst::MachBlock>)>,
        block_labels: &[Label],
    ) {
        for (label, targets) in tables {
            self.bind(label);
            let start = self.offset();
            for t in targets {
                let at = self.offset();
                self.data.extend_from_slice(&0i32.to_le_bytes());
                self.use_label(at, start, block_labels[t.index()]);
            }
        }
    }

    /// Resolves every label use and returns the finished code.
    pub fn finish(mut self, frame: Option<u32>) -> CompiledCode {
        for f in &self.fixups {
            let target = self.labels[f.label.0 as usize].expect("every used label is bound");
            let rel = (i64::from(target) - i64::from(f.base)) as i32;
            let at = f.at as usize;
            let word = u32::from_le_bytes(self.data[at..at + 4].try_into().expect("4 bytes"));
            let patched = match f.kind {
                FixupKind::Rel32 => rel as u32,
                FixupKind::Arm64Jump26 => word | ((rel >> 2) as u32 & 0x03ff_ffff),
                FixupKind::Arm64Cond19 => word | (((rel >> 2) as u32 & 0x7_ffff) << 5),
                FixupKind::Arm64Adr21 => {
                    let rel = rel as u32;
                    word | ((rel & 3) << 29) | (((rel >> 2) & 0x7_ffff) << 5)
                }
            };
            self.data[at..at + 4].copy_from_slice(&patched.to_le_bytes());
        }
        CompiledCode {
            code: self.data,
            traps: self.traps,
            relocs: self.relocs,
            frame,
            pcc: None,
            decoded: None,
        }
    }
}
