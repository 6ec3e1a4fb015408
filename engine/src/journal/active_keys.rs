//! Data dirs written before the journal's `c` key carried a task's recovery mark kept it in
//! an `a` key of its own, one more sled entry at every start and every settle. The first
//! recovery after an upgrade folds each `a` key into the task's `c` key; each batch holds a
//! task's new mark and its `a` delete together, so a crash part way leaves every task marked
//! in one of the two, and the next start goes on from there.

use super::backend::{Backend, Op};
use super::keys::{self, ACTIVE};
use super::kv::KvStore;
use super::{Store, StoreError};

/// Tasks whose keys one batch folds.
const FOLD_BATCH: usize = 512;

impl<B: Backend> KvStore<B> {
    /// Folds the journal's `a` keys into `c` keys; returns how many it found. An `a` key of
    /// a task that cannot be found is dropped (older versions skipped it at every start).
    pub(super) fn fold_active_keys(&self) -> Result<usize, StoreError> {
        let prefix = [ACTIVE];
        let entries =
            self.backend()
                .scan(&prefix, &keys::prefix_end(&prefix), false, usize::MAX)?;
        for chunk in entries.chunks(FOLD_BATCH) {
            let mut ops: Vec<Op> = Vec::with_capacity(chunk.len() * 2);
            for (key, mark) in chunk {
                if let Some(task) = keys::trailing_id(key)
                    .map(|id| self.task(&id))
                    .transpose()?
                    .flatten()
                {
                    ops.push((keys::created(task.created_at, &task.id), Some(mark.clone())));
                }
                ops.push((key.clone(), None));
            }
            self.backend().apply(ops)?;
        }
        if !entries.is_empty() {
            tracing::info!(
                tasks = entries.len(),
                "Recovery marks of an older version folded into the listing keys."
            );
        }
        Ok(entries.len())
    }
}
