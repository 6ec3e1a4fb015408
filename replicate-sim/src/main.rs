//! The `replicate-sim` binary: parses the command line, binds the listener and serves until
//! Ctrl-C. All behaviour lives in the library.

use clap::{Parser, ValueEnum};
use replicate_sim::{EndpointFaults, Faults, ModelBehavior, OutputShape, RateLimits, SimConfig};

#[derive(Parser, Debug)]
#[command(about = "A simulator of Replicate's HTTP API v1")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: String,
    /// The only accepted API token [default: $REPLICATE_API_TOKEN, else r8_sim_token].
    #[arg(long)]
    token: Option<String>,
    #[arg(long, default_value_t = 50)]
    starting_ms: u64,
    #[arg(long, default_value_t = 200)]
    processing_ms: u64,
    /// Chance (0.0..=1.0) that a prediction fails.
    #[arg(long, default_value_t = 0.0)]
    failure_rate: f64,
    #[arg(long, value_enum, default_value_t = Output::Url)]
    output: Output,
    /// Base URL used in returned links; defaults to http://{bound address}.
    #[arg(long)]
    public_url: Option<String>,
    /// Leave out optional keys of running predictions (2023 response style).
    #[arg(long)]
    omit_optional_keys: bool,
    /// Seed for ids, failures and fault draws.
    #[arg(long)]
    seed: Option<u64>,
    /// Enforce Replicate's real limits: 600 creates/min and 3000 other requests/min.
    #[arg(long, conflicts_with = "low_credit")]
    rate_limits: bool,
    /// Enforce the low-credit limits: 6 creates/min with a burst of 1.
    #[arg(long)]
    low_credit: bool,
    /// Multiplies the retry schedule of terminal webhooks (last retry 60 s after completion
    /// at 1.0).
    #[arg(long, default_value_t = 1.0, value_parser = non_negative)]
    webhook_retry_scale: f64,
    /// A fixed whsec_<base64> webhook signing secret [default: a random one].
    #[arg(long, value_parser = webhook_secret)]
    webhook_secret: Option<String>,
    /// Keep predictions and the webhook secret in this file, so a restart serves them again.
    #[arg(long)]
    state_file: Option<std::path::PathBuf>,
    #[command(flatten)]
    faults: FaultArgs,
}

/// Fault switches applied to every /v1 endpoint.
#[derive(clap::Args, Debug)]
struct FaultArgs {
    /// Chance of an injected 500/502/503/504 without doing the work.
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    error_rate: f64,
    /// Chance of doing the work and then answering 503.
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    error_after_work_rate: f64,
    /// Chance of dropping the connection without doing the work.
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    reset_rate: f64,
    /// Chance of doing the work and then dropping the connection.
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    reset_after_work_rate: f64,
    /// Chance of never answering.
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    hang_rate: f64,
    /// Extra latency per request, uniform in MIN:MAX milliseconds.
    #[arg(long, value_parser = latency, default_value = "0:0")]
    latency_ms: (u64, u64),
    /// Chance that a new prediction cold-boots.
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    cold_boot_rate: f64,
    /// How long a cold boot keeps a prediction `starting`.
    #[arg(long, default_value_t = 30_000)]
    cold_boot_ms: u64,
    /// Send a Retry-After header on every 429.
    #[arg(long)]
    retry_after_header: bool,
    /// Chance that a webhook attempt is silently not sent (terminal ones are retried).
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    webhook_drop_rate: f64,
    /// Chance that a sent webhook is sent twice with the same webhook-id.
    #[arg(long, default_value_t = 0.0, value_parser = rate)]
    webhook_duplicate_rate: f64,
}

impl FaultArgs {
    fn faults(&self) -> Faults {
        Faults {
            retry_after_header: self.retry_after_header,
            cold_boot_rate: self.cold_boot_rate,
            cold_boot_ms: self.cold_boot_ms,
            webhook_drop_rate: self.webhook_drop_rate,
            webhook_duplicate_rate: self.webhook_duplicate_rate,
            ..Faults::everywhere(EndpointFaults {
                error_rate: self.error_rate,
                error_after_work_rate: self.error_after_work_rate,
                reset_rate: self.reset_rate,
                reset_after_work_rate: self.reset_after_work_rate,
                hang_rate: self.hang_rate,
                latency_ms: self.latency_ms,
                ..EndpointFaults::default()
            })
        }
    }
}

fn rate(text: &str) -> Result<f64, String> {
    let value: f64 = text.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err("must be within 0.0..=1.0".into())
    }
}

fn non_negative(text: &str) -> Result<f64, String> {
    let value: f64 = text.parse().map_err(|e| format!("{e}"))?;
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err("must be a finite number >= 0".into())
    }
}

fn webhook_secret(text: &str) -> Result<String, String> {
    if replicate_sim::webhooks::valid_secret(text) {
        Ok(text.to_string())
    } else {
        Err("must be whsec_ followed by base64".into())
    }
}

fn latency(text: &str) -> Result<(u64, u64), String> {
    let (min, max) = text.split_once(':').unwrap_or((text, text));
    let parse = |v: &str| v.trim().parse::<u64>().map_err(|e| format!("{e}"));
    let (min, max) = (parse(min)?, parse(max)?);
    if min > max {
        return Err("MIN must not exceed MAX".into());
    }
    Ok((min, max))
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Output {
    Url,
    UrlList,
    Echo,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.failure_rate),
        "--failure-rate must be within 0.0..=1.0"
    );
    tracing::debug!(?args, "Parsed the command line.");
    let output = match args.output {
        Output::Url => OutputShape::Url,
        Output::UrlList => OutputShape::UrlList,
        Output::Echo => OutputShape::Echo,
    };
    let config = SimConfig {
        token: args
            .token
            .or_else(|| {
                std::env::var("REPLICATE_API_TOKEN")
                    .ok()
                    .filter(|t| !t.is_empty())
            })
            .unwrap_or_else(|| SimConfig::default().token),
        default_model: ModelBehavior {
            starting_ms: args.starting_ms,
            processing_ms: args.processing_ms,
            failure_rate: args.failure_rate,
            output,
            ..ModelBehavior::default()
        },
        public_url: args.public_url,
        omit_optional_keys: args.omit_optional_keys,
        seed: args.seed,
        webhook_secret: args.webhook_secret,
        webhook_retry_scale: args.webhook_retry_scale,
        state_file: args.state_file,
        rate_limits: if args.low_credit {
            Some(RateLimits::low_credit())
        } else {
            args.rate_limits.then(RateLimits::replicate)
        },
        ..SimConfig::default()
    };
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let sim = replicate_sim::start(config, listener).await?;
    sim.set_faults(args.faults.faults());
    println!("replicate-sim listening on http://{}", sim.addr());
    tracing::info!(addr = %sim.addr(), base_url = %sim.base_url(), "Simulator started.");
    tokio::signal::ctrl_c().await?;
    tracing::info!("Shutdown requested; stopping the simulator.");
    sim.shutdown().await;
    tracing::info!("Simulator stopped.");
    Ok(())
}
