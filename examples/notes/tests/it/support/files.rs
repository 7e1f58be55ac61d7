//! Files and directories of a test: its temporary directory, the database path and its
//! sidecars, modes, and the `nobody` user that file permissions apply to.

use std::path::{Path, PathBuf};

/// UID/GID of `nobody`, for tests that need file permissions to apply (we run as root).
pub const NOBODY: u32 = 65534;

pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("notes-it-").tempdir().expect("create a temporary directory")
}

pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("app.db")
}

/// A file SQLite keeps beside the database: `suffix` is `-wal`, `-shm` or `-journal`.
pub fn sidecar(db: &Path, suffix: &str) -> PathBuf {
    PathBuf::from(format!("{}{suffix}", db.display()))
}

pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// The permission bits (with setuid, setgid and sticky) of `path` itself, not of what a
/// symbolic link points to.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// The names of the files in `dir`, sorted.
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
