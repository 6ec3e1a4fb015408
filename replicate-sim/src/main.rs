//! The `replicate-sim` binary: parses the command line, binds the listener and serves until
//! Ctrl-C. All behaviour lives in the library.

use clap::{Parser, ValueEnum};
use replicate_sim::{ModelBehavior, OutputShape, SimConfig};

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
        ..SimConfig::default()
    };
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let sim = replicate_sim::start(config, listener).await?;
    println!("replicate-sim listening on http://{}", sim.addr());
    tracing::info!(addr = %sim.addr(), base_url = %sim.base_url(), "Simulator started.");
    tokio::signal::ctrl_c().await?;
    tracing::info!("Shutdown requested; stopping the simulator.");
    sim.shutdown().await;
    tracing::info!("Simulator stopped.");
    Ok(())
}
