//! The runtime's timing and retry rules in one place: when to check a prediction again, how
//! long to back off after a failed call, when a step or task has run out of time, and which
//! failures are worth another attempt. Pure functions of their arguments (and, for backoff's
//! jitter, of `rand`), and at the end the few readings of them for one task (its workflow's
//! timeouts, its poll delay): the decision code asks here and never computes a delay itself.

use super::Runtime;
use crate::model::TaskId;
use std::time::Duration;

/// Downloads of a step's output files that fail this often in a row give up: the step
/// succeeds with its original URLs.
pub const MAX_KEEP_FAILURES: u32 = 5;

/// How often to check predictions, and how to back off after failed calls.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    pub poll_initial: Duration,
    pub poll_max: Duration,
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// With webhooks on, every status check waits this long: deliveries do the real work.
    pub safety_poll: Option<Duration>,
    /// Create calls allowed out at once (see `create_gate::CreateGate`): the create burst, at least
    /// `create_gate::MIN_CREATES_OUT`.
    pub max_creates_out: usize,
    /// How long after its `CreateSent` a create call can still make a prediction: the grace
    /// for sending it (`effect::SEND_GRACE`) and the whole request timeout.
    pub create_reach: Duration,
}

impl Policy {
    /// The first status check after a create. With webhooks on, a prediction still
    /// `starting` is checked at the usual cadence anyway: Replicate's `start` delivery comes
    /// at creation, so only a check can see it reach `processing`.
    pub fn first_poll(&self, starting: bool) -> Duration {
        match self.safety_poll {
            Some(safety) if !starting => safety,
            _ => self.poll_initial,
        }
    }

    /// The status check after one that found the prediction still running: twice the last
    /// wait, between `poll_initial` and `poll_max`; with webhooks on, the safety poll once
    /// the prediction is past `starting`.
    pub fn next_poll(&self, last: Duration, starting: bool) -> Duration {
        match self.safety_poll {
            Some(safety) if !starting => safety,
            _ => (last * 2).clamp(self.poll_initial, self.poll_max),
        }
    }

    /// The wait before a call is tried again after `failures` failures in a row: exponential
    /// backoff with full jitter, never sooner than the server asked (`retry_after`).
    pub fn backoff(&self, failures: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling = self
            .retry_base
            .saturating_mul(1 << failures.min(16))
            .min(self.retry_max);
        let jittered = ceiling.mul_f64(rand::random::<f64>());
        jittered.max(retry_after.unwrap_or_default())
    }

    /// The wait before a failed status check is tried again: the backoff, but never more
    /// often than the checks of a running prediction (`poll_delay`).
    pub fn check_backoff(
        &self,
        failures: u32,
        retry_after: Option<Duration>,
        poll_delay: Duration,
    ) -> Duration {
        self.backoff(failures, retry_after).max(poll_delay)
    }
}

/// The next status check of a running step: `poll_delay`, or sooner when the step's time
/// runs out first (so its timeout is acted on when due, not at the next poll).
pub fn check_delay(poll_delay: Duration, time_left: Option<Duration>) -> Duration {
    match time_left {
        Some(left) => poll_delay.min(left),
        None => poll_delay,
    }
}

/// What is left of `timeout` for something started at `started` (ms), at `now` (ms).
pub fn time_left(timeout: Duration, started: i64, now: i64) -> Duration {
    let elapsed = now.saturating_sub(started).max(0) as u64;
    timeout.saturating_sub(Duration::from_millis(elapsed))
}

/// Whether a failed attempt runs the step again: attempts are 1-based, and a workflow with
/// `retries` retries allows `retries + 1` attempts.
pub fn retries_attempt(attempt: u32, retries: u32) -> bool {
    attempt <= retries
}

/// Whether a failed create may still have made a prediction, which must then be searched
/// for before anything is created again: only a create journaled as sent (`sent`) can have
/// reached Replicate, and one refused before it was read (a 429, a refused connection) made
/// nothing.
pub fn create_may_have_landed(sent: bool, refused: bool) -> bool {
    sent && !refused
}

/// A duration as an operator writes it in the config: `90s`, `10m`, `2h`, `500ms`.
pub fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0 => format!("{}ms", duration.as_millis()),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

impl Runtime {
    /// The configured stage of `step`, when the task's plan still matches the config.
    pub(super) fn stage(&self, id: TaskId, step: u32) -> Option<&crate::workflow::Stage> {
        let task = &self.active.get(&id)?.task;
        let workflow = self.workflows.get(&task.workflow)?;
        super::inputs::stage_of(workflow, task, task.step(step)?).map(|(stage, _)| stage)
    }

    /// Whether the step's stage allows another attempt after the current one failed: its
    /// `step_retries`, then one on its fallback (after which nothing).
    pub(super) fn allows_another(&self, id: TaskId, step: u32) -> bool {
        let Some(stage) = self.stage(id, step) else {
            return false;
        };
        let Some(s) = self.active.get(&id).and_then(|a| a.task.step(step)) else {
            return false;
        };
        if s.model.is_some() {
            // The fallback is the last attempt.
            return false;
        }
        let tries = (s.attempt + 1).saturating_sub(s.run_from);
        let budget = stage.step_retries + u32::from(stage.fallback.is_some());
        retries_attempt(tries, budget)
    }

    /// True when `step` has run for at least its stage's `step_timeout`.
    pub(super) fn step_timed_out(&self, id: TaskId, step: u32) -> bool {
        self.step_time_left(id, step)
            .is_some_and(|left| left.is_zero())
    }

    fn step_time_left(&self, id: TaskId, step: u32) -> Option<Duration> {
        let timeout = self.stage(id, step)?.step_timeout?;
        let started = self.active.get(&id)?.task.step(step)?.started_at?;
        Some(time_left(timeout, started, crate::time::now_millis()))
    }

    pub(super) fn timeout_error(&self, id: TaskId, step: u32) -> String {
        match self.stage(id, step).and_then(|stage| stage.step_timeout) {
            Some(timeout) => format!("step timed out after {}", human(timeout)),
            None => "step timed out".into(),
        }
    }

    /// The next status check of `step`: its backoff delay, or sooner if its time runs out.
    pub(super) fn next_check_delay(&self, id: TaskId, step: u32) -> Duration {
        // A step without call state yet (resumed after a restart) is checked after its
        // task's first poll: at once after a restart.
        let poll_delay = self
            .active
            .get(&id)
            .map_or(self.policy.poll_initial, |active| {
                active
                    .lane_of(step)
                    .map_or(active.first_poll, |lane| lane.poll_delay)
            });
        check_delay(poll_delay, self.step_time_left(id, step))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            poll_initial: Duration::from_secs(1),
            poll_max: Duration::from_secs(30),
            retry_base: Duration::from_millis(500),
            retry_max: Duration::from_secs(60),
            safety_poll: None,
            max_creates_out: 256,
            create_reach: Duration::from_secs(35),
        }
    }

    #[test]
    fn checks_of_a_running_prediction_double_up_to_the_maximum() {
        let p = policy();
        for starting in [true, false] {
            let mut delay = p.first_poll(starting);
            let mut seen = vec![delay];
            for _ in 0..7 {
                delay = p.next_poll(delay, starting);
                seen.push(delay);
            }
            let secs: Vec<u64> = seen.iter().map(Duration::as_secs).collect();
            assert_eq!(secs, [1, 2, 4, 8, 16, 30, 30, 30]);
        }
    }

    #[test]
    fn with_webhooks_a_started_prediction_is_checked_at_the_safety_poll_only() {
        let p = Policy {
            safety_poll: Some(Duration::from_secs(120)),
            ..policy()
        };
        let safety = Duration::from_secs(120);
        assert_eq!(p.first_poll(false), safety);
        assert_eq!(p.next_poll(Duration::from_secs(1), false), safety);
        // Still starting: the usual cadence, until a check sees it processing.
        assert_eq!(p.first_poll(true), Duration::from_secs(1));
        assert_eq!(
            p.next_poll(Duration::from_secs(8), true),
            Duration::from_secs(16)
        );
        assert_eq!(p.next_poll(safety, true), Duration::from_secs(30));
    }

    #[test]
    fn backoff_stays_under_its_ceiling_and_honours_retry_after() {
        let p = policy();
        for failures in 1..40 {
            let ceiling = (p.retry_base * 2u32.pow(failures.min(16))).min(p.retry_max);
            for _ in 0..50 {
                assert!(p.backoff(failures, None) <= ceiling);
            }
        }
        let asked = Duration::from_secs(90);
        assert!(p.backoff(1, Some(asked)) >= asked);
        // A failed check never comes back sooner than the running checks would.
        let poll = Duration::from_secs(8);
        assert!(p.check_backoff(1, None, poll) >= poll);
    }

    #[test]
    fn a_step_about_to_time_out_is_checked_when_its_time_is_up() {
        let poll = Duration::from_secs(30);
        assert_eq!(check_delay(poll, None), poll);
        assert_eq!(
            check_delay(poll, Some(Duration::from_secs(4))),
            Duration::from_secs(4)
        );
        assert_eq!(
            time_left(Duration::from_secs(10), 1_000, 4_000),
            Duration::from_secs(7)
        );
        assert_eq!(
            time_left(Duration::from_secs(10), 1_000, 60_000),
            Duration::ZERO
        );
        // A clock that went back does not give a step more than its timeout.
        assert_eq!(
            time_left(Duration::from_secs(10), 5_000, 1_000),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn retry_rules() {
        assert!(retries_attempt(1, 1));
        assert!(!retries_attempt(2, 1));
        assert!(!retries_attempt(1, 0));
        assert!(create_may_have_landed(true, false));
        assert!(!create_may_have_landed(true, true));
        assert!(!create_may_have_landed(false, false));
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_millis(250)), "250ms");
        assert_eq!(human(Duration::from_secs(90)), "90s");
        assert_eq!(human(Duration::from_secs(600)), "10m");
        assert_eq!(human(Duration::from_secs(7200)), "2h");
    }
}
