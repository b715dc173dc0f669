//! One turn against the provider: the request, retries, the event stream.
//!
//! HTTP: hyper + hyper-rustls (rustls, ring), HTTP/1.1 and HTTP/2, trust roots from the system
//! store or `SSL_CERT_FILE`/`SSL_CERT_DIR` (rustls-native-certs). When a credential goes over
//! plain http to a loopback host, the connection is made through `codex-privsep`'s
//! owner-checked connector: the listening socket must belong to this user (sock_diag), else the
//! connection is refused before a byte is written (outside review: another local user listening
//! on `[::1]:P` received the key). A provider that gets no credential (the proxy) is not checked.
//!
//! Retries ([`codex_providers::retry`]): connection errors, 429 and 5xx up to
//! `request_max_retries`; a stream that breaks (cut off, idle, ended early) before any text was
//! shown up to `stream_max_retries` (after text was shown, a retry would repeat it: the error
//! ends the turn). Each retry is announced on stderr (`--json`: an `error` event).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use codex_providers::{Provider, Transport};
use http::{HeaderName, HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::rt::TokioExecutor;
use zeroize::Zeroizing;

use super::output::{Sink, Usage};
use crate::exit::{AUTH, CONNECT, Coded, FAILURE, HTTP_STATUS, RATE_LIMITED, STREAM, USAGE};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest SSE line or event accepted (a misbehaving server cannot make us buffer forever).
const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;
/// Largest error body read for the message.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Largest answer of one turn: below the session file's 64 MiB limit with room for the earlier
/// turns (outside review r11 F3: a provider's 80 MiB answer was recorded, then the session could
/// not be resumed; 1 GiB filled the disk).
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;

fn too_long() -> anyhow::Error {
    Coded::new(
        STREAM,
        format!(
            "the answer is longer than {} MiB: the turn is stopped",
            MAX_ANSWER_BYTES / (1024 * 1024)
        ),
    )
}

/// Everything a request carries.
pub struct RequestSpec {
    pub uri: Uri,
    /// `scheme://authority/path` for messages (the query is not shown).
    pub shown: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `Authorization`, marked sensitive.
    pub auth: Option<HeaderValue>,
    pub body: Bytes,
}

/// A turn's result.
pub struct TurnOutput {
    pub text: String,
    pub usage: Usage,
}

/// Runs the turn with the client the transport calls for.
pub async fn run(
    provider: &Provider,
    transport: Transport,
    spec: &RequestSpec,
    sends_secret: bool,
    sink: &mut Sink,
) -> anyhow::Result<TurnOutput> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let tls = if transport == Transport::Https {
        client_tls()?
    } else {
        // Plain http: no TLS configuration needed (and no trust store required).
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| Coded::new(FAILURE, format!("TLS configuration: {e}")))?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth()
    };
    let builder = || {
        hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls.clone())
            .https_or_http()
            .enable_all_versions()
    };
    if transport == Transport::PlainLoopback && sends_secret {
        #[cfg(target_os = "linux")]
        {
            let owner = codex_privsep::owner_check::ExpectedOwner::current_user(
                "plain-http provider",
                "your uid",
            )
            .map_err(|e| {
                Coded::new(
                    CONNECT,
                    format!(
                        "cannot check who serves {} (sock_diag: {e}); the key was not sent",
                        spec.shown
                    ),
                )
            })?;
            let conn =
                codex_privsep::owner_check::OwnerCheckedConnector::new(http, Arc::new(owner));
            let client =
                Client::builder(TokioExecutor::new()).build(builder().wrap_connector(conn));
            return with_retries(&client, provider, spec, sink).await;
        }
        #[cfg(not(target_os = "linux"))]
        return Err(Coded::new(
            CONNECT,
            format!(
                "refusing to send a credential over plain http to {}: who serves a loopback port \
                 can be checked only on Linux; use https",
                spec.shown
            ),
        ));
    }
    let client = Client::builder(TokioExecutor::new()).build(builder().wrap_connector(http));
    with_retries(&client, provider, spec, sink).await
}

/// Why one attempt failed.
enum Failure {
    /// Not retried.
    Fatal(anyhow::Error),
    /// Retried up to `request_max_retries` (connect error, 429, 5xx), honouring `retry_after`.
    Request {
        err: anyhow::Error,
        retry_after: Option<Duration>,
    },
    /// The stream broke before any text was shown: retried up to `stream_max_retries`.
    Stream(anyhow::Error),
}

async fn with_retries<C>(
    client: &Client<C, Full<Bytes>>,
    provider: &Provider,
    spec: &RequestSpec,
    sink: &mut Sink,
) -> anyhow::Result<TurnOutput>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let policy = provider.retry;
    let (mut request_retries, mut stream_retries) = (0u64, 0u64);
    let mut attempts = 0u64;
    loop {
        attempts += 1;
        let mut text = String::new();
        let failure = match attempt(client, provider, spec, sink, &mut text).await {
            Ok(usage) => return Ok(TurnOutput { text, usage }),
            Err(f) => f,
        };
        let (err, delay) = match failure {
            Failure::Fatal(e) => return Err(annotate(e, attempts, None)),
            Failure::Request { err, retry_after } => {
                if request_retries >= policy.request_max_retries {
                    return Err(annotate(err, attempts, None));
                }
                request_retries += 1;
                match policy.delay(
                    u32::try_from(request_retries).unwrap_or(u32::MAX),
                    retry_after,
                    rand::random(),
                ) {
                    Ok(d) => (err, d),
                    Err(asked) => {
                        let note = format!(
                            "the server asked to retry after {} s, longer than the {} s this client waits: not retried",
                            asked.as_secs(),
                            policy.max_retry_after.as_secs()
                        );
                        return Err(annotate(err, attempts, Some(note)));
                    }
                }
            }
            Failure::Stream(err) => {
                if stream_retries >= policy.stream_max_retries {
                    return Err(annotate(err, attempts, None));
                }
                stream_retries += 1;
                let n = u32::try_from(stream_retries).unwrap_or(u32::MAX);
                (err, policy.backoff(n, rand::random()))
            }
        };
        let total = 1 + policy.request_max_retries + policy.stream_max_retries;
        sink.notice(&format!(
            "{err:#}; retrying in {:.1} s (attempt {} of at most {total})",
            delay.as_secs_f64(),
            attempts + 1
        ))?;
        tokio::time::sleep(delay).await;
    }
}

/// The error with the number of attempts (when more than one) and a note.
fn annotate(e: anyhow::Error, attempts: u64, note: Option<String>) -> anyhow::Error {
    if attempts <= 1 && note.is_none() {
        return e;
    }
    let code = e.downcast_ref::<Coded>().map_or(FAILURE, |c| c.code);
    let mut msg = format!("{e:#}");
    if let Some(n) = note {
        msg.push_str(&format!(" ({n})"));
    }
    if attempts > 1 {
        msg.push_str(&format!(" (gave up after {attempts} attempts)"));
    }
    Coded::new(code, msg)
}

/// Whether a client error is the owner check's refusal (not retried: retrying cannot help and
/// the message says what happened).
fn is_owner_refusal(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::PermissionDenied {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

async fn attempt<C>(
    client: &Client<C, Full<Bytes>>,
    provider: &Provider,
    spec: &RequestSpec,
    sink: &mut Sink,
    text: &mut String,
) -> Result<Usage, Failure>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let shown = &spec.shown;
    let idle = provider.idle_timeout;
    let mut req = Request::post(spec.uri.clone())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "text/event-stream")
        .header(
            http::header::USER_AGENT,
            concat!("codex-cli/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(spec.body.clone()))
        .map_err(|e| Failure::Fatal(Coded::new(FAILURE, format!("request: {e}"))))?;
    for (k, v) in &spec.headers {
        req.headers_mut().insert(k.clone(), v.clone());
    }
    if let Some(hv) = &spec.auth {
        req.headers_mut()
            .insert(http::header::AUTHORIZATION, hv.clone());
    }

    let resp = match tokio::time::timeout(idle, client.request(req)).await {
        Err(_) => {
            return Err(Failure::Request {
                err: Coded::new(
                    STREAM,
                    format!("no response from {shown} within {} ms", idle.as_millis()),
                ),
                retry_after: None,
            });
        }
        Ok(Err(e)) => {
            let msg = format!("request to {shown} failed: {}", chain(&e));
            if is_owner_refusal(&e) {
                return Err(Failure::Fatal(Coded::new(CONNECT, msg)));
            }
            let code = if e.is_connect() { CONNECT } else { STREAM };
            return Err(Failure::Request {
                err: Coded::new(code, msg),
                retry_after: None,
            });
        }
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    let retry_after = codex_providers::retry::retry_after(resp.headers(), SystemTime::now());
    let mut body = resp.into_body();
    if !status.is_success() {
        let mut buf = Vec::new();
        while buf.len() < MAX_ERROR_BODY {
            match tokio::time::timeout(idle, body.frame()).await {
                Ok(Some(Ok(f))) => {
                    if let Ok(d) = f.into_data() {
                        buf.extend_from_slice(&d);
                    }
                }
                _ => break,
            }
        }
        buf.truncate(MAX_ERROR_BODY);
        let err = http_error(status, shown, &buf, spec.auth.is_some());
        return Err(
            if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                Failure::Request { err, retry_after }
            } else {
                Failure::Fatal(err)
            },
        );
    }

    // A broken stream is retried only while nothing was shown.
    let broken = |err: anyhow::Error, text: &String| {
        if text.is_empty() {
            Failure::Stream(err)
        } else {
            Failure::Fatal(err)
        }
    };
    let mut parser = SseParser::default();
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => {
                let err = Coded::new(
                    STREAM,
                    format!(
                        "the stream from {shown} was idle for {} ms",
                        idle.as_millis()
                    ),
                );
                return Err(broken(err, text));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                let err = Coded::new(
                    STREAM,
                    format!("the stream from {shown} was cut off: {}", chain(&e)),
                );
                return Err(broken(err, text));
            }
            Ok(Some(Ok(f))) => f,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let events = parser
            .push(&data)
            .map_err(|e| Failure::Fatal(Coded::new(STREAM, e)))?;
        for ev in events {
            match handle_event(&ev).map_err(Failure::Fatal)? {
                Step::Text(t) => {
                    if text.len() + t.len() > MAX_ANSWER_BYTES {
                        return Err(Failure::Fatal(too_long()));
                    }
                    text.push_str(&t);
                    sink.delta(&t).map_err(Failure::Fatal)?;
                }
                Step::ItemText(t) => {
                    // A provider that sends the finished message without deltas.
                    if text.is_empty() && !t.is_empty() {
                        if t.len() > MAX_ANSWER_BYTES {
                            return Err(Failure::Fatal(too_long()));
                        }
                        text.push_str(&t);
                        sink.delta(&t).map_err(Failure::Fatal)?;
                    }
                }
                Step::Done(usage) => return Ok(usage),
                Step::Continue => {}
            }
        }
    }
    let err = Coded::new(
        STREAM,
        format!(
            "the stream from {shown} ended before response.completed ({} bytes of text received)",
            text.len()
        ),
    );
    Err(broken(err, text))
}

/// The `Authorization` header value for a credential, marked sensitive. The secret is copied
/// only into zeroizing buffers on its way into the header.
pub fn bearer_value(secret: &str, what: &str) -> anyhow::Result<HeaderValue> {
    let mut value = Zeroizing::new(String::with_capacity(7 + secret.len()));
    value.push_str("Bearer ");
    value.push_str(secret);
    let mut hv = HeaderValue::from_str(&value).map_err(|_| {
        Coded::new(
            AUTH,
            format!("{what} contains characters not allowed in an HTTP header"),
        )
    })?;
    hv.set_sensitive(true);
    Ok(hv)
}

/// Usage error from a provider error (an unset `env_key` is an authentication error).
pub fn provider_error(e: codex_providers::ProviderError) -> anyhow::Error {
    let code = match e {
        codex_providers::ProviderError::EnvKeyUnset { .. } => AUTH,
        _ => USAGE,
    };
    Coded::new(code, e.to_string())
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

/// `sent_key`: whether we sent the stored key (only then does a 401/403 point at it).
fn http_error(status: StatusCode, uri: &str, body: &[u8], sent_key: bool) -> anyhow::Error {
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
    /// The text of a completed assistant message item.
    ItemText(String),
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
        "response.output_item.done" => {
            let item = v.get("item");
            let is_assistant = item
                .and_then(|i| i.get("role"))
                .and_then(serde_json::Value::as_str)
                == Some("assistant");
            let text: String = item
                .and_then(|i| i.get("content"))
                .and_then(serde_json::Value::as_array)
                .map(|parts| {
                    parts
                        .iter()
                        .filter(|p| {
                            p.get("type").and_then(serde_json::Value::as_str) == Some("output_text")
                        })
                        .filter_map(|p| p.get("text").and_then(serde_json::Value::as_str))
                        .collect()
                })
                .unwrap_or_default();
            Ok(if is_assistant {
                Step::ItemText(text)
            } else {
                Step::Continue
            })
        }
        "response.completed" => {
            let u = |k: &str| {
                v.pointer(&format!("/response/usage/{k}"))
                    .and_then(serde_json::Value::as_u64)
            };
            Ok(Step::Done(Usage {
                input: u("input_tokens"),
                cached_input: u("input_tokens_details/cached_tokens"),
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
    fn clean_strips_control_characters() {
        assert_eq!(clean("a\u{1b}[31mb\nc"), "a [31mb c");
    }
}
