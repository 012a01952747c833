//! Encoding of `SenderKeyRecord` (kind 11).

use prost::Message;
use zeroize::Zeroizing;

use super::keys::key_pair;
use super::prescan::{self, Bound};
use super::proto::{SenderKeyRecordProto, SenderKeyStateProto, SkippedKeyProto};
use super::{Persist, PersistError, RecordKind, fixed, frame, required, unframe};
use crate::keys::PublicKey;
use crate::sender_keys::{
    MAX_SENDER_KEY_STATES, MAX_SKIPPED_KEYS_CEILING, SenderChainKey, SenderKeyRecord,
    SenderKeyState, SenderMessageKey,
};
use crate::wire::SENDERKEY_MESSAGE_CURRENT_VERSION;

/// Count limits checked before the full decode (see `prescan`).
const RECORD_BOUNDS: &[Bound] = &[Bound {
    tag: 1,
    field: "states",
    max: MAX_SENDER_KEY_STATES,
    nested: Some(&[Bound {
        tag: 7,
        field: "skipped",
        max: MAX_SKIPPED_KEYS_CEILING,
        nested: None,
    }]),
}];

impl Persist for SenderKeyRecord {
    const KIND: RecordKind = RecordKind::SenderKey;

    fn to_record_bytes(&self) -> Zeroizing<Vec<u8>> {
        let proto = SenderKeyRecordProto {
            states: self.states.iter().map(encode_state).collect(),
        };
        frame(Self::KIND, &Zeroizing::new(proto.encode_to_vec()))
    }

    fn from_record_bytes(bytes: &[u8]) -> Result<Self, PersistError> {
        let body = unframe(Self::KIND, bytes)?;
        prescan::check(body, RECORD_BOUNDS)?;
        let proto = SenderKeyRecordProto::decode(body).map_err(|_| PersistError::Protobuf)?;
        if proto.states.len() > MAX_SENDER_KEY_STATES {
            return Err(PersistError::TooMany {
                field: "states",
                max: MAX_SENDER_KEY_STATES,
                got: proto.states.len(),
            });
        }
        let states = proto
            .states
            .iter()
            .map(decode_state)
            .collect::<Result<_, _>>()?;
        let record = Self { states };
        let mut ids: Vec<u32> = record.states.iter().map(|s| s.chain_id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != record.states.len() {
            return Err(PersistError::InvalidField("states.chain_id"));
        }
        Ok(record)
    }
}

fn encode_state(state: &SenderKeyState) -> SenderKeyStateProto {
    SenderKeyStateProto {
        message_version: Some(u32::from(state.message_version)),
        chain_id: Some(state.chain_id),
        chain_key: Some(state.chain_key.as_bytes().to_vec()),
        iteration: Some(state.chain_key.iteration()),
        signing_public: Some(state.signing_key.serialize().to_vec()),
        signing_private: state
            .signing_private_key
            .as_ref()
            .map(|key| key.serialize().to_vec()),
        skipped: state
            .skipped
            .iter()
            .map(|key| SkippedKeyProto {
                counter: Some(key.iteration()),
                seed: Some(key.seed().to_vec()),
            })
            .collect(),
    }
}

fn decode_state(proto: &SenderKeyStateProto) -> Result<SenderKeyState, PersistError> {
    if required("message_version", proto.message_version)?
        != u32::from(SENDERKEY_MESSAGE_CURRENT_VERSION)
    {
        return Err(PersistError::InvalidField("message_version"));
    }
    let iteration = required("iteration", proto.iteration)?;
    let chain_key = Zeroizing::new(fixed::<32>("chain_key", proto.chain_key.as_deref())?);
    let (signing_key, signing_private_key) = match proto.signing_private.as_deref() {
        Some(private) => {
            let pair = key_pair(
                "signing_public",
                proto.signing_public.as_deref(),
                "signing_private",
                Some(private),
            )?;
            (*pair.public_key(), Some(pair.private_key().clone()))
        }
        None => {
            let public = fixed::<33>("signing_public", proto.signing_public.as_deref())?;
            let key =
                PublicKey::deserialize(&public).map_err(|source| PersistError::InvalidKey {
                    field: "signing_public",
                    source,
                })?;
            (key, None)
        }
    };
    if proto.skipped.len() > MAX_SKIPPED_KEYS_CEILING {
        return Err(PersistError::TooMany {
            field: "skipped",
            max: MAX_SKIPPED_KEYS_CEILING,
            got: proto.skipped.len(),
        });
    }
    let skipped = proto
        .skipped
        .iter()
        .map(|skipped| {
            let counter = required("skipped.counter", skipped.counter)?;
            if counter >= iteration {
                return Err(PersistError::InvalidField("skipped.counter"));
            }
            let seed = Zeroizing::new(fixed::<32>("skipped.seed", skipped.seed.as_deref())?);
            Ok(SenderMessageKey::from_seed(*seed, counter))
        })
        .collect::<Result<_, _>>()?;
    Ok(SenderKeyState {
        message_version: SENDERKEY_MESSAGE_CURRENT_VERSION,
        chain_id: required("chain_id", proto.chain_id)?,
        chain_key: SenderChainKey::new(*chain_key, iteration),
        signing_key,
        signing_private_key,
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sender_keys::{
        SenderKeyLimits, create_distribution_message, group_decrypt, group_encrypt,
        process_distribution_message,
    };
    use rand_core::SeedableRng;
    use uuid::Uuid;

    #[test]
    fn round_trip_own_and_received_records() {
        let id = Uuid::from_bytes([1; 16]);
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(5);
        let limits = SenderKeyLimits::default();
        let (own, skdm) = create_distribution_message(None, id, &mut rng).unwrap();
        let mut theirs = process_distribution_message(None, id, &skdm, limits).unwrap();
        let mut own = own;
        let mut last = None;
        for _ in 0..4 {
            let (next, message) = group_encrypt(&own, id, b"hi", &mut rng).unwrap();
            own = next;
            last = Some(message);
        }
        theirs = group_decrypt(Some(&theirs), &last.unwrap(), limits)
            .unwrap()
            .0;
        for record in [&own, &theirs] {
            let bytes = record.to_record_bytes();
            assert_eq!(&bytes[..2], &[1, RecordKind::SenderKey as u8]);
            assert_eq!(&SenderKeyRecord::from_record_bytes(&bytes).unwrap(), record);
        }
        assert_eq!(theirs.current().unwrap().skipped_key_count(), 3);
        assert!(SenderKeyRecord::from_record_bytes(&[1, 11, 0xff]).is_err());
        assert_eq!(
            SenderKeyRecord::from_record_bytes(&[1, 1]),
            Err(PersistError::WrongKind {
                expected: 11,
                got: 1
            })
        );
    }
}
