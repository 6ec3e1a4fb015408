//! Live task status: the Server-Sent Events stream, `ETag`/`If-None-Match`, and long polls.
//! Each stream or long poll holds one subscription to its task's change broadcast; nothing
//! here polls storage on a timer.

use crate::error::ApiError;
use crate::{render, AppState};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use std::time::Duration;
use stepwise_engine::changes::Watch;
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
    let mut task = state.engine.task(&id)?.ok_or_else(|| not_found(id))?;
    if not_modified(headers, &task) {
        let (Some(secs), Some(watch)) = (wait, watch.as_mut()) else {
            return Ok(unchanged(&task));
        };
        if !changed(watch, task.seq, Duration::from_secs(secs), &state.shutdown).await {
            return Ok(unchanged(&task));
        }
        task = state.engine.task(&id)?.ok_or_else(|| not_found(id))?;
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

/// `GET /v1/tasks/{id}/events`: the current task, then one message per committed change,
/// closing after the task ends. Messages carry the journal sequence as their id, so a
/// reconnect with `Last-Event-ID` resumes where it left off; a reconnect after the end gets
/// `204`, which tells `EventSource` to stop.
pub async fn task_events(
    state: &AppState,
    id: TaskId,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let watch = state.engine.watch(id);
    let task = state.engine.task(&id)?.ok_or_else(|| not_found(id))?;
    let last_seen: Option<u64> = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    if task.status.is_terminal() && last_seen.is_some_and(|seen| seen >= task.seq) {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let first =
        (last_seen != Some(task.seq)).then(|| message(state, "snapshot", &["snapshot"], &task));
    let stream = Stream {
        state: state.clone(),
        id,
        watch,
        sent: task.seq,
        done: task.status.is_terminal(),
        first,
    };
    let events = futures::stream::unfold(stream, Stream::next);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
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
            let (task, kinds) = match change {
                Ok(change) if change.seq <= self.sent => continue,
                Ok(change) => (change.task.clone(), change.kinds.clone()),
                Err(RecvError::Lagged(_)) => match self.state.engine.task(&self.id) {
                    Ok(Some(task)) if task.seq > self.sent => (task, vec!["snapshot"]),
                    Ok(Some(_)) => continue,
                    _ => return None,
                },
                Err(RecvError::Closed) => return None,
            };
            self.sent = task.seq;
            self.done = task.status.is_terminal();
            let kind = kinds.last().copied().unwrap_or("snapshot");
            let event = message(&self.state, kind, &kinds, &task);
            return Some((Ok(event), self));
        }
    }
}

fn message(state: &AppState, kind: &str, kinds: &[&str], task: &Task) -> Event {
    #[derive(serde::Serialize)]
    struct Message<'a> {
        kind: &'a str,
        kinds: &'a [&'a str],
        seq: u64,
        task: render::TaskView<'a>,
    }
    let task_view = render::task(task, state.engine.queue_position(&task.id));
    let message = Message {
        kind,
        kinds,
        seq: task.seq,
        task: task_view,
    };
    // Plain structs of strings and numbers always serialize.
    let data = serde_json::to_string(&message).expect("a task view serializes");
    Event::default().id(task.seq.to_string()).data(data)
}
