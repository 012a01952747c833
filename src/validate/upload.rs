//! Prekey uploads: [`prekey_upload`] parses the upload JSON ([`PublishPlan::from_json`], which
//! checks every key and every signature against the identity key), then applies the key
//! server's limits: at most [`MAX_ONE_TIME_BUNDLES_PER_UPLOAD`] one-time bundles, ids and
//! registration ids within the stored ranges, and a sane expiry.
//!
//! [`long_term_key_digest`] fingerprints the long-lived keys (identity key, signed prekey,
//! last-resort Kyber key) so a client can compare what the server holds with its own state.

use core::time::Duration;

use serde::Deserialize;
use serde::de::IgnoredAny;
use sha2::{Digest, Sha256};

use super::ValidateError;
use crate::pqxdh::PreKeyBundle;
use crate::prekey_lifecycle::{PublishPlan, UploadBundles};
use crate::time::Timestamp;

/// Most one-time bundles one upload may expand to (the key server's `prekey_batch_max`).
pub const MAX_ONE_TIME_BUNDLES_PER_UPLOAD: usize = 100;
/// Largest upload JSON accepted (100 Kyber keys in hex are about 330 KB).
pub const MAX_UPLOAD_JSON_BYTES: usize = 512 * 1024;
/// Largest prekey id the key server stores (Signal's 24-bit id space).
pub const MAX_KEY_ID: u32 = 0x00FF_FFFF;
/// Largest registration id (libsignal generates 1..=16380).
pub const MAX_REGISTRATION_ID: u32 = 16380;
/// Shortest lifetime a caller may ask for.
pub const MIN_BUNDLE_LIFETIME: Duration = Duration::from_secs(3600);
/// Longest lifetime a caller may ask for (the last-resort default).
pub const MAX_BUNDLE_LIFETIME: Duration = Duration::from_secs(180 * 86_400);
/// Domain separation for [`long_term_key_digest`].
pub const KEY_DIGEST_LABEL: &[u8] = b"SPOTS prekey digest v1";

/// An upload that passed every check, with the rows it expands to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatedUpload {
    /// The parsed upload.
    pub plan: PublishPlan,
    /// The bundles to store (one last-resort, one per one-time key pair).
    pub bundles: UploadBundles,
    /// [`long_term_key_digest`] of the upload's last-resort bundle.
    pub key_digest: [u8; 32],
    /// The requested expiry, when one was given.
    pub expires_at: Option<Timestamp>,
}

/// Only the list lengths, read before any key is parsed or signature verified.
#[derive(Deserialize)]
struct Counts {
    #[serde(default)]
    one_time_pre_keys: Vec<IgnoredAny>,
    #[serde(default)]
    one_time_kyber_pre_keys: Vec<IgnoredAny>,
}

/// Validates an upload (what the gateway runs on every publish). `expires_at`, when given,
/// must lie between [`MIN_BUNDLE_LIFETIME`] and [`MAX_BUNDLE_LIFETIME`] after `now`.
pub fn prekey_upload(
    json: &str,
    now: Timestamp,
    expires_at: Option<Timestamp>,
) -> Result<ValidatedUpload, ValidateError> {
    if json.len() > MAX_UPLOAD_JSON_BYTES {
        return Err(ValidateError::TooLarge {
            what: "upload",
            got: json.len(),
            max: MAX_UPLOAD_JSON_BYTES,
        });
    }
    if let Some(expires_at) = expires_at {
        check_expiry(now, expires_at)?;
    }
    // Cheap count first, so an oversized batch costs no signature verification.
    let counts: Counts = serde_json::from_str(json)
        .map_err(|e| crate::prekey_lifecycle::UploadError::Json(e.to_string()))?;
    let pairs = counts
        .one_time_pre_keys
        .len()
        .max(counts.one_time_kyber_pre_keys.len());
    if pairs > MAX_ONE_TIME_BUNDLES_PER_UPLOAD {
        return Err(ValidateError::TooManyOneTimeKeys {
            got: pairs,
            max: MAX_ONE_TIME_BUNDLES_PER_UPLOAD,
        });
    }
    let plan = PublishPlan::from_json(json)?;
    check_ranges(&plan)?;
    let bundles = plan.bundles();
    let key_digest =
        long_term_key_digest(&bundles.last_resort).ok_or(ValidateError::OutOfRange("kyber"))?;
    Ok(ValidatedUpload {
        plan,
        bundles,
        key_digest,
        expires_at,
    })
}

fn check_expiry(now: Timestamp, expires_at: Timestamp) -> Result<(), ValidateError> {
    let earliest = now.saturating_add(MIN_BUNDLE_LIFETIME);
    let latest = now.saturating_add(MAX_BUNDLE_LIFETIME);
    if expires_at < earliest || expires_at > latest {
        return Err(ValidateError::Expiry {
            min_secs: MIN_BUNDLE_LIFETIME.as_secs(),
            max_secs: MAX_BUNDLE_LIFETIME.as_secs(),
        });
    }
    Ok(())
}

fn check_ranges(plan: &PublishPlan) -> Result<(), ValidateError> {
    if !(1..=MAX_REGISTRATION_ID).contains(&plan.registration_id.0) {
        return Err(ValidateError::OutOfRange("registration_id"));
    }
    if plan.signed_pre_key.id.0 > MAX_KEY_ID {
        return Err(ValidateError::OutOfRange("signed_pre_key.id"));
    }
    if plan.last_resort_kyber_pre_key.id.0 > MAX_KEY_ID
        || plan
            .one_time_kyber_pre_keys
            .iter()
            .any(|key| key.id.0 > MAX_KEY_ID)
    {
        return Err(ValidateError::OutOfRange("kyber_pre_key.id"));
    }
    if plan
        .one_time_pre_keys
        .iter()
        .any(|key| key.id.0 > MAX_KEY_ID)
    {
        return Err(ValidateError::OutOfRange("one_time_pre_keys.id"));
    }
    // The last-resort key may not double as a one-time key (it would be consumed).
    if plan
        .one_time_kyber_pre_keys
        .iter()
        .any(|key| key.id == plan.last_resort_kyber_pre_key.id)
    {
        return Err(ValidateError::Upload(
            crate::prekey_lifecycle::UploadError::DuplicateId("kyber_pre_key"),
        ));
    }
    Ok(())
}

/// SHA-256 over [`KEY_DIGEST_LABEL`], the identity key, the signed prekey (id, key, signature)
/// and the bundle's Kyber key (id, key, signature). Applied to a device's last-resort bundle it
/// fingerprints everything long-lived the key server holds for the device; `None` when the
/// bundle has no Kyber key.
#[must_use]
pub fn long_term_key_digest(bundle: &PreKeyBundle) -> Option<[u8; 32]> {
    let kyber = bundle.kyber_pre_key.as_ref()?;
    let mut hash = Sha256::new();
    hash.update(KEY_DIGEST_LABEL);
    hash.update(bundle.identity_key.serialize());
    hash.update(bundle.signed_pre_key.id.0.to_be_bytes());
    hash.update(bundle.signed_pre_key.public_key.serialize());
    hash.update(bundle.signed_pre_key.signature);
    hash.update(kyber.id.0.to_be_bytes());
    hash.update(kyber.public_key.serialize());
    hash.update(kyber.signature);
    Some(hash.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_window() {
        let now = Timestamp::from_secs(1_000_000);
        assert!(check_expiry(now, now).is_err());
        assert!(check_expiry(now, now.saturating_add(MIN_BUNDLE_LIFETIME)).is_ok());
        assert!(check_expiry(now, now.saturating_add(MAX_BUNDLE_LIFETIME)).is_ok());
        assert!(
            check_expiry(
                now,
                now.saturating_add(MAX_BUNDLE_LIFETIME + Duration::from_millis(1))
            )
            .is_err()
        );
        assert!(check_expiry(now, Timestamp::EPOCH).is_err());
    }

    #[test]
    fn oversized_and_malformed_json() {
        let now = Timestamp::from_secs(1);
        let big = " ".repeat(MAX_UPLOAD_JSON_BYTES + 1);
        assert_eq!(
            prekey_upload(&big, now, None).unwrap_err().code(),
            "too_large"
        );
        assert_eq!(
            prekey_upload("[]", now, None).unwrap_err().code(),
            "malformed_upload"
        );
        assert_eq!(
            prekey_upload("{}", now, None).unwrap_err().code(),
            "malformed_upload"
        );
    }
}
