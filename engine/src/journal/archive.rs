//! The archive: what a settled task keeps, moved out of the journal into a store of its own.
//!
//! While a task runs, each commit appends its events to the journal as one entry (an event,
//! or a run of them keyed by the last; the first run rides in the task's `c` key until it
//! settles, `first_run`), without reading anything back. When a commit settles a task, the
//! task moves: its events become one
//! sealed record (`s`, compressed: a step's input repeats its item), and its listing,
//! idempotency and prediction-owner keys go with it. The archive is a second sled database
//! because sled 0.34 cleans its log badly when pages that never change again share segments
//! with busy ones: with the two mixed, the data dir grew by 7-12 KB per finished three-step
//! task with thousands of tasks in flight; apart, the journal stays the size of what is in
//! flight and the archive grows by what tasks keep (docs/BENCHMARKS.md, "Disk").
//!
//! Order makes it safe without a transaction across the two: the archive's batch is durable
//! before the journal's deletes are applied, so at every moment each event is in one or both.
//! A read scans the journal's loose events first and gets the sealed record second: whatever
//! a move deleted under its scan is in the record it reads after; an event seen in both is
//! kept once. A move cut short (crash, I/O error) leaves the task in both, readable; its
//! journal `c` key stays marked `TO_MOVE`, and `finish_moves` completes it at the next start.

use super::backend::{Backend, Guarded, Op};
use super::codec::{self, decode_events, decode_sealed, encode_sealed};
use super::keys::{self, IDEMPOTENCY, SEALED, TASK};
use super::kv::{corrupt, inconsistent};
use super::StoreError;
use crate::event::Event;
use crate::model::{Task, TaskId};

/// The largest sealed record a task moves with. sled writes a page bigger than 128 KiB to a
/// file of its own and rewrites the whole page at every change to it; a leaf of records of
/// hundreds of KB costs more to keep in the archive than the same events left where they
/// are (measured: 100 KB items, 1.9 MB per three-step task moved, 0.9-1.1 MB kept; 10 KB
/// items, 90-96 KB moved, 145-155 KB kept). A settled task whose record would be bigger
/// stays in the journal, its `c` key marked `KEPT`.
const MAX_SEALED_BYTES: usize = 64 << 10;

/// The task's events with sequence numbers from `from` on, in order, from the journal's
/// loose entries and the archive's sealed record. Contiguous from `from`, or an error.
pub fn journal<B: Backend>(
    journal: &B,
    archive: &B,
    id: &TaskId,
    from: u64,
) -> Result<Vec<(u64, Event)>, StoreError> {
    read(journal, archive, id, from).map(|(events, _)| events)
}

/// `journal`, and the last sequence number in the sealed record (0 without one).
fn read<B: Backend>(
    journal: &B,
    archive: &B,
    id: &TaskId,
    from: u64,
) -> Result<(Vec<(u64, Event)>, u64), StoreError> {
    let loose_from = keys::event(id, from);
    let loose_to = keys::prefix_end(&keys::with_id(keys::EVENT, id));
    let mut loose = journal
        .scan(&loose_from, &loose_to, false, usize::MAX)?
        .into_iter()
        .map(|(key, value)| decode_run(&key, &value).map(|run| (key, run)))
        .collect::<Result<Vec<_>, _>>()?;
    // A task's first run may ride in its `c` key (`first_run`): read it when the loose runs
    // do not reach back to `from`, after them and before the sealed record (a move deletes
    // the journal's keys only once the record is durable).
    if loose.first().is_none_or(|(_, (first, _))| *first > from) {
        if let Some((key, value)) = super::first_run::read(journal, id)? {
            let run = decode_run(&key, &value)?;
            loose.insert(0, (key, run));
        }
    }
    let (mut events, sealed_upto) = match sealed(archive, id)? {
        Some((first, sealed)) => {
            let upto = first + sealed.len() as u64 - 1;
            (
                (first..)
                    .zip(sealed)
                    .filter(|(seq, _)| *seq >= from)
                    .collect(),
                upto,
            )
        }
        None => (Vec::new(), 0),
    };
    for (_, (first, run)) in loose {
        for (seq, event) in (first..).zip(run) {
            if seq < from || events.last().is_some_and(|(upto, _)| seq <= *upto) {
                continue; // before the read's start, or moved during this read: the record has it
            }
            events.push((seq, event));
        }
    }
    for (n, (seq, _)) in events.iter().enumerate() {
        if *seq != from + n as u64 {
            let key = keys::event(id, *seq);
            return Err(inconsistent(
                &key,
                format!("expected sequence {}", from + n as u64),
            ));
        }
    }
    Ok((events, sealed_upto))
}

/// Moves settled tasks from the journal to the archive: one durable archive batch, then the
/// journal's deletes, applied lazily (a lost delete leaves a duplicate that reads ignore and
/// `finish_moves` removes) and only where the task's journal `c` key still marks it to move: a task
/// retried since (the runtime commits while moves run) keeps its journal entries, and its
/// next move takes the leftovers. A task whose stored events do not add up to its sequence
/// number stays where it is; its reads report why.
pub fn move_settled<B: Backend>(
    journal: &B,
    archive: &B,
    tasks: &[&Task],
) -> Result<usize, StoreError> {
    let (mut to_archive, mut guarded) = (vec![], vec![]);
    for task in tasks {
        let mut to_delete = vec![];
        let (events, sealed_upto) = match read(journal, archive, &task.id, 1) {
            Ok(read) => read,
            Err(StoreError::Corrupt { .. } | StoreError::Inconsistent { .. }) => continue,
            Err(error) => return Err(error),
        };
        if events.len() as u64 != task.seq {
            continue;
        }
        let all: Vec<&Event> = events.iter().map(|(_, event)| event).collect();
        let record = encode_sealed(1, &all);
        let mark = keys::created(task.created_at, &task.id);
        if record.len() > MAX_SEALED_BYTES && sealed_upto == 0 {
            to_delete.push((mark.clone(), Some(super::kv::KEPT.to_vec())));
        } else {
            move_ops(task, &events, record, &mut to_archive, &mut to_delete);
        }
        guarded.push(Guarded {
            key: mark,
            expected: super::kv::TO_MOVE.to_vec(),
            ops: to_delete,
        });
    }
    if guarded.is_empty() {
        return Ok(0);
    }
    if !to_archive.is_empty() {
        archive.apply(to_archive)?;
        crash_between_writes_hook();
    }
    journal.apply_guarded(guarded)
}

/// Fault injection for crash tests: with `STEPWISE_FAULT_CRASH_MID_MOVE=1` in the
/// environment, the process aborts after a move's archive batch is durable and before the
/// journal's deletes: the moment that leaves a task in both stores. Unset in production.
fn crash_between_writes_hook() {
    static ARMED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ARMED.get_or_init(|| std::env::var_os("STEPWISE_FAULT_CRASH_MID_MOVE").is_some()) {
        eprintln!(
            "fault injection: aborting between a move's archive batch and its journal deletes"
        );
        std::process::abort();
    }
}

/// What a move writes to the archive and deletes from the journal. Everything the task ever
/// had in the journal is deleted, not only what came after an earlier move: a move whose
/// guard failed (the task was retried meanwhile) left it all there.
fn move_ops(
    task: &Task,
    events: &[(u64, Event)],
    record: Vec<u8>,
    to_archive: &mut Vec<Op>,
    to_delete: &mut Vec<Op>,
) {
    let id = &task.id;
    let owner = id.0.to_vec();
    for (seq, event) in events {
        if let Some((at, idempotency_key)) = event.as_created() {
            // Rewritten even when a retried task moves again: the same key, the same value.
            to_archive.push((keys::created(at, id), Some(vec![])));
            to_delete.push((keys::created(at, id), None));
            if let Some(key) = idempotency_key {
                to_archive.push((keys::with_text(IDEMPOTENCY, key), Some(owner.clone())));
                to_delete.push((keys::with_text(IDEMPOTENCY, key), None));
            }
        }
        if let Event::PredictionCreated {
            prediction_id, at, ..
        } = event
        {
            to_archive.push((keys::owner(*at, prediction_id), Some(owner.clone())));
            to_delete.push((keys::owner(*at, prediction_id), None));
        }
        // Every sequence number's key: a run is keyed by its last, the others are absent.
        to_delete.push((keys::event(id, *seq), None));
    }
    to_archive.push((keys::with_id(SEALED, id), Some(record)));
    to_delete.push((keys::with_id(TASK, id), None));
}

/// The sealed record's first sequence number and events, if the task has one.
fn sealed<B: Backend>(archive: &B, id: &TaskId) -> Result<Option<(u64, Vec<Event>)>, StoreError> {
    let key = keys::with_id(SEALED, id);
    match archive.get(&key)? {
        Some(bytes) => decode_sealed(&bytes)
            .map(Some)
            .map_err(|source| corrupt(&key, source)),
        None => Ok(None),
    }
}

/// Up to `limit` entries of `[from, to)` from both stores, merged in key order (descending
/// with `reverse`), each key once: the listing and owner keys of a task being moved can be
/// in both for a moment.
pub fn scan_both<B: Backend>(
    journal: &B,
    archive: &B,
    from: &[u8],
    to: &[u8],
    reverse: bool,
    limit: usize,
) -> Result<Vec<super::backend::Entry>, StoreError> {
    let mut entries = journal.scan(from, to, reverse, limit)?;
    entries.extend(archive.scan(from, to, reverse, limit)?);
    entries.sort_by(|a, b| {
        if reverse {
            b.0.cmp(&a.0)
        } else {
            a.0.cmp(&b.0)
        }
    });
    entries.dedup_by(|a, b| a.0 == b.0);
    entries.truncate(limit);
    Ok(entries)
}

/// An entry's events and the sequence number of the first: an entry holds one event or a run
/// of them, keyed by the run's last sequence number.
fn decode_run(key: &[u8], value: &[u8]) -> Result<(u64, Vec<Event>), StoreError> {
    let last = seq_of(key)?;
    let run = decode_events(value).map_err(|source| corrupt(key, source))?;
    match (last + 1)
        .checked_sub(run.len() as u64)
        .filter(|first| *first >= 1)
    {
        Some(first) => Ok((first, run)),
        None => Err(inconsistent(
            key,
            format!(
                "a run of {} events cannot end at sequence {last}",
                run.len()
            ),
        )),
    }
}

/// The sequence number at the end of an `e` key.
fn seq_of(key: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = key
        .get(17..)
        .and_then(|tail| tail.try_into().ok())
        .ok_or_else(|| corrupt(key, codec::CodecError::TooShort(key.len())))?;
    Ok(u64::from_be_bytes(bytes))
}

#[cfg(test)]
#[path = "archive_tests.rs"]
mod tests;
