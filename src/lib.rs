//! The product's library half, shared by the `stepwise` binary and the benchmark
//! (`stepwise-bench`), so that the engine the benchmark starts as a child process is served
//! by the same code as `stepwise serve`.
//!
//! Layout: `serve` loads the configuration, starts the engine and its HTTP API and stops
//! them on a signal; `logs` sets up the log lines every command writes to stderr.

pub mod logs;
pub mod serve;
