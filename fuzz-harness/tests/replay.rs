//! Replays every file of `fuzz/corpus/<target>/` through its target (what CI runs: the corpus
//! the long fuzz runs kept, plus the crash regressions). A missing or empty corpus fails.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::PathBuf;

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

#[test]
fn every_corpus_file_passes_its_target() {
    for (name, target) in fuzz_harness::TARGETS {
        let dir = corpus(name);
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            if std::env::var_os("REPLAY_TRACE").is_some() {
                eprintln!("{}", path.display());
            }
            let r = std::panic::catch_unwind(|| target(&data));
            assert!(
                r.is_ok(),
                "{name}: {} violates the property",
                path.display()
            );
            n += 1;
        }
        assert!(n > 0, "{name}: empty corpus {}", dir.display());
        eprintln!("{name}: {n} inputs replayed");
    }
}
