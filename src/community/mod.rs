//! Community (group) crypto: two schemes over one epoch model, shares through Signal sessions
//! only, rotation with grace, silent rekey and seed repair. Formats: `docs/COMMUNITY.md`.
//!
//! - **Epoch scheme** (today's production behaviour): one 32-byte AES-256-GCM [`EpochKey`] per
//!   community epoch; one ciphertext per message whatever the member count
//!   ([`encrypt_epoch_blob`] / [`decrypt_epoch_blob`], blob version 1).
//! - **Sender-chain scheme** (the upgrade): Signal Sender Keys with the epoch id as
//!   distribution id ([`encrypt_sender_chain_blob`] / [`decrypt_sender_chain_blob`], blob
//!   version 2): per-message keys, forward secrecy inside the epoch, and a signature per
//!   message so members cannot forge each other.
//! - **Shares** ([`share`]): key material travels only as Signal messages (types 2 and 3),
//!   one per member device, created and opened through [`crate::SignalTransport`].
//! - **Epochs** ([`CommunityState`]): soft and hard rotation, grace windows, the acceptance
//!   rule for each blob, [`observe_epoch`] for silent rekey, seed repair and chain reset.
//!
//! Everything here is sans-I/O and total: no input can make it panic.

mod blob;
mod epoch;
mod facade;
mod ids;
pub mod share;
mod state;

pub use blob::{
    BLOB_VERSION_EPOCH, BLOB_VERSION_SENDER_CHAIN, BlobError, BlobHeader, BlobScheme,
    MAX_BLOB_BYTES, MAX_PAYLOAD_BYTES, SenderChainPosition, decrypt_epoch_blob,
    decrypt_sender_chain_blob, encrypt_epoch_blob, encrypt_sender_chain_blob, validate_blob,
};
pub use epoch::EpochKey;
pub use facade::{GroupError, GroupReceive, OpenedShare};
pub use ids::{CommunityId, EpochId};
pub(crate) use state::EpochEntry;
pub use state::{
    CommunityError, CommunityState, EpochAction, EpochInfo, MAX_EPOCHS, MAX_PENDING_REPAIRS,
    PendingRepair, REPAIR_RETRY_AFTER, RotationKind, observe_epoch,
};
