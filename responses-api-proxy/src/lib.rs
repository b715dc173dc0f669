//! `responses-api-proxy`: holds an OpenAI API key that local users may use but never read, and
//! forwards `POST /v1/responses` with it. See the crate README for guarantees, flags, the
//! start-up order and the header table.
#![forbid(unsafe_code)]

pub mod access;
pub mod admin;
pub mod audit;
pub mod body;
pub mod cli;
pub mod client;
pub mod confinement;
pub mod files;
pub mod framing;
pub mod governed;
pub mod key;
pub mod key_pages;
pub mod key_source;
pub mod listener;
pub mod listeners;
pub mod metrics;
pub mod off_loop;
pub mod peer_access;
pub mod per_user;
pub mod policy;
pub mod proxy;
pub mod rotation;
pub mod scrub;
pub mod server;
pub mod startup;
pub mod subuid;
pub mod upstream;
pub mod upstream_owner;
pub mod wire;
pub mod ws;
pub mod ws_frame;

/// A boxed error that crosses the data path's layers (request and response bodies).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub mod usage_report;
