//! The `spots-signal` CLI as separate processes: vector bundles reproduced from the seeds,
//! libsignal's messages decrypted, a two-way conversation through state files, failures that
//! leave state untouched, and safety numbers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::{uint, vector};

const NOW_MS: &str = "1700000000000";

/// Runs the CLI; returns the exit status and the JSON it printed.
fn cli(args: &[&str]) -> (i32, Value) {
    let output = Command::new(env!("CARGO_BIN_EXE_spots-signal"))
        .args(args)
        .env("SPOTS_SIGNAL_NOW_MS", NOW_MS)
        .output()
        .expect("run spots-signal");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let json = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{args:?} printed {stdout:?}: {e}"));
    (output.status.code().unwrap_or(-1), json)
}

fn ok(args: &[&str]) -> Value {
    let (status, json) = cli(args);
    assert_eq!(status, 0, "{args:?} failed: {json}");
    json
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("spots-signal-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn path(dir: &Path, file: &str) -> String {
    dir.join(file).to_str().unwrap().to_owned()
}

/// The vector's Bob, recreated by `new-party` from his seed, registration id and key ids.
fn vector_bob(dir: &Path, file: &Value) -> (String, Value) {
    let bundle = &file["bundle"];
    let state = path(dir, "bob.json");
    let seed = uint(&file["rng_seeds"]["bob"]).to_string();
    let registration_id = uint(&bundle["registration_id"]).to_string();
    // A key the scenario does not publish was still drawn (with id 31 or 97); its id does not
    // appear in the bundle.
    let id = |key: &str, unpublished: u64| file["bob"][key]["id"].as_u64().unwrap_or(unpublished);
    let ids = format!(
        "{},{},{}",
        id("signed_pre_key", 7),
        id("one_time_pre_key", 31),
        id("kyber_pre_key", 97)
    );
    let mut args = vec![
        "new-party",
        &state,
        "bob",
        "1",
        &registration_id,
        &seed,
        "--key-ids",
        &ids,
    ];
    if bundle["pre_key_id"].is_null() {
        args.push("--no-one-time-prekey");
    }
    if bundle["kyber_pre_key_id"].is_null() {
        args.push("--no-kyber");
    }
    let printed = ok(&args);
    (state, printed)
}

#[test]
fn new_party_reproduces_the_vector_bundles() {
    for name in support::dm::FILES {
        let file = vector(name);
        let dir = temp_dir(&format!("bundle-{name}"));
        let (state, printed) = vector_bob(&dir, &file);
        assert_eq!(printed, file["bundle"], "{name}");
        assert_eq!(ok(&["bundle", &state]), file["bundle"], "{name}");
        // An existing state file is never overwritten.
        let (status, _) = cli(&["new-party", &state, "bob", "1", "2222", "1"]);
        assert_eq!(status, 2);
    }
}

#[test]
fn libsignal_messages_decrypt_in_the_cli() {
    for name in support::dm::FILES {
        let file = vector(name);
        let dir = temp_dir(&format!("decrypt-{name}"));
        let (state, _) = vector_bob(&dir, &file);
        let input = &file["decrypt_dm_input"];
        let sender = input["sender"].as_str().unwrap();
        for message in input["messages"].as_array().unwrap() {
            let message_type = match &message["type"] {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            let message_type = message_type.as_str();
            let body = message["body"].as_str().unwrap();
            let got = ok(&["decrypt", &state, sender, message_type, body]);
            let expected =
                hex::decode(message["expected_plaintext_hex"].as_str().unwrap()).unwrap();
            assert_eq!(
                got["plaintext_utf8"].as_str().unwrap().as_bytes(),
                expected.as_slice(),
                "{name}"
            );
        }
    }
}

#[test]
fn two_processes_hold_a_conversation_through_state_files() {
    let dir = temp_dir("conversation");
    let alice = path(&dir, "alice.json");
    let bob = path(&dir, "bob.json");
    let bob_bundle = path(&dir, "bob_bundle.json");
    ok(&["new-party", &alice, "alice", "1", "1111", "1"]);
    let bundle = ok(&["new-party", &bob, "bob", "2", "2222", "2"]);
    std::fs::write(&bob_bundle, bundle.to_string()).unwrap();
    let outcome = ok(&["process-bundle", &alice, "bob.2", &bob_bundle]);
    assert_eq!(outcome["identity_changed"], false);

    let send = |from: &str, to: &str, text: &str| {
        let message = ok(&["encrypt", from, to, text]);
        (
            message["type"].as_u64().unwrap().to_string(),
            message["body"].as_str().unwrap().to_owned(),
        )
    };
    let (message_type, body) = send(&alice, "bob.2", "hello bob");
    assert_eq!(message_type, "3");
    let got = ok(&["decrypt", &bob, "alice.1", &message_type, &body]);
    assert_eq!(got["plaintext_utf8"], "hello bob");

    // A replay fails with a typed error and a non-zero exit, and changes no state.
    let before = std::fs::read(&bob).unwrap();
    let (status, error) = cli(&["decrypt", &bob, "alice.1", &message_type, &body]);
    assert_eq!(status, 1);
    assert_eq!(error["class"], "DuplicateMessage");
    assert!(error["error"].as_str().is_some());
    assert_eq!(std::fs::read(&bob).unwrap(), before);
    let (status, error) = cli(&["decrypt", &bob, "alice.1", "2", "00ff"]);
    assert_eq!(status, 1, "{error}");
    assert_eq!(std::fs::read(&bob).unwrap(), before);

    for round in 0..3 {
        let text = format!("reply {round}");
        let (message_type, body) = send(&bob, "alice.1", &text);
        assert_eq!(message_type, "2");
        let got = ok(&["decrypt", &alice, "bob.2", &message_type, &body]);
        assert_eq!(got["plaintext_utf8"], text.as_str());
        let text = format!("ping {round}");
        let (message_type, body) = send(&alice, "bob.2", &text);
        assert_eq!(message_type, "2");
        let got = ok(&["decrypt", &bob, "alice.1", &message_type, &body]);
        assert_eq!(got["plaintext_utf8"], text.as_str());
    }
    let ours = ok(&["safety-number", &alice, "bob.2"]);
    let theirs = ok(&["safety-number", &bob, "alice.1"]);
    assert_eq!(ours["displayable"], theirs["displayable"]);
    // Usage errors exit with 2.
    assert_eq!(cli(&["encrypt", &alice]).0, 2);
    assert_eq!(cli(&["encrypt", &alice, "bob", "x"]).0, 1);
}

#[test]
fn fingerprint_command_matches_the_vectors() {
    let file = vector("fingerprints.json");
    for case in file["vectors"].as_array().unwrap() {
        let text = |key: &str| case[key].as_str().unwrap().to_owned();
        let got = ok(&[
            "fingerprint",
            &case["version"].to_string(),
            &case["iterations"].to_string(),
            &text("local_stable_id_hex"),
            &text("local_identity_key"),
            &text("remote_stable_id_hex"),
            &text("remote_identity_key"),
        ]);
        assert_eq!(got["displayable"], case["displayable"]);
        assert_eq!(got["scannable"], case["scannable_serialized"]);
    }
    let (status, error) = cli(&["fingerprint", "3", "5200", "00", "05", "00", "05"]);
    assert_eq!(status, 1, "{error}");
}

#[test]
fn approve_identity_names_the_key() {
    let dir = temp_dir("approve");
    let alice = path(&dir, "alice.json");
    ok(&["new-party", &alice, "alice", "1", "1111", "1"]);
    // Three installs of bob.2, each with its own identity.
    let mut keys = Vec::new();
    let mut bundles = Vec::new();
    for seed in ["2", "3", "4"] {
        let state = path(&dir, &format!("bob{seed}.json"));
        let bundle = ok(&["new-party", &state, "bob", "2", "2222", seed]);
        keys.push(bundle["identity_key"].as_str().unwrap().to_owned());
        let file = path(&dir, &format!("bundle{seed}.json"));
        std::fs::write(&file, bundle.to_string()).unwrap();
        bundles.push(file);
    }
    ok(&["process-bundle", &alice, "bob.2", &bundles[0]]);
    let outcome = ok(&["process-bundle", &alice, "bob.2", &bundles[1]]);
    assert_eq!(outcome["identity_changed"], true);
    assert_eq!(cli(&["encrypt", &alice, "bob.2", "x"]).0, 1);

    // Naming a key other than the newest one is refused and changes nothing.
    let before = std::fs::read(&alice).unwrap();
    let (status, error) = cli(&["approve-identity", &alice, "bob.2", &keys[0]]);
    assert_eq!(status, 1, "{error}");
    assert_eq!(error["class"], "UntrustedIdentity");
    assert_eq!(std::fs::read(&alice).unwrap(), before);
    assert_eq!(cli(&["approve-identity", &alice, "bob.2", "05"]).0, 1);
    assert_eq!(
        cli(&["approve-identity", &alice, "bob.2", &keys[1], "x"]).0,
        2
    );

    let approved = ok(&["approve-identity", &alice, "bob.2", &keys[1]]);
    assert_eq!(approved["approved_identity_key"], keys[1].as_str());
    ok(&["encrypt", &alice, "bob.2", "welcome back"]);

    // Without a key, the newest key seen is approved (and printed).
    ok(&["process-bundle", &alice, "bob.2", &bundles[2]]);
    let approved = ok(&["approve-identity", &alice, "bob.2"]);
    assert_eq!(approved["approved_identity_key"], keys[2].as_str());
    ok(&["encrypt", &alice, "bob.2", "hello again"]);
}
