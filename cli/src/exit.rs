//! Exit codes and the one place where errors become messages.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | a runtime error (message on stderr) |
//! | 2 | bad usage: a flag, value or config that is invalid |
//! | other | set by the subcommand (`codex sandbox` passes the command's own status through) |

use std::fmt;

/// Exit code for a runtime error.
pub const FAILURE: i32 = 1;
/// Exit code for bad usage (flags, config values).
pub const USAGE: i32 = 2;

/// An error that carries its own exit code. Subcommands return it through `anyhow`.
#[derive(Debug)]
pub struct Coded {
    pub code: i32,
    pub message: String,
}

impl Coded {
    pub fn new(code: i32, message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Coded { code, message: message.into() })
    }
}

impl fmt::Display for Coded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Coded {}

/// Print the error (if any) as one `codex: ...` line and return the exit code.
pub fn report(result: anyhow::Result<i32>) -> i32 {
    match result {
        Ok(code) => code,
        Err(e) => {
            let code = e.downcast_ref::<Coded>().map(|c| c.code).unwrap_or(FAILURE);
            eprintln!("codex: {e:#}");
            code
        }
    }
}
