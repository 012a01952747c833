//! X25519 public/private keys, agreement and XEdDSA signing.

use core::fmt;

use rand_core::CryptoRng;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::{KeyError, clamp};
use crate::xeddsa;

/// Type byte of an X25519 ("DJB") public key.
pub const DJB_TYPE: u8 = 0x05;

/// Length of a serialized public key: type byte plus the 32-byte u-coordinate.
pub(crate) const PUBLIC_KEY_LENGTH: usize = 33;

/// The output of an X25519 agreement; wiped on drop.
pub type SharedSecret = Zeroizing<[u8; 32]>;

/// An X25519 public key (a Montgomery u-coordinate).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// Parses `0x05 || u` (33 bytes). Bytes after the 33rd are ignored, as libsignal does.
    pub fn deserialize(bytes: &[u8]) -> Result<Self, KeyError> {
        let (&key_type, rest) = bytes.split_first().ok_or(KeyError::NoKeyTypeIdentifier)?;
        if key_type != DJB_TYPE {
            return Err(KeyError::BadKeyType(key_type));
        }
        let u = rest
            .get(..32)
            .and_then(|u| <[u8; 32]>::try_from(u).ok())
            .ok_or(KeyError::BadKeyLength(bytes.len()))?;
        Ok(Self(u))
    }

    /// Wraps a raw 32-byte u-coordinate (no type byte).
    #[must_use]
    pub const fn from_djb_bytes(u: [u8; 32]) -> Self {
        Self(u)
    }

    /// The 33-byte encoding `0x05 || u`, which is also what prekey signatures cover.
    #[must_use]
    pub fn serialize(&self) -> [u8; PUBLIC_KEY_LENGTH] {
        let mut out = [0u8; PUBLIC_KEY_LENGTH];
        let (type_byte, u) = out.split_at_mut(1);
        type_byte.copy_from_slice(&[DJB_TYPE]);
        u.copy_from_slice(&self.0);
        out
    }

    /// The raw u-coordinate, without the type byte.
    #[must_use]
    pub const fn as_djb_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Checks an XEdDSA signature made by the matching private key. Any length other than 64
    /// bytes is simply invalid.
    #[must_use]
    pub fn verify_signature(&self, message: &[u8], signature: &[u8]) -> bool {
        match <&[u8; xeddsa::SIGNATURE_LENGTH]>::try_from(signature) {
            Ok(signature) => xeddsa::verify(&self.0, message, signature),
            Err(_) => false,
        }
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", hex::encode(self.0))
    }
}

/// An X25519 private key: 32 clamped bytes, boxed so moves leave no copies, wiped on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct PrivateKey(Box<[u8; 32]>);

impl PrivateKey {
    /// Generates a key from exactly one `fill_bytes(32)` draw, then clamps it (libsignal's
    /// order, so a seeded generator yields the same keys).
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = Box::new([0u8; 32]);
        rng.fill_bytes(bytes.as_mut_slice());
        clamp(&mut bytes);
        Self(bytes)
    }

    /// Parses 32 raw bytes, clamping them as libsignal does on deserialize.
    pub fn deserialize(bytes: &[u8]) -> Result<Self, KeyError> {
        let raw = <&[u8; 32]>::try_from(bytes).map_err(|_| KeyError::BadKeyLength(bytes.len()))?;
        // Copied straight into the box: no copy of the key is left on the stack.
        let mut key = Box::new([0u8; 32]);
        key.copy_from_slice(raw);
        clamp(&mut key);
        Ok(Self(key))
    }

    /// The 32 clamped bytes. The caller owns the copy, which wipes itself on drop.
    #[must_use]
    pub fn serialize(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(*self.0)
    }

    /// The matching public key.
    #[must_use]
    pub fn public_key(&self) -> PublicKey {
        let secret = x25519_dalek::StaticSecret::from(*self.0);
        PublicKey(x25519_dalek::PublicKey::from(&secret).to_bytes())
    }

    /// X25519 agreement with `their_key`. A non-contributory result (the peer sent a zero or
    /// low-order point) is rejected, so a malicious key cannot force a known shared secret.
    pub fn agree(&self, their_key: &PublicKey) -> Result<SharedSecret, KeyError> {
        let secret = x25519_dalek::StaticSecret::from(*self.0);
        let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(their_key.0));
        if !shared.was_contributory() {
            return Err(KeyError::NonContributory);
        }
        Ok(Zeroizing::new(shared.to_bytes()))
    }

    /// XEdDSA-signs `message`, drawing the 64 random bytes Z with one `fill_bytes(64)`.
    pub fn sign<R: CryptoRng + ?Sized>(
        &self,
        message: &[u8],
        rng: &mut R,
    ) -> [u8; xeddsa::SIGNATURE_LENGTH] {
        let mut z = Zeroizing::new([0u8; 64]);
        rng.fill_bytes(z.as_mut_slice());
        xeddsa::sign(&self.0, message, &z)
    }
}

impl PartialEq for PrivateKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&*other.0).into()
    }
}

impl Eq for PrivateKey {}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(<redacted>)")
    }
}

/// An X25519 key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPair {
    public_key: PublicKey,
    private_key: PrivateKey,
}

impl KeyPair {
    /// Generates a key pair (one `fill_bytes(32)` draw).
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self::from_private_key(PrivateKey::generate(rng))
    }

    /// Completes a private key with its public key.
    #[must_use]
    pub fn from_private_key(private_key: PrivateKey) -> Self {
        Self {
            public_key: private_key.public_key(),
            private_key,
        }
    }

    /// Builds a pair from both halves, checking that they belong together.
    pub fn new(public_key: PublicKey, private_key: PrivateKey) -> Result<Self, KeyError> {
        if private_key.public_key() != public_key {
            return Err(KeyError::KeyPairMismatch);
        }
        Ok(Self {
            public_key,
            private_key,
        })
    }

    /// The public half.
    #[must_use]
    pub const fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// The private half.
    #[must_use]
    pub const fn private_key(&self) -> &PrivateKey {
        &self.private_key
    }

    /// See [`PrivateKey::agree`].
    pub fn agree(&self, their_key: &PublicKey) -> Result<SharedSecret, KeyError> {
        self.private_key.agree(their_key)
    }

    /// See [`PrivateKey::sign`].
    pub fn sign<R: CryptoRng + ?Sized>(
        &self,
        message: &[u8],
        rng: &mut R,
    ) -> [u8; xeddsa::SIGNATURE_LENGTH] {
        self.private_key.sign(message, rng)
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            public_key,
            private_key: _,
        } = self;
        f.debug_struct("KeyPair")
            .field("public_key", public_key)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_and_trailing_bytes() {
        assert_eq!(
            PublicKey::deserialize(&[]),
            Err(KeyError::NoKeyTypeIdentifier)
        );
        assert_eq!(
            PublicKey::deserialize(&[0x06; 33]),
            Err(KeyError::BadKeyType(6))
        );
        assert_eq!(
            PublicKey::deserialize(&[0x05; 20]),
            Err(KeyError::BadKeyLength(20))
        );
        let mut long = [9u8; 40];
        long[0] = DJB_TYPE;
        let key = PublicKey::deserialize(&long).unwrap();
        assert_eq!(key.as_djb_bytes(), &[9u8; 32]);
        assert_eq!(
            PrivateKey::deserialize(&[1; 31]).unwrap_err(),
            KeyError::BadKeyLength(31)
        );
    }

    #[test]
    fn low_order_points_are_rejected() {
        let private = PrivateKey::deserialize(&[7u8; 32]).unwrap();
        // u = 0 and u = 1 are small-order points on Curve25519.
        for u in [[0u8; 32], {
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        }] {
            assert_eq!(
                private.agree(&PublicKey::from_djb_bytes(u)).unwrap_err(),
                KeyError::NonContributory
            );
        }
    }

    #[test]
    fn debug_is_redacted() {
        let private = PrivateKey::deserialize(&[0xAB; 32]).unwrap();
        let pair = KeyPair::from_private_key(private.clone());
        let text = format!("{private:?} {pair:?}");
        assert!(!text.contains("abab"), "{text}");
        assert!(text.contains("PublicKey("));
    }
}
