//! [`PublishPlan`]: the keys a device uploads to the key server, and its JSON upload shape.
//!
//! ```json
//! {
//!   "format": 1,
//!   "agent_id": "alice", "device_id": 1, "registration_id": 4242,
//!   "identity_key": "05…",
//!   "signed_pre_key": {"id": 3, "public": "05…", "signature": "…"},
//!   "last_resort_kyber_pre_key": {"id": 9, "public": "08…", "signature": "…"},
//!   "one_time_pre_keys": [{"id": 101, "public": "05…"}],
//!   "one_time_kyber_pre_keys": [{"id": 10, "public": "08…", "signature": "…"}]
//! }
//! ```
//!
//! Bytes are lowercase hex. The gateway parses it with [`PublishPlan::from_json`], which checks
//! every key and every signature, and stores the rows [`PublishPlan::bundles`] expands it to:
//! one last-resort bundle and one one-time bundle per one-time key pair, each in the reference
//! vectors' `PreKeyBundle` JSON shape.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::address::{AddressError, AgentId, DeviceId};
use crate::error::ErrorClass;
use crate::kem;
use crate::keys::{
    IdentityKey, KyberPreKeyId, PreKeyId, PublicKey, RegistrationId, SignedPreKeyId,
};
use crate::pqxdh::{KyberPreKeyPublic, PreKeyBundle, PreKeyPublic, SignedPreKeyPublic};
use crate::xeddsa::SIGNATURE_LENGTH;

/// The upload format version written in `format`.
pub const UPLOAD_FORMAT: u32 = 1;

/// Most one-time keys of each kind one upload may carry.
pub const MAX_ONE_TIME_KEYS_PER_UPLOAD: usize = 1000;

/// Why an upload is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UploadError {
    /// Not valid JSON of the upload shape.
    #[error("malformed upload JSON: {0}")]
    Json(String),
    /// An unknown `format` number.
    #[error("unsupported upload format {0}")]
    UnsupportedFormat(u32),
    /// The agent or device id is invalid.
    #[error(transparent)]
    Address(#[from] AddressError),
    /// A field is not hex or has the wrong length or type byte.
    #[error("invalid field `{0}`")]
    InvalidField(&'static str),
    /// A signature does not verify against the identity key.
    #[error("signature of `{0}` does not verify")]
    InvalidSignature(&'static str),
    /// The same id appears twice.
    #[error("duplicate id in `{0}`")]
    DuplicateId(&'static str),
    /// More one-time keys than [`MAX_ONE_TIME_KEYS_PER_UPLOAD`].
    #[error("too many keys in `{0}`")]
    TooMany(&'static str),
}

impl UploadError {
    /// The stable class of this error.
    #[must_use]
    pub const fn class(&self) -> ErrorClass {
        match self {
            Self::InvalidSignature(_) => ErrorClass::InvalidSignature,
            _ => ErrorClass::InvalidArgument,
        }
    }
}

/// Everything a device publishes: its long-lived keys, always, plus the one-time keys that are
/// new since the last upload. All signatures are made by the identity key; one-time EC
/// prekeys are unsigned in the Signal protocol (their misuse only costs forward secrecy of
/// one session, the signed prekey is still required).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublishPlan {
    /// The publishing agent.
    pub agent_id: AgentId,
    /// The publishing device.
    pub device_id: DeviceId,
    /// The device's registration id.
    pub registration_id: RegistrationId,
    /// The device's identity key.
    pub identity_key: IdentityKey,
    /// The current signed prekey.
    pub signed_pre_key: SignedPreKeyPublic,
    /// The current last-resort Kyber key.
    pub last_resort_kyber_pre_key: KyberPreKeyPublic,
    /// New one-time EC prekeys (empty when the stock is sufficient).
    pub one_time_pre_keys: Vec<PreKeyPublic>,
    /// New one-time Kyber prekeys (empty when the stock is sufficient).
    pub one_time_kyber_pre_keys: Vec<KyberPreKeyPublic>,
}

/// The rows an upload expands to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadBundles {
    /// The bundle handed out when no one-time bundle is left.
    pub last_resort: PreKeyBundle,
    /// One bundle per one-time key pair, consumed on fetch.
    pub one_time: Vec<PreKeyBundle>,
}

impl PublishPlan {
    /// Checks the signed prekey and every Kyber key signature, and that ids are unique.
    pub fn verify(&self) -> Result<(), UploadError> {
        let identity = &self.identity_key;
        if !identity.verify_signature(
            &self.signed_pre_key.public_key.serialize(),
            &self.signed_pre_key.signature,
        ) {
            return Err(UploadError::InvalidSignature("signed_pre_key"));
        }
        let kyber =
            core::iter::once(&self.last_resort_kyber_pre_key).chain(&self.one_time_kyber_pre_keys);
        let mut kyber_ids = BTreeSet::new();
        for key in kyber {
            if !identity.verify_signature(&key.public_key.serialize(), &key.signature) {
                return Err(UploadError::InvalidSignature("kyber_pre_key"));
            }
            if !kyber_ids.insert(key.id) {
                return Err(UploadError::DuplicateId("kyber_pre_key"));
            }
        }
        let mut ids = BTreeSet::new();
        if !self.one_time_pre_keys.iter().all(|key| ids.insert(key.id)) {
            return Err(UploadError::DuplicateId("one_time_pre_keys"));
        }
        if self.one_time_pre_keys.len() > MAX_ONE_TIME_KEYS_PER_UPLOAD {
            return Err(UploadError::TooMany("one_time_pre_keys"));
        }
        if self.one_time_kyber_pre_keys.len() > MAX_ONE_TIME_KEYS_PER_UPLOAD {
            return Err(UploadError::TooMany("one_time_kyber_pre_keys"));
        }
        Ok(())
    }

    /// Expands the upload into stored bundles. One-time EC and Kyber keys are paired in order;
    /// a leftover EC key is paired with the last-resort Kyber key and a leftover Kyber key goes
    /// without an EC key, so every one-time key is handed out exactly once.
    #[must_use]
    pub fn bundles(&self) -> UploadBundles {
        let bundle = |pre_key: Option<&PreKeyPublic>, kyber: &KyberPreKeyPublic| PreKeyBundle {
            registration_id: self.registration_id,
            device_id: self.device_id.get(),
            identity_key: self.identity_key,
            signed_pre_key: self.signed_pre_key.clone(),
            pre_key: pre_key.cloned(),
            kyber_pre_key: Some(kyber.clone()),
        };
        let pairs = self
            .one_time_pre_keys
            .len()
            .max(self.one_time_kyber_pre_keys.len());
        let one_time = (0..pairs)
            .map(|i| {
                bundle(
                    self.one_time_pre_keys.get(i),
                    self.one_time_kyber_pre_keys
                        .get(i)
                        .unwrap_or(&self.last_resort_kyber_pre_key),
                )
            })
            .collect();
        UploadBundles {
            last_resort: bundle(None, &self.last_resort_kyber_pre_key),
            one_time,
        }
    }

    /// The JSON upload shape (see the module docs).
    #[must_use]
    pub fn to_json(&self) -> String {
        let json = UploadJson {
            format: UPLOAD_FORMAT,
            agent_id: self.agent_id.to_string(),
            device_id: self.device_id.get(),
            registration_id: self.registration_id.0,
            identity_key: hex::encode(self.identity_key.serialize()),
            signed_pre_key: SignedJson {
                id: self.signed_pre_key.id.0,
                public: hex::encode(self.signed_pre_key.public_key.serialize()),
                signature: hex::encode(self.signed_pre_key.signature),
            },
            last_resort_kyber_pre_key: kyber_json(&self.last_resort_kyber_pre_key),
            one_time_pre_keys: self
                .one_time_pre_keys
                .iter()
                .map(|key| OneTimeJson {
                    id: key.id.0,
                    public: hex::encode(key.public_key.serialize()),
                })
                .collect(),
            one_time_kyber_pre_keys: self
                .one_time_kyber_pre_keys
                .iter()
                .map(kyber_json)
                .collect(),
        };
        // Serializing plain strings and numbers cannot fail.
        serde_json::to_string(&json).unwrap_or_default()
    }

    /// Parses and verifies an upload (what the gateway runs on every publish).
    pub fn from_json(text: &str) -> Result<Self, UploadError> {
        let json: UploadJson =
            serde_json::from_str(text).map_err(|e| UploadError::Json(e.to_string()))?;
        if json.format != UPLOAD_FORMAT {
            return Err(UploadError::UnsupportedFormat(json.format));
        }
        if json.one_time_pre_keys.len() > MAX_ONE_TIME_KEYS_PER_UPLOAD {
            return Err(UploadError::TooMany("one_time_pre_keys"));
        }
        if json.one_time_kyber_pre_keys.len() > MAX_ONE_TIME_KEYS_PER_UPLOAD {
            return Err(UploadError::TooMany("one_time_kyber_pre_keys"));
        }
        let plan = Self {
            agent_id: AgentId::new(json.agent_id)?,
            device_id: DeviceId::new(json.device_id)?,
            registration_id: RegistrationId(json.registration_id),
            identity_key: IdentityKey::new(ec_key("identity_key", &json.identity_key)?),
            signed_pre_key: SignedPreKeyPublic {
                id: SignedPreKeyId(json.signed_pre_key.id),
                public_key: ec_key("signed_pre_key.public", &json.signed_pre_key.public)?,
                signature: signature("signed_pre_key.signature", &json.signed_pre_key.signature)?,
            },
            last_resort_kyber_pre_key: parse_kyber(&json.last_resort_kyber_pre_key)?,
            one_time_pre_keys: json
                .one_time_pre_keys
                .iter()
                .map(|key| {
                    Ok(PreKeyPublic {
                        id: PreKeyId(key.id),
                        public_key: ec_key("one_time_pre_keys.public", &key.public)?,
                    })
                })
                .collect::<Result<_, UploadError>>()?,
            one_time_kyber_pre_keys: json
                .one_time_kyber_pre_keys
                .iter()
                .map(parse_kyber)
                .collect::<Result<_, _>>()?,
        };
        plan.verify()?;
        Ok(plan)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UploadJson {
    format: u32,
    agent_id: String,
    device_id: u32,
    registration_id: u32,
    identity_key: String,
    signed_pre_key: SignedJson,
    last_resort_kyber_pre_key: SignedJson,
    one_time_pre_keys: Vec<OneTimeJson>,
    one_time_kyber_pre_keys: Vec<SignedJson>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignedJson {
    id: u32,
    public: String,
    signature: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OneTimeJson {
    id: u32,
    public: String,
}

fn kyber_json(key: &KyberPreKeyPublic) -> SignedJson {
    SignedJson {
        id: key.id.0,
        public: hex::encode(key.public_key.serialize()),
        signature: hex::encode(key.signature),
    }
}

fn ec_key(field: &'static str, text: &str) -> Result<PublicKey, UploadError> {
    let bytes = hex::decode(text).map_err(|_| UploadError::InvalidField(field))?;
    if bytes.len() != 33 {
        return Err(UploadError::InvalidField(field));
    }
    PublicKey::deserialize(&bytes).map_err(|_| UploadError::InvalidField(field))
}

fn signature(field: &'static str, text: &str) -> Result<[u8; SIGNATURE_LENGTH], UploadError> {
    let bytes = hex::decode(text).map_err(|_| UploadError::InvalidField(field))?;
    <[u8; SIGNATURE_LENGTH]>::try_from(bytes).map_err(|_| UploadError::InvalidField(field))
}

fn parse_kyber(json: &SignedJson) -> Result<KyberPreKeyPublic, UploadError> {
    let bytes = hex::decode(&json.public).map_err(|_| UploadError::InvalidField("kyber.public"))?;
    Ok(KyberPreKeyPublic {
        id: KyberPreKeyId(json.id),
        public_key: kem::PublicKey::deserialize(&bytes)
            .map_err(|_| UploadError::InvalidField("kyber.public"))?,
        signature: signature("kyber.signature", &json.signature)?,
    })
}
