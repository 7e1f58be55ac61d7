//! Small filesystem questions asked before anything is written: which directory a file
//! lives in, and whether this user may create files there.

use std::path::Path;

/// The directory holding `file`: its parent, or `.` for a bare file name.
pub(crate) fn parent_dir(file: &Path) -> &Path {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// True when this user may create and remove files in `dir` (write + search permission),
/// as SQLite's -wal/-shm files and the PID file's temporary need.
pub(crate) fn dir_writable(dir: &Path) -> bool {
    #[cfg(unix)]
    {
        use nix::unistd::{AccessFlags, access};
        access(dir, AccessFlags::W_OK | AccessFlags::X_OK).is_ok()
    }
    #[cfg(not(unix))]
    {
        std::fs::metadata(dir).is_ok_and(|m| !m.permissions().readonly())
    }
}
