//! The three 1:1 scenarios of libsignal 0.73.3 (PQXDH with and without a one-time prekey, and
//! X3DH): handshake secrets, message keys, exact ciphertext bytes, decrypt results and error
//! classes, and both parties' session state after every event — once with the logged draws
//! replayed and once with the seeded ChaCha20 streams libsignal used.
// Test code: panicking on unexpected vector contents is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::{Value, json};
use spots_signal::kem;
use spots_signal::keys::{
    IdentityKeyPair, KeyPair, KyberPreKeyId, KyberPreKeyRecord, PreKeyId, PreKeyRecord, PrivateKey,
    PublicKey, RegistrationId, SignedPreKeyId, SignedPreKeyRecord,
};
use spots_signal::pqxdh::{PreKeyBundle, SessionOptions, derive_initial_keys};
use spots_signal::ratchet::ChainKey;
use spots_signal::session::inspect::{ChainSnapshot, SessionSnapshot};
use spots_signal::wire::{CiphertextMessage, CiphertextMessageType, PreKeySignalMessage};
use spots_signal::{
    ErrorClass, PreKeyLookup, SessionError, SessionRecord, Timestamp, decrypt_prekey_message,
    decrypt_signal_message, encrypt, process_prekey_bundle,
};
use support::{ReplayRng, ScenarioRng, hex_array, hex_field, uint, vector};

const FILES: [&str; 3] = [
    "dm_pqxdh_otpk.json",
    "dm_pqxdh_no_otpk.json",
    "dm_x3dh_v3_otpk.json",
];
const COMPAT: SessionOptions = SessionOptions { accept_x3dh: true };

fn is_x3dh(file: &Value) -> bool {
    file["bundle"]["kyber_pre_key_id"].is_null()
}

fn options_for(file: &Value) -> SessionOptions {
    if is_x3dh(file) {
        COMPAT
    } else {
        SessionOptions::default()
    }
}

fn public(value: &Value) -> PublicKey {
    PublicKey::deserialize(&hex_field(value)).unwrap()
}

fn private(value: &Value) -> PrivateKey {
    PrivateKey::deserialize(&hex_field(value)).unwrap()
}

fn now(file: &Value) -> Timestamp {
    Timestamp::from_secs(uint(&file["now_unix_seconds"]))
}

/// Bob's prekeys, as the lookup a PreKey-message decryption consults.
#[derive(Debug, Clone)]
struct BobKeys {
    signed: SignedPreKeyRecord,
    one_time: Option<PreKeyRecord>,
    kyber: Option<KyberPreKeyRecord>,
}

impl PreKeyLookup for BobKeys {
    fn signed_pre_key(&self, id: SignedPreKeyId) -> Option<SignedPreKeyRecord> {
        (self.signed.id() == id).then(|| self.signed.clone())
    }
    fn one_time_pre_key(&self, id: PreKeyId) -> Option<PreKeyRecord> {
        self.one_time.clone().filter(|record| record.id() == id)
    }
    fn kyber_pre_key(&self, id: KyberPreKeyId) -> Option<KyberPreKeyRecord> {
        self.kyber.clone().filter(|record| record.id() == id)
    }
}

/// Bob's prekeys loaded from the vector's private keys.
fn bob_keys_from_file(file: &Value) -> BobKeys {
    let keys = &file["bob_private_keys"];
    let signed = &keys["signed_pre_key"];
    let signed = SignedPreKeyRecord::new(
        SignedPreKeyId(uint(&signed["id"]) as u32),
        now(file),
        KeyPair::from_private_key(private(&signed["private"])),
        hex_array(&signed["signature"]),
    );
    let one_time = (!keys["one_time_pre_key"].is_null()).then(|| {
        let key = &keys["one_time_pre_key"];
        let pair = KeyPair::from_private_key(private(&key["private"]));
        assert_eq!(pair.public_key(), &public(&key["public"]));
        PreKeyRecord::new(PreKeyId(uint(&key["id"]) as u32), pair)
    });
    let kyber = (!keys["kyber_pre_key"].is_null()).then(|| {
        let key = &keys["kyber_pre_key"];
        let pair = kem::KeyPair::new(
            kem::PublicKey::deserialize(&hex_field(&key["public"])).unwrap(),
            kem::SecretKey::deserialize(&hex_field(&key["secret"])).unwrap(),
        )
        .unwrap();
        KyberPreKeyRecord::new(
            KyberPreKeyId(uint(&key["id"]) as u32),
            now(file),
            pair,
            hex_array(&key["signature"]),
            true,
        )
    });
    BobKeys {
        signed,
        one_time,
        kyber,
    }
}

/// Bob's keys regenerated from his seeded stream, in libsignal's order: identity, signed
/// prekey (+ signature), one-time prekey, Kyber prekey (+ signature). The vector generator
/// made all of them even when a scenario does not publish one, so all are drawn here too.
fn bob_keys_from_stream(file: &Value, rng: &mut ScenarioRng) -> (IdentityKeyPair, BobKeys) {
    let bob = &file["bob"];
    let identity = IdentityKeyPair::generate(rng);
    let signed = SignedPreKeyRecord::generate(SignedPreKeyId(7), &identity, now(file), rng);
    let one_time = PreKeyRecord::generate(PreKeyId(31), rng);
    let kyber = KyberPreKeyRecord::generate(KyberPreKeyId(97), &identity, now(file), true, rng);

    assert_eq!(
        hex::encode(identity.identity_key().serialize()),
        bob["identity"]["public"]
    );
    assert_eq!(
        hex::encode(*identity.private_key().serialize()),
        bob["identity"]["private"]
    );
    assert_eq!(
        hex::encode(signed.public_key().serialize()),
        bob["signed_pre_key"]["public"]
    );
    assert_eq!(
        hex::encode(signed.signature()),
        bob["signed_pre_key"]["signature"]
    );
    let one_time = (!bob["one_time_pre_key"].is_null()).then(|| {
        assert_eq!(
            hex::encode(one_time.public_key().serialize()),
            bob["one_time_pre_key"]["public"]
        );
        one_time
    });
    let kyber = (!bob["kyber_pre_key"].is_null()).then(|| {
        assert_eq!(
            hex::encode(kyber.public_key().serialize()),
            bob["kyber_pre_key"]["public"]
        );
        assert_eq!(
            hex::encode(kyber.signature()),
            bob["kyber_pre_key"]["signature"]
        );
        kyber
    });
    (
        identity,
        BobKeys {
            signed,
            one_time,
            kyber,
        },
    )
}

/// Maps libsignal's error strings onto our stable classes.
fn vector_error_class(message: &str) -> ErrorClass {
    if message.starts_with("message with old counter") {
        ErrorClass::DuplicateMessage
    } else if message.starts_with("invalid Whisper message")
        || message.starts_with("invalid PreKey message")
    {
        ErrorClass::InvalidMessage
    } else if message.starts_with("session with") && message.ends_with("not found") {
        ErrorClass::SessionNotFound
    } else if message.starts_with("untrusted identity") {
        ErrorClass::UntrustedIdentity
    } else {
        panic!("no class for libsignal error {message:?}")
    }
}

fn hex_secret(bytes: &[u8]) -> Value {
    Value::String(hex::encode(bytes))
}

fn chain_json(chain: &ChainSnapshot) -> Value {
    json!({
        "chain_key": hex_secret(chain.chain_key.expose()),
        "chain_key_index": chain.chain_key_index,
        "sender_ratchet_key": hex::encode(chain.ratchet_key.serialize()),
        "sender_ratchet_key_private": chain.ratchet_private_key.as_ref().map(|k| hex::encode(k.expose())),
        "stored_skipped_message_keys": chain.skipped_message_keys.iter().map(|key| json!({
            "cipher_key": null, "index": key.index, "iv": null, "mac_key": null,
            "seed": hex_secret(key.seed.expose()),
        })).collect::<Vec<_>>(),
    })
}

/// Our snapshot in the vectors' `session_after` format.
fn snapshot_json(snapshot: &SessionSnapshot) -> Value {
    let current = snapshot.current_session.as_ref().map(|state| {
        json!({
            "alice_base_key": hex::encode(state.alice_base_key.serialize()),
            "local_identity_public": hex::encode(state.local_identity.serialize()),
            "local_registration_id": state.local_registration_id,
            "pending_kyber_pre_key": state.pending_pre_key.as_ref().and_then(|p| p.kyber.as_ref()).map(|(id, ct)| json!({
                "ciphertext_len": ct.len(), "pre_key_id": id,
            })),
            "pending_pre_key": state.pending_pre_key.as_ref().map(|p| json!({
                "base_key": hex::encode(p.base_key.serialize()),
                "pre_key_id": p.pre_key_id,
                "signed_pre_key_id": p.signed_pre_key_id,
                "timestamp": p.timestamp.as_secs(),
            })),
            "previous_counter": state.previous_counter,
            "receiver_chains_oldest_first": state.receiver_chains.iter().map(chain_json).collect::<Vec<_>>(),
            "remote_identity_public": hex::encode(state.remote_identity.serialize()),
            "remote_registration_id": state.remote_registration_id,
            "root_key": hex_secret(state.root_key.expose()),
            "sender_chain": chain_json(&state.sender_chain),
            "session_version": state.session_version,
        })
    });
    json!({ "archived_session_count": snapshot.archived_sessions.len(), "current_session": current })
}

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
        let snapshot = actor.record.as_ref().expect("record").inspect();
        assert_eq!(
            snapshot_json(&snapshot),
            event["session_after"],
            "{context}: session state"
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

#[test]
fn handshake_secrets_match() {
    for name in FILES {
        let file = vector(name);
        let handshake = &file["handshake"];
        let alice_identity = private(&file["alice"]["identity"]["private"]);
        let bob_keys = bob_keys_from_file(&file);
        let bob_identity = private(&file["bob"]["identity"]["private"]);
        let bundle: PreKeyBundle = serde_json::from_value(file["bundle"].clone()).unwrap();
        bundle.verify().unwrap();

        let mut rng = ReplayRng::from_draws(&handshake["alice_process_bundle_rng_draws"]);
        let base = KeyPair::generate(&mut rng);
        let ratchet = KeyPair::generate(&mut rng);
        assert_eq!(
            hex::encode(*base.private_key().serialize()),
            handshake["alice_base_key"]["private"]
        );
        assert_eq!(
            hex::encode(base.public_key().serialize()),
            handshake["alice_base_key"]["public"]
        );
        assert_eq!(
            hex::encode(*ratchet.private_key().serialize()),
            handshake["alice_initial_ratchet_key"]["private"]
        );
        assert_eq!(
            hex::encode(ratchet.public_key().serialize()),
            handshake["alice_initial_ratchet_key"]["public"]
        );

        let spk = bob_keys.signed.public_key();
        let dh1 = alice_identity.agree(spk).unwrap();
        let dh2 = base.agree(&bob_identity.public_key()).unwrap();
        let dh3 = base.agree(spk).unwrap();
        assert_eq!(hex::encode(*dh1), handshake["dh1_IKa_SPKb"]);
        assert_eq!(hex::encode(*dh2), handshake["dh2_EKa_IKb"]);
        assert_eq!(hex::encode(*dh3), handshake["dh3_EKa_SPKb"]);
        // Bob computes the same values from his side.
        assert_eq!(
            *bob_keys
                .signed
                .key_pair()
                .agree(&alice_identity.public_key())
                .unwrap(),
            *dh1
        );
        assert_eq!(*bob_identity.agree(base.public_key()).unwrap(), *dh2);
        assert_eq!(
            *bob_keys.signed.key_pair().agree(base.public_key()).unwrap(),
            *dh3
        );

        let mut secret = vec![0xFF; 32];
        secret.extend_from_slice(&*dh1);
        secret.extend_from_slice(&*dh2);
        secret.extend_from_slice(&*dh3);
        match &bob_keys.one_time {
            Some(one_time) => {
                let dh4 = base.agree(one_time.public_key()).unwrap();
                assert_eq!(hex::encode(*dh4), handshake["dh4_EKa_OPKb"]);
                assert_eq!(*one_time.key_pair().agree(base.public_key()).unwrap(), *dh4);
                secret.extend_from_slice(&*dh4);
            }
            None => assert!(handshake["dh4_EKa_OPKb"].is_null()),
        }
        match &bob_keys.kyber {
            Some(kyber) => {
                let (shared, ciphertext) = kyber.public_key().encapsulate(&mut rng);
                let kem = &handshake["kem"];
                assert_eq!(hex::encode(*shared), kem["shared_secret"]);
                assert_eq!(
                    hex::encode(ciphertext.serialize()),
                    kem["ciphertext_serialized"]
                );
                assert_eq!(
                    *kyber.key_pair().secret_key().decapsulate(&ciphertext),
                    *shared
                );
                secret.extend_from_slice(&*shared);
            }
            None => assert!(handshake["kem"].is_null()),
        }
        rng.assert_exhausted();
        assert_eq!(hex::encode(&secret), handshake["secret_input"]);

        let (root, chain) = derive_initial_keys(&secret, bob_keys.kyber.is_some());
        assert_eq!(hex::encode(root.as_bytes()), handshake["root_key"]);
        assert_eq!(hex::encode(chain.as_bytes()), handshake["chain_key"]);
        let first = &handshake["alice_first_sending_chain"];
        assert_eq!(
            hex::encode(*ratchet.agree(spk).unwrap()),
            first["dh_ratchet0_SPKb"]
        );
        let (next_root, sending) = root.create_chain(spk, ratchet.private_key()).unwrap();
        assert_eq!(hex::encode(next_root.as_bytes()), first["root_key"]);
        assert_eq!(hex::encode(sending.as_bytes()), first["chain_key"]);
        assert_eq!(sending.index(), 0);
    }
}

#[test]
fn message_keys_match() {
    for name in FILES {
        let file = vector(name);
        for message in file["messages"].as_array().unwrap() {
            let used = &message["sender_chain_key_used"];
            let chain = ChainKey::new(hex_array(&used["key"]), uint(&used["index"]) as u32);
            let keys = chain.message_keys();
            let expected = &message["message_keys"];
            assert_eq!(
                hex::encode(chain.message_key_seed().as_bytes()),
                expected["hmac_seed"]
            );
            assert_eq!(hex::encode(keys.cipher_key()), expected["cipher_key"]);
            assert_eq!(hex::encode(keys.mac_key()), expected["mac_key"]);
            assert_eq!(hex::encode(keys.iv()), expected["iv"]);
            assert_eq!(
                u64::from(keys.counter()),
                uint(&message["signal_message"]["counter"])
            );
            assert_eq!(
                hex::encode(chain.next().unwrap().as_bytes()),
                message["next_chain_key"]
            );
        }
    }
}

#[test]
fn x3dh_requires_the_compatibility_option() {
    let file = vector("dm_x3dh_v3_otpk.json");
    let bundle: PreKeyBundle = serde_json::from_value(file["bundle"].clone()).unwrap();
    let alice = IdentityKeyPair::from_private_key(private(&file["alice"]["identity"]["private"]));
    let error = process_prekey_bundle(
        None,
        &alice,
        RegistrationId(1111),
        &bundle,
        SessionOptions::default(),
        now(&file),
        &mut ReplayRng::empty(),
    )
    .unwrap_err();
    assert_eq!(error, SessionError::X3dhNotAllowed);
    assert_eq!(error.class(), ErrorClass::ProtocolNotAllowed);

    let bob = IdentityKeyPair::from_private_key(private(&file["bob"]["identity"]["private"]));
    let first =
        PreKeySignalMessage::try_from(hex_field(&file["messages"][0]["serialized"]).as_slice())
            .unwrap();
    assert_eq!(first.message_version(), 3);
    let error = decrypt_prekey_message(
        None,
        &bob,
        RegistrationId(2222),
        &first,
        &bob_keys_from_file(&file),
        SessionOptions::default(),
        &mut ReplayRng::empty(),
    )
    .unwrap_err();
    assert_eq!(error, SessionError::X3dhNotAllowed);
}

#[test]
fn decrypt_dm_input_from_a_fresh_recipient() {
    for name in FILES {
        let file = vector(name);
        let input = &file["decrypt_dm_input"];
        let bob =
            IdentityKeyPair::from_private_key(private(&input["recipient"]["identity_private"]));
        let keys = bob_keys_from_file(&file);
        let mut rng = support::seeded(&json!(99));
        let mut record = None;
        for message in input["messages"].as_array().unwrap() {
            assert_eq!(uint(&message["type"]), 3);
            let parsed =
                PreKeySignalMessage::try_from(hex_field(&message["body"]).as_slice()).unwrap();
            let outcome = decrypt_prekey_message(
                record.as_ref(),
                &bob,
                RegistrationId(2222),
                &parsed,
                &keys,
                options_for(&file),
                &mut rng,
            )
            .unwrap();
            assert_eq!(
                hex::encode(&outcome.plaintext),
                message["expected_plaintext_hex"]
            );
            assert_eq!(outcome.used_pre_keys.is_some(), record.is_none());
            record = Some(outcome.record);
        }
    }
}
