//! `codex login --with-api-key`, `codex login status`, `codex logout`. `codex login` with no flag
//! is the browser sign-in ([`crate::login_browser`]).
//!
//! The API key comes from stdin only (never argv: the process list and shell history would show
//! it). It is read with `secure_main::read_secret` (raw `read(2)` into locked, non-dumpable memory,
//! `LockPolicy::AllowDegraded`: an `mlock` refused by `RLIMIT_MEMLOCK` is reported by
//! `hardening_report`, not fatal for a user's CLI), checked (printable ASCII, no whitespace or
//! control characters, at most 4096 bytes), then handed to the credential store.

use std::io::IsTerminal;

use codex_auth::{AuthDotJson, AuthStore, SecretString, StoreMode, mask_api_key};
use secure_main::{FdReader, LockPolicy, ReadSecretError, SecretReadOptions, read_secret};

use crate::exit::{Coded, FAILURE, USAGE};

/// The stdin form, shown whenever a key is offered any other way.
pub const STDIN_HINT: &str = "printenv OPENAI_API_KEY | codex login --with-api-key";
/// Longest accepted API key.
pub const MAX_KEY_LEN: usize = 4096;

#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  codex login                                   # sign in with ChatGPT in the browser\n  \
        printenv OPENAI_API_KEY | codex login --with-api-key\n  \
        codex login --with-api-key < ~/.config/openai.key\n  \
        codex login --device-auth                     # sign in from a machine without a browser\n  \
        codex login status\n  \
        codex -c cli_auth_credentials_store=keyring login --with-api-key < key.txt"
)]
pub struct LoginArgs {
    #[command(subcommand)]
    pub action: Option<LoginAction>,
    /// Read an API key from stdin (one line) and store it.
    #[arg(long)]
    pub with_api_key: bool,
    /// Refused: a key on the command line is visible to every local user. Use --with-api-key.
    #[arg(long, value_name = "KEY", hide = true)]
    pub api_key: Option<String>,
    /// Sign in with a device code: print a URL and a one-time code to enter on any device with a
    /// browser (for SSH sessions, containers, headless machines).
    #[arg(long, conflicts_with_all = ["with_api_key", "no_browser", "port"])]
    pub device_auth: bool,
    #[command(flatten)]
    pub browser: crate::login_browser::BrowserLoginArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum LoginAction {
    /// Show whether you are logged in, how, and where the credentials are stored.
    Status,
}

/// The credential store selected by `cli_auth_credentials_store` (default `file`).
pub fn store_from_config(cfg: &crate::config::Config) -> anyhow::Result<AuthStore> {
    let mode = match cfg.get_str("cli_auth_credentials_store") {
        None => StoreMode::File,
        Some(s) => s
            .parse::<StoreMode>()
            .map_err(|e| Coded::new(USAGE, format!("config cli_auth_credentials_store: {e}")))?,
    };
    Ok(AuthStore::new(cfg.codex_home.clone(), mode))
}

pub fn run(args: LoginArgs, global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    if let Some(mut value) = args.api_key {
        // Never echo the value; wipe our copy (the kernel's argv copy is out of our reach).
        zeroize::Zeroize::zeroize(&mut value);
        return Err(Coded::new(
            USAGE,
            format!(
                "--api-key is not supported: a key on the command line is visible in the process list \
                 and shell history; pipe it on stdin instead: {STDIN_HINT}"
            ),
        ));
    }
    match args.action {
        Some(LoginAction::Status) => return run_status(global),
        None if args.with_api_key => {}
        None if args.device_auth => return crate::login_device::run(args.browser.timeout, global),
        None => return crate::login_browser::run(args.browser, global),
    }
    let cfg = crate::config::load(global)?;
    let store = store_from_config(&cfg)?;
    if std::io::stdin().is_terminal() {
        return Err(Coded::new(
            USAGE,
            format!(
                "--with-api-key reads the key from stdin, which is a terminal; pipe it in: {STDIN_HINT}"
            ),
        ));
    }
    let key = read_api_key_from_stdin()?;
    let _lock = crate::login_browser::lock_store_blocking(&store)
        .map_err(|e| Coded::new(FAILURE, format!("failed to store the API key: {e}")))?;
    let out = store
        .save(&AuthDotJson::from_api_key(key))
        .map_err(|e| Coded::new(FAILURE, format!("failed to store the API key: {e}")))?;
    if let Some(w) = &out.warning {
        crate::exit::warn(w);
    }
    eprintln!("Successfully logged in (API key stored in {})", out.backend);
    Ok(0)
}

fn read_api_key_from_stdin() -> anyhow::Result<SecretString> {
    let opts = SecretReadOptions {
        prefix: b"",
        max_len: MAX_KEY_LEN,
        allowed: |b| b.is_ascii_graphic(),
        lock: LockPolicy::AllowDegraded,
    };
    let buf = read_secret(&mut FdReader::stdin(), &opts).map_err(|e| {
        let msg = match e {
            ReadSecretError::Empty => {
                format!("no API key on stdin (got an empty line); {STDIN_HINT}")
            }
            ReadSecretError::ForbiddenByte { offset } => format!(
                "the API key on stdin contains whitespace or a control character at byte {offset}; \
                 pass exactly one key on one line"
            ),
            ReadSecretError::TooLong { max } => {
                format!("the API key on stdin is longer than {max} bytes")
            }
            other => other.to_string(),
        };
        Coded::new(USAGE, msg)
    })?;
    // Printable ASCII only (checked above), so this is valid UTF-8. One allocation of the final
    // size; the `SecretString` zeroizes it on drop, `buf` wipes the locked copy on drop.
    let bytes = buf.expose_secret();
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        s.push(char::from(b));
    }
    Ok(SecretString::new(s))
}

fn run_status(global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    let cfg = crate::config::load(global)?;
    let store = store_from_config(&cfg)?;
    let out = store
        .load_with_source()
        .map_err(|e| Coded::new(FAILURE, e.to_string()))?;
    for w in &out.warnings {
        crate::exit::warn(w);
    }
    let where_ = out
        .backend
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    match out.auth {
        Some(AuthDotJson {
            openai_api_key: Some(key),
            ..
        }) => {
            println!(
                "Logged in using an API key - {} (stored in {where_})",
                mask_api_key(key.expose_secret())
            );
            Ok(0)
        }
        Some(AuthDotJson {
            tokens: Some(t), ..
        }) => {
            println!("{} (stored in {where_})", chatgpt_status_line(&t));
            Ok(0)
        }
        _ => {
            println!("Not logged in (credential store: {})", store.mode());
            Ok(FAILURE)
        }
    }
}

/// `Logged in using ChatGPT as EMAIL (plan: PLAN), account ID, access token expires at T`: the
/// parts the tokens do not carry are left out. Unverified claims, for display only; never a token.
pub(crate) fn chatgpt_status_line(t: &codex_auth::TokenData) -> String {
    let mut line = "Logged in using ChatGPT".to_string();
    if let Ok(claims) = codex_login::claims::parse_id_token(t.id_token.expose_secret()) {
        if let Some(email) = claims.email {
            line.push_str(&format!(" as {email}"));
        }
        if let Some(plan) = claims.plan {
            line.push_str(&format!(" (plan: {plan})"));
        }
    }
    if let Some(a) = &t.account_id {
        line.push_str(&format!(", account {a}"));
    }
    if let Some(exp) = codex_auth::manager::access_token_expiry(t) {
        let at = u64::try_from(exp)
            .map(|s| {
                crate::login_browser::rfc3339_utc(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(s),
                )
            })
            .unwrap_or_else(|_| format!("{exp} (unix time)"));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        if exp > now {
            line.push_str(&format!(", access token expires at {at}"));
        } else {
            line.push_str(&format!(
                ", access token expired at {at} (refreshed at next use)"
            ));
        }
    }
    line
}

pub fn run_logout(global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    let cfg = crate::config::load(global)?;
    let store = store_from_config(&cfg)?;
    let _lock = if store.codex_home().is_dir() {
        Some(
            crate::login_browser::lock_store_blocking(&store)
                .map_err(|e| Coded::new(FAILURE, format!("cannot log out: {e}")))?,
        )
    } else {
        None
    };
    let out = store
        .delete_with_warnings()
        .map_err(|e| Coded::new(FAILURE, e.to_string()))?;
    for w in &out.warnings {
        crate::exit::warn(w);
    }
    if out.removed {
        eprintln!("Successfully logged out");
    } else {
        eprintln!("Not logged in");
    }
    Ok(0)
}
