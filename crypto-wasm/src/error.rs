//! Errors crossing into JavaScript: a real `Error` (so stacks and `instanceof Error` work) named
//! `SpotsError`, with a stable snake_case `code` and, for core failures, the numeric `classCode`
//! of [`ErrorClass`].

use spots_signal::ErrorClass;
use spots_signal::validate::ValidateError;
use wasm_bindgen::JsValue;

/// Builds the thrown value.
pub(crate) fn js_error(code: &str, class: Option<ErrorClass>, message: &str) -> JsValue {
    let error = js_sys::Error::new(message);
    error.set_name("SpotsError");
    // Reflect::set only fails on frozen objects; this one is fresh.
    let _ = js_sys::Reflect::set(&error, &"code".into(), &code.into());
    if let Some(class) = class {
        let _ = js_sys::Reflect::set(&error, &"classCode".into(), &class.code().into());
    }
    error.into()
}

/// An argument the facade could not convert.
pub(crate) fn invalid_argument(message: &str) -> JsValue {
    js_error(
        "invalid_argument",
        Some(ErrorClass::InvalidArgument),
        message,
    )
}

pub(crate) fn validation(error: &ValidateError) -> JsValue {
    js_error(error.code(), Some(error.class()), &error.to_string())
}

/// A core error with its class.
pub(crate) fn core(class: ErrorClass, message: &str) -> JsValue {
    js_error(class_name(class), Some(class), message)
}

/// The snake_case name of a class.
pub(crate) const fn class_name(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::InvalidKey => "invalid_key",
        ErrorClass::InvalidSignature => "invalid_signature",
        ErrorClass::InvalidMessage => "invalid_message",
        ErrorClass::DuplicateMessage => "duplicate_message",
        ErrorClass::LegacyVersion => "legacy_version",
        ErrorClass::UnrecognizedVersion => "unrecognized_version",
        ErrorClass::EpochRejected => "epoch_rejected",
        ErrorClass::UntrustedIdentity => "untrusted_identity",
        ErrorClass::SessionNotFound => "session_not_found",
        ErrorClass::InvalidPreKeyId => "invalid_prekey_id",
        ErrorClass::ProtocolNotAllowed => "protocol_not_allowed",
        ErrorClass::MissingSessions => "missing_sessions",
        ErrorClass::NoSenderKeyState => "no_sender_key_state",
        ErrorClass::FingerprintVersionMismatch => "fingerprint_version_mismatch",
        ErrorClass::InvalidArgument => "invalid_argument",
        ErrorClass::InvalidState => "invalid_state",
        ErrorClass::StoreError => "store_error",
        _ => "error",
    }
}

/// Serializes a value for JS (plain objects, not Maps; byte vectors as Uint8Array).
pub(crate) fn to_js<T: serde::Serialize>(value: &T) -> Result<JsValue, JsValue> {
    let serializer = serde_wasm_bindgen::Serializer::new()
        .serialize_maps_as_objects(true)
        .serialize_missing_as_null(true);
    value
        .serialize(&serializer)
        .map_err(|e| js_error("internal", None, &e.to_string()))
}

/// Deserializes a JS value.
pub(crate) fn from_js<T: serde::de::DeserializeOwned>(
    value: JsValue,
    what: &str,
) -> Result<T, JsValue> {
    serde_wasm_bindgen::from_value(value).map_err(|e| invalid_argument(&format!("{what}: {e}")))
}
