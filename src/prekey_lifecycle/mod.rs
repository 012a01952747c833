//! The prekey lifecycle: which prekeys a device generates, publishes, rotates and deletes.
//!
//! - The signed prekey and the last-resort Kyber key rotate once they are older than
//!   [`PreKeyPolicy::rotate_after`] (default 7 days). The keys they replace stay usable for
//!   [`PreKeyPolicy::grace`] (default 30 days) so PreKey messages built from an older bundle
//!   still decrypt, and are deleted after that.
//! - One-time EC prekeys and one-time Kyber prekeys are generated in batches of
//!   [`PreKeyPolicy::one_time_batch`] (default 100) whenever fewer than
//!   [`PreKeyPolicy::one_time_threshold`] (default 20) are left.
//! - Ids come from counters in [`PreKeyState`] that only ever increase, so an id is never
//!   reused (a reused id could make a late PreKey message decrypt with the wrong key).
//!
//! [`refresh`] is pure: it takes the current inventory and returns what to add and delete; the
//! facade commits that together with the new [`PreKeyState`] in one store transaction.

mod upload;

pub use upload::{
    MAX_ONE_TIME_KEYS_PER_UPLOAD, PublishPlan, UPLOAD_FORMAT, UploadBundles, UploadError,
};

use core::time::Duration;

use rand_core::CryptoRng;

use crate::error::ErrorClass;
use crate::keys::{
    IdentityKeyPair, KyberPreKeyId, KyberPreKeyRecord, PreKeyId, PreKeyRecord, SignedPreKeyId,
    SignedPreKeyRecord,
};
use crate::time::Timestamp;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Upper bound on a batch, so a misconfigured policy cannot stall a device generating keys.
pub const MAX_BATCH: u32 = 1000;

/// Why the lifecycle cannot proceed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LifecycleError {
    /// An id counter reached `u32::MAX`; ids are never wrapped or reused.
    #[error("{0} ids are exhausted")]
    IdsExhausted(&'static str),
    /// The policy is inconsistent.
    #[error("invalid prekey policy: {0}")]
    InvalidPolicy(&'static str),
}

impl LifecycleError {
    /// The stable class of this error.
    #[must_use]
    pub const fn class(&self) -> ErrorClass {
        match self {
            Self::IdsExhausted(_) => ErrorClass::InvalidState,
            Self::InvalidPolicy(_) => ErrorClass::InvalidArgument,
        }
    }
}

/// Rotation and replenishment knobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreKeyPolicy {
    /// Age after which the signed prekey and the last-resort Kyber key are replaced.
    pub rotate_after: Duration,
    /// How long replaced keys stay usable for late PreKey messages.
    pub grace: Duration,
    /// One-time prekeys generated per batch (EC and Kyber each).
    pub one_time_batch: u32,
    /// A batch is generated when fewer one-time prekeys than this are left.
    pub one_time_threshold: u32,
}

impl Default for PreKeyPolicy {
    fn default() -> Self {
        Self {
            rotate_after: DAY * 7,
            grace: DAY * 30,
            one_time_batch: 100,
            one_time_threshold: 20,
        }
    }
}

impl PreKeyPolicy {
    /// Checks the knobs: a batch must lift the stock to the threshold (otherwise every call
    /// would generate keys) and stay below [`MAX_BATCH`].
    pub fn validate(&self) -> Result<(), LifecycleError> {
        if self.one_time_batch < self.one_time_threshold {
            return Err(LifecycleError::InvalidPolicy(
                "one_time_batch must be at least one_time_threshold",
            ));
        }
        if self.one_time_batch > MAX_BATCH {
            return Err(LifecycleError::InvalidPolicy(
                "one_time_batch is above MAX_BATCH",
            ));
        }
        if self.rotate_after.is_zero() {
            return Err(LifecycleError::InvalidPolicy(
                "rotate_after must be positive",
            ));
        }
        Ok(())
    }
}

/// The persisted bookkeeping of the lifecycle: id counters, which keys are current and when
/// the previous ones were retired.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreKeyState {
    /// Next one-time EC prekey id.
    pub next_pre_key_id: u32,
    /// Next signed prekey id.
    pub next_signed_pre_key_id: u32,
    /// Next Kyber prekey id (one-time and last-resort share the counter, as they share ids).
    pub next_kyber_pre_key_id: u32,
    /// The signed prekey published now.
    pub current_signed_pre_key: Option<SignedPreKeyId>,
    /// The last-resort Kyber key published now.
    pub current_last_resort: Option<KyberPreKeyId>,
    /// Replaced signed prekeys still kept, with when they were replaced.
    pub retired_signed_pre_keys: Vec<(SignedPreKeyId, Timestamp)>,
    /// Replaced last-resort Kyber keys still kept, with when they were replaced.
    pub retired_last_resort: Vec<(KyberPreKeyId, Timestamp)>,
}

impl Default for PreKeyState {
    fn default() -> Self {
        Self {
            next_pre_key_id: 1,
            next_signed_pre_key_id: 1,
            next_kyber_pre_key_id: 1,
            current_signed_pre_key: None,
            current_last_resort: None,
            retired_signed_pre_keys: Vec::new(),
            retired_last_resort: Vec::new(),
        }
    }
}

/// Hands out the next id of a counter; the last value is never handed out, so the counter can
/// always move forward.
pub(crate) fn allocate(next: &mut u32, what: &'static str) -> Result<u32, LifecycleError> {
    let id = *next;
    *next = next
        .checked_add(1)
        .ok_or(LifecycleError::IdsExhausted(what))?;
    Ok(id)
}

/// What the device has now.
#[derive(Clone, Copy, Debug)]
pub struct Inventory<'a> {
    /// The lifecycle bookkeeping.
    pub state: &'a PreKeyState,
    /// The current signed prekey record, if present.
    pub current_signed: Option<&'a SignedPreKeyRecord>,
    /// The current last-resort Kyber record, if present.
    pub current_last_resort: Option<&'a KyberPreKeyRecord>,
    /// How many one-time EC prekeys are left.
    pub one_time_pre_keys: usize,
    /// How many one-time Kyber prekeys are left.
    pub one_time_kyber_pre_keys: usize,
}

/// What [`refresh`] decided: keys to add and delete and the new bookkeeping.
#[derive(Clone, Debug, Default)]
pub struct Refresh {
    /// The new bookkeeping (always to be stored when anything else is non-empty).
    pub state: PreKeyState,
    /// A new signed prekey (first run or rotation).
    pub new_signed_pre_key: Option<SignedPreKeyRecord>,
    /// A new last-resort Kyber key (first run or rotation).
    pub new_last_resort: Option<KyberPreKeyRecord>,
    /// New one-time EC prekeys.
    pub new_pre_keys: Vec<PreKeyRecord>,
    /// New one-time Kyber prekeys.
    pub new_kyber_pre_keys: Vec<KyberPreKeyRecord>,
    /// Retired signed prekeys past their grace period, to delete.
    pub removed_signed_pre_keys: Vec<SignedPreKeyId>,
    /// Retired last-resort keys past their grace period, to delete (with their use records).
    pub removed_last_resort: Vec<KyberPreKeyId>,
}

impl Refresh {
    /// Whether nothing is due.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.new_signed_pre_key.is_none()
            && self.new_last_resort.is_none()
            && self.new_pre_keys.is_empty()
            && self.new_kyber_pre_keys.is_empty()
            && self.removed_signed_pre_keys.is_empty()
            && self.removed_last_resort.is_empty()
    }
}

fn due(generated: Timestamp, now: Timestamp, age: Duration) -> bool {
    now.saturating_duration_since(generated) >= age
}

/// Decides what to generate, rotate and delete at `now`.
///
/// Draws, in order: a signed prekey (32 + 64 bytes) if due, a batch of one-time EC prekeys
/// (32 bytes each) if low, a last-resort Kyber key if due, a batch of one-time Kyber keys if
/// low. Nothing is drawn when nothing is due, so calling it again is free.
pub fn refresh<R: CryptoRng + ?Sized>(
    policy: &PreKeyPolicy,
    identity: &IdentityKeyPair,
    inventory: &Inventory<'_>,
    now: Timestamp,
    rng: &mut R,
) -> Result<Refresh, LifecycleError> {
    policy.validate()?;
    let mut state = inventory.state.clone();
    let mut out = Refresh::default();

    // Expire retired keys first so a key retired below is not deleted in the same call.
    let grace = policy.grace;
    state.retired_signed_pre_keys.retain(|(id, retired)| {
        let keep = !due(*retired, now, grace);
        if !keep {
            out.removed_signed_pre_keys.push(*id);
        }
        keep
    });
    state.retired_last_resort.retain(|(id, retired)| {
        let keep = !due(*retired, now, grace);
        if !keep {
            out.removed_last_resort.push(*id);
        }
        keep
    });

    let signed_due = inventory
        .current_signed
        .is_none_or(|record| due(record.timestamp(), now, policy.rotate_after));
    if signed_due {
        let id = SignedPreKeyId(allocate(
            &mut state.next_signed_pre_key_id,
            "signed prekey",
        )?);
        if let Some(old) = inventory.current_signed {
            state.retired_signed_pre_keys.push((old.id(), now));
        }
        state.current_signed_pre_key = Some(id);
        out.new_signed_pre_key = Some(SignedPreKeyRecord::generate(id, identity, now, rng));
    }

    let threshold = usize::try_from(policy.one_time_threshold).unwrap_or(usize::MAX);
    if inventory.one_time_pre_keys < threshold {
        for _ in 0..policy.one_time_batch {
            let id = PreKeyId(allocate(&mut state.next_pre_key_id, "one-time prekey")?);
            out.new_pre_keys.push(PreKeyRecord::generate(id, rng));
        }
    }

    let last_resort_due = inventory
        .current_last_resort
        .is_none_or(|record| due(record.timestamp(), now, policy.rotate_after));
    if last_resort_due {
        let id = KyberPreKeyId(allocate(&mut state.next_kyber_pre_key_id, "kyber prekey")?);
        if let Some(old) = inventory.current_last_resort {
            state.retired_last_resort.push((old.id(), now));
        }
        state.current_last_resort = Some(id);
        out.new_last_resort = Some(KyberPreKeyRecord::generate(id, identity, now, true, rng));
    }

    if inventory.one_time_kyber_pre_keys < threshold {
        for _ in 0..policy.one_time_batch {
            let id = KyberPreKeyId(allocate(&mut state.next_kyber_pre_key_id, "kyber prekey")?);
            out.new_kyber_pre_keys
                .push(KyberPreKeyRecord::generate(id, identity, now, false, rng));
        }
    }

    out.state = state;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use rand_core::SeedableRng;

    use super::*;

    fn small_policy() -> PreKeyPolicy {
        PreKeyPolicy {
            one_time_batch: 3,
            one_time_threshold: 2,
            ..PreKeyPolicy::default()
        }
    }

    #[test]
    fn policy_is_validated() {
        assert!(PreKeyPolicy::default().validate().is_ok());
        let bad = PreKeyPolicy {
            one_time_batch: 1,
            one_time_threshold: 2,
            ..PreKeyPolicy::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(LifecycleError::InvalidPolicy(_))
        ));
        let huge = PreKeyPolicy {
            one_time_batch: MAX_BATCH + 1,
            ..PreKeyPolicy::default()
        };
        assert!(huge.validate().is_err());
    }

    #[test]
    fn ids_never_wrap() {
        let mut next = u32::MAX - 1;
        assert_eq!(allocate(&mut next, "x"), Ok(u32::MAX - 1));
        assert_eq!(
            allocate(&mut next, "x"),
            Err(LifecycleError::IdsExhausted("x"))
        );
    }

    #[test]
    fn first_run_rotation_and_grace() {
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
        let identity = IdentityKeyPair::generate(&mut rng);
        let policy = small_policy();
        let t0 = Timestamp::from_secs(1_000_000);
        let state = PreKeyState::default();
        let inventory = Inventory {
            state: &state,
            current_signed: None,
            current_last_resort: None,
            one_time_pre_keys: 0,
            one_time_kyber_pre_keys: 0,
        };
        let first = refresh(&policy, &identity, &inventory, t0, &mut rng).unwrap();
        let signed = first.new_signed_pre_key.clone().unwrap();
        let last_resort = first.new_last_resort.clone().unwrap();
        assert_eq!(signed.id(), SignedPreKeyId(1));
        assert_eq!(last_resort.id(), KyberPreKeyId(1));
        assert!(last_resort.is_last_resort());
        let ids: Vec<u32> = first.new_pre_keys.iter().map(|k| k.id().0).collect();
        assert_eq!(ids, vec![1, 2, 3]);
        let kyber_ids: Vec<u32> = first.new_kyber_pre_keys.iter().map(|k| k.id().0).collect();
        assert_eq!(kyber_ids, vec![2, 3, 4]);
        assert_eq!(first.state.next_kyber_pre_key_id, 5);

        // Nothing due a day later with a full stock: idempotent, no draws needed.
        let state = first.state.clone();
        let mut inventory = Inventory {
            state: &state,
            current_signed: Some(&signed),
            current_last_resort: Some(&last_resort),
            one_time_pre_keys: 3,
            one_time_kyber_pre_keys: 2,
        };
        let t1 = t0.saturating_add(DAY);
        let idle = refresh(&policy, &identity, &inventory, t1, &mut rng).unwrap();
        assert!(idle.is_empty());
        assert_eq!(idle.state, state);

        // Low stock: only one-time keys, ids continue.
        inventory.one_time_pre_keys = 1;
        let low = refresh(&policy, &identity, &inventory, t1, &mut rng).unwrap();
        assert_eq!(low.new_pre_keys.first().unwrap().id(), PreKeyId(4));
        assert!(low.new_kyber_pre_keys.is_empty() && low.new_signed_pre_key.is_none());

        // Seven days: both long-lived keys rotate and the old ones are retired.
        inventory.one_time_pre_keys = 3;
        let t7 = t0.saturating_add(DAY * 7);
        let rotated = refresh(&policy, &identity, &inventory, t7, &mut rng).unwrap();
        assert_eq!(
            rotated.new_signed_pre_key.as_ref().unwrap().id(),
            SignedPreKeyId(2)
        );
        assert_eq!(
            rotated.new_last_resort.as_ref().unwrap().id(),
            KyberPreKeyId(5)
        );
        assert_eq!(
            rotated.state.retired_signed_pre_keys,
            vec![(SignedPreKeyId(1), t7)]
        );
        assert_eq!(
            rotated.state.retired_last_resort,
            vec![(KyberPreKeyId(1), t7)]
        );

        // Thirty days after retirement the old keys are deleted.
        let new_signed = rotated.new_signed_pre_key.clone().unwrap();
        let new_last_resort = rotated.new_last_resort.clone().unwrap();
        let state = rotated.state.clone();
        let inventory = Inventory {
            state: &state,
            current_signed: Some(&new_signed),
            current_last_resort: Some(&new_last_resort),
            one_time_pre_keys: 3,
            one_time_kyber_pre_keys: 3,
        };
        let before = t7.saturating_add(DAY * 29);
        let kept = refresh(&policy, &identity, &inventory, before, &mut rng).unwrap();
        assert!(kept.removed_signed_pre_keys.is_empty());
        let t37 = t7.saturating_add(DAY * 30);
        let expired = refresh(&policy, &identity, &inventory, t37, &mut rng).unwrap();
        assert_eq!(expired.removed_signed_pre_keys, vec![SignedPreKeyId(1)]);
        assert_eq!(expired.removed_last_resort, vec![KyberPreKeyId(1)]);
        // The current key is 30 days old by then, so it is retired in the same call.
        assert_eq!(
            expired.state.retired_signed_pre_keys,
            vec![(SignedPreKeyId(2), t37)]
        );
    }
}
