//! `codex login --device-auth`: device-code sign-in (crate `codex-login`'s [`codex_login::device`]),
//! for SSH sessions, containers and machines without a browser.
//!
//! Prints the verification URL and the one-time user code to stderr (nothing secret: the code is
//! useless without the user's own sign-in, and the device id that is secret never leaves the
//! process), polls at the interval the issuer gives, and stores the tokens in the credential
//! store exactly as the browser login does. Exit codes: 0 signed in; 1 the code expired, the
//! sign-in was refused, or the issuer failed (one line naming why); 2 bad config; 130 Ctrl-C.
//! `--timeout` caps the wait below the code's own expiry.

use std::time::Duration;

use codex_login::{LoginError, OAuthError};

use crate::exit::{Coded, FAILURE};
use crate::login_browser::{CANCELLED, LoginSettings, save_tokens};

pub fn run(timeout: Option<Duration>, global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    let cfg = crate::config::load(global)?;
    let settings = LoginSettings::from_config(&cfg)?;
    let store = settings.store();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Coded::new(FAILURE, format!("cannot start the async runtime: {e}")))?;
    rt.block_on(async move {
        let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .map_err(|e| Coded::new(FAILURE, format!("cannot listen for Ctrl-C: {e}")))?;
        let request = codex_login::request_device_code(&settings.issuer, &settings.client_id);
        let code = tokio::select! {
            r = request => r.map_err(|e| Coded::new(FAILURE, format!("device code login failed: {e}")))?,
            _ = sigint.recv() => return Err(Coded::new(CANCELLED, "login cancelled")),
        };
        let expires = code.expires_in;
        let wait = timeout.map_or(expires, |t| t.min(expires));
        eprintln!("To sign in with ChatGPT from this machine:\n");
        eprintln!("  1. Open this link in any browser and sign in:\n\n     {}\n", code.verification_url);
        eprintln!(
            "  2. Enter this one-time code (expires in {} minutes):\n\n     {}\n",
            expires.as_secs().div_ceil(60),
            code.user_code
        );
        eprintln!(
            "Device codes are a common phishing target: never enter a code someone else sent you.\n\
             Waiting for approval (Ctrl-C cancels)..."
        );
        let complete = codex_login::complete_device_login(code, &codex_oauth::device::tokio_sleep);
        let tokens = tokio::select! {
            r = tokio::time::timeout(wait, complete) => match r {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => return Err(device_error(e)),
                Err(_) => return Err(Coded::new(
                    FAILURE,
                    format!("login timed out after {}s: run `codex login --device-auth` again", wait.as_secs()),
                )),
            },
            _ = sigint.recv() => return Err(Coded::new(CANCELLED, "login cancelled")),
        };
        let claims = tokens.claims.clone();
        save_tokens(&store, tokens)
            .await
            .map_err(|e| Coded::new(FAILURE, format!("storing the credentials failed: {e}")))?;
        let who = claims.email.as_deref().unwrap_or("(no email in the ID token)");
        match claims.plan.as_deref() {
            Some(plan) => eprintln!("Signed in as {who} (plan: {plan})."),
            None => eprintln!("Signed in as {who}."),
        }
        Ok(0)
    })
}

fn device_error(e: LoginError) -> anyhow::Error {
    Coded::new(FAILURE, device_error_message(&e))
}

/// One line for a failed device login, shared with the app-server.
pub(crate) fn device_error_message(e: &LoginError) -> String {
    match e {
        LoginError::OAuth(OAuthError::Expired { secs }) => format!(
            "the device code expired after {}s without being approved: run `codex login --device-auth` again",
            secs
        ),
        LoginError::OAuth(OAuthError::AccessDenied { .. }) => {
            "the sign-in was refused in the browser (access_denied)".to_string()
        }
        _ => format!("device code login failed: {e}"),
    }
}
