//! The PID file: always names the live serving process.
//!
//! Written atomically (temporary file under a random name + rename) once the server is
//! ready, so a reader never sees a partial PID and nothing planted in the directory is
//! written through; removed at exit only if it still names this process.

use std::path::{Path, PathBuf};

pub(crate) struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Checks before start-up that the PID file can be written (its directory exists and
    /// is writable), so a bad path fails before anything else happens.
    pub(crate) fn check(path: &Path) -> Result<(), String> {
        let dir = crate::files::parent_dir(path);
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(format!("PID file directory {} is not a directory", dir.display()));
            }
            Err(e) => return Err(format!("PID file directory {}: {e}", dir.display())),
        }
        if !crate::files::dir_writable(dir) {
            return Err(format!(
                "PID file directory {} is not writable by this user",
                dir.display()
            ));
        }
        Ok(())
    }

    /// Writes this process's PID through a [`TempFile`](crate::files::TempFile) (random
    /// name, never through a symbolic link), 0644 so that supervisors and monitoring tools
    /// running as other users can read it.
    pub(crate) fn write(path: &Path) -> std::io::Result<PidFile> {
        let pid = format!("{}\n", std::process::id());
        crate::files::write_atomic(path, pid.as_bytes(), 0o644)?;
        Ok(PidFile { path: path.to_path_buf() })
    }

    /// Removes the file if it still names this process (a successor may have replaced it).
    pub(crate) fn remove(self) {
        let ours = std::fs::read_to_string(&self.path)
            .is_ok_and(|s| s.trim() == std::process::id().to_string());
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
