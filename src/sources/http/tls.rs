//! HTTPS for the HTTP source (rustls, the aws-lc-rs provider lapin already builds): turns the
//! `tls_cert` / `tls_key` / `tls_client_ca` files into a rustls `ServerConfig`, and, per
//! connection, records the SHA-256 fingerprint of the client certificate the handshake verified
//! so that `auth.rs` can name the party. In: [`TlsFiles`]; out: the `ServerConfig`, or a
//! [`TlsError`] naming the file and what to do; per connection a [`ClientCert`] in the
//! connection's data. Client certificates are optional (a client without one still uses its API
//! key), but one that is presented must chain to `tls_client_ca`, else the handshake fails.
//! The hub's own certificate and key are a [`ServerIdentity`] that `reload` replaces while the
//! server runs (SIGHUP, for a renewed certificate): new connections get the new pair, a file
//! that does not load leaves the old pair in force. So are the CAs of `tls_client_ca`, a
//! [`ClientTrust`]: a reload puts a changed CA file in force for new handshakes.
//! Must never accept a client certificate it did not verify, or load a key it cannot pair with
//! the certificate.

use crate::config::TlsFiles;
use crate::parties::cert_fingerprint;
use crate::pem::{self, PemError};
use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::dev::Extensions;
use actix_web::rt::net::TcpStream;
use rustls::DistinguishedName;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
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
/// [`ServerIdentity`] and the [`ClientTrust`] (when `client_ca` is set) it uses, for their
/// `reload`.
pub fn server_config(files: &TlsFiles) -> Result<Served, TlsError> {
    let provider = pem::provider();
    let identity = Arc::new(ServerIdentity {
        current: RwLock::new(Arc::new(certified_key(files, &provider)?)),
    });
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| pair(files, e.to_string()))?;
    let (builder, trust) = match &files.client_ca {
        None => (builder.with_no_client_auth(), None),
        Some(ca) => {
            let trust = Arc::new(ClientTrust::load(ca)?);
            (
                builder.with_client_cert_verifier(trust.clone()),
                Some(trust),
            )
        }
    };
    let mut config = builder.with_cert_resolver(identity.clone());
    if let Some(trust) = &trust {
        config.session_storage = trust.sessions.clone();
    }
    Ok(Served {
        config,
        identity,
        trust,
    })
}

/// What [`server_config`] builds: the configuration, and its reloadable parts.
#[derive(Debug)]
pub struct Served {
    /// For the TLS acceptor.
    pub config: ServerConfig,
    /// The hub's own certificate and key.
    pub identity: Arc<ServerIdentity>,
    /// The CAs client certificates must chain to, when `tls_client_ca` is set.
    pub trust: Option<Arc<ClientTrust>>,
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

/// The CAs of `tls_client_ca`, as new handshakes verify client certificates against them;
/// [`ClientTrust::reload`] replaces them while the server runs.
///
/// rustls asks a verifier for the CA names it sends in its certificate request
/// (`root_hint_subjects`) as a borrow of the verifier, which a lock cannot lend. So the names of
/// each CA file put in force are leaked, once per change of the file's contents: a few hundred
/// bytes per CA rotation, against keeping the hints (a client with several certificates picks
/// by them) or a restart.
///
/// A resumed TLS session skips the client certificate check (it carries the verdict of the
/// handshake it resumes), so the server's session cache is this trust's, and a reload that
/// changes the CAs empties it: no client keeps in through a CA taken out.
#[derive(Debug)]
pub struct ClientTrust {
    current: RwLock<Trusted>,
    sessions: Arc<Sessions>,
}

/// rustls's in-memory session cache (the default's size), emptied by [`Sessions::clear`].
#[derive(Debug)]
struct Sessions {
    current: RwLock<Arc<rustls::server::ServerSessionMemoryCache>>,
}

/// Sessions the server remembers for resumption (rustls's default).
const SESSION_CACHE_SIZE: usize = 256;

impl Sessions {
    fn new() -> Sessions {
        Sessions {
            current: RwLock::new(rustls::server::ServerSessionMemoryCache::new(
                SESSION_CACHE_SIZE,
            )),
        }
    }

    fn cache(&self) -> Arc<rustls::server::ServerSessionMemoryCache> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn clear(&self) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) =
            rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE_SIZE);
    }
}

impl rustls::server::StoresServerSessions for Sessions {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.cache().put(key, value)
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.cache().get(key)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.cache().take(key)
    }

    fn can_cache(&self) -> bool {
        true
    }
}

#[derive(Debug, Clone)]
struct Trusted {
    /// The CA file's bytes, to tell a changed file from the one in force.
    pem: Arc<Vec<u8>>,
    verifier: Arc<dyn ClientCertVerifier>,
    hints: &'static [DistinguishedName],
}

impl ClientTrust {
    fn load(file: &Path) -> Result<ClientTrust, TlsError> {
        let trusted = trusted(file, None)?;
        Ok(ClientTrust {
            current: RwLock::new(trusted),
            sessions: Arc::new(Sessions::new()),
        })
    }

    /// Reads `file` (the `tls_client_ca` setting) again and verifies client certificates of new
    /// handshakes against its CAs; when it does not load, the error names the setting and file,
    /// and the CAs in force stay. A changed file also ends every session a client could resume.
    /// Returns how many CAs are now trusted, and whether the file had changed.
    pub fn reload(&self, file: &Path) -> Result<(usize, bool), TlsError> {
        let now = self.trusted();
        let next = trusted(file, Some(&now))?;
        let changed = !Arc::ptr_eq(&next.pem, &now.pem);
        let n = next.hints.len();
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = next;
        if changed {
            self.sessions.clear();
        }
        Ok((n, changed))
    }

    fn trusted(&self) -> Trusted {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn verifier(&self) -> Arc<dyn ClientCertVerifier> {
        self.trusted().verifier
    }
}

/// The verifier for the CAs in `file`, or `now` itself when the file has not changed.
fn trusted(file: &Path, now: Option<&Trusted>) -> Result<Trusted, TlsError> {
    let pem = pem::read("tls_client_ca", file)?;
    if let Some(now) = now
        && *now.pem == pem
    {
        return Ok(now.clone());
    }
    let verifier = client_verifier(file, &pem, pem::provider())?;
    let hints: &'static [DistinguishedName] =
        Box::leak(verifier.root_hint_subjects().to_vec().into_boxed_slice());
    Ok(Trusted {
        pem: Arc::new(pem),
        verifier,
        hints,
    })
}

impl ClientCertVerifier for ClientTrust {
    fn offer_client_auth(&self) -> bool {
        self.verifier().offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.verifier().client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.trusted().hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.verifier()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.verifier().supported_verify_schemes()
    }
}

/// Verifies client certificates against the CAs in `file`; a client may also present none.
fn client_verifier(
    file: &Path,
    pem: &[u8],
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let roots = pem::roots_in("tls_client_ca", file, pem)?;
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
