//! The key layout of the two stores (`KvStore`): the journal (tasks in flight) and the
//! archive (what settled tasks keep, `archive`). Each is one ordered keyspace, one sled tree.
//!
//! | key                                     | in      | value                               |
//! |-----------------------------------------|---------|-------------------------------------|
//! | `t` task id (16)                        | journal | snapshot (codec), a checkpoint      |
//! | `e` task id (16) seq (u64 BE)           | journal | event, or run ending at seq (codec) |
//! | `a` task id (16)                        | journal | older versions' `c` mark (folded)   |
//! | `s` task id (16)                        | archive | a settled task's events, sealed     |
//! | `c` created_at ms (u64 BE) task id      | both    | listing order; in the journal, a    |
//! |                                         |         | mark: empty to resume, `m` to move, |
//! |                                         |         | `k` settled and kept there; or `r`, |
//! |                                         |         | seq (u64 BE) and the task's first   |
//! |                                         |         | run: to resume (`first_run`)        |
//! | `i` idempotency key (UTF-8)             | both    | task id (16)                        |
//! | `q` journaled ms (u64 BE) prediction id | both    | task id (16): the prediction's owner|
//! | `p` prediction id (UTF-8)               | journal | task id (16): owner, before `q`     |
//! | `v` name (UTF-8)                        | journal | a fact about the data dir itself    |
//! |                                         |         | (`CREATE_MARKS_SINCE`: ms, u64 BE)  |
//!
//! Big-endian numbers keep byte order equal to numeric order. Keys a task keeps after it
//! ends lead with a time, so new ones land in the same few sled pages: random keys (as
//! prediction ids, in the first `p` index) spread writes over every old page, and sled then
//! never frees the segments those pages pin (docs/BENCHMARKS.md, "Disk").

use crate::model::{Millis, TaskId};

pub const TASK: u8 = b't';
pub const EVENT: u8 = b'e';
pub const SEALED: u8 = b's';
/// Recovery marks as versions before the `c` key carried them: folded, never written.
pub const ACTIVE: u8 = b'a';
pub const CREATED: u8 = b'c';
pub const IDEMPOTENCY: u8 = b'i';
/// Prediction owners as versions before `OWNER` wrote them: read, deleted, never written.
pub const PREDICTION: u8 = b'p';
pub const OWNER: u8 = b'q';
/// Facts about the data dir itself, by name.
pub const META: u8 = b'v';
/// Since when (ms) every create call is journaled as sent before it leaves (`CreateSent`):
/// an intent journaled earlier, by an older version, may have had its create sent unmarked.
pub const CREATE_MARKS_SINCE: &str = "create_marks_since";

pub fn with_id(tag: u8, id: &TaskId) -> Vec<u8> {
    let mut key = Vec::with_capacity(17);
    key.push(tag);
    key.extend_from_slice(&id.0);
    key
}

pub fn event(id: &TaskId, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(25);
    key.push(EVENT);
    key.extend_from_slice(&id.0);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

pub fn created(at: Millis, id: &TaskId) -> Vec<u8> {
    let mut key = vec![CREATED];
    key.extend_from_slice(&(at.max(0) as u64).to_be_bytes());
    key.extend_from_slice(&id.0);
    key
}

/// The ownership of a prediction, journaled at `at` (the `PredictionCreated` event's time).
pub fn owner(at: Millis, prediction_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(9 + prediction_id.len());
    key.push(OWNER);
    key.extend_from_slice(&(at.max(0) as u64).to_be_bytes());
    key.extend_from_slice(prediction_id.as_bytes());
    key
}

pub fn with_text(tag: u8, text: &str) -> Vec<u8> {
    let mut key = vec![tag];
    key.extend_from_slice(text.as_bytes());
    key
}

/// The smallest key greater than every key starting with `prefix`. Every prefix of ours
/// starts with an ASCII tag below 0xff, so the carry always stops at the tag at the latest.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            break;
        }
    }
    end
}

/// The task id at the end of an `a`, `t`, `s` or `c` key.
pub fn trailing_id(key: &[u8]) -> Option<TaskId> {
    let tail: [u8; 16] = key.get(key.len().checked_sub(16)?..)?.try_into().ok()?;
    Some(TaskId(tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_sort_by_sequence_and_stay_inside_their_task() {
        let id = TaskId([0xff; 16]);
        assert!(event(&id, 2) < event(&id, 10));
        assert!(event(&id, u64::MAX) < prefix_end(&with_id(EVENT, &id)));
        assert!(event(&TaskId([0; 16]), u64::MAX) < event(&TaskId([1; 16]), 0));
    }

    #[test]
    fn prefix_end_carries_over_0xff() {
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"t\xff\xff"), b"u".to_vec());
    }

    #[test]
    fn created_keys_sort_by_time() {
        assert!(created(5, &TaskId([9; 16])) < created(6, &TaskId([0; 16])));
        assert_eq!(
            trailing_id(&created(5, &TaskId([9; 16]))),
            Some(TaskId([9; 16]))
        );
    }
}
