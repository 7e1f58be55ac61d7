//! [`FileSystem`]: files under `--storage-dir`, as `public/ab/abcd…` and `private/ab/abcd…`
//! (the first two hex digits fan the files out over 256 directories), uploads streaming in
//! under `.uploads/`. Directories are 0750, files 0640 (the group may read them: a backup
//! user, a web server serving `public/` itself).

use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{Access, BoxFuture, Opened, StorageBackend};
use crate::files::{
    FileBody, SHARED_FILE_MODE as FILE_MODE, create_shared_dirs as create_dirs, rename_noreplace,
};
use crate::forms::UploadedFile;
use crate::sniff;

/// Where uploads stream to, inside the storage directory.
const SPOOL: &str = ".uploads";

/// Files in a local directory.
#[derive(Debug)]
pub struct FileSystem {
    root: PathBuf,
    spool: PathBuf,
}

impl FileSystem {
    /// Files under `root`, which is created (0750) when the first upload comes in.
    pub fn new(root: impl Into<PathBuf>) -> FileSystem {
        let root = root.into();
        FileSystem { spool: root.join(SPOOL), root }
    }

    fn path(&self, access: Access, sha256: &str) -> PathBuf {
        let kind = match access {
            Access::Public => "public",
            Access::Private => "private",
        };
        self.root.join(kind).join(&sha256[..2]).join(sha256)
    }

    fn put_blocking(&self, access: Access, file: &UploadedFile) -> io::Result<()> {
        let dest = self.path(access, file.sha256());
        create_dirs(crate::files::parent_dir(&dest))?;
        // Each round places the file if it is missing, then marks it stored now. A
        // concurrent delete may take it away between the two: then round again.
        for _ in 0..3 {
            if !dest.exists() {
                match place(file.path(), &dest) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e),
                }
            }
            match File::options().write(true).open(&dest) {
                Ok(stored) => stored.set_modified(SystemTime::now())?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
            if dest.exists() {
                return Ok(());
            }
        }
        Err(io::Error::other("the file was deleted while it was stored again; try again"))
    }

    fn delete_blocking(
        &self,
        access: Access,
        sha256: &str,
        unless_stored_since: SystemTime,
    ) -> io::Result<bool> {
        let dest = self.path(access, sha256);
        create_dirs(&self.spool)?;
        let trash = self.spool.join(format!("deleted-{sha256}-{}", crate::random::hex(8)));
        // Moved aside first: a `put` that marks it stored from now on finds it missing
        // and places it again, or marked it before, which the check below sees.
        match std::fs::rename(&dest, &trash) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        }
        let stored = std::fs::metadata(&trash)?.modified()?;
        if stored >= unless_stored_since {
            match rename_noreplace(&trash, &dest) {
                Ok(()) => return Ok(false),
                // Placed again meanwhile: that copy stays.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
        std::fs::remove_file(&trash)?;
        Ok(stored < unless_stored_since)
    }
}

/// The uploaded file (in the spool directory, on the same filesystem) linked to a new
/// name beside `dest`, synced, and renamed to `dest`; `AlreadyExists` if a file is there.
/// A filesystem without links gets a copy.
fn place(spooled: &Path, dest: &Path) -> io::Result<()> {
    let temp = crate::files::parent_dir(dest).join(format!(".{}.tmp", crate::random::hex(8)));
    if std::fs::hard_link(spooled, &temp).is_err() {
        let mut copy = crate::files::create_new(&temp, FILE_MODE)?;
        io::copy(&mut File::open(spooled)?, &mut copy)?;
    }
    let result =
        File::open(&temp).and_then(|f| f.sync_all()).and_then(|()| rename_noreplace(&temp, dest));
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result?;
    if let Ok(dir) = File::open(crate::files::parent_dir(dest)) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Runs blocking file work off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(work).await.map_err(io::Error::other)?
}

impl StorageBackend for FileSystem {
    fn put<'a>(&'a self, access: Access, file: &'a UploadedFile) -> BoxFuture<'a, io::Result<()>> {
        let (this, file) = (self.clone_paths(), file.clone());
        Box::pin(blocking(move || this.put_blocking(access, &file)))
    }

    fn open<'a>(
        &'a self,
        access: Access,
        sha256: &'a str,
    ) -> BoxFuture<'a, io::Result<Option<Opened>>> {
        let path = self.path(access, sha256);
        Box::pin(blocking(move || {
            let mut file = match File::open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            let size = file.metadata()?.len();
            let mut head = Vec::with_capacity(8192);
            (&mut file).take(8192).read_to_end(&mut head)?;
            file.rewind()?;
            let content_type = sniff::content_type(&head);
            Ok(Some(Opened {
                size,
                content_type,
                body: axum::body::Body::new(FileBody::new(file)),
            }))
        }))
    }

    fn exists<'a>(&'a self, access: Access, sha256: &'a str) -> BoxFuture<'a, io::Result<bool>> {
        let path = self.path(access, sha256);
        Box::pin(blocking(move || Ok(path.is_file())))
    }

    fn delete<'a>(
        &'a self,
        access: Access,
        sha256: &'a str,
        unless_stored_since: SystemTime,
    ) -> BoxFuture<'a, io::Result<bool>> {
        let (this, sha256) = (self.clone_paths(), sha256.to_string());
        Box::pin(blocking(move || this.delete_blocking(access, &sha256, unless_stored_since)))
    }

    fn spool_dir(&self) -> &Path {
        &self.spool
    }
}

impl FileSystem {
    /// The same directories, owned, for a blocking task.
    fn clone_paths(&self) -> FileSystem {
        FileSystem { root: self.root.clone(), spool: self.spool.clone() }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::files::SHARED_DIR_MODE as DIR_MODE;
    use std::os::unix::fs::PermissionsExt;

    fn mode_of(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[tokio::test]
    async fn files_are_stored_once_under_their_hash_and_deleted_unless_stored_again() {
        let dir = tempfile::tempdir().unwrap();
        let storage = FileSystem::new(dir.path().join("media"));
        let file = UploadedFile::spool_bytes(storage.spool_dir(), "f", "a.txt", b"hello").unwrap();
        let sha = file.sha256().to_string();
        assert_eq!(sha, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        storage.put(Access::Private, &file).await.unwrap();
        storage.put(Access::Private, &file).await.unwrap();
        let stored = dir.path().join("media/private/2c").join(&sha);
        assert_eq!(std::fs::read(&stored).unwrap(), b"hello");
        assert_eq!(mode_of(&stored), FILE_MODE);
        assert_eq!(mode_of(&dir.path().join("media/private/2c")), DIR_MODE);
        assert_eq!(mode_of(&dir.path().join("media")), DIR_MODE);
        assert!(!storage.exists(Access::Public, &sha).await.unwrap(), "public is another place");

        // Stored again after the check that found no row: kept.
        let checked = SystemTime::now() - std::time::Duration::from_secs(60);
        assert!(!storage.delete(Access::Private, &sha, checked).await.unwrap());
        assert!(stored.exists());
        let later = SystemTime::now() + std::time::Duration::from_secs(1);
        assert!(storage.delete(Access::Private, &sha, later).await.unwrap());
        assert!(!stored.exists());
        assert!(!storage.delete(Access::Private, &sha, later).await.unwrap(), "gone already");
        drop(file);
        let left: Vec<_> = std::fs::read_dir(storage.spool_dir()).unwrap().collect();
        assert!(left.is_empty(), "spooled or deleted files left: {left:?}");
    }
}
