//! [`MemoryStore`]: the in-memory [`ProtocolStore`], with whole-store export and import.

use std::collections::{BTreeMap, BTreeSet};

use zeroize::Zeroizing;

use super::{Changes, LocalIdentity, ProtocolStore};
use crate::address::{Address, AgentId};
use crate::community::{CommunityId, CommunityState, EpochId};
use crate::devices::DeviceList;
use crate::error::ErrorClass;
use crate::keys::{
    KyberPreKeyId, KyberPreKeyRecord, PreKeyId, PreKeyRecord, PublicKey, SignedPreKeyId,
    SignedPreKeyRecord,
};
use crate::persist::PersistError;
use crate::prekey_lifecycle::PreKeyState;
use crate::sender_keys::SenderKeyRecord;
use crate::session::SessionRecord;
use crate::trust::TrustRecord;

/// Why a [`MemoryStore`] operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MemoryStoreError {
    /// A batch would overwrite a prekey with the same id (ids are never reused).
    #[error("prekey id {0} already exists")]
    PreKeyIdReused(u32),
    /// A batch would replace the local identity.
    #[error("the local identity already exists")]
    IdentityExists,
    /// Imported bytes do not decode.
    #[error("cannot import store: {0}")]
    Import(#[from] PersistError),
}

impl MemoryStoreError {
    /// The stable class of this error.
    #[must_use]
    pub const fn class(&self) -> ErrorClass {
        match self {
            Self::Import(_) => ErrorClass::InvalidState,
            Self::PreKeyIdReused(_) | Self::IdentityExists => ErrorClass::StoreError,
        }
    }
}

/// All protocol state of one device, in memory. Maps are ordered so [`MemoryStore::export`]
/// is deterministic: equal stores export equal bytes.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct MemoryStore {
    pub(crate) identity: Option<LocalIdentity>,
    pub(crate) sessions: BTreeMap<Address, SessionRecord>,
    pub(crate) pre_keys: BTreeMap<PreKeyId, PreKeyRecord>,
    pub(crate) signed_pre_keys: BTreeMap<SignedPreKeyId, SignedPreKeyRecord>,
    pub(crate) kyber_pre_keys: BTreeMap<KyberPreKeyId, KyberPreKeyRecord>,
    pub(crate) kyber_uses: BTreeSet<(KyberPreKeyId, [u8; 32])>,
    pub(crate) trust: BTreeMap<Address, TrustRecord>,
    pub(crate) device_lists: BTreeMap<AgentId, DeviceList>,
    pub(crate) prekey_state: Option<PreKeyState>,
    pub(crate) sender_keys: BTreeMap<(Address, EpochId), SenderKeyRecord>,
    pub(crate) communities: BTreeMap<CommunityId, CommunityState>,
}

impl core::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("identity", &self.identity)
            .field("sessions", &self.sessions.keys().collect::<Vec<_>>())
            .field("pre_keys", &self.pre_keys.len())
            .field("signed_pre_keys", &self.signed_pre_keys.len())
            .field("kyber_pre_keys", &self.kyber_pre_keys.len())
            .field("kyber_uses", &self.kyber_uses.len())
            .field("trust", &self.trust.len())
            .field("device_lists", &self.device_lists.len())
            .field("sender_keys", &self.sender_keys.len())
            .field("communities", &self.communities.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The whole store as versioned bytes (see [`crate::persist`]). Contains every secret of
    /// the device: encrypt it before it leaves memory.
    #[must_use]
    pub fn export(&self) -> Zeroizing<Vec<u8>> {
        crate::persist::export_store(self)
    }

    /// Loads bytes written by [`MemoryStore::export`].
    pub fn import(bytes: &[u8]) -> Result<Self, MemoryStoreError> {
        Ok(crate::persist::import_store(bytes)?)
    }

    /// The addresses this store holds sessions with, ascending.
    pub fn session_addresses(&self) -> impl Iterator<Item = &Address> {
        self.sessions.keys()
    }

    /// Checks a batch against the current content without changing anything, so
    /// [`ProtocolStore::commit`] can apply it without failing halfway.
    fn check(&self, changes: &Changes) -> Result<(), MemoryStoreError> {
        if changes.identity.is_some() && self.identity.is_some() {
            return Err(MemoryStoreError::IdentityExists);
        }
        let mut seen = BTreeSet::new();
        for record in &changes.pre_keys {
            if self.pre_keys.contains_key(&record.id()) || !seen.insert(record.id()) {
                return Err(MemoryStoreError::PreKeyIdReused(record.id().0));
            }
        }
        let mut seen = BTreeSet::new();
        for record in &changes.signed_pre_keys {
            if self.signed_pre_keys.contains_key(&record.id()) || !seen.insert(record.id()) {
                return Err(MemoryStoreError::PreKeyIdReused(record.id().0));
            }
        }
        let mut seen = BTreeSet::new();
        for record in &changes.kyber_pre_keys {
            if self.kyber_pre_keys.contains_key(&record.id()) || !seen.insert(record.id()) {
                return Err(MemoryStoreError::PreKeyIdReused(record.id().0));
            }
        }
        Ok(())
    }
}

impl ProtocolStore for MemoryStore {
    type Error = MemoryStoreError;

    fn local_identity(&self) -> Result<Option<LocalIdentity>, Self::Error> {
        Ok(self.identity.clone())
    }

    fn session(&self, address: &Address) -> Result<Option<SessionRecord>, Self::Error> {
        Ok(self.sessions.get(address).cloned())
    }

    fn pre_key(&self, id: PreKeyId) -> Result<Option<PreKeyRecord>, Self::Error> {
        Ok(self.pre_keys.get(&id).cloned())
    }

    fn pre_key_ids(&self) -> Result<Vec<PreKeyId>, Self::Error> {
        Ok(self.pre_keys.keys().copied().collect())
    }

    fn signed_pre_key(
        &self,
        id: SignedPreKeyId,
    ) -> Result<Option<SignedPreKeyRecord>, Self::Error> {
        Ok(self.signed_pre_keys.get(&id).cloned())
    }

    fn kyber_pre_key(&self, id: KyberPreKeyId) -> Result<Option<KyberPreKeyRecord>, Self::Error> {
        Ok(self.kyber_pre_keys.get(&id).cloned())
    }

    fn one_time_kyber_pre_key_ids(&self) -> Result<Vec<KyberPreKeyId>, Self::Error> {
        Ok(self
            .kyber_pre_keys
            .values()
            .filter(|record| !record.is_last_resort())
            .map(KyberPreKeyRecord::id)
            .collect())
    }

    fn kyber_last_resort_used(
        &self,
        id: KyberPreKeyId,
        base_key: &PublicKey,
    ) -> Result<bool, Self::Error> {
        Ok(self.kyber_uses.contains(&(id, *base_key.as_djb_bytes())))
    }

    fn trust(&self, address: &Address) -> Result<Option<TrustRecord>, Self::Error> {
        Ok(self.trust.get(address).copied())
    }

    fn device_list(&self, agent: &AgentId) -> Result<Option<DeviceList>, Self::Error> {
        Ok(self.device_lists.get(agent).cloned())
    }

    fn prekey_state(&self) -> Result<Option<PreKeyState>, Self::Error> {
        Ok(self.prekey_state.clone())
    }

    fn sender_key(
        &self,
        sender: &Address,
        key_id: EpochId,
    ) -> Result<Option<SenderKeyRecord>, Self::Error> {
        Ok(self.sender_keys.get(&(sender.clone(), key_id)).cloned())
    }

    fn community(&self, id: CommunityId) -> Result<Option<CommunityState>, Self::Error> {
        Ok(self.communities.get(&id).cloned())
    }

    fn commit(&mut self, changes: Changes) -> Result<(), Self::Error> {
        self.check(&changes)?;
        // Nothing below can fail, so the batch is applied entirely or (above) not at all.
        let Changes {
            identity,
            sessions,
            removed_sessions,
            pre_keys,
            removed_pre_keys,
            signed_pre_keys,
            removed_signed_pre_keys,
            kyber_pre_keys,
            removed_kyber_pre_keys,
            kyber_last_resort_uses,
            trust,
            device_lists,
            prekey_state,
            sender_keys,
            communities,
        } = changes;
        if identity.is_some() {
            self.identity = identity;
        }
        for address in removed_sessions {
            self.sessions.remove(&address);
        }
        self.sessions.extend(sessions);
        for id in removed_pre_keys {
            self.pre_keys.remove(&id);
        }
        self.pre_keys
            .extend(pre_keys.into_iter().map(|record| (record.id(), record)));
        for id in removed_signed_pre_keys {
            self.signed_pre_keys.remove(&id);
        }
        self.signed_pre_keys.extend(
            signed_pre_keys
                .into_iter()
                .map(|record| (record.id(), record)),
        );
        self.kyber_uses.extend(
            kyber_last_resort_uses
                .into_iter()
                .map(|(id, base)| (id, *base.as_djb_bytes())),
        );
        for id in removed_kyber_pre_keys {
            self.kyber_pre_keys.remove(&id);
            self.kyber_uses.retain(|(used, _)| *used != id);
        }
        self.kyber_pre_keys.extend(
            kyber_pre_keys
                .into_iter()
                .map(|record| (record.id(), record)),
        );
        self.trust.extend(trust);
        self.device_lists.extend(device_lists);
        if prekey_state.is_some() {
            self.prekey_state = prekey_state;
        }
        self.sender_keys.extend(sender_keys);
        self.communities.extend(communities);
        Ok(())
    }
}
