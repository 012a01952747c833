//! A read-only view of session state for tests, debugging tools and interop checks.
//!
//! **Hazmat:** a snapshot exposes every secret of the session (root key, chain keys, ratchet
//! private keys, skipped message keys). Secrets are wrapped in [`SecretBytes`], which wipes
//! itself and prints as `<redacted>`, so `Debug` output of a snapshot is safe to log; reading
//! the bytes requires calling [`SecretBytes::expose`].

use core::fmt;

use zeroize::Zeroizing;

use super::SessionRecord;
use super::state::{ReceiverChain, SessionState};
use crate::cipher::ct_eq;
use crate::keys::{IdentityKey, PublicKey};
use crate::time::Timestamp;

/// Secret bytes that never show up in `Debug` output; compared in constant time.
#[derive(Clone)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(&self.0, &other.0)
    }
}

impl Eq for SecretBytes {}

impl SecretBytes {
    fn new(bytes: &[u8]) -> Self {
        Self(Zeroizing::new(bytes.to_vec()))
    }

    /// The secret bytes.
    #[must_use]
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<redacted {} bytes>", self.0.len())
    }
}

/// A view of a whole record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionSnapshot {
    /// The current session, if any.
    pub current_session: Option<SessionStateSnapshot>,
    /// Archived sessions, most recent first.
    pub archived_sessions: Vec<SessionStateSnapshot>,
}

/// A view of one session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionStateSnapshot {
    /// 3 (X3DH) or 4 (PQXDH).
    pub session_version: u8,
    /// Our identity key.
    pub local_identity: IdentityKey,
    /// The peer's identity key.
    pub remote_identity: IdentityKey,
    /// Our registration id.
    pub local_registration_id: u32,
    /// The peer's registration id.
    pub remote_registration_id: u32,
    /// The initiator's base key.
    pub alice_base_key: PublicKey,
    /// The root key.
    pub root_key: SecretBytes,
    /// The `previous_counter` written into outgoing messages.
    pub previous_counter: u32,
    /// The sending chain (with our ratchet private key).
    pub sender_chain: ChainSnapshot,
    /// Receiving chains, oldest first.
    pub receiver_chains: Vec<ChainSnapshot>,
    /// Data repeated in PreKey messages until the peer replies.
    pub pending_pre_key: Option<PendingPreKeySnapshot>,
}

/// A view of one chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainSnapshot {
    /// The ratchet public key the chain belongs to.
    pub ratchet_key: PublicKey,
    /// Our ratchet private key (sending chain only).
    pub ratchet_private_key: Option<SecretBytes>,
    /// The chain key.
    pub chain_key: SecretBytes,
    /// The chain key's index.
    pub chain_key_index: u32,
    /// Stored skipped message key seeds, newest first.
    pub skipped_message_keys: Vec<SkippedKeySnapshot>,
}

/// A stored key for a skipped message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedKeySnapshot {
    /// The message counter.
    pub index: u32,
    /// The message key seed.
    pub seed: SecretBytes,
}

/// What an initiator repeats in every PreKey message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingPreKeySnapshot {
    /// The one-time EC prekey used, if any.
    pub pre_key_id: Option<u32>,
    /// The signed prekey used.
    pub signed_pre_key_id: u32,
    /// Our base key.
    pub base_key: PublicKey,
    /// When the session was created.
    pub timestamp: Timestamp,
    /// The Kyber prekey used and the serialized ciphertext.
    pub kyber: Option<(u32, Vec<u8>)>,
}

impl SessionRecord {
    /// A full view of the record's state. See the module docs: this exposes secrets.
    #[must_use]
    pub fn inspect(&self) -> SessionSnapshot {
        SessionSnapshot {
            current_session: self.current.as_ref().map(snapshot_state),
            archived_sessions: self.previous.iter().map(snapshot_state).collect(),
        }
    }
}

fn snapshot_receiver(chain: &ReceiverChain) -> ChainSnapshot {
    ChainSnapshot {
        ratchet_key: chain.ratchet_key,
        ratchet_private_key: None,
        chain_key: SecretBytes::new(chain.chain_key.as_bytes()),
        chain_key_index: chain.chain_key.index(),
        skipped_message_keys: chain
            .skipped
            .iter()
            .map(|seed| SkippedKeySnapshot {
                index: seed.counter(),
                seed: SecretBytes::new(seed.as_bytes()),
            })
            .collect(),
    }
}

fn snapshot_state(state: &SessionState) -> SessionStateSnapshot {
    let sender = &state.sender_chain;
    SessionStateSnapshot {
        session_version: state.version,
        local_identity: state.local_identity,
        remote_identity: state.remote_identity,
        local_registration_id: state.local_registration_id.0,
        remote_registration_id: state.remote_registration_id.0,
        alice_base_key: state.alice_base_key,
        root_key: SecretBytes::new(state.root_key.as_bytes()),
        previous_counter: state.previous_counter,
        sender_chain: ChainSnapshot {
            ratchet_key: *sender.ratchet_key.public_key(),
            ratchet_private_key: Some(SecretBytes::new(
                sender.ratchet_key.private_key().serialize().as_slice(),
            )),
            chain_key: SecretBytes::new(sender.chain_key.as_bytes()),
            chain_key_index: sender.chain_key.index(),
            skipped_message_keys: Vec::new(),
        },
        receiver_chains: state
            .receiver_chains
            .iter()
            .map(snapshot_receiver)
            .collect(),
        pending_pre_key: state
            .pending_pre_key
            .as_ref()
            .map(|pending| PendingPreKeySnapshot {
                pre_key_id: pending.pre_key_id.map(|id| id.0),
                signed_pre_key_id: pending.signed_pre_key_id.0,
                base_key: pending.base_key,
                timestamp: pending.timestamp,
                kyber: pending
                    .kyber
                    .as_ref()
                    .map(|(id, ciphertext)| (id.0, ciphertext.serialize())),
            }),
    }
}
