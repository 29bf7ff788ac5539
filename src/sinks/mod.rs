//! Sinks: how a rendered document reaches a recipient — its AMQP queue (via the egress
//! exchange), a directory (written atomically: temporary file, then rename), or an HTTP POST
//! (`http://`, or `https://` with the CAs of `push_ca` and optionally the hub's client
//! certificate). A sink reports success only when the recipient side has the bytes (broker
//! confirm, rename done, 2xx received); the deliver hop acks its input only then. [`Sinks`] is
//! what the sinks are built with, at start (the push sink's TLS files again on `serve`'s SIGHUP);
//! the pipeline only passes it along.

pub mod dir;
pub mod http;
pub mod push_tls;

use crate::bus::{Bus, Props};
use crate::parties::DeliveryTarget;
use http::HttpPushSinkConfig;
use push_tls::{PushTlsError, PushTlsFiles};
use std::sync::{Arc, RwLock};

/// One rendered document for one recipient.
pub struct Outbound<'a> {
    /// Recipient party id.
    pub recipient: &'a str,
    /// Bytes in the recipient's format.
    pub body: &'a [u8],
    /// MIME type.
    pub content_type: &'a str,
    /// File name to use for file drops.
    pub file_name: &'a str,
    /// Properties (message_id = envelope id) for AMQP.
    pub props: &'a Props,
}

/// What the sinks need from the configuration, loaded at start (and again by [`Sinks::reload`]).
#[derive(Debug, Clone, Default)]
pub struct Sinks {
    /// The HTTPS client configuration of the push sink; `None` (no `push_ca`) = an `https://`
    /// delivery fails saying that `push_ca` is needed. Shared by every clone, so a reload
    /// reaches every delivery from then on.
    https: Arc<RwLock<Option<Arc<rustls::ClientConfig>>>>,
}

impl Sinks {
    /// Sinks with the push sink's HTTPS files loaded (no `push_ca`: plain `http://` push only).
    /// Settings that do not go together are [`HttpPushSinkConfig::validate`]'s error; a file
    /// that does not load is named with its setting, after `HTTP push sink: `.
    pub fn new(push: &HttpPushSinkConfig) -> Result<Sinks, String> {
        let https = push
            .tls()?
            .map(|files| push_tls::client_config(&files))
            .transpose()
            .map_err(|e| format!("HTTP push sink: {e}"))?
            .map(Arc::new);
        Ok(Sinks {
            https: Arc::new(RwLock::new(https)),
        })
    }

    /// Reads the push sink's HTTPS files again (renewed CAs or client certificate); pushes from
    /// then on use them. Files that do not load leave those in force, and the error names the
    /// setting and file.
    pub fn reload(&self, push_tls: &PushTlsFiles) -> Result<(), PushTlsError> {
        let config = Arc::new(push_tls::client_config(push_tls)?);
        *self.https.write().unwrap_or_else(|p| p.into_inner()) = Some(config);
        Ok(())
    }

    fn https(&self) -> Option<Arc<rustls::ClientConfig>> {
        self.https.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Sends `out` to `target`.
    pub async fn send(
        &self,
        bus: &dyn Bus,
        egress_exchange: &str,
        target: &DeliveryTarget,
        out: &Outbound<'_>,
    ) -> Result<(), SinkError> {
        match target {
            DeliveryTarget::Amqp => bus
                .publish(egress_exchange, out.recipient, out.props, out.body)
                .await
                .map_err(|e| SinkError::failed(e.to_string())),
            DeliveryTarget::Dir(path) => dir::write(path, out.file_name, out.body)
                .await
                .map_err(SinkError::failed),
            DeliveryTarget::Http(url) => http::post(
                url,
                self.https().as_ref(),
                out.content_type,
                out.props,
                out.body,
            )
            .await
            .map_err(|e| SinkError {
                refused: e.refuses_content(),
                message: e.to_string(),
            }),
        }
    }
}

/// Why a sink did not take a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkError {
    /// What failed, naming the target (never the body).
    pub message: String,
    /// The recipient refused the content itself: another try would get the same answer, so the
    /// copy is dead-lettered at once (HTTP 400, 413, 415, 422; [`http::CONTENT_REFUSED`]).
    pub refused: bool,
}

impl SinkError {
    /// A failure another try may get past.
    pub fn failed(message: String) -> SinkError {
        SinkError {
            message,
            refused: false,
        }
    }
}

impl std::fmt::Display for SinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
