//! A WASI preview1 host for commands: the functions the corpus of real programs imports
//! (`../shared/testdata/programs`), with capability safety, and Sightglass's `bench.start` /
//! `bench.end`.
//!
//! A program sees only the directories it was given, as preopened descriptors. Every path
//! is resolved by [`Wasi::resolve`] beneath its preopen, component by component: an
//! absolute path, a `..` that would climb out of the preopen and a symbolic link that leads
//! outside it (or is absolute) are refused with `ENOTCAPABLE`, never followed. Guest
//! pointers and lengths are checked against the caller's memory: one outside it is
//! `EFAULT`, never a host access. `proc_exit` ends the program with its code (a trap with
//! [`super::traps::EXIT`], which [`Wasi::exit_code`] reads back).
//!
//! Errno values, file types and flags come from the `wasi` crate's preview1 definitions.

use super::runtime::{Extern, HostFunction, Store};
use super::traps;
use crate::interpreter::{DataValue, Trap};
use crate::ir::types;
use std::cell::{Cell, RefCell};
use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};
use wasi::Errno;
use wasmparser::{FuncType, ValType};

/// Where a program's standard output or error goes.
pub enum Output {
    /// To this process's own stream.
    Inherit,
    /// Into a buffer, to be compared or shown later.
    Capture(Vec<u8>),
}

impl Output {
    /// What was captured (nothing for an inherited stream).
    pub fn captured(&self) -> &[u8] {
        match self {
            Output::Capture(buf) => buf,
            Output::Inherit => &[],
        }
    }
}

/// An open descriptor.
enum Fd {
    Stdin,
    Stdout,
    Stderr,
    /// A directory: a preopen (with the name the program sees) or one it opened.
    Dir {
        host: PathBuf,
        preopen: Option<String>,
    },
    File(File),
}

/// The state of one program's WASI host.
pub struct Wasi {
    args: Vec<String>,
    env: Vec<String>,
    fds: RefCell<Vec<Option<Fd>>>,
    /// Standard output and error.
    pub stdout: RefCell<Output>,
    /// Standard error.
    pub stderr: RefCell<Output>,
    /// Whether standard input is this process's (otherwise it is empty).
    stdin: bool,
    exit: Cell<Option<u32>>,
    bench_start: Cell<Option<Instant>>,
    measured: Cell<Option<Duration>>,
}

/// A host function's body: the host, the caller's memory, the raw arguments; the errno, or
/// the trap that stops the program instead (`proc_exit`).
type Body = fn(&Wasi, &Guest, &[u64]) -> Result<Errno, Trap>;

impl Wasi {
    /// A host for a program run with `args` (the first is its name) and `env`
    /// (`NAME=value`), with each of `dirs` (`(host directory, name the program sees)`)
    /// preopened as descriptors 3 and up. `capture` keeps standard output and error in
    /// buffers and gives the program an empty standard input; otherwise all three are this
    /// process's.
    pub fn new(
        args: Vec<String>,
        env: Vec<String>,
        dirs: &[(PathBuf, String)],
        capture: bool,
    ) -> Wasi {
        let mut fds = vec![Some(Fd::Stdin), Some(Fd::Stdout), Some(Fd::Stderr)];
        for (host, name) in dirs {
            fds.push(Some(Fd::Dir {
                host: host.clone(),
                preopen: Some(name.clone()),
            }));
        }
        let output = || match capture {
            true => Output::Capture(Vec::new()),
            false => Output::Inherit,
        };
        Wasi {
            args,
            env,
            fds: RefCell::new(fds),
            stdout: RefCell::new(output()),
            stderr: RefCell::new(output()),
            stdin: !capture,
            exit: Cell::new(None),
            bench_start: Cell::new(None),
            measured: Cell::new(None),
        }
    }

    /// The code the program gave `proc_exit`, if it called it.
    pub fn exit_code(&self) -> Option<u32> {
        self.exit.get()
    }

    /// The time between `bench.start` and `bench.end`, if the program called both.
    pub fn measured(&self) -> Option<Duration> {
        self.measured.get()
    }

    /// The imports this host provides: `wasi_snapshot_preview1.*` and `bench.*`, as
    /// functions of our runtime's store.
    pub fn import(self: &Rc<Self>, module: &str, field: &str) -> Option<Extern> {
        let function = HostImport::lookup(module, field)?;
        let host = Rc::clone(self);
        Some(Extern::Host(Rc::new(HostFunction {
            ty: FuncType::new(
                function.params.iter().copied(),
                function.results.iter().copied(),
            ),
            run: Box::new(move |store, caller, args| {
                let memory = StoreMemory::of(store, caller)?;
                let raw: Vec<u64> = args.iter().map(|a| a.bits).collect();
                let errno = function.call(&host, &memory, &raw)?;
                Ok(errno
                    .map(|e| DataValue::new(types::I32, u64::from(e)))
                    .into_iter()
                    .collect())
            }),
        })))
    }

    /// `fd_write`: every iovec is checked first (`EFAULT` before anything is written), then
    /// written in chunks of at most [`CHUNK`] bytes, so a guest's lengths never size a host
    /// allocation.
    fn fd_write(&self, g: &Guest, a: &[u64]) -> Result<Errno, Trap> {
        let (fd, iovs, n, written) = (a[0] as u32, a[1] as u32, a[2] as u32, a[3] as u32);
        let bufs = match g.iovecs(iovs, n) {
            Ok(b) => b,
            Err(e) => return Ok(e),
        };
        let mut total = 0u64;
        for (ptr, len) in bufs {
            for (at, chunk_len) in chunks(ptr, len) {
                let bytes = match g.load(at, chunk_len) {
                    Ok(b) => b,
                    Err(e) => return Ok(e),
                };
                let result = match self.fds.borrow_mut().get_mut(fd as usize) {
                    Some(Some(Fd::Stdout)) => write_out(&self.stdout, &bytes, std::io::stdout()),
                    Some(Some(Fd::Stderr)) => write_out(&self.stderr, &bytes, std::io::stderr()),
                    Some(Some(Fd::File(f))) => f.write_all(&bytes).map_err(|e| errno_of(&e)),
                    _ => Err(wasi::ERRNO_BADF),
                };
                if let Err(e) = result {
                    return Ok(e);
                }
                total += u64::from(chunk_len);
            }
        }
        // More than 4 GiB written is more than the guest's u32 can say: say the most.
        let total = u32::try_from(total).unwrap_or(u32::MAX);
        Ok(g.store_u32(written, total)
            .err()
            .unwrap_or(wasi::ERRNO_SUCCESS))
    }

    /// `fd_read`: every iovec is checked first (`EFAULT` before anything is read), then
    /// filled in chunks of at most [`CHUNK`] bytes until the input runs short.
    fn fd_read(&self, g: &Guest, a: &[u64]) -> Result<Errno, Trap> {
        let (fd, iovs, n, read) = (a[0] as u32, a[1] as u32, a[2] as u32, a[3] as u32);
        let bufs = match g.iovecs(iovs, n) {
            Ok(b) => b,
            Err(e) => return Ok(e),
        };
        let mut total = 0u64;
        let mut buf = Vec::new();
        'bufs: for (ptr, len) in bufs {
            for (at, chunk_len) in chunks(ptr, len) {
                buf.resize(chunk_len as usize, 0);
                let got = match self.fds.borrow_mut().get_mut(fd as usize) {
                    Some(Some(Fd::Stdin)) if self.stdin => std::io::stdin().read(&mut buf),
                    Some(Some(Fd::Stdin)) => Ok(0),
                    Some(Some(Fd::File(f))) => f.read(&mut buf),
                    Some(Some(Fd::Dir { .. })) => return Ok(wasi::ERRNO_ISDIR),
                    _ => return Ok(wasi::ERRNO_BADF),
                };
                let got = match got {
                    Ok(k) => k,
                    Err(e) => return Ok(errno_of(&e)),
                };
                if let Err(e) = g.store(at, &buf[..got]) {
                    return Ok(e);
                }
                total += got as u64;
                if got < chunk_len as usize {
                    break 'bufs;
                }
            }
        }
        let total = u32::try_from(total).unwrap_or(u32::MAX);
        Ok(g.store_u32(read, total)
            .err()
            .unwrap_or(wasi::ERRNO_SUCCESS))
    }

    fn fd_close(&self, _: &Guest, a: &[u64]) -> Result<Errno, Trap> {
        let mut fds = self.fds.borrow_mut();
        Ok(match fds.get_mut(a[0] as u32 as usize) {
            Some(slot @ Some(_)) => {
                *slot = None;
                wasi::ERRNO_SUCCESS
            }
            _ => wasi::ERRNO_BADF,
        })
    }

    fn fd_seek(&self, g: &Guest, a: &[u64]) -> Result<Errno, Trap> {
        let (fd, offset, whence, out) = (a[0] as u32, a[1] as i64, a[2] as u8, a[3] as u32);
        let mut fds = self.fds.borrow_mut();
        let Some(Some(fd)) = fds.get_mut(fd as usize) else {
            return Ok(wasi::ERRNO_BADF);
        };
        let Fd::File(f) = fd else {
            return Ok(match fd {
                Fd::Dir { .. } => wasi::ERRNO_BADF,
                _ => wasi::ERRNO_SPIPE,
            });
        };
        let pos = match whence {
            w if w == wasi::WHENCE_SET.raw() => match u64::try_from(offset) {
                Ok(o) => SeekFrom::Start(o),
                Err(_) => return Ok(wasi::ERRNO_INVAL),
            },
            w if w == wasi::WHENCE_CUR.raw() => SeekFrom::Current(offset),
            w if w == wasi::WHENCE_END.raw() => SeekFrom::End(offset),
            _ => return Ok(wasi::ERRNO_INVAL),
        };
        Ok(match f.seek(pos) {
            Ok(p) => g.store_u64(out, p).err().unwrap_or(wasi::ERRNO_SUCCESS),
            Err(e) => errno_of(&e),
        })
    }

    fn fd_fdstat_get(&self, g: &Guest, a: &[u64]) -> Result<Errno, Trap> {
        let filetype = match self.fds.borrow().get(a[0] as u32 as usize) {
            Some(Some(Fd::Stdin | Fd::Stdout | Fd::Stderr)) => wasi::FILETYPE_CHARACTER_DEVICE,
            Some(Some(Fd::Dir { .. })) => wasi::FILETYPE_DIRECTORY,
            Some(Some(Fd::File(_))) => wasi::FILETYPE_REGULAR_FILE,
            _ => return Ok(wasi::ERRNO_BADF),
        };
        // fdstat: filetype (u8) at 0, flags (u16) at 2, rights base and inheriting (u64)
        // at 8 and 16: every right (this host checks none beyond the capability of paths).
        let mut bytes = [0u8; 24];
        bytes[0] = filetype.raw();
        bytes[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        bytes[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        Ok(g.store(a[1] as u32, &bytes)
            .err()
            .unwrap_or(wasi::ERRNO_SUCCESS))
    }

    fn fd_filestat_get(&self, g: &Guest, a: &[u64]) -> Result<Errno, Trap> {
        let meta = match self.fds.borrow().get(a[0] as u32 as usize) {
            Some(Some(Fd::File(f))) => f.metadata(),
            Some(Some(Fd::Dir { host, .. })) => std::fs::metadata(host),
            Some(Some(_)) => {
                return Ok(g
                    .store(a[1] as u32, &filestat_bytes(None))
                    .err()
                    .unwrap_or(wasi::ERRNO_SUCCESS))
            }
            _ => return Ok(wasi::ERRNO_BADF),
        };
        Ok(match meta {
            Ok(m) => g
                .store(a[1] as u32, &filestat_bytes(Some(&m)))
                .err()
                .unwrap_or(wasi::ERRNO_SUCCESS),
            Err(e) => errno_of(&e),
        })
    }

    /// The name the program sees preopen `fd` as; `EBADF` for any other descriptor (which
    /// is how a program finds where its preopens end).
    fn preopen(&self, fd: u64) -> Result<String, Errno> {
        match self.fds.borrow().get(fd as u32 as usize) {
            Some(Some(Fd::Dir {
                preopen: Some(name),
                ..
            })) => Ok(name.clone()),
            _ => Err(wasi::ERRNO_BADF),
        }
    }

    fn fd_prestat_get(&self, g: &Guest, a: &[u64]) -> Result<Errno, Trap> {
        let name = match self.preopen(a[0]) {
            Ok(n) => n,
            Err(e) => return Ok(e),
        };
        // prestat: tag (u8, 0 = directory) at 0, the name's length (u32) at 4.
        let mut bytes = [0u8; 8];
        bytes[4..8].copy_from_slice(&(name.len() as u32).to_le_bytes());
        Ok(g.store(a[1] as u32, &bytes)
            .err()
            .unwrap_or(wasi::ERRNO_SUCCESS))
    }

    fn fd_prestat_dir_name(&self, g: &Guest, a: &[u64]) -> Result<Errno, Trap> {
        let name = match self.preopen(a[0]) {
            Ok(n) => n,
            Err(e) => return Ok(e),
        };
        let (ptr, len) = (a[1] as u32, a[2] as u32);
        if (len as usize) < name.len() {
            return Ok(wasi::ERRNO_NAMETOOLONG);
        }
        Ok(g.store(ptr, name.as_bytes())
            .err()
            .unwrap_or(wasi::ERRNO_SUCCESS))
    }

    fn path_open(&self, g: &Guest, a: &[u64]) -> Result<Errno, Trap> {
        let (dirfd, lookup, path, len) = (a[0] as u32, a[1] as u32, a[2] as u32, a[3] as u32);
        let (oflags, fdflags, out) = (a[4] as u16, a[7] as u16, a[8] as u32);
        let rights = a[5];
        let host = match self.dir_path(g, dirfd, path, len, lookup) {
            Ok(p) => p,
            Err(e) => return Ok(e),
        };
        let write = rights & (wasi::RIGHTS_FD_WRITE | wasi::RIGHTS_FD_ALLOCATE) != 0
            || oflags & (wasi::OFLAGS_CREAT | wasi::OFLAGS_TRUNC) != 0;
        // Never through a link: `host` ends in one only when the program asked not to
        // follow it, and a directory descriptor there would reach wherever it leads.
        let is_dir = std::fs::symlink_metadata(&host).is_ok_and(|m| m.is_dir());
        let fd = if is_dir {
            let create = wasi::OFLAGS_CREAT | wasi::OFLAGS_EXCL;
            if oflags & create == create {
                return Ok(wasi::ERRNO_EXIST);
            }
            if oflags & (wasi::OFLAGS_CREAT | wasi::OFLAGS_TRUNC) != 0 {
                return Ok(wasi::ERRNO_ISDIR);
            }
            Fd::Dir {
                host,
                preopen: None,
            }
        } else {
            if oflags & wasi::OFLAGS_DIRECTORY != 0 {
                // Whatever is there (a link is not followed to find out).
                let exists = std::fs::symlink_metadata(&host).is_ok();
                return Ok(if exists {
                    wasi::ERRNO_NOTDIR
                } else {
                    wasi::ERRNO_NOENT
                });
            }
            let mut o = std::fs::OpenOptions::new();
            o.read(true)
                .write(write)
                .append(fdflags & wasi::FDFLAGS_APPEND != 0)
                .create(oflags & wasi::OFLAGS_CREAT != 0)
                .truncate(oflags & wasi::OFLAGS_TRUNC != 0)
                // The last component was resolved already: never follow a link swapped in.
                .custom_flags(libc::O_NOFOLLOW);
            if oflags & wasi::OFLAGS_EXCL != 0 {
                o.create_new(true);
            }
            match o.open(&host) {
                Ok(f) => Fd::File(f),
                Err(e) => return Ok(errno_of(&e)),
            }
        };
        let mut fds = self.fds.borrow_mut();
        let n = fds.len() as u32;
        if let Err(e) = g.store_u32(out, n) {
            return Ok(e);
        }
        fds.push(Some(fd));
        Ok(wasi::ERRNO_SUCCESS)
    }

    fn path_filestat_get(&self, g: &Guest, a: &[u64]) -> Result<Errno, Trap> {
        let (dirfd, lookup, path, len, out) = (
            a[0] as u32,
            a[1] as u32,
            a[2] as u32,
            a[3] as u32,
            a[4] as u32,
        );
        let host = match self.dir_path(g, dirfd, path, len, lookup) {
            Ok(p) => p,
            Err(e) => return Ok(e),
        };
        Ok(match std::fs::symlink_metadata(&host) {
            Ok(m) => g
                .store(out, &filestat_bytes(Some(&m)))
                .err()
                .unwrap_or(wasi::ERRNO_SUCCESS),
            Err(e) => errno_of(&e),
        })
    }

    fn clock_time_get(&self, g: &Guest, a: &[u64]) -> Result<Errno, Trap> {
        let now = match a[0] as u32 {
            0 => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default(),
            1..=3 => START.with(|s| s.elapsed()),
            _ => return Ok(wasi::ERRNO_INVAL),
        };
        Ok(g.store_u64(a[2] as u32, now.as_nanos() as u64)
            .err()
            .unwrap_or(wasi::ERRNO_SUCCESS))
    }

    /// `random_get`: the range is checked first, then filled in chunks of [`CHUNK`].
    fn random_get(&self, g: &Guest, a: &[u64]) -> Result<Errno, Trap> {
        let (ptr, len) = (a[0] as u32, a[1] as u32);
        if let Err(e) = g.check(ptr, len) {
            return Ok(e);
        }
        let mut buf = Vec::new();
        for (at, chunk_len) in chunks(ptr, len) {
            buf.resize(chunk_len as usize, 0);
            let mut filled = 0;
            while filled < buf.len() {
                // SAFETY: the buffer is valid for the requested bytes.
                let n = unsafe {
                    libc::getrandom(buf[filled..].as_mut_ptr().cast(), buf.len() - filled, 0)
                };
                if n <= 0 {
                    return Ok(wasi::ERRNO_IO);
                }
                filled += n as usize;
            }
            if let Err(e) = g.store(at, &buf) {
                return Ok(e);
            }
        }
        Ok(wasi::ERRNO_SUCCESS)
    }

    /// The host path of guest path `[path, path + len)` beneath directory descriptor `dirfd`.
    fn dir_path(
        &self,
        g: &Guest,
        dirfd: u32,
        path: u32,
        len: u32,
        lookup: u32,
    ) -> Result<PathBuf, Errno> {
        let root = match self.fds.borrow().get(dirfd as usize) {
            Some(Some(Fd::Dir { host, .. })) => host.clone(),
            Some(Some(_)) => return Err(wasi::ERRNO_NOTDIR),
            _ => return Err(wasi::ERRNO_BADF),
        };
        let bytes = g.load(path, len)?;
        let follow = lookup & wasi::LOOKUPFLAGS_SYMLINK_FOLLOW != 0;
        Wasi::resolve(&root, &bytes, follow)
    }

    /// Resolves `path` beneath the directory `root`, component by component, the way a
    /// capability-safe host must: an absolute path, a `..` above `root`, and a symbolic
    /// link that is absolute or climbs above `root` are `ENOTCAPABLE`; a link inside is
    /// followed as its target's components (the last one only with `follow`), at most 40
    /// times (`ELOOP`). The result is `root` joined with components that name no link,
    /// except a last one that is a link when `follow` is off.
    pub fn resolve(root: &Path, path: &[u8], follow: bool) -> Result<PathBuf, Errno> {
        if path.contains(&0) {
            return Err(wasi::ERRNO_INVAL);
        }
        if path.is_empty() {
            return Err(wasi::ERRNO_NOENT);
        }
        // `name/` names a directory, as in POSIX.
        let want_dir = path.ends_with(b"/");
        let mut pending: Vec<OsString> = Vec::new();
        push_components(&mut pending, Path::new(std::ffi::OsStr::from_bytes(path)))?;
        let mut resolved: Vec<OsString> = Vec::new();
        let mut links = 0;
        while let Some(c) = pending.pop() {
            if c == ".." {
                if resolved.pop().is_none() {
                    return Err(wasi::ERRNO_NOTCAPABLE);
                }
                continue;
            }
            let here: PathBuf = resolved
                .iter()
                .fold(root.to_path_buf(), |p, c| p.join(c))
                .join(&c);
            let last = pending.is_empty();
            match std::fs::symlink_metadata(&here) {
                Ok(m) if m.file_type().is_symlink() && (!last || follow) => {
                    links += 1;
                    if links > 40 {
                        return Err(wasi::ERRNO_LOOP);
                    }
                    let target = std::fs::read_link(&here).map_err(|e| errno_of(&e))?;
                    push_components(&mut pending, &target)?;
                }
                // Something else than a directory cannot have a component after it.
                Ok(m) if !last && !m.is_dir() => return Err(wasi::ERRNO_NOTDIR),
                Ok(_) => resolved.push(c),
                // Only the last component may be missing (a file to create).
                Err(_) if last => resolved.push(c),
                Err(e) => return Err(errno_of(&e)),
            }
        }
        let host = resolved.iter().fold(root.to_path_buf(), |p, c| p.join(c));
        if want_dir && std::fs::symlink_metadata(&host).is_ok_and(|m| !m.is_dir()) {
            return Err(wasi::ERRNO_NOTDIR);
        }
        Ok(host)
    }
}

thread_local! {
    /// The monotonic clocks' epoch.
    static START: Instant = Instant::now();
}

/// Pushes `path`'s components onto `pending` so that the first is popped first; an
/// absolute path is `ENOTCAPABLE`.
fn push_components(pending: &mut Vec<OsString>, path: &Path) -> Result<(), Errno> {
    let mut comps = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::Prefix(_) => return Err(wasi::ERRNO_NOTCAPABLE),
            Component::CurDir => {}
            Component::ParentDir => comps.push(OsString::from("..")),
            Component::Normal(n) => comps.push(n.to_os_string()),
        }
    }
    pending.extend(comps.into_iter().rev());
    Ok(())
}

/// Writes `bytes` to a standard stream: this process's own (`real`), or its capture buffer.
fn write_out(out: &RefCell<Output>, bytes: &[u8], mut real: impl Write) -> Result<(), Errno> {
    match &mut *out.borrow_mut() {
        Output::Inherit => real
            .write_all(bytes)
            .and_then(|_| real.flush())
            .map_err(|e| errno_of(&e)),
        Output::Capture(buf) => {
            buf.extend_from_slice(bytes);
            Ok(())
        }
    }
}

/// A filestat: dev, ino (u64) at 0 and 8, filetype (u8) at 16, nlink, size, atim, mtim,
/// ctim (u64) at 24..64; a character device when `meta` is `None`.
fn filestat_bytes(meta: Option<&std::fs::Metadata>) -> [u8; 64] {
    let mut b = [0u8; 64];
    let Some(m) = meta else {
        b[16] = wasi::FILETYPE_CHARACTER_DEVICE.raw();
        return b;
    };
    let ft = m.file_type();
    let filetype = if ft.is_dir() {
        wasi::FILETYPE_DIRECTORY
    } else if ft.is_symlink() {
        wasi::FILETYPE_SYMBOLIC_LINK
    } else if ft.is_file() {
        wasi::FILETYPE_REGULAR_FILE
    } else {
        wasi::FILETYPE_UNKNOWN
    };
    let nanos = |s: i64, ns: i64| {
        (s as u64)
            .wrapping_mul(1_000_000_000)
            .wrapping_add(ns as u64)
    };
    let fields = [
        (0, m.dev()),
        (8, m.ino()),
        (24, m.nlink()),
        (32, m.size()),
        (40, nanos(m.atime(), m.atime_nsec())),
        (48, nanos(m.mtime(), m.mtime_nsec())),
        (56, nanos(m.ctime(), m.ctime_nsec())),
    ];
    for (at, v) in fields {
        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
    b[16] = filetype.raw();
    b
}

/// The WASI errno of a host I/O error.
fn errno_of(e: &std::io::Error) -> Errno {
    match e.raw_os_error() {
        Some(libc::ENOENT) => wasi::ERRNO_NOENT,
        Some(libc::EACCES) => wasi::ERRNO_ACCES,
        Some(libc::EEXIST) => wasi::ERRNO_EXIST,
        Some(libc::EISDIR) => wasi::ERRNO_ISDIR,
        Some(libc::ENOTDIR) => wasi::ERRNO_NOTDIR,
        Some(libc::ELOOP) => wasi::ERRNO_LOOP,
        Some(libc::EPERM) => wasi::ERRNO_PERM,
        Some(libc::EINVAL) => wasi::ERRNO_INVAL,
        Some(libc::ENAMETOOLONG) => wasi::ERRNO_NAMETOOLONG,
        Some(libc::ENOSPC) => wasi::ERRNO_NOSPC,
        Some(libc::ESPIPE) => wasi::ERRNO_SPIPE,
        _ => wasi::ERRNO_IO,
    }
}

/// The most bytes a WASI function copies between the guest and the host at once.
const CHUNK: u32 = 64 << 10;

/// `[ptr, ptr + len)` in pieces of at most [`CHUNK`] bytes: `(start, length)`.
fn chunks(ptr: u32, len: u32) -> impl Iterator<Item = (u32, u32)> {
    (0..len)
        .step_by(CHUNK as usize)
        .map(move |done| (ptr.wrapping_add(done), (len - done).min(CHUNK)))
}

/// `args_sizes_get` and `environ_sizes_get`: the count and the bytes of `strings`, each
/// with its terminating NUL.
fn sizes(g: &Guest, strings: &[String], a: &[u64]) -> Result<Errno, Trap> {
    let bytes: usize = strings.iter().map(|s| s.len() + 1).sum();
    let r = g
        .store_u32(a[0] as u32, strings.len() as u32)
        .and_then(|_| g.store_u32(a[1] as u32, bytes as u32));
    Ok(r.err().unwrap_or(wasi::ERRNO_SUCCESS))
}

/// `args_get` and `environ_get`: a pointer to each NUL-terminated string, and the strings.
fn strings(g: &Guest, strings: &[String], a: &[u64]) -> Result<Errno, Trap> {
    let (mut ptrs, mut buf) = (a[0] as u32, a[1] as u32);
    for s in strings {
        let mut bytes = s.as_bytes().to_vec();
        bytes.push(0);
        let r = g.store_u32(ptrs, buf).and_then(|_| g.store(buf, &bytes));
        if let Err(e) = r {
            return Ok(e);
        }
        ptrs = ptrs.wrapping_add(4);
        buf = buf.wrapping_add(bytes.len() as u32);
    }
    Ok(wasi::ERRNO_SUCCESS)
}

/// One function of this host, whatever engine calls it: its Wasm signature and its body.
/// Our runtime reaches it through [`Wasi::import`]; the engines `clif-bounds bench` runs
/// beside ours (feature `peers`) link the same functions, so that every engine runs a
/// program on the same host.
#[derive(Clone, Copy)]
pub struct HostImport {
    /// Parameter types.
    pub params: &'static [ValType],
    /// Result types: none, or the `i32` errno.
    pub results: &'static [ValType],
    body: Body,
}

impl HostImport {
    /// The function `module.field`: `wasi_snapshot_preview1.*` and `bench.*`.
    pub fn lookup(module: &str, field: &str) -> Option<HostImport> {
        use ValType::{I32, I64};
        let (params, results, body): (&'static [ValType], &'static [ValType], Body) =
            match (module, field) {
                ("bench", "start") => (&[], &[], |w, _, _| {
                    w.bench_start.set(Some(Instant::now()));
                    Ok(wasi::ERRNO_SUCCESS)
                }),
                ("bench", "end") => (&[], &[], |w, _, _| {
                    if let Some(start) = w.bench_start.get() {
                        w.measured.set(Some(start.elapsed()));
                    }
                    Ok(wasi::ERRNO_SUCCESS)
                }),
                ("wasi_snapshot_preview1", f) => match f {
                    "args_sizes_get" => (&[I32, I32], &[I32], |w, g, a| sizes(g, &w.args, a)),
                    "args_get" => (&[I32, I32], &[I32], |w, g, a| strings(g, &w.args, a)),
                    "environ_sizes_get" => (&[I32, I32], &[I32], |w, g, a| sizes(g, &w.env, a)),
                    "environ_get" => (&[I32, I32], &[I32], |w, g, a| strings(g, &w.env, a)),
                    "fd_write" => (&[I32, I32, I32, I32], &[I32], Wasi::fd_write),
                    "fd_read" => (&[I32, I32, I32, I32], &[I32], Wasi::fd_read),
                    "fd_close" => (&[I32], &[I32], Wasi::fd_close),
                    "fd_seek" => (&[I32, I64, I32, I32], &[I32], Wasi::fd_seek),
                    "fd_fdstat_get" => (&[I32, I32], &[I32], Wasi::fd_fdstat_get),
                    "fd_filestat_get" => (&[I32, I32], &[I32], Wasi::fd_filestat_get),
                    "fd_prestat_get" => (&[I32, I32], &[I32], Wasi::fd_prestat_get),
                    "fd_prestat_dir_name" => (&[I32, I32, I32], &[I32], Wasi::fd_prestat_dir_name),
                    "path_open" => (
                        &[I32, I32, I32, I32, I32, I64, I64, I32, I32],
                        &[I32],
                        Wasi::path_open,
                    ),
                    "path_filestat_get" => {
                        (&[I32, I32, I32, I32, I32], &[I32], Wasi::path_filestat_get)
                    }
                    "clock_time_get" => (&[I32, I64, I32], &[I32], Wasi::clock_time_get),
                    "random_get" => (&[I32, I32], &[I32], Wasi::random_get),
                    "proc_exit" => (&[I32], &[], |w, _, a| {
                        w.exit.set(Some(a[0] as u32));
                        Err(Trap {
                            code: traps::EXIT,
                            location: format!("proc_exit({})", a[0] as u32),
                        })
                    }),
                    _ => return None,
                },
                _ => return None,
            };
        Some(HostImport {
            params,
            results,
            body,
        })
    }

    /// Calls it for `host`, on the caller's `memory`, with the arguments' bits: the errno
    /// when it returns one, or the trap that ends the program (`proc_exit`).
    pub fn call(
        &self,
        host: &Wasi,
        memory: &dyn GuestMemory,
        args: &[u64],
    ) -> Result<Option<u32>, Trap> {
        let errno = (self.body)(host, &Guest { memory }, args)?;
        Ok((!self.results.is_empty()).then_some(u32::from(errno.raw())))
    }
}

/// The memory a WASI function reads and writes: the calling instance's memory 0, on
/// whichever engine runs it.
pub trait GuestMemory {
    /// The `len` bytes at `ptr`, or `None` when they are not all inside the memory.
    fn read(&self, ptr: u64, len: u64) -> Option<Vec<u8>>;
    /// Writes `bytes` at `ptr` and returns true, or returns false (and writes nothing) when
    /// they do not all fit.
    fn write(&self, ptr: u64, bytes: &[u8]) -> bool;
    /// The memory's size in bytes.
    fn size(&self) -> u64;
}

/// A memory of our runtime's store.
struct StoreMemory<'a> {
    store: &'a Store,
    memory: usize,
}

impl<'a> StoreMemory<'a> {
    fn of(store: &'a Store, caller: usize) -> Result<StoreMemory<'a>, Trap> {
        let memory = store
            .instance(caller)
            .memories
            .first()
            .copied()
            .ok_or_else(|| Trap {
                code: traps::UNREACHABLE,
                location: "a WASI function called from a module without a memory".into(),
            })?;
        Ok(StoreMemory { store, memory })
    }
}

impl GuestMemory for StoreMemory<'_> {
    fn read(&self, ptr: u64, len: u64) -> Option<Vec<u8>> {
        self.store
            .with_memories(|m| m.get(self.memory).read(ptr, len))
    }
    fn write(&self, ptr: u64, bytes: &[u8]) -> bool {
        self.store
            .with_memories(|m| m.get_mut(self.memory).write(ptr, bytes))
            .is_ok()
    }
    fn size(&self) -> u64 {
        self.store.with_memories(|m| m.get(self.memory).size())
    }
}

/// A guest memory as a WASI function uses it: every range is checked against the memory's
/// size, and one outside it is `EFAULT`.
struct Guest<'a> {
    memory: &'a dyn GuestMemory,
}

impl Guest<'_> {
    fn load(&self, ptr: u32, len: u32) -> Result<Vec<u8>, Errno> {
        self.memory
            .read(u64::from(ptr), u64::from(len))
            .ok_or(wasi::ERRNO_FAULT)
    }

    fn store(&self, ptr: u32, bytes: &[u8]) -> Result<(), Errno> {
        match self.memory.write(u64::from(ptr), bytes) {
            true => Ok(()),
            false => Err(wasi::ERRNO_FAULT),
        }
    }

    fn store_u32(&self, ptr: u32, v: u32) -> Result<(), Errno> {
        self.store(ptr, &v.to_le_bytes())
    }

    fn store_u64(&self, ptr: u32, v: u64) -> Result<(), Errno> {
        self.store(ptr, &v.to_le_bytes())
    }

    /// The `(buf, len)` pairs of `n` iovecs at `iovs`, each range checked against the
    /// memory.
    fn iovecs(&self, iovs: u32, n: u32) -> Result<Vec<(u32, u32)>, Errno> {
        let bytes = self.load(iovs, n.checked_mul(8).ok_or(wasi::ERRNO_FAULT)?)?;
        bytes
            .chunks_exact(8)
            .map(|c| {
                let word = |i: usize| u32::from_le_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
                let (ptr, len) = (word(0), word(4));
                self.check(ptr, len).map(|_| (ptr, len))
            })
            .collect()
    }

    /// `EFAULT` unless `[ptr, ptr + len)` is inside the memory.
    fn check(&self, ptr: u32, len: u32) -> Result<(), Errno> {
        match u64::from(ptr) + u64::from(len) <= self.memory.size() {
            true => Ok(()),
            false => Err(wasi::ERRNO_FAULT),
        }
    }
}
