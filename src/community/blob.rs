//! Community message blobs: the `community_message_blobs.ciphertext` column.
//!
//! Both versions start with a public header the server can read without keys (it fills the
//! row's `key_id`, sender and chain columns from it):
//!
//! ```text
//! version (1) | community_id (16) | key_id (16) | sent_at ms (8, BE) | agent_len (1) | agent_id
//! | device_id (4, BE) | [version 2: chain_id (4, BE) | iteration (4, BE)]
//! ```
//!
//! - Version 1 (epoch scheme): `header | nonce (12) | AES-256-GCM(ciphertext || tag 16)`,
//!   with the whole header as associated data.
//! - Version 2 (sender-chain scheme): `header | SenderKeyMessage` (libsignal bytes), whose
//!   plaintext is `SHA-256(header) || payload`, so the sender's signature covers the header.

use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit};

use super::epoch::EpochKey;
use super::ids::{CommunityId, EpochId};
use super::state::CommunityError;
use crate::address::{Address, AddressError, AgentId, DeviceId};
use crate::cipher::ct_eq;
use crate::error::ErrorClass;
use crate::sender_keys::{SenderKeyLimits, SenderKeyRecord, group_decrypt, group_encrypt};
use crate::time::Timestamp;
use crate::wire::{DecodeError, SenderKeyMessage};

/// Version byte of epoch-scheme blobs.
pub const BLOB_VERSION_EPOCH: u8 = 1;
/// Version byte of sender-chain blobs.
pub const BLOB_VERSION_SENDER_CHAIN: u8 = 2;
/// Largest blob accepted (header, nonce or signature, and a 64 KiB envelope fit easily).
pub const MAX_BLOB_BYTES: usize = 128 * 1024;
/// Largest plaintext (payload) a blob may carry.
pub const MAX_PAYLOAD_BYTES: usize = 96 * 1024;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const DIGEST_LEN: usize = 32;

/// Which scheme a blob uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlobScheme {
    /// Version 1: AES-256-GCM under the epoch key.
    Epoch,
    /// Version 2: a signed Sender Keys message.
    SenderChain,
}

/// Where a sender-chain message sits in its chain (the `sender_chain_id` and
/// `sender_chain_iteration` columns).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SenderChainPosition {
    /// The chain id.
    pub chain_id: u32,
    /// The iteration.
    pub iteration: u32,
}

/// The public header of a blob.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BlobHeader {
    /// The scheme (from the version byte).
    pub scheme: BlobScheme,
    /// The community.
    pub community_id: CommunityId,
    /// The epoch (`key_id`).
    pub key_id: EpochId,
    /// The sender's clock when sending (authenticated: rotation rules use it).
    pub sent_at: Timestamp,
    /// The sending agent and device.
    pub sender: Address,
    /// The chain position (sender-chain blobs only).
    pub chain: Option<SenderChainPosition>,
}

impl BlobHeader {
    fn encode(&self) -> Vec<u8> {
        let agent = self.sender.agent_id.as_bytes();
        let mut out = Vec::with_capacity(58 + agent.len());
        out.push(match self.scheme {
            BlobScheme::Epoch => BLOB_VERSION_EPOCH,
            BlobScheme::SenderChain => BLOB_VERSION_SENDER_CHAIN,
        });
        out.extend_from_slice(self.community_id.as_bytes());
        out.extend_from_slice(self.key_id.as_bytes());
        out.extend_from_slice(&self.sent_at.as_millis().to_be_bytes());
        // Agent ids are at most 128 bytes (AgentId::MAX_LEN), so the length fits a byte.
        out.push(u8::try_from(agent.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(agent);
        out.extend_from_slice(&self.sender.device_id.get().to_be_bytes());
        if let Some(chain) = self.chain {
            out.extend_from_slice(&chain.chain_id.to_be_bytes());
            out.extend_from_slice(&chain.iteration.to_be_bytes());
        }
        out
    }
}

/// Why bytes are not a well-formed blob (checked without keys).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// No bytes.
    #[error("blob is empty")]
    Empty,
    /// A version byte this release does not know.
    #[error("unsupported blob version {0}")]
    UnsupportedVersion(u8),
    /// The bytes end inside the header or before the minimum body.
    #[error("blob is truncated")]
    Truncated,
    /// More than [`MAX_BLOB_BYTES`] bytes, or a payload over [`MAX_PAYLOAD_BYTES`].
    #[error("blob or payload is too large")]
    TooLarge,
    /// The header's sender is not a valid address.
    #[error("invalid sender in blob header: {0}")]
    Sender(#[from] AddressError),
    /// The embedded Sender Keys message does not parse.
    #[error("invalid sender key message in blob: {0}")]
    SenderKeyMessage(#[from] DecodeError),
    /// The embedded message disagrees with the header (distribution id, chain id, iteration).
    #[error("blob header disagrees with its sender key message in `{0}`")]
    Inconsistent(&'static str),
}

impl BlobError {
    /// The stable class of this error.
    #[must_use]
    pub const fn class(&self) -> ErrorClass {
        match self {
            Self::UnsupportedVersion(_) => ErrorClass::UnrecognizedVersion,
            Self::SenderKeyMessage(error) => error.class(),
            _ => ErrorClass::InvalidMessage,
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BlobError> {
        if self.bytes.len() < n {
            return Err(BlobError::Truncated);
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], BlobError> {
        <[u8; N]>::try_from(self.take(N)?).map_err(|_| BlobError::Truncated)
    }

    fn u32(&mut self) -> Result<u32, BlobError> {
        self.array::<4>().map(u32::from_be_bytes)
    }
}

/// A parsed blob: the header, its exact bytes, and the body after it.
struct Parsed<'a> {
    header: BlobHeader,
    header_bytes: &'a [u8],
    body: &'a [u8],
    message: Option<SenderKeyMessage>,
}

fn parse(bytes: &[u8]) -> Result<Parsed<'_>, BlobError> {
    if bytes.len() > MAX_BLOB_BYTES {
        return Err(BlobError::TooLarge);
    }
    let mut reader = Reader { bytes };
    let [version] = reader.array::<1>().map_err(|_| BlobError::Empty)?;
    let scheme = match version {
        BLOB_VERSION_EPOCH => BlobScheme::Epoch,
        BLOB_VERSION_SENDER_CHAIN => BlobScheme::SenderChain,
        other => return Err(BlobError::UnsupportedVersion(other)),
    };
    let community_id = CommunityId::from_bytes(reader.array()?);
    let key_id = EpochId::from_bytes(reader.array()?);
    let sent_at = Timestamp::from_millis(u64::from_be_bytes(reader.array()?));
    let agent_len = usize::from(reader.array::<1>()?[0]);
    let agent = core::str::from_utf8(reader.take(agent_len)?)
        .map_err(|_| AddressError::InvalidAgentIdCharacter(0))?;
    let agent_id = AgentId::new(agent)?;
    let device_id = DeviceId::new(reader.u32()?)?;
    let chain = match scheme {
        BlobScheme::Epoch => None,
        BlobScheme::SenderChain => Some(SenderChainPosition {
            chain_id: reader.u32()?,
            iteration: reader.u32()?,
        }),
    };
    let header_len = bytes.len() - reader.bytes.len();
    let (header_bytes, body) = bytes.split_at(header_len);
    let header = BlobHeader {
        scheme,
        community_id,
        key_id,
        sent_at,
        sender: Address::new(agent_id, device_id),
        chain,
    };
    let message = match chain {
        None => {
            if body.len() < NONCE_LEN + TAG_LEN {
                return Err(BlobError::Truncated);
            }
            None
        }
        Some(position) => {
            let message = SenderKeyMessage::try_from(body)?;
            if message.distribution_id() != key_id.as_bytes() {
                return Err(BlobError::Inconsistent("key_id"));
            }
            if message.chain_id() != position.chain_id {
                return Err(BlobError::Inconsistent("chain_id"));
            }
            if message.iteration() != position.iteration {
                return Err(BlobError::Inconsistent("iteration"));
            }
            Some(message)
        }
    };
    Ok(Parsed {
        header,
        header_bytes,
        body,
        message,
    })
}

/// Checks a blob's shape without keys, as the server does before storing it: version, header
/// (valid sender address), size bounds, and for version 2 a well-formed Sender Keys message
/// that agrees with the header. Returns the header, from which the row's columns are filled.
pub fn validate_blob(bytes: &[u8]) -> Result<BlobHeader, BlobError> {
    parse(bytes).map(|parsed| parsed.header)
}

fn check_expected(
    header: &BlobHeader,
    community_id: CommunityId,
    key_id: EpochId,
    sender: &Address,
) -> Result<(), CommunityError> {
    if header.community_id != community_id {
        return Err(CommunityError::HeaderMismatch("community_id"));
    }
    if header.key_id != key_id {
        return Err(CommunityError::HeaderMismatch("key_id"));
    }
    if header.sender != *sender {
        return Err(CommunityError::HeaderMismatch("sender"));
    }
    Ok(())
}

/// Encrypts `payload` (an encoded envelope) for an epoch: one AES-256-GCM ciphertext for every
/// member, random 96-bit nonce (one `fill_bytes(12)` draw), the header as associated data.
#[allow(clippy::too_many_arguments)]
pub fn encrypt_epoch_blob<R: CryptoRng + ?Sized>(
    key: &EpochKey,
    community_id: CommunityId,
    key_id: EpochId,
    sender: &Address,
    sent_at: Timestamp,
    payload: &[u8],
    rng: &mut R,
) -> Result<Vec<u8>, CommunityError> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(BlobError::TooLarge.into());
    }
    let header = BlobHeader {
        scheme: BlobScheme::Epoch,
        community_id,
        key_id,
        sent_at,
        sender: sender.clone(),
        chain: None,
    }
    .encode();
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let cipher = Aes256Gcm::new(key.as_bytes().into());
    let ciphertext = cipher
        .encrypt(
            &nonce.into(),
            Payload {
                msg: payload,
                aad: &header,
            },
        )
        .map_err(|_| CommunityError::EncryptionFailed)?;
    let mut out = header;
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Decrypts an epoch blob with the key of `key_id`. The header must name exactly the
/// community, epoch and sender the caller expects (the community it fetched from, the row's
/// `key_id` and sender); any mismatch, and any tampering, is refused.
pub fn decrypt_epoch_blob(
    key: &EpochKey,
    community_id: CommunityId,
    key_id: EpochId,
    sender: &Address,
    blob: &[u8],
) -> Result<(BlobHeader, Zeroizing<Vec<u8>>), CommunityError> {
    let parsed = parse(blob)?;
    if parsed.header.scheme != BlobScheme::Epoch {
        return Err(CommunityError::WrongScheme);
    }
    check_expected(&parsed.header, community_id, key_id, sender)?;
    let (nonce, ciphertext) = parsed.body.split_at(NONCE_LEN);
    let nonce = <[u8; NONCE_LEN]>::try_from(nonce).map_err(|_| BlobError::Truncated)?;
    let cipher = Aes256Gcm::new(key.as_bytes().into());
    let plaintext = cipher
        .decrypt(
            &nonce.into(),
            Payload {
                msg: ciphertext,
                aad: parsed.header_bytes,
            },
        )
        .map_err(|_| CommunityError::DecryptionFailed)?;
    Ok((parsed.header, Zeroizing::new(plaintext)))
}

/// Encrypts `payload` with our own sender chain for `key_id` (the record from
/// [`crate::sender_keys::create_distribution_message`]): per-message key, XEdDSA signature
/// (one `fill_bytes(64)` draw). Returns the advanced record and the blob.
pub fn encrypt_sender_chain_blob<R: CryptoRng + ?Sized>(
    own_record: &SenderKeyRecord,
    community_id: CommunityId,
    key_id: EpochId,
    sender: &Address,
    sent_at: Timestamp,
    payload: &[u8],
    rng: &mut R,
) -> Result<(SenderKeyRecord, Vec<u8>), CommunityError> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(BlobError::TooLarge.into());
    }
    let state = own_record
        .current()
        .ok_or(CommunityError::NoSenderChain(key_id))?;
    let header = BlobHeader {
        scheme: BlobScheme::SenderChain,
        community_id,
        key_id,
        sent_at,
        sender: sender.clone(),
        chain: Some(SenderChainPosition {
            chain_id: state.chain_id(),
            iteration: state.iteration(),
        }),
    }
    .encode();
    let mut inner = Zeroizing::new(Vec::with_capacity(DIGEST_LEN + payload.len()));
    inner.extend_from_slice(&Sha256::digest(&header));
    inner.extend_from_slice(payload);
    let (record, message) = group_encrypt(own_record, key_id.uuid(), &inner, rng)?;
    let mut out = header;
    out.extend_from_slice(message.serialized());
    Ok((record, out))
}

/// Decrypts a sender-chain blob with the record we hold for `(sender, key_id)`. Checks, in
/// order: shape, expected community/epoch/sender, the chain's signature (before any key is
/// derived), the window, the ciphertext, and that the signed plaintext commits to this exact
/// header. Returns the advanced record to store.
pub fn decrypt_sender_chain_blob(
    record: Option<&SenderKeyRecord>,
    community_id: CommunityId,
    key_id: EpochId,
    sender: &Address,
    blob: &[u8],
    limits: SenderKeyLimits,
) -> Result<(SenderKeyRecord, BlobHeader, Zeroizing<Vec<u8>>), CommunityError> {
    let parsed = parse(blob)?;
    let Some(message) = parsed.message.as_ref() else {
        return Err(CommunityError::WrongScheme);
    };
    check_expected(&parsed.header, community_id, key_id, sender)?;
    let (record, inner) = group_decrypt(record, message, limits)?;
    let inner = Zeroizing::new(inner);
    let (digest, payload) = inner
        .split_at_checked(DIGEST_LEN)
        .ok_or(CommunityError::HeaderMismatch("signed header"))?;
    if !ct_eq(digest, &Sha256::digest(parsed.header_bytes)) {
        return Err(CommunityError::HeaderMismatch("signed header"));
    }
    let payload = Zeroizing::new(payload.to_vec());
    Ok((record, parsed.header, payload))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sender_keys::{create_distribution_message, process_distribution_message};
    use rand_core::SeedableRng;

    fn alice() -> Address {
        "alice.1".parse().unwrap()
    }

    #[test]
    fn epoch_blob_round_trip_and_every_mismatch() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let key = EpochKey::generate(&mut rng);
        let community = CommunityId::random(&mut rng);
        let epoch = EpochId::random(&mut rng);
        let at = Timestamp::from_secs(1_700_000_000);
        let blob =
            encrypt_epoch_blob(&key, community, epoch, &alice(), at, b"hello", &mut rng).unwrap();
        let header = validate_blob(&blob).unwrap();
        assert_eq!(header.sent_at, at);
        assert_eq!(header.sender, alice());
        assert_eq!(header.chain, None);
        let (h, plaintext) = decrypt_epoch_blob(&key, community, epoch, &alice(), &blob).unwrap();
        assert_eq!(h, header);
        assert_eq!(plaintext.as_slice(), b"hello");
        let other = CommunityId::random(&mut rng);
        assert_eq!(
            decrypt_epoch_blob(&key, other, epoch, &alice(), &blob).unwrap_err(),
            CommunityError::HeaderMismatch("community_id")
        );
        assert_eq!(
            decrypt_epoch_blob(&key, community, EpochId::random(&mut rng), &alice(), &blob)
                .unwrap_err(),
            CommunityError::HeaderMismatch("key_id")
        );
        let bob: Address = "bob.1".parse().unwrap();
        assert_eq!(
            decrypt_epoch_blob(&key, community, epoch, &bob, &blob).unwrap_err(),
            CommunityError::HeaderMismatch("sender")
        );
        // Any flipped bit fails (header bits via the AAD or parsing, body bits via the tag).
        for index in 0..blob.len() {
            let mut bad = blob.clone();
            bad[index] ^= 0x01;
            assert!(decrypt_epoch_blob(&key, community, epoch, &alice(), &bad).is_err());
        }
        let wrong = EpochKey::generate(&mut rng);
        assert_eq!(
            decrypt_epoch_blob(&wrong, community, epoch, &alice(), &blob).unwrap_err(),
            CommunityError::DecryptionFailed
        );
        // Two encryptions of the same message differ (random nonce).
        let again =
            encrypt_epoch_blob(&key, community, epoch, &alice(), at, b"hello", &mut rng).unwrap();
        assert_ne!(again, blob);
    }

    #[test]
    fn sender_chain_blob_round_trip_and_forgery() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(2);
        let community = CommunityId::random(&mut rng);
        let epoch = EpochId::random(&mut rng);
        let limits = SenderKeyLimits::default();
        let (own, skdm) = create_distribution_message(None, epoch.uuid(), &mut rng).unwrap();
        let theirs = process_distribution_message(None, epoch.uuid(), &skdm, limits).unwrap();
        let at = Timestamp::from_secs(1_700_000_000);
        let (own, blob) =
            encrypt_sender_chain_blob(&own, community, epoch, &alice(), at, b"hi", &mut rng)
                .unwrap();
        assert_eq!(own.current().unwrap().iteration(), 1);
        let header = validate_blob(&blob).unwrap();
        assert_eq!(
            header.chain,
            Some(SenderChainPosition {
                chain_id: skdm.chain_id(),
                iteration: 0
            })
        );
        let (next, h, plaintext) =
            decrypt_sender_chain_blob(Some(&theirs), community, epoch, &alice(), &blob, limits)
                .unwrap();
        assert_eq!(h, header);
        assert_eq!(plaintext.as_slice(), b"hi");
        assert_eq!(
            decrypt_sender_chain_blob(Some(&next), community, epoch, &alice(), &blob, limits)
                .unwrap_err()
                .class(),
            ErrorClass::DuplicateMessage
        );
        // Re-stamping the header (another time) breaks the signed header digest.
        let mut restamped = blob.clone();
        restamped[40] ^= 0x01;
        assert_eq!(
            decrypt_sender_chain_blob(
                Some(&theirs),
                community,
                epoch,
                &alice(),
                &restamped,
                limits
            )
            .unwrap_err(),
            CommunityError::HeaderMismatch("signed header")
        );
        // Without the seed: the class that triggers repair.
        assert_eq!(
            decrypt_sender_chain_blob(None, community, epoch, &alice(), &blob, limits)
                .unwrap_err()
                .class(),
            ErrorClass::NoSenderKeyState
        );
        // An epoch blob is not a sender-chain blob and vice versa.
        let key = EpochKey::generate(&mut rng);
        assert_eq!(
            decrypt_epoch_blob(&key, community, epoch, &alice(), &blob).unwrap_err(),
            CommunityError::WrongScheme
        );
    }

    #[test]
    fn malformed_blobs() {
        assert_eq!(validate_blob(&[]), Err(BlobError::Empty));
        assert_eq!(validate_blob(&[9]), Err(BlobError::UnsupportedVersion(9)));
        assert_eq!(validate_blob(&[1; 20]), Err(BlobError::Truncated));
        assert_eq!(
            validate_blob(&vec![1; MAX_BLOB_BYTES + 1]),
            Err(BlobError::TooLarge)
        );
        let mut header = vec![1u8];
        header.extend_from_slice(&[0; 40]);
        header.push(0); // empty agent id
        header.extend_from_slice(&[0, 0, 0, 1]);
        header.extend_from_slice(&[0; 28]);
        assert!(matches!(validate_blob(&header), Err(BlobError::Sender(_))));
    }
}
