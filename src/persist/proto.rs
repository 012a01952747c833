//! Protobuf structures of the storage encodings. Tags are append-only: a field that is retired
//! keeps its number reserved so old records never get misread.

use zeroize::{Zeroize, ZeroizeOnDrop};

/// `Debug` printing only the type name, for the protobuf structures that hold secrets (their
/// derived `Debug` is switched off with `#[prost(skip_debug)]`).
macro_rules! redacted_debug {
    ($($name:ident),+ $(,)?) => {$(
        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(concat!(stringify!($name), " { <redacted> }"))
            }
        }
    )+};
}
pub(super) use redacted_debug;

redacted_debug!(
    RecordProto,
    SessionProto,
    SenderChainProto,
    ReceiverChainProto,
    SkippedKeyProto,
    PendingPreKeyProto,
    PreKeyProto,
    SignedPreKeyProto,
    KyberPreKeyProto,
    SenderKeyRecordProto,
    SenderKeyStateProto,
);

#[derive(Clone, PartialEq, prost::Message, Zeroize, ZeroizeOnDrop)]
#[prost(skip_debug)]
pub(super) struct RecordProto {
    #[prost(message, optional, tag = "1")]
    pub(super) current: Option<SessionProto>,
    #[prost(message, repeated, tag = "2")]
    pub(super) previous: Vec<SessionProto>,
}

#[derive(Clone, PartialEq, prost::Message, Zeroize, ZeroizeOnDrop)]
#[prost(skip_debug)]
pub(super) struct SessionProto {
    #[prost(uint32, optional, tag = "1")]
    pub(super) version: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub(super) local_identity: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub(super) remote_identity: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "4")]
    pub(super) local_registration_id: Option<u32>,
    #[prost(uint32, optional, tag = "5")]
    pub(super) remote_registration_id: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "6")]
    pub(super) alice_base_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "7")]
    pub(super) root_key: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "8")]
    pub(super) previous_counter: Option<u32>,
    #[prost(message, optional, tag = "9")]
    pub(super) sender_chain: Option<SenderChainProto>,
    #[prost(message, repeated, tag = "10")]
    pub(super) receiver_chains: Vec<ReceiverChainProto>,
    #[prost(message, optional, tag = "11")]
    pub(super) pending_pre_key: Option<PendingPreKeyProto>,
}

#[derive(Clone, PartialEq, prost::Message, Zeroize, ZeroizeOnDrop)]
#[prost(skip_debug)]
pub(super) struct SenderChainProto {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub(super) ratchet_public: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub(super) ratchet_private: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub(super) chain_key: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "4")]
    pub(super) index: Option<u32>,
}

#[derive(Clone, PartialEq, prost::Message, Zeroize, ZeroizeOnDrop)]
#[prost(skip_debug)]
pub(super) struct ReceiverChainProto {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub(super) ratchet_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub(super) chain_key: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "3")]
    pub(super) index: Option<u32>,
    /// Newest first.
    #[prost(message, repeated, tag = "4")]
    pub(super) skipped: Vec<SkippedKeyProto>,
}

#[derive(Clone, PartialEq, prost::Message, Zeroize, ZeroizeOnDrop)]
#[prost(skip_debug)]
pub(super) struct SkippedKeyProto {
    #[prost(uint32, optional, tag = "1")]
    pub(super) counter: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub(super) seed: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message, Zeroize, ZeroizeOnDrop)]
#[prost(skip_debug)]
pub(super) struct PendingPreKeyProto {
    #[prost(uint32, optional, tag = "1")]
    pub(super) pre_key_id: Option<u32>,
    #[prost(uint32, optional, tag = "2")]
    pub(super) signed_pre_key_id: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub(super) base_key: Option<Vec<u8>>,
    #[prost(uint64, optional, tag = "4")]
    pub(super) timestamp_ms: Option<u64>,
    #[prost(uint32, optional, tag = "5")]
    pub(super) kyber_pre_key_id: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "6")]
    pub(super) kyber_ciphertext: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message, Zeroize, ZeroizeOnDrop)]
#[prost(skip_debug)]
pub(super) struct PreKeyProto {
    #[prost(uint32, optional, tag = "1")]
    pub(super) id: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub(super) public_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub(super) private_key: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message, Zeroize, ZeroizeOnDrop)]
#[prost(skip_debug)]
pub(super) struct SignedPreKeyProto {
    #[prost(uint32, optional, tag = "1")]
    pub(super) id: Option<u32>,
    #[prost(uint64, optional, tag = "2")]
    pub(super) timestamp_ms: Option<u64>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub(super) public_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub(super) private_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "5")]
    pub(super) signature: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message, Zeroize, ZeroizeOnDrop)]
#[prost(skip_debug)]
pub(super) struct KyberPreKeyProto {
    #[prost(uint32, optional, tag = "1")]
    pub(super) id: Option<u32>,
    #[prost(uint64, optional, tag = "2")]
    pub(super) timestamp_ms: Option<u64>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub(super) public_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub(super) secret_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "5")]
    pub(super) signature: Option<Vec<u8>>,
    #[prost(bool, optional, tag = "6")]
    pub(super) last_resort: Option<bool>,
}

#[derive(Clone, PartialEq, prost::Message, Zeroize, ZeroizeOnDrop)]
#[prost(skip_debug)]
pub(super) struct SenderKeyRecordProto {
    /// Newest first.
    #[prost(message, repeated, tag = "1")]
    pub(super) states: Vec<SenderKeyStateProto>,
}

#[derive(Clone, PartialEq, prost::Message, Zeroize, ZeroizeOnDrop)]
#[prost(skip_debug)]
pub(super) struct SenderKeyStateProto {
    #[prost(uint32, optional, tag = "1")]
    pub(super) message_version: Option<u32>,
    #[prost(uint32, optional, tag = "2")]
    pub(super) chain_id: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub(super) chain_key: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "4")]
    pub(super) iteration: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "5")]
    pub(super) signing_public: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "6")]
    pub(super) signing_private: Option<Vec<u8>>,
    /// Oldest first; `counter` is the iteration, `seed` the message key seed.
    #[prost(message, repeated, tag = "7")]
    pub(super) skipped: Vec<SkippedKeyProto>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let mut session = SessionProto::default();
        session.root_key = Some(vec![0xA7; 32]);
        let record = RecordProto {
            current: Some(session),
            previous: Vec::new(),
        };
        let skipped = SkippedKeyProto {
            counter: Some(1),
            seed: Some(vec![0xA7; 32]),
        };
        let text = format!("{record:?} {skipped:?}");
        assert_eq!(
            text,
            "RecordProto { <redacted> } SkippedKeyProto { <redacted> }"
        );
    }
}
