//! Exit codes and the one place where errors become messages.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | a runtime error (message on stderr), e.g. a session file refused (symlink, owner, mode) |
//! | 2 | bad usage: a flag, value or config that is invalid; an unknown profile; an unknown or ambiguous session id, `--last` with no session |
//! | 5, 6, 7 | before `main`: secure-main's hardening failed (dumpable, ptrace deny, core rlimit) |
//! | 20 | `codex exec`: could not reach the provider (connection refused, DNS, TLS), or its loopback listener is another user's (the key was not sent) |
//! | 21 | `codex exec`: authentication: no stored key for a provider that needs one, `env_key` unset, or HTTP 401/403 |
//! | 22 | `codex exec`: rate limited (HTTP 429) |
//! | 23 | `codex exec`: any other HTTP error status (5xx, 4xx) |
//! | 24 | `codex exec`: the stream failed: ended before `response.completed`, `response.failed`, idle timeout, malformed event |
//! | other | set by the subcommand (`codex sandbox` passes the command's own status through) |

use std::fmt;

/// Exit code for a runtime error.
pub const FAILURE: i32 = 1;
/// Exit code for bad usage (flags, config values).
pub const USAGE: i32 = 2;

/// `codex exec`: the provider could not be reached.
pub const CONNECT: i32 = 20;
/// `codex exec`: authentication failed or missing.
pub const AUTH: i32 = 21;
/// `codex exec`: HTTP 429.
pub const RATE_LIMITED: i32 = 22;
/// `codex exec`: another HTTP error status.
pub const HTTP_STATUS: i32 = 23;
/// `codex exec`: the event stream failed.
pub const STREAM: i32 = 24;

/// An error that carries its own exit code. Subcommands return it through `anyhow`.
#[derive(Debug)]
pub struct Coded {
    pub code: i32,
    pub message: String,
}

impl Coded {
    // Returns the error already wrapped in anyhow, ready for `?`; every subcommand calls it this way.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(code: i32, message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Coded {
            code,
            message: message.into(),
        })
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
            eprintln!("codex: {}", terminal_safe(&format!("{e:#}")));
            code
        }
    }
}

/// Errors and warnings carry text from config files, session files and servers (outside review
/// r11 F6: `env_key_instructions`, a profile name and a provider id wrote an OSC 52 clipboard
/// sequence and cleared the screen): they go through [`terminal_safe`].
pub use codex_terminal_text::terminal_safe;

/// `codex: warning: W` on stderr, [`terminal_safe`].
pub fn warn(w: &str) {
    eprintln!("codex: warning: {}", terminal_safe(w));
}
