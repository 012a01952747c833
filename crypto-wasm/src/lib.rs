//! wasm-bindgen facade over the core. No logic lives here beyond converting JS values to core
//! types and core results to JS values.
//!
//! Two faces: the validator/policy functions the gateway calls (`validatePrekeyUpload`,
//! `validateSignalMessage`, `validateShare`, `evaluateEligibility`, `bundleDigest`,
//! `safetyNumber`, `verifySignature`), and the [`Device`] class web tools and tests use to act
//! as real devices. Fallible calls throw a `SpotsError` (`{code, message, classCode?}`).

use wasm_bindgen::prelude::*;

mod bytes;
mod device;
mod error;
mod sealed;
mod self_check;
mod validator;

pub use device::Device;
pub use validator::{
    blob_header, bundle_digest, evaluate_eligibility, safety_number, validate_prekey_upload,
    validate_share, validate_signal_message,
};

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** Thrown by every fallible call. */
export interface SpotsError extends Error {
  name: "SpotsError";
  /** Stable snake_case code, e.g. "invalid_signature", "not_canonical", "untrusted_identity". */
  code: string;
  /** The core's numeric error class (10s keys, 20s messages, 30s sessions, 40s other). */
  classCode?: number;
}
/** A stored prekey bundle (the reference vectors' JSON shape, hex strings). */
export interface PreKeyBundleJson {
  registration_id: number; device_id: number; identity_key: string;
  signed_pre_key_id: number; signed_pre_key_public: string; signed_pre_key_signature: string;
  pre_key_id: number | null; pre_key_public: string | null;
  kyber_pre_key_id: number | null; kyber_pre_key_public: string | null;
  kyber_pre_key_signature: string | null;
}
export interface BundleRow { keyId: number; bundle: PreKeyBundleJson }
export interface ValidatedUpload {
  agentId: string; deviceId: number; registrationId: number; identityKey: Uint8Array;
  signedPreKeyId: number; lastResort: BundleRow; oneTime: BundleRow[];
  /** SHA-256 (hex) of identity key, signed prekey and last-resort Kyber key. */
  keyDigest: string;
}
export type SignalMessageType = 2 | 3;
export interface SignalMessageInfo { messageType: SignalMessageType; version: 4; len: number }
export type ShareKind = "epoch_key_v1" | "epoch_sender_chain_seed_v1" | "re_share_v1";
export interface EligibilityFacts {
  same_owner?: boolean; blocked_by_caller: boolean; blocked_by_target: boolean;
  shared_communities?: string[];
  connection?: { entanglement_score: number; compatibility_score: number } | null;
  invite?: { presented: boolean; valid: boolean }; contact_via_invite?: boolean;
  thresholds: { min_entanglement_score: number; min_compatibility_score: number };
}
export type EligibilityReason =
  | "blocked_by_caller" | "blocked_by_target" | "same_owner" | "contact_via_invite"
  | "shared_community" | "ai2ai_connection" | "invite_token" | "score_below_threshold"
  | "invite_invalid" | "no_relationship";
export interface EligibilityDecision { allowed: boolean; reason: EligibilityReason }
export interface SafetyNumber { displayable: string; scannable: Uint8Array }
export interface ReadyResult { needsUpload: boolean; identityCreated: boolean; upload: string }
export interface BundleOutcome { identityChanged: boolean; newDevice: boolean }
export interface OutgoingMessage {
  agentId: string; deviceId: number; messageType: SignalMessageType; body: Uint8Array;
}
export interface Decrypted { plaintext: Uint8Array; identityChanged: boolean; newSession: boolean }
/** A community_sender_key_state row: keyId is the key server's epoch number (1, 2, ...). */
export interface CommunityEpochRow {
  keyId: number; rotatedAtMs: number; rotation: "soft" | "hard"; graceUntilMs?: number | null;
}
/** An epoch as the device knows it; epochId is the UUID derived from community and keyId. */
export interface CommunityEpoch extends CommunityEpochRow { epochId: string }
export interface ShareRecipient { agentId: string; deviceId: number; bundle?: PreKeyBundleJson }
export interface ShareRowJs {
  communityId: string; keyId: number; fromAgentId: string; fromDeviceId: number;
  toAgentId: string; toDeviceId: number; encryptionType: "signal_protocol";
  shareKind: ShareKind; messageType: SignalMessageType; body: Uint8Array;
}
export interface CommunityRotation { epoch: CommunityEpoch; shares: ShareRowJs[] }
export interface IncomingShare {
  fromAgentId: string; fromDeviceId: number; communityId: string; keyId: number;
  encryptionType: string; shareKind: string; messageType: number; body: Uint8Array;
}
export interface OpenedShare {
  fromAgentId: string; fromDeviceId: number; communityId: string; keyId: number; epochId: string;
  shareKind: ShareKind; firstForCommunity: boolean;
}
/** A community message to store: the blob and its row's other columns. */
export interface CommunityPost {
  blob: Uint8Array; keyId: number; chainId: number | null; iteration: number | null;
}
export interface BlobHeader {
  scheme: "epoch" | "sender_chain"; communityId: string; epochId: string; sentAtMs: number;
  agentId: string; deviceId: number; chainId: number | null; iteration: number | null;
}
export type CommunityReceive =
  | { kind: "message"; plaintext: Uint8Array; keyId: number; epochId: string; sentAtMs: number }
  | { kind: "missing_seed"; agentId: string; deviceId: number; request: Uint8Array };
"#;

/// The core's version, so a deployed function can report exactly what it runs.
#[wasm_bindgen(js_name = coreVersion)]
pub fn core_version() -> String {
    spots_signal::CORE_VERSION.to_owned()
}

/// Verifies an XEdDSA signature made with a Signal identity key.
///
/// `public_key` is the 33-byte serialized EC public key (0x05 || u); `signature` is 64 bytes.
/// Malformed keys or signatures verify as `false`.
#[wasm_bindgen(js_name = verifySignature)]
pub fn verify_signature(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let (Some(public_u), Ok(signature)) =
        (ec_public_u(public_key), <[u8; 64]>::try_from(signature))
    else {
        return false;
    };
    spots_signal::xeddsa::verify(&public_u, message, &signature)
}

/// Runs the known-answer self-check and returns its report.
#[wasm_bindgen(js_name = selfCheck)]
pub fn self_check() -> JsValue {
    let report = self_check::run();
    let object = js_sys::Object::new();
    let checks = js_sys::Array::new();
    for (name, passed) in &report.checks {
        let entry = js_sys::Object::new();
        // Reflect::set only fails on frozen objects; these are fresh.
        let _ = js_sys::Reflect::set(&entry, &"name".into(), &(*name).into());
        let _ = js_sys::Reflect::set(&entry, &"passed".into(), &(*passed).into());
        checks.push(&entry);
    }
    let _ = js_sys::Reflect::set(&object, &"ok".into(), &report.ok().into());
    let _ = js_sys::Reflect::set(&object, &"checks".into(), &checks);
    object.into()
}

fn ec_public_u(public_key: &[u8]) -> Option<[u8; 32]> {
    match public_key {
        [0x05, rest @ ..] if rest.len() >= 32 => rest.get(..32)?.try_into().ok(),
        _ => None,
    }
}
