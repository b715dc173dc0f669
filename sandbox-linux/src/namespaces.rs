//! Cloning the sandbox's first process into its namespaces: user (unless root with
//! `CAP_SYS_ADMIN`), mount, pid and IPC, in one `clone`, so that the process is pid 1 of the new
//! pid namespace ([`crate::pidns`]) and owns a mount namespace ([`crate::mountns`],
//! [`crate::metadata`]) and an IPC namespace (SysV IPC objects outside are invisible: keys
//! resolve to the namespace's own, empty, set).
//!
//! Without them (`clone` refused: `user.max_user_namespaces=0`, AppArmor's
//! `apparmor_restrict_unprivileged_userns`, a container's seccomp profile) the launcher forks
//! instead and the sandbox uses its fallbacks (see `launch.rs`).

use std::io;

use crate::mountns::Entered;
use crate::sys;

/// The namespaces besides the user namespace.
const FLAGS: libc::c_int = libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWIPC;

/// `clone` into new namespaces. Root tries without a user namespace first (it keeps its view of
/// file ownership). The error is the last `clone`'s.
///
/// The caller must be single-threaded.
pub fn clone_isolated() -> io::Result<(sys::Fork, Entered)> {
    let outer_ids = (sys::getuid(), sys::getgid());
    if outer_ids.0 == 0 {
        if let Ok(f) = sys::clone_into(FLAGS) {
            return Ok((
                f,
                Entered {
                    user: false,
                    outer_ids,
                },
            ));
        }
    }
    let f = sys::clone_into(FLAGS | libc::CLONE_NEWUSER)?;
    Ok((
        f,
        Entered {
            user: true,
            outer_ids,
        },
    ))
}
