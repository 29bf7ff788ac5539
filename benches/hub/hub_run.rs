//! Part 2, the hub: built on RabbitMQ or the memory bus, its hops running, concurrent tasks calling
//! `ingress::accept`, the recipient's queue consumed: accepted→delivered msg/s and accept→arrival
//! latency.

use crate::arrivals::{Arrivals, spawn_collector};
use crate::cleanup::cleanup_report;
use crate::cpu::{Cpu, broker_pid, cpu_between, cpu_snap};
use crate::sample::{Identified, Sample, amqp_recipient_for, derived_parties, grant, identify};
use crate::stats::{ms, pct, rate};
use crate::{
    BUSY_RETRY, DRAIN_CAP, HUB_WARMUP, LINKS, PRODUCE_CAP, SUBJECT_KEY, env_num, prefetch, root,
    unique,
};

use kaigo_hub::bus::rabbitmq::RabbitBus;
use kaigo_hub::bus::{Bus, BusError, Topology};
use kaigo_hub::config::Config;
use kaigo_hub::consent::Subject;
use kaigo_hub::mapping::Input;
use kaigo_hub::pipeline::ingress::{Refusal, Submission, accept};
use kaigo_hub::pipeline::{Hub, consent_feed, deliver, translate};
use kaigo_hub::serve;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub(crate) fn counters(hub: &Hub) -> String {
    let m = &hub.metrics;
    format!(
        "accepted {} (of them mapped once, translate taking ingress's result: {}) translated {} delivered {} (in {} delivery-key transactions) permit {} deny {} indeterminate {} quarantined {} dead {} refused at max_backlog and sent again {}",
        m.accepted.load(Ordering::Relaxed),
        m.mapped_once.load(Ordering::Relaxed),
        m.translated.load(Ordering::Relaxed),
        m.delivered.load(Ordering::Relaxed),
        m.delivery_key_groups.load(Ordering::Relaxed),
        m.permit.load(Ordering::Relaxed),
        m.deny.load(Ordering::Relaxed),
        m.indeterminate.load(Ordering::Relaxed),
        m.quarantined.load(Ordering::Relaxed),
        m.dead.load(Ordering::Relaxed),
        m.busy.load(Ordering::Relaxed),
    )
}

pub(crate) struct HubResult {
    pub(crate) accepted: usize,
    pub(crate) refused: usize,
    pub(crate) docs: usize,
    pub(crate) recipients: usize,
    pub(crate) delivered: usize,
    pub(crate) duplicates: usize,
    pub(crate) accept_rate: f64,
    pub(crate) e2e_rate: f64,
    pub(crate) accept_p50: Duration,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    pub(crate) cpu: Cpu,
    pub(crate) audit_per_msg: f64,
    pub(crate) audit_flush: Duration,
    pub(crate) counters: String,
}

impl HubResult {
    pub(crate) fn passes(&self) -> usize {
        1 + self.docs + self.docs * self.recipients
    }
}

/// Accepts `n` copies of the sample from `tasks` tasks; returns (envelope, accept call start,
/// accept return) per accepted message, the number refused and the first refusal.
pub(crate) async fn accept_many(
    hub: &Arc<Hub>,
    s: &Arc<Sample>,
    sender: &str,
    n: usize,
    tasks: usize,
) -> (Vec<(String, Instant, Instant)>, usize, Option<String>) {
    let start = Instant::now();
    let mut hs = Vec::new();
    for k in 0..tasks {
        let (hub, s, sender) = (hub.clone(), s.clone(), sender.to_string());
        let share = n / tasks + usize::from(k < n % tasks);
        hs.push(tokio::spawn(async move {
            let party = hub
                .parties
                .current()
                .get(&sender)
                .expect("sender checked")
                .clone();
            let (mut ok, mut refused, mut first) = (Vec::with_capacity(share), 0, None);
            for _ in 0..share {
                if start.elapsed() > PRODUCE_CAP {
                    break;
                }
                let t0 = Instant::now();
                loop {
                    let sub = Submission {
                        party: &party,
                        bytes: &s.bytes,
                        file_name: s.file_name.as_deref(),
                        correlation_id: None,
                        via: s.via,
                    };
                    match accept(&hub, sub).await {
                        Ok(a) => ok.push((a.envelope_id, t0, Instant::now())),
                        // At `max_backlog`: a sender that honours the 503 waits and sends the
                        // same message again; its latency counts from the first try.
                        Err(Refusal::Unavailable { .. })
                            if hub.backlog.bound() > 0 && start.elapsed() <= PRODUCE_CAP =>
                        {
                            tokio::time::sleep(BUSY_RETRY).await;
                            continue;
                        }
                        Err(e) => {
                            refused += 1;
                            first.get_or_insert_with(|| format!("{e:?}"));
                        }
                    }
                    break;
                }
            }
            (ok, refused, first)
        }));
    }
    let (mut all, mut refused, mut first) = (Vec::with_capacity(n), 0, None);
    for h in hs {
        if let Ok((ok, r, f)) = h.await {
            all.extend(ok);
            refused += r;
            first = first.or(f);
        }
    }
    (all, refused, first)
}

/// The measured part of one hub run, once the hub is built, seeded and its hops started.
pub(crate) struct Running<'a> {
    pub(crate) hub: &'a Arc<Hub>,
    pub(crate) sample: &'a Arc<Sample>,
    pub(crate) id: &'a Identified,
    pub(crate) arrivals: &'a Arc<Arrivals>,
    pub(crate) broker: Option<u32>,
}

impl Running<'_> {
    pub(crate) async fn warm_up(&self, tasks: usize) -> Result<usize, String> {
        let (warm, _, first) =
            accept_many(self.hub, self.sample, &self.id.sender, HUB_WARMUP, tasks).await;
        if warm.is_empty() {
            return Err(format!(
                "warm-up: every message was refused: {}",
                first.unwrap_or_default()
            ));
        }
        if !self
            .arrivals
            .wait_for(warm.len() * self.id.docs, DRAIN_CAP)
            .await
        {
            return Err(format!(
                "warm-up: {} of {} documents reached the recipient queue ({})",
                self.arrivals.count.load(Ordering::SeqCst),
                warm.len() * self.id.docs,
                counters(self.hub)
            ));
        }
        self.arrivals.take();
        Ok(warm.len())
    }

    pub(crate) async fn measure(&self, n: usize, tasks: usize, recipients: usize) -> HubResult {
        let before = cpu_snap(self.broker);
        let start = Instant::now();
        let (sent, refused, first_refusal) =
            accept_many(self.hub, self.sample, &self.id.sender, n, tasks).await;
        let expected = sent.len() * self.id.docs;
        let complete = self.arrivals.wait_for(expected, DRAIN_CAP).await;
        let end = Instant::now();
        let after = cpu_snap(self.broker);
        let got = self.arrivals.take();
        if let Some(r) = &first_refusal {
            println!("  {refused} refused; first: {r}");
        }
        if !complete {
            println!(
                "  warning: {} of {expected} documents arrived within {} s of the last accept",
                got.len(),
                DRAIN_CAP.as_secs()
            );
        }
        // An envelope is delivered when all its documents arrived; its latency runs from the
        // start of its accept call to the last of them.
        let mut per_env: HashMap<&str, (usize, Instant)> = HashMap::new();
        for (env, at) in &got {
            let e = per_env.entry(env.as_str()).or_insert((0, *at));
            e.0 += 1;
            e.1 = e.1.max(*at);
        }
        let mut lat = Vec::with_capacity(sent.len());
        let mut acc_lat = Vec::with_capacity(sent.len());
        let (mut delivered, mut last_arrival, mut last_accept) = (0, start, start);
        for (env, t0, t1) in &sent {
            acc_lat.push(*t1 - *t0);
            last_accept = last_accept.max(*t1);
            if let Some((c, at)) = per_env.get(env.as_str())
                && *c >= self.id.docs
            {
                delivered += 1;
                lat.push(at.saturating_duration_since(*t0));
                last_arrival = last_arrival.max(*at);
            }
        }
        lat.sort();
        acc_lat.sort();
        HubResult {
            accepted: sent.len(),
            refused,
            docs: self.id.docs,
            recipients,
            delivered,
            duplicates: got.len().saturating_sub(expected),
            accept_rate: rate(sent.len(), last_accept - start),
            e2e_rate: rate(delivered, last_arrival - start),
            accept_p50: pct(&acc_lat, 0.5),
            p50: pct(&lat, 0.50),
            p99: pct(&lat, 0.99),
            cpu: cpu_between(&before, &after, end - start),
            audit_per_msg: 0.0,
            audit_flush: Duration::ZERO,
            counters: String::new(),
        }
    }
}

/// Builds a hub on RabbitMQ (`url`) or the memory bus (`None`) and measures it once per entry
/// of `producer_counts`. Returns the results, and the hub and its temp dir for further probes.
pub(crate) async fn hub_case(
    url: Option<&str>,
    s: &Arc<Sample>,
    n: usize,
    producer_counts: &[usize],
    tag: &str,
) -> Result<(Vec<HubResult>, Arc<Hub>, Identified, PathBuf), String> {
    let tmp = std::env::temp_dir().join(unique(tag));
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let prefix = unique(tag);
    let t = Topology::new(&prefix);
    let mut declared_recipients: Vec<String> = Vec::new();
    let r = async {
        // The recipient follows from the document kind the sample makes.
        let probe = kaigo_hub::mapping::MappingSet::load_dir(&root().join("mappings"))
            .map_err(|e| format!("{} mapping errors", e.len()))?;
        let kind = probe
            .translate(
                Input {
                    bytes: &s.bytes,
                    file_name: s.file_name.as_deref(),
                },
                None,
            )
            .map_err(|e| e.to_string())?
            .documents
            .first()
            .map(|d| d.kind.name().to_string())
            .ok_or("no document")?;
        let recipient = amqp_recipient_for(&kind)?;
        declared_recipients.push(recipient.clone());
        derived_parties(&recipient, &tmp.join("parties.yaml"))?;
        let (hub, cfg, id, recipients) = build_hub(url, s, &tmp, &prefix, &recipient).await?;
        let hops = Hops::start(&hub).await;
        // The recipient consumes on a connection of its own, as it would in production.
        let recipient_conn = match url {
            Some(u) => Some(Arc::new(
                RabbitBus::connect(u, "kaigo-hub-bench-recipient")
                    .await
                    .map_err(|e| e.to_string())?,
            )),
            None => None,
        };
        let out_bus: Arc<dyn Bus> = match &recipient_conn {
            Some(c) => c.clone(),
            None => hub.bus.clone(),
        };
        let arrivals = Arc::new(Arrivals::default());
        let collector = spawn_collector(out_bus, t.out_queue(&recipient), arrivals.clone());
        let run = Running {
            hub: &hub,
            sample: s,
            id: &id,
            arrivals: &arrivals,
            broker: url.and(broker_pid()),
        };
        let mut results = Vec::new();
        let mut outcome = run.warm_up(4).await.map(|w| w as f64);
        if outcome.is_ok() {
            for &p in producer_counts {
                results.push(run.measure(n, p, recipients).await);
            }
        }
        arrivals.stop.store(true, Ordering::SeqCst);
        let collected = collector.await.map_err(|e| e.to_string());
        if let Some(c) = recipient_conn {
            c.close().await;
        }
        hops.stop().await;
        let f0 = Instant::now();
        hub.audit.flush();
        let audit_flush = f0.elapsed();
        let total = outcome.clone()? + results.iter().map(|r| r.accepted as f64).sum::<f64>();
        if let Err(e) = collected.and_then(|c| c) {
            outcome = Err(format!("recipient consumer: {e}"));
        }
        outcome?;
        let audit_lines = std::fs::read_to_string(cfg.audit_path())
            .map(|t| t.lines().count())
            .unwrap_or(0);
        for r in &mut results {
            r.audit_per_msg = audit_lines as f64 / total.max(1.0);
            r.audit_flush = audit_flush;
            r.counters = counters(&hub);
        }
        Ok::<_, String>((results, hub, id))
    }
    .await;
    if let Some(u) = url {
        cleanup_report(u, &t, &declared_recipients).await;
    }
    match r {
        Ok((res, hub, id)) => Ok((res, hub, id, tmp)),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

/// The translate and deliver hops (and, as `serve` runs them, the backlog watch and the
/// consent feed) of a bench hub.
struct Hops {
    stop: tokio::sync::watch::Sender<bool>,
    hops: [tokio::task::JoinHandle<Result<(), BusError>>; 2],
    feed: Option<tokio::task::JoinHandle<()>>,
}

impl Hops {
    async fn start(hub: &Arc<Hub>) -> Hops {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let hops = [
            tokio::spawn(translate::run(hub.clone(), stop_rx.clone())),
            tokio::spawn(deliver::run(hub.clone(), stop_rx.clone())),
        ];
        if hub.backlog.bound() > 0 {
            // As `serve` runs it; it ends with the hops.
            tokio::spawn(kaigo_hub::pipeline::backlog::watch(
                hub.clone(),
                kaigo_hub::pipeline::backlog::READ_EVERY,
                stop_rx.clone(),
            ));
        }
        // As `serve` does on RabbitMQ: the consent feed keeps the process's consent cache live.
        let feed = hub.consent_cache.clone().map(|cache| {
            tokio::spawn(consent_feed::run(
                hub.bus.clone(),
                hub.topology.clone(),
                cache,
                None,
                stop_rx.clone(),
            ))
        });
        if let Some(cache) = &hub.consent_cache {
            let deadline = Instant::now() + Duration::from_secs(10);
            while !cache.is_live() && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        Hops {
            stop: stop_tx,
            hops,
            feed,
        }
    }

    async fn stop(self) {
        let (stop_tx, hops, feed) = (self.stop, self.hops, self.feed);
        let _ = stop_tx.send(true);
        if let Some(f) = feed {
            let _ = f.await;
        }
        for h in hops {
            match tokio::time::timeout(Duration::from_secs(10), h).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => println!("  a hop ended with: {e}"),
                _ => println!("  a hop did not stop within 10 s"),
            }
        }
    }
}

/// Builds the hub of one case: its config, the demo links, the sample identified and its one
/// recipient's consents granted. Returns the hub, its config, the sample's identity and the
/// number of recipients (always 1).
async fn build_hub(
    url: Option<&str>,
    s: &Arc<Sample>,
    tmp: &std::path::Path,
    prefix: &str,
    recipient: &str,
) -> Result<(Arc<Hub>, Config, Identified, usize), String> {
    let cfg = Config {
        amqp_url: url.map(String::from),
        data_dir: tmp.join("data"),
        prefix: prefix.to_string(),
        mappings: root().join("mappings"),
        parties: tmp.join("parties.yaml"),
        subject_key: Some(SUBJECT_KEY.into()),
        prefetch: prefetch(),
        database_url: std::env::var("KAIGO_BENCH_DATABASE_URL").ok(),
        max_backlog: env_num("KAIGO_BENCH_MAX_BACKLOG", 0) as u64,
        ..Config::default()
    };
    let hub = serve::build(&cfg).await?;
    for (party, local, insurer, insured) in LINKS {
        let subject = Subject::new(insurer, insured).map_err(|e| e.to_string())?;
        hub.store.link(party, local, &subject).map_err(|e| e.0)?;
    }
    let id = identify(&hub, s).await?;
    let recipients = hub
        .parties
        .current()
        .recipients_of(&id.kind, &id.sender)
        .len();
    if recipients != 1 {
        return Err(format!(
            "expected exactly one recipient of {}, found {recipients}",
            id.kind
        ));
    }
    grant(&hub, &id, recipient)?;

    Ok((hub, cfg, id, recipients))
}

pub(crate) fn print_hub(label: &str, r: &HubResult, last: bool) {
    println!(
        "{label:<44} {:>6} accepted ({} refused), {} delivered{}: accepted→delivered {:>5.0} msg/s ({:.0} documents/s); accept {:.0} msg/s, accept call p50 {}",
        r.accepted,
        r.refused,
        r.delivered,
        if r.duplicates > 0 {
            format!(" (+{} duplicate arrivals)", r.duplicates)
        } else {
            String::new()
        },
        r.e2e_rate,
        r.e2e_rate * r.docs as f64,
        r.accept_rate,
        ms(r.accept_p50),
    );
    println!(
        "    accept→arrival latency p50 {} p99 {}",
        ms(r.p50),
        ms(r.p99)
    );
    println!(
        "    CPU: {}; per message {}",
        r.cpu.detail,
        r.cpu.per_msg(r.e2e_rate)
    );
    if last {
        println!(
            "    audit: {:.1} events per message; flush at shutdown took {}; counters over the whole run: {}",
            r.audit_per_msg,
            ms(r.audit_flush),
            r.counters
        );
    }
}
