//! See `epicenter::fuzzing::sql`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| epicenter::fuzzing::sql(data));
