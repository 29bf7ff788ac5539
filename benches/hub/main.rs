//! End-to-end hub throughput against RabbitMQ, in one run, printing numbers (asserts nothing
//! about speed). Run: `cargo bench --bench hub`.
//!
//! 1. Raw ceiling: the hub's own `RabbitBus` publishes N persistent messages (bodies and headers
//!    the size of the hub's: the ケアプラン UP2KYO CSV and the SS-MIX2 ADT) with publisher confirms
//!    to a durable quorum queue from concurrent tasks, while one consumer (the hub's prefetch) acks
//!    them: publish-confirm msg/s, consume-ack msg/s, p50/p99 publish→consume latency.
//! 2. The hub: `serve::build` on RabbitMQ (temporary data dir; a temporary parties file derived
//!    from `parties.yaml` with exactly one recipient, on AMQP; consents granted for the sample's
//!    subjects so all three consent checks permit), the translate and deliver hops running,
//!    concurrent tasks calling `ingress::accept`, and the recipient's `out` queue consumed on a
//!    connection of its own: accepted→delivered msg/s, p50/p99 accept→arrival latency.
//!    The hub runs `KAIGO_BENCH_ROUNDS` times (default 3), alternating with the ceiling: one
//!    just before the first round and one after each (the machine's speed drifts within
//!    minutes); each round is judged against the mean of the ceilings around it.
//! 3. The verdict: target = 0.6 × ceiling ÷ broker passes per hub message, for each round and
//!    for the median round (a moment's slowness can fall on one round of a few seconds), next to
//!    the same hub flow on the in-memory bus, and where the time goes (CPU per thread and per
//!    message, and the single-thread cost of each per-message step).
//!
//! Both the raw ceiling and the hub run twice: with a few producer tasks (4, like a handful of
//! senders; the publish-confirm round trip then bounds the rate) and with 64 (enough to
//! saturate this box), so the verdict can be read against either ceiling.
//!
//! Every RabbitMQ case uses a fresh `bench-hub-<pid>-<time>-<case>` prefix and deletes the
//! queues and exchanges it declared afterwards. Environment: `KAIGO_BENCH_AMQP_URL` (default
//! amqp://guest:guest@127.0.0.1:5672/%2f), `KAIGO_BENCH_RAW_N`, `KAIGO_BENCH_HUB_N`,
//! `KAIGO_BENCH_ROUNDS`, `KAIGO_BENCH_TASKS` (the "few" producers, default 4),
//! `KAIGO_BENCH_HUB_PREFETCH` (the hub's
//! prefetch and the raw consumer's, default the hub's own, `Config::default().prefetch`),
//! `KAIGO_BENCH_MAX_BACKLOG` (the hub's `max_backlog`; producers refused at it wait 20 ms and
//! send the same message again, its latency counted from the first try; default none),
//! `KAIGO_BENCH_ONLY` (`CSV` or `ADT`: one sample only), `KAIGO_BENCH_DATABASE_URL` (the hub's
//! store, e.g. PostgreSQL with a schema of its own:
//! `postgres://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dkaigo_bench`; default SQLite
//! in the temporary directory).
//!
//! The rooms: `raw.rs` (part 1), `sample.rs` and `hub_run.rs` (part 2), `steps.rs` (the
//! per-step costs of part 3), `cpu.rs`, `arrivals.rs`, `cleanup.rs` and `stats.rs` (what they
//! share). This file reads the environment, runs the parts in order and prints the verdict.

mod arrivals;
mod cleanup;
mod cpu;
mod hub_run;
mod raw;
mod sample;
mod stats;
mod steps;

use crate::hub_run::{HubResult, hub_case, print_hub};
use crate::raw::{RawResult, raw_case};
use crate::sample::{Sample, find_careplan, load_sample};
use crate::stats::{median, meets};
use crate::steps::step_costs;
use kaigo_hub::bus::rabbitmq::RabbitBus;
use kaigo_hub::config::Config;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// mimalloc instead of glibc malloc: measured in `cargo bench --bench translate` (docs/decisions.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DEFAULT_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// Producer tasks of the saturating runs: enough to keep both cores of this box busy (the raw
/// ceiling with 64 publishers already uses all the CPU the broker gets).
const SATURATING: usize = 64;
/// Longest a measured publishing / accepting phase may run.
const PRODUCE_CAP: Duration = Duration::from_secs(20);
/// Longest to wait for the last messages to arrive after producing stopped.
const DRAIN_CAP: Duration = Duration::from_secs(20);
const RAW_WARMUP: usize = 200;
/// How long a producer refused at `max_backlog` waits before sending the message again.
const BUSY_RETRY: Duration = Duration::from_millis(20);
const HUB_WARMUP: usize = 50;
/// A fixed subject-hash key, so the bench never writes a key file outside its temp dir.
const SUBJECT_KEY: &str = "6b6169676f2d6875622d62656e63682d7375626a6563742d6b65792d30303031";
/// The patient-id links `demo::seed` registers (a hospital's 患者ID → 保険者番号 + 被保険者番号),
/// for samples that name their subject only by the sender's local id (the SS-MIX2 ADT).
const LINKS: [(&str, &str, &str, &str); 2] = [
    ("1311234567", "00012345", "131011", "0000100001"),
    ("2710000015", "A-778", "435073", "0000200002"),
];

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(default)
}

/// Unsettled deliveries per consumer, the hub's and the raw ceiling's: the hub's default unless
/// `KAIGO_BENCH_HUB_PREFETCH` says otherwise.
fn prefetch() -> u16 {
    env_num(
        "KAIGO_BENCH_HUB_PREFETCH",
        usize::from(Config::default().prefetch),
    )
    .min(usize::from(u16::MAX)) as u16
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn unique(tag: &str) -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    format!("bench-hub-{}-{ms}-{tag}", std::process::id())
}

/// The bench's settings, from the environment.
struct Settings {
    url: String,
    raw_n: usize,
    hub_n: usize,
    rounds: usize,
    few: usize,
    counts: [usize; 2],
}

impl Settings {
    fn from_env() -> Settings {
        let few = env_num("KAIGO_BENCH_TASKS", 4);
        Settings {
            url: std::env::var("KAIGO_BENCH_AMQP_URL").unwrap_or_else(|_| DEFAULT_URL.to_string()),
            raw_n: env_num("KAIGO_BENCH_RAW_N", 6_000),
            hub_n: env_num("KAIGO_BENCH_HUB_N", 2_000),
            rounds: env_num("KAIGO_BENCH_ROUNDS", 3).max(1),
            few,
            counts: [few, SATURATING],
        }
    }
}

/// Per sample: the raw ceilings around the rounds (`rounds + 1` of them, one result per
/// producer count each), and each round's hub results (`None` when the round failed).
struct OnRabbit {
    raw: Vec<Vec<RawResult>>,
    rounds: Vec<Option<Vec<HubResult>>>,
}

async fn run() -> Result<(), String> {
    let set = Settings::from_env();
    let began = Instant::now();
    probe(&set.url).await?;
    let samples = samples()?;
    println!(
        "kaigo-hub end-to-end benchmark: RabbitMQ at {}, producers {} and {SATURATING}, prefetch {}, {} cores",
        kaigo_hub::store::without_password(&set.url),
        set.few,
        prefetch(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    println!(
        "\n== 1. raw ceiling (RabbitBus, persistent, publisher confirms, one durable quorum queue, one consumer acking) and 2. the hub (ingress::accept → translate → deliver → the recipient's out queue), per sample: ceiling, hub, ceiling again =="
    );
    let mut on_rabbit = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        on_rabbit.push(rabbit_rounds(&set, i, s).await?);
    }
    let on_memory = on_memory_bus(&set, &samples).await;

    println!("\n== 3. verdict: target = 0.6 × raw ceiling ÷ broker passes per hub message ==");
    println!(
        "(raw ceiling = the lower of publish-confirm and consume-ack msg/s, same body, same producer count; the mean of the runs just before and just after each hub round; the verdict is the median of the {} rounds)",
        set.rounds
    );
    for (i, s) in samples.iter().enumerate() {
        verdict(&set, s, &on_rabbit[i], on_memory.get(i).copied().flatten());
    }
    println!("\ntotal bench time {:.1} s", began.elapsed().as_secs_f64());
    Ok(())
}

/// Reachability first, with a clear message.
async fn probe(url: &str) -> Result<(), String> {
    match RabbitBus::connect(url, "kaigo-hub-bench-probe").await {
        Ok(b) => {
            b.close().await;
            Ok(())
        }
        Err(e) => Err(format!(
            "RabbitMQ is not reachable at {}: {e}\nStart the broker or point KAIGO_BENCH_AMQP_URL at one.",
            kaigo_hub::store::without_password(url)
        )),
    }
}

/// The samples to run: UP2KYO carries its own subjects (two documents, two people); the ADT
/// names its patient by the hospital's 患者ID, resolved through the demo link (one document).
/// `KAIGO_BENCH_ONLY=CSV` (or `ADT`): only the samples whose label contains it (profiling).
fn samples() -> Result<Vec<Arc<Sample>>, String> {
    let samples = [
        Arc::new(load_sample(
            "ケアプラン UP2KYO CSV",
            &find_careplan("UP2KYO_")?,
            "file",
        )?),
        Arc::new(load_sample(
            "SS-MIX2 ADT^A08",
            "samples/hl7v2/adt-a08.hl7",
            "mllp",
        )?),
    ];
    let only = std::env::var("KAIGO_BENCH_ONLY").unwrap_or_default();
    let samples: Vec<_> = samples
        .into_iter()
        .filter(|s| s.label.contains(only.as_str()))
        .collect();
    if samples.is_empty() {
        return Err(format!("KAIGO_BENCH_ONLY={only} matches no sample"));
    }
    Ok(samples)
}

/// One sample's hub rounds on RabbitMQ, each between two raw ceilings.
///
/// The machine's speed drifts within minutes, so one ceiling taken before every hub run
/// judges a hub run against another moment; each hub run is bracketed by a ceiling just
/// before and just after it, and judged against their mean. And a moment's slowness can
/// fall on one hub run of a few seconds: the hub runs `rounds` times, alternating with the
/// ceilings (C H C H … C), and the verdict is the median round.
async fn rabbit_rounds(set: &Settings, i: usize, s: &Arc<Sample>) -> Result<OnRabbit, String> {
    let label = format!("{} body ({} B)", s.label, s.bytes.len());
    let ceiling = |when: String| {
        let (label, tag) = (format!("{label}, {when}"), format!("raw{i}-{when}"));
        let (url, counts, body) = (&set.url, &set.counts, s.bytes.clone());
        async move { raw_case(url, &label, body, set.raw_n, counts, &tag).await }
    };
    let mut ceilings = vec![ceiling("before round 1".into()).await?];
    let mut hubs = Vec::new();
    for round in 1..=set.rounds {
        let tag = format!("hub{i}r{round}");
        match hub_case(Some(&set.url), s, set.hub_n, &set.counts, &tag).await {
            Ok((rs, hub, _, tmp)) => {
                for (k, r) in rs.iter().enumerate() {
                    let label = format!(
                        "{} on RabbitMQ, {} producers, round {round}",
                        s.label, set.counts[k]
                    );
                    print_hub(&label, r, k + 1 == rs.len());
                }
                drop(hub);
                let _ = std::fs::remove_dir_all(tmp);
                hubs.push(Some(rs));
            }
            Err(e) => {
                println!("{} on RabbitMQ, round {round}: FAILED: {e}", s.label);
                hubs.push(None);
            }
        }
        ceilings.push(ceiling(format!("after round {round}")).await?);
    }
    Ok(OnRabbit {
        raw: ceilings,
        rounds: hubs,
    })
}

/// The same flow on the in-memory bus (per sample, `None` when it failed), then the
/// single-thread cost of each step on the first hub built.
async fn on_memory_bus(set: &Settings, samples: &[Arc<Sample>]) -> Vec<Option<f64>> {
    let few = set.few;
    let mut on_memory: Vec<Option<f64>> = Vec::new();
    let mut probe = None;
    for (i, s) in samples.iter().enumerate() {
        match hub_case(None, s, set.hub_n, &[few], &format!("mem{i}")).await {
            Ok((rs, hub, id, tmp)) => {
                let label = format!("{} on MemoryBus, {few} producers", s.label);
                print_hub(&label, &rs[0], true);
                on_memory.push(Some(rs[0].e2e_rate));
                if probe.is_none() {
                    probe = Some((hub, id, tmp, s.clone()));
                } else {
                    drop(hub);
                    let _ = std::fs::remove_dir_all(tmp);
                }
            }
            Err(e) => {
                println!("{} on MemoryBus: FAILED: {e}", s.label);
                on_memory.push(None);
            }
        }
    }
    if let Some((hub, id, tmp, s)) = probe {
        println!();
        step_costs(&hub, &s, &id);
        drop(hub);
        let _ = std::fs::remove_dir_all(tmp);
    }
    on_memory
}

/// One sample's verdict: each round against the ceilings around it, and the median round.
fn verdict(set: &Settings, s: &Sample, on: &OnRabbit, on_memory: Option<f64>) {
    let Some(first) = on.rounds.iter().flatten().next() else {
        println!("{}: no hub result", s.label);
        return;
    };
    let passes = first[0].passes();
    println!(
        "{} ({} B): {} document(s) × {} recipient → {passes} broker passes (1 ingress→translate + {} canonical→deliver + {} egress→out){}",
        s.label,
        s.bytes.len(),
        first[0].docs,
        first[0].recipients,
        first[0].docs,
        first[0].docs * first[0].recipients,
        if passes != 3 {
            "; the 3 passes hold only for one-document messages"
        } else {
            ""
        }
    );
    println!(
        "  {:<11} {:>5} {:>25} {:>12} {:>16} {:>16}  verdict",
        "producers", "round", "raw ceiling before/after", "mean", "target", "hub (RabbitMQ)"
    );
    for (k, producers) in set.counts.iter().enumerate() {
        let mut shares = Vec::new();
        for (r, rs) in on.rounds.iter().enumerate() {
            let Some(hub) = rs.as_ref().map(|rs| &rs[k]) else {
                println!("  {producers:<11} {:>5} failed", r + 1);
                continue;
            };
            let [before, after] = [&on.raw[r][k], &on.raw[r + 1][k]].map(RawResult::ceiling);
            let ceiling = (before + after) / 2.0;
            let target = 0.6 * ceiling / passes as f64;
            let share = 100.0 * hub.e2e_rate / target.max(1e-9);
            shares.push(share);
            println!(
                "  {producers:<11} {:>5} {before:>11.0} / {after:>7.0} msg/s {ceiling:>6.0} msg/s {target:>10.0} msg/s {:>10.0} msg/s  {} ({share:.0}% of target)",
                r + 1,
                hub.e2e_rate,
                meets(share),
            );
        }
        let listed: Vec<String> = shares.iter().map(|x| format!("{x:.0} %")).collect();
        if let Some(median) = median(&mut shares) {
            println!(
                "  {producers:<11} median of {} round(s): {} ({median:.0}% of target; rounds {})",
                listed.len(),
                meets(median),
                listed.join(", ")
            );
        }
    }
    if let Some(m) = on_memory {
        println!(
            "  same flow on MemoryBus ({} producers): {m:.0} msg/s",
            set.few
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; this target takes no filter.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(run()) {
        eprintln!("hub bench: {e}");
        std::process::exit(1);
    }
}
