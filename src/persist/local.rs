//! Encodings of the facade's own records: local identity, trust, device lists and the prekey
//! bookkeeping. Decoding is strict and canonical (sorted, unique, bounded lists), so a stored
//! record decodes to exactly one value.

use prost::Message;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::prescan::{self, Bound};
use super::proto::redacted_debug;
use super::{Persist, PersistError, RecordKind, fixed, frame, required, unframe};
use crate::address::DeviceId;
use crate::devices::DeviceList;
use crate::keys::{
    IdentityKey, IdentityKeyPair, KyberPreKeyId, PublicKey, RegistrationId, SignedPreKeyId,
};
use crate::prekey_lifecycle::PreKeyState;
use crate::store::LocalIdentity;
use crate::time::Timestamp;
use crate::trust::TrustRecord;

/// Most retired keys kept in the bookkeeping; far above what a 30-day grace with weekly
/// rotation produces, low enough to bound decoding work.
const MAX_RETIRED: usize = 1000;

#[derive(Clone, PartialEq, Message, Zeroize, ZeroizeOnDrop)]
#[prost(skip_debug)]
struct LocalIdentityProto {
    /// libsignal's identity key pair encoding.
    #[prost(bytes = "vec", optional, tag = "1")]
    key_pair: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "2")]
    registration_id: Option<u32>,
}

redacted_debug!(LocalIdentityProto);

#[derive(Clone, PartialEq, Message)]
struct TrustProto {
    /// Set for a trusted key.
    #[prost(bytes = "vec", optional, tag = "1")]
    trusted: Option<Vec<u8>>,
    #[prost(bool, optional, tag = "2")]
    verified: Option<bool>,
    /// Set (with `current`) for a pending change.
    #[prost(bytes = "vec", optional, tag = "3")]
    previous: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "4")]
    current: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
struct DeviceListProto {
    #[prost(uint32, repeated, tag = "1")]
    devices: Vec<u32>,
}

#[derive(Clone, PartialEq, Message)]
struct RetiredProto {
    #[prost(uint32, optional, tag = "1")]
    id: Option<u32>,
    #[prost(uint64, optional, tag = "2")]
    retired_at_ms: Option<u64>,
}

#[derive(Clone, PartialEq, Message)]
struct PreKeyStateProto {
    #[prost(uint32, optional, tag = "1")]
    next_pre_key_id: Option<u32>,
    #[prost(uint32, optional, tag = "2")]
    next_signed_pre_key_id: Option<u32>,
    #[prost(uint32, optional, tag = "3")]
    next_kyber_pre_key_id: Option<u32>,
    #[prost(uint32, optional, tag = "4")]
    current_signed_pre_key: Option<u32>,
    #[prost(uint32, optional, tag = "5")]
    current_last_resort: Option<u32>,
    #[prost(message, repeated, tag = "6")]
    retired_signed_pre_keys: Vec<RetiredProto>,
    #[prost(message, repeated, tag = "7")]
    retired_last_resort: Vec<RetiredProto>,
}

/// The retired-key lists of `PreKeyStateProto`, checked before decoding.
const PREKEY_STATE_BOUNDS: &[Bound] = &[
    Bound {
        tag: 6,
        field: "retired_signed_pre_keys",
        max: MAX_RETIRED,
        nested: None,
    },
    Bound {
        tag: 7,
        field: "retired_last_resort",
        max: MAX_RETIRED,
        nested: None,
    },
];

fn identity_key(field: &'static str, value: Option<&[u8]>) -> Result<IdentityKey, PersistError> {
    let bytes = fixed::<33>(field, value)?;
    PublicKey::deserialize(&bytes)
        .map(IdentityKey::new)
        .map_err(|source| PersistError::InvalidKey { field, source })
}

impl Persist for LocalIdentity {
    const KIND: RecordKind = RecordKind::LocalIdentity;

    fn to_record_bytes(&self) -> Zeroizing<Vec<u8>> {
        let proto = LocalIdentityProto {
            key_pair: Some(self.key_pair.serialize().to_vec()),
            registration_id: Some(self.registration_id.0),
        };
        frame(Self::KIND, &Zeroizing::new(proto.encode_to_vec()))
    }

    fn from_record_bytes(bytes: &[u8]) -> Result<Self, PersistError> {
        let body = unframe(Self::KIND, bytes)?;
        let proto = LocalIdentityProto::decode(body).map_err(|_| PersistError::Protobuf)?;
        let pair = required("key_pair", proto.key_pair.as_deref())?;
        let key_pair =
            IdentityKeyPair::deserialize(pair).map_err(|source| PersistError::InvalidKey {
                field: "key_pair",
                source,
            })?;
        Ok(Self {
            key_pair,
            registration_id: RegistrationId(required("registration_id", proto.registration_id)?),
        })
    }
}

impl Persist for TrustRecord {
    const KIND: RecordKind = RecordKind::Trust;

    fn to_record_bytes(&self) -> Zeroizing<Vec<u8>> {
        let proto = match self {
            Self::Trusted { identity, verified } => TrustProto {
                trusted: Some(identity.serialize().to_vec()),
                verified: Some(*verified),
                previous: None,
                current: None,
            },
            Self::Changed { previous, current } => TrustProto {
                trusted: None,
                verified: None,
                previous: Some(previous.serialize().to_vec()),
                current: Some(current.serialize().to_vec()),
            },
        };
        frame(Self::KIND, &proto.encode_to_vec())
    }

    fn from_record_bytes(bytes: &[u8]) -> Result<Self, PersistError> {
        let body = unframe(Self::KIND, bytes)?;
        let proto = TrustProto::decode(body).map_err(|_| PersistError::Protobuf)?;
        match (&proto.trusted, &proto.previous, &proto.current) {
            (Some(trusted), None, None) => Ok(Self::Trusted {
                identity: identity_key("trusted", Some(trusted))?,
                verified: required("verified", proto.verified)?,
            }),
            (None, Some(previous), Some(current)) if proto.verified.is_none() => {
                Ok(Self::Changed {
                    previous: identity_key("previous", Some(previous))?,
                    current: identity_key("current", Some(current))?,
                })
            }
            _ => Err(PersistError::InvalidField("trust state")),
        }
    }
}

impl Persist for DeviceList {
    const KIND: RecordKind = RecordKind::DeviceList;

    fn to_record_bytes(&self) -> Zeroizing<Vec<u8>> {
        let proto = DeviceListProto {
            devices: self.devices().map(DeviceId::get).collect(),
        };
        frame(Self::KIND, &proto.encode_to_vec())
    }

    fn from_record_bytes(bytes: &[u8]) -> Result<Self, PersistError> {
        let body = unframe(Self::KIND, bytes)?;
        let proto = DeviceListProto::decode(body).map_err(|_| PersistError::Protobuf)?;
        let max = usize::try_from(DeviceId::MAX).unwrap_or(usize::MAX);
        if proto.devices.len() > max {
            return Err(PersistError::TooMany {
                field: "devices",
                max,
                got: proto.devices.len(),
            });
        }
        // Canonical: strictly ascending, as written.
        if proto
            .devices
            .windows(2)
            .any(|pair| pair.first() >= pair.get(1))
        {
            return Err(PersistError::InvalidField("devices"));
        }
        proto
            .devices
            .iter()
            .map(|id| DeviceId::new(*id).map_err(|_| PersistError::InvalidField("devices")))
            .collect()
    }
}

fn retired<T>(
    field: &'static str,
    list: &[RetiredProto],
    make: impl Fn(u32) -> T,
) -> Result<Vec<(T, Timestamp)>, PersistError> {
    if list.len() > MAX_RETIRED {
        return Err(PersistError::TooMany {
            field,
            max: MAX_RETIRED,
            got: list.len(),
        });
    }
    list.iter()
        .map(|entry| {
            Ok((
                make(required(field, entry.id)?),
                Timestamp::from_millis(required(field, entry.retired_at_ms)?),
            ))
        })
        .collect()
}

fn encode_retired<T: Copy + Into<u32>>(list: &[(T, Timestamp)]) -> Vec<RetiredProto> {
    list.iter()
        .map(|(id, at)| RetiredProto {
            id: Some((*id).into()),
            retired_at_ms: Some(at.as_millis()),
        })
        .collect()
}

impl Persist for PreKeyState {
    const KIND: RecordKind = RecordKind::PreKeyState;

    fn to_record_bytes(&self) -> Zeroizing<Vec<u8>> {
        let proto = PreKeyStateProto {
            next_pre_key_id: Some(self.next_pre_key_id),
            next_signed_pre_key_id: Some(self.next_signed_pre_key_id),
            next_kyber_pre_key_id: Some(self.next_kyber_pre_key_id),
            current_signed_pre_key: self.current_signed_pre_key.map(|id| id.0),
            current_last_resort: self.current_last_resort.map(|id| id.0),
            retired_signed_pre_keys: encode_retired(&self.retired_signed_pre_keys),
            retired_last_resort: encode_retired(&self.retired_last_resort),
        };
        frame(Self::KIND, &proto.encode_to_vec())
    }

    fn from_record_bytes(bytes: &[u8]) -> Result<Self, PersistError> {
        let body = unframe(Self::KIND, bytes)?;
        prescan::check(body, PREKEY_STATE_BOUNDS)?;
        let proto = PreKeyStateProto::decode(body).map_err(|_| PersistError::Protobuf)?;
        Ok(Self {
            next_pre_key_id: required("next_pre_key_id", proto.next_pre_key_id)?,
            next_signed_pre_key_id: required(
                "next_signed_pre_key_id",
                proto.next_signed_pre_key_id,
            )?,
            next_kyber_pre_key_id: required("next_kyber_pre_key_id", proto.next_kyber_pre_key_id)?,
            current_signed_pre_key: proto.current_signed_pre_key.map(SignedPreKeyId),
            current_last_resort: proto.current_last_resort.map(KyberPreKeyId),
            retired_signed_pre_keys: retired(
                "retired_signed_pre_keys",
                &proto.retired_signed_pre_keys,
                SignedPreKeyId,
            )?,
            retired_last_resort: retired(
                "retired_last_resort",
                &proto.retired_last_resort,
                KyberPreKeyId,
            )?,
        })
    }
}
