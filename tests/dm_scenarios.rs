//! The three 1:1 scenarios of libsignal 0.73.3 (PQXDH with and without a one-time prekey, and
//! X3DH), event by event: exact ciphertext bytes, decrypt results and error classes, the acting
//! party's session state after every event, and a storage round trip of every record — once
//! with the logged draws replayed and once with the seeded ChaCha20 streams libsignal used.
// Test code: panicking on unexpected vector contents is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::Value;
use spots_signal::keys::{IdentityKeyPair, KyberPreKeyRecord, PreKeyRecord, RegistrationId};
use spots_signal::persist::Persist;
use spots_signal::pqxdh::PreKeyBundle;
use spots_signal::wire::{CiphertextMessage, CiphertextMessageType};
use spots_signal::{
    SessionError, SessionRecord, decrypt_prekey_message, decrypt_signal_message, encrypt,
    process_prekey_bundle,
};
use support::dm::{
    FILES, bob_keys_from_file, bob_keys_from_stream, now, options_for, private, snapshot_json,
    vector_error_class,
};
use support::{ScenarioRng, hex_field, uint, vector};

struct Party {
    identity: IdentityKeyPair,
    registration_id: RegistrationId,
    record: Option<SessionRecord>,
    rng: ScenarioRng,
}

/// Runs every event of `file`, checking bytes, results and state after each one.
fn run_scenario(file: &Value, seeded: bool) {
    let options = options_for(file);
    let now = now(file);
    let bundle: PreKeyBundle = serde_json::from_value(file["bundle"].clone()).unwrap();
    assert_eq!(
        serde_json::to_value(&bundle).unwrap(),
        file["bundle"],
        "bundle JSON round trip"
    );

    let (mut alice, mut bob, bob_keys) = if seeded {
        let mut alice_rng = ScenarioRng::seeded(&file["rng_seeds"]["alice"]);
        alice_rng.expect(&file["alice"]["identity_keygen_rng_draws"]);
        let alice_identity = IdentityKeyPair::generate(&mut alice_rng);
        alice_rng.check("alice identity");
        let mut bob_rng = ScenarioRng::seeded(&file["rng_seeds"]["bob"]);
        let (bob_identity, keys) = bob_keys_from_stream(file, &mut bob_rng);
        (
            Party {
                identity: alice_identity,
                registration_id: RegistrationId(1111),
                record: None,
                rng: alice_rng,
            },
            Party {
                identity: bob_identity,
                registration_id: RegistrationId(2222),
                record: None,
                rng: bob_rng,
            },
            keys,
        )
    } else {
        let identity = |party: &str| {
            IdentityKeyPair::from_private_key(private(&file[party]["identity"]["private"]))
        };
        (
            Party {
                identity: identity("alice"),
                registration_id: RegistrationId(1111),
                record: None,
                rng: ScenarioRng::replay(),
            },
            Party {
                identity: identity("bob"),
                registration_id: RegistrationId(2222),
                record: None,
                rng: ScenarioRng::replay(),
            },
            bob_keys_from_file(file),
        )
    };
    assert_eq!(
        hex::encode(alice.identity.identity_key().serialize()),
        file["alice"]["identity"]["public"]
    );
    assert_eq!(
        u64::from(alice.registration_id.0),
        uint(&file["alice"]["registration_id"])
    );
    assert_eq!(
        u64::from(bob.registration_id.0),
        uint(&file["bob"]["registration_id"])
    );

    alice
        .rng
        .expect(&file["handshake"]["alice_process_bundle_rng_draws"]);
    let record = process_prekey_bundle(
        None,
        &alice.identity,
        alice.registration_id,
        &bundle,
        options,
        now,
        &mut alice.rng,
    )
    .unwrap();
    alice.rng.check("process_prekey_bundle");
    alice.record = Some(record);

    let messages: Vec<&Value> = file["messages"].as_array().unwrap().iter().collect();
    let mut bob_used_pre_keys = 0;
    for event in file["events"].as_array().unwrap() {
        let context = format!(
            "step {} ({} {} {})",
            event["step"], event["actor"], event["action"], event["message"]
        );
        let message = messages
            .iter()
            .find(|m| m["id"] == event["message"])
            .expect("message");
        let (actor, peer) = if event["actor"] == "alice" {
            (&mut alice, &bob)
        } else {
            (&mut bob, &alice)
        };
        match event["action"].as_str().unwrap() {
            "encrypt" => {
                let record = actor.record.as_ref().expect("session");
                let (updated, ciphertext) = encrypt(
                    record,
                    actor.identity.identity_key(),
                    peer.identity.identity_key(),
                    &hex_field(&message["plaintext_hex"]),
                    now,
                )
                .unwrap();
                assert_eq!(
                    hex::encode(ciphertext.serialize()),
                    message["serialized"],
                    "{context}"
                );
                assert_eq!(
                    ciphertext.message_type() as u64,
                    uint(&message["type"]),
                    "{context}"
                );
                actor.record = Some(updated);
            }
            "decrypt" => {
                let input = if event["input_serialized"].is_null() {
                    &message["serialized"]
                } else {
                    &event["input_serialized"]
                };
                let bytes = hex_field(input);
                let message_type =
                    CiphertextMessageType::try_from(uint(&message["type"]) as u8).unwrap();
                actor.rng.expect(&event["rng_draws"]);
                let before = actor.record.clone();
                let result = match CiphertextMessage::decode(message_type, &bytes).unwrap() {
                    CiphertextMessage::PreKey(prekey) => decrypt_prekey_message(
                        actor.record.as_ref(),
                        &actor.identity,
                        actor.registration_id,
                        &prekey,
                        &bob_keys,
                        options,
                        &mut actor.rng,
                    )
                    .map(|outcome| {
                        if let Some(used) = outcome.used_pre_keys {
                            bob_used_pre_keys += 1;
                            assert_eq!(used.signed_pre_key_id, bob_keys.signed.id());
                            assert_eq!(
                                used.one_time_pre_key_id,
                                bob_keys.one_time.as_ref().map(PreKeyRecord::id)
                            );
                            assert_eq!(
                                used.kyber_pre_key.map(|(id, _)| id),
                                bob_keys.kyber.as_ref().map(KyberPreKeyRecord::id)
                            );
                        }
                        (outcome.record, outcome.plaintext)
                    }),
                    CiphertextMessage::Whisper(whisper) => decrypt_signal_message(
                        actor.record.as_ref().expect("session"),
                        &whisper,
                        &mut actor.rng,
                    ),
                };
                actor.rng.check(&context);
                let expected = &event["result"];
                match result {
                    Ok((record, plaintext)) => {
                        assert!(
                            expected["ok"].as_bool().unwrap(),
                            "{context}: expected {expected}"
                        );
                        assert_eq!(
                            hex::encode(plaintext),
                            expected["plaintext_hex"],
                            "{context}"
                        );
                        if let Some(generated) = event["dh_ratchet_keys_generated"]
                            .as_array()
                            .and_then(|g| g.last())
                        {
                            let sender = record.inspect().current_session.unwrap().sender_chain;
                            let key = &generated["new_ratchet_key"];
                            assert_eq!(
                                hex::encode(sender.ratchet_key.serialize()),
                                key["public"],
                                "{context}"
                            );
                            assert_eq!(
                                hex::encode(sender.ratchet_private_key.unwrap().expose()),
                                key["private"],
                                "{context}"
                            );
                        }
                        actor.record = Some(record);
                    }
                    Err(error) => {
                        assert!(
                            !expected["ok"].as_bool().unwrap(),
                            "{context}: unexpected {error}"
                        );
                        let libsignal = expected["error"].as_str().unwrap();
                        assert_eq!(
                            error.class(),
                            vector_error_class(libsignal),
                            "{context}: {error} vs {libsignal}"
                        );
                        if let SessionError::DuplicateMessage { .. } = error {
                            assert_eq!(error.to_string(), libsignal, "{context}");
                        }
                        assert_eq!(
                            actor.record, before,
                            "{context}: rejected input changed state"
                        );
                    }
                }
            }
            other => panic!("unknown action {other}"),
        }
        let record = actor.record.as_ref().expect("record");
        assert_eq!(
            snapshot_json(&record.inspect()),
            event["session_after"],
            "{context}: session state"
        );

        // Storage round trip: decoding restores the same state, re-encoding the same bytes.
        let stored = record.to_record_bytes();
        let restored = SessionRecord::from_record_bytes(&stored).unwrap();
        assert_eq!(&restored, record, "{context}: storage round trip");
        assert_eq!(
            *restored.to_record_bytes(),
            *stored,
            "{context}: stable encoding"
        );
    }
    assert_eq!(
        bob_used_pre_keys, 1,
        "only the first PreKey message consumes prekeys"
    );
}

#[test]
fn scenarios_replaying_the_logged_draws() {
    for name in FILES {
        run_scenario(&vector(name), false);
    }
}

#[test]
fn scenarios_with_the_seeded_chacha20_streams() {
    for name in FILES {
        run_scenario(&vector(name), true);
    }
}
