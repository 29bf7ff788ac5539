//! `kaigo-hub replay dead|quarantine [--id ENVELOPE]`: re-drives parked messages once their cause
//! is fixed (a mapping corrected, a consent registered). Raw messages go back to the ingress
//! exchange (translate re-checks consent and re-maps), canonical documents to the canonical
//! exchange (deliver re-checks consent per recipient). Messages that never passed a source's
//! identity check (no `x-kaigo-source`), or whose sender claimed another party's identity
//! (`sender-mismatch`), are left where they are. Needs RabbitMQ: the embedded
//! in-memory bus lives inside one `serve` process.

use super::Failure;
use super::serve::runtime;
use kaigo_hub::bus::rabbitmq::RabbitBus;
use kaigo_hub::bus::{Bus, Topology};
use kaigo_hub::config::Config;
use kaigo_hub::pipeline::headers as h;
use std::path::PathBuf;
use std::time::Duration;

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
    let t = Topology::new(&cfg.prefix);
    let (queue, park) = match a.queue.as_str() {
        "dead" => (t.dead_queue(), t.dead()),
        "quarantine" => (t.quarantine_queue(), t.quarantine()),
        q => {
            return Err(Failure::usage(format!(
                "replay dead or quarantine, not `{q}`"
            )));
        }
    };
    runtime()?.block_on(async move {
        let bus = RabbitBus::connect(&url, "kaigo-hub-replay")
            .await
            .map_err(|e| Failure::usage(e.to_string()))?;
        let waiting = bus
            .queue_len(&queue)
            .await
            .map_err(|e| Failure::usage(e.to_string()))?;
        let mut consumer = bus
            .consume(&queue, 16)
            .await
            .map_err(|e| Failure::usage(e.to_string()))?;
        let (mut replayed, mut kept) = (0u64, 0u64);
        for _ in 0..waiting {
            let Ok(Some(Ok(d))) =
                tokio::time::timeout(Duration::from_secs(5), consumer.next()).await
            else {
                break;
            };
            let id = d.props.message_id.clone().unwrap_or_default();
            let wanted = a.id.as_deref().is_none_or(|x| x == id);
            // A sender that claimed another party's identity: no later fix makes that true.
            let impostor = d.props.header(h::REASON) == Some("sender-mismatch");
            if !wanted || d.props.header(h::SOURCE).is_none() || impostor {
                // Keep it: back to the tail of the same queue, so each message is visited once.
                kept += 1;
                bus.publish(&park, &d.routing_key, &d.props, &d.body)
                    .await
                    .map_err(|e| Failure::usage(e.to_string()))?;
                d.ack().await.map_err(|e| Failure::usage(e.to_string()))?;
                continue;
            }
            let mut props = d.props.clone();
            // A fresh start: no verdict, no recipient, no attempts counted, no broker marks
            // (a copy that ran out of attempts goes to every recipient again; those served
            // before are skipped by their delivery keys).
            for k in [h::ERROR, h::REASON, h::RECIPIENT, h::RETRY_FOR, h::ATTEMPT] {
                props.headers.remove(k);
            }
            props.strip_dead_letter_marks();
            props.headers.insert(h::HOP.into(), "replay".into());
            let canonical = d
                .props
                .header(h::HOP)
                .is_some_and(|hop| hop == "translate" || hop == "deliver");
            let (exchange, key) = if canonical {
                (t.canonical(), d.routing_key.clone())
            } else {
                (t.ingress(), d.routing_key.clone())
            };
            bus.publish(&exchange, &key, &props, &d.body)
                .await
                .map_err(|e| Failure::usage(e.to_string()))?;
            d.ack().await.map_err(|e| Failure::usage(e.to_string()))?;
            replayed += 1;
            super::out!("replayed {id} → {exchange}");
        }
        super::out!("{replayed} replayed, {kept} left in {queue}");
        Ok(0)
    })
}
