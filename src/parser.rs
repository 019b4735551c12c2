//! Parses CLIF text (the 0.135 spelling) plus memory declarations and the bounds-checked
//! accesses.
//!
//! Value and block numbers of the text are kept, so diagnostics and printed output name the
//! entities the author wrote. Types are resolved after the whole function is read, so an
//! operand may be defined later in the text than its use. Every error carries a span.

use crate::diagnostics::Diagnostic;
use crate::ir::function::CALL_CONVS;
use crate::ir::immediates::{parse_i64_bits, parse_u64};
use crate::ir::*;
use cranelift_entity::EntityRef;
use std::collections::HashSet;

/// Largest entity number accepted (`v`, `block`, ...): the IR fills skipped numbers, so an
/// absurd number would allocate absurd tables.
const MAX_ENTITY: u32 = 1 << 20;

type Result<T> = core::result::Result<T, Diagnostic>;

/// A `; ...` comment with its position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comment {
    /// The text after `;`, trimmed.
    pub text: String,
    /// Where the comment is.
    pub span: Span,
}

/// A line of the test header: `test interpret`, `set opt_level=speed`, `target x86_64`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderLine {
    /// `test`, `set` or `target`.
    pub keyword: String,
    /// The words after the keyword (`set a=b` gives `a=b`).
    pub words: Vec<String>,
    /// Where the line is.
    pub span: Span,
}

/// A parsed function and where its text is.
#[derive(Clone, Debug)]
pub struct ParsedFunction {
    /// The function.
    pub func: Function,
    /// From `function` to the closing `}`.
    pub span: Span,
}

/// A parsed file.
#[derive(Clone, Debug, Default)]
pub struct ParsedFile {
    /// Header lines before the first function.
    pub header: Vec<HeaderLine>,
    /// The functions.
    pub functions: Vec<ParsedFunction>,
    /// All comments, in order.
    pub comments: Vec<Comment>,
}

impl ParsedFile {
    /// The first word of the first `target` line, if any.
    pub fn target_name(&self) -> Option<&str> {
        self.header
            .iter()
            .find(|h| h.keyword == "target")
            .and_then(|h| h.words.first())
            .map(String::as_str)
    }

    /// The first word of every header line with `keyword` (`test run`, `target pulley64`), in
    /// order.
    pub fn header_words(&self, keyword: &str) -> Vec<&str> {
        self.header
            .iter()
            .filter(|h| h.keyword == keyword)
            .filter_map(|h| h.words.first().map(String::as_str))
            .collect()
    }

    /// The `set NAME=VALUE` lines as pairs (`set NAME` alone means `true`).
    pub fn settings(&self) -> Vec<(String, String)> {
        self.header
            .iter()
            .filter(|h| h.keyword == "set")
            .flat_map(|h| h.words.iter())
            .map(|w| match w.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (w.clone(), "true".to_string()),
            })
            .collect()
    }
}

/// Parses a whole file: header lines, then functions.
pub fn parse_file(src: &str) -> Result<ParsedFile> {
    let (toks, comments) = lex(src)?;
    let mut p = Parser { toks, pos: 0 };
    let mut file = ParsedFile {
        comments,
        ..ParsedFile::default()
    };
    while let Tok::Word(w @ ("test" | "set" | "target")) = p.peek() {
        let line = p.line();
        let start = p.span();
        p.pos += 1;
        let mut words = Vec::new();
        let mut end = start;
        while p.line() == line && p.peek() != Tok::Eof {
            let mut word = p.text_of_current();
            end = p.span();
            p.pos += 1;
            // `set a=b` arrives as `a`, `=`, `b`.
            if p.peek() == Tok::Punct('=') && p.line() == line {
                p.pos += 1;
                word.push('=');
                if p.line() == line {
                    if let Tok::Word(v) = p.peek() {
                        word.push_str(v);
                        end = p.span();
                        p.pos += 1;
                    }
                }
            }
            words.push(word);
        }
        file.header.push(HeaderLine {
            keyword: w.to_string(),
            words,
            span: Span::new(start.start as usize, end.end as usize),
        });
    }
    while p.peek() != Tok::Eof {
        file.functions.push(p.function()?);
    }
    Ok(file)
}

/// Parses text that holds exactly one function (header lines allowed).
pub fn parse_function(src: &str) -> Result<Function> {
    let file = parse_file(src)?;
    match file.functions.len() {
        1 => Ok(file.functions.into_iter().next().unwrap().func),
        n => Err(Diagnostic::new(
            Span::new(0, src.len().min(1)),
            format!("expected exactly one function, found {n}"),
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Lexer

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tok<'a> {
    /// Identifiers, numbers, entity names, opcodes with suffix, float literals.
    Word(&'a str),
    /// `%name`.
    Name(&'a str),
    /// `"text"` (without quotes).
    Str(&'a str),
    Punct(char),
    Arrow,
    Eof,
}

#[derive(Clone, Copy, Debug)]
struct Token<'a> {
    tok: Tok<'a>,
    span: Span,
    line: u32,
}

fn is_word_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'.'
}

fn lex(src: &str) -> Result<(Vec<Token<'_>>, Vec<Comment>)> {
    let b = src.as_bytes();
    let mut toks = Vec::new();
    let mut comments = Vec::new();
    let mut i = 0;
    let mut line = 1u32;
    while i < b.len() {
        let c = b[i];
        let start = i;
        let tok = match c {
            b'\n' => {
                line += 1;
                i += 1;
                continue;
            }
            c if c.is_ascii_whitespace() => {
                i += 1;
                continue;
            }
            b';' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                comments.push(Comment {
                    text: src[start + 1..i].trim().to_string(),
                    span: Span::new(start, i),
                });
                continue;
            }
            b'-' if b.get(i + 1) == Some(&b'>') => {
                i += 2;
                Tok::Arrow
            }
            b'%' => {
                i += 1;
                while i < b.len() && is_word_char(b[i]) {
                    i += 1;
                }
                if i == start + 1 {
                    return Err(Diagnostic::new(
                        Span::new(start, start + 1),
                        "expected a name after `%`",
                    ));
                }
                Tok::Name(&src[start..i])
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' && b[i] != b'\n' {
                    i += 1;
                }
                if i >= b.len() || b[i] != b'"' {
                    return Err(Diagnostic::new(Span::new(start, i), "unterminated string"));
                }
                i += 1;
                Tok::Str(&src[start + 1..i - 1])
            }
            b'+' | b'-' if b.get(i + 1).is_some_and(|c| c.is_ascii_alphanumeric()) => {
                i += 1;
                i = lex_word_end(b, i);
                Tok::Word(&src[start..i])
            }
            c if is_word_char(c) => {
                i = lex_word_end(b, i);
                Tok::Word(&src[start..i])
            }
            b'(' | b')' | b'{' | b'}' | b',' | b'=' | b':' | b'[' | b']' | b'+' | b'-' | b'&'
            | b'*' => {
                i += 1;
                Tok::Punct(c as char)
            }
            _ => {
                let ch = src[start..].chars().next().unwrap_or('?');
                return Err(Diagnostic::new(
                    Span::new(start, start + ch.len_utf8()),
                    format!("unexpected character `{}`", ch.escape_debug()),
                ));
            }
        };
        toks.push(Token {
            tok,
            span: Span::new(start, i),
            line,
        });
    }
    toks.push(Token {
        tok: Tok::Eof,
        span: Span::new(src.len(), src.len()),
        line,
    });
    Ok((toks, comments))
}

/// Ends a word starting at `i`; hexadecimal floats may contain `p-3`, NaNs `:0x1`.
fn lex_word_end(b: &[u8], mut i: usize) -> usize {
    let start = i;
    while i < b.len() {
        let c = b[i];
        let exponent_sign = (c == b'-' || c == b'+')
            && i > start
            && b[i - 1] == b'p'
            && b.get(start..start + 2) == Some(b"0x");
        let nan_payload =
            c == b':' && b[start..i].ends_with(b"NaN") && b.get(i + 1..i + 3) == Some(b"0x");
        if !(is_word_char(c) || exponent_sign || nan_payload) {
            break;
        }
        i += 1;
    }
    i
}

// ---------------------------------------------------------------------------------------------
// Parser

struct Parser<'a> {
    toks: Vec<Token<'a>>,
    pos: usize,
}

/// What the type-resolution phase needs to know about one parsed instruction.
struct PendingInst {
    inst: Inst,
    results: Vec<(Value, Span)>,
    suffix: Option<(Type, Span)>,
    opcode_span: Span,
}

/// Per-function parsing state.
#[derive(Default)]
struct FuncCtx {
    func: Function,
    defined_blocks: HashSet<Block>,
    used_blocks: Vec<(Block, Span)>,
    used_values: Vec<(Value, Span)>,
    defined_values: HashSet<Value>,
    pending: Vec<PendingInst>,
    /// The span of the last integer literal, and each `iconst`'s literal.
    literal_span: Span,
    literal_spans: Vec<(Inst, Span)>,
}

fn entity_number(word: &str, prefix: &str) -> Option<u32> {
    let digits = word.strip_prefix(prefix)?;
    if digits.is_empty()
        || !digits.bytes().all(|c| c.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse().ok()
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Tok<'a> {
        self.toks[self.pos].tok
    }

    fn peek_at(&self, n: usize) -> Tok<'a> {
        self.toks.get(self.pos + n).map_or(Tok::Eof, |t| t.tok)
    }

    fn span(&self) -> Span {
        self.toks[self.pos].span
    }

    fn line(&self) -> u32 {
        self.toks[self.pos].line
    }

    fn prev_end(&self) -> u32 {
        if self.pos == 0 {
            0
        } else {
            self.toks[self.pos - 1].span.end
        }
    }

    fn text_of_current(&self) -> String {
        match self.peek() {
            Tok::Word(w) | Tok::Name(w) => w.to_string(),
            Tok::Str(s) => format!("\"{s}\""),
            Tok::Punct(c) => c.to_string(),
            Tok::Arrow => "->".into(),
            Tok::Eof => String::new(),
        }
    }

    fn describe(&self) -> String {
        match self.peek() {
            Tok::Eof => "end of file".into(),
            _ => format!("`{}`", self.text_of_current()),
        }
    }

    fn err<T>(&self, msg: impl Into<String>) -> Result<T> {
        Err(Diagnostic::new(self.span(), msg))
    }

    fn expected<T>(&self, what: &str) -> Result<T> {
        self.err(format!("expected {what}, found {}", self.describe()))
    }

    fn punct(&mut self, c: char, what: &str) -> Result<()> {
        if self.peek() == Tok::Punct(c) {
            self.pos += 1;
            Ok(())
        } else {
            self.expected(what)
        }
    }

    fn eat_punct(&mut self, c: char) -> bool {
        if self.peek() == Tok::Punct(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// `item (, item)*`.
    fn comma_separated<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut items = vec![item(self)?];
        while self.eat_punct(',') {
            items.push(item(self)?);
        }
        Ok(items)
    }

    /// A possibly empty comma-separated list, then the closing `close`.
    fn list_until<T>(
        &mut self,
        close: char,
        what: &str,
        item: impl FnMut(&mut Self) -> Result<T>,
    ) -> Result<Vec<T>> {
        let items = if self.peek() == Tok::Punct(close) {
            Vec::new()
        } else {
            self.comma_separated(item)?
        };
        self.punct(close, what)?;
        Ok(items)
    }

    fn word(&mut self, what: &str) -> Result<(&'a str, Span)> {
        match self.peek() {
            Tok::Word(w) => {
                let s = self.span();
                self.pos += 1;
                Ok((w, s))
            }
            _ => self.expected(what),
        }
    }

    fn keyword(&mut self, kw: &str) -> Result<()> {
        match self.peek() {
            Tok::Word(w) if w == kw => {
                self.pos += 1;
                Ok(())
            }
            _ => self.expected(&format!("`{kw}`")),
        }
    }

    fn entity<E: EntityRef>(&mut self, prefix: &str, what: &str) -> Result<(E, Span)> {
        let (w, span) = self.word(what)?;
        match entity_number(w, prefix) {
            Some(n) if n < MAX_ENTITY => Ok((E::new(n as usize), span)),
            Some(_) => Err(Diagnostic::new(
                span,
                format!("{w}: entity numbers above {MAX_ENTITY} are not supported"),
            )),
            None => Err(Diagnostic::new(
                span,
                format!("expected {what}, found `{w}`"),
            )),
        }
    }

    fn is_value_word(&self) -> bool {
        matches!(self.peek(), Tok::Word(w) if entity_number(w, "v").is_some())
    }

    fn ty(&mut self) -> Result<(Type, Span)> {
        let (w, span) = self.word("a type (i8, i16, i32, i64, f32, f64)")?;
        match Type::from_name(w) {
            Some(t) => Ok((t, span)),
            None if matches!(w, "i128" | "f16" | "f128") || w.contains('x') => {
                Err(Diagnostic::new(
                    span,
                    format!(
                        "unsupported type `{w}`: only i8, i16, i32, i64, f32 and f64 are supported"
                    ),
                ))
            }
            None => Err(Diagnostic::new(
                span,
                format!("expected a type (i8, i16, i32, i64, f32, f64), found `{w}`"),
            )),
        }
    }

    fn unsigned(&mut self, what: &str) -> Result<u64> {
        let (w, span) = self.word(what)?;
        parse_u64(w).map_err(|e| Diagnostic::new(span, e))
    }

    // ----- function level -----

    fn function(&mut self) -> Result<ParsedFunction> {
        let start = self.span();
        self.keyword("function")?;
        let mut ctx = FuncCtx::default();
        ctx.func.name = self.function_name()?;
        ctx.func.signature = self.signature()?;
        ctx.func.srcmap.function = Span::new(start.start as usize, self.prev_end() as usize);
        self.punct('{', "`{` after the function signature")?;
        self.preamble(&mut ctx)?;
        while let Tok::Word(w) = self.peek() {
            if entity_number(w, "block").is_none() {
                return self.expected("a block header like `block0:`");
            }
            self.block(&mut ctx)?;
        }
        if self.peek() != Tok::Punct('}') {
            return self.expected("a block header or `}` at the end of the function");
        }
        let end = self.span().end;
        self.pos += 1;
        self.resolve(&mut ctx)?;
        if ctx.func.layout.blocks().is_empty() {
            return Err(Diagnostic::new(
                ctx.func.srcmap.function,
                "function has no blocks",
            ));
        }
        Ok(ParsedFunction {
            func: ctx.func,
            span: Span::new(start.start as usize, end as usize),
        })
    }

    fn function_name(&mut self) -> Result<String> {
        match self.peek() {
            Tok::Name(n) => {
                self.pos += 1;
                Ok(n.to_string())
            }
            Tok::Word(w)
                if entity_number(w, "u").is_some() && self.peek_at(1) == Tok::Punct(':') =>
            {
                self.pos += 2;
                let (n, span) = self.word("a user name index")?;
                if parse_u64(n).is_err() || n.starts_with("0x") {
                    return Err(Diagnostic::new(
                        span,
                        "expected a decimal index in a user name",
                    ));
                }
                Ok(format!("{w}:{n}"))
            }
            _ => self.expected("a function name like `%f` or `u0:1`"),
        }
    }

    fn abi_params(&mut self) -> Result<Vec<AbiParam>> {
        self.comma_separated(Self::abi_param)
    }

    fn abi_param(&mut self) -> Result<AbiParam> {
        let (t, _) = self.ty()?;
        let mut p = AbiParam::new(t);
        loop {
            match self.peek() {
                Tok::Word("uext") => p.extension = ArgumentExtension::Uext,
                Tok::Word("sext") => p.extension = ArgumentExtension::Sext,
                Tok::Word("vmctx") => p.vmctx = true,
                Tok::Word(w @ ("sret" | "stack_limit" | "struct_argument")) => {
                    return self.err(format!("unsupported parameter attribute `{w}`"))
                }
                _ => return Ok(p),
            }
            self.pos += 1;
        }
    }

    fn signature(&mut self) -> Result<Signature> {
        let mut sig = Signature::default();
        self.punct('(', "`(` to start the signature")?;
        sig.params = self.list_until(')', "`)` or `,` in the parameter list", Self::abi_param)?;
        if self.peek() == Tok::Arrow {
            self.pos += 1;
            sig.returns = self.abi_params()?;
        }
        if let Tok::Word(w) = self.peek() {
            if let Some(cc) = CALL_CONVS.iter().find(|c| **c == w) {
                sig.call_conv = cc;
                self.pos += 1;
            } else if !w.starts_with("block") && self.peek_at(1) != Tok::Punct('=') {
                return self.err(format!(
                    "unknown calling convention `{w}` (known: {})",
                    CALL_CONVS.join(", ")
                ));
            }
        }
        Ok(sig)
    }

    fn preamble(&mut self, ctx: &mut FuncCtx) -> Result<()> {
        while let (Tok::Word(w), Tok::Punct('=')) = (self.peek(), self.peek_at(1)) {
            let span = self.span();
            let declared = |n: usize, kind: &str| -> Result<()> {
                Err(Diagnostic::new(
                    span,
                    format!("{w} is declared out of order: the next {kind} must be numbered {n}"),
                ))
            };
            if let Some(n) = entity_number(w, "sig") {
                self.pos += 2;
                let sig = self.signature()?;
                if n as usize != ctx.func.dfg.signatures.len() {
                    return declared(ctx.func.dfg.signatures.len(), "signature");
                }
                ctx.func.dfg.signatures.push(sig);
            } else if let Some(n) = entity_number(w, "fn") {
                self.pos += 2;
                let colocated = if self.peek() == Tok::Word("colocated") {
                    self.pos += 1;
                    true
                } else {
                    false
                };
                let name = self.function_name()?;
                let signature = if self.peek() == Tok::Punct('(') {
                    let sig = self.signature()?;
                    ctx.func.dfg.signatures.push(sig)
                } else {
                    let (s, sspan) = self.entity::<SigRef>("sig", "a signature like `sig0`")?;
                    if ctx.func.dfg.signatures.get(s).is_none() {
                        return Err(Diagnostic::new(sspan, format!("undeclared signature {s}")));
                    }
                    s
                };
                if n as usize != ctx.func.dfg.ext_funcs.len() {
                    return declared(ctx.func.dfg.ext_funcs.len(), "function");
                }
                ctx.func.dfg.ext_funcs.push(ExtFuncData {
                    name,
                    signature,
                    colocated,
                });
            } else if let Some(n) = entity_number(w, "region") {
                self.pos += 2;
                let (id, idspan) = self.word("an alias region id")?;
                let user_id = parse_u64(id)
                    .ok()
                    .and_then(|x| u32::try_from(x).ok())
                    .ok_or_else(|| Diagnostic::new(idspan, "expected a 32-bit alias region id"))?;
                let description = match self.peek() {
                    Tok::Str(s) => {
                        self.pos += 1;
                        s.to_string()
                    }
                    _ => return self.expected("a quoted description of the alias region"),
                };
                if n as usize != ctx.func.alias_regions.len() {
                    return declared(ctx.func.alias_regions.len(), "alias region");
                }
                ctx.func.alias_regions.push(AliasRegionData {
                    user_id,
                    description,
                });
            } else if let Some(n) = entity_number(w, "mem") {
                self.pos += 2;
                let mem = self.memory_decl()?;
                if n as usize != ctx.func.memories.len() {
                    return declared(ctx.func.memories.len(), "memory");
                }
                let m = ctx.func.memories.push(mem);
                ctx.func.srcmap.memories[m] =
                    Span::new(span.start as usize, self.prev_end() as usize);
            } else if entity_number(w, "mt") == Some(0) && ctx.func.vmctx_struct.is_none() {
                // `mt0 = struct SIZE, vmctx`: the one memory type this IR has.
                self.pos += 2;
                self.keyword("struct")?;
                let (size, sspan) = self.word("the struct's size in bytes")?;
                let size = parse_u64(size)
                    .map_err(|_| Diagnostic::new(sspan, "expected the struct's size in bytes"))?;
                self.punct(',', "`, vmctx` after the struct's size")?;
                self.keyword("vmctx")?;
                ctx.func.vmctx_struct = Some(size);
                ctx.func.srcmap.vmctx_struct =
                    Span::new(span.start as usize, self.prev_end() as usize);
            } else if ["ss", "dss", "gv", "mt", "jt", "const"]
                .iter()
                .any(|p| entity_number(w, p).is_some())
            {
                return Err(Diagnostic::new(
                    span,
                    format!("unsupported declaration `{w}`: stack slots, global values, jump tables, constants and memory types other than one `mt0 = struct SIZE, vmctx` are not part of this IR yet"),
                ));
            } else {
                return Err(Diagnostic::new(
                    span,
                    format!("unknown declaration `{w}`: expected sigN, fnN, regionN or memN"),
                ));
            }
        }
        Ok(())
    }

    /// `memory index i32, min N[, max N][, reservation N][, guard N]`
    fn memory_decl(&mut self) -> Result<MemoryData> {
        self.keyword("memory")?;
        let mut mem = MemoryData {
            index_type: types::INVALID,
            min: 0,
            max: None,
            reservation: None,
            guard: 0,
        };
        let mut seen: Vec<&str> = Vec::new();
        let mut first = true;
        loop {
            if !first && !self.eat_punct(',') {
                break;
            }
            first = false;
            let (field, span) =
                self.word("a memory fact: index, min, max, reservation or guard")?;
            if seen.contains(&field) {
                return Err(Diagnostic::new(span, format!("`{field}` is given twice")));
            }
            match field {
                "index" => {
                    let (t, tspan) = self.ty()?;
                    if t != types::I32 && t != types::I64 {
                        return Err(Diagnostic::new(tspan, format!("a memory's index type must be i32 or i64, not {t}")));
                    }
                    mem.index_type = t;
                }
                "min" => mem.min = self.unsigned("the minimum size in bytes")?,
                "max" => mem.max = Some(self.unsigned("the maximum size in bytes")?),
                "reservation" => mem.reservation = Some(self.unsigned("the reservation in bytes")?),
                "guard" => mem.guard = self.unsigned("the guard size in bytes")?,
                other => {
                    return Err(Diagnostic::new(
                        span,
                        format!("unknown memory fact `{other}`: expected index, min, max, reservation or guard"),
                    ))
                }
            }
            seen.push(field);
        }
        if mem.index_type == types::INVALID {
            return self.err("a memory declaration needs `index i32` or `index i64`");
        }
        Ok(mem)
    }

    fn block(&mut self, ctx: &mut FuncCtx) -> Result<()> {
        let header_start = self.span();
        let (block, bspan) = self.entity::<Block>("block", "a block")?;
        if !ctx.defined_blocks.insert(block) {
            return Err(Diagnostic::new(bspan, format!("{block} is defined twice")));
        }
        ctx.func.dfg.ensure_block(block);
        ctx.func.layout.append_block(block);
        if self.eat_punct('(') {
            self.list_until(')', "`)` or `,` in the block parameters", |p| {
                let (v, vspan) = p.entity::<Value>("v", "a block parameter like `v0`")?;
                p.punct(':', "`:` and the parameter's type")?;
                let (t, _) = p.ty()?;
                p.define_value(ctx, v, vspan)?;
                ctx.func.dfg.attach_block_param(block, v, t);
                Ok(())
            })?;
        }
        self.punct(':', "`:` after the block header")?;
        ctx.func.srcmap.blocks[block] =
            Span::new(header_start.start as usize, self.prev_end() as usize);
        loop {
            match self.peek() {
                Tok::Word(w) if entity_number(w, "block").is_some() => break,
                Tok::Word(_) => self.instruction(ctx, block)?,
                _ => break,
            }
        }
        Ok(())
    }

    fn define_value(&mut self, ctx: &mut FuncCtx, v: Value, span: Span) -> Result<()> {
        if !ctx.defined_values.insert(v) {
            return Err(Diagnostic::new(span, format!("{v} is defined twice")));
        }
        ctx.func.dfg.ensure_value(v);
        Ok(())
    }

    fn value(&mut self, ctx: &mut FuncCtx) -> Result<Value> {
        let (v, span) = self.entity::<Value>("v", "a value like `v1`")?;
        ctx.used_values.push((v, span));
        Ok(v)
    }

    fn block_call(&mut self, ctx: &mut FuncCtx) -> Result<BlockCall> {
        let (block, span) = self.entity::<Block>("block", "a branch target like `block1`")?;
        ctx.used_blocks.push((block, span));
        let args = if self.eat_punct('(') {
            self.list_until(')', "`)` or `,` in the block arguments", |p| p.value(ctx))?
        } else {
            Vec::new()
        };
        Ok(BlockCall { block, args })
    }

    fn trap_code(&mut self) -> Result<TrapCode> {
        let (w, span) = self.word("a trap code")?;
        TrapCode::from_text(w).ok_or_else(|| {
            Diagnostic::new(
                span,
                format!("unknown trap code `{w}`: expected heap_oob, int_ovf, int_divz, bad_toint, stk_ovf or user1..user250"),
            )
        })
    }

    fn mem_flags(&mut self, ctx: &FuncCtx) -> Result<MemFlags> {
        let mut flags = MemFlags::default();
        while let Tok::Word(w) = self.peek() {
            if let Some(n) = entity_number(w, "region") {
                let r = AliasRegion::new(n as usize);
                if flags.region.is_some() {
                    return self.err("an access has at most one alias region");
                }
                if ctx.func.alias_regions.get(r).is_none() {
                    return self.err(format!("undeclared alias region {r}"));
                }
                flags.region = Some(r);
            } else {
                match flags.set_by_name(w) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => return self.err(e),
                }
            }
            self.pos += 1;
        }
        Ok(flags)
    }

    fn offset32(&mut self) -> Result<Offset32> {
        match self.peek() {
            Tok::Word(w) if w.starts_with('+') || w.starts_with('-') => {
                let span = self.span();
                self.pos += 1;
                let bits = parse_i64_bits(w).map_err(|e| Diagnostic::new(span, e))?;
                let v = bits as i64;
                let v = if w.starts_with('+') && bits > i64::MAX as u64 {
                    i64::MAX
                } else {
                    v
                };
                i32::try_from(v).map(Offset32).map_err(|_| {
                    Diagnostic::new(
                        span,
                        format!("offset {w} does not fit in a signed 32-bit offset"),
                    )
                })
            }
            _ => Ok(Offset32(0)),
        }
    }

    fn offset64(&mut self) -> Result<Offset64> {
        match self.peek() {
            Tok::Word(w) if w.starts_with('-') => self.err(format!(
                "bounds-checked offsets are unsigned; `{w}` is negative"
            )),
            Tok::Word(w) if w.starts_with('+') => {
                let span = self.span();
                self.pos += 1;
                parse_u64(&w[1..])
                    .map(Offset64)
                    .map_err(|e| Diagnostic::new(span, e))
            }
            _ => Ok(Offset64(0)),
        }
    }

    fn instruction(&mut self, ctx: &mut FuncCtx, block: Block) -> Result<()> {
        let start = self.span();
        let mut results = Vec::new();
        if self.is_value_word() && matches!(self.peek_at(1), Tok::Punct('=') | Tok::Punct(',')) {
            results = self.comma_separated(|p| p.entity::<Value>("v", "a result value"))?;
            self.punct('=', "`=` after the result values")?;
        }
        let (word, wspan) = self.word("an instruction")?;
        let (name, suffix) = match word.split_once('.') {
            Some((n, t)) => {
                let suffix_span = Span::new(wspan.start as usize + n.len() + 1, wspan.end as usize);
                let ty = Type::from_name(t).ok_or_else(|| {
                    Diagnostic::new(suffix_span, format!("unknown type suffix `.{t}`"))
                })?;
                (n, Some((ty, suffix_span)))
            }
            None => (word, None),
        };
        let opcode = Opcode::from_name(name).ok_or_else(|| {
            Diagnostic::new(
                wspan,
                if name.starts_with('v') && entity_number(name, "v").is_some() {
                    format!("expected an instruction, found value `{name}` (missing `=`?)")
                } else {
                    format!("unsupported or unknown instruction `{name}`")
                },
            )
        })?;
        let data = self.operands(ctx, opcode)?;
        let inst = ctx.func.dfg.make_inst(data);
        ctx.func.layout.append_inst(inst, block);
        ctx.func.srcmap.insts[inst] = Span::new(start.start as usize, self.prev_end() as usize);
        if opcode.format() == InstructionFormat::UnaryImm {
            ctx.literal_spans.push((inst, ctx.literal_span));
        }
        for &(v, span) in &results {
            self.define_value(ctx, v, span)?;
        }
        ctx.pending.push(PendingInst {
            inst,
            results,
            suffix,
            opcode_span: wspan,
        });
        Ok(())
    }

    fn operands(&mut self, ctx: &mut FuncCtx, opcode: Opcode) -> Result<InstructionData> {
        use InstructionData as D;
        Ok(match opcode.format() {
            InstructionFormat::Unary => D::Unary {
                opcode,
                arg: self.value(ctx)?,
            },
            InstructionFormat::UnaryImm => {
                let (w, span) = self.word("an integer immediate")?;
                let bits = parse_i64_bits(w).map_err(|e| Diagnostic::new(span, e))?;
                // The range is checked once the type is known.
                ctx.literal_span = span;
                D::UnaryImm {
                    opcode,
                    imm: Imm64(bits as i64),
                }
            }
            InstructionFormat::UnaryIeee32 => {
                let (w, span) = self.word("an f32 immediate")?;
                D::UnaryIeee32 {
                    opcode,
                    imm: Ieee32::parse(w).map_err(|e| Diagnostic::new(span, e))?,
                }
            }
            InstructionFormat::UnaryIeee64 => {
                let (w, span) = self.word("an f64 immediate")?;
                D::UnaryIeee64 {
                    opcode,
                    imm: Ieee64::parse(w).map_err(|e| Diagnostic::new(span, e))?,
                }
            }
            InstructionFormat::Binary => {
                let a = self.value(ctx)?;
                self.punct(',', "`,` between operands")?;
                D::Binary {
                    opcode,
                    args: [a, self.value(ctx)?],
                }
            }
            InstructionFormat::Ternary => {
                let a = self.value(ctx)?;
                self.punct(',', "`,` between operands")?;
                let b = self.value(ctx)?;
                self.punct(',', "`,` between operands")?;
                D::Ternary {
                    opcode,
                    args: [a, b, self.value(ctx)?],
                }
            }
            InstructionFormat::IntCompare => {
                let (w, span) = self.word("an integer condition code")?;
                let cond = IntCC::from_text(w).ok_or_else(|| {
                    Diagnostic::new(span, format!("unknown integer condition code `{w}`"))
                })?;
                let a = self.value(ctx)?;
                self.punct(',', "`,` between operands")?;
                D::IntCompare {
                    opcode,
                    cond,
                    args: [a, self.value(ctx)?],
                }
            }
            InstructionFormat::FloatCompare => {
                let (w, span) = self.word("a float condition code")?;
                let cond = FloatCC::from_text(w).ok_or_else(|| {
                    Diagnostic::new(span, format!("unknown float condition code `{w}`"))
                })?;
                let a = self.value(ctx)?;
                self.punct(',', "`,` between operands")?;
                D::FloatCompare {
                    opcode,
                    cond,
                    args: [a, self.value(ctx)?],
                }
            }
            InstructionFormat::LoadNoOffset => {
                let flags = self.mem_flags(ctx)?;
                D::LoadNoOffset {
                    opcode,
                    flags,
                    arg: self.value(ctx)?,
                }
            }
            InstructionFormat::Load => {
                let flags = self.mem_flags(ctx)?;
                let arg = self.value(ctx)?;
                D::Load {
                    opcode,
                    flags,
                    arg,
                    offset: self.offset32()?,
                }
            }
            InstructionFormat::Store => {
                let flags = self.mem_flags(ctx)?;
                let x = self.value(ctx)?;
                self.punct(',', "`,` between the stored value and the address")?;
                let p = self.value(ctx)?;
                D::Store {
                    opcode,
                    flags,
                    args: [x, p],
                    offset: self.offset32()?,
                }
            }
            InstructionFormat::Trap => D::Trap {
                opcode,
                code: self.trap_code()?,
            },
            InstructionFormat::CondTrap => {
                let arg = self.value(ctx)?;
                self.punct(',', "`,` and a trap code")?;
                D::CondTrap {
                    opcode,
                    arg,
                    code: self.trap_code()?,
                }
            }
            InstructionFormat::IntAddTrap => {
                let a = self.value(ctx)?;
                self.punct(',', "`,` between operands")?;
                let b = self.value(ctx)?;
                self.punct(',', "`,` and a trap code")?;
                D::IntAddTrap {
                    opcode,
                    args: [a, b],
                    code: self.trap_code()?,
                }
            }
            InstructionFormat::Jump => D::Jump {
                opcode,
                destination: self.block_call(ctx)?,
            },
            InstructionFormat::Brif => {
                let arg = self.value(ctx)?;
                self.punct(',', "`,` and the branch targets")?;
                let block_then = self.block_call(ctx)?;
                self.punct(',', "`,` and the else target")?;
                D::Brif {
                    opcode,
                    arg,
                    block_then,
                    block_else: self.block_call(ctx)?,
                }
            }
            InstructionFormat::BranchTable => {
                let arg = self.value(ctx)?;
                self.punct(',', "`,` and the default target")?;
                let default = self.block_call(ctx)?;
                self.punct(',', "`,` and the bracketed list of targets")?;
                self.punct('[', "`[` to start the list of targets")?;
                let targets = self.list_until(']', "`]` or `,` in the list of targets", |p| {
                    p.block_call(ctx)
                })?;
                D::BranchTable {
                    opcode,
                    arg,
                    table: JumpTable { default, targets },
                }
            }
            InstructionFormat::MultiAry => {
                let line = self.toks[self.pos - 1].line;
                let args = if self.is_value_word() && self.line() == line {
                    self.comma_separated(|p| p.value(ctx))?
                } else {
                    Vec::new()
                };
                D::MultiAry { opcode, args }
            }
            InstructionFormat::Call => {
                let (func_ref, span) = self.entity::<FuncRef>("fn", "a function like `fn0`")?;
                if ctx.func.dfg.ext_funcs.get(func_ref).is_none() {
                    return Err(Diagnostic::new(
                        span,
                        format!("undeclared function {func_ref}"),
                    ));
                }
                self.punct('(', "`(` and the call arguments")?;
                let args =
                    self.list_until(')', "`)` or `,` in the call arguments", |p| p.value(ctx))?;
                D::Call {
                    opcode,
                    func_ref,
                    args,
                }
            }
            InstructionFormat::BoundsCheckedLoad | InstructionFormat::BoundsCheckedStore => {
                let access = match self.peek() {
                    Tok::Word(w) => match AccessKind::from_text(w) {
                        Some(k) => {
                            self.pos += 1;
                            k
                        }
                        None => AccessKind::Full,
                    },
                    _ => AccessKind::Full,
                };
                let flags = self.mem_flags(ctx)?;
                let (memory, mspan) = self.entity::<Memory>(
                    "mem",
                    "a memory like `mem0` (after the access kind and flags)",
                )?;
                if ctx.func.memories.get(memory).is_none() {
                    return Err(Diagnostic::new(
                        mspan,
                        format!("undeclared memory {memory}"),
                    ));
                }
                let mut vals = Vec::new();
                let n = if opcode.format() == InstructionFormat::BoundsCheckedLoad {
                    3
                } else {
                    4
                };
                for i in 0..n {
                    if i > 0 {
                        self.punct(',', "`,` between operands")?;
                    }
                    vals.push(self.value(ctx)?);
                }
                let offset = self.offset64()?;
                if n == 3 {
                    D::BoundsCheckedLoad {
                        opcode,
                        access,
                        flags,
                        memory,
                        args: [vals[0], vals[1], vals[2]],
                        offset,
                    }
                } else {
                    D::BoundsCheckedStore {
                        opcode,
                        access,
                        flags,
                        memory,
                        args: [vals[0], vals[1], vals[2], vals[3]],
                        offset,
                    }
                }
            }
        })
    }

    /// Second phase: controlling types, results, and the checks that need the whole function.
    fn resolve(&mut self, ctx: &mut FuncCtx) -> Result<()> {
        for &(b, span) in &ctx.used_blocks {
            if !ctx.defined_blocks.contains(&b) {
                return Err(Diagnostic::new(span, format!("undefined block {b}")));
            }
        }
        for &(v, span) in &ctx.used_values {
            if !ctx.defined_values.contains(&v) {
                return Err(Diagnostic::new(span, format!("use of undefined value {v}")));
            }
        }

        let mut pending = core::mem::take(&mut ctx.pending);
        while !pending.is_empty() {
            let before = pending.len();
            let mut rest = Vec::new();
            for p in pending {
                match self.ctrl_type(ctx, &p)? {
                    Some(ctrl) => self.make_results(ctx, &p, ctrl)?,
                    None => rest.push(p),
                }
            }
            if rest.len() == before {
                let p = &rest[0];
                return Err(Diagnostic::new(
                    p.opcode_span,
                    format!(
                        "cannot infer the type of `{}`: its typing operand's type depends on this instruction; add a type suffix",
                        ctx.func.dfg.opcode(p.inst)
                    ),
                ));
            }
            pending = rest;
        }

        for (inst, span) in core::mem::take(&mut ctx.literal_spans) {
            let ty = ctx.func.dfg.ctrl_type(inst);
            if let InstructionData::UnaryImm { imm, .. } = &mut ctx.func.dfg.insts[inst] {
                if ty.is_int() && ty.bits() < 64 {
                    let bits = ty.bits();
                    let v = imm.0;
                    let fits_unsigned = (v as u64) >> bits == 0;
                    let fits_signed = v >> (bits - 1) == -1 || v >> (bits - 1) == 0;
                    if !fits_unsigned && !fits_signed {
                        return Err(Diagnostic::new(
                            span,
                            format!("immediate {v} does not fit in {ty}"),
                        ));
                    }
                    imm.0 = (v as u64 & ty.mask()) as i64;
                }
            }
        }
        Ok(())
    }

    fn ctrl_type(&self, ctx: &FuncCtx, p: &PendingInst) -> Result<Option<Type>> {
        let data = &ctx.func.dfg.insts[p.inst];
        let opcode = data.opcode();
        Ok(Some(match (opcode.constraints().ctrl, p.suffix) {
            (CtrlConstraint::None, None) => types::INVALID,
            (CtrlConstraint::None, Some((t, span))) => {
                return Err(Diagnostic::new(
                    span,
                    format!("`{opcode}` takes no type suffix (found `.{t}`)"),
                ))
            }
            (CtrlConstraint::Explicit(_), None) => {
                return Err(Diagnostic::new(
                    p.opcode_span,
                    format!("`{opcode}` needs a type suffix, e.g. `{opcode}.i32`"),
                ))
            }
            (_, Some((t, _))) => t,
            (CtrlConstraint::FromOperand(n, _), None) => {
                let v = data.arguments()[n];
                if !ctx.func.dfg.value_is_valid(v) {
                    return Ok(None);
                }
                ctx.func.dfg.value_type(v)
            }
        }))
    }

    fn make_results(&self, ctx: &mut FuncCtx, p: &PendingInst, ctrl: Type) -> Result<()> {
        let dfg = &mut ctx.func.dfg;
        let types = dfg.result_types(p.inst, ctrl);
        if types.len() != p.results.len() {
            let span = p.results.first().map_or(p.opcode_span, |r| r.1);
            return Err(Diagnostic::new(
                span,
                format!(
                    "`{}` has {} result{}, but {} {} named",
                    dfg.opcode(p.inst),
                    types.len(),
                    if types.len() == 1 { "" } else { "s" },
                    p.results.len(),
                    if p.results.len() == 1 { "is" } else { "are" }
                ),
            ));
        }
        for (&(v, _), ty) in p.results.iter().zip(types) {
            dfg.attach_result(p.inst, v, ty);
        }
        dfg.set_ctrl_type(p.inst, ctrl);
        Ok(())
    }
}
