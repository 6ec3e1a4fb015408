//! The gate every `/v1` request passes first: it counts the request, applies a 429 storm, the
//! real rate limits and the injected faults, and records how the request ended. [`Gate`] makes
//! the decisions (time passed in, randomness owned); [`fault_gate`] is the axum middleware that
//! carries them out.

use std::time::{Duration, Instant};

use axum::extract::{OriginalUri, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::rngs::StdRng;

use crate::faults::{AfterWork, Draw, Endpoint, Fate, Faults};
use crate::problem::ApiError;
use crate::ratelimit::{RateLimiter, RateLimits};
use crate::state::SimState;
use crate::stats::{Outcome, Recorder, SimStats, WebhookOutcome};
use crate::webhooks::WebhookFaults;

/// What the gate decided for one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Answer 429 now because of a storm.
    Storm { retry_after: u64 },
    /// Answer 429 now because of the real rate limits.
    RateLimited { retry_after: u64 },
    /// Go on with this draw.
    Proceed(Draw),
}

/// The decision plus the switches the middleware needs to carry it out.
#[derive(Clone, Copy, Debug)]
pub struct Verdict {
    pub admission: Admission,
    pub retry_after_header: bool,
    /// The `retry_after` of an injected 429.
    pub injected_retry_after: u64,
}

/// Fault switches, storm deadline, rate limiter, fault randomness and statistics; kept behind
/// one mutex in [`SimState`] and locked briefly, never across an `.await`.
pub struct Gate {
    faults: Faults,
    storm_until: Option<Instant>,
    limiter: Option<RateLimiter>,
    rng: StdRng,
    recorder: Recorder,
}

impl Gate {
    pub fn new(rate_limits: Option<&RateLimits>, rng: StdRng, now: Instant) -> Self {
        Gate {
            faults: Faults::default(),
            storm_until: None,
            limiter: rate_limits.map(|limits| RateLimiter::new(limits, now)),
            rng,
            recorder: Recorder::default(),
        }
    }

    /// Replaces every switch; a storm starts at `now`.
    pub fn set_faults(&mut self, faults: Faults, now: Instant) {
        self.storm_until =
            (faults.storm_ms > 0).then(|| now + Duration::from_millis(faults.storm_ms));
        self.faults = faults;
    }

    /// Replaces the real rate limits with full buckets (`None` = unlimited).
    pub fn set_rate_limits(&mut self, limits: Option<&RateLimits>, now: Instant) {
        self.limiter = limits.map(|limits| RateLimiter::new(limits, now));
    }

    /// Counts the request and decides, in order: storm, real rate limit, injected faults.
    pub fn admit(&mut self, endpoint: Endpoint, now: Instant) -> Verdict {
        self.recorder.request(endpoint, now);
        let admission = self.decide(endpoint, now);
        Verdict {
            admission,
            retry_after_header: self.faults.retry_after_header,
            injected_retry_after: self.faults.storm_retry_after_s.max(1),
        }
    }

    fn decide(&mut self, endpoint: Endpoint, now: Instant) -> Admission {
        if let Some(until) = self.storm_until.filter(|&until| now < until) {
            let retry_after = match self.faults.storm_retry_after_s {
                0 => until.duration_since(now).as_secs_f64().ceil().max(1.0) as u64,
                n => n,
            };
            return Admission::Storm { retry_after };
        }
        if let Some(limiter) = &mut self.limiter {
            if let Err(retry_after) = limiter.try_acquire(endpoint.is_create(), now) {
                return Admission::RateLimited { retry_after };
            }
        }
        let draw = match self.faults.endpoints.get(&endpoint) {
            Some(faults) => faults.draw(&mut self.rng),
            None => Draw::default(),
        };
        Admission::Proceed(draw)
    }

    pub fn record(&mut self, outcome: Outcome) {
        self.recorder.outcome(outcome);
    }

    pub fn stats(&self) -> SimStats {
        self.recorder.snapshot()
    }

    /// The webhook switches currently set.
    pub fn webhook_faults(&self) -> WebhookFaults {
        WebhookFaults::from_faults(&self.faults)
    }

    pub fn record_webhook(&mut self, outcome: WebhookOutcome) {
        self.recorder.webhook(outcome);
    }
}

/// When the request reached the simulator, before any injected latency; the create handler
/// uses it as `created_at`.
#[derive(Clone, Copy, Debug)]
pub struct ReceivedAt(pub time::OffsetDateTime);

/// The axum middleware in front of every `/v1` route.
pub async fn fault_gate(
    State(state): State<SimState>,
    mut request: Request,
    next: Next,
) -> Response {
    let received = ReceivedAt(time::OffsetDateTime::now_utc());
    request.extensions_mut().insert(received);
    let path = match request.extensions().get::<OriginalUri>() {
        Some(original) => original.path().to_string(),
        None => request.uri().path().to_string(),
    };
    let endpoint = Endpoint::classify(request.method(), &path);
    let verdict = state.gate().admit(endpoint, Instant::now());
    let header = verdict.retry_after_header;
    let draw = match verdict.admission {
        Admission::Storm { retry_after } => {
            return answer(
                &state,
                throttled(retry_after, header),
                Outcome::Injected(429),
            );
        }
        Admission::RateLimited { retry_after } => {
            return answer(&state, throttled(retry_after, header), Outcome::RateLimited);
        }
        Admission::Proceed(draw) => draw,
    };
    if !draw.latency.is_zero() {
        tokio::time::sleep(draw.latency).await;
    }
    match draw.fate {
        Fate::Reset => reset_connection(&state),
        Fate::Hang => {
            state.gate().record(Outcome::Hang);
            tracing::debug!(?endpoint, "Holding a request open (injected hang).");
            let mut shutdown = state.shutdown_signal();
            let _ = shutdown.wait_for(|stopped| *stopped).await;
            abort_connection()
        }
        Fate::Error(429) => answer(
            &state,
            throttled(verdict.injected_retry_after, header),
            Outcome::Injected(429),
        ),
        Fate::Error(status) => answer(
            &state,
            ApiError::Injected { status }.into_response(),
            Outcome::Injected(status),
        ),
        Fate::Work(after) => {
            let response = next.run(request).await;
            match after {
                AfterWork::Answer => {
                    let status = response.status().as_u16();
                    answer(&state, response, Outcome::Answered(status))
                }
                AfterWork::Reset => reset_connection(&state),
                AfterWork::Error => answer(
                    &state,
                    ApiError::Injected { status: 503 }.into_response(),
                    Outcome::Injected(503),
                ),
            }
        }
    }
}

fn answer(state: &SimState, response: Response, outcome: Outcome) -> Response {
    state.gate().record(outcome);
    response
}

fn throttled(retry_after: u64, header: bool) -> Response {
    let mut response = ApiError::Throttled { retry_after }.into_response();
    if header {
        response
            .headers_mut()
            .insert("retry-after", HeaderValue::from(retry_after));
    }
    response
}

fn reset_connection(state: &SimState) -> Response {
    state.gate().record(Outcome::Reset);
    abort_connection()
}

/// Unwinds out of the connection task without running the panic hook, so hyper drops the socket
/// without writing an answer; the client sees a reset or an incomplete message.
fn abort_connection() -> ! {
    std::panic::resume_unwind(Box::new("replicate-sim: injected connection reset"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::EndpointFaults;
    use rand::SeedableRng;

    fn gate(limits: Option<RateLimits>, now: Instant) -> Gate {
        Gate::new(limits.as_ref(), StdRng::seed_from_u64(3), now)
    }

    #[test]
    fn a_storm_throttles_everything_until_it_ends() {
        let t0 = Instant::now();
        let mut gate = gate(None, t0);
        gate.set_faults(
            Faults {
                storm_ms: 2500,
                ..Faults::default()
            },
            t0,
        );
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(
            gate.admit(Endpoint::Get, at(0)).admission,
            Admission::Storm { retry_after: 3 }
        );
        assert_eq!(
            gate.admit(Endpoint::Create, at(2000)).admission,
            Admission::Storm { retry_after: 1 }
        );
        assert_eq!(
            gate.admit(Endpoint::Create, at(2500)).admission,
            Admission::Proceed(Draw::default())
        );
        assert_eq!(gate.stats().requests[&Endpoint::Create], 2);
    }

    #[test]
    fn the_storm_comes_before_the_rate_limits_and_they_before_faults() {
        let t0 = Instant::now();
        let limits = RateLimits {
            creates_per_minute: 60,
            create_burst: 1,
            others_per_minute: 0,
            other_burst: 0,
        };
        let mut gate = gate(Some(limits), t0);
        let mut faults = Faults::everywhere(EndpointFaults {
            error_rate: 1.0,
            error_statuses: vec![502],
            ..EndpointFaults::default()
        });
        faults.storm_ms = 100;
        faults.storm_retry_after_s = 7;
        gate.set_faults(faults, t0);
        assert_eq!(
            gate.admit(Endpoint::Create, t0).admission,
            Admission::Storm { retry_after: 7 }
        );
        let after = t0 + Duration::from_millis(100);
        assert!(matches!(
            gate.admit(Endpoint::Create, after).admission,
            Admission::Proceed(Draw {
                fate: Fate::Error(502),
                ..
            })
        ));
        assert_eq!(
            gate.admit(Endpoint::Create, after).admission,
            Admission::RateLimited { retry_after: 1 }
        );
    }
}
