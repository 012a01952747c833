//! Whole-store export and import of a [`MemoryStore`]: every record in its own versioned
//! encoding, nested in one framed protobuf. Reusing the record encodings means the import runs
//! exactly the strict decoders a database backend runs per row.

use std::collections::{BTreeMap, BTreeSet};

use prost::Message;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::prescan::{self, Bound};
use super::proto::redacted_debug;
use super::{Persist, PersistError, RecordKind, fixed, frame, required, unframe};
use crate::address::{Address, AgentId};
use crate::community::{CommunityId, CommunityState, EpochId};
use crate::devices::DeviceList;
use crate::keys::{KyberPreKeyId, KyberPreKeyRecord, PreKeyRecord, SignedPreKeyRecord};
use crate::prekey_lifecycle::PreKeyState;
use crate::sender_keys::SenderKeyRecord;
use crate::session::SessionRecord;
use crate::store::{LocalIdentity, MemoryStore};
use crate::trust::TrustRecord;

#[derive(Clone, PartialEq, Message, Zeroize, ZeroizeOnDrop)]
#[prost(skip_debug)]
struct StoreProto {
    #[prost(bytes = "vec", optional, tag = "1")]
    identity: Option<Vec<u8>>,
    #[prost(message, repeated, tag = "2")]
    sessions: Vec<EntryProto>,
    #[prost(bytes = "vec", repeated, tag = "3")]
    pre_keys: Vec<Vec<u8>>,
    #[prost(bytes = "vec", repeated, tag = "4")]
    signed_pre_keys: Vec<Vec<u8>>,
    #[prost(bytes = "vec", repeated, tag = "5")]
    kyber_pre_keys: Vec<Vec<u8>>,
    #[prost(message, repeated, tag = "6")]
    kyber_uses: Vec<KyberUseProto>,
    #[prost(message, repeated, tag = "7")]
    trust: Vec<EntryProto>,
    #[prost(message, repeated, tag = "8")]
    device_lists: Vec<EntryProto>,
    #[prost(bytes = "vec", optional, tag = "9")]
    prekey_state: Option<Vec<u8>>,
    /// Keyed `agent.device/epoch-uuid`.
    #[prost(message, repeated, tag = "10")]
    sender_keys: Vec<EntryProto>,
    /// Keyed by the community UUID.
    #[prost(message, repeated, tag = "11")]
    communities: Vec<EntryProto>,
}

/// A keyed record: the key as text (an address or agent id), the value in its own encoding.
#[derive(Clone, PartialEq, Message, Zeroize, ZeroizeOnDrop)]
#[prost(skip_debug)]
struct EntryProto {
    #[prost(string, optional, tag = "1")]
    key: Option<String>,
    #[prost(bytes = "vec", optional, tag = "2")]
    value: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message, Zeroize, ZeroizeOnDrop)]
#[prost(skip_debug)]
struct KyberUseProto {
    #[prost(uint32, optional, tag = "1")]
    id: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "2")]
    base_key: Option<Vec<u8>>,
}

/// Most entries in each list of a store export (sessions, trust records, device lists, each
/// kind of prekey, last-resort uses): far above what one device holds, low enough that a
/// hostile export cannot make the decoder allocate much more than its own size.
pub const MAX_STORE_ENTRIES: usize = 100_000;

/// The lists of `StoreProto` and their limits, checked before decoding.
const STORE_BOUNDS: &[Bound] = &[
    list(2, "sessions"),
    list(3, "pre_keys"),
    list(4, "signed_pre_keys"),
    list(5, "kyber_pre_keys"),
    list(6, "kyber_uses"),
    list(7, "trust"),
    list(8, "device_lists"),
];

const fn list(tag: u32, field: &'static str) -> Bound {
    Bound {
        tag,
        field,
        max: MAX_STORE_ENTRIES,
        nested: None,
    }
}

redacted_debug!(StoreProto, EntryProto, KyberUseProto);

fn entries<K: ToString, V: Persist>(map: &BTreeMap<K, V>) -> Vec<EntryProto> {
    map.iter()
        .map(|(key, value)| EntryProto {
            key: Some(key.to_string()),
            value: Some(value.to_record_bytes().to_vec()),
        })
        .collect()
}

fn records<V: Persist>(values: impl Iterator<Item = V>) -> Vec<Vec<u8>> {
    values
        .map(|value| value.to_record_bytes().to_vec())
        .collect()
}

pub(crate) fn export_store(store: &MemoryStore) -> Zeroizing<Vec<u8>> {
    let proto = StoreProto {
        identity: store
            .identity
            .as_ref()
            .map(|identity| identity.to_record_bytes().to_vec()),
        sessions: entries(&store.sessions),
        pre_keys: records(store.pre_keys.values().cloned()),
        signed_pre_keys: records(store.signed_pre_keys.values().cloned()),
        kyber_pre_keys: records(store.kyber_pre_keys.values().cloned()),
        kyber_uses: store
            .kyber_uses
            .iter()
            .map(|(id, base)| KyberUseProto {
                id: Some(id.0),
                base_key: Some(base.to_vec()),
            })
            .collect(),
        trust: entries(&store.trust),
        device_lists: entries(&store.device_lists),
        prekey_state: store
            .prekey_state
            .as_ref()
            .map(|state| state.to_record_bytes().to_vec()),
        sender_keys: store
            .sender_keys
            .iter()
            .map(|((sender, key_id), record)| EntryProto {
                key: Some(format!("{sender}/{key_id}")),
                value: Some(record.to_record_bytes().to_vec()),
            })
            .collect(),
        communities: entries(&store.communities),
    };
    frame(RecordKind::Store, &Zeroizing::new(proto.encode_to_vec()))
}

/// Decodes keyed entries, rejecting duplicate keys (an export never has them).
fn decode_entries<K: Ord, V: Persist>(
    field: &'static str,
    list: &[EntryProto],
    parse_key: impl Fn(&str) -> Option<K>,
) -> Result<BTreeMap<K, V>, PersistError> {
    let mut map = BTreeMap::new();
    for entry in list {
        let key = parse_key(required(field, entry.key.as_deref())?)
            .ok_or(PersistError::InvalidField(field))?;
        let value = V::from_record_bytes(required(field, entry.value.as_deref())?)?;
        if map.insert(key, value).is_some() {
            return Err(PersistError::InvalidField(field));
        }
    }
    Ok(map)
}

/// Decodes records keyed by their own id, rejecting duplicate ids.
fn decode_records<K: Ord, V: Persist>(
    field: &'static str,
    list: &[Vec<u8>],
    key: impl Fn(&V) -> K,
) -> Result<BTreeMap<K, V>, PersistError> {
    let mut map = BTreeMap::new();
    for bytes in list {
        let value = V::from_record_bytes(bytes)?;
        if map.insert(key(&value), value).is_some() {
            return Err(PersistError::InvalidField(field));
        }
    }
    Ok(map)
}

pub(crate) fn import_store(bytes: &[u8]) -> Result<MemoryStore, PersistError> {
    let body = unframe(RecordKind::Store, bytes)?;
    prescan::check(body, STORE_BOUNDS)?;
    let proto = StoreProto::decode(body).map_err(|_| PersistError::Protobuf)?;
    let mut kyber_uses = BTreeSet::new();
    for entry in &proto.kyber_uses {
        let id = KyberPreKeyId(required("kyber_uses.id", entry.id)?);
        let base = fixed::<32>("kyber_uses.base_key", entry.base_key.as_deref())?;
        if !kyber_uses.insert((id, base)) {
            return Err(PersistError::InvalidField("kyber_uses"));
        }
    }
    Ok(MemoryStore {
        identity: proto
            .identity
            .as_deref()
            .map(LocalIdentity::from_record_bytes)
            .transpose()?,
        sessions: decode_entries::<Address, SessionRecord>("sessions", &proto.sessions, |key| {
            key.parse().ok()
        })?,
        pre_keys: decode_records("pre_keys", &proto.pre_keys, PreKeyRecord::id)?,
        signed_pre_keys: decode_records(
            "signed_pre_keys",
            &proto.signed_pre_keys,
            SignedPreKeyRecord::id,
        )?,
        kyber_pre_keys: decode_records(
            "kyber_pre_keys",
            &proto.kyber_pre_keys,
            KyberPreKeyRecord::id,
        )?,
        kyber_uses,
        trust: decode_entries::<Address, TrustRecord>("trust", &proto.trust, |key| {
            key.parse().ok()
        })?,
        device_lists: decode_entries::<AgentId, DeviceList>(
            "device_lists",
            &proto.device_lists,
            |key| AgentId::new(key).ok(),
        )?,
        prekey_state: proto
            .prekey_state
            .as_deref()
            .map(PreKeyState::from_record_bytes)
            .transpose()?,
        sender_keys: decode_entries::<(Address, EpochId), SenderKeyRecord>(
            "sender_keys",
            &proto.sender_keys,
            |key| {
                let (sender, key_id) = key.split_once('/')?;
                Some((sender.parse().ok()?, key_id.parse().ok()?))
            },
        )?,
        communities: decode_entries::<CommunityId, CommunityState>(
            "communities",
            &proto.communities,
            |key| key.parse().ok(),
        )?,
    })
}
