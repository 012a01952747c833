//! The versioned payload inside every ciphertext, for DMs and communities alike.
//!
//! Encoding (`docs/COMMUNITY.md` "Envelope"): protobuf `{1: version = 1, 2: kind, 3: body}`
//! where `kind` names the content (`text_v1`, `door_ref_v1`, `action_intent_v1`,
//! `knot_context_v1`, `sender_key_request_v1`, `retry_receipt_v1`) and `body` is that kind's
//! protobuf. Encoding is canonical (ascending tags, no unknown fields, parameters sorted by
//! key), and decoding is strict: the input must be exactly the canonical encoding of what it
//! decodes to, within the size limits below. A well-formed envelope of a kind this release does
//! not know decodes to [`Envelope::Unsupported`] so the app can show "update to see this"
//! instead of silently dropping it.
//!
//! [`extract_local_features`] derives on-device learning features; they never leave the device.

mod proto;

use prost::Message;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::error::ErrorClass;
use proto::{
    ActionIntentProto, DoorRefProto, EnvelopeProto, KnotContextProto, ParameterProto,
    RetryReceiptProto, SenderKeyRequestProto, TextProto,
};

/// The envelope format version.
pub const ENVELOPE_VERSION: u32 = 1;
/// Largest encoded envelope.
pub const MAX_ENVELOPE_BYTES: usize = 64 * 1024;
/// Largest text, in bytes of UTF-8.
pub const MAX_TEXT_BYTES: usize = 32 * 1024;
/// Largest id (spot, list, event, community, knot cluster).
pub const MAX_ID_BYTES: usize = 128;
/// Largest name (kind, door type, action type, parameter key, vibe tag).
pub const MAX_NAME_BYTES: usize = 64;
/// Largest parameter value.
pub const MAX_PARAMETER_VALUE_BYTES: usize = 1024;
/// Most parameters of an action intent.
pub const MAX_PARAMETERS: usize = 32;
/// Most vibe tags of a knot context.
pub const MAX_TAGS: usize = 32;

/// A door reference: what a message points at in SPOTS.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct DoorRef {
    /// A spot.
    pub spot_id: Option<String>,
    /// A list.
    pub list_id: Option<String>,
    /// An event.
    pub event_id: Option<String>,
    /// A community.
    pub community_id: Option<String>,
    /// The kind of door (a name: `[a-z0-9_]`, 1..=64 bytes).
    pub door_type: String,
}

/// An action the sender proposes (the app decides whether and how to act).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ActionIntent {
    /// The action (a name).
    pub action_type: String,
    /// Parameters, sorted by key, keys unique (names), values up to 1 KiB.
    pub parameters: Vec<(String, String)>,
}

/// Context about the "knot" (cluster) a message belongs to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KnotContext {
    /// The cluster.
    pub knot_cluster_id: Option<String>,
    /// Topic tags (names).
    pub vibe_tags: Vec<String>,
}

/// Control: "I lack your sender-chain seed for this epoch; please re-share it." Sent as a
/// Signal DM to the sender device whose messages could not be decrypted.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SenderKeyRequest {
    /// The community.
    pub community_id: Uuid,
    /// The epoch (`key_id`).
    pub key_id: Uuid,
    /// The chain id of the message that failed, if known.
    pub chain_id: Option<u32>,
    /// When the request was made (ms since the Unix epoch).
    pub requested_at_ms: u64,
}

/// Control: "I could not decrypt your message sent at this time; please resend."
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct RetryReceipt {
    /// The failed message's `sent_at` (ms).
    pub original_sent_at_ms: u64,
    /// Its community, for community messages.
    pub community_id: Option<Uuid>,
    /// Its epoch, for community messages.
    pub key_id: Option<Uuid>,
    /// Its sender chain, for sender-chain messages.
    pub chain_id: Option<u32>,
    /// Its iteration, for sender-chain messages.
    pub iteration: Option<u32>,
}

/// A decoded envelope.
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Envelope {
    /// `text_v1`: plain text.
    Text(String),
    /// `door_ref_v1`.
    DoorRef(DoorRef),
    /// `action_intent_v1`.
    ActionIntent(ActionIntent),
    /// `knot_context_v1`.
    KnotContext(KnotContext),
    /// `sender_key_request_v1` (control).
    SenderKeyRequest(SenderKeyRequest),
    /// `retry_receipt_v1` (control).
    RetryReceipt(RetryReceipt),
    /// A well-formed envelope of a kind this release does not know. Never encoded.
    Unsupported {
        /// The kind name.
        kind: String,
    },
}

/// Kind names.
const TEXT: &str = "text_v1";
const DOOR_REF: &str = "door_ref_v1";
const ACTION_INTENT: &str = "action_intent_v1";
const KNOT_CONTEXT: &str = "knot_context_v1";
const SENDER_KEY_REQUEST: &str = "sender_key_request_v1";
const RETRY_RECEIPT: &str = "retry_receipt_v1";

/// Why bytes are not a valid envelope (or an envelope cannot be encoded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Larger than [`MAX_ENVELOPE_BYTES`].
    #[error("envelope is too large: {0} bytes")]
    TooLarge(usize),
    /// Not valid protobuf (or invalid UTF-8 in a string).
    #[error("envelope is not valid protobuf")]
    Protobuf,
    /// A version this release does not read.
    #[error("unsupported envelope version {0}")]
    UnsupportedVersion(u32),
    /// A required field is absent.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A field is too long, empty, or has characters outside its alphabet.
    #[error("invalid field `{0}`")]
    InvalidField(&'static str),
    /// Too many parameters or tags.
    #[error("too many entries in `{0}`")]
    TooMany(&'static str),
    /// The bytes decode but are not the canonical encoding (unknown or repeated fields,
    /// field order, non-minimal varints, unsorted or duplicate parameters).
    #[error("envelope encoding is not canonical")]
    NonCanonical,
    /// [`Envelope::Unsupported`] cannot be encoded.
    #[error("an unsupported envelope cannot be encoded")]
    CannotEncodeUnsupported,
}

impl EnvelopeError {
    /// The stable class of this error.
    #[must_use]
    pub const fn class(&self) -> ErrorClass {
        match self {
            Self::UnsupportedVersion(_) => ErrorClass::UnrecognizedVersion,
            Self::CannotEncodeUnsupported => ErrorClass::InvalidArgument,
            _ => ErrorClass::InvalidMessage,
        }
    }
}

fn is_name(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_NAME_BYTES
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn is_id(value: &str) -> bool {
    !value.is_empty() && value.len() <= MAX_ID_BYTES && !value.chars().any(char::is_control)
}

fn name(field: &'static str, value: &str) -> Result<(), EnvelopeError> {
    if is_name(value) {
        Ok(())
    } else {
        Err(EnvelopeError::InvalidField(field))
    }
}

fn id(field: &'static str, value: Option<&str>) -> Result<(), EnvelopeError> {
    match value {
        Some(value) if !is_id(value) => Err(EnvelopeError::InvalidField(field)),
        _ => Ok(()),
    }
}

fn uuid_field(field: &'static str, bytes: Option<&[u8]>) -> Result<Option<Uuid>, EnvelopeError> {
    bytes
        .map(|b| Uuid::from_slice(b).map_err(|_| EnvelopeError::InvalidField(field)))
        .transpose()
}

fn required<T>(field: &'static str, value: Option<T>) -> Result<T, EnvelopeError> {
    value.ok_or(EnvelopeError::MissingField(field))
}

impl Envelope {
    /// The kind name.
    #[must_use]
    pub fn kind(&self) -> &str {
        match self {
            Self::Text(_) => TEXT,
            Self::DoorRef(_) => DOOR_REF,
            Self::ActionIntent(_) => ACTION_INTENT,
            Self::KnotContext(_) => KNOT_CONTEXT,
            Self::SenderKeyRequest(_) => SENDER_KEY_REQUEST,
            Self::RetryReceipt(_) => RETRY_RECEIPT,
            Self::Unsupported { kind } => kind,
        }
    }

    /// Whether this is a control message (not shown to the user).
    #[must_use]
    pub const fn is_control(&self) -> bool {
        matches!(self, Self::SenderKeyRequest(_) | Self::RetryReceipt(_))
    }

    /// Checks every field against its rules (what [`Envelope::encode`] and
    /// [`Envelope::decode`] enforce).
    pub fn validate(&self) -> Result<(), EnvelopeError> {
        match self {
            Self::Text(text) => {
                if text.len() > MAX_TEXT_BYTES {
                    return Err(EnvelopeError::InvalidField("text"));
                }
            }
            Self::DoorRef(door) => {
                id("spot_id", door.spot_id.as_deref())?;
                id("list_id", door.list_id.as_deref())?;
                id("event_id", door.event_id.as_deref())?;
                id("community_id", door.community_id.as_deref())?;
                name("door_type", &door.door_type)?;
            }
            Self::ActionIntent(action) => {
                name("action_type", &action.action_type)?;
                if action.parameters.len() > MAX_PARAMETERS {
                    return Err(EnvelopeError::TooMany("parameters"));
                }
                for (key, value) in &action.parameters {
                    name("parameters.key", key)?;
                    if value.len() > MAX_PARAMETER_VALUE_BYTES {
                        return Err(EnvelopeError::InvalidField("parameters.value"));
                    }
                }
                if !action.parameters.windows(2).all(|w| match w {
                    [a, b] => a.0 < b.0,
                    _ => true,
                }) {
                    return Err(EnvelopeError::NonCanonical);
                }
            }
            Self::KnotContext(knot) => {
                id("knot_cluster_id", knot.knot_cluster_id.as_deref())?;
                if knot.vibe_tags.len() > MAX_TAGS {
                    return Err(EnvelopeError::TooMany("vibe_tags"));
                }
                for tag in &knot.vibe_tags {
                    name("vibe_tags", tag)?;
                }
            }
            Self::SenderKeyRequest(_) | Self::RetryReceipt(_) => {}
            Self::Unsupported { .. } => return Err(EnvelopeError::CannotEncodeUnsupported),
        }
        Ok(())
    }

    /// The canonical encoding (secret: it is the plaintext).
    pub fn encode(&self) -> Result<Zeroizing<Vec<u8>>, EnvelopeError> {
        self.validate()?;
        let body = match self {
            Self::Text(text) => TextProto {
                text: Some(text.clone()),
            }
            .encode_to_vec(),
            Self::DoorRef(door) => DoorRefProto {
                spot_id: door.spot_id.clone(),
                list_id: door.list_id.clone(),
                event_id: door.event_id.clone(),
                community_id: door.community_id.clone(),
                door_type: Some(door.door_type.clone()),
            }
            .encode_to_vec(),
            Self::ActionIntent(action) => ActionIntentProto {
                action_type: Some(action.action_type.clone()),
                parameters: action
                    .parameters
                    .iter()
                    .map(|(key, value)| ParameterProto {
                        key: Some(key.clone()),
                        value: Some(value.clone()),
                    })
                    .collect(),
            }
            .encode_to_vec(),
            Self::KnotContext(knot) => KnotContextProto {
                knot_cluster_id: knot.knot_cluster_id.clone(),
                vibe_tags: knot.vibe_tags.clone(),
            }
            .encode_to_vec(),
            Self::SenderKeyRequest(request) => SenderKeyRequestProto {
                community_id: Some(request.community_id.as_bytes().to_vec()),
                key_id: Some(request.key_id.as_bytes().to_vec()),
                chain_id: request.chain_id,
                requested_at_ms: Some(request.requested_at_ms),
            }
            .encode_to_vec(),
            Self::RetryReceipt(receipt) => RetryReceiptProto {
                original_sent_at_ms: Some(receipt.original_sent_at_ms),
                community_id: receipt.community_id.map(|id| id.as_bytes().to_vec()),
                key_id: receipt.key_id.map(|id| id.as_bytes().to_vec()),
                chain_id: receipt.chain_id,
                iteration: receipt.iteration,
            }
            .encode_to_vec(),
            Self::Unsupported { .. } => return Err(EnvelopeError::CannotEncodeUnsupported),
        };
        let frame = EnvelopeProto {
            version: Some(ENVELOPE_VERSION),
            kind: Some(self.kind().to_owned()),
            body: Some(body),
        };
        let bytes = Zeroizing::new(frame.encode_to_vec());
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(EnvelopeError::TooLarge(bytes.len()));
        }
        Ok(bytes)
    }

    /// Strictly decodes an envelope (see the module documentation).
    pub fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(EnvelopeError::TooLarge(bytes.len()));
        }
        let frame = EnvelopeProto::decode(bytes).map_err(|_| EnvelopeError::Protobuf)?;
        let version = required("version", frame.version)?;
        if version != ENVELOPE_VERSION {
            return Err(EnvelopeError::UnsupportedVersion(version));
        }
        let kind = required("kind", frame.kind.as_deref())?;
        name("kind", kind)?;
        let body = required("body", frame.body.as_deref())?;
        if frame.encode_to_vec() != bytes {
            return Err(EnvelopeError::NonCanonical);
        }
        let envelope = match kind {
            TEXT => Self::Text(required("text", strict::<TextProto>(body)?.text.take())?),
            DOOR_REF => {
                let mut door = strict::<DoorRefProto>(body)?;
                Self::DoorRef(DoorRef {
                    spot_id: door.spot_id.take(),
                    list_id: door.list_id.take(),
                    event_id: door.event_id.take(),
                    community_id: door.community_id.take(),
                    door_type: required("door_type", door.door_type.take())?,
                })
            }
            ACTION_INTENT => {
                let mut action = strict::<ActionIntentProto>(body)?;
                if action.parameters.len() > MAX_PARAMETERS {
                    return Err(EnvelopeError::TooMany("parameters"));
                }
                let parameters = action
                    .parameters
                    .iter_mut()
                    .map(|p| {
                        Ok((
                            required("parameters.key", p.key.take())?,
                            required("parameters.value", p.value.take())?,
                        ))
                    })
                    .collect::<Result<_, EnvelopeError>>()?;
                Self::ActionIntent(ActionIntent {
                    action_type: required("action_type", action.action_type.take())?,
                    parameters,
                })
            }
            KNOT_CONTEXT => {
                let mut knot = strict::<KnotContextProto>(body)?;
                Self::KnotContext(KnotContext {
                    knot_cluster_id: knot.knot_cluster_id.take(),
                    vibe_tags: core::mem::take(&mut knot.vibe_tags),
                })
            }
            SENDER_KEY_REQUEST => {
                let request = strict::<SenderKeyRequestProto>(body)?;
                Self::SenderKeyRequest(SenderKeyRequest {
                    community_id: required(
                        "community_id",
                        uuid_field("community_id", request.community_id.as_deref())?,
                    )?,
                    key_id: required("key_id", uuid_field("key_id", request.key_id.as_deref())?)?,
                    chain_id: request.chain_id,
                    requested_at_ms: required("requested_at_ms", request.requested_at_ms)?,
                })
            }
            RETRY_RECEIPT => {
                let receipt = strict::<RetryReceiptProto>(body)?;
                Self::RetryReceipt(RetryReceipt {
                    original_sent_at_ms: required(
                        "original_sent_at_ms",
                        receipt.original_sent_at_ms,
                    )?,
                    community_id: uuid_field("community_id", receipt.community_id.as_deref())?,
                    key_id: uuid_field("key_id", receipt.key_id.as_deref())?,
                    chain_id: receipt.chain_id,
                    iteration: receipt.iteration,
                })
            }
            other => {
                return Ok(Self::Unsupported {
                    kind: other.to_owned(),
                });
            }
        };
        envelope.validate()?;
        Ok(envelope)
    }
}

/// Decodes a body and insists that it is canonical.
fn strict<M: Message + Default>(body: &[u8]) -> Result<M, EnvelopeError> {
    let message = M::decode(body).map_err(|_| EnvelopeError::Protobuf)?;
    if message.encode_to_vec() != body {
        return Err(EnvelopeError::NonCanonical);
    }
    Ok(message)
}

impl core::fmt::Debug for Envelope {
    /// Content is redacted: only the kind and sizes are shown.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Text(text) => write!(f, "Envelope::Text(len {})", text.len()),
            Self::Unsupported { kind } => write!(f, "Envelope::Unsupported({kind})"),
            other => write!(f, "Envelope({})", other.kind()),
        }
    }
}

/// Features for on-device learning. Computed locally from a decrypted envelope and never sent
/// anywhere (no API of this crate transmits them).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct LocalFeatures {
    /// The door type of a door reference.
    pub door_type: Option<String>,
    /// Whether the envelope proposes an action.
    pub has_action: bool,
    /// Topic tags (vibe tags of a knot context), deduplicated, in order of appearance.
    pub tags: Vec<String>,
}

/// Derives [`LocalFeatures`] from an envelope. Control and unsupported envelopes have none.
#[must_use]
pub fn extract_local_features(envelope: &Envelope) -> LocalFeatures {
    let mut features = LocalFeatures::default();
    match envelope {
        Envelope::DoorRef(door) => features.door_type = Some(door.door_type.clone()),
        Envelope::ActionIntent(_) => features.has_action = true,
        Envelope::KnotContext(knot) => {
            for tag in &knot.vibe_tags {
                if !features.tags.contains(tag) {
                    features.tags.push(tag.clone());
                }
            }
        }
        _ => {}
    }
    features
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_kind_is_surfaced() {
        let frame = EnvelopeProto {
            version: Some(1),
            kind: Some("poll_v1".to_owned()),
            body: Some(vec![]),
        };
        assert_eq!(
            Envelope::decode(&frame.encode_to_vec()).unwrap(),
            Envelope::Unsupported {
                kind: "poll_v1".to_owned()
            }
        );
        assert_eq!(
            Envelope::Unsupported {
                kind: "poll_v1".into()
            }
            .encode()
            .unwrap_err(),
            EnvelopeError::CannotEncodeUnsupported
        );
    }
}
