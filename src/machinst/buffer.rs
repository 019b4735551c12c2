//! A code buffer with labels and fix-ups, out-of-line trap islands, a trap table and call
//! relocations.
//!
//! Every backend encodes its instructions into the byte vector itself and tells the buffer
//! where a 32-bit relative offset to a label sits and what position it is relative to (Pulley:
//! the start of the branch; x64: the end of the instruction). Labels are resolved once the
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

#[derive(Clone, Copy, Debug)]
struct Fixup {
    /// Where the little-endian 32-bit offset is stored.
    at: u32,
    /// The position the offset is relative to.
    base: u32,
    label: Label,
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
        self.fixups.push(Fixup { at, base, label });
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

    /// Resolves every label use and returns the finished code.
    pub fn finish(mut self, frame: Option<u32>) -> CompiledCode {
        for f in &self.fixups {
            let target = self.labels[f.label.0 as usize].expect("every used label is bound");
            let rel = (i64::from(target) - i64::from(f.base)) as i32;
            let at = f.at as usize;
            self.data[at..at + 4].copy_from_slice(&rel.to_le_bytes());
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
