//! The app-server's JSON-RPC line parser ([`codex_cli::app_server::parse_line`]), the code every
//! line from the editor goes through before dispatch.
//!
//! Input: one line of text.
//!
//! Properties: no panic; text that is not JSON gets -32700 with a null id; every other refusal is
//! a JSON-RPC 2.0 error object with code -32600 or -32602, a string message, and the request's id
//! (or null); an accepted request has a string method, an id that is a string, number or null (or
//! none: a notification), and params that are an object or null.

use serde_json::Value;

/// The fuzz target.
pub fn app_server_line(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let is_json = serde_json::from_str::<Value>(text).is_ok();
    match codex_cli::app_server::parse_line(text) {
        Ok((id, method, params)) => {
            assert!(is_json, "accepted non-JSON");
            assert!(!method.is_empty() || text.contains("\"method\""));
            if let Some(id) = id {
                assert!(
                    id.is_string() || id.is_number() || id.is_null(),
                    "accepted id {id}"
                );
            }
            assert!(
                params.is_object() || params.is_null(),
                "accepted params {params}"
            );
        }
        Err(resp) => {
            assert_eq!(resp["jsonrpc"], "2.0", "{resp}");
            let code = resp["error"]["code"].as_i64().unwrap_or(0);
            assert!(resp["error"]["message"].is_string(), "{resp}");
            assert!(resp.get("id").is_some(), "error without id: {resp}");
            if is_json {
                assert!(
                    code == -32600 || code == -32602,
                    "code {code} for JSON input: {resp}"
                );
            } else {
                assert_eq!(code, -32700, "{resp}");
                assert!(resp["id"].is_null(), "{resp}");
            }
        }
    }
}
