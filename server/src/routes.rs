//! The route handlers: parse and check the request, call the engine, render the answer.

use crate::error::ApiError;
use crate::{live, render, AppState};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use stepwise_engine::journal::ListQuery;
use stepwise_engine::model::{TaskId, TaskStatus};
use stepwise_engine::{ControlError, StartError, StartRequest};

const MAX_IDEMPOTENCY_KEY: usize = 255;
const MAX_PAGE: usize = 200;
/// Longest `?q=` search text, in characters.
const MAX_SEARCH: usize = 200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    workflow: String,
    #[serde(default)]
    params: Option<Value>,
    /// Required by workflows with a stage that runs per item (the engine says so).
    #[serde(default)]
    items: Vec<Value>,
}

pub async fn start_task(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    state.authorize(&headers)?;
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge
        } else {
            ApiError::InvalidRequest(format!("cannot read the body: {rejection}"))
        }
    })?;
    require_json(&headers)?;
    let body: StartBody = serde_json::from_slice(&body)
        .map_err(|e| ApiError::InvalidRequest(format!("invalid JSON body: {e}")))?;
    let params = body.params.unwrap_or_else(|| json!({}));
    if !params.is_object() {
        return Err(ApiError::InvalidRequest(
            "`params` must be a JSON object".into(),
        ));
    }
    if let Some(i) = body.items.iter().position(|item| !item.is_object()) {
        return Err(ApiError::InvalidRequest(format!(
            "items[{i}] must be a JSON object"
        )));
    }
    let idempotency_key = idempotency_key(&headers)?;
    let request = StartRequest {
        workflow: body.workflow,
        params,
        items: body.items,
        idempotency_key,
    };
    let started = match state.engine.start(request).await {
        Ok(started) => started,
        Err(StartError::UnknownWorkflow(name)) => return Err(ApiError::UnknownWorkflow(name)),
        Err(StartError::Invalid(message)) => return Err(ApiError::InvalidRequest(message)),
        Err(StartError::Unavailable(cause)) => return Err(ApiError::Unavailable(cause)),
        Err(StartError::Interrupted) => return Err(crate::error::unanswered().await),
    };
    let location = format!("/v1/tasks/{}", started.task.id);
    let status = if started.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let position = state.engine.queue_position(&started.task.id);
    let body = render::task(&started.task, position);
    Ok((status, [(header::LOCATION, location)], body).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetParams {
    wait: Option<u64>,
}

pub async fn get_task(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
    params: Result<Query<GetParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let task_id = parse_id(&id)?;
    let Query(params) = params
        .map_err(|e| ApiError::InvalidRequest(format!("invalid query: {}", e.body_text())))?;
    if params.wait.is_some_and(|wait| wait > live::MAX_WAIT_SECS) {
        let max = live::MAX_WAIT_SECS;
        return Err(ApiError::InvalidRequest(format!(
            "`wait` must be 0 to {max} seconds"
        )));
    }
    live::task_response(&state, task_id, &headers, params.wait).await
}

/// The task's journal: every event, in order.
pub async fn task_journal(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = path_id(id)?;
    let task_id = parse_id(&id)?;
    let events = state.engine.events(&task_id).await?;
    if events.is_empty() {
        return Err(not_found_task(&id));
    }
    let events: Vec<Value> = events
        .iter()
        .map(|(seq, event)| render::event(*seq, event))
        .collect();
    Ok(Json(json!({ "id": id, "events": events })))
}

pub async fn task_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = path_id(id)?;
    let task_id = parse_id(&id)?;
    live::task_events(&state, task_id, &headers).await
}

pub async fn cancel_task(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    control(&state, &headers, id, Control::Cancel).await
}

pub async fn retry_task(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    control(&state, &headers, id, Control::Retry).await
}

enum Control {
    Cancel,
    Retry,
}

/// Cancel and retry: authorize, name the task, ask the engine, render the outcome.
async fn control(
    state: &AppState,
    headers: &HeaderMap,
    id: Result<Path<String>, PathRejection>,
    action: Control,
) -> Result<Response, ApiError> {
    state.authorize(headers)?;
    let id = path_id(id)?;
    let task_id = parse_id(&id)?;
    let outcome = match action {
        Control::Cancel => state.engine.cancel(task_id).await,
        Control::Retry => state.engine.retry(task_id).await,
    };
    let task = match outcome {
        Ok(task) => task,
        Err(error) => return Err(control_error(error, &id).await),
    };
    Ok(render::task(&task, state.engine.queue_position(&task_id)).into_response())
}

/// The `{id}` segment; one that is not UTF-8 cannot name a task.
fn path_id(id: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    id.map(|Path(id)| id)
        .map_err(|_| ApiError::NotFound("no task with that id".into()))
}

fn parse_id(id: &str) -> Result<TaskId, ApiError> {
    id.parse().map_err(|_| not_found_task(id))
}

fn not_found_task(id: &str) -> ApiError {
    let shown: String = id.chars().take(64).collect();
    ApiError::NotFound(format!("no task with id '{shown}'"))
}

async fn control_error(error: ControlError, id: &str) -> ApiError {
    match error {
        ControlError::NotFound => not_found_task(id),
        ControlError::Conflict(message) => ApiError::Conflict(message),
        ControlError::Unavailable(cause) => ApiError::Unavailable(cause),
        ControlError::Interrupted => crate::error::unanswered().await,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    status: Option<String>,
    workflow: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
    /// Search text (see `ListQuery::q`).
    q: Option<String>,
    /// `steps`: each task with its steps, as `GET /v1/tasks/{id}` has them.
    expand: Option<String>,
}

/// `GET /v1/tasks`: task summaries (no `steps` unless `?expand=steps`), newest first.
pub async fn list_tasks(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    state.authorize(&headers)?;
    let Query(params) = params
        .map_err(|e| ApiError::InvalidRequest(format!("invalid query: {}", e.body_text())))?;
    let status = match params.status.as_deref() {
        None => None,
        Some(text) => Some(TaskStatus::parse(text).ok_or_else(|| {
            ApiError::InvalidRequest(format!(
                "unknown status '{text}'; use pending, running, succeeded, failed or canceled"
            ))
        })?),
    };
    let limit = params.limit.unwrap_or(50);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::InvalidRequest(format!(
            "`limit` must be 1 to {MAX_PAGE}"
        )));
    }
    let expand = match params.expand.as_deref() {
        None => false,
        Some("steps") => true,
        Some(other) => {
            let shown: String = other.chars().take(32).collect();
            return Err(ApiError::InvalidRequest(format!(
                "unknown `expand` '{shown}'; the only one is `steps`"
            )));
        }
    };
    if params
        .q
        .as_ref()
        .is_some_and(|q| q.chars().count() > MAX_SEARCH)
    {
        return Err(ApiError::InvalidRequest(format!(
            "`q` must be at most {MAX_SEARCH} characters"
        )));
    }
    let query = ListQuery {
        status,
        workflow: params.workflow,
        limit,
        cursor: params.cursor,
        q: params.q,
    };
    let page = state.engine.list(&query).await?;
    let tasks = page
        .tasks
        .iter()
        .map(|task| {
            let position = state.engine.queue_position(&task.id);
            if expand {
                render::task(task, position)
            } else {
                render::summary(task, position)
            }
        })
        .collect();
    Ok(Json(render::PageView {
        tasks,
        next_cursor: page.next_cursor,
    })
    .into_response())
}

/// Prometheus metrics: what the engine counted, and its gauges read now.
pub async fn metrics(State(state): State<AppState>) -> Response {
    use std::sync::atomic::Ordering::Relaxed;
    use stepwise_engine::metrics;
    let gauges = state.engine.gauges();
    let now = metrics::Readings {
        tasks_in_flight: gauges.unfinished.load(Relaxed) as u64,
        tasks_queued: state.engine.queued() as u64,
        tasks_watched: state.engine.watched() as u64,
        creates_waiting: gauges.creates_waiting.load(Relaxed) as u64,
        recovered: gauges.resumed.load(Relaxed),
        data_dir_bytes: state.engine.data_dir_bytes(),
    };
    let body = metrics::global().render(&now);
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body).into_response()
}

/// Liveness, and whether recovery has finished (`resumed`), with the runtime's counts.
pub async fn healthz(State(state): State<AppState>) -> Json<Value> {
    use std::sync::atomic::Ordering::Relaxed;
    let gauges = state.engine.gauges();
    Json(json!({
        "status": "ok",
        "resumed": gauges.resumed.load(Relaxed),
        "unfinished": gauges.unfinished.load(Relaxed),
        "queued": state.engine.queued(),
        "watched": state.engine.watched(),
    }))
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("no such route".into())
}

pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let essence = content_type.map(|v| {
        v.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    match essence.as_deref() {
        Some("application/json") => Ok(()),
        _ => Err(ApiError::UnsupportedMediaType),
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|key| {
            !key.is_empty()
                && key.len() <= MAX_IDEMPOTENCY_KEY
                && key.bytes().all(|b| b.is_ascii_graphic())
        })
        .ok_or_else(|| {
            ApiError::InvalidRequest(format!(
                "`Idempotency-Key` must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters, no spaces"
            ))
        })?;
    Ok(Some(key.to_owned()))
}
