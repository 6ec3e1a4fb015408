//! Moving settled tasks to the archive: one sealed record there, nothing left in the journal,
//! the same task and history read back, a retried task moved again, reads that race a move,
//! and a move cut short that the next start finishes.

use crate::event::Event;
use crate::journal::{Backend, KvStore, MemoryBackend, Op, Store, StoreError, TaskWrite};
use crate::machine;
use crate::model::{Json, Task, TaskId};
use std::sync::{Arc, Mutex};

fn created(seed: u8) -> TaskWrite {
    let event = Event::TaskCreated {
        workflow: "w".into(),
        params: Json("{}".into()),
        items: vec![Json(r#"{"garment":"g.png"}"#.into())],
        idempotency_key: Some(format!("key-{seed}")),
        at: 1,
    };
    // A time-ordered id, as the runtime makes: its first run rides in the `c` key.
    let mut id = [seed; 16];
    id[..6].copy_from_slice(&1u64.to_be_bytes()[2..]);
    let task = machine::create(TaskId(id), &event).unwrap();
    TaskWrite {
        task: Arc::new(task),
        events: vec![(1, event)],
    }
}

/// The write's next events, applied to its task.
fn then(write: &mut TaskWrite, events: Vec<Event>) {
    write.events.clear();
    for event in events {
        machine::apply(Arc::make_mut(&mut write.task), &event).unwrap();
        write.events.push((write.task.seq, event));
    }
}

/// The write's next events: applied to its task, added to `history`, committed.
fn commit_next<B: Backend>(
    store: &KvStore<B>,
    write: &mut TaskWrite,
    history: &mut Vec<(u64, Event)>,
    events: Vec<Event>,
) {
    then(write, events);
    history.extend(write.events.clone());
    store.commit(std::slice::from_ref(write)).unwrap();
}

fn request(attempt: u32) -> Event {
    Event::StepRequested {
        step: 1,
        attempt,
        input: Json(r#"{"garment":"g.png"}"#.into()),
        at: 2,
    }
}

fn made(attempt: u32, prediction_id: &str) -> Event {
    Event::PredictionCreated {
        step: 1,
        attempt,
        prediction_id: prediction_id.into(),
        at: 3,
    }
}

fn succeeded(prediction_id: &str) -> Event {
    Event::StepSucceeded {
        step: 1,
        prediction_id: prediction_id.into(),
        output: Json(r#""out.png""#.into()),
        at: 4,
    }
}

/// The keys a backend holds for task `id`, by tag, the task's own keys only.
fn tags_of<B: Backend>(backend: &B, id: &TaskId) -> String {
    let all = backend.scan(&[0], &[0xff], false, usize::MAX).unwrap();
    let mut tags: Vec<char> = all
        .iter()
        .filter(|(key, value)| key.windows(16).any(|w| w == id.0) || value.as_slice() == id.0)
        .map(|(key, _)| key[0] as char)
        .collect();
    tags.dedup();
    tags.into_iter().collect()
}

fn retried_task_round_trip<B: Backend>(store: KvStore<B>) {
    let mut write = created(1);
    let id = write.task.id;
    let mut history = write.events.clone();
    store.commit(&[write.clone()]).unwrap();
    commit_next(
        &store,
        &mut write,
        &mut history,
        vec![request(1), made(1, "p1")],
    );
    assert_eq!(
        tags_of(store.backend(), &id),
        "ceiq",
        "running: all in the journal"
    );
    assert_eq!(tags_of(store.archive(), &id), "");

    commit_next(
        &store,
        &mut write,
        &mut history,
        vec![Event::StepFailed {
            step: 1,
            prediction_id: Some("p1".into()),
            error: "nsfw".into(),
            canceled: false,
            at: 4,
        }],
    );
    assert_eq!(
        tags_of(store.backend(), &id),
        "ceiq",
        "committed, not moved yet"
    );
    assert_eq!(store.task(&id).unwrap(), Some(Task::clone(&write.task)));
    assert!(
        store.active().unwrap().is_empty(),
        "settled: nothing to resume"
    );
    assert_eq!(
        store
            .move_settled(std::slice::from_ref(&write.task))
            .unwrap(),
        1
    );
    assert_eq!(
        tags_of(store.backend(), &id),
        "",
        "moved: nothing left in the journal"
    );
    assert_eq!(
        tags_of(store.archive(), &id),
        "ciqs",
        "listing, idempotency, owner and sealed record"
    );
    assert_eq!(store.task(&id).unwrap(), Some(Task::clone(&write.task)));
    assert_eq!(store.events(&id).unwrap(), history);
    assert!(store.active().unwrap().is_empty());
    assert_eq!(
        store.owned_predictions(&["p1"], 0, i64::MAX).unwrap(),
        ["p1"],
        "claims move with the task"
    );
    assert_eq!(store.task_for_idempotency_key("key-1").unwrap(), Some(id));
    assert_eq!(
        store.list(&Default::default()).unwrap().tasks,
        vec![Task::clone(&write.task)]
    );

    commit_next(
        &store,
        &mut write,
        &mut history,
        vec![Event::TaskRetried { at: 5 }, request(2)],
    );
    assert_eq!(
        tags_of(store.backend(), &id),
        "ce",
        "a retry appends to the journal after the sealed events"
    );
    assert_eq!(store.task(&id).unwrap(), Some(Task::clone(&write.task)));
    assert_eq!(store.events(&id).unwrap(), history);
    assert_eq!(store.active().unwrap(), vec![Task::clone(&write.task)]);

    commit_next(
        &store,
        &mut write,
        &mut history,
        vec![made(2, "p2"), succeeded("p2")],
    );
    assert_eq!(
        store
            .move_settled(std::slice::from_ref(&write.task))
            .unwrap(),
        1
    );
    assert_eq!(tags_of(store.backend(), &id), "", "moved again, whole");
    assert_eq!(store.task(&id).unwrap(), Some(Task::clone(&write.task)));
    assert_eq!(store.events(&id).unwrap(), history);
    assert!(store.active().unwrap().is_empty());
    assert_eq!(
        store.owned_predictions(&["p2"], 0, i64::MAX).unwrap(),
        ["p2"]
    );
    assert_eq!(
        store.list(&Default::default()).unwrap().tasks.len(),
        1,
        "listed once"
    );
}

#[test]
fn a_settled_task_moves_to_the_archive_and_a_retried_one_moves_again() {
    retried_task_round_trip(KvStore::in_memory());
    let dir = tempfile::tempdir().unwrap();
    retried_task_round_trip(KvStore::open(dir.path(), 1 << 20).unwrap());
}

/// A backend that runs a queued action in the middle of its next scan (before it reads or
/// after) or right after its next `apply`: as a commit or a move can land, in sled, in the
/// middle of another thread's read or move.
#[derive(Clone, Default)]
struct Interleaving {
    inner: Arc<MemoryBackend>,
    on_scan: Arc<Mutex<Option<(bool, Action)>>>,
    after_apply: Arc<Mutex<Option<Action>>>,
}

type Action = Box<dyn FnOnce() + Send>;

impl Interleaving {
    fn run(slot: &Mutex<Option<Action>>) {
        let action = slot.lock().unwrap().take();
        if let Some(action) = action {
            action();
        }
    }
}

impl Backend for Interleaving {
    fn apply(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        self.inner.apply(ops)?;
        Interleaving::run(&self.after_apply);
        Ok(())
    }
    fn apply_guarded(&self, groups: Vec<crate::journal::Guarded>) -> Result<usize, StoreError> {
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
        let queued = self.on_scan.lock().unwrap().take();
        let (before, action) = match queued {
            Some((before, action)) => (before, Some(action)),
            None => (false, None),
        };
        let mut action = action;
        if before {
            if let Some(action) = action.take() {
                action();
            }
        }
        let entries = self.inner.scan(from, to, reverse, limit)?;
        if let Some(action) = action {
            action();
        }
        Ok(entries)
    }
}

/// A store, a second handle on its data, its task's settling write and history.
type SettledNotMoved = (
    KvStore<Interleaving>,
    KvStore<Interleaving>,
    TaskWrite,
    Vec<(u64, Event)>,
);

/// A store over two `Interleaving` backends, a second handle on the same data (for the
/// actions), and a task committed up to its settling write, not moved yet, with its history.
fn settled_not_moved() -> SettledNotMoved {
    let (journal, archive) = (Interleaving::default(), Interleaving::default());
    let store = KvStore::new(journal.clone(), archive.clone());
    let other = KvStore::new(journal, archive);
    let mut write = created(2);
    let mut history = write.events.clone();
    store.commit(&[write.clone()]).unwrap();
    commit_next(
        &store,
        &mut write,
        &mut history,
        vec![request(1), made(1, "p")],
    );
    commit_next(
        &store,
        &mut write,
        &mut history,
        vec![Event::StepFailed {
            step: 1,
            prediction_id: Some("p".into()),
            error: "busy".into(),
            canceled: false,
            at: 4,
        }],
    );
    (store, other, write, history)
}

#[test]
fn a_read_that_races_the_move_sees_the_whole_task() {
    for moves_before_the_scan_reads in [true, false] {
        let (store, other, write, history) = settled_not_moved();
        let task = Task::clone(&write.task);
        // The whole move lands while a read scans the journal: before the scan reads (it
        // finds no loose event: the record must be read after) or after (it found them all,
        // and the record has them too: each is kept once).
        let settled = Arc::new(task.clone());
        let action: Action =
            Box::new(move || assert_eq!(other.move_settled(&[settled]).unwrap(), 1));
        *store.backend().on_scan.lock().unwrap() = Some((moves_before_the_scan_reads, action));
        assert_eq!(
            store.events(&task.id).unwrap(),
            history,
            "moved before the scan read: {moves_before_the_scan_reads}"
        );
        assert_eq!(tags_of(store.backend(), &task.id), "", "the move landed");
        assert_eq!(store.task(&task.id).unwrap(), Some(task));
    }
}

#[test]
fn a_task_retried_while_it_moves_keeps_its_journal_and_moves_whole_later() {
    let (store, other, mut write, mut history) = settled_not_moved();
    let id = write.task.id;
    let settled = Arc::new(Task::clone(&write.task));
    // The retry commits between the move's archive batch and its journal deletes.
    then(&mut write, vec![Event::TaskRetried { at: 5 }, request(2)]);
    history.extend(write.events.clone());
    let retry = write.clone();
    let action: Action = Box::new(move || other.commit(&[retry]).unwrap());
    *store.archive().after_apply.lock().unwrap() = Some(action);
    assert_eq!(
        store.move_settled(&[settled]).unwrap(),
        0,
        "the guard saw the retry"
    );
    assert_eq!(
        store.active().unwrap(),
        vec![Task::clone(&write.task)],
        "still resumable"
    );
    assert_eq!(store.task(&id).unwrap(), Some(Task::clone(&write.task)));
    assert_eq!(
        store.events(&id).unwrap(),
        history,
        "journal and record together, each event once"
    );

    commit_next(
        &store,
        &mut write,
        &mut history,
        vec![made(2, "p2"), succeeded("p2")],
    );
    assert_eq!(
        store
            .move_settled(std::slice::from_ref(&write.task))
            .unwrap(),
        1
    );
    assert_eq!(
        tags_of(store.backend(), &id),
        "",
        "the leftovers of the first move went too"
    );
    assert_eq!(store.events(&id).unwrap(), history);
    assert_eq!(
        store.task(&id).unwrap(),
        Some(Arc::unwrap_or_clone(write.task))
    );
}

#[test]
fn a_move_cut_short_reads_whole_and_the_next_start_finishes_it() {
    let journal = MemoryBackend::default();
    let archive = MemoryBackend::default();
    archive.fail_writes(true);
    let store = KvStore::new(journal, archive);
    let mut write = created(4);
    let id = write.task.id;
    store.commit(&[write.clone()]).unwrap();
    then(&mut write, vec![request(1), made(1, "p"), succeeded("p")]);
    store.commit(&[write.clone()]).unwrap();
    assert!(
        store
            .move_settled(std::slice::from_ref(&write.task))
            .is_err(),
        "the archive refuses the batch"
    );
    assert_eq!(store.task(&id).unwrap(), Some(Task::clone(&write.task)));
    assert!(
        store.active().unwrap().is_empty(),
        "settled: nothing to resume"
    );
    assert_eq!(
        tags_of(store.backend(), &id),
        "ceiq",
        "still all in the journal"
    );

    store.archive().fail_writes(false);
    assert_eq!(store.finish_moves().unwrap(), 1);
    assert_eq!(tags_of(store.backend(), &id), "");
    assert_eq!(tags_of(store.archive(), &id), "ciqs");
    assert_eq!(store.task(&id).unwrap(), Some(Task::clone(&write.task)));
    assert_eq!(store.finish_moves().unwrap(), 0, "nothing left to move");
}

/// A task whose sealed record would be too big stays in the journal, marked so that no start
/// resumes or moves it; a retry makes it a task to resume again.
#[test]
fn a_task_too_big_to_seal_stays_in_the_journal_marked_kept() {
    let store = KvStore::in_memory();
    let mut write = created(6);
    let id = write.task.id;
    store.commit(&[write.clone()]).unwrap();
    // Text that does not compress: the record is sealed compressed.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let noise: String = (0..70 << 10)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b'a' + (state % 26) as u8)
        })
        .collect();
    let big = Json(format!(r#""{noise}""#));
    let failed = Event::StepFailed {
        step: 1,
        prediction_id: Some("p".into()),
        error: "nsfw".into(),
        canceled: false,
        at: 4,
    };
    then(
        &mut write,
        vec![
            Event::StepRequested {
                step: 1,
                attempt: 1,
                input: big,
                at: 2,
            },
            made(1, "p"),
            failed,
        ],
    );
    store.commit(&[write.clone()]).unwrap();
    assert_eq!(
        store
            .move_settled(std::slice::from_ref(&write.task))
            .unwrap(),
        1
    );
    assert_eq!(
        tags_of(store.backend(), &id),
        "ceiq",
        "kept whole in the journal"
    );
    assert_eq!(tags_of(store.archive(), &id), "");
    let mark = store.backend().scan(b"c", b"d", false, 1).unwrap();
    assert_eq!(mark[0].1, b"k".to_vec(), "marked kept");
    assert!(store.active().unwrap().is_empty(), "nothing to resume");
    assert_eq!(store.finish_moves().unwrap(), 0, "nothing to move");
    assert_eq!(store.task(&id).unwrap(), Some(Task::clone(&write.task)));

    then(&mut write, vec![Event::TaskRetried { at: 5 }]);
    store.commit(&[write.clone()]).unwrap();
    assert_eq!(
        store.active().unwrap(),
        vec![Task::clone(&write.task)],
        "retried: resumed at the next start"
    );
}

/// A data dir of a version that marked tasks in `a` keys: a settled task whose move was due
/// there still moves at the next start.
#[test]
fn a_move_an_older_version_left_due_is_finished() {
    let store = KvStore::in_memory();
    let mut write = created(7);
    let id = write.task.id;
    store.commit(&[write.clone()]).unwrap();
    then(&mut write, vec![request(1), made(1, "p"), succeeded("p")]);
    store.commit(&[write.clone()]).unwrap();
    let older: Vec<Op> = vec![
        (crate::journal::keys::created(1, &id), Some(vec![])),
        (
            crate::journal::keys::with_id(b'a', &id),
            Some(b"m".to_vec()),
        ),
    ];
    store.backend().apply(older).unwrap();
    assert_eq!(
        tags_of(store.backend(), &id),
        "aceiq",
        "as an older version left it"
    );

    assert_eq!(store.finish_moves().unwrap(), 1);
    assert_eq!(tags_of(store.backend(), &id), "");
    assert_eq!(tags_of(store.archive(), &id), "ciqs");
    assert_eq!(store.task(&id).unwrap(), Some(Task::clone(&write.task)));
}

/// A start is one journal entry, the `c` key carrying the first run, until the task settles:
/// that commit writes the run to its `e` key and the bare mark, and the task reads back the
/// same at every step, after reopening, and from the archive.
#[test]
fn a_new_task_is_one_journal_entry_until_it_settles() {
    let dir = tempfile::tempdir().unwrap();
    let mut write = created(5);
    let id = write.task.id;
    let mut history = write.events.clone();
    {
        let store = KvStore::open(dir.path(), 1 << 20).unwrap();
        store.commit(&[write.clone()]).unwrap();
        assert_eq!(
            tags_of(store.backend(), &id),
            "ci",
            "the run in the `c` key, and the idempotency key"
        );
        assert_eq!(store.task(&id).unwrap().as_ref(), Some(&*write.task));
        commit_next(
            &store,
            &mut write,
            &mut history,
            vec![request(1), made(1, "p1")],
        );
        assert_eq!(
            tags_of(store.backend(), &id),
            "ceiq",
            "the next run is an `e` key; the first stays"
        );
    }
    let store = KvStore::open(dir.path(), 1 << 20).unwrap();
    assert_eq!(
        store.active().unwrap(),
        vec![Task::clone(&write.task)],
        "resumed after reopening"
    );
    assert_eq!(store.events(&id).unwrap(), history);
    commit_next(&store, &mut write, &mut history, vec![succeeded("p1")]);
    let journal_c = crate::journal::keys::created(1, &id);
    assert_eq!(
        store.backend().get(&journal_c).unwrap(),
        Some(b"m".to_vec()),
        "a bare mark once settled"
    );
    assert_eq!(
        store.events(&id).unwrap(),
        history,
        "the first run moved to its `e` key"
    );
    assert_eq!(store.move_settled(&[write.task.clone()]).unwrap(), 1);
    assert_eq!(
        tags_of(store.backend(), &id),
        "",
        "nothing left in the journal"
    );
    assert_eq!(
        store.events(&id).unwrap(),
        history,
        "read from the sealed record"
    );
    assert_eq!(store.task(&id).unwrap().as_ref(), Some(&*write.task));
}

/// A damaged first run in a `c` key is reported, not read as a task without a start.
#[test]
fn a_damaged_first_run_is_reported() {
    let store = KvStore::in_memory();
    let write = created(6);
    store.commit(std::slice::from_ref(&write)).unwrap();
    let key = crate::journal::keys::created(1, &write.task.id);
    let mut value = store.backend().get(&key).unwrap().unwrap();
    let last = value.len() - 1;
    value[last] ^= 0x40;
    store
        .backend()
        .apply(vec![(key.clone(), Some(value))])
        .unwrap();
    assert!(matches!(
        store.task(&write.task.id),
        Err(StoreError::Corrupt { .. })
    ));
    store
        .backend()
        .apply(vec![(key, Some(b"r12".to_vec()))])
        .unwrap();
    assert!(matches!(
        store.task(&write.task.id),
        Err(StoreError::Corrupt { .. })
    ));
}

/// The settling commit takes the first run out of the `c` key while a read scans the
/// journal: the read sees a gap (no `e` key yet, no run in `c` any more), reads again, and
/// gets the whole task.
#[test]
fn a_read_that_races_the_settling_commit_sees_the_whole_task() {
    let (journal, archive) = (Interleaving::default(), Interleaving::default());
    let store = KvStore::new(journal.clone(), archive.clone());
    let other = KvStore::new(journal, archive);
    let mut write = created(7);
    let id = write.task.id;
    let mut history = write.events.clone();
    store.commit(&[write.clone()]).unwrap();
    commit_next(
        &store,
        &mut write,
        &mut history,
        vec![request(1), made(1, "p")],
    );
    then(&mut write, vec![succeeded("p")]);
    history.extend(write.events.clone());
    let settling = write.clone();
    let action: Action = Box::new(move || other.commit(&[settling]).unwrap());
    *store.backend().on_scan.lock().unwrap() = Some((false, action));
    assert_eq!(store.events(&id).unwrap(), history);
    assert_eq!(store.task(&id).unwrap().as_ref(), Some(&*write.task));
}
