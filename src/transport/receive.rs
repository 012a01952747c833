//! Incoming: decrypting a device's message and committing everything it changed at once.

use core::fmt;

use rand_core::CryptoRng;
use zeroize::Zeroizing;

use super::error::store;
use super::{SignalTransport, TransportError};
use crate::address::Address;
use crate::keys::{
    KyberPreKeyId, KyberPreKeyRecord, PreKeyId, PreKeyRecord, SignedPreKeyId, SignedPreKeyRecord,
};
use crate::session::{PreKeyLookup, SessionError, decrypt_prekey_message, decrypt_signal_message};
use crate::store::{Changes, ProtocolStore};
use crate::time::Timestamp;
use crate::wire::{
    CIPHERTEXT_MESSAGE_PRE_KYBER_VERSION, CiphertextMessage, CiphertextMessageType,
    PreKeySignalMessage,
};

/// A decrypted message.
#[derive(Clone, PartialEq, Eq)]
pub struct Decrypted {
    /// The sending device.
    pub sender: Address,
    /// The plaintext (wiped on drop).
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The sender's identity key is not the approved one: show the user, and expect
    /// encryption to this device to fail until the new key is approved.
    pub identity_changed: bool,
    /// The message started a new session (a PreKey message that consumed prekeys).
    pub new_session: bool,
}

impl fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decrypted")
            .field("sender", &self.sender)
            .field("plaintext_len", &self.plaintext.len())
            .field("identity_changed", &self.identity_changed)
            .field("new_session", &self.new_session)
            .finish()
    }
}

/// The local prekeys one PreKey message names, read from the store up front so the pure core
/// can look them up without touching a fallible store.
struct NamedPreKeys {
    signed: Option<SignedPreKeyRecord>,
    one_time: Option<PreKeyRecord>,
    kyber: Option<KyberPreKeyRecord>,
}

impl PreKeyLookup for NamedPreKeys {
    fn signed_pre_key(&self, id: SignedPreKeyId) -> Option<SignedPreKeyRecord> {
        self.signed.clone().filter(|record| record.id() == id)
    }

    fn one_time_pre_key(&self, id: PreKeyId) -> Option<PreKeyRecord> {
        self.one_time.clone().filter(|record| record.id() == id)
    }

    fn kyber_pre_key(&self, id: KyberPreKeyId) -> Option<KyberPreKeyRecord> {
        self.kyber.clone().filter(|record| record.id() == id)
    }
}

impl<S: ProtocolStore> SignalTransport<S> {
    /// Decrypts a message from `sender` with the envelope's `message_type` (2 or 3).
    ///
    /// On success it commits, in one batch: the updated session, consumed one-time prekeys,
    /// a last-resort Kyber use, the trust record (first use or an identity change) and the
    /// sender's device joining its agent's list. On any failure nothing is committed.
    ///
    /// A PreKey message that would start a second session from the same last-resort Kyber
    /// key and base key is rejected as a replay ([`TransportError::KyberPreKeyReused`]).
    /// Version-3 (X3DH) messages are refused unless the configuration accepts X3DH.
    /// May draw one ratchet key (32 bytes) per session tried. `now` is accepted for
    /// time-based receive rules; the current rules need none.
    pub fn decrypt_from_agent<R: CryptoRng + ?Sized>(
        &mut self,
        sender: &Address,
        message_type: u8,
        body: &[u8],
        now: Timestamp,
        rng: &mut R,
    ) -> Result<Decrypted, TransportError<S::Error>> {
        let (decrypted, changes) =
            self.decrypt_uncommitted(sender, message_type, body, now, rng)?;
        store(self.store.commit(changes))?;
        Ok(decrypted)
    }

    /// [`Self::decrypt_from_agent`] without the commit: the plaintext and the batch to commit,
    /// so a caller in the crate (the community facade) can add its own records to the same
    /// atomic batch.
    pub(crate) fn decrypt_uncommitted<R: CryptoRng + ?Sized>(
        &self,
        sender: &Address,
        message_type: u8,
        body: &[u8],
        now: Timestamp,
        rng: &mut R,
    ) -> Result<(Decrypted, Changes), TransportError<S::Error>> {
        let _ = now;
        self.check_peer(sender)?;
        let identity = self.identity()?;
        let message =
            CiphertextMessage::decode(CiphertextMessageType::try_from(message_type)?, body)?;
        let existing = store(self.store.session(sender))?;
        let mut changes = Changes::default();
        let (record, plaintext, new_session) = match message {
            CiphertextMessage::Whisper(message) => {
                // With X3DH off, existing X3DH sessions are refused too (fail closed); a
                // version-3 message can only belong to one.
                if message.message_version() <= CIPHERTEXT_MESSAGE_PRE_KYBER_VERSION
                    && !self.config.session_options.accept_x3dh
                {
                    return Err(SessionError::X3dhNotAllowed.into());
                }
                let record = existing.ok_or(SessionError::SessionNotFound)?;
                let (record, plaintext) = decrypt_signal_message(&record, &message, rng)?;
                (record, plaintext, false)
            }
            CiphertextMessage::PreKey(message) => {
                let named = self.named_pre_keys(&message)?;
                let outcome = decrypt_prekey_message(
                    existing.as_ref(),
                    &identity.key_pair,
                    identity.registration_id,
                    &message,
                    &named,
                    self.config.session_options,
                    rng,
                )?;
                let new_session = outcome.used_pre_keys.is_some();
                if let Some(used) = outcome.used_pre_keys {
                    changes.removed_pre_keys.extend(used.one_time_pre_key_id);
                    match used.kyber_pre_key {
                        Some((id, false)) => changes.removed_kyber_pre_keys.push(id),
                        Some((id, true)) => {
                            if store(self.store.kyber_last_resort_used(id, &used.base_key))? {
                                return Err(TransportError::KyberPreKeyReused(id));
                            }
                            changes.kyber_last_resort_uses.push((id, used.base_key));
                        }
                        None => {}
                    }
                }
                (outcome.record, outcome.plaintext, new_session)
            }
        };
        // The session that decrypted is now current; its remote identity authenticated the
        // message (the MAC binds both identity keys).
        let remote = *record.remote_identity().ok_or(SessionError::InvalidState)?;
        let identity_changed = self.observe_identity(sender, &remote, &mut changes)?;
        self.add_device(sender, &mut changes)?;
        changes.sessions.push((sender.clone(), record));
        Ok((
            Decrypted {
                sender: sender.clone(),
                plaintext: Zeroizing::new(plaintext),
                identity_changed,
                new_session,
            },
            changes,
        ))
    }

    fn named_pre_keys(
        &self,
        message: &PreKeySignalMessage,
    ) -> Result<NamedPreKeys, TransportError<S::Error>> {
        Ok(NamedPreKeys {
            signed: store(self.store.signed_pre_key(message.signed_pre_key_id()))?,
            one_time: match message.pre_key_id() {
                Some(id) => store(self.store.pre_key(id))?,
                None => None,
            },
            kyber: match message.kyber_pre_key_id() {
                Some(id) => store(self.store.kyber_pre_key(id))?,
                None => None,
            },
        })
    }
}
