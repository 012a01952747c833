//! Safety numbers: the 60-digit string users compare and the scannable QR payload
//! (PROTOCOL.md "Safety numbers").
//!
//! Each side's half is an iterated SHA-512 over its identity key and stable id, so the number
//! changes when either party's identity key changes.

use core::fmt;

use prost::Message;
use sha2::{Digest, Sha512};

use crate::cipher::ct_eq;
use crate::error::ErrorClass;
use crate::keys::IdentityKey;

/// Iterations Signal clients use.
pub const DEFAULT_ITERATIONS: u32 = 5200;
/// Fewest iterations accepted (libsignal rejects 0 and 1).
pub const MIN_ITERATIONS: u32 = 2;
/// Most iterations accepted, bounding the work an argument can cause.
pub const MAX_ITERATIONS: u32 = 1_000_000;
/// Version of the per-side hash input (the leading two bytes).
const HASH_VERSION: [u8; 2] = [0, 0];
/// Bytes of each side's hash used for display (six 5-byte groups).
const DISPLAY_BYTES: usize = 30;
/// Bytes of each side's hash carried in the scannable form.
const SCANNABLE_BYTES: usize = 32;

/// Why a fingerprint could not be made or compared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FingerprintError {
    /// Iterations outside `2..=1_000_000`.
    #[error("invalid fingerprint iteration count {0}")]
    InvalidIterations(u32),
    /// Only versions 1 and 2 exist.
    #[error("unsupported fingerprint version {0}")]
    UnsupportedVersion(u32),
    /// The other side's scannable fingerprint has another version.
    #[error("fingerprint version number mismatch them {theirs} us {ours}")]
    VersionMismatch {
        /// Their version.
        theirs: u32,
        /// Our version.
        ours: u32,
    },
    /// The scannable bytes are not a valid `CombinedFingerprints`.
    #[error("malformed scannable fingerprint")]
    Malformed,
}

impl FingerprintError {
    /// The stable class of this error.
    #[must_use]
    pub const fn class(&self) -> ErrorClass {
        match self {
            Self::VersionMismatch { .. } => ErrorClass::FingerprintVersionMismatch,
            Self::Malformed => ErrorClass::InvalidMessage,
            Self::InvalidIterations(_) | Self::UnsupportedVersion(_) => ErrorClass::InvalidArgument,
        }
    }
}

#[derive(Clone, PartialEq, prost::Message)]
struct LogicalFingerprintProto {
    #[prost(bytes = "vec", optional, tag = "1")]
    content: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct CombinedFingerprintsProto {
    #[prost(uint32, optional, tag = "1")]
    version: Option<u32>,
    #[prost(message, optional, tag = "2")]
    local: Option<LogicalFingerprintProto>,
    #[prost(message, optional, tag = "3")]
    remote: Option<LogicalFingerprintProto>,
}

/// One side's iterated hash:
/// `H0 = SHA-512(0x0000 || key || id || key)`, `Hi = SHA-512(H(i-1) || key)`.
fn side_hash(iterations: u32, stable_id: &[u8], key: &IdentityKey) -> [u8; 64] {
    let key = key.serialize();
    let mut hash: [u8; 64] = Sha512::new()
        .chain_update(HASH_VERSION)
        .chain_update(key)
        .chain_update(stable_id)
        .chain_update(key)
        .finalize()
        .into();
    for _ in 1..iterations {
        hash = Sha512::new()
            .chain_update(hash)
            .chain_update(key)
            .finalize()
            .into();
    }
    hash
}

/// Six groups of five digits from the first 30 bytes.
fn display_digits(hash: &[u8; 64]) -> String {
    let mut digits = String::with_capacity(DISPLAY_BYTES);
    for group in hash.chunks_exact(5).take(DISPLAY_BYTES / 5) {
        let value = group
            .iter()
            .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte));
        digits.push_str(&format!("{:05}", value % 100_000));
    }
    digits
}

fn first_32(hash: &[u8; 64]) -> [u8; SCANNABLE_BYTES] {
    let mut out = [0u8; SCANNABLE_BYTES];
    out.copy_from_slice(
        hash.get(..SCANNABLE_BYTES)
            .unwrap_or(&[0u8; SCANNABLE_BYTES]),
    );
    out
}

/// The safety number shown to users: 60 digits, the same string on both sides.
#[derive(Clone, PartialEq, Eq)]
pub struct DisplayableFingerprint {
    local: String,
    remote: String,
}

impl fmt::Display for DisplayableFingerprint {
    /// The two 30-digit halves, smaller first, so both parties see the same number.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.local <= self.remote {
            write!(f, "{}{}", self.local, self.remote)
        } else {
            write!(f, "{}{}", self.remote, self.local)
        }
    }
}

impl fmt::Debug for DisplayableFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DisplayableFingerprint({self})")
    }
}

/// The QR-code payload: `CombinedFingerprints` protobuf with each side's first 32 hash bytes.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ScannableFingerprint {
    version: u32,
    local: [u8; SCANNABLE_BYTES],
    remote: [u8; SCANNABLE_BYTES],
}

impl ScannableFingerprint {
    /// The fingerprint version (1 or 2).
    #[must_use]
    pub const fn version(&self) -> u32 {
        self.version
    }

    /// The protobuf encoding, as put in the QR code.
    #[must_use]
    pub fn serialize(&self) -> Vec<u8> {
        CombinedFingerprintsProto {
            version: Some(self.version),
            local: Some(LogicalFingerprintProto {
                content: Some(self.local.to_vec()),
            }),
            remote: Some(LogicalFingerprintProto {
                content: Some(self.remote.to_vec()),
            }),
        }
        .encode_to_vec()
    }

    /// Parses a scanned payload.
    pub fn deserialize(bytes: &[u8]) -> Result<Self, FingerprintError> {
        let proto =
            CombinedFingerprintsProto::decode(bytes).map_err(|_| FingerprintError::Malformed)?;
        let content = |side: Option<LogicalFingerprintProto>| {
            side.and_then(|side| side.content)
                .and_then(|content| <[u8; SCANNABLE_BYTES]>::try_from(content).ok())
                .ok_or(FingerprintError::Malformed)
        };
        Ok(Self {
            version: proto.version.ok_or(FingerprintError::Malformed)?,
            local: content(proto.local)?,
            remote: content(proto.remote)?,
        })
    }

    /// Compares the other party's scanned payload with ours: their local half must be our
    /// remote half and vice versa (constant time). A version mismatch is an error, not `false`,
    /// so the app can tell the user to update rather than warn of an attack.
    pub fn compare(&self, theirs: &[u8]) -> Result<bool, FingerprintError> {
        let theirs = Self::deserialize(theirs)?;
        if theirs.version != self.version {
            return Err(FingerprintError::VersionMismatch {
                theirs: theirs.version,
                ours: self.version,
            });
        }
        let local_matches = ct_eq(&self.local, &theirs.remote);
        let remote_matches = ct_eq(&self.remote, &theirs.local);
        Ok(local_matches & remote_matches)
    }
}

/// Both forms of a safety number.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Fingerprint {
    /// The 60-digit number.
    pub display: DisplayableFingerprint,
    /// The QR payload.
    pub scannable: ScannableFingerprint,
}

impl Fingerprint {
    /// Computes the safety number between us and a peer. `version` is 1 (E.164 stable ids) or 2
    /// (service-id stable ids); use [`DEFAULT_ITERATIONS`] unless interoperating with tests.
    pub fn new(
        version: u32,
        iterations: u32,
        local_stable_id: &[u8],
        local_key: &IdentityKey,
        remote_stable_id: &[u8],
        remote_key: &IdentityKey,
    ) -> Result<Self, FingerprintError> {
        if !(1..=2).contains(&version) {
            return Err(FingerprintError::UnsupportedVersion(version));
        }
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(FingerprintError::InvalidIterations(iterations));
        }
        let local = side_hash(iterations, local_stable_id, local_key);
        let remote = side_hash(iterations, remote_stable_id, remote_key);
        Ok(Self {
            display: DisplayableFingerprint {
                local: display_digits(&local),
                remote: display_digits(&remote),
            },
            scannable: ScannableFingerprint {
                version,
                local: first_32(&local),
                remote: first_32(&remote),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::PublicKey;

    fn key(byte: u8) -> IdentityKey {
        IdentityKey::new(PublicKey::from_djb_bytes([byte; 32]))
    }

    #[test]
    fn arguments_are_checked() {
        for iterations in [0, 1, MAX_ITERATIONS + 1] {
            assert_eq!(
                Fingerprint::new(2, iterations, b"a", &key(1), b"b", &key(2)).unwrap_err(),
                FingerprintError::InvalidIterations(iterations)
            );
        }
        assert_eq!(
            Fingerprint::new(3, 2, b"a", &key(1), b"b", &key(2)).unwrap_err(),
            FingerprintError::UnsupportedVersion(3)
        );
        assert_eq!(
            ScannableFingerprint::deserialize(&[0xFF]),
            Err(FingerprintError::Malformed)
        );
    }

    #[test]
    fn both_sides_agree() {
        let ours = Fingerprint::new(2, 2, b"a", &key(1), b"b", &key(2)).unwrap();
        let theirs = Fingerprint::new(2, 2, b"b", &key(2), b"a", &key(1)).unwrap();
        assert_eq!(ours.display.to_string(), theirs.display.to_string());
        assert_eq!(ours.display.to_string().len(), 60);
        assert_eq!(
            ours.scannable.compare(&theirs.scannable.serialize()),
            Ok(true)
        );
        assert_eq!(
            ours.scannable.compare(&ours.scannable.serialize()),
            Ok(false)
        );
    }
}
