//! Key intake: the API key comes only on stdin and goes straight into locked, never-dumped
//! memory as the complete header value `Bearer <key>`.
//!
//! The resulting [`HeaderValue`] points into that memory and is marked sensitive (`Debug` prints
//! `Sensitive`); [`ApiKey`] wraps it for the data path, which never copies the bytes (the
//! upstream client writes them from the page itself: [`ApiKey::bytes_for_upstream`]), and
//! [`KeySlot`] hands each request a shared handle. The proxy reads its keys into pages allocated
//! at start-up (`key_pages::KeyPages::load`, with [`read_options`]): a rotated-out key's page is
//! wiped when its last request drops it. [`read_key`] reads one into a page of its own that lives
//! until the process exits.

use bytes::Bytes;
use http::HeaderValue;
use secure_main::{LockPolicy, RawRead, ReadSecretError, SecretReadOptions};

/// Placed in front of the key in the same locked buffer.
pub const KEY_PREFIX: &[u8] = b"Bearer ";
/// Longest accepted header value, `Bearer ` included.
pub const MAX_HEADER_LEN: usize = 1024;

/// How to hand the key to the proxy; every intake error ends with it.
pub const HOW_TO_PROVIDE: &str = "provide the key on stdin, e.g. \
`printenv OPENAI_API_KEY | env -u OPENAI_API_KEY responses-api-proxy ...`";

/// The characters an OpenAI key is made of: `[A-Za-z0-9_-]`.
pub fn allowed_key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Key intake failed. Messages say what is wrong and how to provide the key; they never contain
/// a byte of the key.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no API key on stdin: {HOW_TO_PROVIDE}")]
    Empty,
    #[error(
        "the API key on stdin is too long: at most {} characters are accepted; {HOW_TO_PROVIDE}",
        MAX_HEADER_LEN - KEY_PREFIX.len()
    )]
    TooLong,
    #[error(
        "the API key on stdin contains a character other than A-Z, a-z, 0-9, '_' and '-' \
(at offset {offset}); {HOW_TO_PROVIDE}"
    )]
    ForbiddenByte { offset: usize },
    /// More than the key: a second line, or anything but line endings after it (outside review
    /// r15 F7: the first line was silently used). Only where the input must be the key alone
    /// (`rotate-key`, `POST /rotate-key`); never shows a byte of it.
    #[error(
        "stdin holds more than the API key: the key must be on one line (a line ending is \
allowed) and nothing after it"
    )]
    TrailingContent,
    #[error("failed to read the API key from stdin: {source}")]
    Read { source: std::io::Error },
    #[error("failed to allocate locked memory for the API key: {source}")]
    Alloc { source: secure_main::SecretError },
    #[error("the API key is not a valid header value")]
    HeaderValue,
    /// Every locked key page still holds a key that requests in flight use (key rotation).
    #[error(
        "every locked key page ({pages}) still holds a key used by requests in flight; \
try again when they have finished"
    )]
    PagesInUse { pages: usize },
}

/// How the key is read: `Bearer ` in front, at most [`MAX_HEADER_LEN`] bytes, [`allowed_key_byte`].
pub fn read_options(lock: LockPolicy) -> SecretReadOptions {
    SecretReadOptions {
        prefix: KEY_PREFIX,
        max_len: MAX_HEADER_LEN,
        allowed: allowed_key_byte,
        lock,
    }
}

impl From<ReadSecretError> for KeyError {
    fn from(e: ReadSecretError) -> Self {
        match e {
            ReadSecretError::Empty => KeyError::Empty,
            ReadSecretError::TooLong { .. } => KeyError::TooLong,
            ReadSecretError::ForbiddenByte { offset } => KeyError::ForbiddenByte { offset },
            ReadSecretError::Read { source } => KeyError::Read { source },
            ReadSecretError::Alloc { source } => KeyError::Alloc { source },
            ReadSecretError::TrailingContent => KeyError::TrailingContent,
        }
    }
}

/// Reads `Bearer <key>` from `r` into locked memory of its own, kept for the life of the process
/// (never wiped, never reused), and returns it as a sensitive header value.
pub fn read_key<R: RawRead>(r: &mut R, lock: LockPolicy) -> Result<HeaderValue, KeyError> {
    let secret = secure_main::read_secret(r, &read_options(lock))?;
    // The buffer is intentionally kept for the life of the process: the header value borrows it.
    let bytes: &'static [u8] = secret.into_static();
    let mut value = HeaderValue::from_maybe_shared(Bytes::from_static(bytes))
        .map_err(|_| KeyError::HeaderValue)?;
    value.set_sensitive(true);
    Ok(value)
}

/// The proxy's `Authorization` value, `Bearer <key>`, in locked memory. Cloning shares the page
/// (no copy of the key is ever made); `Debug` prints `[REDACTED]`.
#[derive(Clone)]
pub struct ApiKey {
    header: HeaderValue,
    /// The same bytes as a `Bytes` that owns a clone of `header`: what the upstream writer puts
    /// between the request head's pieces, straight from the locked page.
    wire: Bytes,
    /// Set when a rotation takes this key out of force ([`KeySlot::replace`]): a WebSocket
    /// session opened with it ends after its response in flight (outside review r15 F4).
    retired: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    /// Who holds this key (the connections of HTTP requests that took it, WebSocket sessions),
    /// so that a rotation finding no free page can cut the holders of one retired key
    /// ([`ApiKey::cut`]; outside review r18 F1).
    holders: std::sync::Arc<Holders>,
}

/// The holders of a key: one [`tokio::sync::Notify`] per connection or WebSocket session (a
/// keep-alive connection registers once), each with its peer's uid, dead ones pruned as the list
/// grows; and the `cut` signal for holders that watch instead (WebSocket sessions).
#[derive(Debug, Default)]
struct Holders {
    conns: std::sync::Mutex<Vec<(std::sync::Weak<tokio::sync::Notify>, u32)>>,
    cut: tokio::sync::watch::Sender<bool>,
}

/// Peers whose uid is unknown count as one.
const UNKNOWN_UID: u32 = u32::MAX;

impl ApiKey {
    /// From a sensitive header value whose bytes are in locked memory (`KeyPages::load`,
    /// [`read_key`]).
    pub fn new(header: HeaderValue) -> Self {
        let wire = Bytes::from_owner(header.clone());
        ApiKey {
            header,
            wire,
            retired: std::sync::Arc::new(tokio::sync::watch::Sender::new(false)),
            holders: std::sync::Arc::default(),
        }
    }

    /// The connection (or WebSocket session) behind `cut`, of the peer `uid`, holds this key
    /// until `cut` is dropped: [`ApiKey::cut`] will notify it (a connection's serving task then
    /// closes the connection, dropping what holds the key). The uid decides whose key a rotation
    /// cuts ([`KeyCutter::weight`]).
    pub fn held_by(&self, cut: &std::sync::Arc<tokio::sync::Notify>, uid: Option<u32>) {
        let mut conns = self.holders.conns.lock().unwrap_or_else(|e| e.into_inner());
        if conns
            .last()
            .is_some_and(|(w, _)| std::ptr::eq(w.as_ptr(), std::sync::Arc::as_ptr(cut)))
        {
            return;
        }
        if conns.len() >= 64 && conns.len().is_power_of_two() {
            conns.retain(|(w, _)| w.strong_count() > 0);
        }
        conns.push((std::sync::Arc::downgrade(cut), uid.unwrap_or(UNKNOWN_UID)));
    }

    /// A handle that can [`KeyCutter::cut`] this key's holders later without keeping the key
    /// (the rotator keeps one per retired key).
    pub fn cutter(&self) -> KeyCutter {
        KeyCutter(std::sync::Arc::clone(&self.holders))
    }

    /// Becomes `true` when [`ApiKey::cut`] is called (WebSocket sessions end at once).
    pub fn cut_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.holders.cut.subscribe()
    }

    /// Ends everything that holds this key now: the connections that registered
    /// ([`ApiKey::held_by`]) close, WebSocket sessions watching [`ApiKey::cut_signal`] end.
    /// Returns how many connections were told.
    pub fn cut(&self) -> usize {
        self.holders.cut()
    }
}

/// See [`ApiKey::cutter`]; holds no key.
#[derive(Debug, Clone)]
pub struct KeyCutter(std::sync::Arc<Holders>);

impl KeyCutter {
    /// [`ApiKey::cut`]: returns how many holders were told (connections and WebSocket
    /// sessions: both register with [`ApiKey::held_by`], so each counts once; adding the cut
    /// signal's receivers counted a session twice, outside review r28's `holders=3` for one).
    pub fn cut(&self) -> usize {
        self.0.cut()
    }

    /// The local users (peer uids, sorted, each once) whose connections or sessions hold this
    /// key now; a rotation that must cut one retired key's holders chooses by them
    /// (`Rotator::make_room`).
    pub fn users(&self) -> Vec<u32> {
        let conns = self.0.conns.lock().unwrap_or_else(|e| e.into_inner());
        let mut uids: Vec<u32> = conns
            .iter()
            .filter(|(w, _)| w.strong_count() > 0)
            .map(|(_, uid)| *uid)
            .collect();
        uids.sort_unstable();
        uids.dedup();
        uids
    }
}

impl Holders {
    fn cut(&self) -> usize {
        self.cut.send_replace(true);
        let conns = std::mem::take(&mut *self.conns.lock().unwrap_or_else(|e| e.into_inner()));
        let mut told = 0;
        for n in conns.iter().filter_map(|(w, _)| w.upgrade()) {
            n.notify_one();
            told += 1;
        }
        told
    }
}

impl ApiKey {
    /// Becomes `true` when a rotation has put another key in force.
    pub fn retired(&self) -> tokio::sync::watch::Receiver<bool> {
        self.retired.subscribe()
    }

    /// The sensitive header value (for the scrubber and the dump's redaction).
    pub fn header(&self) -> &HeaderValue {
        &self.header
    }

    /// The key's length without `Bearer ` (for checks and messages; never its bytes).
    pub fn key_len(&self) -> usize {
        self.header.len().saturating_sub(KEY_PREFIX.len())
    }

    /// The one way the key leaves the process: the `Authorization` value's bytes for the
    /// upstream request head, pointing into the locked page (the writer hands them to
    /// `writev(2)` or to rustls, which encrypts them in place; see `client.rs`).
    pub fn bytes_for_upstream(&self) -> Bytes {
        self.wire.clone()
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey([REDACTED])")
    }
}

/// Where requests take the key from: each request takes a shared handle ([`KeySlot::current`])
/// and uses it for its whole exchange, so a later key rotation can put a new key here without
/// disturbing requests in flight.
#[derive(Debug)]
pub struct KeySlot(std::sync::RwLock<std::sync::Arc<ApiKey>>);

impl KeySlot {
    pub fn new(key: ApiKey) -> Self {
        KeySlot(std::sync::RwLock::new(std::sync::Arc::new(key)))
    }

    /// The key in force now.
    pub fn current(&self) -> std::sync::Arc<ApiKey> {
        match self.0.read() {
            Ok(k) => std::sync::Arc::clone(&k),
            Err(poisoned) => std::sync::Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Puts `key` in force for new requests and returns the previous one (requests in flight
    /// keep their own handles to it; see the `rotation` module).
    pub fn replace(&self, key: ApiKey) -> std::sync::Arc<ApiKey> {
        let new = std::sync::Arc::new(key);
        let old = match self.0.write() {
            Ok(mut k) => std::mem::replace(&mut *k, new),
            Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), new),
        };
        old.retired.send_replace(true);
        old
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out input in small pieces, like a pipe with short reads.
    struct Chunked<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl RawRead for Chunked<'_> {
        fn read_raw(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    fn read(input: &[u8]) -> Result<HeaderValue, KeyError> {
        read_key(
            &mut Chunked {
                data: input,
                step: 7,
            },
            LockPolicy::AllowDegraded,
        )
    }

    #[test]
    fn accepts_a_key_and_builds_the_header_in_place() {
        let v = read(b"sk-proj_ABC-123\n").unwrap();
        assert_eq!(v.as_bytes(), b"Bearer sk-proj_ABC-123");
        assert!(v.is_sensitive());
        assert_eq!(format!("{v:?}"), "Sensitive");
        let v = read(b"sk-abc\r\n").unwrap();
        assert_eq!(v.as_bytes(), b"Bearer sk-abc");
    }

    /// The `VmFlags` line of the mapping in `/proc/self/smaps` that contains `addr`.
    fn vm_flags_of(addr: usize) -> String {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        for line in smaps.lines() {
            let range = line.split_whitespace().next().unwrap_or("");
            if let Some((lo, hi)) = range.split_once('-') {
                if let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                {
                    inside = (lo..hi).contains(&addr);
                    continue;
                }
            }
            if inside {
                if let Some(flags) = line.strip_prefix("VmFlags:") {
                    return flags.to_string();
                }
            }
        }
        panic!("no mapping contains {addr:#x}");
    }

    #[test]
    fn the_header_value_points_into_locked_never_dumped_memory() {
        let v = read_key(
            &mut Chunked {
                data: b"sk-in-place\n",
                step: 7,
            },
            LockPolicy::Required,
        )
        .unwrap();
        let flags = vm_flags_of(v.as_bytes().as_ptr() as usize);
        let flags: Vec<&str> = flags.split_whitespace().collect();
        // `lo`: mlocked; `dd`: MADV_DONTDUMP. A copy on the heap has neither.
        assert!(
            flags.contains(&"lo"),
            "header bytes not in locked memory: {flags:?}"
        );
        assert!(flags.contains(&"dd"), "header bytes dumpable: {flags:?}");
        // Control: an ordinary copy of the same bytes is on the heap, with neither flag.
        let copy = v.as_bytes().to_vec();
        let heap = vm_flags_of(copy.as_ptr() as usize);
        assert!(
            !heap.split_whitespace().any(|f| f == "lo" || f == "dd"),
            "{heap}"
        );
    }

    #[test]
    fn length_limit_counts_the_prefix() {
        let ok = vec![b'k'; MAX_HEADER_LEN - KEY_PREFIX.len()];
        assert_eq!(read(&ok).unwrap().as_bytes().len(), MAX_HEADER_LEN);
        let long = vec![b'k'; MAX_HEADER_LEN - KEY_PREFIX.len() + 1];
        let e = read(&long).unwrap_err();
        assert!(matches!(e, KeyError::TooLong), "{e}");
        assert!(e.to_string().contains("at most 1017 characters"));
    }

    #[test]
    fn refuses_empty_and_forbidden_bytes_without_echoing() {
        for empty in [&b""[..], b"\n", b"\r\n"] {
            let e = read(empty).unwrap_err();
            assert!(matches!(e, KeyError::Empty), "{e}");
            assert!(e.to_string().contains("provide the key on stdin"));
        }
        for (bad, offset) in [
            (&b"sk-SECRETVALUE with-space"[..], 14),
            (b"sk-SECRETVALUE\0x", 14),
            (b"sk-SECRETVALUE\xc3\xa9", 14),
            (b"sk-SECRETVALUE\r", 14),
        ] {
            let e = read(bad).unwrap_err();
            assert!(
                matches!(e, KeyError::ForbiddenByte { offset: o } if o == offset),
                "{e}"
            );
            let msg = e.to_string();
            assert!(!msg.contains("SECRETVALUE"), "{msg}");
            assert!(msg.contains("provide the key on stdin"), "{msg}");
        }
    }
}
