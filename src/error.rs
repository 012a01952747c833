//! Stable error classes shared by every module's error enum.
//!
//! Each module has its own `thiserror` enum carrying typed data; hosts (FFI, WASM, the gateway)
//! should not match on those directly but on the coarse, stable [`ErrorClass`] every error maps
//! to, which is also how libsignal's error strings in the reference vectors are compared.

/// A coarse, stable classification of a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorClass {
    /// A key failed to parse, has the wrong type or length, or an agreement was non-contributory.
    InvalidKey,
    /// A signature (prekey bundle, sender key message) did not verify.
    InvalidSignature,
    /// A message is malformed, fails authentication or cannot be decrypted.
    InvalidMessage,
    /// A message was already decrypted (its key is gone).
    DuplicateMessage,
    /// A community message's epoch no longer accepts it (rotation rules).
    EpochRejected,
    /// A message uses a protocol version older than this implementation supports.
    LegacyVersion,
    /// A message uses a protocol version newer than this implementation knows.
    UnrecognizedVersion,
    /// The remote identity is not the one the caller trusts for this session.
    UntrustedIdentity,
    /// There is no usable session (none, or an unacknowledged one that expired).
    SessionNotFound,
    /// A group message comes from a sender chain the local device does not hold (request the
    /// sender's seed instead of failing permanently).
    NoSenderKeyState,
    /// A message names a prekey the local device does not have.
    InvalidPreKeyId,
    /// The peer requires a protocol this configuration does not allow (e.g. X3DH without Kyber).
    ProtocolNotAllowed,
    /// Two safety-number encodings have different versions.
    FingerprintVersionMismatch,
    /// A caller-supplied argument is out of range.
    InvalidArgument,
    /// Stored state is inconsistent or cannot be decoded.
    InvalidState,
    /// Some target devices have no usable session: the host must fetch their bundles.
    MissingSessions,
    /// The storage backend failed; the operation changed nothing.
    StoreError,
}

impl ErrorClass {
    /// A stable numeric code for boundaries that cannot carry enums (C ABI, JSON), grouped by
    /// tens: 10s keys/signatures, 20s messages, 30s sessions, 40s other.
    #[must_use]
    pub const fn code(self) -> u16 {
        match self {
            Self::InvalidKey => 10,
            Self::InvalidSignature => 11,
            Self::InvalidMessage => 20,
            Self::DuplicateMessage => 21,
            Self::LegacyVersion => 22,
            Self::UnrecognizedVersion => 23,
            Self::EpochRejected => 24,
            Self::UntrustedIdentity => 30,
            Self::SessionNotFound => 31,
            Self::InvalidPreKeyId => 32,
            Self::ProtocolNotAllowed => 33,
            Self::MissingSessions => 34,
            Self::NoSenderKeyState => 35,
            Self::FingerprintVersionMismatch => 40,
            Self::InvalidArgument => 41,
            Self::InvalidState => 42,
            Self::StoreError => 43,
        }
    }
}
