//! The PostgreSQL schema: versioned migrations embedded in the binary, applied at open.
//! Several instances may open one database at once: each takes the `stepwise_schema` table's
//! lock inside its migration transaction, so one applies what is missing and the others,
//! once it commits, find nothing left to do. No advisory locks: they do not survive a
//! transaction-mode pooler, and some PostgreSQL-compatible databases have none.

use super::super::StoreError;
use postgres::error::SqlState;
use postgres::Client;

/// `(version, SQL)`, in order. A released migration is never edited: a change is a new one.
///
/// Version 1, the tables `PgStore` reads and writes:
/// - `stepwise_tasks`: one row per task, its latest snapshot (`journal::codec`) and the
///   columns the queries filter and order by (listing order, unsettled, settled by age);
/// - `stepwise_events`: every event, one row each, by task and sequence number;
/// - `stepwise_idempotency_keys`: unique keys, each naming its task;
/// - `stepwise_prediction_owners`: which task created a prediction, and when that was
///   journaled (the window `owned_predictions` searches);
/// - `stepwise_facts`: facts about the database itself (`create_marks_since`).
///
/// No foreign keys: a start inserts into four tables, and each foreign key is one more
/// lookup per row on the commit path; `sweep` deletes a task's rows together instead.
pub(super) const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    "CREATE TABLE stepwise_tasks (
        id bytea PRIMARY KEY,
        created_at bigint NOT NULL,
        workflow text NOT NULL,
        status text NOT NULL,
        settled boolean NOT NULL,
        completed_at bigint,
        seq bigint NOT NULL,
        snapshot bytea NOT NULL
    );
    CREATE INDEX stepwise_tasks_listing ON stepwise_tasks (created_at, id);
    CREATE INDEX stepwise_tasks_unsettled ON stepwise_tasks (created_at, id) WHERE NOT settled;
    CREATE INDEX stepwise_tasks_settled ON stepwise_tasks (created_at, id) WHERE settled;
    CREATE TABLE stepwise_events (
        task_id bytea NOT NULL,
        seq bigint NOT NULL,
        event bytea NOT NULL,
        PRIMARY KEY (task_id, seq)
    );
    CREATE TABLE stepwise_idempotency_keys (
        key text PRIMARY KEY,
        task_id bytea NOT NULL
    );
    CREATE INDEX stepwise_idempotency_keys_task ON stepwise_idempotency_keys (task_id);
    CREATE TABLE stepwise_prediction_owners (
        prediction_id text NOT NULL,
        journaled_at bigint NOT NULL,
        task_id bytea NOT NULL,
        PRIMARY KEY (prediction_id, journaled_at)
    );
    CREATE INDEX stepwise_prediction_owners_task ON stepwise_prediction_owners (task_id);
    CREATE TABLE stepwise_facts (
        name text PRIMARY KEY,
        value bigint NOT NULL
    );",
)];

/// How many times creating the version table is tried: two sessions creating it at the
/// same moment can both pass `IF NOT EXISTS`, and the second then fails on the catalog's
/// unique index; by the next try the table exists.
const CREATE_ATTEMPTS: u32 = 3;

/// Applies every migration the database lacks, in one transaction under the version table's
/// lock; returns the schema version the database is at. A database already past the newest
/// version this binary knows is refused: a newer version wrote it.
pub(super) fn migrate(client: &mut Client) -> Result<i32, StoreError> {
    let fail = |e| StoreError::io("migrating the PostgreSQL schema", e);
    for attempt in 1..=CREATE_ATTEMPTS {
        match client.batch_execute(
            "CREATE TABLE IF NOT EXISTS stepwise_schema (
                version integer PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        ) {
            Ok(()) => break,
            Err(e)
                if attempt < CREATE_ATTEMPTS
                    && matches!(
                        e.code(),
                        Some(&SqlState::UNIQUE_VIOLATION | &SqlState::DUPLICATE_TABLE)
                    ) => {}
            Err(e) => return Err(fail(e)),
        }
    }
    let mut tx = client.transaction().map_err(fail)?;
    tx.batch_execute("LOCK TABLE stepwise_schema IN EXCLUSIVE MODE")
        .map_err(fail)?;
    let current: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM stepwise_schema", &[])
        .map_err(fail)?
        .get(0);
    let newest = MIGRATIONS.last().map_or(0, |(version, _)| *version);
    if current > newest {
        return Err(StoreError::io(
            "migrating the PostgreSQL schema",
            format!(
                "the database's schema is at version {current}, newer than this binary's \
                 {newest}: a newer stepwise wrote it"
            ),
        ));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(sql).map_err(fail)?;
        tx.execute(
            "INSERT INTO stepwise_schema (version) VALUES ($1)",
            &[version],
        )
        .map_err(fail)?;
    }
    tx.commit().map_err(fail)?;
    if current < newest {
        tracing::info!(from = current, to = newest, "PostgreSQL schema migrated.");
    }
    Ok(newest)
}
