//! The HTTP surface: the axum router, the auth and rate-limit-header middleware (behind the fault
//! gate of [`crate::gate`]), and one handler per endpoint. Handlers read the clock, lock the store briefly, and never hold the lock across
//! an `.await`.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::delivery::Msg;
use crate::gate::{fault_gate, ReceivedAt};
use crate::headers::{parse_cancel_after, parse_prefer, WaitPreference};
use crate::list::{plan_page, Cursor};
use crate::persist::Durable;
use crate::problem::ApiError;
use crate::request::{parse_create, CreateRoute};
use crate::state::SimState;
use crate::webhooks::{wants, Event};

/// The whole API: `/v1/...` behind auth, plus the unauthenticated `/files/{hash}/{name}`.
pub fn router(state: SimState) -> Router {
    let v1 = Router::new()
        .route("/predictions", post(create_with_version).get(list))
        .route("/predictions/{id}", get(get_prediction))
        .route("/predictions/{id}/cancel", post(cancel))
        .route(
            "/models/{owner}/{name}/predictions",
            post(create_with_model),
        )
        .route(
            "/deployments/{owner}/{name}/predictions",
            post(create_with_deployment),
        )
        .route("/webhooks/default/secret", get(webhook_secret))
        .route("/account", get(account))
        .fallback(not_found)
        .layer(from_fn_with_state(state.clone(), authenticate))
        .layer(from_fn(rate_limit_headers))
        .layer(from_fn_with_state(state.clone(), fault_gate));
    Router::new()
        .nest("/v1", v1)
        .route("/files/{hash}/{name}", get(output_file))
        .fallback(not_found)
        .with_state(state)
}

async fn authenticate(State(state): State<SimState>, request: Request, next: Next) -> Response {
    let valid = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .is_some_and(|(scheme, token)| {
            (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
                && token.trim() == state.token()
        });
    if !valid {
        return ApiError::Unauthenticated.into_response();
    }
    next.run(request).await
}

/// Adds `ratelimit-remaining`/`ratelimit-reset` with the values recorded from the real API.
async fn rate_limit_headers(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    let remaining = match *request.method() {
        Method::POST if path.ends_with("/predictions") => "599",
        Method::GET if path.contains("/predictions/") => "59999",
        _ => "2999",
    };
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert("ratelimit-remaining", HeaderValue::from_static(remaining));
    headers.insert("ratelimit-reset", HeaderValue::from_static("1"));
    response
}

async fn not_found() -> ApiError {
    ApiError::NotFound
}

/// When the gate saw the request; `None` only if the router is used without the gate.
type Received = Option<Extension<ReceivedAt>>;

async fn create_with_version(
    State(state): State<SimState>,
    received: Received,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    create(state, CreateRoute::Predictions, received, &headers, &body).await
}

async fn create_with_model(
    State(state): State<SimState>,
    Path((owner, name)): Path<(String, String)>,
    received: Received,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let route = CreateRoute::Model { owner, name };
    create(state, route, received, &headers, &body).await
}

async fn create_with_deployment(
    State(state): State<SimState>,
    Path((owner, name)): Path<(String, String)>,
    received: Received,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let route = CreateRoute::Deployment { owner, name };
    create(state, route, received, &headers, &body).await
}

async fn create(
    state: SimState,
    route: CreateRoute,
    received: Received,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let header_text = |name: &'static str| -> Result<Option<&str>, ApiError> {
        headers
            .get(name)
            .map(|v| {
                v.to_str().map_err(|_| ApiError::Unprocessable {
                    title: "Invalid header",
                    detail: format!("The {name} header is not valid text"),
                })
            })
            .transpose()
    };
    let wait: Option<WaitPreference> = header_text("prefer")?.map(parse_prefer).transpose()?;
    let cancel_after = header_text("cancel-after")?
        .map(parse_cancel_after)
        .transpose()?;
    let mut new = parse_create(body, &route)?;
    new.cancel_after = cancel_after;

    let now = OffsetDateTime::now_utc();
    let received = received.map_or(now, |Extension(ReceivedAt(at))| at.min(now));
    let (id, mut prediction, hook, durable) = {
        let mut store = state.store();
        let position = store.create(new, received);
        let stored = store.at(position);
        // Queued under the lock, so the state file keeps the store's order.
        let durable = state
            .persister()
            .map_or_else(Durable::none, |p| p.created(stored));
        let hook = stored.webhook.clone().map(|url| {
            let filter = stored.webhook_events_filter.as_deref();
            let events = (wants(filter, Event::Start), wants(filter, Event::Completed));
            (url, events, stored.terminal_at())
        });
        (stored.id.clone(), state.render(stored, now), hook, durable)
    };
    durable.wait().await.map_err(ApiError::Storage)?;
    tracing::debug!(prediction_id = %id, model = %prediction["model"], "Prediction created.");
    if let Some((url, (start, completed), terminal_at)) = hook {
        let start_body =
            start.then(|| Bytes::from(serde_json::to_vec(&prediction).expect("JSON serialises")));
        state.send_webhook(Msg::Created {
            id: id.clone(),
            url,
            start_body,
            completed,
            terminal_at,
        });
    }

    if let Some(wait) = &wait {
        prediction = wait_until_terminal(&state, &id, Duration::from_secs(wait.seconds)).await;
    }
    let mut response = (StatusCode::CREATED, Json(prediction)).into_response();
    if let Some(wait) = wait {
        let applied =
            HeaderValue::from_str(&wait.applied).expect("a wait preference is a valid header");
        response.headers_mut().insert("preference-applied", applied);
    }
    Ok(response)
}

/// Blocks until the prediction is terminal, `limit` has passed or the server shuts down, and
/// returns the prediction as it is then.
async fn wait_until_terminal(state: &SimState, id: &str, limit: Duration) -> Value {
    let give_up = tokio::time::Instant::now() + limit;
    let mut shutdown = state.shutdown_signal();
    loop {
        let notified = state.changed().notified();
        tokio::pin!(notified);
        notified.as_mut().enable();

        let now = OffsetDateTime::now_utc();
        let (current, next_change) = {
            let store = state.store();
            let stored = store
                .get(id)
                .expect("a created prediction is never removed");
            (state.render(stored, now), stored.next_change(now))
        };
        let Some(next_change) = next_change else {
            return current;
        };
        let until_change: Duration = (next_change - now).try_into().unwrap_or_default();
        let wake =
            give_up.min(tokio::time::Instant::now() + until_change + Duration::from_millis(1));
        if *shutdown.borrow() || tokio::time::Instant::now() >= give_up {
            return current;
        }
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            _ = &mut notified => {}
            _ = shutdown.changed() => return current,
        }
    }
}

async fn get_prediction(
    State(state): State<SimState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let now = OffsetDateTime::now_utc();
    let store = state.store();
    let stored = store.get(&id).ok_or(ApiError::NotFound)?;
    Ok(Json(state.render(stored, now)))
}

async fn cancel(
    State(state): State<SimState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let now = OffsetDateTime::now_utc();
    let (prediction, changed, hooked, durable) = {
        let mut store = state.store();
        let stored = store.get_mut(&id).ok_or(ApiError::NotFound)?;
        let changed = stored.cancel(now);
        let durable = match (changed, state.persister()) {
            (true, Some(persister)) => persister.canceled(&id, now),
            _ => Durable::none(),
        };
        (
            state.render(stored, now),
            changed,
            stored.webhook.is_some(),
            durable,
        )
    };
    durable.wait().await.map_err(ApiError::Storage)?;
    if changed {
        tracing::debug!(prediction_id = %id, "Prediction canceled.");
        state.changed().notify_waiters();
        if hooked {
            state.send_webhook(Msg::Canceled { id });
        }
    }
    Ok(Json(prediction))
}

async fn list(
    State(state): State<SimState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let cursor = query.get("cursor").map(|c| Cursor::decode(c)).transpose()?;
    let (after, before) = match &cursor {
        Some(c) => (c.a, c.b),
        None => (
            query
                .get("created_after")
                .map(|v| parse_time("created_after", v))
                .transpose()?,
            query
                .get("created_before")
                .map(|v| parse_time("created_before", v))
                .transpose()?,
        ),
    };
    let to_time = |nanos: i128| OffsetDateTime::from_unix_timestamp_nanos(nanos).ok();
    let now = OffsetDateTime::now_utc();
    let store = state.store();
    let (lo, hi) = store.created_range(after.and_then(to_time), before.and_then(to_time));
    let page = plan_page(lo, hi, cursor.as_ref(), state.page_size());
    let results: Vec<Value> = (page.start..page.end)
        .rev()
        .map(|i| state.render(store.at(i), now))
        .collect();
    drop(store);

    let link = |d: &str, p: usize| {
        let cursor = Cursor {
            d: d.to_string(),
            p,
            a: after,
            b: before,
        };
        format!("{}/v1/predictions?cursor={}", state.base(), cursor.encode())
    };
    Ok(Json(json!({
        "next": page.next.map(|p| link("n", p)),
        "previous": page.previous.map(|p| link("p", p)),
        "results": results,
    })))
}

/// Parses an RFC 3339 filter value into unix nanoseconds. A `+` decoded as a space by form
/// encoding is put back.
fn parse_time(name: &str, value: &str) -> Result<i128, ApiError> {
    OffsetDateTime::parse(&value.replace(' ', "+"), &Rfc3339)
        .map(|t| t.unix_timestamp_nanos())
        .map_err(|_| ApiError::Unprocessable {
            title: "Invalid query parameter",
            detail: format!("{name} must be an RFC 3339 timestamp, got {value:?}"),
        })
}

async fn webhook_secret(State(state): State<SimState>) -> Json<Value> {
    Json(json!({ "key": state.webhook_secret() }))
}

/// `GET /v1/account`, as Replicate answers it for a user's token.
async fn account() -> Json<Value> {
    Json(json!({
        "type": "user",
        "username": "simulated",
        "name": "Simulated Replicate",
        "github_url": null,
    }))
}

/// The picture of a known output: drawn from the input of the latest prediction with that
/// output hash (restored from the state file after a restart), so its bytes depend only on
/// (model key, input). 404 for a hash no prediction has, or one past its output retention.
async fn output_file(
    State(state): State<SimState>,
    Path((hash, _name)): Path<(String, String)>,
) -> Response {
    if hash.len() != 16 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return ApiError::NotFound.into_response();
    }
    if !state.file_alive(&hash, time::OffsetDateTime::now_utc()) {
        return ApiError::NotFound.into_response();
    }
    let source = state
        .store()
        .by_output(&hash)
        .map(|p| (p.model_key.clone(), crate::output::output_label(&p.input)));
    let Some((model_key, label)) = source else {
        return ApiError::NotFound.into_response();
    };
    (
        [
            (header::CONTENT_TYPE, "image/png"),
            (header::CACHE_CONTROL, "public,max-age=3600"),
        ],
        crate::picture::render(&hash, &model_key, &label),
    )
        .into_response()
}
