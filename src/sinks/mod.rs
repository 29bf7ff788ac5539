//! Sinks: how a rendered document reaches a recipient — its AMQP queue (via the egress
//! exchange), a directory (written atomically: temporary file, then rename), or an HTTP POST.
//! A sink reports success only when the recipient side has the bytes (broker confirm, rename
//! done, 2xx received); the deliver hop acks its input only then.

pub mod dir;
pub mod http;

use crate::bus::{Bus, Props};
use crate::parties::DeliveryTarget;

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

/// Sends `out` to `target`.
pub async fn send(
    bus: &dyn Bus,
    egress_exchange: &str,
    target: &DeliveryTarget,
    out: &Outbound<'_>,
) -> Result<(), String> {
    match target {
        DeliveryTarget::Amqp => bus
            .publish(egress_exchange, out.recipient, out.props, out.body)
            .await
            .map_err(|e| e.to_string()),
        DeliveryTarget::Dir(path) => dir::write(path, out.file_name, out.body).await,
        DeliveryTarget::Http(url) => http::post(url, out.content_type, out.props, out.body).await,
    }
}
