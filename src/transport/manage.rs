//! Trust decisions, safety numbers and device lists.

use super::error::store;
use super::{SAFETY_NUMBER_VERSION, SignalTransport, TransportError};
use crate::address::{Address, AgentId, DeviceId};
use crate::devices::{DeviceList, DeviceListChange};
use crate::fingerprint::Fingerprint;
use crate::keys::IdentityKey;
use crate::store::{Changes, ProtocolStore};
use crate::trust::{self, TrustRecord};

impl<S: ProtocolStore> SignalTransport<S> {
    /// The trust record of a remote device, if any session was ever made with it.
    pub fn trust(
        &self,
        address: &Address,
    ) -> Result<Option<TrustRecord>, TransportError<S::Error>> {
        store(self.store.trust(address))
    }

    /// The user accepts `expected`, the identity key of `address` they were shown (after an
    /// identity change): encryption to it works again and `verified` is cleared. Returns the
    /// approved key. Approving the already trusted key changes nothing.
    ///
    /// Approval names the key so it cannot land on a different one: if the newest key seen for
    /// `address` is not `expected` (another change arrived after the app showed it), this
    /// fails with [`TransportError::IdentityKeyMismatch`] and changes nothing; show the user
    /// the new key ([`Self::trust`], [`Self::safety_number`]) and ask again.
    pub fn approve_identity(
        &mut self,
        address: &Address,
        expected: &IdentityKey,
    ) -> Result<IdentityKey, TransportError<S::Error>> {
        let record = store(self.store.trust(address))?
            .ok_or_else(|| TransportError::UnknownAddress(address.clone()))?;
        if record.current_identity() != expected {
            return Err(TransportError::IdentityKeyMismatch {
                address: address.clone(),
                current: *record.current_identity(),
            });
        }
        let approved = trust::approve(&record);
        if approved != record {
            let changes = Changes {
                trust: vec![(address.clone(), approved)],
                ..Changes::default()
            };
            store(self.store.commit(changes))?;
        }
        Ok(*approved.current_identity())
    }

    /// Marks the trusted key of `address` as verified (the user compared safety numbers).
    /// Fails with [`TransportError::IdentityNotApproved`] while an identity change is pending.
    pub fn mark_verified(&mut self, address: &Address) -> Result<(), TransportError<S::Error>> {
        let record = store(self.store.trust(address))?
            .ok_or_else(|| TransportError::UnknownAddress(address.clone()))?;
        let verified = trust::mark_verified(&record)
            .ok_or_else(|| TransportError::IdentityNotApproved(address.clone()))?;
        if verified != record {
            let changes = Changes {
                trust: vec![(address.clone(), verified)],
                ..Changes::default()
            };
            store(self.store.commit(changes))?;
        }
        Ok(())
    }

    /// The safety number between this device and `address` (version 2, agent ids as stable
    /// ids), over the newest key seen for the peer — the one the user would approve.
    pub fn safety_number(
        &self,
        address: &Address,
    ) -> Result<Fingerprint, TransportError<S::Error>> {
        let identity = self.identity()?;
        let record = store(self.store.trust(address))?
            .ok_or_else(|| TransportError::UnknownAddress(address.clone()))?;
        Ok(Fingerprint::new(
            SAFETY_NUMBER_VERSION,
            self.config.safety_number_iterations,
            self.local.agent_id.as_bytes(),
            identity.key_pair.identity_key(),
            address.agent_id.as_bytes(),
            record.current_identity(),
        )?)
    }

    /// The known active devices of `agent` (for the local agent: the other devices).
    pub fn devices(&self, agent: &AgentId) -> Result<Vec<DeviceId>, TransportError<S::Error>> {
        Ok(store(self.store.device_list(agent))?
            .map(|list| list.devices().collect())
            .unwrap_or_default())
    }

    /// Replaces `agent`'s device list by the server's list; sessions of devices that are no
    /// longer listed are deleted with them. The local device is never listed.
    pub fn update_device_list(
        &mut self,
        agent: &AgentId,
        devices: &[DeviceId],
    ) -> Result<DeviceListChange, TransportError<S::Error>> {
        let mut list = store(self.store.device_list(agent))?.unwrap_or_default();
        let change = list.replace(
            devices
                .iter()
                .copied()
                .filter(|device| !self.is_local(agent, *device)),
        );
        self.commit_device_change(agent, list, &change)?;
        Ok(change)
    }

    /// Drops the devices the server reported stale from `agent`'s list, with their sessions.
    pub fn drop_stale_devices(
        &mut self,
        agent: &AgentId,
        stale: &[DeviceId],
    ) -> Result<DeviceListChange, TransportError<S::Error>> {
        let Some(mut list) = store(self.store.device_list(agent))? else {
            return Ok(DeviceListChange::default());
        };
        let change = list.remove_stale(stale.iter().copied());
        self.commit_device_change(agent, list, &change)?;
        Ok(change)
    }

    fn is_local(&self, agent: &AgentId, device: DeviceId) -> bool {
        *agent == self.local.agent_id && device == self.local.device_id
    }

    fn commit_device_change(
        &mut self,
        agent: &AgentId,
        list: DeviceList,
        change: &DeviceListChange,
    ) -> Result<(), TransportError<S::Error>> {
        if change.is_empty() {
            return Ok(());
        }
        // Trust records stay: a device id that comes back with another key is an identity
        // change the user should see, not a fresh first use.
        let changes = Changes {
            removed_sessions: change
                .removed
                .iter()
                .map(|device| Address::new(agent.clone(), *device))
                .collect(),
            device_lists: vec![(agent.clone(), list)],
            ..Changes::default()
        };
        store(self.store.commit(changes))
    }
}
