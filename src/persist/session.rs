//! Encoding of `SessionRecord`.

use std::collections::VecDeque;

use prost::Message;
use zeroize::Zeroizing;

use super::keys::key_pair;
use super::prescan::{self, Bound};
use super::proto::{
    PendingPreKeyProto, ReceiverChainProto, RecordProto, SenderChainProto, SessionProto,
    SkippedKeyProto,
};
use super::{Persist, PersistError, RecordKind, fixed, frame, required, unframe};
use crate::kem;
use crate::keys::{
    IdentityKey, KyberPreKeyId, PreKeyId, PublicKey, RegistrationId, SignedPreKeyId,
};
use crate::ratchet::{ChainKey, MessageKeySeed, RootKey};
use crate::session::SessionRecord;
use crate::session::record::MAX_ARCHIVED_STATES;
use crate::session::state::{
    MAX_MESSAGE_KEYS, MAX_RECEIVER_CHAINS, PendingPreKey, ReceiverChain, SenderChain, SessionState,
};
use crate::time::Timestamp;
use crate::wire::{CIPHERTEXT_MESSAGE_CURRENT_VERSION, CIPHERTEXT_MESSAGE_PRE_KYBER_VERSION};

/// The count limits checked before decoding (tags of `RecordProto`, `SessionProto` and
/// `ReceiverChainProto`). The decoders below check them again on the decoded lists.
const RECORD_BOUNDS: &[Bound] = &[
    Bound {
        tag: 1,
        field: "current",
        max: 1,
        nested: Some(SESSION_BOUNDS),
    },
    Bound {
        tag: 2,
        field: "previous",
        max: MAX_ARCHIVED_STATES,
        nested: Some(SESSION_BOUNDS),
    },
];
const SESSION_BOUNDS: &[Bound] = &[Bound {
    tag: 10,
    field: "receiver_chains",
    max: MAX_RECEIVER_CHAINS,
    nested: Some(CHAIN_BOUNDS),
}];
const CHAIN_BOUNDS: &[Bound] = &[Bound {
    tag: 4,
    field: "receiver_chain.skipped",
    max: MAX_MESSAGE_KEYS,
    nested: None,
}];

impl Persist for SessionRecord {
    const KIND: RecordKind = RecordKind::Session;

    fn to_record_bytes(&self) -> Zeroizing<Vec<u8>> {
        let proto = RecordProto {
            current: self.current.as_ref().map(encode_state),
            previous: self.previous.iter().map(encode_state).collect(),
        };
        frame(Self::KIND, &Zeroizing::new(proto.encode_to_vec()))
    }

    fn from_record_bytes(bytes: &[u8]) -> Result<Self, PersistError> {
        let body = unframe(Self::KIND, bytes)?;
        prescan::check(body, RECORD_BOUNDS)?;
        let proto = RecordProto::decode(body).map_err(|_| PersistError::Protobuf)?;
        if proto.previous.len() > MAX_ARCHIVED_STATES {
            return Err(PersistError::TooMany {
                field: "previous",
                max: MAX_ARCHIVED_STATES,
                got: proto.previous.len(),
            });
        }
        Ok(Self {
            current: proto.current.as_ref().map(decode_state).transpose()?,
            previous: proto
                .previous
                .iter()
                .map(decode_state)
                .collect::<Result<_, _>>()?,
        })
    }
}

fn encode_state(state: &SessionState) -> SessionProto {
    let sender = &state.sender_chain;
    SessionProto {
        version: Some(u32::from(state.version)),
        local_identity: Some(state.local_identity.serialize().to_vec()),
        remote_identity: Some(state.remote_identity.serialize().to_vec()),
        local_registration_id: Some(state.local_registration_id.0),
        remote_registration_id: Some(state.remote_registration_id.0),
        alice_base_key: Some(state.alice_base_key.serialize().to_vec()),
        root_key: Some(state.root_key.as_bytes().to_vec()),
        previous_counter: Some(state.previous_counter),
        sender_chain: Some(SenderChainProto {
            ratchet_public: Some(sender.ratchet_key.public_key().serialize().to_vec()),
            ratchet_private: Some(sender.ratchet_key.private_key().serialize().to_vec()),
            chain_key: Some(sender.chain_key.as_bytes().to_vec()),
            index: Some(sender.chain_key.index()),
        }),
        receiver_chains: state
            .receiver_chains
            .iter()
            .map(|chain| ReceiverChainProto {
                ratchet_key: Some(chain.ratchet_key.serialize().to_vec()),
                chain_key: Some(chain.chain_key.as_bytes().to_vec()),
                index: Some(chain.chain_key.index()),
                skipped: chain
                    .skipped
                    .iter()
                    .map(|seed| SkippedKeyProto {
                        counter: Some(seed.counter()),
                        seed: Some(seed.as_bytes().to_vec()),
                    })
                    .collect(),
            })
            .collect(),
        pending_pre_key: state
            .pending_pre_key
            .as_ref()
            .map(|pending| PendingPreKeyProto {
                pre_key_id: pending.pre_key_id.map(|id| id.0),
                signed_pre_key_id: Some(pending.signed_pre_key_id.0),
                base_key: Some(pending.base_key.serialize().to_vec()),
                timestamp_ms: Some(pending.timestamp.as_millis()),
                kyber_pre_key_id: pending.kyber.as_ref().map(|(id, _)| id.0),
                kyber_ciphertext: pending
                    .kyber
                    .as_ref()
                    .map(|(_, ciphertext)| ciphertext.serialize()),
            }),
    }
}

fn public_key(field: &'static str, value: Option<&[u8]>) -> Result<PublicKey, PersistError> {
    let bytes = fixed::<33>(field, value)?;
    PublicKey::deserialize(&bytes).map_err(|source| PersistError::InvalidKey { field, source })
}

/// A required 32-byte secret, borrowed from the (wiped-on-drop) protobuf: no copy is made.
fn secret32<'a>(
    field: &'static str,
    value: Option<&'a [u8]>,
) -> Result<&'a [u8; 32], PersistError> {
    let value = value.ok_or(PersistError::MissingField(field))?;
    <&[u8; 32]>::try_from(value).map_err(|_| PersistError::InvalidField(field))
}

fn decode_state(proto: &SessionProto) -> Result<SessionState, PersistError> {
    let version = match required("version", proto.version)? {
        3 => CIPHERTEXT_MESSAGE_PRE_KYBER_VERSION,
        4 => CIPHERTEXT_MESSAGE_CURRENT_VERSION,
        _ => return Err(PersistError::InvalidField("version")),
    };
    let sender = required("sender_chain", proto.sender_chain.as_ref())?;
    let sender_chain = SenderChain {
        ratchet_key: key_pair(
            "sender_chain.ratchet_public",
            sender.ratchet_public.as_deref(),
            "sender_chain.ratchet_private",
            sender.ratchet_private.as_deref(),
        )?,
        chain_key: ChainKey::from_bytes(
            secret32("sender_chain.chain_key", sender.chain_key.as_deref())?,
            required("sender_chain.index", sender.index)?,
        ),
    };
    if proto.receiver_chains.len() > MAX_RECEIVER_CHAINS {
        return Err(PersistError::TooMany {
            field: "receiver_chains",
            max: MAX_RECEIVER_CHAINS,
            got: proto.receiver_chains.len(),
        });
    }
    let receiver_chains = proto
        .receiver_chains
        .iter()
        .map(decode_receiver_chain)
        .collect::<Result<_, _>>()?;
    let pending_pre_key = proto
        .pending_pre_key
        .as_ref()
        .map(|p| decode_pending(p, version))
        .transpose()?;

    Ok(SessionState {
        version,
        local_identity: IdentityKey::new(public_key(
            "local_identity",
            proto.local_identity.as_deref(),
        )?),
        remote_identity: IdentityKey::new(public_key(
            "remote_identity",
            proto.remote_identity.as_deref(),
        )?),
        local_registration_id: RegistrationId(required(
            "local_registration_id",
            proto.local_registration_id,
        )?),
        remote_registration_id: RegistrationId(required(
            "remote_registration_id",
            proto.remote_registration_id,
        )?),
        alice_base_key: public_key("alice_base_key", proto.alice_base_key.as_deref())?,
        root_key: RootKey::from_bytes(secret32("root_key", proto.root_key.as_deref())?),
        previous_counter: required("previous_counter", proto.previous_counter)?,
        sender_chain,
        receiver_chains,
        pending_pre_key,
    })
}

fn decode_receiver_chain(proto: &ReceiverChainProto) -> Result<ReceiverChain, PersistError> {
    let index = required("receiver_chain.index", proto.index)?;
    if proto.skipped.len() > MAX_MESSAGE_KEYS {
        return Err(PersistError::TooMany {
            field: "receiver_chain.skipped",
            max: MAX_MESSAGE_KEYS,
            got: proto.skipped.len(),
        });
    }
    let skipped = proto
        .skipped
        .iter()
        .map(|skipped| {
            let counter = required("skipped.counter", skipped.counter)?;
            // A skipped key always lies behind its chain's position.
            if counter >= index {
                return Err(PersistError::InvalidField("skipped.counter"));
            }
            Ok(MessageKeySeed::from_bytes(
                secret32("skipped.seed", skipped.seed.as_deref())?,
                counter,
            ))
        })
        .collect::<Result<VecDeque<_>, _>>()?;
    Ok(ReceiverChain {
        ratchet_key: public_key("receiver_chain.ratchet_key", proto.ratchet_key.as_deref())?,
        chain_key: ChainKey::from_bytes(
            secret32("receiver_chain.chain_key", proto.chain_key.as_deref())?,
            index,
        ),
        skipped,
    })
}

fn decode_pending(proto: &PendingPreKeyProto, version: u8) -> Result<PendingPreKey, PersistError> {
    let kyber = match (proto.kyber_pre_key_id, proto.kyber_ciphertext.as_deref()) {
        (Some(id), Some(ciphertext)) if version == CIPHERTEXT_MESSAGE_CURRENT_VERSION => {
            let ciphertext = kem::Ciphertext::deserialize(ciphertext).map_err(|source| {
                PersistError::InvalidKem {
                    field: "pending.kyber_ciphertext",
                    source,
                }
            })?;
            Some((KyberPreKeyId(id), ciphertext))
        }
        (None, None) if version == CIPHERTEXT_MESSAGE_PRE_KYBER_VERSION => None,
        _ => return Err(PersistError::InvalidField("pending.kyber")),
    };
    Ok(PendingPreKey {
        pre_key_id: proto.pre_key_id.map(PreKeyId),
        signed_pre_key_id: SignedPreKeyId(required(
            "pending.signed_pre_key_id",
            proto.signed_pre_key_id,
        )?),
        base_key: public_key("pending.base_key", proto.base_key.as_deref())?,
        timestamp: Timestamp::from_millis(required("pending.timestamp_ms", proto.timestamp_ms)?),
        kyber,
    })
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::keys::KeyPair;
    use crate::persist::MAX_SESSION_RECORD_LEN;
    use crate::session::MAX_RECORD_SKIPPED_KEYS;

    /// A record at every limit, with the longest varints: 41 sessions with a pending Kyber
    /// ciphertext and five receiving chains each, and the record-wide maximum of stored keys.
    fn largest_record() -> SessionRecord {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let identity =
            |rng: &mut ChaCha20Rng| IdentityKey::new(*KeyPair::generate(rng).public_key());
        let mut ciphertext = vec![kem::KYBER1024_TYPE];
        ciphertext.resize(1569, 0xAB);
        let ciphertext = kem::Ciphertext::deserialize(&ciphertext).unwrap();
        let high = u32::MAX - 1;
        let mut keys_left = MAX_RECORD_SKIPPED_KEYS;
        let mut state = |rng: &mut ChaCha20Rng| {
            let receiver_chains = (0..MAX_RECEIVER_CHAINS)
                .map(|_| {
                    let keys = keys_left.min(MAX_MESSAGE_KEYS);
                    keys_left -= keys;
                    ReceiverChain {
                        ratchet_key: *KeyPair::generate(rng).public_key(),
                        chain_key: ChainKey::new([7; 32], high),
                        skipped: (0..keys as u32)
                            .map(|i| MessageKeySeed::new([9; 32], high - 1 - i))
                            .collect(),
                    }
                })
                .collect();
            SessionState {
                version: CIPHERTEXT_MESSAGE_CURRENT_VERSION,
                local_identity: identity(rng),
                remote_identity: identity(rng),
                local_registration_id: RegistrationId(u32::MAX),
                remote_registration_id: RegistrationId(u32::MAX),
                alice_base_key: *KeyPair::generate(rng).public_key(),
                root_key: RootKey::new([5; 32]),
                previous_counter: u32::MAX,
                sender_chain: SenderChain {
                    ratchet_key: KeyPair::generate(rng),
                    chain_key: ChainKey::new([6; 32], u32::MAX),
                },
                receiver_chains,
                pending_pre_key: Some(PendingPreKey {
                    pre_key_id: Some(PreKeyId(u32::MAX)),
                    signed_pre_key_id: SignedPreKeyId(u32::MAX),
                    base_key: *KeyPair::generate(rng).public_key(),
                    timestamp: Timestamp::from_millis(u64::MAX),
                    kyber: Some((KyberPreKeyId(u32::MAX), ciphertext.clone())),
                }),
            }
        };
        let current = state(&mut rng);
        let previous = (0..MAX_ARCHIVED_STATES).map(|_| state(&mut rng)).collect();
        SessionRecord {
            current: Some(current),
            previous,
        }
    }

    #[test]
    fn the_largest_record_is_well_within_the_size_limit() {
        let record = largest_record();
        assert_eq!(record.skipped_key_count(), MAX_RECORD_SKIPPED_KEYS);
        let bytes = record.to_record_bytes();
        assert!(bytes.len() < 1024 * 1024, "{} bytes", bytes.len());
        assert!(bytes.len() * 2 < MAX_SESSION_RECORD_LEN);
        assert_eq!(SessionRecord::from_record_bytes(&bytes).unwrap(), record);
    }
}
