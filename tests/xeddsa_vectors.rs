//! XEdDSA against libsignal 0.73.3's outputs: signatures reproduced from the logged Z.
mod support;

use spots_signal::xeddsa;
use support::{hex_array, hex_field, vector};

#[test]
fn signatures_match_libsignal_byte_for_byte() {
    let file = vector("xeddsa.json");
    let cases = file["vectors"].as_array().expect("vectors array");
    assert!(!cases.is_empty());
    for case in cases {
        let private: [u8; 32] = hex_array(&case["private"]);
        let public = hex_field(&case["public"]);
        let public_u: [u8; 32] = public[1..33].try_into().expect("33-byte public key");
        let message = hex_field(&case["message"]);
        let random: [u8; 64] = hex_array(&case["random_64"]);
        let expected: [u8; 64] = hex_array(&case["signature"]);

        let signature = xeddsa::sign(&private, &message, &random);
        assert_eq!(
            hex::encode(signature),
            hex::encode(expected),
            "signature for {case}"
        );

        let verifies = case["verify"].as_bool().expect("verify flag");
        assert_eq!(xeddsa::verify(&public_u, &message, &expected), verifies);

        let mut longer = message.clone();
        longer.push(0);
        let expect_longer = case["verify_message_plus_zero_byte"]
            .as_bool()
            .expect("flag");
        assert_eq!(xeddsa::verify(&public_u, &longer, &expected), expect_longer);

        let mut flipped = expected;
        flipped[63] ^= 0x80;
        let expect_flipped = case["verify_with_sign_bit_flipped"]
            .as_bool()
            .expect("flag");
        assert_eq!(
            xeddsa::verify(&public_u, &message, &flipped),
            expect_flipped
        );
    }
}
