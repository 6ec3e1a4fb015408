//! The `start` scenario (being written).

use super::Report;

#[derive(clap::Args)]
pub struct Options {}

pub async fn run(_options: Options) -> anyhow::Result<Report> {
    anyhow::bail!("the start scenario is not written yet")
}
