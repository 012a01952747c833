//! Trust in peers' identity keys: trust on first use, a local `verified` flag, and identity
//! changes that block sending until the user approves the new key.
//!
//! Trust is per device [`crate::address::Address`]: every device has its own identity key.
//! The rules are pure functions over [`TrustRecord`]s, so the facade can compute the new record,
//! put it in the same commit as the session it belongs to, and never half-apply a decision.
//!
//! - The first identity key seen for an address (from a bundle or an incoming PreKey message)
//!   is trusted ([`TrustRecord::Trusted`], not verified).
//! - A different key later turns the record into [`TrustRecord::Changed`] with the last
//!   approved key as `previous`. Incoming messages from the new key still decrypt (they are
//!   authentic messages from whoever holds it, and dropping them would lose data), but they
//!   report the change, and encrypting to the address fails with an untrusted-identity error.
//! - [`approve`] accepts the current key and clears `verified`; [`mark_verified`] sets it.

use crate::keys::IdentityKey;

/// What the local device believes about one peer device's identity key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrustRecord {
    /// The key is trusted (first use or approved).
    Trusted {
        /// The trusted identity key.
        identity: IdentityKey,
        /// The user compared safety numbers for this key.
        verified: bool,
    },
    /// The peer's key changed and the user has not approved the new one yet.
    Changed {
        /// The last approved key.
        previous: IdentityKey,
        /// The newest key seen.
        current: IdentityKey,
    },
}

impl TrustRecord {
    /// A newly trusted, unverified key.
    #[must_use]
    pub const fn first_use(identity: IdentityKey) -> Self {
        Self::Trusted {
            identity,
            verified: false,
        }
    }

    /// The key encryption may use: `Some` only when trusted.
    #[must_use]
    pub const fn trusted_identity(&self) -> Option<&IdentityKey> {
        match self {
            Self::Trusted { identity, .. } => Some(identity),
            Self::Changed { .. } => None,
        }
    }

    /// The newest key seen for the peer (the one safety numbers are computed over).
    #[must_use]
    pub const fn current_identity(&self) -> &IdentityKey {
        match self {
            Self::Trusted { identity, .. } => identity,
            Self::Changed { current, .. } => current,
        }
    }

    /// Whether the user verified the trusted key.
    #[must_use]
    pub const fn is_verified(&self) -> bool {
        matches!(self, Self::Trusted { verified: true, .. })
    }

    /// Whether an unapproved identity change is pending.
    #[must_use]
    pub const fn is_changed(&self) -> bool {
        matches!(self, Self::Changed { .. })
    }
}

/// The outcome of seeing a peer's identity key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    /// The record to store (equal to the input when nothing changed).
    pub record: TrustRecord,
    /// The key seen is not the approved one.
    pub identity_changed: bool,
}

/// Applies the trust rules to a key seen for an address (in a bundle or a message).
#[must_use]
pub fn observe(existing: Option<&TrustRecord>, seen: &IdentityKey) -> Observation {
    match existing {
        None => Observation {
            record: TrustRecord::first_use(*seen),
            identity_changed: false,
        },
        Some(record @ TrustRecord::Trusted { identity, .. }) if identity == seen => Observation {
            record: *record,
            identity_changed: false,
        },
        Some(TrustRecord::Trusted { identity, .. }) => Observation {
            record: TrustRecord::Changed {
                previous: *identity,
                current: *seen,
            },
            identity_changed: true,
        },
        // A late message under the approved key is not a change; the pending change stays.
        Some(record @ TrustRecord::Changed { previous, .. }) if previous == seen => Observation {
            record: *record,
            identity_changed: false,
        },
        Some(TrustRecord::Changed { previous, .. }) => Observation {
            record: TrustRecord::Changed {
                previous: *previous,
                current: *seen,
            },
            identity_changed: true,
        },
    }
}

/// The user accepts the newest key: trusted again, and no longer verified (the new key was
/// never compared). Approving an already trusted key changes nothing.
#[must_use]
pub const fn approve(record: &TrustRecord) -> TrustRecord {
    match record {
        TrustRecord::Trusted { .. } => *record,
        TrustRecord::Changed { current, .. } => TrustRecord::first_use(*current),
    }
}

/// Marks the trusted key as verified. `None` while a change is pending: the user must approve
/// the new key first, so "verified" always refers to a key they accepted.
#[must_use]
pub const fn mark_verified(record: &TrustRecord) -> Option<TrustRecord> {
    match record {
        TrustRecord::Trusted { identity, .. } => Some(TrustRecord::Trusted {
            identity: *identity,
            verified: true,
        }),
        TrustRecord::Changed { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::PublicKey;

    fn key(byte: u8) -> IdentityKey {
        IdentityKey::new(PublicKey::from_djb_bytes([byte; 32]))
    }

    #[test]
    fn first_use_then_change_then_approval() {
        let first = observe(None, &key(1));
        assert_eq!(first.record, TrustRecord::first_use(key(1)));
        assert!(!first.identity_changed);

        let verified = mark_verified(&first.record).unwrap();
        assert!(verified.is_verified());
        assert_eq!(observe(Some(&verified), &key(1)).record, verified);

        let changed = observe(Some(&verified), &key(2));
        assert!(changed.identity_changed);
        assert_eq!(
            changed.record,
            TrustRecord::Changed {
                previous: key(1),
                current: key(2)
            }
        );
        assert_eq!(changed.record.trusted_identity(), None);
        assert_eq!(changed.record.current_identity(), &key(2));
        assert_eq!(mark_verified(&changed.record), None);

        // Old key: no new change; a third key: previous stays the approved one.
        let old = observe(Some(&changed.record), &key(1));
        assert!(!old.identity_changed);
        assert_eq!(old.record, changed.record);
        let third = observe(Some(&changed.record), &key(3));
        assert!(third.identity_changed);
        assert_eq!(
            third.record,
            TrustRecord::Changed {
                previous: key(1),
                current: key(3)
            }
        );

        let approved = approve(&third.record);
        assert_eq!(approved, TrustRecord::first_use(key(3)));
        assert!(!approved.is_verified());
        assert_eq!(approve(&verified), verified);
    }
}
