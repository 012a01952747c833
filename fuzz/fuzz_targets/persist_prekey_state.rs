//! Fuzz target `persist_prekey_state` (see `src/lib.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    spots_signal_fuzz::run("persist_prekey_state", data);
});
