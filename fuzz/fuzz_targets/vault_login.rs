//! Fuzz target: the lease numbers of a Vault login or renewal answer.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ccsecrets::fuzzing::vault_login(data);
});
