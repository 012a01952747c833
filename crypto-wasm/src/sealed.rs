//! A Device's state at rest: the core's `MemoryStore` export sealed with AES-256-GCM under a
//! caller-provided 32-byte key.
//!
//! `version (1) = 0x01 || nonce (12) || ciphertext || tag (16)`, with associated data
//! `"SPOTS wasm device state" || version || agent id || 0x00 || device id (u32 BE)`: a sealed state only
//! opens as the device it was exported from, and a version this code does not know is refused.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit};
use spots_signal::Address;
use zeroize::Zeroizing;

/// The current sealed-state version.
pub(crate) const SEALED_VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const LABEL: &[u8] = b"SPOTS wasm device state";

/// Why a sealed state does not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SealError {
    /// The key is not 32 bytes.
    KeyLength,
    /// Shorter than a header and a tag.
    Truncated,
    /// Another format version.
    Version(u8),
    /// Wrong key, another device, or tampered bytes.
    Authentication,
}

fn aad(address: &Address) -> Vec<u8> {
    let mut aad = LABEL.to_vec();
    aad.push(SEALED_VERSION);
    aad.extend_from_slice(address.agent_id.as_bytes());
    aad.push(0);
    aad.extend_from_slice(&address.device_id.get().to_be_bytes());
    aad
}

fn cipher(key: &[u8]) -> Result<Aes256Gcm, SealError> {
    let key = <[u8; 32]>::try_from(key).map_err(|_| SealError::KeyLength)?;
    Ok(Aes256Gcm::new(&key.into()))
}

pub(crate) fn seal(
    key: &[u8],
    address: &Address,
    nonce: [u8; NONCE_LEN],
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    let ciphertext = cipher(key)?
        .encrypt(
            &nonce.into(),
            Payload {
                msg: plaintext,
                aad: &aad(address),
            },
        )
        .map_err(|_| SealError::Authentication)?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
    out.push(SEALED_VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

pub(crate) fn open(
    key: &[u8],
    address: &Address,
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let cipher = cipher(key)?;
    let (&version, rest) = sealed.split_first().ok_or(SealError::Truncated)?;
    if version != SEALED_VERSION {
        return Err(SealError::Version(version));
    }
    if rest.len() < NONCE_LEN + 16 {
        return Err(SealError::Truncated);
    }
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let nonce = <[u8; NONCE_LEN]>::try_from(nonce).map_err(|_| SealError::Truncated)?;
    cipher
        .decrypt(
            &nonce.into(),
            Payload {
                msg: ciphertext,
                aad: &aad(address),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| SealError::Authentication)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let alice: Address = "alice.1".parse().unwrap();
        let key = [7u8; 32];
        let sealed = seal(&key, &alice, [1; 12], b"state").unwrap();
        assert_eq!(sealed[0], SEALED_VERSION);
        assert_eq!(open(&key, &alice, &sealed).unwrap().as_slice(), b"state");
        assert_eq!(
            open(&[8u8; 32], &alice, &sealed),
            Err(SealError::Authentication)
        );
        let other: Address = "alice.2".parse().unwrap();
        assert_eq!(open(&key, &other, &sealed), Err(SealError::Authentication));
        let mut tampered = sealed.clone();
        tampered[20] ^= 1;
        assert_eq!(
            open(&key, &alice, &tampered),
            Err(SealError::Authentication)
        );
        let mut future = sealed;
        future[0] = 2;
        assert_eq!(open(&key, &alice, &future), Err(SealError::Version(2)));
        assert_eq!(open(&key[..31], &alice, &[]), Err(SealError::KeyLength));
        assert_eq!(open(&key, &alice, &[1, 2]), Err(SealError::Truncated));
    }
}
