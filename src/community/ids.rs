//! Community ids and epoch ids: UUIDs, shown in their hyphenated form.
//!
//! The key server numbers a community's epochs with an integer `key_id` (1, 2, ...); the
//! crypto names an epoch by a UUID (it is the Sender Keys distribution id and sits in every
//! blob header). [`EpochId::for_server_epoch`] derives the one from the other, so every device
//! and the server agree on it without carrying a second column.

use core::fmt;
use core::str::FromStr;

use rand_core::CryptoRng;
use sha2::{Digest, Sha256};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps a UUID.
            #[must_use]
            pub const fn new(id: Uuid) -> Self {
                Self(id)
            }

            /// From the 16 raw bytes.
            #[must_use]
            pub const fn from_bytes(bytes: [u8; 16]) -> Self {
                Self(Uuid::from_bytes(bytes))
            }

            /// The UUID.
            #[must_use]
            pub const fn uuid(&self) -> Uuid {
                self.0
            }

            /// The 16 raw bytes.
            #[must_use]
            pub const fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }

            /// A random (version 4) id from one `fill_bytes(16)` draw.
            pub fn random<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
                let mut bytes = [0u8; 16];
                rng.fill_bytes(&mut bytes);
                Self(uuid::Builder::from_random_bytes(bytes).into_uuid())
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }

        impl From<Uuid> for $name {
            fn from(value: Uuid) -> Self {
                Self(value)
            }
        }
    };
}

uuid_id!(
    /// A community (the `communities.id` column).
    CommunityId
);
uuid_id!(
    /// A community epoch: the `key_id` of `community_sender_key_state`, shares and blobs, and
    /// the Sender Keys distribution id of the sender-chain scheme.
    EpochId
);

/// Domain separation for [`EpochId::for_server_epoch`].
const EPOCH_ID_LABEL: &[u8] = b"spots-epoch-id-v1";

impl EpochId {
    /// The epoch id of the key server's epoch `key_id` of `community`: the first 16 bytes of
    /// SHA-256("spots-epoch-id-v1" || community id (16) || key_id (4, big-endian)) as a
    /// version-8 (custom) UUID. Deterministic, so the id never travels next to the number, and
    /// distinct per community, so two communities' epoch 1 never share a distribution id.
    #[must_use]
    pub fn for_server_epoch(community: CommunityId, key_id: u32) -> Self {
        let digest = Sha256::new()
            .chain_update(EPOCH_ID_LABEL)
            .chain_update(community.as_bytes())
            .chain_update(key_id.to_be_bytes())
            .finalize();
        let mut bytes = [0u8; 16];
        for (out, byte) in bytes.iter_mut().zip(digest) {
            *out = byte;
        }
        Self(uuid::Builder::from_custom_bytes(bytes).into_uuid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn parse_display_random() {
        let id: EpochId = "d1d1d1d1-7000-4000-8000-000000000001".parse().unwrap();
        assert_eq!(id.to_string(), "d1d1d1d1-7000-4000-8000-000000000001");
        assert_eq!(id.as_bytes()[0], 0xd1);
        assert!("nope".parse::<CommunityId>().is_err());
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let random = CommunityId::random(&mut rng);
        assert_eq!(random.uuid().get_version_num(), 4);
        assert_ne!(random, CommunityId::random(&mut rng));
    }

    #[test]
    fn server_epoch_ids_are_derived_per_community() {
        let community: CommunityId = "c0c0c0c0-0000-4000-8000-000000000001".parse().unwrap();
        let other: CommunityId = "c0c0c0c0-0000-4000-8000-000000000002".parse().unwrap();
        let first = EpochId::for_server_epoch(community, 1);
        assert_eq!(first, EpochId::for_server_epoch(community, 1));
        assert_ne!(first, EpochId::for_server_epoch(community, 2));
        assert_ne!(first, EpochId::for_server_epoch(other, 1));
        assert_eq!(first.uuid().get_version_num(), 8);
        assert_eq!(first.uuid().get_variant(), uuid::Variant::RFC4122);
        // Pinned (computed independently with Python's hashlib and uuid; docs/COMMUNITY.md):
        // hosts in other languages must derive the same id.
        assert_eq!(first.to_string(), "cbbe61b0-99e2-82db-968f-bc3f3535d6ec");
    }
}
