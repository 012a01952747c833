//! Storage encodings: round trips, strict rejection of damaged input, and frozen fixtures from
//! format version 1 that every later release must still load.
// Test code: panicking on unexpected vector contents is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::PathBuf;

use spots_signal::keys::{
    IdentityKeyPair, KyberPreKeyRecord, PreKeyRecord, RegistrationId, SignedPreKeyRecord,
};
use spots_signal::persist::{FORMAT_VERSION, Persist, PersistError, RecordKind};
use spots_signal::pqxdh::PreKeyBundle;
use spots_signal::wire::PreKeySignalMessage;
use spots_signal::{
    ErrorClass, SessionRecord, decrypt_prekey_message, encrypt, process_prekey_bundle,
};
use support::dm::{BobKeys, COMPAT, bob_keys_from_file, now, private, snapshot_json};
use support::{ReplayRng, hex_field, vector};

/// The X3DH scenario's first events, reproduced from the logged draws: Alice after sending A1
/// and Bob after receiving it. Small (no Kyber ciphertext) and fully pinned by the vectors.
fn x3dh_records() -> (SessionRecord, SessionRecord, serde_json::Value) {
    let file = vector("dm_x3dh_v3_otpk.json");
    let alice = IdentityKeyPair::from_private_key(private(&file["alice"]["identity"]["private"]));
    let bob = IdentityKeyPair::from_private_key(private(&file["bob"]["identity"]["private"]));
    let bundle: PreKeyBundle = serde_json::from_value(file["bundle"].clone()).unwrap();
    let mut rng = ReplayRng::from_draws(&file["handshake"]["alice_process_bundle_rng_draws"]);
    let record = process_prekey_bundle(
        None,
        &alice,
        RegistrationId(1111),
        &bundle,
        COMPAT,
        now(&file),
        &mut rng,
    )
    .unwrap();
    let plaintext = hex_field(&file["messages"][0]["plaintext_hex"]);
    let (alice_record, message) = encrypt(
        &record,
        alice.identity_key(),
        bob.identity_key(),
        &plaintext,
        now(&file),
    )
    .unwrap();
    let message = PreKeySignalMessage::try_from(message.serialize()).unwrap();
    let mut rng = ReplayRng::from_draws(&file["events"][2]["rng_draws"]);
    let bob_record = decrypt_prekey_message(
        None,
        &bob,
        RegistrationId(2222),
        &message,
        &bob_keys_from_file(&file),
        COMPAT,
        &mut rng,
    )
    .unwrap()
    .record;
    (alice_record, bob_record, file)
}

fn pqxdh_keys() -> (IdentityKeyPair, BobKeys) {
    let file = vector("dm_pqxdh_otpk.json");
    let bob = IdentityKeyPair::from_private_key(private(&file["bob"]["identity"]["private"]));
    (bob, bob_keys_from_file(&file))
}

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support/fixtures")
        .join(name)
}

fn fixtures() -> Vec<(&'static str, Vec<u8>)> {
    let (alice_record, bob_record, _) = x3dh_records();
    let (identity, keys) = pqxdh_keys();
    vec![
        (
            "session_record_alice_v1.hex",
            alice_record.to_record_bytes().to_vec(),
        ),
        (
            "session_record_bob_v1.hex",
            bob_record.to_record_bytes().to_vec(),
        ),
        (
            "identity_key_pair_v1.hex",
            identity.to_record_bytes().to_vec(),
        ),
        (
            "signed_pre_key_v1.hex",
            keys.signed.to_record_bytes().to_vec(),
        ),
        (
            "pre_key_v1.hex",
            keys.one_time.unwrap().to_record_bytes().to_vec(),
        ),
        (
            "kyber_pre_key_v1.hex",
            keys.kyber.unwrap().to_record_bytes().to_vec(),
        ),
    ]
}

/// Freezes each fixture the first time it is generated (`SPOTS_WRITE_GENERATED=1`); after that
/// the file is the compatibility promise of its format version and never changes.
fn check_frozen(name: &str, current: &[u8]) {
    let text = hex::encode(current) + "\n";
    support::assert_committed(&fixture_path(name), text.as_bytes(), false);
}

fn load_fixture(name: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(fixture_path(name)).unwrap();
    hex::decode(text.trim()).unwrap()
}

#[test]
fn frozen_v1_fixtures_still_load() {
    let (_, _, file) = x3dh_records();
    // This release writes the same bytes for the same state (format version unchanged).
    assert_eq!(FORMAT_VERSION, 1);
    for (name, current) in fixtures() {
        check_frozen(name, &current);
        assert_eq!(load_fixture(name)[0], 1, "{name}: fixture format version");
    }
    let alice =
        SessionRecord::from_record_bytes(&load_fixture("session_record_alice_v1.hex")).unwrap();
    assert_eq!(
        snapshot_json(&alice.inspect()),
        file["events"][0]["session_after"]
    );
    let bob = SessionRecord::from_record_bytes(&load_fixture("session_record_bob_v1.hex")).unwrap();
    assert_eq!(
        snapshot_json(&bob.inspect()),
        file["events"][2]["session_after"]
    );

    let (identity, keys) = pqxdh_keys();
    assert_eq!(
        IdentityKeyPair::from_record_bytes(&load_fixture("identity_key_pair_v1.hex")).unwrap(),
        identity
    );
    assert_eq!(
        SignedPreKeyRecord::from_record_bytes(&load_fixture("signed_pre_key_v1.hex")).unwrap(),
        keys.signed
    );
    assert_eq!(
        PreKeyRecord::from_record_bytes(&load_fixture("pre_key_v1.hex")).unwrap(),
        keys.one_time.unwrap()
    );
    let kyber =
        KyberPreKeyRecord::from_record_bytes(&load_fixture("kyber_pre_key_v1.hex")).unwrap();
    assert_eq!(kyber, keys.kyber.unwrap());
    assert!(kyber.is_last_resort());
}

#[test]
fn headers_are_checked() {
    let (identity, keys) = pqxdh_keys();
    let bytes = identity.to_record_bytes();
    assert_eq!(bytes[0], FORMAT_VERSION);
    assert_eq!(bytes[1], RecordKind::IdentityKeyPair as u8);

    let error = SessionRecord::from_record_bytes(&bytes).unwrap_err();
    assert_eq!(
        error,
        PersistError::WrongKind {
            expected: 1,
            got: 2
        }
    );
    assert_eq!(error.class(), ErrorClass::InvalidState);

    let mut future = keys.signed.to_record_bytes().to_vec();
    future[0] = 2;
    assert_eq!(
        SignedPreKeyRecord::from_record_bytes(&future).unwrap_err(),
        PersistError::UnsupportedVersion(2)
    );
    assert_eq!(
        PreKeyRecord::from_record_bytes(&[1]).unwrap_err(),
        PersistError::Truncated
    );
    assert_eq!(
        PreKeyRecord::from_record_bytes(&[1, RecordKind::PreKey as u8]).unwrap_err(),
        PersistError::MissingField("public_key")
    );
}

/// Damaged records are rejected or decoded, never a panic; every strict prefix is rejected.
#[test]
fn damaged_records_never_panic() {
    let (alice, bob, _) = x3dh_records();
    let (identity, keys) = pqxdh_keys();
    let blobs = [
        alice.to_record_bytes().to_vec(),
        bob.to_record_bytes().to_vec(),
        identity.to_record_bytes().to_vec(),
        keys.signed.to_record_bytes().to_vec(),
        keys.one_time.as_ref().unwrap().to_record_bytes().to_vec(),
    ];
    for blob in &blobs {
        for len in 0..blob.len() {
            let prefix = &blob[..len];
            // Only the bare header is a complete (empty) session record.
            if blob[1] == RecordKind::Session as u8 && len != 2 {
                assert!(
                    SessionRecord::from_record_bytes(prefix).is_err(),
                    "prefix {len}"
                );
            }
            let _ = IdentityKeyPair::from_record_bytes(prefix);
            let _ = SignedPreKeyRecord::from_record_bytes(prefix);
            let _ = PreKeyRecord::from_record_bytes(prefix);
        }
        for index in 0..blob.len() {
            for flip in [0x01u8, 0x80] {
                let mut damaged = blob.clone();
                damaged[index] ^= flip;
                let _ = SessionRecord::from_record_bytes(&damaged);
                let _ = IdentityKeyPair::from_record_bytes(&damaged);
                let _ = SignedPreKeyRecord::from_record_bytes(&damaged);
                let _ = PreKeyRecord::from_record_bytes(&damaged);
            }
        }
    }
    let kyber = keys.kyber.unwrap().to_record_bytes().to_vec();
    for len in (0..kyber.len()).step_by(97) {
        assert!(KyberPreKeyRecord::from_record_bytes(&kyber[..len]).is_err());
    }
}

#[test]
fn empty_record_round_trips() {
    let empty = SessionRecord::new();
    let bytes = empty.to_record_bytes();
    assert_eq!(*bytes, vec![1, 1]);
    assert_eq!(SessionRecord::from_record_bytes(&bytes).unwrap(), empty);
}

fn session_bytes(body: &[u8]) -> Vec<u8> {
    [&[FORMAT_VERSION, RecordKind::Session as u8][..], body].concat()
}

/// 500,000 empty archived sessions are 1 MB of input that a full decode would turn into
/// about 170 MB of `SessionProto`s before the count check. The count is checked first: the
/// record also carries an undecodable `current`, so a full decode would have failed with
/// `Protobuf` — getting `TooMany` shows the decoder never got that far.
#[test]
fn hostile_entry_counts_are_rejected_before_decoding() {
    let garbage_current = [0x0A, 0x02, 0xFF, 0xFF];
    assert_eq!(
        SessionRecord::from_record_bytes(&session_bytes(&garbage_current)).unwrap_err(),
        PersistError::Protobuf
    );
    let mut body = garbage_current.to_vec();
    body.extend_from_slice(&[0x12, 0x00].repeat(500_000));
    let error = SessionRecord::from_record_bytes(&session_bytes(&body)).unwrap_err();
    assert_eq!(
        error,
        PersistError::TooMany {
            field: "previous",
            max: 40,
            got: 500_000
        }
    );
    assert_eq!(error.class(), ErrorClass::InvalidState);

    // The same inside a session: 500,000 empty receiving chains in `current`.
    let chains = [0x52, 0x00].repeat(500_000);
    let mut body = vec![0x0A];
    prost::encoding::encode_varint(chains.len() as u64, &mut body);
    body.extend_from_slice(&chains);
    assert_eq!(
        SessionRecord::from_record_bytes(&session_bytes(&body)).unwrap_err(),
        PersistError::TooMany {
            field: "receiver_chains",
            max: 5,
            got: 500_000
        }
    );
    // A repeated `current` would be merged by the decoder: refused too.
    assert_eq!(
        SessionRecord::from_record_bytes(&session_bytes(&[0x0A, 0x00, 0x0A, 0x00])).unwrap_err(),
        PersistError::TooMany {
            field: "current",
            max: 1,
            got: 2
        }
    );

    // A whole-store export with 500,000 empty session entries.
    let mut store = vec![FORMAT_VERSION, RecordKind::Store as u8];
    store.extend_from_slice(&[0x12, 0x00].repeat(500_000));
    assert_eq!(
        spots_signal::MemoryStore::import(&store).unwrap_err(),
        spots_signal::store::MemoryStoreError::Import(PersistError::TooMany {
            field: "sessions",
            max: spots_signal::persist::MAX_STORE_ENTRIES,
            got: 500_000
        })
    );
}

#[test]
fn oversized_records_are_rejected() {
    use spots_signal::persist::MAX_SESSION_RECORD_LEN;
    // An unknown field padding the record past the limit.
    let mut body = vec![0x7A];
    let padding = MAX_SESSION_RECORD_LEN;
    prost::encoding::encode_varint(padding as u64, &mut body);
    body.resize(body.len() + padding, 0);
    let bytes = session_bytes(&body);
    assert_eq!(
        SessionRecord::from_record_bytes(&bytes).unwrap_err(),
        PersistError::TooLarge {
            max: MAX_SESSION_RECORD_LEN,
            got: bytes.len()
        }
    );
    // Just under the limit the same unknown field is skipped.
    let mut body = vec![0x7A];
    let padding = MAX_SESSION_RECORD_LEN - 10;
    prost::encoding::encode_varint(padding as u64, &mut body);
    body.resize(body.len() + padding, 0);
    assert_eq!(
        SessionRecord::from_record_bytes(&session_bytes(&body)).unwrap(),
        SessionRecord::new()
    );
}
