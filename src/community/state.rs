//! A device's view of one community: its epochs (the `community_sender_key_state` rows), the
//! epoch keys it holds, the epoch it sends in, and pending seed repairs; the acceptance rule
//! for blobs; rotation; and [`observe_epoch`], the silent-rekey driver.
//!
//! Per-sender chains are not in here: each `(sender device, epoch)` has its own
//! [`crate::sender_keys::SenderKeyRecord`], stored next to this state, so decrypting a message
//! touches one small record whatever the member count.

use core::fmt;
use core::time::Duration;

use rand_core::CryptoRng;

use super::blob::BlobError;
use super::epoch::EpochKey;
use super::ids::{CommunityId, EpochId};
use crate::address::Address;
use crate::error::ErrorClass;
use crate::sender_keys::SenderKeyError;
use crate::time::Timestamp;

/// Epochs remembered per community (oldest forgotten first; their blobs then fail as
/// unknown epochs).
pub const MAX_EPOCHS: usize = 32;
/// Pending seed repairs remembered per community (oldest dropped first).
pub const MAX_PENDING_REPAIRS: usize = 256;
/// How long after a repair request [`observe_epoch`] asks again.
pub const REPAIR_RETRY_AFTER: Duration = Duration::from_secs(60 * 60);

/// How an epoch replaced the previous one (`community_sender_key_state.rotation_kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RotationKind {
    /// The previous epoch stays accepted for messages stamped up to `grace_until`.
    Soft,
    /// The previous epoch ends at once: its messages stamped at or after `rotated_at` are
    /// refused, and removed members get no share of the new epoch.
    Hard,
}

impl RotationKind {
    /// The column value: `soft` or `hard`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Soft => "soft",
            Self::Hard => "hard",
        }
    }

    /// Parses the column value.
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "soft" => Some(Self::Soft),
            "hard" => Some(Self::Hard),
            _ => None,
        }
    }
}

/// One `community_sender_key_state` row: an epoch and how it started.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EpochInfo {
    /// The epoch id: [`EpochId::for_server_epoch`] of the community and `server_key_id`
    /// (build rows with [`EpochInfo::from_server_row`]; other ids are refused).
    pub key_id: EpochId,
    /// The key server's epoch number (`community_sender_key_state.key_id`, 1, 2, ...): what
    /// share and blob rows carry in their `key_id` column.
    pub server_key_id: u32,
    /// When the epoch started.
    pub rotated_at: Timestamp,
    /// How it replaced the previous epoch (the first epoch of a community is `Hard`).
    pub rotation: RotationKind,
    /// Soft rotations: until when the previous epoch is still accepted.
    pub grace_until: Option<Timestamp>,
}

impl EpochInfo {
    /// The epoch of a `community_sender_key_state` row of `community`.
    #[must_use]
    pub fn from_server_row(
        community: CommunityId,
        server_key_id: u32,
        rotated_at: Timestamp,
        rotation: RotationKind,
        grace_until: Option<Timestamp>,
    ) -> Self {
        Self {
            key_id: EpochId::for_server_epoch(community, server_key_id),
            server_key_id,
            rotated_at,
            rotation,
            grace_until,
        }
    }

    /// Whether `key_id` is the one derived from `community` and `server_key_id`.
    #[must_use]
    pub fn belongs_to(&self, community: CommunityId) -> bool {
        self.key_id == EpochId::for_server_epoch(community, self.server_key_id)
    }
}

/// What a client must do for a community, from [`observe_epoch`]. None needs the user.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EpochAction {
    /// Fetch (and open) the shares addressed to this device for `key_id`.
    FetchMyShare {
        /// The epoch.
        key_id: EpochId,
    },
    /// Send a `sender_key_request_v1` control envelope, as a Signal DM, to `sender`.
    RequestRepair {
        /// The epoch.
        key_id: EpochId,
        /// The device whose seed is missing.
        sender: Address,
        /// The chain id seen in its message, if any.
        chain_id: Option<u32>,
    },
    /// Start sending in `key_id`: distribute our sender-chain seed to every member device (if
    /// the community uses sender chains), then call [`CommunityState::start_using`].
    StartUsingEpoch {
        /// The epoch.
        key_id: EpochId,
    },
}

/// A sender whose seed we lack for an epoch.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PendingRepair {
    /// The epoch.
    pub key_id: EpochId,
    /// The sender device.
    pub sender: Address,
    /// The chain id of the message that could not be decrypted.
    pub chain_id: Option<u32>,
    /// When the gap was noticed.
    pub noted_at: Timestamp,
    /// When we last asked, if ever.
    pub requested_at: Option<Timestamp>,
}

#[derive(Clone, PartialEq, Eq)]
pub(crate) struct EpochEntry {
    pub(crate) info: EpochInfo,
    pub(crate) key: Option<EpochKey>,
    /// A share for this epoch was opened (or we created the epoch).
    pub(crate) share_received: bool,
}

/// A device's state for one community. Persist it with [`crate::persist::Persist`].
#[derive(Clone, PartialEq, Eq)]
pub struct CommunityState {
    pub(crate) community_id: CommunityId,
    /// Ascending by `rotated_at`; the last one is the current epoch.
    pub(crate) epochs: Vec<EpochEntry>,
    pub(crate) sending: Option<EpochId>,
    pub(crate) first_share_from: Option<Address>,
    pub(crate) repairs: Vec<PendingRepair>,
}

/// Why a community operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommunityError {
    /// The blob is malformed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The sender-key layer refused (no seed, bad signature, duplicate, window, ...).
    #[error(transparent)]
    SenderKey(#[from] SenderKeyError),
    /// The blob names another community, epoch or sender than expected, or its signed header
    /// copy differs.
    #[error("blob header mismatch in `{0}`")]
    HeaderMismatch(&'static str),
    /// An epoch blob where a sender-chain blob was expected or the reverse.
    #[error("blob uses the other scheme")]
    WrongScheme,
    /// Authentication failed.
    #[error("community message failed to decrypt")]
    DecryptionFailed,
    /// The AEAD refused to encrypt (cannot happen within the size limits).
    #[error("community message failed to encrypt")]
    EncryptionFailed,
    /// We have no own sender chain for this epoch (create one first).
    #[error("no own sender chain for epoch {0}")]
    NoSenderChain(EpochId),
    /// The epoch is not (or no longer) known to this device: fetch the epoch rows.
    #[error("unknown epoch {0}")]
    UnknownEpoch(EpochId),
    /// We do not hold the epoch key: fetch our share.
    #[error("no key for epoch {0}: fetch the share")]
    NoEpochKey(EpochId),
    /// The epoch no longer accepts messages with this timestamp (rotation rules).
    #[error("epoch {key_id} does not accept this message: {reason}")]
    EpochRejected {
        /// The epoch.
        key_id: EpochId,
        /// Which rule refused it.
        reason: &'static str,
    },
    /// No epoch can be sent in now (none known with key material, or a hard rotation whose
    /// share has not arrived yet).
    #[error("no usable epoch to send in")]
    NoUsableEpoch,
    /// A different key for this epoch is already installed (a share that disagrees).
    #[error("conflicting key for epoch {0}")]
    KeyConflict(EpochId),
    /// An epoch row disagrees with the one already known for the same id.
    #[error("epoch row for {0} conflicts with the known one")]
    EpochConflict(EpochId),
    /// An epoch row whose id is not derived from this community and its `key_id` (or whose
    /// `key_id` is 0, which the key server never issues).
    #[error("epoch row {0} does not belong to this community")]
    ForeignEpoch(EpochId),
}

impl CommunityError {
    /// The stable class of this error.
    #[must_use]
    pub const fn class(&self) -> ErrorClass {
        match self {
            Self::Blob(error) => error.class(),
            Self::SenderKey(error) => error.class(),
            Self::NoEpochKey(_) | Self::UnknownEpoch(_) | Self::NoSenderChain(_) => {
                ErrorClass::NoSenderKeyState
            }
            Self::EpochRejected { .. } => ErrorClass::EpochRejected,
            Self::NoUsableEpoch | Self::KeyConflict(_) | Self::EpochConflict(_) => {
                ErrorClass::InvalidState
            }
            Self::ForeignEpoch(_) => ErrorClass::InvalidArgument,
            Self::HeaderMismatch(_)
            | Self::WrongScheme
            | Self::DecryptionFailed
            | Self::EncryptionFailed => ErrorClass::InvalidMessage,
        }
    }
}

impl CommunityState {
    /// A community this device knows nothing about yet (it joined and awaits its shares).
    #[must_use]
    pub fn new(community_id: CommunityId) -> Self {
        Self {
            community_id,
            epochs: Vec::new(),
            sending: None,
            first_share_from: None,
            repairs: Vec::new(),
        }
    }

    /// The community.
    #[must_use]
    pub const fn community_id(&self) -> CommunityId {
        self.community_id
    }

    /// The known epochs, oldest first.
    pub fn epochs(&self) -> impl Iterator<Item = &EpochInfo> {
        self.epochs.iter().map(|entry| &entry.info)
    }

    /// The newest known epoch.
    #[must_use]
    pub fn current_epoch(&self) -> Option<&EpochInfo> {
        self.epochs.last().map(|entry| &entry.info)
    }

    /// The epoch we send in, once started.
    #[must_use]
    pub const fn sending_epoch_id(&self) -> Option<EpochId> {
        self.sending
    }

    /// Who sent the first share we accepted for this community (trust on first use).
    #[must_use]
    pub const fn first_share_from(&self) -> Option<&Address> {
        self.first_share_from.as_ref()
    }

    /// Pending seed repairs.
    #[must_use]
    pub fn pending_repairs(&self) -> &[PendingRepair] {
        &self.repairs
    }

    /// The key of an epoch, if held.
    #[must_use]
    pub fn epoch_key(&self, key_id: EpochId) -> Option<&EpochKey> {
        self.entry(key_id).and_then(|entry| entry.key.as_ref())
    }

    fn entry(&self, key_id: EpochId) -> Option<&EpochEntry> {
        self.epochs.iter().find(|entry| entry.info.key_id == key_id)
    }

    fn position(&self, key_id: EpochId) -> Option<usize> {
        self.epochs
            .iter()
            .position(|entry| entry.info.key_id == key_id)
    }

    /// Records an epoch row fetched from the server. A known id must keep its start time and
    /// kind (only `grace_until` may change: a server may extend a grace window).
    pub fn apply_epoch(&self, info: EpochInfo) -> Result<Self, CommunityError> {
        self.check_row(&info)?;
        let mut updated = self.clone();
        if let Some(index) = updated.position(info.key_id) {
            let entry = updated
                .epochs
                .get_mut(index)
                .ok_or(CommunityError::UnknownEpoch(info.key_id))?;
            if entry.info.rotated_at != info.rotated_at || entry.info.rotation != info.rotation {
                return Err(CommunityError::EpochConflict(info.key_id));
            }
            entry.info.grace_until = info.grace_until;
            return Ok(updated);
        }
        updated.insert_epoch(EpochEntry {
            info,
            key: None,
            share_received: false,
        });
        Ok(updated)
    }

    fn check_row(&self, info: &EpochInfo) -> Result<(), CommunityError> {
        if info.server_key_id == 0 || !info.belongs_to(self.community_id) {
            return Err(CommunityError::ForeignEpoch(info.key_id));
        }
        Ok(())
    }

    fn insert_epoch(&mut self, entry: EpochEntry) {
        let at = self
            .epochs
            .iter()
            .position(|e| e.info.rotated_at > entry.info.rotated_at)
            .unwrap_or(self.epochs.len());
        self.epochs.insert(at, entry);
        while self.epochs.len() > MAX_EPOCHS {
            let dropped = self.epochs.remove(0);
            self.repairs.retain(|r| r.key_id != dropped.info.key_id);
            if self.sending == Some(dropped.info.key_id) {
                self.sending = None;
            }
        }
    }

    /// Starts the epoch the key server just opened (the row `community-keys/rotate` returned)
    /// as the rotating admin: draws its key (one `fill_bytes(32)`) and sends in it at once.
    /// The row's `grace_until` says how long the previous epoch stays accepted (soft), `None`
    /// for a hard rotation. Returns the key to share (as `epoch_key_v1`) with every remaining
    /// member device — and no removed one. An epoch already known with a key is refused
    /// (`KeyConflict`): a rotation never replaces a key.
    pub fn rotate<R: CryptoRng + ?Sized>(
        &self,
        info: EpochInfo,
        rng: &mut R,
    ) -> Result<(Self, EpochKey), CommunityError> {
        self.check_row(&info)?;
        if self
            .entry(info.key_id)
            .is_some_and(|entry| entry.key.is_some())
        {
            return Err(CommunityError::KeyConflict(info.key_id));
        }
        let key = EpochKey::generate(rng);
        let mut updated = self.apply_epoch(info)?;
        let index = updated
            .position(info.key_id)
            .ok_or(CommunityError::UnknownEpoch(info.key_id))?;
        if let Some(entry) = updated.epochs.get_mut(index) {
            entry.key = Some(key.clone());
            entry.share_received = true;
        }
        updated.sending = Some(info.key_id);
        Ok((updated, key))
    }

    /// Installs the key of an opened `epoch_key_v1` share (the epoch row must be known).
    /// The same key again is a no-op; a different one is refused.
    pub fn install_epoch_key(
        &self,
        key_id: EpochId,
        key: &EpochKey,
        from: &Address,
    ) -> Result<Self, CommunityError> {
        let mut updated = self.clone();
        let index = updated
            .position(key_id)
            .ok_or(CommunityError::UnknownEpoch(key_id))?;
        let entry = updated
            .epochs
            .get_mut(index)
            .ok_or(CommunityError::UnknownEpoch(key_id))?;
        match &entry.key {
            Some(existing) if existing != key => return Err(CommunityError::KeyConflict(key_id)),
            _ => entry.key = Some(key.clone()),
        }
        updated.note_share(key_id, from);
        Ok(updated)
    }

    /// Records that a share for `key_id` from `from` was opened: the epoch becomes usable, the
    /// first sharer of the community is remembered, and a pending repair for that sender is
    /// resolved.
    pub fn share_opened(&self, key_id: EpochId, from: &Address) -> Result<Self, CommunityError> {
        let mut updated = self.clone();
        if updated.position(key_id).is_none() {
            return Err(CommunityError::UnknownEpoch(key_id));
        }
        updated.note_share(key_id, from);
        Ok(updated)
    }

    fn note_share(&mut self, key_id: EpochId, from: &Address) {
        if let Some(entry) = self.epochs.iter_mut().find(|e| e.info.key_id == key_id) {
            entry.share_received = true;
        }
        if self.first_share_from.is_none() {
            self.first_share_from = Some(from.clone());
        }
        self.repairs
            .retain(|r| !(r.key_id == key_id && r.sender == *from));
    }

    /// Whether a blob of epoch `key_id` stamped `sent_at` is accepted:
    /// - the current epoch always is;
    /// - an epoch replaced by a **soft** rotation is, for messages stamped up to the new
    ///   epoch's `grace_until`;
    /// - an epoch replaced by a **hard** rotation is, only for messages stamped before the
    ///   rotation (`rotated_at`).
    ///
    /// History therefore stays readable, and a laggard (or a removed member) cannot keep
    /// posting in a replaced epoch. The server applies the same rule with its own clock.
    pub fn check_accept(&self, key_id: EpochId, sent_at: Timestamp) -> Result<(), CommunityError> {
        let index = self
            .position(key_id)
            .ok_or(CommunityError::UnknownEpoch(key_id))?;
        // Every later rotation must admit the message.
        for next in self.epochs.iter().skip(index + 1) {
            let info = next.info;
            match info.rotation {
                RotationKind::Hard if sent_at >= info.rotated_at => {
                    return Err(CommunityError::EpochRejected {
                        key_id,
                        reason: "stamped after a hard rotation",
                    });
                }
                RotationKind::Soft if sent_at > info.grace_until.unwrap_or(info.rotated_at) => {
                    return Err(CommunityError::EpochRejected {
                        key_id,
                        reason: "stamped after the grace window",
                    });
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn usable(entry: &EpochEntry) -> bool {
        entry.key.is_some() || entry.share_received
    }

    /// The epoch to send in at `now`: the epoch we started using, as long as it still accepts
    /// messages stamped `now`; otherwise [`CommunityError::NoUsableEpoch`] (act on
    /// [`observe_epoch`] first).
    pub fn sending_epoch(&self, now: Timestamp) -> Result<EpochId, CommunityError> {
        let key_id = self.sending.ok_or(CommunityError::NoUsableEpoch)?;
        self.check_accept(key_id, now)
            .map_err(|_| CommunityError::NoUsableEpoch)?;
        Ok(key_id)
    }

    /// Starts sending in `key_id` (after our seed went out, for sender-chain communities).
    pub fn start_using(&self, key_id: EpochId) -> Result<Self, CommunityError> {
        let entry = self
            .entry(key_id)
            .ok_or(CommunityError::UnknownEpoch(key_id))?;
        if !Self::usable(entry) {
            return Err(CommunityError::NoEpochKey(key_id));
        }
        let mut updated = self.clone();
        updated.sending = Some(key_id);
        Ok(updated)
    }

    /// Notes that a message from `sender` in `key_id` could not be decrypted for lack of its
    /// seed (error class [`ErrorClass::NoSenderKeyState`]); [`observe_epoch`] then asks for a
    /// repair instead of the message failing for good.
    #[must_use]
    pub fn note_missing_seed(
        &self,
        key_id: EpochId,
        sender: &Address,
        chain_id: Option<u32>,
        now: Timestamp,
    ) -> Self {
        let mut updated = self.clone();
        if let Some(existing) = updated
            .repairs
            .iter_mut()
            .find(|r| r.key_id == key_id && r.sender == *sender)
        {
            if chain_id.is_some() {
                existing.chain_id = chain_id;
            }
            return updated;
        }
        updated.repairs.push(PendingRepair {
            key_id,
            sender: sender.clone(),
            chain_id,
            noted_at: now,
            requested_at: None,
        });
        while updated.repairs.len() > MAX_PENDING_REPAIRS {
            updated.repairs.remove(0);
        }
        updated
    }

    /// Records that the repair request to `sender` for `key_id` went out at `now`.
    #[must_use]
    pub fn repair_requested(&self, key_id: EpochId, sender: &Address, now: Timestamp) -> Self {
        let mut updated = self.clone();
        for repair in &mut updated.repairs {
            if repair.key_id == key_id && repair.sender == *sender {
                repair.requested_at = Some(now);
            }
        }
        updated
    }
}

/// The actions a client must take for a community at `now`, in order, with no user-visible
/// step: fetch missing shares (current epoch, and the previous one while a soft grace window
/// is open), request repairs for missing seeds (again after [`REPAIR_RETRY_AFTER`]), and
/// start using the newest epoch once its key material is here.
#[must_use]
pub fn observe_epoch(state: &CommunityState, now: Timestamp) -> Vec<EpochAction> {
    let mut actions = Vec::new();
    let Some(current) = state.epochs.last() else {
        return actions;
    };
    // Epochs that still accept messages stamped now need key material.
    for entry in &state.epochs {
        if state.check_accept(entry.info.key_id, now).is_ok() && !CommunityState::usable(entry) {
            actions.push(EpochAction::FetchMyShare {
                key_id: entry.info.key_id,
            });
        }
    }
    for repair in &state.repairs {
        let due = repair
            .requested_at
            .is_none_or(|at| at.saturating_add(REPAIR_RETRY_AFTER) <= now);
        let live = state.entry(repair.key_id).is_some();
        if due && live {
            actions.push(EpochAction::RequestRepair {
                key_id: repair.key_id,
                sender: repair.sender.clone(),
                chain_id: repair.chain_id,
            });
        }
    }
    if CommunityState::usable(current) && state.sending != Some(current.info.key_id) {
        actions.push(EpochAction::StartUsingEpoch {
            key_id: current.info.key_id,
        });
    }
    actions
}

impl fmt::Debug for EpochEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            info,
            key,
            share_received,
        } = self;
        f.debug_struct("Epoch")
            .field("info", info)
            .field("has_key", &key.is_some())
            .field("share_received", share_received)
            .finish()
    }
}

impl fmt::Debug for CommunityState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            community_id,
            epochs,
            sending,
            first_share_from,
            repairs,
        } = self;
        f.debug_struct("CommunityState")
            .field("community_id", community_id)
            .field("epochs", epochs)
            .field("sending", sending)
            .field("first_share_from", first_share_from)
            .field("pending_repairs", &repairs.len())
            .finish()
    }
}
