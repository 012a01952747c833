//! `ensure_ready`: create the identity on first use, rotate and replenish prekeys, and say what
//! to publish.

use rand_core::CryptoRng;

use super::error::store;
use super::{SignalTransport, TransportError};
use crate::keys::{
    IdentityKeyPair, KyberPreKeyId, KyberPreKeyRecord, RegistrationId, SignedPreKeyId,
    SignedPreKeyRecord,
};
use crate::pqxdh::{KyberPreKeyPublic, PreKeyPublic, SignedPreKeyPublic};
use crate::prekey_lifecycle::{Inventory, PublishPlan, refresh};
use crate::store::{Changes, LocalIdentity, ProtocolStore};
use crate::time::Timestamp;

/// What [`SignalTransport::ensure_ready`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rotation {
    /// The identity was created by this call (first run).
    pub identity_created: bool,
    /// A new signed prekey became current.
    pub new_signed_pre_key: Option<SignedPreKeyId>,
    /// A new last-resort Kyber key became current.
    pub new_last_resort_kyber_pre_key: Option<KyberPreKeyId>,
    /// Signed prekeys deleted after their grace period.
    pub removed_signed_pre_keys: Vec<SignedPreKeyId>,
    /// Last-resort Kyber keys deleted after their grace period.
    pub removed_last_resort_kyber_pre_keys: Vec<KyberPreKeyId>,
}

/// The result of [`SignalTransport::ensure_ready`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadyReport {
    /// What to publish: the current long-lived keys and any new one-time keys.
    pub plan: PublishPlan,
    /// What was created, rotated or deleted.
    pub rotation: Rotation,
}

impl ReadyReport {
    /// Whether the key server needs an upload (anything new since the last call).
    #[must_use]
    pub fn needs_upload(&self) -> bool {
        self.rotation.identity_created
            || self.rotation.new_signed_pre_key.is_some()
            || self.rotation.new_last_resort_kyber_pre_key.is_some()
            || !self.plan.one_time_pre_keys.is_empty()
            || !self.plan.one_time_kyber_pre_keys.is_empty()
    }
}

fn signed_public(record: &SignedPreKeyRecord) -> SignedPreKeyPublic {
    SignedPreKeyPublic {
        id: record.id(),
        public_key: *record.public_key(),
        signature: *record.signature(),
    }
}

fn kyber_public(record: &KyberPreKeyRecord) -> KyberPreKeyPublic {
    KyberPreKeyPublic {
        id: record.id(),
        public_key: record.public_key().clone(),
        signature: *record.signature(),
    }
}

impl<S: ProtocolStore> SignalTransport<S> {
    /// Makes the device ready to be contacted and returns what to publish.
    ///
    /// On first use it creates the identity key pair and registration id; then it rotates the
    /// signed prekey and the last-resort Kyber key when they are older than the policy allows,
    /// deletes retired keys past their grace period, and generates one-time EC and Kyber
    /// prekeys when fewer than the threshold are left. Everything is committed at once.
    /// When nothing is due it draws no randomness, writes nothing, and returns the current
    /// long-lived keys with no one-time keys ([`ReadyReport::needs_upload`] is `false`).
    pub fn ensure_ready<R: CryptoRng + ?Sized>(
        &mut self,
        now: Timestamp,
        rng: &mut R,
    ) -> Result<ReadyReport, TransportError<S::Error>> {
        let mut changes = Changes::default();
        let identity = match store(self.store.local_identity())? {
            Some(identity) => identity,
            None => {
                let key_pair = IdentityKeyPair::generate(rng);
                let registration_id = RegistrationId::generate(rng);
                let identity = LocalIdentity {
                    key_pair,
                    registration_id,
                };
                changes.identity = Some(identity.clone());
                identity
            }
        };
        let state = store(self.store.prekey_state())?.unwrap_or_default();
        let current_signed = match state.current_signed_pre_key {
            Some(id) => store(self.store.signed_pre_key(id))?,
            None => None,
        };
        let current_last_resort = match state.current_last_resort {
            Some(id) => store(self.store.kyber_pre_key(id))?.filter(|r| r.is_last_resort()),
            None => None,
        };
        let inventory = Inventory {
            state: &state,
            current_signed: current_signed.as_ref(),
            current_last_resort: current_last_resort.as_ref(),
            one_time_pre_keys: store(self.store.pre_key_ids())?.len(),
            one_time_kyber_pre_keys: store(self.store.one_time_kyber_pre_key_ids())?.len(),
        };
        let refresh = refresh(
            &self.config.prekey_policy,
            &identity.key_pair,
            &inventory,
            now,
            rng,
        )?;

        let signed = refresh
            .new_signed_pre_key
            .as_ref()
            .or(current_signed.as_ref())
            .map(signed_public)
            .ok_or(TransportError::NotReady)?;
        let last_resort = refresh
            .new_last_resort
            .as_ref()
            .or(current_last_resort.as_ref())
            .map(kyber_public)
            .ok_or(TransportError::NotReady)?;
        let plan = PublishPlan {
            agent_id: self.local.agent_id.clone(),
            device_id: self.local.device_id,
            registration_id: identity.registration_id,
            identity_key: *identity.key_pair.identity_key(),
            signed_pre_key: signed,
            last_resort_kyber_pre_key: last_resort,
            one_time_pre_keys: refresh
                .new_pre_keys
                .iter()
                .map(|record| PreKeyPublic {
                    id: record.id(),
                    public_key: *record.public_key(),
                })
                .collect(),
            one_time_kyber_pre_keys: refresh
                .new_kyber_pre_keys
                .iter()
                .map(kyber_public)
                .collect(),
        };
        let rotation = Rotation {
            identity_created: changes.identity.is_some(),
            new_signed_pre_key: refresh.new_signed_pre_key.as_ref().map(|r| r.id()),
            new_last_resort_kyber_pre_key: refresh.new_last_resort.as_ref().map(|r| r.id()),
            removed_signed_pre_keys: refresh.removed_signed_pre_keys.clone(),
            removed_last_resort_kyber_pre_keys: refresh.removed_last_resort.clone(),
        };

        if !refresh.is_empty() {
            changes.signed_pre_keys.extend(refresh.new_signed_pre_key);
            changes.kyber_pre_keys.extend(refresh.new_last_resort);
            changes.kyber_pre_keys.extend(refresh.new_kyber_pre_keys);
            changes.pre_keys = refresh.new_pre_keys;
            changes.removed_signed_pre_keys = refresh.removed_signed_pre_keys;
            changes.removed_kyber_pre_keys = refresh.removed_last_resort;
            changes.prekey_state = Some(refresh.state);
        }
        if !changes.is_empty() {
            store(self.store.commit(changes))?;
        }
        Ok(ReadyReport { plan, rotation })
    }

    /// The full set of keys currently published: the long-lived keys and every one-time key
    /// still held. For repairing drift when the key server's stock disagrees with ours (for
    /// example after an upload that failed). Reads only.
    pub fn current_publish_plan(&self) -> Result<PublishPlan, TransportError<S::Error>> {
        let identity = self.identity()?;
        let state = store(self.store.prekey_state())?.ok_or(TransportError::NotReady)?;
        let signed = match state.current_signed_pre_key {
            Some(id) => store(self.store.signed_pre_key(id))?,
            None => None,
        }
        .ok_or(TransportError::NotReady)?;
        let last_resort = match state.current_last_resort {
            Some(id) => store(self.store.kyber_pre_key(id))?,
            None => None,
        }
        .ok_or(TransportError::NotReady)?;
        let mut one_time_pre_keys = Vec::new();
        for id in store(self.store.pre_key_ids())? {
            if let Some(record) = store(self.store.pre_key(id))? {
                one_time_pre_keys.push(PreKeyPublic {
                    id,
                    public_key: *record.public_key(),
                });
            }
        }
        let mut one_time_kyber_pre_keys = Vec::new();
        for id in store(self.store.one_time_kyber_pre_key_ids())? {
            if let Some(record) = store(self.store.kyber_pre_key(id))? {
                one_time_kyber_pre_keys.push(kyber_public(&record));
            }
        }
        Ok(PublishPlan {
            agent_id: self.local.agent_id.clone(),
            device_id: self.local.device_id,
            registration_id: identity.registration_id,
            identity_key: *identity.key_pair.identity_key(),
            signed_pre_key: signed_public(&signed),
            last_resort_kyber_pre_key: kyber_public(&last_resort),
            one_time_pre_keys,
            one_time_kyber_pre_keys,
        })
    }
}
