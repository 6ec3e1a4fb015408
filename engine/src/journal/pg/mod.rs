//! `PgStore`: the `Store` on PostgreSQL, for several instances sharing one database.
//! It owns the tables (`schema`), the connections (`pool`), the commit of a group and the
//! sweep (`write`) and every read (`read`); it keeps the semantics of `KvStore`, which the
//! conformance tests (`journal::tests`) check on both.
//!
//! Layout: a task is one row holding its latest snapshot, and its events are rows of their
//! own. `KvStore` writes a snapshot only every `CHECKPOINT_EVERY` events, because in sled
//! rewriting it cost more disk than the events; in PostgreSQL a commit updates the task's
//! row anyway (status, settled), and MVCC writes a new row version for any update, so
//! keeping the whole snapshot there costs little more and makes a read one row, not a fold.
//! There is no archive: `move_settled` and `finish_moves` keep their defaults (nothing to
//! move). The archive exists because sled never frees the pages finished tasks pin in the
//! journal; PostgreSQL reuses a table's free space after vacuum, and the partial indexes on
//! `settled` keep the unfinished tasks' queries off the finished rows.
//!
//! Not here yet, and where it goes: leases and fencing (a lease table, and a condition on
//! the lease's epoch in the commit's transaction, `write::commit`); LISTEN/NOTIFY after a
//! commit and a listener connection of its own beside `pool`; shared rate limits (their
//! own table); `[storage] postgres_url`, `serve` and `migrate-store` (outside `journal`).
//! The Store is synchronous, over the synchronous `postgres` client, which runs its own
//! small runtime and panics when called from inside a tokio task. Callers should use a
//! blocking thread (`spawn_blocking`, the committer's thread); a call made from an async
//! task anyway (the runtime's loop reads a finished task now and then) runs on a thread of
//! its own for its duration (`off_runtime`) instead of panicking.

mod pool;
mod read;
mod schema;
mod write;

#[cfg(test)]
pub(crate) mod test_db;
#[cfg(test)]
mod tests;

use super::{ListPage, ListQuery, Store, StoreError, TaskWrite};
use crate::event::Event;
use crate::model::{Millis, Task, TaskId};
use pool::Pool;

/// Connections a store opens when the caller does not say.
pub const DEFAULT_POOL_SIZE: usize = 4;

pub struct PgStore {
    pool: Pool,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`) and
    /// creates or upgrades its schema.
    pub fn open(url: &str, pool_size: usize) -> Result<Self, StoreError> {
        let config: postgres::Config = url
            .parse()
            .map_err(|e| StoreError::io("reading the PostgreSQL URL", e))?;
        Self::connect(config, pool_size)
    }

    /// As `open`, from a parsed configuration (tests set a `search_path` in it).
    pub fn connect(mut config: postgres::Config, pool_size: usize) -> Result<Self, StoreError> {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("stepwise");
        }
        let pool = Pool::new(config, pool_size);
        off_runtime(|| schema::migrate(&mut *pool.get()?))?;
        Ok(PgStore { pool })
    }
}

impl PgStore {
    /// Runs `f` on a pooled connection, on a thread outside any tokio runtime.
    fn with<T: Send>(
        &self,
        f: impl FnOnce(&mut postgres::Client) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        off_runtime(|| f(&mut *self.pool.get()?))
    }
}

/// Runs `f` here, or, when called from inside a tokio runtime (where the synchronous
/// client would panic), on a scoped thread of its own, waiting for it. The caller's worker
/// thread blocks for the call either way; async callers should prefer `spawn_blocking`.
fn off_runtime<T: Send>(f: impl FnOnce() -> Result<T, StoreError> + Send) -> Result<T, StoreError> {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|scope| match scope.spawn(f).join() {
        Ok(result) => result,
        Err(_) => Err(StoreError::io(
            "a PostgreSQL call",
            std::io::Error::other("the call panicked"),
        )),
    })
}

impl Store for PgStore {
    fn commit(&self, group: &[TaskWrite]) -> Result<(), StoreError> {
        self.with(|client| write::commit(client, group))
    }

    fn task(&self, id: &TaskId) -> Result<Option<Task>, StoreError> {
        self.with(|client| read::task(client, id))
    }

    fn list(&self, query: &ListQuery) -> Result<ListPage, StoreError> {
        self.with(|client| read::list(client, query))
    }

    fn active(&self) -> Result<Vec<Task>, StoreError> {
        self.with(read::active)
    }

    fn task_for_idempotency_key(&self, key: &str) -> Result<Option<TaskId>, StoreError> {
        self.with(|client| read::task_for_idempotency_key(client, key))
    }

    fn owned_predictions(
        &self,
        prediction_ids: &[&str],
        journaled_from: Millis,
        journaled_until: Millis,
    ) -> Result<Vec<String>, StoreError> {
        self.with(|client| {
            read::owned_predictions(client, prediction_ids, journaled_from, journaled_until)
        })
    }

    fn create_marks_since(&self, now: Millis) -> Result<Millis, StoreError> {
        self.with(|client| read::create_marks_since(client, now))
    }

    fn events(&self, id: &TaskId) -> Result<Vec<(u64, Event)>, StoreError> {
        self.with(|client| read::events(client, id))
    }

    fn sweep(&self, cutoff: Millis, limit: usize) -> Result<Vec<TaskId>, StoreError> {
        self.with(|client| write::sweep(client, cutoff, limit))
    }

    fn reads_block(&self) -> bool {
        true
    }
}

/// The id of a task as stored: its 16 bytes.
fn task_id(bytes: &[u8], table: &str) -> Result<TaskId, StoreError> {
    let id: [u8; 16] = bytes.try_into().map_err(|_| StoreError::Inconsistent {
        key: format!("{table}/{}", hex::encode(bytes)),
        reason: format!("a task id of {} bytes", bytes.len()),
    })?;
    Ok(TaskId(id))
}
