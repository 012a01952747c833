//! A device behind the facade plus the part of the key server it needs: the one-time bundles it
//! published (handed out once each) and its last-resort bundle.

use std::collections::VecDeque;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use spots_signal::pqxdh::PreKeyBundle;
use spots_signal::prekey_lifecycle::PreKeyPolicy;
use spots_signal::store::MemoryStoreError;
use spots_signal::transport::{Decrypted, OutgoingMessage, ReadyReport, TransportConfig};
use spots_signal::{
    Address, DeviceTarget, MemoryStore, SignalTransport, Timestamp, TransportError,
};

/// The time every scenario starts at.
pub const T0: Timestamp = Timestamp::from_millis(1_700_000_000_000);

/// A small policy so tests do not spend their time generating Kyber keys.
pub fn small_policy() -> PreKeyPolicy {
    PreKeyPolicy {
        one_time_batch: 4,
        one_time_threshold: 2,
        ..PreKeyPolicy::default()
    }
}

/// One device and its published bundles.
#[derive(Debug)]
pub struct Party {
    pub transport: SignalTransport<MemoryStore>,
    pub rng: ChaCha20Rng,
    pub one_time: VecDeque<PreKeyBundle>,
    pub last_resort: Option<PreKeyBundle>,
}

pub type Error = TransportError<MemoryStoreError>;

impl Party {
    /// A ready device at `address` (`agent.device`) with its randomness from `seed`.
    pub fn new(address: &str, seed: u64) -> Self {
        let config = TransportConfig {
            prekey_policy: small_policy(),
            ..TransportConfig::default()
        };
        let address: Address = address.parse().unwrap();
        let mut party = Self {
            transport: SignalTransport::with_config(MemoryStore::new(), address, config),
            rng: ChaCha20Rng::seed_from_u64(seed),
            one_time: VecDeque::new(),
            last_resort: None,
        };
        party.ready(T0);
        party
    }

    /// Runs `ensure_ready` and "uploads" the result.
    pub fn ready(&mut self, now: Timestamp) -> ReadyReport {
        let report = self.transport.ensure_ready(now, &mut self.rng).unwrap();
        let bundles = report.plan.bundles();
        self.one_time.extend(bundles.one_time);
        self.last_resort = Some(bundles.last_resort);
        report
    }

    pub fn address(&self) -> Address {
        self.transport.local_address().clone()
    }

    /// What the key server hands out: a one-time bundle while any is left.
    pub fn fetch_bundle(&mut self) -> PreKeyBundle {
        self.one_time
            .pop_front()
            .unwrap_or_else(|| self.last_resort.clone().unwrap())
    }

    /// Fetches `peer`'s bundle and processes it.
    pub fn connect(&mut self, peer: &mut Party, now: Timestamp) {
        let bundle = peer.fetch_bundle();
        self.transport
            .process_bundle(&peer.address(), &bundle, now, &mut self.rng)
            .unwrap();
    }

    pub fn send_all(
        &mut self,
        to: &Party,
        text: &[u8],
        now: Timestamp,
    ) -> Result<Vec<OutgoingMessage>, Error> {
        self.transport
            .encrypt_to_agent(&to.address().agent_id, DeviceTarget::All, text, now)
    }

    pub fn send_one(
        &mut self,
        to: &Party,
        text: &[u8],
        now: Timestamp,
    ) -> Result<OutgoingMessage, Error> {
        let mut out = self.transport.encrypt_to_agent(
            &to.address().agent_id,
            DeviceTarget::One(to.address().device_id),
            text,
            now,
        )?;
        assert_eq!(out.len(), 1);
        Ok(out.remove(0))
    }

    /// Encrypts to one device by address.
    pub fn send_one_to(&mut self, to: &Address, text: &[u8], now: Timestamp) -> OutgoingMessage {
        let mut out = self
            .transport
            .encrypt_to_agent(&to.agent_id, DeviceTarget::One(to.device_id), text, now)
            .unwrap();
        out.remove(0)
    }

    pub fn receive(
        &mut self,
        from: &Address,
        message: &OutgoingMessage,
        now: Timestamp,
    ) -> Result<Decrypted, Error> {
        self.transport.decrypt_from_agent(
            from,
            message.message_type as u8,
            &message.body,
            now,
            &mut self.rng,
        )
    }

    /// The store's bytes, to compare states.
    pub fn snapshot(&self) -> Vec<u8> {
        self.transport.store().export().to_vec()
    }
}
