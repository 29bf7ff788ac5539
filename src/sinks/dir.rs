//! File-drop sink: writes a delivery into the recipient's directory atomically (a hidden
//! temporary file, fsync, then rename), so a reader never sees half a file.

use std::path::Path;
use tokio::io::AsyncWriteExt;

/// Writes `body` as `dir/name`.
pub async fn write(dir: &Path, name: &str, body: &[u8]) -> Result<(), String> {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let tmp = dir.join(format!(".{safe}.part"));
    let fin = dir.join(&safe);
    let mut f = tokio::fs::File::create(&tmp)
        .await
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    f.write_all(body)
        .await
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    f.sync_all()
        .await
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    drop(f);
    tokio::fs::rename(&tmp, &fin)
        .await
        .map_err(|e| format!("{}: {e}", fin.display()))
}
