//! Writing certificate files: private keys are created 0600 and never exist half-written
//! (temporary file + rename), so a crash or a concurrent reader never sees a torn key.

use std::io::Write;
use std::path::Path;

/// Creates `dir` (and parents) if missing; a directory this creates is 0700 (it holds
/// private keys).
pub(crate) fn ensure_private_dir(dir: &Path, setting: &str) -> Result<(), String> {
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| {
        format!("cannot create the certificate directory {} ({setting}): {e}", dir.display())
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
            format!("cannot restrict the certificate directory {} ({setting}): {e}", dir.display())
        })?;
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically with the given Unix mode.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let result = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
