//! Signal wire messages: strict parsing and byte-exact serialization (PROTOCOL.md
//! "Message framing").
//!
//! Every message keeps the exact bytes it was parsed from (or serialized to), because MACs and
//! signatures cover those bytes. Parsing never panics and reports [`DecodeError`], which is kept
//! apart from the cryptographic errors of the session layer.

mod prekey_message;
mod proto;
mod sender_key;
mod signal_message;

pub use prekey_message::PreKeySignalMessage;
pub use sender_key::{SenderKeyDistributionMessage, SenderKeyMessage};
pub use signal_message::{MAC_LENGTH, SignalMessage};

use crate::error::ErrorClass;
use crate::kem::KemError;
use crate::keys::KeyError;

/// Version of PQXDH sessions and their messages (version byte 0x44).
pub const CIPHERTEXT_MESSAGE_CURRENT_VERSION: u8 = 4;
/// Version of X3DH sessions without Kyber (version byte 0x34).
pub const CIPHERTEXT_MESSAGE_PRE_KYBER_VERSION: u8 = 3;
/// Version of sender-key messages (version byte 0x33).
pub const SENDERKEY_MESSAGE_CURRENT_VERSION: u8 = 3;
/// Oldest message version this implementation parses.
const OLDEST_SUPPORTED_VERSION: u8 = 3;

/// Why bytes are not a well-formed message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is empty.
    #[error("message is empty")]
    Empty,
    /// The input is shorter than the fixed framing requires.
    #[error("message too short: {len} bytes, at least {min} required")]
    TooShort {
        /// Bytes received.
        len: usize,
        /// Minimum for this message type.
        min: usize,
    },
    /// The version (high nibble of the first byte) is below 3.
    #[error("legacy ciphertext version: {0}")]
    LegacyVersion(u8),
    /// The version is newer than this implementation knows.
    #[error("unrecognized ciphertext version: {0}")]
    UnrecognizedVersion(u8),
    /// The protobuf body does not decode.
    #[error("invalid protobuf encoding")]
    Protobuf(#[source] prost::DecodeError),
    /// A required protobuf field is absent.
    #[error("missing required field `{0}`")]
    MissingField(&'static str),
    /// A fixed-length field has the wrong length.
    #[error("field `{field}` has {got} bytes, expected {expected}")]
    BadFieldLength {
        /// Field name.
        field: &'static str,
        /// Required length.
        expected: usize,
        /// Length received.
        got: usize,
    },
    /// A key field does not parse.
    #[error("invalid key in `{field}`: {source}")]
    InvalidKey {
        /// Field name.
        field: &'static str,
        /// What was wrong with it.
        source: KeyError,
    },
    /// The Kyber ciphertext does not parse.
    #[error("invalid Kyber ciphertext: {0}")]
    InvalidKem(#[from] KemError),
    /// Exactly one of the Kyber prekey id and the Kyber ciphertext is present.
    #[error("both or neither kyber pre_key_id and kyber_ciphertext can be present")]
    KyberFieldsMismatch,
    /// A version-4 PreKey message without the Kyber fields.
    #[error("Kyber pre key must be present for message version {0}")]
    MissingKyberPreKey(u8),
    /// A message type number this decoder does not handle.
    #[error("unexpected message type {0}")]
    UnexpectedMessageType(u8),
}

impl DecodeError {
    /// The stable class of this error.
    #[must_use]
    pub const fn class(&self) -> ErrorClass {
        match self {
            Self::LegacyVersion(_) => ErrorClass::LegacyVersion,
            Self::UnrecognizedVersion(_) => ErrorClass::UnrecognizedVersion,
            Self::InvalidKey { .. } | Self::InvalidKem(_) => ErrorClass::InvalidKey,
            _ => ErrorClass::InvalidMessage,
        }
    }
}

/// The first byte of a message: `(message_version << 4) | current_version`.
pub(crate) const fn version_byte(message_version: u8, current_version: u8) -> u8 {
    (message_version << 4) | current_version
}

/// Reads a version byte. Only the high nibble matters (the low one is the sender's current
/// version, which libsignal ignores on receipt).
pub(crate) const fn parse_version(byte: u8, newest: u8) -> Result<u8, DecodeError> {
    let version = byte >> 4;
    if version < OLDEST_SUPPORTED_VERSION {
        Err(DecodeError::LegacyVersion(version))
    } else if version > newest {
        Err(DecodeError::UnrecognizedVersion(version))
    } else {
        Ok(version)
    }
}

/// Ciphertext message type numbers, as carried next to message bodies in envelopes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CiphertextMessageType {
    /// A [`SignalMessage`] in an established session.
    Whisper = 2,
    /// A [`PreKeySignalMessage`] that can start a session.
    PreKey = 3,
    /// A [`SenderKeyMessage`].
    SenderKey = 7,
    /// An unencrypted plaintext content (used for retry receipts).
    Plaintext = 8,
}

impl TryFrom<u8> for CiphertextMessageType {
    type Error = DecodeError;

    fn try_from(value: u8) -> Result<Self, Self::Error> {
        match value {
            2 => Ok(Self::Whisper),
            3 => Ok(Self::PreKey),
            7 => Ok(Self::SenderKey),
            8 => Ok(Self::Plaintext),
            other => Err(DecodeError::UnexpectedMessageType(other)),
        }
    }
}

/// A 1:1 ciphertext as produced by session encryption.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CiphertextMessage {
    /// Type 2: a message in an acknowledged session.
    Whisper(SignalMessage),
    /// Type 3: a message that also carries the session-establishment data.
    PreKey(PreKeySignalMessage),
}

impl CiphertextMessage {
    /// Parses a 1:1 message body of the given type (only types 2 and 3 are accepted).
    pub fn decode(message_type: CiphertextMessageType, bytes: &[u8]) -> Result<Self, DecodeError> {
        match message_type {
            CiphertextMessageType::Whisper => SignalMessage::try_from(bytes).map(Self::Whisper),
            CiphertextMessageType::PreKey => PreKeySignalMessage::try_from(bytes).map(Self::PreKey),
            other => Err(DecodeError::UnexpectedMessageType(other as u8)),
        }
    }

    /// The message type number.
    #[must_use]
    pub const fn message_type(&self) -> CiphertextMessageType {
        match self {
            Self::Whisper(_) => CiphertextMessageType::Whisper,
            Self::PreKey(_) => CiphertextMessageType::PreKey,
        }
    }

    /// The exact bytes to transmit.
    #[must_use]
    pub fn serialize(&self) -> &[u8] {
        match self {
            Self::Whisper(message) => message.serialized(),
            Self::PreKey(message) => message.serialized(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_nibbles() {
        assert_eq!(parse_version(0x44, 4), Ok(4));
        assert_eq!(parse_version(0x34, 4), Ok(3));
        assert_eq!(parse_version(0x3F, 4), Ok(3));
        assert_eq!(parse_version(0x24, 4), Err(DecodeError::LegacyVersion(2)));
        assert_eq!(
            parse_version(0x54, 4),
            Err(DecodeError::UnrecognizedVersion(5))
        );
        assert_eq!(
            parse_version(0x43, 3),
            Err(DecodeError::UnrecognizedVersion(4))
        );
        assert_eq!(version_byte(4, 4), 0x44);
        assert_eq!(version_byte(3, 4), 0x34);
        assert_eq!(version_byte(3, 3), 0x33);
    }

    #[test]
    fn message_types() {
        assert_eq!(
            CiphertextMessageType::try_from(3),
            Ok(CiphertextMessageType::PreKey)
        );
        assert_eq!(
            CiphertextMessageType::try_from(4),
            Err(DecodeError::UnexpectedMessageType(4))
        );
        assert_eq!(
            CiphertextMessage::decode(CiphertextMessageType::SenderKey, &[0x33]),
            Err(DecodeError::UnexpectedMessageType(7))
        );
    }
}
