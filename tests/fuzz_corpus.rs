//! Replays the committed fuzz seeds (`fuzz/seeds/<target>/`) through the fuzz targets' own
//! code under plain `cargo test`, so every decoder's seeds run on stable Rust in CI.
//! `committed_seeds_match_their_generators` checks the seeds against their generators (vectors
//! and a live conversation); `SPOTS_WRITE_GENERATED=1` rewrites them when the encodings change.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

#[allow(dead_code, unreachable_pub, missing_docs)]
#[path = "../fuzz/src/lib.rs"]
mod targets;

use std::path::PathBuf;

use spots_signal::persist::Persist;
use spots_signal::prekey_lifecycle::PreKeyPolicy;
use spots_signal::store::ProtocolStore;
use spots_signal::transport::TransportConfig;
use spots_signal::trust::TrustRecord;
use spots_signal::{MemoryStore, SignalTransport};
use support::party::{Party, T0};
use support::{hex_field, vector};

fn seeds_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target)
}

#[test]
fn every_target_replays_its_seeds() {
    for target in targets::TARGETS {
        let dir = seeds_dir(target);
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            assert!(targets::run(target, &data));
            // Truncated seeds exercise the error paths too.
            for cut in [0, 1, 2, data.len() / 2, data.len().saturating_sub(1)] {
                targets::run(target, &data[..cut.min(data.len())]);
            }
            count += 1;
        }
        assert!(count > 0, "no seeds for {target}");
    }
    assert!(!targets::run("no_such_target", b""));
}

fn write(target: &str, name: &str, data: &[u8]) {
    support::assert_committed(&seeds_dir(target).join(name), data, true);
}

#[test]
fn committed_seeds_match_their_generators() {
    for name in support::dm::FILES {
        let file = vector(name);
        let tag = name.trim_end_matches(".json");
        for (i, message) in file["messages"]
            .as_array()
            .unwrap()
            .iter()
            .take(4)
            .enumerate()
        {
            let bytes = hex_field(&message["serialized"]);
            let kind = message["type"].as_u64().unwrap() as u8;
            let target = if kind == 3 {
                "prekey_signal_message"
            } else {
                "signal_message"
            };
            write(target, &format!("{tag}_{i}"), &bytes);
            let mut framed = vec![kind];
            framed.extend_from_slice(&bytes);
            write("ciphertext_message", &format!("{tag}_{i}"), &framed);
        }
        write(
            "prekey_bundle_json",
            tag,
            file["bundle"].to_string().as_bytes(),
        );
    }
    let group = vector("sender_keys.json");
    for (i, message) in group["decrypt_group_input_bob"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .take(3)
        .enumerate()
    {
        write(
            "sender_key_message",
            &format!("bob_{i}"),
            &hex_field(message),
        );
    }
    for key in ["skdm_initial", "skdm_late_for_carol"] {
        write(
            "sender_key_distribution_message",
            key,
            &hex_field(&group[key]["serialized"]),
        );
    }

    // A live pair with a small stock, so records and exports stay small.
    let config = TransportConfig {
        prekey_policy: PreKeyPolicy {
            one_time_batch: 1,
            one_time_threshold: 1,
            ..PreKeyPolicy::default()
        },
        ..TransportConfig::default()
    };
    let mut alice = Party::new("alice.1", 1);
    let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(2);
    let mut bob =
        SignalTransport::with_config(MemoryStore::new(), "bob.1".parse().unwrap(), config);
    let plan = bob.ensure_ready(T0, &mut rng).unwrap().plan;
    write("publish_upload_json", "small", plan.to_json().as_bytes());
    let bundle = plan.bundles().one_time.remove(0);
    alice
        .transport
        .process_bundle(&bob.local_address().clone(), &bundle, T0, &mut alice.rng)
        .unwrap();
    let message = alice.send_one_to(&bob.local_address().clone(), b"seed", T0);
    bob.decrypt_from_agent(
        &alice.address(),
        message.message_type as u8,
        &message.body,
        T0,
        &mut rng,
    )
    .unwrap();

    let store = bob.store();
    write("store_import", "bob", &store.export());
    write("store_import", "empty", &MemoryStore::new().export());
    let session = store.session(&alice.address()).unwrap().unwrap();
    write("persist_session", "bob", &session.to_record_bytes());
    let identity = store.local_identity().unwrap().unwrap();
    write("persist_local_identity", "bob", &identity.to_record_bytes());
    write(
        "persist_identity_key_pair",
        "bob",
        &identity.key_pair.to_record_bytes(),
    );
    let state = store.prekey_state().unwrap().unwrap();
    write("persist_prekey_state", "bob", &state.to_record_bytes());
    let signed = store
        .signed_pre_key(state.current_signed_pre_key.unwrap())
        .unwrap()
        .unwrap();
    write("persist_signed_pre_key", "bob", &signed.to_record_bytes());
    let kyber = store
        .kyber_pre_key(state.current_last_resort.unwrap())
        .unwrap()
        .unwrap();
    write("persist_kyber_pre_key", "bob", &kyber.to_record_bytes());
    let alice_store = alice.transport.store();
    let pre_key_id = alice_store.pre_key_ids().unwrap()[0];
    let pre_key = alice_store.pre_key(pre_key_id).unwrap().unwrap();
    write("persist_pre_key", "alice", &pre_key.to_record_bytes());
    let trust = store.trust(&alice.address()).unwrap().unwrap();
    write("persist_trust", "trusted", &trust.to_record_bytes());
    let changed = TrustRecord::Changed {
        previous: *trust.current_identity(),
        current: *identity.key_pair.identity_key(),
    };
    write("persist_trust", "changed", &changed.to_record_bytes());
    let devices = store
        .device_list(&alice.address().agent_id)
        .unwrap()
        .unwrap();
    write("persist_device_list", "alice", &devices.to_record_bytes());
}
