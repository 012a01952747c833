//! Known-answer self-check run by the `health` function: proves the deployed module computes
//! the same XEdDSA results as libsignal 0.73.3 (xeddsa.json, the case signing a 33-byte
//! serialized public key, i.e. a signed prekey).

use spots_signal::xeddsa;

const IDENTITY_PUBLIC_U: [u8; 32] = [
    0x49, 0xdd, 0xe2, 0x96, 0x42, 0xfb, 0xef, 0xbf, 0xd9, 0x25, 0x5c, 0xc8, 0xe7, 0xf7, 0xb5, 0x78,
    0xd7, 0xc1, 0xda, 0x0f, 0xd8, 0x06, 0xcf, 0xa4, 0x9e, 0xbb, 0x92, 0xe1, 0x56, 0x2e, 0x59, 0x4e,
];
const SIGNED_PREKEY_PUBLIC: [u8; 33] = [0x05; 33];
const SIGNATURE: [u8; 64] = [
    0xe6, 0xb0, 0xe9, 0xdb, 0x04, 0xa9, 0x4a, 0x4d, 0xee, 0x77, 0x1b, 0x13, 0x70, 0xc1, 0x67, 0x79,
    0xce, 0x9d, 0xeb, 0xd5, 0x60, 0xa9, 0x4f, 0x30, 0x46, 0xc8, 0xa6, 0x5d, 0x22, 0xfa, 0xce, 0xfb,
    0xae, 0x78, 0xb1, 0x1a, 0xe5, 0xae, 0x16, 0x0c, 0x39, 0x89, 0xcf, 0xb3, 0xcf, 0xc4, 0x2a, 0x8e,
    0x27, 0xaa, 0xc7, 0xe7, 0x5c, 0xf3, 0x4b, 0xc6, 0xd7, 0x5a, 0xc2, 0x8a, 0x20, 0xfa, 0x50, 0x84,
];

pub(crate) struct Report {
    pub(crate) checks: Vec<(&'static str, bool)>,
}

impl Report {
    pub(crate) fn ok(&self) -> bool {
        self.checks.iter().all(|(_, passed)| *passed)
    }
}

pub(crate) fn run() -> Report {
    let mut tampered_signature = SIGNATURE;
    tampered_signature[63] ^= 0x80;
    let mut other_key = SIGNED_PREKEY_PUBLIC;
    other_key[32] ^= 1;
    Report {
        checks: vec![
            (
                "xeddsa_signed_prekey_verifies",
                xeddsa::verify(&IDENTITY_PUBLIC_U, &SIGNED_PREKEY_PUBLIC, &SIGNATURE),
            ),
            (
                "xeddsa_rejects_flipped_sign_bit",
                !xeddsa::verify(
                    &IDENTITY_PUBLIC_U,
                    &SIGNED_PREKEY_PUBLIC,
                    &tampered_signature,
                ),
            ),
            (
                "xeddsa_rejects_other_prekey",
                !xeddsa::verify(&IDENTITY_PUBLIC_U, &other_key, &SIGNATURE),
            ),
        ],
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn self_check_passes_natively() {
        let report = super::run();
        assert!(report.ok(), "{:?}", report.checks);
        assert_eq!(report.checks.len(), 3);
    }
}
