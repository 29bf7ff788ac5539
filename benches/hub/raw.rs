//! Part 1, the raw ceiling: the hub's own `RabbitBus` publishing hub-sized persistent messages with
//! confirms to a durable quorum queue from concurrent tasks while one consumer acks them.

use crate::arrivals::{Arrivals, spawn_collector};
use crate::cleanup::cleanup_report;
use crate::cpu::{broker_pid, cpu_between, cpu_snap};
use crate::stats::{ms, pct, rate};
use crate::{DRAIN_CAP, PRODUCE_CAP, RAW_WARMUP, unique};
use kaigo_hub::bus::rabbitmq::RabbitBus;
use kaigo_hub::bus::{Bus, Props, Topology};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub(crate) struct RawResult {
    pub(crate) publish_rate: f64,
    pub(crate) consume_rate: f64,
}

impl RawResult {
    /// The sustainable rate: a message has not passed the queue until it was consumed.
    pub(crate) fn ceiling(&self) -> f64 {
        self.publish_rate.min(self.consume_rate)
    }
}

/// Props like the hub's egress messages (same header names, similar sizes).
pub(crate) fn hub_like_props(id: String) -> Props {
    let mut p = Props {
        message_id: Some(id.clone()),
        correlation_id: Some(id),
        content_type: Some("text/csv; charset=Shift_JIS".into()),
        user_id: None,
        headers: Default::default(),
    };
    for (k, v) in [
        ("x-kaigo-source", "0300000100"),
        ("x-kaigo-format", "csv"),
        ("x-kaigo-hop", "deliver"),
        ("x-kaigo-mapping", "careplan-up2kyo-care-plan@1"),
        ("x-kaigo-document", "CarePlan@1"),
        ("x-kaigo-category", "care-plan"),
        ("x-kaigo-doc-index", "0"),
        ("x-kaigo-recipient", "0300000005"),
        (
            "x-kaigo-file-name",
            "UP2KYO_0300000100_43_0300000005_11_20251025200201.CSV",
        ),
        (
            "x-kaigo-subject",
            "3f9a0c5e7b1d24680ace13579bdf02468ace13579bdf02468ace13579bdf0246",
        ),
    ] {
        p.headers.insert(k.into(), v.into());
    }
    p
}

/// One raw pass: `n` messages from `tasks` publishers; prints its line unless `quiet`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn raw_pass(
    bus: &Arc<dyn Bus>,
    t: &Topology,
    recipient: &str,
    body: &Arc<Vec<u8>>,
    n: usize,
    tasks: usize,
    tag: &str,
    label: Option<&str>,
) -> Result<RawResult, String> {
    let arrivals = Arc::new(Arrivals::default());
    let collector = spawn_collector(bus.clone(), t.out_queue(recipient), arrivals.clone());
    let broker = broker_pid();
    let before = cpu_snap(broker);
    let start = Instant::now();
    let mut producers = Vec::new();
    for k in 0..tasks {
        let (bus, body, exchange, key, tag) = (
            bus.clone(),
            body.clone(),
            t.egress(),
            recipient.to_string(),
            tag.to_string(),
        );
        let share = n / tasks + usize::from(k < n % tasks);
        producers.push(tokio::spawn(async move {
            let mut sent = Vec::with_capacity(share);
            let mut last = start;
            for i in 0..share {
                if start.elapsed() > PRODUCE_CAP {
                    break;
                }
                let id = format!("{tag}-{k}-{i}");
                let props = hub_like_props(id.clone());
                let t0 = Instant::now();
                bus.publish(&exchange, &key, &props, &body)
                    .await
                    .map_err(|e| e.to_string())?;
                last = Instant::now();
                sent.push((id, t0));
            }
            Ok::<_, String>((sent, last))
        }));
    }
    let mut sent: HashMap<String, Instant> = HashMap::with_capacity(n);
    let mut last_confirm = start;
    let mut failure = None;
    for p in producers {
        match p.await.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok((s, last)) => {
                sent.extend(s);
                last_confirm = last_confirm.max(last);
            }
            Err(e) => failure = Some(e),
        }
    }
    let complete = arrivals.wait_for(sent.len(), DRAIN_CAP).await;
    let end = Instant::now();
    let after = cpu_snap(broker);
    arrivals.stop.store(true, Ordering::SeqCst);
    let collected = collector.await.map_err(|e| e.to_string())?;
    if let Some(e) = failure {
        return Err(format!("publishing failed: {e}"));
    }
    collected?;
    let got = arrivals.take();
    if !complete {
        println!(
            "  warning: only {} of {} messages arrived within {} s",
            got.len(),
            sent.len(),
            DRAIN_CAP.as_secs()
        );
    }
    let last_ack = got.iter().map(|a| a.1).max().unwrap_or(start);
    let mut lat: Vec<Duration> = got
        .iter()
        .filter_map(|(id, at)| sent.get(id).map(|t0| at.saturating_duration_since(*t0)))
        .collect();
    lat.sort();
    let r = RawResult {
        publish_rate: rate(sent.len(), last_confirm - start),
        consume_rate: rate(got.len(), last_ack - start),
    };
    if let Some(label) = label {
        let cpu = cpu_between(&before, &after, end - start);
        println!(
            "{label:<52} {:>6} msgs  publish-confirm {:>6.0} msg/s  consume-ack {:>6.0} msg/s  publish→consume p50 {} p99 {}",
            sent.len(),
            r.publish_rate,
            r.consume_rate,
            ms(pct(&lat, 0.50)),
            ms(pct(&lat, 0.99))
        );
        println!(
            "    CPU: {}; per message {}",
            cpu.detail,
            cpu.per_msg(r.ceiling())
        );
    }
    Ok(r)
}

/// The raw ceiling for one body at each producer count, on one queue; cleaned up afterwards.
pub(crate) async fn raw_case(
    url: &str,
    label: &str,
    body: Vec<u8>,
    n: usize,
    producer_counts: &[usize],
    tag: &str,
) -> Result<Vec<RawResult>, String> {
    let bus: Arc<dyn Bus> = Arc::new(
        RabbitBus::connect(url, "kaigo-hub-bench-raw")
            .await
            .map_err(|e| e.to_string())?,
    );
    let t = Topology::new(&unique(tag));
    let recipient = "0300000005".to_string();
    let body = Arc::new(body);
    let result = async {
        bus.declare(&t, std::slice::from_ref(&recipient))
            .await
            .map_err(|e| e.to_string())?;
        raw_pass(&bus, &t, &recipient, &body, RAW_WARMUP, 4, "warm", None).await?;
        let mut out = Vec::new();
        for &p in producer_counts {
            let line = format!("{label}, {p} publishers");
            out.push(
                raw_pass(
                    &bus,
                    &t,
                    &recipient,
                    &body,
                    n,
                    p,
                    &format!("m{p}"),
                    Some(&line),
                )
                .await?,
            );
        }
        Ok::<_, String>(out)
    }
    .await;
    if let Err(e) = &result {
        println!("{label:<44} FAILED: {e}");
    }
    cleanup_report(url, &t, &[recipient]).await;
    result
}
