//! One session's Double Ratchet state and the per-message algorithm.
//!
//! Methods here mutate `self`; the record layer always works on a clone and keeps it only when
//! the whole operation succeeded, which is what makes every public operation transactional.

use core::fmt;
use core::time::Duration;
use std::collections::VecDeque;

use rand_core::CryptoRng;

use super::SessionError;
use crate::cipher::{aes256_cbc_decrypt, aes256_cbc_encrypt};
use crate::kem;
use crate::keys::{
    IdentityKey, KeyPair, KyberPreKeyId, PreKeyId, PublicKey, RegistrationId, SignedPreKeyId,
};
use crate::ratchet::{ChainKey, MessageKeySeed, MessageKeys, RootKey};
use crate::time::Timestamp;
use crate::wire::{CiphertextMessage, PreKeySignalMessage, SignalMessage};

/// Receiving chains kept per session; older ones are dropped.
pub const MAX_RECEIVER_CHAINS: usize = 5;
/// Skipped message keys kept per receiving chain; the oldest are dropped.
pub const MAX_MESSAGE_KEYS: usize = 2000;
/// Largest accepted gap between a chain's position and a message counter. It is also the
/// total number of chain steps one decryption may spend across all the sessions it tries
/// (see [`crate::session::decrypt_signal_message`]).
pub const MAX_FORWARD_JUMPS: u32 = 25_000;
/// [`MAX_MESSAGE_KEYS`] as a chain-index distance.
const MAX_MESSAGE_KEYS_U32: u32 = {
    assert!(MAX_MESSAGE_KEYS <= u32::MAX as usize);
    MAX_MESSAGE_KEYS as u32
};
/// After this long without a reply, an initiated session is no longer used for sending.
pub const MAX_UNACKNOWLEDGED_SESSION_AGE: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Our current sending chain and the ratchet key pair it belongs to.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SenderChain {
    pub(crate) ratchet_key: KeyPair,
    pub(crate) chain_key: ChainKey,
}

/// A chain for one of the peer's ratchet keys, with the keys of messages skipped in it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ReceiverChain {
    pub(crate) ratchet_key: PublicKey,
    pub(crate) chain_key: ChainKey,
    /// Newest first, as libsignal stores them.
    pub(crate) skipped: VecDeque<MessageKeySeed>,
}

/// What the initiator must repeat in every message until the peer has replied.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct PendingPreKey {
    pub(crate) pre_key_id: Option<PreKeyId>,
    pub(crate) signed_pre_key_id: SignedPreKeyId,
    pub(crate) base_key: PublicKey,
    pub(crate) timestamp: Timestamp,
    pub(crate) kyber: Option<(KyberPreKeyId, kem::Ciphertext)>,
}

/// The state of one session (current or archived).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SessionState {
    pub(crate) version: u8,
    pub(crate) local_identity: IdentityKey,
    pub(crate) remote_identity: IdentityKey,
    pub(crate) local_registration_id: RegistrationId,
    pub(crate) remote_registration_id: RegistrationId,
    /// The initiator's base key; identifies the session for PreKey-message reuse.
    pub(crate) alice_base_key: PublicKey,
    pub(crate) root_key: RootKey,
    pub(crate) previous_counter: u32,
    pub(crate) sender_chain: SenderChain,
    /// Oldest first.
    pub(crate) receiver_chains: Vec<ReceiverChain>,
    pub(crate) pending_pre_key: Option<PendingPreKey>,
}

impl SessionState {
    /// Whether a PreKey message with this version and base key belongs to this session.
    pub(crate) fn matches(&self, version: u8, base_key: &PublicKey) -> bool {
        self.version == version && self.alice_base_key == *base_key
    }

    /// An initiated session whose PreKey messages have gone unanswered for 30 days is
    /// abandoned: the peer has probably lost it, so the caller should fetch a new bundle.
    pub(crate) fn unacknowledged_expired(&self, now: Timestamp) -> bool {
        self.pending_pre_key.as_ref().is_some_and(|pending| {
            pending
                .timestamp
                .saturating_add(MAX_UNACKNOWLEDGED_SESSION_AGE)
                < now
        })
    }

    /// Encrypts with the current sending chain and advances it. Consumes no randomness.
    pub(crate) fn encrypt(&mut self, plaintext: &[u8]) -> Result<CiphertextMessage, SessionError> {
        let chain_key = &self.sender_chain.chain_key;
        let next = chain_key.next().ok_or(SessionError::ChainExhausted)?;
        let keys = chain_key.message_keys();
        let ciphertext = aes256_cbc_encrypt(keys.cipher_key(), keys.iv(), plaintext);
        let message = SignalMessage::new(
            self.version,
            keys.mac_key(),
            *self.sender_chain.ratchet_key.public_key(),
            keys.counter(),
            self.previous_counter,
            ciphertext,
            &self.local_identity,
            &self.remote_identity,
        );
        let message = match &self.pending_pre_key {
            Some(pending) => CiphertextMessage::PreKey(PreKeySignalMessage::new(
                self.version,
                self.local_registration_id,
                pending.pre_key_id,
                pending.signed_pre_key_id,
                pending.kyber.clone(),
                pending.base_key,
                self.local_identity,
                message,
            )),
            None => CiphertextMessage::Whisper(message),
        };
        self.sender_chain.chain_key = next;
        Ok(message)
    }

    /// Decrypts `message`, ratcheting as needed. On error `self` may be partly updated (and
    /// randomness consumed, as in libsignal); callers must discard it.
    ///
    /// Walking the receiving chain forward to the message's counter is charged to `budget`
    /// (chain steps), which the caller shares between every session it tries for one message.
    /// The walk is a trial: it derives only the next chain keys (one HMAC per step, nothing
    /// stored) and the skipped message keys are stored only once the MAC has verified, so a
    /// forged message costs at most its share of the budget.
    pub(crate) fn decrypt<R: CryptoRng + ?Sized>(
        &mut self,
        message: &SignalMessage,
        budget: &mut u32,
        rng: &mut R,
    ) -> Result<Vec<u8>, SessionError> {
        if message.message_version() != self.version {
            return Err(SessionError::VersionMismatch {
                session: self.version,
                message: message.message_version(),
            });
        }
        let chain = self.receiver_chain_for(message.ratchet_key(), rng)?;
        let (keys, advance) = self.message_keys(chain, message.counter(), budget)?;
        if !message.verify_mac(&self.remote_identity, &self.local_identity, keys.mac_key()) {
            return Err(SessionError::DecryptionFailed);
        }
        if let Some(advance) = advance {
            self.commit_advance(advance)?;
        }
        let plaintext = aes256_cbc_decrypt(keys.cipher_key(), keys.iv(), message.body())
            .map_err(|_| SessionError::DecryptionFailed)?;
        // The peer has this session now: stop sending PreKey messages.
        self.pending_pre_key = None;
        Ok(plaintext)
    }

    /// Index of the receiving chain for `their_key`, performing a DH ratchet step (one key
    /// generation) when the key is new.
    fn receiver_chain_for<R: CryptoRng + ?Sized>(
        &mut self,
        their_key: &PublicKey,
        rng: &mut R,
    ) -> Result<usize, SessionError> {
        if let Some(index) = self
            .receiver_chains
            .iter()
            .position(|c| c.ratchet_key == *their_key)
        {
            return Ok(index);
        }
        let (receiving_root, receiving_chain) = self
            .root_key
            .create_chain(their_key, self.sender_chain.ratchet_key.private_key())?;
        let new_ratchet_key = KeyPair::generate(rng);
        let (sending_root, sending_chain) =
            receiving_root.create_chain(their_key, new_ratchet_key.private_key())?;

        self.root_key = sending_root;
        self.receiver_chains.push(ReceiverChain {
            ratchet_key: *their_key,
            chain_key: receiving_chain,
            skipped: VecDeque::new(),
        });
        if self.receiver_chains.len() > MAX_RECEIVER_CHAINS {
            self.receiver_chains.remove(0);
        }
        self.previous_counter = self.sender_chain.chain_key.index().saturating_sub(1);
        self.sender_chain = SenderChain {
            ratchet_key: new_ratchet_key,
            chain_key: sending_chain,
        };
        Ok(self.receiver_chains.len().saturating_sub(1))
    }

    /// The keys for message `counter` in receiving chain `chain`: a stored skipped key (removed
    /// from the chain), or the keys found by a trial walk of the chain up to `counter`. A walk
    /// changes nothing yet: it returns the [`ChainAdvance`] to apply once the message has
    /// authenticated.
    fn message_keys(
        &mut self,
        chain: usize,
        counter: u32,
        budget: &mut u32,
    ) -> Result<(MessageKeys, Option<ChainAdvance>), SessionError> {
        let receiver = self
            .receiver_chains
            .get_mut(chain)
            .ok_or(SessionError::InvalidState)?;
        let chain_index = receiver.chain_key.index();
        if counter < chain_index {
            let position = receiver
                .skipped
                .iter()
                .position(|seed| seed.counter() == counter);
            return match position.and_then(|position| receiver.skipped.remove(position)) {
                Some(seed) => Ok((seed.derive(), None)),
                None => Err(SessionError::DuplicateMessage {
                    chain_index,
                    counter,
                }),
            };
        }
        let jump = counter - chain_index;
        // The second condition is the shared per-message budget (see `decrypt`): a deliberate
        // deviation from libsignal, which gives every session tried its own 25,000 steps.
        if jump > MAX_FORWARD_JUMPS || jump > *budget {
            return Err(SessionError::TooFarIntoFuture {
                chain_index,
                counter,
            });
        }
        *budget -= jump;
        // Only the newest MAX_MESSAGE_KEYS skipped keys survive the cap, so the commit resumes
        // from the first of them instead of walking the whole gap again.
        let first_kept = counter
            .saturating_sub(MAX_MESSAGE_KEYS_U32)
            .max(chain_index);
        let mut chain_key = receiver.chain_key.clone();
        let mut resume = None;
        while chain_key.index() < counter {
            if chain_key.index() == first_kept {
                resume = Some(chain_key.clone());
            }
            chain_key.advance().ok_or(SessionError::ChainExhausted)?;
        }
        let keys = chain_key.message_keys();
        let next = chain_key.next().ok_or(SessionError::ChainExhausted)?;
        Ok((
            keys,
            Some(ChainAdvance {
                chain,
                resume,
                counter,
                next,
            }),
        ))
    }

    /// Applies an authenticated trial walk: stores the keys of the skipped messages (at most
    /// the newest [`MAX_MESSAGE_KEYS`], dropping the oldest stored ones beyond that) and moves
    /// the chain past the message.
    fn commit_advance(&mut self, advance: ChainAdvance) -> Result<(), SessionError> {
        let ChainAdvance {
            chain,
            resume,
            counter,
            next,
        } = advance;
        let receiver = self
            .receiver_chains
            .get_mut(chain)
            .ok_or(SessionError::InvalidState)?;
        if let Some(mut chain_key) = resume {
            while chain_key.index() < counter {
                receiver.skipped.push_front(chain_key.message_key_seed());
                if receiver.skipped.len() > MAX_MESSAGE_KEYS {
                    receiver.skipped.pop_back();
                }
                chain_key.advance().ok_or(SessionError::ChainExhausted)?;
            }
        }
        receiver.chain_key = next;
        Ok(())
    }
}

/// A receiving chain's move past a message, computed by a trial walk and applied only after
/// the message authenticated.
struct ChainAdvance {
    /// Index of the receiving chain.
    chain: usize,
    /// The chain key at the first skipped position whose key is kept, if any were skipped.
    resume: Option<ChainKey>,
    /// The message's counter.
    counter: u32,
    /// The chain key after the message.
    next: ChainKey,
}

impl fmt::Debug for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            version,
            local_identity,
            remote_identity,
            local_registration_id,
            remote_registration_id,
            alice_base_key,
            root_key: _,
            previous_counter,
            sender_chain,
            receiver_chains,
            pending_pre_key,
        } = self;
        f.debug_struct("SessionState")
            .field("version", version)
            .field("local_identity", local_identity)
            .field("remote_identity", remote_identity)
            .field("local_registration_id", local_registration_id)
            .field("remote_registration_id", remote_registration_id)
            .field("alice_base_key", alice_base_key)
            .field("previous_counter", previous_counter)
            .field("sender_ratchet_key", sender_chain.ratchet_key.public_key())
            .field("sender_chain_index", &sender_chain.chain_key.index())
            .field("receiver_chains", &receiver_chains.len())
            .field("pending_pre_key", &pending_pre_key.is_some())
            .finish_non_exhaustive()
    }
}
