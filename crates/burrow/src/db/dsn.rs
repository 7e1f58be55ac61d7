//! Database DSNs: `path`, `sqlite:///relative`, `sqlite:////absolute`, `sqlite://:memory:`,
//! and `postgres://user:pass@host:port/db?sslmode=…` (also `postgresql://`).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Where the database lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dsn {
    /// A SQLite file; created on first start.
    SqliteFile(PathBuf),
    /// A private in-memory SQLite database, gone when the process exits.
    SqliteMemory,
    /// A PostgreSQL server.
    Postgres(PgDsn),
}

/// A PostgreSQL DSN, checked when parsed. `Display` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct PgDsn {
    /// The DSN without Burrow's own parameters (`sslmode`, `sslrootcert`), as
    /// `tokio_postgres::Config` reads it.
    conninfo: String,
    pub(crate) tls: PgTls,
    shown: String,
}

impl fmt::Debug for PgDsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// How the connection to PostgreSQL is secured (`sslmode`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PgTls {
    /// `disable`: plain TCP (or a Unix socket).
    Disable,
    /// `prefer` (libpq's default): TLS when the server offers it, without checking its
    /// certificate; plain otherwise.
    Prefer,
    /// `require`: TLS, without checking the server's certificate.
    Require,
    /// `verify-full` (and `verify-ca`): TLS with the server's certificate checked for the
    /// host name against the webpki roots, or against `sslrootcert` when given.
    VerifyFull { root: Option<PathBuf> },
}

impl PgDsn {
    pub(crate) fn config(&self) -> postgres::Config {
        postgres::Config::from_str(&self.conninfo).expect("checked when the DSN was parsed")
    }

    fn parse(raw: &str) -> Result<PgDsn, String> {
        let (base, query) = raw.split_once('?').unwrap_or((raw, ""));
        let mut kept = Vec::new();
        let mut mode = "prefer".to_string();
        let mut root = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "sslmode" => mode = value.to_string(),
                "sslrootcert" => root = Some(PathBuf::from(percent_decode(value)?)),
                _ => kept.push(pair),
            }
        }
        let tls = match mode.as_str() {
            "disable" => PgTls::Disable,
            "prefer" | "allow" => PgTls::Prefer,
            "require" if root.is_none() => PgTls::Require,
            // libpq: require with a root certificate file behaves as verify-ca.
            "require" | "verify-ca" | "verify-full" => PgTls::VerifyFull { root },
            other => {
                return Err(format!(
                    "sslmode '{other}' is not one of disable, prefer, require, verify-ca, \
                     verify-full"
                ));
            }
        };
        let conninfo =
            if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
        let config = postgres::Config::from_str(&conninfo)
            .map_err(|e| format!("not a valid PostgreSQL DSN: {e}"))?;
        if config.get_dbname().is_none() {
            return Err("the PostgreSQL DSN names no database (postgres://user@host/DBNAME)".into());
        }
        Ok(PgDsn { shown: hide_password(raw), conninfo, tls })
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn hide_password(raw: &str) -> String {
    let Some((scheme, rest)) = raw.split_once("://") else { return raw.to_string() };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => raw.to_string(),
        },
        None => raw.to_string(),
    }
}

fn percent_decode(value: &str) -> Result<String, String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value.get(i + 1..i + 3).ok_or("a bad %-escape in sslrootcert")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "a bad %-escape in sslrootcert")?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "sslrootcert is not UTF-8".to_string())
}

impl Dsn {
    pub fn parse(raw: &str) -> Result<Dsn, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("expected a database path or DSN".into());
        }
        if let Some(rest) = raw.strip_prefix("sqlite://") {
            return match rest {
                ":memory:" => Ok(Dsn::SqliteMemory),
                // sqlite:///relative → "/relative" here, sqlite:////absolute → "//absolute":
                // dropping the first slash gives the path either way.
                _ if rest.len() > 1 && rest.starts_with('/') => {
                    Ok(Dsn::SqliteFile(PathBuf::from(&rest[1..])))
                }
                _ => Err("expected sqlite:///relative/path, sqlite:////absolute/path or \
                          sqlite://:memory:"
                    .into()),
            };
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return PgDsn::parse(raw).map(Dsn::Postgres);
        }
        if let Some((scheme, _)) = raw.split_once("://") {
            return Err(format!(
                "unsupported database scheme '{scheme}'; use a path, sqlite:///path or \
                 postgres://user@host/db"
            ));
        }
        if raw == ":memory:" {
            return Ok(Dsn::SqliteMemory);
        }
        Ok(Dsn::SqliteFile(PathBuf::from(raw)))
    }

    /// True for a PostgreSQL DSN.
    pub fn is_postgres(&self) -> bool {
        matches!(self, Dsn::Postgres(_))
    }
}

impl fmt::Display for Dsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dsn::SqliteFile(path) => write!(f, "{}", path.display()),
            Dsn::SqliteMemory => f.write_str("sqlite://:memory:"),
            Dsn::Postgres(pg) => f.write_str(&pg.shown),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_of_spec() {
        assert_eq!(Dsn::parse("app.db"), Ok(Dsn::SqliteFile("app.db".into())));
        assert_eq!(Dsn::parse("sqlite:///data/app.db"), Ok(Dsn::SqliteFile("data/app.db".into())));
        assert_eq!(
            Dsn::parse("sqlite:////var/lib/myapp/app.db"),
            Ok(Dsn::SqliteFile("/var/lib/myapp/app.db".into()))
        );
        assert_eq!(Dsn::parse("sqlite://:memory:"), Ok(Dsn::SqliteMemory));
        assert!(Dsn::parse("sqlite://").is_err());
        assert!(Dsn::parse("sqlite://host/x.db").is_err());
        assert!(Dsn::parse("mysql://x").is_err());
        assert!(Dsn::parse("").is_err());
    }

    #[test]
    fn postgres_dsns() {
        let Ok(Dsn::Postgres(pg)) =
            Dsn::parse("postgres://app:s3cret@db.example:5433/notes?sslmode=require")
        else {
            panic!("a PostgreSQL DSN")
        };
        assert_eq!(pg.tls, PgTls::Require);
        assert_eq!(pg.config().get_dbname(), Some("notes"));
        assert_eq!(pg.config().get_ports(), [5433]);
        let shown = Dsn::Postgres(pg).to_string();
        assert_eq!(shown, "postgres://app:***@db.example:5433/notes?sslmode=require");

        let Ok(Dsn::Postgres(pg)) =
            Dsn::parse("postgresql://app@h/db?sslmode=verify-full&sslrootcert=/etc/ca%20x.pem")
        else {
            panic!("a PostgreSQL DSN")
        };
        assert_eq!(pg.tls, PgTls::VerifyFull { root: Some("/etc/ca x.pem".into()) });
        assert_eq!(Dsn::Postgres(pg).to_string().matches("***").count(), 0);

        let Ok(Dsn::Postgres(pg)) = Dsn::parse("postgres://app@h/db") else { panic!() };
        assert_eq!(pg.tls, PgTls::Prefer);
        let err = Dsn::parse("postgres://app:pw@h/db?sslmode=bogus").unwrap_err();
        assert!(err.contains("sslmode 'bogus'") && !err.contains("pw"), "{err}");
        assert!(Dsn::parse("postgres://app@h").unwrap_err().contains("names no database"));
        let err = Dsn::parse("postgres://app:pw@h/db?nonsense=1").unwrap_err();
        assert!(err.contains("not a valid PostgreSQL DSN") && !err.contains(":pw"), "{err}");
    }
}
