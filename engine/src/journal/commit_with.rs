//! `CommitWith`: a `Store` whose commits go through a function of the caller's, every other
//! call straight to the store inside. Tests use it for slow disks, held commits and failures
//! at chosen moments, without writing out the whole trait each time.

use super::{ListPage, ListQuery, Store, StoreError, TaskWrite};
use crate::event::Event;
use crate::model::{Millis, Task, TaskId};
use std::sync::Arc;

pub struct CommitWith<S, F> {
    inner: S,
    commit: F,
}

impl<S, F> CommitWith<S, F>
where
    S: Store,
    F: Fn(&S, &[TaskWrite]) -> Result<(), StoreError> + Send + Sync + 'static,
{
    /// `commit(inner, group)` stands for `inner.commit(group)`; it decides whether, when
    /// and with what outcome that happens.
    pub fn new(inner: S, commit: F) -> Self {
        CommitWith { inner, commit }
    }
}

impl<S, F> Store for CommitWith<S, F>
where
    S: Store,
    F: Fn(&S, &[TaskWrite]) -> Result<(), StoreError> + Send + Sync + 'static,
{
    fn commit(&self, group: &[TaskWrite]) -> Result<(), StoreError> {
        (self.commit)(&self.inner, group)
    }
    fn task(&self, id: &TaskId) -> Result<Option<Task>, StoreError> {
        self.inner.task(id)
    }
    fn list(&self, query: &ListQuery) -> Result<ListPage, StoreError> {
        self.inner.list(query)
    }
    fn active(&self) -> Result<Vec<Task>, StoreError> {
        self.inner.active()
    }
    fn task_for_idempotency_key(&self, key: &str) -> Result<Option<TaskId>, StoreError> {
        self.inner.task_for_idempotency_key(key)
    }
    fn owned_predictions(
        &self,
        prediction_ids: &[&str],
        from: Millis,
        until: Millis,
    ) -> Result<Vec<String>, StoreError> {
        self.inner.owned_predictions(prediction_ids, from, until)
    }
    fn create_marks_since(&self, now: Millis) -> Result<Millis, StoreError> {
        self.inner.create_marks_since(now)
    }
    fn events(&self, id: &TaskId) -> Result<Vec<(u64, Event)>, StoreError> {
        self.inner.events(id)
    }
    fn move_settled(&self, tasks: &[Arc<Task>]) -> Result<usize, StoreError> {
        self.inner.move_settled(tasks)
    }
    fn finish_moves(&self) -> Result<usize, StoreError> {
        self.inner.finish_moves()
    }
    fn sweep(&self, cutoff: Millis, limit: usize) -> Result<Vec<TaskId>, StoreError> {
        self.inner.sweep(cutoff, limit)
    }
}
