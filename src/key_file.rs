//! Secret keys the hub makes for itself and keeps in files: the audit key (`audit::key`) and the
//! subject-hash key (`serve::subject_key`). In: a path and a length. Out: fresh bytes from the
//! operating system's secure random source, written once as hex into a new file of mode 0600
//! (its directory made if needed). Two processes starting at once end with one key: the file is
//! created exclusively, and the one that finds it made reads that one instead. Must never
//! overwrite a key file (the hashes and seals made with it would stop verifying) or show a key.

use std::io::Write;
use std::path::Path;

/// `n` bytes from the operating system's secure random source (the same aws-lc-rs provider the
/// hub's TLS uses); `None` when it failed.
pub fn random(n: usize) -> Option<Vec<u8>> {
    let mut bytes = vec![0u8; n];
    rustls::crypto::aws_lc_rs::default_provider()
        .secure_random
        .fill(&mut bytes)
        .ok()?;
    Some(bytes)
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Refuses a key file that other users of the machine may read or write (on Unix: any group or
/// other permission bit), as OpenSSH does a private key: whoever reads the subject key can undo
/// the hashes in headers, logs and audit events, whoever reads the archive key can open the
/// archive. The reason says how to mend it. A file that cannot be looked at is left to the read
/// that follows, which says why.
pub fn check_private(path: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(format!(
                    "other users of this machine may read or change the key file (mode {mode:03o}); make it the hub's user's alone: `chmod 600 {}`",
                    path.display()
                ));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// What [`create`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Created {
    /// The file is new and holds the key given.
    Made,
    /// Another process made the file a moment ago: read that one.
    AlreadyThere,
}

/// Writes `key` as hex into a new file at `path` (mode 0600, fsynced), making its directory;
/// never replaces a file that is there.
pub fn create(path: &Path, key: &[u8]) -> Result<Created, (&'static str, std::io::Error)> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| ("create the directory of", e))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(format!("{}\n", hex(key)).as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| ("write", e))?;
            Ok(Created::Made)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(Created::AlreadyThere),
        Err(e) => Err(("create", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_may_read_is_refused_with_the_mend() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("kaigo-key-private-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("k.key");
        create(&path, &random(32).expect("random")).expect("made");
        check_private(&path).expect("0600 is private");
        for mode in [0o644, 0o640, 0o606, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
            let e = check_private(&path).expect_err("not private");
            assert!(e.contains(&format!("(mode {mode:03o})")), "{e}");
            assert!(
                e.contains(&format!("`chmod 600 {}`", path.display())),
                "{e}"
            );
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).expect("chmod");
        check_private(&path).expect("read-only for its owner is private");
        check_private(&dir.join("absent.key")).expect("the read says what is missing");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_key_file_is_made_0600_from_fresh_randomness_and_never_overwritten() {
        let dir = std::env::temp_dir().join(format!("kaigo-key-file-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("nested/k.key");
        let (a, b) = (random(32).expect("random"), random(32).expect("random"));
        assert_ne!(a, b, "two draws differ");
        assert_eq!(create(&path, &a).expect("made"), Created::Made);
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            format!("{}\n", hex(&a))
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(create(&path, &b).expect("there"), Created::AlreadyThere);
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            format!("{}\n", hex(&a)),
            "the first key stays"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
