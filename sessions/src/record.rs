//! The lines of a rollout file, in codex's envelope: `{"timestamp", "type", "payload"}` with
//! `type` one of `session_meta`, `response_item`, `event_msg`. Types codex writes that this store
//! does not use (`turn_context`, `compacted`, other payload types) parse as `Other` and are kept
//! in the file but ignored on resume, so files written by the real Codex CLI load too.

use serde::{Deserialize, Serialize};

/// One line.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutLine {
    /// UTC, RFC 3339 with milliseconds (`2025-05-07T17:24:21.123Z`).
    pub timestamp: String,
    pub item: RolloutItem,
}

/// What a line holds.
#[derive(Debug, Clone, PartialEq)]
pub enum RolloutItem {
    /// The header: always line 1.
    SessionMeta(SessionMeta),
    /// A conversation item (a user input, an assistant message).
    ResponseItem(ResponseItem),
    /// An event (token usage).
    EventMsg(EventMsg),
    /// Anything else codex writes (`turn_context`, `compacted`, ...).
    Other,
}

/// The envelope as it is on disk.
#[derive(Deserialize)]
struct RawLine {
    timestamp: String,
    #[serde(rename = "type")]
    ty: String,
    #[serde(default)]
    payload: serde_json::Value,
}

impl RolloutLine {
    /// The line's JSON (no newline).
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        // Written field by field so the keys keep codex's order (timestamp, type, payload).
        let (ty, payload) = match &self.item {
            RolloutItem::SessionMeta(m) => ("session_meta", serde_json::to_string(m)?),
            RolloutItem::ResponseItem(r) => ("response_item", serde_json::to_string(r)?),
            RolloutItem::EventMsg(e) => ("event_msg", serde_json::to_string(e)?),
            RolloutItem::Other => ("other", "null".to_owned()),
        };
        Ok(format!(
            "{{\"timestamp\":{},\"type\":\"{ty}\",\"payload\":{payload}}}",
            serde_json::to_string(&self.timestamp)?
        ))
    }

    /// Parses one line; a known `type` with a payload of the wrong shape is an error.
    pub fn parse(line: &str) -> Result<Self, serde_json::Error> {
        let raw: RawLine = serde_json::from_str(line)?;
        let item = match raw.ty.as_str() {
            "session_meta" => RolloutItem::SessionMeta(serde_json::from_value(raw.payload)?),
            "response_item" => RolloutItem::ResponseItem(serde_json::from_value(raw.payload)?),
            "event_msg" => RolloutItem::EventMsg(serde_json::from_value(raw.payload)?),
            _ => RolloutItem::Other,
        };
        Ok(RolloutLine {
            timestamp: raw.timestamp,
            item,
        })
    }
}

/// Line 1 of every session file. Never a credential or a header: the provider by id only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionMeta {
    pub id: String,
    /// UTC, RFC 3339: when the session started.
    pub timestamp: String,
    /// The working directory of the first run.
    pub cwd: String,
    /// `codex_exec` for sessions this CLI starts.
    #[serde(default)]
    pub originator: String,
    #[serde(default)]
    pub cli_version: String,
    /// The provider id (`model_provider`).
    #[serde(default)]
    pub model_provider: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
}

/// A conversation item (the Responses API's input item shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseItem {
    Message {
        role: String,
        content: Vec<ContentItem>,
    },
    /// Reasoning, tool calls and other items codex records.
    #[serde(other)]
    Other,
}

/// One content part of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentItem {
    InputText {
        text: String,
    },
    OutputText {
        text: String,
    },
    #[serde(other)]
    Other,
}

/// An event line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventMsg {
    /// Token usage of the turn that just completed.
    TokenCount { info: Option<TokenInfo> },
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub last_token_usage: TokenUsage,
}

/// Token counts as the Responses API reports them (`response.completed`'s `usage`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub cached_input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
}

/// Who said it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// A user input or assistant message, as resume replays it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub role: Role,
    pub text: String,
}

impl Message {
    /// The record for this message (`input_text` for the user, `output_text` for the assistant).
    pub fn to_item(&self) -> RolloutItem {
        let content = match self.role {
            Role::User => ContentItem::InputText {
                text: self.text.clone(),
            },
            Role::Assistant => ContentItem::OutputText {
                text: self.text.clone(),
            },
        };
        RolloutItem::ResponseItem(ResponseItem::Message {
            role: self.role.as_str().to_owned(),
            content: vec![content],
        })
    }

    /// The message in a recorded item, if it is a user or assistant message with text (codex's
    /// `developer`/`system` messages and non-text parts are not replayed).
    pub fn from_item(item: &RolloutItem) -> Option<Message> {
        let RolloutItem::ResponseItem(ResponseItem::Message { role, content }) = item else {
            return None;
        };
        let role = match role.as_str() {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            _ => return None,
        };
        let text: String = content
            .iter()
            .filter_map(|c| match c {
                ContentItem::InputText { text } | ContentItem::OutputText { text } => {
                    Some(text.as_str())
                }
                ContentItem::Other => None,
            })
            .collect();
        Some(Message { role, text })
    }

    /// The Responses API input item replaying this message.
    pub fn to_input_json(&self) -> serde_json::Value {
        let part = match self.role {
            Role::User => "input_text",
            Role::Assistant => "output_text",
        };
        serde_json::json!({
            "type": "message",
            "role": self.role.as_str(),
            "content": [{"type": part, "text": self.text}],
        })
    }
}

/// Now, UTC, RFC 3339 with milliseconds.
pub fn now_utc() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_use_codex_envelope_and_unknown_types_parse_as_other() {
        let line = RolloutLine {
            timestamp: "2025-01-01T00:00:00.000Z".into(),
            item: Message {
                role: Role::User,
                text: "hi".into(),
            }
            .to_item(),
        };
        let s = line.to_json().unwrap();
        assert_eq!(
            s,
            r#"{"timestamp":"2025-01-01T00:00:00.000Z","type":"response_item","payload":{"type":"message","role":"user","content":[{"type":"input_text","text":"hi"}]}}"#
        );
        assert_eq!(RolloutLine::parse(&s).unwrap(), line);
        let codex = r#"{"timestamp":"t","type":"turn_context","payload":{"cwd":"/x"}}"#;
        assert_eq!(RolloutLine::parse(codex).unwrap().item, RolloutItem::Other);
        let reasoning = r#"{"timestamp":"t","type":"response_item","payload":{"type":"reasoning","summary":[]}}"#;
        assert_eq!(
            RolloutLine::parse(reasoning).unwrap().item,
            RolloutItem::ResponseItem(ResponseItem::Other)
        );
    }
}
