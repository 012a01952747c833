//! Storage for the facade: one trait with reads and exactly one atomic write.
//!
//! [`ProtocolStore`] has a read per record type and a single [`ProtocolStore::commit`] that
//! applies a [`Changes`] batch atomically. The facade ([`crate::transport::SignalTransport`])
//! reads what an operation needs, computes the new records with the pure core, and commits once;
//! a backend therefore maps each protocol operation onto one transaction (SQLite: `BEGIN …
//! COMMIT`), and an operation that fails — a rejected message, an untrusted identity or a failed
//! commit — leaves the stored state exactly as it was.
//!
//! [`MemoryStore`] is the in-memory backend; its whole content exports to versioned bytes
//! ([`MemoryStore::export`]) that hosts without a database (WASM, the CLI) persist.

pub mod conformance;
mod memory;

pub use memory::{MemoryStore, MemoryStoreError};

use core::fmt;

use crate::address::{Address, AgentId};
use crate::community::{CommunityId, CommunityState, EpochId};
use crate::devices::DeviceList;
use crate::keys::{
    IdentityKeyPair, KyberPreKeyId, KyberPreKeyRecord, PreKeyId, PreKeyRecord, PublicKey,
    RegistrationId, SignedPreKeyId, SignedPreKeyRecord,
};
use crate::prekey_lifecycle::PreKeyState;
use crate::sender_keys::SenderKeyRecord;
use crate::session::SessionRecord;
use crate::trust::TrustRecord;

/// The local device's long-term identity: its identity key pair and registration id.
#[derive(Clone, PartialEq, Eq)]
pub struct LocalIdentity {
    /// The identity key pair.
    pub key_pair: IdentityKeyPair,
    /// The registration id.
    pub registration_id: RegistrationId,
}

impl fmt::Debug for LocalIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            key_pair,
            registration_id,
        } = self;
        f.debug_struct("LocalIdentity")
            .field("identity_key", key_pair.identity_key())
            .field("registration_id", registration_id)
            .finish_non_exhaustive()
    }
}

/// A batch of writes applied atomically by [`ProtocolStore::commit`].
///
/// Puts replace any existing record with the same key; removals of absent records are no-ops.
/// Within one batch removals of a kind are applied before its puts, and a removed last-resort
/// Kyber key takes its use records with it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// The local identity (first run only).
    pub identity: Option<LocalIdentity>,
    /// Sessions to store.
    pub sessions: Vec<(Address, SessionRecord)>,
    /// Sessions to delete (devices that went away).
    pub removed_sessions: Vec<Address>,
    /// New one-time EC prekeys.
    pub pre_keys: Vec<PreKeyRecord>,
    /// Consumed one-time EC prekeys.
    pub removed_pre_keys: Vec<PreKeyId>,
    /// New signed prekeys.
    pub signed_pre_keys: Vec<SignedPreKeyRecord>,
    /// Expired signed prekeys.
    pub removed_signed_pre_keys: Vec<SignedPreKeyId>,
    /// New Kyber prekeys (one-time and last-resort).
    pub kyber_pre_keys: Vec<KyberPreKeyRecord>,
    /// Consumed one-time Kyber prekeys and expired last-resort keys.
    pub removed_kyber_pre_keys: Vec<KyberPreKeyId>,
    /// Uses of a last-resort Kyber key: the key id and the PreKey message's base key.
    pub kyber_last_resort_uses: Vec<(KyberPreKeyId, PublicKey)>,
    /// Trust records to store.
    pub trust: Vec<(Address, TrustRecord)>,
    /// Device lists to store.
    pub device_lists: Vec<(AgentId, DeviceList)>,
    /// The new prekey bookkeeping.
    pub prekey_state: Option<PreKeyState>,
    /// Sender-key records to store, keyed by (sender device, epoch = distribution id); the
    /// local device's own chains are stored under its own address.
    pub sender_keys: Vec<((Address, EpochId), SenderKeyRecord)>,
    /// Community states to store.
    pub communities: Vec<(CommunityId, CommunityState)>,
}

impl Changes {
    /// Whether the batch writes nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl fmt::Debug for Changes {
    /// Counts only: the batch carries private keys.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Changes")
            .field("identity", &self.identity.is_some())
            .field("sessions", &self.sessions.len())
            .field("removed_sessions", &self.removed_sessions)
            .field("pre_keys", &self.pre_keys.len())
            .field("removed_pre_keys", &self.removed_pre_keys)
            .field("signed_pre_keys", &self.signed_pre_keys.len())
            .field("removed_signed_pre_keys", &self.removed_signed_pre_keys)
            .field("kyber_pre_keys", &self.kyber_pre_keys.len())
            .field("removed_kyber_pre_keys", &self.removed_kyber_pre_keys)
            .field("kyber_last_resort_uses", &self.kyber_last_resort_uses.len())
            .field("trust", &self.trust.len())
            .field("device_lists", &self.device_lists.len())
            .field("prekey_state", &self.prekey_state.is_some())
            .field("sender_keys", &self.sender_keys.len())
            .field("communities", &self.communities.len())
            .finish()
    }
}

/// Persistent protocol state of one local device.
///
/// Reads return owned copies and may fail (a database can); errors are surfaced by the facade
/// as [`crate::transport::TransportError::Store`], never swallowed. [`ProtocolStore::commit`]
/// must be all-or-nothing: when it returns an error, no part of the batch may be visible.
pub trait ProtocolStore {
    /// The backend's error type.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The local identity, `None` before the first [`crate::transport::SignalTransport::ensure_ready`].
    fn local_identity(&self) -> Result<Option<LocalIdentity>, Self::Error>;
    /// The sessions with one remote device.
    fn session(&self, address: &Address) -> Result<Option<SessionRecord>, Self::Error>;
    /// A one-time EC prekey.
    fn pre_key(&self, id: PreKeyId) -> Result<Option<PreKeyRecord>, Self::Error>;
    /// Ids of all one-time EC prekeys left, ascending.
    fn pre_key_ids(&self) -> Result<Vec<PreKeyId>, Self::Error>;
    /// A signed prekey.
    fn signed_pre_key(&self, id: SignedPreKeyId)
    -> Result<Option<SignedPreKeyRecord>, Self::Error>;
    /// A Kyber prekey (one-time or last-resort).
    fn kyber_pre_key(&self, id: KyberPreKeyId) -> Result<Option<KyberPreKeyRecord>, Self::Error>;
    /// Ids of all one-time (not last-resort) Kyber prekeys left, ascending.
    fn one_time_kyber_pre_key_ids(&self) -> Result<Vec<KyberPreKeyId>, Self::Error>;
    /// Whether the last-resort key `id` was already used with this base key.
    fn kyber_last_resort_used(
        &self,
        id: KyberPreKeyId,
        base_key: &PublicKey,
    ) -> Result<bool, Self::Error>;
    /// The trust record of a remote device.
    fn trust(&self, address: &Address) -> Result<Option<TrustRecord>, Self::Error>;
    /// The device list of an agent.
    fn device_list(&self, agent: &AgentId) -> Result<Option<DeviceList>, Self::Error>;
    /// The prekey bookkeeping.
    fn prekey_state(&self) -> Result<Option<PreKeyState>, Self::Error>;
    /// The sender-key record of `(sender device, epoch)`.
    fn sender_key(
        &self,
        sender: &Address,
        key_id: EpochId,
    ) -> Result<Option<SenderKeyRecord>, Self::Error>;
    /// The state of a community.
    fn community(&self, id: CommunityId) -> Result<Option<CommunityState>, Self::Error>;
    /// Applies `changes` atomically.
    fn commit(&mut self, changes: Changes) -> Result<(), Self::Error>;
}
