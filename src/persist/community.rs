//! Encoding of `CommunityState` (kind 12).

use prost::Message;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::prescan::{self, Bound};
use super::proto::redacted_debug;
use super::{Persist, PersistError, RecordKind, fixed, frame, required, unframe};
use crate::address::Address;
use crate::community::EpochEntry;
use crate::community::{
    CommunityId, CommunityState, EpochId, EpochInfo, EpochKey, MAX_EPOCHS, MAX_PENDING_REPAIRS,
    PendingRepair, RotationKind,
};
use crate::time::Timestamp;

#[derive(Clone, PartialEq, Message, Zeroize, ZeroizeOnDrop)]
#[prost(skip_debug)]
struct CommunityStateProto {
    #[prost(bytes = "vec", optional, tag = "1")]
    community_id: Option<Vec<u8>>,
    /// Oldest first.
    #[prost(message, repeated, tag = "2")]
    epochs: Vec<EpochProto>,
    #[prost(bytes = "vec", optional, tag = "3")]
    sending: Option<Vec<u8>>,
    #[prost(string, optional, tag = "4")]
    first_share_from: Option<String>,
    #[prost(message, repeated, tag = "5")]
    repairs: Vec<RepairProto>,
}

#[derive(Clone, PartialEq, Message, Zeroize, ZeroizeOnDrop)]
#[prost(skip_debug)]
struct EpochProto {
    #[prost(bytes = "vec", optional, tag = "1")]
    key_id: Option<Vec<u8>>,
    #[prost(uint64, optional, tag = "2")]
    rotated_at_ms: Option<u64>,
    /// 1 = soft, 2 = hard.
    #[prost(uint32, optional, tag = "3")]
    rotation: Option<u32>,
    #[prost(uint64, optional, tag = "4")]
    grace_until_ms: Option<u64>,
    #[prost(bytes = "vec", optional, tag = "5")]
    key: Option<Vec<u8>>,
    #[prost(bool, optional, tag = "6")]
    share_received: Option<bool>,
    #[prost(uint32, optional, tag = "7")]
    server_key_id: Option<u32>,
}

redacted_debug!(CommunityStateProto, EpochProto);

/// Count limits checked before the full decode (see `prescan`).
const STATE_BOUNDS: &[Bound] = &[
    Bound {
        tag: 2,
        field: "epochs",
        max: MAX_EPOCHS,
        nested: None,
    },
    Bound {
        tag: 5,
        field: "repairs",
        max: MAX_PENDING_REPAIRS,
        nested: None,
    },
];

#[derive(Clone, PartialEq, Message, Zeroize, ZeroizeOnDrop)]
struct RepairProto {
    #[prost(bytes = "vec", optional, tag = "1")]
    key_id: Option<Vec<u8>>,
    #[prost(string, optional, tag = "2")]
    sender: Option<String>,
    #[prost(uint32, optional, tag = "3")]
    chain_id: Option<u32>,
    #[prost(uint64, optional, tag = "4")]
    noted_at_ms: Option<u64>,
    #[prost(uint64, optional, tag = "5")]
    requested_at_ms: Option<u64>,
}

fn address(field: &'static str, value: Option<&str>) -> Result<Address, PersistError> {
    required(field, value)?
        .parse()
        .map_err(|_| PersistError::InvalidField(field))
}

impl Persist for CommunityState {
    const KIND: RecordKind = RecordKind::Community;

    fn to_record_bytes(&self) -> Zeroizing<Vec<u8>> {
        let proto = CommunityStateProto {
            community_id: Some(self.community_id.as_bytes().to_vec()),
            epochs: self
                .epochs
                .iter()
                .map(|entry| EpochProto {
                    key_id: Some(entry.info.key_id.as_bytes().to_vec()),
                    rotated_at_ms: Some(entry.info.rotated_at.as_millis()),
                    rotation: Some(match entry.info.rotation {
                        RotationKind::Soft => 1,
                        RotationKind::Hard => 2,
                    }),
                    grace_until_ms: entry.info.grace_until.map(Timestamp::as_millis),
                    key: entry.key.as_ref().map(|key| key.as_bytes().to_vec()),
                    share_received: Some(entry.share_received),
                    server_key_id: Some(entry.info.server_key_id),
                })
                .collect(),
            sending: self.sending.map(|id| id.as_bytes().to_vec()),
            first_share_from: self.first_share_from.as_ref().map(ToString::to_string),
            repairs: self
                .repairs
                .iter()
                .map(|repair| RepairProto {
                    key_id: Some(repair.key_id.as_bytes().to_vec()),
                    sender: Some(repair.sender.to_string()),
                    chain_id: repair.chain_id,
                    noted_at_ms: Some(repair.noted_at.as_millis()),
                    requested_at_ms: repair.requested_at.map(Timestamp::as_millis),
                })
                .collect(),
        };
        frame(Self::KIND, &Zeroizing::new(proto.encode_to_vec()))
    }

    fn from_record_bytes(bytes: &[u8]) -> Result<Self, PersistError> {
        let body = unframe(Self::KIND, bytes)?;
        prescan::check(body, STATE_BOUNDS)?;
        let proto = CommunityStateProto::decode(body).map_err(|_| PersistError::Protobuf)?;
        if proto.epochs.len() > MAX_EPOCHS {
            return Err(PersistError::TooMany {
                field: "epochs",
                max: MAX_EPOCHS,
                got: proto.epochs.len(),
            });
        }
        if proto.repairs.len() > MAX_PENDING_REPAIRS {
            return Err(PersistError::TooMany {
                field: "repairs",
                max: MAX_PENDING_REPAIRS,
                got: proto.repairs.len(),
            });
        }
        let community_id =
            CommunityId::from_bytes(fixed("community_id", proto.community_id.as_deref())?);
        let mut epochs: Vec<EpochEntry> = Vec::with_capacity(proto.epochs.len());
        for epoch in &proto.epochs {
            let info = EpochInfo {
                key_id: EpochId::from_bytes(fixed("epoch.key_id", epoch.key_id.as_deref())?),
                server_key_id: required("epoch.server_key_id", epoch.server_key_id)?,
                rotated_at: Timestamp::from_millis(required(
                    "epoch.rotated_at_ms",
                    epoch.rotated_at_ms,
                )?),
                rotation: match required("epoch.rotation", epoch.rotation)? {
                    1 => RotationKind::Soft,
                    2 => RotationKind::Hard,
                    _ => return Err(PersistError::InvalidField("epoch.rotation")),
                },
                grace_until: epoch.grace_until_ms.map(Timestamp::from_millis),
            };
            let in_order = epochs
                .last()
                .is_none_or(|last| last.info.rotated_at <= info.rotated_at);
            if !in_order || epochs.iter().any(|e| e.info.key_id == info.key_id) {
                return Err(PersistError::InvalidField("epochs"));
            }
            if info.server_key_id == 0 || !info.belongs_to(community_id) {
                return Err(PersistError::InvalidField("epoch.key_id"));
            }
            let key = epoch
                .key
                .as_deref()
                .map(|key| EpochKey::from_slice(key).ok_or(PersistError::InvalidField("epoch.key")))
                .transpose()?;
            epochs.push(EpochEntry {
                info,
                key,
                share_received: required("epoch.share_received", epoch.share_received)?,
            });
        }
        let sending = proto
            .sending
            .as_deref()
            .map(|id| fixed::<16>("sending", Some(id)).map(EpochId::from_bytes))
            .transpose()?;
        if sending.is_some_and(|id| !epochs.iter().any(|e| e.info.key_id == id)) {
            return Err(PersistError::InvalidField("sending"));
        }
        let repairs = proto
            .repairs
            .iter()
            .map(|repair| {
                Ok(PendingRepair {
                    key_id: EpochId::from_bytes(fixed("repair.key_id", repair.key_id.as_deref())?),
                    sender: address("repair.sender", repair.sender.as_deref())?,
                    chain_id: repair.chain_id,
                    noted_at: Timestamp::from_millis(required(
                        "repair.noted_at_ms",
                        repair.noted_at_ms,
                    )?),
                    requested_at: repair.requested_at_ms.map(Timestamp::from_millis),
                })
            })
            .collect::<Result<_, PersistError>>()?;
        Ok(Self {
            community_id,
            epochs,
            sending,
            first_share_from: proto
                .first_share_from
                .as_deref()
                .map(|a| address("first_share_from", Some(a)))
                .transpose()?,
            repairs,
        })
    }
}
