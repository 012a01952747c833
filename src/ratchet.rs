//! Double Ratchet key schedule: root keys, chain keys and message keys (PROTOCOL.md "Double
//! Ratchet").
//!
//! These are the pure derivations; the state machine that uses them (which chain to use,
//! skipped keys, limits) lives in `session`.

use core::fmt;

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::cipher::{chain_next_key, chain_seed, ct_eq, derive_from_seed, hkdf_sha256};
use crate::keys::{KeyError, PrivateKey, PublicKey};

/// HKDF label of a root (DH ratchet) step.
const ROOT_STEP_LABEL: &[u8] = b"WhisperRatchet";
/// HKDF label expanding a message key seed into cipher key, MAC key and IV.
const MESSAGE_KEYS_LABEL: &[u8] = b"WhisperMessageKeys";

/// Copies 32 secret bytes straight into a new box, so no copy is left on the stack.
fn boxed(bytes: &[u8]) -> Box<[u8; 32]> {
    let mut key = Box::new([0u8; 32]);
    key.copy_from_slice(bytes);
    key
}

/// Splits a 64-byte HKDF output into a root key and a chain key at `index`, copying each half
/// straight into its box.
pub(crate) fn root_and_chain_keys(okm: &[u8; 64], index: u32) -> (RootKey, ChainKey) {
    let (root, chain) = okm.split_at(32);
    (
        RootKey(boxed(root)),
        ChainKey {
            key: boxed(chain),
            index,
        },
    )
}

/// The root key, advanced by every DH ratchet step.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct RootKey(Box<[u8; 32]>);

impl RootKey {
    /// Wraps 32 key bytes.
    #[must_use]
    pub fn new(key: [u8; 32]) -> Self {
        Self::from_bytes(&key)
    }

    /// Copies 32 key bytes straight into the box (the crate's own path: no stack copy).
    pub(crate) fn from_bytes(key: &[u8; 32]) -> Self {
        Self(boxed(key))
    }

    /// The key bytes (secret; for persistence and inspection).
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// One DH ratchet step: `HKDF(salt = root, ikm = DH(ours, theirs), "WhisperRatchet", 64)`
    /// gives the next root key and a fresh chain key at index 0.
    pub fn create_chain(
        &self,
        their_ratchet_key: &PublicKey,
        our_ratchet_key: &PrivateKey,
    ) -> Result<(RootKey, ChainKey), KeyError> {
        let shared = our_ratchet_key.agree(their_ratchet_key)?;
        let okm = hkdf_sha256::<64>(Some(self.0.as_slice()), shared.as_slice(), ROOT_STEP_LABEL);
        Ok(root_and_chain_keys(&okm, 0))
    }
}

impl fmt::Debug for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RootKey(<redacted>)")
    }
}

/// A symmetric chain key and its position in the chain.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ChainKey {
    key: Box<[u8; 32]>,
    index: u32,
}

impl ChainKey {
    /// Wraps a chain key at `index`.
    #[must_use]
    pub fn new(key: [u8; 32], index: u32) -> Self {
        Self::from_bytes(&key, index)
    }

    /// Copies a chain key straight into the box (the crate's own path: no stack copy).
    pub(crate) fn from_bytes(key: &[u8; 32], index: u32) -> Self {
        Self {
            key: boxed(key),
            index,
        }
    }

    /// The key bytes (secret; for persistence and inspection).
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.key
    }

    /// Position in the chain: the counter of the next message it will encrypt or decrypt.
    #[must_use]
    pub const fn index(&self) -> u32 {
        self.index
    }

    /// The chain key one step further, or `None` when the index would overflow (a chain of
    /// 2^32 messages; the session must be replaced long before).
    #[must_use]
    pub fn next(&self) -> Option<ChainKey> {
        let index = self.index.checked_add(1)?;
        Some(ChainKey {
            key: boxed(chain_next_key(&self.key).as_slice()),
            index,
        })
    }

    /// Moves this chain key one step forward in place (one HMAC, no allocation). Returns
    /// `None`, leaving the key unchanged, when the index would overflow.
    pub(crate) fn advance(&mut self) -> Option<()> {
        let index = self.index.checked_add(1)?;
        let next = chain_next_key(&self.key);
        self.key.copy_from_slice(next.as_slice());
        self.index = index;
        Some(())
    }

    /// The message key seed at this position, `HMAC-SHA256(chain_key, 0x01)`: what is stored
    /// for skipped messages.
    #[must_use]
    pub fn message_key_seed(&self) -> MessageKeySeed {
        MessageKeySeed {
            seed: boxed(chain_seed(&self.key).as_slice()),
            counter: self.index,
        }
    }

    /// The message keys at this position.
    #[must_use]
    pub fn message_keys(&self) -> MessageKeys {
        self.message_key_seed().derive()
    }
}

impl fmt::Debug for ChainKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainKey")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// The 32-byte seed of one message's keys, kept for messages that arrive out of order.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MessageKeySeed {
    seed: Box<[u8; 32]>,
    counter: u32,
}

impl MessageKeySeed {
    /// Wraps a stored seed for message `counter`.
    #[must_use]
    pub fn new(seed: [u8; 32], counter: u32) -> Self {
        Self::from_bytes(&seed, counter)
    }

    /// Copies a seed straight into the box (the crate's own path: no stack copy).
    pub(crate) fn from_bytes(seed: &[u8; 32], counter: u32) -> Self {
        Self {
            seed: boxed(seed),
            counter,
        }
    }

    /// The seed bytes (secret).
    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The message counter it belongs to.
    #[must_use]
    pub const fn counter(&self) -> u32 {
        self.counter
    }

    /// `HKDF(no salt, seed, "WhisperMessageKeys", 80)` = cipher key || MAC key || IV.
    #[must_use]
    pub fn derive(&self) -> MessageKeys {
        let okm = derive_from_seed::<80>(&self.seed, MESSAGE_KEYS_LABEL);
        let mut keys = MessageKeys {
            cipher_key: Box::new([0u8; 32]),
            mac_key: Box::new([0u8; 32]),
            iv: [0u8; 16],
            counter: self.counter,
        };
        let (cipher_key, rest) = okm.split_at(32);
        let (mac_key, iv) = rest.split_at(32);
        keys.cipher_key.copy_from_slice(cipher_key);
        keys.mac_key.copy_from_slice(mac_key);
        keys.iv.copy_from_slice(iv);
        keys
    }
}

impl fmt::Debug for MessageKeySeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageKeySeed")
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

/// The keys of one message: AES-256 key, HMAC key and CBC IV.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MessageKeys {
    cipher_key: Box<[u8; 32]>,
    mac_key: Box<[u8; 32]>,
    iv: [u8; 16],
    counter: u32,
}

impl MessageKeys {
    /// The AES-256-CBC key.
    #[must_use]
    pub fn cipher_key(&self) -> &[u8; 32] {
        &self.cipher_key
    }

    /// The HMAC-SHA256 key for the message MAC.
    #[must_use]
    pub fn mac_key(&self) -> &[u8; 32] {
        &self.mac_key
    }

    /// The CBC initialisation vector.
    #[must_use]
    pub const fn iv(&self) -> &[u8; 16] {
        &self.iv
    }

    /// The message counter these keys belong to.
    #[must_use]
    pub const fn counter(&self) -> u32 {
        self.counter
    }
}

impl fmt::Debug for MessageKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageKeys")
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

// Secret comparisons run in constant time; indices and counters are public.
impl PartialEq for RootKey {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(self.0.as_slice(), other.0.as_slice())
    }
}

impl PartialEq for ChainKey {
    fn eq(&self, other: &Self) -> bool {
        self.index == other.index && ct_eq(self.key.as_slice(), other.key.as_slice())
    }
}

impl PartialEq for MessageKeySeed {
    fn eq(&self, other: &Self) -> bool {
        self.counter == other.counter && ct_eq(self.seed.as_slice(), other.seed.as_slice())
    }
}

impl PartialEq for MessageKeys {
    fn eq(&self, other: &Self) -> bool {
        self.counter == other.counter
            && ct_eq(self.cipher_key.as_slice(), other.cipher_key.as_slice())
            && ct_eq(self.mac_key.as_slice(), other.mac_key.as_slice())
            && ct_eq(&self.iv, &other.iv)
    }
}

impl Eq for RootKey {}
impl Eq for ChainKey {}
impl Eq for MessageKeySeed {}
impl Eq for MessageKeys {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_steps_and_overflow() {
        let chain = ChainKey::new([1; 32], 0);
        let next = chain.next().unwrap();
        assert_eq!(next.index(), 1);
        assert_ne!(next.as_bytes(), chain.as_bytes());
        assert_eq!(chain.message_keys().counter(), 0);
        assert_eq!(chain.message_key_seed().derive(), chain.message_keys());
        assert!(ChainKey::new([1; 32], u32::MAX).next().is_none());
        let mut stepped = chain.clone();
        stepped.advance().unwrap();
        assert_eq!(stepped, next);
        let mut last = ChainKey::new([1; 32], u32::MAX);
        assert!(last.advance().is_none());
        assert_eq!(last, ChainKey::new([1; 32], u32::MAX));
        let text = format!(
            "{chain:?} {:?} {:?}",
            chain.message_keys(),
            RootKey::new([1; 32])
        );
        assert!(!text.contains("0101") && !text.contains("[1"), "{text}");
    }
}
