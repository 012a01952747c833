//! The validator/policy face the gateway calls: each function converts its arguments, calls one
//! core function, and converts the result.

use serde::Serialize;
use spots_signal::community::{BlobScheme, validate_blob};
use spots_signal::fingerprint::{DEFAULT_ITERATIONS, Fingerprint};
use spots_signal::keys::IdentityKey;
use spots_signal::pqxdh::PreKeyBundle;
use spots_signal::validate;
use spots_signal::{AgentId, ErrorClass, Timestamp, policy};
use wasm_bindgen::prelude::*;

use crate::bytes::Bytes;
use crate::error::{core, from_js, invalid_argument, to_js, validation};

/// One row for `signal_prekey_bundles_v2`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BundleRow {
    key_id: u32,
    bundle: PreKeyBundle,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ValidatedUploadJs {
    agent_id: String,
    device_id: u32,
    registration_id: u32,
    identity_key: Bytes,
    signed_pre_key_id: u32,
    last_resort: BundleRow,
    one_time: Vec<BundleRow>,
    key_digest: String,
}

/// Validates a prekey upload (`PublishPlan` JSON): shapes, key types and lengths, every
/// signature against the identity key, unique ids, at most 100 one-time bundles, and
/// `expiresAtMs` (optional) between 1 hour and 180 days after `nowMs`. Returns the rows to store
/// and the long-term key digest; throws `SpotsError` otherwise.
#[wasm_bindgen(js_name = validatePrekeyUpload, unchecked_return_type = "ValidatedUpload")]
pub fn validate_prekey_upload(
    upload_json: &str,
    now_ms: f64,
    expires_at_ms: Option<f64>,
) -> Result<JsValue, JsValue> {
    let now = timestamp(now_ms)?;
    let expires_at = expires_at_ms.map(timestamp).transpose()?;
    let valid =
        validate::prekey_upload(upload_json, now, expires_at).map_err(|e| validation(&e))?;
    let one_time_id = |bundle: &PreKeyBundle| {
        bundle
            .pre_key
            .as_ref()
            .map(|k| k.id.0)
            .or(bundle.kyber_pre_key.as_ref().map(|k| k.id.0))
            .unwrap_or_default()
    };
    let out = ValidatedUploadJs {
        agent_id: valid.plan.agent_id.to_string(),
        device_id: valid.plan.device_id.get(),
        registration_id: valid.plan.registration_id.0,
        identity_key: Bytes(valid.plan.identity_key.serialize().to_vec()),
        signed_pre_key_id: valid.plan.signed_pre_key.id.0,
        last_resort: BundleRow {
            key_id: valid.plan.last_resort_kyber_pre_key.id.0,
            bundle: valid.bundles.last_resort.clone(),
        },
        one_time: valid
            .bundles
            .one_time
            .iter()
            .map(|bundle| BundleRow {
                key_id: one_time_id(bundle),
                bundle: bundle.clone(),
            })
            .collect(),
        key_digest: hex::encode(valid.key_digest),
    };
    to_js(&out)
}

/// The long-term key digest (hex) of a stored bundle (normally the last-resort bundle), or
/// `null` when it carries no Kyber key. Throws when the bundle does not parse or verify.
#[wasm_bindgen(js_name = bundleDigest)]
pub fn bundle_digest(bundle_json: &str) -> Result<Option<String>, JsValue> {
    let bundle: PreKeyBundle =
        serde_json::from_str(bundle_json).map_err(|e| invalid_argument(&format!("bundle: {e}")))?;
    bundle
        .verify()
        .map_err(|e| core(e.class(), &e.to_string()))?;
    Ok(validate::long_term_key_digest(&bundle).map(hex::encode))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MessageInfoJs {
    message_type: u8,
    version: u8,
    len: usize,
}

/// Checks that `body` is a Signal message of `messageType` (2 SignalMessage, 3
/// PreKeySignalMessage) as a SPOTS device sends it: version 4, required fields, valid keys,
/// canonical protobuf, a CBC-sized ciphertext. No keys needed. Throws `SpotsError` otherwise.
#[wasm_bindgen(js_name = validateSignalMessage, unchecked_return_type = "SignalMessageInfo")]
pub fn validate_signal_message(message_type: u8, body: &[u8]) -> Result<JsValue, JsValue> {
    let info = validate::signal_message(message_type, body).map_err(|e| validation(&e))?;
    to_js(&MessageInfoJs {
        message_type: info.message_type,
        version: info.version,
        len: info.len,
    })
}

/// Checks a community share row: `encryptionType` is `signal_protocol`, `shareKind` is known,
/// and the body is a Signal message of `messageType` (as [`validate_signal_message`]). Returns
/// the kind.
#[wasm_bindgen(js_name = validateShare, unchecked_return_type = "ShareKind")]
pub fn validate_share(
    encryption_type: &str,
    share_kind: &str,
    message_type: u8,
    body: &[u8],
) -> Result<String, JsValue> {
    validate::share(encryption_type, share_kind, message_type, body)
        .map(|kind| kind.as_str().to_owned())
        .map_err(|e| validation(&e))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BlobHeaderJs {
    scheme: &'static str,
    community_id: String,
    epoch_id: String,
    sent_at_ms: f64,
    agent_id: String,
    device_id: u32,
    chain_id: Option<u32>,
    iteration: Option<u32>,
}

/// The public header of a community blob (no keys needed): what a client puts in the row's
/// sender and chain columns, and what a server can check them against. `epochId` must be the
/// one derived from the row's community and `key_id`.
#[wasm_bindgen(js_name = blobHeader, unchecked_return_type = "BlobHeader")]
pub fn blob_header(blob: &[u8]) -> Result<JsValue, JsValue> {
    let header =
        validate_blob(blob).map_err(|e| core(e.class(), &format!("community blob: {e}")))?;
    #[allow(clippy::cast_precision_loss)]
    to_js(&BlobHeaderJs {
        scheme: match header.scheme {
            BlobScheme::Epoch => "epoch",
            BlobScheme::SenderChain => "sender_chain",
        },
        community_id: header.community_id.to_string(),
        epoch_id: header.key_id.to_string(),
        sent_at_ms: header.sent_at.as_millis() as f64,
        agent_id: header.sender.agent_id.to_string(),
        device_id: header.sender.device_id.get(),
        chain_id: header.chain.map(|c| c.chain_id),
        iteration: header.chain.map(|c| c.iteration),
    })
}

/// Evaluates the eligibility policy over the key server's facts
/// (`keyserver.eligibility_facts`, as a JSON object). Returns `{allowed, reason}`.
#[wasm_bindgen(js_name = evaluateEligibility, unchecked_return_type = "EligibilityDecision")]
pub fn evaluate_eligibility(
    #[wasm_bindgen(unchecked_param_type = "EligibilityFacts")] facts: JsValue,
) -> Result<JsValue, JsValue> {
    let facts: policy::EligibilityFacts = from_js(facts, "facts")?;
    to_js(&policy::evaluate(&facts))
}

#[derive(Serialize)]
struct SafetyNumberJs {
    displayable: String,
    scannable: Bytes,
}

/// The safety number (version 2, agent ids as stable ids, 5200 iterations) between a local
/// agent's identity key and a remote one (33-byte serialized keys).
#[wasm_bindgen(js_name = safetyNumber, unchecked_return_type = "SafetyNumber")]
pub fn safety_number(
    local_agent_id: &str,
    local_identity_key: &[u8],
    remote_agent_id: &str,
    remote_identity_key: &[u8],
) -> Result<JsValue, JsValue> {
    let agent =
        |id: &str| AgentId::new(id).map_err(|e| core(ErrorClass::InvalidArgument, &e.to_string()));
    let key =
        |bytes: &[u8]| IdentityKey::deserialize(bytes).map_err(|e| core(e.class(), &e.to_string()));
    let fingerprint = Fingerprint::new(
        2,
        DEFAULT_ITERATIONS,
        agent(local_agent_id)?.as_bytes(),
        &key(local_identity_key)?,
        agent(remote_agent_id)?.as_bytes(),
        &key(remote_identity_key)?,
    )
    .map_err(|e| core(e.class(), &e.to_string()))?;
    to_js(&SafetyNumberJs {
        displayable: fingerprint.display.to_string(),
        scannable: Bytes(fingerprint.scannable.serialize()),
    })
}

/// Milliseconds since the Unix epoch from JS (finite, non-negative, whole).
pub(crate) fn timestamp(ms: f64) -> Result<Timestamp, JsValue> {
    if !ms.is_finite() || !(0.0..=9.0e15).contains(&ms) || ms.fract() != 0.0 {
        return Err(invalid_argument(
            "time must be whole non-negative milliseconds",
        ));
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(Timestamp::from_millis(ms as u64))
}
