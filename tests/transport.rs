//! The `SignalTransport` facade end to end: first contact, multi-device fan-out, missing
//! sessions, identity changes and approval, stale devices, last-resort reuse, prekey rotation
//! with its grace period, and "a rejected input changes nothing".
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use core::time::Duration;

use spots_signal::trust::TrustRecord;
use spots_signal::wire::CiphertextMessageType;
use spots_signal::{DeviceId, DeviceTarget, ErrorClass, SessionError, TransportError};
use support::party::{Party, T0};

const DAY: Duration = Duration::from_secs(86_400);

fn at(days: u32) -> spots_signal::Timestamp {
    T0.saturating_add(DAY * days)
}

fn device(id: u32) -> DeviceId {
    DeviceId::new(id).unwrap()
}

#[test]
fn first_contact_reply_and_prekey_consumption() {
    let mut alice = Party::new("alice.1", 1);
    let mut bob = Party::new("bob.1", 2);
    let stock_before = bob.transport.current_publish_plan().unwrap();
    alice.connect(&mut bob, T0);
    assert_eq!(
        alice.transport.trust(&bob.address()).unwrap(),
        Some(TrustRecord::first_use(stock_before.identity_key))
    );

    let out = alice.send_all(&bob, b"hello bob", T0).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].destination, bob.address());
    assert_eq!(out[0].message_type, CiphertextMessageType::PreKey);
    let got = bob.receive(&alice.address(), &out[0], T0).unwrap();
    assert_eq!(got.plaintext.as_slice(), b"hello bob");
    assert!(got.new_session && !got.identity_changed);
    // Bob trusts Alice on first use and knows her device now.
    assert!(bob.transport.trust(&alice.address()).unwrap().is_some());
    assert_eq!(
        bob.transport.devices(&alice.address().agent_id).unwrap(),
        vec![device(1)]
    );

    // The one-time EC and Kyber prekeys of the used bundle are gone.
    let stock_after = bob.transport.current_publish_plan().unwrap();
    assert_eq!(
        stock_after.one_time_pre_keys.len() + 1,
        stock_before.one_time_pre_keys.len()
    );
    assert_eq!(
        stock_after.one_time_kyber_pre_keys.len() + 1,
        stock_before.one_time_kyber_pre_keys.len()
    );

    let reply = bob.send_one(&alice, b"hi alice", T0).unwrap();
    assert_eq!(reply.message_type, CiphertextMessageType::Whisper);
    assert_eq!(
        alice
            .receive(&bob.address(), &reply, T0)
            .unwrap()
            .plaintext
            .as_slice(),
        b"hi alice"
    );
    let next = alice.send_one(&bob, b"ack", T0).unwrap();
    assert_eq!(next.message_type, CiphertextMessageType::Whisper);
    bob.receive(&alice.address(), &next, T0).unwrap();

    // Duplicates are refused and change nothing.
    let before = bob.snapshot();
    let error = bob.receive(&alice.address(), &next, T0).unwrap_err();
    assert_eq!(error.class(), ErrorClass::DuplicateMessage);
    assert_eq!(bob.snapshot(), before);
}

#[test]
fn fan_out_reaches_every_device_of_both_agents() {
    let mut alice1 = Party::new("alice.1", 10);
    let mut alice2 = Party::new("alice.2", 11);
    let mut bob1 = Party::new("bob.1", 12);
    let mut bob2 = Party::new("bob.2", 13);
    alice1.connect(&mut bob1, T0);
    alice1.connect(&mut bob2, T0);
    alice1.connect(&mut alice2, T0);

    let out = alice1.send_all(&bob1, b"to everyone", T0).unwrap();
    let mut destinations: Vec<String> = out.iter().map(|m| m.destination.to_string()).collect();
    destinations.sort();
    assert_eq!(destinations, ["alice.2", "bob.1", "bob.2"]);
    for message in &out {
        let receiver = match message.destination.to_string().as_str() {
            "alice.2" => &mut alice2,
            "bob.1" => &mut bob1,
            _ => &mut bob2,
        };
        let got = receiver.receive(&alice1.address(), message, T0).unwrap();
        assert_eq!(got.plaintext.as_slice(), b"to everyone");
    }
    // Sending to one's own agent reaches only the other own devices.
    let own = alice1
        .transport
        .encrypt_to_agent(&alice1.address().agent_id, DeviceTarget::All, b"note", T0)
        .unwrap();
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].destination, alice2.address());
}

#[test]
fn missing_sessions_are_listed_and_nothing_is_encrypted() {
    let mut alice = Party::new("alice.1", 20);
    let mut bob1 = Party::new("bob.1", 21);
    let mut bob3 = Party::new("bob.3", 22);
    let carol = Party::new("carol.1", 23);

    let error = alice.send_all(&carol, b"x", T0).unwrap_err();
    match &error {
        TransportError::MissingSessions {
            addresses,
            unknown_agents,
        } => {
            assert!(addresses.is_empty());
            assert_eq!(unknown_agents, &[carol.address().agent_id]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(error.class(), ErrorClass::MissingSessions);

    alice.connect(&mut bob1, T0);
    let bob = bob1.address().agent_id.clone();
    alice
        .transport
        .update_device_list(&bob, &[device(1), device(3)])
        .unwrap();
    let before = alice.snapshot();
    match alice.send_all(&bob1, b"x", T0).unwrap_err() {
        TransportError::MissingSessions { addresses, .. } => {
            assert_eq!(addresses, vec![bob3.address()]);
        }
        other => panic!("{other:?}"),
    }
    // No partial fan-out: bob.1's session did not advance.
    assert_eq!(alice.snapshot(), before);
    alice.connect(&mut bob3, T0);
    assert_eq!(alice.send_all(&bob1, b"x", T0).unwrap().len(), 2);

    // Own device as a peer is refused.
    let error = alice
        .transport
        .encrypt_to_agent(
            &alice.address().agent_id,
            DeviceTarget::One(device(1)),
            b"x",
            T0,
        )
        .unwrap_err();
    assert!(matches!(error, TransportError::OwnDevice));
}

#[test]
fn identity_change_decrypts_but_blocks_sending_until_approved() {
    let mut alice = Party::new("alice.1", 30);
    let mut bob = Party::new("bob.1", 31);
    alice.connect(&mut bob, T0);
    let first = alice.send_one(&bob, b"1", T0).unwrap();
    bob.receive(&alice.address(), &first, T0).unwrap();
    alice.transport.mark_verified(&bob.address()).unwrap();
    assert!(
        alice
            .transport
            .trust(&bob.address())
            .unwrap()
            .unwrap()
            .is_verified()
    );

    // Bob reinstalls: same address, new identity, and writes first.
    let mut bob_new = Party::new("bob.1", 32);
    bob_new.connect(&mut alice, T0);
    let hello = bob_new.send_one(&alice, b"new phone", T0).unwrap();
    let got = alice.receive(&bob.address(), &hello, T0).unwrap();
    assert_eq!(got.plaintext.as_slice(), b"new phone");
    assert!(got.identity_changed);
    let trust = alice.transport.trust(&bob.address()).unwrap().unwrap();
    assert!(trust.is_changed());

    let before = alice.snapshot();
    let error = alice.send_one(&bob, b"blocked", T0).unwrap_err();
    assert_eq!(error.class(), ErrorClass::UntrustedIdentity);
    assert!(
        matches!(error, TransportError::UntrustedIdentity { ref addresses } if addresses == &[bob.address()])
    );
    assert_eq!(alice.snapshot(), before);
    assert!(matches!(
        alice.transport.mark_verified(&bob.address()),
        Err(TransportError::IdentityNotApproved(_))
    ));
    // Further messages from the new key keep reporting the change.
    let again = bob_new.send_one(&alice, b"still me", T0).unwrap();
    assert!(
        alice
            .receive(&bob.address(), &again, T0)
            .unwrap()
            .identity_changed
    );

    let shown = *trust.current_identity();
    let approved = alice
        .transport
        .approve_identity(&bob.address(), &shown)
        .unwrap();
    assert_eq!(approved, shown);
    let trust = alice.transport.trust(&bob.address()).unwrap().unwrap();
    assert_eq!(trust, TrustRecord::first_use(approved));
    assert!(!trust.is_verified());
    let reply = alice.send_one(&bob, b"welcome back", T0).unwrap();
    let got = bob_new.receive(&alice.address(), &reply, T0).unwrap();
    assert_eq!(got.plaintext.as_slice(), b"welcome back");
    assert!(!got.identity_changed);
}

#[test]
fn changed_bundle_identity_is_recorded_and_blocks_sending() {
    let mut alice = Party::new("alice.1", 40);
    let mut bob = Party::new("bob.1", 41);
    alice.connect(&mut bob, T0);
    let mut impostor = Party::new("bob.1", 42);
    let bundle = impostor.fetch_bundle();
    let outcome = alice
        .transport
        .process_bundle(&bob.address(), &bundle, T0, &mut alice.rng)
        .unwrap();
    assert!(outcome.identity_changed && !outcome.new_device);
    assert_eq!(
        alice.send_one(&bob, b"x", T0).unwrap_err().class(),
        ErrorClass::UntrustedIdentity
    );
    // A bundle whose device id disagrees with the address is refused.
    let mut bob2 = Party::new("bob.2", 43);
    let wrong = bob2.fetch_bundle();
    assert!(matches!(
        alice
            .transport
            .process_bundle(&bob.address(), &wrong, T0, &mut alice.rng),
        Err(TransportError::BundleDeviceMismatch { .. })
    ));
}

#[test]
fn safety_numbers_agree_on_both_sides() {
    let mut alice = Party::new("alice.1", 50);
    let mut bob = Party::new("bob.1", 51);
    alice.connect(&mut bob, T0);
    let message = alice.send_one(&bob, b"x", T0).unwrap();
    bob.receive(&alice.address(), &message, T0).unwrap();
    let ours = alice.transport.safety_number(&bob.address()).unwrap();
    let theirs = bob.transport.safety_number(&alice.address()).unwrap();
    assert_eq!(ours.display.to_string(), theirs.display.to_string());
    assert_eq!(
        ours.scannable.compare(&theirs.scannable.serialize()),
        Ok(true)
    );
}

#[test]
fn stale_devices_are_dropped_with_their_sessions() {
    let mut alice = Party::new("alice.1", 60);
    let mut bob1 = Party::new("bob.1", 61);
    let mut bob2 = Party::new("bob.2", 62);
    alice.connect(&mut bob1, T0);
    alice.connect(&mut bob2, T0);
    let bob = bob1.address().agent_id.clone();
    let change = alice
        .transport
        .drop_stale_devices(&bob, &[device(2)])
        .unwrap();
    assert_eq!(change.removed, vec![device(2)]);
    assert_eq!(alice.transport.devices(&bob).unwrap(), vec![device(1)]);
    assert!(
        alice
            .transport
            .store()
            .session_addresses()
            .all(|a| a != &bob2.address())
    );
    assert_eq!(alice.send_all(&bob1, b"x", T0).unwrap().len(), 1);
    // Replacing the list works the same way; listing the local device is ignored.
    alice
        .transport
        .update_device_list(&alice.address().agent_id, &[device(1), device(5)])
        .unwrap();
    assert_eq!(
        alice.transport.devices(&alice.address().agent_id).unwrap(),
        vec![device(5)]
    );
}

#[test]
fn last_resort_reuse_with_the_same_base_key_is_rejected() {
    let mut alice = Party::new("alice.1", 70);
    let mut bob = Party::new("bob.1", 71);
    bob.one_time.clear(); // the server ran out: only the last-resort bundle is left
    alice.connect(&mut bob, T0);
    let first = alice.send_one(&bob, b"once", T0).unwrap();
    bob.receive(&alice.address(), &first, T0).unwrap();
    // The session is dropped (stale device), then the same PreKey message is replayed.
    let agent = alice.address().agent_id.clone();
    bob.transport
        .drop_stale_devices(&agent, &[device(1)])
        .unwrap();
    let before = bob.snapshot();
    let error = bob.receive(&alice.address(), &first, T0).unwrap_err();
    assert!(
        matches!(error, TransportError::KyberPreKeyReused(_)),
        "{error:?}"
    );
    assert_eq!(error.class(), ErrorClass::DuplicateMessage);
    assert_eq!(bob.snapshot(), before);
}

#[test]
fn rotation_keeps_old_keys_for_the_grace_period() {
    let mut alice = Party::new("alice.1", 80);
    let mut bob = Party::new("bob.1", 81);
    let idle = bob.ready(at(1));
    assert!(!idle.needs_upload());
    let old_bundle = bob.fetch_bundle();

    let rotated = bob.ready(at(7));
    assert!(rotated.needs_upload());
    assert!(rotated.rotation.new_signed_pre_key.is_some());
    assert!(rotated.rotation.new_last_resort_kyber_pre_key.is_some());
    assert_ne!(rotated.plan.signed_pre_key.id, old_bundle.signed_pre_key.id);

    // A late PreKey message built on the old bundle still decrypts within the grace period.
    alice
        .transport
        .process_bundle(&bob.address(), &old_bundle, at(8), &mut alice.rng)
        .unwrap();
    let late = alice.send_one(&bob, b"late", at(8)).unwrap();
    assert_eq!(
        bob.receive(&alice.address(), &late, at(8))
            .unwrap()
            .plaintext
            .as_slice(),
        b"late"
    );

    // After the grace period the old signed prekey is gone and such a message is refused.
    let mut carol = Party::new("carol.1", 82);
    carol
        .transport
        .process_bundle(&bob.address(), &old_bundle, at(8), &mut carol.rng)
        .unwrap();
    let too_late = carol.send_one(&bob, b"too late", at(8)).unwrap();
    let expired = bob.ready(at(38));
    assert_eq!(
        expired.rotation.removed_signed_pre_keys,
        vec![old_bundle.signed_pre_key.id]
    );
    let before = bob.snapshot();
    let error = bob
        .receive(&carol.address(), &too_late, at(38))
        .unwrap_err();
    assert!(matches!(
        error,
        TransportError::Session(SessionError::InvalidSignedPreKeyId(_))
    ));
    assert_eq!(bob.snapshot(), before);
}

#[test]
fn rejected_messages_leave_the_store_unchanged() {
    let mut alice = Party::new("alice.1", 90);
    let mut bob = Party::new("bob.1", 91);
    alice.connect(&mut bob, T0);
    let message = alice.send_one(&bob, b"payload", T0).unwrap();
    let before = bob.snapshot();
    let mut tampered = message.clone();
    let last = tampered.body.len() - 1;
    tampered.body[last] ^= 1;
    assert!(bob.receive(&alice.address(), &tampered, T0).is_err());
    let error = bob
        .transport
        .decrypt_from_agent(&alice.address(), 7, &message.body, T0, &mut bob.rng)
        .unwrap_err();
    assert_eq!(error.class(), ErrorClass::InvalidMessage);
    assert!(
        bob.transport
            .decrypt_from_agent(&alice.address(), 2, &[], T0, &mut bob.rng)
            .is_err()
    );
    assert!(matches!(
        bob.receive(&bob.address(), &message, T0),
        Err(TransportError::OwnDevice)
    ));
    assert_eq!(bob.snapshot(), before);
    assert!(bob.receive(&alice.address(), &message, T0).is_ok());
}

/// Rebuilds `party`'s facade over the same store with X3DH accepted or not.
fn set_accept_x3dh(party: &mut Party, accept: bool) {
    let config = spots_signal::transport::TransportConfig {
        session_options: spots_signal::SessionOptions {
            accept_x3dh: accept,
        },
        ..*party.transport.config()
    };
    let store = party.transport.store().clone();
    party.transport = spots_signal::SignalTransport::with_config(store, party.address(), config);
}

#[test]
fn x3dh_off_refuses_existing_x3dh_sessions_too() {
    let mut alice = Party::new("alice.1", 60);
    let mut bob = Party::new("bob.1", 61);
    set_accept_x3dh(&mut alice, true);
    set_accept_x3dh(&mut bob, true);
    let mut bundle = bob.fetch_bundle();
    bundle.kyber_pre_key = None;
    alice
        .transport
        .process_bundle(&bob.address(), &bundle, T0, &mut alice.rng)
        .unwrap();
    let first = alice.send_one(&bob, b"x3dh", T0).unwrap();
    bob.receive(&alice.address(), &first, T0).unwrap();
    let reply = bob.send_one(&alice, b"reply", T0).unwrap();
    alice.receive(&bob.address(), &reply, T0).unwrap();
    let late = alice.send_one(&bob, b"late", T0).unwrap();
    assert_eq!(late.message_type, CiphertextMessageType::Whisper);
    assert_eq!(late.body[0] >> 4, 3, "an X3DH (version 3) message");

    // The option off: neither side uses the X3DH session any more, and nothing changes.
    set_accept_x3dh(&mut alice, false);
    set_accept_x3dh(&mut bob, false);
    let before = alice.snapshot();
    match alice.send_one(&bob, b"refused", T0).unwrap_err() {
        TransportError::MissingSessions { addresses, .. } => {
            assert_eq!(addresses, vec![bob.address()]);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(alice.snapshot(), before);
    let before = bob.snapshot();
    let error = bob.receive(&alice.address(), &late, T0).unwrap_err();
    assert!(
        matches!(error, TransportError::Session(SessionError::X3dhNotAllowed)),
        "{error:?}"
    );
    assert_eq!(error.class(), ErrorClass::ProtocolNotAllowed);
    assert_eq!(bob.snapshot(), before);

    // A PQXDH bundle replaces the session; with the option back on the old message decrypts.
    alice.connect(&mut bob, T0);
    let pq = alice.send_one(&bob, b"pqxdh", T0).unwrap();
    assert_eq!(pq.body[0] >> 4, 4);
    assert_eq!(
        bob.receive(&alice.address(), &pq, T0)
            .unwrap()
            .plaintext
            .as_slice(),
        b"pqxdh"
    );
    set_accept_x3dh(&mut bob, true);
    assert_eq!(
        bob.receive(&alice.address(), &late, T0)
            .unwrap()
            .plaintext
            .as_slice(),
        b"late"
    );
}

#[test]
fn approval_must_name_the_key_the_user_saw() {
    let mut alice = Party::new("alice.1", 70);
    let mut bob = Party::new("bob.1", 71);
    alice.connect(&mut bob, T0);
    let original = *alice
        .transport
        .trust(&bob.address())
        .unwrap()
        .unwrap()
        .current_identity();

    // Bob reinstalls; the app shows Alice his new key.
    let mut bob2 = Party::new("bob.1", 72);
    bob2.connect(&mut alice, T0);
    let hello = bob2.send_one(&alice, b"new phone", T0).unwrap();
    assert!(
        alice
            .receive(&bob.address(), &hello, T0)
            .unwrap()
            .identity_changed
    );
    let shown = *alice
        .transport
        .trust(&bob.address())
        .unwrap()
        .unwrap()
        .current_identity();
    assert_ne!(shown, original);

    // Before she taps "approve", yet another key arrives.
    let mut bob3 = Party::new("bob.1", 73);
    bob3.connect(&mut alice, T0);
    let again = bob3.send_one(&alice, b"newer phone", T0).unwrap();
    assert!(
        alice
            .receive(&bob.address(), &again, T0)
            .unwrap()
            .identity_changed
    );
    let newest = *alice
        .transport
        .trust(&bob.address())
        .unwrap()
        .unwrap()
        .current_identity();

    // Approving what she saw fails and changes nothing; so does approving the old key.
    let before = alice.snapshot();
    for stale in [shown, original] {
        let error = alice
            .transport
            .approve_identity(&bob.address(), &stale)
            .unwrap_err();
        assert!(
            matches!(
                error,
                TransportError::IdentityKeyMismatch { ref address, current }
                    if *address == bob.address() && current == newest
            ),
            "{error:?}"
        );
        assert_eq!(error.class(), ErrorClass::UntrustedIdentity);
        assert_eq!(alice.snapshot(), before);
    }
    assert!(alice.send_one(&bob, b"still blocked", T0).is_err());

    // Naming the newest key approves it; naming it again is a no-op, another key still fails.
    assert_eq!(
        alice
            .transport
            .approve_identity(&bob.address(), &newest)
            .unwrap(),
        newest
    );
    assert_eq!(
        alice.transport.trust(&bob.address()).unwrap(),
        Some(TrustRecord::first_use(newest))
    );
    let approved = alice.snapshot();
    alice
        .transport
        .approve_identity(&bob.address(), &newest)
        .unwrap();
    assert_eq!(alice.snapshot(), approved);
    assert!(matches!(
        alice.transport.approve_identity(&bob.address(), &shown),
        Err(TransportError::IdentityKeyMismatch { .. })
    ));
    assert_eq!(alice.snapshot(), approved);
}
