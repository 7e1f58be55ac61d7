//! Database DSNs: `path`, `sqlite:///relative`, `sqlite:////absolute`, `sqlite://:memory:`.

use std::fmt;
use std::path::PathBuf;

/// Where the database lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dsn {
    /// A SQLite file; created on first start.
    SqliteFile(PathBuf),
    /// A private in-memory SQLite database, gone when the process exits.
    SqliteMemory,
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
            return Err("PostgreSQL is not supported by this build yet; use a SQLite path".into());
        }
        if let Some((scheme, _)) = raw.split_once("://") {
            return Err(format!(
                "unsupported database scheme '{scheme}'; use a path or sqlite:///path"
            ));
        }
        if raw == ":memory:" {
            return Ok(Dsn::SqliteMemory);
        }
        Ok(Dsn::SqliteFile(PathBuf::from(raw)))
    }
}

impl fmt::Display for Dsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dsn::SqliteFile(path) => write!(f, "{}", path.display()),
            Dsn::SqliteMemory => f.write_str("sqlite://:memory:"),
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
        assert!(Dsn::parse("postgres://u@h/db").unwrap_err().contains("PostgreSQL"));
        assert!(Dsn::parse("").is_err());
    }
}
