//! [`TransportError`]: everything the facade can refuse, typed, with a stable class.

use crate::address::{Address, AddressError, AgentId};
use crate::error::ErrorClass;
use crate::fingerprint::FingerprintError;
use crate::keys::{IdentityKey, KyberPreKeyId};
use crate::prekey_lifecycle::LifecycleError;
use crate::session::SessionError;
use crate::wire::DecodeError;

/// Why a facade operation failed. Every failure leaves the store exactly as it was.
///
/// `E` is the store backend's error type ([`crate::store::ProtocolStore::Error`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError<E> {
    /// The device has no identity yet: call `ensure_ready` first.
    #[error("no local identity: call ensure_ready first")]
    NotReady,
    /// An address, agent id or device id is invalid.
    #[error(transparent)]
    Address(#[from] AddressError),
    /// The message bytes are not a well-formed 1:1 Signal message of the stated type.
    #[error("invalid message: {0}")]
    Decode(#[from] DecodeError),
    /// The session layer refused (bad MAC, duplicate, unknown prekey, bad bundle, ...).
    #[error(transparent)]
    Session(#[from] SessionError),
    /// Prekey generation failed.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    /// A safety number could not be computed.
    #[error(transparent)]
    Fingerprint(#[from] FingerprintError),
    /// These devices' identity keys changed and the user has not approved the new keys
    /// (nothing was encrypted to anyone).
    #[error("untrusted identity: {addresses:?}")]
    UntrustedIdentity {
        /// The devices whose new key needs approval.
        addresses: Vec<Address>,
    },
    /// These devices have no usable session (nothing was encrypted to anyone): fetch their
    /// bundles, call `process_bundle` for each, and retry.
    #[error("missing sessions: {addresses:?}, unknown device lists: {unknown_agents:?}")]
    MissingSessions {
        /// Devices that need a bundle.
        addresses: Vec<Address>,
        /// Agents whose device list is unknown: fetch bundles for all their devices.
        unknown_agents: Vec<AgentId>,
    },
    /// A PreKey message would start a second session from the same last-resort Kyber key and
    /// base key: a replay.
    #[error("last-resort kyber prekey {0} was already used with this base key")]
    KyberPreKeyReused(KyberPreKeyId),
    /// A bundle's device id differs from the address it was fetched for.
    #[error("bundle is for device {bundle_device}, not {address}")]
    BundleDeviceMismatch {
        /// The address the bundle was processed for.
        address: Address,
        /// The device id inside the bundle.
        bundle_device: u32,
    },
    /// The operation names this device itself as the peer.
    #[error("the peer is this device itself")]
    OwnDevice,
    /// No identity is known for the address (no session was ever made with it).
    #[error("no identity known for {0}")]
    UnknownAddress(Address),
    /// The address's identity changed; approve the new key before verifying it.
    #[error("identity of {0} changed: approve it first")]
    IdentityNotApproved(Address),
    /// An approval named a key that is not the newest key seen for the address (it changed
    /// again after the user was shown it); nothing was approved.
    #[error("identity of {address} is now {current:?}, not the key being approved")]
    IdentityKeyMismatch {
        /// The address whose key was being approved.
        address: Address,
        /// The newest key seen for it, to show the user instead.
        current: IdentityKey,
    },
    /// The store failed; nothing was written.
    #[error("store error: {0}")]
    Store(#[source] E),
}

impl<E> TransportError<E> {
    /// The stable class of this error.
    #[must_use]
    pub const fn class(&self) -> ErrorClass {
        match self {
            Self::NotReady => ErrorClass::InvalidState,
            Self::Address(error) => error.class(),
            Self::Decode(error) => error.class(),
            Self::Session(error) => error.class(),
            Self::Lifecycle(error) => error.class(),
            Self::Fingerprint(error) => error.class(),
            Self::UntrustedIdentity { .. }
            | Self::IdentityNotApproved(_)
            | Self::IdentityKeyMismatch { .. } => ErrorClass::UntrustedIdentity,
            Self::MissingSessions { .. } => ErrorClass::MissingSessions,
            Self::KyberPreKeyReused(_) => ErrorClass::DuplicateMessage,
            Self::BundleDeviceMismatch { .. } | Self::OwnDevice | Self::UnknownAddress(_) => {
                ErrorClass::InvalidArgument
            }
            Self::Store(_) => ErrorClass::StoreError,
        }
    }
}

/// Wraps a store error.
pub(crate) fn store<T, E>(result: Result<T, E>) -> Result<T, TransportError<E>> {
    result.map_err(TransportError::Store)
}
