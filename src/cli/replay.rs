//! `kaigo-hub replay dead|quarantine [--id ENVELOPE]`: re-drives parked messages once their cause
//! is fixed (a mapping corrected, a consent registered), through [`kaigo_hub::pipeline::replay`]:
//! the hops judge each replayed message again exactly as a new one, and messages parked for a
//! reason no later fact can cure stay where they are, said so one line each. Each message put
//! back or kept is an audit event in the CLI's chain (`super::audit_trail`). Needs RabbitMQ (the
//! embedded in-memory bus lives inside one `serve` process) and the hub's store (for the audit
//! chain's checkpoint).

use super::Failure;
use super::audit_trail::Trail;
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
    let rt = runtime()?;
    let (store, place) = rt.block_on(super::open_store(&cfg))?;
    eprintln!("kaigo-hub: store: {place}");
    let mut trail = Trail::open(&cfg, store, true)?;
    let said = rt.block_on(async {
        let bus = RabbitBus::connect(&url, "kaigo-hub-replay")
            .await
            .map_err(|e| Failure::usage(e.to_string()))?;
        let only = a.id.clone();
        let select = move |p: &kaigo_hub::bus::Props| {
            only.as_deref()
                .is_none_or(|id| p.message_id.as_deref() == Some(id))
        };
        // The first audit event that could not be written, told after the replay.
        let mut unaudited: Option<Failure> = None;
        let mut tell = |s: &Step, parked: &kaigo_hub::bus::Props| {
            let audited = match s {
                Step::Replayed { envelope, exchange } => {
                    super::out!("replayed {envelope} → {exchange}");
                    trail.replayed(envelope, parked, exchange)
                }
                Step::Kept {
                    envelope,
                    code,
                    why,
                } => {
                    super::out!("kept {envelope}: {why}");
                    trail.kept(envelope, parked, code)
                }
            };
            if let Err(f) = audited {
                unaudited.get_or_insert(f);
            }
        };
        let summary = replay::replay(&bus, &t, parked, &select, &mut tell)
            .await
            .map_err(|e| Failure::usage(e.to_string()))?;
        bus.close().await;
        if let Some(f) = unaudited {
            return Err(f);
        }
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
    });
    let finished = trail.finish();
    let code = said?;
    finished?;
    Ok(code)
}
