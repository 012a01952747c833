//! Stores: the encodings of the facade's records, whole-store export/import, atomic commits,
//! a failing backend leaving state untouched, and the prekey upload JSON.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use core::fmt;

use spots_signal::address::{Address, AgentId};
use spots_signal::devices::DeviceList;
use spots_signal::keys::{
    IdentityKey, KyberPreKeyId, KyberPreKeyRecord, PreKeyId, PreKeyRecord, PublicKey,
    SignedPreKeyId, SignedPreKeyRecord,
};
use spots_signal::persist::{Persist, PersistError};
use spots_signal::pqxdh::PreKeyBundle;
use spots_signal::prekey_lifecycle::{PreKeyState, PublishPlan, UploadError};
use spots_signal::session::SessionRecord;
use spots_signal::store::{Changes, LocalIdentity, MemoryStoreError, ProtocolStore};
use spots_signal::trust::TrustRecord;
use spots_signal::{DeviceId, ErrorClass, MemoryStore, Timestamp, TransportError};
use support::party::{Party, T0};

fn key(byte: u8) -> IdentityKey {
    IdentityKey::new(PublicKey::from_djb_bytes([byte; 32]))
}

fn round_trip<T: Persist + PartialEq + fmt::Debug>(value: &T) {
    let bytes = value.to_record_bytes();
    assert_eq!(&T::from_record_bytes(&bytes).unwrap(), value);
    for cut in 0..bytes.len() {
        // Truncations either fail or (for optional trailing fields) decode to something else,
        // never panic.
        let _ = T::from_record_bytes(&bytes[..cut]);
    }
}

#[test]
fn facade_records_round_trip_and_reject_damage() {
    round_trip(&TrustRecord::first_use(key(1)));
    round_trip(&TrustRecord::Trusted {
        identity: key(2),
        verified: true,
    });
    round_trip(&TrustRecord::Changed {
        previous: key(3),
        current: key(4),
    });
    let list: DeviceList = [1, 2, 127]
        .into_iter()
        .map(|id| DeviceId::new(id).unwrap())
        .collect();
    round_trip(&list);
    let state = PreKeyState {
        next_pre_key_id: 10,
        next_signed_pre_key_id: 3,
        next_kyber_pre_key_id: 11,
        current_signed_pre_key: Some(SignedPreKeyId(2)),
        current_last_resort: Some(KyberPreKeyId(5)),
        retired_signed_pre_keys: vec![(SignedPreKeyId(1), Timestamp::from_secs(9))],
        retired_last_resort: vec![(KyberPreKeyId(1), Timestamp::from_secs(9))],
    };
    round_trip(&state);
    round_trip(&PreKeyState::default());

    // A trust record with both shapes set, and a non-canonical device list, are refused.
    let mut bytes = TrustRecord::first_use(key(1)).to_record_bytes().to_vec();
    bytes.extend_from_slice(&[0x1a, 0x21, 0x05]);
    bytes.extend_from_slice(&[7; 32]);
    assert!(TrustRecord::from_record_bytes(&bytes).is_err());
    let unsorted = [1u8, 8, 0x08, 2, 0x08, 1];
    assert_eq!(
        DeviceList::from_record_bytes(&unsorted),
        Err(PersistError::InvalidField("devices"))
    );
    let zero = [1u8, 8, 0x08, 0];
    assert!(DeviceList::from_record_bytes(&zero).is_err());
    // Wrong kind byte.
    assert!(matches!(
        PreKeyState::from_record_bytes(&TrustRecord::first_use(key(1)).to_record_bytes()),
        Err(PersistError::WrongKind { .. })
    ));
}

#[test]
fn export_import_round_trips_a_live_store() {
    let mut alice = Party::new("alice.1", 1);
    let mut bob = Party::new("bob.1", 2);
    alice.connect(&mut bob, T0);
    let message = alice.send_one(&bob, b"hi", T0).unwrap();
    bob.receive(&alice.address(), &message, T0).unwrap();

    for party in [&alice, &bob] {
        let bytes = party.transport.store().export();
        let imported = MemoryStore::import(&bytes).unwrap();
        assert_eq!(&imported, party.transport.store());
        assert_eq!(imported.export(), bytes);
    }
    let bytes = bob.transport.store().export();
    assert!(matches!(
        MemoryStore::import(&bytes[..bytes.len() / 2]),
        Err(MemoryStoreError::Import(_))
    ));
    assert!(MemoryStore::import(&[]).is_err());
    assert_eq!(
        MemoryStore::import(&[1, 1]).unwrap_err().class(),
        ErrorClass::InvalidState
    );
    // An empty store exports and imports too.
    let empty = MemoryStore::new();
    assert_eq!(MemoryStore::import(&empty.export()).unwrap(), empty);
}

#[test]
fn commits_are_all_or_nothing() {
    let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(5);
    let identity = spots_signal::keys::IdentityKeyPair::generate(&mut rng);
    let mut store = MemoryStore::new();
    let pre_key = PreKeyRecord::generate(PreKeyId(1), &mut rng);
    store
        .commit(Changes {
            identity: Some(LocalIdentity {
                key_pair: identity.clone(),
                registration_id: spots_signal::keys::RegistrationId(7),
            }),
            pre_keys: vec![pre_key.clone()],
            ..Changes::default()
        })
        .unwrap();
    let before = store.export();
    // A batch that reuses a prekey id is refused as a whole, with its other writes.
    let address: Address = "carol.2".parse().unwrap();
    let error = store
        .commit(Changes {
            trust: vec![(address.clone(), TrustRecord::first_use(key(9)))],
            signed_pre_keys: vec![SignedPreKeyRecord::generate(
                SignedPreKeyId(1),
                &identity,
                T0,
                &mut rng,
            )],
            pre_keys: vec![pre_key],
            ..Changes::default()
        })
        .unwrap_err();
    assert_eq!(error, MemoryStoreError::PreKeyIdReused(1));
    assert_eq!(store.export(), before);
    assert_eq!(store.trust(&address).unwrap(), None);

    // Removing a last-resort key drops its use records.
    let kyber = KyberPreKeyRecord::generate(KyberPreKeyId(3), &identity, T0, true, &mut rng);
    let base = PublicKey::from_djb_bytes([4; 32]);
    store
        .commit(Changes {
            kyber_pre_keys: vec![kyber],
            kyber_last_resort_uses: vec![(KyberPreKeyId(3), base)],
            ..Changes::default()
        })
        .unwrap();
    assert!(
        store
            .kyber_last_resort_used(KyberPreKeyId(3), &base)
            .unwrap()
    );
    store
        .commit(Changes {
            removed_kyber_pre_keys: vec![KyberPreKeyId(3)],
            ..Changes::default()
        })
        .unwrap();
    assert!(
        !store
            .kyber_last_resort_used(KyberPreKeyId(3), &base)
            .unwrap()
    );
}

/// A backend whose commits fail on demand, like a full disk.
#[derive(Debug, Default)]
struct FlakyStore {
    inner: MemoryStore,
    fail_commits: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("disk full")]
struct DiskFull;

impl ProtocolStore for FlakyStore {
    type Error = DiskFull;
    fn local_identity(&self) -> Result<Option<LocalIdentity>, DiskFull> {
        Ok(self.inner.local_identity().unwrap())
    }
    fn session(&self, address: &Address) -> Result<Option<SessionRecord>, DiskFull> {
        Ok(self.inner.session(address).unwrap())
    }
    fn pre_key(&self, id: PreKeyId) -> Result<Option<PreKeyRecord>, DiskFull> {
        Ok(self.inner.pre_key(id).unwrap())
    }
    fn pre_key_ids(&self) -> Result<Vec<PreKeyId>, DiskFull> {
        Ok(self.inner.pre_key_ids().unwrap())
    }
    fn signed_pre_key(&self, id: SignedPreKeyId) -> Result<Option<SignedPreKeyRecord>, DiskFull> {
        Ok(self.inner.signed_pre_key(id).unwrap())
    }
    fn kyber_pre_key(&self, id: KyberPreKeyId) -> Result<Option<KyberPreKeyRecord>, DiskFull> {
        Ok(self.inner.kyber_pre_key(id).unwrap())
    }
    fn one_time_kyber_pre_key_ids(&self) -> Result<Vec<KyberPreKeyId>, DiskFull> {
        Ok(self.inner.one_time_kyber_pre_key_ids().unwrap())
    }
    fn kyber_last_resort_used(
        &self,
        id: KyberPreKeyId,
        base: &PublicKey,
    ) -> Result<bool, DiskFull> {
        Ok(self.inner.kyber_last_resort_used(id, base).unwrap())
    }
    fn trust(&self, address: &Address) -> Result<Option<TrustRecord>, DiskFull> {
        Ok(self.inner.trust(address).unwrap())
    }
    fn device_list(&self, agent: &AgentId) -> Result<Option<DeviceList>, DiskFull> {
        Ok(self.inner.device_list(agent).unwrap())
    }
    fn prekey_state(&self) -> Result<Option<PreKeyState>, DiskFull> {
        Ok(self.inner.prekey_state().unwrap())
    }
    fn sender_key(
        &self,
        sender: &Address,
        key_id: spots_signal::community::EpochId,
    ) -> Result<Option<spots_signal::sender_keys::SenderKeyRecord>, DiskFull> {
        Ok(self.inner.sender_key(sender, key_id).unwrap())
    }
    fn community(
        &self,
        id: spots_signal::community::CommunityId,
    ) -> Result<Option<spots_signal::community::CommunityState>, DiskFull> {
        Ok(self.inner.community(id).unwrap())
    }
    fn commit(&mut self, changes: Changes) -> Result<(), DiskFull> {
        if self.fail_commits {
            return Err(DiskFull);
        }
        self.inner.commit(changes).map_err(|_| DiskFull)
    }
}

#[test]
fn memory_store_passes_the_backend_conformance_checks() {
    spots_signal::store::conformance::check(MemoryStore::new).unwrap();
    // A backend that loses writes is caught.
    let failure =
        spots_signal::store::conformance::check(|| LossyStore(MemoryStore::new())).unwrap_err();
    assert_eq!(failure.check, "commit then read back");
}

/// A broken backend: commits report success but drop trust records.
#[derive(Debug)]
struct LossyStore(MemoryStore);

impl ProtocolStore for LossyStore {
    type Error = MemoryStoreError;
    fn local_identity(&self) -> Result<Option<LocalIdentity>, Self::Error> {
        self.0.local_identity()
    }
    fn session(&self, address: &Address) -> Result<Option<SessionRecord>, Self::Error> {
        self.0.session(address)
    }
    fn pre_key(&self, id: PreKeyId) -> Result<Option<PreKeyRecord>, Self::Error> {
        self.0.pre_key(id)
    }
    fn pre_key_ids(&self) -> Result<Vec<PreKeyId>, Self::Error> {
        self.0.pre_key_ids()
    }
    fn signed_pre_key(
        &self,
        id: SignedPreKeyId,
    ) -> Result<Option<SignedPreKeyRecord>, Self::Error> {
        self.0.signed_pre_key(id)
    }
    fn kyber_pre_key(&self, id: KyberPreKeyId) -> Result<Option<KyberPreKeyRecord>, Self::Error> {
        self.0.kyber_pre_key(id)
    }
    fn one_time_kyber_pre_key_ids(&self) -> Result<Vec<KyberPreKeyId>, Self::Error> {
        self.0.one_time_kyber_pre_key_ids()
    }
    fn kyber_last_resort_used(
        &self,
        id: KyberPreKeyId,
        base: &PublicKey,
    ) -> Result<bool, Self::Error> {
        self.0.kyber_last_resort_used(id, base)
    }
    fn trust(&self, address: &Address) -> Result<Option<TrustRecord>, Self::Error> {
        self.0.trust(address)
    }
    fn device_list(&self, agent: &AgentId) -> Result<Option<DeviceList>, Self::Error> {
        self.0.device_list(agent)
    }
    fn prekey_state(&self) -> Result<Option<PreKeyState>, Self::Error> {
        self.0.prekey_state()
    }
    fn sender_key(
        &self,
        sender: &Address,
        key_id: spots_signal::community::EpochId,
    ) -> Result<Option<spots_signal::sender_keys::SenderKeyRecord>, Self::Error> {
        self.0.sender_key(sender, key_id)
    }
    fn community(
        &self,
        id: spots_signal::community::CommunityId,
    ) -> Result<Option<spots_signal::community::CommunityState>, Self::Error> {
        self.0.community(id)
    }
    fn commit(&mut self, mut changes: Changes) -> Result<(), Self::Error> {
        changes.trust.clear();
        self.0.commit(changes)
    }
}

#[test]
fn a_failed_commit_surfaces_and_keeps_the_previous_state() {
    use spots_signal::SignalTransport;
    let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(6);
    let mut bob = Party::new("bob.1", 7);
    let mut flaky = SignalTransport::with_config(
        FlakyStore {
            inner: MemoryStore::new(),
            fail_commits: true,
        },
        "alice.1".parse().unwrap(),
        spots_signal::transport::TransportConfig {
            prekey_policy: support::party::small_policy(),
            ..Default::default()
        },
    );
    let error = flaky.ensure_ready(T0, &mut rng).unwrap_err();
    assert!(matches!(error, TransportError::Store(DiskFull)));
    assert_eq!(error.class(), ErrorClass::StoreError);
    assert_eq!(flaky.store().inner, MemoryStore::new());
    assert!(matches!(
        flaky.current_publish_plan(),
        Err(TransportError::NotReady)
    ));
    // Once the disk recovers, the same call succeeds.
    let mut flaky = {
        let mut store = flaky.into_store();
        store.fail_commits = false;
        SignalTransport::new(store, "alice.1".parse().unwrap())
    };
    flaky.ensure_ready(T0, &mut rng).unwrap();
    let bundle = bob.fetch_bundle();
    let mut store = flaky.into_store();
    store.fail_commits = true;
    let before = store.inner.export();
    let mut flaky = SignalTransport::new(store, "alice.1".parse().unwrap());
    assert!(matches!(
        flaky.process_bundle(&bob.address(), &bundle, T0, &mut rng),
        Err(TransportError::Store(DiskFull))
    ));
    assert_eq!(flaky.store().inner.export(), before);
}

#[test]
fn upload_json_round_trips_and_is_verified() {
    let bob = Party::new("bob.1", 8);
    let plan = bob.transport.current_publish_plan().unwrap();
    assert_eq!(plan.one_time_pre_keys.len(), 4);
    let json = plan.to_json();
    assert_eq!(PublishPlan::from_json(&json).unwrap(), plan);

    let bundles = plan.bundles();
    assert_eq!(bundles.one_time.len(), 4);
    assert!(bundles.last_resort.pre_key.is_none());
    for bundle in bundles.one_time.iter().chain([&bundles.last_resort]) {
        bundle.verify().unwrap();
        let text = serde_json::to_string(bundle).unwrap();
        assert_eq!(
            &serde_json::from_str::<PreKeyBundle>(&text).unwrap(),
            bundle
        );
    }

    let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let signature = value["one_time_kyber_pre_keys"][0]["signature"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut bad = signature.into_bytes();
    bad[0] = if bad[0] == b'0' { b'1' } else { b'0' };
    value["one_time_kyber_pre_keys"][0]["signature"] =
        serde_json::Value::String(String::from_utf8(bad).unwrap());
    let error = PublishPlan::from_json(&value.to_string()).unwrap_err();
    assert_eq!(error, UploadError::InvalidSignature("kyber_pre_key"));
    assert_eq!(error.class(), ErrorClass::InvalidSignature);

    let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
    value["one_time_pre_keys"][1]["id"] = value["one_time_pre_keys"][0]["id"].clone();
    assert_eq!(
        PublishPlan::from_json(&value.to_string()).unwrap_err(),
        UploadError::DuplicateId("one_time_pre_keys")
    );
    let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
    value["device_id"] = 0.into();
    assert!(matches!(
        PublishPlan::from_json(&value.to_string()),
        Err(UploadError::Address(_))
    ));
    value["extra"] = 1.into();
    assert!(matches!(
        PublishPlan::from_json(&value.to_string()),
        Err(UploadError::Json(_))
    ));
}

fn fixture_path(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support/fixtures")
        .join(name)
}

/// Deterministic values of every record kind this layer added, and a small store holding them.
fn facade_fixtures() -> Vec<(&'static str, Vec<u8>)> {
    let identity = LocalIdentity {
        key_pair: spots_signal::keys::IdentityKeyPair::from_private_key(
            spots_signal::keys::PrivateKey::deserialize(&[3; 32]).unwrap(),
        ),
        registration_id: spots_signal::keys::RegistrationId(1234),
    };
    let changed = TrustRecord::Changed {
        previous: key(1),
        current: key(2),
    };
    let list: DeviceList = [1, 5, 127]
        .into_iter()
        .map(|id| DeviceId::new(id).unwrap())
        .collect();
    let state = PreKeyState {
        next_pre_key_id: 101,
        next_signed_pre_key_id: 3,
        next_kyber_pre_key_id: 12,
        current_signed_pre_key: Some(SignedPreKeyId(2)),
        current_last_resort: Some(KyberPreKeyId(11)),
        retired_signed_pre_keys: vec![(SignedPreKeyId(1), Timestamp::from_secs(1_700_000_000))],
        retired_last_resort: Vec::new(),
    };
    let pre_key = PreKeyRecord::new(
        PreKeyId(100),
        spots_signal::keys::KeyPair::from_private_key(
            spots_signal::keys::PrivateKey::deserialize(&[4; 32]).unwrap(),
        ),
    );
    let mut store = MemoryStore::new();
    let bob: Address = "bob.5".parse().unwrap();
    store
        .commit(Changes {
            identity: Some(identity.clone()),
            pre_keys: vec![pre_key],
            kyber_last_resort_uses: vec![(KyberPreKeyId(11), PublicKey::from_djb_bytes([6; 32]))],
            trust: vec![(bob.clone(), changed)],
            device_lists: vec![(bob.agent_id.clone(), list.clone())],
            prekey_state: Some(state.clone()),
            ..Changes::default()
        })
        .unwrap();
    vec![
        ("local_identity_v1.hex", identity.to_record_bytes().to_vec()),
        (
            "trust_trusted_v1.hex",
            TrustRecord::Trusted {
                identity: key(1),
                verified: true,
            }
            .to_record_bytes()
            .to_vec(),
        ),
        ("trust_changed_v1.hex", changed.to_record_bytes().to_vec()),
        ("device_list_v1.hex", list.to_record_bytes().to_vec()),
        ("prekey_state_v1.hex", state.to_record_bytes().to_vec()),
        ("memory_store_v1.hex", store.export().to_vec()),
    ]
}

#[test]
fn frozen_v1_facade_fixtures_still_load() {
    // Frozen the first time they are generated (`SPOTS_WRITE_GENERATED=1`), then never changed.
    for (name, current) in facade_fixtures() {
        let text = hex::encode(&current) + "\n";
        support::assert_committed(&fixture_path(name), text.as_bytes(), false);
        assert_eq!(current[0], 1, "{name}");
    }
    let text = std::fs::read_to_string(fixture_path("memory_store_v1.hex")).unwrap();
    let store = MemoryStore::import(&hex::decode(text.trim()).unwrap()).unwrap();
    let bob: Address = "bob.5".parse().unwrap();
    assert!(store.trust(&bob).unwrap().unwrap().is_changed());
    assert!(
        store
            .kyber_last_resort_used(KyberPreKeyId(11), &PublicKey::from_djb_bytes([6; 32]))
            .unwrap()
    );
    assert_eq!(store.pre_key_ids().unwrap(), vec![PreKeyId(100)]);
}
