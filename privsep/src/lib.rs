//! Being built: see the crate README.
