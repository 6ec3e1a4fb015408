//! `wrk` as the load generator (`--load wrk`): a lean C client in its own process, as an
//! outside client would load the engine. The in-process generator shares this process's two
//! cores with the server it measures, so each request costs the server's work plus the
//! generator's, and every ratio to bare hyper is squeezed toward 1; with wrk the generator's
//! share is smaller and comes from another process, and the ratios read as a client sees them.
//!
//! A run writes a Lua script that sends the sampled requests in turn (or one static request,
//! which wrk builds once) and, when done, prints the totals and 1000 latency quantiles, from
//! which an [`Outcome`] is rebuilt so that rounds merge as the in-process ones do.

use super::load::{Outcome, Plan};
use hyper::body::Bytes;
use hyper::Method;
use std::fmt::Write as _;
use std::time::Duration;

/// How many of a scenario's requests the script cycles through (a status pool's ids).
pub const SAMPLE: usize = 4096;

/// The marker of the script's own output lines among wrk's report.
const MARK: &str = "STEPWISE-WRK";

/// Quantiles printed per run: nearest-rank percentiles of every request come from them.
const QUANTILES: usize = 1000;

/// Who sends a measured run's requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// This process's own load generator (`load.rs`, `conn.rs`).
    InProcess,
    /// `wrk` in its own process, with this many threads.
    Wrk { threads: usize },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LoadKind {
    InProcess,
    Wrk,
}

/// `--load` and `--wrk-threads`, as `start` and `status` take them.
#[derive(clap::Args, Clone, Copy, Debug)]
pub struct LoadOptions {
    /// Who sends the measured requests (the engine's and the bare-hyper reference's):
    /// this process, which then shares the cores with the server it measures, or `wrk` in
    /// another process, as an outside client sees the server (needs wrk installed and
    /// --seconds; rounds last whole seconds). Warm-up and setup stay in this process.
    #[arg(long, value_enum, default_value_t = LoadKind::InProcess)]
    pub load: LoadKind,
    /// wrk's threads with --load wrk (at most --clients).
    #[arg(long, default_value_t = 2)]
    pub wrk_threads: usize,
}

impl LoadOptions {
    /// The driver of a measured `plan`; refuses wrk when it is missing or the plan counts
    /// requests instead of running for a time.
    pub fn driver(&self, plan: Plan) -> anyhow::Result<Driver> {
        match self.load {
            LoadKind::InProcess => Ok(Driver::InProcess),
            LoadKind::Wrk => {
                anyhow::ensure!(
                    plan.duration.is_some(),
                    "--load wrk runs for a time: use --seconds, not --requests"
                );
                anyhow::ensure!(self.wrk_threads > 0, "--wrk-threads must be at least 1");
                ensure_installed()?;
                Ok(Driver::Wrk {
                    threads: self.wrk_threads,
                })
            }
        }
    }
}

impl Driver {
    /// Who the table's footer says sent the load.
    pub fn describe(self) -> String {
        match self {
            Driver::InProcess => "load: this process".to_owned(),
            Driver::Wrk { threads } => format!("load: wrk -t{threads}, another process"),
        }
    }

    /// `"in-process"`, or wrk with its threads.
    pub fn json(self) -> serde_json::Value {
        match self {
            Driver::InProcess => serde_json::json!("in-process"),
            Driver::Wrk { threads } => serde_json::json!({ "wrk": { "threads": threads } }),
        }
    }
}

/// Fails with what to do when `wrk` cannot be run.
pub fn ensure_installed() -> anyhow::Result<()> {
    match std::process::Command::new("wrk").arg("-v").output() {
        Ok(_) => Ok(()),
        Err(error) => anyhow::bail!(
            "--load wrk: cannot run wrk ({error}); install it (apt-get install wrk) or use \
             --load in-process"
        ),
    }
}

/// Sends `requests` in turn to `base` (`http://host:port`) from `plan.clients` connections
/// over `threads` wrk threads, for the plan's time rounded to whole seconds (wrk's unit; at
/// least one). wrk counts a status of 400 or more as an error, not any other than `expect`.
pub async fn run(
    plan: Plan,
    threads: usize,
    base: &str,
    requests: Vec<(Method, String, Bytes)>,
) -> Outcome {
    let Some(duration) = plan.duration else {
        return Outcome::failed("--load wrk runs for a time: use --seconds".to_owned());
    };
    let seconds = duration.as_secs_f64().round().max(1.0) as u64;
    let clients = plan.clients.max(1);
    let threads = threads.clamp(1, clients);
    let base = base.trim_end_matches('/').to_owned();
    let run = move || -> Result<Outcome, String> {
        let script_file = tempfile::Builder::new()
            .prefix("stepwise-bench-")
            .suffix(".lua")
            .tempfile()
            .map_err(|e| format!("wrk script: {e}"))?;
        std::fs::write(script_file.path(), script(&requests))
            .map_err(|e| format!("wrk script: {e}"))?;
        let output = std::process::Command::new("wrk")
            .arg(format!("-t{threads}"))
            .arg(format!("-c{clients}"))
            .arg(format!("-d{seconds}s"))
            .args(["--timeout", "10s", "-s"])
            .arg(script_file.path())
            .arg(&base)
            .output()
            .map_err(|e| format!("cannot run wrk: {e}"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(format!(
                "wrk exited {}: {}{stdout}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        parse(&stdout)
    };
    match tokio::task::spawn_blocking(run).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(error)) => Outcome::failed(error),
        Err(panic) => Outcome::failed(format!("the wrk run failed: {panic}")),
    }
}

/// The Lua script: the requests, and a `done` that prints what [`parse`] reads.
fn script(requests: &[(Method, String, Bytes)]) -> String {
    let mut lua = String::new();
    let has_body = requests.iter().any(|(_, _, body)| !body.is_empty());
    if has_body {
        lua += "wrk.headers[\"Content-Type\"] = \"application/json\"\n";
    }
    let all_same = requests.windows(2).all(|pair| pair[0] == pair[1]);
    match requests {
        [(method, path, body), ..] if all_same => {
            // One request: wrk formats it once and sends the same bytes every time.
            let _ = writeln!(
                lua,
                "wrk.method = {}",
                lua_string(method.as_str().as_bytes())
            );
            let _ = writeln!(lua, "wrk.path = {}", lua_string(path.as_bytes()));
            if !body.is_empty() {
                let _ = writeln!(lua, "wrk.body = {}", lua_string(body));
            }
        }
        _ => {
            lua += "local requests = {\n";
            for (method, path, body) in requests {
                let body = if body.is_empty() {
                    "nil".to_owned()
                } else {
                    lua_string(body)
                };
                let _ = writeln!(
                    lua,
                    "  wrk.format({}, {}, nil, {body}),",
                    lua_string(method.as_str().as_bytes()),
                    lua_string(path.as_bytes())
                );
            }
            lua += "}\nlocal next = 0\n\
                    request = function()\n  next = next % #requests + 1\n  return requests[next]\nend\n";
        }
    }
    let _ = write!(
        lua,
        "done = function(summary, latency, requests)\n\
         \x20 local e = summary.errors\n\
         \x20 io.write(\"{MARK} \", summary.requests, \" \", summary.duration, \" \",\n\
         \x20   e.connect + e.read + e.write + e.status + e.timeout, \" \", e.status, \" \", latency.max, \"\\n\")\n\
         \x20 for k = 1, {QUANTILES} do\n\
         \x20   io.write(\"{MARK}-Q \", latency:percentile((k - 0.5) * 100 / {QUANTILES}), \"\\n\")\n\
         \x20 end\n\
         end\n"
    );
    lua
}

/// A Lua string literal of any bytes: letters, digits and a few safe signs as they are, the
/// rest as decimal escapes.
fn lua_string(bytes: &[u8]) -> String {
    let mut literal = String::with_capacity(bytes.len() + 2);
    literal.push('"');
    for &byte in bytes {
        if byte.is_ascii_alphanumeric() || b"/_-.:,{}[] ".contains(&byte) {
            literal.push(byte as char);
        } else {
            let _ = write!(literal, "\\{byte:03}");
        }
    }
    literal.push('"');
    literal
}

/// Rebuilds an outcome from the script's lines: the totals, and each of the 1000 quantiles
/// standing for its thousandth of the requests (the slowest one is wrk's max), so that
/// nearest-rank percentiles come out as wrk's own.
fn parse(stdout: &str) -> Result<Outcome, String> {
    let totals = stdout
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{MARK} ")))
        .ok_or_else(|| format!("no totals in wrk's output: {stdout}"))?;
    let numbers: Vec<f64> = totals
        .split_whitespace()
        .map(|n| {
            n.parse::<f64>()
                .map_err(|e| format!("wrk printed {n:?}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let [requests, micros, errors, statuses, max] = numbers[..] else {
        return Err(format!("wrk's totals are not five numbers: {totals}"));
    };
    let quantiles: Vec<f64> = stdout
        .lines()
        .filter_map(|line| line.strip_prefix(&format!("{MARK}-Q ")))
        .map(|q| {
            q.trim()
                .parse::<f64>()
                .map_err(|e| format!("quantile {q:?}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    if quantiles.len() != QUANTILES {
        return Err(format!("wrk printed {} quantiles", quantiles.len()));
    }
    let requests = requests as usize;
    let mut samples = Vec::with_capacity(requests);
    for (k, quantile) in quantiles.iter().enumerate() {
        let share = requests * (k + 1) / QUANTILES - requests * k / QUANTILES;
        let latency = Duration::from_secs_f64(quantile / 1e6);
        samples.extend(std::iter::repeat_n(latency, share));
    }
    if let Some(slowest) = samples.last_mut() {
        *slowest = Duration::from_secs_f64(max / 1e6);
    }
    let first_error = (errors > 0.0).then(|| {
        format!("wrk: {errors} errors, {statuses} of them answers with a status of 400 or more")
    });
    Ok(Outcome::from_samples(
        samples,
        errors as usize,
        Duration::from_secs_f64(micros / 1e6),
        first_error,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_repeated_request_is_static_and_bodies_are_escaped() {
        let post = (
            Method::POST,
            "/v1/tasks".to_owned(),
            Bytes::from_static(b"{\"a\":\"x\\\"y\"}\n"),
        );
        let lua = script(&[post.clone(), post]);
        assert!(lua.contains("wrk.method = \"POST\""), "{lua}");
        assert!(
            lua.contains("wrk.body = \"{\\034a\\034:\\034x\\092\\034y\\034}\\010\""),
            "{lua}"
        );
        assert!(!lua.contains("request = function"), "{lua}");
        let gets: Vec<_> = ["/v1/tasks/a", "/v1/tasks/b"]
            .iter()
            .map(|p| (Method::GET, p.to_string(), Bytes::new()))
            .collect();
        let lua = script(&gets);
        assert!(lua.contains("request = function"), "{lua}");
        assert!(
            lua.contains("wrk.format(\"GET\", \"/v1/tasks/b\", nil, nil)"),
            "{lua}"
        );
        assert!(!lua.contains("Content-Type"), "{lua}");
    }

    #[test]
    fn the_outcome_keeps_the_totals_and_the_percentiles_of_wrk() {
        let mut out = "Running 1s test @ http://127.0.0.1:1\n".to_owned();
        out += &format!("{MARK} 2000 1000000 3 1 12000\n");
        for k in 1..=QUANTILES {
            out += &format!("{MARK}-Q {}\n", k * 10);
        }
        let outcome = parse(&out).expect("well-formed");
        assert_eq!((outcome.requests, outcome.errors), (2000, 3));
        assert_eq!(outcome.elapsed, Duration::from_secs(1));
        assert!((outcome.per_second() - 2000.0).abs() < 1e-6);
        // The 1000th of 2000 requests is quantile 500 (5 ms), the 1980th quantile 990.
        assert_eq!(outcome.latency.p50_ms, 5.0);
        assert_eq!(outcome.latency.p99_ms, 9.9);
        assert_eq!(outcome.latency.max_ms, 12.0);
        assert!(outcome.first_error.is_some_and(|e| e.contains("3 errors")));
        assert!(parse("no marker here").is_err());
    }
}
