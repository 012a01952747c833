//! Sender Key (group) wire messages: `SenderKeyMessage` (`0x33 || protobuf || signature(64)`)
//! and `SenderKeyDistributionMessage` (`0x33 || protobuf`).

use core::fmt;

use prost::Message;
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::proto::{SenderKeyDistributionMessageProto, SenderKeyMessageProto};
use super::{DecodeError, SENDERKEY_MESSAGE_CURRENT_VERSION, parse_version, version_byte};
use crate::cipher::ct_eq;
use crate::keys::{PrivateKey, PublicKey};
use crate::xeddsa::SIGNATURE_LENGTH;

/// Length of a distribution id (a UUID in raw form).
const DISTRIBUTION_ID_LENGTH: usize = 16;

fn fixed<const N: usize>(field: &'static str, bytes: &[u8]) -> Result<[u8; N], DecodeError> {
    <[u8; N]>::try_from(bytes).map_err(|_| DecodeError::BadFieldLength {
        field,
        expected: N,
        got: bytes.len(),
    })
}

fn framed(proto_bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + proto_bytes.len() + SIGNATURE_LENGTH);
    out.push(version_byte(
        SENDERKEY_MESSAGE_CURRENT_VERSION,
        SENDERKEY_MESSAGE_CURRENT_VERSION,
    ));
    out.extend_from_slice(proto_bytes);
    out
}

/// A group message encrypted under a sender key and signed by the sender's signing key.
#[derive(Clone, PartialEq, Eq)]
pub struct SenderKeyMessage {
    message_version: u8,
    distribution_id: [u8; DISTRIBUTION_ID_LENGTH],
    chain_id: u32,
    iteration: u32,
    ciphertext: Box<[u8]>,
    serialized: Box<[u8]>,
}

impl SenderKeyMessage {
    /// Builds the message and signs `version || protobuf` with XEdDSA (one `fill_bytes(64)`).
    pub fn new<R: CryptoRng + ?Sized>(
        distribution_id: [u8; DISTRIBUTION_ID_LENGTH],
        chain_id: u32,
        iteration: u32,
        ciphertext: Vec<u8>,
        signing_key: &PrivateKey,
        rng: &mut R,
    ) -> Self {
        let proto = SenderKeyMessageProto {
            distribution_uuid: Some(distribution_id.to_vec()),
            chain_id: Some(chain_id),
            iteration: Some(iteration),
            ciphertext: Some(ciphertext.clone()),
        };
        let mut serialized = framed(&proto.encode_to_vec());
        let signature = signing_key.sign(&serialized, rng);
        serialized.extend_from_slice(&signature);
        Self {
            message_version: SENDERKEY_MESSAGE_CURRENT_VERSION,
            distribution_id,
            chain_id,
            iteration,
            ciphertext: ciphertext.into_boxed_slice(),
            serialized: serialized.into_boxed_slice(),
        }
    }

    /// Checks the trailing signature against the sender's signing key.
    #[must_use]
    pub fn verify_signature(&self, signing_key: &PublicKey) -> bool {
        let split = self.serialized.len().saturating_sub(SIGNATURE_LENGTH);
        let (signed, signature) = self.serialized.split_at(split);
        signing_key.verify_signature(signed, signature)
    }

    /// The message version (3).
    #[must_use]
    pub const fn message_version(&self) -> u8 {
        self.message_version
    }

    /// The distribution id (raw UUID bytes).
    #[must_use]
    pub const fn distribution_id(&self) -> &[u8; DISTRIBUTION_ID_LENGTH] {
        &self.distribution_id
    }

    /// The sender chain id.
    #[must_use]
    pub const fn chain_id(&self) -> u32 {
        self.chain_id
    }

    /// The chain iteration this message was encrypted at.
    #[must_use]
    pub const fn iteration(&self) -> u32 {
        self.iteration
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
}

impl TryFrom<&[u8]> for SenderKeyMessage {
    type Error = DecodeError;

    fn try_from(value: &[u8]) -> Result<Self, Self::Error> {
        let (&first, rest) = value.split_first().ok_or(DecodeError::Empty)?;
        let message_version = parse_version(first, SENDERKEY_MESSAGE_CURRENT_VERSION)?;
        let body_len = rest
            .len()
            .checked_sub(SIGNATURE_LENGTH)
            .ok_or(DecodeError::TooShort {
                len: value.len(),
                min: 1 + SIGNATURE_LENGTH,
            })?;
        let (body, _signature) = rest.split_at(body_len);
        let proto = SenderKeyMessageProto::decode(body).map_err(DecodeError::Protobuf)?;
        let distribution_id = proto
            .distribution_uuid
            .ok_or(DecodeError::MissingField("distribution_uuid"))?;
        Ok(Self {
            message_version,
            distribution_id: fixed("distribution_uuid", &distribution_id)?,
            chain_id: proto
                .chain_id
                .ok_or(DecodeError::MissingField("chain_id"))?,
            iteration: proto
                .iteration
                .ok_or(DecodeError::MissingField("iteration"))?,
            ciphertext: proto
                .ciphertext
                .ok_or(DecodeError::MissingField("ciphertext"))?
                .into_boxed_slice(),
            serialized: value.into(),
        })
    }
}

impl fmt::Debug for SenderKeyMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SenderKeyMessage")
            .field("distribution_id", &hex::encode(self.distribution_id))
            .field("chain_id", &self.chain_id)
            .field("iteration", &self.iteration)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// Hands a sender chain (chain key at an iteration, plus the signing key) to a group member.
/// It is itself secret and must only travel inside a 1:1 session. Equality compares the chain
/// key (and the wire bytes that contain it) in constant time.
#[derive(Clone)]
pub struct SenderKeyDistributionMessage {
    message_version: u8,
    distribution_id: [u8; DISTRIBUTION_ID_LENGTH],
    chain_id: u32,
    iteration: u32,
    chain_key: Zeroizing<[u8; 32]>,
    signing_key: PublicKey,
    serialized: Zeroizing<Vec<u8>>,
}

impl SenderKeyDistributionMessage {
    /// Builds and serializes the message.
    #[must_use]
    pub fn new(
        distribution_id: [u8; DISTRIBUTION_ID_LENGTH],
        chain_id: u32,
        iteration: u32,
        chain_key: &[u8; 32],
        signing_key: PublicKey,
    ) -> Self {
        let proto = SenderKeyDistributionMessageProto {
            distribution_uuid: Some(distribution_id.to_vec()),
            chain_id: Some(chain_id),
            iteration: Some(iteration),
            chain_key: Some(chain_key.to_vec()),
            signing_key: Some(signing_key.serialize().to_vec()),
        };
        let serialized = Zeroizing::new(framed(&Zeroizing::new(proto.encode_to_vec())));
        Self {
            message_version: SENDERKEY_MESSAGE_CURRENT_VERSION,
            distribution_id,
            chain_id,
            iteration,
            chain_key: Zeroizing::new(*chain_key),
            signing_key,
            serialized,
        }
    }

    /// The message version (3).
    #[must_use]
    pub const fn message_version(&self) -> u8 {
        self.message_version
    }

    /// The distribution id (raw UUID bytes).
    #[must_use]
    pub const fn distribution_id(&self) -> &[u8; DISTRIBUTION_ID_LENGTH] {
        &self.distribution_id
    }

    /// The sender chain id.
    #[must_use]
    pub const fn chain_id(&self) -> u32 {
        self.chain_id
    }

    /// The iteration the chain key is at.
    #[must_use]
    pub const fn iteration(&self) -> u32 {
        self.iteration
    }

    /// The chain key at [`Self::iteration`].
    #[must_use]
    pub fn chain_key(&self) -> &[u8; 32] {
        &self.chain_key
    }

    /// The sender's signing public key.
    #[must_use]
    pub const fn signing_key(&self) -> &PublicKey {
        &self.signing_key
    }

    /// The exact wire bytes (secret: they contain the chain key).
    #[must_use]
    pub fn serialized(&self) -> &[u8] {
        &self.serialized
    }
}

impl PartialEq for SenderKeyDistributionMessage {
    fn eq(&self, other: &Self) -> bool {
        let Self {
            message_version,
            distribution_id,
            chain_id,
            iteration,
            chain_key,
            signing_key,
            serialized,
        } = self;
        // Evaluate every part (no short circuit on the secret ones).
        let public = *message_version == other.message_version
            && *distribution_id == other.distribution_id
            && *chain_id == other.chain_id
            && *iteration == other.iteration
            && *signing_key == other.signing_key;
        let secret_key = ct_eq(chain_key.as_slice(), other.chain_key.as_slice());
        let secret_bytes = ct_eq(serialized, &other.serialized);
        public & secret_key & secret_bytes
    }
}

impl Eq for SenderKeyDistributionMessage {}

impl TryFrom<&[u8]> for SenderKeyDistributionMessage {
    type Error = DecodeError;

    fn try_from(value: &[u8]) -> Result<Self, Self::Error> {
        let (&first, body) = value.split_first().ok_or(DecodeError::Empty)?;
        let message_version = parse_version(first, SENDERKEY_MESSAGE_CURRENT_VERSION)?;
        let proto =
            SenderKeyDistributionMessageProto::decode(body).map_err(DecodeError::Protobuf)?;
        let distribution_id = proto
            .distribution_uuid
            .as_deref()
            .ok_or(DecodeError::MissingField("distribution_uuid"))?;
        let chain_key = proto
            .chain_key
            .as_deref()
            .ok_or(DecodeError::MissingField("chain_key"))?;
        let signing_key = proto
            .signing_key
            .as_deref()
            .ok_or(DecodeError::MissingField("signing_key"))?;
        let signing_key = fixed::<33>("signing_key", signing_key)?;
        Ok(Self {
            message_version,
            distribution_id: fixed("distribution_uuid", distribution_id)?,
            chain_id: proto
                .chain_id
                .ok_or(DecodeError::MissingField("chain_id"))?,
            iteration: proto
                .iteration
                .ok_or(DecodeError::MissingField("iteration"))?,
            chain_key: Zeroizing::new(fixed("chain_key", chain_key)?),
            signing_key: PublicKey::deserialize(&signing_key).map_err(|source| {
                DecodeError::InvalidKey {
                    field: "signing_key",
                    source,
                }
            })?,
            serialized: Zeroizing::new(value.to_vec()),
        })
    }
}

impl fmt::Debug for SenderKeyDistributionMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SenderKeyDistributionMessage")
            .field("distribution_id", &hex::encode(self.distribution_id))
            .field("chain_id", &self.chain_id)
            .field("iteration", &self.iteration)
            .field("signing_key", &self.signing_key)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_key_message_round_trip_and_signature() {
        let signing = PrivateKey::deserialize(&[5; 32]).unwrap();
        let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(3);
        let message = SenderKeyMessage::new([1; 16], 9, 2, vec![0; 16], &signing, &mut rng);
        assert_eq!(message.serialized()[0], 0x33);
        let parsed = SenderKeyMessage::try_from(message.serialized()).unwrap();
        assert_eq!(parsed, message);
        assert!(parsed.verify_signature(&signing.public_key()));
        let mut tampered = message.serialized().to_vec();
        tampered[5] ^= 1;
        let tampered = SenderKeyMessage::try_from(tampered.as_slice()).unwrap();
        assert!(!tampered.verify_signature(&signing.public_key()));
        assert_eq!(
            SenderKeyMessage::try_from(&[0x33; 10][..]),
            Err(DecodeError::TooShort { len: 10, min: 65 })
        );
        assert_eq!(
            SenderKeyMessage::try_from(&[0x44; 70][..]),
            Err(DecodeError::UnrecognizedVersion(4))
        );
    }

    #[test]
    fn distribution_message_rules() {
        let key = PublicKey::from_djb_bytes([6; 32]);
        let message = SenderKeyDistributionMessage::new([2; 16], 1, 0, &[7; 32], key);
        let parsed = SenderKeyDistributionMessage::try_from(message.serialized()).unwrap();
        assert_eq!(parsed, message);
        let other_key = SenderKeyDistributionMessage::new([2; 16], 1, 0, &[8; 32], key);
        assert_ne!(other_key, message);
        let other_iteration = SenderKeyDistributionMessage::new([2; 16], 1, 1, &[7; 32], key);
        assert_ne!(other_iteration, message);
        let proto = SenderKeyDistributionMessageProto::decode(&message.serialized()[1..]).unwrap();
        assert_eq!(
            format!("{proto:?}"),
            "SenderKeyDistributionMessageProto { <redacted> }"
        );
        assert!(!format!("{parsed:?}").contains("0707"));

        let short = SenderKeyDistributionMessageProto {
            distribution_uuid: Some(vec![2; 16]),
            chain_id: Some(1),
            iteration: Some(0),
            chain_key: Some(vec![7; 31]),
            signing_key: Some(key.serialize().to_vec()),
        };
        let mut bytes = vec![0x33];
        bytes.extend_from_slice(&short.encode_to_vec());
        assert_eq!(
            SenderKeyDistributionMessage::try_from(bytes.as_slice()),
            Err(DecodeError::BadFieldLength {
                field: "chain_key",
                expected: 32,
                got: 31
            })
        );
    }
}
