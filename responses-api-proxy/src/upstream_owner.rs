//! A plain-http upstream gets the key in clear text, so it must be on this machine and its
//! listening socket must belong to the account the administrator named (`--upstream-owner`,
//! default root): loopback ports belong to nobody, and another local user listening on
//! `127.0.0.1:P` or `[::1]:P` (nothing yet there, or `localhost` resolving to the other family)
//! would otherwise receive `Authorization: Bearer <key>` with the first request.
//!
//! The check is `codex-privsep`'s [`UpstreamOwner`] (`owner_check::ExpectedOwner`, shared with
//! the `codex` CLI, which applies it to loopback providers that receive the user's key): the
//! upstream client (`client.rs`) calls `verify` after each new plain-http connection and before
//! a byte is written on it; sock_diag says who owns the other end, and the connection is refused
//! unless it is that uid. HTTPS upstreams are authenticated by TLS instead
//! and are not checked. Cost: one sock_diag round trip (~6 µs) per new plain-http upstream
//! connection; pooled connections are not checked again.

pub use codex_privsep::owner_check::ExpectedOwner as UpstreamOwner;

/// The proxy's expectation: `uid` (`--upstream-owner`) owns the plain-http upstream. The sock_diag
/// socket is installed by the confinement step, which opens it after the listeners are bound.
pub fn upstream_owner(uid: u32) -> UpstreamOwner {
    UpstreamOwner::new(uid, "plain-http upstream", "the --upstream-owner uid")
}
