//! `codex login` through the browser (issue 7): a local OAuth callback server (crate
//! `codex-login`), tokens stored through the credential store (crate `codex-auth`).
//!
//! Config keys (all optional):
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `auth.issuer` | `https://auth.openai.com` | OAuth issuer; `http://` only for a loopback host (tests) |
//! | `auth.client_id` | `app_EMoamEEZ73f0CkXaXp7hrann` | OAuth client id |
//! | `auth.login_timeout_secs` | `600` | give up waiting for the browser after this many seconds |
//! | `auth.login_port` | `1455` | preferred callback port; an ephemeral port is used if it is taken (0 = ephemeral) |
//! | `cli_auth_credentials_store` | `file` | `file`, `keyring` or `auto` |
//!
//! Device-code login (`--device-auth`, module `login_device`) uses the same keys.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use codex_auth::{AuthDotJson, AuthStore, StoreMode, TokenData};
use codex_login::{Issuer, LoginOptions, LoginOutcome, PortChoice, TokenSet};

use crate::exit::{Coded, FAILURE, USAGE};

/// Default time to wait for the browser.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Exit code of a login cancelled with Ctrl-C (128 + SIGINT, as shells report it).
pub(crate) const CANCELLED: i32 = 130;

/// Flags of the browser login, flattened into `codex login`.
#[derive(Debug, Clone, clap::Args, Default)]
pub struct BrowserLoginArgs {
    /// Do not try to open a browser; only print the sign-in URL.
    #[arg(long)]
    pub no_browser: bool,
    /// Give up after this long: seconds, or a number with a unit (`90s`, `10m`, `1h`).
    /// Default: config `auth.login_timeout_secs`, else 10 minutes.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Listen on exactly this callback port (default: 1455, or an ephemeral port if it is taken).
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
}

/// `--timeout` values: `600`, `600s`, `10m`, `1h`; at least one second.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, mult) = match s.as_bytes().last() {
        Some(b's') => (&s[..s.len() - 1], 1),
        Some(b'm') => (&s[..s.len() - 1], 60),
        Some(b'h') => (&s[..s.len() - 1], 3600),
        _ => (s, 1),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: expected e.g. 600, 90s, 10m, 1h"))?;
    let secs = n
        .checked_mul(mult)
        .ok_or_else(|| format!("duration {s:?} is too large"))?;
    if secs == 0 {
        return Err("the timeout must be at least one second".to_string());
    }
    Ok(Duration::from_secs(secs))
}

/// Everything a browser login needs from the configuration.
#[derive(Debug, Clone)]
pub(crate) struct LoginSettings {
    pub issuer: Issuer,
    pub client_id: String,
    pub timeout: Duration,
    pub port: u16,
    pub store_mode: StoreMode,
    pub codex_home: std::path::PathBuf,
}

impl LoginSettings {
    /// Read and validate the `auth.*` keys and `cli_auth_credentials_store`. A bad value is a usage
    /// error naming the key.
    pub fn from_config(cfg: &crate::config::Config) -> anyhow::Result<Self> {
        let string = |key: &str, default: &str| -> anyhow::Result<String> {
            match cfg.get(key) {
                None => Ok(default.to_string()),
                Some(toml::Value::String(s)) => Ok(s.clone()),
                Some(other) => Err(Coded::new(
                    USAGE,
                    format!("config {key}: expected a string, got {}", other.type_str()),
                )),
            }
        };
        let integer = |key: &str, default: i64, min: i64, max: i64| -> anyhow::Result<i64> {
            match cfg.get(key) {
                None => Ok(default),
                Some(toml::Value::Integer(n)) if (min..=max).contains(n) => Ok(*n),
                Some(other) => Err(Coded::new(
                    USAGE,
                    format!("config {key}: expected an integer from {min} to {max}, got {other}"),
                )),
            }
        };
        let issuer_s = string("auth.issuer", codex_login::DEFAULT_ISSUER)?;
        let issuer = Issuer::parse(&issuer_s)
            .map_err(|e| Coded::new(USAGE, format!("config auth.issuer: {e}")))?;
        let client_id = string("auth.client_id", codex_login::DEFAULT_CLIENT_ID)?;
        codex_login::validate_client_id(&client_id)
            .map_err(|e| Coded::new(USAGE, format!("config auth.client_id: {e}")))?;
        let timeout = integer(
            "auth.login_timeout_secs",
            DEFAULT_TIMEOUT.as_secs() as i64,
            1,
            7 * 24 * 3600,
        )?;
        let port = integer(
            "auth.login_port",
            i64::from(codex_login::DEFAULT_PORT),
            0,
            65535,
        )?;
        let store_mode = string("cli_auth_credentials_store", "file")?
            .parse::<StoreMode>()
            .map_err(|e| Coded::new(USAGE, format!("config cli_auth_credentials_store: {e}")))?;
        Ok(Self {
            issuer,
            client_id,
            timeout: Duration::from_secs(timeout.unsigned_abs()),
            port: u16::try_from(port).unwrap_or(codex_login::DEFAULT_PORT),
            store_mode,
            codex_home: cfg.codex_home.clone(),
        })
    }

    /// Login options; `exact_port` (`--port`) makes a taken port an error instead of a fallback.
    pub fn login_options(
        &self,
        timeout: Option<Duration>,
        exact_port: Option<u16>,
    ) -> LoginOptions {
        LoginOptions {
            issuer: self.issuer.clone(),
            client_id: self.client_id.clone(),
            port: match exact_port {
                Some(p) => PortChoice::Exact(p),
                None => PortChoice::Preferred(self.port),
            },
            timeout: Some(timeout.unwrap_or(self.timeout)),
        }
    }

    pub fn store(&self) -> AuthStore {
        AuthStore::new(self.codex_home.clone(), self.store_mode)
    }

    /// The process's auth manager: this store, refreshing ChatGPT tokens at this issuer.
    pub fn manager(&self) -> anyhow::Result<codex_auth::AuthManager> {
        let refresher = codex_login::ChatGptRefresher::new(&self.issuer, &self.client_id)
            .map_err(|e| Coded::new(FAILURE, format!("cannot set up token refresh: {e}")))?;
        Ok(codex_auth::AuthManager::new(
            self.store(),
            Some(Arc::new(refresher)),
        ))
    }
}

/// Take the credential lock beside `store` (blocking; synchronous commands), creating
/// `CODEX_HOME` first as a save would.
pub(crate) fn lock_store_blocking(store: &AuthStore) -> Result<codex_auth::StoreLock, String> {
    store.ensure_home().map_err(|e| e.to_string())?;
    codex_auth::StoreLock::acquire_blocking(
        &codex_auth::StoreLock::path_for(store.codex_home()),
        codex_auth::lock::DEFAULT_LOCK_TIMEOUT,
    )
    .map_err(|e| e.to_string())
}

/// The tokens as `auth.json` content (the API key, if any, is replaced: one sign-in at a time).
pub(crate) fn auth_json_from(tokens: TokenSet) -> AuthDotJson {
    // One `SecretString` type (secure-main's) on both sides: the tokens move, no copy is made.
    let TokenSet {
        id_token,
        access_token,
        refresh_token,
        claims,
    } = tokens;
    AuthDotJson {
        openai_api_key: None,
        tokens: Some(TokenData {
            id_token,
            access_token,
            refresh_token,
            account_id: claims.account_id,
        }),
        last_refresh: Some(rfc3339_utc(SystemTime::now())),
    }
}

/// Store `tokens` under the credential lock (so a refresh running in another process cannot
/// overwrite this login); a keyring fallback warning is printed to stderr (never silent).
pub(crate) async fn save_tokens(store: &AuthStore, tokens: TokenSet) -> Result<(), String> {
    let auth = auth_json_from(tokens);
    store.ensure_home().map_err(|e| e.to_string())?;
    let _lock = codex_auth::StoreLock::acquire(
        &codex_auth::StoreLock::path_for(store.codex_home()),
        codex_auth::lock::DEFAULT_LOCK_TIMEOUT,
    )
    .await
    .map_err(|e| e.to_string())?;
    let outcome = store.save(&auth).map_err(|e| e.to_string())?;
    if let Some(w) = outcome.warning {
        crate::exit::warn(&w);
    }
    Ok(())
}

/// `YYYY-MM-DDTHH:MM:SSZ` (UTC), as openai/codex writes `last_refresh`.
pub(crate) fn rfc3339_utc(t: SystemTime) -> String {
    codex_auth::manager::rfc3339_utc(t)
}

/// Try to open `url` in a browser: `open` on macOS, `xdg-open` when a display is available on
/// other Unixes. The URL carries no secret (the `state` and PKCE challenge are single-use and
/// useless without the verifier, which stays in this process).
pub(crate) async fn open_browser(url: &str) -> Result<(), String> {
    let program = if cfg!(target_os = "macos") {
        "open"
    } else if std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some()
    {
        "xdg-open"
    } else {
        return Err("no display".to_string());
    };
    let status = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::process::Command::new(program)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .status(),
    )
    .await
    .map_err(|_| format!("{program} did not finish within 10s"))?
    .map_err(|e| format!("cannot run {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{program} exited with {status}"))
    }
}

pub fn run(args: BrowserLoginArgs, global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    let cfg = crate::config::load(global)?;
    let settings = LoginSettings::from_config(&cfg)?;
    let opts = settings.login_options(args.timeout, args.port);
    let timeout = opts.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let store = Arc::new(settings.store());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Coded::new(FAILURE, format!("cannot start the async runtime: {e}")))?;
    rt.block_on(async move {
        // Registered before the URL is printed, so a Ctrl-C at any point after that cancels
        // cleanly instead of killing the process with the default disposition.
        let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .map_err(|e| Coded::new(FAILURE, format!("cannot listen for Ctrl-C: {e}")))?;
        let persist_store = store.clone();
        let server = codex_login::start(opts, move |tokens| async move {
            save_tokens(&persist_store, tokens).await
        })
        .await
        .map_err(|e| Coded::new(FAILURE, format!("cannot start the login: {e}")))?;
        eprintln!(
            "Listening for the sign-in callback on http://localhost:{}/auth/callback",
            server.port()
        );
        eprintln!(
            "Open this URL in your browser to sign in (waiting {}s; Ctrl-C cancels):\n",
            timeout.as_secs()
        );
        eprintln!("  {}\n", server.auth_url());
        if !args.no_browser {
            if let Err(why) = open_browser(server.auth_url()).await {
                eprintln!("(could not open a browser: {why}; open the URL above yourself)");
            }
        }
        let cancel = server.cancel_handle();
        let wait = server.wait();
        tokio::pin!(wait);
        let outcome = loop {
            tokio::select! {
                outcome = &mut wait => break outcome,
                _ = sigint.recv() => {
                    cancel.cancel();
                }
            }
        };
        match outcome {
            LoginOutcome::Success(claims) => {
                let who = claims
                    .email
                    .as_deref()
                    .unwrap_or("(no email in the ID token)");
                match claims.plan.as_deref() {
                    Some(plan) => eprintln!("Signed in as {who} (plan: {plan})."),
                    None => eprintln!("Signed in as {who}."),
                }
                Ok(0)
            }
            LoginOutcome::Cancelled => Err(Coded::new(CANCELLED, "login cancelled")),
            LoginOutcome::TimedOut(d) => Err(Coded::new(
                FAILURE,
                format!(
                    "login timed out after {}s: run `codex login` again (or pass --timeout)",
                    d.as_secs()
                ),
            )),
            LoginOutcome::Failed(reason) => {
                Err(Coded::new(FAILURE, format!("login failed: {reason}")))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("600").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        for bad in ["", "0", "m", "-1", "1d", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rfc3339() {
        assert_eq!(rfc3339_utc(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_utc(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            rfc3339_utc(UNIX_EPOCH + Duration::from_secs(1_763_683_199)),
            "2025-11-20T23:59:59Z"
        );
    }
}
