//! Raw Signal Sender Keys over the facade's store, keyed like libsignal by
//! `(sender device, distribution id)`: for libsignal interop (the CLI's `group-*` commands)
//! and for hosts that run plain Sender Keys. Communities use [`crate::community`] instead,
//! which wraps the same records in SPOTS blobs.

use rand_core::CryptoRng;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::{
    SenderKeyLimits, create_distribution_message, group_decrypt, group_encrypt,
    process_distribution_message,
};
use crate::address::Address;
use crate::community::{EpochId, GroupError};
use crate::store::{Changes, ProtocolStore};
use crate::transport::{SignalTransport, TransportError};
use crate::wire::{SenderKeyDistributionMessage, SenderKeyMessage};

type Result<T, E> = core::result::Result<T, GroupError<E>>;

fn store<T, E>(result: core::result::Result<T, E>) -> Result<T, E> {
    result.map_err(|error| GroupError::Transport(TransportError::Store(error)))
}

impl<S: ProtocolStore> SignalTransport<S> {
    fn commit_sender_key(
        &mut self,
        sender: Address,
        distribution_id: Uuid,
        record: super::SenderKeyRecord,
    ) -> Result<(), S::Error> {
        let changes = Changes {
            sender_keys: vec![((sender, EpochId::new(distribution_id)), record)],
            ..Changes::default()
        };
        store(self.store.commit(changes))
    }

    /// Our distribution message for `distribution_id`, creating our chain on first use (see
    /// [`create_distribution_message`] for the draws). Send it to each member inside a Signal
    /// session.
    pub fn sender_key_distribution_message<R: CryptoRng + ?Sized>(
        &mut self,
        distribution_id: Uuid,
        rng: &mut R,
    ) -> Result<SenderKeyDistributionMessage, S::Error> {
        let local = self.local_address().clone();
        let existing = store(self.store.sender_key(&local, EpochId::new(distribution_id)))?;
        let (record, message) =
            create_distribution_message(existing.as_ref(), distribution_id, rng)?;
        if existing.as_ref() != Some(&record) {
            self.commit_sender_key(local, distribution_id, record)?;
        }
        Ok(message)
    }

    /// Encrypts with our chain for `distribution_id` (one `fill_bytes(64)` for the signature).
    pub fn sender_key_encrypt<R: CryptoRng + ?Sized>(
        &mut self,
        distribution_id: Uuid,
        plaintext: &[u8],
        rng: &mut R,
    ) -> Result<SenderKeyMessage, S::Error> {
        let local = self.local_address().clone();
        let record = store(self.store.sender_key(&local, EpochId::new(distribution_id)))?
            .ok_or(super::SenderKeyError::NoSenderKeyState { distribution_id })?;
        let (record, message) = group_encrypt(&record, distribution_id, plaintext, rng)?;
        self.commit_sender_key(local, distribution_id, record)?;
        Ok(message)
    }

    /// Stores the chain of `sender` from a distribution message that arrived inside a Signal
    /// session with that device (the caller vouches for where it came from).
    pub fn process_sender_key_distribution(
        &mut self,
        sender: &Address,
        message: &SenderKeyDistributionMessage,
    ) -> Result<(), S::Error> {
        if sender == self.local_address() {
            return Err(TransportError::OwnDevice.into());
        }
        let distribution_id = Uuid::from_bytes(*message.distribution_id());
        let existing = store(self.store.sender_key(sender, EpochId::new(distribution_id)))?;
        let record = process_distribution_message(
            existing.as_ref(),
            distribution_id,
            message,
            SenderKeyLimits::default(),
        )?;
        self.commit_sender_key(sender.clone(), distribution_id, record)
    }

    /// Decrypts a Sender Keys message from `sender` (signature checked first; nothing is
    /// committed on failure).
    pub fn sender_key_decrypt(
        &mut self,
        sender: &Address,
        message: &SenderKeyMessage,
    ) -> Result<Zeroizing<Vec<u8>>, S::Error> {
        if sender == self.local_address() {
            return Err(TransportError::OwnDevice.into());
        }
        let distribution_id = Uuid::from_bytes(*message.distribution_id());
        let existing = store(self.store.sender_key(sender, EpochId::new(distribution_id)))?;
        let (record, plaintext) =
            group_decrypt(existing.as_ref(), message, SenderKeyLimits::default())?;
        self.commit_sender_key(sender.clone(), distribution_id, record)?;
        Ok(Zeroizing::new(plaintext))
    }
}
