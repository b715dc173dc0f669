//! Whether the proxy can size a request's input from its bytes (outside review r53 F2).
//!
//! A budget's reservation counts a request's input as its body bytes / 4, which bounds what the
//! upstream counts only when everything the model reads is in the body. Some requests make the
//! upstream read more than they carry: a file or an image named by id or URL, a stored item or
//! response (`item_reference`, `previous_response_id`, `conversation`), a stored prompt
//! (`prompt`), a server-side tool whose results become input (`web_search`, `file_search`,
//! `mcp`...). Such a request is **unsizable**; the governor admits it under an input or cost
//! budget only when no other request of its user is in flight (`governor::check_budget`), so a
//! budget is overshot by at most one request's unmeasured input, never by one per request in
//! flight (r53 F2: 40 parallel requests, each naming a file the upstream counted as 90,000
//! tokens, were all admitted against an input budget of 100,000).
//!
//! The walk is conservative: what is not known to be inline is unsizable. Sized: `input` absent,
//! `null` or a string; a list of items of the types in [`SIZED_ITEMS`] (an item without `type`
//! is a message only with a `role` and no `id`; `reasoning` and `compaction` only with their
//! encrypted content) whose `content` / `output` is a string or a list of parts of the types in
//! [`TEXT_PARTS`]. An image is never sized, even inline: its tokens follow its pixels (outside
//! review r59 F4). Keys are read decoded (serde), so `\u` escapes in a key or a type change
//! nothing; a key twice in an item or a part is refused as bad JSON, as at the top level.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// Item types whose whole content is in the request (a record of a call, its output as text,
/// encrypted reasoning or compaction carried inline).
pub const SIZED_ITEMS: &[&str] = &[
    "message",
    "reasoning",
    "compaction",
    "function_call",
    "function_call_output",
    "custom_tool_call",
    "custom_tool_call_output",
    "local_shell_call",
    "local_shell_call_output",
    "shell_call",
    "shell_call_output",
    "apply_patch_call",
    "apply_patch_call_output",
    "web_search_call",
    "computer_call",
    "computer_call_output",
];

/// Content part types that are text in the request.
pub const TEXT_PARTS: &[&str] = &[
    "input_text",
    "output_text",
    "text",
    "refusal",
    "summary_text",
    "reasoning_text",
];

/// Part types that are an image (never sized: see [`Part::unsizable`]).
const IMAGE_PARTS: &[&str] = &["input_image", "computer_screenshot"];

/// `input`, walked: `Some(why)` when the upstream may read more than the body carries, and the
/// `tools` lists items carry (an `additional_tools` item, a `tool_search_output`: outside review
/// r57 F2 put server-side tools there, past the check of the top-level `tools`).
#[derive(Debug, Default)]
pub(crate) struct Input<'a> {
    pub unsizable: Option<&'static str>,
    pub item_tools: Vec<&'a RawValue>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Input<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Input<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("input as a string or a list of items")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Input::default())
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Input::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Input::default();
                while let Some(item) = seq.next_element::<Item<'a>>()? {
                    out.unsizable = out.unsizable.or_else(|| item.unsizable());
                    if let Some(t) = item.tools.filter(|t| t.get() != "null") {
                        out.item_tools.push(t);
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct Item<'a> {
    #[serde(borrow, rename = "type", default)]
    kind: Option<Cow<'a, str>>,
    #[serde(default)]
    role: Option<IgnoredAny>,
    #[serde(default)]
    id: Option<IgnoredAny>,
    #[serde(borrow, default)]
    encrypted_content: Option<Cow<'a, str>>,
    #[serde(default)]
    content: Option<Parts>,
    #[serde(default)]
    output: Option<Parts>,
    #[serde(borrow, default)]
    tools: Option<&'a RawValue>,
}

impl Item<'_> {
    fn unsizable(&self) -> Option<&'static str> {
        let kind = match self.kind.as_deref() {
            Some(k) => k,
            // Outside review r57 F1: `type` is optional in an item reference (`{"id":…}`, also
            // `"type":null`); an item without one is a message only with a role and no id.
            None if self.role.is_some() && self.id.is_none() => "message",
            None => return Some("an item without a type (an item reference: a stored item)"),
        };
        if kind == "item_reference" {
            return Some("an item_reference (a stored item)");
        }
        if !SIZED_ITEMS.contains(&kind) {
            return Some("an input item of a type the proxy cannot size");
        }
        // A reasoning or compaction item without its encrypted content (missing, null or empty)
        // can only be a stored one, by id (outside review r59 F6).
        if matches!(kind, "reasoning" | "compaction")
            && self.encrypted_content.as_deref().is_none_or(str::is_empty)
        {
            return Some(
                "a reasoning or compaction item without its encrypted content (a stored item)",
            );
        }
        [&self.content, &self.output]
            .into_iter()
            .flatten()
            .find_map(|p| p.unsizable)
    }
}

/// `content` or `output`: a string, a list of parts, or one part.
struct Parts {
    unsizable: Option<&'static str>,
}

impl<'de> Deserialize<'de> for Parts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Parts;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, a list of content parts or one part")
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(parts(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(parts(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(parts(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(parts(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(parts(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(parts(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut unsizable = None;
                while let Some(p) = seq.next_element::<Part<'de>>()? {
                    unsizable = unsizable.or_else(|| p.unsizable());
                }
                Ok(parts(unsizable))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let p = Part::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(parts(p.unsizable()))
            }
        }
        d.deserialize_any(V)
    }
}

fn parts(unsizable: Option<&'static str>) -> Parts {
    Parts { unsizable }
}

#[derive(Deserialize)]
struct Part<'a> {
    #[serde(borrow, rename = "type", default)]
    kind: Option<Cow<'a, str>>,
}

impl Part<'_> {
    fn unsizable(&self) -> Option<&'static str> {
        let kind = self.kind.as_deref().unwrap_or("");
        if TEXT_PARTS.contains(&kind) {
            return None;
        }
        // Outside review r59 F4: an image costs by its pixels, not its bytes (a 788-byte 1-bit
        // PNG of 2048x2048 is 765 tokens, bytes / 4 says 200): by URL, file id or inline.
        if IMAGE_PARTS.contains(&kind) {
            return Some("an image (its tokens follow its pixels, not its bytes)");
        }
        if kind == "input_file" {
            return Some("a file");
        }
        Some("a content part of a type the proxy cannot size")
    }
}
