//! References measured in the same run as the engine, so ratios hold on a noisy machine:
//!
//! - the bare-HTTP ceiling: a minimal hyper 1 server (HTTP/1.1, the same tokio runtime as
//!   the engine's API) that reads the request body and answers `hello`, driven by the same
//!   load generator with the same number of clients;
//! - the durability ceiling: one thread appending 100 bytes and calling `fdatasync`
//!   (`File::sync_data`) in a loop, on the same file system as the engine's data dir.
//!
//! The `hello` scenario runs the bare-HTTP server alone, for an outside load generator.

use super::load::{self, Outcome, Plan};
use super::wrk::Driver;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// A running `hello` server on 127.0.0.1.
pub struct Hello {
    pub url: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Hello {
    pub async fn start() -> anyhow::Result<Hello> {
        Hello::serve(hello).await
    }

    /// The same server, answering every request with `handler`.
    pub async fn serve<F, Fut>(handler: F) -> anyhow::Result<Hello>
    where
        F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Response<Full<Bytes>>, Infallible>>
            + Send
            + 'static,
    {
        Hello::serve_on(0, handler).await
    }

    /// [`Hello::serve`] on 127.0.0.1:`port` (0: any free port).
    pub async fn serve_on<F, Fut>(port: u16, handler: F) -> anyhow::Result<Hello>
    where
        F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Response<Full<Bytes>>, Infallible>>
            + Send
            + 'static,
    {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            loop {
                let stream = tokio::select! {
                    _ = token.cancelled() => break,
                    accepted = listener.accept() => match accepted {
                        // TCP_NODELAY, as the engine's API server sets it.
                        Ok((stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            stream
                        }
                        Err(_) => continue,
                    },
                };
                let token = token.clone();
                let handler = handler.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(handler);
                    let connection = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::pin!(connection);
                    tokio::select! {
                        _ = connection.as_mut() => {}
                        _ = token.cancelled() => {
                            connection.as_mut().graceful_shutdown();
                            let _ = connection.await;
                        }
                    }
                });
            }
        });
        Ok(Hello { url, stop, task })
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Reads the whole request body (as any real handler would), then answers `hello`.
async fn hello(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let _ = request.into_body().collect().await;
    Ok(Response::new(Full::new(Bytes::from_static(b"hello"))))
}

/// The `hello` scenario: the bare-HTTP reference alone.
#[derive(clap::Args)]
pub struct HelloOptions {
    /// Serve for this many seconds, then print how many requests came (Ctrl-C ends sooner).
    #[arg(long, default_value_t = 60.0)]
    seconds: f64,
    /// Listen on 127.0.0.1:PORT (0: any free port; the URL is printed first either way).
    #[arg(long, default_value_t = 0)]
    port: u16,
}

/// Serves `hello` on loopback for `--seconds`, so that `wrk` (or any client in another
/// process) can measure the ceiling without sharing this process with its load generator.
/// Prints `bare hyper listening on URL` at once, for scripts.
pub async fn hello_alone(options: HelloOptions) -> anyhow::Result<super::Report> {
    anyhow::ensure!(
        options.seconds.is_finite() && options.seconds > 0.0,
        "--seconds must be positive"
    );
    let served = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = served.clone();
    let server = Hello::serve_on(options.port, move |request| {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        hello(request)
    })
    .await?;
    let url = server.url.clone();
    println!("bare hyper listening on {url}");
    let started = Instant::now();
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs_f64(options.seconds)) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    let seconds = started.elapsed().as_secs_f64();
    server.stop().await;
    let requests = served.load(std::sync::atomic::Ordering::Relaxed);
    Ok(super::Report {
        table: format!("bare hyper served {requests} requests in {seconds:.1} s"),
        json: json!({ "scenario": "hello", "url": url, "requests": requests, "seconds": seconds }),
    })
}

/// `GET {hello}{path}` under `plan`, sent by `driver`, against a fresh server.
pub async fn hello_get(plan: Plan, driver: Driver, path: &str) -> anyhow::Result<Outcome> {
    let server = Hello::start().await?;
    let path = path.to_owned();
    let outcome = load::requests("bare hyper", plan, driver, &server.url, 200, move |_| {
        (Method::GET, path.clone(), Bytes::new())
    })
    .await;
    server.stop().await;
    Ok(outcome)
}

/// `POST {hello}{path}` with `body` (JSON) under `plan`, sent by `driver`, against a fresh
/// server.
pub async fn hello_post(
    plan: Plan,
    driver: Driver,
    path: &str,
    body: Bytes,
) -> anyhow::Result<Outcome> {
    let server = Hello::start().await?;
    let outcome = load::post_json("bare hyper", plan, driver, &server.url, path, body, 200).await;
    server.stop().await;
    Ok(outcome)
}

/// What the fdatasync loop measured.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Fsync {
    pub syncs: u64,
    pub seconds: f64,
    pub per_second: f64,
    pub mean_ms: f64,
}

/// Appends 100 bytes and `fdatasync`s, over and over for `seconds`, in a file in `dir`
/// (removed afterwards). Runs on a blocking thread: one writer, no overlap, the rate a
/// journal that syncs every write on its own would reach.
pub async fn fsync_rate(dir: &Path, seconds: f64) -> anyhow::Result<Fsync> {
    let path = dir.join("fdatasync-probe");
    let run = move || -> anyhow::Result<Fsync> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        let record = [b'x'; 100];
        let started = Instant::now();
        let budget = Duration::from_secs_f64(seconds);
        let mut syncs = 0u64;
        while started.elapsed() < budget || syncs == 0 {
            file.write_all(&record)?;
            file.sync_data()?;
            syncs += 1;
        }
        let elapsed = started.elapsed().as_secs_f64();
        drop(file);
        let _ = std::fs::remove_file(&path);
        Ok(Fsync {
            syncs,
            seconds: elapsed,
            per_second: syncs as f64 / elapsed,
            mean_ms: elapsed * 1000.0 / syncs as f64,
        })
    };
    tokio::task::spawn_blocking(run).await?
}

impl Fsync {
    pub fn json(&self) -> Value {
        json!(self)
    }

    /// The loop's rounds as one run: their syncs and time added up.
    pub fn merge(parts: &[Fsync]) -> Fsync {
        let syncs = parts.iter().map(|part| part.syncs).sum::<u64>();
        let seconds = parts.iter().map(|part| part.seconds).sum::<f64>();
        Fsync {
            syncs,
            seconds,
            per_second: syncs as f64 / seconds.max(1e-9),
            mean_ms: seconds * 1000.0 / syncs.max(1) as f64,
        }
    }
}
