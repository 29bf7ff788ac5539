//! The actix side of the HTTP source's HTTPS: per connection, the fingerprint of the client
//! certificate the handshake verified (`sources::tls` builds the rustls configuration and
//! verifies), kept in the connection's data for `auth.rs`. Must never record a certificate that
//! rustls did not verify.

pub use crate::sources::tls::ClientCert;
use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use std::any::Any;

/// `HttpServer::on_connect`: on a TLS connection whose client presented a certificate (which
/// rustls has verified by the time the connection reaches here), records its [`ClientCert`].
/// Plain TCP connections and clients without a certificate get nothing.
pub fn on_connect(connection: &dyn Any, data: &mut Extensions) {
    let Some(tls) = connection.downcast_ref::<TlsStream<TcpStream>>() else {
        return;
    };
    let (_, session) = tls.get_ref();
    if let Some(cert) = crate::sources::tls::client_cert(session) {
        data.insert(cert);
    }
}
