//! Outgoing: starting sessions from bundles and encrypting to every device of an agent.

use core::fmt;

use rand_core::CryptoRng;

use super::error::store;
use super::{SignalTransport, TransportError};
use crate::address::{Address, AgentId, DeviceId};
use crate::pqxdh::PreKeyBundle;
use crate::session::{SessionError, encrypt, process_prekey_bundle};
use crate::store::{Changes, ProtocolStore};
use crate::time::Timestamp;
use crate::trust::{TrustRecord, observe};
use crate::wire::{CIPHERTEXT_MESSAGE_PRE_KYBER_VERSION, CiphertextMessageType};

/// Target devices, and agents whose device list is unknown.
type Targets = (Vec<Address>, Vec<AgentId>);

/// Which devices of an agent a message goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceTarget {
    /// One device only.
    One(DeviceId),
    /// Every active device of the agent, plus the sender's own other active devices (so the
    /// sender's other devices see the conversation).
    All,
}

/// One Signal ciphertext for one device, ready for the mailbox.
#[derive(Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// The device it is for.
    pub destination: Address,
    /// 3 (PreKey) until the peer has replied, then 2 (Whisper).
    pub message_type: CiphertextMessageType,
    /// The serialized Signal message.
    pub body: Vec<u8>,
}

impl fmt::Debug for OutgoingMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingMessage")
            .field("destination", &self.destination)
            .field("message_type", &self.message_type)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// What [`SignalTransport::process_bundle`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BundleOutcome {
    /// The bundle's identity key differs from the approved one: the session is stored but
    /// encrypting to the device fails until the new key is approved.
    pub identity_changed: bool,
    /// The device was not in the agent's device list before.
    pub new_device: bool,
}

impl<S: ProtocolStore> SignalTransport<S> {
    /// Starts a session with `address` from its fetched `bundle` (both prekey signatures are
    /// verified first). The first session with an address trusts its identity key (TOFU); a
    /// different key than the approved one is recorded as an identity change. The device joins
    /// its agent's device list.
    ///
    /// Draws what [`process_prekey_bundle`] draws.
    pub fn process_bundle<R: CryptoRng + ?Sized>(
        &mut self,
        address: &Address,
        bundle: &PreKeyBundle,
        now: Timestamp,
        rng: &mut R,
    ) -> Result<BundleOutcome, TransportError<S::Error>> {
        self.check_peer(address)?;
        if bundle.device_id != address.device_id.get() {
            return Err(TransportError::BundleDeviceMismatch {
                address: address.clone(),
                bundle_device: bundle.device_id,
            });
        }
        let identity = self.identity()?;
        let existing = store(self.store.session(address))?;
        let record = process_prekey_bundle(
            existing.as_ref(),
            &identity.key_pair,
            identity.registration_id,
            bundle,
            self.config.session_options,
            now,
            rng,
        )?;
        let mut changes = Changes::default();
        let identity_changed =
            self.observe_identity(address, &bundle.identity_key, &mut changes)?;
        let new_device = self.add_device(address, &mut changes)?;
        changes.sessions.push((address.clone(), record));
        store(self.store.commit(changes))?;
        Ok(BundleOutcome {
            identity_changed,
            new_device,
        })
    }

    /// Encrypts `plaintext` to `agent`: one Signal ciphertext per target device (see
    /// [`DeviceTarget`]), all or nothing.
    ///
    /// Fails without encrypting anything when a target's identity changed and was not approved
    /// ([`TransportError::UntrustedIdentity`]) or a target has no usable session (none, an
    /// expired unacknowledged one, one with another identity key, or an X3DH session while
    /// X3DH is off), or the agent's device list is unknown
    /// ([`TransportError::MissingSessions`]: fetch those bundles, process them, retry).
    /// Consumes no randomness.
    pub fn encrypt_to_agent(
        &mut self,
        agent: &AgentId,
        target: DeviceTarget,
        plaintext: &[u8],
        now: Timestamp,
    ) -> Result<Vec<OutgoingMessage>, TransportError<S::Error>> {
        let identity = self.identity()?;
        let local_identity = *identity.key_pair.identity_key();
        let (targets, unknown_agents) = self.targets(agent, target)?;
        let mut untrusted = Vec::new();
        let mut missing = Vec::new();
        let mut messages = Vec::new();
        let mut changes = Changes::default();
        for address in targets {
            let trust = store(self.store.trust(&address))?;
            let Some(record) = store(self.store.session(&address))? else {
                missing.push(address);
                continue;
            };
            let Some(trusted) = trust.as_ref().and_then(TrustRecord::trusted_identity) else {
                untrusted.push(address);
                continue;
            };
            // A session with a key other than the approved one (e.g. an older session after
            // the user approved a new key) cannot be used: a fresh bundle is needed.
            if record.remote_identity() != Some(trusted) {
                missing.push(address);
                continue;
            }
            // With X3DH off, an existing X3DH session is not used either (fail closed): a
            // PQXDH session from a fresh bundle replaces it.
            if record.session_version() == Some(CIPHERTEXT_MESSAGE_PRE_KYBER_VERSION)
                && !self.config.session_options.accept_x3dh
            {
                missing.push(address);
                continue;
            }
            match encrypt(&record, &local_identity, trusted, plaintext, now) {
                Ok((record, message)) => {
                    messages.push(OutgoingMessage {
                        destination: address.clone(),
                        message_type: message.message_type(),
                        body: message.serialize().to_vec(),
                    });
                    changes.sessions.push((address, record));
                }
                Err(SessionError::SessionNotFound) => missing.push(address),
                Err(error) => return Err(error.into()),
            }
        }
        if !untrusted.is_empty() {
            return Err(TransportError::UntrustedIdentity {
                addresses: untrusted,
            });
        }
        if !missing.is_empty() || !unknown_agents.is_empty() {
            return Err(TransportError::MissingSessions {
                addresses: missing,
                unknown_agents,
            });
        }
        if !changes.is_empty() {
            store(self.store.commit(changes))?;
        }
        Ok(messages)
    }

    /// The devices a message to `agent` goes to, and agents whose device list is unknown.
    fn targets(
        &self,
        agent: &AgentId,
        target: DeviceTarget,
    ) -> Result<Targets, TransportError<S::Error>> {
        match target {
            DeviceTarget::One(device) => {
                let address = Address::new(agent.clone(), device);
                self.check_peer(&address)?;
                Ok((vec![address], Vec::new()))
            }
            DeviceTarget::All => {
                let mut targets = Vec::new();
                let mut unknown = Vec::new();
                let own = &self.local.agent_id;
                if agent != own {
                    match store(self.store.device_list(agent))? {
                        Some(list) if !list.is_empty() => targets.extend(
                            list.devices()
                                .map(|device| Address::new(agent.clone(), device)),
                        ),
                        _ => unknown.push(agent.clone()),
                    }
                }
                if let Some(list) = store(self.store.device_list(own))? {
                    targets.extend(
                        list.devices()
                            .filter(|device| *device != self.local.device_id)
                            .map(|device| Address::new(own.clone(), device)),
                    );
                }
                Ok((targets, unknown))
            }
        }
    }

    /// Applies the trust rules to a key seen for `address`, queueing the new trust record.
    pub(super) fn observe_identity(
        &self,
        address: &Address,
        seen: &crate::keys::IdentityKey,
        changes: &mut Changes,
    ) -> Result<bool, TransportError<S::Error>> {
        let existing = store(self.store.trust(address))?;
        let observation = observe(existing.as_ref(), seen);
        if existing != Some(observation.record) {
            changes.trust.push((address.clone(), observation.record));
        }
        Ok(observation.identity_changed)
    }

    /// Adds `address`'s device to its agent's list (never the local device), queueing the new
    /// list; returns whether it was new.
    pub(super) fn add_device(
        &self,
        address: &Address,
        changes: &mut Changes,
    ) -> Result<bool, TransportError<S::Error>> {
        let mut list = store(self.store.device_list(&address.agent_id))?.unwrap_or_default();
        if !list.insert(address.device_id) {
            return Ok(false);
        }
        changes.device_lists.push((address.agent_id.clone(), list));
        Ok(true)
    }
}
