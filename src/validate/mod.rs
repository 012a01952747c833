//! What a server may check without any private key: the shape and every signature of a prekey
//! upload, the framing of Signal ciphertexts (types 2 and 3), and the shape of community
//! shares. The gateway runs these (through the WASM build) before anything reaches Postgres, so
//! malformed or forged key material and non-Signal payloads are refused at the edge.
//!
//! Every check is total (no input panics) and returns a [`ValidateError`] whose
//! [`code`](ValidateError::code) is a stable snake_case string for JSON answers.

mod message;
mod share;
mod upload;

pub use message::{MAX_SIGNAL_MESSAGE_BYTES, MessageInfo, signal_message};
pub use share::share;
pub use upload::{
    KEY_DIGEST_LABEL, MAX_BUNDLE_LIFETIME, MAX_KEY_ID, MAX_ONE_TIME_BUNDLES_PER_UPLOAD,
    MAX_REGISTRATION_ID, MAX_UPLOAD_JSON_BYTES, MIN_BUNDLE_LIFETIME, ValidatedUpload,
    long_term_key_digest, prekey_upload,
};

use crate::error::ErrorClass;
use crate::prekey_lifecycle::UploadError;
use crate::wire::DecodeError;

/// Why a server-side check refused its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidateError {
    /// The upload is malformed or a signature does not verify (see [`UploadError`]).
    #[error(transparent)]
    Upload(#[from] UploadError),
    /// More one-time bundles than one upload may carry.
    #[error("{got} one-time bundles in one upload; at most {max}")]
    TooManyOneTimeKeys {
        /// Bundles the upload expands to.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// The input is larger than allowed.
    #[error("{what} is {got} bytes; at most {max}")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// Its size.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// An id or number is outside the range the key server stores.
    #[error("`{0}` is out of range")]
    OutOfRange(&'static str),
    /// The requested expiry is in the past, too soon, or too far away.
    #[error("expiry must be between {min_secs} s and {max_secs} s from now")]
    Expiry {
        /// Shortest accepted lifetime in seconds.
        min_secs: u64,
        /// Longest accepted lifetime in seconds.
        max_secs: u64,
    },
    /// The message type is not a Signal message type the mailbox accepts (2 or 3).
    #[error("message type {0} is not a Signal message (2 or 3)")]
    NotSignalMessage(u8),
    /// The bytes are not a well-formed Signal message of the stated type.
    #[error("not a valid Signal message: {0}")]
    Malformed(#[from] DecodeError),
    /// A Signal message of a protocol version SPOTS does not send (only version 4, PQXDH).
    #[error("Signal message version {0} is not accepted (only 4)")]
    UnsupportedVersion(u8),
    /// The protobuf is not in the canonical encoding Signal implementations write (unknown
    /// fields, repeated fields or padding were added).
    #[error("Signal message protobuf is not canonical")]
    NotCanonical,
    /// The ciphertext inside a Signal message cannot be AES-256-CBC output.
    #[error("Signal message ciphertext has an impossible length {0}")]
    CiphertextLength(usize),
    /// A community share is not acceptable.
    #[error("invalid share: {0}")]
    Share(&'static str),
}

impl ValidateError {
    /// A stable machine-readable code for JSON answers.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Upload(error) => match error {
                UploadError::InvalidSignature(_) => "invalid_signature",
                UploadError::InvalidField(_) => "invalid_key",
                UploadError::DuplicateId(_) => "duplicate_id",
                UploadError::TooMany(_) => "too_many_keys",
                UploadError::UnsupportedFormat(_) => "unsupported_format",
                UploadError::Address(_) => "invalid_address",
                _ => "malformed_upload",
            },
            Self::TooManyOneTimeKeys { .. } => "too_many_keys",
            Self::TooLarge { .. } => "too_large",
            Self::OutOfRange(_) => "out_of_range",
            Self::Expiry { .. } => "invalid_expiry",
            Self::NotSignalMessage(_) => "not_signal_message",
            Self::Malformed(_) => "malformed_message",
            Self::UnsupportedVersion(_) => "unsupported_version",
            Self::NotCanonical => "not_canonical",
            Self::CiphertextLength(_) => "malformed_message",
            Self::Share(_) => "invalid_share",
        }
    }

    /// The stable class of this error.
    #[must_use]
    pub const fn class(&self) -> ErrorClass {
        match self {
            Self::Upload(error) => error.class(),
            Self::Malformed(error) => error.class(),
            Self::NotSignalMessage(_)
            | Self::NotCanonical
            | Self::CiphertextLength(_)
            | Self::Share(_) => ErrorClass::InvalidMessage,
            Self::UnsupportedVersion(_) => ErrorClass::UnrecognizedVersion,
            _ => ErrorClass::InvalidArgument,
        }
    }
}
