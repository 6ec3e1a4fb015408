//! The floor under `bench start`: what a durable start costs on this machine with the chosen
//! crates and nothing of stepwise's own. A bare hyper server whose every POST writes four
//! sled entries of a start's sizes (two events, two index keys), group-committed by one
//! thread (`apply_batch`, `flush`, `sync_data`, as the journal does), and answers a
//! task-sized JSON body once its group is on disk. Driven like `bench start` (reqwest, 64
//! keep-alive clients), next to the same bare `hello` and `fdatasync` references.
//!
//! If this floor stays under the `start` targets, no change inside the engine can meet them
//! on this machine: `cargo run --release --example start_floor -- [--lean] [seconds] [clients]`.
//! `--lean` drives both servers from hyper's own client (one connection per client, requests
//! built without URL parsing or middleware) instead of reqwest: a lighter load generator
//! raises every rate, the bare `hello` most. `FLOOR_ENTRIES=N` writes only the first N of
//! the four entries (what one entry fewer per start would buy).

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

type Commit = (Vec<(Vec<u8>, Vec<u8>)>, oneshot::Sender<()>);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static GROUPS: AtomicU64 = AtomicU64::new(0);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args: Vec<String> = std::env::args().collect();
    let lean = args.iter().any(|a| a == "--lean");
    args.retain(|a| a != "--lean");
    let seconds: f64 = args.get(1).map_or(Ok(10.0), |s| s.parse())?;
    let clients: usize = args.get(2).map_or(Ok(64), |s| s.parse())?;
    let dir = tempfile::tempdir()?;
    let body = Bytes::from_static(br#"{"workflow":"chain","params":{},"items":[{"prompt":"a"},{"prompt":"b"},{"prompt":"c"}]}"#);

    let fsync = fsync_rate(dir.path(), 2.0);
    let hello = serve(None).await?;
    let hyper_rate = load(&hello, &body, clients, seconds, lean).await;
    let db = sled::Config::new().path(dir.path().join("db")).cache_capacity(64 << 20).open()?;
    let log = std::fs::File::open(dir.path().join("db").join("db"))?;
    let (commits, inbox) = mpsc::channel::<Commit>();
    std::thread::spawn(move || committer(db, log, inbox));
    let durable = serve(Some(commits)).await?;
    let cpu_before = cpu_time();
    let floor = load(&durable, &body, clients, seconds, lean).await;
    let cpu = cpu_time() - cpu_before;
    let groups = GROUPS.load(Ordering::Relaxed);
    println!("fdatasync loop:        {fsync:>9.0}/s");
    println!("bare hyper POST:       {hyper_rate:>9.0}/s");
    println!("hyper + sled durable:  {floor:>9.0}/s = {:.1}% of bare hyper, {:.2}x fdatasync", 100.0 * floor / hyper_rate, floor / fsync);
    println!("  {:.1} writes per group, {:.1} us of process CPU per durable POST", floor * seconds / groups.max(1) as f64, cpu.as_secs_f64() * 1e6 / (floor * seconds));
    Ok(())
}

/// One thread takes every waiting request, writes them in one batch, syncs, answers all.
fn committer(db: sled::Db, log: std::fs::File, inbox: mpsc::Receiver<Commit>) {
    let tree = db.open_tree("journal").expect("a tree opens");
    while let Ok(first) = inbox.recv() {
        let mut group = vec![first];
        group.extend(inbox.try_iter());
        let mut batch = sled::Batch::default();
        for (entries, _) in &group {
            for (key, value) in entries {
                batch.insert(key.as_slice(), value.as_slice());
            }
        }
        tree.apply_batch(batch).expect("sled writes");
        db.flush().expect("sled flushes");
        log.sync_data().expect("the log syncs");
        GROUPS.fetch_add(1, Ordering::Relaxed);
        for (_, done) in group {
            let _ = done.send(());
        }
    }
}

/// A start's four entries: keys ordered by time as the journal's are, values of its sizes.
fn entries(body: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed).to_be_bytes();
    let key = |prefix: u8, tail: &[u8]| [&[prefix][..], &id, tail].concat();
    let mut created = body.to_vec();
    created.extend_from_slice(&[7u8; 60]);
    let mut all = vec![
        (key(b'e', &1u64.to_be_bytes()), created),
        (key(b'e', &2u64.to_be_bytes()), vec![3u8; 90]),
        (key(b'a', &[]), Vec::new()),
        (key(b'c', &[]), Vec::new()),
    ];
    let keep: usize = std::env::var("FLOOR_ENTRIES").ok().and_then(|n| n.parse().ok()).unwrap_or(4);
    all.truncate(keep);
    all
}

async fn serve(commits: Option<mpsc::Sender<Commit>>) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/v1/tasks", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let commits = commits.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| handle(request, commits.clone()));
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    Ok(url)
}

async fn handle(request: Request<Incoming>, commits: Option<mpsc::Sender<Commit>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let Some(commits) = commits else { return Ok(Response::new(Full::new(Bytes::from_static(b"hello")))) };
    let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let (done, wait) = oneshot::channel();
    let _ = commits.send((entries(&body), done));
    let _ = wait.await;
    let answer = serde_json::json!({"id": NEXT_ID.load(Ordering::Relaxed), "status": "running", "request": parsed, "steps": [{"step": 1, "status": "requested"}, {"step": 2, "status": "pending"}, {"step": 3, "status": "pending"}], "created_at": "2026-11-29T07:00:00.000Z"});
    let mut response = Response::new(Full::new(Bytes::from(answer.to_string())));
    response.headers_mut().insert("content-type", "application/json".parse().expect("a valid header"));
    *response.status_mut() = hyper::StatusCode::CREATED;
    Ok(response)
}

/// Requests per second from `clients` keep-alive clients for `seconds`.
async fn load(url: &str, body: &Bytes, clients: usize, seconds: f64, lean: bool) -> f64 {
    if lean {
        return lean_load(url, body, clients, seconds).await;
    }
    let http = reqwest::Client::builder().pool_max_idle_per_host(clients).build().expect("a client builds");
    let done = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (http, url, body, done) = (http.clone(), url.to_owned(), body.clone(), done.clone());
        workers.spawn(async move {
            while Instant::now() < deadline {
                let sent = http.post(&url).header("content-type", "application/json").body(body.clone()).send().await;
                if let Ok(response) = sent {
                    if response.bytes().await.is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// The same load from hyper's own client, one connection per client, no pool or URL parsing.
async fn lean_load(url: &str, body: &Bytes, clients: usize, seconds: f64) -> f64 {
    let uri: hyper::Uri = url.parse().expect("a valid url");
    let addr = format!("{}:{}", uri.host().unwrap_or("127.0.0.1"), uri.port_u16().unwrap_or(80));
    let done = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (addr, uri, body, done) = (addr.clone(), uri.clone(), body.clone(), done.clone());
        workers.spawn(async move {
            let stream = tokio::net::TcpStream::connect(&addr).await.expect("connects");
            let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
            tokio::spawn(connection);
            while Instant::now() < deadline {
                let request = Request::post(uri.clone()).header("host", "127.0.0.1").header("content-type", "application/json").body(Full::new(body.clone())).expect("a request");
                if let Ok(response) = sender.send_request(request).await {
                    if response.into_body().collect().await.is_ok() {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        });
    }
    while workers.join_next().await.is_some() {}
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn fsync_rate(dir: &std::path::Path, seconds: f64) -> f64 {
    let mut file = std::fs::File::create(dir.join("probe")).expect("a probe file");
    let (started, mut syncs) = (Instant::now(), 0u64);
    while started.elapsed().as_secs_f64() < seconds {
        file.write_all(&[0u8; 100]).expect("a write");
        file.sync_data().expect("a sync");
        syncs += 1;
    }
    syncs as f64 / started.elapsed().as_secs_f64()
}

fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the struct we pass and reads nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}
