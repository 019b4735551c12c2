//! Errors with a location, rendered with `codespan-reporting`: file, line, column, the source
//! line with the span underlined, and what was expected.

use crate::ir::Span;
use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label};
use codespan_reporting::files::SimpleFile;
use codespan_reporting::term::{self, termcolor::NoColor};
use core::fmt;

/// One error at a place in a source text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where (may be unknown: `0..0`).
    pub span: Span,
    /// What is wrong, as one sentence.
    pub message: String,
    /// Further explanation or a hint.
    pub notes: Vec<String>,
}

impl Diagnostic {
    /// An error at `span`.
    pub fn new(span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            span,
            message: message.into(),
            notes: Vec::new(),
        }
    }

    /// Adds a note.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// 1-based line and column of the span's start in `source`.
    pub fn line_col(&self, source: &str) -> (usize, usize) {
        line_col(source, self.span.start as usize)
    }

    /// Renders the error against `source` (named `file_name`) with the line and an underline.
    pub fn render(&self, file_name: &str, source: &str) -> String {
        let file = SimpleFile::new(file_name, source);
        let mut d = CsDiagnostic::error().with_message(&self.message);
        if self.span.is_known() || (self.span.start as usize) < source.len() {
            let start = (self.span.start as usize).min(source.len());
            let end = (self.span.end as usize).clamp(start, source.len());
            d = d.with_labels(vec![Label::primary((), start..end)]);
        }
        d = d.with_notes(self.notes.clone());
        let mut out = NoColor::new(Vec::new());
        let config = term::Config::default();
        match term::emit(&mut out, &config, &file, &d) {
            Ok(()) => String::from_utf8_lossy(&out.into_inner()).into_owned(),
            Err(_) => format!("{file_name}: error: {}", self.message),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

/// 1-based line and column of byte `offset` in `source`.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = &source[..floor_char_boundary(source, offset)];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Renders several errors, one after the other.
pub fn render_all(diags: &[Diagnostic], file_name: &str, source: &str) -> String {
    diags
        .iter()
        .map(|d| d.render(file_name, source))
        .collect::<Vec<_>>()
        .join("")
}
