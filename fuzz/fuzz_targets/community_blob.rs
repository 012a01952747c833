//! Fuzz target `community_blob` (see `src/lib.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    spots_signal_fuzz::run("community_blob", data);
});
