//! Fault-injection switches: what may go wrong per endpoint and in the prediction lifecycle,
//! and the pure draw that turns one endpoint's switches into one request's fate. Randomness
//! comes in as a parameter; no IO, no clock, no locks.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::Method;
use rand::Rng;

/// The API endpoints faults and statistics are kept for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `POST /v1/predictions`, `POST /v1/models/{o}/{n}/predictions` and
    /// `POST /v1/deployments/{o}/{n}/predictions`.
    Create,
    /// `GET /v1/predictions/{id}`.
    Get,
    /// `GET /v1/predictions`.
    List,
    /// `POST /v1/predictions/{id}/cancel`.
    Cancel,
    /// Every other `/v1` request, including unknown paths.
    Other,
}

impl Endpoint {
    /// Classifies a request by method and full path (`/v1/...`, before any prefix stripping).
    pub fn classify(method: &Method, path: &str) -> Endpoint {
        let Some(rest) = path.strip_prefix("/v1/") else {
            return Endpoint::Other;
        };
        let segments: Vec<&str> = rest.split('/').collect();
        if segments.iter().any(|s| s.is_empty()) {
            return Endpoint::Other;
        }
        match (method, segments.as_slice()) {
            (&Method::POST, ["predictions"]) => Endpoint::Create,
            (&Method::POST, ["models" | "deployments", _, _, "predictions"]) => Endpoint::Create,
            (&Method::GET, ["predictions"]) => Endpoint::List,
            (&Method::GET, ["predictions", _]) => Endpoint::Get,
            (&Method::POST, ["predictions", _, "cancel"]) => Endpoint::Cancel,
            _ => Endpoint::Other,
        }
    }

    /// Creates have their own rate-limit bucket and statistics; everything else shares one.
    pub fn is_create(self) -> bool {
        self == Endpoint::Create
    }
}

/// What may go wrong on one endpoint. Each rate is a chance in 0.0..=1.0 per request.
#[derive(Clone, Debug)]
pub struct EndpointFaults {
    /// Chance to answer with an injected error from `error_statuses` WITHOUT doing the work.
    pub error_rate: f64,
    /// Statuses for injected errors, chosen uniformly; default [500, 502, 503, 504].
    /// Bodies are problem+json like the real API (429 gets `retry_after`).
    pub error_statuses: Vec<u16>,
    /// Chance to DO the work (e.g. really create the prediction) and then answer 503
    /// anyway: the ambiguous failure where the client cannot know the create happened.
    pub error_after_work_rate: f64,
    /// Chance to drop the TCP connection without any HTTP answer; the work is not done.
    pub reset_rate: f64,
    /// Chance to do the work and then drop the connection without answering.
    pub reset_after_work_rate: f64,
    /// Chance to never answer (hold the request open until the client gives up or the sim
    /// shuts down); the work is not done.
    pub hang_rate: f64,
    /// Extra latency added before answering, uniform in [min, max] ms.
    pub latency_ms: (u64, u64),
}

impl Default for EndpointFaults {
    fn default() -> Self {
        EndpointFaults {
            error_rate: 0.0,
            error_statuses: vec![500, 502, 503, 504],
            error_after_work_rate: 0.0,
            reset_rate: 0.0,
            reset_after_work_rate: 0.0,
            hang_rate: 0.0,
            latency_ms: (0, 0),
        }
    }
}

/// Every fault switch, replaced as a whole by `SimHandle::set_faults`.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Endpoints missing from the map behave normally.
    pub endpoints: HashMap<Endpoint, EndpointFaults>,
    /// A 429 storm: until this many ms after `set_faults`, every /v1 request gets 429 with
    /// body {"detail":"Request was throttled. Your rate limit resets in ~Ns.","status":429,"retry_after":N}.
    pub storm_ms: u64,
    /// The N of storm 429s and injected 429s. 0 means, for a storm, its remaining time rounded
    /// up to whole seconds, and for an injected 429, 1.
    pub storm_retry_after_s: u64,
    /// Also send a `Retry-After: N` header on every 429 (injected or real).
    pub retry_after_header: bool,
    /// Chance a new prediction cold-boots: its `starting` phase lasts `cold_boot_ms` instead of
    /// the model's starting_ms.
    pub cold_boot_rate: f64,
    pub cold_boot_ms: u64,
    /// Overrides every model's failure_rate when Some (predictions that end `failed` with the
    /// model's failure_message).
    pub prediction_failure_rate: Option<f64>,
    /// Chance each webhook attempt is silently not sent. A dropped `completed` attempt counts
    /// as failed and is retried like a non-2xx answer; a dropped `start` is lost.
    pub webhook_drop_rate: f64,
    /// Drop every attempt of every webhook: webhooks are lost entirely.
    pub webhook_drop_all: bool,
    /// Chance a sent webhook attempt is sent a second time right after (same `webhook-id`).
    pub webhook_duplicate_rate: f64,
    /// Extra delay before each webhook attempt, uniform in [min, max] ms.
    pub webhook_delay_ms: (u64, u64),
    /// Hold `start` webhooks and send them only after the prediction's `completed` delivery
    /// has finished (delivered or given up), i.e. out of order. Applies to predictions
    /// created while it is on.
    pub webhook_reorder: bool,
}

impl Faults {
    /// The same switches on every endpoint.
    pub fn everywhere(endpoint: EndpointFaults) -> Faults {
        let endpoints = [
            Endpoint::Create,
            Endpoint::Get,
            Endpoint::List,
            Endpoint::Cancel,
            Endpoint::Other,
        ]
        .into_iter()
        .map(|e| (e, endpoint.clone()))
        .collect();
        Faults {
            endpoints,
            ..Faults::default()
        }
    }

    /// The part of the switches the prediction store applies at creation.
    pub fn lifecycle(&self) -> LifecycleFaults {
        LifecycleFaults {
            cold_boot_rate: self.cold_boot_rate,
            cold_boot_ms: self.cold_boot_ms,
            failure_rate: self.prediction_failure_rate,
        }
    }
}

/// Lifecycle overrides drawn once per new prediction.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LifecycleFaults {
    pub cold_boot_rate: f64,
    pub cold_boot_ms: u64,
    pub failure_rate: Option<f64>,
}

/// One request's fate once it passed the storm and the rate limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Drop the connection without doing the work.
    Reset,
    /// Never answer; the work is not done.
    Hang,
    /// Answer with this status without doing the work.
    Error(u16),
    /// Do the work, then do this.
    Work(AfterWork),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterWork {
    /// The normal answer.
    Answer,
    /// Drop the connection instead of answering.
    Reset,
    /// Answer 503 instead.
    Error,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Draw {
    /// Waited before anything else happens.
    pub latency: Duration,
    pub fate: Fate,
}

impl Default for Draw {
    fn default() -> Self {
        Draw {
            latency: Duration::ZERO,
            fate: Fate::Work(AfterWork::Answer),
        }
    }
}

/// True with probability `p`; draws nothing when `p <= 0`.
pub fn chance(rng: &mut impl Rng, p: f64) -> bool {
    p > 0.0 && rng.random::<f64>() < p
}

impl EndpointFaults {
    /// Decides one request's fate in the documented order: latency, reset, hang, error, then
    /// after the work reset or error. Draws nothing for switches that are off.
    pub fn draw(&self, rng: &mut impl Rng) -> Draw {
        let (min, max) = self.latency_ms;
        let latency = if max > min {
            rng.random_range(min..=max)
        } else {
            min
        };
        let fate = if chance(rng, self.reset_rate) {
            Fate::Reset
        } else if chance(rng, self.hang_rate) {
            Fate::Hang
        } else if chance(rng, self.error_rate) {
            let status = match self.error_statuses.len() {
                0 => 500,
                n => self.error_statuses[rng.random_range(0..n)],
            };
            Fate::Error(status)
        } else if chance(rng, self.reset_after_work_rate) {
            Fate::Work(AfterWork::Reset)
        } else if chance(rng, self.error_after_work_rate) {
            Fate::Work(AfterWork::Error)
        } else {
            Fate::Work(AfterWork::Answer)
        };
        Draw {
            latency: Duration::from_millis(latency),
            fate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn endpoints_are_classified_by_method_and_path() {
        let cases = [
            (Method::POST, "/v1/predictions", Endpoint::Create),
            (Method::POST, "/v1/models/a/b/predictions", Endpoint::Create),
            (
                Method::POST,
                "/v1/deployments/a/b/predictions",
                Endpoint::Create,
            ),
            (Method::GET, "/v1/predictions", Endpoint::List),
            (Method::GET, "/v1/predictions/abc", Endpoint::Get),
            (Method::POST, "/v1/predictions/abc/cancel", Endpoint::Cancel),
            (Method::GET, "/v1/predictions/abc/cancel", Endpoint::Other),
            (Method::GET, "/v1/predictions/", Endpoint::Other),
            (Method::GET, "/v1/webhooks/default/secret", Endpoint::Other),
            (Method::GET, "/v1/models/a/b/predictions", Endpoint::Other),
            (Method::POST, "/predictions", Endpoint::Other),
        ];
        for (method, path, expected) in cases {
            assert_eq!(
                Endpoint::classify(&method, path),
                expected,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn certain_switches_win_in_the_documented_order() {
        let mut rng = StdRng::seed_from_u64(1);
        let all = EndpointFaults {
            reset_rate: 1.0,
            hang_rate: 1.0,
            error_rate: 1.0,
            ..EndpointFaults::default()
        };
        assert_eq!(all.draw(&mut rng).fate, Fate::Reset);
        let hang_and_error = EndpointFaults {
            reset_rate: 0.0,
            ..all.clone()
        };
        assert_eq!(hang_and_error.draw(&mut rng).fate, Fate::Hang);
        let after = EndpointFaults {
            reset_after_work_rate: 1.0,
            error_after_work_rate: 1.0,
            ..EndpointFaults::default()
        };
        assert_eq!(after.draw(&mut rng).fate, Fate::Work(AfterWork::Reset));
        assert_eq!(EndpointFaults::default().draw(&mut rng), Draw::default());
    }

    #[test]
    fn errors_and_latency_stay_within_their_ranges() {
        let mut rng = StdRng::seed_from_u64(2);
        let faults = EndpointFaults {
            error_rate: 0.5,
            error_statuses: vec![502, 429],
            latency_ms: (5, 9),
            ..EndpointFaults::default()
        };
        let draws: Vec<Draw> = (0..1000).map(|_| faults.draw(&mut rng)).collect();
        let errors = draws
            .iter()
            .filter(|d| matches!(d.fate, Fate::Error(_)))
            .count();
        assert!((350..650).contains(&errors), "{errors} errors of 1000");
        for draw in &draws {
            assert!((5..=9).contains(&draw.latency.as_millis()));
            if let Fate::Error(status) = draw.fate {
                assert!(status == 502 || status == 429);
            }
        }
    }
}
