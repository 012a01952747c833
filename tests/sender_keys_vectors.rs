//! libsignal v0.73.3 `sender_keys.json`, byte for byte: chain creation from the logged draws,
//! the distribution messages, every message (seeded and replayed randomness), the message keys,
//! Bob's reordered deliveries, Carol's late distribution message, duplicates and a bad
//! signature, with libsignal's exact error strings.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod support;

use std::collections::HashMap;

use spots_signal::ErrorClass;
use spots_signal::sender_keys::{
    SenderChainKey, SenderKeyLimits, SenderKeyRecord, create_distribution_message, group_decrypt,
    group_encrypt, process_distribution_message,
};
use spots_signal::wire::{SenderKeyDistributionMessage, SenderKeyMessage};
use support::{ReplayRng, hex_field, seeded, uint, vector};
use uuid::Uuid;

fn distribution_id(file: &serde_json::Value) -> Uuid {
    let id = Uuid::parse_str(file["distribution_id"].as_str().unwrap()).unwrap();
    assert_eq!(hex::encode(id.as_bytes()), file["distribution_id_bytes"]);
    id
}

#[test]
fn chain_creation_from_logged_draws() {
    let file = vector("sender_keys.json");
    let id = distribution_id(&file);
    let state = &file["sender_key_state"];
    let mut rng = ReplayRng::from_draws(&state["creation_rng_draws"]);
    let (record, skdm) = create_distribution_message(None, id, &mut rng).unwrap();
    rng.assert_exhausted();
    let current = record.current().unwrap();
    assert_eq!(u64::from(current.chain_id()), uint(&state["chain_id"]));
    assert_eq!(current.iteration(), 0);
    assert_eq!(
        hex::encode(current.signing_key().serialize()),
        state["signing_key_public"]
    );
    assert!(current.is_own_chain());
    assert_eq!(
        hex::encode(skdm.chain_key()),
        state["initial_chain_key"].as_str().unwrap()
    );
    assert_eq!(
        hex::encode(skdm.serialized()),
        file["skdm_initial"]["serialized"]
    );
    assert_eq!(
        hex::encode(skdm.serialized()),
        file["decrypt_group_input_bob"]["distribution_message"]
    );
    // A second call reuses the chain and draws nothing.
    let mut empty = ReplayRng::empty();
    let (again, skdm2) = create_distribution_message(Some(&record), id, &mut empty).unwrap();
    assert_eq!(again, record);
    assert_eq!(skdm2.serialized(), skdm.serialized());
}

/// Alice's whole run with the seeded generator: creation, G0..G5, and the late distribution
/// message for Carol created after G2.
#[test]
fn alice_seeded_run_reproduces_every_message() {
    let file = vector("sender_keys.json");
    let id = distribution_id(&file);
    let mut rng = seeded(&file["rng_seeds"]["alice"]);
    // libsignal's run generated Alice's identity key first (one `fill_bytes(32)`).
    let identity = spots_signal::keys::IdentityKeyPair::generate(&mut rng);
    assert_eq!(
        hex::encode(identity.serialize()),
        file["sender"]["identity"]["identity_key_pair_serialized"]
    );
    let (mut record, skdm) = create_distribution_message(None, id, &mut rng).unwrap();
    assert_eq!(
        hex::encode(skdm.serialized()),
        file["skdm_initial"]["serialized"]
    );
    for message in file["messages"].as_array().unwrap() {
        if message["iteration"] == 3 {
            let (same, late) = create_distribution_message(Some(&record), id, &mut rng).unwrap();
            assert_eq!(same, record);
            assert_eq!(
                hex::encode(late.serialized()),
                file["skdm_late_for_carol"]["serialized"]
            );
            assert_eq!(
                hex::encode(late.chain_key()),
                file["skdm_late_for_carol"]["chain_key"]
            );
        }
        let plaintext = hex_field(&message["plaintext_hex"]);
        let (next, encrypted) = group_encrypt(&record, id, &plaintext, &mut rng).unwrap();
        assert_eq!(
            hex::encode(encrypted.serialized()),
            message["serialized"],
            "{}",
            message["id"]
        );
        record = next;
    }
}

/// The same messages with each message's logged XEdDSA randomness replayed, and the chain
/// and message keys compared at every iteration.
#[test]
fn message_keys_and_replayed_signatures() {
    let file = vector("sender_keys.json");
    let id = distribution_id(&file);
    let mut rng = ReplayRng::from_draws(&file["sender_key_state"]["creation_rng_draws"]);
    let (mut record, _) = create_distribution_message(None, id, &mut rng).unwrap();
    let mut chain = SenderChainKey::new(
        hex_field(&file["sender_key_state"]["initial_chain_key"])
            .try_into()
            .unwrap(),
        0,
    );
    for message in file["messages"].as_array().unwrap() {
        assert_eq!(u64::from(chain.iteration()), uint(&message["iteration"]));
        assert_eq!(hex::encode(chain.as_bytes()), message["chain_key"]);
        let keys = chain.message_key();
        assert_eq!(
            hex::encode(keys.seed()),
            message["message_keys"]["hmac_seed"]
        );
        assert_eq!(hex::encode(keys.iv()), message["message_keys"]["iv"]);
        assert_eq!(
            hex::encode(keys.cipher_key()),
            message["message_keys"]["cipher_key"]
        );
        rng.push_bytes(&hex_field(&message["parts"]["xeddsa_random_64"]));
        let plaintext = hex_field(&message["plaintext_hex"]);
        let (next, encrypted) = group_encrypt(&record, id, &plaintext, &mut rng).unwrap();
        rng.assert_exhausted();
        assert_eq!(hex::encode(encrypted.serialized()), message["serialized"]);
        assert_eq!(
            hex::encode(encrypted.body()),
            message["parts"]["ciphertext"]
        );
        record = next;
        chain = chain.next().unwrap();
    }
}

/// Bob's and Carol's deliveries, in the logged order, with the logged results.
#[test]
fn deliveries_match_libsignal() {
    let file = vector("sender_keys.json");
    let id = distribution_id(&file);
    let limits = SenderKeyLimits::default();
    let by_id: HashMap<String, Vec<u8>> = file["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap().to_owned(),
                hex_field(&m["serialized"]),
            )
        })
        .collect();
    let initial = SenderKeyDistributionMessage::try_from(
        hex_field(&file["skdm_initial"]["serialized"]).as_slice(),
    )
    .unwrap();
    let late = SenderKeyDistributionMessage::try_from(
        hex_field(&file["skdm_late_for_carol"]["serialized"]).as_slice(),
    )
    .unwrap();
    let mut records: HashMap<&str, SenderKeyRecord> = HashMap::new();
    records.insert(
        "bob",
        process_distribution_message(None, id, &initial, limits).unwrap(),
    );
    records.insert(
        "carol",
        process_distribution_message(None, id, &late, limits).unwrap(),
    );
    // The Bob delivery list as given for decryption.
    for (index, bytes) in file["decrypt_group_input_bob"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        let named = file["deliveries"][index]["message"].as_str().unwrap();
        assert_eq!(&hex_field(bytes), &by_id[named]);
    }
    let mut checked = 0;
    for delivery in file["deliveries"].as_array().unwrap() {
        let recipient = delivery["recipient"].as_str().unwrap();
        let bytes = if delivery["input_serialized"].is_null() {
            by_id[delivery["message"].as_str().unwrap()].clone()
        } else {
            hex_field(&delivery["input_serialized"])
        };
        let message = SenderKeyMessage::try_from(bytes.as_slice()).unwrap();
        let record = &records[recipient];
        let result = group_decrypt(Some(record), &message, limits);
        let expected = &delivery["result"];
        if expected["ok"].as_bool().unwrap() {
            let (updated, plaintext) = result.unwrap();
            assert_eq!(hex::encode(plaintext), expected["plaintext_hex"]);
            records.insert(recipient, updated);
        } else {
            let error = result.unwrap_err();
            assert_eq!(error.to_string(), expected["error"].as_str().unwrap());
            let class = if expected["error"] == "invalid signature detected" {
                ErrorClass::InvalidSignature
            } else {
                ErrorClass::DuplicateMessage
            };
            assert_eq!(error.class(), class);
        }
        checked += 1;
    }
    assert_eq!(checked, 12);
}
