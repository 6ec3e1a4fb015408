//! The journal: durable storage of tasks and their events behind the `Store` trait.
//! `KvStore` lays tasks out over any ordered key-value `Backend` (sled on disk, a BTreeMap
//! in memory for fast tests); the key layout is documented in `keys`.
//! Nothing here is async: callers run commits on a blocking thread.

mod active_keys;
mod archive;
mod backend;
mod blob_sync;
pub mod codec;
mod commit_with;
mod first_run;
mod keys;
mod kv;
mod memory;
pub mod pg;
mod schema_v1;
mod schema_v2;
mod schema_v3;
mod sled_backend;
mod task_ops;

pub use backend::{Backend, Guarded, Op};
pub use commit_with::CommitWith;
pub use kv::KvStore;

/// Settled tasks one move takes at most (the runtime's mover, `finish_moves` at start), so
/// one archive batch stays a few MB.
pub const MOVE_BATCH: usize = 512;
pub use memory::MemoryBackend;
pub use pg::PgStore;

impl StoreError {
    /// A failed storage operation: what the store was doing, and why it failed.
    pub fn io(context: impl Into<String>, source: impl Into<Cause>) -> Self {
        StoreError::Io {
            context: context.into(),
            source: source.into(),
        }
    }
}
pub use sled_backend::SledBackend;

use crate::event::Event;
use crate::model::{Millis, Task, TaskId, TaskStatus};
use std::sync::Arc;

/// What the backend or the OS said when a storage operation failed.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A storage operation failed. The message shows the cause too, since logs and 503
    /// causes print only the top error; `source()` still hands it to callers that walk chains.
    #[error("storage I/O error: {context}: {source}")]
    Io {
        /// What the store was doing.
        context: String,
        source: Cause,
    },
    #[error("invalid cursor")]
    InvalidCursor,
    #[error("corrupt record at {key}: {source}")]
    Corrupt {
        key: String,
        source: codec::CodecError,
    },
    /// A record that decodes but does not follow from the ones before it.
    #[error("inconsistent journal at {key}: {reason}")]
    Inconsistent { key: String, reason: String },
}

/// Everything one task changed in one group: the events, and the state they lead to.
#[derive(Clone, Debug)]
pub struct TaskWrite {
    /// The task after the events (its `seq` is the last event's sequence number): what the
    /// store checkpoints, and where it reads whether the task is settled.
    pub task: Arc<Task>,
    /// `(sequence, event)` in order.
    pub events: Vec<(u64, Event)>,
}

#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    pub status: Option<TaskStatus>,
    pub workflow: Option<String>,
    pub limit: usize,
    /// Opaque, from a previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// Search text: keeps a task whose id starts with it or whose params JSON text contains
    /// it, ignoring case. Empty matches every task.
    pub q: Option<String>,
}

impl ListQuery {
    /// Whether `task` passes the filters: status, workflow and search text. The search
    /// lowercases the task's params, so it costs a pass over them per task scanned.
    pub fn matcher(&self) -> impl Fn(&Task) -> bool + '_ {
        let needle = self
            .q
            .as_deref()
            .filter(|q| !q.is_empty())
            .map(str::to_lowercase);
        move |task: &Task| {
            self.status.is_none_or(|s| s == task.status)
                && self.workflow.as_ref().is_none_or(|w| *w == task.workflow)
                && needle.as_deref().is_none_or(|needle| {
                    task.id.to_string().starts_with(needle)
                        || task.params.0.to_lowercase().contains(needle)
                })
        }
    }
}

#[derive(Clone, Debug)]
pub struct ListPage {
    pub tasks: Vec<Task>,
    pub next_cursor: Option<String>,
}

/// Durable task storage. `commit` is atomic and returns only once the group is on disk.
pub trait Store: Send + Sync + 'static {
    /// Writes every task of the group atomically, with its events and index entries, and
    /// makes them durable before returning.
    fn commit(&self, group: &[TaskWrite]) -> Result<(), StoreError>;
    fn task(&self, id: &TaskId) -> Result<Option<Task>, StoreError>;
    fn list(&self, query: &ListQuery) -> Result<ListPage, StoreError>;
    /// Every unfinished task: what recovery resumes.
    fn active(&self) -> Result<Vec<Task>, StoreError>;
    fn task_for_idempotency_key(&self, key: &str) -> Result<Option<TaskId>, StoreError>;
    /// Which of `prediction_ids` some task owns, if its ownership was journaled within
    /// `[journaled_from, journaled_until]` (or by a version before that index): one bounded
    /// scan of the owner index for a whole page of candidates.
    fn owned_predictions(
        &self,
        prediction_ids: &[&str],
        journaled_from: Millis,
        journaled_until: Millis,
    ) -> Result<Vec<String>, StoreError>;
    /// Since when every create call is journaled as sent before it leaves: recorded (durably)
    /// the first time a version that does so opens the data dir. An intent journaled before
    /// then may have had its create sent without a mark.
    fn create_marks_since(&self, now: Millis) -> Result<Millis, StoreError>;
    /// A task's journal, in order.
    fn events(&self, id: &TaskId) -> Result<Vec<(u64, Event)>, StoreError>;
    /// Moves committed settled tasks to the archive, if the store has one (see `archive`);
    /// returns how many it moved. Housekeeping: until then, or if it fails, they are read
    /// where they are, and `finish_moves` takes them at the next start.
    fn move_settled(&self, _tasks: &[Arc<Task>]) -> Result<usize, StoreError> {
        Ok(0)
    }
    /// Finishes moving settled tasks to the archive where a crash, a shutdown or an I/O
    /// error came first; returns how many moved. Run once at start.
    fn finish_moves(&self) -> Result<usize, StoreError> {
        Ok(0)
    }
    /// Deletes up to `limit` settled tasks that ended before `cutoff`, with their events and
    /// index entries, durably; returns the ids of those that went.
    fn sweep(&self, cutoff: crate::model::Millis, limit: usize) -> Result<Vec<TaskId>, StoreError>;
    /// Whether a read waits on the network (PostgreSQL), so async callers should run it on
    /// a blocking thread; `KvStore` reads come from memory or a local file and are not
    /// worth a thread hop.
    fn reads_block(&self) -> bool {
        false
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
