//! `kaigo-hub serve`: loads the configuration, sets up logging, starts the hub and waits for
//! SIGTERM or Ctrl-C, then shuts down gracefully; on SIGHUP it reads the parties file and the
//! certificate files again (`Running::reload`) and goes on serving.

use super::Failure;
use kaigo_hub::config::Config;

/// What `serve --help` says after its options: every setting (`-h`: its first sentence), then
/// the registry, logging and signals.
fn after_help(long: bool) -> String {
    let settings = kaigo_hub::config::help(kaigo_hub::config::SETTINGS, long);
    format!("{settings}{AFTER_SETTINGS}")
}

const AFTER_SETTINGS: &str = "\
Registry: serve records itself in the store (host, pid, bus URL without credentials, prefix,
  consent_cache_secs) with a heartbeat every 5 s, and removes itself when it stops gracefully; a
  consent command reads the registry to reach every running process on its own bus and prefix.
Log level: RUST_LOG (e.g. RUST_LOG=kaigo_hub=debug).
Signals: SIGTERM or Ctrl-C stops gracefully. SIGHUP reads the parties file (new parties, keys,
  subscriptions, delivery targets) and the certificate files (tls_cert/tls_key, tls_client_ca,
  mllp_tls_cert/mllp_tls_key, mllp_tls_client_ca, push_ca, push_client_cert/push_client_key)
  again, for what starts from then on; a file that does not load is reported and the one in
  force stays. hub.id, and turning TLS on or off, take a restart.

Example: KAIGO_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f kaigo-hub serve";

#[derive(clap::Args, Debug)]
#[command(after_help = after_help(false), after_long_help = after_help(true))]
pub struct Args {
    #[command(flatten)]
    pub config: super::ConfigFile,
    /// Demo: register synthetic consents for the shipped samples, feed every sample in as its
    /// sender would, and print what was delivered where (then keep serving). The web console
    /// gets four demo accounts, demo-viewer, demo-operator, demo-privacy and demo-admin, each
    /// with the password `<name>-password` (only under --demo). Without archive_key_file, the
    /// message archive is on with a key made in <data_dir>/archive.key.
    #[arg(long)]
    pub demo: bool,
    /// Reload the mapping directory whenever its files change, without a restart and without
    /// dropping a message; a broken edit is reported (file:line:column) and the working set stays
    /// in force. Same as watch_mappings = true.
    #[arg(long)]
    pub watch: bool,
}

pub fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
        // lapin logs a message RabbitMQ returned (unroutable) with its body: personal data, which
        // no log may carry, whatever RUST_LOG says. The bus logs the return's exchange and key.
        .add_directive(
            "lapin::returned_messages=off"
                .parse()
                .expect("a valid directive"),
        );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::usage(format!("cannot start the async runtime: {e}")))
}

pub fn run(a: Args) -> Result<u8, Failure> {
    let mut cfg = Config::load(a.config.config.as_deref()).map_err(Failure::usage)?;
    cfg.watch_mappings |= a.watch;
    init_logging(&cfg.log_format);
    if a.demo {
        demo_archive_key(&mut cfg)?;
    }
    runtime()?.block_on(async move {
        let options = kaigo_hub::serve::StartOptions { demo: a.demo };
        let running = kaigo_hub::serve::start_with(&cfg, options)
            .await
            .map_err(Failure::usage)?;
        // `Config::load` checked that tls_cert comes with tls_key.
        let scheme = if cfg.tls_cert.is_some() { "https" } else { "http" };
        let mllp = if cfg.mllp_tls_cert.is_some() { "MLLP over TLS" } else { "MLLP" };
        eprintln!(
            "kaigo-hub: serving HTTP on {scheme}://{} and {mllp} on {} ({} bus, prefix `{}`); Ctrl-C or SIGTERM stops, SIGHUP reloads parties and certificates",
            running.http_addr,
            running.mllp_addr,
            running.hub.bus.name(),
            cfg.prefix
        );
        // Taken over before the demo: SIGHUP's default action would end the process.
        let signals = Signals::new();
        if a.demo {
            demo(&running, &cfg.audit_path(), scheme).await?;
        }
        signals.wait_for_stop(&running, &cfg).await;
        eprintln!("kaigo-hub: shutting down: no new messages; finishing in-flight work");
        running.stop().await;
        eprintln!("kaigo-hub: stopped");
        Ok(0)
    })
}

/// `--demo` without `archive_key_file`: the archive's key in `<data_dir>/archive.key`, made
/// (0600, fresh random bytes) when missing, so the demo's console shows traces and bodies.
fn demo_archive_key(cfg: &mut Config) -> Result<(), Failure> {
    if cfg.archive_key_file.is_some() {
        return Ok(());
    }
    let path = cfg.data_dir.join("archive.key");
    let (_, made) = kaigo_hub::store::archive::ArchiveKey::read_or_make(&path)
        .map_err(|e| Failure::usage(format!("demo: {e}")))?;
    if made {
        eprintln!(
            "kaigo-hub demo: made the message archive's key {} (archive_key_file)",
            path.display()
        );
    }
    cfg.archive_key_file = Some(path);
    Ok(())
}

/// The signals `serve` answers: stop (SIGTERM, Ctrl-C) and reload (SIGHUP: the parties file and
/// the certificate files).
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    hangup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Signals {
                term: signal(SignalKind::terminate()).ok(),
                hangup: signal(SignalKind::hangup()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// Waits for SIGTERM or Ctrl-C, reloading on each SIGHUP meanwhile.
    async fn wait_for_stop(mut self, running: &kaigo_hub::serve::Running, cfg: &Config) {
        #[cfg(unix)]
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => return,
                _ = next(&mut self.term) => return,
                _ = next(&mut self.hangup) => reload(running, cfg).await,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = (running, cfg);
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The next delivery of `signal`; never, when it could not be installed.
#[cfg(unix)]
async fn next(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// SIGHUP: the parties file and the certificate files again, each outcome logged and printed.
async fn reload(running: &kaigo_hub::serve::Running, cfg: &Config) {
    for outcome in running.reload(cfg).await {
        match outcome {
            Ok(line) => {
                tracing::info!(reloaded = %line, "SIGHUP: reloaded");
                eprintln!("kaigo-hub: SIGHUP: reloaded {line}");
            }
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: not reloaded");
                eprintln!("kaigo-hub: SIGHUP: not reloaded: {e}");
            }
        }
    }
}

async fn demo(
    running: &kaigo_hub::serve::Running,
    audit_path: &std::path::Path,
    scheme: &str,
) -> Result<(), Failure> {
    let hub = &running.hub;
    kaigo_hub::demo::seed(hub).map_err(|e| Failure::usage(format!("demo: {e}")))?;
    for line in kaigo_hub::demo::feed(hub, std::path::Path::new("samples")).await {
        eprintln!("  {line}");
    }
    // Let the hops and the inbox poller work, then show the counters.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    use std::sync::atomic::Ordering::Relaxed;
    let m = &hub.metrics;
    eprintln!(
        "kaigo-hub demo: accepted {}, refused {}, translated {}, delivered {}, quarantined {}, dead {}; consent permit {} / deny {}",
        m.accepted.load(Relaxed),
        m.rejected.load(Relaxed),
        m.translated.load(Relaxed),
        m.delivered.load(Relaxed),
        m.quarantined.load(Relaxed),
        m.dead.load(Relaxed),
        m.permit.load(Relaxed),
        m.deny.load(Relaxed),
    );
    for p in &hub.parties.current().all {
        match &p.delivery {
            Some(kaigo_hub::parties::DeliveryTarget::Dir(d)) => {
                let n = std::fs::read_dir(d)
                    .map(|r| r.flatten().count())
                    .unwrap_or(0);
                eprintln!("  {} ({}): {n} file(s) in {}", p.id, p.name, d.display());
            }
            Some(kaigo_hub::parties::DeliveryTarget::Amqp) => {
                let q = hub.topology.out_queue(&p.id);
                let n = hub.bus.queue_len(&q).await.unwrap_or(0);
                eprintln!(
                    "  {} ({}): {n} message(s) waiting in queue {q}",
                    p.id, p.name
                );
            }
            _ => {}
        }
    }
    eprintln!(
        "  audit log: {}; try `kaigo-hub audit verify` and `curl -s {scheme}://{}/metrics`",
        audit_path.display(),
        running.http_addr
    );
    let accounts: Vec<&str> = kaigo_hub::console::accounts::DEMO_ACCOUNTS
        .iter()
        .map(|(name, _)| *name)
        .collect();
    eprintln!(
        "  console: {scheme}://{}/console — sign in as {} (password: the name followed by `-password`)",
        running.http_addr,
        accounts.join(", ")
    );
    Ok(())
}
