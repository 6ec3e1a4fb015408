//! What a commit writes for one task (`KvStore::commit`): its events as one entry, its
//! checkpoint when one is due, its `c` key's mark (or, for a new task, the mark and its first
//! run together: `first_run`), and its idempotency and prediction-owner keys.

use super::backend::{Backend, Op};
use super::codec::{encode_event, encode_event_run, encode_task};
use super::first_run;
use super::keys::{self, IDEMPOTENCY, TASK};
use super::kv::{KvStore, CHECKPOINT_EVERY, RESUME, TO_MOVE};
use super::{StoreError, TaskWrite};
use crate::event::Event;

impl<B: Backend> KvStore<B> {
    pub(super) fn task_ops(&self, write: &TaskWrite, ops: &mut Vec<Op>) -> Result<(), StoreError> {
        let task = &write.task;
        if write
            .events
            .iter()
            .any(|(seq, _)| seq % CHECKPOINT_EVERY == 0)
        {
            ops.push((keys::with_id(TASK, &task.id), Some(encode_task(task))));
        }
        let creates = write.events.iter().any(|(_, e)| e.as_created().is_some());
        let reopens = creates
            || write
                .events
                .iter()
                .any(|(_, e)| matches!(e, Event::TaskRetried { .. }));
        // The journal's `c` key: listing order, and what the next start does with the task:
        // resume it (empty) or, settled, move it (`TO_MOVE`). It leaves with the move.
        let marker = if task.is_settled() {
            Some(TO_MOVE)
        } else {
            reopens.then_some(RESUME)
        };
        let mut events_written = false;
        match marker {
            // A new task: its first run rides in the `c` key, one sled entry (`first_run`).
            Some(RESUME) if creates => match (
                first_run::key_if_found_by_id(task.created_at, &task.id),
                Self::run_entry(write),
            ) {
                (Some(key), Some((last, run))) => {
                    ops.push((key, Some(first_run::value(last, &run))));
                    events_written = true;
                }
                _ => ops.push((
                    keys::created(task.created_at, &task.id),
                    Some(RESUME.to_vec()),
                )),
            },
            Some(marker) => {
                if !creates {
                    first_run::move_out(self.backend(), &task.id, ops)?;
                }
                ops.push((
                    keys::created(task.created_at, &task.id),
                    Some(marker.to_vec()),
                ));
            }
            None => {}
        }
        if !events_written {
            Self::event_ops(write, ops);
        }
        for (_, event) in &write.events {
            if let Some((_, Some(key))) = event.as_created() {
                ops.push((keys::with_text(IDEMPOTENCY, key), Some(task.id.0.to_vec())));
            }
            if let Event::PredictionCreated {
                prediction_id, at, ..
            } = event
            {
                ops.push((keys::owner(*at, prediction_id), Some(task.id.0.to_vec())));
            }
        }
        Ok(())
    }

    /// The commit's events: consecutive ones (all of them, as the runtime writes them) as
    /// one run keyed by the last one's sequence number, so a start (task created, step one
    /// requested) or a step's end (succeeded, next requested) is one entry, not two. A read
    /// scanning from sequence `n` finds the run holding `n` first (`archive::read`).
    fn event_ops(write: &TaskWrite, ops: &mut Vec<Op>) {
        let id = &write.task.id;
        match Self::run_entry(write) {
            Some((last, run)) => ops.push((keys::event(id, last), Some(run))),
            None => {
                for (seq, event) in &write.events {
                    ops.push((keys::event(id, *seq), Some(encode_event(event))));
                }
            }
        }
    }

    /// The commit's events as one entry (its last sequence number and value), when they are
    /// consecutive: a run, or a single event.
    fn run_entry(write: &TaskWrite) -> Option<(u64, Vec<u8>)> {
        match write.events.as_slice() {
            [(seq, event)] => Some((*seq, encode_event(event))),
            [_, .., (last, _)]
                if write
                    .events
                    .windows(2)
                    .all(|pair| pair[1].0 == pair[0].0 + 1) =>
            {
                let run: Vec<&Event> = write.events.iter().map(|(_, event)| event).collect();
                Some((*last, encode_event_run(&run)))
            }
            _ => None,
        }
    }
}
