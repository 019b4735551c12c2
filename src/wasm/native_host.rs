//! What natively running code (ours on x86_64, or real Cranelift's) calls in the host: the
//! runtime's `memory.grow`, with the store's memories reachable from the thread running the
//! code.

use super::runtime::Memories;
use std::cell::RefCell;
use std::sync::{Arc, Mutex};

thread_local! {
    /// The memories of the store whose code is running on this thread, for `memory.grow`.
    static MEMORIES: RefCell<Option<Arc<Mutex<Memories>>>> = const { RefCell::new(None) };
}

/// `memory.grow` as generated code calls it (System V): `(vmctx, memory index, delta in
/// pages)`, returning the old size in pages or `u64::MAX`.
pub extern "sysv64" fn grow_host(vmctx: u64, index: u32, delta: u64) -> u64 {
    MEMORIES.with(|m| {
        let m = m.borrow();
        let Some(m) = m.as_ref() else { return u64::MAX };
        let mut mems = m.lock().unwrap_or_else(|p| p.into_inner());
        mems.grow(vmctx, index, delta)
            .map_or(u64::MAX, |old| old as u64)
    })
}

/// The address of [`grow_host`].
pub fn grow_host_addr() -> u64 {
    grow_host as *const () as usize as u64
}

/// Runs `f` (which runs generated code) with `memories` reachable from [`grow_host`].
pub fn with_memories<T>(memories: &Arc<Mutex<Memories>>, f: impl FnOnce() -> T) -> T {
    MEMORIES.with(|m| *m.borrow_mut() = Some(Arc::clone(memories)));
    let r = f();
    MEMORIES.with(|m| *m.borrow_mut() = None);
    r
}
