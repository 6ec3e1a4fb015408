//! The load generator shared by the HTTP scenarios and their references: N concurrent
//! clients (tokio tasks, each with its own keep-alive connection: `conn.rs` for measured
//! runs, a pooled reqwest client where a scenario reads answers to set itself up), each
//! sending its next request as soon as the previous one is answered, for a fixed number of
//! requests or a fixed time. Plus the small measurements the scenarios share: process CPU
//! time and the size of a directory on disk.

use super::conn::{self, Conn, Endpoint};
use super::progress::Progress;
use super::stats::Summary;
use super::wrk::{self, Driver};
use hyper::body::Bytes;
use hyper::Method;
use serde_json::{json, Value};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How much load: `clients` in parallel, until `requests` were sent or `duration` passed
/// (whichever comes first; at least one of them is set).
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub clients: usize,
    pub requests: Option<usize>,
    pub duration: Option<Duration>,
}

impl Plan {
    /// How long a measured run lasts when neither a time nor a count is asked for.
    pub const DEFAULT_SECONDS: f64 = 5.0;

    /// The measured run of a scenario: for `seconds`, or `requests` when only that is given,
    /// else for `DEFAULT_SECONDS`. Not a count by default: 20 000 requests last ~0.15 s
    /// against bare hyper, which then reads 15-30% below its sustained rate and flatters
    /// the engine's ratio to it (docs/benchmarks-history.md, "The HTTP ceiling").
    pub fn measured(clients: usize, requests: Option<usize>, seconds: Option<f64>) -> Plan {
        match (seconds, requests) {
            (None, Some(n)) => Plan {
                clients,
                requests: Some(n),
                duration: None,
            },
            (seconds, _) => Plan {
                clients,
                requests: None,
                duration: Some(Duration::from_secs_f64(
                    seconds.unwrap_or(Self::DEFAULT_SECONDS),
                )),
            },
        }
    }

    /// Round `i`'s share of this plan split into `rounds`: the time divided evenly, or the
    /// requests (the first `n % rounds` rounds send one more, so the shares add up to `n`).
    pub fn share(self, i: usize, rounds: usize) -> Plan {
        let rounds = rounds.max(1);
        Plan {
            clients: self.clients,
            requests: self
                .requests
                .map(|n| n / rounds + usize::from(i < n % rounds)),
            duration: self.duration.map(|d| d / rounds as u32),
        }
    }
}

/// What one load run measured. Latency covers every request, failed or not.
#[derive(Debug)]
pub struct Outcome {
    pub requests: usize,
    pub errors: usize,
    pub elapsed: Duration,
    pub latency: Summary,
    pub first_error: Option<String>,
    /// Every request's latency, kept so that rounds can be merged (`Outcome::merge`).
    samples: Vec<Duration>,
}

impl Outcome {
    /// No requests, no time.
    fn empty() -> Outcome {
        Outcome {
            requests: 0,
            errors: 0,
            elapsed: Duration::ZERO,
            latency: Summary::of(&[]),
            first_error: None,
            samples: vec![],
        }
    }

    /// A run that could not send anything.
    pub fn failed(error: String) -> Outcome {
        Outcome {
            errors: 1,
            first_error: Some(error),
            ..Outcome::empty()
        }
    }

    /// A run measured elsewhere (`wrk.rs`): one latency per request, `errors` among them.
    pub fn from_samples(
        samples: Vec<Duration>,
        errors: usize,
        elapsed: Duration,
        first_error: Option<String>,
    ) -> Outcome {
        Outcome {
            requests: samples.len(),
            errors,
            elapsed,
            latency: Summary::of(&samples),
            first_error,
            samples,
        }
    }

    /// One outcome for several runs of the same load (a series' rounds): their requests,
    /// errors and time added up, the latency summary over all their requests.
    pub fn merge(parts: Vec<Outcome>) -> Outcome {
        let mut merged = Outcome::empty();
        for part in parts {
            merged.requests += part.requests;
            merged.errors += part.errors;
            merged.elapsed += part.elapsed;
            merged.first_error = merged.first_error.or(part.first_error);
            merged.samples.extend(part.samples);
        }
        merged.latency = Summary::of(&merged.samples);
        merged
    }

    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn json(&self) -> Value {
        json!({
            "requests": self.requests,
            "errors": self.errors,
            "seconds": self.elapsed.as_secs_f64(),
            "per_second": self.per_second(),
            "latency": self.latency,
            "first_error": self.first_error,
        })
    }

    pub fn header() -> String {
        format!(
            "{:<30} {:>7} {:>9} {:>8} {:>8} {:>8} {:>8} {:>6}",
            "", "n", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors"
        )
    }

    pub fn row(&self, label: &str) -> String {
        let l = &self.latency;
        format!(
            "{label:<30} {:>7} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>6}",
            self.requests,
            self.per_second(),
            l.p50_ms,
            l.p90_ms,
            l.p99_ms,
            l.max_ms,
            self.errors
        )
    }
}

/// Runs `request(i)` for i = 0, 1, 2, … from `plan.clients` concurrent tasks. A request
/// fails when its future answers `Err` (non-2xx, transport error, unreadable body).
pub async fn run<F, Fut>(label: &str, plan: Plan, request: F) -> Outcome
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    run_each(
        label,
        plan,
        || (),
        move |(), i| {
            let sent = request(i);
            async move { ((), sent.await) }
        },
    )
    .await
}

/// Sends `request(i)` (method, path, body) for i = 0, 1, 2, … to `base` (`http://host:port`)
/// from `plan.clients` clients, each on its own keep-alive connection (`conn.rs`); a request
/// fails unless it answers `expect`. With `Driver::Wrk`, wrk sends the first
/// `wrk::SAMPLE` of them in turn instead.
pub async fn requests<F>(
    label: &str,
    plan: Plan,
    driver: Driver,
    base: &str,
    expect: u16,
    request: F,
) -> Outcome
where
    F: Fn(usize) -> (Method, String, Bytes) + Send + Sync + 'static,
{
    if let Driver::Wrk { threads } = driver {
        let sample = (0..wrk::SAMPLE).map(request).collect();
        return wrk::run(plan, threads, base, sample).await;
    }
    let endpoint = match Endpoint::parse(base) {
        Ok(endpoint) => endpoint,
        Err(error) => return Outcome::failed(error),
    };
    // Every client's connection opens before the clock starts: a short run (20 000 requests
    // to bare hyper take ~0.15 s) would otherwise time 64 connects too. One that fails to
    // open is tried again, and counted, at its client's first request.
    let mut opening = tokio::task::JoinSet::new();
    for _ in 0..plan.clients.max(1) {
        let endpoint = endpoint.clone();
        opening.spawn(async move { Conn::open(&endpoint).await.ok() });
    }
    let opened = std::sync::Mutex::new(opening.join_all().await);
    let take = move || {
        opened
            .lock()
            .map(|mut opened| opened.pop().flatten())
            .unwrap_or(None)
    };
    run_each(label, plan, take, move |conn, i| {
        let (method, path, body) = request(i);
        let (request, endpoint) = (endpoint.request(method, &path, body), endpoint.clone());
        async move {
            let (conn, answer) = conn::send_on(conn, &endpoint, request, expect).await;
            (conn, answer.map(drop))
        }
    })
    .await
}

/// `POST base+path` with the JSON `body` from `plan.clients` clients; a request fails unless
/// it answers `expect`.
pub async fn post_json(
    label: &str,
    plan: Plan,
    driver: Driver,
    base: &str,
    path: &str,
    body: Bytes,
    expect: u16,
) -> Outcome {
    let path = path.to_owned();
    requests(label, plan, driver, base, expect, move |_| {
        (Method::POST, path.clone(), body.clone())
    })
    .await
}

/// The engine of [`run`] and [`requests`]: each client task starts with `state()` (say, no
/// connection yet) and threads it through its requests.
async fn run_each<S, M, F, Fut>(label: &str, plan: Plan, state: M, request: F) -> Outcome
where
    S: Send + 'static,
    M: Fn() -> S,
    F: Fn(S, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = (S, Result<(), String>)> + Send + 'static,
{
    let request = Arc::new(request);
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = plan.duration.map(|d| started + d);
    let limit = plan.requests.unwrap_or(usize::MAX);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..plan.clients.max(1) {
        let (request, next, done, mut state) =
            (request.clone(), next.clone(), done.clone(), state());
        workers.spawn(async move {
            let mut latencies = Vec::new();
            let (mut errors, mut first_error) = (0usize, None);
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= limit || deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let sent = Instant::now();
                let (after, result) = request(state, i).await;
                state = after;
                latencies.push(sent.elapsed());
                if let Err(error) = result {
                    errors += 1;
                    first_error.get_or_insert(error);
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            (latencies, errors, first_error)
        });
    }
    let (total, by_time) = match (plan.requests, plan.duration) {
        (Some(n), _) => (n as u64, false),
        (None, Some(d)) => (d.as_millis() as u64, true),
        (None, None) => (1, false),
    };
    let mut progress = Progress::new(label, total);
    let mut latencies = Vec::new();
    let (mut errors, mut first_error) = (0, None);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            joined = workers.join_next() => match joined {
                Some(Ok((mut l, e, first))) => {
                    latencies.append(&mut l);
                    errors += e;
                    if first_error.is_none() {
                        first_error = first;
                    }
                }
                Some(Err(panic)) => {
                    errors += 1;
                    first_error.get_or_insert(format!("client task failed: {panic}"));
                }
                None => break,
            },
            _ = tick.tick() => progress.set(if by_time {
                started.elapsed().as_millis() as u64
            } else {
                done.load(Ordering::Relaxed) as u64
            }),
        }
    }
    let elapsed = started.elapsed();
    progress.set(total);
    progress.finish();
    Outcome {
        requests: latencies.len(),
        errors,
        elapsed,
        latency: Summary::of(&latencies),
        first_error,
        samples: latencies,
    }
}

/// A client for load: keep-alive connections, one per concurrent client.
pub fn client(clients: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(clients.max(1))
        .timeout(Duration::from_secs(60))
        .build()
        .expect("a plain HTTP client builds")
}

/// Sends `request`, reads the whole answer, and fails unless the status is `expect`.
pub async fn expect_status(
    request: reqwest::RequestBuilder,
    expect: u16,
) -> Result<hyper::body::Bytes, String> {
    let response = request
        .send()
        .await
        .map_err(|e| format!("transport: {e}"))?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("reading the body: {e}"))?;
    if status != expect {
        return Err(format!(
            "status {status} (wanted {expect}): {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ));
    }
    Ok(body)
}

/// CPU time this process used so far (user + system, every thread).
pub fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the struct we pass and reads nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// A table's closing lines: process CPU per request (`unit`: "start", "GET"; `whose`: what
/// the process holds besides the load generator) and the first error, if any.
pub fn footer(cpu: Duration, outcome: &Outcome, unit: &str, whose: &str) -> String {
    let per = micros_per_request(cpu, outcome);
    let mut out = format!(
        "process CPU during the run: {:.2} s, {per:.1} us per {unit} ({whose})\n",
        cpu.as_secs_f64()
    );
    if let Some(error) = &outcome.first_error {
        out += &format!("first engine error: {error}\n");
    }
    out
}

/// Process CPU per request of a run, in microseconds.
pub fn micros_per_request(cpu: Duration, outcome: &Outcome) -> f64 {
    cpu.as_secs_f64() * 1e6 / outcome.requests.max(1) as f64
}

/// The footer's line for the bare-hyper reference: what this process spent per request
/// while only the reference (and, in-process, the load generator) ran. With the engine's
/// line it shows how much of each figure is the load generator's.
pub fn reference_footer(cpu: Duration, outcome: &Outcome, unit: &str, driver: Driver) -> String {
    let whose = match driver {
        Driver::InProcess => "bare hyper and load generator together",
        Driver::Wrk { .. } => "bare hyper alone, wrk is another process",
    };
    format!(
        "process CPU during bare hyper: {:.1} us per {unit} ({whose})\n",
        micros_per_request(cpu, outcome)
    )
}

#[cfg(test)]
#[path = "load_tests.rs"]
mod tests;
