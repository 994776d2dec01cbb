//! Smoke run of the committed fuzz corpus (`fuzz/corpus/<target>/`): every input goes through
//! the same entry point as its fuzz target and must not panic. `cargo fuzz` finds new inputs;
//! this keeps the ones it found passing on stable, in every `cargo test`.

use std::panic;
use std::path::Path;

/// Runs every file of one corpus directory through `run`; fails naming each input that
/// panicked, and fails on an empty corpus, which would prove nothing.
fn run_corpus(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read the corpus {}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "the corpus {} is empty", dir.display());
    let failed: Vec<String> = files
        .iter()
        .filter(|file| {
            let data = std::fs::read(file).expect("corpus file");
            panic::catch_unwind(|| run(&data)).is_err()
        })
        .map(|file| file.display().to_string())
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} inputs panicked (reproduce with `cargo fuzz run {target} <file>`):\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

#[test]
fn dynamic_value_corpus() {
    run_corpus("dynamic_value", ccsecrets::fuzzing::dynamic_value);
}

#[test]
fn platform_response_corpus() {
    run_corpus("platform_response", ccsecrets::fuzzing::platform_response);
}

#[test]
fn vault_response_corpus() {
    run_corpus("vault_response", ccsecrets::fuzzing::vault_response);
}

#[test]
fn vault_login_corpus() {
    run_corpus("vault_login", ccsecrets::fuzzing::vault_login);
}
