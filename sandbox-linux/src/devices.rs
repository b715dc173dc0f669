//! Which device files the command may open: only the harmless ones.
//!
//! `/dev` is taken out of the read grant of `/` (the same complement `fs_rules` builds for the
//! deny-read list: `/` becomes list-only, each other entry of `/` keeps its grant) and only the
//! devices below get a rule. Everything else under `/dev` cannot be opened: the user's other
//! terminals (`/dev/pts/*`, `/dev/tty*`, `/dev/console`, `/dev/vcs*`), input devices
//! (`/dev/input`), `/dev/ptmx` (a new pty pair would need its `/dev/pts/N`, which is not
//! granted: ptys inside the sandbox are not supported), `/dev/shm` (POSIX shared memory of
//! processes outside), block and other character devices. Landlock checks the file an open
//! resolves to, so `/dev/stdin`, `/dev/fd/N` and `/proc/self/fd/N` reopening a terminal are
//! denied too; the descriptors the command was given (inherited before Landlock applied) keep
//! working. Needs no namespace (Landlock ABI 1).

/// The directory whose entries are denied unless listed in [`ALLOWED`].
pub const DEV: &str = "/dev";

/// The device files the command may open, each with its grant and reason.
pub const ALLOWED: &[(&str, crate::fs_rules::Grant, &str)] = &[
    (
        "/dev/null",
        crate::fs_rules::Grant::ReadWriteFile,
        "the universal sink; writes go nowhere",
    ),
    (
        "/dev/zero",
        crate::fs_rules::Grant::Read,
        "reads return zeros",
    ),
    (
        "/dev/full",
        crate::fs_rules::Grant::Read,
        "reads return zeros (writes fail with ENOSPC; not granted)",
    ),
    (
        "/dev/random",
        crate::fs_rules::Grant::Read,
        "entropy for programs that do not use getrandom(2)",
    ),
    (
        "/dev/urandom",
        crate::fs_rules::Grant::Read,
        "see /dev/random",
    ),
];
