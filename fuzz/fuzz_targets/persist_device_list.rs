//! Fuzz target `persist_device_list` (see `src/lib.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    spots_signal_fuzz::run("persist_device_list", data);
});
