//! The Linux confinement mechanism, written once for both enforcers (`sandbox-linux` and the
//! proxy through `codex-privsep`):
//!
//! - [`set_no_new_privs`] and the read-backs [`no_new_privs`], [`seccomp_mode`];
//! - [`seccomp`]: one rule table type ([`seccomp::Rule`]: `name, nr, condition, reason`), the
//!   ABI filter shared by every profile ([`arch`]: one architecture list, one x32 decision), the
//!   compiler and the installer, and [`seccomp::BASELINE`], the rows every profile denies;
//! - [`landlock`]: one ruleset builder, the ABI pinned once ([`landlock::TARGET_ABI`]), a
//!   compatibility level per profile;
//! - [`kernel`]: the kernel-feature table read by messages, `codex sandbox check` and reports;
//! - [`Enforcement`]: the typed status every report wraps;
//! - [`thread_count`] (defined in `secure-main`, whose pre-main hardening counts threads too).
//!
//! The profiles themselves (which rows, which paths) belong to the users: the sandbox's table is
//! in `sandbox-linux/src/seccomp.rs`, the proxy's in `privsep/src/seccomp_policy.rs`.
//!
//! Threads: Landlock (before ABI 8) confines the calling thread and the threads it creates
//! later; seccomp filters are installed on every thread (TSYNC). Confine while single-threaded.
//! After a failure the process may be partly confined: exit.
//!
//! All `unsafe` code is in the private `sys` module.

#[cfg(not(target_os = "linux"))]
compile_error!("codex-confine is Linux-only");

pub mod arch;
mod baseline;
pub mod kernel;
pub mod landlock;
pub mod seccomp;
mod sys;
mod syscall_names;

pub use kernel::{Feature, KernelSupport, Missing};
pub use secure_main::{Enforcement, thread_count};
pub use sys::{no_new_privs, seccomp_mode, set_no_new_privs};

#[cfg(test)]
mod tests {
    #[test]
    fn this_test_process_has_at_least_one_thread() {
        assert!(super::thread_count().unwrap() >= 1);
    }
}
