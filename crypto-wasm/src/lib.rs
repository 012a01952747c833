//! wasm-bindgen facade over the core. No logic lives here beyond converting JS values to core
//! types and core results to JS values.

use wasm_bindgen::prelude::*;

mod self_check;

/// The core's version, so a deployed function can report exactly what it runs.
#[wasm_bindgen(js_name = coreVersion)]
pub fn core_version() -> String {
    spots_signal::CORE_VERSION.to_owned()
}

/// Verifies an XEdDSA signature made with a Signal identity key.
///
/// `public_key` is the 33-byte serialized EC public key (0x05 || u); `signature` is 64 bytes.
/// Malformed keys or signatures verify as `false`.
#[wasm_bindgen(js_name = verifySignature)]
pub fn verify_signature(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let (Some(public_u), Ok(signature)) =
        (ec_public_u(public_key), <[u8; 64]>::try_from(signature))
    else {
        return false;
    };
    spots_signal::xeddsa::verify(&public_u, message, &signature)
}

/// Runs the known-answer self-check and returns its report.
#[wasm_bindgen(js_name = selfCheck)]
pub fn self_check() -> JsValue {
    let report = self_check::run();
    let object = js_sys::Object::new();
    let checks = js_sys::Array::new();
    for (name, passed) in &report.checks {
        let entry = js_sys::Object::new();
        // Reflect::set only fails on frozen objects; these are fresh.
        let _ = js_sys::Reflect::set(&entry, &"name".into(), &(*name).into());
        let _ = js_sys::Reflect::set(&entry, &"passed".into(), &(*passed).into());
        checks.push(&entry);
    }
    let _ = js_sys::Reflect::set(&object, &"ok".into(), &report.ok().into());
    let _ = js_sys::Reflect::set(&object, &"checks".into(), &checks);
    object.into()
}

fn ec_public_u(public_key: &[u8]) -> Option<[u8; 32]> {
    match public_key {
        [0x05, rest @ ..] if rest.len() >= 32 => rest.get(..32)?.try_into().ok(),
        _ => None,
    }
}
