//! Sealing: when a task settles, its events move from one entry each (`e` keys) into one
//! compressed record (`s` key), in the same atomic batch as the settling events.
//!
//! While a task runs, an event is appended per commit without reading anything back, which
//! keeps commits cheap. Once it settles its journal only grows again if it is retried, and
//! keeping ten to fifteen small entries per finished task is what cost most of its disk: sled
//! spends about 100 B per entry on top of 1.65x the bytes (docs/BENCHMARKS.md). One record
//! per task, compressed (a step's input repeats its item), cuts a finished three-step task's
//! disk by more than half. A retried task appends loose events after its sealed ones again,
//! and is sealed again, whole, when it settles again.
//!
//! A read is a scan of the loose events and then a get of the sealed record. A seal deletes
//! loose events and writes the record in one batch, so a read that missed loose events
//! because a seal happened during its scan finds them in the record it reads after; a read
//! that sees an event in both keeps one. A gap that stays is `Inconsistent` (see `kv::untorn`).

use super::codec::{self, decode_event, decode_sealed, encode_sealed};
use super::keys::{self, SEALED};
use super::kv::{corrupt, inconsistent, Backend, Op};
use super::{StoreError, TaskWrite};
use crate::event::Event;
use crate::model::TaskId;

/// The task's events with sequence numbers from `from` on, in order, from its sealed record
/// and its loose entries. The sequence numbers are contiguous from `from`, or it is an error.
pub fn journal<B: Backend>(backend: &B, id: &TaskId, from: u64) -> Result<Vec<(u64, Event)>, StoreError> {
    read(backend, id, from).map(|(events, _)| events)
}

/// `journal`, and the last sequence number in the sealed record (0 without one).
fn read<B: Backend>(backend: &B, id: &TaskId, from: u64) -> Result<(Vec<(u64, Event)>, u64), StoreError> {
    let loose_from = keys::event(id, from);
    let loose_to = keys::prefix_end(&keys::with_id(keys::EVENT, id));
    let loose = backend.scan(&loose_from, &loose_to, false, usize::MAX)?;
    let (mut events, sealed_upto) = match sealed(backend, id)? {
        Some((first, sealed)) => {
            let upto = first + sealed.len() as u64 - 1;
            ((first..).zip(sealed).filter(|(seq, _)| *seq >= from).collect(), upto)
        }
        None => (Vec::new(), 0),
    };
    for (key, value) in loose {
        let seq = seq_of(&key)?;
        if events.last().is_some_and(|(last, _)| seq <= *last) {
            continue; // sealed during this read: the record has it
        }
        let event = decode_event(&value).map_err(|source| corrupt(&key, source))?;
        events.push((seq, event));
    }
    for (n, (seq, _)) in events.iter().enumerate() {
        if *seq != from + n as u64 {
            let key = keys::event(id, *seq);
            return Err(inconsistent(&key, format!("expected sequence {}", from + n as u64)));
        }
    }
    Ok((events, sealed_upto))
}

/// The batch ops that seal a settling task: its whole journal (what is stored and this
/// write's events) as one record, and the deletes of its loose entries. `Ok(false)` when the
/// stored events do not join this write's (never the case for a group from the runtime,
/// which has one write per task): the caller then appends them loose, as for a running task.
pub fn seal_ops<B: Backend>(backend: &B, write: &TaskWrite, ops: &mut Vec<Op>) -> Result<bool, StoreError> {
    let id = &write.task.id;
    let Some((first_new, _)) = write.events.first() else { return Ok(false) };
    // A damaged journal stays as it is, loose; its reads report the damage.
    let (stored, sealed_upto) = match read(backend, id, 1) {
        Ok(read) => read,
        Err(StoreError::Corrupt { .. } | StoreError::Inconsistent { .. }) => return Ok(false),
        Err(error) => return Err(error),
    };
    if stored.len() as u64 + 1 != *first_new {
        return Ok(false);
    }
    let mut all: Vec<Event> = stored.into_iter().map(|(_, event)| event).collect();
    all.extend(write.events.iter().map(|(_, event)| event.clone()));
    ops.push((keys::with_id(SEALED, id), Some(encode_sealed(1, &all))));
    for seq in sealed_upto + 1..*first_new {
        ops.push((keys::event(id, seq), None));
    }
    Ok(true)
}

/// The sealed record's first sequence number and events, if the task has one.
pub fn sealed<B: Backend>(backend: &B, id: &TaskId) -> Result<Option<(u64, Vec<Event>)>, StoreError> {
    let key = keys::with_id(SEALED, id);
    match backend.get(&key)? {
        Some(bytes) => decode_sealed(&bytes).map(Some).map_err(|source| corrupt(&key, source)),
        None => Ok(None),
    }
}

/// The sequence number at the end of an `e` key.
pub fn seq_of(key: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = key
        .get(17..)
        .and_then(|tail| tail.try_into().ok())
        .ok_or_else(|| corrupt(key, codec::CodecError::TooShort(key.len())))?;
    Ok(u64::from_be_bytes(bytes))
}

#[cfg(test)]
#[path = "sealed_tests.rs"]
mod tests;
