//! Injected wall-clock time.
//!
//! The core never reads a clock: every operation that needs "now" takes a [`Timestamp`] from the
//! caller, which keeps it sans-I/O and makes expiry rules testable.

use core::fmt;
use core::time::Duration;

/// A point in time as milliseconds since the Unix epoch.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Self = Self(0);

    /// A timestamp `millis` milliseconds after the Unix epoch.
    #[must_use]
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// A timestamp `secs` seconds after the Unix epoch (saturating far in the future).
    #[must_use]
    pub const fn from_secs(secs: u64) -> Self {
        Self(secs.saturating_mul(1000))
    }

    /// Milliseconds since the Unix epoch.
    #[must_use]
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Whole seconds since the Unix epoch (rounded down).
    #[must_use]
    pub const fn as_secs(self) -> u64 {
        self.0 / 1000
    }

    /// `self + duration`, saturating at the largest representable timestamp instead of wrapping,
    /// so an absurd duration can never make an expiry check pass by overflow.
    #[must_use]
    pub fn saturating_add(self, duration: Duration) -> Self {
        let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(millis))
    }

    /// The time elapsed from `earlier` to `self`, or zero if `earlier` is later.
    #[must_use]
    pub fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({}ms)", self.0)
    }
}

impl From<Timestamp> for u64 {
    fn from(value: Timestamp) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_and_saturation() {
        let t = Timestamp::from_secs(1_700_000_000);
        assert_eq!(t.as_millis(), 1_700_000_000_000);
        assert_eq!(t.as_secs(), 1_700_000_000);
        assert_eq!(Timestamp::from_secs(u64::MAX).as_millis(), u64::MAX);
        let later = t.saturating_add(Duration::from_secs(1));
        assert_eq!(later.as_millis(), 1_700_000_001_000);
        assert_eq!(
            Timestamp::from_millis(u64::MAX - 1).saturating_add(Duration::MAX),
            Timestamp::from_millis(u64::MAX)
        );
        assert_eq!(later.saturating_duration_since(t), Duration::from_secs(1));
        assert_eq!(t.saturating_duration_since(later), Duration::ZERO);
    }
}
