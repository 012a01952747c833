//! `SignalTransport`: the app-facing facade for direct messages.
//!
//! Every operation reads what it needs from the [`ProtocolStore`], computes new records with the
//! pure core, and commits them in exactly one [`ProtocolStore::commit`]; when anything fails —
//! a malformed or forged message, an untrusted identity, a missing session, the store itself —
//! nothing is committed and the stored state stays exactly as it was.
//!
//! Fail closed by construction: the only way to produce bytes for a peer is
//! [`SignalTransport::encrypt_to_agent`], which returns Signal ciphertexts only, one per target
//! device, or an error. There is no plaintext path and no partial fan-out.
//!
//! Randomness and time are parameters of the calls that need them.

mod error;
mod manage;
mod ready;
mod receive;
mod send;

pub use error::TransportError;
pub use ready::{ReadyReport, Rotation};
pub use receive::Decrypted;
pub use send::{BundleOutcome, DeviceTarget, OutgoingMessage};

use crate::address::Address;
use crate::fingerprint::DEFAULT_ITERATIONS;
use crate::pqxdh::SessionOptions;
use crate::prekey_lifecycle::PreKeyPolicy;
use crate::store::{LocalIdentity, ProtocolStore};
use error::store;

/// Safety-number version used by the facade (stable ids are agent ids, as service ids are).
pub const SAFETY_NUMBER_VERSION: u32 = 2;

/// Facade settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransportConfig {
    /// Session establishment options (X3DH stays off unless a host opts in).
    pub session_options: SessionOptions,
    /// Prekey rotation and replenishment.
    pub prekey_policy: PreKeyPolicy,
    /// Safety-number iterations (5200, as Signal clients use).
    pub safety_number_iterations: u32,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            session_options: SessionOptions::default(),
            prekey_policy: PreKeyPolicy::default(),
            safety_number_iterations: DEFAULT_ITERATIONS,
        }
    }
}

/// The DM facade of one local device over its store.
#[derive(Debug)]
pub struct SignalTransport<S: ProtocolStore> {
    /// Crate-visible so the community facade (`crate::community::facade`) can add its records
    /// to the same atomic batch as the session update.
    pub(crate) store: S,
    local: Address,
    config: TransportConfig,
}

impl<S: ProtocolStore> SignalTransport<S> {
    /// A facade for the device `local` with the default configuration. Nothing is read or
    /// written until the first call.
    pub fn new(store: S, local: Address) -> Self {
        Self::with_config(store, local, TransportConfig::default())
    }

    /// A facade with an explicit configuration.
    pub fn with_config(store: S, local: Address, config: TransportConfig) -> Self {
        Self {
            store,
            local,
            config,
        }
    }

    /// The local device's address.
    pub fn local_address(&self) -> &Address {
        &self.local
    }

    /// The configuration.
    pub fn config(&self) -> &TransportConfig {
        &self.config
    }

    /// Read access to the store (for export, inspection and tests). There is deliberately no
    /// mutable access: every write goes through an operation of the facade.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Gives the store back.
    pub fn into_store(self) -> S {
        self.store
    }

    /// The local identity, or [`TransportError::NotReady`].
    fn identity(&self) -> Result<LocalIdentity, TransportError<S::Error>> {
        store(self.store.local_identity())?.ok_or(TransportError::NotReady)
    }

    /// Refuses the local device as a peer.
    fn check_peer(&self, address: &Address) -> Result<(), TransportError<S::Error>> {
        if *address == self.local {
            return Err(TransportError::OwnDevice);
        }
        Ok(())
    }
}
