//! Live task status: the Server-Sent Events stream, `ETag`/`If-None-Match`, and long polls.
//! Each stream or long poll holds one subscription to its task's change broadcast; nothing
//! here polls storage on a timer.

use crate::error::ApiError;
use crate::{render, AppState};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use stepwise_engine::changes::{TaskChange, Watch};
use stepwise_engine::model::{Task, TaskId};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

/// Longest `?wait=` a long poll may ask for, in seconds.
pub const MAX_WAIT_SECS: u64 = 60;
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The strong validator of a task: its journal sequence number.
pub fn etag(task: &Task) -> HeaderValue {
    // Digits and quotes are always a valid header value.
    HeaderValue::from_str(&format!("\"{}\"", task.seq)).expect("a quoted number is a valid header")
}

/// True when the request's `If-None-Match` names the task's current version.
pub fn not_modified(headers: &HeaderMap, task: &Task) -> bool {
    let Some(value) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let current = format!("\"{}\"", task.seq);
    value
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == current)
}

/// The task with its `ETag`, or `304` when the caller has it already. With `wait`, a caller
/// that has the current version waits up to that long for the next one.
pub async fn task_response(
    state: &AppState,
    id: TaskId,
    headers: &HeaderMap,
    wait: Option<u64>,
) -> Result<Response, ApiError> {
    let mut watch = wait.map(|_| state.engine.watch(id));
    let mut task = state.engine.task(&id).await?.ok_or_else(|| not_found(id))?;
    if not_modified(headers, &task) {
        let (Some(secs), Some(watch)) = (wait, watch.as_mut()) else {
            return Ok(unchanged(&task));
        };
        if !changed(watch, task.seq, Duration::from_secs(secs), &state.shutdown).await {
            return Ok(unchanged(&task));
        }
        task = state.engine.task(&id).await?.ok_or_else(|| not_found(id))?;
    }
    let body = render::task(&task, state.engine.queue_position(&id));
    let cache = HeaderValue::from_static("no-cache");
    Ok((
        [(header::ETAG, etag(&task)), (header::CACHE_CONTROL, cache)],
        body,
    )
        .into_response())
}

fn not_found(id: TaskId) -> ApiError {
    ApiError::NotFound(format!("no task with id '{id}'"))
}

fn unchanged(task: &Task) -> Response {
    (StatusCode::NOT_MODIFIED, [(header::ETAG, etag(task))]).into_response()
}

/// Waits until the task moves past `seq` (true), or `wait` passes or the server stops (false).
async fn changed(
    watch: &mut Watch,
    seq: u64,
    wait: Duration,
    shutdown: &CancellationToken,
) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep_until(deadline) => return false,
            change = watch.next() => match change {
                Ok(change) if change.seq > seq => return true,
                Ok(_) => continue,
                // Missed some changes: there is something newer to read.
                Err(RecvError::Lagged(_)) => return true,
                Err(RecvError::Closed) => return false,
            },
        }
    }
}

/// `GET /v1/tasks/{id}/events`: the whole task, then one message per committed change with
/// the task's summary and only the steps that changed, closing after the task ends. Messages
/// carry the journal sequence as their id, so a reconnect with `Last-Event-ID` resumes where
/// it left off; a reconnect after the end gets `204`, which tells `EventSource` to stop.
pub async fn task_events(
    state: &AppState,
    id: TaskId,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let watch = state.engine.watch(id);
    let task = state.engine.task(&id).await?.ok_or_else(|| not_found(id))?;
    let last_seen: Option<u64> = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    if task.status.is_terminal() && last_seen.is_some_and(|seen| seen >= task.seq) {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let first = (last_seen != Some(task.seq)).then(|| snapshot(state, &task));
    let stream = Stream {
        state: state.clone(),
        id,
        watch,
        sent: task.seq,
        done: task.status.is_terminal(),
        first,
        last: Arc::new(TaskChange {
            seq: task.seq,
            kinds: Vec::new(),
            task,
        }),
    };
    let events = futures::stream::unfold(stream, Stream::next);
    // Proxies that buffer responses (nginx by default) would hold the stream back until it
    // ends; this header asks them not to, so a client behind one sees each change live.
    let unbuffered = [("x-accel-buffering", HeaderValue::from_static("no"))];
    Ok((
        unbuffered,
        Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")),
    )
        .into_response())
}

struct Stream {
    state: AppState,
    id: TaskId,
    watch: Watch,
    /// The last sequence number sent (or known to the client).
    sent: u64,
    done: bool,
    first: Option<Event>,
    /// The task as the client has it after the last message: what the next one is a delta of.
    /// Kept as the change it came in (shared with the other watchers), not copied.
    last: Arc<TaskChange>,
}

impl Stream {
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        if let Some(first) = self.first.take() {
            return Some((Ok(first), self));
        }
        if self.done {
            return None;
        }
        loop {
            let change = tokio::select! {
                _ = self.state.shutdown.cancelled() => return None,
                change = self.watch.next() => change,
            };
            let event = match change {
                Ok(change) if change.seq <= self.sent => continue,
                Ok(change) => {
                    let event = delta(&self.state, &change.kinds, &self.last.task, &change.task);
                    self.last = change;
                    event
                }
                // This stream fell behind and missed changes: the client still has `last`, so
                // what differs from the task now is the delta (a whole snapshot here would
                // slow the stream further, and a big task's stream would lag for good).
                Err(RecvError::Lagged(_)) => match self.state.engine.task(&self.id).await {
                    Ok(Some(task)) if task.seq > self.sent => {
                        let event = delta(&self.state, &["resync"], &self.last.task, &task);
                        self.last = Arc::new(TaskChange {
                            seq: task.seq,
                            kinds: vec!["resync"],
                            task,
                        });
                        event
                    }
                    Ok(Some(_)) => continue,
                    _ => return None,
                },
                Err(RecvError::Closed) => return None,
            };
            self.sent = self.last.task.seq;
            self.done = self.last.task.status.is_terminal();
            return Some((Ok(event), self));
        }
    }
}

/// The whole task: the stream's first message.
fn snapshot(state: &AppState, task: &Task) -> Event {
    #[derive(serde::Serialize)]
    struct Message<'a> {
        kind: &'a str,
        kinds: &'a [&'a str],
        seq: u64,
        task: render::TaskView<'a>,
    }
    let message = Message {
        kind: "snapshot",
        kinds: &["snapshot"],
        seq: task.seq,
        task: render::task(task, state.engine.queue_position(&task.id)),
    };
    event(task.seq, &message)
}

/// What changed from `before` to `after`: the task without its steps, and the steps that
/// differ (clients merge them by `index`).
fn delta(state: &AppState, kinds: &[&str], before: &Task, after: &Task) -> Event {
    #[derive(serde::Serialize)]
    struct Message<'a> {
        kind: &'a str,
        kinds: &'a [&'a str],
        seq: u64,
        task: render::TaskView<'a>,
        steps: Vec<render::StepView<'a>>,
    }
    let steps = after
        .steps
        .iter()
        .enumerate()
        .filter(|(i, step)| before.steps.get(*i) != Some(*step))
        .map(|(_, step)| render::step(after, step))
        .collect();
    let message = Message {
        // A commit journals at least one event; "change" only names an empty list, which must
        // not read as a snapshot (clients replace the whole task on one).
        kind: kinds.last().copied().unwrap_or("change"),
        kinds,
        seq: after.seq,
        task: render::summary(after, state.engine.queue_position(&after.id)),
        steps,
    };
    event(after.seq, &message)
}

fn event(seq: u64, message: &impl serde::Serialize) -> Event {
    // Plain structs of strings, numbers and valid raw JSON always serialize.
    let data = serde_json::to_string(message).expect("a task view serializes");
    Event::default().id(seq.to_string()).data(data)
}
