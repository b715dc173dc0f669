//! Reading a secret from a file descriptor straight into a [`SecretBuf`].

use std::io;
use std::os::fd::BorrowedFd;

use crate::secret::{LockPolicy, SecretBuf, SecretError};
use crate::sys;

/// A source of bytes read with one raw call per `read_raw` (no buffering), injectable in tests.
pub trait RawRead {
    /// Reads up to `buf.len()` bytes into `buf`; `Ok(0)` means end of input. May return
    /// [`io::ErrorKind::Interrupted`], which [`read_secret`] retries.
    fn read_raw(&mut self, buf: &mut [u8]) -> io::Result<usize>;
}

/// Raw `read(2)` on a borrowed descriptor: no user-space buffer, so no copy of the secret stays
/// behind anywhere but the destination. Retries `EINTR`.
#[derive(Debug)]
pub struct FdReader<'a> {
    fd: BorrowedFd<'a>,
}

impl FdReader<'_> {
    /// Reads from `fd`.
    pub fn new(fd: BorrowedFd<'_>) -> FdReader<'_> {
        FdReader { fd }
    }

    /// Reads from standard input (descriptor 0).
    pub fn stdin() -> FdReader<'static> {
        FdReader {
            fd: sys::stdin_fd(),
        }
    }
}

impl RawRead for FdReader<'_> {
    fn read_raw(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match sys::read(self.fd, buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => return other,
            }
        }
    }
}

/// How [`read_secret`] reads and checks a secret.
#[derive(Debug, Clone, Copy)]
pub struct SecretReadOptions {
    /// Bytes placed before the secret in the same buffer (for example `b"Bearer "`), so the
    /// complete header value exists only in locked memory. Not checked with `allowed`.
    pub prefix: &'static [u8],
    /// Largest accepted length of prefix + secret, after trimming the line ending.
    pub max_len: usize,
    /// Which secret bytes are accepted (the line ending is removed before checking).
    pub allowed: fn(u8) -> bool,
    /// Whether `mlock` failure is an error.
    pub lock: LockPolicy,
}

/// [`read_secret`] failed. The buffer read so far has been wiped. Messages never contain secret
/// bytes, not even a rejected one: only offsets and lengths.
#[derive(Debug, thiserror::Error)]
pub enum ReadSecretError {
    /// Nothing but (possibly) a line ending was read.
    #[error("the secret is empty")]
    Empty,
    /// Prefix + secret is longer than `max` bytes.
    #[error("the secret is too long: more than {max} bytes including its prefix")]
    TooLong {
        /// The limit, [`SecretReadOptions::max_len`].
        max: usize,
    },
    /// The byte at `offset` (0-based, counted in the input read, without the prefix) is not
    /// accepted by [`SecretReadOptions::allowed`].
    #[error("the secret contains a forbidden byte at offset {offset}")]
    ForbiddenByte {
        /// Position of the first rejected byte in the input.
        offset: usize,
    },
    /// `read(2)` (or the injected reader) failed.
    #[error("failed to read the secret (read): {source}")]
    Read {
        /// The error the reader returned.
        source: io::Error,
    },
    /// The locked buffer could not be created.
    #[error("failed to allocate locked memory for the secret: {source}")]
    Alloc {
        /// Why.
        source: SecretError,
    },
}

/// Reads one secret line from `r` into a new [`SecretBuf`], with `opts.prefix` in front.
///
/// The bytes go straight from `read_raw` into the locked buffer: there is no intermediate buffer.
/// Reading stops at the first `\n` or at end of input; a trailing `\n` or `\r\n` is removed (a
/// lone `\r` at end of input is not a line ending and is checked like any other byte). Reading
/// also stops as soon as the line is known to be too long.
///
/// Bytes after the newline: each `read_raw` call asks for as many bytes as still fit, so one call
/// may return bytes after the newline. Those bytes are consumed from `r` and then wiped, not
/// returned; nothing beyond that call is read. Callers that need the rest of the stream must not
/// share the descriptor (the proxy reads a dedicated pipe or stdin that carries only the key).
///
/// Every error path wipes what was read (the buffer is dropped, which zeroizes it).
/// `Interrupted` errors from the reader are retried.
pub fn read_secret<R: RawRead>(
    r: &mut R,
    opts: &SecretReadOptions,
) -> Result<SecretBuf, ReadSecretError> {
    let max = opts.max_len;
    if opts.prefix.len() > max {
        return Err(ReadSecretError::TooLong { max });
    }
    // Room for the longest accepted line plus "\r\n": a full buffer without a newline can only
    // hold a line that is too long.
    let capacity = max.checked_add(2).ok_or(ReadSecretError::TooLong { max })?;
    let mut buf = SecretBuf::with_capacity(capacity, opts.lock)
        .map_err(|source| ReadSecretError::Alloc { source })?;
    buf.extend_from_slice(opts.prefix)
        .map_err(|source| ReadSecretError::Alloc { source })?;
    let start = buf.len();
    let mut newline_at = None;
    loop {
        let spare = buf.spare_mut();
        if spare.is_empty() {
            break;
        }
        let n = match r.read_raw(spare) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(ReadSecretError::Read { source }),
        };
        if n == 0 {
            break;
        }
        let before = buf.len();
        // A reader claiming more than it was given is clamped to the buffer.
        buf.commit(n);
        if let Some(pos) = buf.expose_secret()[before..]
            .iter()
            .position(|b| *b == b'\n')
        {
            newline_at = Some(before + pos);
            break;
        }
    }
    let mut end = match newline_at {
        Some(nl) => {
            // Drop the newline and everything read after it (wiped by truncate).
            buf.truncate(nl);
            if buf.expose_secret().last() == Some(&b'\r') && buf.len() > start {
                nl - 1
            } else {
                nl
            }
        }
        None if buf.len() == buf.capacity() => return Err(ReadSecretError::TooLong { max }),
        None => buf.len(),
    };
    if end < start {
        end = start;
    }
    buf.truncate(end);
    if buf.len() == start {
        return Err(ReadSecretError::Empty);
    }
    if buf.len() > max {
        return Err(ReadSecretError::TooLong { max });
    }
    if let Some(offset) = buf.expose_secret()[start..]
        .iter()
        .position(|b| !(opts.allowed)(*b))
    {
        return Err(ReadSecretError::ForbiddenByte { offset });
    }
    Ok(buf)
}
