//! `SignalMessage`: `version || protobuf || mac(8)`.

use core::fmt;

use prost::Message;

use super::proto::SignalMessageProto;
use super::{CIPHERTEXT_MESSAGE_CURRENT_VERSION, DecodeError, parse_version, version_byte};
use crate::cipher::{ct_eq, hmac_sha256};
use crate::keys::{IdentityKey, PublicKey};

/// Length of the truncated HMAC-SHA256 that ends every `SignalMessage`.
pub const MAC_LENGTH: usize = 8;

/// A Double Ratchet message in an established session (type 2).
#[derive(Clone, PartialEq, Eq)]
pub struct SignalMessage {
    message_version: u8,
    ratchet_key: PublicKey,
    counter: u32,
    previous_counter: u32,
    ciphertext: Box<[u8]>,
    serialized: Box<[u8]>,
}

impl SignalMessage {
    /// Builds and authenticates a message. The MAC binds both identities (sender first) and
    /// every byte before it, so a message cannot be replayed into another pair's session.
    #[allow(clippy::too_many_arguments)] // mirrors the wire fields one to one
    #[must_use]
    pub fn new(
        message_version: u8,
        mac_key: &[u8; 32],
        ratchet_key: PublicKey,
        counter: u32,
        previous_counter: u32,
        ciphertext: Vec<u8>,
        sender_identity: &IdentityKey,
        receiver_identity: &IdentityKey,
    ) -> Self {
        let proto = SignalMessageProto {
            ratchet_key: Some(ratchet_key.serialize().to_vec()),
            counter: Some(counter),
            previous_counter: Some(previous_counter),
            ciphertext: Some(ciphertext.clone()),
        };
        let mut serialized = Vec::with_capacity(1 + proto.encoded_len() + MAC_LENGTH);
        serialized.push(version_byte(
            message_version,
            CIPHERTEXT_MESSAGE_CURRENT_VERSION,
        ));
        serialized.extend_from_slice(&proto.encode_to_vec());
        let mac = compute_mac(mac_key, sender_identity, receiver_identity, &serialized);
        serialized.extend_from_slice(&mac);
        Self {
            message_version,
            ratchet_key,
            counter,
            previous_counter,
            ciphertext: ciphertext.into_boxed_slice(),
            serialized: serialized.into_boxed_slice(),
        }
    }

    /// The session version this message belongs to (3 or 4).
    #[must_use]
    pub const fn message_version(&self) -> u8 {
        self.message_version
    }

    /// The sender's current ratchet public key.
    #[must_use]
    pub const fn ratchet_key(&self) -> &PublicKey {
        &self.ratchet_key
    }

    /// Position of this message in the sender's current chain.
    #[must_use]
    pub const fn counter(&self) -> u32 {
        self.counter
    }

    /// Length of the sender's previous chain, minus one (informational; not used on receipt).
    #[must_use]
    pub const fn previous_counter(&self) -> u32 {
        self.previous_counter
    }

    /// The AES-CBC ciphertext.
    #[must_use]
    pub fn body(&self) -> &[u8] {
        &self.ciphertext
    }

    /// The exact wire bytes.
    #[must_use]
    pub fn serialized(&self) -> &[u8] {
        &self.serialized
    }

    /// The 8-byte MAC at the end of the message.
    #[must_use]
    pub fn mac(&self) -> &[u8] {
        let split = self.serialized.len().saturating_sub(MAC_LENGTH);
        self.serialized.get(split..).unwrap_or_default()
    }

    /// Checks the MAC in constant time.
    #[must_use]
    pub fn verify_mac(
        &self,
        sender_identity: &IdentityKey,
        receiver_identity: &IdentityKey,
        mac_key: &[u8; 32],
    ) -> bool {
        let split = self.serialized.len().saturating_sub(MAC_LENGTH);
        let (authenticated, mac) = self.serialized.split_at(split);
        let expected = compute_mac(mac_key, sender_identity, receiver_identity, authenticated);
        ct_eq(&expected, mac)
    }
}

/// HMAC-SHA256(mac_key, sender(33) || receiver(33) || message) truncated to 8 bytes.
fn compute_mac(
    mac_key: &[u8; 32],
    sender_identity: &IdentityKey,
    receiver_identity: &IdentityKey,
    message: &[u8],
) -> [u8; MAC_LENGTH] {
    let full = hmac_sha256(
        mac_key,
        &[
            &sender_identity.serialize(),
            &receiver_identity.serialize(),
            message,
        ],
    );
    let mut mac = [0u8; MAC_LENGTH];
    mac.copy_from_slice(full.get(..MAC_LENGTH).unwrap_or(&[0u8; MAC_LENGTH]));
    mac
}

impl TryFrom<&[u8]> for SignalMessage {
    type Error = DecodeError;

    fn try_from(value: &[u8]) -> Result<Self, Self::Error> {
        let (&first, rest) = value.split_first().ok_or(DecodeError::Empty)?;
        let message_version = parse_version(first, CIPHERTEXT_MESSAGE_CURRENT_VERSION)?;
        let body_len = rest
            .len()
            .checked_sub(MAC_LENGTH)
            .ok_or(DecodeError::TooShort {
                len: value.len(),
                min: 1 + MAC_LENGTH,
            })?;
        let (body, _mac) = rest.split_at(body_len);
        let proto = SignalMessageProto::decode(body).map_err(DecodeError::Protobuf)?;
        let ratchet_key = proto
            .ratchet_key
            .ok_or(DecodeError::MissingField("ratchet_key"))?;
        let ratchet_key =
            PublicKey::deserialize(&ratchet_key).map_err(|source| DecodeError::InvalidKey {
                field: "ratchet_key",
                source,
            })?;
        let counter = proto.counter.ok_or(DecodeError::MissingField("counter"))?;
        let ciphertext = proto
            .ciphertext
            .ok_or(DecodeError::MissingField("ciphertext"))?;
        Ok(Self {
            message_version,
            ratchet_key,
            counter,
            previous_counter: proto.previous_counter.unwrap_or(0),
            ciphertext: ciphertext.into_boxed_slice(),
            serialized: value.into(),
        })
    }
}

impl fmt::Debug for SignalMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            message_version,
            ratchet_key,
            counter,
            previous_counter,
            ciphertext,
            ..
        } = self;
        f.debug_struct("SignalMessage")
            .field("message_version", message_version)
            .field("ratchet_key", ratchet_key)
            .field("counter", counter)
            .field("previous_counter", previous_counter)
            .field("ciphertext_len", &ciphertext.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(byte: u8) -> IdentityKey {
        IdentityKey::new(PublicKey::from_djb_bytes([byte; 32]))
    }

    #[test]
    fn round_trip_and_mac() {
        let (alice, bob) = (identity(1), identity(2));
        let key = PublicKey::from_djb_bytes([9; 32]);
        let message = SignalMessage::new(4, &[7; 32], key, 5, 0, vec![1, 2, 3], &alice, &bob);
        let parsed = SignalMessage::try_from(message.serialized()).unwrap();
        assert_eq!(parsed, message);
        assert_eq!(parsed.serialized()[0], 0x44);
        assert!(parsed.verify_mac(&alice, &bob, &[7; 32]));
        assert!(!parsed.verify_mac(&bob, &alice, &[7; 32]));
        assert!(!parsed.verify_mac(&alice, &bob, &[8; 32]));
    }

    #[test]
    fn rejects_malformed_input() {
        assert_eq!(SignalMessage::try_from(&[][..]), Err(DecodeError::Empty));
        assert_eq!(
            SignalMessage::try_from(&[0x24, 0, 0][..]),
            Err(DecodeError::LegacyVersion(2))
        );
        assert_eq!(
            SignalMessage::try_from(&[0x54; 20][..]),
            Err(DecodeError::UnrecognizedVersion(5))
        );
        assert_eq!(
            SignalMessage::try_from(&[0x44, 0, 0][..]),
            Err(DecodeError::TooShort { len: 3, min: 9 })
        );
        assert_eq!(
            SignalMessage::try_from(&[0x44, 0, 0, 0, 0, 0, 0, 0, 0][..]),
            Err(DecodeError::MissingField("ratchet_key"))
        );
    }
}
