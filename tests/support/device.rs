//! A minimal in-memory device for behaviour and property tests: identity, prekeys, one record
//! per peer, and the commit-only-on-success discipline a real store follows.

use rand_chacha::ChaCha20Rng;
use spots_signal::keys::{
    IdentityKeyPair, KyberPreKeyId, KyberPreKeyRecord, PreKeyId, PreKeyRecord, RegistrationId,
    SignedPreKeyId, SignedPreKeyRecord,
};
use spots_signal::pqxdh::{PreKeyBundle, SessionOptions};
use spots_signal::wire::{CiphertextMessage, CiphertextMessageType};
use spots_signal::{
    PreKeyLookup, SessionError, SessionRecord, Timestamp, decrypt_prekey_message,
    decrypt_signal_message, encrypt, process_prekey_bundle,
};

/// The local prekey store.
#[derive(Debug, Clone, Default)]
pub struct PreKeys {
    pub signed: Vec<SignedPreKeyRecord>,
    pub one_time: Vec<PreKeyRecord>,
    pub kyber: Vec<KyberPreKeyRecord>,
}

impl PreKeyLookup for PreKeys {
    fn signed_pre_key(&self, id: SignedPreKeyId) -> Option<SignedPreKeyRecord> {
        self.signed.iter().find(|r| r.id() == id).cloned()
    }
    fn one_time_pre_key(&self, id: PreKeyId) -> Option<PreKeyRecord> {
        self.one_time.iter().find(|r| r.id() == id).cloned()
    }
    fn kyber_pre_key(&self, id: KyberPreKeyId) -> Option<KyberPreKeyRecord> {
        self.kyber.iter().find(|r| r.id() == id).cloned()
    }
}

/// A device talking to one peer.
#[derive(Debug)]
pub struct Device {
    pub identity: IdentityKeyPair,
    pub registration_id: RegistrationId,
    pub prekeys: PreKeys,
    pub record: Option<SessionRecord>,
    pub rng: ChaCha20Rng,
    next_id: u32,
}

impl Device {
    /// A device whose randomness comes from `seed`.
    pub fn new(seed: u64, registration_id: u32) -> Self {
        let mut rng = super::seeded(&serde_json::json!(seed));
        let identity = IdentityKeyPair::generate(&mut rng);
        let now = Timestamp::from_secs(1_700_000_000);
        let signed = SignedPreKeyRecord::generate(SignedPreKeyId(1), &identity, now, &mut rng);
        let last_resort =
            KyberPreKeyRecord::generate(KyberPreKeyId(1), &identity, now, true, &mut rng);
        Self {
            identity,
            registration_id: RegistrationId(registration_id),
            prekeys: PreKeys {
                signed: vec![signed],
                one_time: Vec::new(),
                kyber: vec![last_resort],
            },
            record: None,
            rng,
            next_id: 100,
        }
    }

    /// Publishes a bundle with a fresh one-time EC prekey and a fresh one-time Kyber prekey
    /// (or the last-resort Kyber key when `last_resort`).
    pub fn bundle(&mut self, last_resort: bool) -> PreKeyBundle {
        self.next_id += 1;
        let now = Timestamp::from_secs(1_700_000_000);
        let one_time = PreKeyRecord::generate(PreKeyId(self.next_id), &mut self.rng);
        let kyber = if last_resort {
            self.prekeys.kyber[0].clone()
        } else {
            let record = KyberPreKeyRecord::generate(
                KyberPreKeyId(self.next_id),
                &self.identity,
                now,
                false,
                &mut self.rng,
            );
            self.prekeys.kyber.push(record.clone());
            record
        };
        self.prekeys.one_time.push(one_time.clone());
        PreKeyBundle::from_records(
            self.registration_id,
            1,
            *self.identity.identity_key(),
            &self.prekeys.signed[0],
            Some(&one_time),
            Some(&kyber),
        )
    }

    /// Starts a session from `bundle` and commits it.
    pub fn start_session(&mut self, bundle: &PreKeyBundle, now: Timestamp) {
        let record = process_prekey_bundle(
            self.record.as_ref(),
            &self.identity,
            self.registration_id,
            bundle,
            SessionOptions::default(),
            now,
            &mut self.rng,
        )
        .unwrap();
        self.record = Some(record);
    }

    /// Encrypts to `peer` and commits.
    pub fn send(
        &mut self,
        peer: &IdentityKeyPair,
        plaintext: &[u8],
        now: Timestamp,
    ) -> CiphertextMessage {
        let (record, message) = encrypt(
            self.record.as_ref().expect("a session"),
            self.identity.identity_key(),
            peer.identity_key(),
            plaintext,
            now,
        )
        .unwrap();
        self.record = Some(record);
        message
    }

    /// Decrypts like a host would: parse, decrypt, and commit (state and consumed one-time
    /// prekeys) only on success. Returns the error otherwise, with state untouched.
    pub fn receive(
        &mut self,
        message_type: CiphertextMessageType,
        bytes: &[u8],
    ) -> Result<Vec<u8>, SessionError> {
        let message = CiphertextMessage::decode(message_type, bytes)
            .map_err(|_| SessionError::DecryptionFailed)?;
        match message {
            CiphertextMessage::Whisper(message) => {
                let record = self.record.as_ref().ok_or(SessionError::SessionNotFound)?;
                let (record, plaintext) = decrypt_signal_message(record, &message, &mut self.rng)?;
                self.record = Some(record);
                Ok(plaintext)
            }
            CiphertextMessage::PreKey(message) => {
                let outcome = decrypt_prekey_message(
                    self.record.as_ref(),
                    &self.identity,
                    self.registration_id,
                    &message,
                    &self.prekeys,
                    SessionOptions::default(),
                    &mut self.rng,
                )?;
                if let Some(used) = outcome.used_pre_keys {
                    self.prekeys
                        .one_time
                        .retain(|r| Some(r.id()) != used.one_time_pre_key_id);
                    if let Some((id, false)) = used.kyber_pre_key {
                        self.prekeys.kyber.retain(|r| r.id() != id);
                    }
                }
                self.record = Some(outcome.record);
                Ok(outcome.plaintext)
            }
        }
    }
}
