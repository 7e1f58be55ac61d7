//! `server check`: what would go wrong in production, in plain words (like Django's
//! `check --deploy`). Each problem is one line; the exit code is 1 when there is one.

use std::path::Path;

use crate::config::Config;
use crate::db::{Db, Dsn, PgDsn, PgTls};
use crate::serve::pidfile::PidFile;
use crate::settings::{Host, Settings, TlsMode};

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem(pub String);

/// Runs every check against the resolved settings (after apps configured, so generated
/// secrets are known).
pub(crate) fn run(settings: &Settings, config: &Config) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut say = |s: String| problems.push(Problem(s));

    // Generated secrets are named by the key of the setting that was missing.
    for name in crate::secrets::generated_names() {
        let how = config
            .declared(&name)
            .map(|setting| format!(" (--{}, {})", setting.flag(), setting.env()))
            .unwrap_or_default();
        say(format!(
            "{name} is not configured{how}: a random key is used, so sessions or form tokens \
             are lost on every stop/start"
        ));
    }

    if settings.dev.is_some() {
        say(format!(
            "--dev is on (from {}): templates and static files are read from the source \
             folders, template errors are shown to visitors and generated keys are kept in \
             .burrow-dev-keys; production runs without it",
            config.source(&crate::settings::DEV)
        ));
    }

    match &settings.database {
        Dsn::SqliteMemory => say(
            "the database is in memory (--database-dsn sqlite://:memory:): every restart loses \
             all data"
                .into(),
        ),
        Dsn::SqliteFile(path) => database(path, &mut say),
        Dsn::Postgres(pg) => postgres(settings, pg, &mut say),
    }

    let host = &settings.host;
    // An empty host binds every interface; unspecified addresses are not local either.
    let public_bind = *host == Host::Any || !host.is_local();
    match settings.tls.mode {
        TlsMode::Off if public_bind && !settings.base_url.starts_with("https://") => say(format!(
            "TLS is off ({}) while listening on '{}': traffic is plain HTTP unless a proxy in \
             front terminates TLS",
            settings.tls.reason,
            if *host == Host::Any { "all interfaces".to_string() } else { host.name() }
        )),
        TlsMode::SelfSigned => {
            say("--tls-mode selfsigned: browsers will warn about the certificate; use acme or \
                 manual in production"
                .into())
        }
        TlsMode::Manual => {
            for (file, flag) in [
                (&settings.tls.cert_file, "--tls-cert-file"),
                (&settings.tls.key_file, "--tls-key-file"),
            ] {
                if let Some(file) = file
                    && std::fs::File::open(file).is_err()
                {
                    say(format!("{flag} {} cannot be read", file.display()));
                }
            }
        }
        _ => {}
    }
    // A cert dir open to others is tightened at start when this user owns it; otherwise
    // the start is refused, with this line.
    if matches!(settings.tls.mode, TlsMode::SelfSigned | TlsMode::Acme)
        && let Err(problem) =
            crate::files::check_private_dir(&settings.tls.cert_dir, "--tls-cert-dir")
    {
        say(problem);
    }
    if let Some(cert) = certificate_file(settings)
        && let Ok(pem) = std::fs::read(&cert)
    {
        let days_left = crate::serve::tls::pem::parse_chain(&pem)
            .ok()
            .and_then(|chain| crate::serve::tls::certinfo::CertInfo::parse(&chain[0]).ok())
            .map(|info| {
                info.not_after
                    .duration_since(std::time::SystemTime::now())
                    .map(|d| d.as_secs() / 86_400)
                    .unwrap_or(0)
            });
        match days_left {
            None => say(format!("certificate {} cannot be parsed", cert.display())),
            Some(0) => say(format!("certificate {} has expired", cert.display())),
            // ACME renews with a third of the lifetime left (30 days for Let's Encrypt);
            // under two weeks means renewal is failing, or a manual certificate is due.
            Some(days) if days < 14 => {
                say(format!("certificate {} expires in {days} days", cert.display()))
            }
            Some(_) => {}
        }
    }

    if let Some(all) = settings.proxies.trusted.iter().find(|cidr| cidr.prefix() == 0) {
        say(format!(
            "--trusted-proxies includes {all}, every address: any client can name its own IP \
             (for the logs and rate limits) and claim https; trust only your proxies' addresses"
        ));
    }

    if let Some(pid_file) = &settings.pid_file
        && let Err(reason) = PidFile::check(pid_file)
    {
        say(format!("{reason} (--pid-file {})", pid_file.display()));
    }

    #[cfg(unix)]
    if nix::unistd::geteuid().is_root() {
        say("running as root: run the server as a dedicated user without a login shell \
             (e.g. created with useradd --system, and named in User= of its systemd unit)"
            .into());
    }

    if settings.shutdown_timeout < settings.request_timeout {
        say(format!(
            "--shutdown-timeout ({}s) is shorter than --request-timeout ({}s): requests still \
             running at shutdown or restart can be cut off",
            settings.shutdown_timeout.as_secs_f64(),
            settings.request_timeout.as_secs_f64()
        ));
    }
    problems
}

/// The certificate the server would serve, where one is stored: the manual file, the
/// self-signed one, or the ACME cache for the host.
fn certificate_file(settings: &Settings) -> Option<std::path::PathBuf> {
    match settings.tls.mode {
        TlsMode::Manual => settings.tls.cert_file.clone(),
        TlsMode::SelfSigned => {
            Some(settings.tls.cert_dir.join(crate::serve::tls::selfsigned::CERT_FILE))
        }
        TlsMode::Acme => std::fs::read_dir(settings.tls.cert_dir.join("acme"))
            .ok()?
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.path().join(format!("{}.cert.pem", settings.host)))
            .find(|path| path.exists()),
        TlsMode::Off => None,
    }
}

fn database(path: &Path, say: &mut impl FnMut(String)) {
    let dir = crate::files::parent_dir(path);
    if !dir.is_dir() {
        say(format!("database directory {} does not exist", dir.display()));
        return;
    }
    if !crate::files::dir_writable(dir) {
        say(format!(
            "database directory {} is not writable by this user: SQLite must create {}-wal and \
             -shm there (with systemd's ProtectSystem=strict, list it in ReadWritePaths=)",
            dir.display(),
            path.display()
        ));
    }
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::MetadataExt;
        let mode = meta.mode() & 0o777;
        if mode & 0o006 != 0 {
            say(format!(
                "database file {} is open to every user on this machine (mode {mode:04o}; SQLite \
                 gives its -wal and -shm files the same mode): chmod 600 it (the server creates \
                 it 0600)",
                path.display()
            ));
        }
    }
    if path.exists() {
        crate::db::configure_sqlite();
        match rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .and_then(|c| c.query_row("PRAGMA quick_check", [], |r| r.get::<_, String>(0)))
        {
            Ok(ok) if ok == "ok" => {}
            Ok(problem) => {
                say(format!("database {} fails PRAGMA quick_check: {problem}", path.display()))
            }
            Err(e) => say(format!("database {} cannot be read: {e}", path.display())),
        }
    }
}

/// Connects as the server would: reports the server's version and whether the connection
/// is encrypted; a failure to connect is a problem.
fn postgres(settings: &Settings, pg: &PgDsn, say: &mut impl FnMut(String)) {
    let dsn = &settings.database;
    let db = match Db::open_with(dsn, &settings.db_options()) {
        Ok(db) => db,
        Err(e) => return say(format!("database {dsn}: {e}")),
    };
    let info = db.with_conn_blocking(|c| {
        c.query_one::<(String, Option<bool>, Option<String>)>(
            "SELECT current_setting('server_version'), s.ssl, s.version
             FROM pg_stat_ssl s WHERE s.pid = pg_backend_pid()",
            &[],
        )
    });
    match info {
        Ok((version, ssl, tls_version)) => {
            let tls = match (ssl, tls_version) {
                (Some(true), Some(v)) => format!("TLS on ({v})"),
                _ => "TLS off".to_string(),
            };
            let verified = matches!(pg.tls, PgTls::VerifyFull { .. });
            println!(
                "PostgreSQL {version} at {dsn}: {tls}{}, the pool can connect",
                if verified { ", certificate verified" } else { "" }
            );
            if ssl != Some(true) && !pg_host_is_local(pg) {
                say(format!(
                    "the connection to PostgreSQL at {dsn} is not encrypted: use \
                     sslmode=verify-full (or require)"
                ));
            }
        }
        Err(e) => say(format!("cannot use PostgreSQL at {dsn}: {e}")),
    }
}

/// True when every host of the DSN is this machine (a Unix socket or a loopback address).
fn pg_host_is_local(pg: &PgDsn) -> bool {
    use postgres::config::Host as PgHost;
    pg.config().get_hosts().iter().all(|h| match h {
        PgHost::Unix(_) => true,
        PgHost::Tcp(name) => {
            name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
    })
}
