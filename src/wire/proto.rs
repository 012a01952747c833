//! The protobuf (proto2) wire structures, hand-written for prost (no protoc).
//!
//! Every field is `optional` so that zero values are written explicitly and presence can be
//! checked, exactly as libsignal's proto2 messages behave; fields are declared in ascending tag
//! order, which is the order prost emits them in.

use zeroize::{Zeroize, ZeroizeOnDrop};

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct SignalMessageProto {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub(crate) ratchet_key: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "2")]
    pub(crate) counter: Option<u32>,
    #[prost(uint32, optional, tag = "3")]
    pub(crate) previous_counter: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub(crate) ciphertext: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct PreKeySignalMessageProto {
    #[prost(uint32, optional, tag = "1")]
    pub(crate) pre_key_id: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub(crate) base_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub(crate) identity_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub(crate) message: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "5")]
    pub(crate) registration_id: Option<u32>,
    #[prost(uint32, optional, tag = "6")]
    pub(crate) signed_pre_key_id: Option<u32>,
    #[prost(uint32, optional, tag = "7")]
    pub(crate) kyber_pre_key_id: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "8")]
    pub(crate) kyber_ciphertext: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct SenderKeyMessageProto {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub(crate) distribution_uuid: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "2")]
    pub(crate) chain_id: Option<u32>,
    #[prost(uint32, optional, tag = "3")]
    pub(crate) iteration: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub(crate) ciphertext: Option<Vec<u8>>,
}

/// Carries a chain key, so it is wiped on drop and its `Debug` is redacted.
#[derive(Clone, PartialEq, prost::Message, Zeroize, ZeroizeOnDrop)]
#[prost(skip_debug)]
pub(crate) struct SenderKeyDistributionMessageProto {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub(crate) distribution_uuid: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "2")]
    pub(crate) chain_id: Option<u32>,
    #[prost(uint32, optional, tag = "3")]
    pub(crate) iteration: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub(crate) chain_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "5")]
    pub(crate) signing_key: Option<Vec<u8>>,
}

impl core::fmt::Debug for SenderKeyDistributionMessageProto {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("SenderKeyDistributionMessageProto { <redacted> }")
    }
}
