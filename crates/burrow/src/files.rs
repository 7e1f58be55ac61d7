//! Files the server writes, and the directories they go in.
//!
//! Every file the server writes into place (the PID file, certificates and keys, the ACME
//! account and challenge answers, a backup) is first written as a [`TempFile`]: a new file
//! under a random name beside its destination, created exclusively and never through a
//! symbolic link, with its final mode from the first moment, then synced and renamed over
//! the destination. A name nobody can predict cannot be prepared in advance (a symbolic link
//! planted at a predictable temporary name in a shared directory would make the server
//! write wherever it points), and a reader never sees a half-written file under the final
//! name.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

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

/// Creates `path`, which must not exist yet (`O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC`): a file
/// or a symbolic link already there, even a dangling one, is an `AlreadyExists` error rather
/// than something written through. The file has `mode` (less the umask) from creation, so
/// there is no moment at which it is more open than that.
pub(crate) fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode).custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC);
    }
    #[cfg(not(unix))]
    let _ = mode;
    options.open(path)
}

/// A new file being written beside its destination; removed when dropped unless
/// [`persist`](TempFile::persist)ed.
pub(crate) struct TempFile {
    path: PathBuf,
    dest: PathBuf,
    file: File,
    persisted: bool,
}

impl TempFile {
    /// `.NAME.RANDOM.tmp` in the directory of `dest` (the same filesystem, so the final
    /// rename is atomic), created with [`create_new`] and `mode`.
    pub(crate) fn new(dest: &Path, mode: u32) -> io::Result<TempFile> {
        let name = dest.file_name().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "the path does not name a file")
        })?;
        let mut temp = OsString::from(".");
        temp.push(name);
        // 16 hex digits: a name nobody can guess.
        temp.push(format!(".{}.tmp", crate::random::hex(8)));
        let path = parent_dir(dest).join(temp);
        let file = create_new(&path, mode)?;
        Ok(TempFile { path, dest: dest.to_path_buf(), file, persisted: false })
    }

    /// Where the file is being written (for writers that open it themselves, like SQLite).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Syncs the file and renames it over the destination: a file there is replaced
    /// atomically, and a symbolic link there is replaced itself (a rename never follows
    /// one).
    pub(crate) fn persist(self) -> io::Result<()> {
        self.finish(false)
    }

    /// Like [`persist`](TempFile::persist), but fails with `AlreadyExists` rather than
    /// replace anything that appeared at the destination meanwhile.
    pub(crate) fn persist_new(self) -> io::Result<()> {
        self.finish(true)
    }

    fn finish(mut self, keep_existing: bool) -> io::Result<()> {
        self.file.sync_all()?;
        if keep_existing {
            rename_noreplace(&self.path, &self.dest)?;
        } else {
            std::fs::rename(&self.path, &self.dest)?;
        }
        self.persisted = true;
        // The new name survives a crash only once the directory is synced. The file is in
        // place either way, so a failure here has nothing left to undo.
        #[cfg(unix)]
        if let Ok(dir) = File::open(parent_dir(&self.dest)) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

impl Write for TempFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Renames `from` to `to` unless something exists at `to` (`AlreadyExists`).
pub(crate) fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use nix::errno::Errno;
        use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
        match renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE) {
            Ok(()) => return Ok(()),
            // A filesystem without RENAME_NOREPLACE: link() below never replaces either.
            Err(Errno::EINVAL | Errno::ENOSYS) => {}
            Err(e) => return Err(e.into()),
        }
    }
    std::fs::hard_link(from, to)?;
    std::fs::remove_file(from)
}

/// Uploaded files and their directories: the group may read them (a backup user, a web
/// server serving public files itself), nobody else.
pub(crate) const SHARED_FILE_MODE: u32 = 0o640;
pub(crate) const SHARED_DIR_MODE: u32 = 0o750;

/// Creates `dir` and its missing parents, each [`SHARED_DIR_MODE`] (less the umask).
pub(crate) fn create_shared_dirs(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, SHARED_DIR_MODE);
    builder.create(dir)
}

/// A file as a response body, 64 KiB a frame. Reads come from local disk, mostly its page
/// cache (a file just written, a file served often), so they are done in place.
pub(crate) struct FileBody {
    file: File,
    buffer: Vec<u8>,
}

impl FileBody {
    pub(crate) fn new(file: File) -> FileBody {
        FileBody { file, buffer: vec![0; 64 * 1024] }
    }
}

impl http_body::Body for FileBody {
    type Data = bytes::Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<io::Result<http_body::Frame<bytes::Bytes>>>> {
        use std::io::Read;
        let this = self.get_mut();
        std::task::Poll::Ready(match this.file.read(&mut this.buffer) {
            Ok(0) => None,
            Ok(n) => {
                Some(Ok(http_body::Frame::data(bytes::Bytes::copy_from_slice(&this.buffer[..n]))))
            }
            Err(e) => Some(Err(e)),
        })
    }
}

/// Writes `bytes` to `path` through a [`TempFile`] with `mode`, replacing any file there.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut temp = TempFile::new(path, mode)?;
    temp.write_all(bytes)?;
    temp.persist()
}

/// Whether a directory that must be private (it holds private keys) is: `Ok(None)` when it
/// is missing or private, `Ok(Some(mode))` when group or others have access but this user
/// owns it (and may tighten it), an error naming the directory and `setting` when it is not
/// a directory, or is open to others and owned by someone else.
pub(crate) fn check_private_dir(dir: &Path, setting: &str) -> Result<Option<u32>, String> {
    let meta = match std::fs::metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("directory {} ({setting}): {e}", dir.display())),
    };
    if !meta.is_dir() {
        return Err(format!("{} ({setting}) is not a directory", dir.display()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 == 0 {
            return Ok(None);
        }
        let me = nix::unistd::geteuid().as_raw();
        if meta.uid() == me {
            return Ok(Some(mode));
        }
        Err(format!(
            "directory {} ({setting}) holds private keys but is open to other users (mode \
             {mode:04o}) and belongs to uid {}, not to this user (uid {me}): make it mode 0700 or \
             owned by this user",
            dir.display(),
            meta.uid()
        ))
    }
    #[cfg(not(unix))]
    Ok(None)
}

/// Creates `dir` (and its parents) if missing, the directory itself 0700 from creation. An
/// existing one open to group or others is tightened to 0700 when this user owns it (with a
/// warning), and refused when someone else does: see [`check_private_dir`].
pub(crate) fn ensure_private_dir(dir: &Path, setting: &str) -> Result<(), String> {
    if let Some(mode) = check_private_dir(dir, setting)? {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
                format!("cannot make directory {} ({setting}) private: {e}", dir.display())
            })?;
        }
        tracing::warn!(
            dir = %dir.display(),
            "directory {} ({setting}) was open to other users (mode {mode:04o}); changed it to \
             0700: it holds private keys",
            dir.display()
        );
        return Ok(());
    }
    if dir.is_dir() {
        return Ok(());
    }
    let cannot =
        |e: io::Error| format!("cannot create directory {} ({setting}): {e}", dir.display());
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(cannot)?;
    }
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    match builder.create(dir) {
        Ok(()) => Ok(()),
        // Created meanwhile (another process starting): judge that one.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => ensure_private_dir(dir, setting),
        Err(e) => Err(cannot(e)),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn temp_files_get_unpredictable_names_and_vanish_unless_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("server.pid");
        let (a, b) = (TempFile::new(&dest, 0o600).unwrap(), TempFile::new(&dest, 0o600).unwrap());
        assert_ne!(a.path(), b.path());
        let name = a.path().file_name().unwrap().to_str().unwrap().to_string();
        assert!(name.starts_with(".server.pid.") && name.ends_with(".tmp"), "{name}");
        assert_eq!(name.len(), ".server.pid.".len() + 16 + ".tmp".len(), "{name}");
        assert_eq!(mode(a.path()), 0o600);
        drop((a, b));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "temporary files left");

        write_atomic(&dest, b"42\n", 0o644).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"42\n");
        write_atomic(&dest, b"43\n", 0o644).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"43\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "temporary files left");
    }

    #[test]
    fn nothing_is_written_through_a_symbolic_link() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        for path in [&link, &dangling] {
            let e = create_new(path, 0o600).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::AlreadyExists, "{}", path.display());
        }
        // persist_new never replaces, not even a symbolic link; persist replaces the link
        // itself, never its target.
        let mut temp = TempFile::new(&link, 0o600).unwrap();
        temp.write_all(b"new").unwrap();
        assert_eq!(temp.persist_new().unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        write_atomic(&link, b"new", 0o600).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert!(std::fs::symlink_metadata(&link).unwrap().is_file());
        assert!(!dir.path().join("nowhere").exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3, "temporary files left");
    }

    #[test]
    fn private_dirs_are_created_0700_and_an_own_open_one_is_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("data").join("certs");
        ensure_private_dir(&certs, "--tls-cert-dir").unwrap();
        assert_eq!(mode(&certs), 0o700);
        std::fs::set_permissions(&certs, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert_eq!(check_private_dir(&certs, "--tls-cert-dir"), Ok(Some(0o1777)));
        ensure_private_dir(&certs, "--tls-cert-dir").unwrap();
        assert_eq!(mode(&certs), 0o700);
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let e = ensure_private_dir(&file, "--tls-cert-dir").unwrap_err();
        assert!(e.contains("not a directory") && e.contains("--tls-cert-dir"), "{e}");
    }
}
