//! The envelope's protobuf structures (hand-written for prost). Tags are append-only.

use zeroize::{Zeroize, ZeroizeOnDrop};

/// The outer frame: a format version, a kind name and the kind's encoded body.
#[derive(Clone, PartialEq, prost::Message, Zeroize, ZeroizeOnDrop)]
pub(super) struct EnvelopeProto {
    #[prost(uint32, optional, tag = "1")]
    pub(super) version: Option<u32>,
    #[prost(string, optional, tag = "2")]
    pub(super) kind: Option<String>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub(super) body: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message, Zeroize, ZeroizeOnDrop)]
pub(super) struct TextProto {
    #[prost(string, optional, tag = "1")]
    pub(super) text: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message, Zeroize, ZeroizeOnDrop)]
pub(super) struct DoorRefProto {
    #[prost(string, optional, tag = "1")]
    pub(super) spot_id: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub(super) list_id: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub(super) event_id: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub(super) community_id: Option<String>,
    #[prost(string, optional, tag = "5")]
    pub(super) door_type: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message, Zeroize, ZeroizeOnDrop)]
pub(super) struct ParameterProto {
    #[prost(string, optional, tag = "1")]
    pub(super) key: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub(super) value: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message, Zeroize, ZeroizeOnDrop)]
pub(super) struct ActionIntentProto {
    #[prost(string, optional, tag = "1")]
    pub(super) action_type: Option<String>,
    /// Sorted by key, keys unique.
    #[prost(message, repeated, tag = "2")]
    pub(super) parameters: Vec<ParameterProto>,
}

#[derive(Clone, PartialEq, prost::Message, Zeroize, ZeroizeOnDrop)]
pub(super) struct KnotContextProto {
    #[prost(string, optional, tag = "1")]
    pub(super) knot_cluster_id: Option<String>,
    #[prost(string, repeated, tag = "2")]
    pub(super) vibe_tags: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message, Zeroize, ZeroizeOnDrop)]
pub(super) struct SenderKeyRequestProto {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub(super) community_id: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub(super) key_id: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "3")]
    pub(super) chain_id: Option<u32>,
    #[prost(uint64, optional, tag = "4")]
    pub(super) requested_at_ms: Option<u64>,
}

#[derive(Clone, PartialEq, prost::Message, Zeroize, ZeroizeOnDrop)]
pub(super) struct RetryReceiptProto {
    #[prost(uint64, optional, tag = "1")]
    pub(super) original_sent_at_ms: Option<u64>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub(super) community_id: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub(super) key_id: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "4")]
    pub(super) chain_id: Option<u32>,
    #[prost(uint32, optional, tag = "5")]
    pub(super) iteration: Option<u32>,
}
