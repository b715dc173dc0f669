//! The syscall layer: every `unsafe` block of the crate lives in this module and its children.
//!
//! Each function wraps one system call (or one tightly bound sequence, named in its doc) in a safe
//! signature returning `io::Result`, with a `// SAFETY:` comment naming the invariant it relies on.

use std::ffi::c_int;
use std::io;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::*;

#[cfg(target_vendor = "apple")]
mod macos;
#[cfg(target_vendor = "apple")]
pub(crate) use macos::*;

/// The system page size (`sysconf(_SC_PAGESIZE)`), falling back to 4096 if sysconf fails.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf takes no pointers and only reads a configuration value.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(n).ok().filter(|n| *n > 0).unwrap_or(4096)
}

/// Soft and hard limit of one resource, as the kernel reports them (`RLIM_INFINITY` = `u64::MAX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rlimit {
    pub(crate) soft: u64,
    pub(crate) hard: u64,
}

/// `setrlimit(RLIMIT_CORE, {soft, hard})`.
pub(crate) fn set_core_limit(soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: `lim` is a valid, initialised rlimit that lives across the call; setrlimit only reads it.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_CORE, &lim) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `getrlimit(RLIMIT_CORE)`.
pub(crate) fn get_core_limit() -> io::Result<Rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the duration of the call.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut lim) };
    if rc == 0 {
        // rlim_t is u64 on 64-bit targets but `unsigned long` (32 bits) on 32-bit glibc.
        #[allow(clippy::unnecessary_cast)]
        let widen = |v: libc::rlim_t| {
            if v == libc::RLIM_INFINITY {
                u64::MAX
            } else {
                v as u64
            }
        };
        Ok(Rlimit {
            soft: widen(lim.rlim_cur),
            hard: widen(lim.rlim_max),
        })
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Ends the process at once with `code` (`_exit(2)`): no atexit handlers, no unwinding, no stdio
/// flushing. Used when pre-main hardening fails, before any of the program's own code has run.
pub(crate) fn exit_immediately(code: c_int) -> ! {
    // SAFETY: _exit takes no pointers and never returns; skipping destructors and atexit handlers
    // is the point (nothing of the program has run yet).
    unsafe { libc::_exit(code) }
}

/// One raw `read(2)` into `buf`; no retry, no buffering.
pub(crate) fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: `buf` is a valid, writable slice of `buf.len()` bytes for the duration of the call and
    // `fd` is an open descriptor borrowed for that duration.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

/// Standard input as a process-lifetime borrowed descriptor.
pub(crate) fn stdin_fd() -> BorrowedFd<'static> {
    // SAFETY: descriptor 0 is the process's standard input, which the standard library treats as
    // open for the whole process lifetime and never closes; if a caller closed it anyway, the only
    // use of the number is `read(2)`, which then fails with EBADF (no memory is touched).
    unsafe { BorrowedFd::borrow_raw(0) }
}

/// Real, effective and saved ids plus supplementary groups of this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ids {
    pub(crate) uid: u32,
    pub(crate) euid: u32,
    pub(crate) gid: u32,
    pub(crate) egid: u32,
    pub(crate) groups: Vec<u32>,
}

/// `getuid`: the real user id.
pub(crate) fn real_uid() -> u32 {
    // SAFETY: getuid takes no arguments and cannot fail.
    unsafe { libc::getuid() }
}

/// `getuid`, `geteuid`, `getgid`, `getegid` and `getgroups` (twice: size, then fill).
pub(crate) fn ids() -> io::Result<Ids> {
    // SAFETY: these four calls take no arguments and cannot fail.
    let (uid, euid, gid, egid) = unsafe {
        (
            libc::getuid(),
            libc::geteuid(),
            libc::getgid(),
            libc::getegid(),
        )
    };
    // SAFETY: with size 0 getgroups writes nothing and returns the number of groups.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
    let mut groups: Vec<libc::gid_t> = vec![0; n];
    let len =
        c_int::try_from(groups.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
    // SAFETY: `groups` has room for exactly `len` gid_t values, the size passed to the kernel.
    let got = unsafe { libc::getgroups(len, groups.as_mut_ptr()) };
    let got = usize::try_from(got).map_err(|_| io::Error::last_os_error())?;
    groups.truncate(got);
    Ok(Ids {
        uid,
        euid,
        gid,
        egid,
        groups,
    })
}

/// Which call of [`GuardedPages::map`] failed.
#[derive(Debug)]
pub(crate) enum MapError {
    Mmap(io::Error),
    Mprotect(io::Error),
}

/// An anonymous private mapping laid out as `[guard page][data pages][guard page]`, the guards
/// `PROT_NONE`. The data pages are always readable and writable while this value exists. On drop
/// the data pages are overwritten with zeros (volatile writes), then unlocked (if they were
/// locked), then unmapped.
pub(crate) struct GuardedPages {
    /// Start of the whole mapping (the low guard page).
    base: NonNull<u8>,
    /// Length of the whole mapping: data pages + 2 guard pages.
    total: usize,
    page: usize,
    /// Length of the data region (a whole number of pages, at least one).
    data_len: usize,
    locked: bool,
    /// The data pages are a `memfd_secret(2)` mapping (Linux): out of the kernel's direct map,
    /// unevictable, unreachable through /proc/<pid>/mem.
    secret: bool,
}

// SAFETY: GuardedPages exclusively owns its mapping (no aliasing pointer escapes except through
// `&self`/`&mut self` borrows or `leak`), so moving it to or sharing `&` it with another thread is
// like doing so with a `Box<[u8]>`.
unsafe impl Send for GuardedPages {}
// SAFETY: see `Send`; `&GuardedPages` only gives out `&[u8]`.
unsafe impl Sync for GuardedPages {}

impl GuardedPages {
    /// `mmap` of `data_len` rounded up to whole pages (at least one) plus two guard pages, then
    /// `mprotect(PROT_NONE)` on each guard page. On failure nothing stays mapped.
    ///
    /// With `try_secret` (Linux), the data pages are then replaced by a `memfd_secret(2)` mapping
    /// at the same address when the kernel offers it (see [`GuardedPages::is_secret`]); when it
    /// does not (ENOSYS before 5.14, or disabled), they stay ordinary anonymous pages.
    pub(crate) fn map(data_len: usize, try_secret: bool) -> Result<Self, MapError> {
        let page = page_size();
        let data_len = data_len
            .max(1)
            .checked_next_multiple_of(page)
            .ok_or_else(|| MapError::Mmap(io::Error::from(io::ErrorKind::OutOfMemory)))?;
        let total = data_len
            .checked_add(2 * page)
            .ok_or_else(|| MapError::Mmap(io::Error::from(io::ErrorKind::OutOfMemory)))?;
        // SAFETY: a fresh anonymous private mapping at an address the kernel chooses; no existing
        // memory is affected. The result is checked against MAP_FAILED below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                total,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANON,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(MapError::Mmap(io::Error::last_os_error()));
        }
        let Some(base) = NonNull::new(p.cast::<u8>()) else {
            return Err(MapError::Mmap(io::Error::from(io::ErrorKind::OutOfMemory)));
        };
        // From here on, dropping `pages` unmaps the region.
        let mut pages = GuardedPages {
            base,
            total,
            page,
            data_len,
            locked: false,
            secret: false,
        };
        let high_guard = page + data_len;
        for offset in [0, high_guard] {
            // SAFETY: [base + offset, base + offset + page) is a whole page inside the mapping we
            // own (offset is 0 or page + data_len, and total = data_len + 2 * page); no Rust
            // reference to it exists.
            let rc = unsafe {
                libc::mprotect(
                    pages.base.as_ptr().add(offset).cast(),
                    page,
                    libc::PROT_NONE,
                )
            };
            if rc != 0 {
                return Err(MapError::Mprotect(io::Error::last_os_error()));
            }
        }
        #[cfg(test)]
        let try_secret = try_secret && !NO_SECRET_MEMORY.with(|n| n.get());
        #[cfg(target_os = "linux")]
        if try_secret {
            pages.secret = pages.map_secret_data().map_err(MapError::Mmap)?;
        }
        #[cfg(not(target_os = "linux"))]
        let _ = try_secret;
        #[cfg(test)]
        LAST_MAPPED_DATA.with(|l| l.set((pages.data_addr(), pages.data_len)));
        Ok(pages)
    }

    /// Replaces the data pages with a `memfd_secret` mapping (`MAP_SHARED|MAP_FIXED` over the
    /// same range); `false`, with the anonymous pages untouched, when the kernel refuses.
    #[cfg(target_os = "linux")]
    fn map_secret_data(&mut self) -> io::Result<bool> {
        // SAFETY: memfd_secret takes a flags integer and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_memfd_secret, libc::O_CLOEXEC) };
        let Ok(fd) = libc::c_int::try_from(fd) else {
            return Ok(false);
        };
        if fd < 0 {
            return Ok(false);
        }
        // SAFETY: `fd` was just returned to us and is closed exactly once, below.
        let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
        let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
        let Ok(len) = libc::off_t::try_from(self.data_len) else {
            return Ok(false);
        };
        // SAFETY: ftruncate on a descriptor we own.
        if unsafe { libc::ftruncate(raw, len) } != 0 {
            return Ok(false);
        }
        // SAFETY: MAP_FIXED over exactly the data region of the mapping we own (no Rust reference
        // into it exists yet); on failure the kernel may have removed the old pages, so the range
        // is mapped anonymous again below before anyone touches it.
        let p = unsafe {
            libc::mmap(
                self.data_ptr().cast(),
                self.data_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED,
                raw,
                0,
            )
        };
        if p == libc::MAP_FAILED || p.cast::<u8>() != self.data_ptr() {
            // SAFETY: as above: the data region of our mapping, replaced by fresh anonymous pages.
            let q = unsafe {
                libc::mmap(
                    self.data_ptr().cast(),
                    self.data_len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANON | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if q == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            return Ok(false);
        }
        // The mapping keeps the memory alive; the descriptor is not needed any more.
        drop(fd);
        Ok(true)
    }

    /// Whether the data pages are a `memfd_secret` mapping.
    pub(crate) fn is_secret(&self) -> bool {
        self.secret
    }

    fn data_ptr(&self) -> *mut u8 {
        // SAFETY: `page` < `total`, so the result stays inside the mapping.
        unsafe { self.base.as_ptr().add(self.page) }
    }

    /// Address of the first data byte (for reports and tests; never dereference it yourself).
    pub(crate) fn data_addr(&self) -> usize {
        self.data_ptr() as usize
    }

    /// Length of the data region in bytes (whole pages).
    pub(crate) fn data_len(&self) -> usize {
        self.data_len
    }

    /// Page size the mapping was laid out with.
    pub(crate) fn page(&self) -> usize {
        self.page
    }

    /// The data region.
    pub(crate) fn data(&self) -> &[u8] {
        // SAFETY: the data pages are mapped PROT_READ|PROT_WRITE for as long as `self` lives,
        // zero-initialised by the kernel, and only mutated through `&mut self`.
        unsafe { std::slice::from_raw_parts(self.data_ptr(), self.data_len) }
    }

    /// The data region, writable.
    pub(crate) fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`; `&mut self` guarantees no other reference to the region exists.
        unsafe { std::slice::from_raw_parts_mut(self.data_ptr(), self.data_len) }
    }

    /// `mlock` on the data region.
    pub(crate) fn lock(&mut self) -> io::Result<()> {
        // SAFETY: the range is the data region of a mapping we own; mlock does not access memory
        // through the pointer.
        let rc = unsafe { libc::mlock(self.data_ptr().cast(), self.data_len) };
        if rc == 0 {
            self.locked = true;
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// `madvise(advice)` on the data region.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn advise(&self, advice: c_int) -> io::Result<()> {
        // SAFETY: the range is the data region of a mapping we own; the advice values used by
        // this crate (MADV_DONTDUMP, MADV_WIPEONFORK) change dump/fork behaviour, not contents.
        let rc = unsafe { libc::madvise(self.data_ptr().cast(), self.data_len, advice) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Gives up ownership: the mapping stays (locked, guarded) until the process exits.
    pub(crate) fn leak(self) -> &'static [u8] {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: the mapping is never unmapped (Drop does not run), so the data region stays
        // readable for the rest of the process; nothing can obtain `&mut` to it any more.
        unsafe { std::slice::from_raw_parts(this.data_ptr(), this.data_len) }
    }
}

#[cfg(test)]
thread_local! {
    /// Test hook: when set, dropping a GuardedPages leaves the mapping in place, so a test can
    /// check through /proc/self/mem that drop wiped it (a wiped-then-unmapped region cannot be
    /// inspected).
    pub(crate) static KEEP_MAPPING_ON_DROP: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Test hook: when set, `map` never uses memfd_secret on this thread (tests that inspect a
    /// region through /proc/self/mem need readable pages).
    pub(crate) static NO_SECRET_MEMORY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Test hook: (address, length) of the data region most recently mapped on this thread.
    pub(crate) static LAST_MAPPED_DATA: std::cell::Cell<(usize, usize)> = const { std::cell::Cell::new((0, 0)) };
}

impl Drop for GuardedPages {
    fn drop(&mut self) {
        // Wipe while the pages are still locked, so the secret is never swapped out on the way.
        zeroize::Zeroize::zeroize(self.data_mut());
        #[cfg(test)]
        if KEEP_MAPPING_ON_DROP.with(|k| k.get()) {
            return;
        }
        if self.locked {
            // SAFETY: the data region of a mapping we own and locked; munlock does not access
            // memory. A failure leaves the pages locked until munmap, which unlocks them anyway.
            unsafe { libc::munlock(self.data_ptr().cast(), self.data_len) };
        }
        // SAFETY: [base, base + total) is exactly the mapping created in `map`, owned by `self`;
        // no reference into it outlives `self` (`data`/`data_mut` borrow `self`).
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.total) };
    }
}

/// Removes from `environ` every entry whose bytes satisfy `matches` (the whole `NAME=value`
/// string is passed), the way `unsetenv` does: by moving the later pointers down. Returns a copy
/// of each removed entry and whether it was wiped in place. Entries whose bytes lie completely inside `wipe` (the kernel-provided
/// environment block, from /proc/self/stat) are then overwritten with NUL bytes in place, so the
/// values disappear from memory and from `/proc/<pid>/environ`; the strings stay valid (empty) C
/// strings for anyone still holding a pointer into them.
///
/// Must run while the process is single-threaded (pre-main): it edits `environ` without the
/// standard library's environment lock.
pub(crate) fn remove_env_entries(
    matches: &dyn Fn(&[u8]) -> bool,
    wipe: Option<std::ops::Range<usize>>,
) -> Vec<(Vec<u8>, bool)> {
    let mut removed = Vec::new();
    let mut to_wipe: Vec<(*mut u8, usize)> = Vec::new();
    let env = environ_ptr();
    if env.is_null() {
        return removed;
    }
    let mut i = 0usize;
    loop {
        // SAFETY: `env` is the NULL-terminated environ array and `i` never passes its terminator
        // (we stop at NULL and only shift later entries down over removed ones).
        let entry = unsafe { *env.add(i) };
        if entry.is_null() {
            break;
        }
        // SAFETY: every non-NULL environ entry is a NUL-terminated C string that lives for the
        // process (kernel stack block or libc-owned heap); nothing mutates it concurrently
        // because the process is single-threaded here.
        let bytes = unsafe { std::ffi::CStr::from_ptr(entry) }.to_bytes();
        if matches(bytes) {
            let start = entry as usize;
            let in_block = wipe.as_ref().is_some_and(|range| {
                start >= range.start && start.saturating_add(bytes.len()) < range.end
            });
            if in_block {
                to_wipe.push((entry.cast::<u8>(), bytes.len()));
            }
            removed.push((bytes.to_vec(), in_block));
            let mut j = i;
            loop {
                // SAFETY: j and j + 1 are within the array: j + 1 is at most the index of the
                // NULL terminator, which is also copied, ending the loop.
                let next = unsafe { *env.add(j + 1) };
                // SAFETY: as above; environ's array is writable (kernel stack or libc heap).
                unsafe { *env.add(j) = next };
                if next.is_null() {
                    break;
                }
                j += 1;
            }
        } else {
            i += 1;
        }
    }
    for (ptr, len) in to_wipe {
        // SAFETY: `ptr..ptr + len` are the bytes of one string inside the kernel-provided
        // environment block (checked against `wipe` above): writable stack memory, not owned by
        // any allocator, no longer referenced from `environ`, and no Rust reference to it exists.
        let s = unsafe { std::slice::from_raw_parts_mut(ptr, len) };
        zeroize::Zeroize::zeroize(s);
    }
    removed
}

/// Every `environ` entry, copied (for verification and reports).
pub(crate) fn env_entries() -> Vec<Vec<u8>> {
    let env = environ_ptr();
    let mut out = Vec::new();
    if env.is_null() {
        return out;
    }
    let mut i = 0usize;
    loop {
        // SAFETY: `env` is the NULL-terminated environ array; we stop at the terminator.
        let entry = unsafe { *env.add(i) };
        if entry.is_null() {
            break;
        }
        // SAFETY: a non-NULL environ entry is a NUL-terminated C string (see remove_env_entries).
        out.push(
            unsafe { std::ffi::CStr::from_ptr(entry) }
                .to_bytes()
                .to_vec(),
        );
        i += 1;
    }
    out
}

#[cfg(not(target_vendor = "apple"))]
fn environ_ptr() -> *mut *mut libc::c_char {
    unsafe extern "C" {
        static mut environ: *mut *mut libc::c_char;
    }
    // SAFETY: reading the value of libc's `environ` pointer (not forming a reference to the
    // static); callers only use it while the process is single-threaded or for a read-only scan.
    unsafe { environ }
}
