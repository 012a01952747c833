//! The store's cryptography: subkeys derived from the app's store key, keyed row ids and the
//! AEAD sealing every value.
//!
//! - The app keeps one 32-byte store key (Keychain / Keystore). Each database has a random
//!   32-byte salt in its `meta` table; HKDF-SHA256(salt, store key) yields two subkeys, one for
//!   AES-256-GCM and one for row ids, so the same app key never yields the same subkeys for two
//!   files.
//! - A row id is HMAC-SHA256(row subkey, kind || logical key): an address or agent id never
//!   appears in the file, and equal logical keys map to equal rows.
//! - A value is `ROW_FORMAT || nonce(12) || AES-256-GCM(plaintext)` with a random nonce and the
//!   associated data `"spots-store-row" || ROW_FORMAT || kind || row id`, so a value moved to
//!   another row, another kind, or re-labelled with another format fails authentication.

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::Kind;

/// The encryption format of a stored value (its first byte, also bound in the AAD).
pub(crate) const ROW_FORMAT: u8 = 1;
const NONCE_LEN: usize = 12;
/// Length of the per-database salt.
pub(crate) const SALT_LEN: usize = 32;
const ROW_AAD_LABEL: &[u8] = b"spots-store-row";
const KEY_CHECK_AAD: &[u8] = b"spots-store-key-check";
const KEY_CHECK_PLAINTEXT: &[u8] = b"spots-store key check v1";

/// A value failed authentication or is malformed (wrong key, damage, or a moved row). Carries
/// no detail on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SealError;

/// The subkeys of one open database. Wiped on drop; `Debug` prints nothing secret.
pub(crate) struct StoreKeys {
    aead: Zeroizing<[u8; 32]>,
    row_id: Zeroizing<[u8; 32]>,
}

impl core::fmt::Debug for StoreKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StoreKeys").finish_non_exhaustive()
    }
}

impl StoreKeys {
    /// Derives the subkeys of a database with `salt` from the app's store key.
    pub(crate) fn derive(store_key: &[u8; 32], salt: &[u8]) -> Self {
        let hkdf = hkdf::Hkdf::<Sha256>::new(Some(salt), store_key);
        let mut aead = Zeroizing::new([0u8; 32]);
        let mut row_id = Zeroizing::new([0u8; 32]);
        // 32-byte outputs are far below HKDF's limit (255 * 32), so expand cannot fail.
        let _ = hkdf.expand(b"spots-store v1 aead", aead.as_mut_slice());
        let _ = hkdf.expand(b"spots-store v1 row-id", row_id.as_mut_slice());
        Self { aead, row_id }
    }

    /// The row id of a logical key of `kind`.
    pub(crate) fn row_id(&self, kind: Kind, logical: &[u8]) -> [u8; 32] {
        // HMAC takes keys of any length: this cannot fail.
        let Ok(mut mac) = <Hmac<Sha256>>::new_from_slice(self.row_id.as_slice()) else {
            return [0u8; 32];
        };
        mac.update(&[kind as u8]);
        mac.update(logical);
        mac.finalize().into_bytes().into()
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new((&*self.aead).into())
    }

    /// Seals a row value.
    pub(crate) fn seal_row(
        &self,
        kind: Kind,
        row_id: &[u8; 32],
        plaintext: &[u8],
        nonce: [u8; NONCE_LEN],
    ) -> Vec<u8> {
        let aad = row_aad(kind, row_id);
        self.seal(&aad, plaintext, nonce)
    }

    /// Opens a row value sealed by [`StoreKeys::seal_row`] for the same kind and row id.
    pub(crate) fn open_row(
        &self,
        kind: Kind,
        row_id: &[u8; 32],
        value: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        self.open(&row_aad(kind, row_id), value)
    }

    /// The key-check value written when a database is created.
    pub(crate) fn key_check(&self, nonce: [u8; NONCE_LEN]) -> Vec<u8> {
        self.seal(KEY_CHECK_AAD, KEY_CHECK_PLAINTEXT, nonce)
    }

    /// Whether `value` is this key's key-check value.
    pub(crate) fn verify_key_check(&self, value: &[u8]) -> bool {
        matches!(self.open(KEY_CHECK_AAD, value), Ok(plain) if plain.as_slice() == KEY_CHECK_PLAINTEXT)
    }

    fn seal(&self, aad: &[u8], plaintext: &[u8], nonce: [u8; NONCE_LEN]) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + 16);
        out.push(ROW_FORMAT);
        out.extend_from_slice(&nonce);
        // AES-GCM only fails for inputs near 64 GiB; a stored record is kilobytes.
        if let Ok(ciphertext) = self.cipher().encrypt(
            (&nonce).into(),
            Payload {
                msg: plaintext,
                aad,
            },
        ) {
            out.extend_from_slice(&ciphertext);
        }
        out
    }

    fn open(&self, aad: &[u8], value: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let [format, rest @ ..] = value else {
            return Err(SealError);
        };
        if *format != ROW_FORMAT || rest.len() < NONCE_LEN + 16 {
            return Err(SealError);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SealError)?;
        self.cipher()
            .decrypt(
                (&nonce).into(),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SealError)
    }
}

fn row_aad(kind: Kind, row_id: &[u8; 32]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(ROW_AAD_LABEL.len() + 2 + row_id.len());
    aad.extend_from_slice(ROW_AAD_LABEL);
    aad.push(ROW_FORMAT);
    aad.push(kind as u8);
    aad.extend_from_slice(row_id);
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_bound_to_kind_row_and_key() {
        let keys = StoreKeys::derive(&[7; 32], &[1; SALT_LEN]);
        let row = keys.row_id(Kind::Session, b"bob.1");
        assert_ne!(row, keys.row_id(Kind::Trust, b"bob.1"));
        assert_ne!(row, keys.row_id(Kind::Session, b"bob.2"));
        let sealed = keys.seal_row(Kind::Session, &row, b"secret", [3; 12]);
        assert_eq!(
            keys.open_row(Kind::Session, &row, &sealed)
                .unwrap()
                .as_slice(),
            b"secret"
        );
        let other_row = keys.row_id(Kind::Session, b"carol.1");
        assert_eq!(
            keys.open_row(Kind::Session, &other_row, &sealed),
            Err(SealError)
        );
        assert_eq!(keys.open_row(Kind::Trust, &row, &sealed), Err(SealError));
        let other_salt = StoreKeys::derive(&[7; 32], &[2; SALT_LEN]);
        assert_eq!(
            other_salt.open_row(Kind::Session, &row, &sealed),
            Err(SealError)
        );
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(keys.open_row(Kind::Session, &row, &flipped), Err(SealError));
        assert_eq!(
            keys.open_row(Kind::Session, &row, &sealed[..20]),
            Err(SealError)
        );
        let check = keys.key_check([9; 12]);
        assert!(keys.verify_key_check(&check));
        assert!(!StoreKeys::derive(&[8; 32], &[1; SALT_LEN]).verify_key_check(&check));
    }
}
