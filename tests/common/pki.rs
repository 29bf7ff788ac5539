//! A throwaway PKI for the TLS tests, made at test time with the `openssl` command line: in a
//! directory of the test's own, self-signed CAs ([`ca`]) and certificates they issue ([`issue`])
//! with one of the extension profiles of [`OPENSSL_CNF`] — `test_server` (for 127.0.0.1 and
//! localhost), `test_server_elsewhere` (for a name no test connects to), `test_client` — and
//! SHA-256 fingerprints as `openssl` prints them ([`fingerprint`]), so a wrong calculation in the
//! hub fails a test rather than agreeing with itself.
//!
//! The `openssl` CLI rather than `rcgen`: it is on every machine that runs these suites and costs
//! no compile time; a missing `openssl` fails the test saying so.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Extension profiles for `openssl req`/`openssl x509 -extfile`.
pub const OPENSSL_CNF: &str = "\
[req]
distinguished_name = dn
[dn]
[test_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[test_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
[test_server_elsewhere]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:elsewhere.invalid
[test_client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
";

/// A certificate and its key, as PEM files.
pub struct Identity {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Makes `dir` ready for [`ca`] and [`issue`] (creates it, writes `openssl.cnf`).
pub fn prepare(dir: &Path) {
    std::fs::create_dir_all(dir).expect("pki dir");
    std::fs::write(dir.join("openssl.cnf"), OPENSSL_CNF).expect("openssl.cnf");
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "these tests make their certificates with the `openssl` command ({e}); install it"
            )
        });
    assert!(
        out.status.success(),
        "openssl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed CA named `name`.
pub fn ca(dir: &Path, name: &str) -> Identity {
    let (cert, key) = (format!("{name}.pem"), format!("{name}.key"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-keyout",
            &key,
            "-out",
            &cert,
            "-days",
            "2",
            "-subj",
            &format!("/CN=kaigo-hub test {name}"),
            "-config",
            "openssl.cnf",
            "-extensions",
            "test_ca",
        ],
    );
    Identity {
        cert: dir.join(cert),
        key: dir.join(key),
    }
}

/// A certificate `name` issued by `issuer` with the extension profile `profile`.
pub fn issue(dir: &Path, issuer: &Identity, name: &str, profile: &str, serial: &str) -> Identity {
    let (cert, key, csr) = (
        format!("{name}.pem"),
        format!("{name}.key"),
        format!("{name}.csr"),
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-nodes",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN={name}"),
            "-config",
            "openssl.cnf",
        ],
    );
    let (ca_cert, ca_key) = (issuer.cert.display(), issuer.key.display());
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_cert.to_string(),
            "-CAkey",
            &ca_key.to_string(),
            "-set_serial",
            serial,
            "-days",
            "2",
            "-out",
            &cert,
            "-extfile",
            "openssl.cnf",
            "-extensions",
            profile,
        ],
    );
    Identity {
        cert: dir.join(cert),
        key: dir.join(key),
    }
}

/// SHA-256 of a certificate's DER form as `openssl` prints it, normalised to lowercase hex.
pub fn fingerprint(cert: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert)
        .output()
        .expect("openssl x509 -fingerprint");
    let text = String::from_utf8_lossy(&out.stdout);
    let hex: String = text
        .trim()
        .rsplit('=')
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_lowercase();
    assert_eq!(hex.len(), 64, "fingerprint of {}: {text}", cert.display());
    hex
}
