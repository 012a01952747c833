//! The epoch key of the epoch scheme.

use core::fmt;

use rand_core::CryptoRng;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::cipher::ct_eq;

/// A community epoch's 32-byte AES-256-GCM key. Boxed, wiped on drop, redacted in `Debug`,
/// compared in constant time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct EpochKey(Box<[u8; 32]>);

impl EpochKey {
    /// A fresh key from one `fill_bytes(32)` draw.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut key = Box::new([0u8; 32]);
        rng.fill_bytes(key.as_mut_slice());
        Self(key)
    }

    /// Wraps 32 key bytes.
    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Box::new(bytes))
    }

    /// Parses exactly 32 bytes.
    #[must_use]
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self::from_bytes)
    }

    /// The key bytes (secret).
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl PartialEq for EpochKey {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(self.0.as_slice(), other.0.as_slice())
    }
}

impl Eq for EpochKey {}

impl fmt::Debug for EpochKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EpochKey(<redacted>)")
    }
}
