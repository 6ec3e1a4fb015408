//! Black-box tests: the real `stepwise` binary as a child process, against the simulated
//! Replicate in this process. One test binary, so `cargo test` links it once; one module per
//! area. What only needs the API's answers runs in process instead
//! (`server/tests/http_api`).
//!
//! Run one area with `cargo test --workspace --test e2e crash`, one test with its full name
//! (`... --test e2e api::sigterm_stops_cleanly_and_a_restart_finishes_the_work`).
//! (`--workspace` builds the dependencies with the features the whole suite uses: without it,
//! cargo builds them a second time for the root package alone.)
//!
//! To add a test: put it in the module of its area (or a new `mod` below), start it with
//! `support::spawn_app(Load::Light, processing_ms)` (or `Env::start` to change the config or
//! restart the binary on the same data dir), and wait on conditions with a deadline
//! (`app.wait_until_finished`, `app.wait_for`, `support::eventually`), never a bare sleep. A
//! test of hundreds of tasks says `Load::Heavy` (one at a time, beside light tests); a browser
//! test on one page takes under a core and stays `Load::Light`; one whose timing assertions only
//! hold on a quiet machine says `Load::Alone`. Fault injections (`STEPWISE_FAULT_*`) go to the
//! child with `spawn_with_env`; a test never changes this process's environment.

mod support;

// Starts, chains, failures, a hundred tasks, SIGTERM, metrics, the create gate.
mod api;
// The operator CLI against a server, and `inspect` on a data dir.
mod cli;
// Cancel, retry, step retries, timeouts and concurrency caps.
mod control;
// `kill -9` at random moments and injected aborts at the worst ones.
mod crash;
// The built-in dashboard in headless Chromium.
mod dashboard;
// 500 tasks under ~20% injected faults and real rate limits.
mod faults;
// The example frontend in headless Chromium.
mod frontend;
// A failed fsync on the real sled store.
mod journal_failure;
// ETags, long polls and the event stream.
mod live;
// Kept output files.
mod outputs;
// Stages on different models: chained, parallel, joined; their failures and crashes.
mod pipeline;
// A restart in the middle of a backlog of queued creates.
mod restart_backlog;
// Finished tasks deleted after their retention; a bounded data dir.
mod retention;
// `serve --simulate` killed and restarted.
mod simulate_restart;
// Refused starts: a rejected token, a busy port, a data dir in use.
mod startup;
// Webhook deliveries: valid, forged, replayed, lost, and the simulator's own.
mod webhooks;
