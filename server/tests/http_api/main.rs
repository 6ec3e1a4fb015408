//! The HTTP API in process: every case that checks a status code and the shape of a JSON
//! answer, against the router over an engine on a memory store and a simulated Replicate (no
//! binary, no disk). What needs a real process (signals, `kill -9`, the CLI, sled on disk) is
//! in the black-box tests, `tests/e2e`.
//!
//! - `shapes`: starts, idempotency keys, listing and paging, every error code, the API token;
//! - `list`: summaries, `?expand=steps`, `?q=` search, progress, a step's prediction;
//! - `stream`: a 2 000-step task's event stream, sent as deltas and merged back;
//! - `dashboard`: the embedded page and its CSS and scripts, their headers, a 404 for others;
//! - `fuzz`: a barrage of malformed, mistyped, oversized and odd requests over raw TCP, and a
//!   property test of random start bodies.
//!
//! `support` starts the API; `cargo test --workspace --test http_api` runs these alone.

mod dashboard;
mod fuzz;
mod list;
mod shapes;
mod stream;
mod support;
