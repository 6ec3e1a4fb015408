//! stepwise-engine: the durable workflow engine, with no HTTP server code.
//!
//! Layout, from the inside out:
//! - `model`: tasks, steps, statuses, ids (pure data).
//! - `event`: the journal events, every state change of a task.
//! - `config`: the `config.toml` schema, defaults, environment overrides, validation.
//! - `workflow`: named workflows and their input templates (validation before any write).
//! - `machine`: the pure state machine, `apply` and `decide`.
//! - `journal`: durable storage behind the `Store` trait (sled, or memory for tests).
//! - `replicate`: the typed Replicate HTTP client with errors classified for retry.
//! - `scheduler`: the timer wheel of status checks and retries.
//! - `runtime`: the one loop that owns active tasks, commits groups, performs commands.
//! - `engine`: the handle the server and the CLI use.

pub mod changes;
pub mod config;
mod engine;
pub mod event;
pub mod journal;
pub mod machine;
pub mod metrics;
pub mod model;
pub mod outputs;
pub mod ratelimit;
pub mod replicate;
pub mod runtime;
pub mod scheduler;
pub mod time;
pub mod webhook;
pub mod workflow;

pub use engine::{Engine, LaunchError, StoreChoice};
pub use runtime::{ControlError, StartError, StartRequest, Started};
