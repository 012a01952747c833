//! The sender chain key schedule (PROTOCOL.md "Sender Keys").
//!
//! The chain step is the Double Ratchet's (`HMAC-SHA256(ck, 0x02)`), the per-message seed is
//! `HMAC-SHA256(ck, 0x01)`, and a seed expands with `HKDF(no salt, seed, "WhisperGroup", 48)`
//! into `IV (16) || AES-256 key (32)`: IV first, unlike the DM layout.

use core::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::cipher::{chain_next_key, chain_seed, ct_eq, derive_from_seed};

/// HKDF label of group message keys.
const GROUP_MESSAGE_KEYS_LABEL: &[u8] = b"WhisperGroup";

/// A sender chain key at an iteration. Boxed, wiped on drop, redacted in `Debug`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SenderChainKey {
    key: Box<[u8; 32]>,
    iteration: u32,
}

impl SenderChainKey {
    /// Wraps a chain key at `iteration`.
    #[must_use]
    pub fn new(key: [u8; 32], iteration: u32) -> Self {
        Self {
            key: Box::new(key),
            iteration,
        }
    }

    /// The iteration of the next message this key encrypts or decrypts.
    #[must_use]
    pub const fn iteration(&self) -> u32 {
        self.iteration
    }

    /// The key bytes (secret: for persistence and distribution messages).
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.key
    }

    /// The chain key one step on, or `None` at iteration `u32::MAX`.
    #[must_use]
    pub fn next(&self) -> Option<Self> {
        Some(Self {
            key: Box::new(*chain_next_key(&self.key)),
            iteration: self.iteration.checked_add(1)?,
        })
    }

    /// The message key at this iteration.
    #[must_use]
    pub fn message_key(&self) -> SenderMessageKey {
        SenderMessageKey::from_seed(*chain_seed(&self.key), self.iteration)
    }
}

impl PartialEq for SenderChainKey {
    fn eq(&self, other: &Self) -> bool {
        self.iteration == other.iteration && ct_eq(self.key.as_slice(), other.key.as_slice())
    }
}

impl Eq for SenderChainKey {}

impl fmt::Debug for SenderChainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SenderChainKey")
            .field("iteration", &self.iteration)
            .finish_non_exhaustive()
    }
}

/// The key of one group message: its 32-byte seed (what is stored for skipped iterations)
/// and the IV and AES-256 key derived from it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SenderMessageKey {
    seed: Box<[u8; 32]>,
    iv: [u8; 16],
    cipher_key: Box<[u8; 32]>,
    iteration: u32,
}

impl SenderMessageKey {
    /// Derives the IV and cipher key from a stored seed.
    #[must_use]
    pub fn from_seed(seed: [u8; 32], iteration: u32) -> Self {
        let okm = derive_from_seed::<48>(&seed, GROUP_MESSAGE_KEYS_LABEL);
        let mut key = Self {
            seed: Box::new(seed),
            iv: [0u8; 16],
            cipher_key: Box::new([0u8; 32]),
            iteration,
        };
        let (iv, cipher_key) = okm.split_at(16);
        key.iv.copy_from_slice(iv);
        key.cipher_key.copy_from_slice(cipher_key);
        key
    }

    /// The iteration this key belongs to.
    #[must_use]
    pub const fn iteration(&self) -> u32 {
        self.iteration
    }

    /// The seed (`HMAC-SHA256(chain_key, 0x01)`), secret.
    #[must_use]
    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The AES-CBC IV.
    #[must_use]
    pub const fn iv(&self) -> &[u8; 16] {
        &self.iv
    }

    /// The AES-256 key, secret.
    #[must_use]
    pub fn cipher_key(&self) -> &[u8; 32] {
        &self.cipher_key
    }
}

impl PartialEq for SenderMessageKey {
    fn eq(&self, other: &Self) -> bool {
        self.iteration == other.iteration && ct_eq(self.seed.as_slice(), other.seed.as_slice())
    }
}

impl Eq for SenderMessageKey {}

impl fmt::Debug for SenderMessageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SenderMessageKey")
            .field("iteration", &self.iteration)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_overflow_and_redaction() {
        let chain = SenderChainKey::new([3; 32], 7);
        let next = chain.next().unwrap();
        assert_eq!(next.iteration(), 8);
        assert_ne!(next.as_bytes(), chain.as_bytes());
        let key = chain.message_key();
        assert_eq!(key.iteration(), 7);
        assert_eq!(SenderMessageKey::from_seed(*key.seed(), 7), key);
        assert!(SenderChainKey::new([3; 32], u32::MAX).next().is_none());
        let text = format!("{chain:?} {key:?}");
        assert!(!text.contains("[3") && !text.contains("0303"), "{text}");
    }
}
