//! Community ids and epoch ids (`key_id`): UUIDs, shown in their hyphenated form.

use core::fmt;
use core::str::FromStr;

use rand_core::CryptoRng;
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
}
