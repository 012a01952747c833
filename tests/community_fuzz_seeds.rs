//! Seeds for the community fuzz targets (`fuzz/seeds/<target>/`), made with the fixed key
//! material the targets decrypt with (see `fuzz/src/lib.rs`). The committed seeds must be what
//! this release generates; when a format changes, rewrite them with
//! `SPOTS_WRITE_GENERATED=1 cargo test --test community_fuzz_seeds`. The seeds themselves are
//! replayed by `tests/fuzz_corpus.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::PathBuf;

use spots_signal::community::share::SharePayload;
use spots_signal::community::{
    CommunityId, CommunityState, EpochId, EpochInfo, EpochKey, RotationKind, encrypt_epoch_blob,
    encrypt_sender_chain_blob,
};
use spots_signal::envelope::{ActionIntent, DoorRef, Envelope, KnotContext, SenderKeyRequest};
use spots_signal::persist::Persist;
use spots_signal::sender_keys::{
    SenderKeyLimits, create_distribution_message, group_encrypt, process_distribution_message,
};
use spots_signal::{Address, Timestamp};
use support::party::{Party, T0};
use support::{hex_field, vector};

/// Draws 7 for every word and 9 for every byte: chain id 3, chain key `[7; 32]`, signing key
/// from `[9; 32]`, nonce and signature randomness of 9s.
struct FixedRng;

impl rand_core::TryRng for FixedRng {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(7)
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(7)
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        dst.fill(9);
        Ok(())
    }
}

impl rand_core::TryCryptoRng for FixedRng {}

fn write(target: &str, name: &str, data: &[u8]) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target)
        .join(name);
    support::assert_committed(&path, data, true);
}

#[test]
fn committed_community_seeds_match_their_generators() {
    let community = CommunityId::from_bytes([1; 16]);
    let epoch = EpochId::from_bytes([2; 16]);
    let sender: Address = "alice.1".parse().unwrap();
    let payload = Envelope::Text("seed".into()).encode().unwrap();

    let key = EpochKey::from_bytes([7; 32]);
    let blob =
        encrypt_epoch_blob(&key, community, epoch, &sender, T0, &payload, &mut FixedRng).unwrap();
    write("community_blob", "epoch", &blob);
    let (own, skdm) = create_distribution_message(None, epoch.uuid(), &mut FixedRng).unwrap();
    assert_eq!(skdm.chain_key(), &[7; 32]);
    let (own, blob) =
        encrypt_sender_chain_blob(&own, community, epoch, &sender, T0, &payload, &mut FixedRng)
            .unwrap();
    write("community_blob", "sender_chain", &blob);

    let (_, message) = group_encrypt(&own, epoch.uuid(), b"seed", &mut FixedRng).unwrap();
    write("sender_key_decrypt", "fixed_chain_1", message.serialized());
    let group = vector("sender_keys.json");
    write(
        "sender_key_decrypt",
        "libsignal_g0",
        &hex_field(&group["messages"][0]["serialized"]),
    );

    let envelopes = [
        ("text", Envelope::Text("hello".into())),
        (
            "door_ref",
            Envelope::DoorRef(DoorRef {
                spot_id: Some("s1".into()),
                door_type: "spot".into(),
                ..DoorRef::default()
            }),
        ),
        (
            "action_intent",
            Envelope::ActionIntent(ActionIntent {
                action_type: "save".into(),
                parameters: vec![("a".into(), "1".into()), ("b".into(), "2".into())],
            }),
        ),
        (
            "knot_context",
            Envelope::KnotContext(KnotContext {
                knot_cluster_id: Some("k".into()),
                vibe_tags: vec!["calm".into()],
            }),
        ),
        (
            "sender_key_request",
            Envelope::SenderKeyRequest(SenderKeyRequest {
                community_id: community.uuid(),
                key_id: epoch.uuid(),
                chain_id: Some(3),
                requested_at_ms: 1,
            }),
        ),
    ];
    for (name, envelope) in envelopes {
        write("envelope", name, &envelope.encode().unwrap());
    }

    let share = SharePayload::epoch_key(community, epoch, &key, T0);
    write("share_payload", "epoch_key", &share.encode());
    let seed = SharePayload::sender_chain(community, epoch, skdm.clone(), false, T0).unwrap();
    write("share_payload", "sender_chain", &seed.encode());

    let mut alice = Party::new("alice.1", 1);
    let mut bob = Party::new("bob.1", 2);
    let row = alice
        .transport
        .create_share(
            &bob.address(),
            Some(&bob.fetch_bundle()),
            &share,
            T0,
            &mut alice.rng,
        )
        .unwrap();
    let mut framed = vec![row.message_type as u8];
    framed.extend_from_slice(&row.body);
    write("share_row", "prekey", &framed);

    write("persist_sender_key", "own", &own.to_record_bytes());
    let received =
        process_distribution_message(None, epoch.uuid(), &skdm, SenderKeyLimits::default())
            .unwrap();
    write(
        "persist_sender_key",
        "received",
        &received.to_record_bytes(),
    );
    let first = EpochInfo::from_server_row(
        community,
        1,
        Timestamp::from_secs(1),
        RotationKind::Hard,
        None,
    );
    let (state, _) = CommunityState::new(community)
        .rotate(first, &mut FixedRng)
        .unwrap();
    let state = state.note_missing_seed(epoch, &sender, Some(3), T0);
    write("persist_community", "state", &state.to_record_bytes());
}
