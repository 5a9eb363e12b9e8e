//! See `epicenter::fuzzing::webhook`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| epicenter::fuzzing::webhook(data));
