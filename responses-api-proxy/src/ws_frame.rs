//! The WebSocket frame codec of the relay (`ws.rs`; RFC 6455 section 5), small on
//! purpose: the proxy negotiates no extension, so a frame is a header and a payload.
//!
//! **Reading.** [`Reader::next`] decodes the front of a read buffer. Limits are checked from the
//! header, before the payload is waited for: a text or binary frame (or the fragments of one
//! message together) over the reader's limit is [`FrameError::TooLarge`] as soon as its header
//! is in the buffer. A message that arrived in one frame is handed over as the frame itself
//! ([`Message::Whole`]: the bytes as received, split off the read buffer without a copy, the
//! payload unmasked in place), so that the relay can forward an unmasked server frame as the
//! same bytes after looking at (and scrubbing, same length) its payload. A fragmented message is
//! assembled ([`Message::Assembled`]); control frames may come between its fragments and are
//! returned as they come. Frames from a client must be masked, frames from a server must not be
//! ([`Peer`]); reserved bits, unknown opcodes, long or fragmented control frames and a bad close
//! payload are errors (the caller closes the connection, 1002).
//!
//! **Writing.** [`encode`] appends one final frame to an output buffer, masked with the given
//! key (the relay's frames to the upstream: a fresh random key per frame) or not (to the
//! client). [`close_payload`] builds a close frame's payload.
//!
//! Not handled here: UTF-8 validity of text (the relay checks whole messages), the close
//! handshake's state (the relay's).

use bytes::{Buf, Bytes, BytesMut};

/// Close status codes the relay sends (RFC 6455 section 7.4.1).
pub mod code {
    pub const NORMAL: u16 = 1000;
    pub const AWAY: u16 = 1001;
    pub const PROTOCOL: u16 = 1002;
    pub const INVALID_DATA: u16 = 1007;
    pub const POLICY: u16 = 1008;
    pub const SIZE: u16 = 1009;
    pub const ERROR: u16 = 1011;
}

/// Longest payload of a control frame (ping, pong, close).
pub const MAX_CONTROL: usize = 125;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    fn from_bits(b: u8) -> Option<Self> {
        Some(match b {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// Who wrote the frames being read: a client masks every frame, a server none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    Client,
    Server,
}

/// A frame header as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub fin: bool,
    pub opcode: Opcode,
    pub mask: Option<[u8; 4]>,
    pub payload_len: u64,
    /// Bytes of the header (2 to 14).
    pub header_len: usize,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("reserved frame bits set (no extension was negotiated)")]
    Reserved,
    #[error("unknown frame opcode {0:#x}")]
    Opcode(u8),
    #[error("a control frame must be final and carry at most 125 bytes")]
    BadControl,
    #[error("a client frame must be masked")]
    Unmasked,
    #[error("a server frame must not be masked")]
    Masked,
    #[error("a 64-bit frame length with its top bit set")]
    BadLength,
    #[error("a frame length not in its shortest form")]
    LongLength,
    #[error("a message of {len} bytes or more, over the limit of {max}")]
    TooLarge { len: u64, max: usize },
    #[error("a continuation frame with no message begun")]
    UnexpectedContinuation,
    #[error("a new message before the fragmented one ended")]
    UnfinishedMessage,
    #[error("an invalid close frame payload")]
    BadClose,
    #[error("a message in {fragments} fragments for {len} bytes (at most 64 and one more per KiB)")]
    TooManyFragments { fragments: usize, len: usize },
}

/// The most fragments a message of `len` bytes may come in: 64, and one more per KiB. A peer
/// sending empty (or one-byte) continuation frames without end kept the event loop busy with
/// frames of a message that never grew, was never refused and never counted (outside review
/// r78 F1: 16 sessions held another user's requests at p50 517 ms); real clients fragment at
/// kilobytes.
pub fn max_fragments(len: usize) -> usize {
    64 + len / 1024
}

/// Parses the frame header at the front of `buf`: `Ok(None)` until all of it is there.
pub fn parse_header(buf: &[u8], from: Peer) -> Result<Option<Header>, FrameError> {
    let (Some(&b0), Some(&b1)) = (buf.first(), buf.get(1)) else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(FrameError::Reserved);
    }
    let fin = b0 & 0x80 != 0;
    let opcode = Opcode::from_bits(b0 & 0x0F).ok_or(FrameError::Opcode(b0 & 0x0F))?;
    let masked = b1 & 0x80 != 0;
    match (from, masked) {
        (Peer::Client, false) => return Err(FrameError::Unmasked),
        (Peer::Server, true) => return Err(FrameError::Masked),
        _ => {}
    }
    let (payload_len, mut at) = match b1 & 0x7F {
        126 => {
            let Some(b) = buf.get(2..4) else {
                return Ok(None);
            };
            let n = u16::from_be_bytes([b[0], b[1]]);
            // RFC 6455 5.2: the minimal number of bytes must be used (outside review r33 F1:
            // an upstream's non-minimal header went to the client as it was, and a strict
            // client ends the session on it)
            if n < 126 {
                return Err(FrameError::LongLength);
            }
            (u64::from(n), 4)
        }
        127 => {
            let Some(b) = buf.get(2..10) else {
                return Ok(None);
            };
            let mut n = [0u8; 8];
            n.copy_from_slice(b);
            let n = u64::from_be_bytes(n);
            if n >> 63 != 0 {
                return Err(FrameError::BadLength);
            }
            if n <= u64::from(u16::MAX) {
                return Err(FrameError::LongLength);
            }
            (n, 10)
        }
        n => (u64::from(n), 2),
    };
    if opcode.is_control() && (!fin || payload_len > MAX_CONTROL as u64) {
        return Err(FrameError::BadControl);
    }
    let mask = if masked {
        let Some(b) = buf.get(at..at + 4) else {
            return Ok(None);
        };
        at += 4;
        Some([b[0], b[1], b[2], b[3]])
    } else {
        None
    };
    Ok(Some(Header {
        fin,
        opcode,
        mask,
        payload_len,
        header_len: at,
    }))
}

/// XORs `data` with `mask` (masking and unmasking are the same), eight bytes at a time.
pub fn apply_mask(data: &mut [u8], mask: [u8; 4]) {
    let m = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(w) ^ m).to_ne_bytes());
    }
    // the chunks were a multiple of 4 bytes: the rest starts at mask[0]
    for (b, m) in chunks.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *b ^= m;
    }
}

/// [`apply_mask`] to bytes that start `offset` bytes into a masked payload.
pub fn apply_mask_at(data: &mut [u8], mask: [u8; 4], offset: usize) {
    let r = offset % 4;
    apply_mask(
        data,
        [
            mask[r],
            mask[(r + 1) % 4],
            mask[(r + 2) % 4],
            mask[(r + 3) % 4],
        ],
    );
}

/// Appends one final frame carrying `payload` to `out`, masked with `mask` if given.
pub fn encode(out: &mut Vec<u8>, opcode: Opcode, payload: &[u8], mask: Option<[u8; 4]>) {
    let len = payload.len();
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    out.reserve(14 + len);
    out.push(0x80 | opcode.bits());
    if len < 126 {
        // fits in 7 bits
        out.push(mask_bit | len as u8);
    } else if let Ok(n) = u16::try_from(len) {
        out.push(mask_bit | 126);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    let start = out.len();
    match mask {
        Some(m) => {
            out.extend_from_slice(&m);
            out.extend_from_slice(payload);
            apply_mask(&mut out[start + 4..], m);
        }
        None => out.extend_from_slice(payload),
    }
}

/// A close frame's payload: the code, then the reason cut to what fits in a control frame (at
/// a character boundary).
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut end = reason.len().min(MAX_CONTROL - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut p = Vec::with_capacity(2 + end);
    p.extend_from_slice(&code.to_be_bytes());
    p.extend_from_slice(&reason.as_bytes()[..end]);
    p
}

/// Whether a peer may send `code` in a close frame (RFC 6455 section 7.4: not 1004-1006, 1015,
/// nor the unassigned ranges).
pub fn close_code_allowed(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A close frame's code and reason (`None`: an empty payload).
fn parse_close(payload: &[u8]) -> Result<Option<(u16, String)>, FrameError> {
    match payload {
        [] => Ok(None),
        [_] => Err(FrameError::BadClose),
        [a, b, reason @ ..] => {
            let reason = std::str::from_utf8(reason).map_err(|_| FrameError::BadClose)?;
            Ok(Some((u16::from_be_bytes([*a, *b]), reason.to_string())))
        }
    }
}

/// What [`Reader::next`] decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum Message {
    /// A message that came in one frame: `frame` is the frame as received (header and payload,
    /// the payload at `frame[header_len..]`, unmasked in place; a masked frame's header still
    /// carries its mask key, so only an unmasked one may be forwarded as it is).
    Whole {
        text: bool,
        frame: BytesMut,
        header_len: usize,
    },
    /// A message assembled from its fragments.
    Assembled {
        text: bool,
        payload: BytesMut,
    },
    Ping(Bytes),
    Pong,
    /// The close code and reason, if the frame had any.
    Close(Option<(u16, String)>),
}

impl Message {
    /// The bytes it carries (a whole frame's with its header).
    pub fn size(&self) -> usize {
        match self {
            Message::Whole { frame, .. } => frame.len(),
            Message::Assembled { payload, .. } => payload.len(),
            Message::Ping(p) => p.len(),
            Message::Pong | Message::Close(_) => 0,
        }
    }
}

/// Decodes the frames of one direction of a connection into messages.
#[derive(Debug)]
pub struct Reader {
    from: Peer,
    max_message: usize,
    /// A fragmented message begun: text or not, the payload so far.
    partial: Option<(bool, BytesMut)>,
    /// Frames of the fragmented message begun ([`max_fragments`]).
    fragments: usize,
    /// Payload bytes of the frame at the front of the buffer already unmasked
    /// ([`Reader::unmask_arrived`]).
    front_unmasked: usize,
}

impl Reader {
    /// Reads frames written by `from`, refusing messages over `max_message` bytes.
    pub fn new(from: Peer, max_message: usize) -> Self {
        Self {
            from,
            max_message,
            partial: None,
            fragments: 0,
            front_unmasked: 0,
        }
    }

    /// Unmasks the payload bytes of the frame at the front of `buf` that arrived since the last
    /// call, so that the unmasking of a large frame is spread over the reads that bring it (each
    /// at most a read's worth) instead of done at once when it is whole (about 1 ms per 10 MB on
    /// the event loop: outside review r77 F2's residual). Call after every read; [`Reader::next`]
    /// unmasks only the rest.
    pub fn unmask_arrived(&mut self, buf: &mut [u8]) {
        let Ok(Some(h)) = parse_header(buf, self.from) else {
            return;
        };
        let Some(mask) = h.mask else {
            return;
        };
        let arrived = usize::try_from(h.payload_len)
            .unwrap_or(usize::MAX)
            .min(buf.len() - h.header_len);
        if arrived > self.front_unmasked {
            let from = h.header_len + self.front_unmasked;
            apply_mask_at(
                &mut buf[from..h.header_len + arrived],
                mask,
                self.front_unmasked,
            );
            self.front_unmasked = arrived;
        }
    }

    /// Bytes still missing for the frame at the front of `buf`, if its header is there (to size
    /// the next read); 0 when the header is incomplete or the frame is whole.
    pub fn missing(&self, buf: &[u8]) -> usize {
        match parse_header(buf, self.from) {
            Ok(Some(h)) => {
                let total = (h.header_len as u64).saturating_add(h.payload_len);
                usize::try_from(total)
                    .unwrap_or(usize::MAX)
                    .saturating_sub(buf.len())
            }
            _ => 0,
        }
    }

    /// Whether `buf` holds something [`Reader::next`] acts on now (a whole frame, or a header it
    /// refuses) without reading more.
    pub fn ready(&self, buf: &[u8]) -> bool {
        match parse_header(buf, self.from) {
            Ok(Some(h)) => {
                (buf.len() - h.header_len) as u64 >= h.payload_len || self.check_size(&h).is_err()
            }
            Ok(None) => false,
            Err(_) => true,
        }
    }

    fn check_size(&self, h: &Header) -> Result<(), FrameError> {
        let before = match (&self.partial, h.opcode) {
            (Some(_), Opcode::Text | Opcode::Binary) => {
                return Err(FrameError::UnfinishedMessage);
            }
            (None, Opcode::Continuation) => return Err(FrameError::UnexpectedContinuation),
            (Some((_, p)), Opcode::Continuation) => p.len() as u64,
            (None, Opcode::Text | Opcode::Binary) => 0,
            (_, _) => return Ok(()),
        };
        let len = before.saturating_add(h.payload_len);
        if len > self.max_message as u64 {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_message,
            });
        }
        Ok(())
    }

    /// The next message whose frames are all in `buf` (consumed from it), `Ok(None)` when more
    /// bytes are needed. A frame over the limit, or one breaking the protocol, is an error as
    /// soon as its header is in `buf`; the reader is not usable after an error.
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Message>, FrameError> {
        loop {
            let Some(h) = parse_header(buf, self.from)? else {
                return Ok(None);
            };
            self.check_size(&h)?;
            // at most max_message (data) or 125 (control) bytes: fits
            let total = h.header_len + usize::try_from(h.payload_len).unwrap_or(usize::MAX);
            if buf.len() < total {
                return Ok(None);
            }
            let mut frame = buf.split_to(total);
            // the next frame starts with nothing unmasked
            let done = std::mem::take(&mut self.front_unmasked);
            if let Some(m) = h.mask {
                apply_mask_at(&mut frame[h.header_len + done..], m, done);
            }
            match h.opcode {
                Opcode::Text | Opcode::Binary => {
                    let text = h.opcode == Opcode::Text;
                    if h.fin {
                        return Ok(Some(Message::Whole {
                            text,
                            frame,
                            header_len: h.header_len,
                        }));
                    }
                    frame.advance(h.header_len);
                    self.partial = Some((text, frame));
                    self.fragments = 1;
                }
                Opcode::Continuation => {
                    if let Some((_, p)) = self.partial.as_mut() {
                        p.extend_from_slice(&frame[h.header_len..]);
                        self.fragments += 1;
                        if self.fragments > max_fragments(p.len()) {
                            return Err(FrameError::TooManyFragments {
                                fragments: self.fragments,
                                len: p.len(),
                            });
                        }
                    }
                    if h.fin {
                        if let Some((text, payload)) = self.partial.take() {
                            return Ok(Some(Message::Assembled { text, payload }));
                        }
                    }
                }
                Opcode::Ping => {
                    frame.advance(h.header_len);
                    return Ok(Some(Message::Ping(frame.freeze())));
                }
                Opcode::Pong => return Ok(Some(Message::Pong)),
                Opcode::Close => {
                    return parse_close(&frame[h.header_len..]).map(|c| Some(Message::Close(c)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    /// A frame as a peer writes it (`fin` and opcode free, masked if `mask`).
    fn frame(fin: bool, opcode: Opcode, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut out = Vec::new();
        encode(&mut out, opcode, payload, mask);
        if !fin {
            out[0] &= 0x7F;
        }
        out
    }

    fn read_all(r: &mut Reader, bytes: &[u8]) -> Vec<Message> {
        let mut buf = BytesMut::from(bytes);
        let mut got = Vec::new();
        while let Some(m) = r.next(&mut buf).unwrap() {
            got.push(m);
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        got
    }

    fn text_of(m: &Message) -> &[u8] {
        match m {
            Message::Whole {
                text: true,
                frame,
                header_len,
            } => &frame[*header_len..],
            Message::Assembled {
                text: true,
                payload,
            } => payload,
            other => panic!("not text: {other:?}"),
        }
    }

    #[test]
    fn rfc_6455_examples_decode() {
        // section 5.7: unmasked "Hello", masked "Hello", a fragmented "Hel" + "lo", a ping
        let mut r = Reader::new(Peer::Server, 1 << 20);
        let got = read_all(
            &mut r,
            &[
                0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02,
                0x6c, 0x6f,
            ],
        );
        assert_eq!(got.len(), 2);
        assert_eq!(text_of(&got[0]), b"Hello");
        assert_eq!(text_of(&got[1]), b"Hello");
        let mut r = Reader::new(Peer::Client, 1 << 20);
        let got = read_all(
            &mut r,
            &[
                0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
            ],
        );
        assert_eq!(text_of(&got[0]), b"Hello");
        // the same masked frame from our encoder
        assert_eq!(
            frame(true, Opcode::Text, b"Hello", Some(MASK)),
            [
                0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
            ]
        );
    }

    #[test]
    fn a_whole_unmasked_frame_comes_back_as_the_same_bytes() {
        let f = frame(true, Opcode::Text, br#"{"type":"x"}"#, None);
        let mut r = Reader::new(Peer::Server, 1 << 20);
        let got = read_all(&mut r, &f);
        let Message::Whole {
            text: true,
            frame: ref raw,
            header_len: 2,
        } = got[0]
        else {
            panic!("{got:?}")
        };
        assert_eq!(&raw[..], &f[..]);
    }

    #[test]
    fn masking_round_trips_for_every_length_and_offset() {
        for len in 0..40 {
            let data: Vec<u8> = (0..len as u8).collect();
            let mut d = data.clone();
            apply_mask(&mut d, MASK);
            for (i, (a, b)) in d.iter().zip(&data).enumerate() {
                assert_eq!(*a, b ^ MASK[i % 4], "len {len} byte {i}");
            }
            apply_mask(&mut d, MASK);
            assert_eq!(d, data);
        }
    }

    #[test]
    fn lengths_use_7_16_and_64_bits_at_their_boundaries() {
        for (len, header) in [
            (0usize, 2usize),
            (125, 2),
            (126, 4),
            (65535, 4),
            (65536, 10),
            (70000, 10),
        ] {
            for mask in [None, Some(MASK)] {
                let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
                let f = frame(true, Opcode::Binary, &payload, mask);
                let header = header + if mask.is_some() { 4 } else { 0 };
                assert_eq!(f.len(), header + len, "len {len}");
                let from = if mask.is_some() {
                    Peer::Client
                } else {
                    Peer::Server
                };
                let h = parse_header(&f, from).unwrap().unwrap();
                assert_eq!(
                    (h.payload_len, h.header_len, h.mask),
                    (len as u64, header, mask)
                );
                let mut r = Reader::new(from, 1 << 20);
                let got = read_all(&mut r, &f);
                let Message::Whole {
                    text: false,
                    frame: ref raw,
                    header_len,
                } = got[0]
                else {
                    panic!("{got:?}")
                };
                assert_eq!(&raw[header_len..], &payload[..], "len {len}");
            }
        }
        // a 64-bit length with its top bit set
        let mut f = vec![0x82, 127];
        f.extend_from_slice(&(1u64 << 63).to_be_bytes());
        assert_eq!(parse_header(&f, Peer::Server), Err(FrameError::BadLength));
        // lengths not in their shortest form (outside review r33 F1: 74 in the 64-bit form
        // went to the client unchanged), from either side; the shortest forms pass
        for (b1, ext) in [
            (127u8, 74u64.to_be_bytes().to_vec()),
            (127, 65535u64.to_be_bytes().to_vec()),
            (126, 125u16.to_be_bytes().to_vec()),
        ] {
            for (from, mask) in [(Peer::Server, None), (Peer::Client, Some(MASK))] {
                let mut f = vec![0x81, b1 | if mask.is_some() { 0x80 } else { 0 }];
                f.extend_from_slice(&ext);
                f.extend_from_slice(&mask.unwrap_or_default());
                assert_eq!(parse_header(&f, from), Err(FrameError::LongLength), "{f:?}");
            }
        }
        for (b1, ext) in [
            (127u8, 65536u64.to_be_bytes().to_vec()),
            (126, 126u16.to_be_bytes().to_vec()),
        ] {
            let mut f = vec![0x81, b1];
            f.extend_from_slice(&ext);
            assert!(
                matches!(parse_header(&f, Peer::Server), Ok(Some(_))),
                "{f:?}"
            );
        }
    }

    #[test]
    fn a_frame_split_across_reads_byte_by_byte_decodes_once_whole() {
        let mut bytes = frame(true, Opcode::Text, &[b'a'; 300], Some(MASK));
        bytes.extend(frame(false, Opcode::Text, b"frag", Some(MASK)));
        bytes.extend(frame(true, Opcode::Ping, b"p", Some(MASK)));
        bytes.extend(frame(true, Opcode::Continuation, b"ment", Some(MASK)));
        let mut r = Reader::new(Peer::Client, 1 << 20);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for (i, b) in bytes.iter().enumerate() {
            buf.extend_from_slice(&[*b]);
            let ready = r.ready(&buf);
            match r.next(&mut buf).unwrap() {
                Some(m) => {
                    assert!(ready, "byte {i}: ready() missed a whole frame");
                    got.push((i, m));
                }
                None => assert!(!ready || buf.is_empty(), "byte {i}: ready() but nothing"),
            }
        }
        let ends: Vec<usize> = got.iter().map(|(i, _)| *i).collect();
        assert_eq!(ends.len(), 3, "{got:?}");
        assert_eq!(
            ends[0],
            300 + 4 + 4 - 1,
            "the first message as its last byte came"
        );
        assert_eq!(text_of(&got[0].1), &[b'a'; 300][..]);
        assert_eq!(got[1].1, Message::Ping(Bytes::from_static(b"p")));
        assert_eq!(ends[2], bytes.len() - 1);
        assert_eq!(text_of(&got[2].1), b"fragment");
    }

    /// The unmasking spread over the reads gives the same messages as unmasking whole frames,
    /// whatever the read sizes and wherever the mask's cycle stands at a read's end.
    #[test]
    fn unmasking_as_bytes_arrive_decodes_the_same_messages() {
        let payload: Vec<u8> = (0..5000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let mut bytes = frame(true, Opcode::Text, &payload, Some(MASK));
        bytes.extend(frame(
            false,
            Opcode::Text,
            &payload[..1001],
            Some([9, 8, 7, 6]),
        ));
        bytes.extend(frame(true, Opcode::Ping, b"p", Some(MASK)));
        bytes.extend(frame(
            true,
            Opcode::Continuation,
            &payload[1001..],
            Some([1, 2, 3, 4]),
        ));
        bytes.extend(frame(true, Opcode::Text, b"x", Some(MASK)));
        for step in [1, 2, 3, 5, 7, 64, 333, 4096, bytes.len()] {
            let mut r = Reader::new(Peer::Client, 1 << 20);
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for piece in bytes.chunks(step) {
                buf.extend_from_slice(piece);
                r.unmask_arrived(&mut buf);
                // a second call with nothing new changes nothing
                r.unmask_arrived(&mut buf);
                while let Some(m) = r.next(&mut buf).unwrap() {
                    got.push(m);
                }
            }
            assert_eq!(got.len(), 4, "step {step}: {got:?}");
            assert_eq!(text_of(&got[0]), &payload[..], "step {step}");
            assert_eq!(
                got[1],
                Message::Ping(Bytes::from_static(b"p")),
                "step {step}"
            );
            assert_eq!(text_of(&got[2]), &payload[..], "step {step}");
            assert_eq!(text_of(&got[3]), b"x", "step {step}");
        }
    }

    /// Outside review r78 F1: empty continuation frames without end. A message may come in 64
    /// fragments and one more per KiB: the 65th empty one is refused, while a message of 64 KiB
    /// in 1 KiB fragments (64 + 64 allowed) and one in 64 one-byte fragments pass.
    #[test]
    fn a_message_in_too_many_fragments_is_refused() {
        let read = |frames: Vec<Vec<u8>>| {
            let mut r = Reader::new(Peer::Client, 1 << 20);
            let mut buf = BytesMut::new();
            for f in frames {
                buf.extend_from_slice(&f);
            }
            let mut got = Vec::new();
            loop {
                match r.next(&mut buf) {
                    Ok(Some(m)) => got.push(m),
                    Ok(None) => return Ok(got),
                    Err(e) => return Err(e),
                }
            }
        };
        let mut empty = vec![frame(false, Opcode::Text, b"", Some(MASK))];
        empty.extend((0..63).map(|_| frame(false, Opcode::Continuation, b"", Some(MASK))));
        let mut last = empty.clone();
        last.push(frame(true, Opcode::Continuation, b"", Some(MASK)));
        assert!(
            matches!(
                read(last),
                Err(FrameError::TooManyFragments {
                    fragments: 65,
                    len: 0
                })
            ),
            "the 65th fragment of an empty message"
        );
        // 64 fragments: the first and 63 continuations, the last final
        let mut ok = vec![frame(false, Opcode::Text, b"a", Some(MASK))];
        ok.extend((0..62).map(|_| frame(false, Opcode::Continuation, b"b", Some(MASK))));
        ok.push(frame(true, Opcode::Continuation, b"c", Some(MASK)));
        assert_eq!(read(ok).unwrap().len(), 1);
        let kib = [b'k'; 1024];
        let mut big = vec![frame(false, Opcode::Text, &kib, Some(MASK))];
        big.extend((0..126).map(|_| frame(false, Opcode::Continuation, &kib, Some(MASK))));
        big.push(frame(true, Opcode::Continuation, &kib, Some(MASK)));
        assert_eq!(read(big).unwrap().len(), 1, "128 KiB in 128 fragments");
    }

    #[test]
    fn fragments_are_assembled_with_control_frames_between_them() {
        let mut bytes = frame(false, Opcode::Text, b"one ", None);
        bytes.extend(frame(true, Opcode::Ping, b"hi", None));
        bytes.extend(frame(false, Opcode::Continuation, b"two ", None));
        bytes.extend(frame(true, Opcode::Pong, b"", None));
        bytes.extend(frame(true, Opcode::Continuation, b"three", None));
        bytes.extend(frame(
            true,
            Opcode::Close,
            &close_payload(1000, "bye"),
            None,
        ));
        let mut r = Reader::new(Peer::Server, 1 << 20);
        let got = read_all(&mut r, &bytes);
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got[0], Message::Ping(Bytes::from_static(b"hi")));
        assert_eq!(got[1], Message::Pong);
        assert_eq!(text_of(&got[2]), b"one two three");
        assert_eq!(got[3], Message::Close(Some((1000, "bye".into()))));
    }

    #[test]
    fn fragment_order_errors() {
        let mut r = Reader::new(Peer::Server, 1 << 20);
        let mut buf = BytesMut::from(&frame(true, Opcode::Continuation, b"x", None)[..]);
        assert_eq!(r.next(&mut buf), Err(FrameError::UnexpectedContinuation));
        let mut r = Reader::new(Peer::Server, 1 << 20);
        let mut bytes = frame(false, Opcode::Text, b"a", None);
        bytes.extend(frame(true, Opcode::Text, b"b", None));
        let mut buf = BytesMut::from(&bytes[..]);
        assert_eq!(r.next(&mut buf), Err(FrameError::UnfinishedMessage));
    }

    #[test]
    fn control_frames_must_be_final_and_short() {
        let long = frame(true, Opcode::Ping, &[0; 126], None);
        assert_eq!(
            parse_header(&long, Peer::Server),
            Err(FrameError::BadControl)
        );
        let fragmented = frame(false, Opcode::Ping, b"x", None);
        assert_eq!(
            parse_header(&fragmented, Peer::Server),
            Err(FrameError::BadControl)
        );
        // control: 125 bytes is allowed
        let ok = frame(true, Opcode::Ping, &[0; 125], None);
        assert!(parse_header(&ok, Peer::Server).unwrap().is_some());
        // close payloads: one byte, or a reason that is not UTF-8
        let mut r = Reader::new(Peer::Server, 1 << 20);
        let mut buf = BytesMut::from(&frame(true, Opcode::Close, &[3], None)[..]);
        assert_eq!(r.next(&mut buf), Err(FrameError::BadClose));
        let mut buf = BytesMut::from(&frame(true, Opcode::Close, &[3, 232, 0xff], None)[..]);
        assert_eq!(r.next(&mut buf), Err(FrameError::BadClose));
        let mut buf = BytesMut::from(&frame(true, Opcode::Close, b"", None)[..]);
        assert_eq!(r.next(&mut buf), Ok(Some(Message::Close(None))));
    }

    #[test]
    fn masking_is_required_from_clients_and_refused_from_servers() {
        let unmasked = frame(true, Opcode::Text, b"x", None);
        let masked = frame(true, Opcode::Text, b"x", Some(MASK));
        assert_eq!(
            parse_header(&unmasked, Peer::Client),
            Err(FrameError::Unmasked)
        );
        assert_eq!(parse_header(&masked, Peer::Server), Err(FrameError::Masked));
        assert!(parse_header(&masked, Peer::Client).unwrap().is_some());
        assert!(parse_header(&unmasked, Peer::Server).unwrap().is_some());
    }

    #[test]
    fn reserved_bits_and_opcodes_are_refused() {
        let mut f = frame(true, Opcode::Text, b"x", None);
        f[0] |= 0x40; // RSV1, compression
        assert_eq!(parse_header(&f, Peer::Server), Err(FrameError::Reserved));
        let f = [0x83, 0x00];
        assert_eq!(parse_header(&f, Peer::Server), Err(FrameError::Opcode(3)));
    }

    #[test]
    fn an_oversize_message_is_refused_from_its_header_alone() {
        let mut r = Reader::new(Peer::Client, 1000);
        // only the header of a 64 KiB frame (2 + 8 + 4 bytes): refused before any payload came
        let f = frame(true, Opcode::Text, &[b'a'; 65536], Some(MASK));
        let mut buf = BytesMut::from(&f[..14]);
        assert!(r.ready(&buf));
        assert_eq!(
            r.next(&mut buf),
            Err(FrameError::TooLarge {
                len: 65536,
                max: 1000
            })
        );
        // fragments: the sum counts
        let mut r = Reader::new(Peer::Client, 1000);
        let mut bytes = frame(false, Opcode::Text, &[b'a'; 600], Some(MASK));
        bytes.extend_from_slice(&frame(true, Opcode::Continuation, &[b'a'; 600], Some(MASK))[..8]);
        let mut buf = BytesMut::from(&bytes[..]);
        assert_eq!(
            r.next(&mut buf),
            Err(FrameError::TooLarge {
                len: 1200,
                max: 1000
            })
        );
        // control: exactly the limit passes
        let mut r = Reader::new(Peer::Client, 1000);
        let got = read_all(
            &mut r,
            &frame(true, Opcode::Text, &[b'a'; 1000], Some(MASK)),
        );
        assert_eq!(text_of(&got[0]).len(), 1000);
    }

    #[test]
    fn missing_tells_how_much_of_the_frame_is_still_to_come() {
        let r = Reader::new(Peer::Server, 1 << 20);
        let f = frame(true, Opcode::Text, &[b'a'; 1000], None);
        assert_eq!(r.missing(&f[..1]), 0);
        assert_eq!(r.missing(&f[..4]), 1000);
        assert_eq!(r.missing(&f[..500]), 504);
        assert_eq!(r.missing(&f), 0);
    }

    #[test]
    fn close_payloads_are_cut_at_a_character_boundary() {
        let p = close_payload(1001, &"é".repeat(100));
        assert!(p.len() <= MAX_CONTROL);
        assert_eq!(&p[..2], &1001u16.to_be_bytes());
        assert!(std::str::from_utf8(&p[2..]).is_ok());
        assert!(close_code_allowed(1000) && close_code_allowed(4000));
        assert!(!close_code_allowed(1005) && !close_code_allowed(1006) && !close_code_allowed(999));
    }
}
