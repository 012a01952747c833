//! Session establishment: PQXDH (version 4, with Kyber1024) and, only when explicitly allowed,
//! X3DH (version 3) — PROTOCOL.md "Session establishment".
//!
//! Both sides compute
//! `0xFF*32 || DH(IKa, SPKb) || DH(EKa, IKb) || DH(EKa, SPKb) || [DH(EKa, OPKb)] || [KEM ss]`
//! and expand it with HKDF into the first root key and chain key. Bob's first sending chain is
//! keyed by his signed prekey; Alice immediately ratchets once to get her sending chain.

mod bundle;

pub use bundle::{BundleError, KyberPreKeyPublic, PreKeyBundle, PreKeyPublic, SignedPreKeyPublic};

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::cipher::hkdf_sha256;
use crate::keys::{
    IdentityKeyPair, KeyPair, KyberPreKeyRecord, PreKeyRecord, RegistrationId, SignedPreKeyRecord,
};
use crate::ratchet::{ChainKey, RootKey, root_and_chain_keys};
use crate::session::SessionError;
use crate::session::state::{PendingPreKey, ReceiverChain, SenderChain, SessionState};
use crate::time::Timestamp;
use crate::wire::{
    CIPHERTEXT_MESSAGE_CURRENT_VERSION, CIPHERTEXT_MESSAGE_PRE_KYBER_VERSION, PreKeySignalMessage,
};

/// HKDF label when a Kyber prekey is part of the handshake (session version 4).
const PQXDH_LABEL: &[u8] = b"WhisperText_X25519_SHA-256_CRYSTALS-KYBER-1024";
/// HKDF label of classic X3DH (session version 3).
const X3DH_LABEL: &[u8] = b"WhisperText";
/// Prefix of the secret input (the XEdDSA/X3DH domain separator).
const DISCONTINUITY: [u8; 32] = [0xFF; 32];

/// Options for session establishment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SessionOptions {
    /// Accept peers without a Kyber prekey, i.e. classic X3DH (session version 3). Off by
    /// default: such sessions have no post-quantum protection. Outgoing sessions to bundles
    /// with a Kyber prekey are always PQXDH regardless of this flag.
    ///
    /// Off means off for existing sessions too (fail closed): the facade neither encrypts in a
    /// version-3 session (the device is reported as missing a session, so a PQXDH bundle
    /// replaces it) nor decrypts version-3 messages ([`crate::SessionError::X3dhNotAllowed`]).
    /// The pure functions [`crate::encrypt`] and [`crate::decrypt_signal_message`] take no
    /// options; their callers apply the same rule.
    pub accept_x3dh: bool,
}

/// Expands the handshake secret input into the first root key and chain key:
/// `HKDF-SHA256(no salt, secret_input, label, 64)`, label chosen by whether Kyber was used.
#[must_use]
pub fn derive_initial_keys(secret_input: &[u8], with_kyber: bool) -> (RootKey, ChainKey) {
    let label = if with_kyber { PQXDH_LABEL } else { X3DH_LABEL };
    let okm = hkdf_sha256::<64>(None, secret_input, label);
    root_and_chain_keys(&okm, 0)
}

fn secret_input() -> Zeroizing<Vec<u8>> {
    let mut secret = Zeroizing::new(Vec::with_capacity(32 * 6));
    secret.extend_from_slice(&DISCONTINUITY);
    secret
}

/// Alice's side: verifies the bundle, then draws her base key, her first ratchet key and (for
/// PQXDH) the KEM randomness, in that order.
pub(crate) fn initialize_alice<R: CryptoRng + ?Sized>(
    identity: &IdentityKeyPair,
    local_registration_id: RegistrationId,
    bundle: &PreKeyBundle,
    options: SessionOptions,
    now: Timestamp,
    rng: &mut R,
) -> Result<SessionState, SessionError> {
    bundle.verify()?;
    let with_kyber = bundle.kyber_pre_key.is_some();
    if !with_kyber && !options.accept_x3dh {
        return Err(SessionError::X3dhNotAllowed);
    }
    let their_signed_pre_key = &bundle.signed_pre_key.public_key;

    let base_key = KeyPair::generate(rng);
    let ratchet_key = KeyPair::generate(rng);

    let mut secret = secret_input();
    secret.extend_from_slice(
        identity
            .private_key()
            .agree(their_signed_pre_key)?
            .as_slice(),
    );
    secret.extend_from_slice(base_key.agree(bundle.identity_key.public_key())?.as_slice());
    secret.extend_from_slice(base_key.agree(their_signed_pre_key)?.as_slice());
    if let Some(pre_key) = &bundle.pre_key {
        secret.extend_from_slice(base_key.agree(&pre_key.public_key)?.as_slice());
    }
    let kyber = match &bundle.kyber_pre_key {
        Some(kyber) => {
            let (shared, ciphertext) = kyber.public_key.encapsulate(rng);
            secret.extend_from_slice(shared.as_slice());
            Some((kyber.id, ciphertext))
        }
        None => None,
    };

    let (root_key, chain_key) = derive_initial_keys(&secret, with_kyber);
    let (sending_root, sending_chain) =
        root_key.create_chain(their_signed_pre_key, ratchet_key.private_key())?;

    Ok(SessionState {
        version: if with_kyber {
            CIPHERTEXT_MESSAGE_CURRENT_VERSION
        } else {
            CIPHERTEXT_MESSAGE_PRE_KYBER_VERSION
        },
        local_identity: *identity.identity_key(),
        remote_identity: bundle.identity_key,
        local_registration_id,
        remote_registration_id: bundle.registration_id,
        alice_base_key: *base_key.public_key(),
        root_key: sending_root,
        previous_counter: 0,
        sender_chain: SenderChain {
            ratchet_key,
            chain_key: sending_chain,
        },
        receiver_chains: vec![ReceiverChain {
            ratchet_key: *their_signed_pre_key,
            chain_key,
            skipped: Default::default(),
        }],
        pending_pre_key: Some(PendingPreKey {
            pre_key_id: bundle.pre_key.as_ref().map(|pre_key| pre_key.id),
            signed_pre_key_id: bundle.signed_pre_key.id,
            base_key: *base_key.public_key(),
            timestamp: now,
            kyber,
        }),
    })
}

/// The local prekeys a PreKey message refers to, looked up by the caller.
pub(crate) struct BobPreKeys<'a> {
    pub(crate) signed: &'a SignedPreKeyRecord,
    pub(crate) one_time: Option<&'a PreKeyRecord>,
    pub(crate) kyber: Option<&'a KyberPreKeyRecord>,
}

/// Bob's side, from Alice's PreKey message. Consumes no randomness.
pub(crate) fn initialize_bob(
    identity: &IdentityKeyPair,
    local_registration_id: RegistrationId,
    message: &PreKeySignalMessage,
    keys: &BobPreKeys<'_>,
) -> Result<SessionState, SessionError> {
    let version = message.message_version();
    let kyber = match (message.kyber_ciphertext(), keys.kyber) {
        (Some(ciphertext), Some(record)) if version == CIPHERTEXT_MESSAGE_CURRENT_VERSION => {
            Some(record.key_pair().secret_key().decapsulate(ciphertext))
        }
        (None, None) if version == CIPHERTEXT_MESSAGE_PRE_KYBER_VERSION => None,
        // A version-3 message carrying Kyber data (or the reverse) is not something any
        // libsignal release produces; refuse it rather than guess which version was meant.
        _ => return Err(SessionError::KyberVersionMismatch),
    };
    let their_base_key = message.base_key();
    let our_signed = keys.signed.key_pair();

    let mut secret = secret_input();
    secret.extend_from_slice(
        our_signed
            .agree(message.identity_key().public_key())?
            .as_slice(),
    );
    secret.extend_from_slice(identity.private_key().agree(their_base_key)?.as_slice());
    secret.extend_from_slice(our_signed.agree(their_base_key)?.as_slice());
    if let Some(one_time) = keys.one_time {
        secret.extend_from_slice(one_time.key_pair().agree(their_base_key)?.as_slice());
    }
    if let Some(shared) = &kyber {
        secret.extend_from_slice(shared.as_slice());
    }
    let (root_key, chain_key) = derive_initial_keys(&secret, kyber.is_some());

    Ok(SessionState {
        version,
        local_identity: *identity.identity_key(),
        remote_identity: *message.identity_key(),
        local_registration_id,
        remote_registration_id: message.registration_id(),
        alice_base_key: *their_base_key,
        root_key,
        previous_counter: 0,
        sender_chain: SenderChain {
            ratchet_key: our_signed.clone(),
            chain_key,
        },
        receiver_chains: Vec::new(),
        pending_pre_key: None,
    })
}
