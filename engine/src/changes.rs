//! Live task changes for streams and long polls: one broadcast channel per task that someone
//! is watching, created on the first subscription, fed by the runtime once per committed
//! change of that task. Tasks nobody watches cost a map lookup per commit; watchers never
//! poll storage.

use crate::model::{Task, TaskId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Changes a slow watcher may fall behind by before it must re-read the task.
const BACKLOG: usize = 32;

/// One committed change of a task: the events it journaled and the task after them.
#[derive(Debug)]
pub struct TaskChange {
    /// The last journal sequence number of the change (the task's `seq`).
    pub seq: u64,
    /// The kinds of the events in the change, in order.
    pub kinds: Vec<&'static str>,
    pub task: Task,
}

#[derive(Clone, Default)]
pub struct Changes {
    channels: Arc<Mutex<HashMap<TaskId, broadcast::Sender<Arc<TaskChange>>>>>,
}

impl Changes {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<TaskId, broadcast::Sender<Arc<TaskChange>>>> {
        // Only map operations run under this lock; a poisoned guard still holds a whole map.
        self.channels.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes of `id` committed from now on. Subscribe before reading the task, so no change
    /// falls between the read and the subscription.
    pub fn subscribe(&self, id: TaskId) -> Watch {
        let receiver = self
            .lock()
            .entry(id)
            .or_insert_with(|| broadcast::channel(BACKLOG).0)
            .subscribe();
        Watch {
            receiver,
            id,
            changes: self.clone(),
        }
    }

    /// True when someone watches `id` (so the runtime builds a change only then).
    pub fn is_watched(&self, id: &TaskId) -> bool {
        self.lock().contains_key(id)
    }

    /// Sends a committed change to the task's watchers; forgets channels nobody listens to.
    pub fn publish(&self, change: TaskChange) {
        let id = change.task.id;
        let settled = change.task.is_settled();
        let mut channels = self.lock();
        let Some(sender) = channels.get(&id) else {
            return;
        };
        if sender.receiver_count() == 0 || sender.send(Arc::new(change)).is_err() || settled {
            channels.remove(&id);
        }
    }

    /// Number of tasks being watched.
    pub fn watched(&self) -> usize {
        self.lock().len()
    }
}

/// A subscription to one task's changes; the last one dropped removes the channel.
pub struct Watch {
    receiver: broadcast::Receiver<Arc<TaskChange>>,
    id: TaskId,
    changes: Changes,
}

impl Watch {
    /// The next change; `Lagged` means some were missed (re-read the task), `Closed` that the
    /// task settled or the engine stopped.
    pub async fn next(&mut self) -> Result<Arc<TaskChange>, broadcast::error::RecvError> {
        self.receiver.recv().await
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut channels = self.changes.lock();
        if channels
            .get(&self.id)
            .is_some_and(|sender| sender.receiver_count() <= 1)
        {
            channels.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::model::Json;

    fn task(seq: u64, finished: bool) -> Task {
        let created = Event::TaskCreated {
            workflow: "w".into(),
            params: Json("{}".into()),
            items: vec![Json("{}".into())],
            idempotency_key: None,
            at: 1,
        };
        let mut task = crate::machine::create(TaskId([3; 16]), &created).unwrap();
        task.seq = seq;
        if finished {
            task.status = crate::model::TaskStatus::Succeeded;
        }
        task
    }

    #[tokio::test]
    async fn watchers_get_each_change_and_the_channel_goes_with_the_last_watcher() {
        let changes = Changes::default();
        let id = TaskId([3; 16]);
        changes.publish(TaskChange {
            seq: 1,
            kinds: vec![],
            task: task(1, false),
        });
        let mut a = changes.subscribe(id);
        let mut b = changes.subscribe(id);
        assert!(changes.is_watched(&id));
        changes.publish(TaskChange {
            seq: 2,
            kinds: vec!["step_requested"],
            task: task(2, false),
        });
        assert_eq!(a.next().await.unwrap().seq, 2);
        assert_eq!(b.next().await.unwrap().kinds, vec!["step_requested"]);
        drop(a);
        assert_eq!(changes.watched(), 1);
        drop(b);
        assert_eq!(changes.watched(), 0);
    }

    #[tokio::test]
    async fn a_settled_task_closes_its_channel_after_the_last_change() {
        let changes = Changes::default();
        let mut watch = changes.subscribe(TaskId([3; 16]));
        changes.publish(TaskChange {
            seq: 5,
            kinds: vec![],
            task: task(5, true),
        });
        assert_eq!(watch.next().await.unwrap().seq, 5);
        assert!(matches!(
            watch.next().await,
            Err(broadcast::error::RecvError::Closed)
        ));
        assert_eq!(changes.watched(), 0);
    }
}
