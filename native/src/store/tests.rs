//! The store against the facade: a conversation across reopen, wrong keys and damaged files
//! (typed errors, nothing changed), a commit failing halfway (nothing visible), and the
//! schema-version-1 fixture.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;
use spots_core::pqxdh::PreKeyBundle;
use spots_core::store::{Changes, ProtocolStore};
use spots_core::{Address, DeviceTarget, SignalTransport, Timestamp, TransportError};

use super::{SCHEMA_VERSION, SqliteStore, StoreError};
use crate::handle::os_rng;

const KEY: [u8; 32] = [0x42; 32];
const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> Self {
        Self::new_in(&std::env::temp_dir(), name)
    }

    pub(crate) fn new_in(base: &Path, name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = base.join(format!(
            "spots-store-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn addr(text: &str) -> Address {
    text.parse().unwrap()
}

type Device = SignalTransport<SqliteStore>;

fn open(path: &Path, who: &str) -> Device {
    let address = addr(who);
    SignalTransport::new(SqliteStore::open(path, &KEY, &address).unwrap(), address)
}

/// One one-time bundle of `device`, as the key server would hand it out.
fn bundle(device: &mut Device) -> PreKeyBundle {
    let report = device.ensure_ready(T0, &mut os_rng()).unwrap();
    let mut bundles = report.plan.bundles();
    bundles.one_time.pop().unwrap_or(bundles.last_resort)
}

fn send(from: &mut Device, to: &Address, text: &str) -> (u8, Vec<u8>) {
    let mut out = from
        .encrypt_to_agent(
            &to.agent_id,
            DeviceTarget::One(to.device_id),
            text.as_bytes(),
            T0,
        )
        .unwrap();
    let message = out.pop().unwrap();
    (message.message_type as u8, message.body)
}

fn receive(to: &mut Device, from: &Address, (kind, body): &(u8, Vec<u8>)) -> String {
    let got = to
        .decrypt_from_agent(from, *kind, body, T0, &mut os_rng())
        .unwrap();
    String::from_utf8(got.plaintext.to_vec()).unwrap()
}

fn digest(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

#[test]
fn conversation_survives_reopen() {
    let dir = TempDir::new("reopen");
    let (a, b) = (addr("alice.1"), addr("bob.1"));
    let mut alice = open(&dir.file("a.db"), "alice.1");
    let mut bob = open(&dir.file("b.db"), "bob.1");
    let bob_bundle = bundle(&mut bob);
    alice.ensure_ready(T0, &mut os_rng()).unwrap();
    alice
        .process_bundle(&b, &bob_bundle, T0, &mut os_rng())
        .unwrap();
    let first = send(&mut alice, &b, "hello bob");
    assert_eq!(first.0, 3);
    assert_eq!(receive(&mut bob, &a, &first), "hello bob");
    // The one-time prekey is gone with the session commit.
    assert!(
        bob.store()
            .pre_key(bob_bundle.pre_key.as_ref().unwrap().id)
            .unwrap()
            .is_none()
    );
    drop((alice, bob));

    let mut alice = open(&dir.file("a.db"), "alice.1");
    let mut bob = open(&dir.file("b.db"), "bob.1");
    let reply = send(&mut bob, &a, "hi alice");
    assert_eq!(reply.0, 2);
    assert_eq!(receive(&mut alice, &b, &reply), "hi alice");
    for i in 0..5 {
        let m = send(&mut alice, &b, &format!("m{i}"));
        assert_eq!(m.0, 2);
        assert_eq!(receive(&mut bob, &a, &m), format!("m{i}"));
    }
    // Replays are refused, and refusing changes nothing.
    let again = send(&mut alice, &b, "once");
    assert_eq!(receive(&mut bob, &a, &again), "once");
    let error = bob
        .decrypt_from_agent(&a, again.0, &again.1, T0, &mut os_rng())
        .unwrap_err();
    assert_eq!(error.class(), spots_core::ErrorClass::DuplicateMessage);
    assert_eq!(bob.store().schema_version().unwrap(), SCHEMA_VERSION);
    assert!(bob.safety_number(&a).is_ok());
}

#[test]
fn wrong_key_and_damage_are_typed_and_change_nothing() {
    let dir = TempDir::new("wrong");
    let path = dir.file("a.db");
    let mut alice = open(&path, "alice.1");
    alice.ensure_ready(T0, &mut os_rng()).unwrap();
    drop(alice);
    let before = digest(&path);

    let wrong = SqliteStore::open(&path, &[7; 32], &addr("alice.1")).unwrap_err();
    assert!(matches!(wrong, StoreError::WrongKey), "{wrong:?}");
    assert_eq!(digest(&path), before);

    let other = SqliteStore::open(&path, &KEY, &addr("alice.2")).unwrap_err();
    assert!(
        matches!(other, StoreError::AddressMismatch { .. }),
        "{other:?}"
    );
    assert_eq!(digest(&path), before);

    // A file that is not a database.
    let junk = dir.file("junk.db");
    std::fs::write(&junk, vec![0x5a; 8192]).unwrap();
    let error = SqliteStore::open(&junk, &KEY, &addr("alice.1")).unwrap_err();
    assert!(matches!(error, StoreError::Corrupt(_)), "{error:?}");
    assert_eq!(std::fs::read(&junk).unwrap(), vec![0x5a; 8192]);

    // Another application's database.
    let foreign = dir.file("foreign.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    let foreign_before = digest(&foreign);
    let error = SqliteStore::open(&foreign, &KEY, &addr("alice.1")).unwrap_err();
    assert!(matches!(error, StoreError::Corrupt(_)), "{error:?}");
    assert_eq!(digest(&foreign), foreign_before);

    // A newer schema.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99")
        .unwrap();
    let error = SqliteStore::open(&path, &KEY, &addr("alice.1")).unwrap_err();
    assert!(
        matches!(error, StoreError::TooNew { found: 99, .. }),
        "{error:?}"
    );
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 1")
        .unwrap();

    // A damaged row: reading it is a typed error, and nothing is deleted.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mut value: Vec<u8> = conn
        .query_row("SELECT value FROM records WHERE kind = 9", [], |r| r.get(0))
        .unwrap();
    value[20] ^= 0x01;
    conn.execute("UPDATE records SET value = ?1 WHERE kind = 9", [value])
        .unwrap();
    let rows: u32 = conn
        .query_row("SELECT count(*) FROM records", [], |r| r.get(0))
        .unwrap();
    drop(conn);
    let mut alice = open(&path, "alice.1");
    let error = alice.ensure_ready(T0, &mut os_rng()).unwrap_err();
    assert!(
        matches!(
            error,
            TransportError::Store(StoreError::CorruptRecord("prekey state"))
        ),
        "{error:?}"
    );
    drop(alice);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let after: u32 = conn
        .query_row("SELECT count(*) FROM records", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, after);

    // A row copied over another row of the same kind fails authentication.
    let session_rows: u32 = conn
        .query_row("SELECT count(*) FROM records WHERE kind = 3", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(session_rows >= 2);
    conn.execute(
        "UPDATE records SET value = (SELECT value FROM records WHERE kind = 3 ORDER BY key LIMIT 1) \
         WHERE kind = 3 AND key = (SELECT key FROM records WHERE kind = 3 ORDER BY key DESC LIMIT 1)",
        [],
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(&path, &KEY, &addr("alice.1")).unwrap();
    assert!(matches!(
        store.pre_key_ids().unwrap_err(),
        StoreError::CorruptRecord("prekey")
    ));
}

#[test]
fn a_commit_failing_halfway_leaves_the_previous_state() {
    let dir = TempDir::new("halfway");
    let (a, b) = (addr("alice.1"), addr("bob.1"));
    let mut alice = open(&dir.file("a.db"), "alice.1");
    let mut bob = open(&dir.file("b.db"), "bob.1");
    let bob_bundle = bundle(&mut bob);
    let prekey = bob_bundle.pre_key.as_ref().unwrap().id;
    alice.ensure_ready(T0, &mut os_rng()).unwrap();
    alice
        .process_bundle(&b, &bob_bundle, T0, &mut os_rng())
        .unwrap();
    let first = send(&mut alice, &b, "hello");

    // The storage fails at the last write of the batch (the device list, after the prekey
    // deletion, the session and the trust record were written).
    bob.store()
        .conn
        .execute_batch(
            "CREATE TEMP TRIGGER fail_device_list BEFORE INSERT ON records WHEN NEW.kind = 8 \
             BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
        )
        .unwrap();
    let error = bob
        .decrypt_from_agent(&a, first.0, &first.1, T0, &mut os_rng())
        .unwrap_err();
    assert!(
        matches!(error, TransportError::Store(StoreError::Io(_))),
        "{error:?}"
    );
    assert!(bob.store().pre_key(prekey).unwrap().is_some());
    assert!(bob.store().session(&a).unwrap().is_none());
    assert!(bob.store().trust(&a).unwrap().is_none());

    // Same inside an operation transaction (as the C ABI runs it).
    bob.store().begin_operation().unwrap();
    assert!(
        bob.decrypt_from_agent(&a, first.0, &first.1, T0, &mut os_rng())
            .is_err()
    );
    bob.store().abort_operation();
    assert!(bob.store().pre_key(prekey).unwrap().is_some());

    // Once the storage works again the same message decrypts.
    bob.store()
        .conn
        .execute_batch("DROP TRIGGER fail_device_list")
        .unwrap();
    assert_eq!(receive(&mut bob, &a, &first), "hello");
    assert!(bob.store().pre_key(prekey).unwrap().is_none());
    assert!(bob.store().trust(&a).unwrap().is_some());
}

#[test]
fn conflicting_batches_are_refused_whole() {
    let dir = TempDir::new("conflict");
    let mut alice = open(&dir.file("a.db"), "alice.1");
    alice.ensure_ready(T0, &mut os_rng()).unwrap();
    let identity = alice.store().local_identity().unwrap().unwrap();
    let ids = alice.store().pre_key_ids().unwrap();
    let mut store = alice.into_store();
    let error = store
        .commit(Changes {
            identity: Some(identity),
            ..Changes::default()
        })
        .unwrap_err();
    assert!(
        matches!(error, StoreError::Conflict("identity")),
        "{error:?}"
    );
    assert_eq!(store.pre_key_ids().unwrap(), ids);
}

/// The fixture written by schema version 1 (see `write_v1_fixture`).
const FIXTURE_DB: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/store-v1.sqlite"
);
const FIXTURE_JSON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/store-v1.json");

#[test]
fn opens_the_schema_v1_fixture() {
    // The fixture is written once, by schema version 1 (`SPOTS_WRITE_GENERATED=1` when it is
    // missing), and from then on every version must open it.
    if !Path::new(FIXTURE_DB).exists() && std::env::var_os("SPOTS_WRITE_GENERATED").is_some() {
        write_v1_fixture();
    }
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(FIXTURE_JSON).unwrap()).unwrap();
    let dir = TempDir::new("fixture");
    let path = dir.file("store.sqlite");
    std::fs::copy(FIXTURE_DB, &path).unwrap();
    let key: [u8; 32] = hex::decode(meta["store_key"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    let local = addr(meta["address"].as_str().unwrap());
    let peer = addr(meta["peer"].as_str().unwrap());
    let store = SqliteStore::open(&path, &key, &local).unwrap();
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let mut device = SignalTransport::new(store, local);
    let plan = device.current_publish_plan().unwrap();
    assert_eq!(
        hex::encode(plan.identity_key.serialize()),
        meta["identity_key"].as_str().unwrap()
    );
    let pending = &meta["pending"];
    let body = hex::decode(pending["body"].as_str().unwrap()).unwrap();
    let kind = u8::try_from(pending["type"].as_u64().unwrap()).unwrap();
    let got = device
        .decrypt_from_agent(&peer, kind, &body, T0, &mut os_rng())
        .unwrap();
    assert_eq!(
        got.plaintext.as_slice(),
        pending["plaintext"].as_str().unwrap().as_bytes()
    );
    assert!(device.trust(&peer).unwrap().is_some());
}

/// Writes `tests/fixtures/store-v1.{sqlite,json}` (schema version 1 only).
fn write_v1_fixture() {
    assert_eq!(SCHEMA_VERSION, 1, "the fixture is schema version 1's");
    let dir = TempDir::new("write-fixture");
    let path = dir.file("store.sqlite");
    let key = [0x5a; 32];
    let (a, b) = (addr("fixture-alice.1"), addr("fixture-bob.3"));
    let mut alice = SignalTransport::new(SqliteStore::open(&path, &key, &a).unwrap(), a.clone());
    let mut bob = SignalTransport::new(spots_core::MemoryStore::new(), b.clone());
    let alice_bundle = {
        let report = alice.ensure_ready(T0, &mut os_rng()).unwrap();
        report.plan.bundles().one_time.pop().unwrap()
    };
    bob.ensure_ready(T0, &mut os_rng()).unwrap();
    bob.process_bundle(&a, &alice_bundle, T0, &mut os_rng())
        .unwrap();
    let enc = |bob: &mut SignalTransport<spots_core::MemoryStore>, text: &str| {
        let m = bob
            .encrypt_to_agent(
                &a.agent_id,
                DeviceTarget::One(a.device_id),
                text.as_bytes(),
                T0,
            )
            .unwrap()
            .pop()
            .unwrap();
        (m.message_type as u8, m.body)
    };
    let first = enc(&mut bob, "fixture message 1");
    receive(&mut alice, &b, &first);
    let pending = enc(&mut bob, "fixture message 2");
    let identity = alice.current_publish_plan().unwrap().identity_key;
    drop(alice);
    // Fold the WAL into the main file so the fixture is one file.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE;")
        .unwrap();
    let out = Path::new(FIXTURE_DB);
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    std::fs::copy(&path, out).unwrap();
    let meta = serde_json::json!({
        "schema_version": 1,
        "store_key": hex::encode(key),
        "address": a.to_string(),
        "peer": b.to_string(),
        "identity_key": hex::encode(identity.serialize()),
        "pending": {"type": pending.0, "body": hex::encode(&pending.1), "plaintext": "fixture message 2"},
    });
    std::fs::write(
        FIXTURE_JSON,
        serde_json::to_string_pretty(&meta).unwrap() + "\n",
    )
    .unwrap();
}

#[test]
fn passes_the_core_store_conformance_checks() {
    let dir = TempDir::new("conformance");
    let mut next = 0;
    spots_core::store::conformance::check(|| {
        next += 1;
        SqliteStore::open(
            &dir.file(&format!("{next}.db")),
            &KEY,
            &addr("conformance.1"),
        )
        .unwrap()
    })
    .unwrap();
}
