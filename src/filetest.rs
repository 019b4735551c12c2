//! Runs upstream-style test files.
//!
//! A file starts with header lines: one or more `test KIND` (`cat`, `verifier`, `interpret`,
//! `run`), optional `set NAME=VALUE` and `target NAME` lines, and optional host memories for
//! run tests (`; host-memory: heap0 0x10000`). Then functions, with directives in comments:
//!
//! - `test cat`: each function's text must already be canonical: printing the parsed function
//!   gives back the text (comments aside), and printing again changes nothing.
//!   `CLIF_BOUNDS_TEST_BLESS=1` rewrites functions without comments into canonical form.
//! - `test verifier`: `; error: TEXT` on an instruction's line expects a verifier error on that
//!   line containing TEXT; a function without such comments must verify.
//! - `test interpret` and `test run`: `; run: %f(1, 2) == 3`, `; run: %f(1) == [1, 2]`,
//!   `; run: %f(7) traps heap_oob`, or `; run: %f(7)` (expects a non-zero result). Arguments
//!   may name a host memory: `&heap0` is its base address. Host memories start with byte `i`
//!   equal to the low byte of `i`, then the file's `; host-store: vmctx+8 i64 &heap0` lines
//!   (little-endian) apply, and they persist across the run lines of a file, in order, so a
//!   later line can observe what an earlier one stored (or did not store). `test run` executes
//!   on the interpreter until a backend for the target exists.

use crate::diagnostics::{line_col, Diagnostic};
use crate::interpreter::{DataValue, Interpreter, Outcome};
use crate::ir::{types, Function, Ieee32, Ieee64, Span, TrapCode, Type};
use crate::ir_verifier::verify_function;
use crate::parser::{parse_file, ParsedFile};
use std::path::{Path, PathBuf};

/// The result of running many files.
#[derive(Debug, Default)]
pub struct Summary {
    /// Files that passed.
    pub passed: usize,
    /// Files that failed, with what went wrong.
    pub failures: Vec<(PathBuf, String)>,
}

impl Summary {
    /// The closing line: `N passed, N failed`.
    pub fn closing_line(&self) -> String {
        format!("{} passed, {} failed", self.passed, self.failures.len())
    }
}

/// Every `.clif` file under `paths` (files or directories, recursively), sorted. A path that
/// does not exist is kept, so that running it reports the error.
pub fn clif_files(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for p in paths {
        collect(p, &mut files);
    }
    files.sort();
    files
}

/// Runs every `.clif` file under `paths`; with `pcc`, every backend compile proves its
/// memory accesses (as a file's `set enable_pcc=true` asks for that file).
pub fn run_paths(paths: &[PathBuf], pcc: bool) -> Summary {
    let mut summary = Summary::default();
    for f in clif_files(paths) {
        match run_path(&f, pcc) {
            Ok(()) => summary.passed += 1,
            Err(e) => summary.failures.push((f, e)),
        }
    }
    summary
}

fn collect(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() {
        if let Ok(entries) = std::fs::read_dir(p) {
            for e in entries.flatten() {
                collect(&e.path(), out);
            }
        }
    } else if p.extension().is_some_and(|e| e == "clif") || !p.exists() {
        out.push(p.to_path_buf());
    }
}

/// Runs one file.
pub fn run_path(path: &Path, pcc: bool) -> Result<(), String> {
    let src = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let name = path.display().to_string();
    let r = run_source(&name, &src, pcc);
    if let Err(Failure::Bless(new)) = &r {
        std::fs::write(path, new).map_err(|e| format!("cannot bless: {e}"))?;
        return Ok(());
    }
    r.map_err(|f| f.to_string())
}

/// Runs the filetest `src` (named `name` in messages), without proof-carrying code.
pub fn run_text(name: &str, src: &str) -> Result<(), String> {
    run_source(name, src, false).map_err(|f| f.to_string())
}

/// Runs the `test run` file `src` on the interpreter and on the one backend named `target`
/// (both Spectre settings), as a counterexample to that backend's code is reproduced: a
/// disagreement elsewhere would only blur which code is wrong.
pub fn run_text_on(name: &str, src: &str, target: &str) -> Result<(), String> {
    let file = parse_file(src).map_err(|d| d.render(name, src))?;
    run(
        name,
        src,
        &file,
        types::I64,
        Backends::Only(target),
        false,
        &mut |_| {},
    )
    .map_err(|f| f.to_string())
}

/// Which of our backends a `run` checks against the interpreter.
#[derive(Clone, Copy)]
enum Backends<'a> {
    /// None: the interpreter and the legalized forms only (`test interpret`).
    None,
    /// Every backend that runs on this host (`test run`).
    All,
    /// The one named, if it runs here.
    Only(&'a str),
}

enum Failure {
    Message(String),
    Bless(String),
}

impl core::fmt::Display for Failure {
    fn fmt(&self, f: &mut core::fmt::Formatter) -> core::fmt::Result {
        match self {
            Failure::Message(m) => f.write_str(m),
            Failure::Bless(_) => f.write_str("blessed"),
        }
    }
}

impl From<String> for Failure {
    fn from(s: String) -> Self {
        Failure::Message(s)
    }
}

fn run_source(name: &str, src: &str, pcc: bool) -> Result<(), Failure> {
    let file = parse_file(src).map_err(|d| d.render(name, src))?;
    let pcc = pcc
        || file
            .settings()
            .iter()
            .any(|(k, v)| k == "enable_pcc" && v == "true");
    let tests = file.header_words("test");
    if tests.is_empty() {
        return Err(
            "no `test` line: expected `test cat`, `test verifier`, `test interpret`, `test run` or `test compile`"
                .to_string()
                .into(),
        );
    }
    let mut pointers = Vec::new();
    for h in file.header.iter().filter(|h| h.keyword == "target") {
        let t = h.words.first().map(String::as_str).unwrap_or("");
        match crate::target::Target::lookup_or_err(t) {
            Ok(target) => pointers.push(target.pointer),
            Err(e) => return Err(Diagnostic::new(h.span, e).render(name, src).into()),
        }
    }
    if pointers.is_empty() {
        pointers.push(types::I64);
    }
    for test in tests {
        match test {
            "cat" => cat(name, src, &file)?,
            "verifier" => {
                for &p in &pointers {
                    verifier(name, src, &file, p)?;
                }
            }
            "interpret" => {
                for &p in &pointers {
                    run(name, src, &file, p, Backends::None, false, &mut |_| {})?;
                }
            }
            "run" => {
                // `test run` executes on the backends (pulley64, and x86_64 natively on an
                // x86_64 host) and on the interpreter, which is the reference.
                let targets = file.header_words("target");
                if !targets
                    .iter()
                    .any(|t| crate::isa::BACKEND_TARGETS.contains(t))
                {
                    return Err(format!(
                        "`test run` needs a target with a backend: add `target pulley64` or `target x86_64` (found: {})",
                        if targets.is_empty() { "none".to_string() } else { targets.join(", ") }
                    )
                    .into());
                }
                run(
                    name,
                    src,
                    &file,
                    types::I64,
                    Backends::All,
                    pcc,
                    &mut |_| {},
                )?;
            }
            "compile" => compile_precise(name, src, &file, pcc)?,
            other => return Err(format!("unknown test kind `{other}`").into()),
        }
    }
    Ok(())
}

/// `test compile precise-output`: each function's machine code, disassembled, must equal the
/// comment block that follows the function. `CLIF_BOUNDS_TEST_BLESS=1` rewrites the blocks.
fn compile_precise(name: &str, src: &str, file: &ParsedFile, pcc: bool) -> Result<(), Failure> {
    let precise = file.header.iter().any(|h| {
        h.keyword == "test"
            && src[h.span.start as usize..h.span.end as usize].contains("precise-output")
    });
    if !precise {
        return Err(
            "`test compile` needs `precise-output`: the expected code follows each function"
                .to_string()
                .into(),
        );
    }
    let target = file.target_name().unwrap_or("");
    let spectre = file
        .settings()
        .iter()
        .any(|(k, v)| k == "enable_heap_access_spectre_mitigation" && v == "true");
    let backend = crate::isa::Backend::for_target(target, spectre)
        .map_err(|e| format!("`test compile`: {e}"))?
        .with_pcc(pcc);
    let bless = std::env::var_os("CLIF_BOUNDS_TEST_BLESS").is_some_and(|v| v == "1");
    let mut blessed = src.to_string();
    let mut mismatch = None;
    for pf in file.functions.iter().rev() {
        verify_function(&pf.func, types::I64)
            .map_err(|e| crate::diagnostics::render_all(&e, name, src))?;
        let code = backend
            .compile(&pf.func)
            .map_err(|e| format!("{name}: {}: {e}", pf.func.name))?;
        let got: Vec<String> = std::iter::once(format!("{} bytes", code.code.len()))
            .chain(
                backend
                    .disassemble(&code.code)
                    .lines()
                    .map(|l| l.trim().to_string()),
            )
            .collect();
        // The expected code: the comment lines right after the closing brace, up to the
        // first line that is not a comment (comments after a blank line describe the next
        // function).
        let after = pf.span.end as usize;
        let line_end = src[after..].find('\n').map_or(src.len(), |i| after + i + 1);
        let mut end = line_end;
        let mut want = Vec::new();
        for line in src[line_end..].split_inclusive('\n') {
            let Some(text) = line.trim_start().strip_prefix(';') else {
                break;
            };
            want.push(text.trim().to_string());
            end += line.len();
        }
        if got != want {
            if bless {
                let text: String = got.iter().map(|l| format!("; {l}\n")).collect();
                blessed.replace_range(line_end..end, &text);
            } else {
                let (line, _) = line_col(src, pf.span.start as usize);
                mismatch = Some(format!(
                    "{name}:{line}: the code of {} differs (CLIF_BOUNDS_TEST_BLESS=1 rewrites it):\n--- expected\n{}\n--- compiled\n{}",
                    pf.func.name,
                    want.join("\n"),
                    got.join("\n")
                ));
            }
        }
    }
    if bless && blessed != src {
        std::fs::write(name, blessed.trim_end().to_string() + "\n")
            .map_err(|e| format!("{name}: cannot bless: {e}"))?;
        return Ok(());
    }
    match mismatch {
        Some(m) => Err(m.into()),
        None => Ok(()),
    }
}

fn comments_in(file: &ParsedFile, span: Span) -> impl Iterator<Item = &crate::parser::Comment> {
    file.comments
        .iter()
        .filter(move |c| c.span.start >= span.start && c.span.end <= span.end)
}

/// The function's source with comments removed (lines holding only a comment dropped).
fn strip_comments(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let code = line.split(';').next().unwrap_or("").trim_end();
        if code.is_empty() && !line.trim().is_empty() {
            continue;
        }
        out.push_str(code);
        out.push('\n');
    }
    out
}

fn cat(name: &str, src: &str, file: &ParsedFile) -> Result<(), Failure> {
    let bless = std::env::var_os("CLIF_BOUNDS_TEST_BLESS").is_some_and(|v| v == "1");
    let mut blessed = src.to_string();
    for pf in file.functions.iter().rev() {
        let text = &src[pf.span.start as usize..pf.span.end as usize];
        let want = strip_comments(text);
        let printed = pf.func.to_string();
        let reparsed = crate::parser::parse_function(&printed).map_err(|d| {
            format!(
                "printed text of {} does not parse:\n{}",
                pf.func.name,
                d.render("<printed>", &printed)
            )
        })?;
        let again = reparsed.to_string();
        if again != printed {
            return Err(format!(
                "printing {} is not a fixed point:\n--- first\n{printed}--- second\n{again}",
                pf.func.name
            )
            .into());
        }
        if strip_comments(&printed).trim_end() != want.trim_end() {
            if bless && comments_in(file, pf.span).next().is_none() {
                blessed.replace_range(
                    pf.span.start as usize..pf.span.end as usize,
                    printed.trim_end(),
                );
                continue;
            }
            let (line, _) = line_col(src, pf.span.start as usize);
            return Err(format!(
                "{name}:{line}: {} is not printed as written (CLIF_BOUNDS_TEST_BLESS=1 rewrites it):\n--- written\n{want}--- printed\n{printed}",
                pf.func.name
            )
            .into());
        }
    }
    if blessed != src {
        return Err(Failure::Bless(blessed));
    }
    Ok(())
}

fn verifier(name: &str, src: &str, file: &ParsedFile, pointer: Type) -> Result<(), Failure> {
    for pf in &file.functions {
        let expected: Vec<(usize, String)> = comments_in(file, pf.span)
            .filter_map(|c| {
                c.text
                    .strip_prefix("error:")
                    .map(|t| (line_col(src, c.span.start as usize).0, t.trim().to_string()))
            })
            .collect();
        let errors = verify_function(&pf.func, pointer).err().unwrap_or_default();
        let mut matched = vec![false; errors.len()];
        for (line, text) in &expected {
            let hit = errors.iter().enumerate().find(|(i, e)| {
                !matched[*i]
                    && e.message.contains(text.as_str())
                    && (!e.span.is_known() || line_col(src, e.span.start as usize).0 == *line)
            });
            match hit {
                Some((i, _)) => matched[i] = true,
                None => {
                    let got: Vec<String> = errors
                        .iter()
                        .map(|e| {
                            format!(
                                "  line {}: {}",
                                line_col(src, e.span.start as usize).0,
                                e.message
                            )
                        })
                        .collect();
                    return Err(format!(
                        "{name}:{line}: expected a verifier error containing `{text}` on this line; the verifier said:\n{}",
                        if got.is_empty() { "  (nothing: the function verified)".to_string() } else { got.join("\n") }
                    )
                    .into());
                }
            }
        }
        if let Some((_, e)) = errors
            .iter()
            .zip(&matched)
            .map(|(e, m)| (m, e))
            .find(|(m, _)| !**m)
        {
            return Err(format!(
                "unexpected verifier error (pointer type {pointer}):\n{}",
                e.render(name, src)
            )
            .into());
        }
    }
    Ok(())
}

/// One `; run:` line, parsed.
#[derive(Debug)]
struct RunLine {
    func: String,
    args: Vec<String>,
    expect: Expect,
}

#[derive(Debug)]
enum Expect {
    Values(Vec<String>),
    Trap(TrapCode),
    Truthy,
}

fn parse_run_line(text: &str, line: usize) -> Result<RunLine, String> {
    let err = |m: &str| format!("line {line}: malformed run line `{text}`: {m}");
    let open = text.find('(').ok_or_else(|| err("expected `%f(args)`"))?;
    let close = text
        .rfind(')')
        .filter(|&c| c > open)
        .ok_or_else(|| err("missing `)`"))?;
    let func = text[..open].trim().to_string();
    if !func.starts_with('%') {
        return Err(err("the function name starts with `%`"));
    }
    let args: Vec<String> = text[open + 1..close]
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let rest = text[close + 1..].trim();
    let expect = if rest.is_empty() {
        Expect::Truthy
    } else if let Some(v) = rest.strip_prefix("==") {
        let v = v.trim();
        let vals = match v.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
            Some(inner) => inner
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            None => vec![v.to_string()],
        };
        Expect::Values(vals)
    } else if let Some(code) = rest.strip_prefix("traps") {
        Expect::Trap(TrapCode::from_text(code.trim()).ok_or_else(|| err("unknown trap code"))?)
    } else {
        return Err(err("expected `== value`, `traps CODE` or nothing"));
    };
    Ok(RunLine { func, args, expect })
}

/// Same values (NaNs alike), or traps with the same code (wherever they trapped).
fn same_outcome(a: &Outcome, b: &Outcome) -> bool {
    match (a, b) {
        (Outcome::Returned(x), Outcome::Returned(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| p.same_as(*q))
        }
        (Outcome::Trapped(s), Outcome::Trapped(t)) => s.code == t.code,
        _ => false,
    }
}

/// Parses a run-line literal of type `ty`; `&name` is the base of a host memory.
fn parse_value(text: &str, ty: Type, mems: &dyn HostMemories) -> Result<DataValue, String> {
    if let Some(mem) = text.strip_prefix('&') {
        let base = mems.base_of(mem).ok_or_else(|| {
            format!("no host memory named `{mem}` (declare it with `; host-memory: {mem} SIZE`)")
        })?;
        return Ok(DataValue::new(ty, base));
    }
    match ty {
        types::F32 => Ieee32::parse(text)
            .map(|f| f.0)
            .or_else(|_| text.parse::<f32>().map(f32::to_bits).map_err(|_| ()))
            .map(|b| DataValue::new(ty, u64::from(b)))
            .map_err(|_| format!("`{text}` is not an f32")),
        types::F64 => Ieee64::parse(text)
            .map(|f| f.0)
            .or_else(|_| text.parse::<f64>().map(f64::to_bits).map_err(|_| ()))
            .map(|b| DataValue::new(ty, b))
            .map_err(|_| format!("`{text}` is not an f64")),
        _ => {
            let bits = crate::ir::immediates::parse_i64_bits(text)?;
            let v = bits as i64;
            let fits = ty.bits() == 64 || (bits >> ty.bits()) == 0 || (v >> (ty.bits() - 1)) == -1;
            if !fits {
                return Err(format!("`{text}` does not fit in {ty}"));
            }
            Ok(DataValue::new(ty, bits))
        }
    }
}

/// Where a file's host memories live: the interpreter's address space, or real mappings for
/// compiled code.
trait HostMemories {
    fn map(&mut self, name: &str, size: u64) -> Result<(), String>;
    fn base_of(&self, name: &str) -> Option<u64>;
    fn write(&mut self, addr: u64, bytes: &[u8]) -> bool;
}

impl HostMemories for Interpreter<'_> {
    fn map(&mut self, name: &str, size: u64) -> Result<(), String> {
        self.memory
            .map(name, size)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
    fn base_of(&self, name: &str) -> Option<u64> {
        self.memory.base_of(name)
    }
    fn write(&mut self, addr: u64, bytes: &[u8]) -> bool {
        self.memory.write(addr, bytes)
    }
}

/// The largest host memory `test run` backs with real, pattern-filled memory.
#[cfg(unix)]
const MAX_REAL_MEMORY: u64 = 1 << 28;

/// The `; host-memory:` declarations of a file that parse, with their sizes.
#[cfg(unix)]
fn host_memory_sizes(file: &ParsedFile) -> Vec<(String, u64)> {
    file.comments
        .iter()
        .filter_map(|c| c.text.strip_prefix("host-memory:"))
        .filter_map(|d| {
            let w: Vec<&str> = d.split_whitespace().collect();
            let [mem, size] = w[..] else { return None };
            Some((
                mem.to_string(),
                crate::ir::immediates::parse_u64(size).ok()?,
            ))
        })
        .collect()
}

/// Real mappings standing in for a file's host memories, for code that dereferences
/// addresses (Pulley). Each memory is followed by at least 64 KiB of inaccessible pages.
#[cfg(unix)]
#[derive(Default)]
struct RealMemories {
    maps: Vec<(String, crate::native::Mapping)>,
}

#[cfg(unix)]
impl HostMemories for RealMemories {
    fn map(&mut self, name: &str, size: u64) -> Result<(), String> {
        let mut m = crate::native::Mapping::reserve(size.saturating_add(1 << 16))?;
        m.make_accessible(size)?;
        // The same initial contents as the interpreter's memories.
        // SAFETY: the first `size` bytes were just made accessible.
        let bytes = unsafe { std::slice::from_raw_parts_mut(m.addr() as *mut u8, size as usize) };
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = crate::interpreter::initial_byte(i as u64);
        }
        self.maps.push((name.to_string(), m));
        Ok(())
    }
    fn base_of(&self, name: &str) -> Option<u64> {
        self.maps
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, m)| m.addr())
    }
    fn write(&mut self, addr: u64, bytes: &[u8]) -> bool {
        // Only called by `host-store` lines, checked against the interpreter's copy first.
        // SAFETY: the address lies in one of our accessible mappings (the interpreter,
        // which checks every access, accepted the same store at the same offset).
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), addr as *mut u8, bytes.len()) };
        true
    }
}

/// One function set compiled by one of our backends, with its own memories.
#[cfg(unix)]
struct BackendRun {
    label: String,
    image: Box<dyn crate::isa::Image>,
    mems: RealMemories,
}

#[cfg(unix)]
impl BackendRun {
    /// Compiles and links `funcs` with `backend`.
    fn new(
        backend: crate::isa::Backend,
        funcs: &[&Function],
        file: &ParsedFile,
    ) -> Result<Self, String> {
        let label = match backend.spectre() {
            false => backend.name().to_string(),
            true => format!("{} with Spectre mitigation", backend.name()),
        };
        // `link`'s errors name the target; the Spectre setting is said here.
        let image = backend.link(funcs).map_err(|e| match backend.spectre() {
            true => format!("{e} (with Spectre mitigation)"),
            false => e,
        })?;
        let mut mems = RealMemories::default();
        host_memories(file, &mut mems)?;
        Ok(BackendRun { label, image, mems })
    }

    fn call(&mut self, func: &Function, args: &[String]) -> Result<Outcome, String> {
        let params: Vec<Type> = func.signature.params.iter().map(|p| p.value_type).collect();
        let args = args
            .iter()
            .zip(&params)
            .map(|(a, &t)| parse_value(a, t, &self.mems))
            .collect::<Result<Vec<_>, _>>()?;
        let rets: Vec<Type> = func
            .signature
            .returns
            .iter()
            .map(|p| p.value_type)
            .collect();
        let exit = self
            .image
            .call(&func.name, &args, &rets, &mut crate::isa::NoHost)?;
        let label = &self.label;
        Ok(exit.into_outcome(&format!("{label} code"), &func.name))
    }
}

fn host_memories(file: &ParsedFile, interp: &mut dyn HostMemories) -> Result<(), String> {
    for c in &file.comments {
        if let Some(decl) = c.text.strip_prefix("host-memory:") {
            let words: Vec<&str> = decl.split_whitespace().collect();
            let [mem, size] = words[..] else {
                return Err(format!(
                    "malformed `; host-memory: {decl}`: expected `NAME SIZE`"
                ));
            };
            let size = crate::ir::immediates::parse_u64(size)?;
            interp.map(mem, size)?;
        }
    }
    // Stores run after every memory is mapped, so a value may name any memory's base.
    for c in &file.comments {
        if let Some(decl) = c.text.strip_prefix("host-store:") {
            let bad = || {
                format!("malformed `; host-store: {decl}`: expected `MEMORY+OFFSET TYPE VALUE`, e.g. `vmctx+8 i64 &heap0`")
            };
            let words: Vec<&str> = decl.split_whitespace().collect();
            let [place, ty, value] = words[..] else {
                return Err(bad());
            };
            let (mem, offset) = match place.split_once('+') {
                Some((m, o)) => (m, crate::ir::immediates::parse_u64(o)?),
                None => (place, 0),
            };
            let ty = Type::from_name(ty).ok_or_else(bad)?;
            let value = parse_value(value, ty, interp)?;
            let base = interp
                .base_of(mem)
                .ok_or_else(|| format!("`; host-store:` names no host memory `{mem}`"))?;
            let bytes: Vec<u8> = (0..ty.bytes())
                .map(|i| (value.bits >> (8 * i)) as u8)
                .collect();
            if !interp.write(base.wrapping_add(offset), &bytes) {
                return Err(format!("`; host-store: {decl}` writes outside `{mem}`"));
            }
        }
    }
    Ok(())
}

/// Runs the `; run:` lines of the file at `path` on the interpreter (pointer type from its
/// `target` line, `i64` without one), calling `report` with one line per run line:
/// `file:line: %f(args) -> outcome`. Fails on the first run line whose outcome differs.
pub fn interpret_path(path: &Path, report: &mut dyn FnMut(&str)) -> Result<(), String> {
    let src = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let name = path.display().to_string();
    let file = parse_file(&src).map_err(|d| d.render(&name, &src))?;
    let pointer = match file.target_name() {
        Some(t) => crate::target::Target::lookup_or_err(t)?.pointer,
        None => types::I64,
    };
    run(&name, &src, &file, pointer, Backends::None, false, report).map_err(|f| f.to_string())
}

fn run(
    name: &str,
    src: &str,
    file: &ParsedFile,
    pointer: Type,
    backends: Backends,
    pcc: bool,
    report: &mut dyn FnMut(&str),
) -> Result<(), Failure> {
    for pf in &file.functions {
        if let Err(errs) = verify_function(&pf.func, pointer) {
            return Err(crate::diagnostics::render_all(&errs, name, src).into());
        }
    }
    let funcs: Vec<&Function> = file.functions.iter().map(|p| &p.func).collect();
    // The fused functions, and, when they use bounds-checked accesses, their legalized forms
    // in each mode: every run line must hold for all of them, each on its own memories.
    let mut variants: Vec<(&str, Vec<Function>)> = Vec::new();
    if funcs.iter().any(|f| f.uses_bounds_checked_accesses()) {
        for (label, spectre, pulley) in [
            ("legalized with trapnz", false, false),
            ("legalized with select_spectre_guard", true, false),
            ("legalized with select (Pulley)", true, true),
        ] {
            // The Pulley variant keeps big-endian accesses (Pulley has them); the others
            // byte-swap them, as x64 and aarch64 need.
            let target = if pulley {
                let name = if pointer == crate::ir::types::I32 {
                    "pulley32"
                } else {
                    "pulley64"
                };
                *crate::target::Target::lookup(name).expect("a known target")
            } else {
                crate::target::Target {
                    pointer,
                    ..crate::target::Target::X86_64
                }
            };
            let settings = crate::legalize::Settings { target, spectre };
            let mut legalized = Vec::new();
            for f in &funcs {
                let mut g = (*f).clone();
                crate::legalize::legalize(&mut g, &settings);
                if let Err(errs) = verify_function(&g, pointer) {
                    return Err(format!(
                        "{name}: the {label} form of {} does not verify:\n{}\n{g}",
                        f.name,
                        errs.iter()
                            .map(|e| e.message.clone())
                            .collect::<Vec<_>>()
                            .join("\n")
                    )
                    .into());
                }
                legalized.push(g);
            }
            variants.push((label, legalized));
        }
    }
    let mut interp = Interpreter::new(funcs.iter().copied(), pointer);
    host_memories(file, &mut interp)?;
    let mut others = Vec::new();
    for (label, fs) in &variants {
        let mut i = Interpreter::new(fs.iter(), pointer);
        host_memories(file, &mut i)?;
        others.push((*label, i));
    }
    // Our backends must agree with the interpreter on every run line, with and without
    // Spectre mitigation: pulley64, and x86_64 natively on an x86_64 host. They run natively
    // addressed memory, so only with 64-bit pointers on a 64-bit host.
    #[cfg(unix)]
    let mut backend_runs = Vec::new();
    #[cfg(unix)]
    let huge = host_memory_sizes(file)
        .into_iter()
        .find(|(_, size)| *size > MAX_REAL_MEMORY);
    #[cfg(unix)]
    let on_backends = !matches!(backends, Backends::None);
    #[cfg(unix)]
    if let (true, Some((mem, size))) = (on_backends, &huge) {
        // Said every time: these run lines are checked on the interpreter only.
        eprintln!(
            "note: {name}: our backends not run: host memory `{mem}` has {size:#x} bytes; real memory for it would have to be committed and filled with the test pattern (limit {MAX_REAL_MEMORY:#x})"
        );
    }
    #[cfg(unix)]
    if on_backends && huge.is_none() {
        for spectre in [false, true] {
            for backend in crate::isa::Backend::runnable(spectre) {
                if let Backends::Only(t) = backends {
                    if backend.name() != t {
                        continue;
                    }
                }
                backend_runs.push(
                    BackendRun::new(backend.with_pcc(pcc), &funcs, file)
                        .map_err(|e| format!("{name}: {e}"))?,
                );
            }
        }
    }
    let mut any = false;
    for c in &file.comments {
        let Some(text) = c.text.strip_prefix("run:") else {
            continue;
        };
        any = true;
        let line = line_col(src, c.span.start as usize).0;
        let rl = parse_run_line(text.trim(), line)?;
        let func = funcs
            .iter()
            .find(|f| f.name == rl.func)
            .ok_or_else(|| format!("{name}:{line}: no function {} in this file", rl.func))?;
        let params: Vec<Type> = func.signature.params.iter().map(|p| p.value_type).collect();
        if params.len() != rl.args.len() {
            return Err(format!(
                "{name}:{line}: {} takes {} arguments, the run line gives {}",
                rl.func,
                params.len(),
                rl.args.len()
            )
            .into());
        }
        let args = rl
            .args
            .iter()
            .zip(&params)
            .map(|(a, &t)| parse_value(a, t, &interp))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{name}:{line}: {e}"))?;
        let outcome = interp
            .call(&rl.func, &args)
            .map_err(|e| format!("{name}:{line}: {e}"))?;
        let show = |o: &Outcome| match o {
            Outcome::Returned(v) => format!(
                "returned [{}]",
                v.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Outcome::Trapped(t) => format!("trapped {} at {}", t.code, t.location),
        };
        let ok = match (&rl.expect, &outcome) {
            (Expect::Trap(code), Outcome::Trapped(t)) => t.code == *code,
            (Expect::Truthy, Outcome::Returned(v)) => v.len() == 1 && v[0].bits != 0,
            (Expect::Values(want), Outcome::Returned(got)) => {
                let rets: Vec<Type> = func
                    .signature
                    .returns
                    .iter()
                    .map(|p| p.value_type)
                    .collect();
                if want.len() != rets.len() {
                    return Err(format!(
                        "{name}:{line}: {} returns {} values, the run line expects {}",
                        rl.func,
                        rets.len(),
                        want.len()
                    )
                    .into());
                }
                let want = want
                    .iter()
                    .zip(&rets)
                    .map(|(w, &t)| parse_value(w, t, &interp))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("{name}:{line}: {e}"))?;
                want.len() == got.len() && want.iter().zip(got).all(|(w, g)| w.same_as(*g))
            }
            _ => false,
        };
        for (label, other) in &mut others {
            let theirs = other
                .call(&rl.func, &args)
                .map_err(|e| format!("{name}:{line}: {label}: {e}"))?;
            if !same_outcome(&outcome, &theirs) {
                return Err(format!(
                    "{name}:{line}: `{}`: the fused form {} but the {label} form {}",
                    text.trim(),
                    show(&outcome),
                    show(&theirs)
                )
                .into());
            }
        }
        #[cfg(unix)]
        for run in &mut backend_runs {
            let theirs = run
                .call(func, &rl.args)
                .map_err(|e| format!("{name}:{line}: {}: {e}", run.label))?;
            if !same_outcome(&outcome, &theirs) {
                return Err(format!(
                    "{name}:{line}: `{}`: the interpreter {} but {} {}",
                    text.trim(),
                    show(&outcome),
                    run.label,
                    show(&theirs)
                )
                .into());
            }
        }
        report(&format!(
            "{name}:{line}: {} -> {}{}",
            text.trim(),
            show(&outcome),
            if ok { "" } else { "  (NOT AS EXPECTED)" }
        ));
        if !ok {
            return Err(format!("{name}:{line}: `{}`: {}", text.trim(), show(&outcome)).into());
        }
    }
    if !any {
        return Err(format!(
            "{name}: a `test {}` file needs at least one `; run:` line",
            "interpret"
        )
        .into());
    }
    Ok(())
}
