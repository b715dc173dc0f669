//! The proxy's key intake: [`secure_main::read_secret`] with the proxy's options, fed by a reader
//! that splits the input into fuzz-chosen read sizes and injects `EINTR` and `EIO`.
//!
//! Input: byte 0 = read size (1..=256), byte 1 = error injection (bit 0: `EINTR` before every
//! other read; bits 1..: `EIO` at that read, 0 = never); the rest is what arrives on stdin.
//!
//! Properties:
//! - the outcome equals a direct model of SPEC §2 (first line, `\n`/`\r\n` trimmed, empty → error,
//!   more than 1024 bytes with `Bearer ` → error, first byte outside `[A-Za-z0-9_-]` → error with
//!   its offset, else the key) whatever the read sizes; with `EIO` injected, either that outcome or
//!   the read error;
//! - an error message never contains a byte of the input: with digits removed it is one of the
//!   fixed messages.

use std::io;

use responses_api_proxy::key::{KEY_PREFIX, KeyError, MAX_HEADER_LEN, read_options};
use secure_main::{LockPolicy, RawRead, read_secret};

struct Scripted<'a> {
    data: &'a [u8],
    step: usize,
    eintr: bool,
    eio_at: Option<usize>,
    calls: usize,
}

impl RawRead for Scripted<'_> {
    fn read_raw(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        if self.eintr && self.calls % 2 == 0 {
            return Err(io::Error::from(io::ErrorKind::Interrupted));
        }
        if self.eio_at == Some(self.calls) {
            return Err(io::Error::from_raw_os_error(5));
        }
        let n = self.step.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Key(Vec<u8>),
    Empty,
    TooLong,
    Forbidden(usize),
    Read,
}

/// SPEC §2's rules, stated directly on the whole input.
fn model(input: &[u8]) -> Outcome {
    // What fits the buffer: prefix + longest value + "\r\n".
    let room = MAX_HEADER_LEN + 2 - KEY_PREFIX.len();
    let seen = &input[..input.len().min(room)];
    let line = match seen.iter().position(|b| *b == b'\n') {
        Some(nl) => seen[..nl].strip_suffix(b"\r").unwrap_or(&seen[..nl]),
        None if seen.len() == room => return Outcome::TooLong,
        None => seen,
    };
    if line.is_empty() {
        Outcome::Empty
    } else if KEY_PREFIX.len() + line.len() > MAX_HEADER_LEN {
        Outcome::TooLong
    } else if let Some(i) = line
        .iter()
        .position(|b| !responses_api_proxy::key::allowed_key_byte(*b))
    {
        Outcome::Forbidden(i)
    } else {
        Outcome::Key(line.to_vec())
    }
}

/// The fuzz target.
pub fn key_reader(data: &[u8]) {
    let [step, inject, input @ ..] = data else {
        return;
    };
    let eio_at = usize::from(inject >> 1);
    let mut r = Scripted {
        data: input,
        step: usize::from(*step) + 1,
        eintr: inject & 1 != 0,
        eio_at: (eio_at != 0).then_some(eio_at),
        calls: 0,
    };
    let got = match read_secret(&mut r, &read_options(LockPolicy::AllowDegraded)) {
        Ok(buf) => {
            let bytes = buf.expose_secret();
            assert!(bytes.starts_with(KEY_PREFIX), "the prefix is missing");
            Outcome::Key(bytes[KEY_PREFIX.len()..].to_vec())
        }
        Err(e) => {
            let e = KeyError::from(e);
            check_message(&e.to_string());
            match e {
                KeyError::Empty => Outcome::Empty,
                KeyError::TooLong => Outcome::TooLong,
                KeyError::ForbiddenByte { offset } => Outcome::Forbidden(offset),
                KeyError::Read { .. } => Outcome::Read,
                other => panic!("unexpected key error: {other}"),
            }
        }
    };
    let want = model(input);
    if r.eio_at.is_some() && got == Outcome::Read {
        return;
    }
    assert_eq!(got, want, "read size {}, injection {inject:#x}", r.step);
}

/// Error messages are fixed text around numbers: nothing of the input can appear in them.
fn check_message(msg: &str) {
    let skeleton: String = msg.chars().filter(|c| !c.is_ascii_digit()).collect();
    let fixed = [
        KeyError::Empty.to_string(),
        KeyError::TooLong.to_string(),
        KeyError::ForbiddenByte { offset: 0 }.to_string(),
        KeyError::Read {
            source: io::Error::from_raw_os_error(5),
        }
        .to_string(),
    ];
    assert!(
        fixed.iter().any(|f| f
            .chars()
            .filter(|c| !c.is_ascii_digit())
            .collect::<String>()
            == skeleton),
        "unexpected key error message: {msg}"
    );
}
