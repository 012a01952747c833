//! Helpers shared by the 1:1 vector tests: Bob's prekeys, libsignal error strings and the
//! vectors' session-state format.

use serde_json::{Value, json};
use spots_signal::kem;
use spots_signal::keys::{
    IdentityKeyPair, KeyPair, KyberPreKeyId, KyberPreKeyRecord, PreKeyId, PreKeyRecord, PrivateKey,
    PublicKey, SignedPreKeyId, SignedPreKeyRecord,
};
use spots_signal::pqxdh::SessionOptions;
use spots_signal::session::inspect::{ChainSnapshot, SessionSnapshot};
use spots_signal::{ErrorClass, PreKeyLookup, Timestamp};

use super::{ScenarioRng, hex_array, hex_field, uint};

pub const FILES: [&str; 3] = [
    "dm_pqxdh_otpk.json",
    "dm_pqxdh_no_otpk.json",
    "dm_x3dh_v3_otpk.json",
];
pub const COMPAT: SessionOptions = SessionOptions { accept_x3dh: true };

pub fn is_x3dh(file: &Value) -> bool {
    file["bundle"]["kyber_pre_key_id"].is_null()
}

pub fn options_for(file: &Value) -> SessionOptions {
    if is_x3dh(file) {
        COMPAT
    } else {
        SessionOptions::default()
    }
}

pub fn public(value: &Value) -> PublicKey {
    PublicKey::deserialize(&hex_field(value)).unwrap()
}

pub fn private(value: &Value) -> PrivateKey {
    PrivateKey::deserialize(&hex_field(value)).unwrap()
}

pub fn now(file: &Value) -> Timestamp {
    Timestamp::from_secs(uint(&file["now_unix_seconds"]))
}

/// Bob's prekeys, as the lookup a PreKey-message decryption consults.
#[derive(Debug, Clone)]
pub struct BobKeys {
    pub signed: SignedPreKeyRecord,
    pub one_time: Option<PreKeyRecord>,
    pub kyber: Option<KyberPreKeyRecord>,
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
pub fn bob_keys_from_file(file: &Value) -> BobKeys {
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
pub fn bob_keys_from_stream(file: &Value, rng: &mut ScenarioRng) -> (IdentityKeyPair, BobKeys) {
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
pub fn vector_error_class(message: &str) -> ErrorClass {
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

pub fn hex_secret(bytes: &[u8]) -> Value {
    Value::String(hex::encode(bytes))
}

pub fn chain_json(chain: &ChainSnapshot) -> Value {
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
pub fn snapshot_json(snapshot: &SessionSnapshot) -> Value {
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
