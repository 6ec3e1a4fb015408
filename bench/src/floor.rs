//! The durable floor under `start`, measured in the same run: the bare hyper server of
//! `reference`, whose every POST writes a start's one journal entry (its listing key,
//! carrying its two events as one run; sized and keyed as the journal's) through the engine's
//! own `SledBackend::apply` (one batch, flush, blob sync, `fdatasync`), group-committed by
//! one thread, and answers a body of a start's size once its group is on disk. It is what
//! hyper and sled alone cost here, with nothing of stepwise's own (no routing, checks, state
//! machine, runtime loop or rendering): no engine built on them can beat it.

use super::load::{self, Outcome, Plan};
use super::reference::Hello;
use super::wrk::Driver;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use std::convert::Infallible;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use stepwise_engine::journal::{Backend, Op, SledBackend};
use tokio::sync::oneshot;

/// One request's entries, and where to say they are durable.
type Commit = (Vec<Op>, oneshot::Sender<bool>);

/// `POST {floor}/v1/tasks` with `body` under `plan`, sent by `driver`; the data goes to a
/// scratch dir in `dir`. `answer_len`: the bytes of the engine's answer to the same start.
pub async fn durable_post(
    plan: Plan,
    driver: Driver,
    dir: &Path,
    body: Bytes,
    answer_len: usize,
) -> anyhow::Result<Outcome> {
    let scratch = tempfile::tempdir_in(dir)?;
    let backend = SledBackend::open(scratch.path(), 32 << 20)?;
    let (commits, inbox) = mpsc::channel::<Commit>();
    // The thread owns the scratch dir: it goes when the last request's sender is dropped.
    std::thread::spawn(move || {
        commit_groups(&backend, inbox);
        drop(backend);
        drop(scratch);
    });
    let answer = Bytes::from(format!(
        "{{\"status\":\"running\",\"pad\":\"{}\"}}",
        "x".repeat(answer_len.saturating_sub(30))
    ));
    let next_id = Arc::new(AtomicU64::new(1));
    let server = Hello::serve(move |request: Request<Incoming>| {
        let (commits, answer, next_id) = (commits.clone(), answer.clone(), next_id.clone());
        async move {
            let body = request
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let (done, durable) = oneshot::channel();
            let id = next_id.fetch_add(1, Ordering::Relaxed);
            let written = commits.send((start_entries(id, &body), done)).is_ok()
                && durable.await.unwrap_or(false);
            let mut response =
                Response::new(Full::new(if written { answer } else { Bytes::new() }));
            *response.status_mut() = if written {
                StatusCode::CREATED
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            Ok::<_, Infallible>(response)
        }
    })
    .await?;
    let outcome = load::post_json(
        "hyper + sled floor",
        plan,
        driver,
        &server.url,
        "/v1/tasks",
        body,
        201,
    )
    .await;
    server.stop().await;
    Ok(outcome)
}

/// Takes every request waiting, writes them as one durable batch, answers them all.
fn commit_groups(backend: &SledBackend, inbox: mpsc::Receiver<Commit>) {
    while let Ok(first) = inbox.recv() {
        let mut group = vec![first];
        group.extend(inbox.try_iter());
        let ops = group
            .iter_mut()
            .flat_map(|(entries, _)| std::mem::take(entries))
            .collect();
        let durable = backend.apply(ops).is_ok();
        for (_, done) in group {
            let _ = done.send(durable);
        }
    }
}

/// A start's entry, as the journal writes it: the listing key that marks the task to resume,
/// carrying the run of its first two events (`TaskCreated`: the request and a little more;
/// `StepRequested`: step one's input); ids ordered by time as the journal's are.
fn start_entries(n: u64, body: &[u8]) -> Vec<Op> {
    let ms = stepwise_engine::time::now_millis().max(0) as u64;
    let mut id = [0u8; 16];
    id[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    id[8..].copy_from_slice(&n.to_be_bytes());
    let key = |parts: &[&[u8]]| parts.concat();
    let mut events = body.to_vec();
    events.extend_from_slice(&vec![7u8; 48 + body.len() / 2 + 40]);
    vec![(
        key(&[b"c", &ms.to_be_bytes(), &id]),
        Some(key(&[b"r", &2u64.to_be_bytes(), &events])),
    )]
}
