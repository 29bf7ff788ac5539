//! What operators poll, without a key and without personal data: `GET /health` (200
//! `{"status":"ok","bus":…}` when the bus answers for the translate queue within
//! [`PROBE_TIMEOUT`], else 503 `{"status":"unavailable",…}`) and `GET /metrics` (the hub's counters
//! in the Prometheus text format 0.0.4, plus a `kaigo_queue_depth{queue=…}` gauge for the
//! translate, deliver, dead-letter and quarantine queues and each of the deliver hop's waiting
//! rooms (`deliver.wait.<ms>`: copies waiting to be tried again), `kaigo_bus_up`, and the audit
//! chains' checkpoints in the store, `kaigo_audit_checkpoint_seq{chain=…}` and
//! `kaigo_audit_checkpoint_head{chain=…}`, from memory).

use super::State;
use crate::pipeline::Hub;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde_json::json;
use std::time::Duration;

/// How long a probe waits for the bus.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Prometheus text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Messages waiting in `queue`, or why the bus could not say.
async fn depth(hub: &Hub, queue: &str) -> Result<u64, String> {
    match tokio::time::timeout(PROBE_TIMEOUT, hub.bus.queue_len(queue)).await {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
    }
}

/// `GET /health`.
pub async fn health(state: web::Data<State>) -> HttpResponse {
    let hub = &state.hub;
    let bus = hub.bus.name();
    match depth(hub, &hub.topology.translate_queue()).await {
        Ok(_) => HttpResponse::Ok().json(json!({ "status": "ok", "bus": bus })),
        Err(e) => {
            tracing::warn!(error = %e, "health: bus unavailable");
            HttpResponse::build(StatusCode::SERVICE_UNAVAILABLE).json(json!({
                "status": "unavailable",
                "bus": bus,
                "error": e,
            }))
        }
    }
}

/// `GET /metrics`.
pub async fn metrics(state: web::Data<State>) -> HttpResponse {
    let hub = &state.hub;
    let t = &hub.topology;
    // The hops' queues, the parked ones, and each waiting room (copies waiting to be tried
    // again), labelled by their name without the prefix (`translate`, `deliver.wait.1000`).
    let queues = [
        t.translate_queue(),
        t.deliver_queue(),
        t.dead_queue(),
        t.quarantine_queue(),
    ]
    .into_iter()
    .chain(t.wait_rooms().into_iter().map(|delay| t.wait_queue(delay)));
    let prefix = format!("{}.", t.prefix);
    let mut out = hub.metrics.render();
    out.push_str(&hub.audit.render_metrics());
    out.push_str("# HELP kaigo_queue_depth Messages waiting in a hub queue.\n# TYPE kaigo_queue_depth gauge\n");
    let mut up = 1;
    for name in queues {
        let role = name.strip_prefix(&prefix).unwrap_or(&name);
        match depth(hub, &name).await {
            Ok(n) => out.push_str(&format!("kaigo_queue_depth{{queue=\"{role}\"}} {n}\n")),
            Err(e) => {
                up = 0;
                tracing::warn!(queue = %name, error = %e, "metrics: queue depth unavailable");
            }
        }
    }
    out.push_str(&format!(
        "# HELP kaigo_bus_up 1 when the bus reported every queue depth.\n# TYPE kaigo_bus_up gauge\nkaigo_bus_up {up}\n"
    ));
    HttpResponse::Ok().content_type(PROMETHEUS_TEXT).body(out)
}
