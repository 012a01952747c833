//! Safety numbers (displayable and scannable, versions 1 and 2) against libsignal 0.73.3.
// Test code: panicking on unexpected vector contents is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use spots_signal::ErrorClass;
use spots_signal::fingerprint::{
    DEFAULT_ITERATIONS, Fingerprint, FingerprintError, ScannableFingerprint,
};
use spots_signal::keys::{IdentityKey, PrivateKey};
use support::{hex_field, uint, vector};

fn fingerprint(case: &serde_json::Value) -> Fingerprint {
    Fingerprint::new(
        uint(&case["version"]) as u32,
        uint(&case["iterations"]) as u32,
        &hex_field(&case["local_stable_id_hex"]),
        &IdentityKey::deserialize(&hex_field(&case["local_identity_key"])).unwrap(),
        &hex_field(&case["remote_stable_id_hex"]),
        &IdentityKey::deserialize(&hex_field(&case["remote_identity_key"])).unwrap(),
    )
    .unwrap()
}

#[test]
fn displayable_and_scannable_match() {
    let file = vector("fingerprints.json");
    let cases = file["vectors"].as_array().unwrap();
    assert_eq!(cases.len(), 7);
    for case in cases {
        let print = fingerprint(case);
        assert_eq!(
            print.display.to_string(),
            case["displayable"],
            "{}",
            case["source"]
        );
        assert_eq!(
            hex::encode(print.scannable.serialize()),
            case["scannable_serialized"]
        );
        assert_eq!(u64::from(print.scannable.version()), uint(&case["version"]));
        let parsed =
            ScannableFingerprint::deserialize(&hex_field(&case["scannable_serialized"])).unwrap();
        assert_eq!(parsed, print.scannable);

        for (side, chunk) in [
            ("local", &case["local_chunk"]),
            ("remote", &case["remote_chunk"]),
        ] {
            if chunk.is_null() {
                continue;
            }
            let digits = chunk["digits_30"].as_str().unwrap();
            assert!(print.display.to_string().contains(digits), "{side} digits");
            let scannable = print.scannable.serialize();
            let first_32 = hex_field(&chunk["first_32_bytes_for_scannable"]);
            let offset = if side == "local" { 6 } else { 6 + 36 };
            assert_eq!(
                &scannable[offset..offset + 32],
                first_32.as_slice(),
                "{side} bytes"
            );
            assert!(
                chunk["sha512_final"]
                    .as_str()
                    .unwrap()
                    .starts_with(&hex::encode(&first_32))
            );
        }
        if !case["local_identity_private"].is_null() {
            let private = PrivateKey::deserialize(&hex_field(&case["local_identity_private"]));
            assert_eq!(
                hex::encode(private.unwrap().public_key().serialize()),
                case["local_identity_key"]
            );
        }
    }
    assert_eq!(DEFAULT_ITERATIONS, 5200);
}

#[test]
fn scannable_comparison() {
    let file = vector("fingerprints.json");
    let cases = file["vectors"].as_array().unwrap();
    let (alice_v1, bob_v1, alice_v2) = (
        fingerprint(&cases[0]),
        fingerprint(&cases[1]),
        fingerprint(&cases[2]),
    );
    let expected = &file["scannable_compare"];

    let alice_vs_bob = alice_v1
        .scannable
        .compare(&bob_v1.scannable.serialize())
        .unwrap();
    assert_eq!(
        alice_vs_bob,
        expected["alice_vs_bob_serialized"].as_bool().unwrap()
    );
    let alice_vs_alice = alice_v1
        .scannable
        .compare(&alice_v1.scannable.serialize())
        .unwrap();
    assert_eq!(
        alice_vs_alice,
        expected["alice_vs_alice_serialized"].as_bool().unwrap()
    );

    let error = alice_v2
        .scannable
        .compare(&bob_v1.scannable.serialize())
        .unwrap_err();
    assert_eq!(
        error,
        FingerprintError::VersionMismatch { theirs: 1, ours: 2 }
    );
    assert_eq!(error.to_string(), expected["alice_v2_vs_bob_v1"]["Err"]);
    assert_eq!(error.class(), ErrorClass::FingerprintVersionMismatch);
}

#[test]
fn iterations_below_two_are_rejected() {
    let file = vector("fingerprints.json");
    let case = &file["vectors"][6];
    assert_eq!(uint(&case["iterations"]), 2);
    let key = IdentityKey::deserialize(&hex_field(&case["local_identity_key"])).unwrap();
    for iterations in [0, 1] {
        assert_eq!(
            Fingerprint::new(2, iterations, b"a", &key, b"b", &key).unwrap_err(),
            FingerprintError::InvalidIterations(iterations)
        );
    }
}
