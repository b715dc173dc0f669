//! Being built: see the crate README.
#![forbid(unsafe_code)]
