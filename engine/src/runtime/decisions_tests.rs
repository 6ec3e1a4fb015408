//! The runtime's decisions, driven by hand with a fake executor: messages in, commits run on
//! this thread, effects out. No HTTP and no loop; a tokio context is entered only because the
//! timer wheel (`tokio_util::time::DelayQueue`) reads tokio's clock.

use super::effect::Ensured;
use super::effect::{Effect, Executor};
use super::*;
use crate::config::{LimitsConfig, ReplicateConfig, WorkflowConfig};
use crate::journal::KvStore;
use crate::replicate::ReplicateClient;
use serde_json::json;
use std::sync::Mutex;

/// Records every effect instead of running it.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Effect>>>);

impl Executor for Recorder {
    fn execute(&mut self, effect: Effect) {
        self.0
            .lock()
            .expect("no test thread panics holding it")
            .push(effect);
    }
}

struct Rig {
    runtime: Runtime,
    effects: Recorder,
    tokio: tokio::runtime::Runtime,
}

const TRYON: &str = r#"
    model = "cuuupid/idm-vton"
    max_items = 3
    step_retries = 1
    [input]
    human_img = "{{previous.output}}"
    garm_img = "{{item.garment}}"
    [first]
    human_img = "{{params.person}}"
"#;

impl Rig {
    fn new(max_in_flight: Option<usize>, keep: bool) -> Rig {
        Rig::with_workflow("tryon", TRYON, max_in_flight, keep)
    }

    /// A runtime with one workflow, `name`, configured by `toml`.
    fn with_workflow(name: &str, toml: &str, max_in_flight: Option<usize>, keep: bool) -> Rig {
        let tokio = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime builds");
        let _context = tokio.enter();
        let config: WorkflowConfig = toml::from_str(toml).expect("valid workflow");
        let workflow = Workflow::compile(name, &config, LimitsConfig::default())
            .expect("the workflow compiles");
        let effects = Recorder::default();
        let replicate = ReplicateConfig {
            api_base: "http://127.0.0.1:9".into(),
            ..ReplicateConfig::default()
        };
        let keeper = keep.then(|| {
            let dir = std::env::temp_dir().join("stepwise-decisions-never-written");
            crate::outputs::Keeper::new(dir, "http://127.0.0.1:9", 1 << 20)
                .expect("the download client builds")
        });
        let runtime = Runtime::new(Parts {
            store: Arc::new(KvStore::in_memory()),
            client: ReplicateClient::new(&replicate).expect("the client builds"),
            workflows: Arc::new(HashMap::from([(name.to_owned(), workflow)])),
            policy: Policy {
                poll_initial: Duration::from_secs(1),
                poll_max: Duration::from_secs(10),
                retry_base: Duration::from_millis(500),
                retry_max: Duration::from_secs(30),
                safety_poll: None,
                max_creates_out: 256,
                create_reach: Duration::from_secs(35),
            },
            max_in_flight,
            retention: Duration::from_secs(3600),
            keeper,
            webhook_base_url: None,
            channel: mpsc::channel(16),
            committer: Committer::start().expect("the commit thread starts"),
            executor: Some(Box::new(effects.clone())),
        });
        Rig {
            runtime,
            effects,
            tokio,
        }
    }

    /// Starts a task with one item per garment and commits it; returns its id.
    fn start(&mut self, garments: &[&str]) -> TaskId {
        let _context = self.tokio.enter();
        let request = StartRequest {
            workflow: "tryon".into(),
            params: json!({"person": "me.png"}),
            items: garments.iter().map(|g| json!({"garment": g})).collect(),
            idempotency_key: None,
        };
        let first = json!({"human_img": "me.png", "garm_img": garments[0]});
        let (reply, answer) = oneshot::channel();
        let start = PreparedStart::new(request, Some(first));
        self.runtime.handle(Msg::Start { start, reply });
        self.runtime.commit_now();
        let started = answer.blocking_recv().expect("answered").expect("started");
        started.task.id
    }

    /// Hands the runtime a message, then commits what it recorded.
    fn send(&mut self, msg: Msg) {
        let _context = self.tokio.enter();
        self.runtime.handle(msg);
        self.runtime.commit_now();
    }

    /// A timer of `id` fell due.
    /// The timer of the task's running step fell due.
    fn due(&mut self, id: TaskId) {
        let _context = self.tokio.enter();
        let step = self.task(id).current_step().max(1);
        self.runtime.on_due(id, step);
        self.runtime.run_effects();
    }

    /// The effects decided since the last call.
    fn take(&mut self) -> Vec<Effect> {
        std::mem::take(&mut *self.effects.0.lock().expect("not poisoned"))
    }

    fn task(&self, id: TaskId) -> Task {
        match self.runtime.active.get(&id) {
            Some(active) => Task::clone(&active.task),
            None => self
                .runtime
                .store
                .task(&id)
                .unwrap()
                .expect("the task is stored"),
        }
    }
}

fn prediction(id: &str, status: &str, output: serde_json::Value) -> Prediction {
    serde_json::from_value(json!({"id": id, "status": status, "output": output}))
        .expect("a valid prediction")
}

fn created(id: TaskId, step: u32, prediction_id: &str) -> Msg {
    Msg::Created {
        id,
        step,
        attempt: 1,
        result: Ok(Ensured::Created(prediction(
            prediction_id,
            "starting",
            json!(null),
        ))),
        searched: false,
    }
}

#[test]
fn a_durable_start_asks_for_one_create_with_the_built_input() {
    let mut rig = Rig::new(None, false);
    let id = rig.start(&["shirt.png", "hat.png"]);
    let effects = rig.take();
    let [Effect::Create {
        id: task,
        step: 1,
        attempt: 1,
        call,
        ..
    }] = effects.as_slice()
    else {
        panic!("one create for step 1, got {effects:?}");
    };
    assert_eq!(*task, id);
    assert_eq!(
        call.input,
        json!({"human_img": "me.png", "garm_img": "shirt.png"})
    );
    assert_eq!(call.search, None, "nothing was sent before: no search");
    // While the create is out, a due timer asks for nothing more.
    rig.due(id);
    assert!(rig.take().is_empty());
}

#[test]
fn a_created_prediction_is_checked_with_growing_waits_and_feeds_the_next_step() {
    let mut rig = Rig::new(None, false);
    let id = rig.start(&["shirt.png", "hat.png"]);
    rig.take();
    rig.send(created(id, 1, "p1"));
    let schedule = rig.take();
    assert!(
        matches!(schedule.as_slice(), [Effect::Schedule { delay, .. }] if *delay == Duration::from_secs(1)),
        "the first check after poll_initial: {schedule:?}"
    );
    rig.due(id);
    let check = rig.take();
    assert!(
        matches!(check.as_slice(), [Effect::Check { prediction_id, step: 1, .. }] if prediction_id == "p1"),
        "{check:?}"
    );
    let running = prediction("p1", "processing", json!(null));
    rig.send(Msg::Checked {
        id,
        step: 1,
        prediction_id: "p1".into(),
        result: Ok(running),
    });
    let next = rig.take();
    assert!(
        matches!(next.as_slice(), [Effect::Schedule { delay, .. }] if *delay == Duration::from_secs(2)),
        "the wait doubles while it runs: {next:?}"
    );
    rig.due(id);
    rig.take();
    let done = prediction("p1", "succeeded", json!("https://out/1.png"));
    rig.send(Msg::Checked {
        id,
        step: 1,
        prediction_id: "p1".into(),
        result: Ok(done),
    });
    let effects = rig.take();
    let [Effect::Create { step: 2, call, .. }] = effects.as_slice() else {
        panic!("step 2 is created once step 1 is durable: {effects:?}");
    };
    assert_eq!(
        call.input,
        json!({"human_img": "https://out/1.png", "garm_img": "hat.png"})
    );
    assert_eq!(
        rig.task(id).steps[0].output.as_ref().map(Json::value),
        Some(json!("https://out/1.png"))
    );
}

#[test]
fn a_create_that_may_have_landed_is_searched_for_but_a_refused_one_is_not() {
    let mut rig = Rig::new(None, false);
    let id = rig.start(&["shirt.png"]);
    rig.take();
    let (reply, _answer) = oneshot::channel();
    rig.send(Msg::Sending {
        id,
        step: 1,
        attempt: 1,
        reply,
    });
    let refused = ClientError::Retryable {
        message: "429".into(),
        retry_after: Some(Duration::from_secs(7)),
        refused: true,
        rate_limited: true,
    };
    rig.send(Msg::Created {
        id,
        step: 1,
        attempt: 1,
        result: Err(refused),
        searched: false,
    });
    let backoff = rig.take();
    assert!(
        matches!(backoff.as_slice(), [Effect::Schedule { delay, .. }] if *delay >= Duration::from_secs(7)),
        "never sooner than Retry-After: {backoff:?}"
    );
    rig.due(id);
    let retry = rig.take();
    assert!(
        matches!(retry.as_slice(), [Effect::Create { call, .. }] if call.search.is_none()),
        "a refused create made nothing: {retry:?}"
    );
    let timeout = ClientError::Retryable {
        message: "timed out".into(),
        retry_after: None,
        refused: false,
        rate_limited: false,
    };
    rig.send(Msg::Created {
        id,
        step: 1,
        attempt: 1,
        result: Err(timeout),
        searched: false,
    });
    rig.take();
    rig.due(id);
    let effects = rig.take();
    let [Effect::Create { call, .. }] = effects.as_slice() else {
        panic!("{effects:?}");
    };
    let (from, until) = call
        .search
        .expect("a create that timed out is searched for");
    let sent = rig.task(id).steps[0].sent.expect("journaled as sent").first;
    assert!(from <= sent && sent <= until, "the window covers the send");
}

#[test]
fn canceling_a_running_task_cancels_its_prediction() {
    let mut rig = Rig::new(None, false);
    let id = rig.start(&["shirt.png"]);
    rig.take();
    rig.send(created(id, 1, "p1"));
    rig.take();
    let (reply, answer) = oneshot::channel();
    rig.send(Msg::Cancel { id, reply });
    let task = answer.blocking_recv().unwrap().expect("canceled");
    assert_eq!(task.status, crate::model::TaskStatus::Canceled);
    let effects = rig.take();
    assert!(
        matches!(effects.as_slice(), [Effect::Cancel { prediction_id: Some(p), .. }] if p == "p1"),
        "{effects:?}"
    );
}

#[test]
fn over_the_in_flight_cap_a_task_waits_and_is_admitted_when_one_ends() {
    let mut rig = Rig::new(Some(1), false);
    let first = rig.start(&["a.png"]);
    let second = rig.start(&["b.png"]);
    let effects = rig.take();
    assert!(
        matches!(effects.as_slice(), [Effect::Create { id, .. }] if *id == first),
        "only the first is admitted: {effects:?}"
    );
    rig.send(created(first, 1, "p1"));
    rig.take();
    let failed = prediction("p1", "failed", json!(null));
    // Two attempts (step_retries = 1): the first failure runs the step again.
    rig.send(Msg::Checked {
        id: first,
        step: 1,
        prediction_id: "p1".into(),
        result: Ok(failed.clone()),
    });
    let retry = rig.take();
    assert!(
        matches!(retry.as_slice(), [Effect::Create { id, attempt: 2, .. }] if *id == first),
        "{retry:?}"
    );
    rig.send(Msg::Created {
        id: first,
        step: 1,
        attempt: 2,
        result: Ok(Ensured::Created(prediction("p2", "starting", json!(null)))),
        searched: false,
    });
    rig.take();
    let failed = prediction("p2", "failed", json!(null));
    rig.send(Msg::Checked {
        id: first,
        step: 1,
        prediction_id: "p2".into(),
        result: Ok(failed),
    });
    assert_eq!(rig.task(first).status, crate::model::TaskStatus::Failed);
    let effects = rig.take();
    assert!(
        matches!(effects.as_slice(), [Effect::Create { id, attempt: 1, .. }] if *id == second),
        "the waiting task goes once the first ends: {effects:?}"
    );
}

#[test]
fn with_file_keeping_a_success_downloads_before_the_step_succeeds() {
    let mut rig = Rig::new(None, true);
    let id = rig.start(&["shirt.png"]);
    rig.take();
    rig.send(created(id, 1, "p1"));
    rig.take();
    let done = prediction("p1", "succeeded", json!("https://out/1.png"));
    rig.send(Msg::Checked {
        id,
        step: 1,
        prediction_id: "p1".into(),
        result: Ok(done.clone()),
    });
    let effects = rig.take();
    // The download, and (as for any running step) a later look at the task.
    assert!(
        matches!(
            effects.as_slice(),
            [Effect::Keep { step: 1, .. }, Effect::Schedule { .. }]
        ),
        "{effects:?}"
    );
    assert!(!rig.task(id).steps[0].status.is_terminal());
    rig.send(Msg::Kept {
        id,
        step: 1,
        prediction: done,
        result: Ok(json!("http://127.0.0.1:9/files/1.png")),
    });
    let task = rig.task(id);
    assert_eq!(task.status, crate::model::TaskStatus::Succeeded);
    assert!(task.steps[0].kept_output.is_some());
}

#[path = "pipeline_tests.rs"]
mod pipeline;
