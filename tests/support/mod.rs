//! Shared helpers for the integration tests: loading libsignal's reference vectors.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;

/// Loads `tests/vectors/libsignal-v0.73.3/<name>` as JSON.
pub fn vector(name: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors/libsignal-v0.73.3")
        .join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read vector {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON in {}: {e}", path.display()))
}

/// Decodes a lowercase hex string from a vector field.
pub fn hex_field(value: &serde_json::Value) -> Vec<u8> {
    let text = value.as_str().unwrap_or_else(|| panic!("expected a hex string, got {value}"));
    hex::decode(text).unwrap_or_else(|e| panic!("bad hex {text}: {e}"))
}

/// Decodes a hex field into a fixed-size array.
pub fn hex_array<const N: usize>(value: &serde_json::Value) -> [u8; N] {
    let bytes = hex_field(value);
    bytes.try_into().unwrap_or_else(|b: Vec<u8>| panic!("expected {N} bytes, got {}", b.len()))
}
