//! wasm-bindgen facade over the core. No logic lives here: it converts JS values to core types
//! and core errors to JS errors.

use wasm_bindgen::prelude::*;

/// The core's version, so a deployed function can report exactly what it runs.
#[wasm_bindgen(js_name = coreVersion)]
pub fn core_version() -> String {
    spots_signal::CORE_VERSION.to_owned()
}
