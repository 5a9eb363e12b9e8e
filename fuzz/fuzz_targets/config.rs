//! See `epicenter::fuzzing::config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| epicenter::fuzzing::config(data));
