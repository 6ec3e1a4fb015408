//! What `PgStore` writes: a group's commit, one transaction of four statements whatever
//! the group's size (each takes its rows as arrays, `UNNEST`ed), and the sweep of settled
//! tasks, one statement. Every write is an upsert, as a `KvStore` put is, so a group
//! committed again after an error that hid its success writes the same rows.

use super::super::codec::{encode_event, encode_task};
use super::super::{StoreError, TaskWrite};
use super::task_id;
use crate::event::Event;
use crate::model::{Millis, TaskId};
use postgres::Client;
use std::collections::BTreeMap;

const UPSERT_TASKS: &str = "
    INSERT INTO stepwise_tasks
        (id, created_at, workflow, status, settled, completed_at, seq, snapshot)
    SELECT * FROM UNNEST($1::bytea[], $2::int8[], $3::text[], $4::text[], $5::bool[],
                         $6::int8[], $7::int8[], $8::bytea[])
    ON CONFLICT (id) DO UPDATE SET
        status = EXCLUDED.status, settled = EXCLUDED.settled,
        completed_at = EXCLUDED.completed_at, seq = EXCLUDED.seq, snapshot = EXCLUDED.snapshot";

const UPSERT_EVENTS: &str = "
    INSERT INTO stepwise_events (task_id, seq, event)
    SELECT * FROM UNNEST($1::bytea[], $2::int8[], $3::bytea[])
    ON CONFLICT (task_id, seq) DO UPDATE SET event = EXCLUDED.event";

/// A key already held by another task is left alone, and shows in the count of rows
/// written: the commit then fails whole (`commit`).
const CLAIM_KEYS: &str = "
    INSERT INTO stepwise_idempotency_keys (key, task_id)
    SELECT * FROM UNNEST($1::text[], $2::bytea[])
    ON CONFLICT (key) DO UPDATE SET task_id = EXCLUDED.task_id
        WHERE stepwise_idempotency_keys.task_id = EXCLUDED.task_id";

const UPSERT_OWNERS: &str = "
    INSERT INTO stepwise_prediction_owners (prediction_id, journaled_at, task_id)
    SELECT * FROM UNNEST($1::text[], $2::int8[], $3::bytea[])
    ON CONFLICT (prediction_id, journaled_at) DO UPDATE SET task_id = EXCLUDED.task_id";

/// Settled tasks that ended before `$1`, oldest created first, at most `$2`, deleted with
/// every row they own. The outer `WHERE` repeats the condition so that a task retried by a
/// concurrent commit (no longer settled) is re-checked on its new row version and stays.
const SWEEP: &str = "
    WITH gone AS (
        DELETE FROM stepwise_tasks
        WHERE id IN (
            SELECT id FROM stepwise_tasks
            WHERE settled AND created_at < $1 AND completed_at < $1
            ORDER BY created_at, id
            LIMIT $2
        ) AND settled AND completed_at < $1
        RETURNING id, created_at
    ),
    events AS (DELETE FROM stepwise_events WHERE task_id IN (SELECT id FROM gone)),
    keys AS (DELETE FROM stepwise_idempotency_keys WHERE task_id IN (SELECT id FROM gone)),
    owners AS (DELETE FROM stepwise_prediction_owners WHERE task_id IN (SELECT id FROM gone))
    SELECT id FROM gone ORDER BY created_at, id";

/// One group's rows, one column per vector. The same task twice in a group keeps its last
/// write (its latest state), and the same row key twice its last value: one statement may
/// not upsert a row twice.
#[derive(Default)]
struct Rows<'a> {
    tasks: BTreeMap<TaskId, &'a TaskWrite>,
    events: BTreeMap<(TaskId, u64), &'a Event>,
    keys: BTreeMap<&'a str, TaskId>,
    owners: BTreeMap<(&'a str, Millis), TaskId>,
}

impl<'a> Rows<'a> {
    fn of(group: &'a [TaskWrite]) -> Self {
        let mut rows = Rows::default();
        for write in group {
            let id = write.task.id;
            rows.tasks.insert(id, write);
            for (seq, event) in &write.events {
                rows.events.insert((id, *seq), event);
                if let Some((_, Some(key))) = event.as_created() {
                    rows.keys.insert(key, id);
                }
                if let Event::PredictionCreated {
                    prediction_id, at, ..
                } = event
                {
                    rows.owners.insert((prediction_id, (*at).max(0)), id);
                }
            }
        }
        rows
    }
}

/// Writes the group in one transaction: all of it, or (on any error) none of it. Returns
/// once PostgreSQL has committed it (`synchronous_commit = on`, `pool`).
pub(super) fn commit(client: &mut Client, group: &[TaskWrite]) -> Result<(), StoreError> {
    if group.is_empty() {
        return Ok(());
    }
    let fail = |e| StoreError::io("committing a group to PostgreSQL", e);
    let rows = Rows::of(group);
    let mut tx = client.transaction().map_err(fail)?;

    let tasks: Vec<&TaskWrite> = rows.tasks.values().copied().collect();
    let ids: Vec<&[u8]> = tasks.iter().map(|w| &w.task.id.0[..]).collect();
    let created: Vec<i64> = tasks.iter().map(|w| w.task.created_at.max(0)).collect();
    let workflows: Vec<&str> = tasks.iter().map(|w| w.task.workflow.as_str()).collect();
    let statuses: Vec<&str> = tasks.iter().map(|w| w.task.status.as_str()).collect();
    let settled: Vec<bool> = tasks.iter().map(|w| w.task.is_settled()).collect();
    let completed: Vec<Option<i64>> = tasks.iter().map(|w| w.task.completed_at).collect();
    let seqs: Vec<i64> = tasks.iter().map(|w| w.task.seq as i64).collect();
    let snapshots: Vec<Vec<u8>> = tasks.iter().map(|w| encode_task(&w.task)).collect();
    tx.execute(
        UPSERT_TASKS,
        &[
            &ids, &created, &workflows, &statuses, &settled, &completed, &seqs, &snapshots,
        ],
    )
    .map_err(fail)?;

    if !rows.events.is_empty() {
        let ids: Vec<&[u8]> = rows.events.keys().map(|(id, _)| &id.0[..]).collect();
        let seqs: Vec<i64> = rows.events.keys().map(|(_, seq)| *seq as i64).collect();
        let events: Vec<Vec<u8>> = rows.events.values().map(|e| encode_event(e)).collect();
        tx.execute(UPSERT_EVENTS, &[&ids, &seqs, &events])
            .map_err(fail)?;
    }

    if !rows.keys.is_empty() {
        let keys: Vec<&str> = rows.keys.keys().copied().collect();
        let ids: Vec<&[u8]> = rows.keys.values().map(|id| &id.0[..]).collect();
        let claimed = tx.execute(CLAIM_KEYS, &[&keys, &ids]).map_err(fail)?;
        if claimed < keys.len() as u64 {
            return Err(StoreError::Inconsistent {
                key: "stepwise_idempotency_keys".into(),
                reason: format!(
                    "an idempotency key of this group ({}) is held by another task",
                    keys.join(", ")
                ),
            });
        }
    }

    if !rows.owners.is_empty() {
        let predictions: Vec<&str> = rows.owners.keys().map(|(p, _)| *p).collect();
        let at: Vec<i64> = rows.owners.keys().map(|(_, at)| *at).collect();
        let ids: Vec<&[u8]> = rows.owners.values().map(|id| &id.0[..]).collect();
        tx.execute(UPSERT_OWNERS, &[&predictions, &at, &ids])
            .map_err(fail)?;
    }
    tx.commit().map_err(fail)
}

pub(super) fn sweep(
    client: &mut Client,
    cutoff: Millis,
    limit: usize,
) -> Result<Vec<TaskId>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    client
        .query(SWEEP, &[&cutoff, &limit])
        .map_err(|e| StoreError::io("sweeping settled tasks from PostgreSQL", e))?
        .iter()
        .map(|row| task_id(row.get(0), "stepwise_tasks"))
        .collect()
}
