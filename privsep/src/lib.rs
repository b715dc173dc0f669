//! Privilege separation for `responses-api-proxy` (Linux).
//!
//! The mechanisms that make the API key usable only by the users an administrator names, from a
//! process that runs unprivileged and confined:
//!
//! - [`peer`]: who is connecting — `SO_PEERCRED` on unix sockets, sock_diag for loopback TCP.
//! - [`owner_check`]: the reverse — who owns the loopback server we connect to, before a key is
//!   sent over plain http (the proxy's upstream, the CLI's loopback providers).
//! - [`allow`]: the `--allow-user`/`--allow-group` list, resolved at start-up.
//! - [`unix_socket`]: binding `--listen unix:/path` without following symlinks or removing
//!   anything but a stale socket.
//! - [`trusted_dir`]: opening a directory to write into (server-info, dump dir) with every
//!   directory from `/` checked like the unix socket's and no symlink followed that a stranger
//!   could have placed.
//! - [`activation`]: systemd socket activation (`LISTEN_FDS`).
//! - [`credentials`]: the key from a file or `$CREDENTIALS_DIRECTORY` (systemd credentials).
//! - [`nofile`]: the descriptor limit raised to its hard limit at start (the connection cap is
//!   derived from it).
//! - [`privdrop`]: `--user` / the default account, verified irreversible.
//! - [`confine`]: the proxy's confinement profile — which paths and ports Landlock leaves, and
//!   [`seccomp_policy`], its seccomp table — applied with `codex-confine`'s mechanism
//!   (no_new_privs, Landlock, seccomp).
//!
//! Start-up order (the proxy's `main`, single-threaded until the last step; docs/security.md
//! keeps the authoritative list): resolve the allow-list and the account, load TLS roots, read
//! the key, bind listeners (or take activated ones), write the server-info file, open the
//! [`peer::PeerIdentifier`], [`privdrop`], [`confine`], then start the runtime and serve.
//!
//! All `unsafe` code is in the private `sys` module.

pub mod activation;
pub mod allow;
pub mod busy_poll;
pub mod confine;
pub mod credentials;
pub mod key_opener;
pub mod nofile;
pub mod owner_check;
pub mod peer;
pub mod privdrop;
pub mod seccomp_policy;
mod sys;
pub mod trusted_dir;
pub mod unix_socket;
pub mod users;

pub use activation::{ActivatedListener, ActivationError, listeners_from_systemd};
pub use allow::{AllowList, AllowListError};
pub use codex_confine::thread_count;
pub use confine::{
    ConfineError, ConfineReport, ConfineSpec, check_writable_dir, confine, install_panic_hook,
};
pub use credentials::{
    CredentialError, FileDir, FileKind, open_config_file, open_key_file, open_subuid_file,
    systemd_credential,
};
pub use key_opener::{KeyOpener, KeyOpenerError};
pub use nofile::{NofileError, NofileLimit, raise_nofile_limit};
pub use peer::{PeerCred, PeerError, PeerIdentifier, peer_cred_unix};
pub use privdrop::{DEFAULT_ACCOUNT, DropError, DropReport, RunAs};
pub use trusted_dir::{Leaf, TrustedDir, TrustedDirError};
pub use unix_socket::{
    DEFAULT_SOCKET_MODE, UnixSocketError, UnixSocketSpec, bind_unix_listener, parse_socket_mode,
};
pub use users::{Account, ResolveError};

/// Ignores `SIGXFSZ` (inherited by the key opener): under a file-size limit
/// (`LimitFSIZE=`, `ulimit -f`) a write past it then fails with `EFBIG`, which the ledger and
/// dump writers handle like a full disk, instead of killing the process (outside review r103
/// F1: one request body larger than the limit, dumped, ended the proxy for everyone; a ledger
/// reaching it did the same, with its last record torn, at every restart).
pub fn ignore_file_size_signal() -> std::io::Result<()> {
    sys::ignore_signal(libc::SIGXFSZ)
}

/// This process's effective uid.
pub fn effective_uid() -> u32 {
    // `geteuid`, not `getresuid`: the proxy's seccomp allow-list has the former only, and the
    // ledger's first file of a new month is checked with this while serving (outside review
    // r102 F1: `getresuid` refused, the proxy exited 10 at every month's first response)
    sys::geteuid()
}
