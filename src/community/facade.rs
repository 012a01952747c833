//! The community operations of [`SignalTransport`]: shares sealed and opened through the DM
//! sessions, group encryption and decryption, seed repair, chain reset, rotation and epoch
//! rows. Like the DM facade, each operation reads what it needs and commits once; a failure
//! commits nothing (opening a share commits the Signal session, the sender's chain and the
//! community state in one batch).

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::blob::{
    BlobHeader, BlobScheme, decrypt_epoch_blob, decrypt_sender_chain_blob, encrypt_epoch_blob,
    encrypt_sender_chain_blob, validate_blob,
};
use super::ids::{CommunityId, EpochId};
use super::observe_epoch;
use super::share::{ShareError, ShareKind, ShareMaterial, SharePayload, ShareRow, validate_share};
use super::state::{CommunityError, CommunityState, EpochAction, EpochInfo};
use crate::address::Address;
use crate::envelope::{Envelope, SenderKeyRequest};
use crate::error::ErrorClass;
use crate::pqxdh::PreKeyBundle;
use crate::sender_keys::{
    SenderKeyError, SenderKeyLimits, create_distribution_message, current_distribution_message,
    process_distribution_message, reset_own_chain,
};
use crate::store::{Changes, ProtocolStore};
use crate::time::Timestamp;
use crate::transport::{DeviceTarget, SignalTransport, TransportError};

/// Why a community facade operation failed. Nothing was committed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError<E> {
    /// The DM layer or the store refused.
    #[error(transparent)]
    Transport(#[from] TransportError<E>),
    /// The community layer refused.
    #[error(transparent)]
    Community(#[from] CommunityError),
    /// A share is malformed or refused.
    #[error(transparent)]
    Share(#[from] ShareError),
    /// This device has no state for the community (no share opened, no rotation made).
    #[error("unknown community {0}")]
    UnknownCommunity(CommunityId),
}

impl<E> GroupError<E> {
    /// The stable class of this error.
    #[must_use]
    pub const fn class(&self) -> ErrorClass {
        match self {
            Self::Transport(error) => error.class(),
            Self::Community(error) => error.class(),
            Self::Share(error) => error.class(),
            Self::UnknownCommunity(_) => ErrorClass::NoSenderKeyState,
        }
    }
}

impl<E> From<SenderKeyError> for GroupError<E> {
    fn from(error: SenderKeyError) -> Self {
        Self::Community(CommunityError::SenderKey(error))
    }
}

/// What an opened share was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenedShare {
    /// The sharing device.
    pub from: Address,
    /// The community.
    pub community_id: CommunityId,
    /// The epoch.
    pub key_id: EpochId,
    /// The kind.
    pub kind: ShareKind,
    /// It was the first share this device accepted for the community (trust on first use).
    pub first_for_community: bool,
}

/// The outcome of receiving a community blob.
#[derive(Clone, PartialEq, Eq)]
pub enum GroupReceive {
    /// The message decrypted.
    Message {
        /// Its public header.
        header: BlobHeader,
        /// The payload (an encoded [`Envelope`]).
        plaintext: Zeroizing<Vec<u8>>,
    },
    /// We lack the sender's chain: send `request` (a `sender_key_request_v1` envelope) as a
    /// Signal DM to `to`, and decrypt the blob again once its re-share is opened.
    MissingSeed {
        /// The sender device to ask.
        to: Address,
        /// The control envelope to send.
        request: Envelope,
    },
}

impl core::fmt::Debug for GroupReceive {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Message { header, plaintext } => f
                .debug_struct("Message")
                .field("header", header)
                .field("plaintext_len", &plaintext.len())
                .finish(),
            Self::MissingSeed { to, request } => f
                .debug_struct("MissingSeed")
                .field("to", to)
                .field("request", request)
                .finish(),
        }
    }
}

type Result<T, E> = core::result::Result<T, GroupError<E>>;

fn store<T, E>(result: core::result::Result<T, E>) -> Result<T, E> {
    result.map_err(|error| GroupError::Transport(TransportError::Store(error)))
}

impl<S: ProtocolStore> SignalTransport<S> {
    fn community_or_unknown(&self, id: CommunityId) -> Result<CommunityState, S::Error> {
        store(self.store.community(id))?.ok_or(GroupError::UnknownCommunity(id))
    }

    /// This device's state for a community, if any.
    pub fn community_state(&self, id: CommunityId) -> Result<Option<CommunityState>, S::Error> {
        store(self.store.community(id))
    }

    /// Records epoch rows fetched from `community_sender_key_state` (creating the community's
    /// state on first contact).
    pub fn apply_epoch_rows(
        &mut self,
        id: CommunityId,
        rows: &[EpochInfo],
    ) -> Result<CommunityState, S::Error> {
        let mut state = store(self.store.community(id))?.unwrap_or_else(|| CommunityState::new(id));
        for row in rows {
            state = state.apply_epoch(*row)?;
        }
        self.commit_community(state.clone())?;
        Ok(state)
    }

    /// What this device must do for the community now (see [`observe_epoch`]).
    pub fn observe_community(
        &self,
        id: CommunityId,
        now: Timestamp,
    ) -> Result<Vec<EpochAction>, S::Error> {
        Ok(observe_epoch(&self.community_or_unknown(id)?, now))
    }

    fn commit_community(&mut self, state: CommunityState) -> Result<(), S::Error> {
        let changes = Changes {
            communities: vec![(state.community_id(), state)],
            ..Changes::default()
        };
        store(self.store.commit(changes))
    }

    /// Starts the epoch the key server opened for our rotation (admins; `info` from the row
    /// `community-keys/rotate` returned): see [`CommunityState::rotate`]. Returns the
    /// `epoch_key_v1` payload to [`Self::create_share`] with every remaining member device
    /// (after a hard rotation, none of the removed members' devices).
    pub fn rotate_community<R: CryptoRng + ?Sized>(
        &mut self,
        id: CommunityId,
        info: EpochInfo,
        now: Timestamp,
        rng: &mut R,
    ) -> Result<SharePayload, S::Error> {
        let state = store(self.store.community(id))?.unwrap_or_else(|| CommunityState::new(id));
        let (state, key) = state.rotate(info, rng)?;
        self.commit_community(state)?;
        Ok(SharePayload::epoch_key(id, info.key_id, &key, now))
    }

    /// Our sender chain for an epoch, created on first use (draws as
    /// [`create_distribution_message`]): returns the `epoch_sender_chain_seed_v1` payload to
    /// share with every member device, including our own other devices.
    pub fn start_sender_chain<R: CryptoRng + ?Sized>(
        &mut self,
        id: CommunityId,
        key_id: EpochId,
        now: Timestamp,
        rng: &mut R,
    ) -> Result<SharePayload, S::Error> {
        let state = self.community_or_unknown(id)?;
        if !state.epochs().any(|e| e.key_id == key_id) {
            return Err(CommunityError::UnknownEpoch(key_id).into());
        }
        let local = self.local_address().clone();
        let existing = store(self.store.sender_key(&local, key_id))?;
        let (record, message) = create_distribution_message(existing.as_ref(), key_id.uuid(), rng)?;
        let payload = SharePayload::sender_chain(id, key_id, message, false, now)?;
        let changes = Changes {
            sender_keys: vec![((local, key_id), record)],
            ..Changes::default()
        };
        store(self.store.commit(changes))?;
        Ok(payload)
    }

    /// Replaces our sender chain in an epoch by a fresh one (new chain id) without a community
    /// rotation; share the returned payload with every member device.
    pub fn reset_sender_chain<R: CryptoRng + ?Sized>(
        &mut self,
        id: CommunityId,
        key_id: EpochId,
        now: Timestamp,
        rng: &mut R,
    ) -> Result<SharePayload, S::Error> {
        let state = self.community_or_unknown(id)?;
        state.check_accept(key_id, now)?;
        let local = self.local_address().clone();
        let existing = store(self.store.sender_key(&local, key_id))?;
        let (record, message) = reset_own_chain(existing.as_ref(), key_id.uuid(), rng);
        let payload = SharePayload::sender_chain(id, key_id, message, false, now)?;
        let changes = Changes {
            sender_keys: vec![((local, key_id), record)],
            ..Changes::default()
        };
        store(self.store.commit(changes))?;
        Ok(payload)
    }

    /// Starts sending in `key_id` (after acting on [`EpochAction::StartUsingEpoch`]).
    pub fn start_using_epoch(&mut self, id: CommunityId, key_id: EpochId) -> Result<(), S::Error> {
        let state = self.community_or_unknown(id)?.start_using(key_id)?;
        self.commit_community(state)
    }

    /// Seals `payload` for one member device as a Signal message. When there is no session
    /// with `to` and a `bundle` is given, the bundle is processed first (trust on first use).
    /// The row's encryption type is always `signal_protocol`.
    pub fn create_share<R: CryptoRng + ?Sized>(
        &mut self,
        to: &Address,
        bundle: Option<&PreKeyBundle>,
        payload: &SharePayload,
        now: Timestamp,
        rng: &mut R,
    ) -> Result<ShareRow, S::Error> {
        if let Some(bundle) = bundle
            && store(self.store.session(to))?.is_none()
        {
            self.process_bundle(to, bundle, now, rng)?;
        }
        let plaintext = payload.encode();
        let message = self
            .encrypt_to_agent(
                &to.agent_id,
                DeviceTarget::One(to.device_id),
                &plaintext,
                now,
            )?
            .into_iter()
            .next()
            .ok_or(TransportError::MissingSessions {
                addresses: vec![to.clone()],
                unknown_agents: Vec::new(),
            })?;
        Ok(ShareRow {
            community_id: payload.community_id,
            key_id: payload.key_id,
            from: self.local_address().clone(),
            to: message.destination,
            share_kind: payload.kind,
            message_type: message.message_type,
            body: message.body,
        })
    }

    /// [`Self::create_share`] for every device in `recipients` (each with its bundle when no
    /// session exists yet): one share per member device.
    pub fn create_shares<R: CryptoRng + ?Sized>(
        &mut self,
        recipients: &[(Address, Option<PreKeyBundle>)],
        payload: &SharePayload,
        now: Timestamp,
        rng: &mut R,
    ) -> Result<Vec<ShareRow>, S::Error> {
        recipients
            .iter()
            .map(|(to, bundle)| self.create_share(to, bundle.as_ref(), payload, now, rng))
            .collect()
    }

    /// Opens a share row addressed to this device. Only Signal messages (types 2 and 3) are
    /// accepted; the payload must name the row's community, epoch and kind; key material from a
    /// device whose identity key changed (and was not approved) is refused. The epoch row must
    /// be known ([`Self::apply_epoch_rows`]). Commits, in one batch, the Signal session, the
    /// epoch key or the sender's chain, and the community state.
    pub fn open_share<R: CryptoRng + ?Sized>(
        &mut self,
        row: &ShareRow,
        now: Timestamp,
        rng: &mut R,
    ) -> Result<OpenedShare, S::Error> {
        validate_share(
            row.encryption_type(),
            row.share_kind.as_str(),
            row.message_type as u8,
            &row.body,
        )?;
        self.open_share_parts(
            &row.from,
            &row.to,
            row.community_id,
            row.key_id,
            row.share_kind,
            row.message_type as u8,
            &row.body,
            now,
            rng,
        )
    }

    /// [`Self::open_share`] from the raw columns of a fetched row (`encryption_type`,
    /// `share_kind` and the message type as stored), validating them first.
    #[allow(clippy::too_many_arguments)]
    pub fn open_share_columns<R: CryptoRng + ?Sized>(
        &mut self,
        from: &Address,
        community_id: CommunityId,
        key_id: EpochId,
        encryption_type: &str,
        share_kind: &str,
        message_type: u8,
        body: &[u8],
        now: Timestamp,
        rng: &mut R,
    ) -> Result<OpenedShare, S::Error> {
        let kind = validate_share(encryption_type, share_kind, message_type, body)?;
        let local = self.local_address().clone();
        self.open_share_parts(
            from,
            &local,
            community_id,
            key_id,
            kind,
            message_type,
            body,
            now,
            rng,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn open_share_parts<R: CryptoRng + ?Sized>(
        &mut self,
        from: &Address,
        to: &Address,
        community_id: CommunityId,
        key_id: EpochId,
        kind: ShareKind,
        message_type: u8,
        body: &[u8],
        now: Timestamp,
        rng: &mut R,
    ) -> Result<OpenedShare, S::Error> {
        if to != self.local_address() {
            return Err(ShareError::NotForThisDevice.into());
        }
        let (decrypted, mut changes) =
            self.decrypt_uncommitted(from, message_type, body, now, rng)?;
        if decrypted.identity_changed {
            return Err(ShareError::UntrustedSharer(from.clone()).into());
        }
        let payload = SharePayload::decode(&decrypted.plaintext)?;
        if payload.community_id != community_id {
            return Err(ShareError::RowMismatch("community").into());
        }
        if payload.key_id != key_id {
            return Err(ShareError::RowMismatch("epoch").into());
        }
        if payload.kind != kind {
            return Err(ShareError::RowMismatch("share kind").into());
        }
        let state = store(self.store.community(community_id))?
            .unwrap_or_else(|| CommunityState::new(community_id));
        let first_for_community = state.first_share_from().is_none();
        let state = match &payload.material {
            ShareMaterial::EpochKey(key) => state.install_epoch_key(key_id, key, from)?,
            ShareMaterial::SenderChain(message) => {
                let existing = store(self.store.sender_key(from, key_id))?;
                let record = process_distribution_message(
                    existing.as_ref(),
                    key_id.uuid(),
                    message,
                    SenderKeyLimits::default(),
                )?;
                changes.sender_keys.push(((from.clone(), key_id), record));
                state.share_opened(key_id, from)?
            }
        };
        changes.communities.push((community_id, state));
        store(self.store.commit(changes))?;
        Ok(OpenedShare {
            from: from.clone(),
            community_id,
            key_id,
            kind,
            first_for_community,
        })
    }

    /// Encrypts `payload` (an encoded [`Envelope`]) for the community, once for all members, in
    /// the epoch we send in: with our sender chain when we have one for that epoch (version-2
    /// blob, one `fill_bytes(64)`), else with the epoch key (version-1 blob, one
    /// `fill_bytes(12)`).
    pub fn community_encrypt<R: CryptoRng + ?Sized>(
        &mut self,
        id: CommunityId,
        payload: &[u8],
        now: Timestamp,
        rng: &mut R,
    ) -> Result<Vec<u8>, S::Error> {
        let state = self.community_or_unknown(id)?;
        let key_id = state.sending_epoch(now)?;
        let local = self.local_address().clone();
        if let Some(own) = store(self.store.sender_key(&local, key_id))?
            && own.current().is_some_and(|s| s.is_own_chain())
        {
            let (record, blob) =
                encrypt_sender_chain_blob(&own, id, key_id, &local, now, payload, rng)?;
            let changes = Changes {
                sender_keys: vec![((local, key_id), record)],
                ..Changes::default()
            };
            store(self.store.commit(changes))?;
            return Ok(blob);
        }
        let key = state
            .epoch_key(key_id)
            .ok_or(CommunityError::NoEpochKey(key_id))?;
        Ok(encrypt_epoch_blob(
            key, id, key_id, &local, now, payload, rng,
        )?)
    }

    /// Decrypts a blob fetched from community `id` whose row names `sender`. Checks the header
    /// against both, the epoch's acceptance rule, then decrypts. A sender-chain blob whose
    /// chain we lack yields [`GroupReceive::MissingSeed`] (and the repair is recorded) rather
    /// than an error.
    pub fn community_decrypt(
        &mut self,
        id: CommunityId,
        sender: &Address,
        blob: &[u8],
        now: Timestamp,
    ) -> Result<GroupReceive, S::Error> {
        if sender == self.local_address() {
            return Err(TransportError::OwnDevice.into());
        }
        let state = self.community_or_unknown(id)?;
        let header = validate_blob(blob).map_err(CommunityError::from)?;
        state.check_accept(header.key_id, header.sent_at)?;
        let key_id = header.key_id;
        match header.scheme {
            BlobScheme::Epoch => {
                let key = state
                    .epoch_key(key_id)
                    .ok_or(CommunityError::NoEpochKey(key_id))?;
                let (header, plaintext) = decrypt_epoch_blob(key, id, key_id, sender, blob)?;
                Ok(GroupReceive::Message { header, plaintext })
            }
            BlobScheme::SenderChain => {
                let existing = store(self.store.sender_key(sender, key_id))?;
                match decrypt_sender_chain_blob(
                    existing.as_ref(),
                    id,
                    key_id,
                    sender,
                    blob,
                    SenderKeyLimits::default(),
                ) {
                    Ok((record, header, plaintext)) => {
                        let changes = Changes {
                            sender_keys: vec![((sender.clone(), key_id), record)],
                            ..Changes::default()
                        };
                        store(self.store.commit(changes))?;
                        Ok(GroupReceive::Message { header, plaintext })
                    }
                    Err(CommunityError::SenderKey(
                        SenderKeyError::NoSenderKeyState { .. }
                        | SenderKeyError::UnknownChain { .. },
                    )) => {
                        let chain_id = header.chain.map(|c| c.chain_id);
                        let state = state
                            .note_missing_seed(key_id, sender, chain_id, now)
                            .repair_requested(key_id, sender, now);
                        self.commit_community(state)?;
                        Ok(GroupReceive::MissingSeed {
                            to: sender.clone(),
                            request: Envelope::SenderKeyRequest(SenderKeyRequest {
                                community_id: id.uuid(),
                                key_id: key_id.uuid(),
                                chain_id,
                                requested_at_ms: now.as_millis(),
                            }),
                        })
                    }
                    Err(error) => Err(error.into()),
                }
            }
        }
    }

    /// A `sender_key_request_v1` envelope for a pending repair (what
    /// [`EpochAction::RequestRepair`] asks to send), recorded as requested at `now`.
    pub fn request_repair(
        &mut self,
        id: CommunityId,
        key_id: EpochId,
        sender: &Address,
        now: Timestamp,
    ) -> Result<Envelope, S::Error> {
        let state = self.community_or_unknown(id)?;
        let chain_id = state
            .pending_repairs()
            .iter()
            .find(|r| r.key_id == key_id && r.sender == *sender)
            .and_then(|r| r.chain_id);
        let state = state
            .note_missing_seed(key_id, sender, chain_id, now)
            .repair_requested(key_id, sender, now);
        self.commit_community(state)?;
        Ok(Envelope::SenderKeyRequest(SenderKeyRequest {
            community_id: id.uuid(),
            key_id: key_id.uuid(),
            chain_id,
            requested_at_ms: now.as_millis(),
        }))
    }

    /// Answers a `sender_key_request_v1` received (as a DM) from `requester`: the `re_share_v1`
    /// payload with our chain at its current iteration, to [`Self::create_share`] back to the
    /// requester. The caller checks that the requester is a member device; an epoch that no
    /// longer accepts messages is not re-shared. Consumes no randomness.
    pub fn answer_sender_key_request(
        &self,
        requester: &Address,
        request: &SenderKeyRequest,
        now: Timestamp,
    ) -> Result<SharePayload, S::Error> {
        if requester == self.local_address() {
            return Err(TransportError::OwnDevice.into());
        }
        let id = CommunityId::new(request.community_id);
        let key_id = EpochId::new(request.key_id);
        let state = self.community_or_unknown(id)?;
        state.check_accept(key_id, now)?;
        let local = self.local_address().clone();
        let own = store(self.store.sender_key(&local, key_id))?
            .ok_or(CommunityError::NoSenderChain(key_id))?;
        let message = current_distribution_message(&own, key_id.uuid())?;
        Ok(SharePayload::sender_chain(id, key_id, message, true, now)?)
    }
}
