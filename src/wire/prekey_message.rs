//! `PreKeySignalMessage`: `version || protobuf`, wrapping a `SignalMessage` together with
//! everything the recipient needs to build the session.

use core::fmt;

use prost::Message;

use super::proto::PreKeySignalMessageProto;
use super::{
    CIPHERTEXT_MESSAGE_CURRENT_VERSION, CIPHERTEXT_MESSAGE_PRE_KYBER_VERSION, DecodeError,
    SignalMessage, parse_version, version_byte,
};
use crate::kem;
use crate::keys::{
    IdentityKey, KyberPreKeyId, PreKeyId, PublicKey, RegistrationId, SignedPreKeyId,
};

/// A message that can start a session (type 3). The sender keeps sending these until it has
/// decrypted a reply, so a lost first message does not lose the session.
#[derive(Clone, PartialEq, Eq)]
pub struct PreKeySignalMessage {
    message_version: u8,
    registration_id: RegistrationId,
    pre_key_id: Option<PreKeyId>,
    signed_pre_key_id: SignedPreKeyId,
    kyber: Option<(KyberPreKeyId, kem::Ciphertext)>,
    base_key: PublicKey,
    identity_key: IdentityKey,
    message: SignalMessage,
    serialized: Box<[u8]>,
}

impl PreKeySignalMessage {
    /// Builds and serializes the message.
    #[allow(clippy::too_many_arguments)] // mirrors the wire fields one to one
    #[must_use]
    pub fn new(
        message_version: u8,
        registration_id: RegistrationId,
        pre_key_id: Option<PreKeyId>,
        signed_pre_key_id: SignedPreKeyId,
        kyber: Option<(KyberPreKeyId, kem::Ciphertext)>,
        base_key: PublicKey,
        identity_key: IdentityKey,
        message: SignalMessage,
    ) -> Self {
        let proto = PreKeySignalMessageProto {
            pre_key_id: pre_key_id.map(|id| id.0),
            base_key: Some(base_key.serialize().to_vec()),
            identity_key: Some(identity_key.serialize().to_vec()),
            message: Some(message.serialized().to_vec()),
            registration_id: Some(registration_id.0),
            signed_pre_key_id: Some(signed_pre_key_id.0),
            kyber_pre_key_id: kyber.as_ref().map(|(id, _)| id.0),
            kyber_ciphertext: kyber.as_ref().map(|(_, ciphertext)| ciphertext.serialize()),
        };
        let mut serialized = Vec::with_capacity(1 + proto.encoded_len());
        serialized.push(version_byte(
            message_version,
            CIPHERTEXT_MESSAGE_CURRENT_VERSION,
        ));
        serialized.extend_from_slice(&proto.encode_to_vec());
        Self {
            message_version,
            registration_id,
            pre_key_id,
            signed_pre_key_id,
            kyber,
            base_key,
            identity_key,
            message,
            serialized: serialized.into_boxed_slice(),
        }
    }

    /// The session version (3 for X3DH, 4 for PQXDH).
    #[must_use]
    pub const fn message_version(&self) -> u8 {
        self.message_version
    }

    /// The sender's registration id (0 if absent on the wire).
    #[must_use]
    pub const fn registration_id(&self) -> RegistrationId {
        self.registration_id
    }

    /// The one-time EC prekey used, if any.
    #[must_use]
    pub const fn pre_key_id(&self) -> Option<PreKeyId> {
        self.pre_key_id
    }

    /// The signed prekey used.
    #[must_use]
    pub const fn signed_pre_key_id(&self) -> SignedPreKeyId {
        self.signed_pre_key_id
    }

    /// The Kyber prekey used, if any.
    #[must_use]
    pub fn kyber_pre_key_id(&self) -> Option<KyberPreKeyId> {
        self.kyber.as_ref().map(|(id, _)| *id)
    }

    /// The Kyber ciphertext, if any.
    #[must_use]
    pub fn kyber_ciphertext(&self) -> Option<&kem::Ciphertext> {
        self.kyber.as_ref().map(|(_, ciphertext)| ciphertext)
    }

    /// The sender's ephemeral base key, which also identifies the session it starts.
    #[must_use]
    pub const fn base_key(&self) -> &PublicKey {
        &self.base_key
    }

    /// The sender's identity key (the caller decides whether to trust it).
    #[must_use]
    pub const fn identity_key(&self) -> &IdentityKey {
        &self.identity_key
    }

    /// The wrapped message.
    #[must_use]
    pub const fn message(&self) -> &SignalMessage {
        &self.message
    }

    /// The exact wire bytes.
    #[must_use]
    pub fn serialized(&self) -> &[u8] {
        &self.serialized
    }
}

impl TryFrom<&[u8]> for PreKeySignalMessage {
    type Error = DecodeError;

    fn try_from(value: &[u8]) -> Result<Self, Self::Error> {
        let (&first, body) = value.split_first().ok_or(DecodeError::Empty)?;
        let message_version = parse_version(first, CIPHERTEXT_MESSAGE_CURRENT_VERSION)?;
        let proto = PreKeySignalMessageProto::decode(body).map_err(DecodeError::Protobuf)?;

        let base_key = proto
            .base_key
            .ok_or(DecodeError::MissingField("base_key"))?;
        let identity_key = proto
            .identity_key
            .ok_or(DecodeError::MissingField("identity_key"))?;
        let message = proto.message.ok_or(DecodeError::MissingField("message"))?;
        let signed_pre_key_id = proto
            .signed_pre_key_id
            .ok_or(DecodeError::MissingField("signed_pre_key_id"))?;

        let base_key =
            PublicKey::deserialize(&base_key).map_err(|source| DecodeError::InvalidKey {
                field: "base_key",
                source,
            })?;
        let identity_key =
            IdentityKey::deserialize(&identity_key).map_err(|source| DecodeError::InvalidKey {
                field: "identity_key",
                source,
            })?;

        let kyber = match (proto.kyber_pre_key_id, proto.kyber_ciphertext) {
            (Some(id), Some(ciphertext)) => Some((
                KyberPreKeyId(id),
                kem::Ciphertext::deserialize(&ciphertext)?,
            )),
            (None, None) if message_version <= CIPHERTEXT_MESSAGE_PRE_KYBER_VERSION => None,
            (None, None) => return Err(DecodeError::MissingKyberPreKey(message_version)),
            _ => return Err(DecodeError::KyberFieldsMismatch),
        };
        let message = SignalMessage::try_from(message.as_slice())?;

        Ok(Self {
            message_version,
            registration_id: RegistrationId(proto.registration_id.unwrap_or(0)),
            pre_key_id: proto.pre_key_id.map(PreKeyId),
            signed_pre_key_id: SignedPreKeyId(signed_pre_key_id),
            kyber,
            base_key,
            identity_key,
            message,
            serialized: value.into(),
        })
    }
}

impl fmt::Debug for PreKeySignalMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreKeySignalMessage")
            .field("message_version", &self.message_version)
            .field("registration_id", &self.registration_id)
            .field("pre_key_id", &self.pre_key_id)
            .field("signed_pre_key_id", &self.signed_pre_key_id)
            .field("kyber_pre_key_id", &self.kyber_pre_key_id())
            .field("base_key", &self.base_key)
            .field("identity_key", &self.identity_key)
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(proto: &PreKeySignalMessageProto, version: u8) -> Vec<u8> {
        let mut out = vec![version];
        out.extend_from_slice(&proto.encode_to_vec());
        out
    }

    fn inner() -> SignalMessage {
        let id = IdentityKey::new(PublicKey::from_djb_bytes([1; 32]));
        SignalMessage::new(
            3,
            &[0; 32],
            PublicKey::from_djb_bytes([2; 32]),
            0,
            0,
            vec![0; 16],
            &id,
            &id,
        )
    }

    fn complete() -> PreKeySignalMessageProto {
        PreKeySignalMessageProto {
            pre_key_id: None,
            base_key: Some(PublicKey::from_djb_bytes([3; 32]).serialize().to_vec()),
            identity_key: Some(PublicKey::from_djb_bytes([4; 32]).serialize().to_vec()),
            message: Some(inner().serialized().to_vec()),
            registration_id: None,
            signed_pre_key_id: Some(7),
            kyber_pre_key_id: None,
            kyber_ciphertext: None,
        }
    }

    #[test]
    fn required_fields_and_kyber_rules() {
        let v3 = PreKeySignalMessage::try_from(encode(&complete(), 0x34).as_slice()).unwrap();
        assert_eq!(v3.registration_id(), RegistrationId(0));
        assert_eq!(v3.kyber_pre_key_id(), None);

        assert_eq!(
            PreKeySignalMessage::try_from(encode(&complete(), 0x44).as_slice()),
            Err(DecodeError::MissingKyberPreKey(4))
        );
        let mut half = complete();
        half.kyber_pre_key_id = Some(1);
        assert_eq!(
            PreKeySignalMessage::try_from(encode(&half, 0x44).as_slice()),
            Err(DecodeError::KyberFieldsMismatch)
        );
        for field in ["base_key", "identity_key", "message", "signed_pre_key_id"] {
            let mut proto = complete();
            match field {
                "base_key" => proto.base_key = None,
                "identity_key" => proto.identity_key = None,
                "message" => proto.message = None,
                _ => proto.signed_pre_key_id = None,
            }
            assert_eq!(
                PreKeySignalMessage::try_from(encode(&proto, 0x34).as_slice()),
                Err(DecodeError::MissingField(field))
            );
        }
    }

    #[test]
    fn round_trip() {
        let message = PreKeySignalMessage::new(
            3,
            RegistrationId(5),
            Some(PreKeyId(9)),
            SignedPreKeyId(7),
            None,
            PublicKey::from_djb_bytes([3; 32]),
            IdentityKey::new(PublicKey::from_djb_bytes([4; 32])),
            inner(),
        );
        assert_eq!(
            PreKeySignalMessage::try_from(message.serialized()).unwrap(),
            message
        );
    }
}
