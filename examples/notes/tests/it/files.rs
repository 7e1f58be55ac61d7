//! The files the server writes, attacked through the real binary: `server backup` aimed at
//! the live database (same path, `..`, its sidecars, a symbolic link, a hard link) and at
//! existing files, with a server running on the database and without; symbolic links
//! planted at the temporary names of the PID file and of the certificates, in shared
//! (1777) directories; a certificate directory open to other users; and the modes of a new
//! database, its -wal and -shm, and of an existing one.
//!
//! The symbolic links are planted at the names the server used to write through before
//! they became random (`server.tmp.PID` for the PID file, `.NAME.PID.tmp` for the
//! certificates): `sh` plants them with its own PID (`$$`), then `exec`s the server, which
//! keeps that PID.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::support::failure::Failure;
use crate::support::procs::with_pid_file;
use crate::support::{
    Launch, NOBODY, Output, Server, chmod, client, create_note, db_path, files_in, generate_notes,
    get, mode, note_ids, require_nobody, sidecar, tempdir,
};

fn inode(path: &Path) -> (u64, u64) {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (meta.dev(), meta.ino())
}

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Runs the server through `sh`, which first plants a symbolic link to `target` at each of
/// `names` (with `$$`, the PID the server will have) in `dir`, owned by `owner`, and then
/// `exec`s the server.
fn planting(launch: Launch, dir: &Path, names: &[&str], target: &Path, owner: u32) -> Launch {
    let plant: String = names
        .iter()
        .map(|name| {
            format!(
                "ln -s '{target}' \"{dir}/{name}\" && chown -h {owner}:{owner} \"{dir}/{name}\" \
                 || exit 99; ",
                target = target.display(),
                dir = dir.display()
            )
        })
        .collect();
    launch.wrapped(["sh".to_string(), "-c".to_string(), format!("{plant}exec \"$@\""), "sh".into()])
}

// ---------------------------------------------------------------------------------------
// server backup DEST

fn backup(dir: &Path, db: &Path, dest: &Path, force: bool) -> Output {
    let launch = Launch::new(dir).arg("backup").arg(dest).arg("--database-dsn").arg(db);
    (if force { launch.arg("--force") } else { launch }).run()
}

/// Exit code 2 and exactly one `server: error: …` line on stderr, containing each of
/// `fragments`.
fn assert_refused(out: &Output, fragments: &[&str]) {
    Failure::of(out).mentions(fragments).check();
}

/// The destinations around a database `dir/app.db` that a backup must refuse, each with
/// `--force` or not and the words its refusal must contain. Creates what they need.
fn refused_destinations(dir: &Path, db: &Path) -> Vec<(PathBuf, bool, Vec<String>)> {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    let shown = db.display().to_string();
    let mut cases = Vec::new();
    for force in [false, true] {
        cases.push((db.to_path_buf(), force, vec![shown.clone(), "is the database".into()]));
        cases.push((dir.join("sub/../app.db"), force, vec!["is the database".into()]));
        // Relative to the working directory, which is `dir`.
        cases.push((PathBuf::from("./app.db"), force, vec!["is the database".into()]));
    }
    for suffix in ["-wal", "-shm", "-journal"] {
        let path = sidecar(db, suffix);
        cases.push((path, true, vec![format!("{suffix} file")]));
    }
    let link = dir.join("link.db");
    if !is_symlink(&link) {
        std::os::unix::fs::symlink(db, &link).unwrap();
    }
    cases.push((link, true, vec!["link.db".into(), "symbolic link".into()]));
    let hard = dir.join("hard.db");
    if !hard.exists() {
        std::fs::hard_link(db, &hard).unwrap();
    }
    cases.push((hard, true, vec!["hard.db".into(), "hard link".into()]));
    let other = dir.join("other.db");
    if !other.exists() {
        std::fs::write(&other, "keep me").unwrap();
    }
    cases.push((other.clone(), false, vec!["other.db".into(), "already exists".into()]));
    let to_other = dir.join("to-other.db");
    if !is_symlink(&to_other) {
        std::os::unix::fs::symlink(&other, &to_other).unwrap();
    }
    cases.push((to_other, true, vec!["to-other.db".into(), "symbolic link".into()]));
    let dangling = dir.join("dangling.db");
    if !is_symlink(&dangling) {
        std::os::unix::fs::symlink(dir.join("nowhere.db"), &dangling).unwrap();
    }
    cases.push((dangling, true, vec!["dangling.db".into(), "symbolic link".into()]));
    cases
}

/// Each refused destination: exit 2, one line, and nothing written or replaced (the
/// directory holds the same names, the database the same inode, other.db its content).
fn assert_all_refused(dir: &Path, db: &Path, when: &str) {
    let cases = refused_destinations(dir, db);
    let before = files_in(dir);
    let live = inode(db);
    for (dest, force, fragments) in cases {
        let what =
            format!("{when}: backup {}{}", dest.display(), if force { " --force" } else { "" });
        let out = backup(dir, db, &dest, force);
        let fragments: Vec<&str> = fragments.iter().map(String::as_str).collect();
        eprintln!("{what}: {}", out.stderr.trim_end());
        assert_refused(&out, &fragments);
        assert_eq!(files_in(dir), before, "{what}: files written or removed");
        assert_eq!(inode(db), live, "{what}: the database file was replaced");
    }
    assert_eq!(std::fs::read_to_string(dir.join("other.db")).unwrap(), "keep me");
    assert!(!dir.join("nowhere.db").exists(), "written through the dangling link");
}

/// The ids of the notes the server lists.
async fn listed(server: &Server) -> Vec<i64> {
    let (status, html) = get(&client(), server, "/notes").await;
    assert_eq!(status, 200, "GET /notes");
    note_ids(&html)
}

#[tokio::test]
async fn backup_refuses_the_live_database_its_links_and_sidecars_and_existing_files() {
    let dir = tempdir();
    let db = db_path(dir.path());
    let mut server = Launch::serve(dir.path()).start();
    let http = client();
    let before = create_note(&http, &server, "Before the backups", "written first").await;
    assert!(sidecar(&db, "-wal").exists() && sidecar(&db, "-shm").exists());

    assert_all_refused(dir.path(), &db, "server running");
    // The server still writes into the file it serves from, and that file is app.db.
    let after = create_note(&http, &server, "After the backups", "written last").await;
    let ids = listed(&server).await;
    assert!(ids.contains(&before) && ids.contains(&after), "notes listed: {ids:?}");
    assert_eq!(server.terminate().code(), Some(0));

    assert_all_refused(dir.path(), &db, "no server");
    // A new server on app.db: nothing written before or after the refused backups was lost
    // (a backup renamed over app.db would have left the later note in an unlinked file).
    let server = Launch::serve(dir.path()).start();
    let ids = listed(&server).await;
    assert!(ids.contains(&before) && ids.contains(&after), "notes after a restart: {ids:?}");
}

#[test]
fn backup_force_replaces_a_file_atomically_and_backups_are_private() {
    let dir = tempdir();
    let db = db_path(dir.path());
    generate_notes(dir.path(), 3);
    let notes_in = |path: &Path| -> i64 {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.query_row("SELECT count(*) FROM notes", [], |r| r.get(0)).unwrap()
    };

    // A new file: 0600 although the database is 0644 (see docs/sqlite.md).
    chmod(&db, 0o644);
    let new = dir.path().join("new.db");
    let out = backup(dir.path(), &db, &new, false);
    assert_eq!(out.code(), Some(0), "backup to a new file: {out:?}");
    assert_eq!((notes_in(&new), mode(&new)), (3, 0o600), "the backup's notes and mode");

    // --force onto an existing file: a new file renamed over it (new inode), nothing left
    // beside it; a reader holding the old file still reads the old content.
    let old = dir.path().join("old.db");
    std::fs::write(&old, "an old backup").unwrap();
    chmod(&old, 0o644);
    let old_inode = inode(&old);
    let mut reader = std::fs::File::open(&old).unwrap();
    let out = backup(dir.path(), &db, &old, true);
    assert_eq!(out.code(), Some(0), "backup --force onto a file: {out:?}");
    assert_ne!(inode(&old), old_inode, "the file was rewritten in place, not replaced");
    assert_eq!((notes_in(&old), mode(&old)), (3, 0o600), "the backup's notes and mode");
    let mut held = String::new();
    std::io::Read::read_to_string(&mut reader, &mut held).unwrap();
    assert_eq!(held, "an old backup");
    let leftovers: Vec<String> =
        files_in(dir.path()).into_iter().filter(|f| f.starts_with('.')).collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // A directory still gets the dated name, also through a symbolic link to it (a link to
    // a directory is where the file goes, never what is replaced).
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let link = dir.path().join("backups-link");
    std::os::unix::fs::symlink(&backups, &link).unwrap();
    for dest in [&backups, &link] {
        let out = backup(dir.path(), &db, dest, false);
        assert_eq!(out.code(), Some(0), "backup into {}: {out:?}", dest.display());
    }
    let names = files_in(&backups);
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("app-20") && n.ends_with(".db")), "{names:?}");

    // A stale -wal beside the destination would be applied to the copy: refused.
    std::fs::write(dir.path().join("old.db-wal"), "stale").unwrap();
    let out = backup(dir.path(), &db, &old, true);
    assert_refused(&out, &["old.db-wal"]);
    assert_eq!(notes_in(&old), 3);
}

// ---------------------------------------------------------------------------------------
// Temporary files in shared directories

#[tokio::test]
async fn pid_file_is_not_written_through_links_planted_in_a_shared_directory() {
    // Root gives the shared directory and the planted links to `nobody`.
    require_nobody();
    let dir = tempdir();
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    // A shared directory as /tmp is, owned by the other user: the links planted there by
    // its owner are followed even with fs.protected_symlinks=1, so only the server itself
    // can refuse them.
    std::os::unix::fs::chown(&run, Some(NOBODY), Some(NOBODY)).unwrap();
    chmod(&run, 0o1777);
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let pid_file = run.join("server.pid");
    let planted = ["server.tmp.$$", ".server.pid.$$.tmp", "server.pid.tmp"];
    let launch = with_pid_file(Launch::serve(dir.path()), &pid_file);
    let mut server = planting(launch, &run, &planted, &victim, NOBODY).start();
    let pid = server.pid();

    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious", "written through a link");
    assert!(!is_symlink(&pid_file), "the PID file is a symbolic link");
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), format!("{pid}\n"));
    assert_eq!(mode(&pid_file), 0o644);
    let mut expected: Vec<String> =
        planted.iter().map(|n| n.replace("$$", &pid.to_string())).collect();
    expected.push("server.pid".into());
    expected.sort();
    assert_eq!(files_in(&run), expected, "the links are left alone, no temporary file is left");
    let (status, _) = get(&client(), &server, "/healthz/live").await;
    assert_eq!(status, 200);

    assert_eq!(server.terminate().code(), Some(0));
    assert!(!pid_file.exists(), "PID file left after SIGTERM");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
}

#[test]
fn an_open_cert_dir_is_made_private_when_ours_and_refused_when_not() {
    // Root gives the shared directory and the planted links to `nobody`.
    require_nobody();
    let dir = tempdir();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();

    // Ours (root's), open to everyone (1777), links planted at the certificate files'
    // temporary names: made 0700 with a warning, and the links are not followed.
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    chmod(&certs, 0o1777);
    let planted = [".selfsigned-key.pem.$$.tmp", ".selfsigned-cert.pem.$$.tmp"];
    let launch = Launch::serve(dir.path()).selfsigned(&certs);
    let mut server = planting(launch, &certs, &planted, &victim, 0).start_https();
    assert_eq!(mode(&certs), 0o700, "cert dir mode");
    // Logged before `ready`.
    let log = server.log();
    let warning = log
        .iter()
        .find(|l| l.contains("changed it to 0700"))
        .unwrap_or_else(|| panic!("no warning about the cert dir; stderr:\n{}", log.join("\n")));
    assert!(
        warning.contains("WARN")
            && warning.contains(certs.to_str().unwrap())
            && warning.contains("--tls-cert-dir")
            && warning.contains("1777"),
        "{warning}"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious", "written through a link");
    let key = certs.join("selfsigned-key.pem");
    assert!(!is_symlink(&key) && mode(&key) == 0o600, "key file mode {:o}", mode(&key));
    assert!(std::fs::read_to_string(&key).unwrap().contains("PRIVATE KEY"));
    assert_eq!(mode(&certs.join("selfsigned-cert.pem")), 0o644);
    assert_eq!(server.terminate().code(), Some(0));

    // Someone else's (nobody's), open to others: start-up refused, one line naming it and
    // the setting, nothing written there, no database created. `check` says the same.
    let theirs = dir.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    chmod(&theirs, 0o755);
    std::os::unix::fs::chown(&theirs, Some(NOBODY), Some(NOBODY)).unwrap();
    let other = tempdir();
    let out = Launch::serve(other.path()).selfsigned(&theirs).run();
    assert_refused(&out, &[theirs.to_str().unwrap(), "--tls-cert-dir", "0755"]);
    assert!(files_in(&theirs).is_empty(), "written into the refused cert dir");
    assert!(files_in(other.path()).is_empty(), "files created: {:?}", files_in(other.path()));
    assert_eq!(mode(&theirs), 0o755, "someone else's directory was changed");
    let out = Launch::new(other.path())
        .args(["check", "--tls-mode", "selfsigned", "--tls-cert-dir"])
        .arg(&theirs)
        .run();
    assert!(
        out.stdout.lines().any(|l| l.starts_with("✗ ") && l.contains(theirs.to_str().unwrap())),
        "check: {out:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Database file modes

#[tokio::test]
async fn a_new_database_its_wal_and_shm_are_0600_and_an_existing_file_keeps_its_mode() {
    let dir = tempdir();
    let db = db_path(dir.path());
    let files = [db.clone(), sidecar(&db, "-wal"), sidecar(&db, "-shm")];
    let launch = Launch::serve(dir.path()).wrapped(["sh", "-c", "umask 022 && exec \"$@\"", "sh"]);
    let mut server = launch.start();
    create_note(&client(), &server, "Private", "not for other users").await;
    for file in &files {
        assert_eq!(mode(file), 0o600, "{} of a new database (umask 022)", file.display());
    }
    assert_eq!(server.terminate().code(), Some(0));

    // An existing 0644 database stays 0644, and SQLite gives -wal and -shm its mode.
    chmod(&db, 0o644);
    assert_eq!(files_in(dir.path()), ["app.db"], "-wal and -shm are removed at a clean stop");
    let mut server = launch.start();
    create_note(&client(), &server, "Shared", "the operator's choice").await;
    for file in &files {
        assert_eq!(mode(file), 0o644, "{} of an existing 0644 database", file.display());
    }
    assert_eq!(server.terminate().code(), Some(0));
    // `server check` names it.
    let out = Launch::new(dir.path()).args(["check", "--database-dsn"]).arg(&db).run();
    assert!(
        out.stdout.lines().any(|l| l.starts_with("✗ database file")
            && l.contains("0644")
            && l.contains("app.db")),
        "check: {out:?}"
    );
}
