//! The same behaviour checked on every store (`stores`): in memory, sled, and PostgreSQL
//! when `STEPWISE_TEST_POSTGRES_URL` names one (`pg::test_db`). Tests of `KvStore`'s own
//! layout (checkpoints, runs, older versions' keys, torn scans) and of its fault-injecting
//! memory backend stay on `KvStore`; PostgreSQL's counterparts are in `pg::tests`.

use super::*;
use crate::machine;
use crate::model::Json;

pub(super) fn new_task(seed: u8, at: i64, key: Option<&str>) -> TaskWrite {
    let created = Event::TaskCreated {
        workflow: if seed.is_multiple_of(2) {
            "even".into()
        } else {
            "odd".into()
        },
        params: Json("{}".into()),
        items: vec![Json("{}".into())],
        idempotency_key: key.map(str::to_owned),
        at,
    };
    let task = machine::create(TaskId([seed; 16]), &created).unwrap();
    TaskWrite {
        task: Arc::new(task),
        events: vec![(1, created)],
    }
}

pub(super) fn finish(write: &mut TaskWrite) {
    finish_at(write, 10);
}

/// Runs the task's one step to success over `at` .. `at + 2`.
fn finish_at(write: &mut TaskWrite, at: i64) {
    let events = [
        Event::StepRequested {
            step: 1,
            attempt: 1,
            input: Json("{}".into()),
            at,
        },
        Event::PredictionCreated {
            step: 1,
            attempt: 1,
            prediction_id: "pred-x".into(),
            at: at + 1,
        },
        Event::StepSucceeded {
            step: 1,
            prediction_id: "pred-x".into(),
            output: Json("1".into()),
            at: at + 2,
        },
    ];
    write.events.clear();
    for event in events {
        machine::apply(Arc::make_mut(&mut write.task), &event).unwrap();
        write.events.push((write.task.seq, event));
    }
}

/// What a store needs kept until the test ends: its directory, its database schema.
type Held = Option<Box<dyn std::any::Any>>;

fn stores() -> Vec<(Box<dyn Store>, Held)> {
    let dir = tempfile::tempdir().unwrap();
    let sled = KvStore::open(dir.path(), 1 << 20).unwrap();
    let mut stores: Vec<(Box<dyn Store>, Held)> = vec![
        (Box::new(KvStore::in_memory()), None),
        (Box::new(sled), Some(Box::new(dir))),
    ];
    if let Some(db) = pg::test_db::TestSchema::create() {
        stores.push((Box::new(db.open()), Some(Box::new(db))));
    }
    stores
}

#[test]
fn a_committed_task_reads_back_with_its_events_and_indexes() {
    for (store, _dir) in stores() {
        let write = new_task(1, 100, Some("k1"));
        store.commit(std::slice::from_ref(&write)).unwrap();
        assert_eq!(
            store.task(&write.task.id).unwrap(),
            Some(Task::clone(&write.task))
        );
        assert_eq!(store.events(&write.task.id).unwrap(), write.events);
        assert_eq!(
            store.task_for_idempotency_key("k1").unwrap(),
            Some(write.task.id)
        );
        assert_eq!(store.task_for_idempotency_key("k2").unwrap(), None);
        assert_eq!(store.active().unwrap(), vec![Task::clone(&write.task)]);
        assert_eq!(store.task(&TaskId([9; 16])).unwrap(), None);
    }
}

#[test]
fn a_finished_task_leaves_the_active_index_and_keeps_its_history() {
    for (store, _dir) in stores() {
        let mut write = new_task(1, 100, None);
        store.commit(std::slice::from_ref(&write)).unwrap();
        finish(&mut write);
        store.commit(std::slice::from_ref(&write)).unwrap();
        assert!(store.active().unwrap().is_empty());
        assert_eq!(store.events(&write.task.id).unwrap().len(), 4);
        // Its prediction was journaled at 11.
        assert_eq!(
            store
                .owned_predictions(&["pred-x", "pred-y"], 11, 11)
                .unwrap(),
            ["pred-x"]
        );
        assert!(
            store
                .owned_predictions(&["pred-x"], 12, 100)
                .unwrap()
                .is_empty(),
            "journaled before the window"
        );
        assert!(
            store
                .owned_predictions(&["pred-x"], 0, 10)
                .unwrap()
                .is_empty(),
            "journaled after the window"
        );
    }
}

#[test]
fn listing_is_newest_first_with_filters_and_cursors() {
    for (store, _dir) in stores() {
        let group: Vec<TaskWrite> = (1..=7)
            .map(|i| new_task(i, 1000 + i as i64, None))
            .collect();
        store.commit(&group).unwrap();
        let query = ListQuery {
            limit: 3,
            ..Default::default()
        };
        let first = store.list(&query).unwrap();
        let ids: Vec<u8> = first.tasks.iter().map(|t| t.id.0[0]).collect();
        assert_eq!(ids, vec![7, 6, 5]);
        let second = store
            .list(&ListQuery {
                cursor: first.next_cursor,
                ..query.clone()
            })
            .unwrap();
        let third = store
            .list(&ListQuery {
                cursor: second.next_cursor,
                ..query.clone()
            })
            .unwrap();
        let ids: Vec<u8> = third.tasks.iter().map(|t| t.id.0[0]).collect();
        assert_eq!(ids, vec![1]);
        assert_eq!(third.next_cursor, None);
        let odd = ListQuery {
            workflow: Some("odd".into()),
            limit: 10,
            ..Default::default()
        };
        let ids: Vec<u8> = store
            .list(&odd)
            .unwrap()
            .tasks
            .iter()
            .map(|t| t.id.0[0])
            .collect();
        assert_eq!(ids, vec![7, 5, 3, 1]);
        let done = ListQuery {
            status: Some(TaskStatus::Succeeded),
            limit: 10,
            ..Default::default()
        };
        assert!(store.list(&done).unwrap().tasks.is_empty());
        let bad = ListQuery {
            cursor: Some("zz".into()),
            limit: 1,
            ..Default::default()
        };
        assert!(matches!(store.list(&bad), Err(StoreError::InvalidCursor)));
    }
}

/// `new_task`, with `params` as its params.
fn task_with_params(seed: u8, at: i64, params: &str) -> TaskWrite {
    let mut write = new_task(seed, at, None);
    if let Some((_, Event::TaskCreated { params: p, .. })) = write.events.first_mut() {
        *p = Json(params.into());
    }
    let task = machine::create(TaskId([seed; 16]), &write.events[0].1).unwrap();
    write.task = Arc::new(task);
    write
}

#[test]
fn search_matches_id_prefixes_and_params_text_across_pages() {
    for (store, _dir) in stores() {
        let group: Vec<TaskWrite> = (1..=9u8)
            .map(|i| {
                let params = if i % 3 == 0 {
                    format!(r#"{{"Name":"Blue Shirt {i}"}}"#)
                } else {
                    format!(r#"{{"name":"red {i}"}}"#)
                };
                task_with_params(i, 1000 + i as i64, &params)
            })
            .collect();
        store.commit(&group).unwrap();
        let search = |q: &str, limit, cursor| ListQuery {
            q: Some(q.into()),
            limit,
            cursor,
            ..Default::default()
        };
        // Case-insensitive, in the params text; pages still fill up to `limit` matches.
        let first = store.list(&search("blue shirt", 2, None)).unwrap();
        let ids: Vec<u8> = first.tasks.iter().map(|t| t.id.0[0]).collect();
        assert_eq!(ids, vec![9, 6]);
        let rest = store
            .list(&search("BLUE SHIRT", 2, first.next_cursor))
            .unwrap();
        let ids: Vec<u8> = rest.tasks.iter().map(|t| t.id.0[0]).collect();
        assert_eq!(ids, vec![3]);
        // An id prefix, and the whole id, find that one task.
        let id = TaskId([4; 16]).to_string();
        for q in [&id[..10], &id[..], &id.to_uppercase()[..]] {
            let found = store.list(&search(q, 10, None)).unwrap();
            let ids: Vec<u8> = found.tasks.iter().map(|t| t.id.0[0]).collect();
            assert_eq!(ids, vec![4], "{q}");
        }
        // Combined with the other filters ("even" holds the even seeds).
        let even_red = ListQuery {
            workflow: Some("even".into()),
            ..search("red", 10, None)
        };
        let ids: Vec<u8> = store
            .list(&even_red)
            .unwrap()
            .tasks
            .iter()
            .map(|t| t.id.0[0])
            .collect();
        assert_eq!(ids, vec![8, 4, 2]);
        assert!(store
            .list(&search("green", 10, None))
            .unwrap()
            .tasks
            .is_empty());
        assert_eq!(store.list(&search("", 20, None)).unwrap().tasks.len(), 9);
    }
}

#[test]
fn a_failed_write_leaves_nothing_behind() {
    let store = KvStore::in_memory();
    store.backend().fail_writes(true);
    let write = new_task(3, 5, Some("k"));
    assert!(store.commit(std::slice::from_ref(&write)).is_err());
    assert_eq!(store.task(&write.task.id).unwrap(), None);
    assert_eq!(store.task_for_idempotency_key("k").unwrap(), None);
}

#[test]
fn sled_data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let write = new_task(4, 5, Some("again"));
    {
        let store = KvStore::open(dir.path(), 1 << 20).unwrap();
        store.commit(std::slice::from_ref(&write)).unwrap();
    }
    let store = KvStore::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(store.active().unwrap(), vec![Task::clone(&write.task)]);
    assert_eq!(
        store.task_for_idempotency_key("again").unwrap(),
        Some(write.task.id)
    );
}

#[test]
fn a_damaged_record_is_reported_not_skipped() {
    let store = KvStore::in_memory();
    let write = new_task(5, 5, None);
    store.commit(std::slice::from_ref(&write)).unwrap();
    let key = super::keys::event(&write.task.id, 1);
    let mut bytes = store.backend().get(&key).unwrap().unwrap();
    bytes[4] ^= 0x40;
    store.backend().apply(vec![(key, Some(bytes))]).unwrap();
    assert!(matches!(
        store.task(&write.task.id),
        Err(StoreError::Corrupt { .. })
    ));
}

/// Replaces the write's events with `n` more that apply: the step requested, its attempt
/// failing before a prediction, requested again, and so on.
fn churn(write: &mut TaskWrite, n: usize) {
    write.events.clear();
    while write.events.len() < n {
        let step = &write.task.steps[0];
        let next = match step.status {
            crate::model::StepStatus::Pending => Event::StepRequested {
                step: 1,
                attempt: step.attempt + 1,
                input: Json(format!("{{\"attempt\":{}}}", step.attempt + 1)),
                at: 10,
            },
            _ => Event::AttemptFailed {
                step: 1,
                prediction_id: None,
                error: "busy".into(),
                at: 11,
            },
        };
        machine::apply(Arc::make_mut(&mut write.task), &next).unwrap();
        write.events.push((write.task.seq, next));
    }
}

#[test]
fn a_long_task_reads_back_from_its_checkpoint_and_the_events_after_it() {
    use super::kv::CHECKPOINT_EVERY;
    let memory = KvStore::in_memory();
    let mut all = stores();
    all.push((Box::new(memory), None));
    for (store, _dir) in all {
        let mut write = new_task(6, 6, None);
        store.commit(std::slice::from_ref(&write)).unwrap();
        // Below the first checkpoint the task is its events alone.
        churn(&mut write, (CHECKPOINT_EVERY - 3) as usize);
        store.commit(std::slice::from_ref(&write)).unwrap();
        assert_eq!(
            store.task(&write.task.id).unwrap(),
            Some(Task::clone(&write.task))
        );
        // One commit crosses the checkpoint's sequence number, the next one adds events after it.
        churn(&mut write, 5);
        store.commit(std::slice::from_ref(&write)).unwrap();
        churn(&mut write, 4);
        store.commit(std::slice::from_ref(&write)).unwrap();
        assert_eq!(write.task.seq, CHECKPOINT_EVERY + 7);
        assert_eq!(
            store.task(&write.task.id).unwrap(),
            Some(Task::clone(&write.task))
        );
        assert_eq!(
            store.events(&write.task.id).unwrap().len() as u64,
            write.task.seq
        );
        assert_eq!(store.active().unwrap(), vec![Task::clone(&write.task)]);
    }
}

#[test]
fn only_a_commit_reaching_a_checkpoint_writes_the_snapshot() {
    use super::kv::CHECKPOINT_EVERY;
    let store = KvStore::in_memory();
    let mut write = new_task(7, 7, None);
    let snapshot = super::keys::with_id(super::keys::TASK, &write.task.id);
    store.commit(std::slice::from_ref(&write)).unwrap();
    churn(&mut write, (CHECKPOINT_EVERY - 2) as usize);
    store.commit(std::slice::from_ref(&write)).unwrap();
    assert_eq!(store.backend().get(&snapshot).unwrap(), None);
    churn(&mut write, 1);
    store.commit(std::slice::from_ref(&write)).unwrap();
    let stored = store
        .backend()
        .get(&snapshot)
        .unwrap()
        .expect("a checkpoint at 16");
    assert_eq!(
        super::codec::decode_task(&stored).unwrap().seq,
        CHECKPOINT_EVERY
    );
}

/// Data dirs written before the events became the record hold a snapshot at every commit
/// (its `seq` the task's last event) and an `a` key kept up to date: they read back as they
/// are, and take new commits in the new layout.
#[test]
fn a_journal_with_a_snapshot_at_every_commit_reads_back_and_goes_on() {
    let store = KvStore::in_memory();
    let mut write = new_task(9, 9, None);
    let id = write.task.id;
    let mut ops = vec![
        (
            super::keys::event(&id, 1),
            Some(super::codec::encode_event(&write.events[0].1)),
        ),
        (super::keys::created(9, &id), Some(vec![])),
        (super::keys::with_id(super::keys::ACTIVE, &id), Some(vec![])),
    ];
    churn(&mut write, 3);
    for (seq, event) in &write.events {
        ops.push((
            super::keys::event(&id, *seq),
            Some(super::codec::encode_event(event)),
        ));
    }
    ops.push((
        super::keys::with_id(super::keys::TASK, &id),
        Some(super::codec::encode_task(&write.task)),
    ));
    store.backend().apply(ops).unwrap();
    assert_eq!(store.task(&id).unwrap(), Some(Task::clone(&write.task)));
    assert_eq!(store.active().unwrap(), vec![Task::clone(&write.task)]);
    assert!(
        store
            .backend()
            .scan(b"a", b"b", false, 1)
            .unwrap()
            .is_empty(),
        "the `a` key folded into `c`"
    );
    assert_eq!(
        store.backend().get(&super::keys::created(9, &id)).unwrap(),
        Some(vec![]),
        "marked to resume"
    );
    assert_eq!(
        store.active().unwrap(),
        vec![Task::clone(&write.task)],
        "and resumed again at the next start"
    );

    churn(&mut write, 2);
    store.commit(std::slice::from_ref(&write)).unwrap();
    assert_eq!(write.task.seq, 6);
    assert_eq!(
        store.task(&id).unwrap(),
        Some(Task::clone(&write.task)),
        "old snapshot + new events"
    );
    assert_eq!(store.events(&id).unwrap().len(), 6);
}

#[test]
fn an_event_that_does_not_follow_is_reported_not_skipped() {
    let store = KvStore::in_memory();
    let mut write = new_task(8, 8, None);
    let id = write.task.id;
    store.commit(std::slice::from_ref(&write)).unwrap();
    let mut finished = write.clone();
    finish(&mut finished);
    // One commit per event, so each is its own entry (one commit's events form one run).
    for event in &finished.events[..2] {
        write.events = vec![event.clone()];
        machine::apply(Arc::make_mut(&mut write.task), &event.1).unwrap();
        store.commit(std::slice::from_ref(&write)).unwrap();
    }
    assert!(!write.task.is_settled());
    // Drop the step's request: the prediction it created no longer follows.
    store
        .backend()
        .apply(vec![(super::keys::event(&id, 2), None)])
        .unwrap();
    assert!(matches!(
        store.task(&id),
        Err(StoreError::Inconsistent { .. })
    ));

    // A sealed record whose second event does not follow its first.
    let created = new_task(8, 8, None).events[0].1.clone();
    let events = vec![created.clone(), created];
    let record = super::codec::encode_sealed(1, &events);
    store
        .backend()
        .apply(vec![(
            super::keys::with_id(super::keys::SEALED, &id),
            Some(record),
        )])
        .unwrap();
    let read = store.task(&id);
    assert!(
        matches!(read, Err(StoreError::Inconsistent { .. })),
        "{read:?}"
    );
}

/// A backend whose scans miss one entry in the middle, as a read racing a commit in sled
/// can: `tears` times, then never again.
struct Torn {
    inner: MemoryBackend,
    tears: std::sync::atomic::AtomicU32,
}

impl Backend for Torn {
    fn apply(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        self.inner.apply(ops)
    }
    fn apply_guarded(&self, groups: Vec<super::Guarded>) -> Result<usize, StoreError> {
        self.inner.apply_guarded(groups)
    }
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }
    fn scan(
        &self,
        from: &[u8],
        to: &[u8],
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        let mut entries = self.inner.scan(from, to, reverse, limit)?;
        let tear = |n: u32| n.checked_sub(1);
        if entries.len() > 2 && self.tears.fetch_update(SeqCst, SeqCst, tear).is_ok() {
            entries.remove(1);
        }
        Ok(entries)
    }
}

use std::sync::atomic::Ordering::SeqCst;

#[test]
fn a_read_that_misses_an_event_reads_again_and_a_lasting_gap_is_an_error() {
    let mut write = new_task(10, 10, None);
    finish(&mut write);
    let mut all = new_task(10, 10, None);
    all.events.extend(write.events.clone());
    for (tears, expect_ok) in [(1, true), (2, true), (3, false)] {
        let store = KvStore::new(
            Torn {
                inner: MemoryBackend::default(),
                tears: 0.into(),
            },
            Torn {
                inner: MemoryBackend::default(),
                tears: 0.into(),
            },
        );
        // One entry per event (one commit each), so a torn scan can miss one in the middle.
        for event in &all.events {
            store
                .commit(&[TaskWrite {
                    task: all.task.clone(),
                    events: vec![event.clone()],
                }])
                .unwrap();
        }
        store.backend().tears.store(tears, SeqCst);
        match store.task(&write.task.id) {
            Ok(task) if expect_ok => {
                assert_eq!(task, Some(Task::clone(&write.task)), "{tears} torn reads")
            }
            Err(StoreError::Inconsistent { .. }) if !expect_ok => {}
            other => panic!("{tears} torn reads: {other:?}"),
        }
        store.backend().tears.store(tears, SeqCst);
        match store.events(&write.task.id) {
            Ok(events) if expect_ok => assert_eq!(events, all.events, "{tears} torn reads"),
            Err(StoreError::Inconsistent { .. }) if !expect_ok => {}
            other => panic!("{tears} torn reads of the events: {other:?}"),
        }
    }
}

#[test]
fn a_sweep_deletes_only_settled_tasks_that_ended_before_the_cutoff() {
    for (store, _dir) in stores() {
        let mut old = new_task(1, 100, Some("old-key"));
        store.commit(&[old.clone()]).unwrap();
        finish(&mut old); // ends at 12
        store.commit(&[old.clone()]).unwrap();
        let running = new_task(2, 101, None);
        store.commit(std::slice::from_ref(&running)).unwrap();
        let mut recent = new_task(3, 102, None);
        store.commit(&[recent.clone()]).unwrap();
        finish_at(&mut recent, 4_998);
        assert_eq!(recent.task.completed_at, Some(5_000));
        store.commit(&[recent.clone()]).unwrap();

        assert_eq!(store.sweep(1_000, 100).unwrap(), vec![old.task.id]);
        assert_eq!(store.task(&old.task.id).unwrap(), None);
        assert!(
            store.events(&old.task.id).unwrap().is_empty(),
            "its journal went too"
        );
        assert_eq!(store.task_for_idempotency_key("old-key").unwrap(), None);
        assert_eq!(
            store.owned_predictions(&["pred-x"], 0, i64::MAX).unwrap(),
            ["pred-x"],
            "only the old task's claims went"
        );
        assert!(
            store.task(&running.task.id).unwrap().is_some(),
            "unfinished tasks stay"
        );
        assert!(
            store.task(&recent.task.id).unwrap().is_some(),
            "recent ones stay"
        );
        let listed = store
            .list(&ListQuery {
                limit: 10,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(listed.tasks.len(), 2);
        assert!(store.sweep(1_000, 100).unwrap().is_empty());
        assert_eq!(store.sweep(10_000, 100).unwrap(), vec![recent.task.id]);
    }
}

/// Owners journaled by versions before the time-ordered index (`p` keys) are found whatever
/// the window; the time-ordered index pages through long windows and ends at their end.
#[test]
fn prediction_owners_are_found_in_both_indexes() {
    let store = KvStore::in_memory();
    let mut old = new_task(4, 4, None);
    finish(&mut old);
    let id = old.task.id;
    let mut ops = vec![(
        super::keys::with_text(super::keys::PREDICTION, "pred-old"),
        Some(id.0.to_vec()),
    )];
    for n in 0..2_500i64 {
        let owner = TaskId([(n % 200) as u8; 16]);
        ops.push((
            super::keys::owner(1_000 + n, &format!("pred-{n}")),
            Some(owner.0.to_vec()),
        ));
    }
    store.backend().apply(ops).unwrap();
    assert_eq!(
        store
            .owned_predictions(&["pred-old"], i64::MAX, i64::MAX)
            .unwrap(),
        ["pred-old"]
    );
    let mut found = store
        .owned_predictions(&["pred-2499", "pred-3", "pred-2500"], 0, i64::MAX)
        .unwrap();
    found.sort();
    assert_eq!(found, ["pred-2499", "pred-3"]);
    assert_eq!(
        store
            .owned_predictions(&["pred-2499", "pred-3"], 1_003, 3_000)
            .unwrap(),
        ["pred-3"],
        "journaled at 1003: inside; at 3499: past the end"
    );
    assert!(store
        .owned_predictions(&["pred-3"], 1_004, 3_000)
        .unwrap()
        .is_empty());
    assert!(
        store
            .owned_predictions(&["pred-2499"], 0, 3_498)
            .unwrap()
            .is_empty(),
        "journaled at 3499: past the end"
    );
}

/// A commit's events are one entry, keyed by the last; entries written one event each (as
/// before runs) read in the same journal, and a read from inside a run starts where asked.
#[test]
fn a_commits_events_are_one_entry_and_read_back_from_any_sequence() {
    let store = KvStore::in_memory();
    let mut write = new_task(11, 11, None);
    let id = write.task.id;
    store.commit(std::slice::from_ref(&write)).unwrap();
    let mut all = write.events.clone();
    finish(&mut write);
    all.extend(write.events.clone());
    store.commit(std::slice::from_ref(&write)).unwrap();
    let prefix = super::keys::with_id(super::keys::EVENT, &id);
    let keys: Vec<Vec<u8>> = store
        .backend()
        .scan(&prefix, &super::keys::prefix_end(&prefix), false, 10)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        keys,
        vec![super::keys::event(&id, 1), super::keys::event(&id, 4)],
        "the start's event, then one run of three"
    );
    assert_eq!(store.events(&id).unwrap(), all);
    for from in 1..=5 {
        let read = super::archive::journal(store.backend(), store.archive(), &id, from).unwrap();
        assert_eq!(
            read,
            all[(from as usize - 1).min(all.len())..].to_vec(),
            "from {from}"
        );
    }
    assert_eq!(store.task(&id).unwrap(), Some(Task::clone(&write.task)));
    // A run that claims more events than its sequence number allows is damage, not data.
    let run = super::codec::encode_event_run(&[&all[0].1, &all[1].1]);
    store
        .backend()
        .apply(vec![(super::keys::event(&id, 1), Some(run))])
        .unwrap();
    assert!(matches!(
        store.events(&id),
        Err(StoreError::Inconsistent { .. })
    ));
}

/// Replaces the write's events with `events`, applied in order.
fn then(write: &mut TaskWrite, events: Vec<Event>) {
    write.events.clear();
    for event in events {
        machine::apply(Arc::make_mut(&mut write.task), &event).unwrap();
        write.events.push((write.task.seq, event));
    }
}

/// A task canceled while its prediction runs has a cancel still to send: recovery must
/// resume it until that cancel settles, and a sweep must leave it.
#[test]
fn a_canceled_task_stays_active_until_its_cancel_settles() {
    for (store, _dir) in stores() {
        let mut write = new_task(12, 100, None);
        store.commit(std::slice::from_ref(&write)).unwrap();
        then(
            &mut write,
            vec![
                Event::StepRequested {
                    step: 1,
                    attempt: 1,
                    input: Json("{}".into()),
                    at: 10,
                },
                Event::PredictionCreated {
                    step: 1,
                    attempt: 1,
                    prediction_id: "pred-c".into(),
                    at: 11,
                },
                Event::TaskCanceled {
                    reason: "asked".into(),
                    at: 12,
                },
            ],
        );
        store.commit(std::slice::from_ref(&write)).unwrap();
        assert_eq!(write.task.status, TaskStatus::Canceled);
        assert!(!write.task.is_settled());
        assert_eq!(store.active().unwrap(), vec![Task::clone(&write.task)]);
        assert!(store.sweep(1_000, 10).unwrap().is_empty());

        then(&mut write, vec![Event::CancelSettled { step: 1, at: 13 }]);
        store.commit(std::slice::from_ref(&write)).unwrap();
        assert!(store.active().unwrap().is_empty());
        assert_eq!(store.sweep(1_000, 10).unwrap(), vec![write.task.id]);
    }
}

/// A backend that deletes every key it holds at its first scan of events once armed: a
/// sweep (or a move) landing between a read's checkpoint and the events after it.
struct SweptMidRead {
    inner: MemoryBackend,
    armed: std::sync::atomic::AtomicBool,
}

impl Backend for SweptMidRead {
    fn apply(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        self.inner.apply(ops)
    }
    fn apply_guarded(&self, groups: Vec<super::Guarded>) -> Result<usize, StoreError> {
        self.inner.apply_guarded(groups)
    }
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }
    fn scan(
        &self,
        from: &[u8],
        to: &[u8],
        reverse: bool,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        if from.first() == Some(&super::keys::EVENT) && self.armed.swap(false, SeqCst) {
            let every = self.inner.scan(&[], &[0xff; 40], false, usize::MAX)?;
            let deletes = every.into_iter().map(|(key, _)| (key, None)).collect();
            self.inner.apply(deletes)?;
        }
        self.inner.scan(from, to, reverse, limit)
    }
}

#[test]
fn a_task_swept_between_its_checkpoint_and_its_events_reads_as_gone_not_older() {
    use super::kv::CHECKPOINT_EVERY;
    let store = KvStore::new(
        SweptMidRead {
            inner: MemoryBackend::default(),
            armed: false.into(),
        },
        SweptMidRead {
            inner: MemoryBackend::default(),
            armed: false.into(),
        },
    );
    let mut write = new_task(7, 7, None);
    store.commit(std::slice::from_ref(&write)).unwrap();
    churn(&mut write, CHECKPOINT_EVERY as usize + 3);
    store.commit(std::slice::from_ref(&write)).unwrap();
    assert_eq!(
        store.task(&write.task.id).unwrap(),
        Some(Task::clone(&write.task)),
        "the checkpoint and the events after it"
    );
    store.backend().armed.store(true, SeqCst);
    assert_eq!(
        store.task(&write.task.id).unwrap(),
        None,
        "the checkpoint alone is an older state than the task ever read before"
    );
}
