//! HTTP source: the hub's FHIR R4 face (actix-web 4). Hospitals POST FHIR JSON, municipalities
//! register FHIR `Consent`s and search the audit trail, operators poll health and metrics. In: HTTP
//! (or, with `tls_cert` and `tls_key`, HTTPS) requests authenticated by `Authorization: Bearer <API
//! key>` and/or, with `tls_client_ca`, a verified client certificate (both matched against the
//! parties file; see `auth.rs`); out: FHIR JSON answers, the message handed to
//! `pipeline::ingress::accept`. A sender hears `202` only after `accept` returned, i.e. after the
//! bus confirmed the publish. Must never trust a claimed identity (the party is the key's or the
//! certificate's owner, whatever the body says), and never echo another person's data in an
//! answer.
//!
//! | endpoint | who | answers |
//! |---|---|---|
//! | `POST /fhir` (a `Bundle`) | any party with a key or client certificate | 202 · 400 · 401 · 403 · 413 · 415 · 422 · 503 |
//! | `POST /fhir/{type}` (a resource of `{type}`) | any party with a key or client certificate | as above |
//! | `POST /fhir/Consent` | municipality, platform | 201 · 200 · 400 · 401 · 403 · 409 · 413 · 415 · 422 · 503 |
//! | `GET /fhir/AuditEvent?envelope=&subject=&party=&_count=` | municipality, platform | 200 · 400 · 401 · 403 · 500 |
//! | `GET /fhir/metadata` | anyone | 200 (`CapabilityStatement`) |
//! | `GET /health` | anyone | 200 · 503 (`{"status","bus"}`) |
//! | `GET /metrics` | anyone | 200 (Prometheus text 0.0.4) |
//! | `/console/…` | operators (loopback only over plain HTTP) | the web console (`console/`) |
//!
//! One answer design for every FHIR endpoint: the body is an `OperationOutcome`
//! (`application/fhir+json`) whose `issue[0]` says what happened — `severity: information` on
//! success, `error` on refusal — with the detail in `diagnostics`. Whenever the hub *kept* the
//! message (published, quarantined or dead-lettered), the answer carries `X-Kaigo-Envelope: <id>`
//! and the diagnostics name the same id; the sender's `X-Request-Id` (if any) becomes the
//! correlation id on the bus and is echoed back. Checks that fail before `accept` (key, content
//! type, size, not JSON, wrong `resourceType`) are answered at once, audited as `rejected`, and
//! nothing is kept: the sender still holds the message. Searches and the capability statement
//! answer with the FHIR resource itself (`Bundle`, `CapabilityStatement`).

mod audit_search;
mod audit_trail;
mod auth;
mod body;
mod consent;
mod health;
mod metadata;
mod outcome;
mod submit;
mod tls;

pub use crate::sources::tls::{ClientTrust, ServerIdentity};

use crate::pipeline::Hub;
use crate::pipeline::body_limit::BodyLimit;
use crate::sources::tls::TlsFiles;
use actix_web::{App, HttpServer, web};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Seconds in-flight requests get to finish once shutdown was asked for.
const SHUTDOWN_GRACE_SECS: u64 = 15;

/// What every handler shares.
struct State {
    /// The running hub.
    hub: Arc<Hub>,
    /// The audit log read by `GET /fhir/AuditEvent`.
    audit_path: PathBuf,
    /// Largest accepted body (`body_limit`, the limit of every door).
    body_limit: BodyLimit,
}

/// What the HTTP source is built from: the settings `http_addr`, `tls_cert` / `tls_key` /
/// `tls_client_ca` (checked together by [`TlsFiles::from_settings`]) and `body_limit`, and the audit log it
/// searches.
#[derive(Debug, Clone)]
pub struct HttpSourceConfig {
    /// `http_addr`: `HOST:PORT` to listen on (port 0 picks a free one).
    pub addr: String,
    /// HTTPS: the certificate chain, its key and the client CAs; `None` = plain HTTP.
    pub tls: Option<TlsFiles>,
    /// `body_limit`: the largest body accepted.
    pub body_limit: BodyLimit,
    /// The audit log `GET /fhir/AuditEvent` reads (`<data_dir>/audit.jsonl`).
    pub audit_path: PathBuf,
    /// The web console mounted at `/console` (`console::configure`).
    pub console: Arc<crate::console::Console>,
}

impl HttpSourceConfig {
    /// Checks what can be checked before anything is bound; the error names the setting.
    pub fn validate(&self) -> Result<(), String> {
        crate::sources::check_listen_addr("http_addr", &self.addr)
    }
}

/// The HTTP source as started: where it listens, the task that ends once it stopped, and over
/// HTTPS the certificate it serves (reloadable).
pub struct Started {
    /// The bound address.
    pub addr: SocketAddr,
    /// Completes once the server has stopped.
    pub task: JoinHandle<()>,
    /// Over HTTPS: the hub's certificate and key, for [`ServerIdentity::reload`].
    pub identity: Option<Arc<ServerIdentity>>,
    /// Over HTTPS with `tls_client_ca`: the CAs client certificates chain to, for
    /// [`ClientTrust::reload`].
    pub trust: Option<Arc<ClientTrust>>,
}

/// Binds `cfg.addr` (HTTPS when `cfg.tls` is given), serves until `shutdown` turns true, then
/// stops gracefully (no new connections; in-flight requests get `SHUTDOWN_GRACE_SECS`). An
/// invalid address or unusable TLS files are an error naming the setting (and file).
pub async fn start(
    hub: Arc<Hub>,
    cfg: HttpSourceConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Started, String> {
    cfg.validate()?;
    let body_limit = cfg.body_limit;
    let state = web::Data::new(State {
        hub,
        audit_path: cfg.audit_path,
        body_limit,
    });
    let limit = body_limit.bytes();
    let console = web::Data::from(cfg.console);
    let (tls, identity, trust) = match cfg.tls {
        Some(files) => {
            let served = crate::sources::tls::server_config(&files)
                .map_err(|e| format!("HTTP source: {e}"))?;
            (Some(served.config), Some(served.identity), served.trust)
        }
        None => (None, None, None),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            // For any extractor that buffers a body (ours read `Payload` with the same limit).
            .app_data(web::PayloadConfig::new(limit))
            .configure(|c| crate::console::configure(c, console.clone()))
            .configure(routes)
    })
    // Records the verified client certificate of a TLS connection for `auth.rs`.
    .on_connect(tls::on_connect)
    // The hub owns shutdown (the watch channel), not actix's own signal handlers.
    .disable_signals()
    .shutdown_timeout(SHUTDOWN_GRACE_SECS);
    let server = match tls {
        Some(tls) => server.bind_rustls_0_23(&cfg.addr, tls),
        None => server.bind(&cfg.addr),
    }
    .map_err(|e| {
        format!(
            "HTTP source cannot listen on {} (http_addr / KAIGO_HTTP_ADDR): {e}",
            cfg.addr
        )
    })?;
    let addr = server.addrs().first().copied().ok_or_else(|| {
        format!(
            "HTTP source: {} resolved to no address to listen on",
            cfg.addr
        )
    })?;
    tracing::info!(%addr, scheme, "HTTP source listening");
    let server = server.run();
    let handle = server.handle();
    let task = tokio::spawn(async move {
        let mut server = tokio::spawn(server);
        tokio::select! {
            _ = shutdown_requested(&mut shutdown) => {
                handle.stop(true).await;
                if let Ok(Err(e)) = server.await {
                    tracing::error!(error = %e, "HTTP source stopped with an error");
                }
            }
            res = &mut server => {
                if let Ok(Err(e)) = res {
                    tracing::error!(error = %e, "HTTP source stopped with an error");
                }
            }
        }
        tracing::info!(%addr, "HTTP source stopped");
    });
    Ok(Started {
        addr,
        task,
        identity,
        trust,
    })
}

/// Resolves once shutdown is asked for (or the hub dropped the sender).
async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// The route table (the order matters: fixed paths before `/fhir/{type}`).
fn routes(cfg: &mut web::ServiceConfig) {
    let not_allowed = || web::to(outcome::method_not_allowed);
    cfg.service(
        web::resource("/fhir")
            .route(web::post().to(submit::bundle))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/fhir/metadata")
            .route(web::get().to(metadata::capability_statement))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/fhir/Consent")
            .route(web::post().to(consent::register))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/fhir/AuditEvent")
            .route(web::get().to(audit_search::search))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/fhir/{type}")
            .route(web::post().to(submit::resource))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/health")
            .route(web::get().to(health::health))
            .default_service(not_allowed()),
    )
    .service(
        web::resource("/metrics")
            .route(web::get().to(health::metrics))
            .default_service(not_allowed()),
    )
    .default_service(web::to(outcome::not_found));
}
