//! File watches (outside review r98 F1).
//!
//! `inotify_add_watch` needs no open of the file, only read permission, and Landlock does not
//! mediate it: from the sandbox, a watch on another of the user's terminals (`/dev/pts/N`)
//! reported an `IN_ACCESS` and an `IN_MODIFY` event per key typed there, with its timing (a known
//! side channel for guessing typed text and passwords), and a watch on a deny-read file
//! (`~/.ssh/id_ed25519`) or on the directory holding one reported each moment the user's tools
//! opened it. `fanotify` (unprivileged since Linux 5.13) reports the same.
//!
//! Mechanism: `inotify_add_watch` is a seccomp user notification of the filter the connect
//! supervisor already serves, in every policy and both modes; `fanotify_init` and
//! `fanotify_mark` are refused with `EPERM` ([`REFUSED_CALLS`]; nothing a build or a test runner
//! needs: their watchers use inotify). The supervisor, in the launcher:
//! 1. copies the path **once** and resolves it as the child sees it (`openat2` below
//!    `/proc/TID/root`, `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`, from the child's cwd; a
//!    symlink is followed unless the mask has `IN_DONT_FOLLOW`; a path through
//!    `/proc/self/fd/N` is refused), as for the metadata calls ([`crate::meta_guard`]);
//! 2. refuses with `EACCES` a character or block device, anything below `/dev`, a deny-read
//!    path or anything below one, and a directory that directly holds a deny-read path (a
//!    directory watch reports its entries' events with their names: a watch on `~` reports
//!    each read of `~/.netrc`);
//! 3. checks the notification is still pending, takes the child's inotify descriptor
//!    (`pidfd_getfd`: the same instance) and adds the watch itself on the file it resolved
//!    (`/proc/self/fd/N` of its own descriptor, the mask without `IN_DONT_FOLLOW`); the watch
//!    descriptor is the call's result. It never answers `SECCOMP_USER_NOTIF_FLAG_CONTINUE`.
//!
//! Also refused: a file on procfs (nothing to watch there; without a pid namespace `/proc/self`
//! reached through a symbolic link would be the supervisor's own: outside review r100 F4), and
//! dnotify (`fcntl(F_NOTIFY)`, `EPERM` by the sandbox's seccomp table: it needs only a directory
//! the command may list, and on `~` or `~/.ssh` signalled each read of a file there by the
//! user's tools outside; r100 F1). A file replaced while being resolved (an editor's save by
//! rename) answers `ENOENT`, and `openat2`'s `EAGAIN` after a racing rename is retried (r100
//! F4).
//!
//! Watches in the writable roots and on readable files elsewhere keep working (build watchers,
//! `tail -f`); each costs a round trip to the supervisor (110–220 µs against 4 µs, r100's
//! measure). Not covered: the command shares the user's inotify limits
//! (`fs.inotify.max_user_instances`, `max_user_watches`) with the user's other processes while
//! it runs and can exhaust them, as any process of the user can (r100 F3); and a relative path
//! longer than `PATH_MAX` once joined to the cwd's path gets `ENAMETOOLONG`.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

pub(crate) mod sys;

use crate::unix_connect::sys as usys;

/// Errno of a refused watch.
pub const DENIED_ERRNO: i32 = libc::EACCES;

/// Refused outright (`EPERM`) in every policy.
pub const REFUSED_CALLS: &[libc::c_long] = &[libc::SYS_fanotify_init, libc::SYS_fanotify_mark];

/// The notified call.
pub const CALL: libc::c_long = libc::SYS_inotify_add_watch;

/// Longest path copied from the child (`PATH_MAX`).
const PATH_MAX: usize = 4096;

/// Answer one `inotify_add_watch` notification: `Ok(watch descriptor)` or `Err(errno)`.
pub fn handle(listener: &OwnedFd, n: &libc::seccomp_notif, denied: &[PathBuf]) -> Result<i64, i32> {
    let tid = n.pid as libc::pid_t;
    let fd = n.data.args[0] as i32;
    let mask = n.data.args[2] as u32;
    let path = crate::meta_guard::read_cstr(tid, n.data.args[1], PATH_MAX)?;
    let follow = mask & libc::IN_DONT_FOLLOW == 0;
    let file = crate::meta_guard::resolve(tid, libc::AT_FDCWD, &path, follow)?;
    let md = file
        .try_clone()
        .and_then(|dup| std::fs::File::from(dup).metadata())
        .map_err(|_| DENIED_ERRNO)?;
    let real = crate::meta_guard::fd_path(&file).map_err(|_| DENIED_ERRNO)?;
    // replaced while resolved (an editor's save by rename): gone, as the kernel would say
    if real.as_os_str().as_bytes().ends_with(b" (deleted)") {
        return Err(libc::ENOENT);
    }
    // procfs: no events to watch there, and without a pid namespace `/proc/self` (through a
    // symbolic link the command made) is the supervisor's own (outside review r100 F4)
    if sys::is_procfs(&file) || refused(&real, md.file_type(), denied) {
        return Err(DENIED_ERRNO);
    }
    let pidfd = crate::unix_connect::supervisor_open_pidfd(tid).map_err(|_| libc::ESRCH)?;
    let instance = usys::pidfd_getfd(&pidfd, fd).map_err(|_| libc::EBADF)?;
    // The thread is still blocked in this very call: the path we copied, its root and cwd
    // were its own (no pid reuse in between).
    if !usys::notif_id_valid(listener, n.id) {
        return Err(libc::EINTR);
    }
    let link = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .expect("no NUL in a /proc path");
    sys::inotify_add_watch(&instance, &link, mask & !libc::IN_DONT_FOLLOW)
}

/// Is a watch on `real` (the resolved file's path) refused? See the module documentation.
fn refused(real: &Path, kind: std::fs::FileType, denied: &[PathBuf]) -> bool {
    kind.is_char_device()
        || kind.is_block_device()
        || real.starts_with("/dev")
        || denied
            .iter()
            .any(|d| real.starts_with(d) || (kind.is_dir() && d.parent() == Some(real)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_of(p: &str) -> std::fs::FileType {
        std::fs::metadata(p).unwrap().file_type()
    }

    #[test]
    fn devices_deny_read_paths_and_their_directories_are_refused() {
        let denied = vec![
            PathBuf::from("/home/u/.ssh"),
            PathBuf::from("/home/u/.netrc"),
        ];
        let dir = kind_of("/");
        let file = kind_of("/proc/self/exe");
        // devices and /dev
        assert!(refused(Path::new("/dev/null"), kind_of("/dev/null"), &[]));
        assert!(refused(Path::new("/dev/pts"), dir, &[]));
        // a deny-read path, below one, and the directory holding one
        assert!(refused(Path::new("/home/u/.ssh"), dir, &denied));
        assert!(refused(Path::new("/home/u/.ssh/id_ed25519"), file, &denied));
        assert!(refused(Path::new("/home/u/.netrc"), file, &denied));
        assert!(refused(Path::new("/home/u"), dir, &denied));
        // controls: a sibling file, a workspace, a deeper ancestor (no direct entry denied)
        assert!(!refused(Path::new("/home/u/.bashrc"), file, &denied));
        assert!(!refused(Path::new("/home/u/ws"), dir, &denied));
        assert!(!refused(Path::new("/home"), dir, &denied));
        assert!(!refused(Path::new("/home/u/.sshx"), dir, &denied));
        assert!(!refused(Path::new("/devices"), dir, &denied));
    }
}
