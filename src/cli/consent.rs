//! `kaigo-hub consent grant|revoke|list|import|link`: manages the consent registry and the
//! subject cross-reference in the hub's store (the database `serve` reads; one that does not exist
//! is refused, naming it), then tells every running hub process registered in that store of each
//! change (on the bus and prefix each one recorded, whatever this command's own configuration
//! says) and waits for each to acknowledge that it dropped its cached copy: a revoke takes effect
//! for messages already waiting in queues. Each change (and each refusal) is audited in the CLI's
//! own chain (`super::audit_trail`). Exit 0: stored, and every process that answers from a cache
//! acknowledged; 3: stored, but some did not (named, with the time by which the change is in force
//! there anyway); 1: the change was refused (nothing stored); 2: usage or configuration.

use super::Failure;
use super::audit_trail::Trail;
use kaigo_hub::config::Config;
use kaigo_hub::consent::{Category, Consent, Grantee, IsoDate, Subject, csv_import, fhir_import};
use kaigo_hub::pipeline::consent_feed::ConsentChanged;
use kaigo_hub::pipeline::consent_reach::Teller;
use std::path::PathBuf;

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Register a consent: SUBJECT lets GRANTEE receive CATEGORIES from a date.
    Grant {
        /// 保険者番号:被保険者番号, e.g. 131011:0000100001.
        #[arg(long)]
        subject: String,
        /// A party id (医療機関コード / 事業所番号 / 保険者番号) or a party kind: hospital, provider, municipality, platform.
        #[arg(long)]
        to: String,
        /// Comma-separated: certification, claims, life, care-plan, housing.
        #[arg(long)]
        categories: String,
        /// First valid day, YYYY-MM-DD.
        #[arg(long)]
        from: String,
        /// Last valid day (inclusive), YYYY-MM-DD; omit for "until revoked".
        #[arg(long)]
        until: Option<String>,
        /// The one purpose the data may be used for.
        #[arg(long)]
        purpose: Option<String>,
        /// Consent id (default: generated).
        #[arg(long)]
        id: Option<String>,
    },
    /// Revoke a consent by id (takes effect at once, also for queued messages).
    Revoke {
        /// Consent id.
        id: String,
        /// When the person withdrew it (RFC 3339; default now).
        #[arg(long)]
        at: Option<String>,
    },
    /// List consents (optionally of one subject) as JSON lines.
    List {
        /// 保険者番号:被保険者番号.
        #[arg(long)]
        subject: Option<String>,
    },
    /// Import consents from a FHIR Consent JSON file or a CSV file (header: insurer_number,
    /// insured_number,grantee,categories,valid_from,valid_to,purpose).
    Import {
        /// The file.
        file: PathBuf,
    },
    /// Record that PARTY knows SUBJECT under LOCAL_ID (e.g. a hospital 患者ID), so its messages
    /// without 保険者番号/被保険者番号 resolve to the right person.
    Link {
        /// The party id.
        #[arg(long)]
        party: String,
        /// The party's own id for the person.
        #[arg(long)]
        local_id: String,
        /// 保険者番号:被保険者番号.
        #[arg(long)]
        subject: String,
    },
}

fn subject(s: &str) -> Result<Subject, Failure> {
    let (a, b) = s.split_once(':').ok_or_else(|| {
        Failure::usage("subject is 保険者番号:被保険者番号, e.g. 131011:0000100001")
    })?;
    Subject::new(a, b).map_err(|e| Failure::input(e.to_string()))
}

pub fn run(config: Option<PathBuf>, action: Action) -> Result<u8, Failure> {
    let cfg = Config::load(config.as_deref()).map_err(Failure::usage)?;
    // The runtime drives a PostgreSQL client; it must outlive every store call below.
    let rt = super::serve::runtime()?;
    let (store_arc, place) = rt.block_on(super::open_store(&cfg))?;
    // On stderr: `list` prints JSON lines on stdout.
    eprintln!("kaigo-hub: store: {place}");
    let mut trail = Trail::open(
        &cfg,
        store_arc.clone(),
        !matches!(action, Action::List { .. }),
    )?;
    let store = store_arc.as_ref();
    let change = |change: &str, id: &str| ConsentChanged {
        change: change.into(),
        consent: id.into(),
        subject: None,
        at: kaigo_hub::pipeline::clock::now_rfc3339(),
    };
    let mut changes: Vec<ConsentChanged> = Vec::new();
    match action {
        Action::Grant {
            subject: s,
            to,
            categories,
            from,
            until,
            purpose,
            id,
        } => {
            let categories = categories
                .split(',')
                .map(|c| {
                    c.trim()
                        .parse::<Category>()
                        .map_err(|e| Failure::input(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let id = id.unwrap_or_else(kaigo_hub::pipeline::clock::envelope_id);
            let consent = Consent {
                id: id
                    .parse()
                    .map_err(|e: kaigo_hub::consent::ValueError| Failure::input(e.to_string()))?,
                subject: subject(&s)?,
                grantee: Grantee::parse(&to).map_err(|e| Failure::input(e.to_string()))?,
                categories,
                valid_from: IsoDate::parse(&from).map_err(|e| Failure::input(e.to_string()))?,
                valid_to: until
                    .map(|u| IsoDate::parse(&u))
                    .transpose()
                    .map_err(|e| Failure::input(e.to_string()))?,
                purpose,
                revoked_at: None,
            };
            let audited = consent.clone();
            store
                .consents()
                .grant(consent)
                .map_err(|e| trail.refused(e))?;
            trail.granted(&audited)?;
            super::out!("granted {id}");
            changes.push(change("grant", &id));
        }
        Action::Revoke { id, at } => {
            let at = at
                .unwrap_or_else(|| kaigo_hub::pipeline::clock::now_rfc3339().replace(".000Z", "Z"));
            store
                .consents()
                .revoke(&id, &at)
                .map_err(|e| trail.refused(e))?;
            trail.revoked(&id)?;
            super::out!("revoked {id} at {at}");
            changes.push(change("revoke", &id));
        }
        Action::List { subject: s } => {
            let s = s.map(|s| subject(&s)).transpose()?;
            for c in store.consents().list(s.as_ref()) {
                super::out!("{}", serde_json::to_string(&c).unwrap_or_default());
            }
        }
        Action::Import { file } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| Failure::input(format!("{}: {e}", file.display())))?;
            let consents = if file
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
            {
                csv_import::consents_from_csv(&text)
                    .map_err(|e| Failure::input(format!("{}: {e}", file.display())))?
            } else {
                fhir_import::consents_from_fhir_json(&text)
                    .map_err(|e| Failure::input(format!("{}: {e}", file.display())))?
            };
            let n = consents.len();
            for c in consents {
                let id = c.id.as_str().to_string();
                let what = if c.revoked_at.is_some() {
                    "revoke"
                } else {
                    "grant"
                };
                let audited = c.clone();
                store.consents().grant(c).map_err(|e| trail.refused(e))?;
                trail.granted(&audited)?;
                changes.push(change(what, &id));
            }
            super::out!("imported {n} consent(s) from {}", file.display());
        }
        Action::Link {
            party,
            local_id,
            subject: s,
        } => {
            let who = subject(&s)?;
            store
                .link(&party, &local_id, &who)
                .map_err(|e| Failure::usage(e.to_string()))?;
            trail.linked(&party, &who)?;
            super::out!("linked {party}/{local_id}");
        }
    }
    trail.finish()?;
    if changes.is_empty() {
        return Ok(0);
    }
    // Every running hub process registered in this store, on the bus and prefix it recorded:
    // this command's own amqp_url only lends its user and password.
    let reach = rt.block_on(
        Teller {
            store: &store_arc,
            own: None,
            credentials: cfg.amqp_url.as_deref(),
            exclude: None,
            wait: std::time::Duration::from_secs(cfg.consent_ack_secs),
        }
        .tell(&changes, std::time::SystemTime::now()),
    );
    for line in reach.lines() {
        super::out!("{line}");
    }
    match reach.shortfall() {
        None => {
            super::out!("in force in every running hub process now");
            Ok(0)
        }
        Some(shortfall) => Err(Failure {
            code: 3,
            message: shortfall,
        }),
    }
}
