//! One fuzz target per decoder of the SPOTS Signal core. Each target decodes arbitrary bytes
//! (which must never panic) and, when decoding succeeds, checks that encoding and decoding
//! again gives the same value. `tests/fuzz_corpus.rs` in the core replays the committed seeds
//! in `fuzz/seeds/<target>/` through these same functions under plain `cargo test`.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Debug;

use spots_signal::devices::DeviceList;
use spots_signal::keys::{IdentityKeyPair, KyberPreKeyRecord, PreKeyRecord, SignedPreKeyRecord};
use spots_signal::persist::Persist;
use spots_signal::pqxdh::PreKeyBundle;
use spots_signal::prekey_lifecycle::{PreKeyState, PublishPlan};
use spots_signal::store::LocalIdentity;
use spots_signal::trust::TrustRecord;
use spots_signal::wire::{
    CiphertextMessage, CiphertextMessageType, PreKeySignalMessage, SenderKeyDistributionMessage,
    SenderKeyMessage, SignalMessage,
};
use spots_signal::{MemoryStore, SessionRecord};

/// Every target, by name (the `fuzz_targets/<name>.rs` binaries and `seeds/<name>/` folders).
pub const TARGETS: &[&str] = &[
    "signal_message",
    "prekey_signal_message",
    "sender_key_message",
    "sender_key_distribution_message",
    "ciphertext_message",
    "prekey_bundle_json",
    "publish_upload_json",
    "persist_session",
    "persist_identity_key_pair",
    "persist_pre_key",
    "persist_signed_pre_key",
    "persist_kyber_pre_key",
    "persist_local_identity",
    "persist_trust",
    "persist_device_list",
    "persist_prekey_state",
    "store_import",
    "community_blob",
    "sender_key_decrypt",
    "envelope",
    "share_payload",
    "share_row",
    "persist_sender_key",
    "persist_community",
];

/// Runs target `name` on `data`; `false` for an unknown name.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "signal_message" => wire(
            data,
            |b| SignalMessage::try_from(b),
            SignalMessage::serialized,
        ),
        "prekey_signal_message" => wire(
            data,
            |b| PreKeySignalMessage::try_from(b),
            PreKeySignalMessage::serialized,
        ),
        "sender_key_message" => wire(
            data,
            |b| SenderKeyMessage::try_from(b),
            SenderKeyMessage::serialized,
        ),
        "sender_key_distribution_message" => wire(
            data,
            |b| SenderKeyDistributionMessage::try_from(b),
            SenderKeyDistributionMessage::serialized,
        ),
        "ciphertext_message" => ciphertext_message(data),
        "prekey_bundle_json" => prekey_bundle_json(data),
        "publish_upload_json" => publish_upload_json(data),
        "persist_session" => persist::<SessionRecord>(data),
        "persist_identity_key_pair" => persist::<IdentityKeyPair>(data),
        "persist_pre_key" => persist::<PreKeyRecord>(data),
        "persist_signed_pre_key" => persist::<SignedPreKeyRecord>(data),
        "persist_kyber_pre_key" => persist::<KyberPreKeyRecord>(data),
        "persist_local_identity" => persist::<LocalIdentity>(data),
        "persist_trust" => persist::<TrustRecord>(data),
        "persist_device_list" => persist::<DeviceList>(data),
        "persist_prekey_state" => persist::<PreKeyState>(data),
        "store_import" => store_import(data),
        "community_blob" => community_blob(data),
        "sender_key_decrypt" => sender_key_decrypt(data),
        "envelope" => envelope(data),
        "share_payload" => share_payload(data),
        "share_row" => share_row(data),
        "persist_sender_key" => persist::<spots_signal::sender_keys::SenderKeyRecord>(data),
        "persist_community" => persist::<spots_signal::community::CommunityState>(data),
        _ => return false,
    }
    true
}

/// A wire message keeps its exact bytes: parsing them again gives the same message.
fn wire<T: PartialEq + Debug, E>(
    data: &[u8],
    parse: impl Fn(&[u8]) -> Result<T, E>,
    bytes: impl Fn(&T) -> &[u8],
) {
    if let Ok(message) = parse(data) {
        assert_eq!(
            bytes(&message),
            data,
            "a parsed message must keep its bytes"
        );
        let again = parse(bytes(&message)).ok().expect("re-parse");
        assert_eq!(again, message);
    }
}

/// First byte: the envelope's message type; the rest: the body.
fn ciphertext_message(data: &[u8]) {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let Ok(kind) = CiphertextMessageType::try_from(kind) else {
        return;
    };
    if let Ok(message) = CiphertextMessage::decode(kind, body) {
        assert_eq!(message.message_type(), kind);
        assert_eq!(message.serialize(), body);
    }
}

fn prekey_bundle_json(data: &[u8]) {
    if let Ok(bundle) = serde_json::from_slice::<PreKeyBundle>(data) {
        let _ = bundle.verify();
        let text = serde_json::to_string(&bundle).expect("serialize");
        let again: PreKeyBundle = serde_json::from_str(&text).expect("re-parse");
        assert_eq!(again, bundle);
    }
}

fn publish_upload_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(plan) = PublishPlan::from_json(text) {
        let again = PublishPlan::from_json(&plan.to_json()).expect("re-parse");
        assert_eq!(again, plan);
        let bundles = plan.bundles();
        assert!(bundles.last_resort.verify().is_ok());
    }
}

/// Decoding a stored record and encoding it again gives a record that decodes to the same
/// value (the input itself may be a non-canonical protobuf).
fn persist<T: Persist + PartialEq + Debug>(data: &[u8]) {
    if let Ok(value) = T::from_record_bytes(data) {
        let bytes = value.to_record_bytes();
        let again = T::from_record_bytes(&bytes).expect("re-decode");
        assert_eq!(again, value);
    }
}

fn store_import(data: &[u8]) {
    if let Ok(store) = MemoryStore::import(data) {
        let bytes = store.export();
        let again = MemoryStore::import(&bytes).expect("re-import");
        assert_eq!(again, store);
    }
}

/// The fixed key material the community seeds were made with: epoch key `[7; 32]`; sender
/// chain key `[7; 32]` at iteration 0 with the signing key whose private half is `[9; 32]`
/// (clamped). With it the targets reach the authenticated paths for the seeds.
fn fixed_chain(
    distribution_id: [u8; 16],
    chain_id: u32,
) -> spots_signal::sender_keys::SenderKeyRecord {
    let signing = spots_signal::keys::PrivateKey::deserialize(&[9; 32])
        .expect("32 bytes")
        .public_key();
    let message =
        SenderKeyDistributionMessage::new(distribution_id, chain_id, 0, &[7; 32], signing);
    spots_signal::sender_keys::process_distribution_message(
        None,
        spots_signal::community::EpochId::from_bytes(distribution_id).uuid(),
        &message,
        spots_signal::sender_keys::SenderKeyLimits::default(),
    )
    .expect("fixed chain")
}

/// A community blob: the keyless validation the server runs, then decryption with the fixed
/// keys under the header's own ids (the header must always agree with what validation saw).
fn community_blob(data: &[u8]) {
    use spots_signal::community::{
        BlobScheme, EpochKey, decrypt_epoch_blob, decrypt_sender_chain_blob, validate_blob,
    };
    let Ok(header) = validate_blob(data) else {
        return;
    };
    match header.scheme {
        BlobScheme::Epoch => {
            let key = EpochKey::from_bytes([7; 32]);
            if let Ok((decrypted, _)) = decrypt_epoch_blob(
                &key,
                header.community_id,
                header.key_id,
                &header.sender,
                data,
            ) {
                assert_eq!(decrypted, header);
            }
        }
        BlobScheme::SenderChain => {
            let chain = header.chain.expect("sender-chain header");
            let record = fixed_chain(*header.key_id.as_bytes(), chain.chain_id);
            if let Ok((_, decrypted, _)) = decrypt_sender_chain_blob(
                Some(&record),
                header.community_id,
                header.key_id,
                &header.sender,
                data,
                spots_signal::sender_keys::SenderKeyLimits::default(),
            ) {
                assert_eq!(decrypted, header);
            }
        }
    }
}

/// A Sender Keys message decrypted with the fixed chain: signature check, window, CBC.
fn sender_key_decrypt(data: &[u8]) {
    let Ok(message) = SenderKeyMessage::try_from(data) else {
        return;
    };
    let record = fixed_chain(*message.distribution_id(), message.chain_id());
    let limits = spots_signal::sender_keys::SenderKeyLimits {
        max_forward_jump: 2000,
        ..Default::default()
    };
    if let Ok((next, _)) = spots_signal::sender_keys::group_decrypt(Some(&record), &message, limits)
    {
        // The same message a second time is a duplicate.
        assert!(spots_signal::sender_keys::group_decrypt(Some(&next), &message, limits).is_err());
    }
}

/// Envelopes are canonical: whatever decodes (except an unknown kind) encodes to the input.
fn envelope(data: &[u8]) {
    use spots_signal::envelope::{Envelope, extract_local_features};
    if let Ok(envelope) = Envelope::decode(data) {
        let _ = extract_local_features(&envelope);
        if !matches!(envelope, Envelope::Unsupported { .. }) {
            assert_eq!(&*envelope.encode().expect("re-encode"), data);
        }
    }
}

/// Share plaintexts are canonical too.
fn share_payload(data: &[u8]) {
    use spots_signal::community::share::SharePayload;
    if let Ok(payload) = SharePayload::decode(data) {
        assert_eq!(&*payload.encode(), data);
    }
}

/// First byte: the row's message type; the rest: its body (the server's keyless check).
fn share_row(data: &[u8]) {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    if spots_signal::community::share::validate_share(
        "signal_protocol",
        "epoch_sender_chain_seed_v1",
        kind,
        body,
    )
    .is_ok()
    {
        assert!(kind == 2 || kind == 3);
    }
}
