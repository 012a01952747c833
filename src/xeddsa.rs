//! XEdDSA: Ed25519-style signatures made and checked with X25519 (Montgomery) keys.
//!
//! Implemented from the public XEdDSA specification with the conventions libsignal uses
//! (see PROTOCOL.md "XEdDSA"): the clamped private scalar is used as is (never negated) and
//! the sign bit of the Edwards public key travels in the top bit of the signature's last byte.

use curve25519_dalek::constants::ED25519_BASEPOINT_TABLE;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::montgomery::MontgomeryPoint;
use curve25519_dalek::scalar::Scalar;
use sha2::{Digest, Sha512};
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

/// Length of an XEdDSA signature (R || S).
pub const SIGNATURE_LENGTH: usize = 64;

/// Domain separation prefix for the nonce hash: 0xFE followed by 31 bytes of 0xFF.
const NONCE_PREFIX: [u8; 32] = {
    let mut prefix = [0xFF; 32];
    prefix[0] = 0xFE;
    prefix
};

/// Signs `message` with the clamped X25519 private key `private_key`, using the 64 bytes
/// `random` as the per-signature randomness Z. Injecting Z keeps the core sans-I/O and makes
/// signatures reproducible in tests.
pub fn sign(private_key: &[u8; 32], message: &[u8], random: &[u8; 64]) -> [u8; SIGNATURE_LENGTH] {
    // `from_bytes_mod_order` takes the bytes by value: hand it a local copy and wipe that.
    let mut key_copy = *private_key;
    let mut a = Scalar::from_bytes_mod_order(key_copy);
    key_copy.zeroize();
    let public_edwards = ED25519_BASEPOINT_TABLE * &a;
    let public_compressed = public_edwards.compress();
    let sign_bit = public_compressed.as_bytes()[31] & 0x80;

    let mut nonce_hash = Sha512::new()
        .chain_update(NONCE_PREFIX)
        .chain_update(private_key)
        .chain_update(message)
        .chain_update(random)
        .finalize();
    let mut nonce_wide = [0u8; 64];
    nonce_wide.copy_from_slice(&nonce_hash);
    nonce_hash.zeroize();
    let mut r = Scalar::from_bytes_mod_order_wide(&nonce_wide);
    nonce_wide.zeroize();

    let cap_r = (ED25519_BASEPOINT_TABLE * &r).compress();
    let h = challenge(cap_r.as_bytes(), public_compressed.as_bytes(), message);
    // h * a alone would reveal the private scalar: wipe the intermediate too.
    let mut ha = h * a;
    let s = ha + r;
    ha.zeroize();
    a.zeroize();
    r.zeroize();

    let mut signature = [0u8; SIGNATURE_LENGTH];
    signature[..32].copy_from_slice(cap_r.as_bytes());
    signature[32..].copy_from_slice(s.as_bytes());
    signature[63] = (signature[63] & 0x7F) | sign_bit;
    signature
}

/// Verifies an XEdDSA `signature` of `message` against the X25519 public key `public_u`
/// (the 32-byte Montgomery u-coordinate, without the 0x05 type byte).
///
/// Returns `false` for every malformed input; it never panics.
#[must_use]
pub fn verify(public_u: &[u8; 32], message: &[u8], signature: &[u8; SIGNATURE_LENGTH]) -> bool {
    let sign_bit = (signature[63] & 0x80) >> 7;
    let Some(public_edwards) = MontgomeryPoint(*public_u).to_edwards(sign_bit) else {
        return false;
    };
    let public_compressed = public_edwards.compress();

    let mut cap_r = [0u8; 32];
    cap_r.copy_from_slice(&signature[..32]);
    let mut s_bytes = [0u8; 32];
    s_bytes.copy_from_slice(&signature[32..]);
    s_bytes[31] &= 0x7F;
    if s_bytes[31] & 0xE0 != 0 {
        return false;
    }
    let s = Scalar::from_bytes_mod_order(s_bytes);
    let h = challenge(&cap_r, public_compressed.as_bytes(), message);
    let minus_a: EdwardsPoint = -public_edwards;
    let r_check = EdwardsPoint::vartime_double_scalar_mul_basepoint(&h, &minus_a, &s);
    bool::from(
        r_check
            .compress()
            .as_bytes()
            .ct_eq(CompressedEdwardsY(cap_r).as_bytes()),
    )
}

/// h = SHA-512(R || A || M) mod l.
fn challenge(cap_r: &[u8; 32], cap_a: &[u8; 32], message: &[u8]) -> Scalar {
    let digest = Sha512::new()
        .chain_update(cap_r)
        .chain_update(cap_a)
        .chain_update(message)
        .finalize();
    let mut wide = [0u8; 64];
    wide.copy_from_slice(&digest);
    Scalar::from_bytes_mod_order_wide(&wide)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clamp(mut k: [u8; 32]) -> [u8; 32] {
        k[0] &= 248;
        k[31] &= 127;
        k[31] |= 64;
        k
    }

    #[test]
    fn sign_then_verify_round_trips_and_rejects_changes() {
        let private = clamp([7u8; 32]);
        let public = x25519_dalek::x25519(private, x25519_dalek::X25519_BASEPOINT_BYTES);
        let signature = sign(&private, b"hello", &[9u8; 64]);
        assert!(verify(&public, b"hello", &signature));
        assert!(!verify(&public, b"hellO", &signature));
        let mut flipped = signature;
        flipped[63] ^= 0x80;
        assert!(!verify(&public, b"hello", &flipped));
        let mut high_s = signature;
        high_s[63] |= 0x60;
        assert!(!verify(&public, b"hello", &high_s));
    }
}
