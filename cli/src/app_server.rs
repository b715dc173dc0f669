//! `codex app-server`: the auth API as JSON-RPC 2.0 over stdio, one JSON object per line.
//!
//! **v2** (what current clients speak; schema: `cli/app-server-v2.schema.json`). `initialize
//! {clientInfo: {name, version?, title?}}` → `{userAgent}` must come first: an `account/*` method
//! before it is an error (`-32600`, "not initialized"), a second `initialize` too.
//! `account/login/start` with `{type: "apiKey", apiKey}` → `{type: "apiKey"}`, `{type: "chatgpt"}`
//! → `{type: "chatgpt", loginId, authUrl}`, `{type: "chatgptDeviceCode"}` → `{type:
//! "chatgptDeviceCode", loginId, verificationUrl, userCode}` (another type → `-32602`);
//! `account/login/cancel {loginId}` → `{status: "canceled" | "notFound"}` (a finished or unknown
//! login is `notFound`); `account/logout` → `{}`; `account/read {refreshToken?}` → `{account:
//! {type: "apiKey"} | {type: "chatgpt", email, planType} | null, requiresOpenaiAuth}`.
//! Notifications: `account/login/completed {loginId, success, error?}` for every login that ends
//! (`loginId` null for an API key), and `account/updated {authMode, planType}` after every change
//! of the credentials: a login, logout or refresh here, and those made by another process (the auth
//! manager's fingerprint is checked every 500 ms). One ChatGPT login (browser or device) is
//! pending at a time: a new `account/login/start` cancels the pending one, which completes with
//! "replaced by a newer login".
//!
//! **v1 (legacy, kept working, no `initialize` needed)**: `loginChatGpt` → `{loginId, authUrl}`
//! at once (a newer one cancels the pending one); `cancelLoginChatGpt {loginId}` → `{}`;
//! `loginApiKey {apiKey}` → `{}`; `logout` → `{}`; `getAuthStatus {includeToken?,
//! refreshToken?}` → `{authMethod, authToken?, email?, planType?}`. Notifications:
//! `loginChatGptComplete {loginId, success, error?}` for every login that ends, and
//! `authStatusChange {authMethod}` after a login or logout.
//!
//! Login requests run in their own tasks, so a pending login never delays an answer; requests that
//! read or write the stored credentials run one at a time, in arrival order, in one task. One
//! [`AuthManager`] (cache, cross-process lock, refresh) and one lock serialize every use of the
//! stored credentials in this process (the logins' persist steps take the same lock). stdout
//! carries only protocol lines; tokens and keys are never logged (they appear on stdout only in
//! `getAuthStatus` with `includeToken: true`). EOF on stdin cancels a pending login, waits for the
//! answers in flight, and exits 0.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use codex_auth::{AuthManager, ManagerError};
use codex_login::{CancelHandle, LoginOutcome};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinSet;

use crate::exit::{Coded, FAILURE};
use crate::login_browser::{LoginSettings, auth_json_from};

#[derive(Debug, clap::Args)]
pub struct AppServerArgs {}

/// Longest request line accepted.
const MAX_LINE: usize = 1 << 20;
/// How long EOF waits for requests in flight before exiting.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the store is checked for changes made by other processes (`account/updated`).
const WATCH_INTERVAL: Duration = Duration::from_millis(500);

/// The v2 methods, as documented in `cli/app-server-v2.schema.json`.
pub const V2_METHODS: &[&str] = &[
    "initialize",
    "account/login/start",
    "account/login/cancel",
    "account/logout",
    "account/read",
];
/// The v2 notifications.
pub const V2_NOTIFICATIONS: &[&str] = &["account/login/completed", "account/updated"];

const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
const INTERNAL_ERROR: i64 = -32603;

pub fn run(_args: AppServerArgs, global: &crate::GlobalOpts) -> anyhow::Result<i32> {
    let cfg = crate::config::load(global)?;
    let settings = LoginSettings::from_config(&cfg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Coded::new(FAILURE, format!("cannot start the async runtime: {e}")))?;
    let result = rt.block_on(serve(settings));
    // Every task has ended; do not wait for the blocking pool's idle threads.
    rt.shutdown_timeout(Duration::from_secs(1));
    result.map(|()| 0)
}

/// stdin and stdout as tokio files (dup'ed descriptors; tokio's `io-std` is not enabled in the
/// workspace, and this needs no unsafe).
fn std_streams() -> std::io::Result<(tokio::fs::File, tokio::fs::File)> {
    use std::os::fd::AsFd;
    let stdin = std::io::stdin().as_fd().try_clone_to_owned()?;
    let stdout = std::io::stdout().as_fd().try_clone_to_owned()?;
    Ok((
        tokio::fs::File::from_std(std::fs::File::from(stdin)),
        tokio::fs::File::from_std(std::fs::File::from(stdout)),
    ))
}

enum Out {
    Line(String),
    Flush(oneshot::Sender<()>),
}

/// A JSON-RPC error.
struct RpcError {
    code: i64,
    message: String,
}

impl RpcError {
    fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Which protocol started a login (decides the notifications it ends with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    V1,
    V2,
}

/// How to cancel a pending login.
enum Cancel {
    Browser(CancelHandle),
    Device(Arc<Notify>),
}

impl Cancel {
    fn cancel(&self) {
        match self {
            Cancel::Browser(h) => h.cancel(),
            // A permit is kept when the device task is not waiting at this instant.
            Cancel::Device(n) => n.notify_one(),
        }
    }
}

struct ActiveLogin {
    id: String,
    cancel: Cancel,
    /// Why it is being cancelled (replacement, shutdown), reported instead of "login cancelled".
    reason: Arc<Mutex<Option<String>>>,
    monitor: tokio::task::JoinHandle<()>,
}

struct App {
    settings: LoginSettings,
    /// The process's one auth state (codex-auth's manager: cache, cross-process lock, refresh).
    manager: AuthManager,
    /// Serializes every request that reads or writes the credentials in this process.
    auth_lock: tokio::sync::Mutex<()>,
    active: Mutex<Option<ActiveLogin>>,
    /// `initialize` was received (v2 methods and `account/updated` need it).
    initialized: AtomicBool,
    /// Serializes `loginChatGpt` so that replacing the pending login is atomic.
    start_lock: tokio::sync::Mutex<()>,
    out: mpsc::UnboundedSender<Out>,
}

impl App {
    fn send(&self, v: Value) {
        let _ = self.out.send(Out::Line(v.to_string()));
    }

    fn notify(&self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    fn active(&self) -> std::sync::MutexGuard<'_, Option<ActiveLogin>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take the pending login out, cancel it with `reason`, and wait until it has ended and been
    /// reported.
    async fn end_active(&self, reason: &str) {
        let taken = self.active().take();
        if let Some(login) = taken {
            *login.reason.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason.to_string());
            login.cancel.cancel();
            let _ = login.monitor.await;
        }
    }
}

async fn serve(settings: LoginSettings) -> anyhow::Result<()> {
    let (stdin, stdout) = std_streams()
        .map_err(|e| Coded::new(FAILURE, format!("cannot duplicate stdin/stdout: {e}")))?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
    let writer = tokio::spawn(async move {
        let mut stdout = stdout;
        while let Some(msg) = rx.recv().await {
            match msg {
                Out::Line(mut line) => {
                    line.push('\n');
                    if stdout.write_all(line.as_bytes()).await.is_err()
                        || stdout.flush().await.is_err()
                    {
                        // The client is gone; nothing more can be said.
                        return;
                    }
                }
                Out::Flush(ack) => {
                    let _ = stdout.flush().await;
                    let _ = ack.send(());
                }
            }
        }
    });
    let app = Arc::new(App {
        manager: settings.manager()?,
        settings,
        auth_lock: tokio::sync::Mutex::new(()),
        active: Mutex::new(None),
        initialized: AtomicBool::new(false),
        start_lock: tokio::sync::Mutex::new(()),
        out: tx.clone(),
    });

    let watcher = tokio::spawn(watch_account(app.clone()));
    let mut requests = JoinSet::new();
    let (auth_tx, mut auth_rx) = mpsc::unbounded_channel::<Request>();
    {
        let app = app.clone();
        requests.spawn(async move {
            while let Some(req) = auth_rx.recv().await {
                dispatch(app.clone(), req).await;
            }
        });
    }
    let mut stdin = BufReader::new(stdin);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut stdin)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .await;
        match n {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                eprintln!("codex app-server: reading stdin: {e}");
                break;
            }
        }
        if line.len() > MAX_LINE && line.last() != Some(&b'\n') {
            app.send(error_response(
                Value::Null,
                PARSE_ERROR,
                format!("request line longer than {MAX_LINE} bytes"),
            ));
            // Skip the rest of the oversized line in bounded pieces (outside review r7 F3: the
            // skip itself buffered a 512 MiB line).
            let mut sink = Vec::with_capacity(64 * 1024);
            loop {
                sink.clear();
                match (&mut stdin)
                    .take(64 * 1024)
                    .read_until(b'\n', &mut sink)
                    .await
                {
                    Ok(0) | Err(_) => break,
                    Ok(_) if sink.last() == Some(&b'\n') => break,
                    Ok(_) => {}
                }
            }
            continue;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        match parse_request(text) {
            Err(resp) => app.send(resp),
            // Handled in line, so that a request pipelined right after it sees the session
            // initialized.
            Ok(req) if req.method == "initialize" => initialize(&app, req),
            // Reads and writes of the stored credentials run one at a time in arrival order, so
            // a pipelined `loginApiKey` then `getAuthStatus` sees the key; login requests run
            // concurrently with them.
            Ok(req)
                if matches!(
                    req.method.as_str(),
                    "loginApiKey" | "logout" | "getAuthStatus" | "account/read" | "account/logout"
                ) =>
            {
                let _ = auth_tx.send(req);
            }
            Ok(req) => {
                let app = app.clone();
                requests.spawn(async move { dispatch(app, req).await });
            }
        }
        // Reap finished request tasks so the set does not grow.
        while requests.try_join_next().is_some() {}
    }

    // EOF: cancel a pending login (its completion is still reported), finish the requests in flight.
    drop(auth_tx);
    app.end_active("login cancelled: the app-server's input was closed")
        .await;
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while requests.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        requests.abort_all();
    }
    // A login started by a request that was still in flight.
    app.end_active("login cancelled: the app-server's input was closed")
        .await;
    watcher.abort();
    let _ = watcher.await;
    let (ack_tx, ack_rx) = oneshot::channel();
    let _ = tx.send(Out::Flush(ack_tx));
    // Everything sent before this point is written (or the client is gone).
    let _ = ack_rx.await;
    writer.abort();
    Ok(())
}

struct Request {
    /// `None` for a notification (no answer, even on error).
    id: Option<Value>,
    method: String,
    params: Value,
}

fn error_response(id: Value, code: i64, message: impl Into<String>) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message.into()}})
}

/// Parses one protocol line into `(id, method, params)`, or the JSON-RPC error response to send.
/// The same code path as the server's (public for the fuzzer).
#[doc(hidden)]
pub fn parse_line(text: &str) -> Result<(Option<Value>, String, Value), Value> {
    parse_request(text).map(|r| (r.id, r.method, r.params))
}

fn parse_request(text: &str) -> Result<Request, Value> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| error_response(Value::Null, PARSE_ERROR, format!("parse error: {e}")))?;
    let Value::Object(mut obj) = value else {
        let what = if value.is_array() {
            "batch requests are not supported"
        } else {
            "a request must be a json object"
        };
        return Err(error_response(Value::Null, INVALID_REQUEST, what));
    };
    let id = obj.remove("id");
    let id_for_errors = id.clone().unwrap_or(Value::Null);
    if let Some(id) = &id {
        if !(id.is_string() || id.is_number() || id.is_null()) {
            return Err(error_response(
                Value::Null,
                INVALID_REQUEST,
                "id must be a string or a number",
            ));
        }
    }
    if let Some(v) = obj.get("jsonrpc") {
        if v != "2.0" {
            return Err(error_response(
                id_for_errors,
                INVALID_REQUEST,
                "jsonrpc must be \"2.0\" when present",
            ));
        }
    }
    let method = match obj.remove("method") {
        Some(Value::String(m)) => m,
        _ => {
            return Err(error_response(
                id_for_errors,
                INVALID_REQUEST,
                "missing method",
            ));
        }
    };
    let params = obj.remove("params").unwrap_or(Value::Null);
    if !(params.is_object() || params.is_null()) {
        return Err(error_response(
            id_for_errors,
            INVALID_PARAMS,
            "params must be an object",
        ));
    }
    Ok(Request { id, method, params })
}

async fn dispatch(app: Arc<App>, req: Request) {
    let result = match req.method.as_str() {
        m if m.starts_with("account/") && !app.initialized.load(Ordering::SeqCst) => {
            Err(RpcError::new(
                INVALID_REQUEST,
                format!("not initialized: send `initialize` before {m}"),
            ))
        }
        "account/login/start" => login_start_v2(&app, &req.params).await,
        "account/login/cancel" => cancel_login_v2(&app, &req.params).await,
        "account/logout" => logout_v2(&app).await,
        "account/read" => read_account(&app, &req.params).await,
        "loginChatGpt" => login_chatgpt(&app, Api::V1).await,
        "cancelLoginChatGpt" => cancel_login(&app, &req.params).await,
        "loginApiKey" => login_api_key(&app, &req.params).await,
        "logout" => logout(&app).await,
        "getAuthStatus" => get_auth_status(&app, &req.params).await,
        other => Err(RpcError::new(
            METHOD_NOT_FOUND,
            format!("method not found: {other}"),
        )),
    };
    let Some(id) = req.id else { return };
    let msg = match result {
        Ok((value, after)) => {
            app.send(json!({"jsonrpc": "2.0", "id": id, "result": value}));
            if let Some((method, params)) = after {
                app.notify(method, params);
            }
            return;
        }
        Err(e) => error_response(id, e.code, e.message),
    };
    app.send(msg);
}

/// A result, and a notification to send right after it.
type Handled = Result<(Value, Option<(&'static str, Value)>), RpcError>;

fn str_param<'a>(params: &'a Value, name: &str) -> Result<&'a str, RpcError> {
    match params.get(name) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(RpcError::new(
            INVALID_PARAMS,
            format!("invalid params: {name} must be a string"),
        )),
        None => Err(RpcError::new(
            INVALID_PARAMS,
            format!("invalid params: missing {name}"),
        )),
    }
}

fn bool_param(params: &Value, name: &str) -> Result<bool, RpcError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(RpcError::new(
            INVALID_PARAMS,
            format!("invalid params: {name} must be a boolean"),
        )),
    }
}

async fn login_chatgpt(app: &Arc<App>, api: Api) -> Handled {
    let _serial = app.start_lock.lock().await;
    app.end_active(match api {
        Api::V1 => "login cancelled: replaced by a newer loginChatGpt",
        Api::V2 => "login cancelled: replaced by a newer account/login/start",
    })
    .await;
    let login_id = codex_login::random_id();
    let store_app = app.clone();
    let persist = move |tokens| async move {
        let _guard = store_app.auth_lock.lock().await;
        let outcome = store_app
            .manager
            .save(auth_json_from(tokens))
            .await
            .map_err(|e| e.to_string())?;
        if let Some(w) = outcome.warning {
            crate::exit::warn(&w);
        }
        Ok(())
    };
    let server = codex_login::start(app.settings.login_options(None, None), persist)
        .await
        .map_err(|e| RpcError::new(INTERNAL_ERROR, format!("cannot start the login: {e}")))?;
    let auth_url = server.auth_url().to_string();
    let reason = Arc::new(Mutex::new(None::<String>));
    let cancel = server.cancel_handle();
    let monitor = {
        let app = app.clone();
        let login_id = login_id.clone();
        let reason = reason.clone();
        tokio::spawn(async move {
            let outcome = server.wait().await;
            {
                let mut active = app.active();
                if active.as_ref().is_some_and(|a| a.id == login_id) {
                    *active = None;
                }
            }
            let mut error = outcome.error_message();
            if outcome == LoginOutcome::Cancelled {
                if let Some(r) = reason.lock().unwrap_or_else(|p| p.into_inner()).take() {
                    error = Some(r);
                }
            }
            login_ended(&app, api, &login_id, error);
        })
    };
    *app.active() = Some(ActiveLogin {
        id: login_id.clone(),
        cancel: Cancel::Browser(cancel),
        reason,
        monitor,
    });
    match api {
        Api::V1 => Ok((json!({"loginId": login_id, "authUrl": auth_url}), None)),
        Api::V2 => Ok((
            json!({"type": "chatgpt", "loginId": login_id, "authUrl": auth_url}),
            None,
        )),
    }
}

/// Report the end of a ChatGPT login (`error: None` = success) with the protocol's notification.
fn login_ended(app: &App, api: Api, login_id: &str, error: Option<String>) {
    let mut params = json!({"loginId": login_id, "success": error.is_none()});
    if let Some(msg) = &error {
        params["error"] = Value::String(msg.clone());
    }
    match api {
        Api::V1 => {
            app.notify("loginChatGptComplete", params);
            if error.is_none() {
                app.notify("authStatusChange", json!({"authMethod": "chatgpt"}));
            }
        }
        // `account/updated` comes from the account watcher.
        Api::V2 => app.notify("account/login/completed", params),
    }
}

async fn cancel_login(app: &App, params: &Value) -> Handled {
    let id = str_param(params, "loginId")?;
    let taken = {
        let mut active = app.active();
        if active.as_ref().is_some_and(|a| a.id == id) {
            active.take()
        } else {
            None
        }
    };
    let Some(login) = taken else {
        return Err(RpcError::new(
            INVALID_REQUEST,
            format!("login id not found: {id}"),
        ));
    };
    login.cancel.cancel();
    // Answer after the completion notification, so a client sees the login end first.
    let _ = login.monitor.await;
    Ok((json!({}), None))
}

// ---- v2 ----

/// `initialize`: once, first. Answered in line by the reader loop.
fn initialize(app: &App, req: Request) {
    let result = (|| -> Result<Value, RpcError> {
        let info = req
            .params
            .get("clientInfo")
            .filter(|v| v.is_object())
            .ok_or_else(|| {
                RpcError::new(
                    INVALID_PARAMS,
                    "invalid params: missing clientInfo {name, version}",
                )
            })?;
        let name = str_param(info, "name").map_err(|_| {
            RpcError::new(
                INVALID_PARAMS,
                "invalid params: clientInfo.name must be a string",
            )
        })?;
        let version = match info.get("version") {
            None | Some(Value::Null) => "",
            Some(Value::String(v)) => v.as_str(),
            Some(_) => {
                return Err(RpcError::new(
                    INVALID_PARAMS,
                    "invalid params: clientInfo.version must be a string",
                ));
            }
        };
        if app.initialized.swap(true, Ordering::SeqCst) {
            return Err(RpcError::new(INVALID_REQUEST, "already initialized"));
        }
        let clean =
            |s: &str| -> String { s.chars().filter(|c| !c.is_control()).take(64).collect() };
        Ok(json!({
            "userAgent": format!(
                "codex-cli/{} ({}/{})",
                env!("CARGO_PKG_VERSION"),
                clean(name),
                clean(version)
            )
        }))
    })();
    let Some(id) = req.id else { return };
    match result {
        Ok(v) => app.send(json!({"jsonrpc": "2.0", "id": id, "result": v})),
        Err(e) => app.send(error_response(id, e.code, e.message)),
    }
}

async fn login_start_v2(app: &Arc<App>, params: &Value) -> Handled {
    let ty = match params.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(_) => {
            return Err(RpcError::new(
                INVALID_PARAMS,
                "invalid params: type must be a string",
            ));
        }
        None => {
            return Err(RpcError::new(
                INVALID_PARAMS,
                "invalid params: missing type",
            ));
        }
    };
    match ty {
        "apiKey" => {
            login_api_key(app, params).await?;
            app.notify(
                "account/login/completed",
                json!({"loginId": null, "success": true}),
            );
            Ok((json!({"type": "apiKey"}), None))
        }
        "chatgpt" => login_chatgpt(app, Api::V2).await,
        "chatgptDeviceCode" => login_device(app).await,
        other => Err(RpcError::new(
            INVALID_PARAMS,
            format!(
                "invalid params: unknown login type {:?}: expected \"apiKey\", \"chatgpt\" or \"chatgptDeviceCode\"",
                other.chars().take(64).collect::<String>()
            ),
        )),
    }
}

async fn login_device(app: &Arc<App>) -> Handled {
    let _serial = app.start_lock.lock().await;
    app.end_active("login cancelled: replaced by a newer account/login/start")
        .await;
    let code = codex_login::request_device_code(&app.settings.issuer, &app.settings.client_id)
        .await
        .map_err(|e| {
            RpcError::new(
                INTERNAL_ERROR,
                crate::login_device::device_error_message(&e),
            )
        })?;
    let login_id = codex_login::random_id();
    let verification_url = code.verification_url.clone();
    let user_code = code.user_code.clone();
    let notify = Arc::new(Notify::new());
    let reason = Arc::new(Mutex::new(None::<String>));
    let monitor = {
        let app = app.clone();
        let login_id = login_id.clone();
        let notify = notify.clone();
        let reason = reason.clone();
        tokio::spawn(async move {
            let complete =
                codex_login::complete_device_login(code, &codex_oauth::device::tokio_sleep);
            let error = tokio::select! {
                r = complete => match r {
                    Ok(tokens) => {
                        let _guard = app.auth_lock.lock().await;
                        match app.manager.save(auth_json_from(tokens)).await {
                            Ok(outcome) => {
                                if let Some(w) = outcome.warning {
                                    crate::exit::warn(&w);
                                }
                                None
                            }
                            Err(e) => Some(format!("storing the credentials failed: {e}")),
                        }
                    }
                    Err(e) => Some(crate::login_device::device_error_message(&e)),
                },
                () = notify.notified() => Some(
                    reason
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .take()
                        .unwrap_or_else(|| "login cancelled".to_string()),
                ),
            };
            {
                let mut active = app.active();
                if active.as_ref().is_some_and(|a| a.id == login_id) {
                    *active = None;
                }
            }
            login_ended(&app, Api::V2, &login_id, error);
        })
    };
    *app.active() = Some(ActiveLogin {
        id: login_id.clone(),
        cancel: Cancel::Device(notify),
        reason,
        monitor,
    });
    Ok((
        json!({
            "type": "chatgptDeviceCode",
            "loginId": login_id,
            "verificationUrl": verification_url,
            "userCode": user_code,
        }),
        None,
    ))
}

async fn cancel_login_v2(app: &App, params: &Value) -> Handled {
    let id = str_param(params, "loginId")?;
    let taken = {
        let mut active = app.active();
        if active.as_ref().is_some_and(|a| a.id == id) {
            active.take()
        } else {
            None
        }
    };
    let Some(login) = taken else {
        // Unknown, or already finished (its completion was reported).
        return Ok((json!({"status": "notFound"}), None));
    };
    login.cancel.cancel();
    let _ = login.monitor.await;
    Ok((json!({"status": "canceled"}), None))
}

async fn logout_v2(app: &App) -> Handled {
    logout(app).await?;
    // `account/updated` comes from the account watcher.
    Ok((json!({}), None))
}

/// `{type, email, planType}` of the stored credentials, or null.
fn account_json(auth: Option<&codex_auth::AuthDotJson>) -> Value {
    let Some(auth) = auth else {
        return Value::Null;
    };
    if auth.openai_api_key.is_some() {
        return json!({"type": "apiKey"});
    }
    let Some(tokens) = &auth.tokens else {
        return Value::Null;
    };
    // Unverified claims, for display only (see codex-login's claims module).
    let claims =
        codex_login::claims::parse_id_token(tokens.id_token.expose_secret()).unwrap_or_default();
    json!({
        "type": "chatgpt",
        "email": claims.email,
        "planType": claims.plan.unwrap_or_else(|| "unknown".to_string()),
    })
}

async fn read_account(app: &App, params: &Value) -> Handled {
    let refresh = bool_param(params, "refreshToken")?;
    let _guard = app.auth_lock.lock().await;
    if refresh {
        match app.manager.refresh(true).await {
            Ok(_) => {}
            // Logged out (the watcher reports `account/updated` with authMode null) and told so.
            Err(e @ ManagerError::SignInAgain { .. }) => {
                return Err(RpcError::new(INTERNAL_ERROR, e.to_string()));
            }
            Err(e) => {
                return Err(RpcError::new(
                    INTERNAL_ERROR,
                    format!("token refresh failed: {e}"),
                ));
            }
        }
    }
    let auth = app
        .manager
        .current()
        .map_err(|e| RpcError::new(INTERNAL_ERROR, format!("cannot read the credentials: {e}")))?;
    Ok((
        json!({"account": account_json(auth.as_deref()), "requiresOpenaiAuth": true}),
        None,
    ))
}

/// Sends `account/updated` after every change of the auth state: the manager's own changes
/// (login, logout, refresh, invalid grant) wake it at once; changes by other processes are found
/// by checking the store every [`WATCH_INTERVAL`]. Only after `initialize` (v1 clients never see
/// it).
async fn watch_account(app: Arc<App>) {
    let mut rx = app.manager.subscribe();
    let _ = app.manager.current();
    let mut last = *rx.borrow_and_update();
    loop {
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(WATCH_INTERVAL) => {}
        }
        let current = app.manager.current().ok().flatten();
        let generation = *rx.borrow_and_update();
        if generation == last {
            continue;
        }
        last = generation;
        if !app.initialized.load(Ordering::SeqCst) {
            continue;
        }
        let account = account_json(current.as_deref());
        let mode = match account.get("type").and_then(Value::as_str) {
            Some("apiKey") => json!("apikey"),
            Some("chatgpt") => json!("chatgpt"),
            _ => Value::Null,
        };
        let plan = account.get("planType").cloned().unwrap_or(Value::Null);
        app.notify(
            "account/updated",
            json!({"authMode": mode, "planType": plan}),
        );
    }
}

/// An API key: non-empty, at most 4096 characters, no whitespace or control characters (the
/// same rule as `codex login --with-api-key`).
fn validate_api_key(key: &str) -> Result<(), &'static str> {
    if key.is_empty() {
        return Err("apiKey is empty");
    }
    if key.len() > 4096 {
        return Err("apiKey is longer than 4096 bytes");
    }
    if key.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("apiKey contains whitespace or control characters");
    }
    Ok(())
}

async fn login_api_key(app: &App, params: &Value) -> Handled {
    let key = str_param(params, "apiKey")?;
    validate_api_key(key)
        .map_err(|why| RpcError::new(INVALID_PARAMS, format!("invalid params: {why}")))?;
    let auth =
        codex_auth::AuthDotJson::from_api_key(codex_auth::SecretString::new(key.to_string()));
    let saved = {
        let _guard = app.auth_lock.lock().await;
        app.manager.save(auth).await
    };
    let outcome = saved
        .map_err(|e| RpcError::new(INTERNAL_ERROR, format!("cannot store the api key: {e}")))?;
    if let Some(w) = outcome.warning {
        crate::exit::warn(&w);
    }
    Ok((
        json!({}),
        Some(("authStatusChange", json!({"authMethod": "apikey"}))),
    ))
}

async fn logout(app: &App) -> Handled {
    let removed = {
        let _guard = app.auth_lock.lock().await;
        app.manager.logout().await
    };
    let removed = removed.map_err(|e| {
        RpcError::new(
            INTERNAL_ERROR,
            format!("cannot remove the credentials: {e}"),
        )
    })?;
    for w in removed.warnings {
        crate::exit::warn(&w);
    }
    Ok((
        json!({}),
        Some(("authStatusChange", json!({"authMethod": null}))),
    ))
}

async fn get_auth_status(app: &App, params: &Value) -> Handled {
    let include_token = bool_param(params, "includeToken")?;
    let refresh = bool_param(params, "refreshToken")?;
    let _guard = app.auth_lock.lock().await;
    let read_error = |e: ManagerError| {
        RpcError::new(INTERNAL_ERROR, format!("cannot read the credentials: {e}"))
    };
    if refresh {
        match app.manager.refresh(true).await {
            Ok(_) => {}
            Err(e @ ManagerError::SignInAgain { .. }) => {
                // Logged out (in this process's view) and told so; the next status says null.
                app.notify("authStatusChange", json!({"authMethod": null}));
                return Err(RpcError::new(INTERNAL_ERROR, e.to_string()));
            }
            Err(e) => {
                return Err(RpcError::new(
                    INTERNAL_ERROR,
                    format!("token refresh failed: {e}"),
                ));
            }
        }
    }
    // A token handed out must be usable: refresh it first when it is (about to be) expired.
    let auth = if include_token {
        app.manager.fresh().await
    } else {
        app.manager.current()
    };
    let auth = match auth {
        Ok(a) => a,
        Err(e @ ManagerError::SignInAgain { .. }) => {
            app.notify("authStatusChange", json!({"authMethod": null}));
            return Err(RpcError::new(INTERNAL_ERROR, e.to_string()));
        }
        Err(e) => return Err(read_error(e)),
    };
    let Some(auth) = auth else {
        return Ok((json!({"authMethod": null}), None));
    };
    if let Some(key) = &auth.openai_api_key {
        let mut out = json!({"authMethod": "apikey"});
        if include_token {
            out["authToken"] = Value::String(key.expose_secret().to_string());
        }
        return Ok((out, None));
    }
    let Some(tokens) = &auth.tokens else {
        return Ok((json!({"authMethod": null}), None));
    };
    let mut out = json!({"authMethod": "chatgpt"});
    // Unverified claims, for display only (see codex-login's claims module).
    if let Ok(claims) = codex_login::claims::parse_id_token(tokens.id_token.expose_secret()) {
        if let Some(email) = claims.email {
            out["email"] = Value::String(email);
        }
        if let Some(plan) = claims.plan {
            out["planType"] = Value::String(plan);
        }
    }
    if include_token {
        out["authToken"] = Value::String(tokens.access_token.expose_secret().to_string());
    }
    Ok((out, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_with_or_without_jsonrpc() {
        let r = parse_request(r#"{"id":1,"method":"logout"}"#).ok().unwrap();
        assert_eq!(r.method, "logout");
        assert!(parse_request(r#"{"jsonrpc":"2.0","id":"a","method":"x","params":{}}"#).is_ok());
        let e = parse_request("{not json").err().unwrap();
        assert_eq!(e["error"]["code"], PARSE_ERROR);
        let e = parse_request("[1]").err().unwrap();
        assert_eq!(e["error"]["code"], INVALID_REQUEST);
        let e = parse_request(r#"{"id":2}"#).err().unwrap();
        assert_eq!(e["error"]["code"], INVALID_REQUEST);
        assert_eq!(e["id"], 2);
        let e = parse_request(r#"{"id":3,"method":"x","params":[1]}"#)
            .err()
            .unwrap();
        assert_eq!(e["error"]["code"], INVALID_PARAMS);
        let e = parse_request(r#"{"jsonrpc":"1.0","id":3,"method":"x"}"#)
            .err()
            .unwrap();
        assert_eq!(e["error"]["code"], INVALID_REQUEST);
    }

    #[test]
    fn api_key_rules() {
        assert!(validate_api_key("sk-proj-abc123").is_ok());
        for bad in [
            "",
            "sk abc",
            "sk-abc\n",
            "sk-\u{7f}x",
            "sk-\u{a0}x",
            &"x".repeat(5000),
        ] {
            assert!(validate_api_key(bad).is_err(), "{bad:?}");
        }
    }
}
