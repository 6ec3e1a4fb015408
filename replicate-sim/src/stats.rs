//! Request and answer statistics, including the busiest sliding windows per request class, so a
//! test can prove a client stayed under its configured rate. Callers pass `now` in; no clock.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::faults::Endpoint;

/// A snapshot of what the simulator has seen since it started.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Requests received per endpoint (every /v1 request, including ones answered with faults).
    pub requests: HashMap<Endpoint, u64>,
    /// Answers sent per HTTP status (injected or not). Resets/hangs are not answers.
    pub responses: HashMap<u16, u64>,
    /// Answers with an injected status: `error_rate`, `error_after_work_rate` and storm 429s.
    pub injected_errors: u64,
    /// Connections dropped by `reset_rate` or `reset_after_work_rate`.
    pub injected_resets: u64,
    /// Requests held open by `hang_rate`.
    pub injected_hangs: u64,
    /// 429s caused by the real rate limits (not by storms or injected 429s).
    pub rate_limited: u64,
    /// The highest number of create requests seen in any sliding 60-second window, and of
    /// other /v1 requests.
    pub max_creates_per_minute: u64,
    pub max_others_per_minute: u64,
    /// Same, over any sliding 1-second window.
    pub max_creates_per_second: u64,
    pub max_others_per_second: u64,
    /// Webhook attempts actually sent (a duplicate counts as a second attempt).
    pub webhooks_sent: u64,
    /// Sent webhook attempts answered with a 2xx.
    pub webhooks_delivered: u64,
    /// Sent webhook attempts answered with a non-2xx, or that failed to connect or timed out.
    pub webhooks_failed: u64,
    /// Webhook attempts not sent because of `webhook_drop_rate` or `webhook_drop_all`.
    pub webhooks_dropped: u64,
}

/// How one webhook attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// Sent and answered 2xx.
    Delivered,
    /// Sent, then a non-2xx answer, a connection error or a timeout.
    Failed,
    /// Not sent (injected drop).
    Dropped,
}

/// The largest number of events ever seen within `window` of each other. Keeps only the times
/// still inside the window, so each event costs amortised O(1).
#[derive(Clone, Debug)]
pub struct SlidingMax {
    window: Duration,
    times: VecDeque<Instant>,
    max: u64,
}

impl SlidingMax {
    pub fn new(window: Duration) -> Self {
        SlidingMax {
            window,
            times: VecDeque::new(),
            max: 0,
        }
    }

    /// Records an event at `now` (non-decreasing) and returns the maximum so far.
    pub fn record(&mut self, now: Instant) -> u64 {
        while self
            .times
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= self.window)
        {
            self.times.pop_front();
        }
        self.times.push_back(now);
        self.max = self.max.max(self.times.len() as u64);
        self.max
    }
}

/// The statistics plus the windows behind their maxima.
#[derive(Clone, Debug)]
pub struct Recorder {
    stats: SimStats,
    creates_minute: SlidingMax,
    creates_second: SlidingMax,
    others_minute: SlidingMax,
    others_second: SlidingMax,
}

impl Default for Recorder {
    fn default() -> Self {
        let minute = SlidingMax::new(Duration::from_secs(60));
        let second = SlidingMax::new(Duration::from_secs(1));
        Recorder {
            stats: SimStats::default(),
            creates_minute: minute.clone(),
            creates_second: second.clone(),
            others_minute: minute,
            others_second: second,
        }
    }
}

/// How a request ended, as far as the statistics care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// An answer from the handlers (or auth, or a 404 fallback).
    Answered(u16),
    /// An answer with an injected status.
    Injected(u16),
    /// A 429 from the real rate limits.
    RateLimited,
    Reset,
    Hang,
}

impl Recorder {
    pub fn request(&mut self, endpoint: Endpoint, now: Instant) {
        *self.stats.requests.entry(endpoint).or_default() += 1;
        let s = &mut self.stats;
        if endpoint.is_create() {
            s.max_creates_per_minute = self.creates_minute.record(now);
            s.max_creates_per_second = self.creates_second.record(now);
        } else {
            s.max_others_per_minute = self.others_minute.record(now);
            s.max_others_per_second = self.others_second.record(now);
        }
    }

    pub fn outcome(&mut self, outcome: Outcome) {
        let s = &mut self.stats;
        let status = match outcome {
            Outcome::Answered(status) => status,
            Outcome::Injected(status) => {
                s.injected_errors += 1;
                status
            }
            Outcome::RateLimited => {
                s.rate_limited += 1;
                429
            }
            Outcome::Reset => {
                s.injected_resets += 1;
                return;
            }
            Outcome::Hang => {
                s.injected_hangs += 1;
                return;
            }
        };
        *s.responses.entry(status).or_default() += 1;
    }

    pub fn webhook(&mut self, outcome: WebhookOutcome) {
        let s = &mut self.stats;
        match outcome {
            WebhookOutcome::Delivered => {
                s.webhooks_sent += 1;
                s.webhooks_delivered += 1;
            }
            WebhookOutcome::Failed => {
                s.webhooks_sent += 1;
                s.webhooks_failed += 1;
            }
            WebhookOutcome::Dropped => s.webhooks_dropped += 1,
        }
    }

    pub fn snapshot(&self) -> SimStats {
        self.stats.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sliding_maximum_counts_events_less_than_a_window_apart() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut window = SlidingMax::new(Duration::from_secs(1));
        for n in [0, 100, 200] {
            window.record(ms(n));
        }
        assert_eq!(window.record(ms(999)), 4);
        assert_eq!(
            window.record(ms(1000)),
            4,
            "the event at 0 has left the window"
        );
        assert_eq!(window.record(ms(5000)), 4);
        for n in 0..10 {
            window.record(ms(6000 + n));
        }
        assert_eq!(window.record(ms(6500)), 11);
    }

    #[test]
    fn many_events_keep_only_the_window_in_memory() {
        let t0 = Instant::now();
        let mut window = SlidingMax::new(Duration::from_secs(1));
        for n in 0..100_000u64 {
            window.record(t0 + Duration::from_micros(n * 100));
        }
        assert_eq!(window.max, 10_000);
        assert_eq!(window.times.len(), 10_000);
    }

    #[test]
    fn outcomes_count_answers_but_not_resets_or_hangs() {
        let mut recorder = Recorder::default();
        let now = Instant::now();
        recorder.request(Endpoint::Create, now);
        recorder.request(Endpoint::Get, now);
        recorder.request(Endpoint::List, now);
        recorder.outcome(Outcome::Answered(201));
        recorder.outcome(Outcome::Injected(503));
        recorder.outcome(Outcome::RateLimited);
        recorder.outcome(Outcome::Reset);
        recorder.outcome(Outcome::Hang);
        let stats = recorder.snapshot();
        assert_eq!(stats.requests[&Endpoint::Create], 1);
        assert_eq!(stats.max_creates_per_second, 1);
        assert_eq!(stats.max_others_per_minute, 2);
        assert_eq!(stats.responses.values().sum::<u64>(), 3);
        assert_eq!(stats.responses[&429], 1);
        assert_eq!(
            (
                stats.injected_errors,
                stats.injected_resets,
                stats.injected_hangs
            ),
            (1, 1, 1)
        );
        assert_eq!(stats.rate_limited, 1);
    }
}
