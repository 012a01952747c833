//! The symmetric chain step shared by the Double Ratchet and Sender Keys.
//!
//! Both protocols advance a 32-byte chain key with HMAC-SHA256 and derive each message's key
//! material from a per-message seed with HKDF; only the HKDF label and output layout differ
//! ("WhisperMessageKeys", 80 bytes for DMs; "WhisperGroup", 48 bytes for groups).

use zeroize::Zeroizing;

use super::{hkdf_sha256, hmac_sha256};

/// HMAC input that derives a message key seed from a chain key.
const MESSAGE_KEY_SEED: [u8; 1] = [0x01];
/// HMAC input that derives the next chain key.
const CHAIN_KEY_SEED: [u8; 1] = [0x02];

/// The next chain key: HMAC-SHA256(chain_key, 0x02).
pub(crate) fn chain_next_key(chain_key: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    #[cfg(test)]
    work::count_chain_step();
    hmac_sha256(chain_key, &[&CHAIN_KEY_SEED])
}

/// The message key seed for the current position: HMAC-SHA256(chain_key, 0x01).
pub(crate) fn chain_seed(chain_key: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    hmac_sha256(chain_key, &[&MESSAGE_KEY_SEED])
}

/// Expands a message key seed into `N` bytes of key material: HKDF(no salt, seed, label).
pub(crate) fn derive_from_seed<const N: usize>(
    seed: &[u8; 32],
    label: &[u8],
) -> Zeroizing<[u8; N]> {
    hkdf_sha256::<N>(None, seed, label)
}

/// A per-thread count of chain steps (next-chain-key HMACs), so tests can bound the work an
/// operation does without measuring time.
#[cfg(test)]
pub(crate) mod work {
    use core::cell::Cell;

    std::thread_local! {
        static CHAIN_STEPS: Cell<u64> = const { Cell::new(0) };
    }

    pub(super) fn count_chain_step() {
        CHAIN_STEPS.with(|steps| steps.set(steps.get().saturating_add(1)));
    }

    /// Chain steps performed on this thread so far.
    pub(crate) fn chain_steps() -> u64 {
        CHAIN_STEPS.with(Cell::get)
    }
}
