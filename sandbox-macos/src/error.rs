//! Errors of policy generation and of the runner: one variant per failing operation.

use std::path::PathBuf;

use crate::syntax::SyntaxError;

/// Why a Seatbelt policy could not be built or run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A path handed to the generator is not absolute (Seatbelt compares absolute paths).
    #[error("{field}: {}: not an absolute path", path.display())]
    RelativePath { field: &'static str, path: PathBuf },
    /// A path contains `.` or `..`: it would never match the resolved paths Seatbelt compares.
    #[error("{field}: {}: contains `.` or `..` components (a canonical path is required)", path.display())]
    NotCanonical { field: &'static str, path: PathBuf },
    /// A path contains a NUL byte and cannot be passed as a `-D KEY=VALUE` argument.
    #[error("{field}: {path:?}: contains a NUL byte")]
    NulByte { field: &'static str, path: PathBuf },
    /// The generated text failed the built-in SBPL check (a bug in this crate, never input).
    #[error("generated seatbelt policy failed its syntax check: {0}")]
    InvalidPolicy(#[source] SyntaxError),
    /// The generated text uses a parameter that is not supplied, or supplies one it never uses.
    #[error("generated seatbelt policy and parameters disagree: {0}")]
    ParamMismatch(String),
    /// A read-only carve-out the command could swap: a `.git` file's `gitdir:` path with a symlink
    /// component, or under a directory inside a writable root (it could be renamed and
    /// re-created). A path rule would then protect the old place while git, outside the sandbox,
    /// follows the `.git` file to the new one. Exit 201, as on Linux.
    #[error(
        "refusing to run: {}: {} can be swapped by the sandboxed command (a symlink, or a \
         directory inside a writable root that can be renamed), so protecting the gitdir by path \
         would protect the wrong place",
        carve_out.display(),
        via.display()
    )]
    ReplaceableCarveOut { carve_out: PathBuf, via: PathBuf },
    /// No command was given to run.
    #[error("no command to run")]
    EmptyCommand,
    /// `/usr/bin/sandbox-exec` could not be started.
    #[error("failed to start {}: {source}", program.display())]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Waiting for `sandbox-exec` (the command) failed.
    #[error("failed to wait for {}: {source}", program.display())]
    Wait {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// A refusal (exit 201) rather than a set-up failure (202).
    pub fn is_refusal(&self) -> bool {
        matches!(self, Error::ReplaceableCarveOut { .. })
    }
}
