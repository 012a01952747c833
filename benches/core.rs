//! Criterion benchmarks of the core (`./x bench`): 1 KiB messages on an established chain
//! (one way and ping-pong), session establishment (bundle processing + first encrypt + first
//! decrypt, with Kyber and a one-time prekey), safety numbers and XEdDSA. BENCHMARKS.md records
//! the figures.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use spots_signal::fingerprint::{DEFAULT_ITERATIONS, Fingerprint};
use spots_signal::keys::{
    IdentityKeyPair, KyberPreKeyId, KyberPreKeyRecord, PreKeyId, PreKeyRecord, RegistrationId,
    SignedPreKeyId, SignedPreKeyRecord,
};
use spots_signal::pqxdh::{PreKeyBundle, SessionOptions};
use spots_signal::wire::CiphertextMessage;
use spots_signal::{
    PreKeyLookup, SessionRecord, Timestamp, decrypt_prekey_message, decrypt_signal_message,
    encrypt, process_prekey_bundle,
};

const NOW: Timestamp = Timestamp::from_millis(1_700_000_000_000);

/// Bob's prekeys for the PreKey-message path.
struct BobKeys {
    signed: SignedPreKeyRecord,
    one_time: PreKeyRecord,
    kyber: KyberPreKeyRecord,
}

impl PreKeyLookup for BobKeys {
    fn signed_pre_key(&self, id: SignedPreKeyId) -> Option<SignedPreKeyRecord> {
        (self.signed.id() == id).then(|| self.signed.clone())
    }
    fn one_time_pre_key(&self, id: PreKeyId) -> Option<PreKeyRecord> {
        (self.one_time.id() == id).then(|| self.one_time.clone())
    }
    fn kyber_pre_key(&self, id: KyberPreKeyId) -> Option<KyberPreKeyRecord> {
        (self.kyber.id() == id).then(|| self.kyber.clone())
    }
}

struct Setup {
    alice: IdentityKeyPair,
    bob: IdentityKeyPair,
    keys: BobKeys,
    bundle: PreKeyBundle,
    rng: ChaCha20Rng,
}

fn setup() -> Setup {
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let alice = IdentityKeyPair::generate(&mut rng);
    let bob = IdentityKeyPair::generate(&mut rng);
    let keys = BobKeys {
        signed: SignedPreKeyRecord::generate(SignedPreKeyId(1), &bob, NOW, &mut rng),
        one_time: PreKeyRecord::generate(PreKeyId(1), &mut rng),
        kyber: KyberPreKeyRecord::generate(KyberPreKeyId(1), &bob, NOW, false, &mut rng),
    };
    let bundle = PreKeyBundle::from_records(
        RegistrationId(2),
        1,
        *bob.identity_key(),
        &keys.signed,
        Some(&keys.one_time),
        Some(&keys.kyber),
    );
    Setup {
        alice,
        bob,
        keys,
        bundle,
        rng,
    }
}

/// Bundle processing, Alice's first message and Bob's decryption of it.
fn establish(s: &mut Setup) -> (SessionRecord, SessionRecord) {
    let record = process_prekey_bundle(
        None,
        &s.alice,
        RegistrationId(1),
        &s.bundle,
        SessionOptions::default(),
        NOW,
        &mut s.rng,
    )
    .unwrap();
    let (alice_record, message) = encrypt(
        &record,
        s.alice.identity_key(),
        s.bob.identity_key(),
        b"hello",
        NOW,
    )
    .unwrap();
    let CiphertextMessage::PreKey(message) = message else {
        unreachable!("the first message is a PreKey message")
    };
    let outcome = decrypt_prekey_message(
        None,
        &s.bob,
        RegistrationId(2),
        &message,
        &s.keys,
        SessionOptions::default(),
        &mut s.rng,
    )
    .unwrap();
    (alice_record, outcome.record)
}

/// Encrypts on one side and decrypts on the other, returning both updated records.
fn hop(
    s: &mut Setup,
    sender: &SessionRecord,
    receiver: &SessionRecord,
    from_alice: bool,
    payload: &[u8],
) -> (SessionRecord, SessionRecord) {
    let (from, to) = if from_alice {
        (&s.alice, &s.bob)
    } else {
        (&s.bob, &s.alice)
    };
    let (sender, message) =
        encrypt(sender, from.identity_key(), to.identity_key(), payload, NOW).unwrap();
    let CiphertextMessage::Whisper(message) = message else {
        unreachable!("acknowledged sessions send Whisper messages")
    };
    let (receiver, plaintext) = decrypt_signal_message(receiver, &message, &mut s.rng).unwrap();
    black_box(plaintext);
    (sender, receiver)
}

fn messages(c: &mut Criterion) {
    let payload = vec![0x5A; 1024];
    let mut s = setup();
    let (alice, bob) = establish(&mut s);
    // Acknowledge the session so both sides send Whisper messages.
    let (bob, alice) = hop(&mut s, &bob, &alice, false, b"ack");
    let mut group = c.benchmark_group("message_1KiB");
    group.throughput(Throughput::Bytes(1024));
    let (mut a, mut b) = (alice.clone(), bob.clone());
    group.bench_function("encrypt_decrypt_one_way", |bench| {
        bench.iter(|| {
            let (next_a, next_b) = hop(&mut s, &a, &b, true, &payload);
            a = next_a;
            b = next_b;
        });
    });
    let (mut a, mut b) = (alice, bob);
    let mut alice_turn = true;
    group.bench_function("encrypt_decrypt_ping_pong", |bench| {
        bench.iter(|| {
            if alice_turn {
                (a, b) = hop(&mut s, &a, &b, true, &payload);
            } else {
                (b, a) = hop(&mut s, &b, &a, false, &payload);
            }
            alice_turn = !alice_turn;
        });
    });
    group.finish();
}

fn establishment(c: &mut Criterion) {
    let mut s = setup();
    c.bench_function("session_establishment_pqxdh_otpk", |bench| {
        bench.iter(|| black_box(establish(&mut s)));
    });
}

fn safety_number(c: &mut Criterion) {
    let s = setup();
    c.bench_function("safety_number_v2_5200", |bench| {
        bench.iter(|| {
            black_box(
                Fingerprint::new(
                    2,
                    DEFAULT_ITERATIONS,
                    b"alice-agent",
                    s.alice.identity_key(),
                    b"bob-agent",
                    s.bob.identity_key(),
                )
                .unwrap(),
            )
        });
    });
}

fn xeddsa(c: &mut Criterion) {
    let mut s = setup();
    let message = s.keys.signed.public_key().serialize();
    let signature = s.bob.sign(&message, &mut s.rng);
    let mut group = c.benchmark_group("xeddsa");
    group.bench_function("sign", |bench| {
        bench.iter(|| black_box(s.bob.sign(black_box(&message), &mut s.rng)));
    });
    group.bench_function("verify", |bench| {
        bench.iter(|| {
            assert!(
                s.bob
                    .identity_key()
                    .verify_signature(black_box(&message), &signature)
            );
        });
    });
    group.finish();
}

criterion_group!(benches, messages, establishment, safety_number, xeddsa);
criterion_main!(benches);
