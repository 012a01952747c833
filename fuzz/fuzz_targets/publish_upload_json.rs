//! Fuzz target `publish_upload_json` (see `src/lib.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    spots_signal_fuzz::run("publish_upload_json", data);
});
