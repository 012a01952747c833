//! Signal Sender Keys (PROTOCOL.md "Sender Keys"), byte-compatible with libsignal 0.73.
//!
//! A sender creates a chain per distribution id (a community epoch id), hands it to each member
//! device as a [`SenderKeyDistributionMessage`] inside a 1:1 Signal session, then encrypts every
//! group message once with the next chain key and signs it with the chain's signing key.
//! Receivers verify the signature *before* touching the chain, then derive the message key,
//! storing keys of skipped iterations within bounded windows ([`SenderKeyLimits`]).
//!
//! Like the DM core every operation is a pure function: it borrows a [`SenderKeyRecord`] (one
//! per `(sender device, distribution id)`, looked up by the caller) and returns a new one, so a
//! failed operation leaves state untouched and the caller persists only on `Ok`.

mod chain;
mod facade;
mod record;

pub use chain::{SenderChainKey, SenderMessageKey};
pub use record::{MAX_SENDER_KEY_STATES, SenderKeyRecord, SenderKeyState};

use rand_core::CryptoRng;
use uuid::Uuid;

use crate::cipher::{aes256_cbc_decrypt, aes256_cbc_encrypt};
use crate::error::ErrorClass;
use crate::keys::KeyPair;
use crate::wire::{
    DecodeError, SENDERKEY_MESSAGE_CURRENT_VERSION, SenderKeyDistributionMessage, SenderKeyMessage,
};

/// Default bound on stored skipped message keys per chain (oldest evicted first).
pub const MAX_SKIPPED_KEYS: usize = 2000;
/// Default bound on how far ahead of its chain a message may be.
pub const MAX_FORWARD_JUMP: u32 = 25_000;
/// The largest `max_skipped_keys` accepted anywhere, including when loading records.
pub const MAX_SKIPPED_KEYS_CEILING: usize = 65_536;

/// The out-of-order window of receiving chains. The defaults are libsignal's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SenderKeyLimits {
    /// Stored skipped message keys per chain; the oldest are evicted beyond it
    /// (clamped to [`MAX_SKIPPED_KEYS_CEILING`]).
    pub max_skipped_keys: usize,
    /// Largest accepted `iteration - chain iteration`.
    pub max_forward_jump: u32,
    /// Chains kept per `(sender, distribution id)` (clamped to `1..=`[`MAX_SENDER_KEY_STATES`]).
    pub max_states: usize,
}

impl Default for SenderKeyLimits {
    fn default() -> Self {
        Self {
            max_skipped_keys: MAX_SKIPPED_KEYS,
            max_forward_jump: MAX_FORWARD_JUMP,
            max_states: MAX_SENDER_KEY_STATES,
        }
    }
}

impl SenderKeyLimits {
    fn clamped(self) -> Self {
        Self {
            max_skipped_keys: self.max_skipped_keys.min(MAX_SKIPPED_KEYS_CEILING),
            max_forward_jump: self.max_forward_jump,
            max_states: self.max_states.clamp(1, MAX_SENDER_KEY_STATES),
        }
    }
}

/// Why a sender-key operation failed. Authentication failures carry no detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SenderKeyError {
    /// No chain for this sender and distribution id (the receiver lacks the seed: ask for it).
    #[error("missing sender key state for distribution ID {distribution_id}")]
    NoSenderKeyState {
        /// The distribution id of the message.
        distribution_id: Uuid,
    },
    /// The record has chains for this distribution id but not the message's chain id.
    #[error("no sender key state for distribution ID {distribution_id} chain {chain_id}")]
    UnknownChain {
        /// The distribution id of the message.
        distribution_id: Uuid,
        /// The chain id of the message.
        chain_id: u32,
    },
    /// The current chain is not ours (no signing private key), so it cannot encrypt.
    #[error("sender key state has no signing private key")]
    NotOwnChain,
    /// The message signature does not verify against the chain's signing key.
    #[error("invalid signature detected")]
    InvalidSignature,
    /// The iteration's key was already used or evicted.
    #[error("message with old counter {chain_iteration} / {iteration}")]
    DuplicateMessage {
        /// The chain's current iteration.
        chain_iteration: u32,
        /// The message's iteration.
        iteration: u32,
    },
    /// The message is further ahead of its chain than the limit allows.
    #[error("message from too far into the future: {iteration} / {chain_iteration}")]
    TooFarIntoFuture {
        /// The chain's current iteration.
        chain_iteration: u32,
        /// The message's iteration.
        iteration: u32,
    },
    /// The message or distribution message version is not the chain's.
    #[error("sender key message version {0} is not supported")]
    VersionMismatch(u8),
    /// A distribution message names another distribution id than the record is for.
    #[error("distribution id {got} where {expected} was expected")]
    DistributionIdMismatch {
        /// The id the caller asked for.
        expected: Uuid,
        /// The id in the message.
        got: Uuid,
    },
    /// The ciphertext did not decrypt (bad padding or length) although the signature held.
    #[error("invalid sender key message: decryption failed")]
    DecryptionFailed,
    /// A chain reached 2^32 iterations.
    #[error("sender chain exhausted")]
    ChainExhausted,
    /// The bytes are not a well-formed message.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl SenderKeyError {
    /// The stable class of this error.
    #[must_use]
    pub const fn class(&self) -> ErrorClass {
        match self {
            Self::NoSenderKeyState { .. } | Self::UnknownChain { .. } => {
                ErrorClass::NoSenderKeyState
            }
            Self::InvalidSignature => ErrorClass::InvalidSignature,
            Self::DuplicateMessage { .. } => ErrorClass::DuplicateMessage,
            Self::TooFarIntoFuture { .. }
            | Self::DistributionIdMismatch { .. }
            | Self::DecryptionFailed => ErrorClass::InvalidMessage,
            Self::VersionMismatch(_) => ErrorClass::UnrecognizedVersion,
            Self::NotOwnChain | Self::ChainExhausted => ErrorClass::InvalidState,
            Self::Decode(error) => error.class(),
        }
    }
}

/// Generates a fresh own chain: `chain_id = next_u32 >> 1`, chain key = 32 `next_u32` (low
/// byte of each), signing key = one `fill_bytes(32)` (libsignal's draw order).
fn generate_state<R: CryptoRng + ?Sized>(rng: &mut R) -> SenderKeyState {
    let chain_id = rng.next_u32() >> 1;
    let mut chain_key = zeroize::Zeroizing::new([0u8; 32]);
    for byte in chain_key.iter_mut() {
        *byte = rng.next_u32().to_le_bytes()[0];
    }
    let signing = KeyPair::generate(rng);
    SenderKeyState {
        message_version: SENDERKEY_MESSAGE_CURRENT_VERSION,
        chain_id,
        chain_key: SenderChainKey::new(*chain_key, 0),
        signing_key: *signing.public_key(),
        signing_private_key: Some(signing.private_key().clone()),
        skipped: std::collections::VecDeque::new(),
    }
}

fn distribution_message(
    distribution_id: Uuid,
    state: &SenderKeyState,
) -> SenderKeyDistributionMessage {
    SenderKeyDistributionMessage::new(
        *distribution_id.as_bytes(),
        state.chain_id,
        state.chain_key.iteration(),
        state.chain_key.as_bytes(),
        state.signing_key,
    )
}

/// Returns the distribution message of our own chain for `distribution_id`, creating the chain
/// first if `record` has none (draws as in `generate_state`; none when the chain exists). A
/// later call carries the chain's current iteration, so a late joiner cannot read earlier
/// messages.
pub fn create_distribution_message<R: CryptoRng + ?Sized>(
    record: Option<&SenderKeyRecord>,
    distribution_id: Uuid,
    rng: &mut R,
) -> Result<(SenderKeyRecord, SenderKeyDistributionMessage), SenderKeyError> {
    let mut updated = record.cloned().unwrap_or_default();
    if updated.current().is_none() {
        updated.add_state(generate_state(rng), MAX_SENDER_KEY_STATES);
    }
    let state = updated.current().ok_or(SenderKeyError::NotOwnChain)?;
    if !state.is_own_chain() {
        return Err(SenderKeyError::NotOwnChain);
    }
    let message = distribution_message(distribution_id, state);
    Ok((updated, message))
}

/// The distribution message of our newest own chain at its current iteration (what a repair
/// answer carries), without creating anything. Consumes no randomness.
pub fn current_distribution_message(
    record: &SenderKeyRecord,
    distribution_id: Uuid,
) -> Result<SenderKeyDistributionMessage, SenderKeyError> {
    let state = record
        .current()
        .ok_or(SenderKeyError::NoSenderKeyState { distribution_id })?;
    if !state.is_own_chain() {
        return Err(SenderKeyError::NotOwnChain);
    }
    Ok(distribution_message(distribution_id, state))
}

/// Replaces our own chain with a fresh one (new chain id, chain key and signing key) within
/// the same distribution id, e.g. after a suspected compromise, and returns its distribution
/// message. Receivers keep the old chain (up to [`MAX_SENDER_KEY_STATES`]) for late messages.
pub fn reset_own_chain<R: CryptoRng + ?Sized>(
    record: Option<&SenderKeyRecord>,
    distribution_id: Uuid,
    rng: &mut R,
) -> (SenderKeyRecord, SenderKeyDistributionMessage) {
    let mut updated = record.cloned().unwrap_or_default();
    let mut state = generate_state(rng);
    // A collision with a chain id we still hold would merge two chains: draw again.
    while updated.states.iter().any(|s| s.chain_id == state.chain_id) {
        state = generate_state(rng);
    }
    let message = distribution_message(distribution_id, &state);
    updated.add_state(state, MAX_SENDER_KEY_STATES);
    (updated, message)
}

/// Stores the chain a distribution message hands us (from the sender device the caller
/// received it from, inside a Signal session). `expected_distribution_id` is the id the record
/// is kept under; a message for another id is refused. A repeated or later message for a chain
/// we already have keeps our position.
pub fn process_distribution_message(
    record: Option<&SenderKeyRecord>,
    expected_distribution_id: Uuid,
    message: &SenderKeyDistributionMessage,
    limits: SenderKeyLimits,
) -> Result<SenderKeyRecord, SenderKeyError> {
    if message.message_version() != SENDERKEY_MESSAGE_CURRENT_VERSION {
        return Err(SenderKeyError::VersionMismatch(message.message_version()));
    }
    let got = Uuid::from_bytes(*message.distribution_id());
    if got != expected_distribution_id {
        return Err(SenderKeyError::DistributionIdMismatch {
            expected: expected_distribution_id,
            got,
        });
    }
    let mut updated = record.cloned().unwrap_or_default();
    updated.add_state(
        SenderKeyState {
            message_version: message.message_version(),
            chain_id: message.chain_id(),
            chain_key: SenderChainKey::new(*message.chain_key(), message.iteration()),
            signing_key: *message.signing_key(),
            signing_private_key: None,
            skipped: std::collections::VecDeque::new(),
        },
        limits.clamped().max_states,
    );
    Ok(updated)
}

/// Encrypts `plaintext` with our newest chain: AES-256-CBC under the next message key, then an
/// XEdDSA signature (one `fill_bytes(64)` draw).
pub fn group_encrypt<R: CryptoRng + ?Sized>(
    record: &SenderKeyRecord,
    distribution_id: Uuid,
    plaintext: &[u8],
    rng: &mut R,
) -> Result<(SenderKeyRecord, SenderKeyMessage), SenderKeyError> {
    let mut updated = record.clone();
    let state = updated
        .states
        .front_mut()
        .ok_or(SenderKeyError::NoSenderKeyState { distribution_id })?;
    let signing_key = state
        .signing_private_key
        .as_ref()
        .ok_or(SenderKeyError::NotOwnChain)?;
    let next = state
        .chain_key
        .next()
        .ok_or(SenderKeyError::ChainExhausted)?;
    let key = state.chain_key.message_key();
    let ciphertext = aes256_cbc_encrypt(key.cipher_key(), key.iv(), plaintext);
    let message = SenderKeyMessage::new(
        *distribution_id.as_bytes(),
        state.chain_id,
        key.iteration(),
        ciphertext,
        signing_key,
        rng,
    );
    state.chain_key = next;
    Ok((updated, message))
}

/// Decrypts a group message from the sender whose record (for the message's distribution id)
/// the caller looked up. Order of checks: chain lookup, version, signature, then the key
/// (duplicate / window), then the ciphertext. Consumes no randomness.
pub fn group_decrypt(
    record: Option<&SenderKeyRecord>,
    message: &SenderKeyMessage,
    limits: SenderKeyLimits,
) -> Result<(SenderKeyRecord, Vec<u8>), SenderKeyError> {
    let distribution_id = Uuid::from_bytes(*message.distribution_id());
    let record = match record {
        Some(record) if !record.is_empty() => record,
        _ => return Err(SenderKeyError::NoSenderKeyState { distribution_id }),
    };
    let mut updated = record.clone();
    let state =
        updated
            .state_for_chain_id_mut(message.chain_id())
            .ok_or(SenderKeyError::UnknownChain {
                distribution_id,
                chain_id: message.chain_id(),
            })?;
    if message.message_version() != state.message_version {
        return Err(SenderKeyError::VersionMismatch(message.message_version()));
    }
    if !message.verify_signature(&state.signing_key) {
        return Err(SenderKeyError::InvalidSignature);
    }
    let key = state.message_key_for(message.iteration(), limits.clamped())?;
    let plaintext = aes256_cbc_decrypt(key.cipher_key(), key.iv(), message.body())
        .map_err(|_| SenderKeyError::DecryptionFailed)?;
    Ok((updated, plaintext))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    fn rng(seed: u64) -> rand_chacha::ChaCha20Rng {
        rand_chacha::ChaCha20Rng::seed_from_u64(seed)
    }

    #[test]
    fn round_trip_reorder_duplicate_and_reset() {
        let id = Uuid::from_bytes([7; 16]);
        let mut r = rng(1);
        let (alice, skdm) = create_distribution_message(None, id, &mut r).unwrap();
        let limits = SenderKeyLimits::default();
        let bob = process_distribution_message(None, id, &skdm, limits).unwrap();
        let (alice, m0) = group_encrypt(&alice, id, b"zero", &mut r).unwrap();
        let (alice, m1) = group_encrypt(&alice, id, b"one", &mut r).unwrap();
        let (bob2, p1) = group_decrypt(Some(&bob), &m1, limits).unwrap();
        assert_eq!(p1, b"one");
        let (bob3, p0) = group_decrypt(Some(&bob2), &m0, limits).unwrap();
        assert_eq!(p0, b"zero");
        assert_eq!(
            group_decrypt(Some(&bob3), &m0, limits).unwrap_err(),
            SenderKeyError::DuplicateMessage {
                chain_iteration: 2,
                iteration: 0
            }
        );
        // A reset starts a new chain; the receiver keeps the old one for late messages.
        let (alice, skdm2) = reset_own_chain(Some(&alice), id, &mut r);
        assert_ne!(skdm2.chain_id(), skdm.chain_id());
        let (_, m2) = group_encrypt(&alice, id, b"new chain", &mut r).unwrap();
        assert!(matches!(
            group_decrypt(Some(&bob3), &m2, limits),
            Err(SenderKeyError::UnknownChain { .. })
        ));
        let bob4 = process_distribution_message(Some(&bob3), id, &skdm2, limits).unwrap();
        assert_eq!(
            group_decrypt(Some(&bob4), &m2, limits).unwrap().1,
            b"new chain"
        );
        assert_eq!(bob4.states().count(), 2);
        // Receivers cannot encrypt with someone else's chain.
        assert_eq!(
            group_encrypt(&bob4, id, b"x", &mut r).unwrap_err(),
            SenderKeyError::NotOwnChain
        );
        assert_eq!(
            process_distribution_message(None, Uuid::nil(), &skdm, limits).unwrap_err(),
            SenderKeyError::DistributionIdMismatch {
                expected: Uuid::nil(),
                got: id
            }
        );
        assert_eq!(
            group_decrypt(None, &m0, limits).unwrap_err().class(),
            ErrorClass::NoSenderKeyState
        );
    }

    #[test]
    fn states_are_bounded_and_same_chain_is_not_rewound() {
        let id = Uuid::from_bytes([8; 16]);
        let mut r = rng(2);
        let limits = SenderKeyLimits::default();
        let (alice, skdm) = create_distribution_message(None, id, &mut r).unwrap();
        let bob = process_distribution_message(None, id, &skdm, limits).unwrap();
        let (alice, m0) = group_encrypt(&alice, id, b"a", &mut r).unwrap();
        let (bob, _) = group_decrypt(Some(&bob), &m0, limits).unwrap();
        // The old distribution message again must not let m0 be replayed.
        let bob = process_distribution_message(Some(&bob), id, &skdm, limits).unwrap();
        assert!(matches!(
            group_decrypt(Some(&bob), &m0, limits),
            Err(SenderKeyError::DuplicateMessage { .. })
        ));
        let mut alice = alice;
        let mut bob = bob;
        for _ in 0..7 {
            let (a, skdm) = reset_own_chain(Some(&alice), id, &mut r);
            alice = a;
            bob = process_distribution_message(Some(&bob), id, &skdm, limits).unwrap();
        }
        assert_eq!(alice.states().count(), MAX_SENDER_KEY_STATES);
        assert_eq!(bob.states().count(), MAX_SENDER_KEY_STATES);
    }

    /// The default bounds themselves: a jump of exactly 25,000 is accepted and keeps the
    /// newest 2,000 skipped keys; 25,001 is refused.
    #[test]
    fn default_bounds_at_the_edge() {
        let id = Uuid::from_bytes([9; 16]);
        let mut r = rng(3);
        let limits = SenderKeyLimits::default();
        let (mut alice, skdm) = create_distribution_message(None, id, &mut r).unwrap();
        let bob = process_distribution_message(None, id, &skdm, limits).unwrap();
        // Move Alice's chain forward without encrypting every message.
        let far = |alice: &SenderKeyRecord, n: u32| {
            let mut alice = alice.clone();
            let state = alice.states.front_mut().unwrap();
            for _ in 0..n {
                state.chain_key = state.chain_key.next().unwrap();
            }
            alice
        };
        alice = far(&alice, MAX_FORWARD_JUMP + 1);
        let (_, too_far) = group_encrypt(&alice, id, b"x", &mut r).unwrap();
        assert_eq!(
            group_decrypt(Some(&bob), &too_far, limits).unwrap_err(),
            SenderKeyError::TooFarIntoFuture {
                chain_iteration: 0,
                iteration: MAX_FORWARD_JUMP + 1
            }
        );
        let (alice0, _) = create_distribution_message(None, id, &mut rng(3)).unwrap();
        let edge = far(&alice0, MAX_FORWARD_JUMP);
        let (_, at_edge) = group_encrypt(&edge, id, b"edge", &mut r).unwrap();
        let (bob, plaintext) = group_decrypt(Some(&bob), &at_edge, limits).unwrap();
        assert_eq!(plaintext, b"edge");
        let state = bob.current().unwrap();
        assert_eq!(state.skipped_key_count(), MAX_SKIPPED_KEYS);
        assert_eq!(state.iteration(), MAX_FORWARD_JUMP + 1);
        // The oldest kept key is iteration 25,000 - 2,000; older ones were evicted.
        let oldest = far(&alice0, MAX_FORWARD_JUMP - 2000);
        let (_, kept) = group_encrypt(&oldest, id, b"kept", &mut r).unwrap();
        assert_eq!(group_decrypt(Some(&bob), &kept, limits).unwrap().1, b"kept");
        let evicted = far(&alice0, MAX_FORWARD_JUMP - 2001);
        let (_, gone) = group_encrypt(&evicted, id, b"gone", &mut r).unwrap();
        assert!(matches!(
            group_decrypt(Some(&bob), &gone, limits),
            Err(SenderKeyError::DuplicateMessage { .. })
        ));
    }
}
