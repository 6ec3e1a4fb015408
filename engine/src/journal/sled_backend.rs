//! The on-disk `Backend`: one sled tree, made durable by what our code adds to sled 0.34.7
//! (docs/ARCHITECTURE.md, "Storage: why sled, and what our code adds").
//! Each `apply` is one atomic `apply_batch`, then `flush()` (which on Linux is only
//! `sync_file_range`), then an fsync of the blob files sled wrote (it never syncs them:
//! `blob_sync`), then `sync_data()` on the log, so an acknowledged write survives `kill -9`
//! and power loss.
//! Callers group many tasks into one `apply`: that is group commit.

use super::backend::{Backend, Guarded, Op};
use super::StoreError;
use std::fs::File;
use std::path::Path;

pub struct SledBackend {
    db: sled::Db,
    tree: sled::Tree,
    /// sled's log file, opened once, for the `sync_data()` that `flush()` does not do.
    log: File,
    blobs: super::blob_sync::BlobSync,
}

impl SledBackend {
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(io("creating the data dir"))?;
        let db = open_locked(dir, cache_bytes)?;
        let tree = db
            .open_tree("journal")
            .map_err(io("opening the journal tree"))?;
        let log = File::open(dir.join("db")).map_err(io("opening sled's log file"))?;
        // The directory entry of a fresh data dir must be durable too.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("syncing the data dir"))?;
        Ok(SledBackend {
            db,
            tree,
            log,
            blobs: super::blob_sync::BlobSync::new(dir),
        })
    }

    /// Bytes used on disk by the database.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.db
            .size_on_disk()
            .map_err(io("reading the size on disk"))
    }
}

impl Backend for SledBackend {
    fn apply(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        self.tree
            .apply_batch(batch_of(ops))
            .map_err(io("applying a batch"))?;
        self.db.flush().map_err(io("flushing a batch"))?;
        fail_after_apply_hook()?;
        // Blobs first: once the log is durable its records point at them, so they must
        // already be (sled writes a blob before the log record that refers to it).
        self.blobs.sync()?;
        self.log.sync_data().map_err(io("syncing sled's log"))
    }

    /// sled's flusher thread writes it out within `flush_every_ms` (500 ms), or the next
    /// `apply` does.
    fn apply_lazily(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        self.tree
            .apply_batch(batch_of(ops))
            .map_err(io("applying a batch"))
    }

    /// One sled transaction: it holds the same lock as `apply_batch`, so no batch lands
    /// between its reads and its writes. The closure may run again on a conflict; it only
    /// reads and writes the transaction.
    fn apply_guarded(&self, groups: Vec<Guarded>) -> Result<usize, StoreError> {
        use sled::transaction::ConflictableTransactionResult;
        self.tree
            .transaction(|tx| -> ConflictableTransactionResult<usize, ()> {
                let mut applied = 0;
                for group in &groups {
                    if tx.get(&group.key)?.as_deref() != Some(group.expected.as_slice()) {
                        continue;
                    }
                    for (key, value) in &group.ops {
                        match value {
                            Some(value) => drop(tx.insert(key.as_slice(), value.as_slice())?),
                            None => drop(tx.remove(key.as_slice())?),
                        }
                    }
                    applied += 1;
                }
                Ok(applied)
            })
            .map_err(|e| match e {
                sled::transaction::TransactionError::Storage(e) => {
                    StoreError::io("running a transaction", e)
                }
                // The closure never aborts: every `?` in it is a storage error.
                sled::transaction::TransactionError::Abort(()) => {
                    StoreError::io("running a transaction", "aborted")
                }
            })
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tree
            .get(key)
            .map_err(io("reading a key"))?
            .map(|v| v.to_vec()))
    }

    fn scan(
        &self,
        from: &[u8],
        to: &[u8],
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        if from >= to {
            return Ok(vec![]);
        }
        let range = self.tree.range(from..to);
        let pair = |r: sled::Result<(sled::IVec, sled::IVec)>| {
            r.map(|(k, v)| (k.to_vec(), v.to_vec()))
                .map_err(io("scanning"))
        };
        if reverse {
            range.rev().take(limit).map(pair).collect()
        } else {
            range.take(limit).map(pair).collect()
        }
    }
}

fn batch_of(ops: Vec<Op>) -> sled::Batch {
    let mut batch = sled::Batch::default();
    for (key, value) in ops {
        match value {
            Some(value) => batch.insert(key, value),
            None => batch.remove(key),
        }
    }
    batch
}

/// Whether sled failed to open because another holder has the data dir's lock. sled 0.34
/// reports it as `ErrorKind::Other` with the lock error in the message
/// (`config.rs`, "could not acquire lock on …"), not as `WouldBlock`.
fn lock_held(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::WouldBlock
        || e.to_string().starts_with("could not acquire lock")
}

/// Opens sled, waiting briefly while another holder of the data dir's lock lets go (sled's
/// background threads release it a moment after the previous `Db` in this process drops).
fn open_locked(dir: &Path, cache_bytes: u64) -> Result<sled::Db, StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .open()
        {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e)) if lock_held(&e) => {
                if std::time::Instant::now() >= deadline {
                    return Err(StoreError::io(
                        format!("opening the data dir {}", dir.display()),
                        "it is in use by another process",
                    ));
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(io("opening sled")(e)),
        }
    }
}

/// Fault injection for tests: with `STEPWISE_FAULT_FAIL_SYNC_AFTER=N` in the environment,
/// every durable `apply` after the N-th fails once its batch is applied and flushed, as
/// when the fsync fails (the worst case: the store's cache shows writes the disk may lack).
/// Unset in production.
fn fail_after_apply_hook() -> Result<(), StoreError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static LIMIT: OnceLock<Option<u64>> = OnceLock::new();
    static APPLIED: AtomicU64 = AtomicU64::new(0);
    let limit = LIMIT.get_or_init(|| {
        std::env::var("STEPWISE_FAULT_FAIL_SYNC_AFTER")
            .ok()
            .and_then(|v| v.parse().ok())
    });
    match limit {
        Some(limit) if APPLIED.fetch_add(1, Ordering::SeqCst) >= *limit => Err(StoreError::io(
            "syncing a batch",
            "fault injection: fsync failed after the batch was applied",
        )),
        _ => Ok(()),
    }
}

/// Wraps a backend error with what the store was doing.
fn io<E: Into<super::Cause>>(context: &'static str) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::io(context, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reopen_waits_for_the_previous_holder_to_let_go() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let first = SledBackend::open(dir.path(), 1 << 20).expect("the first open");
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(first);
        });
        // Without the wait this fails at once with sled's "could not acquire lock".
        let second = SledBackend::open(dir.path(), 1 << 20);
        release.join().expect("the releasing thread");
        assert!(second.is_ok(), "{:?}", second.err());
    }
}
