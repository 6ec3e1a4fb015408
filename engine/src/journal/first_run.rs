//! A start in one sled entry: a new task's first run of events (created, step one requested)
//! rides in the value of its journal `c` key, after the mark, instead of in an `e` key of its
//! own. sled's cost is per entry and a start is the API's hottest write: two entries cost
//! 7-8% of the start rate (docs/benchmarks-history.md, "One sled entry per start").
//!
//! The value is `r`, the run's last sequence number (u64 BE), then the run as `event_ops`
//! encodes it. It stays there while the task runs. The commit that first changes the mark
//! (the task settles) reads it back and writes the run to its `e` key, where every later run
//! is, next to the new mark; so marks that move, keep or reopen a task never carry a run, and
//! keep the forms older versions wrote (empty, `m`, `k`).
//!
//! Reads find the `c` key from the id alone: a task id starts with its creation time in ms
//! (`TaskId::time_ordered`), the time the `c` key is sorted by. A task whose id does not
//! (tests make such ids) writes its first run to an `e` key, as before.

use super::backend::{Backend, Op};
use super::keys;
use super::kv::corrupt;
use super::StoreError;
use crate::model::{Millis, TaskId};

/// The first byte of a `c` value that carries the first run (marks: empty, `m`, `k`).
const WITH_RUN: u8 = b'r';

/// The `c` key of a task created at `created_at`, when a read can find it from the id.
pub(super) fn key_if_found_by_id(created_at: Millis, id: &TaskId) -> Option<Vec<u8>> {
    let key = keys::created(created_at, id);
    (key == key_of(id)).then_some(key)
}

/// The `c` key the id implies: its first six bytes are the creation time in ms.
fn key_of(id: &TaskId) -> Vec<u8> {
    let mut ms = [0u8; 8];
    ms[2..].copy_from_slice(&id.0[..6]);
    keys::created(u64::from_be_bytes(ms) as Millis, id)
}

/// The `c` value of a new task to resume, carrying its first run (ending at `last`).
pub(super) fn value(last: u64, run: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(9 + run.len());
    value.push(WITH_RUN);
    value.extend_from_slice(&last.to_be_bytes());
    value.extend_from_slice(run);
    value
}

/// The run a `c` value carries, with its last sequence number; `None` for a bare mark.
fn run_in(key: &[u8], value: &[u8]) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
    if value.first() != Some(&WITH_RUN) {
        return Ok(None);
    }
    let last = value
        .get(1..9)
        .and_then(|bytes| bytes.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| corrupt(key, super::codec::CodecError::TooShort(value.len())))?;
    Ok(Some((last, value[9..].to_vec())))
}

/// The first run the task's journal `c` key carries, as an `e` entry would hold it: its key
/// (sequence number of its last event) and value.
pub(super) fn read<B: Backend>(
    journal: &B,
    id: &TaskId,
) -> Result<Option<super::backend::Entry>, StoreError> {
    let key = key_of(id);
    let Some(value) = journal.get(&key)? else {
        return Ok(None);
    };
    Ok(run_in(&key, &value)?.map(|(last, run)| (keys::event(id, last), run)))
}

/// The write moving the run out of a `c` key whose mark is about to change: the run to its
/// `e` key. Nothing when the key carries no run.
pub(super) fn move_out<B: Backend>(
    journal: &B,
    id: &TaskId,
    ops: &mut Vec<Op>,
) -> Result<(), StoreError> {
    if let Some((key, run)) = read(journal, id)? {
        ops.push((key, Some(run)));
    }
    Ok(())
}
