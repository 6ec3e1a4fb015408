//! Sealing a settled task: one record in place of its loose events, the same task and
//! history read back, a retried task sealed again, and reads that race a seal.

use crate::journal::{Backend, KvStore, Op};
use crate::journal::keys;
use crate::journal::{MemoryBackend, SledBackend, Store, StoreError, TaskWrite};
use crate::event::Event;
use crate::machine;
use crate::model::{Json, TaskId};

fn created(seed: u8) -> TaskWrite {
    let event = Event::TaskCreated {
        workflow: "w".into(),
        params: Json("{}".into()),
        items: vec![Json(r#"{"garment":"g.png"}"#.into())],
        idempotency_key: None,
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

fn loose_keys<B: Backend>(backend: &B, id: &TaskId) -> usize {
    let prefix = keys::with_id(keys::EVENT, id);
    backend.scan(&prefix, &keys::prefix_end(&prefix), false, usize::MAX).unwrap().len()
}

fn has_seal<B: Backend>(backend: &B, id: &TaskId) -> bool {
    backend.get(&keys::with_id(keys::SEALED, id)).unwrap().is_some()
}

fn retried_task_round_trip<B: Backend>(store: KvStore<B>) {
    let mut write = created(1);
    let id = write.task.id;
    let mut history = write.events.clone();
    store.commit(&[write.clone()]).unwrap();
    then(&mut write, vec![request(1), Event::PredictionCreated { step: 1, attempt: 1, prediction_id: "p1".into(), at: 3 }]);
    history.extend(write.events.clone());
    store.commit(&[write.clone()]).unwrap();
    assert_eq!((loose_keys(store.backend(), &id), has_seal(store.backend(), &id)), (3, false), "running: loose events");

    then(&mut write, vec![Event::StepFailed { step: 1, prediction_id: Some("p1".into()), error: "nsfw".into(), canceled: false, at: 4 }]);
    history.extend(write.events.clone());
    store.commit(&[write.clone()]).unwrap();
    assert_eq!((loose_keys(store.backend(), &id), has_seal(store.backend(), &id)), (0, true), "settled: one record");
    assert_eq!(store.task(&id).unwrap(), Some(write.task.clone()));
    assert_eq!(store.events(&id).unwrap(), history);
    assert!(store.active().unwrap().is_empty());
    assert_eq!(store.prediction_owner("p1", 0).unwrap(), Some(id), "claims outlive the seal");

    then(&mut write, vec![Event::TaskRetried { at: 5 }, request(2)]);
    history.extend(write.events.clone());
    store.commit(&[write.clone()]).unwrap();
    assert_eq!(loose_keys(store.backend(), &id), 2, "a retry appends after the sealed events");
    assert_eq!(store.task(&id).unwrap(), Some(write.task.clone()));
    assert_eq!(store.events(&id).unwrap(), history);
    assert_eq!(store.active().unwrap(), vec![write.task.clone()]);

    then(&mut write, vec![
        Event::PredictionCreated { step: 1, attempt: 2, prediction_id: "p2".into(), at: 6 },
        Event::StepSucceeded { step: 1, prediction_id: "p2".into(), output: Json(r#""out.png""#.into()), at: 7 },
    ]);
    history.extend(write.events.clone());
    store.commit(&[write.clone()]).unwrap();
    assert_eq!((loose_keys(store.backend(), &id), has_seal(store.backend(), &id)), (0, true), "sealed again, whole");
    assert_eq!(store.task(&id).unwrap(), Some(write.task.clone()));
    assert_eq!(store.events(&id).unwrap(), history);
    assert!(store.active().unwrap().is_empty());
}

#[test]
fn a_settled_task_is_one_record_and_a_retried_one_is_sealed_again() {
    retried_task_round_trip(KvStore::new(MemoryBackend::default()));
    let dir = tempfile::tempdir().unwrap();
    retried_task_round_trip(KvStore::new(SledBackend::open(dir.path(), 1 << 20).unwrap()));
}

/// A backend that can hold one batch back and apply it in the middle of the next read,
/// between its scan and what follows, as a concurrent commit can in sled.
#[derive(Default)]
struct SealsMidRead {
    inner: MemoryBackend,
    hold_next: std::sync::atomic::AtomicBool,
    held: std::sync::Mutex<Option<Vec<Op>>>,
}

impl Backend for SealsMidRead {
    fn apply(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        if self.hold_next.swap(false, std::sync::atomic::Ordering::SeqCst) {
            *self.held.lock().unwrap() = Some(ops);
            return Ok(());
        }
        self.inner.apply(ops)
    }
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }
    fn scan(&self, from: &[u8], to: &[u8], reverse: bool, limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        let entries = self.inner.scan(from, to, reverse, limit)?;
        if let Some(ops) = self.held.lock().unwrap().take() {
            self.inner.apply(ops)?;
        }
        Ok(entries)
    }
}

#[test]
fn a_read_that_races_the_seal_sees_the_whole_task() {
    let store = KvStore::new(SealsMidRead::default());
    let mut write = created(2);
    let id = write.task.id;
    let mut history = write.events.clone();
    store.commit(&[write.clone()]).unwrap();
    then(&mut write, vec![request(1), Event::PredictionCreated { step: 1, attempt: 1, prediction_id: "p".into(), at: 3 }]);
    history.extend(write.events.clone());
    store.commit(&[write.clone()]).unwrap();
    then(&mut write, vec![Event::StepSucceeded { step: 1, prediction_id: "p".into(), output: Json("1".into()), at: 4 }]);
    history.extend(write.events.clone());

    // The scan sees three loose events; the seal (deleting them) lands before the record is read.
    store.backend().hold_next.store(true, std::sync::atomic::Ordering::SeqCst);
    store.commit(&[write.clone()]).unwrap();
    assert_eq!(store.task(&id).unwrap(), Some(write.task.clone()));
    assert!(has_seal(store.backend(), &id) && loose_keys(store.backend(), &id) == 0);

    // Again for the history: loose events seen by the scan are not listed twice.
    let mut again = created(3);
    store.commit(&[again.clone()]).unwrap();
    then(&mut again, history[1..].iter().map(|(_, event)| event.clone()).collect());
    store.backend().hold_next.store(true, std::sync::atomic::Ordering::SeqCst);
    store.commit(&[TaskWrite { task: again.task.clone(), events: again.events.clone() }]).unwrap();
    assert_eq!(store.events(&again.task.id).unwrap(), history);
}
