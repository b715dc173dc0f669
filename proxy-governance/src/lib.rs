//! `codex-proxy-governance`: who may spend how much on what through `responses-api-proxy`.
//! Per-user policy ([`policy`]), request checks ([`check`]), rate limits and token/cost budgets
//! ([`governor`]), usage taken from the responses themselves ([`usage`]), a crash-safe ledger
//! ([`ledger`]) and the administrator's report ([`report`]). Independent of the HTTP stack: the
//! proxy hands it request bytes and response bytes. See the README.
#![forbid(unsafe_code)]
// A `Refusal` (136 bytes) is built once per refused request, the cold path, next to a JSON
// parse of the body: boxing it would buy nothing measurable.
#![allow(clippy::result_large_err)]

pub mod check;
pub mod clock;
pub mod glob;
pub mod governor;
pub mod ledger;
pub mod policy;
pub mod report;
pub mod sizing;
pub mod usage;

pub use check::{Checked, Endpoint, Refusal};
pub use governor::{Admitted, Governor, Recorded, Reservation, Totals};
pub use ledger::{Ledger, LedgerError, Record, ReplayStats};
pub use policy::{Policy, PolicyError, Rule, SystemDirectory};
pub use usage::{TapResult, Usage, UsageTap};
