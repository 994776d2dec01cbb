//! Fuzz target: Vault KV v2 read, metadata and error bodies.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ccsecrets::fuzzing::vault_response(data);
});
