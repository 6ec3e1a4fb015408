//! What `PgStore` reads: a task (its snapshot row), its events, the listing, the unfinished
//! tasks, the idempotency and prediction-owner lookups, and the database's facts. Each is
//! one statement (the listing, one per chunk), so each sees one consistent snapshot.

use super::super::codec::{decode_event, decode_task};
use super::super::keys::{self, CREATED};
use super::super::kv::MAX_SCANNED_PER_PAGE;
use super::super::{ListPage, ListQuery, StoreError};
use super::task_id;
use crate::event::Event;
use crate::model::{Millis, Task, TaskId};
use postgres::Client;

fn failed(context: &'static str) -> impl Fn(postgres::Error) -> StoreError {
    move |e| StoreError::io(context, e)
}

fn snapshot(id: &[u8], bytes: &[u8]) -> Result<Task, StoreError> {
    decode_task(bytes).map_err(|source| StoreError::Corrupt {
        key: format!("stepwise_tasks/{}", hex::encode(id)),
        source,
    })
}

pub(super) fn task(client: &mut Client, id: &TaskId) -> Result<Option<Task>, StoreError> {
    client
        .query_opt(
            "SELECT snapshot FROM stepwise_tasks WHERE id = $1",
            &[&&id.0[..]],
        )
        .map_err(failed("reading a task from PostgreSQL"))?
        .map(|row| snapshot(&id.0, row.get(0)))
        .transpose()
}

pub(super) fn events(client: &mut Client, id: &TaskId) -> Result<Vec<(u64, Event)>, StoreError> {
    client
        .query(
            "SELECT seq, event FROM stepwise_events WHERE task_id = $1 ORDER BY seq",
            &[&&id.0[..]],
        )
        .map_err(failed("reading a task's events from PostgreSQL"))?
        .iter()
        .map(|row| {
            let seq: i64 = row.get(0);
            let event = decode_event(row.get(1)).map_err(|source| StoreError::Corrupt {
                key: format!("stepwise_events/{}/{seq}", hex::encode(id.0)),
                source,
            })?;
            Ok((seq as u64, event))
        })
        .collect()
}

/// Unfinished tasks, oldest first: those not settled, which includes a finished task whose
/// prediction still has a cancel to send (`Task::is_settled`).
pub(super) fn active(client: &mut Client) -> Result<Vec<Task>, StoreError> {
    client
        .query(
            "SELECT id, snapshot FROM stepwise_tasks WHERE NOT settled ORDER BY created_at, id",
            &[],
        )
        .map_err(failed("reading the unfinished tasks from PostgreSQL"))?
        .iter()
        .map(|row| snapshot(row.get(0), row.get(1)))
        .collect()
}

/// Newest first. The cursor is `KvStore`'s: the hex of the last row's `c` key (creation
/// time and id, `keys::created`), the next page starting below it. Status and workflow
/// filter in SQL; the search text in `ListQuery::matcher`, as in `KvStore`, which also
/// bounds the rows one page reads (`MAX_SCANNED_PER_PAGE`).
pub(super) fn list(client: &mut Client, query: &ListQuery) -> Result<ListPage, StoreError> {
    let mut end = match &query.cursor {
        Some(cursor) => Some(parse_cursor(cursor)?),
        None => None,
    };
    let limit = query.limit.max(1);
    let chunk = limit.max(64);
    let wanted = query.matcher();
    let status = query.status.map(|s| s.as_str());
    let workflow = query.workflow.as_deref();
    let mut tasks = Vec::with_capacity(limit);
    let mut scanned = 0;
    loop {
        let rows = below(client, end.as_ref(), status, workflow, chunk)?;
        let exhausted = rows.len() < chunk;
        for (created_at, id, task) in rows {
            scanned += 1;
            end = Some((created_at, id));
            if wanted(&task) {
                tasks.push(task);
            }
            if tasks.len() == limit || scanned >= MAX_SCANNED_PER_PAGE {
                let more = !below(client, end.as_ref(), status, workflow, 1)?.is_empty();
                return Ok(ListPage {
                    tasks,
                    next_cursor: more.then(|| hex::encode(keys::created(created_at, &id))),
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

/// Creation time and id of a cursor's row.
fn parse_cursor(cursor: &str) -> Result<(Millis, TaskId), StoreError> {
    let key = hex::decode(cursor).map_err(|_| StoreError::InvalidCursor)?;
    match key.as_slice() {
        [CREATED, rest @ ..] if rest.len() == 24 => {
            let (at, id) = rest.split_at(8);
            let at = u64::from_be_bytes(at.try_into().expect("8 bytes"));
            let id = TaskId(id.try_into().expect("16 bytes"));
            Ok((
                i64::try_from(at).map_err(|_| StoreError::InvalidCursor)?,
                id,
            ))
        }
        _ => Err(StoreError::InvalidCursor),
    }
}

/// Up to `limit` tasks listed after (older than) `end`, newest first, with their order.
fn below(
    client: &mut Client,
    end: Option<&(Millis, TaskId)>,
    status: Option<&str>,
    workflow: Option<&str>,
    limit: usize,
) -> Result<Vec<(Millis, TaskId, Task)>, StoreError> {
    let filters = "($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR workflow = $2)";
    let limit = limit as i64;
    let rows = match end {
        Some((at, id)) => client.query(
            &format!(
                "SELECT created_at, id, snapshot FROM stepwise_tasks
                 WHERE (created_at, id) < ($4, $5) AND {filters}
                 ORDER BY created_at DESC, id DESC LIMIT $3"
            ),
            &[&status, &workflow, &limit, at, &&id.0[..]],
        ),
        None => client.query(
            &format!(
                "SELECT created_at, id, snapshot FROM stepwise_tasks WHERE {filters}
                 ORDER BY created_at DESC, id DESC LIMIT $3"
            ),
            &[&status, &workflow, &limit],
        ),
    }
    .map_err(failed("listing tasks from PostgreSQL"))?;
    rows.iter()
        .map(|row| {
            let id: &[u8] = row.get(1);
            Ok((
                row.get(0),
                task_id(id, "stepwise_tasks")?,
                snapshot(id, row.get(2))?,
            ))
        })
        .collect()
}

pub(super) fn task_for_idempotency_key(
    client: &mut Client,
    key: &str,
) -> Result<Option<TaskId>, StoreError> {
    client
        .query_opt(
            "SELECT task_id FROM stepwise_idempotency_keys WHERE key = $1",
            &[&key],
        )
        .map_err(failed("reading an idempotency key from PostgreSQL"))?
        .map(|row| task_id(row.get(0), "stepwise_idempotency_keys"))
        .transpose()
}

/// Which of `prediction_ids` a task owns with its ownership journaled in `[from, until]`,
/// in the order they were journaled. Keyed by prediction id, each is one index lookup and
/// the window a filter: the time-ordered keys `KvStore` needs (sled pins the pages random
/// keys land in) buy nothing in a B-tree that reuses its free space.
pub(super) fn owned_predictions(
    client: &mut Client,
    prediction_ids: &[&str],
    from: Millis,
    until: Millis,
) -> Result<Vec<String>, StoreError> {
    if prediction_ids.is_empty() || until < from {
        return Ok(vec![]);
    }
    Ok(client
        .query(
            "SELECT prediction_id FROM stepwise_prediction_owners
             WHERE prediction_id = ANY($1) AND journaled_at BETWEEN $2 AND $3
             GROUP BY prediction_id ORDER BY min(journaled_at), prediction_id",
            &[&prediction_ids, &from, &until],
        )
        .map_err(failed("reading prediction owners from PostgreSQL"))?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

/// Recorded by the first open that asks, in the same statement that reads it: every
/// version that writes to PostgreSQL journals its creates as sent.
pub(super) fn create_marks_since(client: &mut Client, now: Millis) -> Result<Millis, StoreError> {
    let row = client
        .query_one(
            "WITH recorded AS (
                INSERT INTO stepwise_facts (name, value) VALUES ($1, $2)
                ON CONFLICT (name) DO NOTHING RETURNING value
            )
            SELECT value FROM recorded
            UNION ALL SELECT value FROM stepwise_facts WHERE name = $1",
            &[&keys::CREATE_MARKS_SINCE, &now.max(0)],
        )
        .map_err(failed("reading when create marks began, from PostgreSQL"))?;
    Ok(row.get(0))
}
