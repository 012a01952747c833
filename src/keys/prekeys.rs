//! Prekeys a device publishes so others can start sessions with it while it is offline, and the
//! ids that name them.

use core::fmt;

use rand_core::CryptoRng;

use super::{IdentityKeyPair, KeyPair, PublicKey};
use crate::kem;
use crate::time::Timestamp;
use crate::xeddsa::SIGNATURE_LENGTH;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u32);

        impl From<u32> for $name {
            fn from(value: u32) -> Self {
                Self(value)
            }
        }

        impl From<$name> for u32 {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

id_type!(
    /// Id of a one-time EC prekey.
    PreKeyId
);
id_type!(
    /// Id of a signed prekey.
    SignedPreKeyId
);
id_type!(
    /// Id of a Kyber prekey (one-time or last-resort).
    KyberPreKeyId
);
id_type!(
    /// A device's registration id, carried in PreKey messages so a peer can tell a reinstalled
    /// device from the old one.
    RegistrationId
);

impl RegistrationId {
    /// Largest id Signal clients generate (14 bits, zero excluded).
    pub const MAX: u32 = 16380;

    /// Draws an id in `1..=16380` from one `next_u32`, as Signal clients do. The modulo bias
    /// (2^32 is not a multiple of 16380) is negligible for an identifier that is not secret.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        Self(1 + rng.next_u32() % Self::MAX)
    }
}

/// A one-time EC prekey with its private key (kept by its owner until consumed).
#[derive(Clone, PartialEq, Eq)]
pub struct PreKeyRecord {
    id: PreKeyId,
    key_pair: KeyPair,
}

impl PreKeyRecord {
    /// Generates a one-time prekey (one `fill_bytes(32)` draw).
    pub fn generate<R: CryptoRng + ?Sized>(id: PreKeyId, rng: &mut R) -> Self {
        Self {
            id,
            key_pair: KeyPair::generate(rng),
        }
    }

    /// Wraps an existing key pair.
    #[must_use]
    pub const fn new(id: PreKeyId, key_pair: KeyPair) -> Self {
        Self { id, key_pair }
    }

    /// The prekey id.
    #[must_use]
    pub const fn id(&self) -> PreKeyId {
        self.id
    }

    /// The key pair.
    #[must_use]
    pub const fn key_pair(&self) -> &KeyPair {
        &self.key_pair
    }

    /// The public key.
    #[must_use]
    pub const fn public_key(&self) -> &PublicKey {
        self.key_pair.public_key()
    }
}

impl fmt::Debug for PreKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self { id, key_pair } = self;
        f.debug_struct("PreKeyRecord")
            .field("id", id)
            .field("public_key", key_pair.public_key())
            .finish_non_exhaustive()
    }
}

/// A signed prekey: a medium-term EC key signed by the identity key.
#[derive(Clone, PartialEq, Eq)]
pub struct SignedPreKeyRecord {
    id: SignedPreKeyId,
    timestamp: Timestamp,
    key_pair: KeyPair,
    signature: [u8; SIGNATURE_LENGTH],
}

impl SignedPreKeyRecord {
    /// Generates and signs a prekey: `fill_bytes(32)` for the key, then `fill_bytes(64)` for
    /// the signature (libsignal's order). The signature covers the 33-byte public key.
    pub fn generate<R: CryptoRng + ?Sized>(
        id: SignedPreKeyId,
        identity: &IdentityKeyPair,
        now: Timestamp,
        rng: &mut R,
    ) -> Self {
        let key_pair = KeyPair::generate(rng);
        let signature = identity.sign(&key_pair.public_key().serialize(), rng);
        Self {
            id,
            timestamp: now,
            key_pair,
            signature,
        }
    }

    /// Wraps existing parts (the signature is not checked here; bundles are verified by the
    /// party that fetches them).
    #[must_use]
    pub const fn new(
        id: SignedPreKeyId,
        timestamp: Timestamp,
        key_pair: KeyPair,
        signature: [u8; SIGNATURE_LENGTH],
    ) -> Self {
        Self {
            id,
            timestamp,
            key_pair,
            signature,
        }
    }

    /// The prekey id.
    #[must_use]
    pub const fn id(&self) -> SignedPreKeyId {
        self.id
    }

    /// When the key was generated (drives rotation).
    #[must_use]
    pub const fn timestamp(&self) -> Timestamp {
        self.timestamp
    }

    /// The key pair.
    #[must_use]
    pub const fn key_pair(&self) -> &KeyPair {
        &self.key_pair
    }

    /// The public key.
    #[must_use]
    pub const fn public_key(&self) -> &PublicKey {
        self.key_pair.public_key()
    }

    /// The identity key's XEdDSA signature over the 33-byte public key.
    #[must_use]
    pub const fn signature(&self) -> &[u8; SIGNATURE_LENGTH] {
        &self.signature
    }
}

impl fmt::Debug for SignedPreKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            id,
            timestamp,
            key_pair,
            signature: _,
        } = self;
        f.debug_struct("SignedPreKeyRecord")
            .field("id", id)
            .field("timestamp", timestamp)
            .field("public_key", key_pair.public_key())
            .finish_non_exhaustive()
    }
}

/// A signed Kyber1024 prekey, either one-time or the device's last-resort key (which may be
/// used by many sessions until it is rotated).
#[derive(Clone, PartialEq, Eq)]
pub struct KyberPreKeyRecord {
    id: KyberPreKeyId,
    timestamp: Timestamp,
    key_pair: kem::KeyPair,
    signature: [u8; SIGNATURE_LENGTH],
    last_resort: bool,
}

impl KyberPreKeyRecord {
    /// Generates and signs a Kyber prekey: 64 `next_u32` for the key, then `fill_bytes(64)` for
    /// the signature over the 1569-byte serialized public key.
    pub fn generate<R: CryptoRng + ?Sized>(
        id: KyberPreKeyId,
        identity: &IdentityKeyPair,
        now: Timestamp,
        last_resort: bool,
        rng: &mut R,
    ) -> Self {
        let key_pair = kem::KeyPair::generate(rng);
        let signature = identity.sign(&key_pair.public_key().serialize(), rng);
        Self {
            id,
            timestamp: now,
            key_pair,
            signature,
            last_resort,
        }
    }

    /// Wraps existing parts.
    #[must_use]
    pub const fn new(
        id: KyberPreKeyId,
        timestamp: Timestamp,
        key_pair: kem::KeyPair,
        signature: [u8; SIGNATURE_LENGTH],
        last_resort: bool,
    ) -> Self {
        Self {
            id,
            timestamp,
            key_pair,
            signature,
            last_resort,
        }
    }

    /// The prekey id.
    #[must_use]
    pub const fn id(&self) -> KyberPreKeyId {
        self.id
    }

    /// When the key was generated.
    #[must_use]
    pub const fn timestamp(&self) -> Timestamp {
        self.timestamp
    }

    /// The KEM key pair.
    #[must_use]
    pub const fn key_pair(&self) -> &kem::KeyPair {
        &self.key_pair
    }

    /// The KEM public key.
    #[must_use]
    pub const fn public_key(&self) -> &kem::PublicKey {
        self.key_pair.public_key()
    }

    /// The identity key's XEdDSA signature over the serialized KEM public key.
    #[must_use]
    pub const fn signature(&self) -> &[u8; SIGNATURE_LENGTH] {
        &self.signature
    }

    /// Whether this is the last-resort key (kept after use) rather than a one-time key.
    #[must_use]
    pub const fn is_last_resort(&self) -> bool {
        self.last_resort
    }
}

impl fmt::Debug for KyberPreKeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            id,
            timestamp,
            key_pair,
            signature: _,
            last_resort,
        } = self;
        f.debug_struct("KyberPreKeyRecord")
            .field("id", id)
            .field("timestamp", timestamp)
            .field("last_resort", last_resort)
            .field("public_key", key_pair.public_key())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use rand_core::SeedableRng;

    use super::*;

    #[test]
    fn registration_ids_are_in_range() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        for _ in 0..1000 {
            let id = RegistrationId::generate(&mut rng);
            assert!((1..=RegistrationId::MAX).contains(&id.0), "{id}");
        }
    }

    #[test]
    fn records_print_only_public_parts() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(8);
        let identity = IdentityKeyPair::generate(&mut rng);
        let now = Timestamp::from_secs(1);
        let signed = SignedPreKeyRecord::generate(SignedPreKeyId(3), &identity, now, &mut rng);
        let one_time = PreKeyRecord::generate(PreKeyId(4), &mut rng);
        let text = format!("{signed:?} {one_time:?}");
        for private in [
            signed.key_pair().private_key(),
            one_time.key_pair().private_key(),
        ] {
            assert!(!text.contains(&hex::encode(*private.serialize())), "{text}");
        }
        assert!(
            text.contains("SignedPreKeyId(3)") && text.contains("PreKeyId(4)"),
            "{text}"
        );
        assert!(
            identity
                .identity_key()
                .verify_signature(&signed.public_key().serialize(), signed.signature())
        );
    }
}
