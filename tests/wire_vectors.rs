//! Wire messages: every message in the reference vectors parses to the logged fields and is
//! rebuilt byte for byte from those fields.
// Test code: panicking on unexpected vector contents is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use serde_json::Value;
use spots_signal::ErrorClass;
use spots_signal::keys::{
    IdentityKey, KyberPreKeyId, PreKeyId, PrivateKey, PublicKey, RegistrationId, SignedPreKeyId,
};
use spots_signal::wire::{
    CiphertextMessage, CiphertextMessageType, DecodeError, PreKeySignalMessage,
    SenderKeyDistributionMessage, SenderKeyMessage, SignalMessage,
};
use support::{ReplayRng, hex_array, hex_field, uint, vector};

const DM_FILES: [&str; 3] = [
    "dm_pqxdh_otpk.json",
    "dm_pqxdh_no_otpk.json",
    "dm_x3dh_v3_otpk.json",
];

fn identity(file: &Value, party: &str) -> IdentityKey {
    IdentityKey::deserialize(&hex_field(&file[party]["identity"]["public"])).unwrap()
}

fn check_signal_message(
    parsed: &SignalMessage,
    fields: &Value,
    sender: &IdentityKey,
    receiver: &IdentityKey,
    mac_key: &[u8; 32],
) {
    assert_eq!(
        parsed.message_version(),
        u8::from_str_radix(fields["version_byte"].as_str().unwrap(), 16).unwrap() >> 4
    );
    assert_eq!(
        hex::encode(parsed.ratchet_key().serialize()),
        fields["ratchet_key"]
    );
    assert_eq!(u64::from(parsed.counter()), uint(&fields["counter"]));
    assert_eq!(
        u64::from(parsed.previous_counter()),
        uint(&fields["previous_counter"])
    );
    assert_eq!(hex::encode(parsed.body()), fields["ciphertext"]);
    assert_eq!(hex::encode(parsed.mac()), fields["mac"]);
    assert!(parsed.verify_mac(sender, receiver, mac_key));
    assert!(!parsed.verify_mac(receiver, sender, mac_key));

    let rebuilt = SignalMessage::new(
        parsed.message_version(),
        mac_key,
        *parsed.ratchet_key(),
        parsed.counter(),
        parsed.previous_counter(),
        parsed.body().to_vec(),
        sender,
        receiver,
    );
    assert_eq!(rebuilt.serialized(), parsed.serialized());
    let protobuf = &parsed.serialized()[1..parsed.serialized().len() - 8];
    assert_eq!(hex::encode(protobuf), fields["protobuf"]);
}

#[test]
fn dm_messages_parse_and_rebuild_byte_for_byte() {
    for name in DM_FILES {
        let file = vector(name);
        let (alice, bob) = (identity(&file, "alice"), identity(&file, "bob"));
        for message in file["messages"].as_array().unwrap() {
            let (sender, receiver) = if message["from"] == "alice" {
                (alice, bob)
            } else {
                (bob, alice)
            };
            let mac_key: [u8; 32] = hex_array(&message["message_keys"]["mac_key"]);
            let serialized = hex_field(&message["serialized"]);
            let message_type =
                CiphertextMessageType::try_from(uint(&message["type"]) as u8).unwrap();
            let decoded = CiphertextMessage::decode(message_type, &serialized).unwrap();
            assert_eq!(decoded.serialize(), serialized.as_slice());
            assert_eq!(decoded.message_type(), message_type);

            let inner = match &decoded {
                CiphertextMessage::Whisper(inner) => inner.clone(),
                CiphertextMessage::PreKey(outer) => {
                    let fields = &message["prekey_outer"];
                    assert_eq!(
                        outer.message_version(),
                        u8::from_str_radix(fields["version_byte"].as_str().unwrap(), 16).unwrap()
                            >> 4
                    );
                    assert_eq!(
                        u64::from(outer.registration_id().0),
                        uint(&fields["registration_id"])
                    );
                    assert_eq!(
                        outer.pre_key_id().map(|id| u64::from(id.0)),
                        fields["pre_key_id"].as_u64()
                    );
                    assert_eq!(
                        u64::from(outer.signed_pre_key_id().0),
                        uint(&fields["signed_pre_key_id"])
                    );
                    assert_eq!(
                        outer.kyber_pre_key_id().map(|id| u64::from(id.0)),
                        fields["kyber_pre_key_id"].as_u64()
                    );
                    assert_eq!(
                        outer
                            .kyber_ciphertext()
                            .map(|ct| hex::encode(ct.serialize())),
                        fields["kyber_ciphertext"].as_str().map(str::to_owned)
                    );
                    assert_eq!(
                        hex::encode(outer.base_key().serialize()),
                        fields["base_key"]
                    );
                    assert_eq!(
                        hex::encode(outer.identity_key().serialize()),
                        fields["identity_key"]
                    );
                    assert_eq!(outer.identity_key(), &sender);
                    let rebuilt = PreKeySignalMessage::new(
                        outer.message_version(),
                        RegistrationId(outer.registration_id().0),
                        outer.pre_key_id().map(|id| PreKeyId(id.0)),
                        SignedPreKeyId(outer.signed_pre_key_id().0),
                        outer.kyber_pre_key_id().map(|id| {
                            (
                                KyberPreKeyId(id.0),
                                outer.kyber_ciphertext().unwrap().clone(),
                            )
                        }),
                        *outer.base_key(),
                        *outer.identity_key(),
                        outer.message().clone(),
                    );
                    assert_eq!(rebuilt.serialized(), serialized.as_slice());
                    outer.message().clone()
                }
            };
            assert_eq!(
                hex::encode(inner.serialized()),
                message["signal_message_serialized"]
            );
            check_signal_message(
                &inner,
                &message["signal_message"],
                &sender,
                &receiver,
                &mac_key,
            );
        }
    }
}

#[test]
fn malformed_dm_messages_are_typed_errors() {
    let file = vector("dm_pqxdh_otpk.json");
    let prekey = hex_field(&file["messages"][0]["serialized"]);
    let whisper = hex_field(&file["messages"][2]["serialized"]);

    let mut legacy = whisper.clone();
    legacy[0] = 0x24;
    let error = SignalMessage::try_from(legacy.as_slice()).unwrap_err();
    assert_eq!(error, DecodeError::LegacyVersion(2));
    assert_eq!(error.class(), ErrorClass::LegacyVersion);
    let mut future = prekey.clone();
    future[0] = 0x54;
    let error = PreKeySignalMessage::try_from(future.as_slice()).unwrap_err();
    assert_eq!(error.class(), ErrorClass::UnrecognizedVersion);

    // Every truncation of a valid message is rejected without a panic.
    for len in 0..prekey.len() {
        let _ = PreKeySignalMessage::try_from(&prekey[..len]);
    }
    for len in 0..whisper.len() {
        let _ = SignalMessage::try_from(&whisper[..len]);
    }
    // Bit flips in the framing or protobuf either parse or fail cleanly.
    for index in 0..whisper.len() {
        let mut flipped = whisper.clone();
        flipped[index] ^= 0x80;
        let _ = SignalMessage::try_from(flipped.as_slice());
    }
}

#[test]
fn sender_key_messages_parse_and_rebuild_byte_for_byte() {
    let file = vector("sender_keys.json");
    let state = &file["sender_key_state"];
    let signing_private =
        PrivateKey::deserialize(&hex_field(&state["signing_key_private"])).unwrap();
    let signing_public = PublicKey::deserialize(&hex_field(&state["signing_key_public"])).unwrap();
    assert_eq!(signing_private.public_key(), signing_public);
    let distribution_id: [u8; 16] = hex_array(&file["distribution_id_bytes"]);

    for message in file["messages"].as_array().unwrap() {
        let parts = &message["parts"];
        let serialized = hex_field(&message["serialized"]);
        let parsed = SenderKeyMessage::try_from(serialized.as_slice()).unwrap();
        assert_eq!(parsed.message_version(), 3);
        assert_eq!(parsed.distribution_id(), &distribution_id);
        assert_eq!(u64::from(parsed.chain_id()), uint(&parts["chain_id"]));
        assert_eq!(u64::from(parsed.iteration()), uint(&parts["iteration"]));
        assert_eq!(hex::encode(parsed.body()), parts["ciphertext"]);
        assert!(parsed.verify_signature(&signing_public));

        let mut rng = ReplayRng::empty();
        rng.push_bytes(&hex_field(&parts["xeddsa_random_64"]));
        let rebuilt = SenderKeyMessage::new(
            distribution_id,
            parsed.chain_id(),
            parsed.iteration(),
            parsed.body().to_vec(),
            &signing_private,
            &mut rng,
        );
        rng.assert_exhausted();
        assert_eq!(rebuilt.serialized(), serialized.as_slice());
        assert_eq!(
            hex::encode(&serialized[1..serialized.len() - 64]),
            parts["protobuf"]
        );
        assert_eq!(
            hex::encode(&serialized[serialized.len() - 64..]),
            parts["signature"]
        );
    }

    let bad = file["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| !d["input_serialized"].is_null())
        .unwrap();
    let tampered =
        SenderKeyMessage::try_from(hex_field(&bad["input_serialized"]).as_slice()).unwrap();
    assert!(!tampered.verify_signature(&signing_public));

    for skdm in [&file["skdm_initial"], &file["skdm_late_for_carol"]] {
        let serialized = hex_field(&skdm["serialized"]);
        let parsed = SenderKeyDistributionMessage::try_from(serialized.as_slice()).unwrap();
        assert_eq!(u64::from(parsed.chain_id()), uint(&skdm["chain_id"]));
        assert_eq!(u64::from(parsed.iteration()), uint(&skdm["iteration"]));
        assert_eq!(hex::encode(parsed.chain_key()), skdm["chain_key"]);
        assert_eq!(parsed.signing_key(), &signing_public);
        assert_eq!(parsed.distribution_id(), &distribution_id);
        let rebuilt = SenderKeyDistributionMessage::new(
            distribution_id,
            parsed.chain_id(),
            parsed.iteration(),
            parsed.chain_key(),
            signing_public,
        );
        assert_eq!(rebuilt.serialized(), serialized.as_slice());
    }
}
