//! `KvStore`: the `Store` logic over an ordered key-value `Backend` (layout in `keys`).
//! Both the sled and the in-memory store are this code, so tests of one cover the other.
//!
//! The events are the record of a task; its snapshot is only a checkpoint. A commit appends
//! the new events and writes the snapshot only when an event's sequence number is a multiple
//! of `CHECKPOINT_EVERY`, and reading a task is its checkpoint (if any) with the events after
//! it folded in by `machine::apply`, the same function that made the state live. Rewriting
//! the whole snapshot at every commit wrote several times more bytes than the events
//! themselves and took most of the disk a task used (docs/benchmarks-history.md, "Events,
//! not snapshots"). When a commit
//! settles a task, the task moves to a second store, the archive (`archive`).

use super::archive;
use super::backend::{Backend, Op};
use super::codec::{self, decode_task};
use super::keys::{self, CREATED, IDEMPOTENCY, PREDICTION, SEALED, TASK};
use super::{ListPage, ListQuery, Store, StoreError, TaskWrite};
use crate::event::Event;
use crate::machine;
use crate::model::{Task, TaskId};
use std::sync::Arc;

/// A task's snapshot is written when one of its events has a sequence number that is a
/// multiple of this, so reading any task folds in fewer than this many events. A three-step
/// task has 10 to 13 events in its whole life, so it never needs one.
pub const CHECKPOINT_EVERY: u64 = 16;

/// Reads of one task before a gap in its events counts as a damaged journal (see `untorn`).
const TORN_READ_ATTEMPTS: u32 = 3;

/// The journal `c` key of a task in flight: resume it at the next start. A new task's key
/// carries its first run instead (`first_run`), which means the same.
pub(super) const RESUME: &[u8] = b"";
/// The journal `c` key of a settled task: its move to the archive is due, nothing to resume.
/// Recovery reads neither these tasks (`active`) nor the others (`finish_moves`) twice.
pub(super) const TO_MOVE: &[u8] = b"m";
/// The journal `c` key of a settled task that stays in the journal (its sealed record would
/// be too big, `archive::MAX_SEALED_BYTES`): nothing to resume, nothing to move.
pub(super) const KEPT: &[u8] = b"k";

/// The most `c` index entries one list call reads while filtering, so a filter that matches
/// little cannot make a request scan the whole history; the page then ends early with a cursor.
pub(super) const MAX_SCANNED_PER_PAGE: usize = 5_000;

pub struct KvStore<B> {
    /// Running tasks: their events (one entry per commit: an event or a run), and their
    /// index keys.
    backend: B,
    /// Settled tasks: one sealed record each, and their index keys.
    archive: B,
}

impl<B: Backend> KvStore<B> {
    pub fn new(journal: B, archive: B) -> Self {
        KvStore {
            backend: journal,
            archive,
        }
    }

    /// The journal.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    pub fn archive(&self) -> &B {
        &self.archive
    }

    fn decode_task_at(key: &[u8], bytes: &[u8]) -> Result<Task, StoreError> {
        decode_task(bytes).map_err(|source| corrupt(key, source))
    }

    /// Deletes of everything a settled task left, in the journal and in the archive: its
    /// records, events, listing and idempotency keys, and the ownership of every prediction
    /// any of its attempts made. The same deletes go to both; a key one does not hold costs
    /// nothing.
    fn delete_task_ops(&self, task: &Task, ops: &mut Vec<Op>) -> Result<(), StoreError> {
        for tag in [TASK, SEALED] {
            ops.push((keys::with_id(tag, &task.id), None));
        }
        ops.push((keys::created(task.created_at, &task.id), None));
        if let Some(key) = &task.idempotency_key {
            ops.push((keys::with_text(IDEMPOTENCY, key), None));
        }
        for (seq, event) in archive::journal(&self.backend, &self.archive, &task.id, 1)? {
            if let Event::PredictionCreated {
                prediction_id, at, ..
            } = event
            {
                ops.push((keys::owner(at, &prediction_id), None));
                let legacy = keys::with_text(PREDICTION, &prediction_id);
                if self.id_at(&self.backend, legacy.clone())? == Some(task.id) {
                    ops.push((legacy, None));
                }
            }
            ops.push((keys::event(&task.id, seq), None));
        }
        Ok(())
    }

    /// The task id stored at `key` in the journal, or else in the archive.
    fn id_in_either(&self, key: Vec<u8>) -> Result<Option<TaskId>, StoreError> {
        match self.id_at(&self.backend, key.clone())? {
            Some(id) => Ok(Some(id)),
            None => self.id_at(&self.archive, key),
        }
    }

    /// The journal's `c` keys (after folding in those of older versions' `a` keys): every
    /// task to resume or, marked `TO_MOVE`, to move. Oldest first.
    fn recovery_index(&self) -> Result<Vec<(TaskId, bool)>, StoreError> {
        self.fold_active_keys()?;
        let prefix = [CREATED];
        let entries = self
            .backend
            .scan(&prefix, &keys::prefix_end(&prefix), false, usize::MAX)?;
        Ok(entries
            .into_iter()
            .filter(|(_, value)| value != KEPT)
            .filter_map(|(key, value)| Some((keys::trailing_id(&key)?, value == TO_MOVE)))
            .collect())
    }

    fn scan_both(
        &self,
        from: &[u8],
        to: &[u8],
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<super::backend::Entry>, StoreError> {
        archive::scan_both(&self.backend, &self.archive, from, to, reverse, limit)
    }

    /// The task as its checkpoint (if any) and the events after it, folded in order.
    fn read_task(&self, id: &TaskId) -> Result<Option<Task>, StoreError> {
        let key = keys::with_id(TASK, id);
        let mut task = match self.backend.get(&key)? {
            Some(bytes) => Some(Self::decode_task_at(&key, &bytes)?),
            None => None,
        };
        let checkpointed = task.is_some();
        let from = task.as_ref().map_or(1, |t| t.seq + 1);
        for (seq, event) in archive::journal(&self.backend, &self.archive, id, from)? {
            let key = keys::event(id, seq);
            let folded = match task.as_mut() {
                Some(task) => machine::apply(task, &event).map(|()| task.seq),
                None => machine::create(*id, &event).map(|t| task.insert(t).seq),
            };
            match folded {
                Ok(reached) if reached == seq => {}
                Ok(reached) => {
                    return Err(inconsistent(
                        &key,
                        format!("replay reached sequence {reached}"),
                    ))
                }
                Err(ignored) => {
                    return Err(inconsistent(&key, format!("does not apply: {ignored:?}")))
                }
            }
        }
        // A move or a sweep that deleted the journal's keys between the checkpoint's read and
        // the events' would leave the checkpoint alone, an older state than the task's (a
        // sweep deletes the events in the archive too): read again (`untorn`), and find the
        // task whole in the archive, or gone.
        if checkpointed && self.backend.get(&key)?.is_none() {
            return Err(inconsistent(
                &key,
                "the checkpoint was deleted during the read".into(),
            ));
        }
        Ok(task)
    }

    fn id_at(&self, backend: &B, key: Vec<u8>) -> Result<Option<TaskId>, StoreError> {
        let Some(value) = backend.get(&key)? else {
            return Ok(None);
        };
        let id: [u8; 16] = value
            .as_slice()
            .try_into()
            .map_err(|_| corrupt(&key, codec::CodecError::TooShort(value.len())))?;
        Ok(Some(TaskId(id)))
    }
}

impl KvStore<super::MemoryBackend> {
    /// A journal and an archive in memory, for tests.
    pub fn in_memory() -> Self {
        KvStore::new(Default::default(), Default::default())
    }
}

impl KvStore<super::SledBackend> {
    /// The journal in `dir` itself (where data dirs have always had it), the archive in
    /// `dir/archive`. The archive's pages are read rarely (a finished task's status), so it
    /// gets a quarter of the cache.
    pub fn open(dir: &std::path::Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let journal = super::SledBackend::open(dir, cache_bytes)?;
        let archive =
            super::SledBackend::open(&dir.join("archive"), (cache_bytes / 4).max(1 << 20))?;
        Ok(KvStore::new(journal, archive))
    }
}

impl<B: Backend> Store for KvStore<B> {
    fn commit(&self, group: &[TaskWrite]) -> Result<(), StoreError> {
        let mut ops = Vec::with_capacity(group.len() * 4);
        for write in group {
            self.task_ops(write, &mut ops)?;
        }
        self.backend.apply(ops)
    }

    fn move_settled(&self, tasks: &[Arc<Task>]) -> Result<usize, StoreError> {
        let settled: Vec<&Task> = tasks
            .iter()
            .map(|task| &**task)
            .filter(|task| task.is_settled())
            .collect();
        archive::move_settled(&self.backend, &self.archive, &settled)
    }

    fn task(&self, id: &TaskId) -> Result<Option<Task>, StoreError> {
        untorn(|| self.read_task(id))
    }

    fn list(&self, query: &ListQuery) -> Result<ListPage, StoreError> {
        let start = [CREATED];
        let mut end = match &query.cursor {
            Some(cursor) => hex::decode(cursor)
                .ok()
                .filter(|key| key.first() == Some(&CREATED))
                .ok_or(StoreError::InvalidCursor)?,
            None => keys::prefix_end(&start),
        };
        let limit = query.limit.max(1);
        let wanted = query.matcher();
        let mut tasks = Vec::with_capacity(limit);
        let mut scanned = 0;
        loop {
            let chunk = self.scan_both(&start, &end, true, limit.max(64))?;
            let exhausted = chunk.len() < limit.max(64);
            for (key, _) in chunk {
                scanned += 1;
                end = key.clone();
                let Some(id) = keys::trailing_id(&key) else {
                    continue;
                };
                let Some(task) = self.task(&id)? else {
                    continue;
                };
                if wanted(&task) {
                    tasks.push(task);
                }
                if tasks.len() == limit || scanned >= MAX_SCANNED_PER_PAGE {
                    let more = !self.scan_both(&start, &end, true, 1)?.is_empty();
                    return Ok(ListPage {
                        tasks,
                        next_cursor: more.then(|| hex::encode(&end)),
                    });
                }
            }
            if exhausted {
                return Ok(ListPage {
                    tasks,
                    next_cursor: None,
                });
            }
        }
    }

    fn active(&self) -> Result<Vec<Task>, StoreError> {
        let entries = self.recovery_index()?;
        let mut tasks = Vec::with_capacity(entries.len());
        for (id, to_move) in entries {
            if to_move {
                continue; // settled, its move cut short: `finish_moves` takes it
            }
            match self.task(&id)? {
                // Settled by a version that kept `a` empty until the end.
                Some(task) if task.is_settled() => {}
                Some(task) => tasks.push(task),
                None => {}
            }
        }
        Ok(tasks)
    }

    fn finish_moves(&self) -> Result<usize, StoreError> {
        let mut settled = vec![];
        for (id, _) in self
            .recovery_index()?
            .into_iter()
            .filter(|(_, to_move)| *to_move)
        {
            if let Some(task) = self.task(&id)?.filter(|task| task.is_settled()) {
                settled.push(task);
            }
        }
        let mut moved = 0;
        for chunk in settled.chunks(super::MOVE_BATCH) {
            let tasks: Vec<&Task> = chunk.iter().collect();
            moved += archive::move_settled(&self.backend, &self.archive, &tasks)?;
        }
        Ok(moved)
    }

    fn task_for_idempotency_key(&self, key: &str) -> Result<Option<TaskId>, StoreError> {
        self.id_in_either(keys::with_text(IDEMPOTENCY, key))
    }

    fn owned_predictions(
        &self,
        prediction_ids: &[&str],
        from: crate::model::Millis,
        until: crate::model::Millis,
    ) -> Result<Vec<String>, StoreError> {
        let mut owned = vec![];
        let mut wanted: std::collections::HashSet<&str> = std::collections::HashSet::new();
        for id in prediction_ids {
            if self
                .id_at(&self.backend, keys::with_text(PREDICTION, id))?
                .is_some()
            {
                owned.push((*id).to_owned());
            } else {
                wanted.insert(id);
            }
        }
        if wanted.is_empty() || until < from {
            return Ok(owned);
        }
        // Both ends bounded: `until` ms itself included, so the scan ends before `until + 1`.
        let mut start = keys::owner(from, "");
        let end = keys::owner(until.saturating_add(1), "");
        loop {
            let chunk = self.scan_both(&start, &end, false, 1024)?;
            for (key, _) in &chunk {
                let id = key.get(9..).and_then(|id| std::str::from_utf8(id).ok());
                if let Some(id) = id.filter(|id| wanted.remove(*id)) {
                    owned.push(id.to_owned());
                }
            }
            match chunk.last() {
                Some((last, _)) if chunk.len() == 1024 && !wanted.is_empty() => {
                    start = last.clone();
                    start.push(0);
                }
                _ => return Ok(owned),
            }
        }
    }

    fn create_marks_since(
        &self,
        now: crate::model::Millis,
    ) -> Result<crate::model::Millis, StoreError> {
        let key = keys::with_text(keys::META, keys::CREATE_MARKS_SINCE);
        if let Some(bytes) = self.backend.get(&key)? {
            let bytes: [u8; 8] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| corrupt(&key, codec::CodecError::TooShort(bytes.len())))?;
            return Ok(u64::from_be_bytes(bytes) as crate::model::Millis);
        }
        self.backend.apply(vec![(
            key,
            Some((now.max(0) as u64).to_be_bytes().to_vec()),
        )])?;
        Ok(now)
    }

    fn sweep(&self, cutoff: crate::model::Millis, limit: usize) -> Result<Vec<TaskId>, StoreError> {
        // Oldest first; a task created after the cutoff cannot have ended before it.
        let start = [CREATED];
        let end = keys::created(cutoff, &TaskId([0; 16]));
        let mut ops = vec![];
        let mut deleted = vec![];
        let mut from = start.to_vec();
        while deleted.len() < limit {
            let chunk = self.scan_both(&from, &end, false, 256)?;
            let Some((last, _)) = chunk.last() else { break };
            from = last.clone();
            from.push(0);
            for (created_key, _) in &chunk {
                let Some(id) = keys::trailing_id(created_key) else {
                    continue;
                };
                let Some(task) = self.task(&id)? else {
                    continue;
                };
                if !task.is_settled() || task.completed_at.is_none_or(|at| at >= cutoff) {
                    continue;
                }
                ops.push((created_key.clone(), None));
                self.delete_task_ops(&task, &mut ops)?;
                deleted.push(task.id);
                if deleted.len() == limit {
                    break;
                }
            }
            if chunk.len() < 256 {
                break;
            }
        }
        if !ops.is_empty() {
            // The journal first: a task cut in half by a crash is still whole in the archive,
            // and the next sweep takes it.
            self.backend.apply(ops.clone())?;
            self.archive.apply(ops)?;
        }
        Ok(deleted)
    }

    fn events(&self, id: &TaskId) -> Result<Vec<(u64, Event)>, StoreError> {
        untorn(|| archive::journal(&self.backend, &self.archive, id, 1))
    }
}

/// Runs a multi-step read again when it found a gap. A read is a get and a scan, and sled
/// applies a concurrent commit between two steps of a scan (its iterator keeps a copy of the
/// leaf it is in), so a read racing a commit can miss one event and see the next. Reading
/// again sees that commit whole; a gap that stays is in the journal itself.
fn untorn<T>(read: impl Fn() -> Result<T, StoreError>) -> Result<T, StoreError> {
    let mut attempt = 1;
    loop {
        match read() {
            Err(StoreError::Inconsistent { .. }) if attempt < TORN_READ_ATTEMPTS => attempt += 1,
            done => return done,
        }
    }
}

pub(super) fn corrupt(key: &[u8], source: codec::CodecError) -> StoreError {
    StoreError::Corrupt {
        key: hex::encode(key),
        source,
    }
}

pub(super) fn inconsistent(key: &[u8], reason: String) -> StoreError {
    StoreError::Inconsistent {
        key: hex::encode(key),
        reason,
    }
}
