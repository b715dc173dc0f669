//! Pre-main process hardening and locked, never-dumped, zeroized secret memory.
//!
//! - [`harden_process!`] installs an ELF constructor (`.init_array`, through the `ctor` crate)
//!   that runs [`pre_main_hardening`] before `main`: not dumpable (Linux) or no debugger attach
//!   (macOS), `RLIMIT_CORE` 0/0, loader environment variables removed. Failure ends the process
//!   with a documented exit code (5, 6, 7, 8); it never continues half-hardened.
//! - [`SecretBuf`] holds a secret in its own guarded, locked, `MADV_DONTDUMP` mapping and wipes it
//!   on drop; [`read_secret`] fills one from a descriptor with raw `read(2)`.
//! - [`hardening_report`] says what is actually in force.
//!
//! See the crate README for guarantees, platforms, limits and thread requirements.
//!
//! ```no_run
//! // In a binary crate's main.rs, at the top level:
//! secure_main::harden_process!(secure_main::HardeningConfig {
//!     loader_env: secure_main::LoaderEnv::Strip,
//! });
//! fn main() {
//!     println!("{}", secure_main::hardening_report());
//! }
//! ```

#![cfg(unix)]

mod hardening;
mod reader;
mod report;
mod secret;
mod secret_string;
mod sys;
#[cfg(all(test, target_os = "linux"))]
mod testutil;

pub use hardening::{
    EXIT_DUMPABLE, EXIT_LOADER_ENV, EXIT_PTRACE_DENY, EXIT_RLIMIT, HardeningConfig, HardeningError,
    LoaderEnv, kept_loader_env, pre_main_hardening, reassert_after_credential_change,
};
pub use reader::{
    FdReader, RawRead, ReadSecretError, SecretReadOptions, read_secret, read_secret_alone,
    read_secret_alone_into, read_secret_into,
};
pub use report::{
    CoreLimit, Enforcement, HardeningReport, PreMainSummary, hardening_report,
    record_landlock_status,
};
pub use secret::{LockPolicy, LockStatus, SecretBuf, SecretError};
pub use secret_string::SecretString;

/// The number of threads of this process (entries of `/proc/self/task`). The one count of the
/// suite (`codex-confine` re-exports it): an unreadable directory is an error, never a number,
/// so a "single-threaded?" check cannot pass on it by accident.
#[cfg(target_os = "linux")]
pub fn thread_count() -> std::io::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/task")?.count())
}

/// The `ctor` crate, re-exported so that [`harden_process!`] works in crates that do not depend
/// on it themselves.
#[doc(hidden)]
pub use ctor as __ctor;

/// Runs [`pre_main_hardening`] with the given [`HardeningConfig`] before `main`, from an ELF
/// constructor (`.init_array`; `__mod_init_func` on macOS).
///
/// Invoke it once, at the top level of the **binary** crate (its `main.rs`): a constructor in a
/// library's object file may be dropped by the linker when nothing else from that file is used.
/// A second invocation in the same crate does not compile.
///
/// The constructor runs after the dynamic loader has loaded the program and its libraries (and
/// run their constructors), while the process is still single-threaded unless one of those
/// libraries started a thread. On failure the process exits with 5/6/7/8 before `main`.
#[macro_export]
macro_rules! harden_process {
    ($cfg:expr) => {
        #[$crate::__ctor::ctor]
        fn __secure_main_pre_main_hardening() {
            $crate::pre_main_hardening($cfg);
        }
    };
}

/// The real user id of this process (`getuid`): who ran it, whatever it made itself (codex is
/// not dumpable, so `/proc/self` is root's and says nothing about the user).
pub fn real_uid() -> u32 {
    sys::real_uid()
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod link_tests {
    /// `build.rs`: the unwinder comes from `libgcc_eh.a`, so `libgcc_s.so.1` (and its CPUID
    /// constructor, ~0.1 ms at every start on a VM) is not loaded. This test binary links
    /// secure-main like every shipped binary.
    #[test]
    fn libgcc_s_is_not_loaded() {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        assert!(!maps.is_empty(), "/proc/self/maps unreadable");
        assert!(
            !maps.contains("libgcc_s"),
            "libgcc_s is mapped: the static unwinder of build.rs was not linked"
        );
    }
}
