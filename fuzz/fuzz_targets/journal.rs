//! See `epicenter::fuzzing::journal`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| epicenter::fuzzing::journal(data));
