//! `PreKeyBundle`: what a device publishes so others can start sessions with it.
//!
//! Its serde form is the JSON object of the reference vectors (hex strings, `null` for absent
//! optional keys), which is also what the key server stores.

use serde::{Deserialize, Serialize};

use crate::error::ErrorClass;
use crate::kem::{self, KemError};
use crate::keys::{
    IdentityKey, KeyError, KyberPreKeyId, KyberPreKeyRecord, PreKeyId, PreKeyRecord, PublicKey,
    RegistrationId, SignedPreKeyId, SignedPreKeyRecord,
};
use crate::xeddsa::SIGNATURE_LENGTH;

/// Why a bundle is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The signed prekey's signature does not verify against the identity key.
    #[error("signed prekey signature validation failed")]
    InvalidSignedPreKeySignature,
    /// The Kyber prekey's signature does not verify against the identity key.
    #[error("kyber prekey signature validation failed")]
    InvalidKyberPreKeySignature,
    /// A JSON field is not valid hex.
    #[error("field `{0}` is not valid hex")]
    Hex(&'static str),
    /// A JSON key field does not parse.
    #[error("invalid key in `{field}`: {source}")]
    Key {
        /// Field name.
        field: &'static str,
        /// What was wrong with it.
        source: KeyError,
    },
    /// The Kyber public key does not parse.
    #[error("invalid kyber prekey: {0}")]
    Kem(#[from] KemError),
    /// A signature is not 64 bytes.
    #[error("field `{0}` is not a 64-byte signature")]
    SignatureLength(&'static str),
    /// Only some of the fields of an optional prekey are present.
    #[error("fields of `{0}` must be all present or all absent")]
    Incomplete(&'static str),
}

impl BundleError {
    /// The stable class of this error.
    #[must_use]
    pub const fn class(&self) -> ErrorClass {
        match self {
            Self::InvalidSignedPreKeySignature | Self::InvalidKyberPreKeySignature => {
                ErrorClass::InvalidSignature
            }
            Self::Key { .. } | Self::Kem(_) => ErrorClass::InvalidKey,
            _ => ErrorClass::InvalidArgument,
        }
    }
}

/// The public half of a signed prekey.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedPreKeyPublic {
    /// Its id.
    pub id: SignedPreKeyId,
    /// The key.
    pub public_key: PublicKey,
    /// The identity key's signature over the 33-byte key.
    pub signature: [u8; SIGNATURE_LENGTH],
}

/// The public half of a one-time EC prekey.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreKeyPublic {
    /// Its id.
    pub id: PreKeyId,
    /// The key.
    pub public_key: PublicKey,
}

/// The public half of a Kyber prekey.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KyberPreKeyPublic {
    /// Its id.
    pub id: KyberPreKeyId,
    /// The key.
    pub public_key: kem::PublicKey,
    /// The identity key's signature over the 1569-byte serialized key.
    pub signature: [u8; SIGNATURE_LENGTH],
}

/// A device's published keys. Absent optional keys are `None`, so an inconsistent bundle
/// (an id without its key) cannot be represented.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "BundleJson", into = "BundleJson")]
pub struct PreKeyBundle {
    /// The device's registration id.
    pub registration_id: RegistrationId,
    /// The device id within the account.
    pub device_id: u32,
    /// The long-term identity key.
    pub identity_key: IdentityKey,
    /// The signed prekey.
    pub signed_pre_key: SignedPreKeyPublic,
    /// A one-time EC prekey, if one was left.
    pub pre_key: Option<PreKeyPublic>,
    /// A Kyber prekey (one-time or last-resort). Required for PQXDH.
    pub kyber_pre_key: Option<KyberPreKeyPublic>,
}

impl PreKeyBundle {
    /// Assembles the bundle a device publishes from its own records.
    #[must_use]
    pub fn from_records(
        registration_id: RegistrationId,
        device_id: u32,
        identity_key: IdentityKey,
        signed_pre_key: &SignedPreKeyRecord,
        pre_key: Option<&PreKeyRecord>,
        kyber_pre_key: Option<&KyberPreKeyRecord>,
    ) -> Self {
        Self {
            registration_id,
            device_id,
            identity_key,
            signed_pre_key: SignedPreKeyPublic {
                id: signed_pre_key.id(),
                public_key: *signed_pre_key.public_key(),
                signature: *signed_pre_key.signature(),
            },
            pre_key: pre_key.map(|record| PreKeyPublic {
                id: record.id(),
                public_key: *record.public_key(),
            }),
            kyber_pre_key: kyber_pre_key.map(|record| KyberPreKeyPublic {
                id: record.id(),
                public_key: record.public_key().clone(),
                signature: *record.signature(),
            }),
        }
    }

    /// Checks both prekey signatures against the identity key.
    pub fn verify(&self) -> Result<(), BundleError> {
        let signed = &self.signed_pre_key;
        if !self
            .identity_key
            .verify_signature(&signed.public_key.serialize(), &signed.signature)
        {
            return Err(BundleError::InvalidSignedPreKeySignature);
        }
        if let Some(kyber) = &self.kyber_pre_key
            && !self
                .identity_key
                .verify_signature(&kyber.public_key.serialize(), &kyber.signature)
        {
            return Err(BundleError::InvalidKyberPreKeySignature);
        }
        Ok(())
    }
}

/// The JSON shape (field names and hex strings of the reference vectors).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleJson {
    device_id: u32,
    identity_key: String,
    kyber_pre_key_id: Option<u32>,
    kyber_pre_key_public: Option<String>,
    kyber_pre_key_signature: Option<String>,
    pre_key_id: Option<u32>,
    pre_key_public: Option<String>,
    registration_id: u32,
    signed_pre_key_id: u32,
    signed_pre_key_public: String,
    signed_pre_key_signature: String,
}

fn unhex(field: &'static str, text: &str) -> Result<Vec<u8>, BundleError> {
    hex::decode(text).map_err(|_| BundleError::Hex(field))
}

fn ec_key(field: &'static str, text: &str) -> Result<PublicKey, BundleError> {
    let bytes = unhex(field, text)?;
    if bytes.len() != 33 {
        // Bundles are produced by us: unlike wire keys, trailing bytes are not tolerated.
        return Err(BundleError::Key {
            field,
            source: KeyError::BadKeyLength(bytes.len()),
        });
    }
    PublicKey::deserialize(&bytes).map_err(|source| BundleError::Key { field, source })
}

fn signature(field: &'static str, text: &str) -> Result<[u8; SIGNATURE_LENGTH], BundleError> {
    <[u8; SIGNATURE_LENGTH]>::try_from(unhex(field, text)?)
        .map_err(|_| BundleError::SignatureLength(field))
}

impl TryFrom<BundleJson> for PreKeyBundle {
    type Error = BundleError;

    fn try_from(json: BundleJson) -> Result<Self, Self::Error> {
        let pre_key = match (json.pre_key_id, json.pre_key_public) {
            (Some(id), Some(key)) => Some(PreKeyPublic {
                id: PreKeyId(id),
                public_key: ec_key("pre_key_public", &key)?,
            }),
            (None, None) => None,
            _ => return Err(BundleError::Incomplete("pre_key")),
        };
        let kyber_pre_key = match (
            json.kyber_pre_key_id,
            json.kyber_pre_key_public,
            json.kyber_pre_key_signature,
        ) {
            (Some(id), Some(key), Some(sig)) => Some(KyberPreKeyPublic {
                id: KyberPreKeyId(id),
                public_key: kem::PublicKey::deserialize(&unhex("kyber_pre_key_public", &key)?)?,
                signature: signature("kyber_pre_key_signature", &sig)?,
            }),
            (None, None, None) => None,
            _ => return Err(BundleError::Incomplete("kyber_pre_key")),
        };
        Ok(Self {
            registration_id: RegistrationId(json.registration_id),
            device_id: json.device_id,
            identity_key: IdentityKey::new(ec_key("identity_key", &json.identity_key)?),
            signed_pre_key: SignedPreKeyPublic {
                id: SignedPreKeyId(json.signed_pre_key_id),
                public_key: ec_key("signed_pre_key_public", &json.signed_pre_key_public)?,
                signature: signature("signed_pre_key_signature", &json.signed_pre_key_signature)?,
            },
            pre_key,
            kyber_pre_key,
        })
    }
}

impl From<PreKeyBundle> for BundleJson {
    fn from(bundle: PreKeyBundle) -> Self {
        Self {
            device_id: bundle.device_id,
            identity_key: hex::encode(bundle.identity_key.serialize()),
            kyber_pre_key_id: bundle.kyber_pre_key.as_ref().map(|k| k.id.0),
            kyber_pre_key_public: bundle
                .kyber_pre_key
                .as_ref()
                .map(|k| hex::encode(k.public_key.serialize())),
            kyber_pre_key_signature: bundle
                .kyber_pre_key
                .as_ref()
                .map(|k| hex::encode(k.signature)),
            pre_key_id: bundle.pre_key.as_ref().map(|k| k.id.0),
            pre_key_public: bundle
                .pre_key
                .as_ref()
                .map(|k| hex::encode(k.public_key.serialize())),
            registration_id: bundle.registration_id.0,
            signed_pre_key_id: bundle.signed_pre_key.id.0,
            signed_pre_key_public: hex::encode(bundle.signed_pre_key.public_key.serialize()),
            signed_pre_key_signature: hex::encode(bundle.signed_pre_key.signature),
        }
    }
}
