//! Files the proxy writes: the server-info file and the `--dump-dir` exchange dumps.
//!
//! Neither is ever written through a symlink, nor through a directory a stranger controls: the
//! directory is opened with [`codex_privsep::TrustedDir`] (every directory from `/` owned by root
//! or by us and writable by nobody else unless sticky, checked on the open descriptor; a symlink
//! on the way followed only when root or we own it) and files are then created relative to that
//! descriptor. Server-info goes to a fresh `O_EXCL|O_NOFOLLOW` temp file in the target's
//! directory and is renamed over the target (a rename replaces a symlink, never its target; a
//! target that is a symlink is refused outright), dump files are created `O_EXCL|O_NOFOLLOW` and
//! never overwrite anything.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use codex_privsep::{Leaf, TrustedDir, TrustedDirError};
use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderMap;

use crate::scrub::KeyScrub;

/// Writing a file failed: which file and which step.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error(transparent)]
    Dir(#[from] TrustedDirError),
    #[error("refusing to write {}: it is a symlink", path.display())]
    Symlink { path: PathBuf },
    #[error("refusing to write {}: it exists and is not a regular file", path.display())]
    NotRegular { path: PathBuf },
    #[error("failed to inspect {}: {source}", path.display())]
    Stat { path: PathBuf, source: io::Error },
    #[error("failed to create {}: {source}", path.display())]
    Create { path: PathBuf, source: io::Error },
    #[error("failed to write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("failed to rename {} to {}: {source}", from.display(), to.display())]
    Rename {
        from: PathBuf,
        to: PathBuf,
        source: io::Error,
    },
    #[error("server-info path has no file name: {}", path.display())]
    NoFileName { path: PathBuf },
}

/// Whether [`create_exclusive`] `fsync`s the file before returning.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// The server-info file: it is renamed over the target next, and a crash must not leave an
    /// empty file behind the new name.
    Durable,
    /// Dump files: a debugging aid written on the serving thread; durability is not promised,
    /// and an `fsync` per exchange would stall the runtime. Their safety comes from
    /// `O_EXCL|O_NOFOLLOW` and mode 0600, not from reaching the disk.
    None,
}

/// Creates `path` exclusively (`O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC`) with exactly `mode`
/// (set with `fchmod`, so the umask does not matter), writes `contents` and, if asked, syncs.
fn create_exclusive(
    dir: &TrustedDir,
    name: &OsStr,
    mode: u32,
    contents: &[u8],
    sync: Durability,
) -> Result<(), FileError> {
    let path = || dir.path().join(name);
    let mut file: File = dir
        .create_new(name, mode)
        .map_err(|source| FileError::Create {
            path: path(),
            source,
        })?;
    let write = |file: &mut File| -> io::Result<()> {
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        if sync == Durability::Durable {
            file.sync_all()?;
        }
        Ok(())
    };
    write(&mut file).map_err(|source| FileError::Write {
        path: path(),
        source,
    })
}

/// The server-info document: `{"port":N,"pid":M,"listen":[...]}`.
#[derive(Debug, serde::Serialize)]
pub struct ServerInfo {
    /// The first TCP listener's port (codex's format); 0 when only unix sockets are used.
    pub port: u16,
    pub pid: u32,
    /// Every listener, e.g. `127.0.0.1:40123`, `unix:/run/x.sock`.
    pub listen: Vec<String>,
}

static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// Writes `info` plus a newline to `path`: parents created, atomic (temp file in the same
/// directory, then rename), mode 0644, refusing a symlink or non-regular target.
pub fn write_server_info(path: &Path, info: &ServerInfo) -> Result<(), FileError> {
    let name = path.file_name().ok_or_else(|| FileError::NoFileName {
        path: path.to_path_buf(),
    })?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = TrustedDir::open(&parent, Some(0o755), Leaf::RootOrUs)?;
    let target = dir.path().join(name);
    match dir.kind_of(name) {
        Ok(Some(libc::S_IFLNK)) => return Err(FileError::Symlink { path: target }),
        Ok(Some(libc::S_IFREG)) | Ok(None) => {}
        Ok(Some(_)) => return Err(FileError::NotRegular { path: target }),
        Err(source) => {
            return Err(FileError::Stat {
                path: target,
                source,
            });
        }
    }
    let mut json = serde_json::to_vec(info).unwrap_or_default();
    json.push(b'\n');
    let temp = format!(
        ".{}.{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id(),
        TEMP_SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let temp = OsStr::new(&temp);
    create_exclusive(&dir, temp, 0o644, &json, Durability::Durable)?;
    dir.rename(temp, name).map_err(|source| {
        let _ = dir.remove_file(temp);
        FileError::Rename {
            from: dir.path().join(temp),
            to: target.clone(),
            source,
        }
    })
}

/// Headers whose values never go into a dump file.
const REDACTED_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// Writes exchanges to `--dump-dir`.
#[derive(Debug)]
pub struct Dumper {
    dir: TrustedDir,
    seq: AtomicU64,
}

/// Which half of an exchange.
#[derive(Clone, Copy, Debug)]
pub enum DumpKind {
    Request,
    Response,
}

impl Dumper {
    /// Uses `dir`, creating it (mode 0700) if missing. Every directory above it must be owned by
    /// root or by us; `dir` itself may belong to the account the proxy drops to, but must not be
    /// writable by group or others.
    pub fn new(dir: &Path) -> Result<Self, FileError> {
        Ok(Self {
            dir: TrustedDir::open(dir, Some(0o700), Leaf::AnyOwner)?,
            seq: AtomicU64::new(0),
        })
    }

    /// A fresh `<seq>-<ms>` prefix for one exchange.
    pub fn next_prefix(&self) -> String {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        format!("{seq:06}-{ms}")
    }

    /// Writes `<prefix>-request.json` or `<prefix>-response.json`: `head` fields, the headers
    /// (credentials redacted) and the body (as JSON when it parses, else as text). Every
    /// occurrence of the key, in any case, in the bytes written is overwritten with `*` (`key`;
    /// `headers` are the scrubbed ones: no name holding the key is left): parsing and
    /// re-serialising decodes JSON escapes, so a key that arrived as `\u0073\u006b...` (which
    /// the stream scrubber does not recognise) would otherwise be written in clear (outside
    /// review round 5, F4). The key's alphabet is never escaped by the serialiser.
    pub fn write(
        &self,
        prefix: &str,
        kind: DumpKind,
        mut head: serde_json::Map<String, serde_json::Value>,
        headers: &HeaderMap,
        body: &[u8],
        key: &KeyScrub,
    ) -> Result<PathBuf, FileError> {
        let suffix = match kind {
            DumpKind::Request => "request",
            DumpKind::Response => "response",
        };
        let mut h = serde_json::Map::new();
        for (name, value) in headers {
            let shown = if REDACTED_HEADERS.contains(&name.as_str()) {
                serde_json::Value::from("[REDACTED]")
            } else {
                serde_json::Value::from(String::from_utf8_lossy(value.as_bytes()).into_owned())
            };
            match h.get_mut(name.as_str()) {
                Some(serde_json::Value::Array(list)) => list.push(shown),
                Some(existing) => {
                    let first = existing.take();
                    *existing = serde_json::Value::Array(vec![first, shown]);
                }
                None => {
                    h.insert(name.as_str().to_string(), shown);
                }
            }
        }
        head.insert("headers".into(), serde_json::Value::Object(h));
        let body_value = match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(v) => v,
            Err(_) => serde_json::Value::from(String::from_utf8_lossy(body).into_owned()),
        };
        head.insert("body".into(), body_value);
        let mut json =
            serde_json::to_vec_pretty(&serde_json::Value::Object(head)).unwrap_or_default();
        json.push(b'\n');
        let masked = key.mask(&mut json);
        if masked > 0 {
            tracing::warn!(
                occurrences = masked,
                "the key appeared in a dump (decoded from an escaped form, or in another case); overwritten"
            );
        }
        let name = format!("{prefix}-{suffix}.json");
        create_exclusive(&self.dir, OsStr::new(&name), 0o600, &json, Durability::None)?;
        Ok(self.dir.path().join(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ServerInfo {
        ServerInfo {
            port: 1234,
            pid: 42,
            listen: vec!["127.0.0.1:1234".into()],
        }
    }

    #[test]
    fn server_info_is_atomic_0644_and_creates_parents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/info.json");
        write_server_info(&path, &info()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "{\"port\":1234,\"pid\":42,\"listen\":[\"127.0.0.1:1234\"]}\n"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        // Replacing an existing regular file works and leaves no temp files.
        write_server_info(&path, &info()).unwrap();
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("info.json")]);
    }

    #[test]
    fn server_info_refuses_symlink_and_leaves_target_alone() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("victim");
        std::fs::write(&target, "precious").unwrap();
        let link = dir.path().join("info.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = write_server_info(&link, &info()).unwrap_err();
        assert!(matches!(err, FileError::Symlink { .. }), "{err}");
        assert!(err.to_string().contains("is a symlink"));
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious");
        // Control: a regular path in the same directory is written.
        write_server_info(&dir.path().join("ok.json"), &info()).unwrap();
    }

    const DUMP_KEY: &str = "sk-proj-DUMPtest_0123456789";

    fn test_key() -> KeyScrub {
        KeyScrub::new(&http::HeaderValue::from_str(&format!("Bearer {DUMP_KEY}")).unwrap())
    }

    /// Review round 5, F4: a body carrying the key JSON-escaped (as an upstream or a client can
    /// send it; the stream scrubber only knows the literal bytes) is decoded by the dump's
    /// re-serialisation: the bytes written must still not hold the key. Control: the escaped
    /// form is valid JSON that decodes to the key.
    #[test]
    fn a_json_escaped_key_is_not_written_decoded() {
        let escaped: String = DUMP_KEY.bytes().map(|b| format!("\\u{b:04x}")).collect();
        let body = format!("{{\"echo\":\"{escaped}\"}}");
        let decoded: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            decoded["echo"], DUMP_KEY,
            "control: the escape decodes to the key"
        );
        assert!(!body.contains(DUMP_KEY));
        let dir = tempfile::tempdir().unwrap();
        let d = Dumper::new(&dir.path().join("dumps")).unwrap();
        for (i, body) in [body.clone(), format!("not json {DUMP_KEY}")]
            .iter()
            .enumerate()
        {
            let p = d
                .write(
                    &format!("00000{i}-1"),
                    DumpKind::Response,
                    serde_json::Map::new(),
                    &HeaderMap::new(),
                    body.as_bytes(),
                    &test_key(),
                )
                .unwrap();
            let text = std::fs::read_to_string(&p).unwrap();
            assert!(!text.contains(DUMP_KEY), "{text}");
            assert!(text.contains(&"*".repeat(DUMP_KEY.len())), "{text}");
            serde_json::from_str::<serde_json::Value>(&text).unwrap();
        }
    }

    #[test]
    fn dumps_redact_and_never_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let d = Dumper::new(&dir.path().join("dumps")).unwrap();
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer sk-secret".parse().unwrap());
        h.append("cookie", "a=b".parse().unwrap());
        h.append("x-kept", "1".parse().unwrap());
        let p = d
            .write(
                "000001-5",
                DumpKind::Request,
                serde_json::Map::new(),
                &h,
                b"{\"a\":1}",
                &test_key(),
            )
            .unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            !text.contains("sk-secret") && !text.contains("a=b"),
            "{text}"
        );
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["body"]["a"], 1);
        assert_eq!(v["headers"]["x-kept"], "1");
        assert_eq!(v["headers"]["authorization"], "[REDACTED]");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = d.write(
            "000001-5",
            DumpKind::Request,
            serde_json::Map::new(),
            &h,
            b"x",
            &test_key(),
        );
        assert!(matches!(again, Err(FileError::Create { .. })));
        let plain = d
            .write(
                "000002-5",
                DumpKind::Response,
                serde_json::Map::new(),
                &h,
                b"not json",
                &test_key(),
            )
            .unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(plain).unwrap()).unwrap();
        assert_eq!(v["body"], "not json");
    }
}
