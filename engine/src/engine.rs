//! The engine handle: what the HTTP server and the CLI use. `Engine::launch` opens the
//! journal, compiles the workflows and starts the runtime; reads go straight to the store.

use crate::config::EngineConfig;
use crate::journal::{KvStore, ListPage, ListQuery, Store, StoreError};
use crate::model::{Task, TaskId};
use crate::replicate::ReplicateClient;
use crate::runtime::{
    Committer, ControlError, Msg, Parts, Policy, PreparedStart, QueueView, Runtime, StartError,
    StartRequest, Started,
};
use crate::workflow::Workflow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Room for this many messages to the runtime before senders wait (backpressure).
const INBOX_CAPACITY: usize = 16_384;

/// Why the engine did not start: one variant per cause, each keeping the error behind it.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("cannot open the journal: {0}")]
    Store(#[from] StoreError),
    #[error("invalid workflow configuration: {}", .0.join("; "))]
    Workflow(Vec<String>),
    #[error("cannot build the Replicate HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("cannot build the HTTP client that downloads kept output files: {0}")]
    OutputsClient(#[source] reqwest::Error),
    #[error(
        "replicate.webhook_base_url is set but replicate.webhook_secret is not (fetch it with \
         ReplicateClient::webhook_secret)"
    )]
    MissingWebhookSecret,
    #[error("replicate.webhook_secret is invalid: {0}")]
    WebhookSecret(String),
    #[error("cannot start the journal commit thread: {0}")]
    CommitThread(#[source] std::io::Error),
    #[error(
        "outputs.keep is on but kept files have no public URL: set outputs.public_base_url \
         (or replicate.webhook_base_url)"
    )]
    NoPublicBaseUrl,
}

/// Where the journal lives.
pub enum StoreChoice {
    /// sled in `config.storage.data_dir`.
    Disk,
    /// In memory, for tests: nothing survives the process.
    Memory,
    /// A store the caller built (tests use it to inject storage faults).
    Given(Arc<dyn Store>),
}

#[derive(Clone)]
pub struct Engine {
    inbox: mpsc::Sender<Msg>,
    store: Arc<dyn Store>,
    workflows: Arc<HashMap<String, Workflow>>,
    queue: QueueView,
    changes: crate::changes::Changes,
    gauges: Arc<crate::runtime::Gauges>,
    /// The sled data dir, when the journal is on disk.
    data_dir: Option<std::path::PathBuf>,
    keeper: Option<crate::outputs::Keeper>,
    /// Verifies webhook deliveries; `None` when webhooks are off.
    webhook_key: Option<crate::webhook::WebhookKey>,
    /// The runtime's Replicate client (the same rate limits), for `prediction`.
    client: ReplicateClient,
}

impl Engine {
    /// Opens the store, compiles the workflows and spawns the runtime, which first resumes
    /// every unfinished task. The runtime stops when `shutdown` is cancelled; await the
    /// returned handle to know it has committed its last group.
    pub fn launch(
        config: &EngineConfig,
        choice: StoreChoice,
        shutdown: CancellationToken,
    ) -> Result<(Engine, JoinHandle<Result<(), StoreError>>), LaunchError> {
        let data_dir = matches!(choice, StoreChoice::Disk).then(|| config.storage.data_dir.clone());
        let store: Arc<dyn Store> = match choice {
            StoreChoice::Disk => Arc::new(KvStore::open(
                &config.storage.data_dir,
                config.storage.cache_bytes,
            )?),
            StoreChoice::Memory => Arc::new(KvStore::in_memory()),
            StoreChoice::Given(store) => store,
        };
        let mut workflows = HashMap::new();
        let mut problems = vec![];
        for (name, workflow) in &config.workflows {
            match Workflow::compile(name, workflow, config.limits) {
                Ok(compiled) => {
                    workflows.insert(name.clone(), compiled);
                }
                Err(mut errors) => problems.append(&mut errors),
            }
        }
        if !problems.is_empty() {
            return Err(LaunchError::Workflow(problems));
        }
        let workflows = Arc::new(workflows);
        let client = ReplicateClient::new(&config.replicate).map_err(LaunchError::Client)?;
        let replicate = &config.replicate;
        let policy = Policy {
            poll_initial: Duration::from_millis(replicate.poll_initial_ms),
            poll_max: Duration::from_millis(replicate.poll_max_ms),
            retry_base: Duration::from_millis(replicate.retry_initial_ms),
            retry_max: Duration::from_millis(
                replicate.retry_max_ms.max(replicate.retry_initial_ms),
            ),
            safety_poll: replicate
                .webhook_base_url
                .as_ref()
                .map(|_| Duration::from_millis(replicate.safety_poll_ms)),
            max_creates_out: replicate.create_burst as usize,
            create_reach: crate::runtime::SEND_GRACE
                + Duration::from_millis(replicate.request_timeout_ms),
        };
        let webhook_key = match (&replicate.webhook_base_url, &replicate.webhook_secret) {
            (None, _) => None,
            (Some(_), None) => return Err(LaunchError::MissingWebhookSecret),
            (Some(_), Some(secret)) => Some(
                crate::webhook::WebhookKey::parse(secret).map_err(LaunchError::WebhookSecret)?,
            ),
        };
        let (sender, receiver) = mpsc::channel(INBOX_CAPACITY);
        let max_in_flight = (replicate.max_in_flight > 0).then_some(replicate.max_in_flight);
        let keeper = match (&data_dir, config.outputs.keep) {
            (Some(dir), true) => {
                let base = config
                    .outputs
                    .public_base_url
                    .clone()
                    .or_else(|| replicate.webhook_base_url.clone())
                    .ok_or(LaunchError::NoPublicBaseUrl)?;
                let keeper = crate::outputs::Keeper::new(
                    dir.join("files"),
                    &base,
                    config.outputs.max_file_bytes,
                );
                Some(keeper.map_err(LaunchError::OutputsClient)?)
            }
            _ => None,
        };
        let committer = Committer::start().map_err(LaunchError::CommitThread)?;
        let runtime = Runtime::new(Parts {
            store: store.clone(),
            client: client.clone(),
            workflows: workflows.clone(),
            policy,
            max_in_flight,
            retention: config.storage.retention,
            keeper: keeper.clone(),
            webhook_base_url: replicate.webhook_base_url.clone(),
            channel: (sender.clone(), receiver),
            committer,
            executor: None,
        });
        let queue = runtime.queue_view();
        let changes = runtime.changes();
        let gauges = runtime.gauges();
        let handle = tokio::spawn(runtime.run(shutdown));
        Ok((
            Engine {
                inbox: sender,
                store,
                workflows,
                queue,
                changes,
                gauges,
                data_dir,
                keeper,
                webhook_key,
                client,
            },
            handle,
        ))
    }

    /// Validates and durably records a new task; returns once it is on disk. With an
    /// idempotency key already used, returns that task instead and creates nothing.
    pub async fn start(&self, request: StartRequest) -> Result<Started, StartError> {
        let workflow = self
            .workflows
            .get(&request.workflow)
            .ok_or_else(|| StartError::UnknownWorkflow(request.workflow.clone()))?;
        let first_input = workflow
            .check_start(&request.params, &request.items)
            .map_err(|e| StartError::Invalid(e.to_string()))?;
        let start = PreparedStart::new(request, first_input);
        let (reply, answer) = oneshot::channel();
        let stopped = || StartError::Unavailable("the engine is shutting down".into());
        self.inbox
            .send(Msg::Start { start, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Cancels an unfinished task (and its prediction at Replicate); repeating it on a
    /// canceled task is harmless; a task that already succeeded or failed is a conflict.
    pub async fn cancel(&self, id: TaskId) -> Result<Task, ControlError> {
        self.ask(|reply| Msg::Cancel { id, reply }).await
    }

    /// Runs a failed task again from its failed step; finished steps keep their outputs.
    pub async fn retry(&self, id: TaskId) -> Result<Task, ControlError> {
        self.ask(|reply| Msg::Retry { id, reply }).await
    }

    /// Sends the runtime a message carrying a reply channel and waits for the answer.
    async fn ask<T>(
        &self,
        message: impl FnOnce(oneshot::Sender<Result<T, ControlError>>) -> Msg,
    ) -> Result<T, ControlError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || ControlError::Unavailable("the engine is shutting down".into());
        self.inbox
            .send(message(reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// The runtime's live counters.
    pub fn gauges(&self) -> &crate::runtime::Gauges {
        &self.gauges
    }

    /// The path of a kept output file, when file keeping is on and the name is valid.
    pub fn kept_file(&self, task: &TaskId, step: u32, name: &str) -> Option<std::path::PathBuf> {
        self.keeper.as_ref()?.file_path(task, step, name)
    }

    /// Bytes of the files in the data dir (`None` for an in-memory journal).
    pub fn data_dir_bytes(&self) -> Option<u64> {
        fn walk(dir: &std::path::Path) -> u64 {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return 0;
            };
            entries
                .flatten()
                .map(|entry| match entry.metadata() {
                    Ok(meta) if meta.is_dir() => walk(&entry.path()),
                    Ok(meta) => meta.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        self.data_dir.as_deref().map(walk)
    }

    /// Tasks held back by a concurrency cap.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Tasks whose changes someone is streaming or long-polling.
    pub fn watched(&self) -> usize {
        self.changes.watched()
    }

    pub fn webhook_key(&self) -> Option<&crate::webhook::WebhookKey> {
        self.webhook_key.as_ref()
    }

    /// Applies a verified webhook delivery; returns once its effect is durable.
    pub async fn webhook(
        &self,
        id: TaskId,
        step: u32,
        attempt: u32,
        prediction: crate::replicate::Prediction,
    ) -> Result<(), ControlError> {
        self.ask(|reply| Msg::Webhook {
            id,
            step,
            attempt,
            prediction,
            reply,
        })
        .await
    }

    /// Prediction `id` as Replicate has it now, every key kept (`GET /v1/predictions/{id}`,
    /// under `other_calls_per_minute`, waiting at most `max_wait` for a slot).
    pub async fn prediction(
        &self,
        id: &str,
        max_wait: Duration,
    ) -> Result<serde_json::Value, crate::replicate::LookupError> {
        self.client.get_json(id, max_wait).await
    }

    /// Changes of `id` committed from now on (subscribe, then read the task).
    pub fn watch(&self, id: TaskId) -> crate::changes::Watch {
        self.changes.subscribe(id)
    }

    /// 1-based place in the wait queue of a task held back by a concurrency cap.
    pub fn queue_position(&self, id: &TaskId) -> Option<usize> {
        self.queue.position(id)
    }

    pub async fn task(&self, id: &TaskId) -> Result<Option<Task>, StoreError> {
        let id = *id;
        self.read(move |store| store.task(&id)).await
    }

    pub async fn list(&self, query: &ListQuery) -> Result<ListPage, StoreError> {
        let query = query.clone();
        self.read(move |store| store.list(&query)).await
    }

    pub async fn events(&self, id: &TaskId) -> Result<Vec<(u64, crate::event::Event)>, StoreError> {
        let id = *id;
        self.read(move |store| store.events(&id)).await
    }

    /// Runs a read of the store, on a blocking thread when the store's reads wait on the
    /// network (`Store::reads_block`).
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        if !self.store.reads_block() {
            return read(&*self.store);
        }
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || read(&*store))
            .await
            .map_err(|e| StoreError::io("reading the store", std::io::Error::other(e)))?
    }

    pub fn workflow_names(&self) -> impl Iterator<Item = &str> {
        self.workflows.keys().map(String::as_str)
    }
}
