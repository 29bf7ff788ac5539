//! `kaigo-hub replay dead|quarantine [--id ENVELOPE]`: re-drives parked messages once their cause
//! is fixed (a mapping corrected, a consent registered), through [`kaigo_hub::pipeline::replay`]:
//! the hops judge each replayed message again exactly as a new one, and messages parked for a
//! reason no later fact can cure stay where they are, said so one line each. Needs RabbitMQ: the
//! embedded in-memory bus lives inside one `serve` process.

use super::Failure;
use super::serve::runtime;
use kaigo_hub::bus::Topology;
use kaigo_hub::bus::rabbitmq::RabbitBus;
use kaigo_hub::config::Config;
use kaigo_hub::pipeline::replay::{self, Parked, Step};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// `dead` or `quarantine`.
    pub queue: String,
    /// Only this envelope id (default: every message in the queue).
    #[arg(long)]
    pub id: Option<String>,
}

pub fn run(config: Option<PathBuf>, a: Args) -> Result<u8, Failure> {
    let cfg = Config::load(config.as_deref()).map_err(Failure::usage)?;
    let url = cfg.amqp_url.clone().ok_or_else(|| {
        Failure::usage(
            "replay needs RabbitMQ: set KAIGO_AMQP_URL (the in-memory bus lives inside `serve`)",
        )
    })?;
    let parked: Parked = a.queue.parse().map_err(Failure::usage)?;
    let t = Topology::new(&cfg.prefix);
    runtime()?.block_on(async move {
        let bus = RabbitBus::connect(&url, "kaigo-hub-replay")
            .await
            .map_err(|e| Failure::usage(e.to_string()))?;
        let only = a.id.clone();
        let select = move |p: &kaigo_hub::bus::Props| {
            only.as_deref()
                .is_none_or(|id| p.message_id.as_deref() == Some(id))
        };
        let mut tell = |s: &Step| match s {
            Step::Replayed { envelope, exchange } => super::out!("replayed {envelope} → {exchange}"),
            Step::Kept { envelope, why } => super::out!("kept {envelope}: {why}"),
        };
        let summary = replay::replay(&bus, &t, parked, &select, &mut tell)
            .await
            .map_err(|e| Failure::usage(e.to_string()))?;
        let queue = match parked {
            Parked::Dead => t.dead_queue(),
            Parked::Quarantine => t.quarantine_queue(),
        };
        super::out!(
            "{} replayed, {} kept for a reason above, {} not selected; all kept ones stay in {queue}",
            summary.replayed,
            summary.held,
            summary.skipped
        );
        Ok(0)
    })
}
