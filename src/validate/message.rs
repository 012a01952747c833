//! Signal ciphertext framing without keys: [`signal_message`] accepts a SignalMessage (type 2)
//! or PreKeySignalMessage (type 3) only when it is exactly what a SPOTS device sends: version 4
//! (PQXDH), every required field present with keys of the right type, the protobuf in its
//! canonical encoding (nothing smuggled in unknown or repeated fields), and an AES-256-CBC
//! ciphertext length (a non-empty multiple of 16). The MAC cannot be checked without the
//! session keys; the recipient does that.

use prost::Message;

use super::ValidateError;
use crate::wire::{
    CIPHERTEXT_MESSAGE_CURRENT_VERSION, CiphertextMessage, CiphertextMessageType, MAC_LENGTH,
    SignalMessage,
};

/// Largest Signal message body the mailbox stores (the key server's `dm_body_max_bytes`).
pub const MAX_SIGNAL_MESSAGE_BYTES: usize = 64 * 1024;

/// What [`signal_message`] learned about an accepted message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageInfo {
    /// 2 (SignalMessage) or 3 (PreKeySignalMessage).
    pub message_type: u8,
    /// The protocol version (always 4 when accepted).
    pub version: u8,
    /// The total length in bytes.
    pub len: usize,
}

// The wire protobufs again, privately: the canonical-encoding check decodes with exactly the
// fields Signal defines and re-encodes.
#[derive(Clone, PartialEq, prost::Message)]
struct SignalMessageShape {
    #[prost(bytes = "vec", optional, tag = "1")]
    ratchet_key: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "2")]
    counter: Option<u32>,
    #[prost(uint32, optional, tag = "3")]
    previous_counter: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "4")]
    ciphertext: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PreKeySignalMessageShape {
    #[prost(uint32, optional, tag = "1")]
    pre_key_id: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "2")]
    base_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    identity_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "4")]
    message: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "5")]
    registration_id: Option<u32>,
    #[prost(uint32, optional, tag = "6")]
    signed_pre_key_id: Option<u32>,
    #[prost(uint32, optional, tag = "7")]
    kyber_pre_key_id: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "8")]
    kyber_ciphertext: Option<Vec<u8>>,
}

/// Checks that `bytes` is a well-formed Signal message of `message_type` (2 or 3).
pub fn signal_message(message_type: u8, bytes: &[u8]) -> Result<MessageInfo, ValidateError> {
    let kind = match CiphertextMessageType::try_from(message_type) {
        Ok(kind @ (CiphertextMessageType::Whisper | CiphertextMessageType::PreKey)) => kind,
        _ => return Err(ValidateError::NotSignalMessage(message_type)),
    };
    if bytes.len() > MAX_SIGNAL_MESSAGE_BYTES {
        return Err(ValidateError::TooLarge {
            what: "message",
            got: bytes.len(),
            max: MAX_SIGNAL_MESSAGE_BYTES,
        });
    }
    let message = CiphertextMessage::decode(kind, bytes)?;
    match &message {
        CiphertextMessage::Whisper(inner) => check_whisper(inner)?,
        CiphertextMessage::PreKey(prekey) => {
            check_version(prekey.message_version())?;
            let body = bytes.get(1..).unwrap_or_default();
            let shape =
                PreKeySignalMessageShape::decode(body).map_err(|_| ValidateError::NotCanonical)?;
            if shape.encode_to_vec() != body {
                return Err(ValidateError::NotCanonical);
            }
            check_whisper(prekey.message())?;
        }
    }
    Ok(MessageInfo {
        message_type,
        version: CIPHERTEXT_MESSAGE_CURRENT_VERSION,
        len: bytes.len(),
    })
}

fn check_version(version: u8) -> Result<(), ValidateError> {
    if version == CIPHERTEXT_MESSAGE_CURRENT_VERSION {
        Ok(())
    } else {
        Err(ValidateError::UnsupportedVersion(version))
    }
}

fn check_whisper(message: &SignalMessage) -> Result<(), ValidateError> {
    check_version(message.message_version())?;
    let serialized = message.serialized();
    let end = serialized.len().saturating_sub(MAC_LENGTH);
    let body = serialized.get(1..end).unwrap_or_default();
    let shape = SignalMessageShape::decode(body).map_err(|_| ValidateError::NotCanonical)?;
    if shape.encode_to_vec() != body {
        return Err(ValidateError::NotCanonical);
    }
    let len = message.body().len();
    if len == 0 || !len.is_multiple_of(16) {
        return Err(ValidateError::CiphertextLength(len));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_sizes() {
        for t in [0u8, 1, 4, 7, 8, 255] {
            assert_eq!(
                signal_message(t, &[0x44; 64]),
                Err(ValidateError::NotSignalMessage(t))
            );
        }
        let big = vec![0x44; MAX_SIGNAL_MESSAGE_BYTES + 1];
        assert_eq!(signal_message(2, &big).unwrap_err().code(), "too_large");
        assert_eq!(
            signal_message(2, &[]).unwrap_err().code(),
            "malformed_message"
        );
        assert_eq!(
            signal_message(3, b"{\"text\":\"hello\"}")
                .unwrap_err()
                .code(),
            "malformed_message"
        );
    }
}
