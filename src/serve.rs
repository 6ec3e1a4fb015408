//! `stepwise serve`: load the configuration, claim the port, check the token and lock the data
//! dir (`startup`), optionally start the simulator, launch the engine and the HTTP API, and
//! stop both cleanly on SIGINT/SIGTERM.

pub mod startup;

use anyhow::{bail, Context};
use std::path::PathBuf;
use std::time::Duration;
use stepwise_engine::{Engine, StoreChoice};
use stepwise_server::config::{Config, EMBEDDED_DEFAULT};
use tokio_util::sync::CancellationToken;

/// How long open HTTP requests may take to finish after a shutdown signal.
const HTTP_GRACE: Duration = Duration::from_secs(10);

/// The configuration and where it came from.
pub fn load_config(path: Option<PathBuf>) -> anyhow::Result<(Config, String)> {
    match path {
        Some(path) => Ok((Config::load(&path)?, path.display().to_string())),
        None if std::path::Path::new("config.toml").exists() => Ok((
            Config::load("config.toml".as_ref())?,
            "./config.toml".into(),
        )),
        None => Ok((
            Config::from_toml(EMBEDDED_DEFAULT, "(embedded defaults)")?,
            "embedded defaults".into(),
        )),
    }
}

/// `stepwise check-config`: prints the effective configuration with secrets masked, or every
/// problem on its own line; warns (still a success) when no Replicate token is set.
pub fn check_config(path: Option<PathBuf>) -> anyhow::Result<()> {
    let (config, origin) = load_config(path).map_err(|error| {
        match error.downcast_ref::<stepwise_engine::config::ConfigError>() {
            Some(stepwise_engine::config::ConfigError::Invalid(problems)) => {
                anyhow::anyhow!("invalid config:\n  {}", problems.join("\n  "))
            }
            _ => error,
        }
    })?;
    println!(
        "# effective configuration from {origin} (secrets masked)\n{}",
        config.masked_toml()?
    );
    if config.engine.replicate.api_token.is_none() {
        eprintln!(
            "stepwise: warning: REPLICATE_API_TOKEN is not set: `stepwise serve` will refuse to \
             start without it (`stepwise serve --simulate` needs none)"
        );
    }
    Ok(())
}

pub fn run(config_path: Option<PathBuf>, simulate: bool) -> anyhow::Result<()> {
    let (mut config, origin) = load_config(config_path)?;
    tracing::info!(config = %origin, "Configuration loaded.");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        if !simulate && config.engine.replicate.api_token.is_none() {
            bail!("REPLICATE_API_TOKEN is not set (or run `stepwise serve --simulate` to try stepwise without an account)");
        }
        // Port, token, then lock: a busy port, a bad token or a second server on the same data
        // dir stops here, before the data dir is opened or any task resumed.
        let listener = startup::listen(&config.server.listen).await?;
        if !simulate {
            startup::check_token(&config.engine.replicate).await?;
        }
        let _lock = startup::DataDirLock::take(&config.engine.storage.data_dir)?;
        let _simulator = if simulate { Some(start_simulator(&mut config).await?) } else { None };
        serve(config, listener, simulate).await
    })
}

/// The simulator keeps its predictions in the data dir, so a restarted engine finds them again.
const SIMULATOR_STATE: &str = "simulator.jsonl";

async fn start_simulator(config: &mut Config) -> anyhow::Result<replicate_sim::SimHandle> {
    let data_dir = &config.engine.storage.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let state_file = data_dir.join(SIMULATOR_STATE);
    let listener = bind_simulator(&state_file).await?;
    let sim_config = replicate_sim::SimConfig {
        default_model: replicate_sim::ModelBehavior {
            starting_ms: 500,
            processing_ms: 2_000,
            ..Default::default()
        },
        state_file: Some(state_file.clone()),
        ..Default::default()
    };
    let token = sim_config.token.clone();
    let handle = replicate_sim::start(sim_config, listener)
        .await
        .with_context(|| format!("cannot start the simulator on {}", state_file.display()))?;
    tracing::info!(url = %handle.base_url(), "Simulated Replicate started.");
    config.engine.replicate.api_base = handle.base_url();
    config.engine.replicate.api_token = Some(token);
    // Show the push path too: the simulator posts webhooks back to this engine.
    let port_known = !config.server.listen.ends_with(":0");
    if config.engine.replicate.webhook_base_url.is_none() && port_known {
        config.engine.replicate.webhook_base_url = Some(format!("http://{}", config.server.listen));
    }
    Ok(handle)
}

/// A loopback listener for the simulator: on the port it had before (recorded in its state
/// file) when that is free, so the output URLs it served keep working; else on a random one.
async fn bind_simulator(state_file: &std::path::Path) -> anyhow::Result<tokio::net::TcpListener> {
    if let Some(addr) =
        replicate_sim::persist::previous_addr(state_file).filter(|a| a.ip().is_loopback())
    {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(error) => {
                tracing::warn!(%addr, %error, "The simulator's previous port is taken; using another. Output URLs it handed out before point at the old port and no longer load.")
            }
        }
    }
    Ok(tokio::net::TcpListener::bind("127.0.0.1:0").await?)
}

/// Runs the engine and its HTTP API; `simulate` also serves the example page at `/example/`.
async fn serve(
    mut config: Config,
    listener: tokio::net::TcpListener,
    simulate: bool,
) -> anyhow::Result<()> {
    if config.engine.replicate.webhook_base_url.is_some()
        && config.engine.replicate.webhook_secret.is_none()
    {
        config.engine.replicate.webhook_secret = Some(fetch_webhook_secret(&config).await?);
    }
    let shutdown = CancellationToken::new();
    let (engine, runtime) =
        Engine::launch(&config.engine_config(), StoreChoice::Disk, shutdown.clone()).with_context(
            || {
                format!(
                    "cannot start with data dir {}",
                    config.engine.storage.data_dir.display()
                )
            },
        )?;
    let address = listener.local_addr()?;
    // Tests and scripts read this line to find the port when `listen` asks for port 0.
    println!("stepwise listening on http://{address}");
    tracing::info!(%address, workflows = ?engine.workflow_names().collect::<Vec<_>>(), "Serving.");
    let http_stop = CancellationToken::new();
    let app = stepwise_server::router(engine, &config.server, http_stop.clone());
    let app = if simulate {
        app.merge(stepwise_server::example_router())
    } else {
        app
    };
    let http = tokio::spawn(stepwise_server::serve(listener, app, http_stop.clone()));
    let mut runtime = runtime;
    tokio::select! {
        () = wait_for_signal() => {}
        ended = &mut runtime => exit_on_journal_failure(ended),
    }
    tracing::info!("Shutting down: no new requests; finishing the current group.");
    http_stop.cancel();
    if tokio::time::timeout(HTTP_GRACE, http).await.is_err() {
        tracing::warn!("Open requests did not finish in time; closing them.");
    }
    shutdown.cancel();
    runtime
        .await
        .context("the runtime panicked")?
        .context("the journal failed")?;
    tracing::info!("Stopped cleanly.");
    Ok(())
}

/// The runtime ended by itself: its journal failed (or it panicked). What is durable is
/// only known from disk, so exit at once, answering none of the requests it left waiting
/// (`stepwise_server::error::unanswered`); the supervisor starts the engine again.
fn exit_on_journal_failure(
    ended: Result<Result<(), stepwise_engine::journal::StoreError>, tokio::task::JoinError>,
) -> ! {
    match ended {
        Ok(Err(error)) => {
            tracing::error!(%error, "The journal failed; exiting so that the engine restarts from what is on disk.")
        }
        Err(error) => {
            tracing::error!(%error, "The runtime panicked; exiting so that the engine restarts from what is on disk.")
        }
        Ok(Ok(())) => tracing::error!("The runtime stopped unexpectedly; exiting."),
    }
    std::process::exit(EXIT_JOURNAL_FAILED)
}

/// The exit code after a journal failure (EX_IOERR in sysexits.h).
const EXIT_JOURNAL_FAILED: i32 = 74;

/// Webhooks are on but no secret was configured: ask Replicate for the account's, retrying
/// briefly so a flaky start does not fail the whole process.
async fn fetch_webhook_secret(config: &Config) -> anyhow::Result<String> {
    let client = stepwise_engine::replicate::ReplicateClient::new(&config.engine.replicate)?;
    let mut attempt = 0;
    loop {
        match client.webhook_secret().await {
            Ok(secret) => {
                tracing::info!("Webhook signing secret fetched from Replicate.");
                return Ok(secret);
            }
            Err(stepwise_engine::replicate::ClientError::Retryable { message, .. })
                if attempt < 5 =>
            {
                attempt += 1;
                tracing::warn!(%message, attempt, "Fetching the webhook secret failed; retrying.");
                tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
            }
            Err(error) => bail!("cannot fetch the webhook signing secret from Replicate: {error}"),
        }
    }
}

/// The first SIGINT or SIGTERM starts a graceful shutdown; a second one exits at once.
async fn wait_for_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing a SIGTERM handler only fails outside a Tokio runtime");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::warn!("Second signal: exiting now.");
        std::process::exit(130);
    });
}
