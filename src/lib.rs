//! SPOTS end-to-end encryption core.
//!
//! The Signal Protocol (PQXDH with Kyber1024, the Double Ratchet, XEdDSA, Sender Keys and safety
//! numbers), byte-compatible with libsignal 0.73, plus the SPOTS community crypto. The crate is
//! sans-I/O: callers inject randomness and time, and persist the state it hands back.

pub mod address;
mod cipher;
pub mod community;
pub mod devices;
pub mod envelope;
pub mod error;
pub mod fingerprint;
pub mod kem;
pub mod keys;
pub mod persist;
pub mod pqxdh;
pub mod prekey_lifecycle;
pub mod ratchet;
pub mod sender_keys;
pub mod session;
pub mod store;
pub mod time;
pub mod transport;
pub mod trust;
pub mod wire;
pub mod xeddsa;

pub use address::{Address, AgentId, DeviceId};
pub use error::ErrorClass;
pub use pqxdh::{PreKeyBundle, SessionOptions};
pub use session::{
    PreKeyDecryption, PreKeyLookup, SessionError, SessionRecord, UsedPreKeys,
    decrypt_prekey_message, decrypt_signal_message, encrypt, process_prekey_bundle,
};
pub use store::{MemoryStore, ProtocolStore};
pub use time::Timestamp;
pub use transport::{DeviceTarget, SignalTransport, TransportError};

/// The version of this core, reported by every host (WASM, native, edge functions).
pub const CORE_VERSION: &str = env!("CARGO_PKG_VERSION");
