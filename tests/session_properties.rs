//! Property test: a long two-party conversation over a network that reorders, drops,
//! duplicates and corrupts messages. Every message delivered for the first time decrypts
//! exactly once (unless its receiving chain was legitimately evicted, which the model tracks),
//! every duplicate or corrupted input is rejected, and a rejected input never changes state.
// Test code: panicking on unexpected results is the point.
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
use spots_signal::persist::Persist;
use spots_signal::wire::{CiphertextMessage, CiphertextMessageType};
use spots_signal::{ErrorClass, Timestamp};
use support::device::Device;

const T0: Timestamp = Timestamp::from_secs(1_700_000_000);
/// How far a delivery may reach into the queue: bounded reordering.
const WINDOW: usize = 6;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Side {
    Alice,
    Bob,
}

#[derive(Clone, Debug)]
enum Action {
    /// `Side` sends a new message.
    Send(Side),
    /// A queued message for `Side` is delivered.
    Deliver(Side, usize),
    /// A message `Side` already received is delivered again.
    Duplicate(Side, usize),
    /// A queued message for `Side` is lost.
    Drop(Side, usize),
    /// A corrupted copy of a queued message for `Side` is delivered.
    Tamper(Side, usize, usize),
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Alice), Just(Side::Bob)]
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        7 => side().prop_map(Action::Send),
        7 => (side(), any::<usize>()).prop_map(|(s, i)| Action::Deliver(s, i)),
        2 => (side(), any::<usize>()).prop_map(|(s, i)| Action::Duplicate(s, i)),
        2 => (side(), any::<usize>()).prop_map(|(s, i)| Action::Drop(s, i)),
        2 => (side(), any::<usize>(), any::<usize>()).prop_map(|(s, i, b)| Action::Tamper(s, i, b)),
    ]
}

#[derive(Clone, Debug)]
struct Envelope {
    message_type: CiphertextMessageType,
    bytes: Vec<u8>,
    plaintext: Vec<u8>,
    ratchet_key: PublicKey,
}

impl Envelope {
    fn new(message: &CiphertextMessage, plaintext: Vec<u8>) -> Self {
        let ratchet_key = match message {
            CiphertextMessage::Whisper(m) => *m.ratchet_key(),
            CiphertextMessage::PreKey(m) => *m.message().ratchet_key(),
        };
        Self {
            message_type: message.message_type(),
            bytes: message.serialize().to_vec(),
            plaintext,
            ratchet_key,
        }
    }
}

struct Party {
    device: Device,
    inbox: Vec<Envelope>,
    received: Vec<Envelope>,
    /// Every peer ratchet key this party has had a receiving chain for.
    seen_chains: HashSet<PublicKey>,
}

impl Party {
    fn current_chains(&self) -> HashSet<PublicKey> {
        self.device
            .record
            .as_ref()
            .and_then(|record| record.inspect().current_session)
            .map(|state| {
                state
                    .receiver_chains
                    .iter()
                    .map(|chain| chain.ratchet_key)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A chain that existed and was dropped (more than five newer ones): its messages are lost.
    fn evicted(&self, key: &PublicKey) -> bool {
        self.seen_chains.contains(key) && !self.current_chains().contains(key)
    }

    fn stored(&self) -> Option<Vec<u8>> {
        self.device
            .record
            .as_ref()
            .map(|record| record.to_record_bytes().to_vec())
    }

    /// Delivers `bytes`; on failure checks that nothing changed.
    fn deliver(&mut self, envelope: &Envelope, bytes: &[u8]) -> Result<Vec<u8>, ErrorClass> {
        let before = self.stored();
        let prekeys_before = self.device.prekeys.one_time.len();
        match self.device.receive(envelope.message_type, bytes) {
            Ok(plaintext) => {
                let chains = self.current_chains();
                self.seen_chains.extend(chains);
                Ok(plaintext)
            }
            Err(error) => {
                assert_eq!(self.stored(), before, "rejected input changed the record");
                assert_eq!(self.device.prekeys.one_time.len(), prekeys_before);
                Err(error.class())
            }
        }
    }

    /// First delivery of a message: must decrypt unless its chain was evicted.
    fn deliver_fresh(&mut self, envelope: Envelope) {
        let evicted = self.evicted(&envelope.ratchet_key);
        match self.deliver(&envelope, &envelope.bytes.clone()) {
            Ok(plaintext) => {
                assert!(!evicted, "a message on an evicted chain decrypted");
                assert_eq!(plaintext, envelope.plaintext);
                self.received.push(envelope);
            }
            Err(class) => assert!(evicted, "fresh message rejected: {class:?}"),
        }
    }
}

fn run(seed: u64, actions: &[Action]) {
    let mut alice = Party {
        device: Device::new(seed, 1111),
        inbox: Vec::new(),
        received: Vec::new(),
        seen_chains: HashSet::new(),
    };
    let mut bob = Party {
        device: Device::new(seed ^ 0x5EED, 2222),
        inbox: Vec::new(),
        received: Vec::new(),
        seen_chains: HashSet::new(),
    };
    let bundle = bob.device.bundle(seed.is_multiple_of(2));
    alice.device.start_session(&bundle, T0);
    let mut sent = 0u32;

    for action in actions {
        match *action {
            Action::Send(from) => {
                let (sender, receiver) = match from {
                    Side::Alice => (&mut alice, &mut bob),
                    Side::Bob => (&mut bob, &mut alice),
                };
                if sender.device.record.is_none() {
                    continue; // Bob has no session until a PreKey message arrives.
                }
                sent += 1;
                let plaintext = format!("{from:?} #{sent} {}", "x".repeat((sent % 40) as usize));
                let peer = receiver.device.identity.clone();
                let message = sender.device.send(&peer, plaintext.as_bytes(), T0);
                receiver
                    .inbox
                    .push(Envelope::new(&message, plaintext.into_bytes()));
            }
            Action::Deliver(to, pick) => {
                let party = if to == Side::Alice {
                    &mut alice
                } else {
                    &mut bob
                };
                if party.inbox.is_empty() {
                    continue;
                }
                let index = pick % party.inbox.len().min(WINDOW);
                let envelope = party.inbox.remove(index);
                party.deliver_fresh(envelope);
            }
            Action::Duplicate(to, pick) => {
                let party = if to == Side::Alice {
                    &mut alice
                } else {
                    &mut bob
                };
                if party.received.is_empty() {
                    continue;
                }
                let envelope = party.received[pick % party.received.len()].clone();
                let chain_alive = party.current_chains().contains(&envelope.ratchet_key);
                let class = party.deliver(&envelope, &envelope.bytes).unwrap_err();
                if chain_alive {
                    assert_eq!(class, ErrorClass::DuplicateMessage);
                }
            }
            Action::Drop(to, pick) => {
                let party = if to == Side::Alice {
                    &mut alice
                } else {
                    &mut bob
                };
                if !party.inbox.is_empty() {
                    let index = pick % party.inbox.len();
                    party.inbox.remove(index);
                }
            }
            Action::Tamper(to, pick, byte) => {
                let party = if to == Side::Alice {
                    &mut alice
                } else {
                    &mut bob
                };
                let Some(envelope) = party
                    .inbox
                    .iter()
                    .filter(|e| e.message_type == CiphertextMessageType::Whisper)
                    .nth(pick % party.inbox.len().max(1))
                    .cloned()
                else {
                    continue;
                };
                let mut bytes = envelope.bytes.clone();
                let index = byte % bytes.len();
                bytes[index] ^= 1 << (byte % 8);
                assert!(
                    party.deliver(&envelope, &bytes).is_err(),
                    "corrupted byte {index} accepted"
                );
            }
        }
    }
    // Flush the network: everything still queued arrives, in order.
    for party in [&mut alice, &mut bob] {
        for envelope in std::mem::take(&mut party.inbox) {
            party.deliver_fresh(envelope);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn lossy_reordering_network(seed in any::<u64>(), actions in prop::collection::vec(action(), 1..160)) {
        run(seed, &actions);
    }
}

/// A fixed long run, so the property is exercised deeply even when proptest draws short cases.
#[test]
fn long_fixed_conversation() {
    let mut actions = Vec::new();
    for round in 0..300usize {
        let side = if round % 3 == 0 {
            Side::Bob
        } else {
            Side::Alice
        };
        actions.push(Action::Send(side));
        actions.push(Action::Send(Side::Alice));
        if round % 7 == 0 {
            actions.push(Action::Drop(Side::Bob, round));
        }
        actions.push(Action::Deliver(Side::Bob, round * 31));
        actions.push(Action::Tamper(Side::Alice, round, round * 13));
        actions.push(Action::Deliver(Side::Alice, round * 17));
        if round % 5 == 0 {
            actions.push(Action::Duplicate(Side::Bob, round));
            actions.push(Action::Duplicate(Side::Alice, round));
        }
    }
    run(42, &actions);
}
