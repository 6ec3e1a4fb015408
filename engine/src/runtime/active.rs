//! What the runtime keeps in memory per unfinished task (`Active`): the task, its events not
//! yet durable, and the call state of each step that runs or waits for a call (`Lane`), so
//! the branches of a parallel stage are called, backed off and timed independently.

use crate::event::Event;
use crate::model::{Task, TaskId};
use std::sync::Arc;
use std::time::Duration;

impl Active {
    /// Every event of the task is on disk: none waits for a commit, none is in the running one.
    pub(super) fn is_durable(&self) -> bool {
        self.unsaved.is_empty() && !self.committing
    }

    /// The call state of `step`, made on first use.
    pub(super) fn lane(&mut self, step: u32) -> &mut Lane {
        let at = match self.lanes.iter().position(|(s, _)| *s == step) {
            Some(at) => at,
            None => {
                let lane = Lane {
                    poll_delay: self.first_poll,
                    ..Lane::default()
                };
                self.lanes.push((step, lane));
                self.lanes.len() - 1
            }
        };
        &mut self.lanes[at].1
    }

    /// The call state of `step`, if it has one.
    pub(super) fn lane_of(&self, step: u32) -> Option<&Lane> {
        self.lanes
            .iter()
            .find(|(s, _)| *s == step)
            .map(|(_, lane)| lane)
    }

    /// Whether a call for `step` is out.
    pub(super) fn calling(&self, step: u32) -> bool {
        self.lane_of(step).is_some_and(|lane| lane.calling)
    }
}

/// What the runtime keeps in memory for one unfinished task.
pub(super) struct Active {
    /// Shared with the journal group being written and the start answers of its commit, so
    /// neither copies it; `record` copies it only while one of them still holds it.
    pub(super) task: Arc<Task>,
    /// Events applied since the last commit, with their sequence numbers.
    pub(super) unsaved: Vec<(u64, Event)>,
    /// Events of this task are in the commit that is running: not durable yet.
    pub(super) committing: bool,
    /// The call state of each step that runs or waits for a call: one in a chain, one per
    /// branch in a parallel stage. Dropped when the step needs nothing more (`after_commit`).
    pub(super) lanes: Vec<(u32, Lane)>,
    /// The first status check's delay in a new lane: the usual one, or none after a restart.
    pub(super) first_poll: Duration,
}

/// The calls of one step: one at a time, each answered by a message.
#[derive(Default)]
pub(super) struct Lane {
    /// A call for this step is running; its result will come back as a message.
    pub(super) calling: bool,
    /// A create for the current attempt may have reached Replicate without its answer being
    /// journaled: the latest time (ms) it could have made a prediction. Such a prediction is
    /// searched for (`finder`) before anything is created again.
    pub(super) unresolved: Option<i64>,
    /// Delay before the next status check; doubles up to `Policy::poll_max`.
    pub(super) poll_delay: Duration,
    /// Consecutive failed calls, for backoff.
    pub(super) failures: u32,
    /// Consecutive failed attempts to keep the step's output files.
    pub(super) keep_failures: u32,
    /// The step's attempt and status when its timer was set: a timer set before the step
    /// changed (a status check of an attempt that has since failed) is obsolete when the
    /// change needs a call now. (Not the task's `seq`: a sibling branch's change must not cut
    /// short this step's backoff.)
    pub(super) timer_for: Option<(u32, crate::model::StepStatus)>,
}

/// A step of a task: the key of the timer wheel and of the create gate's queue.
pub(crate) type StepKey = (TaskId, u32);

/// A task as the runtime keeps it; `first_poll`: the first status check's delay of its
/// steps (none after a restart: their predictions ran while nobody looked).
pub(super) fn new_active(task: Task, first_poll: Duration) -> Box<Active> {
    Box::new(Active {
        task: Arc::new(task),
        unsaved: vec![],
        committing: false,
        lanes: Vec::new(),
        first_poll,
    })
}
