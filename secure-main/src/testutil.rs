//! Unit-test helpers: look at this process's memory from "outside" through /proc/self/mem, so a
//! test can check what is left in a region without a Rust reference to it.

use std::os::unix::fs::FileExt;

use crate::sys::{KEEP_MAPPING_ON_DROP, LAST_MAPPED_DATA, NO_SECRET_MEMORY};

/// Buffers created on this thread from now on use mlock'ed pages, never memfd_secret (whose
/// pages /proc/self/mem cannot read), so a test can inspect them.
pub(crate) fn no_secret_memory() {
    NO_SECRET_MEMORY.with(|n| n.set(true));
}

/// Reads `len` bytes at `addr` through /proc/self/mem.
pub(crate) fn peek(addr: usize, len: usize) -> Vec<u8> {
    let f = std::fs::File::open("/proc/self/mem").expect("open /proc/self/mem");
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, addr as u64)
        .expect("read /proc/self/mem");
    buf
}

/// Runs `f` with mappings kept (not unmapped) on drop on this thread, and returns the data
/// region most recently mapped inside `f`, as it is after `f` returned.
pub(crate) fn region_after<R>(f: impl FnOnce() -> R) -> (R, Vec<u8>) {
    no_secret_memory();
    KEEP_MAPPING_ON_DROP.with(|k| k.set(true));
    LAST_MAPPED_DATA.with(|l| l.set((0, 0)));
    let r = f();
    KEEP_MAPPING_ON_DROP.with(|k| k.set(false));
    let (addr, len) = LAST_MAPPED_DATA.with(|l| l.get());
    assert_ne!(addr, 0, "nothing was mapped");
    (r, peek(addr, len))
}

pub(crate) fn all_zero(b: &[u8]) -> bool {
    b.iter().all(|b| *b == 0)
}
