//! See `epicenter::fuzzing::checkpoint`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| epicenter::fuzzing::checkpoint(data));
