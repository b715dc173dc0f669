//! The ledger in `--state-dir`: one append-only file per month, `ledger-YYYY-MM.log`, one line
//! per finished request:
//!
//! ```text
//! {"t":1764975000123,"u":1001,"m":"gpt-5","i":120,"c":20,"o":30,"s":200,"k":0.000425}<TAB>1a2b3c4d
//! ```
//!
//! (time in ms, uid, model, input / cached input / output tokens, HTTP status, cost; then the
//! CRC-32 of the JSON text in hex).
//!
//! **Crash safety.** Records are appended with `write(2)` on an `O_APPEND` descriptor soon after
//! their responses end ([`Ledger::push`] queues, [`Ledger::flush_pending`] writes every queued
//! record with one call; the proxy flushes in the same event-loop round, so under load one write
//! carries many records): a SIGKILL loses only the requests in flight and those finished in the
//! current round, never a written record (it is in the page cache). A short write is accounted
//! line by line: a record is never written twice. A line is trusted only when it ends
//! with a newline and its checksum matches: a torn tail (power cut mid-write, or a short write on
//! a full disk) is skipped, and the next record starts on a new line (a newline is written first
//! when the file does not end with one), so one torn write never spoils the next record.
//!
//! **fsync policy.** `fdatasync` at most once a second while records were written
//! ([`Ledger::sync_handle`]: the proxy runs it on a blocking thread, off the event loop) and at
//! shutdown ([`Ledger::sync`]): a power cut loses at most the last second of records; per-request
//! `fsync` would cost more than the whole exchange.
//!
//! **Failure.** A record that cannot be written (ENOSPC, EROFS, EIO) is kept in memory (counted
//! in the budgets all the same) and written before the next one; until that succeeds
//! [`Ledger::healthy`] is false and the governor refuses every request that a budget applies
//! to (fail closed: no accounting, no spend).

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use codex_privsep::{Leaf, TrustedDir};
use serde::{Deserialize, Serialize};

use crate::clock::{self, Month};
use crate::usage::Usage;

/// Records kept in memory while the ledger cannot be written; older ones are dropped from the
/// retry queue (they still count in the in-memory budgets).
const MAX_PENDING: usize = 100_000;
/// The lock file in the state dir (see [`Ledger::open_for`]).
pub const LOCK_FILE: &str = ".lock";
/// Longest model name stored.
const MAX_MODEL: usize = 128;

/// One finished request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Milliseconds since the epoch when the response ended.
    #[serde(rename = "t")]
    pub ts_ms: u64,
    #[serde(rename = "u")]
    pub uid: u32,
    #[serde(rename = "m")]
    pub model: String,
    #[serde(rename = "i")]
    pub input_tokens: u64,
    #[serde(rename = "c")]
    pub cached_input_tokens: u64,
    #[serde(rename = "o")]
    pub output_tokens: u64,
    /// HTTP status the client got.
    #[serde(rename = "s")]
    pub status: u16,
    /// Cost with the policy's prices at the time (0 without a price).
    #[serde(rename = "k")]
    pub cost: f64,
}

impl Record {
    pub fn new(ts_ms: u64, uid: u32, model: &str, usage: Usage, status: u16, cost: f64) -> Self {
        Self {
            ts_ms,
            uid,
            model: model.chars().take(MAX_MODEL).collect(),
            input_tokens: usage.input_tokens,
            cached_input_tokens: usage.cached_input_tokens,
            output_tokens: usage.output_tokens,
            status,
            cost: if cost.is_finite() && cost >= 0.0 {
                cost
            } else {
                0.0
            },
        }
    }

    pub fn usage(&self) -> Usage {
        Usage {
            input_tokens: self.input_tokens,
            cached_input_tokens: self.cached_input_tokens,
            output_tokens: self.output_tokens,
        }
    }

    /// The line written: JSON, a tab, its CRC-32, a newline.
    ///
    /// Written by hand (one per request on the hot path; serde's writer was the larger part of
    /// the ledger's cost): the same object serde writes, `Record::parse` reads both. A model
    /// name that would need escaping (the request check admits none) goes through serde.
    pub fn line(&self) -> Vec<u8> {
        use std::io::Write as _;
        let plain = self
            .model
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
        let mut out = Vec::with_capacity(96 + self.model.len());
        if plain {
            // Integers by hand (`core::fmt` was most of the line's cost); the same digits.
            out.extend_from_slice(b"{\"t\":");
            push_u64(&mut out, self.ts_ms);
            out.extend_from_slice(b",\"u\":");
            push_u64(&mut out, u64::from(self.uid));
            out.extend_from_slice(b",\"m\":\"");
            out.extend_from_slice(self.model.as_bytes());
            out.extend_from_slice(b"\",\"i\":");
            push_u64(&mut out, self.input_tokens);
            out.extend_from_slice(b",\"c\":");
            push_u64(&mut out, self.cached_input_tokens);
            out.extend_from_slice(b",\"o\":");
            push_u64(&mut out, self.output_tokens);
            out.extend_from_slice(b",\"s\":");
            push_u64(&mut out, u64::from(self.status));
            out.extend_from_slice(b",\"k\":");
            // `cost` is finite (`Record::new`); serde writes floats the same way (ryu).
            let _ = serde_json::to_writer(&mut out, &self.cost);
            out.push(b'}');
        } else {
            out = serde_json::to_vec(self).unwrap_or_default();
        }
        let crc = crc32(&out);
        let _ = writeln!(out, "\t{crc:08x}");
        out
    }

    /// Parses one line (without its newline); `None` when torn or corrupt.
    pub fn parse(line: &[u8]) -> Option<Self> {
        let tab = line.iter().rposition(|&b| b == b'\t')?;
        let (json, crc) = (&line[..tab], &line[tab + 1..]);
        let crc = u32::from_str_radix(std::str::from_utf8(crc).ok()?, 16).ok()?;
        if crc32(json) != crc {
            return None;
        }
        serde_json::from_slice(json).ok()
    }
}

/// Appends `n` in decimal.
fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// CRC-32 (IEEE 802.3, reflected, as zlib's).
pub fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    let mut c = !0u32;
    for &b in data {
        c = TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

/// What reading a ledger file found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Valid records.
    pub records: u64,
    /// Lines skipped (bad checksum, not JSON): torn writes of earlier crashes.
    pub corrupt: u64,
    /// The file did not end with a newline (a torn last write).
    pub torn_tail: bool,
}

/// Opening the state directory failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("--state-dir: {0}")]
    Dir(#[source] codex_privsep::TrustedDirError),
    #[error("--state-dir {}: cannot read {name}: {source}", dir.display())]
    Read {
        dir: PathBuf,
        name: String,
        source: io::Error,
    },
    #[error("--state-dir {}: cannot list: {source}", dir.display())]
    List { dir: PathBuf, source: io::Error },
    #[error("--state-dir {}: another responses-api-proxy is using it (each needs its own state directory: budgets are counted in each process)", dir.display())]
    InUse { dir: PathBuf },
    #[error("--state-dir {}: cannot lock it: {source}", dir.display())]
    Lock { dir: PathBuf, source: io::Error },
}

/// The file name of a month's ledger.
pub fn file_name(month: Month) -> String {
    format!("ledger-{}.log", month.label())
}

/// Reads every record of one file's bytes.
pub fn parse_all(bytes: &[u8], out: &mut Vec<Record>) -> ReplayStats {
    let mut stats = ReplayStats {
        torn_tail: !bytes.is_empty() && bytes.last() != Some(&b'\n'),
        ..ReplayStats::default()
    };
    let complete = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(i) => &bytes[..i],
        None => &[][..],
    };
    if bytes.contains(&b'\n') {
        for line in complete.split(|&b| b == b'\n') {
            if line.is_empty() {
                continue;
            }
            match Record::parse(line) {
                Some(r) => {
                    stats.records += 1;
                    out.push(r);
                }
                None => stats.corrupt += 1,
            }
        }
    }
    stats
}

/// The writer (see the module docs).
#[derive(Debug)]
pub struct Ledger {
    dir: TrustedDir,
    /// `.lock`, `flock`ed while this ledger lives (one proxy per state dir).
    _lock: File,
    file: Option<(Month, File)>,
    /// The file does not end with a newline (torn tail, or a failed write): write one first.
    needs_newline: bool,
    /// Written since the last `fdatasync`.
    dirty: bool,
    /// Lines not written yet (the last write failed).
    pending: VecDeque<Vec<u8>>,
    /// The last write or sync error, while unhealthy.
    error: Option<String>,
    /// The account besides root and us that may own the files ([`Ledger::open_for`]).
    writer: Option<u32>,
}

impl Ledger {
    /// Opens (creating, mode 0700) the state directory with the dump directory's checks, and
    /// reads this month's records (for the budgets). The month's file is opened for appending
    /// now, before the privilege drop; a failure to open it is not an error here: the ledger
    /// starts unhealthy and says why.
    pub fn open(path: &Path, now_ms: u64) -> Result<(Self, Vec<Record>, ReplayStats), LedgerError> {
        Self::open_for(path, now_ms, None)
    }

    /// [`Ledger::open`] for a process that will drop to the account `writer` (which may own the
    /// directory): the directory belongs to root, to us or to `writer`, and nobody else can
    /// write it, sticky or not ([`Leaf::Private`]; outside review r53 F1: another user's
    /// directory, or a root-owned `1777` one, let that user replace the ledger).
    pub fn open_for(
        path: &Path,
        now_ms: u64,
        writer: Option<u32>,
    ) -> Result<(Self, Vec<Record>, ReplayStats), LedgerError> {
        let dir =
            TrustedDir::open(path, Some(0o700), Leaf::Private(writer)).map_err(LedgerError::Dir)?;
        // One proxy per directory: the month's file is replaced at each start (below).
        let lock = match dir.lock_file(OsStr::new(LOCK_FILE), writer) {
            Ok(Some(f)) => f,
            Ok(None) => {
                return Err(LedgerError::InUse {
                    dir: path.to_path_buf(),
                });
            }
            Err(source) => {
                return Err(LedgerError::Lock {
                    dir: path.to_path_buf(),
                    source,
                });
            }
        };
        let month = Month::of_ms(now_ms);
        let mut records = Vec::new();
        let name = file_name(month);
        let mut bytes = Vec::new();
        let stats = match dir.open_read(&OsString::from(&name)) {
            Ok(mut f) => {
                TrustedDir::check_private_file(&f, writer).map_err(|source| LedgerError::Read {
                    dir: path.to_path_buf(),
                    name: name.clone(),
                    source,
                })?;
                f.read_to_end(&mut bytes)
                    .map_err(|source| LedgerError::Read {
                        dir: path.to_path_buf(),
                        name: name.clone(),
                        source,
                    })?;
                parse_all(&bytes, &mut records)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => ReplayStats::default(),
            Err(source) => {
                return Err(LedgerError::Read {
                    dir: path.to_path_buf(),
                    name,
                    source,
                });
            }
        };
        let mut ledger = Self {
            dir,
            _lock: lock,
            file: None,
            needs_newline: stats.torn_tail,
            dirty: false,
            pending: VecDeque::new(),
            error: None,
            writer,
        };
        match ledger.fresh_file(month, &bytes) {
            Ok(f) => ledger.file = Some((month, f)),
            Err(e) => ledger.error = Some(format!("cannot open {name}: {e}")),
        }
        Ok((ledger, records, stats))
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the last write (or open, or sync) succeeded. Records queued by [`Ledger::push`]
    /// and not written yet do not make it unhealthy; a failed write does until a retry succeeds.
    pub fn healthy(&self) -> bool {
        self.error.is_none()
    }

    /// Records queued and not written yet.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Why not, when not.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    fn file_for(&mut self, month: Month) -> io::Result<&mut File> {
        if self.file.as_ref().is_none_or(|(m, _)| *m != month) {
            let f = self.later_file(month)?;
            // A new month's file starts clean; a reopened one may end torn.
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            if self.file.is_some() {
                self.needs_newline = len > 0;
            }
            self.file = Some((month, f));
        }
        match &mut self.file {
            Some((_, f)) => Ok(f),
            None => Err(io::Error::other("no ledger file")),
        }
    }

    /// At start (before the proxy's seccomp filter, which has no `rename`): `month`'s file,
    /// opened for appending as an inode this process made. The bytes just replayed (`records`,
    /// read once, from the checked file) are written into a new file (`O_EXCL`, 0600, `fdatasync`ed) that is renamed over the old name. A
    /// descriptor anyone opened on the old file (outside review r56 F1: the file's owner before
    /// an administrator chowned it to root) now writes to a file with no name, which no replay
    /// and no report reads.
    fn fresh_file(&self, month: Month, records: &[u8]) -> io::Result<File> {
        use std::os::unix::fs::PermissionsExt;
        let name = OsString::from(file_name(month));
        let tmp = OsString::from(format!(".{}.new", file_name(month)));
        // Left by a crash between the create and the rename: never trusted, made again.
        match self.dir.remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut new = self.dir.create_new(&tmp, 0o600)?;
        let copied = (|| {
            new.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            new.write_all(records)?;
            new.sync_data()?;
            self.dir.rename(&tmp, &name)
        })();
        if let Err(e) = copied {
            let _ = self.dir.remove_file(&tmp);
            return Err(e);
        }
        self.append_to_made(month, &new)
    }

    /// Later (a new month, or a retry after the start could not open the file; under the
    /// seccomp filter): a file made now with `O_EXCL` when there is none, so also an inode
    /// this process made; a file that exists already (made before the month began, or by an
    /// earlier start) is opened with the ownership checks only (see the README).
    fn later_file(&self, month: Month) -> io::Result<File> {
        let name = OsString::from(file_name(month));
        match self.dir.create_new(&name, 0o600) {
            Ok(made) => {
                use std::os::unix::fs::PermissionsExt;
                made.set_permissions(std::fs::Permissions::from_mode(0o600))?;
                self.append_to_made(month, &made)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let f = self.dir.open_append(&name, 0o600)?;
                TrustedDir::check_private_file(&f, self.writer)?;
                Ok(f)
            }
            Err(e) => Err(e),
        }
    }

    /// `month`'s file opened for appending, checked to be the inode `made` (just made here).
    fn append_to_made(&self, month: Month, made: &File) -> io::Result<File> {
        use std::os::unix::fs::MetadataExt;
        let f = self
            .dir
            .open_append(&OsString::from(file_name(month)), 0o600)?;
        TrustedDir::check_private_file(&f, self.writer)?;
        let (made, opened) = (made.metadata()?, f.metadata()?);
        if (made.dev(), made.ino()) != (opened.dev(), opened.ino()) {
            return Err(io::Error::other(format!(
                "{} was replaced while it was being made",
                file_name(month)
            )));
        }
        Ok(f)
    }

    /// Queues a record for the next [`Ledger::flush_pending`].
    pub fn push(&mut self, rec: &Record) {
        if self.pending.len() >= MAX_PENDING {
            self.pending.pop_front();
        }
        self.pending.push_back(rec.line());
    }

    /// Appends a record (and any earlier ones still pending) now. On failure the record is kept
    /// for the next attempt and the ledger is unhealthy until one succeeds.
    pub fn append(&mut self, rec: &Record) -> io::Result<()> {
        self.push(rec);
        self.flush_pending(Month::of_ms(rec.ts_ms))
    }

    /// Writes the pending records (into `month`'s file).
    pub fn flush_pending(&mut self, month: Month) -> io::Result<()> {
        let r = self.try_flush(month);
        match &r {
            Ok(()) => self.error = None,
            Err(e) => {
                self.needs_newline = true;
                self.error = Some(e.to_string());
            }
        }
        r
    }

    fn try_flush(&mut self, month: Month) -> io::Result<()> {
        // The file must be open even with nothing pending: a ledger that could not open its
        // file (read-only state dir) is not healthy just because no record failed yet.
        self.file_for(month)?;
        if self.pending.is_empty() {
            return Ok(());
        }
        let lead = usize::from(self.needs_newline);
        let mut buf = Vec::with_capacity(lead + self.pending.iter().map(Vec::len).sum::<usize>());
        if self.needs_newline {
            buf.push(b'\n');
        }
        for line in &self.pending {
            buf.extend_from_slice(line);
        }
        let f = self.file_for(month)?;
        let mut off = 0;
        let result = loop {
            if off == buf.len() {
                break Ok(());
            }
            match f.write(&buf[off..]) {
                Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => off += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        if off > 0 {
            self.dirty = true;
        }
        // Whole lines that went out are done; a line cut short stays queued and the next write
        // starts on a new line (the cut one fails its checksum and is skipped).
        let mut pos = lead;
        if off >= lead {
            self.needs_newline = false;
        }
        while let Some(line) = self.pending.front() {
            if pos + line.len() > off {
                break;
            }
            pos += line.len();
            self.pending.pop_front();
        }
        if off > pos {
            self.needs_newline = true;
        }
        result
    }

    /// A descriptor to `fdatasync` off the event loop when records were written since the
    /// last one (`None`: nothing to sync).
    pub fn sync_handle(&mut self) -> Option<File> {
        if !self.dirty {
            return None;
        }
        let f = self.file.as_ref()?.1.try_clone().ok()?;
        self.dirty = false;
        Some(f)
    }

    /// An `fdatasync` run elsewhere failed: records may not be durable; unhealthy until the
    /// next successful write.
    pub fn sync_failed(&mut self, e: &io::Error) {
        self.dirty = true;
        self.error = Some(format!("fdatasync: {e}"));
    }

    /// `fdatasync` when records were written since the last one (see the module docs).
    pub fn sync(&mut self) -> io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        if let Some((_, f)) = &self.file {
            if let Err(e) = f.sync_data() {
                self.error = Some(format!("fdatasync: {e}"));
                return Err(e);
            }
        }
        self.dirty = false;
        Ok(())
    }
}

/// Every record between two days (inclusive) in the state directory, for reports. Opened with
/// the same directory checks as the writer; files are read, never written.
pub fn read_range(
    path: &Path,
    from_day: i64,
    to_day: i64,
) -> Result<(Vec<Record>, ReplayStats), LedgerError> {
    let dir = TrustedDir::open(path, None, Leaf::AnyOwner).map_err(LedgerError::Dir)?;
    let mut records = Vec::new();
    let mut total = ReplayStats::default();
    let mut month = Month::of_day(from_day);
    let last = Month::of_day(to_day);
    while month <= last {
        let name = file_name(month);
        match dir.open_read(&OsString::from(&name)) {
            Ok(mut f) => {
                if !f.metadata().is_ok_and(|m| m.is_file()) {
                    return Err(LedgerError::Read {
                        dir: path.to_path_buf(),
                        name,
                        source: io::Error::other("not a regular file"),
                    });
                }
                let mut bytes = Vec::new();
                f.read_to_end(&mut bytes)
                    .map_err(|source| LedgerError::Read {
                        dir: path.to_path_buf(),
                        name: name.clone(),
                        source,
                    })?;
                let mut recs = Vec::new();
                let s = parse_all(&bytes, &mut recs);
                total.records += s.records;
                total.corrupt += s.corrupt;
                total.torn_tail |= s.torn_tail;
                records.extend(recs.into_iter().filter(|r| {
                    let d = clock::day_of(r.ts_ms);
                    d >= from_day && d <= to_day
                }));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(LedgerError::Read {
                    dir: path.to_path_buf(),
                    name,
                    source,
                });
            }
        }
        month = month.next();
    }
    Ok((records, total))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const NOW: u64 = 1_796_510_821_000; // 2026-12-05

    /// The hand-written line is the object serde writes, and it reads back to the same record.
    #[test]
    fn the_line_is_serdes_object_and_parses_back() {
        let usage = Usage {
            input_tokens: u64::MAX,
            cached_input_tokens: 7,
            output_tokens: 123_456,
        };
        for (model, cost) in [
            ("gpt-5.1-codex", 0.0),
            ("o4-mini:2025/x@y+z", 12.345_678_9),
            ("odd \"name\"\\", 1e-9),
            ("", 3.5e12),
        ] {
            for r in [
                Record::new(NOW, u32::MAX, model, usage, 429, cost),
                Record::new(0, 0, model, Usage::default(), 0, cost),
                Record::new(10, 9, model, Usage::default(), 100, cost),
            ] {
                let line = r.line();
                let text = std::str::from_utf8(&line).unwrap();
                let (json, crc) = text.trim_end_matches('\n').rsplit_once('\t').unwrap();
                assert_eq!(json.as_bytes(), serde_json::to_vec(&r).unwrap(), "{model}");
                assert_eq!(crc, format!("{:08x}", crc32(json.as_bytes())));
                assert_eq!(Record::parse(&line[..line.len() - 1]), Some(r));
            }
        }
    }

    fn rec(i: u64) -> Record {
        Record::new(
            NOW + i,
            1001,
            "gpt-5",
            Usage {
                input_tokens: i,
                cached_input_tokens: 0,
                output_tokens: 2 * i,
            },
            200,
            0.5,
        )
    }

    /// A state dir as the ledger takes it: 0700 (tempfile's may be open to others).
    pub(crate) fn state_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        d
    }

    #[test]
    fn crc_matches_zlib() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    /// Outside review r56 F1: each start makes the month's file anew (same bytes, new inode), so
    /// a descriptor opened before writes to a file nobody reads; a copy left by a crash before
    /// its rename is not trusted. A later month's file is made with `O_EXCL`; one that exists
    /// already is taken with the ownership checks (the documented limit). One ledger per dir.
    #[test]
    fn each_start_writes_to_a_file_it_made_itself() {
        use std::os::unix::fs::MetadataExt;
        let d = state_dir();
        let file = d.path().join(file_name(Month::of_ms(NOW)));
        let ino = || std::fs::metadata(&file).unwrap().ino();
        let (mut l, _, _) = Ledger::open(d.path(), NOW).unwrap();
        l.append(&rec(1)).unwrap();
        assert!(matches!(
            Ledger::open(d.path(), NOW),
            Err(LedgerError::InUse { .. })
        ));
        drop(l);
        let old = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        let before = ino();
        // A crash left a copy with a forged record beside it.
        let tmp = d
            .path()
            .join(format!(".{}.new", file_name(Month::of_ms(NOW))));
        std::fs::write(&tmp, rec(66).line()).unwrap();
        let (mut l, recs, _) = Ledger::open(d.path(), NOW).unwrap();
        assert_eq!(recs, vec![rec(1)]);
        assert_ne!(ino(), before, "the month's file was not made anew");
        assert!(!tmp.exists());
        assert_eq!(std::fs::read(&file).unwrap(), rec(1).line(), "same bytes");
        (&old).write_all(&rec(77).line()).unwrap();
        l.append(&rec(2)).unwrap();
        drop(l);
        let (_, recs, _) = Ledger::open(d.path(), NOW).unwrap();
        assert_eq!(
            recs,
            vec![rec(1), rec(2)],
            "the old descriptor's record is not read"
        );
    }

    /// Outside review r57 F3: a FIFO in place of the month's file blocked the proxy's start
    /// and `usage` in `open()` for good. Refused at once now, naming the file.
    #[test]
    fn a_fifo_in_place_of_the_ledger_is_refused_without_blocking() {
        let d = state_dir();
        let name = file_name(Month::of_ms(NOW));
        let ok = std::process::Command::new("mkfifo")
            .arg(d.path().join(&name))
            .status()
            .unwrap();
        assert!(ok.success());
        let e = Ledger::open(d.path(), NOW).unwrap_err().to_string();
        assert!(e.contains(&name) && e.contains("regular file"), "{e}");
        let day = clock::day_of(NOW);
        let e = read_range(d.path(), day, day).unwrap_err().to_string();
        assert!(e.contains(&name) && e.contains("not a regular file"), "{e}");
    }

    #[test]
    fn records_survive_reopen_and_torn_tails_never_spoil_the_next() {
        let d = state_dir();
        {
            let (mut l, recs, stats) = Ledger::open(d.path(), NOW).unwrap();
            assert!(recs.is_empty() && stats == ReplayStats::default());
            for i in 0..10 {
                l.append(&rec(i)).unwrap();
            }
            l.sync().unwrap();
        }
        let file = d.path().join(file_name(Month::of_ms(NOW)));
        // A torn write: half a record, no newline (a power cut mid-write).
        let half = rec(99).line();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap();
        f.write_all(&half[..half.len() / 2]).unwrap();
        drop(f);
        let (mut l, recs, stats) = Ledger::open(d.path(), NOW).unwrap();
        assert_eq!(recs.len(), 10);
        assert_eq!(recs[3], rec(3));
        assert!(stats.torn_tail);
        l.append(&rec(10)).unwrap();
        drop(l);
        let (_, recs, stats) = Ledger::open(d.path(), NOW).unwrap();
        assert_eq!(recs.len(), 11, "the record after a torn tail is intact");
        assert_eq!(recs[10], rec(10));
        assert_eq!((stats.corrupt, stats.torn_tail), (1, false));
        // A flipped byte inside a record: that record is skipped, the others stay.
        let mut bytes = std::fs::read(&file).unwrap();
        let i = bytes.iter().position(|&b| b == b'"').unwrap() + 1;
        bytes[i] ^= 0x20;
        std::fs::write(&file, &bytes).unwrap();
        let (_, recs, stats) = Ledger::open(d.path(), NOW).unwrap();
        assert_eq!((recs.len(), stats.corrupt), (10, 2));
        // The report reader sees the same records.
        let day = clock::day_of(NOW);
        let (all, _) = read_range(d.path(), day, day).unwrap();
        assert_eq!(all.len(), 10);
        assert!(
            read_range(d.path(), day + 1, day + 40)
                .unwrap()
                .0
                .is_empty()
        );
    }

    #[test]
    fn a_full_disk_keeps_the_record_pending_and_unhealthy_until_written() {
        // /dev/full: every write fails with ENOSPC.
        let d = state_dir();
        let (mut l, _, _) = Ledger::open(d.path(), NOW).unwrap();
        l.append(&rec(1)).unwrap();
        let month = Month::of_ms(NOW);
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full is needed for this test");
        let real = l.file.replace((month, full));
        let e = l.append(&rec(2)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        assert!(!l.healthy());
        assert!(
            l.error().unwrap().contains("No space left"),
            "{:?}",
            l.error()
        );
        // Space again: the pending record goes out first, then the new one.
        l.file = real;
        l.append(&rec(3)).unwrap();
        assert!(l.healthy());
        drop(l);
        let (_, recs, stats) = Ledger::open(d.path(), NOW).unwrap();
        assert_eq!(recs, vec![rec(1), rec(2), rec(3)]);
        assert_eq!(stats.corrupt, 0);
    }
}
