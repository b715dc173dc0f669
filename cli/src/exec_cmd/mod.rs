//! `codex exec PROMPT`, `codex exec resume [SESSION_ID|--last] PROMPT`: one Responses API turn,
//! streamed, recorded as a session that can be continued.
//!
//! The request: `POST <base_url>/responses[?query_params]` of the provider selected by
//! `model_provider` (default the built-in `openai`), `{"model", "input", "stream": true}`; `input`
//! is the prompt, or for a resumed session the earlier user inputs and assistant answers as
//! message items followed by the new input (earlier turns are always sent:
//! `previous_response_id` is not used, as it works only where the provider stored the responses,
//! which this client cannot know — zero-data-retention organizations and local servers do not).
//!
//! Providers and their keys: [`codex_providers`] (codex's keys; built-in providers cannot be
//! re-pointed by config). The credential: `env_key`'s variable, else the credential store for a
//! `requires_openai_auth` provider (the stored API key; with `chatgpt_auth`, the ChatGPT access
//! token, refreshed by the auth manager), else none. It goes only in `Authorization: Bearer`
//! (marked sensitive), never over plain http to a non-loopback host, over plain http to loopback
//! only to a listener of this user ([`turn`]), and never into the session file or output.
//!
//! Sessions ([`codex_sessions`]): `$CODEX_HOME/sessions/YYYY/MM/DD/rollout-*.jsonl`; the user
//! input is appended before the request, the answer and token usage when the turn completes
//! (then `fsync`). At exit, stderr says how to resume. `--ephemeral` records nothing.
//!
//! Output ([`output`]): the text as it streams (control characters stripped when stdout is a
//! terminal), then `tokens used: ...` on stderr (feature `exec_usage_line`); or with `--json`
//! JSON Lines events only (schema in `docs/exec.md`). `-o FILE` writes the final answer, 0600,
//! atomically (temporary file in the same directory, then rename).
//!
//! Errors are one line each with an exit code from [`crate::exit`]: 2 usage (bad config, unknown
//! or ambiguous session), 20 cannot connect (including a loopback listener of another user), 21
//! auth (missing key, unset `env_key`, 401, 403), 22 rate limited (429), 23 other HTTP status, 24
//! stream failure. After retries, the message ends with the number of attempts.

pub mod output;
pub mod turn;

use std::io::{IsTerminal, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use codex_providers::{AuthSource, Provider};
use codex_sessions::{
    EventMsg, Message, NewSession, Recorder, Role, RolloutItem, SessionError, SessionStore,
    TokenInfo, TokenUsage,
};
use http::{HeaderName, HeaderValue, Uri};

use crate::exit::{AUTH, Coded, FAILURE, USAGE};
use output::Sink;

/// Model used when neither `--model` nor config `model` is set.
pub const DEFAULT_MODEL: &str = "gpt-5";

#[derive(Debug, clap::Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  \
    codex exec \"Explain this error: ENOSPC\"\n  \
    git diff | codex exec -\n  \
    codex exec --json \"List three prime numbers\" | jq -c .\n  \
    codex exec -o answer.txt \"Write a haiku about sandboxes\"\n  \
    codex exec resume --last \"And now in French\"\n  \
    codex exec resume 0199a1b2 \"Continue\"\n  \
    # through a local responses-api-proxy (the proxy holds the key; none is needed here):\n  \
    codex -c model_providers.proxy.base_url=http://127.0.0.1:8080/v1 -c model_provider=proxy exec \"hello\""
)]
pub struct ExecArgs {
    #[command(subcommand)]
    pub action: Option<ExecAction>,
    /// The prompt; `-` (or none, with stdin not a terminal) reads it from stdin.
    pub prompt: Option<String>,
    #[command(flatten)]
    pub opts: ExecOpts,
}

/// Options of `codex exec` and `codex exec resume` (codex's names).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ExecOpts {
    /// The model (default: config `model`, else gpt-5).
    #[arg(short, long, global = true)]
    pub model: Option<String>,
    /// Print events to stdout as JSON Lines (schema: docs/exec.md); nothing else on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// Write the final answer to FILE (mode 0600, atomically).
    #[arg(short = 'o', long, value_name = "FILE", global = true)]
    pub output_last_message: Option<PathBuf>,
    /// Do not record the session.
    #[arg(long, global = true)]
    pub ephemeral: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum ExecAction {
    /// Continue a recorded session by id (or unique id prefix), or the most recent with --last.
    Resume(ResumeArgs),
}

#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    /// The session id (UUID, or a unique prefix of one). With --last, omit it.
    pub session_id: Option<String>,
    /// The prompt; `-` reads it from stdin.
    pub prompt: Option<String>,
    /// Resume the most recent session (recorded in this directory unless --all).
    #[arg(long)]
    pub last: bool,
    /// With --last: sessions of any directory.
    #[arg(long, requires = "last")]
    pub all: bool,
}

/// Which session a run continues.
enum SessionChoice {
    New,
    Id(String),
    Last { all: bool },
}

pub fn run(args: ExecArgs, global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    let ExecArgs {
        action,
        prompt,
        opts,
    } = args;
    let (choice, prompt) = match action {
        None => (SessionChoice::New, prompt),
        Some(ExecAction::Resume(r)) => match (r.last, r.session_id, r.prompt) {
            // codex's form: with --last, the one positional is the prompt.
            (true, Some(p), None) => (SessionChoice::Last { all: r.all }, Some(p)),
            (true, None, p) => (SessionChoice::Last { all: r.all }, p),
            (true, Some(id), Some(_)) => {
                return Err(Coded::new(
                    USAGE,
                    format!(
                        "--last and a session id ({}) both given: use one",
                        codex_login::claims::printable(&id)
                    ),
                ));
            }
            (false, Some(id), p) => (SessionChoice::Id(id), p),
            (false, None, _) => {
                return Err(Coded::new(
                    USAGE,
                    "codex exec resume needs a session id or --last (see codex sessions list)",
                ));
            }
        },
    };
    let (layered, features) = crate::features::Features::load(global)?;
    let cfg = &layered.config;
    let provider = resolve_provider(cfg)?;
    let model = opts
        .model
        .clone()
        .or_else(|| cfg.get_str("model").map(str::to_owned))
        .unwrap_or_else(|| DEFAULT_MODEL.to_owned());
    let prompt = read_prompt(prompt)?;

    // Credentials and the request before the session store: a config error leaves no file.
    let env = |k: &str| std::env::var(k).ok();
    let auth = credential(cfg, &provider, &env)?;
    let env_headers = provider.env_headers(&env).map_err(turn::provider_error)?;
    let sends_secret = auth.is_some() || !env_headers.is_empty();
    let transport = provider
        .check_transport(sends_secret)
        .map_err(turn::provider_error)?;
    let url = provider.request_url().map_err(turn::provider_error)?;
    let uri: Uri = url.as_str().parse().map_err(|e| {
        Coded::new(
            USAGE,
            format!("model_providers.{}.base_url: {e}", provider.id),
        )
    })?;
    let shown = format!(
        "{}://{}{}",
        url.scheme(),
        uri.authority().map_or("", |a| a.as_str()),
        url.path()
    );
    let mut headers = Vec::new();
    for (k, v) in provider
        .static_headers()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .chain(env_headers)
    {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| Coded::new(USAGE, format!("header name {k:?}")))?;
        let mut value = HeaderValue::from_str(&v)
            .map_err(|_| Coded::new(USAGE, format!("header {k}: invalid value")))?;
        value.set_sensitive(true);
        headers.push((name, value));
    }

    let store = SessionStore::new(&cfg.codex_home);
    let cwd = std::env::current_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let (history, mut recorder) = open_session(&store, choice, &cwd, &provider, &model, &opts)?;

    let input = if history.is_empty() {
        serde_json::Value::String(prompt.clone())
    } else {
        let mut items: Vec<serde_json::Value> =
            history.iter().map(Message::to_input_json).collect();
        items.push(
            Message {
                role: Role::User,
                text: prompt.clone(),
            }
            .to_input_json(),
        );
        serde_json::Value::Array(items)
    };
    let mut body = serde_json::json!({"model": model, "input": input, "stream": true});
    if features.enabled("web_search_request") {
        body["tools"] = serde_json::json!([{"type": "web_search"}]);
    }
    let spec = turn::RequestSpec {
        uri,
        shown,
        headers,
        auth,
        body: Bytes::from(serde_json::to_vec(&body)?),
    };

    let mut sink = Sink::new(opts.json);
    let session_id = recorder.as_ref().map_or_else(
        || codex_sessions::SessionId::new().to_string(),
        |r| r.id().to_owned(),
    );
    sink.session_started(&session_id)?;
    if let Some(rec) = recorder.as_mut() {
        rec.append(
            Message {
                role: Role::User,
                text: prompt,
            }
            .to_item(),
        )
        .map_err(session_error)?;
    }
    sink.turn_started()?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Coded::new(FAILURE, format!("failed to start the async runtime: {e}")))?;
    let result = rt.block_on(turn::run(
        &provider,
        transport,
        &spec,
        sends_secret,
        &mut sink,
    ));
    let outcome = match result {
        Ok(out) => finish_turn(&mut sink, recorder.as_mut(), &out, &opts, &features),
        Err(e) => {
            sink.failed(&format!("{e:#}"));
            Err(e)
        }
    };
    if let Some(rec) = recorder.as_mut() {
        let synced = rec.sync();
        eprintln!(
            "codex: to continue this session: codex exec resume {} PROMPT",
            rec.id()
        );
        if outcome.is_ok() {
            synced.map_err(session_error)?;
        }
    }
    outcome.map(|()| 0)
}

/// The completed turn: record it, print the ending, write `-o`.
fn finish_turn(
    sink: &mut Sink,
    recorder: Option<&mut Recorder>,
    out: &turn::TurnOutput,
    opts: &ExecOpts,
    features: &crate::features::Features,
) -> anyhow::Result<()> {
    sink.completed(&out.text, &out.usage)?;
    if let Some(rec) = recorder {
        rec.append(
            Message {
                role: Role::Assistant,
                text: out.text.clone(),
            }
            .to_item(),
        )
        .map_err(session_error)?;
        let u = |v: Option<u64>| v.unwrap_or(0);
        rec.append(RolloutItem::EventMsg(EventMsg::TokenCount {
            info: Some(TokenInfo {
                last_token_usage: TokenUsage {
                    input_tokens: u(out.usage.input),
                    cached_input_tokens: u(out.usage.cached_input),
                    output_tokens: u(out.usage.output),
                    total_tokens: u(out.usage.total),
                },
            }),
        }))
        .map_err(session_error)?;
    }
    if let Some(path) = &opts.output_last_message {
        write_private_atomic(path, out.text.as_bytes())?;
    }
    if !opts.json && features.enabled("exec_usage_line") {
        eprintln!("{}", out.usage.line());
    }
    Ok(())
}

/// A new session file, or the chosen one loaded (its messages) and opened for appending.
fn open_session(
    store: &SessionStore,
    choice: SessionChoice,
    cwd: &str,
    provider: &Provider,
    model: &str,
    opts: &ExecOpts,
) -> anyhow::Result<(Vec<Message>, Option<Recorder>)> {
    let path = match choice {
        SessionChoice::New if opts.ephemeral => return Ok((Vec::new(), None)),
        SessionChoice::New => {
            // Not recording is said, not fatal: the answer matters more than its record.
            let rec = match store.create(NewSession {
                cwd: cwd.to_owned(),
                model_provider: Some(provider.id.clone()),
                model: Some(model.to_owned()),
                originator: "codex_exec".into(),
                cli_version: env!("CARGO_PKG_VERSION").into(),
            }) {
                Ok(rec) => Some(rec),
                Err(e) => {
                    eprintln!("codex: warning: this session is not recorded: {e}");
                    None
                }
            };
            return Ok((Vec::new(), rec));
        }
        SessionChoice::Id(id) => store.find(&id).map_err(session_error)?,
        SessionChoice::Last { all } => {
            let (s, refused) = store.latest((!all).then_some(cwd)).map_err(session_error)?;
            for r in refused {
                crate::exit::warn(&r);
            }
            s.path
        }
    };
    let (t, rec) = store.resume(&path).map_err(session_error)?;
    if let Some(mode) = t.tightened_from {
        eprintln!(
            "codex: warning: {} was mode {mode:04o} (readable by other users); it is now 0600",
            path.display()
        );
    }
    for s in &t.skipped {
        eprintln!(
            "codex: warning: {}: line {} skipped ({}); resuming with the complete lines",
            path.display(),
            s.line,
            s.reason
        );
    }
    Ok((t.messages, (!opts.ephemeral).then_some(rec)))
}

/// Session errors: a wrong id or no session is bad usage (2), anything else a failure (1).
fn session_error(e: SessionError) -> anyhow::Error {
    let code = match e {
        SessionError::NotFound { .. }
        | SessionError::Ambiguous { .. }
        | SessionError::InvalidId { .. }
        | SessionError::NoSessions { .. } => USAGE,
        _ => FAILURE,
    };
    Coded::new(code, e.to_string())
}

/// The provider selected by `model_provider` (default `openai`), warnings printed.
pub fn resolve_provider(cfg: &crate::config::Config) -> anyhow::Result<Provider> {
    let id = cfg
        .get_str("model_provider")
        .unwrap_or(codex_providers::BUILTIN_OPENAI);
    let user = cfg.get("model_providers").and_then(toml::Value::as_table);
    let env = |k: &str| std::env::var(k).ok();
    let resolved = codex_providers::resolve(id, user, &env).map_err(turn::provider_error)?;
    for w in &resolved.warnings {
        crate::exit::warn(w);
    }
    Ok(resolved.provider)
}

fn read_prompt(arg: Option<String>) -> anyhow::Result<String> {
    let from_stdin = match arg.as_deref() {
        Some("-") => true,
        Some(_) => false,
        None if std::io::stdin().is_terminal() => {
            return Err(Coded::new(
                USAGE,
                "no prompt: give one as an argument, or pipe it on stdin (codex exec -)",
            ));
        }
        None => true,
    };
    let prompt = if from_stdin {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Coded::new(USAGE, format!("failed to read the prompt from stdin: {e}")))?;
        s
    } else {
        arg.unwrap_or_default()
    };
    if prompt.trim().is_empty() {
        return Err(Coded::new(USAGE, "the prompt is empty"));
    }
    Ok(prompt)
}

/// The `Authorization` value for the provider, if it takes a credential.
fn credential(
    cfg: &crate::config::Config,
    provider: &Provider,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Option<HeaderValue>> {
    match &provider.auth {
        AuthSource::None => Ok(None),
        AuthSource::EnvKey { var, .. } => {
            let key = zeroize::Zeroizing::new(
                provider
                    .env_key_value(env)
                    .map_err(turn::provider_error)?
                    .unwrap_or_default(),
            );
            turn::bearer_value(&key, &format!("the value of {var} (env_key)")).map(Some)
        }
        AuthSource::Stored { chatgpt: true } => chatgpt_bearer(cfg, provider).map(Some),
        AuthSource::Stored { chatgpt: false } => stored_bearer(cfg, provider).map(Some),
    }
}

/// The stored API key.
fn stored_bearer(cfg: &crate::config::Config, provider: &Provider) -> anyhow::Result<HeaderValue> {
    let store = crate::login_cmd::store_from_config(cfg)?;
    let loaded = store
        .load_with_source()
        .map_err(|e| Coded::new(AUTH, e.to_string()))?;
    for w in &loaded.warnings {
        crate::exit::warn(w);
    }
    let Some(key) = loaded.auth.as_ref().and_then(|a| a.openai_api_key.as_ref()) else {
        let why = if loaded.auth.as_ref().is_some_and(|a| a.tokens.is_some()) {
            "the stored ChatGPT sign-in is not an API key"
        } else {
            "no API key is stored"
        };
        return Err(Coded::new(
            AUTH,
            format!(
                "provider {} requires an API key and {why}: run `{}` (or use a provider with requires_openai_auth = false)",
                provider.id,
                crate::login_cmd::STDIN_HINT
            ),
        ));
    };
    // The stored key was validated at login; a key edited into auth.json by hand may not be.
    turn::bearer_value(key.expose_secret(), "the stored API key (log in again)")
}

/// For a `chatgpt_auth` provider: the stored API key, else the ChatGPT access token, refreshed
/// by the auth manager when due.
fn chatgpt_bearer(cfg: &crate::config::Config, provider: &Provider) -> anyhow::Result<HeaderValue> {
    let settings = crate::login_browser::LoginSettings::from_config(cfg)?;
    let manager = settings.manager()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Coded::new(FAILURE, format!("failed to start the async runtime: {e}")))?;
    let auth = rt
        .block_on(manager.fresh())
        .map_err(|e| Coded::new(AUTH, e.to_string()))?;
    let secret = zeroize::Zeroizing::new(match auth.as_deref() {
        Some(a) => match (&a.openai_api_key, &a.tokens) {
            (Some(k), _) => k.expose_secret().to_string(),
            (None, Some(t)) => t.access_token.expose_secret().to_string(),
            (None, None) => String::new(),
        },
        None => String::new(),
    });
    if secret.is_empty() {
        return Err(Coded::new(
            AUTH,
            format!(
                "provider {} requires authentication and you are not logged in: run `codex login`",
                provider.id
            ),
        ));
    }
    turn::bearer_value(&secret, "the stored credential (log in again)")
}

/// Writes `bytes` to `path` with mode 0600, atomically: a new temporary file in the same
/// directory (`O_EXCL|O_NOFOLLOW`), fsync, rename over `path` (a symlink at `path` is replaced,
/// not followed).
pub fn write_private_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let fail = |what: &str, e: std::io::Error| {
        Coded::new(
            FAILURE,
            format!("--output-last-message {}: {what}: {e}", path.display()),
        )
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| {
        Coded::new(
            USAGE,
            format!("--output-last-message {}: not a file name", path.display()),
        )
    })?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}.{:08x}",
        name.to_string_lossy(),
        std::process::id(),
        rand::random::<u32>()
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(|e| fail("failed to create a temporary file beside it", e))?;
    let written = f
        .write_all(bytes)
        .and_then(|()| f.sync_all())
        .and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(fail("failed to write", e));
    }
    Ok(())
}
