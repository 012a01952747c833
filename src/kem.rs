//! Kyber1024 key encapsulation (CRYSTALS-Kyber round 3, libsignal key type 0x08).
//!
//! This is the KEM PQXDH uses at libsignal 0.73: NOT FIPS 203 ML-KEM, whose type byte 0x0A is
//! reserved here and refused with [`KemError::UnsupportedKeyType`]. Serialized keys and
//! ciphertexts carry the type byte; the libcrux raw forms do not. Randomness is drawn exactly
//! as libsignal does so seeded generators reproduce its keys and ciphertexts.

use core::fmt;

use libcrux_ml_kem::kyber1024;
use libcrux_ml_kem::mlkem1024::{MlKem1024Ciphertext, MlKem1024PrivateKey, MlKem1024PublicKey};
use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::ErrorClass;

/// Type byte of a Kyber1024 key or ciphertext.
pub const KYBER1024_TYPE: u8 = 0x08;
/// Type byte of ML-KEM-1024, reserved for the next compatibility level.
pub const MLKEM1024_TYPE: u8 = 0x0A;

const PUBLIC_KEY_LENGTH: usize = 1568;
const SECRET_KEY_LENGTH: usize = 3168;
const CIPHERTEXT_LENGTH: usize = 1568;
/// Where the public key starts inside a raw secret key (after the 1536-byte secret vector).
const EMBEDDED_PUBLIC_KEY_OFFSET: usize = 1536;

/// A KEM shared secret (32 bytes), wiped on drop.
pub type SharedSecret = Zeroizing<[u8; 32]>;

/// Why a KEM key or ciphertext could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KemError {
    /// The encoding is empty.
    #[error("no KEM key type identifier")]
    NoKeyTypeIdentifier,
    /// A type byte this implementation does not know.
    #[error("bad KEM key type <{0:#04x}>")]
    BadKeyType(u8),
    /// A known type this compatibility level does not support yet (0x0A, ML-KEM-1024).
    #[error("unsupported KEM key type <{0:#04x}>")]
    UnsupportedKeyType(u8),
    /// The encoding has the wrong length for its type (length includes the type byte).
    #[error("bad KEM encoding length <{got}>, expected <{expected}>")]
    BadLength {
        /// Required length including the type byte.
        expected: usize,
        /// Length received.
        got: usize,
    },
    /// A secret key does not embed the public key it was paired with.
    #[error("KEM public key does not match secret key")]
    KeyPairMismatch,
}

impl KemError {
    /// The stable class of this error.
    #[must_use]
    pub const fn class(&self) -> ErrorClass {
        ErrorClass::InvalidKey
    }
}

/// Splits `type || raw`, checking the type byte and the exact length.
fn parse_typed<const N: usize>(bytes: &[u8]) -> Result<&[u8; N], KemError> {
    let (&key_type, raw) = bytes.split_first().ok_or(KemError::NoKeyTypeIdentifier)?;
    match key_type {
        KYBER1024_TYPE => {}
        MLKEM1024_TYPE => return Err(KemError::UnsupportedKeyType(key_type)),
        other => return Err(KemError::BadKeyType(other)),
    }
    <&[u8; N]>::try_from(raw).map_err(|_| KemError::BadLength {
        expected: N + 1,
        got: bytes.len(),
    })
}

fn with_type(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 1);
    out.push(KYBER1024_TYPE);
    out.extend_from_slice(raw);
    out
}

/// Draws `N` bytes the way rand 0.9's `random::<[u8; N]>()` does: one `next_u32` per byte,
/// keeping the low byte. libsignal draws Kyber randomness this way.
fn draw_bytes_via_u32<const N: usize, R: CryptoRng + ?Sized>(rng: &mut R) -> Zeroizing<[u8; N]> {
    let mut out = Zeroizing::new([0u8; N]);
    for byte in out.iter_mut() {
        *byte = rng.next_u32().to_le_bytes()[0];
    }
    out
}

/// A Kyber1024 public key.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(Box<[u8; PUBLIC_KEY_LENGTH]>);

impl PublicKey {
    /// Parses `0x08 || raw (1568)`.
    pub fn deserialize(bytes: &[u8]) -> Result<Self, KemError> {
        parse_typed::<PUBLIC_KEY_LENGTH>(bytes).map(|raw| Self(Box::new(*raw)))
    }

    /// `0x08 || raw`, 1569 bytes; this is also what Kyber prekey signatures cover.
    #[must_use]
    pub fn serialize(&self) -> Vec<u8> {
        with_type(self.0.as_slice())
    }

    /// Encapsulates to this key, drawing 32 bytes as 32 `next_u32` calls (libsignal's order).
    pub fn encapsulate<R: CryptoRng + ?Sized>(&self, rng: &mut R) -> (SharedSecret, Ciphertext) {
        let randomness = draw_bytes_via_u32::<32, R>(rng);
        self.encapsulate_with_randomness(&randomness)
    }

    /// Deterministic encapsulation with caller-chosen randomness (tests and vectors).
    #[must_use]
    pub fn encapsulate_with_randomness(&self, randomness: &[u8; 32]) -> (SharedSecret, Ciphertext) {
        let public = MlKem1024PublicKey::from(&*self.0);
        let (ciphertext, shared) = kyber1024::encapsulate(&public, *randomness);
        let ciphertext: [u8; CIPHERTEXT_LENGTH] = ciphertext.into();
        (Zeroizing::new(shared), Ciphertext(Box::new(ciphertext)))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = self.0.get(..8).unwrap_or_default();
        write!(f, "KemPublicKey(kyber1024, {}..)", hex::encode(prefix))
    }
}

/// A Kyber1024 secret key, boxed and wiped on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey(Box<[u8; SECRET_KEY_LENGTH]>);

impl SecretKey {
    /// Parses `0x08 || raw (3168)`.
    pub fn deserialize(bytes: &[u8]) -> Result<Self, KemError> {
        parse_typed::<SECRET_KEY_LENGTH>(bytes).map(Self::from_raw)
    }

    /// Copies a raw secret key straight into the box: no copy is left on the stack.
    fn from_raw(raw: &[u8; SECRET_KEY_LENGTH]) -> Self {
        let mut key = Box::new([0u8; SECRET_KEY_LENGTH]);
        key.copy_from_slice(raw);
        Self(key)
    }

    /// `0x08 || raw`, 3169 bytes; wiped on drop.
    #[must_use]
    pub fn serialize(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(with_type(self.0.as_slice()))
    }

    /// Decapsulates. Kyber never fails here: a forged or corrupted ciphertext yields a
    /// pseudo-random secret (implicit rejection), so the protocol fails later at the MAC.
    #[must_use]
    pub fn decapsulate(&self, ciphertext: &Ciphertext) -> SharedSecret {
        let secret = MlKem1024PrivateKey::from(&*self.0);
        let ciphertext = MlKem1024Ciphertext::from(&*ciphertext.0);
        let shared = Zeroizing::new(kyber1024::decapsulate(&secret, &ciphertext));
        let mut raw: [u8; SECRET_KEY_LENGTH] = secret.into();
        raw.zeroize();
        shared
    }
}

impl PartialEq for SecretKey {
    fn eq(&self, other: &Self) -> bool {
        subtle::ConstantTimeEq::ct_eq(self.0.as_slice(), other.0.as_slice()).into()
    }
}

impl Eq for SecretKey {}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KemSecretKey(<redacted>)")
    }
}

/// A Kyber1024 ciphertext.
#[derive(Clone, PartialEq, Eq)]
pub struct Ciphertext(Box<[u8; CIPHERTEXT_LENGTH]>);

impl Ciphertext {
    /// Parses `0x08 || raw (1568)`.
    pub fn deserialize(bytes: &[u8]) -> Result<Self, KemError> {
        parse_typed::<CIPHERTEXT_LENGTH>(bytes).map(|raw| Self(Box::new(*raw)))
    }

    /// `0x08 || raw`, 1569 bytes.
    #[must_use]
    pub fn serialize(&self) -> Vec<u8> {
        with_type(self.0.as_slice())
    }
}

impl fmt::Debug for Ciphertext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "KemCiphertext(kyber1024, {} bytes)",
            CIPHERTEXT_LENGTH + 1
        )
    }
}

/// A Kyber1024 key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPair {
    public_key: PublicKey,
    secret_key: SecretKey,
}

impl KeyPair {
    /// Generates a key pair from 64 bytes drawn as 64 `next_u32` calls (libsignal's order).
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let randomness = draw_bytes_via_u32::<64, R>(rng);
        Self::from_randomness(&randomness)
    }

    /// Deterministic key generation from `d || z` (tests and vectors).
    #[must_use]
    pub fn from_randomness(randomness: &[u8; 64]) -> Self {
        let pair = kyber1024::generate_key_pair(*randomness);
        let (secret, public) = pair.into_parts();
        let public: [u8; PUBLIC_KEY_LENGTH] = public.into();
        let mut secret: [u8; SECRET_KEY_LENGTH] = secret.into();
        let secret_key = SecretKey::from_raw(&secret);
        secret.zeroize();
        Self {
            public_key: PublicKey(Box::new(public)),
            secret_key,
        }
    }

    /// Builds a pair from its halves. A Kyber secret key embeds its public key
    /// (`s || pk || H(pk) || z`), so the two halves are checked against each other.
    pub fn new(public_key: PublicKey, secret_key: SecretKey) -> Result<Self, KemError> {
        let embedded = secret_key
            .0
            .get(EMBEDDED_PUBLIC_KEY_OFFSET..)
            .and_then(|rest| rest.get(..PUBLIC_KEY_LENGTH));
        if embedded != Some(public_key.0.as_slice()) {
            return Err(KemError::KeyPairMismatch);
        }
        Ok(Self {
            public_key,
            secret_key,
        })
    }

    /// The public half.
    #[must_use]
    pub const fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// The secret half.
    #[must_use]
    pub const fn secret_key(&self) -> &SecretKey {
        &self.secret_key
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            public_key,
            secret_key: _,
        } = self;
        f.debug_struct("KemKeyPair")
            .field("public_key", public_key)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_bytes_and_lengths() {
        assert_eq!(
            PublicKey::deserialize(&[]).unwrap_err(),
            KemError::NoKeyTypeIdentifier
        );
        let mut mlkem = vec![MLKEM1024_TYPE];
        mlkem.extend_from_slice(&[0; PUBLIC_KEY_LENGTH]);
        assert_eq!(
            PublicKey::deserialize(&mlkem).unwrap_err(),
            KemError::UnsupportedKeyType(0x0A)
        );
        assert_eq!(
            PublicKey::deserialize(&[0x05; 10]).unwrap_err(),
            KemError::BadKeyType(5)
        );
        assert_eq!(
            Ciphertext::deserialize(&[KYBER1024_TYPE; 100]).unwrap_err(),
            KemError::BadLength {
                expected: 1569,
                got: 100
            }
        );
    }

    #[test]
    fn round_trip() {
        let pair = KeyPair::from_randomness(&[7; 64]);
        let (shared, ciphertext) = pair.public_key().encapsulate_with_randomness(&[9; 32]);
        assert_eq!(pair.secret_key().decapsulate(&ciphertext), shared);
        let bytes = pair.public_key().serialize();
        assert_eq!(bytes.len(), 1569);
        assert_eq!(&PublicKey::deserialize(&bytes).unwrap(), pair.public_key());
        let rebuilt = KeyPair::new(pair.public_key().clone(), pair.secret_key().clone()).unwrap();
        assert_eq!(rebuilt, pair);
        let other = KeyPair::from_randomness(&[8; 64]);
        assert_eq!(
            KeyPair::new(other.public_key().clone(), pair.secret_key().clone()).unwrap_err(),
            KemError::KeyPairMismatch
        );
    }
}
