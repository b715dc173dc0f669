//! `Landlock::allow_fd`: the rule lands on the object the descriptor was opened on, whatever its
//! path names when the ruleset is created (issue 12 item 8). Control: `allow_path` on a path
//! swapped for a link the same way follows the link.

// Test code: a failed set-up step must fail the test loudly.
#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use codex_confine::landlock::{Access, Compat, Landlock};

fn open_path(p: &Path) -> OwnedFd {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(p)
        .unwrap()
        .into()
}

fn c(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// `dir` moved to `dir.old`, a link to `target` in its place.
fn swap(dir: &Path, target: &Path) {
    std::fs::rename(dir, dir.with_extension("old")).unwrap();
    std::os::unix::fs::symlink(target, dir).unwrap();
}

#[test]
fn a_rule_from_a_descriptor_stays_on_its_directory_when_the_path_is_swapped() {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(dir.path()).unwrap();
    for d in ["by_fd", "by_path", "secret1", "secret2"] {
        std::fs::create_dir(base.join(d)).unwrap();
    }
    // the descriptor is opened (and would be checked) before the swap; the path rule's path is
    // swapped before `create` opens it
    let fd = open_path(&base.join("by_fd"));
    swap(&base.join("by_fd"), &base.join("secret1"));
    swap(&base.join("by_path"), &base.join("secret2"));
    let created = Landlock::new(Compat::HardRequirement)
        .allow_fd(fd, Access::Full, base.join("by_fd"))
        .allow_path(base.join("by_path"), Access::Full)
        .create()
        .unwrap();
    let targets = [
        c(&base.join("by_fd/f")),     // through the link: secret1, must fail
        c(&base.join("by_fd.old/f")), // the directory the descriptor names
        c(&base.join("by_path/f")),   // control: the path rule followed the link to secret2
    ];
    // SAFETY: the child makes only system calls on memory prepared above and `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let mut code = 0;
        if created.restrict_self().is_err() {
            // SAFETY: _exit never returns.
            unsafe { libc::_exit(100) }
        }
        for (i, t) in targets.iter().enumerate() {
            // SAFETY: `t` is a NUL-terminated path borrowed for the call.
            let fd = unsafe {
                libc::open(
                    t.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o600,
                )
            };
            if fd >= 0 {
                code |= 1 << i;
            }
        }
        // SAFETY: _exit never returns.
        unsafe { libc::_exit(code) }
    }
    let mut status = 0;
    // SAFETY: `status` is a live c_int for waitpid to fill.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status), "status {status}");
    let code = libc::WEXITSTATUS(status);
    assert_ne!(code, 100, "landlock_restrict_self failed");
    assert_eq!(
        code & 1,
        0,
        "the fd rule followed the link swapped in after it was opened"
    );
    assert_eq!(
        code & 2,
        2,
        "the directory the descriptor names is writable"
    );
    assert_eq!(code & 4, 4, "control: a path rule follows the swapped link");
    assert!(!base.join("secret1/f").exists());
    assert!(base.join("secret2/f").exists());
}
