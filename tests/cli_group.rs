//! The CLI's `group-*` commands as separate processes: libsignal's sender-key messages from
//! `sender_keys.json` processed and decrypted through state files (with its exact errors), and
//! a group conversation between two CLI parties.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::vector;

fn cli(args: &[&str]) -> (i32, Value) {
    let output = Command::new(env!("CARGO_BIN_EXE_spots-signal"))
        .args(args)
        .env("SPOTS_SIGNAL_NOW_MS", "1700000000000")
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
    let dir = std::env::temp_dir().join(format!(
        "spots-signal-cli-group-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn party(dir: &Path, name: &str, seed: &str) -> String {
    let state = dir
        .join(format!("{name}.json"))
        .to_str()
        .unwrap()
        .to_owned();
    ok(&["new-party", &state, name, "1", "7", seed]);
    state
}

#[test]
fn libsignal_sender_key_messages_through_state_files() {
    let file = vector("sender_keys.json");
    let dir = temp_dir("vectors");
    let bob = party(&dir, "bob", "107");
    let carol = party(&dir, "carol", "108");
    let initial = file["skdm_initial"]["serialized"].as_str().unwrap();
    let late = file["skdm_late_for_carol"]["serialized"].as_str().unwrap();
    assert_eq!(
        ok(&["group-process", &bob, "alice.1", initial]),
        serde_json::json!({"ok": true})
    );
    ok(&["group-process", &carol, "alice.1", late]);
    let by_id: HashMap<&str, &str> = file["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["id"].as_str().unwrap(), m["serialized"].as_str().unwrap()))
        .collect();
    for delivery in file["deliveries"].as_array().unwrap() {
        let state = if delivery["recipient"] == "bob" {
            &bob
        } else {
            &carol
        };
        let skm = delivery["input_serialized"]
            .as_str()
            .unwrap_or_else(|| by_id[delivery["message"].as_str().unwrap()]);
        let before = std::fs::read(state).unwrap();
        let (status, json) = cli(&["group-decrypt", state, "alice.1", skm]);
        let expected = &delivery["result"];
        if expected["ok"].as_bool().unwrap() {
            assert_eq!(status, 0, "{json}");
            let plaintext = hex::decode(expected["plaintext_hex"].as_str().unwrap()).unwrap();
            assert_eq!(
                json["plaintext_utf8"].as_str().unwrap().as_bytes(),
                plaintext
            );
        } else {
            assert_ne!(status, 0);
            assert_eq!(json["error"], expected["error"]);
            assert_eq!(
                std::fs::read(state).unwrap(),
                before,
                "a failure leaves state alone"
            );
        }
    }
}

#[test]
fn two_cli_parties_chat_in_a_group() {
    let dir = temp_dir("chat");
    let alice = party(&dir, "alice", "1");
    let bob = party(&dir, "bob", "2");
    let dist = "6f1c2b3a-9d4e-4f50-8a61-7b8c9d0e1f20";
    let skdm = ok(&["group-create", &alice, dist])["skdm"]
        .as_str()
        .unwrap()
        .to_owned();
    // A second create returns the same chain at its current iteration.
    assert_eq!(ok(&["group-create", &alice, dist])["skdm"], skdm.as_str());
    ok(&["group-process", &bob, "alice.1", &skdm]);
    let first = ok(&["group-encrypt", &alice, dist, "hello group"])["skm"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = ok(&["group-encrypt", &alice, dist, "second"])["skm"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        ok(&["group-decrypt", &bob, "alice.1", &second])["plaintext_utf8"],
        "second"
    );
    assert_eq!(
        ok(&["group-decrypt", &bob, "alice.1", &first])["plaintext_utf8"],
        "hello group"
    );
    let (status, json) = cli(&["group-decrypt", &bob, "alice.1", &first]);
    assert_eq!(status, 1);
    assert_eq!(json["class"], "DuplicateMessage");
    // Bob has no chain of his own and nothing from carol.
    let (status, json) = cli(&["group-encrypt", &bob, dist, "x"]);
    assert_eq!(status, 1, "{json}");
    let (status, json) = cli(&["group-decrypt", &bob, "carol.1", &first]);
    assert_eq!(status, 1);
    assert_eq!(json["class"], "NoSenderKeyState");
    let (status, _) = cli(&["group-create", &alice, "not-a-uuid"]);
    assert_eq!(status, 2);
    let (status, _) = cli(&["group-decrypt", &bob, "alice.1", "zz"]);
    assert_eq!(status, 2);
}
