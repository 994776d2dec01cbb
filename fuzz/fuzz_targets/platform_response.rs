//! Fuzz target: platform token and error bodies, and the CXone JWT claims.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ccsecrets::fuzzing::platform_response(data);
});
