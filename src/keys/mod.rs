//! Key material: X25519 keys (with XEdDSA signatures), identity keys, prekeys and ids.
//!
//! Encodings follow libsignal (PROTOCOL.md "Keys"): a public key is `0x05 || u-coordinate`,
//! a private key is 32 clamped bytes, an identity key pair is the protobuf `{1: public, 2: private}`.
//! Secret-bearing types are boxed, zeroize on drop and print only public parts in `Debug`.

mod curve;
mod identity;
mod prekeys;

pub use curve::{DJB_TYPE, KeyPair, PrivateKey, PublicKey, SharedSecret};
pub use identity::{IdentityKey, IdentityKeyPair};
pub use prekeys::{
    KyberPreKeyId, KyberPreKeyRecord, PreKeyId, PreKeyRecord, RegistrationId, SignedPreKeyId,
    SignedPreKeyRecord,
};

use crate::error::ErrorClass;

/// Why a key could not be parsed or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The encoding is empty, so it has no type byte.
    #[error("no key type identifier")]
    NoKeyTypeIdentifier,
    /// The type byte is not 0x05 (X25519).
    #[error("bad key type <{0:#04x}>")]
    BadKeyType(u8),
    /// The encoding is too short (public) or not exactly 32 bytes (private).
    #[error("bad key length <{0}>")]
    BadKeyLength(usize),
    /// An X25519 agreement produced the all-zero output (a low-order or zero public key).
    #[error("X25519 agreement was not contributory")]
    NonContributory,
    /// A serialized key pair's public half does not belong to its private half.
    #[error("public key does not match private key")]
    KeyPairMismatch,
    /// A serialized key pair is not valid protobuf or lacks a field.
    #[error("malformed key pair encoding")]
    MalformedKeyPair,
}

impl KeyError {
    /// The stable class of this error.
    #[must_use]
    pub const fn class(&self) -> ErrorClass {
        ErrorClass::InvalidKey
    }
}

/// Clamps a 32-byte string into an X25519 scalar, as RFC 7748 and libsignal do.
pub(crate) fn clamp(bytes: &mut [u8; 32]) {
    bytes[0] &= 248;
    bytes[31] &= 127;
    bytes[31] |= 64;
}
