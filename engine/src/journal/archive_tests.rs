//! Moving settled tasks to the archive: one sealed record there, nothing left in the journal,
//! the same task and history read back, a retried task moved again, reads that race a move,
//! and a move cut short that the next start finishes.

use crate::event::Event;
use crate::journal::{Backend, KvStore, MemoryBackend, Op, Store, StoreError, TaskWrite};
use crate::machine;
use crate::model::{Json, TaskId};
use std::sync::{Arc, Mutex};

fn created(seed: u8) -> TaskWrite {
    let event = Event::TaskCreated {
        workflow: "w".into(),
        params: Json("{}".into()),
        items: vec![Json(r#"{"garment":"g.png"}"#.into())],
        idempotency_key: Some(format!("key-{seed}")),
        at: 1,
    };
    let task = machine::create(TaskId([seed; 16]), &event).unwrap();
    TaskWrite { task, events: vec![(1, event)] }
}

/// The write's next events, applied to its task.
fn then(write: &mut TaskWrite, events: Vec<Event>) {
    write.events.clear();
    for event in events {
        machine::apply(&mut write.task, &event).unwrap();
        write.events.push((write.task.seq, event));
    }
}

fn request(attempt: u32) -> Event {
    Event::StepRequested { step: 1, attempt, input: Json(r#"{"garment":"g.png"}"#.into()), at: 2 }
}

fn made(attempt: u32, prediction_id: &str) -> Event {
    Event::PredictionCreated { step: 1, attempt, prediction_id: prediction_id.into(), at: 3 }
}

fn succeeded(prediction_id: &str) -> Event {
    Event::StepSucceeded { step: 1, prediction_id: prediction_id.into(), output: Json(r#""out.png""#.into()), at: 4 }
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
    then(&mut write, vec![request(1), made(1, "p1")]);
    history.extend(write.events.clone());
    store.commit(&[write.clone()]).unwrap();
    assert_eq!(tags_of(store.backend(), &id), "aceiq", "running: all in the journal");
    assert_eq!(tags_of(store.archive(), &id), "");

    then(&mut write, vec![Event::StepFailed { step: 1, prediction_id: Some("p1".into()), error: "nsfw".into(), canceled: false, at: 4 }]);
    history.extend(write.events.clone());
    store.commit(&[write.clone()]).unwrap();
    assert_eq!(tags_of(store.backend(), &id), "", "settled: nothing left in the journal");
    assert_eq!(tags_of(store.archive(), &id), "ciqs", "listing, idempotency, owner and sealed record");
    assert_eq!(store.task(&id).unwrap(), Some(write.task.clone()));
    assert_eq!(store.events(&id).unwrap(), history);
    assert!(store.active().unwrap().is_empty());
    assert_eq!(store.prediction_owner("p1", 0).unwrap(), Some(id), "claims move with the task");
    assert_eq!(store.task_for_idempotency_key("key-1").unwrap(), Some(id));
    assert_eq!(store.list(&Default::default()).unwrap().tasks, vec![write.task.clone()]);

    then(&mut write, vec![Event::TaskRetried { at: 5 }, request(2)]);
    history.extend(write.events.clone());
    store.commit(&[write.clone()]).unwrap();
    assert_eq!(tags_of(store.backend(), &id), "ae", "a retry appends to the journal after the sealed events");
    assert_eq!(store.task(&id).unwrap(), Some(write.task.clone()));
    assert_eq!(store.events(&id).unwrap(), history);
    assert_eq!(store.active().unwrap(), vec![write.task.clone()]);

    then(&mut write, vec![made(2, "p2"), succeeded("p2")]);
    history.extend(write.events.clone());
    store.commit(&[write.clone()]).unwrap();
    assert_eq!(tags_of(store.backend(), &id), "", "moved again, whole");
    assert_eq!(store.task(&id).unwrap(), Some(write.task.clone()));
    assert_eq!(store.events(&id).unwrap(), history);
    assert!(store.active().unwrap().is_empty());
    assert_eq!(store.prediction_owner("p2", 0).unwrap(), Some(id));
    assert_eq!(store.list(&Default::default()).unwrap().tasks.len(), 1, "listed once");
}

#[test]
fn a_settled_task_moves_to_the_archive_and_a_retried_one_moves_again() {
    retried_task_round_trip(KvStore::in_memory());
    let dir = tempfile::tempdir().unwrap();
    retried_task_round_trip(KvStore::open(dir.path(), 1 << 20).unwrap());
}

/// A backend that lets a number of `apply` calls through, then holds the next one back in a
/// queue shared with another backend; the journal's next scan runs the queue, before or
/// after it reads: as a move can land, in sled, in the middle of a read.
#[derive(Clone, Default)]
struct Deferring {
    inner: Arc<MemoryBackend>,
    pass_then_hold: Arc<Mutex<Option<usize>>>,
    queue: Arc<Mutex<Vec<(Arc<MemoryBackend>, Vec<Op>)>>>,
    /// `Some(true)`: the scan runs the queue before reading; `Some(false)`: after.
    runs_queue: Option<bool>,
}

impl Deferring {
    fn run_queue(&self) -> Result<(), StoreError> {
        let held: Vec<_> = self.queue.lock().unwrap().drain(..).collect();
        held.into_iter().try_for_each(|(backend, ops)| backend.apply(ops))
    }
}

impl Backend for Deferring {
    fn apply(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        let mut plan = self.pass_then_hold.lock().unwrap();
        match *plan {
            Some(0) => {
                *plan = None;
                self.queue.lock().unwrap().push((self.inner.clone(), ops));
                Ok(())
            }
            Some(n) => {
                *plan = Some(n - 1);
                self.inner.apply(ops)
            }
            None => self.inner.apply(ops),
        }
    }
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }
    fn scan(&self, from: &[u8], to: &[u8], reverse: bool, limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        if self.runs_queue == Some(true) {
            self.run_queue()?;
        }
        let entries = self.inner.scan(from, to, reverse, limit)?;
        if self.runs_queue == Some(false) {
            self.run_queue()?;
        }
        Ok(entries)
    }
}

/// Commits a task to its settling write with the move held back; returns the store, the
/// settled task and its history.
fn settled_with_move_held(runs_queue_before_scan: bool) -> (KvStore<Deferring>, crate::model::Task, Vec<(u64, Event)>) {
    let queue = Arc::new(Mutex::new(vec![]));
    let journal = Deferring { queue: queue.clone(), runs_queue: Some(runs_queue_before_scan), ..Default::default() };
    let archive = Deferring { queue: queue.clone(), ..Default::default() };
    let store = KvStore::new(journal.clone(), archive.clone());
    let mut write = created(2);
    let mut history = write.events.clone();
    store.commit(&[write.clone()]).unwrap();
    then(&mut write, vec![request(1), made(1, "p")]);
    history.extend(write.events.clone());
    store.commit(&[write.clone()]).unwrap();
    then(&mut write, vec![succeeded("p")]);
    history.extend(write.events.clone());
    // The group's journal batch goes through; the archive batch and the journal's deletes
    // that make up the move are held.
    *journal.pass_then_hold.lock().unwrap() = Some(1);
    *archive.pass_then_hold.lock().unwrap() = Some(0);
    store.commit(&[write.clone()]).unwrap();
    assert_eq!(queue.lock().unwrap().len(), 2, "the move is held");
    (store, write.task, history)
}

#[test]
fn a_read_that_races_the_move_sees_the_whole_task() {
    // The move lands between the journal scan and the archive read: the scan found nothing.
    let (store, task, history) = settled_with_move_held(true);
    assert_eq!(store.task(&task.id).unwrap(), Some(task.clone()));
    assert_eq!(store.events(&task.id).unwrap(), history);

    // The move lands after the scan saw the loose events: the record has them too, once.
    let (store, task, history) = settled_with_move_held(false);
    assert_eq!(store.events(&task.id).unwrap(), history);
    assert_eq!(tags_of(store.backend(), &task.id), "", "the move has landed");
    assert_eq!(store.task(&task.id).unwrap(), Some(task));
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
    store.commit(&[write.clone()]).expect("the commit is durable in the journal; the move is housekeeping");
    assert_eq!(store.task(&id).unwrap(), Some(write.task.clone()));
    assert!(store.active().unwrap().is_empty(), "settled: nothing to resume");
    assert_eq!(tags_of(store.backend(), &id), "aceiq", "still all in the journal");

    store.archive().fail_writes(false);
    assert_eq!(store.finish_moves().unwrap(), 1);
    assert_eq!(tags_of(store.backend(), &id), "");
    assert_eq!(tags_of(store.archive(), &id), "ciqs");
    assert_eq!(store.task(&id).unwrap(), Some(write.task.clone()));
    assert_eq!(store.finish_moves().unwrap(), 0, "nothing left to move");
}
