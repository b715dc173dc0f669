//! `codex exec PROMPT`: one Responses API request, streamed.
//!
//! POSTs `{"model", "input", "stream": true}` to `<base_url>/responses` of the selected provider
//! (`model_provider`, default the built-in `openai`: `https://api.openai.com/v1`, needs a key),
//! prints every `response.output_text.delta` as it arrives (flushed), and ends with the usage line
//! from `response.completed` on stderr (feature `exec_usage_line`).
//!
//! Providers: `[model_providers.<id>]` with `base_url` (required), `requires_auth` (default `true`
//! for `openai`, `false` for any other provider, so a user's key is never sent to an endpoint that
//! did not ask for it, e.g. `responses-api-proxy`, which holds its own key), `name`, and
//! `stream_idle_timeout_ms` (default 300000), and `chatgpt_auth` (default `false`; implies
//! `requires_auth`): a ChatGPT sign-in may be used for this provider. With `requires_auth`, the
//! stored API key goes in `Authorization: Bearer`; with `chatgpt_auth` and no API key stored, the
//! ChatGPT access token does, obtained through the auth manager (`codex-auth`), which refreshes it
//! first when it is expired or about to expire, serialized with other codex processes by the lock
//! beside the store. Credentials go over plain `http://` only to a loopback host.
//!
//! HTTP: hyper + hyper-rustls (rustls, ring), HTTP/1.1 and HTTP/2, trust roots from the system
//! store or `SSL_CERT_FILE`/`SSL_CERT_DIR` (rustls-native-certs).
//!
//! Errors are one line each with an exit code from [`crate::exit`]: 20 cannot connect, 21 auth
//! (missing key, 401, 403), 22 rate limited (429), 23 other HTTP status, 24 stream failure.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use zeroize::Zeroizing;

use crate::exit::{AUTH, CONNECT, Coded, FAILURE, HTTP_STATUS, RATE_LIMITED, STREAM, USAGE};

/// The built-in provider.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
/// Model used when neither `--model` nor config `model` is set.
pub const DEFAULT_MODEL: &str = "gpt-5";
const DEFAULT_IDLE_TIMEOUT_MS: u64 = 300_000;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest SSE line or event accepted (a misbehaving server cannot make us buffer forever).
const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;
/// Largest error body read for the message.
const MAX_ERROR_BODY: usize = 64 * 1024;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    codex exec \"Explain this error: ENOSPC\"\n  \
    git diff | codex exec -\n  \
    codex exec -m gpt-5-mini \"Write a haiku about sandboxes\"\n  \
    # through a local responses-api-proxy (the proxy holds the key; none is needed here):\n  \
    codex -c model_providers.proxy.base_url=http://127.0.0.1:8080/v1 -c model_provider=proxy exec \"hello\"")]
pub struct ExecArgs {
    /// The prompt; `-` reads it from stdin.
    pub prompt: String,
    /// The model (default: config `model`, else gpt-5).
    #[arg(short, long)]
    pub model: Option<String>,
}

/// A resolved provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub id: String,
    pub base_url: String,
    pub requires_auth: bool,
    /// A ChatGPT sign-in may authenticate requests to this provider.
    pub chatgpt_auth: bool,
    pub idle_timeout: Duration,
}

/// The provider selected by `model_provider` (default `openai`) with its config table.
pub fn resolve_provider(cfg: &crate::config::Config) -> anyhow::Result<Provider> {
    let id = cfg.get_str("model_provider").unwrap_or("openai").to_owned();
    let table = cfg
        .get("model_providers")
        .and_then(toml::Value::as_table)
        .and_then(|t| t.get(&id))
        .and_then(toml::Value::as_table);
    let builtin = id == "openai";
    if table.is_none() && !builtin {
        return Err(Coded::new(
            USAGE,
            format!("unknown model provider {id:?}: define model_providers.{id}.base_url"),
        ));
    }
    let field = |k: &str| table.and_then(|t| t.get(k));
    let base_url = match field("base_url").and_then(toml::Value::as_str) {
        Some(u) => u.to_owned(),
        None if builtin => OPENAI_BASE_URL.to_owned(),
        None => {
            return Err(Coded::new(
                USAGE,
                format!("model_providers.{id}.base_url is not set"),
            ));
        }
    };
    let chatgpt_auth = field("chatgpt_auth")
        .and_then(toml::Value::as_bool)
        .unwrap_or(false);
    let requires_auth = chatgpt_auth
        || field("requires_auth")
            .and_then(toml::Value::as_bool)
            .unwrap_or(builtin);
    let idle_ms = field("stream_idle_timeout_ms")
        .and_then(toml::Value::as_integer)
        .and_then(|n| u64::try_from(n).ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_IDLE_TIMEOUT_MS);
    Ok(Provider {
        id,
        base_url,
        requires_auth,
        chatgpt_auth,
        idle_timeout: Duration::from_millis(idle_ms),
    })
}

/// `<base_url>/responses`, checked: http or https; a key never goes over plain http to a
/// non-loopback host.
pub fn responses_uri(p: &Provider) -> anyhow::Result<Uri> {
    let url = format!("{}/responses", p.base_url.trim_end_matches('/'));
    let uri: Uri = url.parse().map_err(|e| {
        Coded::new(
            USAGE,
            format!(
                "model_providers.{}.base_url {:?} is not a URL: {e}",
                p.id, p.base_url
            ),
        )
    })?;
    let host = uri.host().unwrap_or_default();
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") => {
            let loopback = host == "localhost"
                || host
                    .trim_matches(|c| c == '[' || c == ']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if p.requires_auth && !loopback {
                return Err(Coded::new(
                    USAGE,
                    format!(
                        "refusing to send the API key over plain http to {host}: use https, or a loopback \
                         address for a local proxy (model_providers.{}.base_url)",
                        p.id
                    ),
                ));
            }
        }
        _ => {
            return Err(Coded::new(
                USAGE,
                format!(
                    "model_providers.{}.base_url {:?}: expected an http:// or https:// URL",
                    p.id, p.base_url
                ),
            ));
        }
    }
    Ok(uri)
}

pub fn run(args: ExecArgs, global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    let (layered, features) = crate::features::Features::load(global)?;
    let cfg = &layered.config;
    let provider = resolve_provider(cfg)?;
    let uri = responses_uri(&provider)?;
    let model = args
        .model
        .clone()
        .or_else(|| cfg.get_str("model").map(str::to_owned))
        .unwrap_or_else(|| DEFAULT_MODEL.to_owned());
    let prompt = if args.prompt == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| Coded::new(USAGE, format!("failed to read the prompt from stdin: {e}")))?;
        s
    } else {
        args.prompt.clone()
    };
    if prompt.trim().is_empty() {
        return Err(Coded::new(USAGE, "the prompt is empty"));
    }

    let auth_header = if provider.requires_auth {
        Some(bearer(cfg, &provider)?)
    } else {
        None
    };

    let mut body = serde_json::json!({"model": model, "input": prompt, "stream": true});
    if features.enabled("web_search_request") {
        body["tools"] = serde_json::json!([{"type": "web_search"}]);
    }
    let body = Bytes::from(serde_json::to_vec(&body)?);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Coded::new(FAILURE, format!("failed to start the async runtime: {e}")))?;
    let usage = rt.block_on(stream_request(&provider, uri, auth_header, body))?;
    if features.enabled("exec_usage_line") {
        eprintln!("{}", usage_line(&usage));
    }
    Ok(0)
}

/// `Authorization: Bearer <stored key or ChatGPT access token>`, marked sensitive.
fn bearer(cfg: &crate::config::Config, provider: &Provider) -> anyhow::Result<HeaderValue> {
    if provider.chatgpt_auth {
        return chatgpt_bearer(cfg, provider);
    }
    let store = crate::login_cmd::store_from_config(cfg)?;
    let loaded = store
        .load_with_source()
        .map_err(|e| Coded::new(AUTH, e.to_string()))?;
    for w in &loaded.warnings {
        eprintln!("codex: warning: {w}");
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
                "provider {} requires an API key and {why}: run `{}` (or use a provider with requires_auth = false)",
                provider.id,
                crate::login_cmd::STDIN_HINT
            ),
        ));
    };
    let mut value = Zeroizing::new(String::with_capacity(7 + key.len()));
    value.push_str("Bearer ");
    value.push_str(key.expose_secret());
    // The stored key was validated at login; a key edited into auth.json by hand may not be.
    let mut hv = HeaderValue::from_str(&value).map_err(|_| {
        Coded::new(
            AUTH,
            "the stored API key contains characters not allowed in an HTTP header: log in again",
        )
    })?;
    hv.set_sensitive(true);
    Ok(hv)
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
    let secret = match auth.as_deref() {
        Some(a) => match (&a.openai_api_key, &a.tokens) {
            (Some(k), _) => k.expose_secret().to_string(),
            (None, Some(t)) => t.access_token.expose_secret().to_string(),
            (None, None) => String::new(),
        },
        None => String::new(),
    };
    let secret = Zeroizing::new(secret);
    if secret.is_empty() {
        return Err(Coded::new(
            AUTH,
            format!(
                "provider {} requires authentication and you are not logged in: run `codex login`",
                provider.id
            ),
        ));
    }
    let mut value = Zeroizing::new(String::with_capacity(7 + secret.len()));
    value.push_str("Bearer ");
    value.push_str(&secret);
    let mut hv = HeaderValue::from_str(&value).map_err(|_| {
        Coded::new(
            AUTH,
            "the stored credential contains characters not allowed in an HTTP header: log in again",
        )
    })?;
    hv.set_sensitive(true);
    Ok(hv)
}

/// Token usage from `response.completed`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Usage {
    pub input: Option<u64>,
    pub output: Option<u64>,
    pub total: Option<u64>,
}

fn usage_line(u: &Usage) -> String {
    let n = |v: Option<u64>| v.map_or_else(|| "?".to_owned(), |v| v.to_string());
    format!(
        "tokens used: {} (input {}, output {})",
        n(u.total),
        n(u.input),
        n(u.output)
    )
}

fn client_tls() -> anyhow::Result<rustls::ClientConfig> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let why = loaded
            .errors
            .first()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        return Err(Coded::new(
            CONNECT,
            format!(
                "no trusted root certificates found (system store, SSL_CERT_FILE, SSL_CERT_DIR){why}"
            ),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Coded::new(FAILURE, format!("TLS configuration: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(cfg)
}

/// Server-provided text in our one-line errors: no control characters (no terminal escapes, no
/// line breaks), bounded length.
fn clean(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(500)
        .collect();
    if s.chars().count() > 500 {
        out.push_str("...");
    }
    out
}

/// `a: b: c` from an error and its sources (hyper's Display alone is often just "client error").
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    clean(&parts.join(": "))
}

async fn stream_request(
    provider: &Provider,
    uri: Uri,
    auth: Option<HeaderValue>,
    body: Bytes,
) -> anyhow::Result<Usage> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let https = if uri.scheme_str() == Some("https") {
        hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(client_tls()?)
    } else {
        // Plain http: no TLS configuration needed (and no trust store required).
        hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| Coded::new(FAILURE, format!("TLS configuration: {e}")))?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth(),
        )
    }
    .https_or_http()
    .enable_all_versions()
    .wrap_connector(http);
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(https);

    let mut req = Request::post(uri.clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "text/event-stream")
        .header(
            http::header::USER_AGENT,
            concat!("codex-cli/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(body))?;
    if let Some(hv) = auth {
        req.headers_mut().insert(http::header::AUTHORIZATION, hv);
    }

    let resp = match tokio::time::timeout(provider.idle_timeout, client.request(req)).await {
        Err(_) => {
            return Err(Coded::new(
                STREAM,
                format!(
                    "no response from {uri} within {} ms",
                    provider.idle_timeout.as_millis()
                ),
            ));
        }
        Ok(Err(e)) => {
            let code = if e.is_connect() { CONNECT } else { STREAM };
            return Err(Coded::new(
                code,
                format!("request to {uri} failed: {}", chain(&e)),
            ));
        }
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    let mut body = resp.into_body();
    if !status.is_success() {
        let mut buf = Vec::new();
        while buf.len() < MAX_ERROR_BODY {
            match tokio::time::timeout(provider.idle_timeout, body.frame()).await {
                Ok(Some(Ok(f))) => {
                    if let Ok(d) = f.into_data() {
                        buf.extend_from_slice(&d);
                    }
                }
                _ => break,
            }
        }
        buf.truncate(MAX_ERROR_BODY);
        return Err(http_error(status, &uri, &buf, provider.requires_auth));
    }

    let mut out = std::io::stdout().lock();
    let mut parser = SseParser::default();
    let mut last_char = '\n';
    let mut text_bytes = 0usize;
    loop {
        let frame = match tokio::time::timeout(provider.idle_timeout, body.frame()).await {
            Err(_) => {
                return Err(Coded::new(
                    STREAM,
                    format!(
                        "the stream from {uri} was idle for {} ms",
                        provider.idle_timeout.as_millis()
                    ),
                ));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                finish_line(&mut out, last_char);
                return Err(Coded::new(
                    STREAM,
                    format!("the stream from {uri} was cut off: {}", chain(&e)),
                ));
            }
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        for ev in parser.push(&data).map_err(|e| Coded::new(STREAM, e))? {
            match handle_event(&ev)? {
                Step::Text(t) => {
                    if let Some(c) = t.chars().last() {
                        last_char = c;
                    }
                    text_bytes += t.len();
                    out.write_all(t.as_bytes())
                        .and_then(|()| out.flush())
                        .map_err(|e| {
                            Coded::new(FAILURE, format!("failed to write to stdout: {e}"))
                        })?;
                }
                Step::Done(usage) => {
                    finish_line(&mut out, last_char);
                    return Ok(usage);
                }
                Step::Continue => {}
            }
        }
    }
    finish_line(&mut out, last_char);
    Err(Coded::new(
        STREAM,
        format!(
            "the stream from {uri} ended before response.completed ({text_bytes} bytes of text received)"
        ),
    ))
}

fn finish_line(out: &mut impl Write, last_char: char) {
    if last_char != '\n' {
        let _ = out.write_all(b"\n").and_then(|()| out.flush());
    }
}

/// `sent_key`: whether we sent the stored key (only then does a 401/403 point at it).
fn http_error(status: StatusCode, uri: &Uri, body: &[u8], sent_key: bool) -> anyhow::Error {
    let code = match status.as_u16() {
        401 | 403 => AUTH,
        429 => RATE_LIMITED,
        _ => HTTP_STATUS,
    };
    let detail = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let err = v.get("error")?;
            let msg = err
                .get("message")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("(no message)");
            let tags: Vec<&str> = ["type", "code"]
                .iter()
                .filter_map(|k| err.get(*k).and_then(serde_json::Value::as_str))
                .collect();
            Some(if tags.is_empty() {
                msg.to_owned()
            } else {
                format!("{msg} ({})", tags.join(", "))
            })
        });
    let detail = detail.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        if text.trim().is_empty() {
            "(empty body)".to_owned()
        } else {
            text.trim().to_owned()
        }
    });
    let mut msg = format!("HTTP {status} from {uri}: {}", clean(&detail));
    let peer_refused = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/code")
                .and_then(|c| c.as_str().map(str::to_owned))
        })
        .is_some_and(|c| c == "peer_refused");
    if peer_refused {
        msg.push_str(
            " (the proxy does not serve this user: ask its administrator for --allow-user or --allow-group)",
        );
    } else if code == AUTH && sent_key {
        msg.push_str(&format!(
            " (check the key: codex login status; to replace it: {})",
            crate::login_cmd::STDIN_HINT
        ));
    }
    Coded::new(code, msg)
}

/// One server-sent event.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

/// Incremental SSE parser (text/event-stream): lines ending `\n` or `\r\n`, `data:` lines joined
/// with `\n`, an empty line dispatches. Bounded by [`MAX_EVENT_BYTES`].
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    cur: SseEvent,
    has_data: bool,
}

impl SseParser {
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, String> {
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(pos) = self.buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos;
            let mut line = &self.buf[start..end];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            let line = String::from_utf8_lossy(line).into_owned();
            start = end + 1;
            if line.is_empty() {
                if self.has_data {
                    events.push(std::mem::take(&mut self.cur));
                }
                self.cur = SseEvent::default();
                self.has_data = false;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((&line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "data" => {
                    if self.has_data {
                        self.cur.data.push('\n');
                    }
                    self.cur.data.push_str(value);
                    self.has_data = true;
                    if self.cur.data.len() > MAX_EVENT_BYTES {
                        return Err(format!("an event is larger than {MAX_EVENT_BYTES} bytes"));
                    }
                }
                "event" => self.cur.event = Some(value.to_owned()),
                _ => {}
            }
        }
        self.buf.drain(..start);
        if self.buf.len() > MAX_EVENT_BYTES {
            return Err(format!(
                "a line of the event stream is longer than {MAX_EVENT_BYTES} bytes"
            ));
        }
        Ok(events)
    }
}

enum Step {
    Text(String),
    Done(Usage),
    Continue,
}

fn handle_event(ev: &SseEvent) -> anyhow::Result<Step> {
    if ev.data.trim() == "[DONE]" {
        return Ok(Step::Continue);
    }
    let name = ev.event.as_deref().unwrap_or("message");
    let v: serde_json::Value = serde_json::from_str(&ev.data)
        .map_err(|e| Coded::new(STREAM, format!("malformed {} event: {e}", clean(name))))?;
    let ty = v
        .get("type")
        .and_then(serde_json::Value::as_str)
        .unwrap_or(name);
    let s = |ptr: &str| {
        v.pointer(ptr)
            .and_then(serde_json::Value::as_str)
            .map(clean)
    };
    match ty {
        "response.output_text.delta" => Ok(Step::Text(
            v.get("delta")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        )),
        "response.completed" => {
            let u = |k: &str| {
                v.pointer(&format!("/response/usage/{k}"))
                    .and_then(serde_json::Value::as_u64)
            };
            Ok(Step::Done(Usage {
                input: u("input_tokens"),
                output: u("output_tokens"),
                total: u("total_tokens"),
            }))
        }
        "response.failed" => Err(Coded::new(
            STREAM,
            format!(
                "the response failed: {}",
                s("/response/error/message").unwrap_or_else(|| "(no message)".to_owned())
            ),
        )),
        "response.incomplete" => Err(Coded::new(
            STREAM,
            format!(
                "the response is incomplete: {}",
                s("/response/incomplete_details/reason")
                    .unwrap_or_else(|| "(no reason)".to_owned())
            ),
        )),
        "error" => Err(Coded::new(
            STREAM,
            format!(
                "the stream reported an error: {}",
                s("/message")
                    .or_else(|| s("/error/message"))
                    .unwrap_or_else(|| "(no message)".to_owned())
            ),
        )),
        _ => Ok(Step::Continue),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_parser_handles_split_chunks_crlf_and_multiline_data() {
        let mut p = SseParser::default();
        assert!(p.push(b"event: a\r\ndata: {\"x\"").unwrap().is_empty());
        let evs = p
            .push(b":1}\r\n\r\n: comment\n\ndata: l1\ndata: l2\n\n")
            .unwrap();
        assert_eq!(
            evs,
            vec![
                SseEvent {
                    event: Some("a".into()),
                    data: "{\"x\":1}".into()
                },
                SseEvent {
                    event: None,
                    data: "l1\nl2".into()
                },
            ]
        );
    }

    #[test]
    fn sse_parser_bounds_a_line() {
        let mut p = SseParser::default();
        let big = vec![b'a'; MAX_EVENT_BYTES + 1];
        assert!(p.push(&big).unwrap_err().contains("longer than"));
    }

    #[test]
    fn plain_http_key_only_to_loopback() {
        let p = |url: &str, auth: bool| Provider {
            id: "x".into(),
            base_url: url.into(),
            requires_auth: auth,
            chatgpt_auth: false,
            idle_timeout: Duration::from_secs(1),
        };
        assert!(responses_uri(&p("http://127.0.0.1:9/v1", true)).is_ok());
        assert!(responses_uri(&p("http://[::1]:9/v1", true)).is_ok());
        assert!(responses_uri(&p("http://localhost:9/v1/", true)).is_ok());
        let e = responses_uri(&p("http://example.com/v1", true))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("refusing to send the API key over plain http to example.com"),
            "{e}"
        );
        assert!(responses_uri(&p("http://example.com/v1", false)).is_ok());
        assert!(responses_uri(&p("ftp://example.com/v1", false)).is_err());
        assert_eq!(
            responses_uri(&p("https://api.openai.com/v1/", true))
                .unwrap()
                .to_string(),
            "https://api.openai.com/v1/responses"
        );
    }

    #[test]
    fn clean_strips_control_characters() {
        assert_eq!(clean("a\u{1b}[31mb\nc"), "a [31mb c");
    }
}
