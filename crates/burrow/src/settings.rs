//! The core settings every Burrow server has (SPEC.md's table), parsed and validated.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Config, ConfigError, Setting, parse_duration, parse_size};
use crate::db::Dsn;

pub(crate) const CORE_SETTINGS: &[Setting] = &[
    Setting::new("server.host", "host", "HOST", "Interface or domain to bind and to use in URLs").default("localhost"),
    Setting::new("server.port", "port", "PORT", "Port to listen on (not allowed with --tls-mode acme)").default("8080"),
    Setting::new("server.base_url", "base-url", "BASE_URL", "Public URL of the site")
        .default_note("https://HOST for acme, else scheme://HOST:PORT"),
    Setting::new(
        "server.max_body_size",
        "max-body-size",
        "MAX_BODY_SIZE",
        "Largest request body in MB (or 512KB, 2MB); larger bodies get 413",
    )
    .default("1"),
    Setting::new(
        "server.shutdown_timeout",
        "shutdown-timeout",
        "SHUTDOWN_TIMEOUT",
        "Seconds to drain in-flight requests on shutdown or restart",
    )
    .default("10"),
    Setting::new("server.pid_file", "pid-file", "PID_FILE", "Write the PID of the serving process to this file").default_note("none"),
    Setting::new(
        "server.detach",
        "detach",
        "DETACH",
        "With --pid-file, return once the server runs in the background: auto, true or false",
    )
    .default("auto"),
    Setting::new("server.restart_timeout", "restart-timeout", "RESTART_TIMEOUT", "Seconds a new process may take to be ready on SIGHUP")
        .default("30"),
    Setting::new(
        "database.dsn",
        "database-dsn",
        "DATABASE_DSN",
        "Database: path, sqlite:///relative, sqlite:////absolute or sqlite://:memory:",
    )
    .default("app.db"),
    Setting::new("server.request_timeout", "request-timeout", "REQUEST_TIMEOUT", "Seconds a request may take before it is answered 503")
        .default("10"),
    Setting::new(
        "server.header_timeout",
        "header-timeout",
        "HEADER_TIMEOUT",
        "Seconds a new connection may take to send its first request (TLS handshake included)",
    )
    .default("10"),
    Setting::new(
        "server.idle_timeout",
        "idle-timeout",
        "IDLE_TIMEOUT",
        "Seconds a keep-alive connection may wait for its next request before it is closed",
    )
    .default("60"),
    Setting::new(
        "server.max_connections",
        "max-connections",
        "MAX_CONNECTIONS",
        "Open connections at most; further clients wait (capped by the open-file limit)",
    )
    .default("10000"),
    Setting::new(
        "server.max_connections_per_ip",
        "max-connections-per-ip",
        "MAX_CONNECTIONS_PER_IP",
        "Open connections per client address at most; more are closed at once (0: no limit)",
    )
    .default("512"),
    Setting::new(
        "server.content_security_policy",
        "content-security-policy",
        "CONTENT_SECURITY_POLICY",
        "Content-Security-Policy header for every response (frame-ancestors 'none' is added)",
    )
    .default_note("none"),
    Setting::new(
        "server.permissions_policy",
        "permissions-policy",
        "PERMISSIONS_POLICY",
        "Permissions-Policy header for every response, e.g. camera=(), geolocation=()",
    )
    .default_note("none"),
    Setting::new(
        "server.hsts_preload",
        "hsts-preload",
        "HSTS_PRELOAD",
        "Add preload to Strict-Transport-Security (https base URLs only): true or false",
    )
    .default("false"),
    Setting::new(
        "database.read_timeout",
        "database-read-timeout",
        "DATABASE_READ_TIMEOUT",
        "Seconds a database read may run before it is interrupted",
    )
    .default("30"),
    Setting::new(
        "database.checkpoints",
        "database-checkpoints",
        "DATABASE_CHECKPOINTS",
        "Who checkpoints the SQLite WAL: server, or external (Litestream)",
    )
    .default("server"),
    Setting::new("log.level", "log-level", "LOG_LEVEL", "error, warn, info, debug or trace").default("info"),
    Setting::new("log.format", "log-format", "LOG_FORMAT", "text or json").default("text"),
    Setting::new("tls.mode", "tls-mode", "TLS_MODE", "auto, acme, selfsigned, manual or off").default("auto"),
    Setting::new("tls.cert_dir", "tls-cert-dir", "TLS_CERT_DIR", "Directory for ACME and self-signed certificates").default("./data/certs"),
    Setting::new("tls.email", "tls-email", "TLS_EMAIL", "ACME account email (required for acme)").default_note("none"),
    Setting::new("tls.cert_file", "tls-cert-file", "TLS_CERT_FILE", "PEM certificate chain (manual mode)").default_note("none"),
    Setting::new("tls.key_file", "tls-key-file", "TLS_KEY_FILE", "PEM private key (manual mode)").default_note("none"),
    Setting::new(
        "tls.acme_directory",
        "tls-acme-directory",
        "TLS_ACME_DIRECTORY",
        "ACME directory URL (Let's Encrypt staging, ZeroSSL, step-ca, pebble…)",
    )
    .default(LETS_ENCRYPT),
    Setting::new(
        "tls.acme_ca_root",
        "tls-acme-ca-root",
        "TLS_ACME_CA_ROOT",
        "PEM file with a private CA's root certificate, trusted for the ACME API (besides the built-in roots)",
    )
    .default_note("none"),
    Setting::new(
        "tls.acme_eab_kid",
        "tls-acme-eab-kid",
        "TLS_ACME_EAB_KID",
        "ACME external account binding: key ID from the CA (ZeroSSL, some step-ca setups); needs --tls-acme-eab-hmac-key",
    )
    .default_note("none"),
    Setting::new(
        "tls.acme_eab_hmac_key",
        "tls-acme-eab-hmac-key",
        "TLS_ACME_EAB_HMAC_KEY",
        "ACME external account binding: HMAC key from the CA, base64url; needs --tls-acme-eab-kid",
    )
    .default_note("none")
    .secret(),
    Setting::new("tls.http_port", "tls-http-port", "TLS_HTTP_PORT", "acme: port for HTTP-01 challenges and the redirect to https")
        .default("80"),
    Setting::new("tls.https_port", "tls-https-port", "TLS_HTTPS_PORT", "acme: port serving HTTPS").default("443"),
];

/// The default ACME directory: Let's Encrypt production.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detach {
    /// Detach when a PID file is given (and not under Type=notify or as PID 1).
    Auto,
    Always,
    Never,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    Off,
    Acme,
    SelfSigned,
    Manual,
}

impl TlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Off => "off",
            TlsMode::Acme => "acme",
            TlsMode::SelfSigned => "selfsigned",
            TlsMode::Manual => "manual",
        }
    }
}

/// TLS settings; `mode` is already resolved from `auto`.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    pub mode: TlsMode,
    /// Why this mode was chosen, logged at start-up.
    pub reason: String,
    pub cert_dir: PathBuf,
    pub email: Option<String>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// ACME directory URL (https).
    pub acme_directory: String,
    /// Extra root certificate(s) trusted for the ACME API.
    pub acme_ca_root: Option<PathBuf>,
    /// External account binding for registering the ACME account (both flags or neither).
    pub acme_eab: Option<AcmeEab>,
    /// acme: the port answering HTTP-01 challenges and redirecting to https.
    pub http_port: u16,
    /// acme: the port serving HTTPS.
    pub https_port: u16,
}

/// ACME external account binding (RFC 8555 §7.3.4): the key ID and the decoded HMAC key
/// the CA handed out. `Debug` never shows the key.
#[derive(Clone)]
pub struct AcmeEab {
    pub kid: String,
    pub hmac_key: Vec<u8>,
}

impl std::fmt::Debug for AcmeEab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeEab").field("kid", &self.kid).field("hmac_key", &"<redacted>").finish()
    }
}

/// How long connections may stay silent and how many may be open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From accept until the first request's headers have arrived (TLS handshake and
    /// HTTP/2 preface included).
    pub header_timeout: Duration,
    /// A keep-alive connection without a request in flight is closed after this long.
    pub idle_timeout: Duration,
    /// Open connections at most (further clients wait in the listen backlog).
    pub max: usize,
    /// Open connections per client IP address at most; 0 for no limit.
    pub max_per_ip: usize,
}

/// The configurable security headers (the fixed ones are always sent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecurityHeaders {
    pub content_security_policy: Option<String>,
    pub permissions_policy: Option<String>,
    /// `preload` in Strict-Transport-Security (sent only for an https base URL).
    pub hsts_preload: bool,
}

/// The validated core configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    pub base_url: String,
    pub max_body_size: usize,
    pub shutdown_timeout: Duration,
    pub pid_file: Option<PathBuf>,
    /// Start the server as a background process and exit once it is ready (Type=forking).
    pub detach: Detach,
    pub restart_timeout: Duration,
    pub database: Dsn,
    /// `external` leaves WAL checkpoints to Litestream or a similar tool.
    pub checkpoints: crate::db::Checkpoints,
    /// Requests running longer are answered 503.
    pub request_timeout: Duration,
    /// Limits on connections: how long they may stay silent, how many may be open.
    pub connections: ConnectionLimits,
    /// Headers every response carries (beyond the fixed ones).
    pub security: SecurityHeaders,
    /// A read running longer is interrupted (SQLITE_INTERRUPT).
    pub db_read_timeout: Duration,
    pub log_level: tracing::Level,
    pub log_format: LogFormat,
    pub tls: TlsSettings,
}

impl Settings {
    pub(crate) fn from_config(config: &Config) -> Result<Settings, ConfigError> {
        let host = config.raw("server.host").unwrap_or("").trim().to_string();
        if host.contains(['/', ' ', '@']) {
            return Err(config.error("server.host", "expected a host name or IP address"));
        }
        let tls = tls_settings(config, &host)?;
        let port_explicit = *config.source("server.port") != crate::config::Source::Default;
        if tls.mode == TlsMode::Acme && port_explicit {
            return Err(config.error(
                "server.port",
                "a port cannot be set with --tls-mode acme, which serves on 443 and 80",
            ));
        }
        let port: u16 = config.require("server.port")?;
        let base_url = match config.get::<String>("server.base_url")? {
            Some(url) => validate_base_url(&url)
                .map_err(|reason| config.error("server.base_url", &reason))?,
            None => derive_base_url(
                &host,
                if tls.mode == TlsMode::Acme { tls.https_port } else { port },
                tls.mode,
            ),
        };
        let log_level = config
            .parse_with("log.level", |raw| {
                raw.parse::<tracing::Level>()
                    .map_err(|_| "expected error, warn, info, debug or trace".into())
            })?
            .unwrap_or(tracing::Level::INFO);
        let log_format = config
            .parse_with("log.format", |raw| match raw {
                "text" => Ok(LogFormat::Text),
                "json" => Ok(LogFormat::Json),
                _ => Err("expected text or json".into()),
            })?
            .unwrap_or(LogFormat::Text);
        Ok(Settings {
            host,
            port,
            base_url,
            max_body_size: config
                .parse_with("server.max_body_size", parse_size)?
                .unwrap_or(1 << 20),
            shutdown_timeout: config
                .parse_with("server.shutdown_timeout", parse_duration)?
                .unwrap_or(Duration::from_secs(10)),
            pid_file: config
                .get::<PathBuf>("server.pid_file")?
                .filter(|p| !p.as_os_str().is_empty()),
            detach: config
                .parse_with("server.detach", |raw| match raw {
                    "auto" => Ok(Detach::Auto),
                    "true" | "yes" | "1" => Ok(Detach::Always),
                    "false" | "no" | "0" => Ok(Detach::Never),
                    _ => Err("expected auto, true or false".into()),
                })?
                .unwrap_or(Detach::Auto),
            restart_timeout: config
                .parse_with("server.restart_timeout", parse_duration)?
                .unwrap_or(Duration::from_secs(30)),
            database: config
                .parse_with("database.dsn", Dsn::parse)?
                .expect("database.dsn has a default"),
            checkpoints: config
                .parse_with("database.checkpoints", |raw| match raw {
                    "server" => Ok(crate::db::Checkpoints::Server),
                    "external" | "litestream" => Ok(crate::db::Checkpoints::External),
                    _ => Err("expected server or external".into()),
                })?
                .unwrap_or(crate::db::Checkpoints::Server),
            request_timeout: config
                .parse_with("server.request_timeout", parse_duration)?
                .unwrap_or(Duration::from_secs(10)),
            connections: connection_limits(config)?,
            security: SecurityHeaders {
                content_security_policy: header_value(config, "server.content_security_policy")?,
                permissions_policy: header_value(config, "server.permissions_policy")?,
                hsts_preload: config
                    .parse_with("server.hsts_preload", parse_bool)?
                    .unwrap_or(false),
            },
            db_read_timeout: positive_duration(config, "database.read_timeout")?,
            log_level,
            log_format,
            tls,
        })
    }
}

fn connection_limits(config: &Config) -> Result<ConnectionLimits, ConfigError> {
    let max: usize = config.require("server.max_connections")?;
    if max == 0 {
        return Err(config.error("server.max_connections", "must be at least 1"));
    }
    Ok(ConnectionLimits {
        header_timeout: positive_duration(config, "server.header_timeout")?,
        idle_timeout: positive_duration(config, "server.idle_timeout")?,
        max,
        max_per_ip: config.require("server.max_connections_per_ip")?,
    })
}

/// A duration setting with a default, which must not be zero.
fn positive_duration(config: &Config, key: &str) -> Result<Duration, ConfigError> {
    let value = config
        .parse_with(key, parse_duration)?
        .ok_or_else(|| config.error(key, "a value is required"))?;
    if value.is_zero() {
        return Err(config.error(key, "must be longer than zero"));
    }
    Ok(value)
}

/// An optional response header value: printable ASCII on one line, or absent when empty.
fn header_value(config: &Config, key: &str) -> Result<Option<String>, ConfigError> {
    Ok(config
        .parse_with(key, |raw| {
            if raw.bytes().all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic()) {
                Ok(raw.to_string())
            } else {
                Err("expected printable ASCII on one line (a header value)".into())
            }
        })?
        .filter(|v| !v.is_empty()))
}

fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw {
        "true" | "yes" | "1" | "on" => Ok(true),
        "false" | "no" | "0" | "off" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

fn tls_settings(config: &Config, host: &str) -> Result<TlsSettings, ConfigError> {
    let requested = config
        .parse_with("tls.mode", |raw| match raw {
            "auto" => Ok(None),
            "off" => Ok(Some(TlsMode::Off)),
            "acme" => Ok(Some(TlsMode::Acme)),
            "selfsigned" => Ok(Some(TlsMode::SelfSigned)),
            "manual" => Ok(Some(TlsMode::Manual)),
            _ => Err("expected auto, acme, selfsigned, manual or off".into()),
        })?
        .flatten();
    let (mode, reason) = match requested {
        Some(mode) => {
            (mode, format!("--tls-mode {} (from {})", mode.as_str(), config.source("tls.mode")))
        }
        None if is_local_host(host) => (TlsMode::Off, format!("auto: host '{host}' is local")),
        None if host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok() => (
            TlsMode::Off,
            format!("auto: host '{host}' is an IP address (ACME certificates need a domain name)"),
        ),
        None => (TlsMode::Acme, format!("auto: host '{host}' is a public name")),
    };
    let optional_path =
        |key: &str| config.get::<PathBuf>(key).map(|p| p.filter(|p| !p.as_os_str().is_empty()));
    let tls = TlsSettings {
        mode,
        reason,
        cert_dir: config.require("tls.cert_dir")?,
        email: config.get::<String>("tls.email")?.filter(|e| !e.is_empty()),
        cert_file: optional_path("tls.cert_file")?,
        key_file: optional_path("tls.key_file")?,
        acme_directory: config.require::<String>("tls.acme_directory")?.trim().to_string(),
        acme_ca_root: optional_path("tls.acme_ca_root")?,
        acme_eab: acme_eab(config)?,
        http_port: config.require("tls.http_port")?,
        https_port: config.require("tls.https_port")?,
    };
    match mode {
        TlsMode::Acme => {
            if tls.email.is_none() {
                return Err(config
                    .error("tls.email", "an ACME account email is required with --tls-mode acme"));
            }
            if host.parse::<IpAddr>().is_ok() || !host.contains('.') || is_local_host(host) {
                return Err(config
                    .error("server.host", "--tls-mode acme needs a public domain name as host"));
            }
            if !tls.acme_directory.starts_with("https://")
                || tls.acme_directory.len() <= "https://".len()
            {
                return Err(config
                    .error("tls.acme_directory", "expected an https:// URL of an ACME directory"));
            }
            if tls.http_port == 0 || tls.https_port == 0 || tls.http_port == tls.https_port {
                return Err(config.error(
                    "tls.http_port",
                    "--tls-http-port and --tls-https-port must be two different ports other than 0",
                ));
            }
        }
        TlsMode::Manual => {
            if tls.cert_file.is_none() {
                return Err(config.error(
                    "tls.cert_file",
                    "a certificate file is required with --tls-mode manual",
                ));
            }
            if tls.key_file.is_none() {
                return Err(config.error(
                    "tls.key_file",
                    "a private key file is required with --tls-mode manual",
                ));
            }
        }
        TlsMode::Off | TlsMode::SelfSigned => {}
    }
    Ok(tls)
}

/// `--tls-acme-eab-kid` and `--tls-acme-eab-hmac-key`: both or neither. The key is
/// base64url as CAs hand it out (padding optional; the standard alphabet is accepted too).
/// Errors never contain the key, not even the offending character.
fn acme_eab(config: &Config) -> Result<Option<AcmeEab>, ConfigError> {
    let kid = config
        .get::<String>("tls.acme_eab_kid")?
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty());
    let key = config.parse_with("tls.acme_eab_hmac_key", |raw| Ok(decode_eab_key(raw)))?.flatten();
    match (kid, key) {
        (None, None) => Ok(None),
        (Some(_), None) => {
            Err(config.error("tls.acme_eab_kid", "set --tls-acme-eab-hmac-key too (the HMAC key the CA gave with the key ID)"))
        }
        (None, Some(_)) => {
            Err(config.error("tls.acme_eab_hmac_key", "set --tls-acme-eab-kid too (the key ID the CA gave with the HMAC key)"))
        }
        (Some(_), Some(Err(()))) => Err(config
            .error("tls.acme_eab_hmac_key", "expected the base64url HMAC key the CA gave with the key ID (letters, digits, '-' and '_')")),
        (Some(kid), Some(Ok(hmac_key))) => Ok(Some(AcmeEab { kid, hmac_key })),
    }
}

/// `None` for an empty value, `Some(Err)` for bad base64 or an empty key.
fn decode_eab_key(raw: &str) -> Option<Result<Vec<u8>, ()>> {
    use base64::Engine;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    let normalized: String = raw
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    Some(LENIENT.decode(normalized).ok().filter(|k| !k.is_empty()).ok_or(()))
}

/// Hosts for which `auto` TLS means plain HTTP.
pub fn is_local_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.is_empty()
        || host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn derive_base_url(host: &str, port: u16, mode: TlsMode) -> String {
    let host = match host {
        "" => "localhost".to_string(),
        h if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
        h => h.to_string(),
    };
    let (scheme, default_port) = if mode == TlsMode::Off { ("http", 80) } else { ("https", 443) };
    if port == default_port {
        format!("{scheme}://{host}")
    } else {
        format!("{scheme}://{host}:{port}")
    }
}

fn validate_base_url(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("expected a URL starting with http:// or https://")?;
    if rest.is_empty() || rest.starts_with('/') || rest.contains(char::is_whitespace) {
        return Err("expected a URL with a host, such as https://example.com".into());
    }
    Ok(url.trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        Settings::from_config(&Config::from_pairs(CORE_SETTINGS, pairs))
    }

    #[test]
    fn defaults_serve_plain_http_on_localhost() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.tls.mode, TlsMode::Off);
        assert_eq!(s.base_url, "http://localhost:8080");
        assert_eq!(s.max_body_size, 1 << 20);
        assert_eq!(s.shutdown_timeout, Duration::from_secs(10));
    }

    #[test]
    fn auto_tls_picks_acme_for_domains_and_checks_its_requirements() {
        let err = settings(&[("server.host", "example.com")]).unwrap_err();
        assert!(err.0.contains("--tls-email"), "{err}");
        let s =
            settings(&[("server.host", "example.com"), ("tls.email", "a@example.com")]).unwrap();
        assert_eq!((s.tls.mode, s.base_url.as_str()), (TlsMode::Acme, "https://example.com"));
        let err = settings(&[
            ("server.host", "example.com"),
            ("tls.email", "a@b.c"),
            ("server.port", "8443"),
        ])
        .unwrap_err();
        assert!(err.0.contains("--port"), "{err}");
        for local in
            ["localhost", "app.localhost", "127.0.0.1", "::1", "", "0.0.0.0", "[::]", "192.0.2.7"]
        {
            assert_eq!(
                settings(&[("server.host", local)]).unwrap().tls.mode,
                TlsMode::Off,
                "{local}"
            );
        }
    }

    #[test]
    fn acme_ports_and_directory() {
        let base = [("server.host", "example.com"), ("tls.email", "a@example.com")];
        let s = settings(&base).unwrap();
        assert_eq!(
            (s.tls.http_port, s.tls.https_port, s.tls.acme_directory.as_str()),
            (80, 443, LETS_ENCRYPT)
        );
        let s =
            settings(&[base[0], base[1], ("tls.https_port", "8443"), ("tls.http_port", "8080")])
                .unwrap();
        assert_eq!(s.base_url, "https://example.com:8443");
        let err = settings(&[base[0], base[1], ("tls.acme_directory", "http://ca.example/dir")])
            .unwrap_err();
        assert!(err.0.contains("--tls-acme-directory"), "{err}");
        let err = settings(&[base[0], base[1], ("tls.https_port", "80")]).unwrap_err();
        assert!(err.0.contains("--tls-http-port"), "{err}");
        let err =
            settings(&[("server.host", "localhost"), ("tls.mode", "acme"), ("tls.email", "a@b.c")])
                .unwrap_err();
        assert!(err.0.contains("--host"), "{err}");
    }

    #[test]
    fn acme_eab_needs_both_values_and_a_base64url_key() {
        let base = [("server.host", "example.com"), ("tls.email", "a@example.com")];
        assert!(settings(&base).unwrap().tls.acme_eab.is_none());
        // pebble's example key (base64url, no padding); padded and standard-alphabet forms too.
        let key = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
        let s = settings(&[
            base[0],
            base[1],
            ("tls.acme_eab_kid", "kid-1"),
            ("tls.acme_eab_hmac_key", key),
        ])
        .unwrap();
        let eab = s.tls.acme_eab.expect("eab");
        assert_eq!((eab.kid.as_str(), eab.hmac_key.len()), ("kid-1", 48));
        assert!(!format!("{eab:?}").contains(key) && format!("{eab:?}").contains("redacted"));
        let s = settings(&[
            base[0],
            base[1],
            ("tls.acme_eab_kid", "k"),
            ("tls.acme_eab_hmac_key", "ab+/ab8="),
        ])
        .unwrap();
        assert_eq!(s.tls.acme_eab.unwrap().hmac_key, vec![0x69, 0xbf, 0xbf, 0x69, 0xbf]);
        let err = settings(&[base[0], base[1], ("tls.acme_eab_kid", "kid-1")]).unwrap_err();
        assert!(err.0.contains("--tls-acme-eab-hmac-key"), "{err}");
        let err = settings(&[base[0], base[1], ("tls.acme_eab_hmac_key", key)]).unwrap_err();
        assert!(err.0.contains("--tls-acme-eab-kid") && !err.0.contains(key), "{err}");
        for bad in ["not base64!!", "sec=ret", "Q"] {
            let err = settings(&[
                base[0],
                base[1],
                ("tls.acme_eab_kid", "kid-1"),
                ("tls.acme_eab_hmac_key", bad),
            ])
            .unwrap_err();
            assert!(
                err.0.contains("--tls-acme-eab-hmac-key")
                    && !err.0.contains(bad)
                    && !err.0.contains('\n'),
                "{err}"
            );
        }
    }

    #[test]
    fn manual_tls_needs_both_files() {
        let err = settings(&[("tls.mode", "manual"), ("tls.cert_file", "c.pem")]).unwrap_err();
        assert!(err.0.contains("--tls-key-file"), "{err}");
    }

    #[test]
    fn bad_values_name_their_setting() {
        for (key, value, flag) in [
            ("server.port", "99999", "--port"),
            ("log.level", "loud", "--log-level"),
            ("log.format", "xml", "--log-format"),
            ("tls.mode", "on", "--tls-mode"),
            ("server.base_url", "example.com", "--base-url"),
            ("database.dsn", "mysql://x", "--database-dsn"),
        ] {
            let err = settings(&[(key, value)]).unwrap_err();
            assert!(err.0.contains(flag), "{key}: {err}");
        }
    }
}
