//! What the black-box tests share. A test starts the same way every time:
//!
//! ```ignore
//! let (env, app) = spawn_app(Load::Light, 50).await; // a simulator, a dir, the binary
//! let id = app.start_ok(&tryon_body("mine", 2)).await;
//! let task = app.wait_until_finished(&id, Duration::from_secs(30)).await;
//! assert_chained(&env.sim, &task, "mine");
//! ```
//!
//! or, to change the config or restart the binary on the same data dir, with
//! `Env::start(load, processing_ms)`, `env.config(extra)` and `env.spawn(&config)`.
//!
//! All tests run in one process, two or more at a time (one per core), so a test never sets
//! the test process's environment (fault injections go to the child: `spawn_with_env`), and
//! says how much of the machine it needs ([`Load`]), so that heavy tests do not overlap.

pub mod browser;
pub mod fixtures;
pub mod lookbook;

mod apart;
mod app;

pub use app::{announced_url, is_finished, App};
pub use fixtures::*;

use replicate_sim::{SimConfig, SimHandle};
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, SemaphorePermit};

/// How much of the machine a test needs while it runs. Tests run two or more at a time (one
/// per core); the machine is shared in [`UNITS`] units, a test takes its load's worth, and
/// waits its turn when they are taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Load {
    /// A few tasks: runs beside any test but an `Alone` one. One unit.
    Light,
    /// Hundreds of tasks, or a deadline a busy neighbour could break: one heavy test at a
    /// time, beside light ones. Two units.
    Heavy,
    /// Assertions on timing that only hold on a quiet machine (a rate kept to the minute):
    /// runs with nothing else. All the units.
    Alone,
}

/// The units the machine is shared in: one `Heavy` and one `Light`, or three `Light`.
pub const UNITS: u32 = 3;

/// Tokio's semaphore is fair: a test waiting for its units holds back the tests that come
/// after it, so a heavy test is not starved by a stream of light ones.
static MACHINE: Semaphore = Semaphore::const_new(UNITS as usize);

/// A test's turn on the machine, held until the test ends.
pub struct Turn {
    _units: SemaphorePermit<'static>,
}

/// Waits for a turn to run a test of `load`.
pub async fn turn(load: Load) -> Turn {
    let units = match load {
        Load::Light => 1,
        Load::Heavy => 2,
        Load::Alone => UNITS,
    };
    Turn {
        _units: MACHINE.acquire_many(units).await.expect("never closed"),
    }
}

/// One test's world: its turn on the machine, a simulated Replicate, and a scratch dir for the
/// engine's config, log and data (`dir/data`). Dropping it stops the simulator and removes
/// the dir.
pub struct Env {
    pub sim: SimHandle,
    pub dir: tempfile::TempDir,
    /// The simulator runs on its own runtime (`apart`); dropped after `sim`, it stops it.
    _sim_runtime: apart::SimRuntime,
    _turn: Turn,
}

impl Env {
    /// Waits for a turn, then starts a simulator whose predictions take about `processing_ms`.
    pub async fn start(load: Load, processing_ms: u64) -> Env {
        Self::start_with(load, processing_ms, |_| {}).await
    }

    /// `start`, with `tweak` applied to the simulator's config.
    pub async fn start_with(
        load: Load,
        processing_ms: u64,
        tweak: impl FnOnce(&mut SimConfig) + Send + 'static,
    ) -> Env {
        let turn = turn(load).await;
        let (sim, sim_runtime) = apart::start_sim_apart(processing_ms, tweak).await;
        Env {
            sim,
            dir: tempfile::tempdir().unwrap(),
            _sim_runtime: sim_runtime,
            _turn: turn,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The test config (see [`config_toml`]) for this simulator and dir; `extra` goes into
    /// `[server]`.
    pub fn config(&self, extra: &str) -> String {
        config_toml(self.path(), &self.sim.base_url(), extra)
    }

    /// Starts the binary on `config` in this env's dir.
    pub fn spawn(&self, config: &str) -> App {
        App::spawn(self.path(), config)
    }

    /// Starts the binary with extra environment variables (for the child only).
    pub fn spawn_with_env(&self, config: &str, env: &[(&str, &str)]) -> App {
        App::spawn_with_env(self.path(), config, env)
    }
}

/// The usual start: a turn, a simulator, and the binary on the test config.
pub async fn spawn_app(load: Load, processing_ms: u64) -> (Env, App) {
    let env = Env::start(load, processing_ms).await;
    let app = env.spawn(&env.config(""));
    (env, app)
}

/// Polls `check` every 20 ms until it returns a value; fails the test, naming `what`, if
/// `within` passes first.
pub async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
