//! TLS for the sources that listen — the HTTP source (`tls_*`) and the MLLP source
//! (`mllp_tls_*`): turns a listener's certificate, key and client CA files into a rustls
//! `ServerConfig`, and tells the SHA-256 fingerprint of the client certificate a handshake verified
//! so that the source can name the party (`client_certs_sha256`). In: [`TlsFiles`] (which also
//! carry the names of their settings, for messages), made from the settings by
//! [`TlsFiles::from_settings`], which holds the rules of which settings go together (`Config::validate`
//! asks them); out: the `ServerConfig`, or a [`TlsError`]
//! naming the setting, the file and what to do; per connection a [`ClientCert`]. Client
//! certificates are optional at the handshake (the HTTP source then takes an API key; the MLLP
//! source refuses the frames of a peer without one, saying why), but one that is presented must
//! chain to the client CAs, else the handshake fails. The hub's own certificate and key are a
//! [`ServerIdentity`] that `reload` replaces while the listener runs (SIGHUP, for a renewed
//! certificate): new connections get the new pair, a file that does not load leaves the old pair
//! in force. So are the client CAs, a [`ClientTrust`]: a reload puts a changed CA file in force
//! for new handshakes. Must never accept a client certificate it did not verify, or load a key it
//! cannot pair with the certificate.

use crate::parties::cert_fingerprint;
use crate::pem::{self, PemError};
use rustls::DistinguishedName;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// The files a listening source serves TLS with (the HTTP source's `tls_*`, the MLLP source's
/// `mllp_tls_*`), from TLS settings that fit together ([`TlsFiles::from_settings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// CAs for client certificates (PEM), when client certificates are asked for.
    pub client_ca: Option<PathBuf>,
    /// The settings these files come from, for messages.
    pub settings: TlsSettings,
}

/// The names of one listener's TLS settings, as messages name them, and whether its client CAs
/// are required.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsSettings {
    /// The certificate chain's setting.
    pub cert: &'static str,
    /// The private key's setting.
    pub key: &'static str,
    /// The client CAs' setting.
    pub client_ca: &'static str,
    /// What the listener speaks with them (`HTTPS`, `MLLP over TLS`), and over what client
    /// certificates are asked for (`HTTPS`, `TLS`).
    pub speaks: (&'static str, &'static str),
    /// Why the certificate and key need the client CAs, when they do (`None`: optional).
    pub client_ca_required: Option<&'static str>,
}

/// The HTTP source's TLS settings: `tls_cert` and `tls_key` go together, and `tls_client_ca`
/// needs both.
pub const HTTP_TLS: TlsSettings = TlsSettings {
    cert: "tls_cert",
    key: "tls_key",
    client_ca: "tls_client_ca",
    speaks: ("HTTPS", "HTTPS"),
    client_ca_required: None,
};

/// The MLLP source's TLS settings: `mllp_tls_cert`, `mllp_tls_key` and `mllp_tls_client_ca` go
/// together (over MLLP a client certificate is the only credential TLS can add).
pub const MLLP_TLS: TlsSettings = TlsSettings {
    cert: "mllp_tls_cert",
    key: "mllp_tls_key",
    client_ca: "mllp_tls_client_ca",
    speaks: ("MLLP over TLS", "TLS"),
    client_ca_required: Some(
        "over MLLP a hospital is known by its client certificate, so TLS needs the CAs that \
         issue them",
    ),
};

impl TlsFiles {
    /// The files of the listener settings named by `settings` ([`HTTP_TLS`], [`MLLP_TLS`]):
    /// `None` for a plain listener, or an error naming the settings that are half set, their
    /// variables, and what to do. The certificate and key go together; the client CAs need
    /// both, and are needed by them when `settings.client_ca_required` says why.
    pub fn from_settings(
        settings: TlsSettings,
        cert: &Option<PathBuf>,
        key: &Option<PathBuf>,
        client_ca: &Option<PathBuf>,
    ) -> Result<Option<TlsFiles>, String> {
        let TlsSettings {
            cert: c,
            key: k,
            client_ca: ca,
            ..
        } = settings;
        let var = crate::config::variable;
        match (
            pem::cert_key_pair(settings.speaks.0, (c, cert), (k, key))?,
            client_ca,
        ) {
            (Some(_), None) if let Some(why) = settings.client_ca_required => Err(format!(
                "{c} and {k} are set but {ca} is not: {why}; set {ca} ({}) as well, or unset the \
                 certificate and key for plain MLLP",
                var(ca)
            )),
            (Some((cert, key)), client_ca) => Ok(Some(TlsFiles {
                cert,
                key,
                client_ca: client_ca.clone(),
                settings,
            })),
            (None, Some(_)) => Err(format!(
                "{ca} is set but {c} and {k} are not: client certificates are only asked for \
                 over {}; set {c} and {k} ({}, {}) as well, or unset {ca} ({})",
                settings.speaks.1,
                var(c),
                var(k),
                var(ca)
            )),
            (None, None) => Ok(None),
        }
    }
}

/// The verified client certificate of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    /// SHA-256 (lowercase hex) of the leaf certificate's DER bytes.
    pub sha256: String,
}

/// A TLS setting whose file cannot be used (`tls_cert`, `mllp_tls_key`, …).
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
            let trust = Arc::new(ClientTrust::load(files.settings.client_ca, ca)?);
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
    /// The CAs client certificates must chain to, when the client CA setting is set.
    pub trust: Option<Arc<ClientTrust>>,
}

/// A listener's own certificate chain and key, as new handshakes get them.
#[derive(Debug)]
pub struct ServerIdentity {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ServerIdentity {
    /// Reads the certificate and key files again (`tls_cert` and `tls_key`, or `mllp_tls_cert`
    /// and `mllp_tls_key`) and serves them from the next handshake on; when
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

/// The chain of the certificate file with the key of the key file, checked to pair.
fn certified_key(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let chain = pem::certificates(files.settings.cert, &files.cert)?;
    let key = pem::private_key(files.settings.key, &files.key)?;
    CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| pair(files, format!("{e}; is the key the certificate's own?")))
}

fn pair(files: &TlsFiles, message: String) -> PemError {
    PemError::Pair {
        cert_setting: files.settings.cert,
        cert: files.cert.clone(),
        key_setting: files.settings.key,
        key: files.key.clone(),
        message,
    }
}

/// The CAs of a client CA setting (`tls_client_ca`, `mllp_tls_client_ca`), as new handshakes
/// verify client certificates against them; [`ClientTrust::reload`] replaces them while the
/// listener runs.
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
    /// The setting the CA file comes from, for messages.
    setting: &'static str,
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
    fn load(setting: &'static str, file: &Path) -> Result<ClientTrust, TlsError> {
        let trusted = trusted(setting, file, None)?;
        Ok(ClientTrust {
            setting,
            current: RwLock::new(trusted),
            sessions: Arc::new(Sessions::new()),
        })
    }

    /// Reads `file` (the client CA setting it was loaded from) again and verifies client certificates of new
    /// handshakes against its CAs; when it does not load, the error names the setting and file,
    /// and the CAs in force stay. A changed file also ends every session a client could resume.
    /// Returns how many CAs are now trusted, and whether the file had changed.
    pub fn reload(&self, file: &Path) -> Result<(usize, bool), TlsError> {
        let now = self.trusted();
        let next = trusted(self.setting, file, Some(&now))?;
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
fn trusted(setting: &'static str, file: &Path, now: Option<&Trusted>) -> Result<Trusted, TlsError> {
    let pem = pem::read(setting, file)?;
    if let Some(now) = now
        && *now.pem == pem
    {
        return Ok(now.clone());
    }
    let verifier = client_verifier(setting, file, &pem, pem::provider())?;
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
    setting: &'static str,
    file: &Path,
    pem: &[u8],
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let roots = pem::roots_in(setting, file, pem)?;
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .allow_unauthenticated()
        .build()
        .map_err(|e| PemError::Invalid {
            setting,
            file: file.to_path_buf(),
            message: e.to_string(),
        })
}

/// The fingerprint of the client certificate a TLS session verified, if the client presented one.
pub fn client_cert(session: &rustls::CommonState) -> Option<ClientCert> {
    let leaf = session.peer_certificates()?.first()?;
    Some(ClientCert {
        sha256: cert_fingerprint(leaf.as_ref()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_set_listener_tls_settings_are_refused_saying_what_to_set() {
        let some = || Some(PathBuf::from("x.pem"));
        let refused = |settings, cert, key, ca| {
            TlsFiles::from_settings(settings, &cert, &key, &ca).expect_err("half set")
        };
        assert_eq!(
            refused(HTTP_TLS, None, None, some()),
            "tls_client_ca is set but tls_cert and tls_key are not: client certificates are \
             only asked for over HTTPS; set tls_cert and tls_key (KAIGO_TLS_CERT, \
             KAIGO_TLS_KEY) as well, or unset tls_client_ca (KAIGO_TLS_CLIENT_CA)"
        );
        assert_eq!(
            refused(MLLP_TLS, some(), some(), None),
            "mllp_tls_cert and mllp_tls_key are set but mllp_tls_client_ca is not: over MLLP \
             a hospital is known by its client certificate, so TLS needs the CAs that issue \
             them; set mllp_tls_client_ca (KAIGO_MLLP_TLS_CLIENT_CA) as well, or unset the \
             certificate and key for plain MLLP"
        );
        assert_eq!(
            refused(MLLP_TLS, None, None, some()),
            "mllp_tls_client_ca is set but mllp_tls_cert and mllp_tls_key are not: client \
             certificates are only asked for over TLS; set mllp_tls_cert and mllp_tls_key \
             (KAIGO_MLLP_TLS_CERT, KAIGO_MLLP_TLS_KEY) as well, or unset mllp_tls_client_ca \
             (KAIGO_MLLP_TLS_CLIENT_CA)"
        );
        let e = refused(MLLP_TLS, some(), None, some());
        assert!(e.starts_with("mllp_tls_cert is set but mllp_tls_key is not: MLLP over TLS"));
        let http = TlsFiles::from_settings(HTTP_TLS, &some(), &some(), &None);
        assert_eq!(
            http.map(|f| f.map(|f| f.client_ca)),
            Ok(Some(None)),
            "CAs optional"
        );
    }

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
            settings: HTTP_TLS,
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
