//! `SenderKeyState` (one sender chain) and `SenderKeyRecord` (the chains kept for one
//! `(sender, distribution id)` pair, newest first).

use core::fmt;
use std::collections::VecDeque;

use super::chain::{SenderChainKey, SenderMessageKey};
use super::{SenderKeyError, SenderKeyLimits};
use crate::keys::{PrivateKey, PublicKey};

/// Chain states kept per `(sender, distribution id)`; older ones are dropped.
pub const MAX_SENDER_KEY_STATES: usize = 5;

/// One sender chain: its id, current chain key, signing key and the keys of iterations that
/// were skipped and may still arrive.
#[derive(Clone, PartialEq, Eq)]
pub struct SenderKeyState {
    pub(crate) message_version: u8,
    pub(crate) chain_id: u32,
    pub(crate) chain_key: SenderChainKey,
    pub(crate) signing_key: PublicKey,
    /// Present only on the sender's own chain.
    pub(crate) signing_private_key: Option<PrivateKey>,
    /// Oldest first.
    pub(crate) skipped: VecDeque<SenderMessageKey>,
}

impl SenderKeyState {
    /// The chain id.
    #[must_use]
    pub const fn chain_id(&self) -> u32 {
        self.chain_id
    }

    /// The iteration of the next message in this chain.
    #[must_use]
    pub const fn iteration(&self) -> u32 {
        self.chain_key.iteration()
    }

    /// The public signing key every message of this chain is verified with.
    #[must_use]
    pub const fn signing_key(&self) -> &PublicKey {
        &self.signing_key
    }

    /// Whether this is one of our own chains (we hold the signing private key).
    #[must_use]
    pub const fn is_own_chain(&self) -> bool {
        self.signing_private_key.is_some()
    }

    /// Number of stored skipped message keys.
    #[must_use]
    pub fn skipped_key_count(&self) -> usize {
        self.skipped.len()
    }

    /// Returns the key for `iteration`, advancing the chain and storing the keys of skipped
    /// iterations (oldest evicted beyond the limit). A past iteration whose key is not stored
    /// is a duplicate.
    pub(crate) fn message_key_for(
        &mut self,
        iteration: u32,
        limits: SenderKeyLimits,
    ) -> Result<SenderMessageKey, SenderKeyError> {
        let current = self.chain_key.iteration();
        if iteration < current {
            let position = self
                .skipped
                .iter()
                .position(|key| key.iteration() == iteration);
            return position.and_then(|index| self.skipped.remove(index)).ok_or(
                SenderKeyError::DuplicateMessage {
                    chain_iteration: current,
                    iteration,
                },
            );
        }
        if iteration - current > limits.max_forward_jump {
            return Err(SenderKeyError::TooFarIntoFuture {
                chain_iteration: current,
                iteration,
            });
        }
        let max_skipped = limits.max_skipped_keys;
        let mut chain = self.chain_key.clone();
        while chain.iteration() < iteration {
            // Keys that would be evicted at once are not even derived into the store.
            if iteration - chain.iteration() <= u32::try_from(max_skipped).unwrap_or(u32::MAX) {
                self.skipped.push_back(chain.message_key());
                while self.skipped.len() > max_skipped {
                    self.skipped.pop_front();
                }
            }
            chain = chain.next().ok_or(SenderKeyError::ChainExhausted)?;
        }
        self.chain_key = chain.next().ok_or(SenderKeyError::ChainExhausted)?;
        Ok(chain.message_key())
    }
}

impl fmt::Debug for SenderKeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            message_version,
            chain_id,
            chain_key,
            signing_key,
            signing_private_key,
            skipped,
        } = self;
        f.debug_struct("SenderKeyState")
            .field("message_version", message_version)
            .field("chain_id", chain_id)
            .field("iteration", &chain_key.iteration())
            .field("signing_key", signing_key)
            .field("own_chain", &signing_private_key.is_some())
            .field("skipped_keys", &skipped.len())
            .finish()
    }
}

/// The sender chains kept for one `(sender device, distribution id)`, newest first. Persist
/// it with [`crate::persist::Persist`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SenderKeyRecord {
    pub(crate) states: VecDeque<SenderKeyState>,
}

impl SenderKeyRecord {
    /// A record with no chain.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the record holds no chain.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// The chains, newest first.
    pub fn states(&self) -> impl Iterator<Item = &SenderKeyState> {
        self.states.iter()
    }

    /// The newest chain (the one a sender encrypts with).
    #[must_use]
    pub fn current(&self) -> Option<&SenderKeyState> {
        self.states.front()
    }

    pub(crate) fn state_for_chain_id_mut(&mut self, chain_id: u32) -> Option<&mut SenderKeyState> {
        self.states
            .iter_mut()
            .find(|state| state.chain_id == chain_id)
    }

    /// Adds a chain as the newest. A chain with the same id and signing key already present
    /// is kept as it is (a repeated or later distribution message must not rewind it); one with
    /// the same id but another signing key is replaced. At most `max_states` are kept.
    pub(crate) fn add_state(&mut self, state: SenderKeyState, max_states: usize) {
        let existing = self
            .states
            .iter()
            .position(|s| s.chain_id == state.chain_id && s.signing_key == state.signing_key)
            .and_then(|index| self.states.remove(index));
        self.states.retain(|s| s.chain_id != state.chain_id);
        let state = existing.unwrap_or(state);
        let keep = max_states.clamp(1, MAX_SENDER_KEY_STATES);
        while self.states.len() >= keep {
            self.states.pop_back();
        }
        self.states.push_front(state);
    }
}

impl fmt::Debug for SenderKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.states.iter()).finish()
    }
}
