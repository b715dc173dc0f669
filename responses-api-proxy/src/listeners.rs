//! Start-up step 2: the listeners the flags name (`--listen`, `--port`; unix sockets through
//! codex-privsep's safe bind: mode, group, checked ancestors, stale sockets) plus the ones systemd
//! passed (`LISTEN_FDS`). With activated listeners and neither `--listen` nor `--port`, only those
//! are used.

use std::path::PathBuf;

use codex_privsep::{ActivatedListener, DEFAULT_SOCKET_MODE, UnixSocketSpec};

use crate::cli::{Args, ListenAddr};
use crate::listener::{BindError, BoundListener};

/// Binding a listener failed: which one and why.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("systemd socket activation: {0}")]
    Activation(#[source] codex_privsep::ActivationError),
    #[error("--socket-group: {0}")]
    SocketGroup(#[source] codex_privsep::ResolveError),
    #[error("{0}")]
    Unix(#[source] codex_privsep::UnixSocketError),
    #[error("{0}")]
    Tcp(#[source] BindError),
}

/// Binds every listener; still single-threaded (no runtime yet).
pub fn bind_listeners(args: &Args) -> Result<Vec<BoundListener>, ListenError> {
    let activated = codex_privsep::listeners_from_systemd().map_err(ListenError::Activation)?;
    let mut out = Vec::new();
    let use_flags = activated.is_empty() || !args.listen.is_empty() || args.port.is_some();
    if use_flags {
        let group = match &args.access.socket_group {
            Some(g) => {
                Some(codex_privsep::users::resolve_gid(g).map_err(ListenError::SocketGroup)?)
            }
            None => None,
        };
        for addr in args.listen_addrs() {
            match &addr {
                ListenAddr::Unix(path) => {
                    let spec = UnixSocketSpec {
                        path: path.clone(),
                        mode: args.access.socket_mode.unwrap_or(DEFAULT_SOCKET_MODE),
                        group,
                    };
                    let l = codex_privsep::bind_unix_listener(&spec).map_err(ListenError::Unix)?;
                    out.push(BoundListener::from_std_unix(l, path.clone()));
                }
                ListenAddr::Tcp(_) => {
                    out.push(BoundListener::bind(&addr).map_err(ListenError::Tcp)?)
                }
                ListenAddr::Localhost(port) => {
                    out.extend(crate::listener::bind_localhost(*port).map_err(ListenError::Tcp)?)
                }
            }
        }
    }
    for l in activated {
        out.push(match l {
            ActivatedListener::Tcp(t) => BoundListener::from_std_tcp(t),
            ActivatedListener::Unix(u) => {
                let path = u
                    .local_addr()
                    .ok()
                    .and_then(|a| a.as_pathname().map(PathBuf::from))
                    .unwrap_or_else(|| PathBuf::from("(systemd socket)"));
                BoundListener::from_std_unix(u, path)
            }
        });
    }
    Ok(out)
}
