//! Client-side rate limiting: a GCRA token bucket (the "virtual scheduling" form), so the
//! engine stays under Replicate's limits without waiting to be told by 429s. Callers reserve
//! a send time under a short lock and sleep outside it: no polling, FIFO by reservation.
//! A 429 pauses the bucket until its `retry_after` has passed.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

pub struct RateLimiter {
    state: Mutex<State>,
    /// Time between two sends at the sustained rate.
    interval: Duration,
    /// How far ahead of the sustained schedule a burst may run: (burst - 1) intervals.
    tolerance: Duration,
}

struct State {
    /// The theoretical arrival time of the next send at the sustained rate.
    next: Instant,
    /// No send before this (set by a 429).
    paused_until: Instant,
}

impl RateLimiter {
    pub fn per_minute(rate: u32, burst: u32) -> Self {
        let interval = Duration::from_secs(60) / rate.max(1);
        let now = Instant::now();
        RateLimiter {
            state: Mutex::new(State {
                next: now,
                paused_until: now,
            }),
            interval,
            tolerance: interval * burst.max(1).saturating_sub(1),
        }
    }

    /// Reserves the earliest allowed send time at or after `now`.
    fn reserve(&self, now: Instant) -> Instant {
        match self.reserve_by(now, None) {
            Ok(at) | Err(at) => at,
        }
    }

    /// Reserves the earliest allowed send time at or after `now` if it is no later than
    /// `latest`; otherwise reserves nothing and returns that time as the error.
    fn reserve_by(&self, now: Instant, latest: Option<Instant>) -> Result<Instant, Instant> {
        // Only plain arithmetic runs under this lock, so it cannot be poisoned mid-update.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let earliest = state.next.checked_sub(self.tolerance).unwrap_or(now);
        let at = now.max(earliest).max(state.paused_until);
        if latest.is_some_and(|latest| at > latest) {
            return Err(at);
        }
        state.next = state.next.max(at) + self.interval;
        Ok(at)
    }

    /// Waits for a send slot if one comes within `max_wait` (returns how long it waited);
    /// otherwise takes none and returns how long until one would come.
    pub async fn acquire_within(&self, max_wait: Duration) -> Result<Duration, Duration> {
        let start = Instant::now();
        let at = self
            .reserve_by(start, Some(start + max_wait))
            .map_err(|at| at - start)?;
        tokio::time::sleep_until(at).await;
        Ok(start.elapsed())
    }

    /// Waits until a send is allowed; returns how long it waited.
    pub async fn acquire(&self) -> Duration {
        let start = Instant::now();
        loop {
            let at = self.reserve(Instant::now());
            tokio::time::sleep_until(at).await;
            // A 429 that arrived while we slept moves everyone back.
            let paused_until = self
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .paused_until;
            if paused_until <= Instant::now() {
                return start.elapsed();
            }
        }
    }

    /// The server throttled us: send nothing more for `retry_after`.
    pub fn pause(&self, retry_after: Duration) {
        let until = Instant::now() + retry_after;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.paused_until = state.paused_until.max(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_goes_at_once_then_sends_are_spaced_at_the_rate() {
        let limiter = RateLimiter::per_minute(60, 3);
        let start = Instant::now();
        let mut sent = vec![];
        for _ in 0..6 {
            limiter.acquire().await;
            sent.push((Instant::now() - start).as_millis());
        }
        assert_eq!(sent, vec![0, 0, 0, 1000, 2000, 3000]);
    }

    #[tokio::test(start_paused = true)]
    async fn no_sixty_second_window_holds_more_than_rate_plus_burst() {
        let limiter = RateLimiter::per_minute(600, 10);
        let start = Instant::now();
        let mut times = vec![];
        while Instant::now() - start < Duration::from_secs(180) {
            limiter.acquire().await;
            times.push(Instant::now());
        }
        let max_in_window = (0..times.len())
            .map(|i| {
                times[i..]
                    .iter()
                    .take_while(|t| **t - times[i] < Duration::from_secs(60))
                    .count()
            })
            .max()
            .unwrap();
        assert!(max_in_window <= 600 + 10, "{max_in_window}");
        assert!(max_in_window >= 600, "{max_in_window}");
    }

    #[tokio::test(start_paused = true)]
    async fn acquire_within_takes_a_near_slot_and_refuses_a_far_one_without_taking_it() {
        let limiter = RateLimiter::per_minute(60, 1);
        assert_eq!(
            limiter.acquire_within(Duration::ZERO).await,
            Ok(Duration::ZERO)
        );
        // The next slot is a second away.
        let refused = limiter.acquire_within(Duration::from_millis(500)).await;
        assert_eq!(refused, Err(Duration::from_secs(1)));
        let waited = limiter.acquire_within(Duration::from_secs(2)).await;
        assert_eq!(
            waited,
            Ok(Duration::from_secs(1)),
            "the refusal took no slot"
        );
        limiter.pause(Duration::from_secs(30));
        assert!(limiter
            .acquire_within(Duration::from_secs(5))
            .await
            .is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_send_until_it_passes() {
        let limiter = RateLimiter::per_minute(6000, 100);
        limiter.acquire().await;
        limiter.pause(Duration::from_secs(5));
        let waited = limiter.acquire().await;
        assert!(waited >= Duration::from_secs(5), "{waited:?}");
    }
}
