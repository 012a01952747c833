//! Criterion benchmarks of the community crypto (`./x bench community`): per-message encrypt
//! cost for communities of 2, 100 and 10,000 members (both schemes, through the facade with
//! every member's chain in the store), share fan-out to 1,000 member devices (fresh bundles and
//! established sessions), and sender-chain encrypt/decrypt in steady state and after a
//! 1,000-message jump. BENCHMARKS.md ("Community") records the figures.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion, criterion_group, criterion_main};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use spots_signal::community::share::SharePayload;
use spots_signal::community::{
    CommunityId, EpochId, EpochInfo, RotationKind, decrypt_sender_chain_blob,
    encrypt_sender_chain_blob,
};
use spots_signal::keys::{
    IdentityKeyPair, KyberPreKeyId, KyberPreKeyRecord, RegistrationId, SignedPreKeyId,
    SignedPreKeyRecord,
};
use spots_signal::pqxdh::PreKeyBundle;
use spots_signal::prekey_lifecycle::PreKeyPolicy;
use spots_signal::sender_keys::{
    SenderKeyLimits, SenderKeyRecord, create_distribution_message, process_distribution_message,
};
use spots_signal::store::{Changes, ProtocolStore};
use spots_signal::transport::TransportConfig;
use spots_signal::wire::SenderKeyDistributionMessage;
use spots_signal::{Address, MemoryStore, SignalTransport, Timestamp};

const NOW: Timestamp = Timestamp::from_millis(1_700_000_000_000);

/// `cargo test --all-targets` runs each benchmark once in criterion's test mode, in a debug
/// build: there the sizes shrink (10 devices, communities of at most 100) so the test suite
/// stays fast. `cargo bench` always uses the full sizes.
fn test_mode() -> bool {
    std::env::args().any(|arg| arg == "--test")
}

fn config() -> TransportConfig {
    TransportConfig {
        prekey_policy: PreKeyPolicy {
            one_time_batch: 1,
            one_time_threshold: 1,
            ..PreKeyPolicy::default()
        },
        ..TransportConfig::default()
    }
}

/// A ready sender device "admin.1" that created the community's epoch.
fn sender(rng: &mut ChaCha20Rng) -> (SignalTransport<MemoryStore>, CommunityId, EpochId) {
    let mut transport =
        SignalTransport::with_config(MemoryStore::new(), "admin.1".parse().unwrap(), config());
    transport.ensure_ready(NOW, rng).unwrap();
    let id = CommunityId::random(rng);
    let info = EpochInfo::from_server_row(id, 1, NOW, RotationKind::Hard, None);
    transport.rotate_community(id, info, NOW, rng).unwrap();
    (transport, id, info.key_id)
}

fn member(i: usize) -> Address {
    format!("member{i}.1").parse().unwrap()
}

/// The admin's store holding the received sender chains of `members - 1` other members.
fn community_of(
    members: usize,
    with_own_chain: bool,
) -> (SignalTransport<MemoryStore>, CommunityId, ChaCha20Rng) {
    let mut rng = ChaCha20Rng::seed_from_u64(members as u64);
    let (transport, id, epoch) = sender(&mut rng);
    let signing = IdentityKeyPair::generate(&mut rng);
    let chains: Vec<((Address, EpochId), SenderKeyRecord)> = (1..members)
        .map(|i| {
            let message = SenderKeyDistributionMessage::new(
                *epoch.as_bytes(),
                u32::try_from(i).unwrap(),
                0,
                &[7; 32],
                *signing.identity_key().public_key(),
            );
            let record = process_distribution_message(
                None,
                epoch.uuid(),
                &message,
                SenderKeyLimits::default(),
            )
            .unwrap();
            ((member(i), epoch), record)
        })
        .collect();
    let mut store = transport.into_store();
    store
        .commit(Changes {
            sender_keys: chains,
            ..Changes::default()
        })
        .unwrap();
    let mut transport = SignalTransport::with_config(store, "admin.1".parse().unwrap(), config());
    if with_own_chain {
        transport
            .start_sender_chain(id, epoch, NOW, &mut rng)
            .unwrap();
    }
    (transport, id, rng)
}

fn per_message_encrypt(c: &mut Criterion) {
    let payload = vec![0x42u8; 256];
    let mut group = c.benchmark_group("community_encrypt_256B");
    let sizes: &[usize] = if test_mode() {
        &[2, 100]
    } else {
        &[2, 100, 10_000]
    };
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for &members in sizes {
        for (scheme, own_chain) in [("epoch", false), ("sender_chain", true)] {
            let (mut transport, id, mut rng) = community_of(members, own_chain);
            group.bench_with_input(BenchmarkId::new(scheme, members), &members, |b, _| {
                b.iter(|| {
                    black_box(
                        transport
                            .community_encrypt(id, &payload, NOW, &mut rng)
                            .unwrap(),
                    )
                });
            });
        }
    }
    group.finish();
}

/// A bundle for `member(i)` (identity, signed prekey, last-resort Kyber key).
fn bundle(i: usize, rng: &mut ChaCha20Rng) -> PreKeyBundle {
    let identity = IdentityKeyPair::generate(rng);
    let signed = SignedPreKeyRecord::generate(SignedPreKeyId(1), &identity, NOW, rng);
    let kyber = KyberPreKeyRecord::generate(KyberPreKeyId(1), &identity, NOW, true, rng);
    PreKeyBundle::from_records(
        RegistrationId(u32::try_from(i).unwrap()),
        1,
        *identity.identity_key(),
        &signed,
        None,
        Some(&kyber),
    )
}

fn share_fan_out(c: &mut Criterion) {
    let devices: usize = if test_mode() { 10 } else { 1000 };
    let mut rng = ChaCha20Rng::seed_from_u64(1000);
    let (transport, id, epoch) = sender(&mut rng);
    let key = transport
        .community_state(id)
        .unwrap()
        .unwrap()
        .epoch_key(epoch)
        .unwrap()
        .clone();
    let payload = SharePayload::epoch_key(id, epoch, &key, NOW);
    let recipients: Vec<(Address, Option<PreKeyBundle>)> = (0..devices)
        .map(|i| (member(i), Some(bundle(i, &mut rng))))
        .collect();
    let pristine = transport.into_store();
    let fresh =
        || SignalTransport::with_config(pristine.clone(), "admin.1".parse().unwrap(), config());

    let mut group = c.benchmark_group("share_fan_out_1000_devices");
    group.warm_up_time(Duration::from_secs(1));
    group.sample_size(10);
    group.bench_function("fresh_bundles", |b| {
        b.iter_batched(
            fresh,
            |mut transport| {
                black_box(
                    transport
                        .create_shares(&recipients, &payload, NOW, &mut rng)
                        .unwrap(),
                )
            },
            BatchSize::PerIteration,
        );
    });
    let mut established = fresh();
    established
        .create_shares(&recipients, &payload, NOW, &mut rng)
        .unwrap();
    let sessions: Vec<(Address, Option<PreKeyBundle>)> =
        (0..devices).map(|i| (member(i), None)).collect();
    group.bench_function("established_sessions", |b| {
        b.iter(|| {
            black_box(
                established
                    .create_shares(&sessions, &payload, NOW, &mut rng)
                    .unwrap(),
            )
        });
    });
    group.finish();
}

fn sender_chain(c: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let id = CommunityId::random(&mut rng);
    let epoch = EpochId::for_server_epoch(id, 1);
    let alice: Address = "alice.1".parse().unwrap();
    let limits = SenderKeyLimits::default();
    let (own, skdm) = create_distribution_message(None, epoch.uuid(), &mut rng).unwrap();
    let receiver = process_distribution_message(None, epoch.uuid(), &skdm, limits).unwrap();
    let payload = vec![0x42u8; 256];

    let mut group = c.benchmark_group("sender_chain_256B");
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    let mut sending = own.clone();
    group.bench_function("encrypt_steady", |b| {
        b.iter(|| {
            let (next, blob) =
                encrypt_sender_chain_blob(&sending, id, epoch, &alice, NOW, &payload, &mut rng)
                    .unwrap();
            sending = next;
            black_box(blob)
        });
    });
    let (_, first) =
        encrypt_sender_chain_blob(&own, id, epoch, &alice, NOW, &payload, &mut rng).unwrap();
    group.bench_function("decrypt_steady", |b| {
        b.iter(|| {
            black_box(
                decrypt_sender_chain_blob(Some(&receiver), id, epoch, &alice, &first, limits)
                    .unwrap(),
            )
        });
    });
    // A message 1,000 iterations ahead of the receiver: 1,000 chain steps and 1,000 stored keys.
    let mut ahead = own;
    for _ in 0..1000 {
        ahead = encrypt_sender_chain_blob(&ahead, id, epoch, &alice, NOW, &payload, &mut rng)
            .unwrap()
            .0;
    }
    let (_, jumped) =
        encrypt_sender_chain_blob(&ahead, id, epoch, &alice, NOW, &payload, &mut rng).unwrap();
    group.bench_function("decrypt_after_1000_jump", |b| {
        b.iter(|| {
            let (record, _, plaintext) =
                decrypt_sender_chain_blob(Some(&receiver), id, epoch, &alice, &jumped, limits)
                    .unwrap();
            assert_eq!(record.current().unwrap().skipped_key_count(), 1000);
            black_box(plaintext)
        });
    });
    group.finish();
}

criterion_group!(benches, per_message_encrypt, share_fan_out, sender_chain);
criterion_main!(benches);
