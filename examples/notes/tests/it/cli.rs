//! The command line: --help, --version, migrate, seed (the database commands on SQLite and
//! on PostgreSQL), backup and check refusals.

use crate::both_engines;
use crate::support::failure::Failure;
use crate::support::{
    CSRF_KEY, Database, Engine, Launch, SESSION_HASH_KEY, TESTER, VERSION, client, db_path, get,
    note_ids, tempdir,
};

#[test]
fn help_lists_every_setting_with_its_environment_variable() {
    let dir = tempdir();
    // Every key is set (the harness sets SESSION_HASH_KEY and CSRF_KEY): --help must not
    // show them.
    let block_key = "b10c".repeat(16);
    let previous = "9e71".repeat(16);
    let out = Launch::new(dir.path())
        .env("SESSION_BLOCK_KEY", &block_key)
        .env("SESSION_HASH_KEY_PREVIOUS", &previous)
        .env("SESSION_BLOCK_KEY_PREVIOUS", &previous)
        .env("CSRF_KEY_PREVIOUS", &previous)
        .arg("--help")
        .run();
    assert_eq!(out.code(), Some(0), "--help: {out:?}");
    // Help text is wrapped to the terminal width: compare with whitespace runs collapsed.
    let help = out.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    let flags = [
        ("--host", "HOST"),
        ("--port", "PORT"),
        ("--base-url", "BASE_URL"),
        ("--max-body-size", "MAX_BODY_SIZE"),
        ("--shutdown-timeout", "SHUTDOWN_TIMEOUT"),
        ("--pid-file", "PID_FILE"),
        ("--database-dsn", "DATABASE_DSN"),
        ("--log-level", "LOG_LEVEL"),
        ("--log-format", "LOG_FORMAT"),
        ("--tls-mode", "TLS_MODE"),
        ("--tls-cert-dir", "TLS_CERT_DIR"),
        ("--tls-email", "TLS_EMAIL"),
        ("--tls-cert-file", "TLS_CERT_FILE"),
        ("--tls-key-file", "TLS_KEY_FILE"),
        ("--config", "CONFIG"),
        ("--session-cookie-name", "SESSION_COOKIE_NAME"),
        ("--session-max-age", "SESSION_MAX_AGE"),
        ("--csrf-cookie-name", "CSRF_COOKIE_NAME"),
    ];
    for (flag, env) in flags {
        assert!(help.contains(&format!("{flag} ")), "{flag} missing from --help:\n{}", out.stdout);
        assert!(
            help.contains(&format!("[env: {env}=")),
            "[env: {env}=] missing from --help:\n{}",
            out.stdout
        );
    }
    // Secret settings name their variable but never show its value.
    let secrets = [
        ("--session-hash-key", "SESSION_HASH_KEY"),
        ("--session-block-key", "SESSION_BLOCK_KEY"),
        ("--session-hash-key-previous", "SESSION_HASH_KEY_PREVIOUS"),
        ("--session-block-key-previous", "SESSION_BLOCK_KEY_PREVIOUS"),
        ("--csrf-key", "CSRF_KEY"),
        ("--csrf-key-previous", "CSRF_KEY_PREVIOUS"),
    ];
    for (flag, env) in secrets {
        assert!(help.contains(&format!("{flag} ")), "{flag} missing from --help:\n{}", out.stdout);
        assert!(
            help.contains(&format!("[env: {env}")),
            "[env: {env}…] missing from --help:\n{}",
            out.stdout
        );
    }
    // Without any whitespace, in case wrapping split a value.
    let squeezed: String = format!("{}{}", out.stdout, out.stderr).split_whitespace().collect();
    for key in [SESSION_HASH_KEY, CSRF_KEY, &block_key, &previous] {
        assert!(!squeezed.contains(key), "--help shows the key {key}:\n{}", out.stdout);
    }
    for default in ["[default: localhost]", "[default: 8080]", "[default: app.db]"] {
        assert!(help.contains(default), "{default} missing from --help:\n{}", out.stdout);
    }
    for command in ["migrate", "seed", "generate-notes"] {
        assert!(help.contains(command), "command {command} missing from --help:\n{}", out.stdout);
    }
    // Placeholders say what to write; the TOML key is in the text (README's table).
    for shown in ["--port <PORT>", "--database-dsn <DSN>", "[config: server.port]"] {
        assert!(help.contains(shown), "{shown} missing from --help:\n{}", out.stdout);
    }
    assert!(!help.contains("<server.port>"), "a TOML key as placeholder:\n{}", out.stdout);
    assert!(!dir.path().join("app.db").exists(), "--help created a database");
}

#[test]
fn a_command_help_shows_its_own_options_not_every_setting() {
    let dir = tempdir();
    for (command, own) in
        [("backup", "--force"), ("migrate", "--list"), ("generate-notes", "--count")]
    {
        let out = Launch::new(dir.path()).args([command, "--help"]).run();
        assert_eq!(out.code(), Some(0), "{command} --help: {out:?}");
        let help = out.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(help.contains(own), "{own} missing from {command} --help:\n{}", out.stdout);
        for global in ["--max-body-size", "--session-hash-key", "--tls-mode"] {
            assert!(!help.contains(global), "{command} --help lists {global}:\n{}", out.stdout);
        }
        assert!(help.contains("see server --help"), "{command} --help:\n{}", out.stdout);
        let config = help.find("--config").unwrap_or(usize::MAX);
        assert!(help.find(own) < Some(config), "own options first:\n{}", out.stdout);
    }
    // Global settings are still accepted after the command.
    let out = Launch::new(dir.path())
        .args(["migrate", "--list", "--database-dsn"])
        .arg(db_path(dir.path()))
        .run();
    assert_eq!(out.code(), Some(0), "migrate --list --database-dsn: {out:?}");
}

#[test]
fn backup_without_a_destination_names_it() {
    let dir = tempdir();
    let out = Launch::new(dir.path()).arg("backup").run();
    Failure::of(&out).mentions(&["DEST", "server backup --help"]).no_database(dir.path()).check();
}

#[test]
fn backup_into_a_missing_directory_is_refused() {
    let dir = tempdir();
    let migrate = Launch::new(dir.path()).arg("migrate").run();
    assert_eq!(migrate.code(), Some(0), "migrate: {migrate:?}");
    let missing = dir.path().join("missing/dir/");
    let shown = format!("{}/", dir.path().join("missing/dir").display());
    let out = Launch::new(dir.path()).arg("backup").arg(&missing).run();
    Failure::of(&out).mentions(&[&shown, "does not exist"]).check();
    assert!(!dir.path().join("missing").exists(), "the directory was created");
}

#[test]
fn check_reports_a_configuration_error_as_a_problem() {
    let dir = tempdir();
    // A public host means ACME, which needs an email: an error that stops `serve`.
    let out = Launch::new(dir.path()).args(["check", "--host", "example.com"]).run();
    assert_eq!(out.code(), Some(1), "check: {out:?}");
    let problems: Vec<&str> = out.stdout.lines().filter(|l| l.starts_with("✗ ")).collect();
    assert_eq!(problems.len(), 1, "{out:?}");
    assert!(problems[0].contains("--tls-email"), "{out:?}");
    assert!(out.stdout.contains("1 problem(s) found"), "{out:?}");
    assert!(!db_path(dir.path()).exists(), "check created the database");
}

#[test]
fn version() {
    let dir = tempdir();
    let out = Launch::new(dir.path()).arg("--version").run();
    assert_eq!(out.code(), Some(0), "--version: {out:?}");
    assert_eq!(out.stdout.trim_end(), format!("server {VERSION}"));
}

both_engines!(blocking migrate_lists_and_applies, |engine: Engine| {
    let dir = tempdir();
    let db = Database::new(engine, dir.path());
    let migrate = |args: &[&str]| {
        let out =
            Launch::new(dir.path()).database(&db).arg("migrate").args(args).run();
        assert_eq!(out.code(), Some(0), "migrate {args:?}: {out:?}");
        out.stdout
    };

    let list = migrate(&["--list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert!(lines.len() >= 2, "migrate --list:\n{list}");
    assert!(
        lines.contains(&"[ ] notes/0001_notes.up.sql  (pending)"),
        "migrate --list on a fresh database:\n{list}"
    );
    let migrations = lines.len() - 1;
    assert!(
        lines[..migrations].iter().all(|l| l.starts_with("[ ] ") && l.ends_with("(pending)")),
        "all pending:\n{list}"
    );
    assert_eq!(lines[migrations], format!("0 applied, {migrations} pending"));

    let applied = migrate(&[]);
    assert!(applied.lines().any(|l| l == "applied notes/0001_notes.up.sql"), "migrate:\n{applied}");
    assert_eq!(
        applied.lines().filter(|l| l.starts_with("applied ")).count(),
        migrations,
        "migrate:\n{applied}"
    );

    let list = migrate(&["--list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert!(
        lines.iter().any(|l| l.starts_with("[x] notes/0001_notes.up.sql  (applied ")),
        "migrate --list after migrate:\n{list}"
    );
    assert!(lines[..migrations].iter().all(|l| l.starts_with("[x] ")), "all applied:\n{list}");
    assert_eq!(lines.last().copied(), Some(format!("{migrations} applied, 0 pending").as_str()));

    assert_eq!(migrate(&[]).trim_end(), "No pending migrations.");
});

both_engines!(seed_loads_sample_notes, |engine: Engine| async move {
    let dir = tempdir();
    let db = Database::new(engine, dir.path());
    // Notes need an author: without an account, seeding adds none and says why.
    let none = Launch::new(dir.path()).database(&db).arg("seed").run();
    assert_eq!(none.code(), Some(0), "seed: {none:?}");
    assert!(none.stdout.contains("no sample notes (they need an author)"), "{none:?}");
    let created = Launch::new(dir.path()).database(&db).args(["users", "create", TESTER]).run();
    assert_eq!(created.code(), Some(0), "{created:?}");
    let out = Launch::new(dir.path()).database(&db).arg("seed").run();
    assert_eq!(out.code(), Some(0), "seed: {out:?}");
    let server = Launch::serve_on(&db, dir.path()).start();
    let (status, list) = get(&client(), &server, "/notes").await;
    assert_eq!(status, 200);
    let seeded = note_ids(&list);
    assert!(!seeded.is_empty(), "no notes after seed:\n{list}");
    assert!(out.stdout.contains(&format!("added {} sample notes", seeded.len())), "{out:?}");
    drop(server);

    // Again: nothing is added twice, and the output says so.
    let again = Launch::new(dir.path()).database(&db).arg("seed").run();
    assert_eq!(again.code(), Some(0), "seed again: {again:?}");
    assert!(again.stdout.contains("added 0 sample notes"), "{again:?}");
    assert!(again.stdout.contains("already there"), "{again:?}");
    let server = Launch::serve_on(&db, dir.path()).start();
    let (_, list) = get(&client(), &server, "/notes").await;
    assert_eq!(note_ids(&list), seeded, "seeding twice duplicated notes");
});

both_engines!(generate_notes_inserts_the_count, |engine: Engine| async move {
    let dir = tempdir();
    let db = Database::new(engine, dir.path());
    let generate = |args: &[&str]| {
        Launch::new(dir.path()).database(&db).args(["generate-notes"]).args(args).run()
    };
    // Whose notes: the first admin's, or --user's; without an account, an error.
    let orphan = generate(&["--count", "7"]);
    assert_eq!(orphan.code(), Some(1), "{orphan:?}");
    assert!(orphan.stderr.contains("no account to own the notes"), "{orphan:?}");
    let created = Launch::new(dir.path()).database(&db).args(["users", "create", TESTER]).run();
    assert_eq!(created.code(), Some(0), "{created:?}");
    assert!(generate(&["--user", "nobody", "--count", "7"]).stderr.contains("no user 'nobody'"));
    let out = generate(&["--count", "7"]);
    assert_eq!(out.code(), Some(0), "generate-notes: {out:?}");
    assert!(out.stdout.contains(&format!("Inserted 7 notes for {TESTER}.")), "{out:?}");
    // A note from before accounts (no author) is given away on request.
    db.execute("INSERT INTO notes (title, content) VALUES ('From before accounts', '')");
    let adopt = Launch::new(dir.path()).database(&db).args(["adopt-notes", TESTER]).run();
    assert!(adopt.stdout.contains("1 note(s) without an author now belong to"), "{adopt:?}");
    let server = Launch::serve_on(&db, dir.path()).start();
    let (status, list) = get(&client(), &server, "/notes").await;
    assert_eq!(status, 200);
    assert_eq!(note_ids(&list).len(), 8, "{list}");
});
