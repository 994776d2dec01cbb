//! Fuzz target: the DynamicValue codec, msgpack and JSON, against every schema.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ccsecrets::fuzzing::dynamic_value(data);
});
