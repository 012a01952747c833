//! Property tests for the sender-key receiving window: any delivery order with duplicates and
//! jumps, within and beyond (small, configured) bounds, gives exactly the outcome of a
//! reference model of the rules: keys of skipped iterations are kept up to
//! `max_skipped_keys` (oldest evicted first), a jump beyond `max_forward_jump` is refused
//! without changing state, and a second delivery is a duplicate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::VecDeque;

use proptest::prelude::*;
use rand_core::SeedableRng;
use spots_signal::sender_keys::{
    SenderKeyError, SenderKeyLimits, create_distribution_message, group_decrypt, group_encrypt,
    process_distribution_message,
};
use spots_signal::wire::SenderKeyMessage;
use uuid::Uuid;

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Ok,
    Duplicate,
    TooFar,
}

/// The reference model of the window.
struct Model {
    position: u32,
    stored: VecDeque<u32>,
    limits: SenderKeyLimits,
}

impl Model {
    fn deliver(&mut self, iteration: u32) -> Outcome {
        if iteration < self.position {
            return match self.stored.iter().position(|&i| i == iteration) {
                Some(index) => {
                    self.stored.remove(index);
                    Outcome::Ok
                }
                None => Outcome::Duplicate,
            };
        }
        if iteration - self.position > self.limits.max_forward_jump {
            return Outcome::TooFar;
        }
        for skipped in self.position..iteration {
            self.stored.push_back(skipped);
            while self.stored.len() > self.limits.max_skipped_keys {
                self.stored.pop_front();
            }
        }
        self.position = iteration + 1;
        Outcome::Ok
    }
}

type Fixture = (Uuid, Vec<SenderKeyMessage>, Vec<u8>);

/// Forty messages of one chain, made once (signing is the slow part in debug builds).
fn messages() -> &'static Fixture {
    static FIXTURE: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| make_messages(40, 99))
}

fn make_messages(count: usize, seed: u64) -> Fixture {
    let id = Uuid::from_u128(0x1234_5678_9abc_4def_8000_0000_0000_0001);
    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
    let (mut record, skdm) = create_distribution_message(None, id, &mut rng).unwrap();
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let (next, message) =
            group_encrypt(&record, id, format!("m{i}").as_bytes(), &mut rng).unwrap();
        record = next;
        out.push(message);
    }
    (id, out, skdm.serialized().to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn any_order_with_duplicates_matches_the_model(
        deliveries in prop::collection::vec(0usize..40, 1..80),
        max_skipped in 0usize..12,
        max_jump in 0u32..20,
    ) {
        let (id, sent, skdm) = messages();
        let id = *id;
        let limits = SenderKeyLimits { max_skipped_keys: max_skipped, max_forward_jump: max_jump, ..SenderKeyLimits::default() };
        let skdm = spots_signal::wire::SenderKeyDistributionMessage::try_from(skdm.as_slice()).unwrap();
        let mut record = process_distribution_message(None, id, &skdm, limits).unwrap();
        let mut model = Model { position: 0, stored: VecDeque::new(), limits };
        for index in deliveries {
            let expected = model.deliver(u32::try_from(index).unwrap());
            let result = group_decrypt(Some(&record), &sent[index], limits);
            match (expected, result) {
                (Outcome::Ok, Ok((next, plaintext))) => {
                    prop_assert_eq!(plaintext, format!("m{index}").into_bytes());
                    record = next;
                }
                (Outcome::Duplicate, Err(SenderKeyError::DuplicateMessage { iteration, .. })) => {
                    prop_assert_eq!(iteration as usize, index);
                }
                (Outcome::TooFar, Err(SenderKeyError::TooFarIntoFuture { iteration, .. })) => {
                    prop_assert_eq!(iteration as usize, index);
                }
                (expected, result) => {
                    prop_assert!(false, "delivery {}: model {:?}, got {:?}", index, expected, result.map(|r| r.1));
                }
            }
            prop_assert!(record.current().unwrap().skipped_key_count() <= max_skipped);
        }
    }

    /// A tampered message is refused as a bad signature (or a parse error) and never changes
    /// the receiver's state, whatever byte is flipped.
    #[test]
    fn tampering_never_decrypts(position in 0usize..200, bit in 0u8..8) {
        let (id, sent, skdm) = messages();
        let id = *id;
        let skdm = spots_signal::wire::SenderKeyDistributionMessage::try_from(skdm.as_slice()).unwrap();
        let limits = SenderKeyLimits::default();
        let record = process_distribution_message(None, id, &skdm, limits).unwrap();
        let mut bytes = sent[2].serialized().to_vec();
        let position = position % bytes.len();
        bytes[position] ^= 1 << bit;
        if let Ok(message) = SenderKeyMessage::try_from(bytes.as_slice()) {
            let result = group_decrypt(Some(&record), &message, limits);
            prop_assert!(result.is_err());
        }
        // The untouched message still decrypts from the unchanged record.
        let (_, plaintext) = group_decrypt(Some(&record), &sent[2], limits).unwrap();
        prop_assert_eq!(plaintext, b"m2".to_vec());
    }
}
