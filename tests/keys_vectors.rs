//! Key encodings, generation, agreement and prekey signatures against libsignal 0.73.3.
// Test code: panicking on unexpected vector contents is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use spots_signal::ErrorClass;
use spots_signal::kem;
use spots_signal::keys::{
    IdentityKey, IdentityKeyPair, KeyError, KeyPair, KyberPreKeyId, KyberPreKeyRecord, PrivateKey,
    PublicKey, SignedPreKeyId, SignedPreKeyRecord,
};
use spots_signal::time::Timestamp;
use support::{ReplayRng, hex_field, vector};

#[test]
fn identity_keys_are_generated_clamped_and_serialized_like_libsignal() {
    let file = vector("keys.json");
    for case in file["identity_keys"].as_array().expect("identity_keys") {
        let mut rng = ReplayRng::empty();
        rng.push_bytes(&hex_field(&case["rng_bytes"]));
        let pair = IdentityKeyPair::generate(&mut rng);
        rng.assert_exhausted();

        assert_eq!(
            hex::encode(*pair.private_key().serialize()),
            case["private_serialized"]
        );
        assert_eq!(
            hex::encode(pair.identity_key().serialize()),
            case["public_serialized"]
        );
        let serialized = pair.serialize();
        assert_eq!(
            hex::encode(&*serialized),
            case["identity_key_pair_serialized"]
        );
        assert_eq!(
            IdentityKeyPair::deserialize(&serialized).expect("parses"),
            pair
        );
    }
}

#[test]
fn private_key_deserialize_clamps() {
    let file = vector("keys.json");
    let case = &file["private_key_deserialize_clamps"];
    let key = PrivateKey::deserialize(&hex_field(&case["input"])).expect("32 bytes");
    assert_eq!(hex::encode(*key.serialize()), case["serialized_after"]);
}

#[test]
fn public_key_parse_errors_match_libsignal() {
    let file = vector("keys.json");
    let cases = &file["public_key_deserialize_errors"];
    let b_public = hex_field(&file["x25519_agreement"]["b"]["public"]);

    // "bad key length <20> for key with type <Djb>"
    let mut short = b_public.clone();
    short.truncate(20);
    let error = PublicKey::deserialize(&short).unwrap_err();
    assert_eq!(error, KeyError::BadKeyLength(20));
    assert_eq!(error.class(), ErrorClass::InvalidKey);
    assert!(
        cases["too_short_20_bytes"]["Err"]
            .as_str()
            .unwrap()
            .contains("<20>")
    );

    // "bad key type <0x06>"
    let mut wrong_type = b_public.clone();
    wrong_type[0] = 0x06;
    let error = PublicKey::deserialize(&wrong_type).unwrap_err();
    assert_eq!(error, KeyError::BadKeyType(0x06));
    assert_eq!(error.to_string(), cases["type_byte_0x06"]["Err"]);

    let mut trailing = b_public.clone();
    trailing.extend_from_slice(&[0xAA; 7]);
    let key = PublicKey::deserialize(&trailing).expect("trailing bytes are ignored");
    assert_eq!(
        hex::encode(key.serialize()),
        cases["trailing_bytes_accepted_and_ignored"]["Ok"]
    );
    assert_eq!(
        PublicKey::deserialize(&[]).unwrap_err(),
        KeyError::NoKeyTypeIdentifier
    );
}

#[test]
fn x25519_agreement_matches() {
    let file = vector("keys.json");
    let case = &file["x25519_agreement"];
    let a = PrivateKey::deserialize(&hex_field(&case["a"]["private"])).unwrap();
    let b = PrivateKey::deserialize(&hex_field(&case["b"]["private"])).unwrap();
    let a_public = PublicKey::deserialize(&hex_field(&case["a"]["public"])).unwrap();
    let b_public = PublicKey::deserialize(&hex_field(&case["b"]["public"])).unwrap();
    assert_eq!(a.public_key(), a_public);
    assert_eq!(b.public_key(), b_public);
    assert_eq!(hex::encode(*a.agree(&b_public).unwrap()), case["shared"]);
    assert_eq!(hex::encode(*b.agree(&a_public).unwrap()), case["shared"]);
}

#[test]
fn low_order_agreement_is_a_typed_error() {
    let key = KeyPair::generate(&mut support::seeded(&serde_json::json!(1)));
    let zero = PublicKey::from_djb_bytes([0; 32]);
    let error = key.agree(&zero).unwrap_err();
    assert_eq!(error, KeyError::NonContributory);
    assert_eq!(error.class(), ErrorClass::InvalidKey);
}

/// Every DM vector file logs how Bob's prekeys were drawn; regenerate them from those draws.
#[test]
fn prekeys_are_generated_and_signed_like_libsignal() {
    for name in [
        "dm_pqxdh_otpk.json",
        "dm_pqxdh_no_otpk.json",
        "dm_x3dh_v3_otpk.json",
    ] {
        let file = vector(name);
        let bob = &file["bob"];
        let identity = IdentityKeyPair::generate(&mut ReplayRng::from_draws(
            &bob["identity_keygen_rng_draws"],
        ));
        assert_eq!(
            hex::encode(identity.identity_key().serialize()),
            bob["identity"]["public"]
        );
        let now = Timestamp::from_secs(1_700_000_000);

        let signed = &bob["signed_pre_key"];
        let mut rng = ReplayRng::from_draws(&signed["keygen_rng_draws"]);
        rng.extend(&signed["signature_rng_draws"]);
        let record = SignedPreKeyRecord::generate(SignedPreKeyId(7), &identity, now, &mut rng);
        rng.assert_exhausted();
        assert_eq!(
            hex::encode(*record.key_pair().private_key().serialize()),
            signed["private"]
        );
        assert_eq!(
            hex::encode(record.public_key().serialize()),
            signed["public"]
        );
        assert_eq!(hex::encode(record.signature()), signed["signature"]);

        if !bob["one_time_pre_key"].is_null() {
            let one_time = &bob["one_time_pre_key"];
            let mut rng = ReplayRng::from_draws(&one_time["keygen_rng_draws"]);
            let pair = KeyPair::generate(&mut rng);
            rng.assert_exhausted();
            assert_eq!(
                hex::encode(*pair.private_key().serialize()),
                one_time["private"]
            );
            assert_eq!(
                hex::encode(pair.public_key().serialize()),
                one_time["public"]
            );
        }

        if !bob["kyber_pre_key"].is_null() {
            let kyber = &bob["kyber_pre_key"];
            let mut rng = ReplayRng::from_draws(&kyber["keygen_rng_draws"]);
            rng.extend(&kyber["signature_rng_draws"]);
            let record =
                KyberPreKeyRecord::generate(KyberPreKeyId(97), &identity, now, true, &mut rng);
            rng.assert_exhausted();
            assert_eq!(
                hex::encode(record.public_key().serialize()),
                kyber["public"]
            );
            assert_eq!(
                hex::encode(&*record.key_pair().secret_key().serialize()),
                kyber["secret"]
            );
            assert_eq!(hex::encode(record.signature()), kyber["signature"]);
            let public = kem::PublicKey::deserialize(&hex_field(&kyber["public"])).unwrap();
            assert!(
                identity
                    .identity_key()
                    .verify_signature(&public.serialize(), record.signature())
            );
        }

        let parsed = IdentityKey::deserialize(&hex_field(&bob["identity"]["public"])).unwrap();
        assert_eq!(&parsed, identity.identity_key());
    }
}
