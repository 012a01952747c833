//! Symmetric primitives shared by the Double Ratchet and Sender Keys: AES-256-CBC with PKCS#7,
//! HMAC-SHA256, HKDF-SHA256 and the symmetric chain step.
//!
//! Private to the crate: protocol modules wrap these in typed keys so raw byte strings never
//! cross the public API.

mod chain;

#[cfg(test)]
pub(crate) use chain::work;
pub(crate) use chain::{chain_next_key, chain_seed, derive_from_seed};

use aes::Aes256;
use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// Authentication or padding failed. Deliberately carries no detail: which check failed must
/// not be observable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CipherError;

/// AES-256-CBC encryption with PKCS#7 padding.
pub(crate) fn aes256_cbc_encrypt(key: &[u8; 32], iv: &[u8; 16], plaintext: &[u8]) -> Vec<u8> {
    cbc::Encryptor::<Aes256>::new(key.into(), iv.into()).encrypt_padded_vec::<Pkcs7>(plaintext)
}

/// AES-256-CBC decryption; fails on a length that is not a positive multiple of 16 or on bad
/// padding. Callers authenticate the ciphertext first, so this is not a padding oracle.
pub(crate) fn aes256_cbc_decrypt(
    key: &[u8; 32],
    iv: &[u8; 16],
    ciphertext: &[u8],
) -> Result<Vec<u8>, CipherError> {
    if ciphertext.is_empty() || !ciphertext.len().is_multiple_of(16) {
        return Err(CipherError);
    }
    cbc::Decryptor::<Aes256>::new(key.into(), iv.into())
        .decrypt_padded_vec::<Pkcs7>(ciphertext)
        .map_err(|_| CipherError)
}

/// SHA-256's block size: HMAC keys are padded (or first hashed) to this length.
const SHA256_BLOCK: usize = 64;
/// The longest output HKDF-SHA256 can produce (RFC 5869: 255 * HashLen).
const HKDF_SHA256_MAX_OUTPUT: usize = 255 * 32;

/// HMAC-SHA256 over the concatenation of `parts`.
///
/// The key is brought to the block size exactly as RFC 2104 (and the `hmac` crate) do —
/// zero-padded, or hashed first when longer than a block — and passed to the infallible
/// block-sized constructor, so there is no error path at all.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Zeroizing<[u8; 32]> {
    let mut block = Zeroizing::new([0u8; SHA256_BLOCK]);
    if key.len() <= SHA256_BLOCK {
        let (head, _) = block.split_at_mut(key.len());
        head.copy_from_slice(key);
    } else {
        let digest = Zeroizing::new(<[u8; 32]>::from(<Sha256 as sha2::Digest>::digest(key)));
        let (head, _) = block.split_at_mut(digest.len());
        head.copy_from_slice(digest.as_slice());
    }
    let mut mac = <HmacSha256 as KeyInit>::new((&*block).into());
    for part in parts {
        mac.update(part);
    }
    let mut out = Zeroizing::new([0u8; 32]);
    hmac::digest::FixedOutput::finalize_into(mac, (&mut *out).into());
    out
}

/// HKDF-SHA256 (RFC 5869) producing `N` bytes. `salt = None` is the all-zero salt.
///
/// `N` is checked at compile time against the RFC's limit (255 * 32 bytes), the only
/// condition under which HKDF-Expand fails: a caller asking for more does not build.
pub(crate) fn hkdf_sha256<const N: usize>(
    salt: Option<&[u8]>,
    ikm: &[u8],
    info: &[u8],
) -> Zeroizing<[u8; N]> {
    const {
        assert!(
            N <= HKDF_SHA256_MAX_OUTPUT,
            "HKDF-SHA256 output is at most 255 * 32 bytes"
        );
    }
    let mut okm = Zeroizing::new([0u8; N]);
    let expanded = hkdf::Hkdf::<Sha256>::new(salt, ikm).expand(info, okm.as_mut_slice());
    // Unreachable: `expand` fails only for outputs longer than the limit asserted above.
    debug_assert!(expanded.is_ok());
    okm
}

/// Constant-time equality for MACs and other authenticators.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cbc_round_trip_and_rejections() {
        let key = [1u8; 32];
        let iv = [2u8; 16];
        for len in [0usize, 1, 15, 16, 17, 200] {
            let plaintext = vec![0x5A; len];
            let ciphertext = aes256_cbc_encrypt(&key, &iv, &plaintext);
            assert_eq!(ciphertext.len(), (len / 16 + 1) * 16);
            assert_eq!(
                aes256_cbc_decrypt(&key, &iv, &ciphertext).unwrap(),
                plaintext
            );
        }
        assert_eq!(aes256_cbc_decrypt(&key, &iv, &[]), Err(CipherError));
        assert_eq!(aes256_cbc_decrypt(&key, &iv, &[0; 15]), Err(CipherError));
        let mut bad = aes256_cbc_encrypt(&key, &iv, b"hello");
        bad[15] ^= 0xFF;
        assert_eq!(aes256_cbc_decrypt(&key, &iv, &bad), Err(CipherError));
    }

    #[test]
    fn rfc4231_hmac_and_rfc5869_hkdf() {
        // RFC 4231 test case 2 (short key).
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex::encode(*mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // RFC 4231 test case 6 (a 131-byte key, hashed first).
        let mac = hmac_sha256(
            &[0xaa; 131],
            &[b"Test Using Larger Than Block-Size Key - Hash Key First"],
        );
        assert_eq!(
            hex::encode(*mac),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        // Keys of exactly one block and of 32 bytes agree with the `hmac` crate.
        for key in [&[0x0b; 64][..], &[0x0c; 32], &[0x0d; 65], &[]] {
            let mut reference = <HmacSha256 as KeyInit>::new_from_slice(key).unwrap();
            reference.update(b"data");
            let reference: [u8; 32] = reference.finalize().into_bytes().into();
            assert_eq!(*hmac_sha256(key, &[b"da", b"ta"]), reference);
        }
        // RFC 5869 test case 1.
        let ikm = [0x0b; 22];
        let salt: Vec<u8> = (0u8..=0x0c).collect();
        let info: Vec<u8> = (0xf0u8..=0xf9).collect();
        let okm = hkdf_sha256::<42>(Some(&salt), &ikm, &info);
        assert_eq!(
            hex::encode(*okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
        // RFC 5869 test case 3 (no salt, empty info).
        let okm = hkdf_sha256::<42>(None, &ikm, &[]);
        assert_eq!(
            hex::encode(*okm),
            "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
        );
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
