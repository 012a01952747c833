//! Long-term identity keys.

use core::fmt;

use prost::Message;
use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::{KeyError, KeyPair, PrivateKey, PublicKey};
use crate::xeddsa;

/// A device's public identity key. Its 33-byte serialization is what safety numbers, message
/// MACs and PreKey messages carry.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdentityKey(PublicKey);

impl IdentityKey {
    /// Wraps a public key as an identity key.
    #[must_use]
    pub const fn new(public_key: PublicKey) -> Self {
        Self(public_key)
    }

    /// Parses a 33-byte public key (see [`PublicKey::deserialize`]).
    pub fn deserialize(bytes: &[u8]) -> Result<Self, KeyError> {
        PublicKey::deserialize(bytes).map(Self)
    }

    /// The 33-byte encoding.
    #[must_use]
    pub fn serialize(&self) -> [u8; 33] {
        self.0.serialize()
    }

    /// The underlying public key.
    #[must_use]
    pub const fn public_key(&self) -> &PublicKey {
        &self.0
    }

    /// Checks an XEdDSA signature made with this identity.
    #[must_use]
    pub fn verify_signature(&self, message: &[u8], signature: &[u8]) -> bool {
        self.0.verify_signature(message, signature)
    }
}

impl From<PublicKey> for IdentityKey {
    fn from(value: PublicKey) -> Self {
        Self(value)
    }
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityKey({})", hex::encode(self.0.as_djb_bytes()))
    }
}

/// libsignal's `IdentityKeyPairStructure { 1: public (33), 2: private (32) }`.
#[derive(Clone, PartialEq, Message, Zeroize, ZeroizeOnDrop)]
#[prost(skip_debug)]
struct IdentityKeyPairProto {
    #[prost(bytes = "vec", optional, tag = "1")]
    public_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    private_key: Option<Vec<u8>>,
}

impl fmt::Debug for IdentityKeyPairProto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdentityKeyPairProto { <redacted> }")
    }
}

/// A device's identity key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityKeyPair {
    identity_key: IdentityKey,
    private_key: PrivateKey,
}

impl IdentityKeyPair {
    /// Generates a new identity (one `fill_bytes(32)` draw).
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self::from_private_key(PrivateKey::generate(rng))
    }

    /// Completes a private key with its public identity key.
    #[must_use]
    pub fn from_private_key(private_key: PrivateKey) -> Self {
        Self {
            identity_key: IdentityKey(private_key.public_key()),
            private_key,
        }
    }

    /// Builds a pair from both halves, checking that they belong together.
    pub fn new(identity_key: IdentityKey, private_key: PrivateKey) -> Result<Self, KeyError> {
        let pair = KeyPair::new(identity_key.0, private_key)?;
        Ok(Self {
            identity_key,
            private_key: pair.private_key().clone(),
        })
    }

    /// The public identity key.
    #[must_use]
    pub const fn identity_key(&self) -> &IdentityKey {
        &self.identity_key
    }

    /// The private identity key.
    #[must_use]
    pub const fn private_key(&self) -> &PrivateKey {
        &self.private_key
    }

    /// XEdDSA-signs `message` (one `fill_bytes(64)` draw).
    pub fn sign<R: CryptoRng + ?Sized>(
        &self,
        message: &[u8],
        rng: &mut R,
    ) -> [u8; xeddsa::SIGNATURE_LENGTH] {
        self.private_key.sign(message, rng)
    }

    /// libsignal's protobuf encoding `{1: public (33), 2: private (32)}`; wiped on drop.
    #[must_use]
    pub fn serialize(&self) -> Zeroizing<Vec<u8>> {
        let proto = IdentityKeyPairProto {
            public_key: Some(self.identity_key.serialize().to_vec()),
            private_key: Some(self.private_key.serialize().to_vec()),
        };
        Zeroizing::new(proto.encode_to_vec())
    }

    /// Parses [`IdentityKeyPair::serialize`]'s encoding (the private key is clamped and must
    /// match the public key).
    pub fn deserialize(bytes: &[u8]) -> Result<Self, KeyError> {
        let proto = IdentityKeyPairProto::decode(bytes).map_err(|_| KeyError::MalformedKeyPair)?;
        let public = proto
            .public_key
            .as_deref()
            .ok_or(KeyError::MalformedKeyPair)?;
        let private = proto
            .private_key
            .as_deref()
            .ok_or(KeyError::MalformedKeyPair)?;
        Self::new(
            IdentityKey::deserialize(public)?,
            PrivateKey::deserialize(private)?,
        )
    }
}

impl fmt::Debug for IdentityKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            identity_key,
            private_key: _,
        } = self;
        f.debug_struct("IdentityKeyPair")
            .field("identity_key", identity_key)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_mismatch() {
        let pair = IdentityKeyPair::from_private_key(PrivateKey::deserialize(&[3; 32]).unwrap());
        let bytes = pair.serialize();
        assert_eq!(IdentityKeyPair::deserialize(&bytes).unwrap(), pair);

        let other = PrivateKey::deserialize(&[4; 32]).unwrap();
        assert_eq!(
            IdentityKeyPair::new(*pair.identity_key(), other).unwrap_err(),
            KeyError::KeyPairMismatch
        );
        assert_eq!(
            IdentityKeyPair::deserialize(&[0xFF]).unwrap_err(),
            KeyError::MalformedKeyPair
        );
        assert!(!format!("{pair:?}").contains("0303"));
        let proto = IdentityKeyPairProto::decode(bytes.as_slice()).unwrap();
        assert_eq!(format!("{proto:?}"), "IdentityKeyPairProto { <redacted> }");
    }
}
