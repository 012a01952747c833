//! Fuzz target `persist_community` (see `src/lib.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    spots_signal_fuzz::run("persist_community", data);
});
