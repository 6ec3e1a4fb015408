//! Moves settled tasks to the archive in the background (`Store::move_settled`), off the
//! commit path: a commit is acknowledged once the journal has it, and the move (an archive
//! batch, then guarded journal deletes) follows. One move runs at a time, taking every task
//! that settled meanwhile. At shutdown the runtime waits for the queue to drain; a move a
//! crash cuts short is finished at the next start (`Store::finish_moves`).

use crate::journal::{Store, MOVE_BATCH};
use crate::model::Task;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub(super) struct Mover {
    queue: mpsc::UnboundedSender<Arc<Task>>,
    worker: JoinHandle<()>,
}

impl Mover {
    pub(super) fn start(store: Arc<dyn Store>) -> Self {
        let (queue, inbox) = mpsc::unbounded_channel();
        Mover {
            queue,
            worker: tokio::spawn(run(store, inbox)),
        }
    }

    /// Queues a committed, settled task.
    pub(super) fn push(&self, task: Arc<Task>) {
        // The worker lives until `finish`, which consumes the mover: the send cannot fail
        // before; if it panicked, the task is moved at the next start.
        let _ = self.queue.send(task);
    }

    /// Waits until every queued task has been moved (or has failed to move).
    pub(super) async fn finish(self) {
        drop(self.queue);
        let _ = self.worker.await;
    }
}

async fn run(store: Arc<dyn Store>, mut inbox: mpsc::UnboundedReceiver<Arc<Task>>) {
    while let Some(first) = inbox.recv().await {
        let mut batch = vec![first];
        while batch.len() < MOVE_BATCH {
            match inbox.try_recv() {
                Ok(task) => batch.push(task),
                Err(_) => break,
            }
        }
        let store = store.clone();
        let count = batch.len();
        match tokio::task::spawn_blocking(move || store.move_settled(&batch)).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, tasks = count, "Moving settled tasks to the archive failed; the next start moves them.")
            }
            Err(error) => {
                tracing::warn!(%error, tasks = count, "Moving settled tasks to the archive panicked; the next start moves them.")
            }
        }
    }
}
