//! Request checks on the parsed JSON body, against the user's [`Rule`], and the refusal they
//! produce.
//!
//! | rule key | check | answer |
//! |---|---|---|
//! | (body) | a JSON object, `model` a string of 1 to 128 `A-Z a-z 0-9 . _ : / @ + -` ([`is_model_name`]); `store`, `background` booleans or null; `max_output_tokens` a non-negative integer or null; `tools` an array of objects with a string `type`; none of these keys twice | 400 `policy_bad_request` |
//! | (`/v1/responses/compact`) | nothing is added or changed; `store: true` refused unless `allow_store`; no output ceiling (outside review r96 F1) | 403 `store_refused` |
//! | `deny_models` | the model matches no deny glob (checked first), nor does the model a dated snapshot `NAME-YYYY-MM-DD` stands for ([`glob::denies`]; outside review r96 F3) | 403 `model_denied` |
//! | `models` | the model matches an allow glob (when the key is set) | 403 `model_not_allowed` |
//! | `allow_background` | `background: true` only when allowed | 403 `background_refused` |
//! | `server_tools` | every tool `type` is a client-side one ([`CLIENT_TOOLS`]) or listed; a `namespace` tool (a group) is judged by its members | 403 `tool_not_allowed` |
//! | `server_tools` (items) | the same for `tools` an input item carries (`additional_tools`; outside review r57 F2) | 403 `tool_not_allowed` |
//! | `day.cost` / `month.cost` | `service_tier` absent, `auto`, `default` or `flex` ([`PRICED_TIERS`]; r57 F4) | 403 `service_tier_refused` |
//! | `allow_store` | unless allowed, `store` is forced to `false` (set when missing or different) | rewritten |
//! | `max_output_tokens` | **clamped**: a larger or missing value is set to the ceiling | rewritten |
//!
//! Clamping (rather than refusing) the output ceiling keeps clients that never send
//! `max_output_tokens` (the Codex CLI) working; the response then ends `incomplete` with reason
//! `max_output_tokens` when the ceiling is reached, which every client handles. The rewrite
//! edits only those values in the client's bytes (the rest of the body is forwarded as sent),
//! and only when a change is needed.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::glob;
use crate::policy::{CLIENT_TOOLS, Rule};
use crate::sizing::Input;

/// A request the policy refuses: status, the code, the rule (`<section>.<key>`), the limit and
/// when it resets.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    /// 400, 403, 429 or 503.
    pub status: u16,
    /// Machine-readable code (`model_not_allowed`, `budget_exhausted`...).
    pub code: &'static str,
    /// The rule that refused: `user.alice.day.output_tokens`, `default.models`...
    pub rule: String,
    /// A sentence for people.
    pub message: String,
    /// The limit that was reached, when there is one.
    pub limit: Option<serde_json::Value>,
    /// When the limit resets (ms since the epoch), for budgets and the rate limit.
    pub resets_at_ms: Option<u64>,
    /// Seconds until then (the `Retry-After` header), at least 1.
    pub retry_after_s: Option<u64>,
}

impl Refusal {
    pub(crate) fn new(status: u16, code: &'static str, rule: String, message: String) -> Self {
        Self {
            status,
            code,
            rule,
            message,
            limit: None,
            resets_at_ms: None,
            retry_after_s: None,
        }
    }

    /// The JSON error body:
    /// `{"error":{"message","type":"proxy_policy_error","code","status","rule","limit","resets_at","retry_after_seconds"}}`.
    pub fn body(&self) -> Vec<u8> {
        let mut e = serde_json::Map::new();
        e.insert("message".into(), self.message.clone().into());
        e.insert("type".into(), "proxy_policy_error".into());
        e.insert("code".into(), self.code.into());
        e.insert("status".into(), self.status.into());
        e.insert("rule".into(), self.rule.clone().into());
        if let Some(l) = &self.limit {
            e.insert("limit".into(), l.clone());
        }
        if let Some(r) = self.resets_at_ms {
            e.insert("resets_at".into(), crate::clock::format_ms(r).into());
        }
        if let Some(s) = self.retry_after_s {
            e.insert("retry_after_seconds".into(), s.into());
        }
        let mut out = serde_json::to_vec(&serde_json::json!({ "error": e })).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

/// A request that passed: its model, and the body to forward when it had to change.
#[derive(Clone, Debug, PartialEq)]
pub struct Checked {
    pub model: String,
    /// `Some`: forward these bytes instead of the client's.
    pub rewritten: Option<Vec<u8>>,
    /// `max_output_tokens` was set to the ceiling.
    pub clamped: bool,
    /// The `max_output_tokens` the upstream receives (the ceiling when clamped), when known.
    pub max_output_tokens: Option<u64>,
    /// Why the upstream may count more input than the body's bytes / 4 (a file or image by
    /// reference, a stored response, a server-side tool: [`crate::sizing`]); `None` when
    /// everything it reads is in the body.
    pub unsizable: Option<&'static str>,
}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow, default)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "raw")]
    store: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    background: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    max_output_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    tools: Option<Vec<Tool<'a>>>,
    /// A nested `response` object (the Realtime API's shape of `response.create`): refused, its
    /// members would escape every check here (outside review r18 F6).
    #[serde(borrow, default, deserialize_with = "raw")]
    response: Option<&'a RawValue>,
    /// Walked for what the upstream reads beyond the body ([`crate::sizing`]).
    #[serde(borrow, default)]
    input: Option<Input<'a>>,
    #[serde(borrow, default, deserialize_with = "raw")]
    previous_response_id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    conversation: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    prompt: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "raw")]
    service_tier: Option<&'a RawValue>,
    /// Server-hosted subagents (outside review r59 F2): judged as the server tool
    /// `multi_agent`.
    #[serde(borrow, default, deserialize_with = "raw")]
    multi_agent: Option<&'a RawValue>,
    /// A forced tool: a server tool named here is judged as one in `tools`.
    #[serde(borrow, default, deserialize_with = "raw")]
    tool_choice: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Tool<'a> {
    #[serde(borrow, rename = "type")]
    kind: Cow<'a, str>,
    /// A `namespace` tool's members (the Codex CLI 0.171 groups function tools this way); only
    /// read for a namespace (another tool's `tools` key is its own business).
    #[serde(borrow, default)]
    tools: Option<&'a RawValue>,
    /// A `shell` tool's environment: the client's (`local`, or none) or a hosted container.
    #[serde(borrow, default)]
    environment: Option<&'a RawValue>,
}

impl Tool<'_> {
    /// The type the policy judges: a `shell` with an environment other than `local` is
    /// `hosted_shell` (outside review r59 F1).
    fn judged_kind(&self) -> &str {
        let kind = self.kind.as_ref();
        if kind == "shell" && self.environment.is_some_and(|e| !is_local_environment(e)) {
            return "hosted_shell";
        }
        kind
    }
}

/// `null` or `{"type":"local",…}`.
fn is_local_environment(raw: &RawValue) -> bool {
    #[derive(Deserialize)]
    struct Env<'a> {
        #[serde(borrow, rename = "type")]
        kind: Cow<'a, str>,
    }
    raw.get() == "null"
        || serde_json::from_str::<Env<'_>>(raw.get()).is_ok_and(|e| e.kind == "local")
}

/// Most nesting of `namespace` tools followed.
const MAX_NAMESPACE_DEPTH: usize = 4;

/// The first tool type in `tools` that is neither client-side nor allowed by `rule`; a
/// `namespace` is a group, judged by its members (`Err`: a group whose members are not a list of
/// typed tools, or nested too deep). Sets `server` when an allowed server-side tool is there.
fn refused_tool(
    rule: &Rule,
    tools: &[Tool<'_>],
    depth: usize,
    server: &mut bool,
) -> Result<Option<String>, Refusal> {
    for t in tools {
        let kind = t.judged_kind();
        if kind == NAMESPACE_TOOL {
            if depth >= MAX_NAMESPACE_DEPTH {
                return Err(bad(format!(
                    "namespace tools nested deeper than {MAX_NAMESPACE_DEPTH}"
                )));
            }
            let members: Vec<Tool<'_>> = match t.tools {
                None => Vec::new(),
                Some(raw) => serde_json::from_str(raw.get()).map_err(|e| {
                    bad(format!("a namespace tool's tools must be typed tools: {e}"))
                })?,
            };
            if let Some(k) = refused_tool(rule, &members, depth + 1, server)? {
                return Ok(Some(k));
            }
        } else if !CLIENT_TOOLS.contains(&kind) {
            if !rule.server_tools.value.iter().any(|s| s == kind) {
                return Ok(Some(kind.to_string()));
            }
            *server = true;
        }
    }
    Ok(None)
}

/// `service_tier` values a cost limit admits: what the policy's prices describe (`flex` costs
/// less). `auto` follows the project's default tier, which the administrator sets upstream.
pub const PRICED_TIERS: &[&str] = &["auto", "default", "flex"];

/// The request option that runs server-hosted subagents, judged as a server-side tool.
pub const MULTI_AGENT: &str = "multi_agent";

/// `multi_agent` is on unless `null`, `false` or `{"enabled": false, …}`.
fn multi_agent_on(raw: &RawValue) -> bool {
    #[derive(Deserialize)]
    struct Opt {
        #[serde(default)]
        enabled: Option<bool>,
    }
    match raw.get() {
        "null" | "false" => false,
        text => serde_json::from_str::<Opt>(text).map_or(true, |o| o.enabled != Some(false)),
    }
}

/// A tool group (`{"type":"namespace","name":…,"tools":[…]}`): allowed when its members are.
pub const NAMESPACE_TOOL: &str = "namespace";

/// A stored prompt (`prompt`), judged as the server tool of this name: the provider's copy may
/// carry tools (server-side ones included) that the request never shows.
pub const STORED_PROMPT: &str = "stored_prompt";

/// The tools `tool_choice` forces, judged like `tools`: a string (`none`, `auto`, `required`)
/// or `null` forces none; `{"type":"allowed_tools","tools":[…]}` its list; any other object is
/// one tool of its `type` (`{"type":"web_search_preview"}` forces that server tool).
fn chosen_tools<'a>(raw: &'a RawValue) -> Result<Vec<Tool<'a>>, Refusal> {
    #[derive(Deserialize)]
    struct Choice<'a> {
        #[serde(borrow, rename = "type")]
        kind: Cow<'a, str>,
        #[serde(borrow, default)]
        tools: Option<&'a RawValue>,
    }
    let text = raw.get();
    if text == "null" || text.starts_with('"') {
        return Ok(Vec::new());
    }
    let choice: Choice<'a> = serde_json::from_str(text).map_err(|e| {
        bad(format!(
            "tool_choice must be a string or a typed object: {e}"
        ))
    })?;
    if choice.kind == "allowed_tools" {
        return match choice.tools {
            None => Ok(Vec::new()),
            Some(raw) => serde_json::from_str(raw.get())
                .map_err(|e| bad(format!("tool_choice's tools must be typed tools: {e}"))),
        };
    }
    serde_json::from_str::<Tool<'a>>(text)
        .map(|t| vec![t])
        .map_err(|e| {
            bad(format!(
                "tool_choice must be a string or a typed object: {e}"
            ))
        })
}

/// Present (even `null`) → `Some(raw)`, so a `null` can be found and replaced.
fn raw<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

fn bad(message: String) -> Refusal {
    Refusal::new(400, "policy_bad_request", "request".into(), message)
}

/// Where `raw` sits in `body` (it was parsed from it).
fn span(body: &[u8], raw: &RawValue) -> Option<(usize, usize)> {
    let start = (raw.get().as_ptr() as usize).checked_sub(body.as_ptr() as usize)?;
    let end = start.checked_add(raw.get().len())?;
    (end <= body.len()).then_some((start, end))
}

/// Longest model name admitted (real ones: `gpt-5-mini-2025-08-07`,
/// `ft:gpt-4o-mini-2024-07-18:org:name:AbC123`).
pub const MAX_MODEL_NAME: usize = 128;

/// A model name the ledger, the audit line and the administrator's report can carry as is:
/// 1 to [`MAX_MODEL_NAME`] bytes of `A-Z a-z 0-9 . _ : / @ + -` (r12 F2: a name with a newline or
/// an escape sequence forged rows of `responses-api-proxy usage` and wrote to root's terminal).
pub fn is_model_name(m: &str) -> bool {
    (1..=MAX_MODEL_NAME).contains(&m.len())
        && m.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:/@+".contains(&b))
}

/// The endpoint a body is for: the two the proxy forwards take different bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/responses` (and a WebSocket `response.create`).
    Responses,
    /// `POST /v1/responses/compact`: takes `model`, `input`, `instructions` and
    /// `previous_response_id` only, so nothing is added to it (outside review r96 F1: `store`
    /// and `max_output_tokens` were inserted, which the API does not take for a compaction):
    /// `store: true` is refused when the policy forbids storing, and no output ceiling
    /// applies (a compaction's output cannot be limited; its reported usage is charged).
    Compact,
}

/// Checks `body` against `rule` (see the module table), for `POST /v1/responses`.
pub fn check_request(rule: &Rule, body: &[u8]) -> Result<Checked, Refusal> {
    check_request_for(rule, body, Endpoint::Responses)
}

/// [`check_request`] for the body of `endpoint`.
pub fn check_request_for(rule: &Rule, body: &[u8], endpoint: Endpoint) -> Result<Checked, Refusal> {
    let open = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .filter(|&i| body[i] == b'{')
        .ok_or_else(|| bad("the request body must be a JSON object".into()))?;
    let mut head: Head<'_> = serde_json::from_slice(body)
        .map_err(|e| bad(format!("the request body is not acceptable JSON: {e}")))?;
    if head.response.is_some() {
        return Err(bad(
            "a nested \"response\" object is not accepted under the policy: put its members at the top level".into(),
        ));
    }
    let model = head
        .model
        .take()
        .ok_or_else(|| bad("the request names no model".into()))?;
    let model = model.into_owned();
    if !is_model_name(&model) {
        return Err(bad(format!(
            "the model name must be 1 to {MAX_MODEL_NAME} characters from A-Z a-z 0-9 and . _ : / @ + - (got {} bytes)",
            model.len()
        )));
    }

    if let Some(deny) = &rule.deny_models {
        if let Some(g) = deny.value.iter().find(|g| glob::denies(g, &model)) {
            return Err(Refusal {
                limit: Some(g.clone().into()),
                ..Refusal::new(
                    403,
                    "model_denied",
                    deny.rule("deny_models"),
                    format!("model {model:?} is denied by the policy ({g:?})"),
                )
            });
        }
    }
    if let Some(allow) = &rule.models {
        if !allow.value.iter().any(|g| glob::matches(g, &model)) {
            return Err(Refusal {
                limit: Some(allow.value.clone().into()),
                ..Refusal::new(
                    403,
                    "model_not_allowed",
                    allow.rule("models"),
                    format!("model {model:?} is not in the policy's allowed models"),
                )
            });
        }
    }
    let flag = |raw: Option<&RawValue>, key: &str| -> Result<Option<bool>, Refusal> {
        match raw {
            None => Ok(None),
            Some(r) => serde_json::from_str::<Option<bool>>(r.get())
                .map_err(|_| bad(format!("{key} must be a boolean"))),
        }
    };
    if flag(head.background, "background")? == Some(true) && !rule.allow_background.value {
        return Err(Refusal::new(
            403,
            "background_refused",
            rule.allow_background.rule("allow_background"),
            "background responses are not allowed by the policy".into(),
        ));
    }
    // Outside review r57 F4: a cost limit prices the standard tier; `priority` costs about
    // twice as much and was counted at the standard price.
    if rule.has_cost_limit() {
        let tier = match head.service_tier {
            None => None,
            Some(r) => serde_json::from_str::<Option<Cow<'_, str>>>(r.get())
                .map_err(|_| bad("service_tier must be a string".into()))?,
        };
        if let Some(t) = tier.filter(|t| !PRICED_TIERS.contains(&t.as_ref())) {
            let setting = rule.day.cost.as_ref().or(rule.month.cost.as_ref());
            return Err(Refusal {
                limit: Some(PRICED_TIERS.to_vec().into()),
                ..Refusal::new(
                    403,
                    "service_tier_refused",
                    setting.map_or_else(|| "cost".into(), |s| s.rule("cost")),
                    format!(
                        "service_tier {t:?} is not allowed under a cost limit, which prices the standard tier (allowed: auto, default, flex)"
                    ),
                )
            });
        }
    }
    let mut server_tool = false;
    let mut refused = refused_tool(
        rule,
        head.tools.as_deref().unwrap_or_default(),
        0,
        &mut server_tool,
    )?;
    // Tools an input item carries (outside review r57 F2: `additional_tools`) are judged as
    // the top-level ones.
    for raw in head.input.iter().flat_map(|i| &i.item_tools) {
        if refused.is_some() {
            break;
        }
        let tools: Vec<Tool<'_>> = serde_json::from_str(raw.get())
            .map_err(|e| bad(format!("an input item's tools must be typed tools: {e}")))?;
        refused = refused_tool(rule, &tools, 0, &mut server_tool)?;
    }
    if refused.is_none() {
        if let Some(raw) = head.tool_choice {
            refused = refused_tool(rule, &chosen_tools(raw)?, 0, &mut server_tool)?;
        }
    }
    // Request options that run server-side as a tool does: judged by the same allow-list.
    let options = [
        (MULTI_AGENT, head.multi_agent.is_some_and(multi_agent_on)),
        (
            STORED_PROMPT,
            head.prompt.is_some_and(|r| r.get() != "null"),
        ),
    ];
    for (name, on) in options {
        if refused.is_none() && on {
            if rule.server_tools.value.iter().any(|s| s == name) {
                server_tool = true;
            } else {
                refused = Some(name.to_string());
            }
        }
    }
    if let Some(kind) = refused {
        return Err(Refusal {
            limit: Some(rule.server_tools.value.clone().into()),
            ..Refusal::new(
                403,
                "tool_not_allowed",
                rule.server_tools.rule("server_tools"),
                format!("the server-side tool {kind:?} is not allowed by the policy"),
            )
        });
    }

    // Rewrites: (start, end, replacement); an empty range inserts a member after `{`.
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let after_brace = open + 1;
    let empty_object = body[after_brace..]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|&b| b == b'}');
    let member = |key: &str, value: &str| {
        if empty_object {
            format!("\"{key}\":{value}")
        } else {
            format!("\"{key}\":{value},")
        }
    };
    let store = flag(head.store, "store")?;
    if endpoint == Endpoint::Compact {
        if !rule.allow_store.value && store == Some(true) {
            return Err(Refusal::new(
                403,
                "store_refused",
                rule.allow_store.rule("allow_store"),
                "store: true is not allowed by the policy".into(),
            ));
        }
        return Ok(Checked {
            model,
            rewritten: None,
            clamped: false,
            max_output_tokens: None,
            unsizable: unsizable(&head, server_tool),
        });
    }
    if !rule.allow_store.value && store != Some(false) {
        match head.store.and_then(|r| span(body, r)) {
            Some((s, e)) => edits.push((s, e, "false".into())),
            None => edits.push((after_brace, after_brace, member("store", "false"))),
        }
    }
    let mut clamped = false;
    let asked = match head.max_output_tokens {
        None => None,
        Some(r) => serde_json::from_str::<Option<u64>>(r.get())
            .map_err(|_| bad("max_output_tokens must be a non-negative integer".into()))?,
    };
    let mut max_output_tokens = asked;
    if let Some(ceiling) = &rule.max_output_tokens {
        if asked.is_none_or(|n| n > ceiling.value) {
            clamped = true;
            max_output_tokens = Some(ceiling.value);
            let v = ceiling.value.to_string();
            match head.max_output_tokens.and_then(|r| span(body, r)) {
                Some((s, e)) => edits.push((s, e, v)),
                None => {
                    // Two insertions after `{`: only the last one may omit its comma.
                    let m = if edits.iter().any(|(s, e, _)| s == e) {
                        format!("\"max_output_tokens\":{v},")
                    } else {
                        member("max_output_tokens", &v)
                    };
                    edits.push((after_brace, after_brace, m));
                }
            }
        }
    }
    let rewritten = if edits.is_empty() {
        None
    } else {
        edits.sort_by_key(|(s, _, _)| *s);
        let mut out = Vec::with_capacity(body.len() + 64);
        let mut at = 0;
        for (s, e, text) in &edits {
            out.extend_from_slice(&body[at..*s]);
            out.extend_from_slice(text.as_bytes());
            at = *e;
        }
        out.extend_from_slice(&body[at..]);
        Some(out)
    };
    Ok(Checked {
        model,
        rewritten,
        clamped,
        max_output_tokens,
        unsizable: unsizable(&head, server_tool),
    })
}

/// Why the upstream may read more than the body carries (see [`crate::sizing`]).
fn unsizable(head: &Head<'_>, server_tool: bool) -> Option<&'static str> {
    let set = |r: Option<&RawValue>| r.is_some_and(|r| r.get() != "null");
    if set(head.previous_response_id) {
        Some("previous_response_id (a stored response)")
    } else if set(head.conversation) {
        Some("a conversation (stored items)")
    } else if set(head.prompt) {
        Some("a stored prompt")
    } else if server_tool {
        Some("a server-side tool (its results are input)")
    } else {
        head.input.as_ref().and_then(|i| i.unsizable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Outside review r57 F4: `service_tier: "priority"` (about twice the price) was counted at
    /// the policy's standard price. Refused under a cost limit; controls: the priced tiers, and
    /// any tier without a cost limit.
    #[test]
    fn a_dearer_service_tier_is_refused_under_a_cost_limit() {
        let cost = rule(
            "[prices.\"gpt-5\"]\ninput = 1.25\ncached_input = 0.125\noutput = 10.0\n[default]\nday = { cost = 1.0 }\n",
        );
        let tokens = rule("[default]\nday = { output_tokens = 100 }\n");
        let body = |t: &str| format!(r#"{{"model":"gpt-5","input":"x","service_tier":{t}}}"#);
        for t in [r#""priority""#, r#""scale""#, r#""\u0070riority""#] {
            let e = check_request(&cost, body(t).as_bytes()).unwrap_err();
            assert_eq!((e.status, e.code), (403, "service_tier_refused"), "{t}");
            assert_eq!(e.rule, "default.day.cost");
            assert!(check_request(&tokens, body(t).as_bytes()).is_ok(), "{t}");
        }
        for t in [r#""auto""#, r#""default""#, r#""flex""#, "null"] {
            assert!(check_request(&cost, body(t).as_bytes()).is_ok(), "{t}");
        }
        let e = check_request(&cost, body("1").as_bytes()).unwrap_err();
        assert_eq!((e.status, e.code), (400, "policy_bad_request"));
    }

    /// Outside review r59 F1/F2: a `shell` tool with a hosted environment (a container at the
    /// provider) and the `multi_agent` option (server-hosted subagents) were forwarded as
    /// client-side and sized. Judged as the server tools `hosted_shell` and `multi_agent`;
    /// controls: the local shell, and both when the policy allows them (then unsizable).
    #[test]
    fn hosted_shells_and_subagents_are_server_side() {
        let none = rule("[default]\nmodels = [\"gpt-5\"]\n");
        let both = rule("[default]\nserver_tools = [\"hosted_shell\", \"multi_agent\"]\n");
        let body = |extra: &str| format!(r#"{{"model":"gpt-5","input":"x",{extra}}}"#);
        for (extra, kind) in [
            (
                r#""tools":[{"type":"shell","environment":{"type":"container_auto"}}]"#,
                "hosted_shell",
            ),
            (
                r#""tools":[{"type":"shell","environment":{"type":"container_reference","container_id":"c"}}]"#,
                "hosted_shell",
            ),
            (
                r#""tools":[{"type":"shell","environment":"container_auto"}]"#,
                "hosted_shell",
            ),
            (
                r#""multi_agent":{"enabled":true,"max_concurrent_subagents":64}"#,
                "multi_agent",
            ),
            (r#""multi_agent":{}"#, "multi_agent"),
            (r#""multi_agent":true"#, "multi_agent"),
        ] {
            let e = check_request(&none, body(extra).as_bytes()).unwrap_err();
            assert_eq!((e.status, e.code), (403, "tool_not_allowed"), "{extra}");
            assert!(e.message.contains(kind), "{extra}: {}", e.message);
            let ok = check_request(&both, body(extra).as_bytes()).unwrap();
            assert!(ok.unsizable.is_some(), "{extra}");
        }
        for extra in [
            r#""tools":[{"type":"shell"}]"#,
            r#""tools":[{"type":"shell","environment":{"type":"local"}}]"#,
            r#""tools":[{"type":"shell","environment":null}]"#,
            r#""multi_agent":{"enabled":false}"#,
            r#""multi_agent":null"#,
            r#""multi_agent":false"#,
        ] {
            let ok = check_request(&none, body(extra).as_bytes())
                .unwrap_or_else(|e| panic!("{extra}: {}", e.message));
            assert!(ok.unsizable.is_none(), "{extra}");
        }
    }

    /// Outside review r59 (documented then): a stored `prompt` may carry server tools the
    /// request never shows, and `tool_choice` may force one. A prompt is judged as the server
    /// tool `stored_prompt`, a forced tool as one in `tools` (`allowed_tools` by its list);
    /// controls: `null` prompts, the string choices, forced client tools, and both when the
    /// policy allows them (then unsizable).
    #[test]
    fn stored_prompts_and_forced_tools_are_judged_as_server_tools() {
        let none = rule("[default]\nmodels = [\"gpt-5\"]\n");
        let all = rule(
            "[default]\nserver_tools = [\"stored_prompt\", \"web_search_preview\", \"mcp\"]\n",
        );
        let body = |extra: &str| format!(r#"{{"model":"gpt-5","input":"x",{extra}}}"#);
        for (extra, kind) in [
            (r#""prompt":{"id":"pmpt_1","version":"2"}"#, "stored_prompt"),
            (r#""prompt":"pmpt_1""#, "stored_prompt"),
            (
                r#""tool_choice":{"type":"web_search_preview"}"#,
                "web_search_preview",
            ),
            (r#""tool_choice":{"type":"mcp","server_label":"s"}"#, "mcp"),
            (
                r#""tool_choice":{"type":"allowed_tools","mode":"required","tools":[{"type":"function","name":"f"},{"type":"web_search_preview"}]}"#,
                "web_search_preview",
            ),
        ] {
            let e = check_request(&none, body(extra).as_bytes()).unwrap_err();
            assert_eq!((e.status, e.code), (403, "tool_not_allowed"), "{extra}");
            assert!(e.message.contains(kind), "{extra}: {}", e.message);
            let ok = check_request(&all, body(extra).as_bytes())
                .unwrap_or_else(|e| panic!("{extra}: {}", e.message));
            assert!(ok.unsizable.is_some(), "{extra}");
        }
        for extra in [
            r#""prompt":null"#,
            r#""tool_choice":"auto""#,
            r#""tool_choice":"required""#,
            r#""tool_choice":null"#,
            r#""tool_choice":{"type":"function","name":"f"}"#,
            r#""tool_choice":{"type":"allowed_tools","mode":"auto","tools":[{"type":"function","name":"f"}]}"#,
        ] {
            let ok = check_request(&none, body(extra).as_bytes())
                .unwrap_or_else(|e| panic!("{extra}: {}", e.message));
            assert!(ok.unsizable.is_none(), "{extra}");
        }
        for bad in [r#""tool_choice":7"#, r#""tool_choice":{"name":"f"}"#] {
            let e = check_request(&none, body(bad).as_bytes()).unwrap_err();
            assert_eq!((e.status, e.code), (400, "policy_bad_request"), "{bad}");
        }
    }

    /// Outside review r57 F2: server-side tools carried by an input item (`additional_tools`, a
    /// `tool_search_output`) were forwarded past the `server_tools` allow-list. Judged as the
    /// top-level ones now; controls: function tools there pass, and an allowed server tool
    /// passes (and makes the request unsizable).
    #[test]
    fn tools_inside_input_items_are_checked_like_the_top_level_ones() {
        let none = rule("[default]\nmodels = [\"gpt-5\"]\n");
        let web = rule("[default]\nserver_tools = [\"web_search\"]\n");
        let body = |item: &str| {
            format!(r#"{{"model":"gpt-5","input":[{{"role":"user","content":"x"}},{item}]}}"#)
        };
        for item in [
            r#"{"type":"additional_tools","role":"developer","tools":[{"type":"web_search"}]}"#,
            r#"{"type":"additional_tools","role":"developer","tools":[{"type":"mcp","server_label":"x","server_url":"https://attacker.example/mcp","require_approval":"never"}]}"#,
            r#"{"type":"tool_search_output","tools":[{"type":"code_interpreter","container":{"type":"auto"}}]}"#,
            r#"{"type":"additional_tools","tools":[{"type":"namespace","name":"n","tools":[{"type":"web_search"}]}]}"#,
        ] {
            let e = check_request(&none, body(item).as_bytes()).unwrap_err();
            assert_eq!((e.status, e.code), (403, "tool_not_allowed"), "{item}");
        }
        let e = check_request(
            &none,
            body(r#"{"type":"additional_tools","tools":"web_search"}"#).as_bytes(),
        )
        .unwrap_err();
        assert_eq!((e.status, e.code), (400, "policy_bad_request"));
        let ok = check_request(
            &none,
            body(r#"{"type":"additional_tools","role":"developer","tools":[{"type":"function","name":"f"}]}"#).as_bytes(),
        )
        .unwrap();
        assert!(ok.unsizable.is_some(), "an unknown item type is not sized");
        let ok = check_request(
            &web,
            body(r#"{"type":"additional_tools","tools":[{"type":"web_search"}]}"#).as_bytes(),
        )
        .unwrap();
        assert!(ok.unsizable.is_some());
    }

    /// Outside review r53 F2: what makes the upstream read more than the body carries is found
    /// (a file or image by reference, stored items, a stored prompt, a server-side tool), also
    /// behind `\u` escapes in keys and types; what is inline is sized (the controls).
    #[test]
    fn input_the_body_does_not_carry_is_found() {
        let rule = rule("[default]\nserver_tools = [\"web_search\", \"stored_prompt\"]\n");
        let sizes = |input: &str| {
            let body = format!(r#"{{"model":"gpt-5",{input}}}"#);
            check_request(&rule, body.as_bytes())
                .unwrap_or_else(|e| panic!("{input}: {}", e.message))
                .unsizable
        };
        for sized in [
            r#""input":"hi""#,
            r#""input":null"#,
            r#""previous_response_id":null,"input":[]"#,
            r#""input":[{"role":"user","content":"hi"}]"#,
            r#""input":[{"type":"message","role":"user","content":[{"type":"input_text","text":"a"},{"type":"output_text","text":"b"}]}]"#,
            r#""input":[{"type":"reasoning","summary":[{"type":"summary_text","text":"s"}],"encrypted_content":"gAAA"}]"#,
            r#""input":[{"type":"function_call","call_id":"c","name":"f","arguments":"{}"},{"type":"function_call_output","call_id":"c","output":"done"}]"#,
            r#""input":[{"type":"function_call_output","call_id":"c","output":[{"type":"input_text","text":"t"}]}]"#,
            r#""tools":[{"type":"function","name":"f"}],"input":"x""#,
            r#""input":[{"type":"compaction","encrypted_content":"gAAA"}]"#,
            r#""tools":[{"type":"shell","environment":{"type":"local"}}],"input":"x""#,
        ] {
            assert_eq!(sizes(sized), None, "{sized}");
        }
        for (unsizable, why) in [
            (
                r#""input":[{"role":"user","content":[{"type":"input_file","file_url":"https://x/a.pdf"}]}]"#,
                "a file",
            ),
            (
                r#""input":[{"role":"user","content":[{"type":"input_file","file_data":"data:application/pdf;base64,AA","filename":"a.pdf"}]}]"#,
                "a file",
            ),
            (
                r#""input":[{"role":"user","content":[{"type":"input_file","file_id":"file-1"}]}]"#,
                "a file",
            ),
            (
                r#""input":[{"role":"user","content":[{"type":"input_image","image_url":"https://x/a.png"}]}]"#,
                "an image",
            ),
            (
                r#""input":[{"role":"user","content":[{"type":"input_image","file_id":"file-1"}]}]"#,
                "an image",
            ),
            (
                r#""input":[{"role":"user","content":[{"type":"input_image","image_url":"data:image/png;base64,AA","file_id":"file-1"}]}]"#,
                "an image",
            ),
            (
                r#""input":[{"role":"user","content":[{"type":"input_image","image_url":"http://x/data:"}]}]"#,
                "an image",
            ),
            // Escaped keys and types are read decoded, as the upstream reads them.
            (
                r#""input":[{"role":"user","content":[{"type":"input_\u0066ile","file_url":"https://x"}]}]"#,
                "a file",
            ),
            (
                r#""input":[{"role":"user","content":[{"t\u0079pe":"input_image","image_url":"https://x"}]}]"#,
                "an image",
            ),
            (
                r#""input":[{"role":"user","content":[{"type":"input_image","image_\u0075rl":"https://x"}]}]"#,
                "an image",
            ),
            (
                r#""input":[{"type":"function_call_output","call_id":"c","output":[{"type":"input_file","file_id":"f"}]}]"#,
                "a file",
            ),
            (
                r#""input":[{"type":"computer_call_output","call_id":"c","output":{"type":"computer_screenshot","file_id":"f"}}]"#,
                "an image",
            ),
            (
                r#""input":[{"type":"item_reference","id":"msg_1"}]"#,
                "item_reference",
            ),
            // Outside review r59 F4: an image costs by its pixels, inline or not.
            (
                r#""input":[{"role":"user","content":[{"type":"input_image","image_url":"data:image/png;base64,AAAA"}]}]"#,
                "an image",
            ),
            (
                r#""input":[{"type":"computer_call_output","call_id":"c","output":{"type":"computer_screenshot","image_url":"data:image/png;base64,AA"}}]"#,
                "an image",
            ),
            // r59 F6: encrypted content missing or empty is a stored item.
            (
                r#""input":[{"type":"compaction","id":"cmp_1"}]"#,
                "compaction",
            ),
            (
                r#""input":[{"type":"compaction","id":"cmp_1","encrypted_content":""}]"#,
                "compaction",
            ),
            (
                r#""input":[{"type":"reasoning","id":"rs_1","summary":[],"encrypted_content":""}]"#,
                "reasoning",
            ),
            // Outside review r57 F1: `type` is optional in an item reference.
            (
                r#""input":[{"role":"user","content":"a"},{"id":"msg_1"}]"#,
                "item reference",
            ),
            (r#""input":[{"id":"msg_1","type":null}]"#, "item reference"),
            (
                r#""input":[{"role":"user","id":"msg_1","content":"a"}]"#,
                "item reference",
            ),
            (
                r#""input":[{"type":"reasoning","id":"rs_1","summary":[]}]"#,
                "reasoning",
            ),
            (
                r#""input":[{"type":"reasoning","id":"rs_1","summary":[],"encrypted_content":null}]"#,
                "reasoning",
            ),
            (r#""input":[{"type":"brand_new_item"}]"#, "cannot size"),
            (
                r#""input":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]"#,
                "cannot size",
            ),
            (
                r#""input":"x","previous_response_id":"resp_1""#,
                "previous_response_id",
            ),
            (r#""input":"x","conversation":"conv_1""#, "conversation"),
            (r#""input":"x","prompt":{"id":"pmpt_1"}"#, "stored prompt"),
            (
                r#""input":"x","tools":[{"type":"web_search"}]"#,
                "server-side tool",
            ),
            (
                r#""input":"x","tools":[{"type":"namespace","name":"n","tools":[{"type":"web_search"}]}]"#,
                "server-side tool",
            ),
        ] {
            let got = sizes(unsizable).unwrap_or_else(|| panic!("sized: {unsizable}"));
            assert!(got.contains(why), "{unsizable}: {got}");
        }
        // A key twice inside an item or a part is ambiguous: refused, as at the top level.
        for twice in [
            r#"{"model":"gpt-5","input":[{"role":"user","content":"a","content":[{"type":"input_file","file_id":"f"}]}]}"#,
            r#"{"model":"gpt-5","input":[{"role":"user","content":[{"type":"input_text","type":"input_file","file_id":"f"}]}]}"#,
        ] {
            let e = check_request(&rule, twice.as_bytes()).unwrap_err();
            assert_eq!((e.status, e.code), (400, "policy_bad_request"), "{twice}");
        }
    }

    /// A nested `response` object would carry a model, `store` or tools past every check: refused,
    /// even `null`; the same members at the top level are checked (control).
    #[test]
    fn a_nested_response_object_is_refused() {
        let rule = rule("[default]\nmodels = [\"gpt-5\"]\n");
        for body in [
            r#"{"type":"response.create","model":"gpt-5","input":"x","response":{"model":"o3-pro","store":true}}"#,
            r#"{"model":"gpt-5","response":null}"#,
        ] {
            let e = check_request(&rule, body.as_bytes()).unwrap_err();
            assert_eq!((e.status, e.code), (400, "policy_bad_request"), "{body}");
            assert!(e.message.contains("nested"), "{}", e.message);
        }
        assert!(
            check_request(
                &rule,
                br#"{"type":"response.create","model":"gpt-5","input":"x"}"#
            )
            .is_ok()
        );
        let e = check_request(&rule, br#"{"model":"o3-pro","input":"x"}"#).unwrap_err();
        assert_eq!(e.code, "model_not_allowed");
    }
    use crate::policy::tests::parse;
    use proptest::strategy::Strategy;

    fn rule(text: &str) -> Rule {
        parse(text).unwrap().rule_for(1001)
    }

    fn json(b: &[u8]) -> serde_json::Value {
        serde_json::from_slice(b).unwrap()
    }

    /// r12 F2: the model name is what the ledger and the report carry; `gpt-4o*` used to admit
    /// anything after the prefix (a newline, an escape sequence, 5 MB of padding).
    #[test]
    fn model_names_outside_the_charset_are_refused() {
        let r = rule("[default]\nmodels = [\"gpt-4o*\"]\n");
        for bad in [
            "gpt-4o\\nr12a gpt-4o 1 123456",
            "gpt-4o\\u001b[2J",
            "gpt-4o ",
            "gpt-4o\\u202e",
            "gpt-4oé",
            "",
        ] {
            let body = format!(r#"{{"model":"{bad}"}}"#);
            let e = check_request(&r, body.as_bytes()).unwrap_err();
            assert_eq!((e.status, e.code), (400, "policy_bad_request"), "{bad}");
            assert!(e.message.contains("model name"), "{}", e.message);
        }
        let long = format!(r#"{{"model":"gpt-4o{}"}}"#, "A".repeat(MAX_MODEL_NAME));
        assert_eq!(check_request(&r, long.as_bytes()).unwrap_err().status, 400);
        // Controls: real names pass.
        for good in [
            "gpt-4o",
            "gpt-4o-2024-08-06",
            "gpt-4o-mini:ft:org:name:AbC123",
        ] {
            let body = format!(r#"{{"model":"{good}"}}"#);
            assert_eq!(check_request(&r, body.as_bytes()).unwrap().model, good);
        }
        assert!(is_model_name("ft:gpt-4o-mini-2024-07-18:org:name:AbC123"));
        assert!(is_model_name(
            "accounts/fireworks/models/llama-v3p1-8b@latest+x"
        ));
    }

    /// Outside review r96 F1: a compaction body got `store` and `max_output_tokens`, which the
    /// compaction endpoint does not take. Now nothing is added to it; `store: true` is refused
    /// under a policy that forbids storing; the model rules hold as for any request.
    #[test]
    fn a_compaction_body_is_checked_but_never_rewritten() {
        let r = rule(
            "[default]\nmodels = [\"gpt-5*\"]\ndeny_models = [\"gpt-5-pro\"]\nmax_output_tokens = 100\n",
        );
        let body = br#"{"model":"gpt-5","input":[{"role":"user","content":"hi"}]}"#;
        let c = check_request_for(&r, body, Endpoint::Compact).unwrap();
        assert_eq!(
            (c.rewritten, c.clamped, c.max_output_tokens),
            (None, false, None)
        );
        // the control: the same body to /v1/responses gets both members
        let c = check_request(&r, body).unwrap();
        let v = json(c.rewritten.as_ref().unwrap());
        assert_eq!(
            (v["store"].clone(), v["max_output_tokens"].clone()),
            (false.into(), 100.into())
        );
        let e = check_request_for(&r, br#"{"model":"gpt-5","store":true}"#, Endpoint::Compact)
            .unwrap_err();
        assert_eq!((e.status, e.code), (403, "store_refused"));
        assert!(
            check_request_for(&r, br#"{"model":"gpt-5","store":false}"#, Endpoint::Compact).is_ok()
        );
        let e = check_request_for(&r, br#"{"model":"gpt-5-pro"}"#, Endpoint::Compact).unwrap_err();
        assert_eq!(e.code, "model_denied");
    }

    #[test]
    fn models_tools_background_refused_with_their_rule() {
        let r = rule(
            "[default]\nmodels = [\"gpt-5*\"]\ndeny_models = [\"gpt-5-pro\"]\n[user.alice]\nserver_tools = [\"web_search\"]\n",
        );
        let e = check_request(&r, br#"{"model":"o3","input":"hi","store":false}"#).unwrap_err();
        assert_eq!(
            (e.status, e.code, e.rule.as_str()),
            (403, "model_not_allowed", "default.models")
        );
        let e = check_request(&r, br#"{"model":"gpt-5-pro"}"#).unwrap_err();
        assert_eq!(
            (e.code, e.rule.as_str()),
            ("model_denied", "default.deny_models")
        );
        // outside review r96 F3: a dated snapshot of a denied model is denied too
        let e = check_request(&r, br#"{"model":"gpt-5-pro-2025-10-06"}"#).unwrap_err();
        assert_eq!(
            (e.code, e.rule.as_str()),
            ("model_denied", "default.deny_models")
        );
        let e = check_request(&r, br#"{"model":"gpt-5","background":true}"#).unwrap_err();
        assert_eq!(
            (e.code, e.rule.as_str()),
            ("background_refused", "built-in.allow_background")
        );
        let e = check_request(
            &r,
            br#"{"model":"gpt-5","tools":[{"type":"function","name":"f"},{"type":"code_interpreter"}]}"#,
        )
        .unwrap_err();
        assert_eq!(
            (e.code, e.rule.as_str()),
            ("tool_not_allowed", "user.alice.server_tools")
        );
        let body = e.body();
        let v = json(&body);
        assert_eq!(v["error"]["rule"], "user.alice.server_tools");
        assert_eq!(v["error"]["limit"], serde_json::json!(["web_search"]));
        // Controls.
        let ok = check_request(
            &r,
            br#"{"model":"gpt-5-mini","store":false,"background":false,"tools":[{"type":"web_search"},{"type":"function"}]}"#,
        )
        .unwrap();
        assert_eq!(ok.model, "gpt-5-mini");
        assert_eq!(ok.rewritten, None);
    }

    /// The Codex CLI 0.171 groups function tools in a `namespace` tool (found by running it
    /// through the proxy with a policy: every request was refused as using a server-side tool
    /// "namespace"). A group is judged by its members, at any depth.
    #[test]
    fn namespace_tools_are_judged_by_their_members() {
        let r = rule("[default]\nmodels = [\"gpt-5*\"]\n");
        let codex = br#"{"model":"gpt-5","tools":[{"type":"function","name":"shell"},{"type":"namespace","name":"mcp__x","description":"d","tools":[{"type":"function","name":"a"},{"type":"function","name":"b"}]}]}"#;
        assert!(check_request(&r, codex).is_ok());
        let empty = br#"{"model":"gpt-5","tools":[{"type":"namespace","name":"n"}]}"#;
        assert!(check_request(&r, empty).is_ok());
        // A server-side tool inside a group (or a group inside a group) is still refused.
        for body in [
            &br#"{"model":"gpt-5","tools":[{"type":"namespace","name":"n","tools":[{"type":"function"},{"type":"code_interpreter"}]}]}"#[..],
            br#"{"model":"gpt-5","tools":[{"type":"namespace","name":"n","tools":[{"type":"namespace","name":"m","tools":[{"type":"web_search"}]}]}]}"#,
        ] {
            let e = check_request(&r, body).unwrap_err();
            assert_eq!((e.status, e.code), (403, "tool_not_allowed"));
            assert!(e.message.contains("\"code_interpreter\"") || e.message.contains("\"web_search\""), "{}", e.message);
        }
        // A group whose `tools` is not a list of typed tools is a bad request, not a pass.
        let bad =
            br#"{"model":"gpt-5","tools":[{"type":"namespace","tools":{"type":"web_search"}}]}"#;
        assert_eq!(
            check_request(&r, bad).unwrap_err().code,
            "policy_bad_request"
        );
    }

    #[test]
    fn store_is_forced_and_the_ceiling_clamps() {
        let r = rule("[default]\nmax_output_tokens = 100\n");
        for (body, want_store) in [
            (&br#"{"model":"gpt-5"}"#[..], false),
            (br#"{}"#, false),
            (
                br#" { "model" : "gpt-5", "store": true, "max_output_tokens": 5000 }"#,
                false,
            ),
            (
                br#"{"model":"gpt-5","store":null,"max_output_tokens":null}"#,
                false,
            ),
        ] {
            match check_request(&r, body) {
                Ok(c) => {
                    let v = json(c.rewritten.as_ref().unwrap());
                    assert_eq!(v["store"], want_store, "{}", String::from_utf8_lossy(body));
                    assert_eq!(v["max_output_tokens"], 100);
                    assert!(c.clamped);
                }
                Err(e) => assert_eq!(
                    e.code,
                    "policy_bad_request",
                    "{}",
                    String::from_utf8_lossy(body)
                ),
            }
        }
        // Below the ceiling and store false: forwarded unchanged.
        let c = check_request(
            &r,
            br#"{"model":"gpt-5","store":false,"max_output_tokens":50}"#,
        )
        .unwrap();
        assert_eq!(c.rewritten, None);
        assert!(!c.clamped);
        // Allowed store: left alone.
        let r = rule("[default]\nallow_store = true\n");
        assert_eq!(
            check_request(&r, br#"{"model":"gpt-5"}"#)
                .unwrap()
                .rewritten,
            None
        );
    }

    #[test]
    fn malformed_or_ambiguous_bodies_are_400() {
        let r = rule("[default]\nmax_output_tokens = 100\n");
        for body in [
            &b"not json"[..],
            b"[\"gpt-5\"]",
            br#"{"model":5}"#,
            br#"{"input":"x"}"#,
            br#"{"model":"gpt-5","model":"o3"}"#,
            br#"{"model":"gpt-5","store":"no"}"#,
            br#"{"model":"gpt-5","background":1}"#,
            br#"{"model":"gpt-5","max_output_tokens":-1}"#,
            br#"{"model":"gpt-5","max_output_tokens":1.5}"#,
            br#"{"model":"gpt-5","tools":{"type":"x"}}"#,
            br#"{"model":"gpt-5","tools":[{"name":"no type"}]}"#,
            br#"{"model":"gpt-5","#,
        ] {
            let e = check_request(&r, body).unwrap_err();
            assert_eq!(
                (e.status, e.code),
                (400, "policy_bad_request"),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, .. Default::default() })]

        /// The byte edits always give valid JSON with store false, the ceiling kept, and every
        /// other member unchanged, whatever the body's layout.
        #[test]
        fn rewrites_keep_the_body_valid(
            store in proptest::option::of(proptest::prop_oneof![
                proptest::strategy::Just("true"), proptest::strategy::Just("false"), proptest::strategy::Just("null")]),
            mot in proptest::option::of(proptest::prop_oneof![
                (0u64..100_000).prop_map(|n| n.to_string()), proptest::strategy::Just("null".to_string())]),
            extra in proptest::collection::vec(("[a-z]{1,8}", "[ -~]{0,12}"), 0..4),
            ws in "[ \t\n]{0,3}",
            order in 0usize..4,
        ) {
            use proptest::prelude::*;
            let r = rule("[default]\nmax_output_tokens = 500\n");
            let mut members = vec![format!("\"model\"{ws}:{ws}\"gpt-5\"")];
            if let Some(s) = store { members.push(format!("\"store\":{ws}{s}")); }
            if let Some(m) = &mot { members.push(format!("\"max_output_tokens\" : {m}")); }
            for (k, v) in &extra {
                members.push(format!("\"x_{k}\":{}", serde_json::Value::from(v.as_str())));
            }
            let n = members.len();
            members.rotate_left(order % n);
            let body = format!("{ws}{{{ws}{}{ws}}}{ws}", members.join(&format!(",{ws}")));
            let original: serde_json::Value = serde_json::from_str(&body).unwrap();
            match check_request(&r, body.as_bytes()) {
                Ok(c) => {
                    let out = c.rewritten.clone().unwrap_or_else(|| body.clone().into_bytes());
                    let v: serde_json::Value = serde_json::from_slice(&out)
                        .map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&out))))?;
                    prop_assert_eq!(&v["store"], &serde_json::Value::Bool(false));
                    prop_assert!(v["max_output_tokens"].as_u64().is_some_and(|n| n <= 500));
                    for (k, val) in original.as_object().unwrap() {
                        if k != "store" && k != "max_output_tokens" {
                            prop_assert_eq!(&v[k], val);
                        }
                    }
                }
                Err(e) => prop_assert!(false, "refused {}: {:?}", body, e),
            }
        }
    }
}
