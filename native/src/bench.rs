//! The cost of one encrypt + decrypt through the C ABI with the encrypted SQLite store, next to
//! the same through the in-memory core. A criterion benchmark inside a test (the crate is not an
//! rlib, see Cargo.toml): under plain `cargo test` it runs a short smoke measurement (every
//! iteration still encrypts and decrypts for real); `./x bench native` sets `SPOTS_BENCH=1` for
//! the full measurement (`SPOTS_BENCH=1 cargo test --release -p spots-signal-ffi --lib
//! encrypt_decrypt -- --nocapture`).
//! `SPOTS_BENCH_DIR` chooses where the store files go (default: the system temp folder).

use std::ffi::CString;
use std::path::Path;
use std::time::Duration;

use criterion::Criterion;
use spots_core::store::ProtocolStore;
use spots_core::{Address, DeviceTarget, MemoryStore, SignalTransport, Timestamp};

use crate::buffer::{SpotsBuffer, spots_buffer_free};
use crate::dm::{spots_decrypt_from_agent, spots_encrypt_to_agent, spots_process_bundle};
use crate::error::SpotsStatus;
use crate::handle::{SpotsTransport, os_rng, spots_transport_close, spots_transport_open};
use crate::store::tests::TempDir;

const NOW: u64 = 1_800_000_000_000;
const TEXT: &[u8] = b"a typical short chat message, about eighty bytes long, with an emoji or two";

fn criterion() -> Criterion {
    if std::env::var_os("SPOTS_BENCH").is_some() {
        Criterion::default()
            .sample_size(40)
            .warm_up_time(Duration::from_secs(2))
            .measurement_time(Duration::from_secs(8))
    } else {
        Criterion::default()
            .sample_size(10)
            .warm_up_time(Duration::from_millis(10))
            .measurement_time(Duration::from_millis(100))
            .without_plots()
    }
}

fn pair_in_memory() -> (SignalTransport<MemoryStore>, SignalTransport<MemoryStore>) {
    let (a, b): (Address, Address) = ("alice.1".parse().unwrap(), "bob.1".parse().unwrap());
    let mut alice = SignalTransport::new(MemoryStore::new(), a.clone());
    let mut bob = SignalTransport::new(MemoryStore::new(), b.clone());
    let t = Timestamp::from_millis(NOW);
    alice.ensure_ready(t, &mut os_rng()).unwrap();
    let bundle = bob
        .ensure_ready(t, &mut os_rng())
        .unwrap()
        .plan
        .bundles()
        .last_resort;
    alice.process_bundle(&b, &bundle, t, &mut os_rng()).unwrap();
    // The first message (PreKey) and a reply, so the measured messages are ordinary (Whisper)
    // ones: until a sender hears back, every message it sends is a PreKey message.
    let m = alice
        .encrypt_to_agent(&b.agent_id, DeviceTarget::One(b.device_id), b"hi", t)
        .unwrap()
        .pop()
        .unwrap();
    bob.decrypt_from_agent(&a, m.message_type as u8, &m.body, t, &mut os_rng())
        .unwrap();
    let reply = bob
        .encrypt_to_agent(&a.agent_id, DeviceTarget::One(a.device_id), b"hello", t)
        .unwrap()
        .pop()
        .unwrap();
    alice
        .decrypt_from_agent(&b, reply.message_type as u8, &reply.body, t, &mut os_rng())
        .unwrap();
    (alice, bob)
}

fn open(path: &Path, key: u8, agent: &str) -> *mut SpotsTransport {
    let path = CString::new(path.to_str().unwrap()).unwrap();
    let agent = CString::new(agent).unwrap();
    let key = [key; 32];
    let mut handle = core::ptr::null_mut();
    // SAFETY: valid strings, a 32-byte key and a writable out-pointer.
    let status = unsafe {
        spots_transport_open(
            path.as_ptr(),
            key.as_ptr(),
            32,
            agent.as_ptr(),
            1,
            &mut handle,
        )
    };
    assert_eq!(status, SpotsStatus::Ok);
    handle
}

fn take(buffer: &mut SpotsBuffer) -> Vec<u8> {
    let bytes = if buffer.data.is_null() {
        Vec::new()
    } else {
        // SAFETY: a buffer filled by the library: `len` bytes at `data`.
        unsafe { core::slice::from_raw_parts(buffer.data, buffer.len) }.to_vec()
    };
    // SAFETY: the buffer was filled by the library and is freed once.
    unsafe { spots_buffer_free(buffer) };
    bytes
}

/// Encrypts through the C ABI and decodes the JSON as an app would.
fn encrypt(from: *const SpotsTransport, to: &CString, text: &[u8]) -> (u8, Vec<u8>) {
    let mut out = SpotsBuffer::EMPTY;
    // SAFETY: an open handle, valid strings and buffers.
    let status = unsafe {
        spots_encrypt_to_agent(
            from,
            to.as_ptr(),
            1,
            text.as_ptr(),
            text.len(),
            NOW,
            &mut out,
        )
    };
    assert_eq!(status, SpotsStatus::Ok);
    let json: serde_json::Value = serde_json::from_slice(&take(&mut out)).unwrap();
    let m = &json[0];
    (
        u8::try_from(m["type"].as_u64().unwrap()).unwrap(),
        hex::decode(m["body"].as_str().unwrap()).unwrap(),
    )
}

fn decrypt(to: *const SpotsTransport, from: &CString, (kind, body): &(u8, Vec<u8>)) -> Vec<u8> {
    let mut out = SpotsBuffer::EMPTY;
    let mut flags = 0;
    // SAFETY: an open handle, valid strings and buffers.
    let status = unsafe {
        spots_decrypt_from_agent(
            to,
            from.as_ptr(),
            1,
            *kind,
            body.as_ptr(),
            body.len(),
            NOW,
            &mut out,
            &mut flags,
        )
    };
    assert_eq!(status, SpotsStatus::Ok);
    take(&mut out)
}

fn pair_on_disk(dir: &TempDir) -> (*mut SpotsTransport, *mut SpotsTransport) {
    let alice = open(&dir.file("alice.db"), 1, "alice");
    let bob = open(&dir.file("bob.db"), 2, "bob");
    // SAFETY: open handles.
    let (alice_ref, bob_ref) = unsafe { (&*alice, &*bob) };
    let t = Timestamp::from_millis(NOW);
    alice_ref.lock().ensure_ready(t, &mut os_rng()).unwrap();
    let bundle = bob_ref
        .lock()
        .ensure_ready(t, &mut os_rng())
        .unwrap()
        .plan
        .bundles()
        .last_resort;
    let json = serde_json::to_vec(&bundle).unwrap();
    let bob_agent = CString::new("bob").unwrap();
    let mut out = SpotsBuffer::EMPTY;
    // SAFETY: an open handle, valid strings and buffers.
    let status = unsafe {
        spots_process_bundle(
            alice,
            bob_agent.as_ptr(),
            1,
            json.as_ptr(),
            json.len(),
            NOW,
            &mut out,
        )
    };
    assert_eq!(status, SpotsStatus::Ok);
    take(&mut out);
    let alice_agent = CString::new("alice").unwrap();
    let first = encrypt(alice, &bob_agent, b"hi");
    decrypt(bob, &alice_agent, &first);
    let reply = encrypt(bob, &alice_agent, b"hello");
    decrypt(alice, &bob_agent, &reply);
    // From here on alice sends ordinary (Whisper) messages.
    let ordinary = encrypt(alice, &bob_agent, b"x");
    assert_eq!(ordinary.0, 2);
    decrypt(bob, &alice_agent, &ordinary);
    assert!(
        bob_ref
            .lock()
            .store()
            .session(&"alice.1".parse().unwrap())
            .unwrap()
            .is_some()
    );
    (alice, bob)
}

#[test]
fn encrypt_decrypt_through_the_store_and_in_memory() {
    let mut c = criterion();
    let (mut alice, mut bob) = pair_in_memory();
    let (a, b): (Address, Address) = ("alice.1".parse().unwrap(), "bob.1".parse().unwrap());
    let t = Timestamp::from_millis(NOW);
    c.bench_function("in-memory core: encrypt + decrypt", |bench| {
        bench.iter(|| {
            let m = alice
                .encrypt_to_agent(&b.agent_id, DeviceTarget::One(b.device_id), TEXT, t)
                .unwrap()
                .pop()
                .unwrap();
            bob.decrypt_from_agent(&a, m.message_type as u8, &m.body, t, &mut os_rng())
                .unwrap()
        });
    });

    let base = std::env::var_os("SPOTS_BENCH_DIR");
    let places: Vec<(&str, Option<std::path::PathBuf>)> = vec![
        ("temp folder", base.map(Into::into)),
        ("tmpfs /dev/shm (no fsync cost)", Some("/dev/shm".into())),
    ];
    let alice_agent = CString::new("alice").unwrap();
    let bob_agent = CString::new("bob").unwrap();
    for (label, place) in places {
        if place.as_ref().is_some_and(|place| !place.is_dir()) {
            continue;
        }
        let dir = match &place {
            Some(place) => TempDir::new_in(place, "bench"),
            None => TempDir::new("bench"),
        };
        let (alice, bob) = pair_on_disk(&dir);
        c.bench_function(
            &format!("C ABI + SQLite store ({label}): encrypt + decrypt"),
            |bench| {
                bench.iter(|| {
                    let m = encrypt(alice, &bob_agent, TEXT);
                    decrypt(bob, &alice_agent, &m)
                });
            },
        );
        // SAFETY: handles opened above, closed once.
        unsafe {
            spots_transport_close(alice);
            spots_transport_close(bob);
        }
    }
    c.final_summary();
}
