//! 1:1 handshake details against libsignal 0.73.3: every DH output, the KEM secret, the secret
//! input and HKDF outputs; per-message keys; the X3DH compatibility switch; decrypting the
//! vectors' standalone inputs from a fresh recipient.
// Test code: panicking on unexpected vector contents is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use serde_json::json;
use spots_signal::keys::{IdentityKeyPair, KeyPair, RegistrationId};
use spots_signal::pqxdh::{PreKeyBundle, SessionOptions, derive_initial_keys};
use spots_signal::ratchet::ChainKey;
use spots_signal::wire::PreKeySignalMessage;
use spots_signal::{ErrorClass, SessionError, decrypt_prekey_message, process_prekey_bundle};
use support::dm::{FILES, bob_keys_from_file, now, options_for, private};
use support::{ReplayRng, hex_array, hex_field, uint, vector};

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
