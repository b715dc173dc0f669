//! `codex mcp login/get/list/logout` against `suite-test-support`'s OAuth-protected MCP mock
//! over real HTTP, with a scripted browser: discovery (RFC 9728, RFC 8414), dynamic
//! registration (RFC 7591), PKCE + state + resource (RFC 8707), refresh (serialized across two
//! real processes), revocation (RFC 7009), and the auth status of every kind of server.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{codex, home};
use suite_test_support::mcp_mock::McpOAuthMock;
use suite_test_support::oauth_mock::{browse, http_get, query_param};

const FILE_STORE: &[&str] = &["-c", "mcp_oauth_credentials_store=file"];

fn mcp(home: &Path, args: &[&str]) -> Command {
    let mut c = codex(home);
    c.args(FILE_STORE).arg("mcp").args(args);
    c
}

fn out(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn add(home: &Path, name: &str, url: &str) {
    let o = mcp(home, &["add", name, "--url", url]).output().unwrap();
    assert!(o.status.success(), "{:?}", out(&o));
}

/// Start `codex mcp login NAME --no-browser` and read the authorization URL it prints.
struct Login {
    child: Child,
    stderr: std::thread::JoinHandle<String>,
}

// The child is returned inside `Login` and waited for by `finish`.
#[allow(clippy::zombie_processes)]
fn start_login(home: &Path, name: &str, extra: &[&str]) -> (Login, String) {
    let mut c = mcp(home, &["login", name, "--no-browser", "--timeout", "60"]);
    c.args(extra).stderr(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut reader = BufReader::new(stderr);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if Instant::now() > deadline || reader.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            let _ = child.wait();
            panic!("login printed no URL: {seen}");
        }
        seen.push_str(&line);
        let t = line.trim();
        if t.starts_with("http://") || t.starts_with("https://") {
            // keep draining stderr in the background so the child never blocks on it
            let stderr = std::thread::spawn(move || {
                let mut rest = seen;
                let _ = std::io::Read::read_to_string(&mut reader, &mut rest);
                rest
            });
            return (Login { child, stderr }, t.to_string());
        }
    }
}

fn finish(login: Login) -> Output {
    let mut o = login.child.wait_with_output().unwrap();
    o.stderr = login.stderr.join().unwrap().into_bytes();
    o
}

fn stored(home: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(home.join(".credentials.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn only_entry(home: &Path) -> serde_json::Value {
    let doc = stored(home);
    let m = doc["mcp_servers"].as_object().unwrap();
    assert_eq!(m.len(), 1, "{doc}");
    m.values().next().unwrap().clone()
}

fn login_ok(home: &Path, name: &str) {
    let (child, url) = start_login(home, name, &[]);
    let r = browse(&url).unwrap();
    assert_eq!(r.authorize.status, 302, "{:?}", r.authorize);
    let cb = r.callback.unwrap();
    assert_eq!(cb.status, 200, "{}", cb.body);
    let o = finish(child);
    assert!(o.status.success(), "{:?}", out(&o));
}

fn get_json(home: &Path, name: &str) -> serde_json::Value {
    let o = mcp(home, &["get", name, "--json"]).output().unwrap();
    assert!(o.status.success(), "{:?}", out(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn login_get_logout_round_trip_with_dynamic_registration_pkce_and_resource() {
    let mock = McpOAuthMock::start().unwrap();
    let h = home();
    add(&h.path, "docs", &mock.mcp_url());
    assert_eq!(
        get_json(&h.path, "docs")["auth_status"]["status"],
        "not_logged_in"
    );

    let (child, url) = start_login(&h.path, "docs", &["--scopes", "mcp:read,mcp:write"]);
    // what the authorization URL carries
    assert_eq!(query_param(&url, "response_type").as_deref(), Some("code"));
    assert_eq!(
        query_param(&url, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(
        query_param(&url, "resource").as_deref(),
        Some(mock.mcp_url().as_str())
    );
    assert_eq!(
        query_param(&url, "scope").as_deref(),
        Some("mcp:read mcp:write")
    );
    let state = query_param(&url, "state").unwrap();
    assert!(state.len() >= 32, "{state}");
    let r = browse(&url).unwrap();
    assert_eq!(r.callback.unwrap().status, 200);
    let o = finish(child);
    let (_, err) = out(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("Logged in to MCP server 'docs'") && err.contains("registered dynamically"),
        "{err}"
    );

    // registration, then a token request with the verifier and the resource
    assert_eq!(mock.clients().len(), 1);
    let tok = mock.requests_to("/token");
    assert_eq!(tok.len(), 1);
    assert_eq!(tok[0].fields["grant_type"], "authorization_code");
    assert_eq!(tok[0].fields["resource"], mock.mcp_url());
    assert!(tok[0].fields["code_verifier"].len() >= 43);

    // stored: file 0600, one entry keyed by name and URL
    let meta = std::fs::metadata(h.path.join(".credentials.json")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    let e = only_entry(&h.path);
    let access = e["access_token"].as_str().unwrap().to_string();
    let refresh = e["refresh_token"].as_str().unwrap().to_string();
    assert!(mock.access_token_valid(&access));

    // status, and no token in any output
    for args in [
        vec!["get", "docs"],
        vec!["get", "docs", "--json"],
        vec!["list"],
        vec!["list", "--json"],
    ] {
        let o = mcp(&h.path, &args).output().unwrap();
        let (so, se) = out(&o);
        assert!(o.status.success(), "{args:?} {se}");
        assert!(
            so.contains("oauth") && so.contains("expires in") || so.contains("\"oauth\""),
            "{args:?}: {so}"
        );
        for t in [&access, &refresh] {
            assert!(
                !so.contains(t.as_str()) && !se.contains(t.as_str()),
                "{args:?} leaked a token"
            );
        }
    }

    // logout revokes both tokens and removes the entry
    let o = mcp(&h.path, &["logout", "docs"]).output().unwrap();
    assert!(o.status.success(), "{:?}", out(&o));
    assert!(out(&o).1.contains("2 token(s) revoked"), "{:?}", out(&o));
    let revoked = mock.revoked();
    assert!(
        revoked.contains(&access) && revoked.contains(&refresh),
        "{revoked:?}"
    );
    assert!(!h.path.join(".credentials.json").exists());
    assert_eq!(
        get_json(&h.path, "docs")["auth_status"]["status"],
        "not_logged_in"
    );
    // a second logout: nothing stored, exit 1
    let o = mcp(&h.path, &["logout", "docs"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{:?}", out(&o));
}

#[test]
fn a_callback_with_the_wrong_state_is_refused_and_the_login_keeps_waiting() {
    let mock = McpOAuthMock::start().unwrap();
    let h = home();
    add(&h.path, "docs", &mock.mcp_url());
    let (child, url) = start_login(&h.path, "docs", &[]);
    let redirect = query_param(&url, "redirect_uri").unwrap();
    // an attacker's (or stale) callback: wrong state, even with a real code
    let (cb_url, code, _state) = suite_test_support::oauth_mock::authorize_only(&url).unwrap();
    let forged = format!("{redirect}?code={code}&state=not-the-state");
    let a = http_get(&forged, None).unwrap();
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(
        mock.requests_to("/token").is_empty(),
        "no exchange for a wrong state"
    );
    // the control: the genuine callback completes the login
    let a = http_get(&cb_url, None).unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    let o = finish(child);
    assert!(o.status.success(), "{:?}", out(&o));
}

#[test]
fn an_expired_refresh_token_reads_not_logged_in_without_crashing() {
    let mock = McpOAuthMock::start().unwrap();
    let h = home();
    add(&h.path, "docs", &mock.mcp_url());
    mock.set_access_ttl(1);
    login_ok(&h.path, "docs");
    mock.set_access_ttl(3600);
    // the control: the refresh works while the refresh token lives
    let v = get_json(&h.path, "docs");
    assert_eq!(v["auth_status"]["status"], "oauth", "{v}");
    assert_eq!(mock.refresh_grants(), 1);
    // now the access token expires and the session is gone at the server
    let mut doc = stored(&h.path);
    let key = doc["mcp_servers"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    doc["mcp_servers"][&key]["expires_at"] = serde_json::json!(1);
    std::fs::write(h.path.join(".credentials.json"), doc.to_string()).unwrap();
    mock.expire_refresh_tokens();
    let v = get_json(&h.path, "docs");
    assert_eq!(v["auth_status"]["status"], "not_logged_in", "{v}");
    let o = mcp(&h.path, &["list"]).output().unwrap();
    assert!(
        o.status.success() && out(&o).0.contains("not logged in"),
        "{:?}",
        out(&o)
    );
}

#[test]
fn two_processes_refreshing_at_once_keep_one_valid_refresh_token() {
    let mock = McpOAuthMock::start().unwrap();
    let h = home();
    add(&h.path, "docs", &mock.mcp_url());
    mock.set_access_ttl(1); // the stored token is due for a refresh at once
    login_ok(&h.path, "docs");
    mock.set_access_ttl(3600);
    mock.set_token_delay(Duration::from_millis(400)); // make the two refreshes overlap
    let spawn = || {
        mcp(&h.path, &["get", "docs", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let t0 = Instant::now();
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    eprintln!("two-process refresh: {} ms wall", t0.elapsed().as_millis());
    for o in [&a, &b] {
        assert!(o.status.success(), "{:?}", out(o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["auth_status"]["status"], "oauth", "{v}");
    }
    assert_eq!(
        mock.refresh_grants(),
        1,
        "the second process adopted the first one's refresh"
    );
    let e = only_entry(&h.path);
    let live = mock.live_refresh_tokens();
    assert_eq!(
        live,
        vec![e["refresh_token"].as_str().unwrap().to_string()],
        "exactly one valid refresh token, the stored one"
    );
    assert!(mock.access_token_valid(e["access_token"].as_str().unwrap()));

    // The control: the same two refreshes without the lock and re-read (two raw refresh
    // requests presenting the stored refresh token at once) lose one: the rotating server
    // answers invalid_grant to the second, which would have been left with a dead token.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (ok, dead) = rt.block_on(async {
        let tc = codex_oauth::TokenClient::new(&format!("{}/token", mock.base_url())).unwrap();
        let rt_secret =
            || codex_oauth::SecretString::new(e["refresh_token"].as_str().unwrap().to_string());
        let client = e["client_id"].as_str().unwrap().to_string();
        let resource = mock.mcp_url();
        let (t1, t2) = (rt_secret(), rt_secret());
        let extra = [("resource", resource.as_str())];
        let (a, b) = tokio::join!(
            tc.refresh(&client, &t1, None, &extra),
            tc.refresh(&client, &t2, None, &extra)
        );
        let results = [a, b];
        (
            results.iter().filter(|r| r.is_ok()).count(),
            results
                .iter()
                .filter(|r| r.as_ref().is_err_and(|e| e.is_invalid_grant()))
                .count(),
        )
    });
    assert_eq!(
        (ok, dead),
        (1, 1),
        "without serialization one refresh loses"
    );
}

#[test]
fn auth_status_of_every_kind_of_server_and_list_never_hangs() {
    let mock = McpOAuthMock::start().unwrap();
    let open = McpOAuthMock::start().unwrap();
    open.set_oauth(false);
    let refusing = suite_test_support::ports::RefusingPort::new().unwrap();
    // a server that accepts connections and never answers
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let h = home();
    std::fs::write(
        h.path.join("config.toml"),
        format!(
            r#"
[mcp_servers.stdio]
command = "some-mcp"

[mcp_servers.bearer_set]
url = "{m}"
bearer_token_env_var = "MCP_TEST_TOKEN"

[mcp_servers.bearer_unset]
url = "{m}"
bearer_token_env_var = "MCP_TEST_TOKEN_UNSET"

[mcp_servers.oauth]
url = "{m}"

[mcp_servers.open]
url = "{o}"

[mcp_servers.dead]
url = "http://127.0.0.1:{dead}/mcp"

[mcp_servers.silent]
url = "http://127.0.0.1:{silent_port}/mcp"
"#,
            m = mock.mcp_url(),
            o = open.mcp_url(),
            dead = refusing.port(),
        ),
    )
    .unwrap();
    let t0 = Instant::now();
    let o = mcp(&h.path, &["list", "--json"])
        .env("MCP_TEST_TOKEN", "SECRET-BEARER-VALUE")
        .env_remove("MCP_TEST_TOKEN_UNSET")
        .output()
        .unwrap();
    let took = t0.elapsed();
    assert!(o.status.success(), "{:?}", out(&o));
    assert!(took < Duration::from_secs(10), "list took {took:?}");
    eprintln!(
        "list with a silent and a dead server: {} ms",
        took.as_millis()
    );
    assert!(!out(&o).0.contains("SECRET-BEARER-VALUE"));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let status = |name: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()["auth_status"]
            .clone()
    };
    assert_eq!(status("stdio")["status"], "unsupported");
    assert_eq!(status("bearer_set")["status"], "bearer_token");
    assert_eq!(status("bearer_set")["env_var_set"], true);
    assert_eq!(status("bearer_unset")["env_var_set"], false);
    assert_eq!(status("oauth")["status"], "not_logged_in");
    assert_eq!(status("open")["status"], "none");
    assert_eq!(
        status("dead")["status"],
        "unreachable",
        "{}",
        status("dead")
    );
    assert_eq!(
        status("silent")["status"],
        "unreachable",
        "{}",
        status("silent")
    );
    drop(silent);
    // the table says the same in words
    let o = mcp(&h.path, &["list"])
        .env("MCP_TEST_TOKEN", "x")
        .output()
        .unwrap();
    let table = out(&o).0;
    for needle in [
        "unsupported",
        "bearer token (MCP_TEST_TOKEN set)",
        "not logged in",
        "unreachable",
    ] {
        assert!(table.contains(needle), "{needle}: {table}");
    }
}

#[test]
fn login_refuses_stdio_bearer_and_open_servers() {
    let open = McpOAuthMock::start().unwrap();
    open.set_oauth(false);
    let h = home();
    std::fs::write(
        h.path.join("config.toml"),
        format!(
            "[mcp_servers.s]\ncommand = \"x\"\n[mcp_servers.b]\nurl = \"{u}\"\nbearer_token_env_var = \"T\"\n[mcp_servers.o]\nurl = \"{u}\"\n",
            u = open.mcp_url()
        ),
    )
    .unwrap();
    for (name, code, needle) in [
        ("s", 2, "is a stdio server"),
        ("b", 2, "bearer_token_env_var"),
        ("o", 1, "does not use OAuth"),
        ("nope", 1, "no mcp server named"),
    ] {
        let o = mcp(&h.path, &["login", name, "--no-browser"])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(code), "{name}: {:?}", out(&o));
        assert!(out(&o).1.contains(needle), "{name}: {:?}", out(&o));
    }
}

#[test]
fn a_corrupt_credentials_file_is_reported_and_kept() {
    let mock = McpOAuthMock::start().unwrap();
    let h = home();
    add(&h.path, "docs", &mock.mcp_url());
    let path = h.path.join(".credentials.json");
    std::fs::write(&path, "{\"mcp_servers\": {\"other|1\": ").unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let v = get_json(&h.path, "docs");
    assert_eq!(v["auth_status"]["status"], "error", "{v}");
    assert!(
        v["auth_status"]["reason"]
            .as_str()
            .unwrap()
            .contains(".credentials.json"),
        "{v}"
    );
    // a login completes at the server but refuses to overwrite the file
    let (child, url) = start_login(&h.path, "docs", &[]);
    let r = browse(&url).unwrap();
    assert_eq!(r.callback.unwrap().status, 500);
    let o = finish(child);
    assert_eq!(o.status.code(), Some(1), "{:?}", out(&o));
    assert!(out(&o).1.contains("not overwritten"), "{:?}", out(&o));
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "{\"mcp_servers\": {\"other|1\": "
    );
}

#[test]
fn a_registration_answer_without_client_id_fails_the_login() {
    let mock = McpOAuthMock::start().unwrap();
    mock.set_register_override(Some(serde_json::json!({"client_secret": "REGSECRET"})));
    let h = home();
    add(&h.path, "docs", &mock.mcp_url());
    let o = mcp(&h.path, &["login", "docs", "--no-browser"])
        .output()
        .unwrap();
    let (_, err) = out(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("the registration answer has no client_id"),
        "{err}"
    );
    assert!(!err.contains("REGSECRET"), "{err}");
    assert!(!h.path.join(".credentials.json").exists());
}

#[test]
fn bad_token_answers_fail_the_login_and_store_nothing() {
    let mock = McpOAuthMock::start().unwrap();
    let h = home();
    add(&h.path, "docs", &mock.mcp_url());
    for (answer, needle) in [
        (
            serde_json::json!({"token_type": "Bearer", "expires_in": 60}),
            "access_token",
        ),
        (
            serde_json::json!({"access_token": "AT-SECRET", "token_type": "mac"}),
            "token_type \"mac\" is not Bearer",
        ),
        (
            serde_json::json!({"access_token": "AT-SECRET"}),
            "token_type is missing",
        ),
        (
            serde_json::json!({"access_token": "AT-SECRET", "token_type": "Bearer", "expires_in": 99_999_999_999u64}),
            "expires_in 99999999999 is out of range",
        ),
        (
            serde_json::json!({"access_token": "AT-SECRET", "token_type": "Bearer", "expires_in": 0}),
            "expires_in 0",
        ),
    ] {
        mock.set_token_override(Some(answer.clone()));
        let (child, url) = start_login(&h.path, "docs", &[]);
        let r = browse(&url).unwrap();
        assert_eq!(r.callback.unwrap().status, 502, "{answer}");
        let o = finish(child);
        let (_, err) = out(&o);
        assert_eq!(o.status.code(), Some(1), "{answer}: {err}");
        assert!(err.contains(needle), "{answer}: {err}");
        assert!(!err.contains("AT-SECRET"), "{err}");
        assert!(!h.path.join(".credentials.json").exists(), "{answer}");
    }
    // the control: a good answer logs in
    mock.set_token_override(None);
    login_ok(&h.path, "docs");
    assert!(h.path.join(".credentials.json").exists());
}

#[test]
fn cleartext_http_to_a_remote_host_is_never_sent_a_token() {
    // hand-written config bypassing `add`: refused at load with file, line and field
    let h = home();
    std::fs::write(
        h.path.join("config.toml"),
        "[mcp_servers.x]\nurl = \"http://mcp.example.com/mcp\"\noauth_client_id = \"c\"\n",
    )
    .unwrap();
    let o = mcp(&h.path, &["login", "x", "--no-browser"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{:?}", out(&o));
    assert!(
        out(&o)
            .1
            .contains(":3: mcp_servers.x.oauth_client_id: refused for a plain http://"),
        "{:?}",
        out(&o)
    );
}

/// `codex mcp ...` in a fresh session keyring with every permission removed: the kernel refuses
/// every keyring operation, as on a machine without a usable keyring.
fn dead_keyring_mcp(home: &Path, store: &str, args: &[&str]) -> Command {
    let ok = Command::new("keyctl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "`keyctl` (Debian package keyutils) is needed to make the keyring unavailable"
    );
    let mut c = Command::new("keyctl");
    c.args([
        "session",
        "-",
        "sh",
        "-c",
        "keyctl setperm @s 0 && exec \"$0\" \"$@\"",
        env!("CARGO_BIN_EXE_codex"),
        "-c",
    ])
    .arg(format!("mcp_oauth_credentials_store={store}"))
    .arg("mcp")
    .args(args)
    .env("CODEX_HOME", home)
    .env(
        "CODEX_MANAGED_CONFIG_PATH",
        suite_test_support::dirs::no_managed_config(home),
    );
    c
}

// The child is returned inside `Login` and waited for by `finish`.
#[allow(clippy::zombie_processes)]
fn start_login_with(mut c: Command) -> (Login, String) {
    c.stderr(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            let _ = child.kill();
            let _ = child.wait();
            panic!("login printed no URL: {seen}");
        }
        seen.push_str(&line);
        let t = line.trim().to_string();
        if t.starts_with("http://") || t.starts_with("https://") {
            let stderr = std::thread::spawn(move || {
                let mut rest = seen;
                let _ = std::io::Read::read_to_string(&mut reader, &mut rest);
                rest
            });
            return (Login { child, stderr }, t);
        }
    }
}

#[test]
fn keyring_unavailable_auto_falls_back_with_a_visible_warning_keyring_refuses() {
    let mock = McpOAuthMock::start().unwrap();
    let h = home();
    add(&h.path, "docs", &mock.mcp_url());
    // keyring: the login completes at the server, storing fails, nothing is written anywhere
    let (child, url) = start_login_with(dead_keyring_mcp(
        &h.path,
        "keyring",
        &["login", "docs", "--no-browser", "--timeout", "60"],
    ));
    let r = browse(&url).unwrap();
    assert_eq!(r.callback.unwrap().status, 500);
    let o = finish(child);
    let (_, err) = out(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("OS keyring write failed") && err.contains("AccessDenied"),
        "{err}"
    );
    assert!(!h.path.join(".credentials.json").exists());
    // auto: the file, and the user is told
    let (child, url) = start_login_with(dead_keyring_mcp(
        &h.path,
        "auto",
        &["login", "docs", "--no-browser", "--timeout", "60"],
    ));
    assert_eq!(browse(&url).unwrap().callback.unwrap().status, 200);
    let o = finish(child);
    let (_, err) = out(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("codex: warning: the OS keyring is unavailable")
            && err.contains("were stored in the plaintext file"),
        "{err}"
    );
    assert!(h.path.join(".credentials.json").exists());
    // reading in auto mode with a dead keyring says where it read from
    let o = dead_keyring_mcp(&h.path, "auto", &["get", "docs"])
        .output()
        .unwrap();
    let (so, se) = out(&o);
    assert!(
        o.status.success() && so.contains("oauth (logged in"),
        "{so} {se}"
    );
    assert!(
        se.contains("codex: warning: the OS keyring is unavailable")
            && se.contains("reading MCP credentials from the plaintext file"),
        "{se}"
    );
    // file: never touches the keyring, so a dead one changes nothing (and says nothing)
    let o = dead_keyring_mcp(&h.path, "file", &["get", "docs"])
        .output()
        .unwrap();
    let (so, se) = out(&o);
    assert!(
        so.contains("oauth (logged in") && !se.contains("codex: warning"),
        "{so} {se}"
    );
}

#[test]
fn the_default_store_is_the_real_keyring_with_no_plaintext() {
    let mock = McpOAuthMock::start().unwrap();
    let h = home();
    add(&h.path, "docs", &mock.mcp_url());
    // no -c: mcp_oauth_credentials_store defaults to auto = the kernel keyring here
    let mut c = codex(&h.path);
    c.args(["mcp", "login", "docs", "--no-browser", "--timeout", "60"]);
    let (child, url) = start_login_with(c);
    assert_eq!(browse(&url).unwrap().callback.unwrap().status, 200);
    let o = finish(child);
    assert!(o.status.success(), "{:?}", out(&o));
    assert!(out(&o).1.contains("OS keyring"), "{:?}", out(&o));
    assert!(
        !h.path.join(".credentials.json").exists(),
        "no plaintext with a working keyring"
    );
    let o = codex(&h.path)
        .args(["mcp", "get", "docs"])
        .output()
        .unwrap();
    assert!(out(&o).0.contains("oauth (logged in"), "{:?}", out(&o));
    let o = codex(&h.path)
        .args(["mcp", "logout", "docs"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{:?}", out(&o));
    let o = codex(&h.path)
        .args(["mcp", "get", "docs"])
        .output()
        .unwrap();
    assert!(out(&o).0.contains("not logged in"), "{:?}", out(&o));
}

#[test]
fn the_whole_flow_over_tls_with_the_test_ca() {
    let ca = suite_test_support::tls::TestCa::new().unwrap();
    let mock = McpOAuthMock::start_tls(&ca).unwrap();
    assert!(mock.mcp_url().starts_with("https://localhost:"));
    let h = home();
    let with_ca = |mut c: Command| {
        c.env("SSL_CERT_FILE", ca.ca_pem_path())
            .env_remove("SSL_CERT_DIR");
        c
    };
    let o = with_ca(mcp(&h.path, &["add", "tls", "--url", &mock.mcp_url()]))
        .output()
        .unwrap();
    assert!(o.status.success(), "{:?}", out(&o));
    let o = with_ca(mcp(&h.path, &["get", "tls", "--json"]))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["auth_status"]["status"],
        "not_logged_in",
        "{v} {:?}",
        out(&o)
    );
    // the control: without the test CA the server's certificate is not trusted
    let o = mcp(&h.path, &["get", "tls", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_ne!(v["auth_status"]["status"], "not_logged_in", "{v}");

    mock.set_access_ttl(1);
    let (child, url) = start_login_with(with_ca(mcp(
        &h.path,
        &["login", "tls", "--no-browser", "--timeout", "60"],
    )));
    assert!(url.starts_with("https://localhost:"), "{url}");
    let r = suite_test_support::mcp_mock::browse_tls(&url, &ca).unwrap();
    assert_eq!(r.callback.unwrap().status, 200);
    let o = finish(child);
    assert!(o.status.success(), "{:?}", out(&o));
    mock.set_access_ttl(3600);
    // refresh over TLS
    let o = with_ca(mcp(&h.path, &["get", "tls", "--json"]))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["auth_status"]["status"], "oauth", "{v}");
    assert_eq!(mock.refresh_grants(), 1);
    let o = with_ca(mcp(&h.path, &["logout", "tls"])).output().unwrap();
    assert!(out(&o).1.contains("2 token(s) revoked"), "{:?}", out(&o));
}

#[test]
fn ctrl_c_cancels_the_login_with_130_and_a_timeout_ends_it_with_1() {
    let mock = McpOAuthMock::start().unwrap();
    let h = home();
    add(&h.path, "docs", &mock.mcp_url());
    let (login, url) = start_login(&h.path, "docs", &[]);
    let redirect = query_param(&url, "redirect_uri").unwrap();
    let st = Command::new("kill")
        .args(["-INT", &login.child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let o = finish(login);
    assert_eq!(o.status.code(), Some(130), "{:?}", out(&o));
    assert!(out(&o).1.contains("login cancelled"), "{:?}", out(&o));
    // the callback port is closed with the process
    assert!(
        http_get(&redirect, None).is_err(),
        "the callback server is gone"
    );
    assert!(!h.path.join(".credentials.json").exists());

    let mut c = mcp(
        &h.path,
        &["login", "docs", "--no-browser", "--timeout", "1"],
    );
    let t0 = Instant::now();
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{:?}", out(&o));
    assert!(
        out(&o).1.contains("login timed out after 1s"),
        "{:?}",
        out(&o)
    );
    assert!(t0.elapsed() < Duration::from_secs(20));
}
