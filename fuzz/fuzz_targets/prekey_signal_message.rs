//! Fuzz target `prekey_signal_message` (see `src/lib.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    spots_signal_fuzz::run("prekey_signal_message", data);
});
