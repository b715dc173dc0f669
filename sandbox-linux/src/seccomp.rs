//! The sandbox's seccomp profile: a table of `codex_confine::seccomp::Rule`s, one reason each.
//!
//! Default action: allow (Landlock confines the filesystem; this table removes kernel interfaces
//! that Landlock does not cover): the socket families, then `codex-confine`'s baseline rows
//! ([`codex_confine::seccomp::BASELINE`]: io_uring, ptrace, process_vm_*, namespaces, keyrings,
//! bpf, perf, userfaultfd, TIOCSTI/TIOCLINUX, the mount API, open_by_handle_at, modules, kexec).
//! A matching row fails with `EPERM`. The mechanism (the ABI filter
//! that kills foreign architectures, refuses x32 numbers and answers `clone3` with `ENOSYS`, the
//! compiler and the installer) is `codex-confine`'s.

use codex_confine::seccomp::Condition::NotIn32;
use codex_confine::seccomp::{BASELINE, Filter, Rule};

pub use codex_confine::seccomp::SeccompError;

/// Socket families without network access.
const FAMILIES_LOCAL: &[u32] = &[libc::AF_UNIX as u32];
/// Socket families with network access.
const FAMILIES_NETWORK: &[u32] = &[
    libc::AF_UNIX as u32,
    libc::AF_INET as u32,
    libc::AF_INET6 as u32,
];

/// `socket(domain, ...)` outside the allowed families.
const fn socket_rule(allowed: &'static [u32]) -> Rule {
    Rule::new(
        "socket",
        libc::SYS_socket,
        NotIn32 { arg: 0, allowed },
        "only AF_UNIX (and AF_INET/AF_INET6 with network access): no netlink, packet, vsock, bluetooth, etc.",
    )
}

/// The whole table for a policy with or without network access: the socket rule and
/// `codex-confine`'s baseline rows.
pub fn table(network: bool) -> Vec<Rule> {
    let socket = socket_rule(if network {
        FAMILIES_NETWORK
    } else {
        FAMILIES_LOCAL
    });
    std::iter::once(socket)
        .chain(BASELINE.iter().copied())
        .collect()
}
/// Compile the table (and the shared ABI filter) before anything is restricted.
pub fn compile(network: bool) -> Result<Filter, SeccompError> {
    Filter::compile(&table(network))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_tables_compile_and_every_rule_has_a_reason() {
        for network in [false, true] {
            for r in table(network) {
                assert!(!r.reason.is_empty(), "{}", r.name);
            }
            assert_eq!(compile(network).unwrap().rule_count(), BASELINE.len() + 2);
        }
    }
}
