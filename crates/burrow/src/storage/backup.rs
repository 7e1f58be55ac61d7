//! `server backup --include-media`: the stored files copied beside the database's backup.
//! Stored files never change under their name, so a file already in the copy (same name,
//! same size) is skipped, and uploads in progress (`.uploads/`) are left out.

use std::io;
use std::path::Path;

use crate::files::{SHARED_FILE_MODE, TempFile, create_shared_dirs};

/// Copies `public/` and `private/` of the storage directory `root` to `dest`; how many
/// files and bytes were copied. A missing `root` (nothing uploaded yet) copies nothing.
pub(crate) fn copy(root: &Path, dest: &Path) -> io::Result<(u64, u64)> {
    let (mut files, mut bytes) = (0, 0);
    create_shared_dirs(dest)?;
    for kind in ["public", "private"] {
        let Ok(fanout) = std::fs::read_dir(root.join(kind)) else { continue };
        for dir in fanout {
            let dir = dir?;
            if !dir.file_type()?.is_dir() {
                continue;
            }
            let target = dest.join(kind).join(dir.file_name());
            create_shared_dirs(&target)?;
            for file in std::fs::read_dir(dir.path())? {
                let file = file?;
                let name = file.file_name();
                let stored = name.to_str().is_some_and(super::is_sha256);
                if !stored || !file.file_type()?.is_file() {
                    continue;
                }
                let size = file.metadata()?.len();
                let copy = target.join(&name);
                if std::fs::metadata(&copy).is_ok_and(|m| m.len() == size) {
                    continue;
                }
                let mut temp = TempFile::new(&copy, SHARED_FILE_MODE)?;
                io::copy(&mut std::fs::File::open(file.path())?, &mut temp)?;
                temp.persist()?;
                files += 1;
                bytes += size;
            }
        }
    }
    Ok((files, bytes))
}
