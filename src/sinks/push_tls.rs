//! HTTPS trust and client identity of the HTTP push sink (rustls, the aws-lc-rs provider lapin
//! already builds): turns `push_ca` and, when set, `push_client_cert` / `push_client_key` into the
//! rustls `ClientConfig` every `https://` push uses. In: [`PushTlsFiles`] from the configuration;
//! out: the `ClientConfig`, or a [`PushTlsError`] naming the setting, the file and what to do.
//! Loaded once at start, so a broken file stops the start instead of failing every delivery.
//! Must never trust anything but the CAs of `push_ca` (no system roots, no verification turned
//! off), or load a key it cannot pair with the certificate.

use crate::config::PushTlsFiles;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A push TLS setting whose file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PushTlsError {
    /// The file cannot be read.
    #[error("{setting} {}: cannot read: {source}", file.display())]
    Read {
        /// `push_ca`, `push_client_cert` or `push_client_key`.
        setting: &'static str,
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is read but does not hold what the setting needs.
    #[error("{setting} {}: {message}", file.display())]
    Invalid {
        /// `push_ca`, `push_client_cert` or `push_client_key`.
        setting: &'static str,
        /// The file.
        file: PathBuf,
        /// What is wrong and what was expected.
        message: String,
    },
    /// Each file is fine, but rustls refuses them together (e.g. the key is not the certificate's).
    #[error("push_client_cert {} with push_client_key {}: {message}", cert.display(), key.display())]
    Pair {
        /// The certificate chain file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        message: String,
    },
}

/// The rustls client configuration for `files`: server certificates verified against the CAs of
/// `push_ca` (for the URL's host name or IP address), and the hub's client certificate presented
/// to a recipient that asks for one, when `push_client_cert` / `push_client_key` are set.
pub fn client_config(files: &PushTlsFiles) -> Result<ClientConfig, PushTlsError> {
    // Explicitly the aws-lc-rs provider: with two providers in the tree rustls cannot pick one.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let invalid_ca = |message: String| PushTlsError::Invalid {
        setting: "push_ca",
        file: files.ca.clone(),
        message,
    };
    let mut roots = RootCertStore::empty();
    for (i, ca) in certificates("push_ca", &files.ca)?.into_iter().enumerate() {
        roots
            .add(ca)
            .map_err(|e| invalid_ca(format!("certificate {} is not a usable CA: {e}", i + 1)))?;
    }
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid_ca(e.to_string()))?
        .with_root_certificates(roots);
    let Some((cert, key)) = &files.client else {
        return Ok(builder.with_no_client_auth());
    };
    let chain = certificates("push_client_cert", cert)?;
    let key_pem = read("push_client_key", key)?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| PushTlsError::Invalid {
        setting: "push_client_key",
        file: key.clone(),
        message: format!(
            "no usable PEM private key ({e}); expected a `PRIVATE KEY`, `RSA PRIVATE KEY` or \
             `EC PRIVATE KEY` block, unencrypted"
        ),
    })?;
    builder
        .with_client_auth_cert(chain, key_der)
        .map_err(|e| PushTlsError::Pair {
            cert: cert.clone(),
            key: key.clone(),
            message: format!("{e}; is the key the certificate's own?"),
        })
}

/// Every `CERTIFICATE` block of a PEM file, in order; at least one.
fn certificates(
    setting: &'static str,
    file: &Path,
) -> Result<Vec<CertificateDer<'static>>, PushTlsError> {
    let pem = read(setting, file)?;
    let invalid = |message: String| PushTlsError::Invalid {
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

fn read(setting: &'static str, file: &Path) -> Result<Vec<u8>, PushTlsError> {
    std::fs::read(file).map_err(|source| PushTlsError::Read {
        setting,
        file: file.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str, text: &str) -> PathBuf {
        let p =
            std::env::temp_dir().join(format!("kaigo-push-tls-unit-{}-{name}", std::process::id()));
        std::fs::write(&p, text).expect("write scratch file");
        p
    }

    #[test]
    fn a_missing_push_ca_file_is_named_with_its_setting() {
        let missing = std::env::temp_dir().join("kaigo-push-tls-unit-does-not-exist.pem");
        let e = client_config(&PushTlsFiles {
            ca: missing.clone(),
            client: None,
        })
        .expect_err("no such file")
        .to_string();
        assert!(e.starts_with("push_ca "), "{e}");
        assert!(e.contains(&missing.display().to_string()), "{e}");
        assert!(e.contains("cannot read"), "{e}");
    }

    #[test]
    fn a_push_ca_without_pem_certificates_is_named_and_explained() {
        let ca = scratch("not-a-ca.pem", "hello, I am not a certificate\n");
        let e = client_config(&PushTlsFiles {
            ca: ca.clone(),
            client: None,
        })
        .expect_err("no certificate")
        .to_string();
        let _ = std::fs::remove_file(&ca);
        assert!(e.starts_with("push_ca "), "{e}");
        assert!(e.contains(&ca.display().to_string()), "{e}");
        assert!(e.contains("BEGIN CERTIFICATE"), "{e}");
    }

    #[test]
    fn a_broken_certificate_block_in_push_ca_is_an_error_not_a_panic() {
        let ca = scratch(
            "broken.pem",
            "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
        );
        let e = client_config(&PushTlsFiles {
            ca: ca.clone(),
            client: None,
        })
        .expect_err("broken PEM")
        .to_string();
        let _ = std::fs::remove_file(&ca);
        assert!(
            e.starts_with("push_ca ") && e.contains(&ca.display().to_string()),
            "{e}"
        );
    }
}
