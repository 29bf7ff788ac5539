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
