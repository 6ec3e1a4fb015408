//! The simulated Replicate on a thread and runtime of its own, as the real one runs apart from
//! the test: `App::spawn` blocks the test's runtime until the binary prints its address, and
//! the binary calls Replicate before that (its token check at start), so a simulator on the
//! test's runtime could not answer it.

use super::fixtures::start_sim_with;
use replicate_sim::{SimConfig, SimHandle};

/// Keeps the simulator's runtime alive; dropping it stops the runtime and every task on it.
pub struct SimRuntime {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// `start_sim_with`, on a runtime of its own.
pub async fn start_sim_apart(
    processing_ms: u64,
    tweak: impl FnOnce(&mut SimConfig) + Send + 'static,
) -> (SimHandle, SimRuntime) {
    let (started, handle) = tokio::sync::oneshot::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::Builder::new()
        .name("replicate-sim".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the simulator");
            runtime.block_on(async move {
                let _ = started.send(start_sim_with(processing_ms, tweak).await);
                // Until the test's `Env` drops its `SimRuntime` (or drops the sender unused).
                let _ = stopped.await;
            });
        })
        .expect("a thread for the simulator");
    let sim = handle.await.expect("the simulator started");
    (sim, SimRuntime { stop: Some(stop) })
}

impl Drop for SimRuntime {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
