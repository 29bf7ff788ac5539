//! PEM files named in the configuration → the rustls values they hold (certificate chains, private
//! keys, CA stores), shared by the HTTP source's HTTPS (`tls_*`) and the push sink's HTTPS
//! (`push_*`). In: a setting's name and its file; out: the values, or a [`PemError`] naming the
//! setting, the file and what was expected; and the rule that a certificate and its key are set
//! together ([`cert_key_pair`]). Also fixes the crypto provider: aws-lc-rs, the one
//! lapin already builds (with two providers in the tree rustls cannot pick one by itself).
//! Must never: read a key or certificate from anything but the named file, or panic on its bytes.

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A TLS setting whose file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PemError {
    /// The file cannot be read.
    #[error("{setting} {}: cannot read: {source}", file.display())]
    Read {
        /// The setting, e.g. `tls_cert` or `push_ca`.
        setting: &'static str,
        /// The file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is read but does not hold what the setting needs.
    #[error("{setting} {}: {message}", file.display())]
    Invalid {
        /// The setting.
        setting: &'static str,
        /// The file.
        file: PathBuf,
        /// What is wrong and what was expected.
        message: String,
    },
    /// Each file is fine, but rustls refuses them together (e.g. the key is not the certificate's).
    #[error("{cert_setting} {} with {key_setting} {}: {message}", cert.display(), key.display())]
    Pair {
        /// The certificate chain's setting.
        cert_setting: &'static str,
        /// The certificate chain file.
        cert: PathBuf,
        /// The key's setting.
        key_setting: &'static str,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        message: String,
    },
}

/// The crypto provider every TLS configuration of the hub uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Every `CERTIFICATE` block of a PEM file, in order; at least one.
pub fn certificates(
    setting: &'static str,
    file: &Path,
) -> Result<Vec<CertificateDer<'static>>, PemError> {
    certificates_in(setting, file, &read(setting, file)?)
}

/// [`certificates`] of `pem`, the contents of `file`.
fn certificates_in(
    setting: &'static str,
    file: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let invalid = |message: String| PemError::Invalid {
        setting,
        file: file.to_path_buf(),
        message,
    };
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(format!("not readable as PEM: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(
            "holds no `-----BEGIN CERTIFICATE-----` block; expected PEM certificates".into(),
        ));
    }
    Ok(certs)
}

/// The (unencrypted) private key of a PEM file.
pub fn private_key(setting: &'static str, file: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    let pem = read(setting, file)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| PemError::Invalid {
        setting,
        file: file.to_path_buf(),
        message: format!(
            "no usable PEM private key ({e}); expected a `PRIVATE KEY`, `RSA PRIVATE KEY` or \
             `EC PRIVATE KEY` block, unencrypted"
        ),
    })
}

/// The CAs of a PEM bundle, as a store to verify peers against.
pub fn roots(setting: &'static str, file: &Path) -> Result<RootCertStore, PemError> {
    roots_in(setting, file, &read(setting, file)?)
}

/// [`roots`] of `pem`, the contents of `file` (read with [`read`]).
pub fn roots_in(setting: &'static str, file: &Path, pem: &[u8]) -> Result<RootCertStore, PemError> {
    let mut roots = RootCertStore::empty();
    for (i, ca) in certificates_in(setting, file, pem)?.into_iter().enumerate() {
        roots.add(ca).map_err(|e| PemError::Invalid {
            setting,
            file: file.to_path_buf(),
            message: format!("certificate {} is not a usable CA: {e}", i + 1),
        })?;
    }
    Ok(roots)
}

/// The bytes of `file`, the value of `setting`.
pub fn read(setting: &'static str, file: &Path) -> Result<Vec<u8>, PemError> {
    std::fs::read(file).map_err(|source| PemError::Read {
        setting,
        file: file.to_path_buf(),
        source,
    })
}

/// A certificate chain and its private key, which `what` needs together: both set, neither, or
/// an error naming the one that is missing (with both settings and their environment variables).
/// The one rule behind every TLS pair the configuration has (`tls_*`, `mllp_tls_*`,
/// `push_client_*`).
pub fn cert_key_pair(
    what: &str,
    (cert_key, cert): (&str, &Option<PathBuf>),
    (key_key, key): (&str, &Option<PathBuf>),
) -> Result<Option<(PathBuf, PathBuf)>, String> {
    let env = crate::config::variable;
    let half = |set: &str, unset: &str| {
        format!(
            "{set} is set but {unset} is not: {what} needs both the certificate chain and its \
             private key ({cert_key} / {} and {key_key} / {}), or neither",
            env(cert_key),
            env(key_key)
        )
    };
    match (cert, key) {
        (Some(c), Some(k)) => Ok(Some((c.clone(), k.clone()))),
        (Some(_), None) => Err(half(cert_key, key_key)),
        (None, Some(_)) => Err(half(key_key, cert_key)),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str, text: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("kaigo-pem-unit-{}-{name}", std::process::id()));
        std::fs::write(&p, text).expect("write scratch file");
        p
    }

    #[test]
    fn a_key_file_without_a_key_is_named_and_explained() {
        let f = scratch(
            "no-key.pem",
            "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
        );
        let e = private_key("push_client_key", &f)
            .expect_err("no key")
            .to_string();
        let _ = std::fs::remove_file(&f);
        assert!(e.starts_with("push_client_key "), "{e}");
        assert!(e.contains("PRIVATE KEY"), "{e}");
    }

    #[test]
    fn an_empty_ca_bundle_is_refused() {
        let f = scratch("empty.pem", "");
        let e = roots("tls_client_ca", &f).expect_err("empty").to_string();
        let _ = std::fs::remove_file(&f);
        assert!(
            e.starts_with("tls_client_ca ") && e.contains("BEGIN CERTIFICATE"),
            "{e}"
        );
    }
}
