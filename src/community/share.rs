//! Shares: key material for one member device, sealed as a Signal message.
//!
//! A share's plaintext is `SHARE_FORMAT_VERSION (1) || protobuf {1: community_id (16),
//! 2: key_id (16), 3: share_kind (text), 4: key_material, 5: created_at_ms}` where the key
//! material is the 32-byte epoch key (`epoch_key_v1`) or a libsignal
//! `SenderKeyDistributionMessage` whose distribution id is the epoch id
//! (`epoch_sender_chain_seed_v1`, and `re_share_v1` for repair answers, carrying the current
//! iteration). The plaintext is only ever encrypted with [`crate::SignalTransport`], so the
//! `community_sender_key_shares` row always holds a Signal message of type 2 or 3 and
//! `encryption_type = 'signal_protocol'`; no other constructor of a [`ShareRow`] exists.

use core::fmt;

use prost::Message;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::epoch::EpochKey;
use super::ids::{CommunityId, EpochId};
use crate::address::Address;
use crate::error::ErrorClass;
use crate::time::Timestamp;
use crate::wire::{
    CiphertextMessage, CiphertextMessageType, DecodeError, SenderKeyDistributionMessage,
};

/// The only accepted `encryption_type` column value.
pub const ENCRYPTION_TYPE_SIGNAL: &str = "signal_protocol";
/// First byte of a share plaintext.
pub const SHARE_FORMAT_VERSION: u8 = 1;
/// Largest share body (a PreKey message around a share is about 1.8 KB).
pub const MAX_SHARE_BODY_BYTES: usize = 16 * 1024;

/// What a share carries (`community_sender_key_shares.share_kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShareKind {
    /// `epoch_key_v1`: the epoch's AES-256-GCM key.
    EpochKeyV1,
    /// `epoch_sender_chain_seed_v1`: the sender's chain seed and signing key for the epoch.
    EpochSenderChainSeedV1,
    /// `re_share_v1`: the sender's chain again, at its current iteration (a repair answer).
    ReShareV1,
}

impl ShareKind {
    /// The column value.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::EpochKeyV1 => "epoch_key_v1",
            Self::EpochSenderChainSeedV1 => "epoch_sender_chain_seed_v1",
            Self::ReShareV1 => "re_share_v1",
        }
    }

    /// Parses the column value.
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "epoch_key_v1" => Some(Self::EpochKeyV1),
            "epoch_sender_chain_seed_v1" => Some(Self::EpochSenderChainSeedV1),
            "re_share_v1" => Some(Self::ReShareV1),
            _ => None,
        }
    }
}

/// The key material of a share (its `Debug` shows no secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShareMaterial {
    /// An epoch key.
    EpochKey(EpochKey),
    /// A sender chain (seed, signing key, chain id, iteration).
    SenderChain(SenderKeyDistributionMessage),
}

/// A share's plaintext.
#[derive(Clone, PartialEq, Eq)]
pub struct SharePayload {
    /// The community.
    pub community_id: CommunityId,
    /// The epoch.
    pub key_id: EpochId,
    /// The kind.
    pub kind: ShareKind,
    /// The key material (matches `kind`).
    pub material: ShareMaterial,
    /// When the share was made.
    pub created_at: Timestamp,
}

/// Why a share is malformed or refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShareError {
    /// `encryption_type` is not `signal_protocol`.
    #[error("share encryption type must be signal_protocol")]
    NotSignalProtocol,
    /// The message type is not 2 (Whisper) or 3 (PreKey).
    #[error("share is not a Signal message (type {0})")]
    NotSignalMessage(u8),
    /// The Signal message does not parse.
    #[error("share body is not a valid Signal message: {0}")]
    Body(#[from] DecodeError),
    /// The body exceeds [`MAX_SHARE_BODY_BYTES`].
    #[error("share body is too large")]
    TooLarge,
    /// Unknown `share_kind`.
    #[error("unknown share kind")]
    UnknownKind,
    /// The decrypted payload is malformed.
    #[error("malformed share payload: {0}")]
    Payload(&'static str),
    /// The payload names another community, epoch or kind than the row claims.
    #[error("share payload names another {0} than its row")]
    RowMismatch(&'static str),
    /// The share is addressed to another device.
    #[error("share is addressed to another device")]
    NotForThisDevice,
    /// The sharer's identity key changed and is not approved: key material is refused.
    #[error("share from {0} refused: its identity key changed")]
    UntrustedSharer(Address),
}

impl ShareError {
    /// The stable class of this error.
    #[must_use]
    pub const fn class(&self) -> ErrorClass {
        match self {
            Self::Body(error) => error.class(),
            Self::UntrustedSharer(_) => ErrorClass::UntrustedIdentity,
            Self::NotForThisDevice => ErrorClass::InvalidArgument,
            _ => ErrorClass::InvalidMessage,
        }
    }
}

#[derive(Clone, PartialEq, prost::Message, Zeroize, ZeroizeOnDrop)]
#[prost(skip_debug)]
struct SharePayloadProto {
    #[prost(bytes = "vec", optional, tag = "1")]
    community_id: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    key_id: Option<Vec<u8>>,
    #[prost(string, optional, tag = "3")]
    share_kind: Option<String>,
    #[prost(bytes = "vec", optional, tag = "4")]
    key_material: Option<Vec<u8>>,
    #[prost(uint64, optional, tag = "5")]
    created_at_ms: Option<u64>,
}

/// Type name only: the payload carries key material.
impl core::fmt::Debug for SharePayloadProto {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SharePayloadProto { <redacted> }")
    }
}

impl SharePayload {
    /// An `epoch_key_v1` share.
    #[must_use]
    pub fn epoch_key(
        community_id: CommunityId,
        key_id: EpochId,
        key: &EpochKey,
        created_at: Timestamp,
    ) -> Self {
        Self {
            community_id,
            key_id,
            kind: ShareKind::EpochKeyV1,
            material: ShareMaterial::EpochKey(key.clone()),
            created_at,
        }
    }

    /// An `epoch_sender_chain_seed_v1` (or, with `repair`, `re_share_v1`) share. The
    /// distribution message must be for `key_id`.
    pub fn sender_chain(
        community_id: CommunityId,
        key_id: EpochId,
        message: SenderKeyDistributionMessage,
        repair: bool,
        created_at: Timestamp,
    ) -> Result<Self, ShareError> {
        if message.distribution_id() != key_id.as_bytes() {
            return Err(ShareError::Payload("distribution id is not the epoch id"));
        }
        Ok(Self {
            community_id,
            key_id,
            kind: if repair {
                ShareKind::ReShareV1
            } else {
                ShareKind::EpochSenderChainSeedV1
            },
            material: ShareMaterial::SenderChain(message),
            created_at,
        })
    }

    /// The plaintext to seal (secret).
    #[must_use]
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let material = match &self.material {
            ShareMaterial::EpochKey(key) => key.as_bytes().to_vec(),
            ShareMaterial::SenderChain(message) => message.serialized().to_vec(),
        };
        let proto = SharePayloadProto {
            community_id: Some(self.community_id.as_bytes().to_vec()),
            key_id: Some(self.key_id.as_bytes().to_vec()),
            share_kind: Some(self.kind.as_str().to_owned()),
            key_material: Some(material),
            created_at_ms: Some(self.created_at.as_millis()),
        };
        let body = Zeroizing::new(proto.encode_to_vec());
        let mut out = Zeroizing::new(Vec::with_capacity(1 + body.len()));
        out.push(SHARE_FORMAT_VERSION);
        out.extend_from_slice(&body);
        out
    }

    /// Strictly decodes a share plaintext.
    pub fn decode(bytes: &[u8]) -> Result<Self, ShareError> {
        let [version, body @ ..] = bytes else {
            return Err(ShareError::Payload("empty"));
        };
        if *version != SHARE_FORMAT_VERSION {
            return Err(ShareError::Payload("unsupported version"));
        }
        let proto = SharePayloadProto::decode(body).map_err(|_| ShareError::Payload("protobuf"))?;
        if *Zeroizing::new(proto.encode_to_vec()) != *body {
            return Err(ShareError::Payload("not canonical"));
        }
        let uuid = |field: &'static str, value: Option<&[u8]>| {
            value
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .ok_or(ShareError::Payload(field))
        };
        let community_id =
            CommunityId::from_bytes(uuid("community_id", proto.community_id.as_deref())?);
        let key_id = EpochId::from_bytes(uuid("key_id", proto.key_id.as_deref())?);
        let kind = proto
            .share_kind
            .as_deref()
            .and_then(ShareKind::parse)
            .ok_or(ShareError::UnknownKind)?;
        let material = proto
            .key_material
            .as_deref()
            .ok_or(ShareError::Payload("key_material"))?;
        let created_at = Timestamp::from_millis(
            proto
                .created_at_ms
                .ok_or(ShareError::Payload("created_at_ms"))?,
        );
        match kind {
            ShareKind::EpochKeyV1 => Ok(Self {
                community_id,
                key_id,
                kind,
                material: ShareMaterial::EpochKey(
                    EpochKey::from_slice(material).ok_or(ShareError::Payload("epoch key"))?,
                ),
                created_at,
            }),
            ShareKind::EpochSenderChainSeedV1 | ShareKind::ReShareV1 => {
                let message = SenderKeyDistributionMessage::try_from(material)
                    .map_err(|_| ShareError::Payload("sender key distribution message"))?;
                Self::sender_chain(
                    community_id,
                    key_id,
                    message,
                    kind == ShareKind::ReShareV1,
                    created_at,
                )
            }
        }
    }
}

impl fmt::Debug for SharePayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharePayload")
            .field("community_id", &self.community_id)
            .field("key_id", &self.key_id)
            .field("kind", &self.kind)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// A `community_sender_key_shares` row (the user ids are the server's, from the agents).
#[derive(Clone, PartialEq, Eq)]
pub struct ShareRow {
    /// The community.
    pub community_id: CommunityId,
    /// The epoch (`key_id`).
    pub key_id: EpochId,
    /// The sharing device.
    pub from: Address,
    /// The receiving device.
    pub to: Address,
    /// The kind.
    pub share_kind: ShareKind,
    /// The Signal message type: 3 (PreKey) or 2 (Whisper).
    pub message_type: CiphertextMessageType,
    /// The Signal message.
    pub body: Vec<u8>,
}

impl ShareRow {
    /// Always `signal_protocol`.
    #[must_use]
    pub const fn encryption_type(&self) -> &'static str {
        ENCRYPTION_TYPE_SIGNAL
    }
}

impl fmt::Debug for ShareRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShareRow")
            .field("community_id", &self.community_id)
            .field("key_id", &self.key_id)
            .field("from", &self.from)
            .field("to", &self.to)
            .field("share_kind", &self.share_kind)
            .field("message_type", &self.message_type)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// Checks a share row's shape without keys, as the server does before storing it:
/// `encryption_type` is `signal_protocol`, the kind is known, and the body is a Signal message
/// of type 2 or 3 that parses. Returns the kind.
pub fn validate_share(
    encryption_type: &str,
    share_kind: &str,
    message_type: u8,
    body: &[u8],
) -> Result<ShareKind, ShareError> {
    if encryption_type != ENCRYPTION_TYPE_SIGNAL {
        return Err(ShareError::NotSignalProtocol);
    }
    let kind = ShareKind::parse(share_kind).ok_or(ShareError::UnknownKind)?;
    if body.len() > MAX_SHARE_BODY_BYTES {
        return Err(ShareError::TooLarge);
    }
    let message_type = match CiphertextMessageType::try_from(message_type) {
        Ok(t @ (CiphertextMessageType::Whisper | CiphertextMessageType::PreKey)) => t,
        _ => return Err(ShareError::NotSignalMessage(message_type)),
    };
    CiphertextMessage::decode(message_type, body)?;
    Ok(kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn payload_round_trips_and_rejections() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(4);
        let community = CommunityId::random(&mut rng);
        let epoch = EpochId::random(&mut rng);
        let key = EpochKey::generate(&mut rng);
        let at = Timestamp::from_secs(1_700_000_000);
        let payload = SharePayload::epoch_key(community, epoch, &key, at);
        let bytes = payload.encode();
        assert_eq!(bytes[0], SHARE_FORMAT_VERSION);
        assert_eq!(SharePayload::decode(&bytes).unwrap(), payload);
        assert!(!format!("{payload:?}").contains(&hex::encode(key.as_bytes())));

        let (_, skdm) =
            crate::sender_keys::create_distribution_message(None, epoch.uuid(), &mut rng).unwrap();
        let seed = SharePayload::sender_chain(community, epoch, skdm.clone(), false, at).unwrap();
        assert_eq!(SharePayload::decode(&seed.encode()).unwrap(), seed);
        let other = EpochId::random(&mut rng);
        assert!(SharePayload::sender_chain(community, other, skdm, true, at).is_err());

        assert!(SharePayload::decode(&[]).is_err());
        assert!(SharePayload::decode(&[2]).is_err());
        let mut trailing = bytes.to_vec();
        trailing.extend_from_slice(&[0x30, 0x01]);
        assert_eq!(
            SharePayload::decode(&trailing),
            Err(ShareError::Payload("not canonical"))
        );
    }

    #[test]
    fn validate_rows() {
        assert_eq!(
            validate_share("aes_gcm", "epoch_key_v1", 3, &[0x44]),
            Err(ShareError::NotSignalProtocol)
        );
        assert_eq!(
            validate_share("signal_protocol", "plain", 3, &[0x44]),
            Err(ShareError::UnknownKind)
        );
        for t in [0u8, 1, 7, 8, 9] {
            assert_eq!(
                validate_share("signal_protocol", "epoch_key_v1", t, &[0x33; 80]),
                Err(ShareError::NotSignalMessage(t))
            );
        }
        assert!(matches!(
            validate_share("signal_protocol", "epoch_key_v1", 2, &[0x44, 1, 2]),
            Err(ShareError::Body(_))
        ));
    }
}
