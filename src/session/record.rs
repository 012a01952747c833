//! `SessionRecord`: the current session with a peer device plus archived earlier ones.
//!
//! Archived sessions are kept because messages encrypted in an older session can still be in
//! flight (or the peer may not have seen our newer session yet); decryption falls back to them
//! and promotes whichever one succeeds.

use core::fmt;
use std::collections::VecDeque;

use super::state::SessionState;
use crate::keys::{IdentityKey, PublicKey, RegistrationId};

/// Archived sessions kept per record; older ones are dropped.
pub const MAX_ARCHIVED_STATES: usize = 40;

/// Skipped message keys kept across a whole record (current and archived sessions). Each
/// receiving chain keeps at most [`super::MAX_MESSAGE_KEYS`] (2,000) and a session at most five
/// chains, so without this cap a peer could grow a record of 41 sessions to about 410,000 keys
/// (16 MB). When a decryption leaves more than this, stored keys of the oldest archived
/// sessions are dropped first (oldest chains, oldest keys first); the current session alone
/// never exceeds the cap. Messages whose keys were dropped fail like any evicted key.
pub const MAX_RECORD_SKIPPED_KEYS: usize = 20_000;

/// All sessions with one remote device. Persist it with [`crate::persist::Persist`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SessionRecord {
    pub(crate) current: Option<SessionState>,
    /// Most recently archived first.
    pub(crate) previous: VecDeque<SessionState>,
}

impl SessionRecord {
    /// A record with no sessions.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether there is a current session.
    #[must_use]
    pub const fn has_current_session(&self) -> bool {
        self.current.is_some()
    }

    /// Number of archived sessions.
    #[must_use]
    pub fn archived_session_count(&self) -> usize {
        self.previous.len()
    }

    /// The remote identity of the current session. Callers check this against their trust
    /// store before persisting a record returned by a decrypt operation.
    #[must_use]
    pub fn remote_identity(&self) -> Option<&IdentityKey> {
        self.current.as_ref().map(|state| &state.remote_identity)
    }

    /// The local identity the current session was built with.
    #[must_use]
    pub fn local_identity(&self) -> Option<&IdentityKey> {
        self.current.as_ref().map(|state| &state.local_identity)
    }

    /// The peer's registration id in the current session.
    #[must_use]
    pub fn remote_registration_id(&self) -> Option<RegistrationId> {
        self.current
            .as_ref()
            .map(|state| state.remote_registration_id)
    }

    /// The current session's version (3 = X3DH, 4 = PQXDH).
    #[must_use]
    pub fn session_version(&self) -> Option<u8> {
        self.current.as_ref().map(|state| state.version)
    }

    /// Whether the current session still sends PreKey messages (no reply decrypted yet).
    #[must_use]
    pub fn has_unacknowledged_pre_key(&self) -> bool {
        self.current
            .as_ref()
            .is_some_and(|state| state.pending_pre_key.is_some())
    }

    /// Moves the current session to the archive (e.g. after the peer's identity changed), so
    /// the next message needs a new session while late messages can still be decrypted.
    pub fn archive_current_session(&mut self) {
        if let Some(state) = self.current.take() {
            self.push_archived(state);
        }
    }

    fn push_archived(&mut self, state: SessionState) {
        self.previous.push_front(state);
        self.previous.truncate(MAX_ARCHIVED_STATES);
    }

    /// Makes `state` current, archiving the previous current session.
    pub(crate) fn promote_state(&mut self, state: SessionState) {
        self.archive_current_session();
        self.current = Some(state);
    }

    /// Replaces archived session `index` by its updated form and makes it current.
    pub(crate) fn promote_archived(&mut self, index: usize, updated: SessionState) {
        // Remove first so the index is still valid, then archive the current session.
        let _stale = self.previous.remove(index);
        self.promote_state(updated);
    }

    /// Total skipped message keys stored in the record.
    pub(crate) fn skipped_key_count(&self) -> usize {
        self.current
            .iter()
            .chain(self.previous.iter())
            .flat_map(|state| state.receiver_chains.iter())
            .map(|chain| chain.skipped.len())
            .sum()
    }

    /// Enforces [`MAX_RECORD_SKIPPED_KEYS`]: drops stored keys of the oldest archived sessions
    /// first (within a session its oldest chains first, within a chain its oldest keys first)
    /// until the record is within the cap.
    pub(crate) fn enforce_skipped_key_cap(&mut self) {
        let mut excess = self
            .skipped_key_count()
            .saturating_sub(MAX_RECORD_SKIPPED_KEYS);
        // `previous` is most recent first, so the oldest archived session is at the back.
        for state in self.previous.iter_mut().rev() {
            for chain in &mut state.receiver_chains {
                if excess == 0 {
                    return;
                }
                // Newest first: the oldest keys are at the back.
                let dropped = excess.min(chain.skipped.len());
                chain.skipped.truncate(chain.skipped.len() - dropped);
                excess -= dropped;
            }
        }
    }

    /// If a session (current or archived) was started by a PreKey message with this version
    /// and base key, makes it current and returns `true`.
    pub(crate) fn promote_matching_session(&mut self, version: u8, base_key: &PublicKey) -> bool {
        if self
            .current
            .as_ref()
            .is_some_and(|state| state.matches(version, base_key))
        {
            return true;
        }
        let Some(index) = self
            .previous
            .iter()
            .position(|state| state.matches(version, base_key))
        else {
            return false;
        };
        match self.previous.remove(index) {
            Some(state) => {
                self.promote_state(state);
                true
            }
            None => false,
        }
    }
}

impl fmt::Debug for SessionRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { current, previous } = self;
        f.debug_struct("SessionRecord")
            .field("current", current)
            .field("archived_sessions", &previous.len())
            .finish()
    }
}
