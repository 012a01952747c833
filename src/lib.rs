//! SPOTS end-to-end encryption core.
//!
//! The Signal Protocol (PQXDH with Kyber1024, the Double Ratchet, XEdDSA, Sender Keys and safety
//! numbers), byte-compatible with libsignal 0.73, plus the SPOTS community crypto. The crate is
//! sans-I/O: callers inject randomness and time, and persist the state it hands back.

mod cipher;
pub mod error;
pub mod kem;
pub mod keys;
pub mod ratchet;
pub mod time;
pub mod wire;
pub mod xeddsa;

pub use error::ErrorClass;
pub use time::Timestamp;

/// The version of this core, reported by every host (WASM, native, edge functions).
pub const CORE_VERSION: &str = env!("CARGO_PKG_VERSION");
