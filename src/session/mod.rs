//! 1:1 sessions: establishment, encryption and decryption over [`SessionRecord`]s.
//!
//! Every operation is a pure function: it borrows the inputs and returns new values. A failed
//! operation therefore leaves the caller's state exactly as it was, and a caller persists the
//! returned record (and deletes consumed prekeys) only on `Ok` — one transaction per call.
//!
//! Trust decisions stay with the caller: check the bundle's or message's identity key (or
//! [`SessionRecord::remote_identity`] of a returned record) against the identity store before
//! committing.
//!
//! Limits (PROTOCOL.md "Double Ratchet", plus two bounds of our own): at most
//! [`MAX_RECEIVER_CHAINS`] receiving chains per session, [`MAX_MESSAGE_KEYS`] stored skipped
//! keys per chain and [`MAX_ARCHIVED_STATES`] archived sessions per record; a message at most
//! [`MAX_FORWARD_JUMPS`] ahead of its chain, with one budget of that many chain steps shared by
//! every session a decryption tries (see [`decrypt_signal_message`]); and at most
//! [`MAX_RECORD_SKIPPED_KEYS`] stored skipped keys in a whole record, the oldest archived
//! sessions losing theirs first, so a peer cannot inflate a record beyond about 1 MB.

pub mod inspect;
pub(crate) mod record;
pub(crate) mod state;

pub use record::{MAX_ARCHIVED_STATES, MAX_RECORD_SKIPPED_KEYS, SessionRecord};
pub use state::{
    MAX_FORWARD_JUMPS, MAX_MESSAGE_KEYS, MAX_RECEIVER_CHAINS, MAX_UNACKNOWLEDGED_SESSION_AGE,
};

use rand_core::CryptoRng;

use crate::error::ErrorClass;
use crate::keys::{
    IdentityKey, IdentityKeyPair, KeyError, KyberPreKeyId, KyberPreKeyRecord, PreKeyId,
    PreKeyRecord, PublicKey, RegistrationId, SignedPreKeyId, SignedPreKeyRecord,
};
use crate::pqxdh::{self, BobPreKeys, BundleError, PreKeyBundle, SessionOptions};
use crate::time::Timestamp;
use crate::wire::{
    CIPHERTEXT_MESSAGE_PRE_KYBER_VERSION, CiphertextMessage, PreKeySignalMessage, SignalMessage,
};

/// Why a session operation failed. Authentication failures are deliberately opaque.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// No current session, or its unacknowledged PreKey messages expired (fetch a new bundle).
    #[error("session not found")]
    SessionNotFound,
    /// The session's remote identity is not the identity the caller trusts.
    #[error("untrusted identity")]
    UntrustedIdentity,
    /// The session was built for a different local identity.
    #[error("session belongs to a different local identity")]
    LocalIdentityMismatch,
    /// The message's key was already used (or evicted): a replay or duplicate delivery.
    #[error("message with old counter {chain_index} / {counter}")]
    DuplicateMessage {
        /// The receiving chain's current position.
        chain_index: u32,
        /// The message's counter.
        counter: u32,
    },
    /// The message failed authentication or decryption in every candidate session.
    #[error("invalid message: decryption failed")]
    DecryptionFailed,
    /// The message's counter is more than 25,000 ahead of its chain.
    #[error("message from too far into the future: {counter} / {chain_index}")]
    TooFarIntoFuture {
        /// The receiving chain's current position.
        chain_index: u32,
        /// The message's counter.
        counter: u32,
    },
    /// The message version differs from the session version.
    #[error("message version {message} does not match session version {session}")]
    VersionMismatch {
        /// The session's version.
        session: u8,
        /// The message's version.
        message: u8,
    },
    /// A PreKey message's version and Kyber fields disagree (v4 without Kyber prekey on file
    /// or v3 carrying a Kyber ciphertext).
    #[error("PreKey message version does not match its Kyber fields")]
    KyberVersionMismatch,
    /// The peer offers only X3DH (no Kyber prekey), or the message or session is X3DH
    /// (version 3), and [`SessionOptions::accept_x3dh`] is off.
    #[error("X3DH (no Kyber prekey) is not accepted")]
    X3dhNotAllowed,
    /// The message names a one-time prekey we do not have (already used or never issued).
    #[error("invalid prekey identifier {0}")]
    InvalidPreKeyId(PreKeyId),
    /// The message names a signed prekey we do not have.
    #[error("invalid signed prekey identifier {0}")]
    InvalidSignedPreKeyId(SignedPreKeyId),
    /// The message names a Kyber prekey we do not have.
    #[error("invalid kyber prekey identifier {0}")]
    InvalidKyberPreKeyId(KyberPreKeyId),
    /// The bundle failed verification.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// A key agreement failed (low-order peer key).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A chain reached 2^32 messages.
    #[error("chain index exhausted")]
    ChainExhausted,
    /// The session state is internally inconsistent.
    #[error("invalid session state")]
    InvalidState,
}

impl SessionError {
    /// The stable class of this error.
    #[must_use]
    pub const fn class(&self) -> ErrorClass {
        match self {
            Self::SessionNotFound => ErrorClass::SessionNotFound,
            Self::UntrustedIdentity => ErrorClass::UntrustedIdentity,
            Self::DuplicateMessage { .. } => ErrorClass::DuplicateMessage,
            Self::DecryptionFailed
            | Self::TooFarIntoFuture { .. }
            | Self::VersionMismatch { .. }
            | Self::KyberVersionMismatch => ErrorClass::InvalidMessage,
            Self::X3dhNotAllowed => ErrorClass::ProtocolNotAllowed,
            Self::InvalidPreKeyId(_)
            | Self::InvalidSignedPreKeyId(_)
            | Self::InvalidKyberPreKeyId(_) => ErrorClass::InvalidPreKeyId,
            Self::Bundle(error) => error.class(),
            Self::Key(error) => error.class(),
            Self::LocalIdentityMismatch | Self::ChainExhausted | Self::InvalidState => {
                ErrorClass::InvalidState
            }
        }
    }
}

/// Read-only access to the local device's prekeys, so decrypting a PreKey message can find
/// the keys it names. Implementations return owned copies (records are cheap to clone).
pub trait PreKeyLookup {
    /// The signed prekey with this id, if still kept.
    fn signed_pre_key(&self, id: SignedPreKeyId) -> Option<SignedPreKeyRecord>;
    /// The one-time EC prekey with this id, if not yet consumed.
    fn one_time_pre_key(&self, id: PreKeyId) -> Option<PreKeyRecord>;
    /// The Kyber prekey with this id, if not yet consumed (or last-resort).
    fn kyber_pre_key(&self, id: KyberPreKeyId) -> Option<KyberPreKeyRecord>;
}

/// Prekeys a successful PreKey-message decryption used; the caller deletes the one-time EC
/// prekey and the one-time Kyber prekey (or records last-resort use) when it commits.
///
/// **Replay protection is the caller's job** whenever no one-time key was consumed: a PreKey
/// message built on the last-resort Kyber key (`kyber_pre_key` with `true`), or without a
/// one-time EC prekey, can be replayed after its session is gone (deleted, or evicted from the
/// archive) and would build the same session again. Record `(kyber id, base_key)` for every
/// last-resort use and refuse a message whose pair was seen before, as
/// [`crate::SignalTransport`] does ([`crate::TransportError::KyberPreKeyReused`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsedPreKeys {
    /// The signed prekey.
    pub signed_pre_key_id: SignedPreKeyId,
    /// The one-time EC prekey, if the message used one.
    pub one_time_pre_key_id: Option<PreKeyId>,
    /// The Kyber prekey and whether it is the last-resort key.
    pub kyber_pre_key: Option<(KyberPreKeyId, bool)>,
    /// The initiator's base key, which identifies the new session: what a caller records with
    /// a last-resort key to detect replays.
    pub base_key: PublicKey,
}

/// Result of decrypting a PreKey message.
pub struct PreKeyDecryption {
    /// The updated record to persist.
    pub record: SessionRecord,
    /// The plaintext.
    pub plaintext: Vec<u8>,
    /// Prekeys consumed by a newly created session; `None` when the message belonged to a
    /// session that already existed (a repeated PreKey message).
    pub used_pre_keys: Option<UsedPreKeys>,
}

/// Starts a session from a fetched bundle (the initiator, "Alice"). Verifies both prekey
/// signatures first. The new session becomes current and any existing one is archived.
///
/// Draws, in order: base key (`fill_bytes(32)`), first ratchet key (`fill_bytes(32)`), KEM
/// randomness (32 `next_u32`).
pub fn process_prekey_bundle<R: CryptoRng + ?Sized>(
    record: Option<&SessionRecord>,
    local_identity: &IdentityKeyPair,
    local_registration_id: RegistrationId,
    bundle: &PreKeyBundle,
    options: SessionOptions,
    now: Timestamp,
    rng: &mut R,
) -> Result<SessionRecord, SessionError> {
    let state = pqxdh::initialize_alice(
        local_identity,
        local_registration_id,
        bundle,
        options,
        now,
        rng,
    )?;
    let mut record = record.cloned().unwrap_or_default();
    record.promote_state(state);
    Ok(record)
}

/// Encrypts `plaintext` in the current session. Until the peer has replied this yields PreKey
/// messages. Consumes no randomness.
///
/// `remote_identity` is the identity the caller trusts for the peer; a session with another
/// identity is refused rather than used.
///
/// **Persist the returned record before sending the message.** Encryption is deterministic: the
/// message keys come from the sending chain, which only the returned record has advanced. If
/// the message goes out but the old record stays stored (a crash, a failed write), the next
/// call encrypts under the same AES key and IV and MAC key again.
///
/// No version policy is applied here: a caller that refuses X3DH
/// ([`SessionOptions::accept_x3dh`] off) checks [`SessionRecord::session_version`] first, as
/// the facade does.
pub fn encrypt(
    record: &SessionRecord,
    local_identity: &IdentityKey,
    remote_identity: &IdentityKey,
    plaintext: &[u8],
    now: Timestamp,
) -> Result<(SessionRecord, CiphertextMessage), SessionError> {
    let mut updated = record.clone();
    let state = updated
        .current
        .as_mut()
        .ok_or(SessionError::SessionNotFound)?;
    if state.local_identity != *local_identity {
        return Err(SessionError::LocalIdentityMismatch);
    }
    if state.remote_identity != *remote_identity {
        return Err(SessionError::UntrustedIdentity);
    }
    if state.unacknowledged_expired(now) {
        return Err(SessionError::SessionNotFound);
    }
    let message = state.encrypt(plaintext)?;
    Ok((updated, message))
}

/// Decrypts a `SignalMessage` (type 2). Tries the current session, then archived ones (most
/// recent first), and promotes the one that succeeds. A duplicate is reported as such at once;
/// any other failure becomes [`SessionError::DecryptionFailed`].
///
/// May draw one ratchet key (`fill_bytes(32)`) per session tried, even when it then fails,
/// exactly as libsignal does.
///
/// The session that decrypted becomes current, and it may be an archived session with another
/// peer identity: check the returned record's [`SessionRecord::remote_identity`] against the
/// trusted identity before persisting it or acting on the plaintext (the facade does). No
/// version policy is applied here: a caller that refuses X3DH refuses version-3 messages
/// ([`SignalMessage::message_version`]) first, as the facade does.
///
/// **Work bound (a deliberate deviation from libsignal).** Reaching a message's counter walks
/// its receiving chain forward, one HMAC per step, and libsignal allows up to
/// [`MAX_FORWARD_JUMPS`] steps in *each* session it tries — with 40 archived sessions a single
/// forged message could cost a million steps. Here the sessions tried for one message share one
/// budget of [`MAX_FORWARD_JUMPS`] steps in total, and skipped message keys are only stored
/// after the MAC verified. The only messages this refuses that libsignal would accept are late
/// messages of an archived session whose counter is far ahead of its chain while newer
/// sessions have used up the budget (roughly: sessions tried × counter gap > 25,000).
pub fn decrypt_signal_message<R: CryptoRng + ?Sized>(
    record: &SessionRecord,
    message: &SignalMessage,
    rng: &mut R,
) -> Result<(SessionRecord, Vec<u8>), SessionError> {
    if record.current.is_none() && record.previous.is_empty() {
        return Err(SessionError::SessionNotFound);
    }
    let mut budget = MAX_FORWARD_JUMPS;
    if let Some(current) = &record.current {
        let mut state = current.clone();
        match state.decrypt(message, &mut budget, rng) {
            Ok(plaintext) => {
                let mut updated = record.clone();
                updated.current = Some(state);
                updated.enforce_skipped_key_cap();
                return Ok((updated, plaintext));
            }
            Err(error @ SessionError::DuplicateMessage { .. }) => return Err(error),
            Err(_) => {}
        }
    }
    for (index, previous) in record.previous.iter().enumerate() {
        let mut state = previous.clone();
        match state.decrypt(message, &mut budget, rng) {
            Ok(plaintext) => {
                let mut updated = record.clone();
                updated.promote_archived(index, state);
                updated.enforce_skipped_key_cap();
                return Ok((updated, plaintext));
            }
            Err(error @ SessionError::DuplicateMessage { .. }) => return Err(error),
            Err(_) => {}
        }
    }
    Err(SessionError::DecryptionFailed)
}

/// Decrypts a `PreKeySignalMessage` (type 3) as the responder ("Bob").
///
/// If a session with the message's version and base key exists (current or archived) it is
/// reused and no prekey is consumed; otherwise a new session is built from the prekeys the
/// message names (looked up in `prekeys`) and becomes current, archiving the previous one.
/// Only that session is tried: a failing PreKey message gets no fallback.
///
/// This function cannot tell a replayed PreKey message from a new one once the session it
/// built is gone: when [`UsedPreKeys`] shows no one-time key was consumed (last-resort Kyber
/// key, or no one-time EC prekey), replay protection is the caller's job (see
/// [`UsedPreKeys`]).
///
/// Check the returned record's [`SessionRecord::remote_identity`] against the trusted identity
/// before persisting it (the facade does).
pub fn decrypt_prekey_message<R: CryptoRng + ?Sized, L: PreKeyLookup + ?Sized>(
    record: Option<&SessionRecord>,
    local_identity: &IdentityKeyPair,
    local_registration_id: RegistrationId,
    message: &PreKeySignalMessage,
    prekeys: &L,
    options: SessionOptions,
    rng: &mut R,
) -> Result<PreKeyDecryption, SessionError> {
    if message.message_version() <= CIPHERTEXT_MESSAGE_PRE_KYBER_VERSION && !options.accept_x3dh {
        return Err(SessionError::X3dhNotAllowed);
    }
    let mut updated = record.cloned().unwrap_or_default();
    let used_pre_keys =
        if updated.promote_matching_session(message.message_version(), message.base_key()) {
            None
        } else {
            let (state, used) =
                new_responder_session(local_identity, local_registration_id, message, prekeys)?;
            updated.promote_state(state);
            Some(used)
        };
    let state = updated.current.as_mut().ok_or(SessionError::InvalidState)?;
    let mut budget = MAX_FORWARD_JUMPS;
    let plaintext = state.decrypt(message.message(), &mut budget, rng)?;
    updated.enforce_skipped_key_cap();
    Ok(PreKeyDecryption {
        record: updated,
        plaintext,
        used_pre_keys,
    })
}

impl core::fmt::Debug for PreKeyDecryption {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let Self {
            record,
            plaintext,
            used_pre_keys,
        } = self;
        f.debug_struct("PreKeyDecryption")
            .field("record", record)
            .field("plaintext_len", &plaintext.len())
            .field("used_pre_keys", used_pre_keys)
            .finish()
    }
}

fn new_responder_session<L: PreKeyLookup + ?Sized>(
    local_identity: &IdentityKeyPair,
    local_registration_id: RegistrationId,
    message: &PreKeySignalMessage,
    prekeys: &L,
) -> Result<(state::SessionState, UsedPreKeys), SessionError> {
    let signed_id = message.signed_pre_key_id();
    let signed = prekeys
        .signed_pre_key(signed_id)
        .ok_or(SessionError::InvalidSignedPreKeyId(signed_id))?;
    let one_time = match message.pre_key_id() {
        Some(id) => Some(
            prekeys
                .one_time_pre_key(id)
                .ok_or(SessionError::InvalidPreKeyId(id))?,
        ),
        None => None,
    };
    let kyber = match message.kyber_pre_key_id() {
        Some(id) => Some(
            prekeys
                .kyber_pre_key(id)
                .ok_or(SessionError::InvalidKyberPreKeyId(id))?,
        ),
        None => None,
    };
    let keys = BobPreKeys {
        signed: &signed,
        one_time: one_time.as_ref(),
        kyber: kyber.as_ref(),
    };
    let state = pqxdh::initialize_bob(local_identity, local_registration_id, message, &keys)?;
    let used = UsedPreKeys {
        signed_pre_key_id: signed_id,
        one_time_pre_key_id: message.pre_key_id(),
        kyber_pre_key: kyber
            .as_ref()
            .map(|record| (record.id(), record.is_last_resort())),
        base_key: *message.base_key(),
    };
    Ok((state, used))
}

#[cfg(test)]
mod tests {
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::*;
    use crate::cipher::work::chain_steps;
    use crate::keys::KeyPair;
    use crate::ratchet::{ChainKey, MessageKeySeed};
    use crate::wire::CIPHERTEXT_MESSAGE_CURRENT_VERSION;

    const T0: Timestamp = Timestamp::from_secs(1_700_000_000);

    /// Bob's prekeys.
    struct BobPreKeys {
        signed: SignedPreKeyRecord,
        kyber: KyberPreKeyRecord,
        one_time: Vec<PreKeyRecord>,
    }

    impl PreKeyLookup for BobPreKeys {
        fn signed_pre_key(&self, id: SignedPreKeyId) -> Option<SignedPreKeyRecord> {
            (self.signed.id() == id).then(|| self.signed.clone())
        }
        fn one_time_pre_key(&self, id: PreKeyId) -> Option<PreKeyRecord> {
            self.one_time
                .iter()
                .find(|record| record.id() == id)
                .cloned()
        }
        fn kyber_pre_key(&self, id: KyberPreKeyId) -> Option<KyberPreKeyRecord> {
            (self.kyber.id() == id).then(|| self.kyber.clone())
        }
    }

    /// Alice's record after starting `sessions` sessions with Bob (all but the last archived),
    /// both identities and Bob's prekeys.
    fn record_with_sessions(
        sessions: usize,
        rng: &mut ChaCha20Rng,
    ) -> (SessionRecord, IdentityKeyPair, IdentityKeyPair, BobPreKeys) {
        let alice = IdentityKeyPair::generate(rng);
        let bob = IdentityKeyPair::generate(rng);
        let mut keys = BobPreKeys {
            signed: SignedPreKeyRecord::generate(SignedPreKeyId(1), &bob, T0, rng),
            kyber: KyberPreKeyRecord::generate(KyberPreKeyId(1), &bob, T0, true, rng),
            one_time: Vec::new(),
        };
        let mut record = SessionRecord::new();
        for id in 0..sessions {
            let one_time = PreKeyRecord::generate(PreKeyId(id as u32), rng);
            let bundle = PreKeyBundle::from_records(
                RegistrationId(2),
                1,
                *bob.identity_key(),
                &keys.signed,
                Some(&one_time),
                Some(&keys.kyber),
            );
            keys.one_time.push(one_time);
            record = process_prekey_bundle(
                Some(&record),
                &alice,
                RegistrationId(1),
                &bundle,
                SessionOptions::default(),
                T0,
                rng,
            )
            .unwrap();
        }
        (record, alice, bob, keys)
    }

    #[test]
    fn forged_message_work_is_bounded_across_all_sessions() {
        let mut rng = ChaCha20Rng::seed_from_u64(41);
        let (record, alice, bob, _) = record_with_sessions(MAX_ARCHIVED_STATES + 1, &mut rng);
        assert_eq!(record.archived_session_count(), MAX_ARCHIVED_STATES);
        let forged = SignalMessage::new(
            CIPHERTEXT_MESSAGE_CURRENT_VERSION,
            &[0x42; 32],
            *KeyPair::generate(&mut rng).public_key(),
            MAX_FORWARD_JUMPS,
            0,
            vec![0; 16],
            bob.identity_key(),
            alice.identity_key(),
        );
        let before = chain_steps();
        let error = decrypt_signal_message(&record, &forged, &mut rng).unwrap_err();
        let steps = chain_steps() - before;
        assert_eq!(error, SessionError::DecryptionFailed);
        assert_eq!(error.class(), ErrorClass::InvalidMessage);
        // One walk of 25,000 steps (plus the step past the message per session tried), where
        // libsignal's rules would walk 41 times.
        let sessions = (MAX_ARCHIVED_STATES + 1) as u64;
        assert!(
            steps <= u64::from(MAX_FORWARD_JUMPS) + sessions,
            "{steps} chain steps"
        );
    }

    #[test]
    fn sessions_share_the_forward_jump_budget() {
        let mut rng = ChaCha20Rng::seed_from_u64(42);
        let (record, alice, bob, _) = record_with_sessions(3, &mut rng);
        // A forged message with a small gap is tried in every session, each walking its gap.
        let forged = SignalMessage::new(
            CIPHERTEXT_MESSAGE_CURRENT_VERSION,
            &[0x42; 32],
            *KeyPair::generate(&mut rng).public_key(),
            100,
            0,
            vec![0; 16],
            bob.identity_key(),
            alice.identity_key(),
        );
        let before = chain_steps();
        let error = decrypt_signal_message(&record, &forged, &mut rng).unwrap_err();
        assert_eq!(error, SessionError::DecryptionFailed);
        assert_eq!(chain_steps() - before, 3 * 101);

        // A single session tried directly gets the whole budget, and a trial walk stores nothing.
        let mut state = record.current.clone().unwrap();
        let mut budget = MAX_FORWARD_JUMPS;
        assert_eq!(
            state.decrypt(&forged, &mut budget, &mut rng).unwrap_err(),
            SessionError::DecryptionFailed
        );
        assert_eq!(budget, MAX_FORWARD_JUMPS - 100);
        assert!(state.receiver_chains.iter().all(|c| c.skipped.is_empty()));
        // An exhausted budget refuses the walk before any step.
        let mut state = record.current.clone().unwrap();
        let mut budget = 99;
        let before = chain_steps();
        assert!(matches!(
            state.decrypt(&forged, &mut budget, &mut rng).unwrap_err(),
            SessionError::TooFarIntoFuture { counter: 100, .. }
        ));
        assert_eq!(chain_steps(), before);
    }

    #[test]
    fn stored_skipped_keys_are_capped_per_record() {
        let mut rng = ChaCha20Rng::seed_from_u64(43);
        let (mut alice_record, alice, bob, keys) = record_with_sessions(1, &mut rng);
        let mut send = |text: &[u8]| {
            let (updated, message) = encrypt(
                &alice_record,
                alice.identity_key(),
                bob.identity_key(),
                text,
                T0,
            )
            .unwrap();
            alice_record = updated;
            match message {
                CiphertextMessage::PreKey(message) => message,
                CiphertextMessage::Whisper(_) => panic!("PreKey message expected"),
            }
        };
        let (m0, m1, m2) = (send(b"0"), send(b"1"), send(b"2"));
        let receive = |record: Option<&SessionRecord>, message: &PreKeySignalMessage| {
            decrypt_prekey_message(
                record,
                &bob,
                RegistrationId(2),
                message,
                &keys,
                SessionOptions::default(),
                &mut ChaCha20Rng::seed_from_u64(7),
            )
            .unwrap()
        };
        let mut bob_record = receive(None, &m2).record;
        assert_eq!(bob_record.skipped_key_count(), 2);

        // Forty archived sessions full of stored keys: 80,000 more than the current's two.
        let template = bob_record.current.clone().unwrap();
        for session in 0..MAX_ARCHIVED_STATES {
            let mut state = template.clone();
            let chain = &mut state.receiver_chains[0];
            chain.chain_key = ChainKey::new([session as u8; 32], 5000);
            chain.skipped = (0..MAX_MESSAGE_KEYS as u32)
                .rev()
                .map(|counter| MessageKeySeed::new([session as u8; 32], counter))
                .collect();
            bob_record.previous.push_back(state);
        }
        assert_eq!(bob_record.skipped_key_count(), 80_002);

        // Decrypting consumes the key of message 0 and enforces the cap: the newest sessions
        // keep their keys, the oldest archived lose theirs, oldest keys first.
        let outcome = receive(Some(&bob_record), &m0);
        assert_eq!(outcome.plaintext, b"0");
        let record = outcome.record;
        assert_eq!(record.skipped_key_count(), MAX_RECORD_SKIPPED_KEYS);
        let kept = |index: usize| record.previous[index].receiver_chains[0].skipped.len();
        assert_eq!(
            record.current.as_ref().unwrap().receiver_chains[0]
                .skipped
                .len(),
            1
        );
        assert_eq!(kept(0), MAX_MESSAGE_KEYS);
        assert_eq!(kept(8), MAX_MESSAGE_KEYS);
        assert_eq!(kept(9), MAX_MESSAGE_KEYS - 1);
        let oldest_kept = record.previous[9].receiver_chains[0]
            .skipped
            .back()
            .unwrap();
        assert_eq!(oldest_kept.counter(), 1);
        assert!((10..MAX_ARCHIVED_STATES).all(|index| kept(index) == 0));
        // The current session's stored key still works.
        assert_eq!(receive(Some(&record), &m1).plaintext, b"1");
    }
}
