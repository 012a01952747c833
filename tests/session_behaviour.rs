//! Session-layer rules beyond the reference conversations: expiry, trust, archiving and
//! promotion, PreKey-message reuse, the chain and skipped-key limits, the forward-jump limit and
//! rejection of malformed or hostile input.
// Test code: panicking on unexpected results is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::time::Duration;

use spots_signal::keys::{IdentityKeyPair, KeyError, PublicKey, RegistrationId};
use spots_signal::persist::Persist;
use spots_signal::pqxdh::{BundleError, SessionOptions};
use spots_signal::wire::{
    CiphertextMessage, CiphertextMessageType, PreKeySignalMessage, SignalMessage,
};
use spots_signal::{
    ErrorClass, SessionError, SessionRecord, Timestamp, decrypt_prekey_message,
    decrypt_signal_message, encrypt, process_prekey_bundle,
};
use support::device::Device;

const T0: Timestamp = Timestamp::from_secs(1_700_000_000);

fn pair() -> (Device, Device) {
    let alice = Device::new(1, 1111);
    let mut bob = Device::new(2, 2222);
    let bundle = bob.bundle(false);
    let mut alice = alice;
    alice.start_session(&bundle, T0);
    (alice, bob)
}

fn deliver(to: &mut Device, message: &CiphertextMessage) -> Result<Vec<u8>, SessionError> {
    to.receive(message.message_type(), message.serialize())
}

fn base_key(record: &SessionRecord) -> PublicKey {
    record.inspect().current_session.unwrap().alice_base_key
}

#[test]
fn prekey_messages_until_the_first_reply_then_whisper() {
    let (mut alice, mut bob) = pair();
    let bob_id = bob.identity.clone();
    let alice_id = alice.identity.clone();
    let m1 = alice.send(&bob_id, b"one", T0);
    let m2 = alice.send(&bob_id, b"two", T0);
    assert_eq!(m1.message_type(), CiphertextMessageType::PreKey);
    assert_eq!(m2.message_type(), CiphertextMessageType::PreKey);
    assert!(alice.record.as_ref().unwrap().has_unacknowledged_pre_key());
    assert_eq!(deliver(&mut bob, &m2).unwrap(), b"two");
    assert_eq!(deliver(&mut bob, &m1).unwrap(), b"one");
    // The one-time prekey was consumed by the first message only; the second reused the session.
    assert!(bob.prekeys.one_time.is_empty());
    let reply = bob.send(&alice_id, b"reply", T0);
    assert_eq!(reply.message_type(), CiphertextMessageType::Whisper);
    assert_eq!(deliver(&mut alice, &reply).unwrap(), b"reply");
    assert!(!alice.record.as_ref().unwrap().has_unacknowledged_pre_key());
    assert_eq!(
        alice.send(&bob_id, b"three", T0).message_type(),
        CiphertextMessageType::Whisper
    );
}

#[test]
fn unacknowledged_sessions_expire_after_30_days() {
    let (mut alice, mut bob) = pair();
    let (bob_id, alice_id) = (bob.identity.clone(), alice.identity.clone());
    let thirty_days = Duration::from_secs(30 * 24 * 3600);
    let record = alice.record.clone().unwrap();
    let at_limit = T0.saturating_add(thirty_days);
    assert!(
        encrypt(
            &record,
            alice_id.identity_key(),
            bob_id.identity_key(),
            b"x",
            at_limit
        )
        .is_ok()
    );
    let after = at_limit.saturating_add(Duration::from_millis(1));
    let error = encrypt(
        &record,
        alice_id.identity_key(),
        bob_id.identity_key(),
        b"x",
        after,
    )
    .unwrap_err();
    assert_eq!(error, SessionError::SessionNotFound);
    assert_eq!(error.class(), ErrorClass::SessionNotFound);

    // Once Bob has replied the session is acknowledged and never expires this way.
    let first = alice.send(&bob_id, b"hi", T0);
    deliver(&mut bob, &first).unwrap();
    let reply = bob.send(&alice_id, b"hello", T0);
    deliver(&mut alice, &reply).unwrap();
    let much_later = T0.saturating_add(thirty_days * 12);
    assert!(
        alice
            .send(&bob_id, b"still here", much_later)
            .serialize()
            .len()
            > 9
    );
}

#[test]
fn identities_are_checked_on_encrypt() {
    let (alice, bob) = pair();
    let stranger = IdentityKeyPair::generate(&mut support::seeded(&serde_json::json!(9)));
    let record = alice.record.as_ref().unwrap();
    let error = encrypt(
        record,
        alice.identity.identity_key(),
        stranger.identity_key(),
        b"x",
        T0,
    )
    .unwrap_err();
    assert_eq!(error, SessionError::UntrustedIdentity);
    assert_eq!(error.class(), ErrorClass::UntrustedIdentity);
    let error = encrypt(
        record,
        stranger.identity_key(),
        bob.identity.identity_key(),
        b"x",
        T0,
    )
    .unwrap_err();
    assert_eq!(error, SessionError::LocalIdentityMismatch);
    assert_eq!(
        encrypt(
            &SessionRecord::new(),
            alice.identity.identity_key(),
            bob.identity.identity_key(),
            b"x",
            T0
        )
        .unwrap_err(),
        SessionError::SessionNotFound
    );
}

#[test]
fn archived_sessions_decrypt_and_are_promoted() {
    let (mut alice, mut bob) = pair();
    let (bob_id, alice_id) = (bob.identity.clone(), alice.identity.clone());
    let first_session_message = alice.send(&bob_id, b"old session", T0);
    let first_base = base_key(alice.record.as_ref().unwrap());

    // Alice starts a second session (e.g. after reinstalling Bob's bundle); the first is archived.
    let bundle = bob.bundle(false);
    alice.start_session(&bundle, T0);
    assert_eq!(alice.record.as_ref().unwrap().archived_session_count(), 1);
    let second_base = base_key(alice.record.as_ref().unwrap());
    assert_ne!(first_base, second_base);

    // Bob only ever saw the first session and replies in it; Alice finds it in the archive.
    deliver(&mut bob, &first_session_message).unwrap();
    let reply = bob.send(&alice_id, b"reply in old session", T0);
    assert_eq!(
        deliver(&mut alice, &reply).unwrap(),
        b"reply in old session"
    );
    let record = alice.record.as_ref().unwrap();
    assert_eq!(
        base_key(record),
        first_base,
        "the session that decrypted is promoted"
    );
    assert_eq!(record.archived_session_count(), 1);
    assert_eq!(
        base_key(&SessionRecord::from_record_bytes(&record.to_record_bytes()).unwrap()),
        first_base
    );
}

#[test]
fn prekey_message_reuses_an_archived_session_with_the_same_base_key() {
    let (mut alice, mut bob) = pair();
    let (bob_id, mut alice2) = (bob.identity.clone(), Device::new(1, 1111));
    let early = alice.send(&bob_id, b"first", T0);
    let late = alice.send(&bob_id, b"second", T0);
    deliver(&mut bob, &early).unwrap();

    // The same Alice (same identity, via a second device object) starts a new session, which
    // Bob accepts and makes current; the first session is archived.
    // (Same identity, fresh randomness, hence a different base key.)
    alice2.rng = support::seeded(&serde_json::json!(77));
    let bundle = bob.bundle(false);
    alice2.start_session(&bundle, T0);
    let newer = alice2.send(&bob_id, b"new session", T0);
    deliver(&mut bob, &newer).unwrap();
    assert_eq!(bob.record.as_ref().unwrap().archived_session_count(), 1);

    // A late PreKey message from the first session is matched by its base key, promoted, and
    // consumes no prekey.
    let CiphertextMessage::PreKey(late) = late else {
        panic!("PreKey expected")
    };
    let outcome = decrypt_prekey_message(
        bob.record.as_ref(),
        &bob.identity,
        bob.registration_id,
        &late,
        &bob.prekeys,
        SessionOptions::default(),
        &mut bob.rng,
    )
    .unwrap();
    assert_eq!(outcome.plaintext, b"second");
    assert_eq!(outcome.used_pre_keys, None);
    assert_eq!(base_key(&outcome.record), *late.base_key());
}

#[test]
fn at_most_40_archived_sessions() {
    let (mut alice, mut bob) = pair();
    for _ in 0..45 {
        let bundle = bob.bundle(true);
        alice.start_session(&bundle, T0);
    }
    assert_eq!(alice.record.as_ref().unwrap().archived_session_count(), 40);
}

#[test]
fn at_most_five_receiving_chains() {
    let (mut alice, mut bob) = pair();
    let (bob_id, alice_id) = (bob.identity.clone(), alice.identity.clone());
    for round in 0..8 {
        let message = alice.send(&bob_id, format!("a{round}").as_bytes(), T0);
        deliver(&mut bob, &message).unwrap();
        let message = bob.send(&alice_id, format!("b{round}").as_bytes(), T0);
        deliver(&mut alice, &message).unwrap();
    }
    let chains = |device: &Device| {
        device
            .record
            .as_ref()
            .unwrap()
            .inspect()
            .current_session
            .unwrap()
            .receiver_chains
            .len()
    };
    assert_eq!(chains(&bob), 5);
    assert_eq!(chains(&alice), 5);
}

#[test]
fn messages_on_an_evicted_chain_are_lost() {
    let (mut alice, mut bob) = pair();
    let (bob_id, alice_id) = (bob.identity.clone(), alice.identity.clone());
    deliver(&mut bob, &alice.send(&bob_id, b"first", T0)).unwrap();
    let straggler = alice.send(&bob_id, b"late", T0);
    for round in 0..5 {
        deliver(
            &mut alice,
            &bob.send(&alice_id, format!("b{round}").as_bytes(), T0),
        )
        .unwrap();
        deliver(
            &mut bob,
            &alice.send(&bob_id, format!("a{round}").as_bytes(), T0),
        )
        .unwrap();
    }
    // Bob now holds Alice's five newest chains; the straggler's chain was dropped.
    let before = bob.record.clone();
    let error = deliver(&mut bob, &straggler).unwrap_err();
    assert_eq!(error.class(), ErrorClass::InvalidMessage);
    assert_eq!(bob.record, before);
}

#[test]
fn skipped_keys_are_capped_at_2000_oldest_first() {
    let (mut alice, mut bob) = pair();
    let bob_id = bob.identity.clone();
    let messages: Vec<_> = (0..2005)
        .map(|i| alice.send(&bob_id, format!("{i}").as_bytes(), T0))
        .collect();
    assert_eq!(deliver(&mut bob, &messages[2004]).unwrap(), b"2004");
    let chain = &bob
        .record
        .as_ref()
        .unwrap()
        .inspect()
        .current_session
        .unwrap()
        .receiver_chains[0];
    assert_eq!(chain.skipped_message_keys.len(), 2000);
    assert_eq!(chain.skipped_message_keys.first().unwrap().index, 2003);
    assert_eq!(chain.skipped_message_keys.last().unwrap().index, 4);
    for evicted in messages.iter().take(4) {
        let error = deliver(&mut bob, evicted).unwrap_err();
        assert_eq!(error.class(), ErrorClass::DuplicateMessage, "{error}");
    }
    assert_eq!(deliver(&mut bob, &messages[4]).unwrap(), b"4");
    assert_eq!(deliver(&mut bob, &messages[1000]).unwrap(), b"1000");
    let error = deliver(&mut bob, &messages[1000]).unwrap_err();
    assert_eq!(
        error,
        SessionError::DuplicateMessage {
            chain_index: 2005,
            counter: 1000
        }
    );
}

#[test]
fn forward_jumps_beyond_25000_are_rejected() {
    let (mut alice, mut bob) = pair();
    let bob_id = bob.identity.clone();
    let mut kept = Vec::new();
    for counter in 0..=25_001u32 {
        let message = alice.send(&bob_id, b"m", T0);
        if counter >= 25_000 {
            kept.push(message);
        }
    }
    let before = bob.record.clone();
    let error = deliver(&mut bob, &kept[1]).unwrap_err();
    assert_eq!(
        error,
        SessionError::TooFarIntoFuture {
            chain_index: 0,
            counter: 25_001
        }
    );
    assert_eq!(error.class(), ErrorClass::InvalidMessage);
    assert_eq!(bob.record, before, "rejected input leaves state unchanged");
    assert_eq!(
        deliver(&mut bob, &kept[0]).unwrap(),
        b"m",
        "a jump of exactly 25,000 is fine"
    );
    let skipped = bob
        .record
        .as_ref()
        .unwrap()
        .inspect()
        .current_session
        .unwrap()
        .receiver_chains[0]
        .skipped_message_keys
        .len();
    assert_eq!(skipped, 2000);
}

#[test]
fn hostile_whisper_messages_are_rejected_without_state_change() {
    let (mut alice, mut bob) = pair();
    let (bob_id, alice_id) = (bob.identity.clone(), alice.identity.clone());
    deliver(&mut bob, &alice.send(&bob_id, b"hi", T0)).unwrap();
    let reply = bob.send(&alice_id, b"reply", T0);
    let CiphertextMessage::Whisper(reply) = reply else {
        panic!("whisper expected")
    };
    let record = alice.record.clone().unwrap();
    let stored = record.to_record_bytes();

    // A low-order ratchet key: the DH ratchet refuses it.
    let low_order = SignalMessage::new(
        4,
        &[0; 32],
        PublicKey::from_djb_bytes([0; 32]),
        0,
        0,
        vec![0; 16],
        bob_id.identity_key(),
        alice_id.identity_key(),
    );
    // A version-3 message in a version-4 session.
    let wrong_version = SignalMessage::new(
        3,
        &[0; 32],
        *reply.ratchet_key(),
        0,
        0,
        vec![0; 16],
        bob_id.identity_key(),
        alice_id.identity_key(),
    );
    for hostile in [low_order, wrong_version] {
        let error = decrypt_signal_message(&record, &hostile, &mut alice.rng).unwrap_err();
        assert_eq!(error, SessionError::DecryptionFailed);
        assert_eq!(*record.to_record_bytes(), *stored);
    }
    // Every single-byte corruption of a valid message fails; the original still decrypts.
    for index in 0..reply.serialized().len() {
        let mut bytes = reply.serialized().to_vec();
        bytes[index] ^= 0x01;
        if let Ok(tampered) = SignalMessage::try_from(bytes.as_slice()) {
            assert!(
                decrypt_signal_message(&record, &tampered, &mut alice.rng).is_err(),
                "byte {index}"
            );
        }
    }
    assert_eq!(
        decrypt_signal_message(&record, &reply, &mut alice.rng)
            .unwrap()
            .1,
        b"reply"
    );
    assert_eq!(
        decrypt_signal_message(&SessionRecord::new(), &reply, &mut alice.rng).unwrap_err(),
        SessionError::SessionNotFound
    );
}

#[test]
fn prekey_messages_naming_missing_keys_are_typed_errors() {
    let (mut alice, mut bob) = pair();
    let bob_id = bob.identity.clone();
    let CiphertextMessage::PreKey(message) = alice.send(&bob_id, b"x", T0) else {
        panic!()
    };
    let decrypt = |bob: &mut Device| {
        decrypt_prekey_message(
            None,
            &bob.identity,
            bob.registration_id,
            &message,
            &bob.prekeys,
            SessionOptions::default(),
            &mut bob.rng,
        )
    };
    let all = bob.prekeys.clone();

    bob.prekeys.one_time.clear();
    let error = decrypt(&mut bob).unwrap_err();
    assert_eq!(
        error,
        SessionError::InvalidPreKeyId(message.pre_key_id().unwrap())
    );
    assert_eq!(error.class(), ErrorClass::InvalidPreKeyId);

    bob.prekeys = all.clone();
    bob.prekeys.kyber.retain(|record| record.is_last_resort());
    assert_eq!(
        decrypt(&mut bob).unwrap_err(),
        SessionError::InvalidKyberPreKeyId(message.kyber_pre_key_id().unwrap())
    );

    bob.prekeys = all.clone();
    bob.prekeys.signed.clear();
    assert_eq!(
        decrypt(&mut bob).unwrap_err(),
        SessionError::InvalidSignedPreKeyId(message.signed_pre_key_id())
    );

    bob.prekeys = all;
    let outcome = decrypt(&mut bob).unwrap();
    let used = outcome.used_pre_keys.unwrap();
    assert_eq!(used.one_time_pre_key_id, message.pre_key_id());
    assert_eq!(
        used.kyber_pre_key,
        Some((message.kyber_pre_key_id().unwrap(), false))
    );
    assert_eq!(used.base_key, *message.base_key());
    assert_eq!(base_key(&outcome.record), used.base_key);
}

#[test]
fn bundles_are_verified_and_kyber_is_required_by_default() {
    let alice = Device::new(1, 1111);
    let mut bob = Device::new(2, 2222);
    let good = bob.bundle(true);
    let start = |bundle, options| {
        process_prekey_bundle(
            None,
            &alice.identity,
            RegistrationId(1),
            bundle,
            options,
            T0,
            &mut support::seeded(&serde_json::json!(5)),
        )
    };

    let mut bad = good.clone();
    bad.signed_pre_key.signature[0] ^= 1;
    let error = start(&bad, SessionOptions::default()).unwrap_err();
    assert_eq!(
        error,
        SessionError::Bundle(BundleError::InvalidSignedPreKeySignature)
    );
    assert_eq!(error.class(), ErrorClass::InvalidSignature);

    let mut bad = good.clone();
    bad.kyber_pre_key.as_mut().unwrap().signature[5] ^= 1;
    assert_eq!(
        start(&bad, SessionOptions::default()).unwrap_err(),
        SessionError::Bundle(BundleError::InvalidKyberPreKeySignature)
    );

    let mut classic = good.clone();
    classic.kyber_pre_key = None;
    assert_eq!(
        start(&classic, SessionOptions::default()).unwrap_err(),
        SessionError::X3dhNotAllowed
    );
    let compat = SessionOptions { accept_x3dh: true };
    assert_eq!(start(&classic, compat).unwrap().session_version(), Some(3));
    // With a Kyber prekey the session is PQXDH whatever the option says.
    assert_eq!(start(&good, compat).unwrap().session_version(), Some(4));

    // A low-order signed prekey, validly signed, still cannot force a known secret.
    let mut low_order = good.clone();
    low_order.signed_pre_key.public_key = PublicKey::from_djb_bytes([0; 32]);
    low_order.signed_pre_key.signature = bob.identity.sign(
        &low_order.signed_pre_key.public_key.serialize(),
        &mut support::seeded(&serde_json::json!(6)),
    );
    let error = start(&low_order, SessionOptions::default()).unwrap_err();
    assert_eq!(error, SessionError::Key(KeyError::NonContributory));
    assert_eq!(error.class(), ErrorClass::InvalidKey);
}

#[test]
fn debug_output_never_contains_secrets() {
    let (mut alice, mut bob) = pair();
    let bob_id = bob.identity.clone();
    let message = alice.send(&bob_id, b"secret plaintext", T0);
    deliver(&mut bob, &message).unwrap();
    let record = alice.record.as_ref().unwrap();
    let snapshot = record.inspect();
    let state = snapshot.current_session.as_ref().unwrap();
    let secrets = [
        hex::encode(state.root_key.expose()),
        hex::encode(state.sender_chain.chain_key.expose()),
        hex::encode(
            state
                .sender_chain
                .ratchet_private_key
                .as_ref()
                .unwrap()
                .expose(),
        ),
        hex::encode(*alice.identity.private_key().serialize()),
        hex::encode(*bob.prekeys.signed[0].key_pair().private_key().serialize()),
    ];
    let outputs = [
        format!("{record:?}"),
        format!("{snapshot:?}"),
        format!("{:?}", alice.identity),
        format!("{:?}", bob.prekeys),
        format!("{message:?}"),
    ];
    for output in &outputs {
        for secret in &secrets {
            assert!(!output.contains(secret.as_str()), "secret in {output}");
            assert!(
                !output.contains(&format!("{:?}", hex::decode(secret).unwrap())),
                "bytes in {output}"
            );
        }
        assert!(!output.contains("secret plaintext"));
    }
    assert!(outputs[1].contains("<redacted 32 bytes>"));
    let _ = PreKeySignalMessage::try_from(message.serialize()).unwrap();
}
