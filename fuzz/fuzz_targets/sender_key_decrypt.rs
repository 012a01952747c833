//! Fuzz target `sender_key_decrypt` (see `src/lib.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    spots_signal_fuzz::run("sender_key_decrypt", data);
});
