//! Support code for the end-to-end story test (`tests/story.rs`) and its attacker helper
//! (`story-attacker`): the raw syscalls an unprivileged local user has for reaching into another
//! process ([`sys`]), and the one-line-per-attempt report format the helper prints and the test
//! parses ([`report`]).
//!
//! All `unsafe` code of this crate is in [`sys`].

pub mod report;
pub mod sys;
