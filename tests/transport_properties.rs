//! Property test across the facade with multi-device fan-out: two agents with two devices each,
//! user-level messages fanned out to every device, over a network that reorders (within a
//! window), drops, duplicates and corrupts envelopes. Every envelope delivered for the first
//! time decrypts exactly once to what was sent (unless its receiving chain was legitimately
//! evicted, which the model tracks), every duplicate and corrupted envelope is rejected, and a
//! rejected input or refused send leaves the store byte-identical.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

use std::collections::HashSet;

use proptest::prelude::*;
use spots_signal::keys::PublicKey;
use spots_signal::session::SessionRecord;
use spots_signal::transport::OutgoingMessage;
use spots_signal::wire::CiphertextMessage;
use spots_signal::{ErrorClass, ProtocolStore, TransportError};
use support::party::{Party, T0};

/// Devices: alice.1, alice.2, bob.1, bob.2. Only alice.1 and bob.1 write.
const NAMES: [&str; 4] = ["alice.1", "alice.2", "bob.1", "bob.2"];
const SENDERS: [usize; 2] = [0, 2];
/// How far a delivery may reach into a device's queue: bounded reordering.
const WINDOW: usize = 5;

#[derive(Clone, Debug)]
enum Action {
    Send(usize),
    Deliver(usize, usize),
    Duplicate(usize, usize),
    Drop(usize, usize),
    Tamper(usize, usize, usize),
}

fn action() -> impl Strategy<Value = Action> {
    let device = 0..NAMES.len();
    prop_oneof![
        5 => (0..SENDERS.len()).prop_map(|i| Action::Send(SENDERS[i])),
        8 => (device.clone(), any::<usize>()).prop_map(|(d, i)| Action::Deliver(d, i)),
        2 => (device.clone(), any::<usize>()).prop_map(|(d, i)| Action::Duplicate(d, i)),
        1 => (device.clone(), any::<usize>()).prop_map(|(d, i)| Action::Drop(d, i)),
        2 => (device, any::<usize>(), any::<usize>()).prop_map(|(d, i, b)| Action::Tamper(d, i, b)),
    ]
}

#[derive(Clone, Debug)]
struct Envelope {
    from: usize,
    message: OutgoingMessage,
    plaintext: Vec<u8>,
    ratchet_key: PublicKey,
}

struct World {
    parties: Vec<Party>,
    inbox: Vec<Vec<Envelope>>,
    received: Vec<Vec<Envelope>>,
    /// (receiver, sender, ratchet key) of every receiving chain a receiver has had.
    seen_chains: HashSet<(usize, usize, PublicKey)>,
}

fn chains(record: &SessionRecord) -> HashSet<PublicKey> {
    let snapshot = record.inspect();
    snapshot
        .current_session
        .iter()
        .chain(&snapshot.archived_sessions)
        .flat_map(|state| state.receiver_chains.iter().map(|chain| chain.ratchet_key))
        .collect()
}

impl World {
    fn new(seed: u64) -> Self {
        let mut parties: Vec<Party> = NAMES
            .iter()
            .enumerate()
            .map(|(i, name)| Party::new(name, seed.wrapping_add(i as u64)))
            .collect();
        // alice.1 initiates with everyone; bob.1 with the devices alice.1 does not reach
        // first from his side (no pair starts sessions from both ends at once).
        for (from, to) in [(0, 1), (0, 2), (0, 3), (2, 1), (2, 3)] {
            let (a, b) = pair(&mut parties, from, to);
            a.connect(b, T0);
        }
        // The server tells bob.1 that alice has devices 1 and 2 (Sesame's device list); he
        // has no session with alice.1 until her first message arrives.
        let alice = parties[0].address().agent_id;
        let devices = [1, 2].map(|d| spots_signal::DeviceId::new(d).unwrap());
        parties[2]
            .transport
            .update_device_list(&alice, &devices)
            .unwrap();
        Self {
            parties,
            inbox: vec![Vec::new(); NAMES.len()],
            received: vec![Vec::new(); NAMES.len()],
            seen_chains: HashSet::new(),
        }
    }

    fn live_chains(&self, to: usize, from: usize) -> HashSet<PublicKey> {
        let address = self.parties[from].address();
        self.parties[to]
            .transport
            .store()
            .session(&address)
            .unwrap()
            .map(|record| chains(&record))
            .unwrap_or_default()
    }

    fn evicted(&self, to: usize, envelope: &Envelope) -> bool {
        self.seen_chains
            .contains(&(to, envelope.from, envelope.ratchet_key))
            && !self
                .live_chains(to, envelope.from)
                .contains(&envelope.ratchet_key)
    }

    /// Delivers `body`; on failure checks that the store did not change.
    fn deliver(
        &mut self,
        to: usize,
        envelope: &Envelope,
        body: &[u8],
    ) -> Result<Vec<u8>, ErrorClass> {
        let from = self.parties[envelope.from].address();
        let before = self.parties[to].snapshot();
        let party = &mut self.parties[to];
        match party.transport.decrypt_from_agent(
            &from,
            envelope.message.message_type as u8,
            body,
            T0,
            &mut party.rng,
        ) {
            Ok(got) => {
                assert_eq!(got.sender, from);
                assert!(!got.identity_changed);
                for key in self.live_chains(to, envelope.from) {
                    self.seen_chains.insert((to, envelope.from, key));
                }
                Ok(got.plaintext.to_vec())
            }
            Err(error) => {
                assert_eq!(
                    self.parties[to].snapshot(),
                    before,
                    "rejected input changed state"
                );
                Err(error.class())
            }
        }
    }

    fn deliver_fresh(&mut self, to: usize, envelope: Envelope) {
        let evicted = self.evicted(to, &envelope);
        let body = envelope.message.body.clone();
        match self.deliver(to, &envelope, &body) {
            Ok(plaintext) => {
                assert!(!evicted, "a message on an evicted chain decrypted");
                assert_eq!(plaintext, envelope.plaintext);
                self.received[to].push(envelope);
            }
            Err(class) => assert!(
                evicted,
                "fresh message to {} rejected: {class:?}",
                NAMES[to]
            ),
        }
    }

    fn send(&mut self, from: usize, counter: u32) {
        let peer = if from == 0 { 2 } else { 0 };
        let plaintext = format!(
            "{} #{counter} {}",
            NAMES[from],
            "y".repeat(counter as usize % 50)
        );
        let (sender, receiver) = pair(&mut self.parties, from, peer);
        let before = sender.snapshot();
        match sender.send_all(receiver, plaintext.as_bytes(), T0) {
            Ok(messages) => {
                // Fan-out: the peer agent's devices and the sender's other device, each once.
                let mut destinations: Vec<String> =
                    messages.iter().map(|m| m.destination.to_string()).collect();
                destinations.sort();
                let mut expected: Vec<String> = (0..NAMES.len())
                    .filter(|d| *d != from)
                    .map(|d| NAMES[d].to_owned())
                    .collect();
                expected.sort();
                assert_eq!(destinations, expected);
                for message in messages {
                    let to = NAMES
                        .iter()
                        .position(|n| *n == message.destination.to_string())
                        .unwrap();
                    let parsed =
                        CiphertextMessage::decode(message.message_type, &message.body).unwrap();
                    let ratchet_key = match &parsed {
                        CiphertextMessage::Whisper(m) => *m.ratchet_key(),
                        CiphertextMessage::PreKey(m) => *m.message().ratchet_key(),
                    };
                    self.inbox[to].push(Envelope {
                        from,
                        message,
                        plaintext: plaintext.clone().into_bytes(),
                        ratchet_key,
                    });
                }
            }
            // bob.1 knows alice.1's device only after her first message arrives.
            Err(TransportError::MissingSessions { addresses, .. }) => {
                assert_eq!(from, 2);
                assert_eq!(addresses, vec![self.parties[0].address()]);
                assert_eq!(self.parties[from].snapshot(), before);
            }
            Err(other) => panic!("send failed: {other:?}"),
        }
    }
}

/// Two distinct parties mutably.
fn pair(parties: &mut [Party], a: usize, b: usize) -> (&mut Party, &mut Party) {
    assert_ne!(a, b);
    if a < b {
        let (left, right) = parties.split_at_mut(b);
        (&mut left[a], &mut right[0])
    } else {
        let (left, right) = parties.split_at_mut(a);
        (&mut right[0], &mut left[b])
    }
}

fn run(seed: u64, actions: &[Action]) {
    let mut world = World::new(seed);
    let mut counter = 0;
    for action in actions {
        match *action {
            Action::Send(from) => {
                counter += 1;
                world.send(from, counter);
            }
            Action::Deliver(to, pick) => {
                if world.inbox[to].is_empty() {
                    continue;
                }
                let index = pick % world.inbox[to].len().min(WINDOW);
                let envelope = world.inbox[to].remove(index);
                world.deliver_fresh(to, envelope);
            }
            Action::Duplicate(to, pick) => {
                if world.received[to].is_empty() {
                    continue;
                }
                let envelope = world.received[to][pick % world.received[to].len()].clone();
                let alive = world
                    .live_chains(to, envelope.from)
                    .contains(&envelope.ratchet_key);
                let body = envelope.message.body.clone();
                let class = world.deliver(to, &envelope, &body).unwrap_err();
                if alive {
                    assert_eq!(class, ErrorClass::DuplicateMessage);
                }
            }
            Action::Drop(to, pick) => {
                if !world.inbox[to].is_empty() {
                    let index = pick % world.inbox[to].len();
                    world.inbox[to].remove(index);
                }
            }
            Action::Tamper(to, pick, byte) => {
                if world.inbox[to].is_empty() {
                    continue;
                }
                let envelope = world.inbox[to][pick % world.inbox[to].len()].clone();
                let mut body = envelope.message.body.clone();
                let index = byte % body.len();
                body[index] ^= 1 << (byte % 8);
                // A flipped bit may land in a field the MAC does not cover only for PreKey
                // framing that changes nothing decryptable; any acceptance must then still
                // yield exactly the sent plaintext.
                if let Ok(plaintext) = world.deliver(to, &envelope, &body) {
                    assert_eq!(plaintext, envelope.plaintext, "corruption at byte {index}");
                    world.inbox[to].retain(|e| e.message.body != envelope.message.body);
                    world.received[to].push(envelope);
                }
            }
        }
    }
    // Flush: everything still queued arrives, in order.
    for to in 0..NAMES.len() {
        for envelope in std::mem::take(&mut world.inbox[to]) {
            world.deliver_fresh(to, envelope);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn fan_out_over_a_lossy_network(seed in any::<u64>(), actions in prop::collection::vec(action(), 1..80)) {
        run(seed, &actions);
    }
}

/// A fixed run that exercises every action many times.
#[test]
fn fixed_fan_out_conversation() {
    let mut actions = Vec::new();
    for round in 0..40usize {
        actions.push(Action::Send(SENDERS[round % 2]));
        actions.push(Action::Deliver(round % 4, round * 7));
        actions.push(Action::Deliver((round + 1) % 4, round * 3));
        actions.push(Action::Deliver((round + 2) % 4, round));
        if round % 5 == 0 {
            actions.push(Action::Duplicate(round % 4, round));
            actions.push(Action::Tamper((round + 3) % 4, round, round * 11));
        }
        if round % 9 == 0 {
            actions.push(Action::Drop((round + 1) % 4, round));
        }
    }
    run(7, &actions);
}
