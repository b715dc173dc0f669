//! Session ids: random (version 4) UUIDs in their lower-case 8-4-4-4-12 form, as codex writes them.

use std::fmt;

/// A session id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(String);

impl SessionId {
    /// A new random (v4) id.
    pub fn new() -> Self {
        let mut b: [u8; 16] = rand::random();
        b[6] = (b[6] & 0x0f) | 0x40; // version 4
        b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
        let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
        SessionId(format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        ))
    }

    /// Parses a full id (any UUID: codex also writes v7 ids).
    pub fn parse(s: &str) -> Option<Self> {
        is_uuid(s).then(|| SessionId(s.to_ascii_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for SessionId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (hex, any case).
pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Whether `s` can be the start of an id: non-empty, hex digits and dashes, at most 36 long.
pub fn is_id_prefix(s: &str) -> bool {
    !s.is_empty() && s.len() <= 36 && s.bytes().all(|c| c.is_ascii_hexdigit() || c == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_v4_uuids_and_differ() {
        let a = SessionId::new();
        let b = SessionId::new();
        assert!(is_uuid(a.as_str()), "{a}");
        assert_eq!(&a.as_str()[14..15], "4");
        assert!(matches!(&a.as_str()[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(a, b);
        assert_eq!(SessionId::parse(a.as_str()), Some(a));
        assert_eq!(SessionId::parse("not-a-uuid"), None);
        assert!(is_id_prefix("01ab-"));
        assert!(!is_id_prefix("../x"));
        assert!(!is_id_prefix(""));
    }
}
