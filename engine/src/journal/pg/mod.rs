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
//! The Store is synchronous, over the synchronous `postgres` client: call it from a
//! blocking thread, never from inside an async task (the client runs its own runtime).

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
        schema::migrate(&mut *pool.get()?)?;
        Ok(PgStore { pool })
    }
}

impl Store for PgStore {
    fn commit(&self, group: &[TaskWrite]) -> Result<(), StoreError> {
        write::commit(&mut *self.pool.get()?, group)
    }

    fn task(&self, id: &TaskId) -> Result<Option<Task>, StoreError> {
        read::task(&mut *self.pool.get()?, id)
    }

    fn list(&self, query: &ListQuery) -> Result<ListPage, StoreError> {
        read::list(&mut *self.pool.get()?, query)
    }

    fn active(&self) -> Result<Vec<Task>, StoreError> {
        read::active(&mut *self.pool.get()?)
    }

    fn task_for_idempotency_key(&self, key: &str) -> Result<Option<TaskId>, StoreError> {
        read::task_for_idempotency_key(&mut *self.pool.get()?, key)
    }

    fn owned_predictions(
        &self,
        prediction_ids: &[&str],
        journaled_from: Millis,
        journaled_until: Millis,
    ) -> Result<Vec<String>, StoreError> {
        read::owned_predictions(
            &mut *self.pool.get()?,
            prediction_ids,
            journaled_from,
            journaled_until,
        )
    }

    fn create_marks_since(&self, now: Millis) -> Result<Millis, StoreError> {
        read::create_marks_since(&mut *self.pool.get()?, now)
    }

    fn events(&self, id: &TaskId) -> Result<Vec<(u64, Event)>, StoreError> {
        read::events(&mut *self.pool.get()?, id)
    }

    fn sweep(&self, cutoff: Millis, limit: usize) -> Result<Vec<TaskId>, StoreError> {
        write::sweep(&mut *self.pool.get()?, cutoff, limit)
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
