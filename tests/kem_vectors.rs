//! Kyber1024 (libsignal key type 0x08) against libsignal 0.73.3's outputs.
// Test code: panicking on unexpected vector contents is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use spots_signal::kem::{self, Ciphertext, KemError, KeyPair, SecretKey};
use support::{ReplayRng, hex_array, hex_field, vector};

#[test]
fn keygen_encapsulation_and_decapsulation_match_byte_for_byte() {
    let file = vector("kem_kyber1024.json");
    let randomness: [u8; 64] = hex_array(&file["keygen_randomness_64"]);

    // Draw the 64 bytes as 64 next_u32 calls whose high bytes are noise: only the low byte of
    // each may be used (rand 0.9's `random::<[u8; 64]>()`).
    let words: Vec<u32> = randomness
        .iter()
        .map(|b| 0xA5C3_0000 | u32::from(*b) | 0x100)
        .collect();
    let mut rng = ReplayRng::empty();
    rng.push_words(&words);
    let pair = KeyPair::generate(&mut rng);
    rng.assert_exhausted();
    assert_eq!(pair, KeyPair::from_randomness(&randomness));

    let public = pair.public_key().serialize();
    assert_eq!(
        public.len() as u64,
        file["public_key_len"].as_u64().unwrap()
    );
    assert_eq!(hex::encode(&public), file["public_key"]);
    let secret = pair.secret_key().serialize();
    assert_eq!(
        secret.len() as u64,
        file["secret_key_len"].as_u64().unwrap()
    );
    assert_eq!(hex::encode(&*secret), file["secret_key"]);

    let encaps: [u8; 32] = hex_array(&file["encapsulation_randomness_32"]);
    let words: Vec<u32> = encaps.iter().map(|b| 0x7F00_0000 | u32::from(*b)).collect();
    let mut rng = ReplayRng::empty();
    rng.push_words(&words);
    let (shared, ciphertext) = pair.public_key().encapsulate(&mut rng);
    rng.assert_exhausted();
    assert_eq!(hex::encode(ciphertext.serialize()), file["ciphertext"]);
    assert_eq!(
        ciphertext.serialize().len() as u64,
        file["ciphertext_len"].as_u64().unwrap()
    );
    assert_eq!(hex::encode(*shared), file["shared_secret"]);

    let parsed_secret = SecretKey::deserialize(&hex_field(&file["secret_key"])).unwrap();
    let parsed_ct = Ciphertext::deserialize(&hex_field(&file["ciphertext"])).unwrap();
    assert_eq!(
        hex::encode(*parsed_secret.decapsulate(&parsed_ct)),
        file["shared_secret"]
    );

    // Implicit rejection: a corrupted ciphertext decapsulates to libsignal's pseudo-random secret.
    let flipped = &file["decapsulate_ciphertext_with_byte_100_flipped"];
    let flipped_ct = Ciphertext::deserialize(&hex_field(&flipped["ciphertext"])).unwrap();
    let original = hex_field(&file["ciphertext"]);
    let differing: Vec<usize> = (0..original.len())
        .filter(|&i| original[i] != flipped_ct.serialize()[i])
        .collect();
    assert_eq!(differing, vec![100]);
    assert_eq!(
        hex::encode(*parsed_secret.decapsulate(&flipped_ct)),
        flipped["shared_secret"]
    );
}

#[test]
fn reserved_and_unknown_types_are_refused() {
    let file = vector("kem_kyber1024.json");
    let mut mlkem = hex_field(&file["public_key"]);
    mlkem[0] = kem::MLKEM1024_TYPE;
    assert_eq!(
        kem::PublicKey::deserialize(&mlkem).unwrap_err(),
        KemError::UnsupportedKeyType(0x0A)
    );
    let mut unknown = hex_field(&file["public_key"]);
    unknown[0] = 0x07;
    assert_eq!(
        kem::PublicKey::deserialize(&unknown).unwrap_err(),
        KemError::BadKeyType(7)
    );
    let mut truncated = hex_field(&file["public_key"]);
    truncated.pop();
    assert_eq!(
        kem::PublicKey::deserialize(&truncated).unwrap_err(),
        KemError::BadLength {
            expected: 1569,
            got: 1568
        }
    );
}
