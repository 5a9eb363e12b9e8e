//! See `epicenter::fuzzing::outbox`. The outbox catches a panic inside redb
//! while opening a damaged file and refuses the file instead; libFuzzer's
//! panic hook would abort before that, so the default hook is put back:
//! only a panic the outbox lets through is a crash.
#![no_main]

libfuzzer_sys::fuzz_target!(
    init: {
        let _ = std::panic::take_hook();
    },
    |data: &[u8]| epicenter::fuzzing::outbox(data)
);
