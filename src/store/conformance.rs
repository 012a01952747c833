//! The behaviour every [`ProtocolStore`] backend must show, as a check other backends (the
//! native SQLite store, a browser store) run in their own tests:
//!
//! ```ignore
//! spots_signal::store::conformance::check(|| SqliteStore::open_in_memory().unwrap()).unwrap();
//! ```
//!
//! It writes and reads back every record type, checks overwrites, removals and the id listings,
//! and finally runs two facades over fresh stores through a conversation, which fails if any
//! record does not survive the backend byte for byte. It reports the first failure instead of
//! panicking.

use core::fmt::Debug;

use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

use super::{Changes, LocalIdentity, ProtocolStore};
use crate::address::{Address, AgentId, DeviceId};
use crate::devices::DeviceList;
use crate::keys::{
    IdentityKeyPair, KyberPreKeyId, KyberPreKeyRecord, PreKeyId, PreKeyRecord, PublicKey,
    RegistrationId, SignedPreKeyId, SignedPreKeyRecord,
};
use crate::prekey_lifecycle::{PreKeyPolicy, PreKeyState};
use crate::session::SessionRecord;
use crate::time::Timestamp;
use crate::transport::{DeviceTarget, SignalTransport, TransportConfig};
use crate::trust::TrustRecord;

/// The first expectation a backend did not meet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("store conformance check `{check}` failed: {detail}")]
pub struct ConformanceFailure {
    /// Which check.
    pub check: &'static str,
    /// What happened.
    pub detail: String,
}

fn fail(check: &'static str, detail: impl Into<String>) -> ConformanceFailure {
    ConformanceFailure {
        check,
        detail: detail.into(),
    }
}

fn expect_eq<T: PartialEq + Debug>(
    check: &'static str,
    got: T,
    want: T,
) -> Result<(), ConformanceFailure> {
    if got == want {
        Ok(())
    } else {
        Err(fail(check, format!("got {got:?}, expected {want:?}")))
    }
}

fn io<T, E: Debug>(check: &'static str, result: Result<T, E>) -> Result<T, ConformanceFailure> {
    result.map_err(|error| fail(check, format!("store error {error:?}")))
}

const NOW: Timestamp = Timestamp::from_millis(1_700_000_000_000);

/// Runs every check against stores made by `new_store` (each call must return an empty store).
pub fn check<S: ProtocolStore>(mut new_store: impl FnMut() -> S) -> Result<(), ConformanceFailure> {
    empty_reads(&new_store())?;
    round_trips(&mut new_store())?;
    community_records(&mut new_store())?;
    conversation(&mut new_store)
}

/// Sender-key records and community states: read back after a commit, keyed by sender and
/// epoch, and replaced by a later put.
fn community_records<S: ProtocolStore>(store: &mut S) -> Result<(), ConformanceFailure> {
    use crate::community::{CommunityId, CommunityState, EpochInfo, RotationKind};
    let check = "community records commit then read back";
    let mut rng = ChaCha20Rng::seed_from_u64(0xc0de);
    let id = CommunityId::random(&mut rng);
    let info = EpochInfo::from_server_row(id, 1, NOW, RotationKind::Hard, None);
    let (state, _) = CommunityState::new(id)
        .rotate(info, &mut rng)
        .map_err(|e| fail("fixture", e.to_string()))?;
    let (own, _) =
        crate::sender_keys::create_distribution_message(None, info.key_id.uuid(), &mut rng)
            .map_err(|e| fail("fixture", e.to_string()))?;
    let me = address("me.1")?;
    let peer = address("peer.3")?;
    expect_eq(check, io(check, store.community(id))?, None)?;
    expect_eq(check, io(check, store.sender_key(&me, info.key_id))?, None)?;
    io(
        check,
        store.commit(Changes {
            sender_keys: vec![((me.clone(), info.key_id), own.clone())],
            communities: vec![(id, state.clone())],
            ..Changes::default()
        }),
    )?;
    expect_eq(check, io(check, store.community(id))?, Some(state.clone()))?;
    expect_eq(
        check,
        io(check, store.sender_key(&me, info.key_id))?,
        Some(own.clone()),
    )?;
    expect_eq(
        "sender keys are keyed by sender device",
        io(check, store.sender_key(&peer, info.key_id))?,
        None,
    )?;
    let check = "community records are replaced by a later put";
    let second = EpochInfo::from_server_row(
        id,
        2,
        NOW,
        RotationKind::Soft,
        Some(NOW.saturating_add(core::time::Duration::from_secs(60))),
    );
    let (newer, _) = state
        .rotate(second, &mut rng)
        .map_err(|e| fail("fixture", e.to_string()))?;
    let (reset, _) = crate::sender_keys::reset_own_chain(Some(&own), info.key_id.uuid(), &mut rng);
    io(
        check,
        store.commit(Changes {
            sender_keys: vec![((me.clone(), info.key_id), reset.clone())],
            communities: vec![(id, newer.clone())],
            ..Changes::default()
        }),
    )?;
    expect_eq(check, io(check, store.community(id))?, Some(newer))?;
    expect_eq(
        check,
        io(check, store.sender_key(&me, info.key_id))?,
        Some(reset),
    )
}

fn address(text: &str) -> Result<Address, ConformanceFailure> {
    text.parse()
        .map_err(|e| fail("fixture", format!("{text}: {e}")))
}

fn empty_reads<S: ProtocolStore>(store: &S) -> Result<(), ConformanceFailure> {
    let check = "empty store reads nothing";
    let peer = address("peer.1")?;
    expect_eq(check, io(check, store.local_identity())?, None)?;
    expect_eq(check, io(check, store.session(&peer))?, None)?;
    expect_eq(check, io(check, store.pre_key(PreKeyId(1)))?, None)?;
    expect_eq(check, io(check, store.pre_key_ids())?, Vec::new())?;
    expect_eq(
        check,
        io(check, store.signed_pre_key(SignedPreKeyId(1)))?,
        None,
    )?;
    expect_eq(
        check,
        io(check, store.kyber_pre_key(KyberPreKeyId(1)))?,
        None,
    )?;
    expect_eq(
        check,
        io(check, store.one_time_kyber_pre_key_ids())?,
        Vec::new(),
    )?;
    let base = PublicKey::from_djb_bytes([9; 32]);
    expect_eq(
        check,
        io(check, store.kyber_last_resort_used(KyberPreKeyId(1), &base))?,
        false,
    )?;
    expect_eq(check, io(check, store.trust(&peer))?, None)?;
    expect_eq(check, io(check, store.device_list(&peer.agent_id))?, None)?;
    expect_eq(check, io(check, store.prekey_state())?, None)
}

fn round_trips<S: ProtocolStore>(store: &mut S) -> Result<(), ConformanceFailure> {
    let mut rng = ChaCha20Rng::seed_from_u64(0x5707e);
    let key_pair = IdentityKeyPair::generate(&mut rng);
    let identity = LocalIdentity {
        key_pair: key_pair.clone(),
        registration_id: RegistrationId(77),
    };
    let pre_keys: Vec<PreKeyRecord> = [3, 1, 2]
        .into_iter()
        .map(|id| PreKeyRecord::generate(PreKeyId(id), &mut rng))
        .collect();
    let signed = SignedPreKeyRecord::generate(SignedPreKeyId(4), &key_pair, NOW, &mut rng);
    let last_resort = KyberPreKeyRecord::generate(KyberPreKeyId(5), &key_pair, NOW, true, &mut rng);
    let one_time = KyberPreKeyRecord::generate(KyberPreKeyId(6), &key_pair, NOW, false, &mut rng);
    let peer = address("peer.2")?;
    let trust = TrustRecord::first_use(*key_pair.identity_key());
    let devices: DeviceList = [DeviceId::new(2), DeviceId::new(9)]
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(|e| fail("fixture", e.to_string()))?;
    let state = PreKeyState {
        next_pre_key_id: 4,
        current_signed_pre_key: Some(SignedPreKeyId(4)),
        ..PreKeyState::default()
    };
    let base = PublicKey::from_djb_bytes([7; 32]);
    let session = SessionRecord::new();
    let check = "commit then read back";
    io(
        check,
        store.commit(Changes {
            identity: Some(identity.clone()),
            sessions: vec![(peer.clone(), session.clone())],
            pre_keys: pre_keys.clone(),
            signed_pre_keys: vec![signed.clone()],
            kyber_pre_keys: vec![last_resort.clone(), one_time.clone()],
            kyber_last_resort_uses: vec![(KyberPreKeyId(5), base)],
            trust: vec![(peer.clone(), trust)],
            device_lists: vec![(peer.agent_id.clone(), devices.clone())],
            prekey_state: Some(state.clone()),
            ..Changes::default()
        }),
    )?;
    expect_eq(check, io(check, store.local_identity())?, Some(identity))?;
    expect_eq(check, io(check, store.session(&peer))?, Some(session))?;
    expect_eq(
        check,
        io(check, store.pre_key(PreKeyId(2)))?,
        pre_keys.get(2).cloned(),
    )?;
    expect_eq(
        "pre_key_ids ascending",
        io(check, store.pre_key_ids())?,
        vec![PreKeyId(1), PreKeyId(2), PreKeyId(3)],
    )?;
    expect_eq(
        check,
        io(check, store.signed_pre_key(SignedPreKeyId(4)))?,
        Some(signed),
    )?;
    expect_eq(
        check,
        io(check, store.kyber_pre_key(KyberPreKeyId(5)))?,
        Some(last_resort),
    )?;
    expect_eq(
        "one-time Kyber ids exclude the last-resort key",
        io(check, store.one_time_kyber_pre_key_ids())?,
        vec![KyberPreKeyId(6)],
    )?;
    expect_eq(
        check,
        io(check, store.kyber_last_resort_used(KyberPreKeyId(5), &base))?,
        true,
    )?;
    expect_eq(check, io(check, store.trust(&peer))?, Some(trust))?;
    expect_eq(
        check,
        io(check, store.device_list(&peer.agent_id))?,
        Some(devices),
    )?;
    expect_eq(check, io(check, store.prekey_state())?, Some(state))?;

    let check = "puts overwrite, removals delete";
    let changed = TrustRecord::Changed {
        previous: *key_pair.identity_key(),
        current: *one_time_identity(&mut rng).identity_key(),
    };
    io(
        check,
        store.commit(Changes {
            removed_sessions: vec![peer.clone()],
            removed_pre_keys: vec![PreKeyId(1)],
            removed_signed_pre_keys: vec![SignedPreKeyId(4)],
            removed_kyber_pre_keys: vec![KyberPreKeyId(5), KyberPreKeyId(6)],
            trust: vec![(peer.clone(), changed)],
            device_lists: vec![(peer.agent_id.clone(), DeviceList::new())],
            ..Changes::default()
        }),
    )?;
    expect_eq(check, io(check, store.session(&peer))?, None)?;
    expect_eq(check, io(check, store.pre_key(PreKeyId(1)))?, None)?;
    expect_eq(
        check,
        io(check, store.signed_pre_key(SignedPreKeyId(4)))?,
        None,
    )?;
    expect_eq(
        check,
        io(check, store.kyber_pre_key(KyberPreKeyId(5)))?,
        None,
    )?;
    expect_eq(
        "a removed last-resort key takes its use records",
        io(check, store.kyber_last_resort_used(KyberPreKeyId(5), &base))?,
        false,
    )?;
    expect_eq(check, io(check, store.trust(&peer))?, Some(changed))?;
    expect_eq(
        check,
        io(check, store.device_list(&peer.agent_id))?,
        Some(DeviceList::new()),
    )
}

fn one_time_identity(rng: &mut ChaCha20Rng) -> IdentityKeyPair {
    IdentityKeyPair::generate(rng)
}

/// Two devices over two fresh stores: first contact, a reply and a Whisper message.
fn conversation<S: ProtocolStore>(
    new_store: &mut impl FnMut() -> S,
) -> Result<(), ConformanceFailure> {
    let check = "a conversation through the facade";
    let config = TransportConfig {
        prekey_policy: PreKeyPolicy {
            one_time_batch: 2,
            one_time_threshold: 1,
            ..PreKeyPolicy::default()
        },
        ..TransportConfig::default()
    };
    let alice_address = address("alice.1")?;
    let bob_address = address("bob.1")?;
    let mut rng = ChaCha20Rng::seed_from_u64(0xc0ffee);
    let mut alice = SignalTransport::with_config(new_store(), alice_address.clone(), config);
    let mut bob = SignalTransport::with_config(new_store(), bob_address.clone(), config);
    io(check, alice.ensure_ready(NOW, &mut rng))?;
    let plan = io(check, bob.ensure_ready(NOW, &mut rng))?.plan;
    let bundle = plan
        .bundles()
        .one_time
        .into_iter()
        .next()
        .ok_or_else(|| fail(check, "no one-time bundle"))?;
    io(
        check,
        alice.process_bundle(&bob_address, &bundle, NOW, &mut rng),
    )?;
    let steps: [(&str, bool); 3] = [("hello", true), ("reply", false), ("again", true)];
    for (text, from_alice) in steps {
        let (sender, receiver, from, to) = if from_alice {
            (&mut alice, &mut bob, &alice_address, &bob_address)
        } else {
            (&mut bob, &mut alice, &bob_address, &alice_address)
        };
        let agent: &AgentId = &to.agent_id;
        let messages = io(
            check,
            sender.encrypt_to_agent(agent, DeviceTarget::One(to.device_id), text.as_bytes(), NOW),
        )?;
        let message = messages
            .first()
            .ok_or_else(|| fail(check, "nothing encrypted"))?;
        let got = io(
            check,
            receiver.decrypt_from_agent(
                from,
                message.message_type as u8,
                &message.body,
                NOW,
                &mut rng,
            ),
        )?;
        expect_eq(check, got.plaintext.as_slice(), text.as_bytes())?;
    }
    Ok(())
}
