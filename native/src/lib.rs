//! C ABI over the SPOTS crypto core.

use std::ffi::c_char;

static VERSION: &[u8] = concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes();

/// Returns the core version as a static NUL-terminated string; never free it.
#[unsafe(no_mangle)]
pub extern "C" fn spots_core_version() -> *const c_char {
    let _ = spots_core::CORE_VERSION;
    VERSION.as_ptr().cast()
}
