//! Fuzz target `share_payload` (see `src/lib.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    spots_signal_fuzz::run("share_payload", data);
});
