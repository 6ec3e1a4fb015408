//! Real rate limits, like Replicate's: one token bucket for creates and one for everything else.
//! Callers pass `now` in; no clock reads, no IO.

use std::time::Instant;

/// Token buckets per class. A class with 0 per minute is unlimited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RateLimits {
    pub creates_per_minute: u32,
    /// Tokens the create bucket holds when full (at least 1 is used).
    pub create_burst: u32,
    pub others_per_minute: u32,
    pub other_burst: u32,
}

impl RateLimits {
    /// Replicate's documented limits: 600 creates and 3000 other requests a minute. The real
    /// burst size is not documented; here a full bucket holds one minute's worth.
    pub fn replicate() -> Self {
        RateLimits {
            creates_per_minute: 600,
            create_burst: 600,
            others_per_minute: 3000,
            other_burst: 3000,
        }
    }

    /// The observed low-credit limit: 6 creates a minute with a burst of 1.
    pub fn low_credit() -> Self {
        RateLimits {
            creates_per_minute: 6,
            create_burst: 1,
            ..RateLimits::replicate()
        }
    }
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits::replicate()
    }
}

/// A bucket refilling continuously at `per_sec` up to `capacity`.
#[derive(Clone, Debug)]
struct Bucket {
    capacity: f64,
    per_sec: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(per_minute: u32, burst: u32, now: Instant) -> Option<Bucket> {
        (per_minute > 0).then(|| {
            let capacity = f64::from(burst.max(1));
            Bucket {
                capacity,
                per_sec: f64::from(per_minute) / 60.0,
                tokens: capacity,
                last: now,
            }
        })
    }

    /// Takes a token, or returns the whole seconds until one is available (at least 1).
    fn try_take(&mut self, now: Instant) -> Result<(), u64> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.capacity);
        self.last = self.last.max(now);
        if self.tokens >= 1.0 - 1e-9 {
            self.tokens = (self.tokens - 1.0).max(0.0);
            return Ok(());
        }
        let wait = (1.0 - self.tokens) / self.per_sec;
        Err((wait.ceil() as u64).max(1))
    }
}

/// The two buckets of one simulator.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    creates: Option<Bucket>,
    others: Option<Bucket>,
}

impl RateLimiter {
    /// Both buckets start full at `now`.
    pub fn new(limits: &RateLimits, now: Instant) -> Self {
        RateLimiter {
            creates: Bucket::new(limits.creates_per_minute, limits.create_burst, now),
            others: Bucket::new(limits.others_per_minute, limits.other_burst, now),
        }
    }

    /// Admits one request of the given class, or returns its `retry_after` in seconds.
    pub fn try_acquire(&mut self, create: bool, now: Instant) -> Result<(), u64> {
        let bucket = if create {
            &mut self.creates
        } else {
            &mut self.others
        };
        bucket.as_mut().map_or(Ok(()), |b| b.try_take(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(creates_per_minute: u32, create_burst: u32) -> RateLimits {
        RateLimits {
            creates_per_minute,
            create_burst,
            others_per_minute: 0,
            other_burst: 0,
        }
    }

    #[test]
    fn a_burst_passes_then_the_bucket_refills_at_the_rate() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(&limits(60, 2), t0);
        assert_eq!(limiter.try_acquire(true, t0), Ok(()));
        assert_eq!(limiter.try_acquire(true, t0), Ok(()));
        assert_eq!(limiter.try_acquire(true, t0), Err(1));
        let later = t0 + Duration::from_millis(1000);
        assert_eq!(limiter.try_acquire(true, later), Ok(()));
        assert_eq!(limiter.try_acquire(true, later), Err(1));
    }

    #[test]
    fn retry_after_rounds_the_wait_up_to_whole_seconds() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(&limits(6, 1), t0);
        assert_eq!(limiter.try_acquire(true, t0), Ok(()));
        assert_eq!(limiter.try_acquire(true, t0), Err(10));
        assert_eq!(
            limiter.try_acquire(true, t0 + Duration::from_millis(500)),
            Err(10)
        );
        assert_eq!(
            limiter.try_acquire(true, t0 + Duration::from_millis(9_500)),
            Err(1)
        );
    }

    #[test]
    fn a_class_with_zero_per_minute_is_unlimited_and_classes_are_separate() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(&limits(60, 1), t0);
        for _ in 0..10_000 {
            assert_eq!(limiter.try_acquire(false, t0), Ok(()));
        }
        assert_eq!(limiter.try_acquire(true, t0), Ok(()));
        assert!(limiter.try_acquire(true, t0).is_err());
    }
}
