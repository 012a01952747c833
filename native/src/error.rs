//! Status codes, the error a call fails with, and the per-thread last error.
//!
//! Codes are grouped by tens. The 10s-40s are the core's stable [`ErrorClass`] codes (the same
//! numbers the WASM build and the gateway report); the 50s are the on-device store's, the 60s
//! the call's own. `0` is success.

use std::cell::RefCell;
use std::ffi::{CString, c_char};

use serde_json::{Value, json};
use spots_core::community::GroupError;
use spots_core::{ErrorClass, TransportError};

use crate::store::StoreError;

/// The result of every call. Values are stable: never renumber.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpotsStatus {
    /// Success.
    Ok = 0,
    /// A key failed to parse or has the wrong type or length.
    InvalidKey = 10,
    /// A signature (of a bundle's prekeys) did not verify.
    InvalidSignature = 11,
    /// A message is malformed, fails authentication or cannot be decrypted.
    InvalidMessage = 20,
    /// The message was already decrypted.
    DuplicateMessage = 21,
    /// The message uses a protocol version that is too old.
    LegacyVersion = 22,
    /// The message uses a protocol version this library does not know.
    UnrecognizedVersion = 23,
    /// A community message's epoch no longer accepts it (stamped after a hard rotation or
    /// after a soft rotation's grace window); nothing changed.
    EpochRejected = 24,
    /// A peer's identity key changed and the user has not approved it: nothing was
    /// encrypted (details name the devices).
    UntrustedIdentity = 30,
    /// No usable session with the sender.
    SessionNotFound = 31,
    /// A message names a prekey this device does not have.
    InvalidPreKeyId = 32,
    /// The peer requires a protocol this build does not allow (X3DH without Kyber).
    ProtocolNotAllowed = 33,
    /// Some target devices have no session: fetch their bundles and retry (details name
    /// them); nothing was encrypted.
    MissingSessions = 34,
    /// Community key material is missing: the community or epoch is unknown (apply its epoch
    /// rows), its share was not opened yet (fetch it), or this device has no sender chain
    /// in it.
    NoSenderKeyState = 35,
    /// Two safety-number encodings have different versions.
    FingerprintVersionMismatch = 40,
    /// An argument is out of range (address, device id, bundle JSON, ...).
    InvalidArgument = 41,
    /// Stored state is inconsistent, or the device is not ready (call ensure_ready).
    InvalidState = 42,
    /// The storage failed (I/O, disk full, busy): nothing changed; retry later.
    StoreError = 43,
    /// The store key does not open the store: nothing was read or changed.
    StoreWrongKey = 50,
    /// The file is not a SPOTS store or is damaged: nothing was changed.
    StoreCorrupt = 51,
    /// The store was written by a newer library version: nothing was changed.
    StoreTooNew = 52,
    /// The store belongs to another agent or device.
    StoreAddressMismatch = 53,
    /// A required pointer argument was NULL.
    NullPointer = 60,
    /// A string argument is not valid UTF-8.
    InvalidUtf8 = 61,
    /// A bug: the library caught a panic. The handle stays usable and the store unchanged.
    Internal = 62,
}

impl SpotsStatus {
    /// The status of a core error class.
    pub(crate) const fn from_class(class: ErrorClass) -> Self {
        match class {
            ErrorClass::InvalidKey => Self::InvalidKey,
            ErrorClass::InvalidSignature => Self::InvalidSignature,
            ErrorClass::InvalidMessage => Self::InvalidMessage,
            ErrorClass::DuplicateMessage => Self::DuplicateMessage,
            ErrorClass::LegacyVersion => Self::LegacyVersion,
            ErrorClass::UnrecognizedVersion => Self::UnrecognizedVersion,
            ErrorClass::EpochRejected => Self::EpochRejected,
            ErrorClass::UntrustedIdentity => Self::UntrustedIdentity,
            ErrorClass::SessionNotFound => Self::SessionNotFound,
            ErrorClass::InvalidPreKeyId => Self::InvalidPreKeyId,
            ErrorClass::ProtocolNotAllowed => Self::ProtocolNotAllowed,
            ErrorClass::MissingSessions => Self::MissingSessions,
            ErrorClass::NoSenderKeyState => Self::NoSenderKeyState,
            ErrorClass::FingerprintVersionMismatch => Self::FingerprintVersionMismatch,
            ErrorClass::InvalidArgument => Self::InvalidArgument,
            ErrorClass::InvalidState => Self::InvalidState,
            ErrorClass::StoreError => Self::StoreError,
            _ => Self::Internal,
        }
    }

    /// The status of a store error.
    pub(crate) const fn from_store(error: &StoreError) -> Self {
        match error {
            StoreError::WrongKey => Self::StoreWrongKey,
            StoreError::Corrupt(_) | StoreError::CorruptRecord(_) => Self::StoreCorrupt,
            StoreError::TooNew { .. } => Self::StoreTooNew,
            StoreError::AddressMismatch { .. } => Self::StoreAddressMismatch,
            _ => Self::StoreError,
        }
    }
}

/// A failed call: its status, a message for logs, and machine-readable details.
#[derive(Debug)]
pub(crate) struct FfiError {
    pub(crate) status: SpotsStatus,
    pub(crate) message: String,
    pub(crate) details: Option<Value>,
}

impl FfiError {
    pub(crate) fn new(status: SpotsStatus, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            details: None,
        }
    }

    pub(crate) fn argument(message: impl Into<String>) -> Self {
        Self::new(SpotsStatus::InvalidArgument, message)
    }
}

impl From<StoreError> for FfiError {
    fn from(error: StoreError) -> Self {
        Self::new(SpotsStatus::from_store(&error), error.to_string())
    }
}

impl From<spots_core::address::AddressError> for FfiError {
    fn from(error: spots_core::address::AddressError) -> Self {
        Self::new(SpotsStatus::from_class(error.class()), error.to_string())
    }
}

impl From<TransportError<StoreError>> for FfiError {
    fn from(error: TransportError<StoreError>) -> Self {
        let message = error.to_string();
        match error {
            TransportError::Store(store) => Self::new(SpotsStatus::from_store(&store), message),
            TransportError::MissingSessions {
                ref addresses,
                ref unknown_agents,
            } => Self {
                status: SpotsStatus::from_class(error.class()),
                details: Some(json!({
                    "addresses": addresses.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "unknown_agents": unknown_agents.iter().map(ToString::to_string).collect::<Vec<_>>(),
                })),
                message,
            },
            TransportError::UntrustedIdentity { ref addresses } => Self {
                status: SpotsStatus::from_class(error.class()),
                details: Some(json!({
                    "addresses": addresses.iter().map(ToString::to_string).collect::<Vec<_>>(),
                })),
                message,
            },
            other => Self::new(SpotsStatus::from_class(other.class()), message),
        }
    }
}

impl From<GroupError<StoreError>> for FfiError {
    fn from(error: GroupError<StoreError>) -> Self {
        match error {
            // Missing sessions and untrusted identities keep their details.
            GroupError::Transport(transport) => transport.into(),
            other => Self::new(SpotsStatus::from_class(other.class()), other.to_string()),
        }
    }
}

struct LastError {
    message: CString,
    details: CString,
}

thread_local! {
    static LAST_ERROR: RefCell<Option<LastError>> = const { RefCell::new(None) };
}

/// Forgets the calling thread's last error (every call starts with this).
pub(crate) fn clear_last_error() {
    // `try_with` fails only while the thread is being torn down.
    let _ = LAST_ERROR.try_with(|last| last.borrow_mut().take());
}

/// Records `error` as the calling thread's last error.
pub(crate) fn set_last_error(error: &FfiError) {
    let clean = |text: String| CString::new(text.replace('\0', " ")).unwrap_or_default();
    let details = json!({
        "status": error.status as i32,
        "message": error.message,
        "details": error.details,
    });
    let entry = LastError {
        message: clean(error.message.clone()),
        details: clean(details.to_string()),
    };
    let _ = LAST_ERROR.try_with(|last| *last.borrow_mut() = Some(entry));
}

fn last_error_ptr(pick: fn(&LastError) -> *const c_char) -> *const c_char {
    LAST_ERROR
        .try_with(|last| last.borrow().as_ref().map_or(core::ptr::null(), pick))
        .unwrap_or(core::ptr::null())
}

/// The message of the last failed call on this thread, or NULL if the last call succeeded.
/// The string belongs to the library and stays valid until the thread's next `spots_*` call
/// (other than `spots_last_error_*` and `spots_buffer_free`).
#[unsafe(no_mangle)]
pub extern "C" fn spots_last_error_message() -> *const c_char {
    last_error_ptr(|last| last.message.as_ptr())
}

/// The last failed call on this thread as JSON, or NULL if it succeeded:
/// `{"status": 34, "message": "...", "details": {"addresses": ["bob.2"], "unknown_agents": []}}`.
/// `details` is null except for `MISSING_SESSIONS` (addresses and unknown_agents) and
/// `UNTRUSTED_IDENTITY` (addresses). Same lifetime as [`spots_last_error_message`].
#[unsafe(no_mangle)]
pub extern "C" fn spots_last_error_json() -> *const c_char {
    last_error_ptr(|last| last.details.as_ptr())
}
