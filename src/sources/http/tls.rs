//! HTTPS for the HTTP source (rustls, the aws-lc-rs provider lapin already builds): turns the
//! `tls_cert` / `tls_key` / `tls_client_ca` files into a rustls `ServerConfig`, and, per
//! connection, records the SHA-256 fingerprint of the client certificate the handshake verified
//! so that `auth.rs` can name the party. In: [`TlsFiles`]; out: the `ServerConfig`, or a
//! [`TlsError`] naming the file and what to do; per connection a [`ClientCert`] in the
//! connection's data. Client certificates are optional (a client without one still uses its API
//! key), but one that is presented must chain to `tls_client_ca`, else the handshake fails.
//! The hub's own certificate and key are a [`ServerIdentity`] that `reload` replaces while the
//! server runs (SIGHUP, for a renewed certificate): new connections get the new pair, a file
//! that does not load leaves the old pair in force. `tls_client_ca` is read at start only.
//! Must never accept a client certificate it did not verify, or load a key it cannot pair with
//! the certificate.

use crate::config::TlsFiles;
use crate::parties::cert_fingerprint;
use crate::pem::{self, PemError};
use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use std::any::Any;
use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

/// The verified client certificate of a connection, kept in its connection data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// SHA-256 (lowercase hex) of the leaf certificate's DER bytes.
    pub sha256: String,
}

/// A TLS setting whose file cannot be used (`tls_cert`, `tls_key`, `tls_client_ca`).
pub type TlsError = PemError;

/// The rustls server configuration for `files`: the chain and key, and client certificate
/// verification against `client_ca` when it is set (optional client auth); with the
/// [`ServerIdentity`] it serves, for [`ServerIdentity::reload`].
pub fn server_config(files: &TlsFiles) -> Result<(ServerConfig, Arc<ServerIdentity>), TlsError> {
    let provider = pem::provider();
    let identity = Arc::new(ServerIdentity {
        current: RwLock::new(Arc::new(certified_key(files, &provider)?)),
    });
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| pair(files, e.to_string()))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => builder.with_client_cert_verifier(client_verifier(ca, provider)?),
    };
    Ok((builder.with_cert_resolver(identity.clone()), identity))
}

/// The HTTP source's own certificate chain and key, as new handshakes get them.
#[derive(Debug)]
pub struct ServerIdentity {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ServerIdentity {
    /// Reads `tls_cert` and `tls_key` again and serves them from the next handshake on; when
    /// they do not load (or do not pair) the error names the setting and file, and the pair in
    /// force stays. Returns the SHA-256 fingerprint of the new leaf certificate.
    pub fn reload(&self, files: &TlsFiles) -> Result<String, TlsError> {
        let key = Arc::new(certified_key(files, &pem::provider())?);
        let fingerprint = leaf_fingerprint(&key);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = key;
        Ok(fingerprint)
    }
}

impl ResolvesServerCert for ServerIdentity {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

fn leaf_fingerprint(key: &CertifiedKey) -> String {
    key.cert
        .first()
        .map(|leaf| cert_fingerprint(leaf.as_ref()))
        .unwrap_or_default()
}

/// The chain of `tls_cert` with the key of `tls_key`, checked to pair.
fn certified_key(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let chain = pem::certificates("tls_cert", &files.cert)?;
    let key = pem::private_key("tls_key", &files.key)?;
    CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| pair(files, format!("{e}; is the key the certificate's own?")))
}

fn pair(files: &TlsFiles, message: String) -> PemError {
    PemError::Pair {
        cert_setting: "tls_cert",
        cert: files.cert.clone(),
        key_setting: "tls_key",
        key: files.key.clone(),
        message,
    }
}

/// Verifies client certificates against the CAs in `file`; a client may also present none.
fn client_verifier(
    file: &Path,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let roots = pem::roots("tls_client_ca", file)?;
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .allow_unauthenticated()
        .build()
        .map_err(|e| PemError::Invalid {
            setting: "tls_client_ca",
            file: file.to_path_buf(),
            message: e.to_string(),
        })
}

/// `HttpServer::on_connect`: on a TLS connection whose client presented a certificate (which
/// rustls has verified by the time the connection reaches here), records its [`ClientCert`].
/// Plain TCP connections and clients without a certificate get nothing.
pub fn on_connect(connection: &dyn Any, data: &mut Extensions) {
    let Some(tls) = connection.downcast_ref::<TlsStream<TcpStream>>() else {
        return;
    };
    let (_, session) = tls.get_ref();
    if let Some(leaf) = session.peer_certificates().and_then(|c| c.first()) {
        data.insert(ClientCert {
            sha256: cert_fingerprint(leaf.as_ref()),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str, text: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("kaigo-tls-unit-{}-{name}", std::process::id()));
        std::fs::write(&p, text).expect("write scratch file");
        p
    }

    fn files(cert: PathBuf, key: PathBuf) -> TlsFiles {
        TlsFiles {
            cert,
            key,
            client_ca: None,
        }
    }

    #[test]
    fn a_missing_file_is_named_with_its_setting() {
        let missing = std::env::temp_dir().join("kaigo-tls-unit-does-not-exist.pem");
        let e = server_config(&files(missing.clone(), missing.clone()))
            .expect_err("no such file")
            .to_string();
        assert!(e.starts_with("tls_cert "), "{e}");
        assert!(e.contains(&missing.display().to_string()), "{e}");
    }

    #[test]
    fn a_file_without_pem_certificates_is_named_and_explained() {
        let cert = scratch("not-a-cert.pem", "hello, I am not a certificate\n");
        let e = server_config(&files(cert.clone(), cert.clone()))
            .expect_err("no certificate")
            .to_string();
        let _ = std::fs::remove_file(&cert);
        assert!(e.contains(&cert.display().to_string()), "{e}");
        assert!(e.contains("BEGIN CERTIFICATE"), "{e}");
    }

    #[test]
    fn a_broken_certificate_block_is_an_error_not_a_panic() {
        let cert = scratch(
            "broken.pem",
            "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
        );
        let e = server_config(&files(cert.clone(), cert.clone()))
            .expect_err("broken PEM")
            .to_string();
        let _ = std::fs::remove_file(&cert);
        assert!(
            e.starts_with("tls_cert ") && e.contains(&cert.display().to_string()),
            "{e}"
        );
    }
}
