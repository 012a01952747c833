//! Encodings of the identity key pair and prekey records.

use prost::Message;
use zeroize::Zeroizing;

use super::proto::{KyberPreKeyProto, PreKeyProto, SignedPreKeyProto};
use super::{Persist, PersistError, RecordKind, fixed, frame, required, unframe};
use crate::kem;
use crate::keys::{
    IdentityKeyPair, KeyPair, KyberPreKeyId, KyberPreKeyRecord, PreKeyId, PreKeyRecord, PrivateKey,
    PublicKey, SignedPreKeyId, SignedPreKeyRecord,
};
use crate::time::Timestamp;

/// Rebuilds an EC key pair, checking that both halves belong together.
pub(super) fn key_pair(
    public_field: &'static str,
    public: Option<&[u8]>,
    private_field: &'static str,
    private: Option<&[u8]>,
) -> Result<KeyPair, PersistError> {
    let public = fixed::<33>(public_field, public)?;
    let public = PublicKey::deserialize(&public).map_err(|source| PersistError::InvalidKey {
        field: public_field,
        source,
    })?;
    let private = Zeroizing::new(fixed::<32>(private_field, private)?);
    let private =
        PrivateKey::deserialize(private.as_slice()).map_err(|source| PersistError::InvalidKey {
            field: private_field,
            source,
        })?;
    KeyPair::new(public, private).map_err(|source| PersistError::InvalidKey {
        field: private_field,
        source,
    })
}

impl Persist for IdentityKeyPair {
    const KIND: RecordKind = RecordKind::IdentityKeyPair;

    /// The body is libsignal's own `{1: public, 2: private}` encoding.
    fn to_record_bytes(&self) -> Zeroizing<Vec<u8>> {
        frame(Self::KIND, &self.serialize())
    }

    fn from_record_bytes(bytes: &[u8]) -> Result<Self, PersistError> {
        let body = unframe(Self::KIND, bytes)?;
        Self::deserialize(body).map_err(|source| PersistError::InvalidKey {
            field: "identity_key_pair",
            source,
        })
    }
}

impl Persist for PreKeyRecord {
    const KIND: RecordKind = RecordKind::PreKey;

    fn to_record_bytes(&self) -> Zeroizing<Vec<u8>> {
        let proto = PreKeyProto {
            id: Some(self.id().0),
            public_key: Some(self.public_key().serialize().to_vec()),
            private_key: Some(self.key_pair().private_key().serialize().to_vec()),
        };
        frame(Self::KIND, &Zeroizing::new(proto.encode_to_vec()))
    }

    fn from_record_bytes(bytes: &[u8]) -> Result<Self, PersistError> {
        let body = unframe(Self::KIND, bytes)?;
        let proto = PreKeyProto::decode(body).map_err(|_| PersistError::Protobuf)?;
        let pair = key_pair(
            "public_key",
            proto.public_key.as_deref(),
            "private_key",
            proto.private_key.as_deref(),
        )?;
        Ok(Self::new(PreKeyId(required("id", proto.id)?), pair))
    }
}

impl Persist for SignedPreKeyRecord {
    const KIND: RecordKind = RecordKind::SignedPreKey;

    fn to_record_bytes(&self) -> Zeroizing<Vec<u8>> {
        let proto = SignedPreKeyProto {
            id: Some(self.id().0),
            timestamp_ms: Some(self.timestamp().as_millis()),
            public_key: Some(self.public_key().serialize().to_vec()),
            private_key: Some(self.key_pair().private_key().serialize().to_vec()),
            signature: Some(self.signature().to_vec()),
        };
        frame(Self::KIND, &Zeroizing::new(proto.encode_to_vec()))
    }

    fn from_record_bytes(bytes: &[u8]) -> Result<Self, PersistError> {
        let body = unframe(Self::KIND, bytes)?;
        let proto = SignedPreKeyProto::decode(body).map_err(|_| PersistError::Protobuf)?;
        let pair = key_pair(
            "public_key",
            proto.public_key.as_deref(),
            "private_key",
            proto.private_key.as_deref(),
        )?;
        Ok(Self::new(
            SignedPreKeyId(required("id", proto.id)?),
            Timestamp::from_millis(required("timestamp_ms", proto.timestamp_ms)?),
            pair,
            fixed("signature", proto.signature.as_deref())?,
        ))
    }
}

impl Persist for KyberPreKeyRecord {
    const KIND: RecordKind = RecordKind::KyberPreKey;

    fn to_record_bytes(&self) -> Zeroizing<Vec<u8>> {
        let proto = KyberPreKeyProto {
            id: Some(self.id().0),
            timestamp_ms: Some(self.timestamp().as_millis()),
            public_key: Some(self.public_key().serialize()),
            secret_key: Some(self.key_pair().secret_key().serialize().to_vec()),
            signature: Some(self.signature().to_vec()),
            last_resort: Some(self.is_last_resort()),
        };
        frame(Self::KIND, &Zeroizing::new(proto.encode_to_vec()))
    }

    fn from_record_bytes(bytes: &[u8]) -> Result<Self, PersistError> {
        let body = unframe(Self::KIND, bytes)?;
        let proto = KyberPreKeyProto::decode(body).map_err(|_| PersistError::Protobuf)?;
        let public = required("public_key", proto.public_key.as_deref())?;
        let public =
            kem::PublicKey::deserialize(public).map_err(|source| PersistError::InvalidKem {
                field: "public_key",
                source,
            })?;
        let secret = required("secret_key", proto.secret_key.as_deref())?;
        let secret =
            kem::SecretKey::deserialize(secret).map_err(|source| PersistError::InvalidKem {
                field: "secret_key",
                source,
            })?;
        let pair =
            kem::KeyPair::new(public, secret).map_err(|source| PersistError::InvalidKem {
                field: "secret_key",
                source,
            })?;
        Ok(Self::new(
            KyberPreKeyId(required("id", proto.id)?),
            Timestamp::from_millis(required("timestamp_ms", proto.timestamp_ms)?),
            pair,
            fixed("signature", proto.signature.as_deref())?,
            required("last_resort", proto.last_resort)?,
        ))
    }
}
