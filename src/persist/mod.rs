//! Versioned binary encodings of the state a host persists: session records, the identity key
//! pair, prekey records, the facade's records (local identity, trust, device lists, prekey
//! bookkeeping), whole [`crate::store::MemoryStore`] exports, sender key records and community
//! states.
//!
//! Every encoding is `FORMAT_VERSION || kind || protobuf`. The explicit version byte lets a
//! future release migrate old blobs instead of misreading them; the kind byte stops a blob of
//! one type from being loaded as another. Decoding is strict (required fields, lengths, the
//! protocol limits) and reports a typed [`PersistError`]. Encodings contain secrets: they are
//! returned in [`Zeroizing`] buffers and must be encrypted at rest by the host.
//!
//! Hostile input is bounded before it is decoded: an encoding longer than its kind's
//! [`RecordKind::max_encoded_len`] is refused ([`PersistError::TooLarge`]), and the count limits
//! of repeated fields (archived sessions, receiving chains, skipped keys, retired prekeys, the
//! entries of a store export) are checked by a pass over the protobuf keys that allocates
//! nothing ([`PersistError::TooMany`]) before the full decode materialises any entry.

mod community;
mod keys;
mod local;
mod prescan;
mod proto;
mod sender_key;
mod session;
mod store;

pub(crate) use store::{export_store, import_store};

use zeroize::Zeroizing;

use crate::error::ErrorClass;
use crate::kem::KemError;
use crate::keys::KeyError;

/// The current encoding version (the first byte of every encoding).
pub const FORMAT_VERSION: u8 = 1;

/// What an encoding holds (its second byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum RecordKind {
    /// A [`crate::SessionRecord`].
    Session = 1,
    /// A [`crate::keys::IdentityKeyPair`].
    IdentityKeyPair = 2,
    /// A [`crate::keys::PreKeyRecord`].
    PreKey = 3,
    /// A [`crate::keys::SignedPreKeyRecord`].
    SignedPreKey = 4,
    /// A [`crate::keys::KyberPreKeyRecord`].
    KyberPreKey = 5,
    /// A [`crate::store::LocalIdentity`].
    LocalIdentity = 6,
    /// A [`crate::trust::TrustRecord`].
    Trust = 7,
    /// A [`crate::devices::DeviceList`].
    DeviceList = 8,
    /// A [`crate::prekey_lifecycle::PreKeyState`].
    PreKeyState = 9,
    /// A whole [`crate::store::MemoryStore`].
    Store = 10,
    /// A [`crate::sender_keys::SenderKeyRecord`].
    SenderKey = 11,
    /// A [`crate::community::CommunityState`].
    Community = 12,
}

impl RecordKind {
    /// The longest encoding of this kind that is decoded; anything longer is refused with
    /// [`PersistError::TooLarge`] before decoding.
    ///
    /// - [`RecordKind::Session`]: 2 MiB. The limits of a record (41 sessions, 5 receiving
    ///   chains each, [`crate::session::MAX_RECORD_SKIPPED_KEYS`] stored keys in all) keep its
    ///   encoding under 1 MiB; records written by earlier releases, which had no record-wide
    ///   cap on stored keys, may be larger and are refused.
    /// - [`RecordKind::Store`]: no limit of its own (a container of records, each checked
    ///   against its kind's limit, with at most [`MAX_STORE_ENTRIES`] entries per list).
    /// - Every other kind: 64 KiB, far above its largest encoding (a Kyber prekey, about
    ///   5 KB; the prekey bookkeeping with 2 × 1,000 retired keys, about 30 KB).
    #[must_use]
    pub const fn max_encoded_len(self) -> usize {
        match self {
            Self::Session => MAX_SESSION_RECORD_LEN,
            Self::Store => usize::MAX,
            Self::SenderKey => MAX_SENDER_KEY_RECORD_LEN,
            Self::Community => MAX_COMMUNITY_RECORD_LEN,
            Self::IdentityKeyPair
            | Self::PreKey
            | Self::SignedPreKey
            | Self::KyberPreKey
            | Self::LocalIdentity
            | Self::Trust
            | Self::DeviceList
            | Self::PreKeyState => MAX_SMALL_RECORD_LEN,
        }
    }
}

/// Longest session record encoding decoded (see [`RecordKind::max_encoded_len`]).
pub const MAX_SESSION_RECORD_LEN: usize = 2 * 1024 * 1024;
/// Longest sender-key record decoded: 5 states at the configurable ceiling of stored keys
/// (65,536 each, about 40 bytes apiece) stay under it.
pub const MAX_SENDER_KEY_RECORD_LEN: usize = 16 * 1024 * 1024;
/// Longest community state decoded: 32 epochs and 256 pending repairs with 128-byte agent ids
/// encode to under 64 KiB.
pub const MAX_COMMUNITY_RECORD_LEN: usize = 256 * 1024;
/// Longest encoding decoded for the small record kinds (see [`RecordKind::max_encoded_len`]).
pub const MAX_SMALL_RECORD_LEN: usize = 64 * 1024;
pub use store::MAX_STORE_ENTRIES;

/// Why stored bytes could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PersistError {
    /// The input is shorter than the two header bytes.
    #[error("record encoding is truncated")]
    Truncated,
    /// Written by a format version this release cannot read.
    #[error("unsupported record format version {0}")]
    UnsupportedVersion(u8),
    /// The encoding holds a different kind of record.
    #[error("record kind {got} where {expected} was expected")]
    WrongKind {
        /// The kind asked for.
        expected: u8,
        /// The kind found.
        got: u8,
    },
    /// The protobuf body does not decode.
    #[error("invalid record protobuf")]
    Protobuf,
    /// A required field is absent.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A field has an invalid value or length.
    #[error("invalid field `{0}`")]
    InvalidField(&'static str),
    /// A key field does not parse or does not match its pair.
    #[error("invalid key in `{field}`: {source}")]
    InvalidKey {
        /// Field name.
        field: &'static str,
        /// What was wrong with it.
        source: KeyError,
    },
    /// A KEM field does not parse or does not match its pair.
    #[error("invalid KEM data in `{field}`: {source}")]
    InvalidKem {
        /// Field name.
        field: &'static str,
        /// What was wrong with it.
        source: KemError,
    },
    /// The encoding is longer than its kind allows ([`RecordKind::max_encoded_len`]).
    #[error("record encoding of {got} bytes, at most {max} allowed")]
    TooLarge {
        /// The limit.
        max: usize,
        /// The length found.
        got: usize,
    },
    /// A list is longer than the protocol ever produces.
    #[error("`{field}` has {got} entries, at most {max} allowed")]
    TooMany {
        /// Field name.
        field: &'static str,
        /// The limit.
        max: usize,
        /// The count found.
        got: usize,
    },
}

impl PersistError {
    /// The stable class of this error.
    #[must_use]
    pub const fn class(&self) -> ErrorClass {
        ErrorClass::InvalidState
    }
}

/// Types the host persists, with a versioned binary encoding.
pub trait Persist: Sized {
    /// The record kind written into the header.
    const KIND: RecordKind;

    /// Encodes the value (`FORMAT_VERSION || kind || protobuf`). Contains secrets.
    fn to_record_bytes(&self) -> Zeroizing<Vec<u8>>;

    /// Decodes bytes written by [`Persist::to_record_bytes`].
    fn from_record_bytes(bytes: &[u8]) -> Result<Self, PersistError>;
}

/// Prepends the header to an encoded body.
fn frame(kind: RecordKind, body: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(body.len() + 2));
    out.push(FORMAT_VERSION);
    out.push(kind as u8);
    out.extend_from_slice(body);
    out
}

/// Checks the header and the length, and returns the body.
fn unframe(kind: RecordKind, bytes: &[u8]) -> Result<&[u8], PersistError> {
    let [version, found, body @ ..] = bytes else {
        return Err(PersistError::Truncated);
    };
    if *version != FORMAT_VERSION {
        return Err(PersistError::UnsupportedVersion(*version));
    }
    if *found != kind as u8 {
        return Err(PersistError::WrongKind {
            expected: kind as u8,
            got: *found,
        });
    }
    let max = kind.max_encoded_len();
    if bytes.len() > max {
        return Err(PersistError::TooLarge {
            max,
            got: bytes.len(),
        });
    }
    Ok(body)
}

/// A required bytes field of exactly `N` bytes.
fn fixed<const N: usize>(
    field: &'static str,
    value: Option<&[u8]>,
) -> Result<[u8; N], PersistError> {
    let value = value.ok_or(PersistError::MissingField(field))?;
    <[u8; N]>::try_from(value).map_err(|_| PersistError::InvalidField(field))
}

/// A required field.
fn required<T>(field: &'static str, value: Option<T>) -> Result<T, PersistError> {
    value.ok_or(PersistError::MissingField(field))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_checks() {
        assert_eq!(
            unframe(RecordKind::Session, &[]),
            Err(PersistError::Truncated)
        );
        assert_eq!(
            unframe(RecordKind::Session, &[1]),
            Err(PersistError::Truncated)
        );
        assert_eq!(
            unframe(RecordKind::Session, &[2, 1]),
            Err(PersistError::UnsupportedVersion(2))
        );
        assert_eq!(
            unframe(RecordKind::Session, &[1, 3, 0]),
            Err(PersistError::WrongKind {
                expected: 1,
                got: 3
            })
        );
        assert_eq!(unframe(RecordKind::Session, &[1, 1, 9]), Ok(&[9u8][..]));
        let mut long = vec![1u8; MAX_SMALL_RECORD_LEN + 1];
        long[1] = RecordKind::Trust as u8;
        assert_eq!(
            unframe(RecordKind::Trust, &long),
            Err(PersistError::TooLarge {
                max: MAX_SMALL_RECORD_LEN,
                got: MAX_SMALL_RECORD_LEN + 1
            })
        );
        assert_eq!(*frame(RecordKind::PreKey, &[7]), vec![1, 3, 7]);
    }
}
