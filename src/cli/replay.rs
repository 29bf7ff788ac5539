//! `kaigo-hub replay dead|quarantine [--id ENVELOPE]… [--reason CODE] [--to PARTY]…
//! [--preview | --list]`: re-drives parked messages once their cause is fixed (a mapping
//! corrected, a consent registered), through [`kaigo_hub::pipeline::replay`]: the hops judge each
//! replayed message again exactly as a new one, and messages parked for a reason no later fact
//! can cure stay where they are, said so one line each. Released messages go back in arrival
//! order (so each person's in theirs); `--to` replays to those recipients only (each still with
//! its consent #3). `--preview` says what a replay would do now — admission, consent #1/#2 with
//! the consent id, each recipient and its consent #3 — without publishing or moving anything
//! ([`kaigo_hub::pipeline::preview`]); `--list` lists the parked messages grouped by reason with
//! the error's location. Each message put back or kept is an audit event in the CLI's chain
//! (`super::audit_trail`), and so is each message previewed (hop `admin`, reason `replay-preview`:
//! a preview asks each person's consent); a listing changes nothing and writes none. Needs RabbitMQ
//! (the embedded in-memory bus lives inside one `serve` process) and the hub's store.

use super::Failure;
use super::audit_trail::Trail;
use super::serve::runtime;
use kaigo_hub::bus::Topology;
use kaigo_hub::bus::rabbitmq::RabbitBus;
use kaigo_hub::config::Config;
use kaigo_hub::pipeline::preview::{Answer, Would};
use kaigo_hub::pipeline::replay::{self, Parked, Selection, Step};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// `dead` or `quarantine`.
    pub queue: String,
    /// Only this envelope id (repeat for several; default: every message in the queue).
    #[arg(long)]
    pub id: Vec<String>,
    /// Only the messages parked for this reason (`consent-denied:no-consent`, or its family
    /// `consent-denied`; see `--list`).
    #[arg(long)]
    pub reason: Option<String>,
    /// Only to this recipient (a party id; repeat or comma-separate for several). The others
    /// get nothing from this replay; each chosen one still only with its consent.
    #[arg(long, value_delimiter = ',')]
    pub to: Vec<String>,
    /// Say what a replay would do now, without publishing or moving anything.
    #[arg(long, conflicts_with = "list")]
    pub preview: bool,
    /// List the parked messages, grouped by reason, with the error's location.
    #[arg(long)]
    pub list: bool,
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
    let select = Selection {
        ids: a.id.clone(),
        reason: a.reason.clone(),
    };
    let to = chosen(&cfg, &a.to)?;
    if a.list {
        return rt.block_on(list(&url, &t, parked, &select));
    }
    if a.preview {
        return rt.block_on(preview(&cfg, parked, &select, to.as_deref()));
    }
    let (store, place) = rt.block_on(super::open_store(&cfg))?;
    eprintln!("kaigo-hub: store: {place}");
    let mut trail = Trail::open(&cfg, store, true)?;
    let said = rt.block_on(async {
        let bus = RabbitBus::connect(&url, "kaigo-hub-replay")
            .await
            .map_err(|e| Failure::usage(e.to_string()))?;
        let select = move |p: &kaigo_hub::bus::Props| select.takes(p);
        // The first audit event that could not be written, told after the replay.
        let mut unaudited: Option<Failure> = None;
        let mut tell = |s: &Step, parked: &kaigo_hub::bus::Props| {
            let audited = match s {
                Step::Replayed { envelope, exchange } => {
                    let to = match &to {
                        Some(to) => format!(" for {}", to.join(",")),
                        None => String::new(),
                    };
                    super::out!("replayed {envelope} → {exchange}{to}");
                    trail.replayed(envelope, parked, &format!("{exchange}{}", to.replace(" for ", ";for:")))
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
        let summary = replay::replay_to(&bus, &t, parked, &select, to.as_deref(), &mut tell)
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

/// The recipients `--to` chose, each a party of the parties file (`None`: not chosen).
fn chosen(cfg: &Config, to: &[String]) -> Result<Option<Vec<String>>, Failure> {
    if to.is_empty() {
        return Ok(None);
    }
    let parties = kaigo_hub::parties::Parties::load(&cfg.parties)
        .map_err(|e| Failure::usage(format!("{}: {e}", cfg.parties.display())))?;
    for p in to {
        if parties.get(p).is_none() {
            return Err(Failure::usage(format!(
                "--to {p}: no party {p} in {}",
                cfg.parties.display()
            )));
        }
    }
    Ok(Some(to.to_vec()))
}

/// `--list`: the parked messages by reason, each with where its error is.
async fn list(url: &str, t: &Topology, parked: Parked, select: &Selection) -> Result<u8, Failure> {
    let bus = RabbitBus::connect(url, "kaigo-hub-replay")
        .await
        .map_err(|e| Failure::usage(e.to_string()))?;
    let select = |p: &kaigo_hub::bus::Props| select.takes(p);
    let listed = replay::list(&bus, t, parked, &select).await;
    bus.close().await;
    let taken = listed.map_err(|e| Failure::usage(e.to_string()))?;
    let total = taken.len();
    for g in replay::grouped(taken) {
        super::out!("{} ({})", g.reason, g.messages.len());
        for m in g.messages {
            let what = [m.document.as_str(), m.recipient.as_str()]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(" for ");
            let stays = match &m.stays {
                Some((code, _)) => format!(" [replay keeps it: {code}]"),
                None => String::new(),
            };
            super::out!(
                "  {} from {} at {} {what}{stays}: {}",
                m.envelope,
                m.source,
                m.hop,
                m.location
            );
        }
    }
    super::out!("{total} parked");
    Ok(0)
}

/// `--preview`: what a replay would do now, per message, document and recipient.
async fn preview(
    cfg: &Config,
    parked: Parked,
    select: &Selection,
    to: Option<&[String]>,
) -> Result<u8, Failure> {
    let hub = kaigo_hub::serve::build_for_preview(cfg)
        .await
        .map_err(Failure::usage)?;
    let (store, place) = super::open_store(cfg).await?;
    eprintln!("kaigo-hub: store: {place}");
    let mut trail = Trail::open(cfg, store, true)?;
    let select = |p: &kaigo_hub::bus::Props| select.takes(p);
    let previewed = replay::preview_parked(&hub, parked, &select, to)
        .await
        .map_err(|e| Failure::usage(e.to_string()))?;
    // Audited before anything is shown: a preview asks each person's consent.
    for (m, _, props) in &previewed {
        trail.previewed(&m.envelope, props)?;
    }
    trail.finish()?;
    for (m, p, _) in &previewed {
        super::out!("{} ({} at {}):", p.envelope, m.reason, m.hop);
        match &p.would {
            Would::Stay { why, .. } => super::out!("  stays: {why}"),
            Would::Dead { reason, error } => super::out!("  dead again ({reason}): {error}"),
            Would::Withheld { code, detail } => {
                super::out!("  quarantined again ({code}): {detail}")
            }
            Would::Unknown(why) => super::out!("  cannot tell now: {why}"),
            Would::Documents(docs) => {
                for d in docs {
                    let platform = d
                        .platform
                        .as_ref()
                        .map_or_else(|| "no person".to_string(), Answer::to_string);
                    super::out!(
                        "  document {} {} ({}): platform {platform}",
                        d.index + 1,
                        d.kind,
                        d.category.code()
                    );
                    if let Some((code, detail)) = &d.withheld {
                        super::out!("    quarantined again ({code}): {detail}");
                    }
                    for r in &d.recipients {
                        super::out!("    → {}: {}", r.party, r.answer);
                    }
                }
            }
        }
    }
    super::out!(
        "{} previewed (audited); nothing was published or moved",
        previewed.len()
    );
    Ok(0)
}
