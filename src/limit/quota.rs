//! Quotas: how many events per period.

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

/// A rate: at most `count` events per `period`, as a burst of `count` that refills evenly
/// (one event every `period / count`). It cannot be zero: switch a limit off with `None`.
///
/// ```
/// use phone_otp::Quota;
/// use std::num::NonZeroU32;
/// use std::time::Duration;
///
/// let five_per_ten_minutes = Quota::per_period(NonZeroU32::new(5).unwrap(), Duration::from_secs(600));
/// assert_eq!(five_per_ten_minutes.refill_interval(), Duration::from_secs(120));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    count: NonZeroU32,
    period: Duration,
}

impl Quota {
    /// `count` events per `period` (a zero period is raised to one millisecond).
    pub const fn per_period(count: NonZeroU32, period: Duration) -> Self {
        let period = if period.is_zero() {
            Duration::from_millis(1)
        } else {
            period
        };
        Self { count, period }
    }

    /// `count` per minute.
    pub const fn per_minute(count: NonZeroU32) -> Self {
        Self::per_period(count, Duration::from_secs(60))
    }

    /// `count` per hour.
    pub const fn per_hour(count: NonZeroU32) -> Self {
        Self::per_period(count, Duration::from_secs(3600))
    }

    /// `count` per day.
    pub const fn per_day(count: NonZeroU32) -> Self {
        Self::per_period(count, Duration::from_secs(86_400))
    }

    /// One event, then none until `interval` has passed (a cooldown).
    pub const fn one_every(interval: Duration) -> Self {
        Self::per_period(NonZeroU32::MIN, interval)
    }

    /// The burst size.
    pub fn count(&self) -> NonZeroU32 {
        self.count
    }

    /// The period the burst refills over.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// How long one event takes to refill.
    pub fn refill_interval(&self) -> Duration {
        self.period / self.count.get()
    }
}

impl fmt::Debug for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Quota({} per {:?})", self.count, self.period)
    }
}
