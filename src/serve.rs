//! Assembles a running hub from a [`Config`]: bus (RabbitMQ or in-memory), topology, mappings,
//! parties, store, audit writer, the sinks' HTTPS push configuration; starts the translate and
//! deliver hops and every source (HTTP, MLLP, file drop, AMQP vendor queue). `start` returns the
//! bound addresses so tests can run a hub in-process on port 0. `start` registers the process in
//! the store's process registry (bus without credentials, prefix, `consent_cache_secs`) before its
//! consent feed subscribes, and keeps a heartbeat there, so consent commands can reach it.
//! `Running::stop` shuts down gracefully: sources stop accepting, hops finish or leave in-flight
//! messages unacked for redelivery, the audit log is synced, the registration is removed;
//! `Running::reload` (SIGHUP) puts a changed parties file and renewed certificate files in force.

use crate::audit::SubjectHasher;
use crate::bus::memory::MemoryBus;
use crate::bus::{Bus, Topology};
use crate::config::Config;
use crate::consent::cache::ConsentCache;
use crate::mapping::MappingSet;
use crate::mapping::live::{self, LiveMappings, Reload};
use crate::parties::{LiveParties, Parties};
use crate::pipeline::audit_writer::AuditWriter;
use crate::pipeline::body_limit::BodyLimit;
use crate::pipeline::metrics::Metrics;
use crate::pipeline::{Hub, deliver, translate};
use crate::sinks::Sinks;
use crate::sinks::http::HttpPushSinkConfig;
use crate::sources;
use crate::sources::http::{ClientTrust, ServerIdentity};
use crate::store::Store;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A hub that is running.
pub struct Running {
    /// The HTTP address actually bound.
    pub http_addr: SocketAddr,
    /// The MLLP address actually bound.
    pub mllp_addr: SocketAddr,
    /// The hub context (for tests and metrics).
    pub hub: Arc<Hub>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Over HTTPS: the certificate the HTTP source serves.
    server_identity: Option<Arc<ServerIdentity>>,
    /// Over HTTPS with `tls_client_ca`: the CAs client certificates are verified against.
    client_trust: Option<Arc<ClientTrust>>,
    /// Over MLLP TLS: the MLLP source's certificate, and the CAs of its clients' certificates.
    mllp_tls: Option<(Arc<ServerIdentity>, Arc<ClientTrust>)>,
}

/// Builds the hub context without starting anything.
pub async fn build(cfg: &Config) -> Result<Arc<Hub>, String> {
    assemble(cfg, false).await
}

/// A hub context for a command that only looks (`kaigo-hub replay --preview`): the hub's
/// parties, mappings, store, keys and bus, but an audit chain in memory (the running hub holds
/// its log; a preview decides nothing) and no consent cache (no feed keeps one fresh here).
pub async fn build_for_preview(cfg: &Config) -> Result<Arc<Hub>, String> {
    assemble(cfg, true).await
}

async fn assemble(cfg: &Config, preview: bool) -> Result<Arc<Hub>, String> {
    let mappings = MappingSet::load_dir(&cfg.mappings).map_err(|errs| {
        let lines: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        format!(
            "mappings under {}:\n{}",
            cfg.mappings.display(),
            lines.join("\n")
        )
    })?;
    let body_limit = BodyLimit::new(cfg.body_limit)?;
    let parties = Parties::load(&cfg.parties).map_err(|e| e.to_string())?;
    parties
        .check_mllp_identities(cfg.mllp_tls()?.is_some())
        .map_err(|e| format!("{}: {e}", cfg.parties.display()))?;
    let sinks = Sinks::new(&push_sink_config(cfg))?;
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| format!("{}: {e}", cfg.data_dir.display()))?;
    let store: Arc<dyn Store> = crate::store::open(&cfg.store_url())
        .await
        .map_err(|e| format!("store: {e}"))?;
    let audit = if preview {
        AuditWriter::memory()
    } else {
        AuditWriter::start(cfg, store.clone()).await?
    };
    let key = subject_key(cfg)?;
    let hasher = SubjectHasher::new(&key).map_err(|e| e.to_string())?;
    let fhir_ids = crate::fhir::ResourceIds::new(&key).map_err(|e| e.to_string())?;
    let mut topology = Topology::new(&cfg.prefix);
    topology.retry_delays = cfg.retry_delays()?;
    let bus: Arc<dyn Bus> = match &cfg.amqp_url {
        Some(url) => Arc::new(
            crate::bus::rabbitmq::RabbitBus::connect(url, "kaigo-hub")
                .await
                .map_err(|e| format!("RabbitMQ at {}: {e}", crate::store::without_password(url)))?,
        ),
        None => Arc::new(MemoryBus::new()),
    };
    bus.declare(&topology, &parties.amqp_recipients())
        .await
        .map_err(|e| format!("declaring the topology: {e}"))?;
    // On the in-memory bus the CLI, a process of its own, cannot announce a change to this one:
    // there every decision reads the store.
    let consent_cache =
        (!preview && cfg.amqp_url.is_some() && cfg.consent_cache_secs > 0).then(|| {
            Arc::new(ConsentCache::new(std::time::Duration::from_secs(
                cfg.consent_cache_secs,
            )))
        });
    let cached_secs = if consent_cache.is_some() {
        cfg.consent_cache_secs
    } else {
        0
    };
    let metrics = Arc::new(Metrics::default());
    let archive = archive(cfg, &store, &metrics)?;
    Ok(Arc::new(Hub {
        bus,
        topology,
        mappings: Arc::new(LiveMappings::new(mappings)),
        parties: Arc::new(LiveParties::new(parties)),
        delivery_keys: crate::pipeline::keys::DeliveryKeys::new(store.clone(), metrics.clone()),
        store,
        audit,
        hasher,
        fhir_ids,
        metrics,
        prefetch: cfg.prefetch,
        purpose: cfg.purpose.clone(),
        consent_cache,
        sinks,
        handoff: crate::pipeline::handoff::Handoff::new(crate::pipeline::HANDOFF_BYTES),
        backlog: crate::pipeline::backlog::Backlog::new(cfg.max_backlog),
        body_limit,
        presence: crate::pipeline::presence::Presence::new(
            cfg.amqp_url.as_deref(),
            &cfg.prefix,
            cached_secs,
            std::time::Duration::from_secs(cfg.consent_ack_secs),
        ),
        archive,
    }))
}

/// The archive writer `archive_key_file` asks for: `None` when it is unset. A key file that is
/// set but cannot be read is an error naming it (the hub would otherwise run without the archive
/// its operator asked for).
fn archive(
    cfg: &Config,
    store: &Arc<dyn Store>,
    metrics: &Arc<Metrics>,
) -> Result<Option<crate::pipeline::archiver::Archiver>, String> {
    let Some(path) = &cfg.archive_key_file else {
        return Ok(None);
    };
    let key = crate::store::archive::ArchiveKey::read(path).map_err(|e| e.to_string())?;
    tracing::info!(
        key = key.id(),
        keep_days = cfg.archive_keep_days,
        "message archive on"
    );
    Ok(crate::pipeline::archiver::Archiver::new(
        key,
        store.clone(),
        metrics.clone(),
    ))
}

/// How `serve` was asked to start, beyond the settings.
#[derive(Debug, Clone, Copy, Default)]
pub struct StartOptions {
    /// `serve --demo`: the console gets its four demo accounts (`console::accounts::DEMO_ACCOUNTS`).
    /// Never set outside the demo.
    pub demo: bool,
}

/// Starts the hops and sources.
pub async fn start(cfg: &Config) -> Result<Running, String> {
    start_with(cfg, StartOptions::default()).await
}

/// Starts the hops and sources, as [`start`], with `options`.
pub async fn start_with(cfg: &Config, options: StartOptions) -> Result<Running, String> {
    // Before anything runs: an accounts file that does not load stops the start.
    let accounts = console_accounts(cfg, options)?;
    let hub = build(cfg).await?;
    // Before the consent feed subscribes: a consent command that does not find this process in
    // the registry can count on its cache holding nothing read before the change.
    crate::pipeline::presence::register(&hub.store, &hub.presence, hub.consent_cache.as_deref())
        .await
        .map_err(|e| format!("registering this process in the store's process registry: {e}"))?;
    let (tx, rx) = watch::channel(false);
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(crate::pipeline::presence::run(
        hub.store.clone(),
        hub.presence.clone(),
        hub.consent_cache.clone(),
        rx.clone(),
    )));
    for hop in ["translate", "deliver"] {
        let (h, r) = (hub.clone(), rx.clone());
        tasks.push(tokio::spawn(async move {
            let res = if hop == "translate" {
                translate::run(h, r).await
            } else {
                deliver::run(h, r).await
            };
            if let Err(e) = res {
                tracing::error!(hop, error = %e, "hop stopped");
            }
        }));
    }
    let console = Arc::new(crate::console::Console::new(
        hub.clone(),
        crate::console::ConsoleConfig {
            accounts,
            idle: std::time::Duration::from_secs(cfg.console_idle_secs.max(1)),
            tls: cfg.tls_cert.is_some(),
            mllp_tls: cfg.mllp_tls_cert.is_some(),
            audit_logs: vec![
                cfg.audit_path(),
                crate::audit::chains::Writer::Cli.path_in(&cfg.data_dir),
            ],
        },
    ));
    let sources = start_sources(&hub, cfg, console, &rx, &mut tasks).await?;
    let (http_addr, mllp_addr) = (sources.http_addr, sources.mllp_addr);
    if cfg.watch_mappings {
        tasks.push(watch_mappings(&hub, cfg, rx.clone()));
    }
    if cfg.max_backlog > 0 {
        tasks.push(tokio::spawn(crate::pipeline::backlog::watch(
            hub.clone(),
            crate::pipeline::backlog::READ_EVERY,
            rx.clone(),
        )));
    }
    tasks.push(tokio::spawn(crate::pipeline::retention::run(
        hub.clone(),
        cfg.quarantine_keep_days,
        cfg.dead_keep_days,
        rx.clone(),
    )));
    if cfg.delivered_keep_days > 0 {
        tasks.push(tokio::spawn(crate::pipeline::keys::expire(
            hub.store.clone(),
            hub.metrics.clone(),
            std::time::Duration::from_secs(cfg.delivered_keep_days.saturating_mul(86_400)),
            crate::pipeline::keys::EXPIRE_EVERY,
            rx.clone(),
        )));
    }
    if hub.archive.is_some() && cfg.archive_keep_days > 0 {
        tasks.push(tokio::spawn(crate::pipeline::archiver::expire(
            hub.store.clone(),
            hub.metrics.clone(),
            cfg.archive_keep_days,
            crate::pipeline::archiver::EXPIRE_EVERY,
            rx.clone(),
        )));
    }
    if let Some(cache) = &hub.consent_cache {
        tasks.push(tokio::spawn(crate::pipeline::consent_feed::run(
            hub.bus.clone(),
            hub.topology.clone(),
            cache.clone(),
            Some(hub.presence.acknowledger(hub.store.clone())),
            rx.clone(),
        )));
    }
    tracing::info!(%http_addr, %mllp_addr, bus = hub.bus.name(), prefix = %cfg.prefix, process = %hub.presence.record.id, "kaigo-hub serving");
    Ok(Running {
        http_addr,
        mllp_addr,
        hub,
        shutdown: tx,
        tasks,
        server_identity: sources.server_identity,
        client_trust: sources.client_trust,
        mllp_tls: sources.mllp_tls,
    })
}

/// The console's accounts: the file of `console_accounts` (if set), and under `--demo` the four
/// demo accounts.
fn console_accounts(
    cfg: &Config,
    options: StartOptions,
) -> Result<crate::console::accounts::Accounts, String> {
    let mut accounts = match &cfg.console_accounts {
        Some(path) => crate::console::accounts::Accounts::load(path)?,
        None => crate::console::accounts::Accounts::none(),
    };
    if options.demo {
        accounts.add_demo()?;
    }
    Ok(accounts)
}

/// `watch_mappings`: reloads the mapping directory when its files change (scanned every
/// `poll_ms`, at least 50 ms), counting and logging each reload or refusal.
fn watch_mappings(hub: &Arc<Hub>, cfg: &Config, rx: watch::Receiver<bool>) -> JoinHandle<()> {
    let metrics = hub.metrics.clone();
    let dir = cfg.mappings.clone();
    tokio::spawn(live::watch(
        dir.clone(),
        hub.mappings.clone(),
        std::time::Duration::from_millis(cfg.poll_ms.max(50)),
        rx,
        move |r| match r {
            Reload::Loaded { mappings } => {
                Metrics::inc(&metrics.mappings_reloaded);
                tracing::info!(dir = %dir.display(), mappings, "mappings changed: the new files are in force");
            }
            Reload::Refused { errors } => {
                Metrics::inc(&metrics.mappings_refused);
                for e in &errors {
                    tracing::error!(error = %e, "mappings changed but do not load; the previous set stays in force");
                }
            }
        },
    ))
}

/// The listening sources as started: their bound addresses, and the TLS state
/// [`Running::reload_tls`] renews.
struct StartedSources {
    http_addr: SocketAddr,
    mllp_addr: SocketAddr,
    server_identity: Option<Arc<ServerIdentity>>,
    client_trust: Option<Arc<ClientTrust>>,
    mllp_tls: Option<(Arc<ServerIdentity>, Arc<ClientTrust>)>,
}

/// The HTTP push sink's config, from the settings `push_ca`, `push_client_cert` and
/// `push_client_key`: the one place it is made (at start, and again for SIGHUP's reload).
fn push_sink_config(cfg: &Config) -> HttpPushSinkConfig {
    HttpPushSinkConfig {
        ca: cfg.push_ca.clone(),
        client_cert: cfg.push_client_cert.clone(),
        client_key: cfg.push_client_key.clone(),
    }
}

/// Makes each source's config from the settings and validates them all before anything is bound
/// (an error names the setting), then starts the HTTP, MLLP, file-drop and AMQP sources.
async fn start_sources(
    hub: &Arc<Hub>,
    cfg: &Config,
    console: Arc<crate::console::Console>,
    rx: &watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<StartedSources, String> {
    let body_limit = hub.body_limit;
    let (mllp_tls, mllp_config) = match cfg.mllp_tls()? {
        Some(files) => {
            let served =
                sources::tls::server_config(&files).map_err(|e| format!("MLLP source: {e}"))?;
            let trust = served
                .trust
                .ok_or("MLLP source: TLS without client certificates is not offered")?;
            (
                Some((served.identity, trust)),
                Some(Arc::new(served.config)),
            )
        }
        None => (None, None),
    };
    let http = sources::http::HttpSourceConfig {
        addr: cfg.http_addr.clone(),
        tls: cfg.tls()?,
        body_limit,
        audit_path: cfg.audit_path(),
        console,
    };
    let mllp = sources::mllp::MllpSourceConfig {
        addr: cfg.mllp_addr.clone(),
        body_limit,
        tls: mllp_config,
    };
    let file_drop = sources::file_drop::FileDropConfig {
        poll: std::time::Duration::from_millis(cfg.poll_ms),
        body_limit,
    };
    http.validate()?;
    mllp.validate()?;
    let http = sources::http::start(hub.clone(), http, rx.clone()).await?;
    tasks.push(http.task);
    let (mllp_addr, task) = sources::mllp::start(hub.clone(), mllp, rx.clone()).await?;
    tasks.push(task);
    tasks.push(sources::file_drop::start(
        hub.clone(),
        file_drop,
        rx.clone(),
    ));
    let amqp = sources::amqp::AmqpSourceConfig { body_limit };
    tasks.push(sources::amqp::start(hub.clone(), amqp, rx.clone()));
    Ok(StartedSources {
        http_addr: http.addr,
        mllp_addr,
        server_identity: http.identity,
        client_trust: http.trust,
        mllp_tls,
    })
}

impl Running {
    /// Everything `serve` reads again on SIGHUP: the parties file ([`Running::reload_parties`]),
    /// then the certificate files ([`Running::reload_tls`]). One line per part: what is now in
    /// force, or why the part in force stays.
    pub async fn reload(&self, cfg: &Config) -> Vec<Result<String, String>> {
        let mut out = vec![self.reload_parties(cfg).await];
        out.extend(self.reload_tls(cfg));
        out
    }

    /// Reads the parties file again: parties, credentials, MLLP peers, inboxes, subscriptions
    /// and delivery targets are in force for every request, connection, message and inbox scan
    /// that starts from then on (the out queues of new AMQP recipients are declared first). A
    /// file that does not load (the error names the file, line and column), or that names
    /// another hub, leaves the parties in force. A copy waiting to be tried again for a
    /// recipient the new file no longer lists is dead-lettered when it comes back, saying so.
    pub async fn reload_parties(&self, cfg: &Config) -> Result<String, String> {
        let file = cfg.parties.display();
        let stays = "the parties in force stay";
        let parties = Parties::load(&cfg.parties).map_err(|e| format!("parties: {e}; {stays}"))?;
        parties
            .check_mllp_identities(self.mllp_tls.is_some())
            .map_err(|e| format!("parties: {file}: {e}; {stays}"))?;
        self.hub
            .bus
            .declare(&self.hub.topology, &parties.amqp_recipients())
            .await
            .map_err(|e| {
                format!("parties: {file}: declaring the AMQP recipients' out queues: {e}; {stays}")
            })?;
        let n = parties.all.len();
        self.hub
            .parties
            .replace(parties)
            .map_err(|e| format!("parties: {file}: {e}; {stays}"))?;
        Ok(format!("parties: {file} ({n} parties)"))
    }

    /// Reads the certificate files of `cfg` again (renewed certificates and CAs): the HTTP
    /// source's own `tls_cert` / `tls_key` and the CAs of `tls_client_ca`, the MLLP source's
    /// `mllp_tls_cert` / `mllp_tls_key` and `mllp_tls_client_ca`, and the push sink's `push_ca`,
    /// `push_client_cert` / `push_client_key`. New connections and pushes use them;
    /// open ones keep what they had. Each group that does not load keeps the files in force
    /// before, and its error names the setting and file. Turning HTTPS or client certificates
    /// on or off takes a restart. One line per group: what is now in force, or why not.
    pub fn reload_tls(&self, cfg: &Config) -> Vec<Result<String, String>> {
        let mut out = Vec::new();
        // The paths are those of `cfg`, checked at start; only the files' contents are new.
        if let (Some(identity), Ok(Some(files))) = (&self.server_identity, cfg.tls()) {
            out.push(
                identity
                    .reload(&files)
                    .map(|fp| {
                        format!(
                            "HTTP source: tls_cert {} (leaf SHA-256 {fp})",
                            files.cert.display()
                        )
                    })
                    .map_err(|e| format!("HTTP source: {e}; the certificate in force stays")),
            );
        }
        if let (Some(trust), Ok(Some(files))) = (&self.client_trust, cfg.tls())
            && let Some(ca) = &files.client_ca
        {
            out.push(
                trust
                    .reload(ca)
                    .map(|(n, changed)| {
                        let how = if changed { "" } else { ", unchanged" };
                        format!("HTTP source: tls_client_ca {} ({n} CAs{how})", ca.display())
                    })
                    .map_err(|e| format!("HTTP source: {e}; the CAs in force stay")),
            );
        }
        if let (Some((identity, trust)), Ok(Some(files))) = (&self.mllp_tls, cfg.mllp_tls()) {
            out.push(
                identity
                    .reload(&files)
                    .map(|fp| {
                        format!(
                            "MLLP source: mllp_tls_cert {} (leaf SHA-256 {fp})",
                            files.cert.display()
                        )
                    })
                    .map_err(|e| format!("MLLP source: {e}; the certificate in force stays")),
            );
            if let Some(ca) = &files.client_ca {
                out.push(
                    trust
                        .reload(ca)
                        .map(|(n, changed)| {
                            let how = if changed { "" } else { ", unchanged" };
                            format!(
                                "MLLP source: mllp_tls_client_ca {} ({n} CAs{how})",
                                ca.display()
                            )
                        })
                        .map_err(|e| format!("MLLP source: {e}; the CAs in force stay")),
                );
            }
        }
        if let Ok(Some(files)) = push_sink_config(cfg).tls() {
            out.push(
                self.hub
                    .sinks
                    .reload(&files)
                    .map(|()| format!("HTTP push: push_ca {}", files.ca.display()))
                    .map_err(|e| format!("HTTP push: {e}; the files in force stay")),
            );
        }
        out
    }

    /// Graceful shutdown: stop accepting, finish in-flight work, sync the audit log, and remove
    /// this process from the store's process registry (its consent cache is gone with its hops).
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        if let Some(archive) = &self.hub.archive {
            archive.settled(std::time::Duration::from_secs(10)).await;
        }
        // Blocking (an fsync, then the checkpoint's store write), so off the runtime's threads.
        let audit = self.hub.audit.clone();
        let _ = tokio::task::spawn_blocking(move || audit.flush()).await;
        crate::pipeline::presence::deregister(&self.hub.store, &self.hub.presence).await;
    }
}

/// The subject-hashing key the settings give (`subject_key`, or `<data_dir>/subject.key`, made
/// on first use): what `serve` and the CLI's consent commands hash subjects with.
pub fn subject_key(cfg: &Config) -> Result<Vec<u8>, String> {
    let hex = match &cfg.subject_key {
        Some(k) => k.clone(),
        None => {
            let path = cfg.data_dir.join("subject.key");
            let read = |path: &std::path::Path| {
                crate::key_file::check_private(path)
                    .map_err(|why| format!("{}: {why}", path.display()))?;
                std::fs::read_to_string(path)
                    .map(|k| k.trim().to_string())
                    .map_err(|e| format!("{}: {e}", path.display()))
            };
            if path.exists() {
                read(&path)?
            } else {
                // 32 bytes from the operating system's secure random source, in a new file of
                // mode 0600: the hashes in headers, logs and audit are only as private as this key.
                let key = crate::key_file::random(32).ok_or_else(|| {
                    "the operating system's random source failed; no subject key was made"
                        .to_string()
                })?;
                match crate::key_file::create(&path, &key) {
                    Ok(crate::key_file::Created::Made) => crate::key_file::hex(&key),
                    Ok(crate::key_file::Created::AlreadyThere) => read(&path)?,
                    Err((action, e)) => {
                        return Err(format!("{}: could not {action} it: {e}", path.display()));
                    }
                }
            }
        }
    };
    if hex.len() < 32 || hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("subject_key must be at least 32 hex digits".into());
    }
    Ok((0..hex.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subject_key_is_made_once_from_secure_randomness_in_a_file_of_mode_0600() {
        let dir = std::env::temp_dir().join(format!("kaigo-subject-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let cfg = Config {
            data_dir: dir.clone(),
            ..Config::default()
        };
        let first = subject_key(&cfg).expect("made");
        assert_eq!(first.len(), 32);
        assert_eq!(
            subject_key(&cfg).expect("read"),
            first,
            "made once, then read"
        );
        let path = dir.join("subject.key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "readable by the hub's user only");
        }
        // Another data directory gets another key (the old one came from the clock).
        let other = dir.join("other");
        std::fs::create_dir_all(&other).expect("dir");
        let cfg2 = Config {
            data_dir: other,
            ..Config::default()
        };
        assert_ne!(subject_key(&cfg2).expect("made"), first);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
