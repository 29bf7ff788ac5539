//! HTTPS for the HTTP source (rustls, the aws-lc-rs provider lapin already builds): turns the
//! `tls_cert` / `tls_key` / `tls_client_ca` files into a rustls `ServerConfig`, and, per
//! connection, records the SHA-256 fingerprint of the client certificate the handshake verified
//! so that `auth.rs` can name the party. In: [`TlsFiles`]; out: the `ServerConfig`, or a
//! [`TlsError`] naming the file and what to do; per connection a [`ClientCert`] in the
//! connection's data. Client certificates are optional (a client without one still uses its API
//! key), but one that is presented must chain to `tls_client_ca`, else the handshake fails.
//! Must never accept a client certificate it did not verify, or load a key it cannot pair with
//! the certificate.

use crate::config::TlsFiles;
use crate::parties::cert_fingerprint;
use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The verified client certificate of a connection, kept in its connection data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// SHA-256 (lowercase hex) of the leaf certificate's DER bytes.
    pub sha256: String,
}

/// A TLS setting whose file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file cannot be read.
    #[error("{setting} {}: cannot read: {source}", file.display())]
    Read {
        /// `tls_cert`, `tls_key` or `tls_client_ca`.
        setting: &'static str,
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is read but does not hold what the setting needs.
    #[error("{setting} {}: {message}", file.display())]
    Invalid {
        /// `tls_cert`, `tls_key` or `tls_client_ca`.
        setting: &'static str,
        /// The file.
        file: PathBuf,
        /// What is wrong and what was expected.
        message: String,
    },
    /// Each file is fine, but rustls refuses them together (e.g. the key is not the certificate's).
    #[error("tls_cert {} with tls_key {}: {message}", cert.display(), key.display())]
    Pair {
        /// The certificate chain file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        message: String,
    },
}

/// The rustls server configuration for `files`: the chain and key, and client certificate
/// verification against `client_ca` when it is set (optional client auth).
pub fn server_config(files: &TlsFiles) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = certificates("tls_cert", &files.cert)?;
    let key_pem = read("tls_key", &files.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Invalid {
        setting: "tls_key",
        file: files.key.clone(),
        message: format!(
            "no usable PEM private key ({e}); expected a `PRIVATE KEY`, `RSA PRIVATE KEY` or \
             `EC PRIVATE KEY` block, unencrypted"
        ),
    })?;
    let pair = |message: String| TlsError::Pair {
        cert: files.cert.clone(),
        key: files.key.clone(),
        message,
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| pair(e.to_string()))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => builder.with_client_cert_verifier(client_verifier(ca, provider)?),
    };
    builder
        .with_single_cert(chain, key)
        .map_err(|e| pair(format!("{e}; is the key the certificate's own?")))
}

/// Verifies client certificates against the CAs in `file`; a client may also present none.
fn client_verifier(
    file: &Path,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let invalid = |message: String| TlsError::Invalid {
        setting: "tls_client_ca",
        file: file.to_path_buf(),
        message,
    };
    let mut roots = RootCertStore::empty();
    for (i, ca) in certificates("tls_client_ca", file)?.into_iter().enumerate() {
        roots
            .add(ca)
            .map_err(|e| invalid(format!("certificate {} is not a usable CA: {e}", i + 1)))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .allow_unauthenticated()
        .build()
        .map_err(|e| invalid(e.to_string()))
}

/// Every `CERTIFICATE` block of a PEM file, in order; at least one.
fn certificates(
    setting: &'static str,
    file: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(setting, file)?;
    let invalid = |message: String| TlsError::Invalid {
        setting,
        file: file.to_path_buf(),
        message,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("not readable as PEM: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(
            "holds no `-----BEGIN CERTIFICATE-----` block; expected PEM certificates".into(),
        ));
    }
    Ok(certs)
}

fn read(setting: &'static str, file: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(file).map_err(|source| TlsError::Read {
        setting,
        file: file.to_path_buf(),
        source,
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
