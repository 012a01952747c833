//! Community crypto through the facade: shares across devices (fresh bundles and existing
//! sessions), share rejection, both schemes, seed repair, chain reset, soft and hard rotation
//! with injected time, and silent rekey through `observe_epoch`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod support;

use core::time::Duration;

use spots_signal::community::share::{ShareError, ShareKind, SharePayload, validate_share};
use spots_signal::community::{
    CommunityError, CommunityId, CommunityState, EpochAction, EpochId, EpochInfo, EpochKey,
    GroupError, GroupReceive, RotationKind, observe_epoch, validate_blob,
};
use spots_signal::envelope::Envelope;
use spots_signal::wire::CiphertextMessageType;
use spots_signal::{ErrorClass, Timestamp};
use support::party::{Party, T0};

const MINUTE: Duration = Duration::from_secs(60);

fn at(minutes: u64) -> Timestamp {
    T0.saturating_add(MINUTE * u32::try_from(minutes).unwrap())
}

fn text(s: &str) -> Vec<u8> {
    Envelope::Text(s.into()).encode().unwrap().to_vec()
}

fn read(receive: GroupReceive) -> String {
    match receive {
        GroupReceive::Message { plaintext, .. } => match Envelope::decode(&plaintext).unwrap() {
            Envelope::Text(text) => text,
            other => panic!("unexpected {other:?}"),
        },
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Alice (admin, devices 1 and 2), Bob and Carol; Alice creates the community's first epoch
/// and shares its key with every other device from fresh bundles.
struct World {
    id: CommunityId,
    alice: Party,
    alice2: Party,
    bob: Party,
    carol: Party,
}

impl World {
    fn new() -> (Self, EpochId) {
        let mut alice = Party::new("alice.1", 11);
        let mut alice2 = Party::new("alice.2", 12);
        let mut bob = Party::new("bob.1", 13);
        let mut carol = Party::new("carol.1", 14);
        let id = CommunityId::random(&mut alice.rng);
        let info = server_row(id, 1, RotationKind::Hard, T0, Duration::ZERO);
        let payload = alice
            .transport
            .rotate_community(id, info, T0, &mut alice.rng)
            .unwrap();
        let recipients = vec![
            (alice2.address(), Some(alice2.fetch_bundle())),
            (bob.address(), Some(bob.fetch_bundle())),
            (carol.address(), Some(carol.fetch_bundle())),
        ];
        let rows = alice
            .transport
            .create_shares(&recipients, &payload, T0, &mut alice.rng)
            .unwrap();
        assert_eq!(rows.len(), 3);
        for (row, member) in rows.iter().zip([&mut alice2, &mut bob, &mut carol]) {
            assert_eq!(row.encryption_type(), "signal_protocol");
            assert_eq!(row.message_type, CiphertextMessageType::PreKey);
            assert_eq!(row.share_kind, ShareKind::EpochKeyV1);
            assert_eq!(
                validate_share("signal_protocol", "epoch_key_v1", 3, &row.body),
                Ok(ShareKind::EpochKeyV1)
            );
            member.transport.apply_epoch_rows(id, &[info]).unwrap();
            assert_eq!(
                observe_epoch(&member.transport.community_state(id).unwrap().unwrap(), T0),
                vec![EpochAction::FetchMyShare {
                    key_id: info.key_id
                }]
            );
            let opened = member
                .transport
                .open_share(row, T0, &mut member.rng)
                .unwrap();
            assert!(opened.first_for_community);
            assert_eq!(opened.from, alice.address());
            let actions = member.transport.observe_community(id, T0).unwrap();
            assert_eq!(
                actions,
                vec![EpochAction::StartUsingEpoch {
                    key_id: info.key_id
                }]
            );
            member.transport.start_using_epoch(id, info.key_id).unwrap();
            assert!(
                member
                    .transport
                    .observe_community(id, T0)
                    .unwrap()
                    .is_empty()
            );
        }
        (
            Self {
                id,
                alice,
                alice2,
                bob,
                carol,
            },
            info.key_id,
        )
    }
}

#[test]
fn epoch_scheme_shares_across_devices_and_one_ciphertext_for_all() {
    let (mut w, epoch) = World::new();
    let blob = w
        .alice
        .transport
        .community_encrypt(w.id, &text("hello all"), at(1), &mut w.alice.rng)
        .unwrap();
    let header = validate_blob(&blob).unwrap();
    assert_eq!(header.key_id, epoch);
    assert_eq!(header.sender, w.alice.address());
    let sender = w.alice.address();
    for member in [&mut w.alice2, &mut w.bob, &mut w.carol] {
        let received = member
            .transport
            .community_decrypt(w.id, &sender, &blob, at(1))
            .unwrap();
        assert_eq!(read(received), "hello all");
    }
    // A member replies; the blob claims to be from Bob and is refused under another name.
    let reply = w
        .bob
        .transport
        .community_encrypt(w.id, &text("hi alice"), at(2), &mut w.bob.rng)
        .unwrap();
    let bob = w.bob.address();
    assert_eq!(
        read(
            w.alice
                .transport
                .community_decrypt(w.id, &bob, &reply, at(2))
                .unwrap()
        ),
        "hi alice"
    );
    let carol = w.carol.address();
    assert!(matches!(
        w.alice
            .transport
            .community_decrypt(w.id, &carol, &reply, at(2)),
        Err(GroupError::Community(CommunityError::HeaderMismatch(
            "sender"
        )))
    ));
    // The same blob in another community is refused.
    let other = CommunityId::random(&mut w.alice.rng);
    w.alice.transport.apply_epoch_rows(other, &[]).unwrap();
    assert!(
        w.alice
            .transport
            .community_decrypt(other, &bob, &reply, at(2))
            .is_err()
    );
    // A second share over the now established session is a Whisper message (type 2) once
    // the peer has replied; Bob replies through the DM layer first.
    let dm = w.bob.send_one(&w.alice, b"ack", at(3)).unwrap();
    w.alice.receive(&bob, &dm, at(3)).unwrap();
    let payload = SharePayload::epoch_key(
        w.id,
        epoch,
        w.alice
            .transport
            .community_state(w.id)
            .unwrap()
            .unwrap()
            .epoch_key(epoch)
            .unwrap(),
        at(3),
    );
    let row = w
        .alice
        .transport
        .create_share(&bob, None, &payload, at(3), &mut w.alice.rng)
        .unwrap();
    assert_eq!(row.message_type, CiphertextMessageType::Whisper);
    let opened = w
        .bob
        .transport
        .open_share(&row, at(3), &mut w.bob.rng)
        .unwrap();
    assert!(!opened.first_for_community);
    // Community state and sender-key records survive the store's export.
    for party in [&w.alice, &w.bob] {
        let bytes = party.transport.store().export();
        assert_eq!(
            &spots_signal::MemoryStore::import(&bytes).unwrap(),
            party.transport.store()
        );
    }
}

#[test]
fn shares_that_are_not_signal_or_name_another_epoch_are_refused() {
    let (mut w, epoch) = World::new();
    let key = EpochKey::generate(&mut w.alice.rng);
    let bob = w.bob.address();
    // Not a Signal message type / not signal_protocol: refused before anything is read.
    for message_type in [7u8, 8, 1] {
        let error = w
            .bob
            .transport
            .open_share_columns(
                &w.alice.address(),
                w.id,
                epoch,
                "signal_protocol",
                "epoch_key_v1",
                message_type,
                &[0x33; 100],
                at(1),
                &mut w.bob.rng,
            )
            .unwrap_err();
        assert!(matches!(
            error,
            GroupError::Share(ShareError::NotSignalMessage(t)) if t == message_type
        ));
    }
    let plaintext_share = SharePayload::epoch_key(w.id, epoch, &key, at(1)).encode();
    assert!(matches!(
        w.bob.transport.open_share_columns(
            &w.alice.address(),
            w.id,
            epoch,
            "plaintext",
            "epoch_key_v1",
            2,
            &plaintext_share,
            at(1),
            &mut w.bob.rng,
        ),
        Err(GroupError::Share(ShareError::NotSignalProtocol))
    ));
    // A genuine Signal share whose payload names another epoch than its row.
    let other_epoch = EpochId::random(&mut w.alice.rng);
    let payload = SharePayload::epoch_key(w.id, other_epoch, &key, at(1));
    let mut row = w
        .alice
        .transport
        .create_share(&bob, None, &payload, at(1), &mut w.alice.rng)
        .unwrap();
    row.key_id = epoch;
    let before = w.bob.snapshot();
    let error = w
        .bob
        .transport
        .open_share(&row, at(1), &mut w.bob.rng)
        .unwrap_err();
    assert!(matches!(
        error,
        GroupError::Share(ShareError::RowMismatch("epoch"))
    ));
    assert_eq!(w.bob.snapshot(), before, "a refused share commits nothing");
    // ... or another community.
    let other_community = CommunityId::random(&mut w.alice.rng);
    let payload = SharePayload::epoch_key(other_community, epoch, &key, at(1));
    let mut row = w
        .alice
        .transport
        .create_share(&bob, None, &payload, at(1), &mut w.alice.rng)
        .unwrap();
    row.community_id = w.id;
    assert!(matches!(
        w.bob.transport.open_share(&row, at(1), &mut w.bob.rng),
        Err(GroupError::Share(ShareError::RowMismatch("community")))
    ));
    // A share addressed to another device.
    let payload = SharePayload::epoch_key(w.id, epoch, &key, at(1));
    let row = w
        .alice
        .transport
        .create_share(&bob, None, &payload, at(1), &mut w.alice.rng)
        .unwrap();
    assert!(matches!(
        w.carol.transport.open_share(&row, at(1), &mut w.carol.rng),
        Err(GroupError::Share(ShareError::NotForThisDevice))
    ));
    // A conflicting key for a known epoch is refused too.
    let error = w
        .bob
        .transport
        .open_share(&row, at(1), &mut w.bob.rng)
        .unwrap_err();
    assert!(matches!(
        error,
        GroupError::Community(CommunityError::KeyConflict(_))
    ));
}

#[test]
fn sender_chains_with_repair_and_reset() {
    let (mut w, epoch) = World::new();
    let (alice, bob, carol) = (w.alice.address(), w.bob.address(), w.carol.address());
    // Alice starts her chain and shares its seed with Bob and her own other device (not
    // Carol, who will repair).
    let seed = w
        .alice
        .transport
        .start_sender_chain(w.id, epoch, at(1), &mut w.alice.rng)
        .unwrap();
    assert_eq!(seed.kind, ShareKind::EpochSenderChainSeedV1);
    let rows = w
        .alice
        .transport
        .create_shares(
            &[(bob.clone(), None), (w.alice2.address(), None)],
            &seed,
            at(1),
            &mut w.alice.rng,
        )
        .unwrap();
    w.bob
        .transport
        .open_share(&rows[0], at(1), &mut w.bob.rng)
        .unwrap();
    w.alice2
        .transport
        .open_share(&rows[1], at(1), &mut w.alice2.rng)
        .unwrap();

    let m0 = w
        .alice
        .transport
        .community_encrypt(w.id, &text("chain 0"), at(2), &mut w.alice.rng)
        .unwrap();
    let header = validate_blob(&m0).unwrap();
    assert_eq!(header.chain.unwrap().iteration, 0);
    assert_eq!(
        read(
            w.bob
                .transport
                .community_decrypt(w.id, &alice, &m0, at(2))
                .unwrap()
        ),
        "chain 0"
    );
    assert_eq!(
        read(
            w.alice2
                .transport
                .community_decrypt(w.id, &alice, &m0, at(2))
                .unwrap()
        ),
        "chain 0"
    );
    // A duplicate is refused.
    assert_eq!(
        w.bob
            .transport
            .community_decrypt(w.id, &alice, &m0, at(2))
            .unwrap_err()
            .class(),
        ErrorClass::DuplicateMessage
    );
    // Carol lacks the seed: a repair request instead of a permanent failure.
    let GroupReceive::MissingSeed { to, request } = w
        .carol
        .transport
        .community_decrypt(w.id, &alice, &m0, at(2))
        .unwrap()
    else {
        panic!("expected a repair request");
    };
    assert_eq!(to, alice);
    assert_eq!(request.kind(), "sender_key_request_v1");
    let state = w.carol.transport.community_state(w.id).unwrap().unwrap();
    assert_eq!(state.pending_repairs().len(), 1);
    // Requested just now: observe_epoch asks again only after the retry delay.
    assert!(observe_epoch(&state, at(3)).is_empty());
    assert!(matches!(
        observe_epoch(&state, at(2 + 61)).as_slice(),
        [EpochAction::RequestRepair { .. }]
    ));
    // The request travels as a Signal DM; Alice answers with a re-share at her current
    // iteration.
    let dm = w
        .carol
        .send_one(&w.alice, &request.encode().unwrap(), at(3))
        .unwrap();
    let received = w.alice.receive(&carol, &dm, at(3)).unwrap();
    let Envelope::SenderKeyRequest(request) = Envelope::decode(&received.plaintext).unwrap() else {
        panic!("expected a request");
    };
    let answer = w
        .alice
        .transport
        .answer_sender_key_request(&carol, &request, at(3))
        .unwrap();
    assert_eq!(answer.kind, ShareKind::ReShareV1);
    let row = w
        .alice
        .transport
        .create_share(&carol, None, &answer, at(3), &mut w.alice.rng)
        .unwrap();
    assert_eq!(row.share_kind, ShareKind::ReShareV1);
    w.carol
        .transport
        .open_share(&row, at(3), &mut w.carol.rng)
        .unwrap();
    assert!(
        w.carol
            .transport
            .community_state(w.id)
            .unwrap()
            .unwrap()
            .pending_repairs()
            .is_empty()
    );
    let m1 = w
        .alice
        .transport
        .community_encrypt(w.id, &text("chain 1"), at(4), &mut w.alice.rng)
        .unwrap();
    assert_eq!(
        read(
            w.carol
                .transport
                .community_decrypt(w.id, &alice, &m1, at(4))
                .unwrap()
        ),
        "chain 1"
    );
    // The re-share starts at the current iteration: the earlier message stays unreadable
    // (a retry receipt asks for a resend).
    assert_eq!(
        w.carol
            .transport
            .community_decrypt(w.id, &alice, &m0, at(4))
            .unwrap_err()
            .class(),
        ErrorClass::DuplicateMessage
    );

    // Reset: a new chain id within the epoch, no community-wide rotation.
    let reset = w
        .alice
        .transport
        .reset_sender_chain(w.id, epoch, at(5), &mut w.alice.rng)
        .unwrap();
    let row = w
        .alice
        .transport
        .create_share(&bob, None, &reset, at(5), &mut w.alice.rng)
        .unwrap();
    w.bob
        .transport
        .open_share(&row, at(5), &mut w.bob.rng)
        .unwrap();
    let m2 = w
        .alice
        .transport
        .community_encrypt(w.id, &text("new chain"), at(6), &mut w.alice.rng)
        .unwrap();
    let new_chain = validate_blob(&m2).unwrap().chain.unwrap();
    assert_ne!(new_chain.chain_id, header.chain.unwrap().chain_id);
    assert_eq!(new_chain.iteration, 0);
    assert_eq!(
        read(
            w.bob
                .transport
                .community_decrypt(w.id, &alice, &m2, at(6))
                .unwrap()
        ),
        "new chain"
    );
    // The old chain's late message still decrypts for Bob (states kept per sender).
    assert_eq!(
        read(
            w.bob
                .transport
                .community_decrypt(w.id, &alice, &m1, at(6))
                .unwrap()
        ),
        "chain 1"
    );
    // Carol has not got the reset yet: the new chain id triggers a repair, not a failure.
    assert!(matches!(
        w.carol
            .transport
            .community_decrypt(w.id, &alice, &m2, at(6))
            .unwrap(),
        GroupReceive::MissingSeed { .. }
    ));
    // Sender-key records (own and received) survive the store's export.
    for party in [&w.alice, &w.bob, &w.carol] {
        let bytes = party.transport.store().export();
        assert_eq!(
            &spots_signal::MemoryStore::import(&bytes).unwrap(),
            party.transport.store()
        );
    }
    // A forged sender-chain blob from Bob claiming Alice's chain fails the signature.
    let mut forged = m2.clone();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(
        w.bob
            .transport
            .community_decrypt(w.id, &alice, &forged, at(6))
            .unwrap_err()
            .class(),
        ErrorClass::InvalidSignature
    );
}

#[test]
fn soft_and_hard_rotation_with_grace_through_the_facade() {
    let (mut w, first) = World::new();
    let (alice, bob, carol) = (w.alice.address(), w.bob.address(), w.carol.address());
    let old_from_carol = w
        .carol
        .transport
        .community_encrypt(w.id, &text("before"), at(1), &mut w.carol.rng)
        .unwrap();

    // Soft rotation at minute 10 with a 30-minute grace window.
    let soft = server_row(w.id, 2, RotationKind::Soft, at(10), MINUTE * 30);
    let payload = w
        .alice
        .transport
        .rotate_community(w.id, soft, at(10), &mut w.alice.rng)
        .unwrap();
    assert_eq!(soft.grace_until, Some(at(40)));
    let rows = w
        .alice
        .transport
        .create_shares(
            &[(bob.clone(), None), (carol.clone(), None)],
            &payload,
            at(10),
            &mut w.alice.rng,
        )
        .unwrap();
    // Bob rekeys silently: row, share, start using.
    w.bob.transport.apply_epoch_rows(w.id, &[soft]).unwrap();
    assert_eq!(
        w.bob.transport.observe_community(w.id, at(11)).unwrap(),
        vec![EpochAction::FetchMyShare {
            key_id: soft.key_id
        }]
    );
    w.bob
        .transport
        .open_share(&rows[0], at(11), &mut w.bob.rng)
        .unwrap();
    assert_eq!(
        w.bob.transport.observe_community(w.id, at(11)).unwrap(),
        vec![EpochAction::StartUsingEpoch {
            key_id: soft.key_id
        }]
    );
    w.bob
        .transport
        .start_using_epoch(w.id, soft.key_id)
        .unwrap();
    // Carol has not caught up: she keeps sending in the old epoch during the grace window,
    // and everyone still accepts it.
    w.carol.transport.apply_epoch_rows(w.id, &[soft]).unwrap();
    let laggard = w
        .carol
        .transport
        .community_encrypt(w.id, &text("in grace"), at(20), &mut w.carol.rng)
        .unwrap();
    assert_eq!(validate_blob(&laggard).unwrap().key_id, first);
    assert_eq!(
        read(
            w.bob
                .transport
                .community_decrypt(w.id, &carol, &laggard, at(20))
                .unwrap()
        ),
        "in grace"
    );
    // After the grace window Carol cannot send in the old epoch any more, and an old-epoch
    // message stamped after it is refused.
    assert!(matches!(
        w.carol
            .transport
            .community_encrypt(w.id, &text("late"), at(41), &mut w.carol.rng),
        Err(GroupError::Community(CommunityError::NoUsableEpoch))
    ));
    let state = w.carol.transport.community_state(w.id).unwrap().unwrap();
    let key = state.epoch_key(first).unwrap().clone();
    let late = spots_signal::community::encrypt_epoch_blob(
        &key,
        w.id,
        first,
        &carol,
        at(41),
        &text("late"),
        &mut w.carol.rng,
    )
    .unwrap();
    assert_eq!(
        w.bob
            .transport
            .community_decrypt(w.id, &carol, &late, at(41))
            .unwrap_err()
            .class(),
        ErrorClass::EpochRejected
    );
    // History stays readable.
    assert_eq!(
        read(
            w.bob
                .transport
                .community_decrypt(w.id, &carol, &old_from_carol, at(50))
                .unwrap()
        ),
        "before"
    );
    w.carol
        .transport
        .open_share(&rows[1], at(42), &mut w.carol.rng)
        .unwrap();
    w.carol
        .transport
        .start_using_epoch(w.id, soft.key_id)
        .unwrap();

    // Hard rotation at minute 60 removing Carol: she gets no share.
    let hard = server_row(w.id, 3, RotationKind::Hard, at(60), Duration::ZERO);
    let payload = w
        .alice
        .transport
        .rotate_community(w.id, hard, at(60), &mut w.alice.rng)
        .unwrap();
    let row = w
        .alice
        .transport
        .create_share(&bob, None, &payload, at(60), &mut w.alice.rng)
        .unwrap();
    w.bob.transport.apply_epoch_rows(w.id, &[hard]).unwrap();
    w.bob
        .transport
        .open_share(&row, at(60), &mut w.bob.rng)
        .unwrap();
    w.bob
        .transport
        .start_using_epoch(w.id, hard.key_id)
        .unwrap();
    let new = w
        .alice
        .transport
        .community_encrypt(w.id, &text("members only"), at(61), &mut w.alice.rng)
        .unwrap();
    assert_eq!(
        read(
            w.bob
                .transport
                .community_decrypt(w.id, &alice, &new, at(61))
                .unwrap()
        ),
        "members only"
    );
    // Carol sees the row but has no key for it.
    w.carol.transport.apply_epoch_rows(w.id, &[hard]).unwrap();
    assert!(matches!(
        w.carol
            .transport
            .community_decrypt(w.id, &alice, &new, at(61)),
        Err(GroupError::Community(CommunityError::NoEpochKey(_)))
    ));
    assert_eq!(
        w.carol.transport.observe_community(w.id, at(61)).unwrap(),
        vec![EpochAction::FetchMyShare {
            key_id: hard.key_id
        }]
    );
    // Her message in the replaced epoch, stamped after the hard rotation, is refused at once;
    // one stamped before it is still accepted.
    let after = w
        .carol
        .transport
        .community_encrypt(w.id, &text("still here"), at(59), &mut w.carol.rng)
        .unwrap();
    assert_eq!(
        read(
            w.bob
                .transport
                .community_decrypt(w.id, &carol, &after, at(62))
                .unwrap()
        ),
        "still here"
    );
    assert!(matches!(
        w.carol
            .transport
            .community_encrypt(w.id, &text("after"), at(61), &mut w.carol.rng),
        Err(GroupError::Community(CommunityError::NoUsableEpoch))
    ));
    let key = w
        .carol
        .transport
        .community_state(w.id)
        .unwrap()
        .unwrap()
        .epoch_key(soft.key_id)
        .unwrap()
        .clone();
    let forged_time = spots_signal::community::encrypt_epoch_blob(
        &key,
        w.id,
        soft.key_id,
        &carol,
        at(61),
        &text("after"),
        &mut w.carol.rng,
    )
    .unwrap();
    assert!(matches!(
        w.bob
            .transport
            .community_decrypt(w.id, &carol, &forged_time, at(62)),
        Err(GroupError::Community(CommunityError::EpochRejected { .. }))
    ));
}

/// The pure epoch rules at their boundaries.
#[test]
fn acceptance_rule_boundaries_and_observe_epoch() {
    let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(3);
    let id = CommunityId::random(&mut rng);
    let state = CommunityState::new(id);
    assert!(observe_epoch(&state, T0).is_empty());
    let e1 = server_row(id, 1, RotationKind::Hard, at(0), Duration::ZERO);
    let (state, _) = state.rotate(e1, &mut rng).unwrap();
    let e2 = server_row(id, 2, RotationKind::Soft, at(10), MINUTE * 10);
    let (state, _) = state.rotate(e2, &mut rng).unwrap();
    assert!(state.check_accept(e1.key_id, at(20)).is_ok());
    assert!(state.check_accept(e1.key_id, at(21)).is_err());
    let e3 = server_row(id, 3, RotationKind::Hard, at(30), Duration::ZERO);
    let (state, _) = state.rotate(e3, &mut rng).unwrap();
    // e2 was replaced hard at 30: stamped 29:59.999 is fine, 30:00 is not.
    assert!(
        state
            .check_accept(e2.key_id, Timestamp::from_millis(at(30).as_millis() - 1))
            .is_ok()
    );
    assert!(state.check_accept(e2.key_id, at(30)).is_err());
    // e1 must pass both later rotations.
    assert!(state.check_accept(e1.key_id, at(20)).is_ok());
    assert!(state.check_accept(e3.key_id, at(1000)).is_ok());
    assert_eq!(
        state
            .check_accept(EpochId::random(&mut rng), at(1))
            .unwrap_err()
            .class(),
        ErrorClass::NoSenderKeyState
    );
    assert_eq!(state.sending_epoch(at(31)).unwrap(), e3.key_id);
    // Rows can extend a grace window but not change an epoch's start.
    let mut extended = e2;
    extended.grace_until = Some(at(25));
    let state = state.apply_epoch(extended).unwrap();
    assert!(state.check_accept(e1.key_id, at(25)).is_ok());
    let mut moved = e2;
    moved.rotated_at = at(11);
    assert_eq!(
        state.apply_epoch(moved).unwrap_err(),
        CommunityError::EpochConflict(e2.key_id)
    );
    // Rows must carry the id derived from this community and their key_id.
    let mut foreign = server_row(id, 4, RotationKind::Hard, at(40), Duration::ZERO);
    foreign.key_id = EpochId::random(&mut rng);
    assert_eq!(
        state.apply_epoch(foreign).unwrap_err(),
        CommunityError::ForeignEpoch(foreign.key_id)
    );
    let other = server_row(
        CommunityId::random(&mut rng),
        4,
        RotationKind::Hard,
        at(40),
        Duration::ZERO,
    );
    assert!(matches!(
        state.apply_epoch(other),
        Err(CommunityError::ForeignEpoch(_))
    ));
    let zero = server_row(id, 0, RotationKind::Hard, at(40), Duration::ZERO);
    assert!(matches!(
        state.rotate(zero, &mut rng),
        Err(CommunityError::ForeignEpoch(_))
    ));
    // A rotation never replaces the key of an epoch it already holds.
    assert_eq!(
        state.rotate(e3, &mut rng).unwrap_err(),
        CommunityError::KeyConflict(e3.key_id)
    );
}

/// The key server's epoch row `key_id` of community `id`, started `at` (soft rotations keep
/// the previous epoch for `grace`).
fn server_row(
    id: CommunityId,
    key_id: u32,
    rotation: RotationKind,
    at: Timestamp,
    grace: Duration,
) -> EpochInfo {
    let grace_until = match rotation {
        RotationKind::Soft => Some(at.saturating_add(grace)),
        RotationKind::Hard => None,
    };
    EpochInfo::from_server_row(id, key_id, at, rotation, grace_until)
}
