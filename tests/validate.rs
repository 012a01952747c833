//! `validate`: genuine uploads and Signal messages from real facades pass; tampered signatures,
//! wrong key types, oversized batches, bad ids, bad expiries, non-Signal and non-canonical
//! payloads are refused with stable codes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use core::time::Duration;

use serde_json::{Value, json};
use spots_signal::validate::{
    self, MAX_BUNDLE_LIFETIME, MAX_ONE_TIME_BUNDLES_PER_UPLOAD, ValidateError,
};
use spots_signal::{ErrorClass, MemoryStore, SignalTransport, Timestamp};
use support::party::{Party, T0};

/// A device with the default policy: 100 one-time EC and 100 Kyber keys.
fn full_upload() -> Value {
    use rand_core::SeedableRng;
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(77);
    let mut transport = SignalTransport::new(MemoryStore::new(), "carol.3".parse().unwrap());
    let report = transport.ensure_ready(T0, &mut rng).unwrap();
    serde_json::from_str(&report.plan.to_json()).unwrap()
}

fn small_upload() -> Value {
    let party = Party::new("alice.1", 1);
    let plan = party.transport.current_publish_plan().unwrap();
    serde_json::from_str(&plan.to_json()).unwrap()
}

fn check(upload: &Value) -> Result<validate::ValidatedUpload, ValidateError> {
    validate::prekey_upload(&upload.to_string(), T0, None)
}

fn code(upload: &Value) -> &'static str {
    check(upload).unwrap_err().code()
}

fn flip_hex(text: &str, index: usize) -> String {
    let mut bytes = hex::decode(text).unwrap();
    bytes[index] ^= 0x01;
    hex::encode(bytes)
}

#[test]
fn a_genuine_full_upload_passes_and_expands() {
    let upload = full_upload();
    let valid = check(&upload).unwrap();
    assert_eq!(
        valid.bundles.one_time.len(),
        MAX_ONE_TIME_BUNDLES_PER_UPLOAD
    );
    assert_eq!(valid.plan.device_id.get(), 3);
    assert_eq!(
        Some(valid.key_digest),
        validate::long_term_key_digest(&valid.bundles.last_resort)
    );
    // Every one-time bundle shares the long-lived keys, so its digest differs only by Kyber key.
    assert_ne!(
        validate::long_term_key_digest(&valid.bundles.one_time[0]),
        Some(valid.key_digest)
    );
}

#[test]
fn the_digest_tracks_every_long_lived_key() {
    let upload = small_upload();
    let digest = check(&upload).unwrap().key_digest;
    let again = check(&upload).unwrap().key_digest;
    assert_eq!(digest, again);
    let other = {
        let party = Party::new("alice.1", 2);
        let plan = party.transport.current_publish_plan().unwrap();
        validate::prekey_upload(&plan.to_json(), T0, None)
            .unwrap()
            .key_digest
    };
    assert_ne!(digest, other);
}

#[test]
fn tampered_signatures_are_refused() {
    let mut upload = small_upload();
    let sig = upload["signed_pre_key"]["signature"]
        .as_str()
        .unwrap()
        .to_owned();
    upload["signed_pre_key"]["signature"] = json!(flip_hex(&sig, 10));
    assert_eq!(code(&upload), "invalid_signature");
    assert_eq!(
        check(&upload).unwrap_err().class(),
        ErrorClass::InvalidSignature
    );

    let mut upload = small_upload();
    let sig = upload["last_resort_kyber_pre_key"]["signature"]
        .as_str()
        .unwrap()
        .to_owned();
    upload["last_resort_kyber_pre_key"]["signature"] = json!(flip_hex(&sig, 0));
    assert_eq!(code(&upload), "invalid_signature");

    let mut upload = small_upload();
    let sig = upload["one_time_kyber_pre_keys"][1]["signature"]
        .as_str()
        .unwrap()
        .to_owned();
    upload["one_time_kyber_pre_keys"][1]["signature"] = json!(flip_hex(&sig, 63));
    assert_eq!(code(&upload), "invalid_signature");

    // A signed prekey swapped for another key under the old signature.
    let mut upload = small_upload();
    let key = upload["one_time_pre_keys"][0]["public"].clone();
    upload["signed_pre_key"]["public"] = key;
    assert_eq!(code(&upload), "invalid_signature");

    // Another identity key than the one that signed.
    let mut upload = small_upload();
    let other = Party::new("alice.1", 9);
    let plan = other.transport.current_publish_plan().unwrap();
    upload["identity_key"] = json!(hex::encode(plan.identity_key.serialize()));
    assert_eq!(code(&upload), "invalid_signature");
}

#[test]
fn wrong_key_types_and_lengths_are_refused() {
    // An identity key with the Kyber type byte.
    let mut upload = small_upload();
    let key = upload["identity_key"].as_str().unwrap().to_owned();
    upload["identity_key"] = json!(format!("08{}", &key[2..]));
    assert_eq!(code(&upload), "invalid_key");

    // An EC key where a Kyber key belongs.
    let mut upload = small_upload();
    let ec = upload["signed_pre_key"]["public"].clone();
    upload["last_resort_kyber_pre_key"]["public"] = ec;
    assert_eq!(code(&upload), "invalid_key");

    // A Kyber key where the signed prekey belongs.
    let mut upload = small_upload();
    let kyber = upload["last_resort_kyber_pre_key"]["public"].clone();
    upload["signed_pre_key"]["public"] = kyber;
    assert_eq!(code(&upload), "invalid_key");

    // Truncated, not hex, short signature.
    let mut upload = small_upload();
    upload["one_time_pre_keys"][0]["public"] = json!("05abcd");
    assert_eq!(code(&upload), "invalid_key");
    let mut upload = small_upload();
    upload["one_time_pre_keys"][0]["public"] = json!("zz");
    assert_eq!(code(&upload), "invalid_key");
    let mut upload = small_upload();
    upload["signed_pre_key"]["signature"] = json!("00");
    assert_eq!(code(&upload), "invalid_key");
}

#[test]
fn ids_formats_and_fields_are_checked() {
    let mut upload = small_upload();
    let first = upload["one_time_pre_keys"][0]["id"].clone();
    upload["one_time_pre_keys"][1]["id"] = first;
    assert_eq!(code(&upload), "duplicate_id");

    let mut upload = small_upload();
    let last_resort = upload["last_resort_kyber_pre_key"]["id"].clone();
    let mut copy = upload["one_time_kyber_pre_keys"][0].clone();
    copy["id"] = last_resort;
    upload["one_time_kyber_pre_keys"][0] = copy;
    assert_eq!(code(&upload), "duplicate_id");

    let mut upload = small_upload();
    upload["registration_id"] = json!(16381);
    assert_eq!(code(&upload), "out_of_range");
    let mut upload = small_upload();
    upload["registration_id"] = json!(0);
    assert_eq!(code(&upload), "out_of_range");

    let mut upload = small_upload();
    upload["format"] = json!(2);
    assert_eq!(code(&upload), "unsupported_format");
    let mut upload = small_upload();
    upload["device_id"] = json!(128);
    assert_eq!(code(&upload), "invalid_address");
    let mut upload = small_upload();
    upload["agent_id"] = json!("no spaces");
    assert_eq!(code(&upload), "invalid_address");
    let mut upload = small_upload();
    upload["extra"] = json!(1);
    assert_eq!(code(&upload), "malformed_upload");
}

#[test]
fn at_most_100_one_time_bundles_per_upload() {
    let upload = full_upload();
    let mut over = upload.clone();
    let extra = over["one_time_pre_keys"][0].clone();
    over["one_time_pre_keys"]
        .as_array_mut()
        .unwrap()
        .push(extra);
    assert_eq!(
        check(&over).unwrap_err(),
        ValidateError::TooManyOneTimeKeys { got: 101, max: 100 }
    );
    // Counted before any signature is checked: garbage entries count too.
    let mut junk = small_upload();
    junk["one_time_kyber_pre_keys"] = json!(vec![json!(null); 101]);
    assert_eq!(code(&junk), "too_many_keys");
}

#[test]
fn expiry_must_be_sane() {
    let text = small_upload().to_string();
    let ok = T0.saturating_add(Duration::from_secs(30 * 86_400));
    assert_eq!(
        validate::prekey_upload(&text, T0, Some(ok))
            .unwrap()
            .expires_at,
        Some(ok)
    );
    for bad in [
        Timestamp::EPOCH,
        T0,
        T0.saturating_add(Duration::from_secs(60)),
        T0.saturating_add(MAX_BUNDLE_LIFETIME + Duration::from_secs(1)),
    ] {
        assert_eq!(
            validate::prekey_upload(&text, T0, Some(bad))
                .unwrap_err()
                .code(),
            "invalid_expiry"
        );
    }
}

#[test]
fn genuine_signal_messages_pass() {
    let mut alice = Party::new("alice.1", 1);
    let mut bob = Party::new("bob.1", 2);
    alice.connect(&mut bob, T0);
    let first = alice.send_one(&bob, b"hello", T0).unwrap();
    let info = validate::signal_message(3, &first.body).unwrap();
    assert_eq!((info.message_type, info.version), (3, 4));
    bob.receive(&alice.address(), &first, T0).unwrap();
    let reply = bob.send_one(&alice, &[7u8; 1000], T0).unwrap();
    assert_eq!(reply.message_type as u8, 2);
    assert_eq!(
        validate::signal_message(2, &reply.body).unwrap().len,
        reply.body.len()
    );

    // The right bytes under the wrong type.
    assert_eq!(
        validate::signal_message(2, &first.body).unwrap_err().code(),
        "malformed_message"
    );
    assert!(validate::signal_message(3, &reply.body).is_err());
}

#[test]
fn non_signal_and_tampered_framing_is_refused() {
    let mut alice = Party::new("alice.1", 1);
    let mut bob = Party::new("bob.1", 2);
    alice.connect(&mut bob, T0);
    let prekey = alice.send_one(&bob, b"hello", T0).unwrap().body;

    // Plaintext, JSON, empty, random.
    for junk in [
        &b"hello bob"[..],
        br#"{"type":"text","body":"hi"}"#,
        &[][..],
        &[0x44; 40][..],
    ] {
        assert!(validate::signal_message(3, junk).is_err());
        assert!(validate::signal_message(2, junk).is_err());
    }
    // Truncated.
    assert!(validate::signal_message(3, &prekey[..prekey.len() - 20]).is_err());
    // An old protocol version (the version nibble of an X3DH-era message).
    let mut old = prekey.clone();
    old[0] = 0x33;
    assert_eq!(
        validate::signal_message(3, &old).unwrap_err(),
        ValidateError::UnsupportedVersion(3)
    );
    // Extra data smuggled in an unknown protobuf field (tag 15, bytes).
    let mut smuggled = prekey.clone();
    smuggled.extend_from_slice(&[0x7a, 0x03, b'a', b'b', b'c']);
    assert_eq!(
        validate::signal_message(3, &smuggled).unwrap_err(),
        ValidateError::NotCanonical
    );
    // Not a Signal type at all.
    assert_eq!(
        validate::signal_message(8, &prekey).unwrap_err().code(),
        "not_signal_message"
    );
}

#[test]
fn shares_are_signal_messages_and_nothing_else() {
    use spots_signal::community::share::ShareKind;
    use spots_signal::community::{CommunityId, EpochInfo, RotationKind};
    let mut alice = Party::new("alice.1", 11);
    let mut bob = Party::new("bob.1", 13);
    let id = CommunityId::random(&mut alice.rng);
    let epoch = EpochInfo::from_server_row(id, 1, T0, RotationKind::Hard, None);
    let payload = alice
        .transport
        .rotate_community(id, epoch, T0, &mut alice.rng)
        .unwrap();
    let rows = alice
        .transport
        .create_shares(
            &[(bob.address(), Some(bob.fetch_bundle()))],
            &payload,
            T0,
            &mut alice.rng,
        )
        .unwrap();
    let row = &rows[0];
    assert_eq!(
        validate::share("signal_protocol", "epoch_key_v1", 3, &row.body),
        Ok(ShareKind::EpochKeyV1)
    );
    // The plaintext payload itself (a "plaintext share"), under any type.
    let plaintext = payload.encode();
    for t in [2u8, 3] {
        assert_eq!(
            validate::share("signal_protocol", "epoch_key_v1", t, &plaintext)
                .unwrap_err()
                .code(),
            "malformed_message"
        );
    }
    assert_eq!(
        validate::share("plaintext", "epoch_key_v1", 3, &row.body)
            .unwrap_err()
            .code(),
        "invalid_share"
    );
    assert_eq!(
        validate::share("signal_protocol", "raw_key", 3, &row.body)
            .unwrap_err()
            .code(),
        "invalid_share"
    );
    assert_eq!(
        validate::share("signal_protocol", "epoch_key_v1", 8, &row.body)
            .unwrap_err()
            .code(),
        "not_signal_message"
    );
    let mut smuggled = row.body.clone();
    smuggled.extend_from_slice(&[0x7a, 0x01, 0x00]);
    assert_eq!(
        validate::share("signal_protocol", "epoch_key_v1", 3, &smuggled).unwrap_err(),
        ValidateError::NotCanonical
    );
}
