//! The core settings every Burrow server has (SPEC.md's table), parsed and validated.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use crate::config::{
    AnySetting, Config, ConfigError, Optional, Setting, Source, parse_bool, parse_duration,
    parse_size,
};
use crate::db::{Checkpoints, DbOptions, Dsn};
use crate::mail::{self, MailSettings};
use crate::proxy::{Cidr, ClientIpMode, Proxies, parse_cidrs};
use crate::rate_limit::{Rate, parse_rate};

pub(crate) const HOST: Setting<Host> = Setting::new("server.host")
    .default("localhost")
    .help("Interface or domain to bind and to use in URLs");
pub(crate) const PORT: Setting<u16> = Setting::new("server.port")
    .default("8080")
    .help("Port to listen on (not allowed with --tls-mode acme)");
pub(crate) const BASE_URL: Setting<String, Optional> = Setting::new("server.base_url")
    .optional()
    .default_note("https://HOST for acme, else scheme://HOST:PORT")
    .help("Public URL of the site");
pub(crate) const MAX_BODY_SIZE: Setting<usize> =
    Setting::with_parser("server.max_body_size", parse_size)
        .default("1")
        .help("Largest request body in MB (or 512KB, 2MB); larger bodies get 413");
pub(crate) const UPLOAD_MAX_SIZE: Setting<usize> =
    Setting::with_parser("server.upload_max_size", parse_size).default("10").help(
        "Largest multipart (file upload) body in MB (or 512KB, 1GB); larger ones get 413, \
         refused while they stream in",
    );
pub(crate) const STORAGE_DIR: Setting<PathBuf> = Setting::new("storage.dir")
    .default("./data/media")
    .help("Directory for uploaded files (created 0750 on the first upload)");
pub(crate) const SHUTDOWN_TIMEOUT: Setting<Duration> =
    Setting::with_parser("server.shutdown_timeout", parse_duration)
        .default("10")
        .help("Seconds to drain in-flight requests on shutdown or restart");
pub(crate) const PID_FILE: Setting<PathBuf, Optional> = Setting::new("server.pid_file")
    .optional()
    .help("Write the PID of the serving process to this file");
pub(crate) const DETACH: Setting<Detach> = Setting::new("server.detach")
    .default("auto")
    .help("With --pid-file, return once the server runs in the background: auto, true or false");
pub(crate) const RESTART_TIMEOUT: Setting<Duration> =
    Setting::with_parser("server.restart_timeout", parse_duration)
        .default("30")
        .help("Seconds a new process may take to be ready on SIGHUP");
pub(crate) const DATABASE_DSN: Setting<Dsn> =
    Setting::with_parser("database.dsn", Dsn::parse).default("app.db").help(
        "Database: path, sqlite:///relative, sqlite:////absolute, sqlite://:memory: or \
         postgres://user@host:5432/db?sslmode=disable|require|verify-full",
    );
pub(crate) const DATABASE_PASSWORD_FILE: Setting<PathBuf, Optional> =
    Setting::new("database.password_file").optional().help(
        "File holding the PostgreSQL password, when the DSN has none (else PGPASSWORD is used)",
    );
pub(crate) const DATABASE_POOL_SIZE: Setting<usize> = Setting::new("database.pool_size")
    .default("16")
    .help("PostgreSQL: connections at most in this process");
pub(crate) const DATABASE_ACQUIRE_TIMEOUT: Setting<Duration> =
    Setting::with_parser("database.acquire_timeout", parse_duration)
        .default("5")
        .help("PostgreSQL: seconds a request waits for a free connection before it gets a 503");
pub(crate) const REQUEST_TIMEOUT: Setting<Duration> =
    Setting::with_parser("server.request_timeout", parse_duration)
        .default("10")
        .help("Seconds a request may take before it is answered 503");
pub(crate) const HEADER_TIMEOUT: Setting<Duration> =
    Setting::with_parser("server.header_timeout", parse_duration).default("10").help(
        "Seconds a new connection may take to send its first request (TLS handshake included)",
    );
pub(crate) const IDLE_TIMEOUT: Setting<Duration> =
    Setting::with_parser("server.idle_timeout", parse_duration)
        .default("60")
        .help("Seconds a keep-alive connection may wait for its next request before it is closed");
pub(crate) const MAX_CONNECTIONS: Setting<usize> = Setting::new("server.max_connections")
    .default("10000")
    .help("Open connections at most; further clients wait (capped by the open-file limit)");
pub(crate) const MAX_CONNECTIONS_PER_IP: Setting<usize> =
    Setting::new("server.max_connections_per_ip")
        .default("512")
        .help("Open connections per client address at most; more are closed at once (0: no limit)");
pub(crate) const CLIENT_IP_MODE: Setting<ClientIpMode> =
    Setting::new("server.client_ip_mode").default("remote-addr").help(
        "Where the client's IP comes from: remote-addr, x-forwarded-for, x-real-ip or forwarded \
         (headers are believed only from --trusted-proxies)",
    );
pub(crate) const TRUSTED_PROXIES: Setting<Vec<Cidr>, Optional> =
    Setting::with_parser("server.trusted_proxies", parse_cidrs).optional().help(
        "Reverse proxies whose client IP, X-Forwarded-Proto and X-Forwarded-Host (or Forwarded) \
         headers are believed: addresses or CIDR blocks, comma-separated, e.g. 127.0.0.1/32",
    );
pub(crate) const RATE_LIMIT: Setting<Option<Rate>> =
    Setting::with_parser("server.rate_limit", parse_rate).default("off").help(
        "Requests per client IP on every route but /healthz/: COUNT/WINDOW such as 300/1m, or \
         off; over it, 429",
    );
pub(crate) const CONTENT_SECURITY_POLICY: Setting<String, Optional> =
    Setting::with_parser("server.content_security_policy", parse_header_value).optional().help(
        "Content-Security-Policy header for every response (frame-ancestors 'none' is added)",
    );
pub(crate) const PERMISSIONS_POLICY: Setting<String, Optional> =
    Setting::with_parser("server.permissions_policy", parse_header_value)
        .optional()
        .help("Permissions-Policy header for every response, e.g. camera=(), geolocation=()");
pub(crate) const HSTS_PRELOAD: Setting<bool> =
    Setting::with_parser("server.hsts_preload", parse_bool)
        .default("false")
        .help("Add preload to Strict-Transport-Security (https base URLs only): true or false");
pub(crate) const DATABASE_READ_TIMEOUT: Setting<Duration> =
    Setting::with_parser("database.read_timeout", parse_duration)
        .default("30")
        .help("Seconds a database read may run before it is interrupted");
pub(crate) const DATABASE_CHECKPOINTS: Setting<Checkpoints> =
    Setting::with_parser("database.checkpoints", parse_checkpoints)
        .default("server")
        .help("Who checkpoints the SQLite WAL: server, or external (Litestream)");
pub(crate) const LOG_LEVEL: Setting<tracing::Level> =
    Setting::with_parser("log.level", parse_log_level)
        .default("info")
        .help("error, warn, info, debug or trace");
pub(crate) const LOG_FORMAT: Setting<LogFormat> =
    Setting::new("log.format").default("text").help("text or json");
/// `None`: auto, resolved from the host.
pub(crate) const TLS_MODE: Setting<Option<TlsMode>> =
    Setting::with_parser("tls.mode", parse_tls_mode)
        .default("auto")
        .help("auto, acme, selfsigned, manual or off");
pub(crate) const TLS_CERT_DIR: Setting<PathBuf> = Setting::new("tls.cert_dir")
    .default("./data/certs")
    .help("Directory for ACME and self-signed certificates");
pub(crate) const TLS_EMAIL: Setting<String, Optional> =
    Setting::new("tls.email").optional().help("ACME account email (required for acme)");
pub(crate) const TLS_CERT_FILE: Setting<PathBuf, Optional> =
    Setting::new("tls.cert_file").optional().help("PEM certificate chain (manual mode)");
pub(crate) const TLS_KEY_FILE: Setting<PathBuf, Optional> =
    Setting::new("tls.key_file").optional().help("PEM private key (manual mode)");
pub(crate) const TLS_ACME_DIRECTORY: Setting<String> = Setting::new("tls.acme_directory")
    .default(LETS_ENCRYPT)
    .help("ACME directory URL (Let's Encrypt staging, ZeroSSL, step-ca, pebble…)");
pub(crate) const TLS_ACME_CA_ROOT: Setting<PathBuf, Optional> =
    Setting::new("tls.acme_ca_root").optional().help(
        "PEM file with a private CA's root certificate, trusted for the ACME API (besides the \
         built-in roots)",
    );
pub(crate) const TLS_ACME_EAB_KID: Setting<String, Optional> =
    Setting::new("tls.acme_eab_kid").optional().help(
        "ACME external account binding: key ID from the CA (ZeroSSL, some step-ca setups); \
         needs --tls-acme-eab-hmac-key",
    );
pub(crate) const TLS_ACME_EAB_HMAC_KEY: Setting<String, Optional> =
    Setting::new("tls.acme_eab_hmac_key").optional().secret().help(
        "ACME external account binding: HMAC key from the CA, base64url; needs --tls-acme-eab-kid",
    );
pub(crate) const TLS_HTTP_PORT: Setting<u16> = Setting::new("tls.http_port")
    .default("80")
    .help("acme: port for HTTP-01 challenges and the redirect to https");
pub(crate) const TLS_HTTPS_PORT: Setting<u16> =
    Setting::new("tls.https_port").default("443").help("acme: port serving HTTPS");
pub(crate) const DEV: Setting<bool> = Setting::with_parser("server.dev", parse_bool)
    .default("false")
    .switch()
    .env("BURROW_DEV")
    .help(
        "Development: templates and static files read from the source folders and reloaded on \
         change (the page too), generated keys kept in .burrow-dev-keys, request timing logged; \
         loopback hosts only",
    );
pub(crate) const DEV_ALLOW_PUBLIC: Setting<bool> =
    Setting::with_parser("server.dev_allow_public", parse_bool)
        .default("false")
        .switch()
        .help("Let --dev bind a host other than a loopback one (it shows template errors)");
pub(crate) const DEV_SOURCE_ROOT: Setting<PathBuf, Optional> = Setting::new(
    "server.dev_source_root",
)
.optional()
.default_note("where the app was built")
.help(
    "--dev: a copy of the app's crate to read its folders from instead (app_files!(\"src/blog\") \
         is read from DEV_SOURCE_ROOT/src/blog)",
);

pub(crate) const I18N_DEFAULT_LANGUAGE: Setting<String> =
    Setting::with_parser("i18n.default_language", parse_language).default("en").help(
        "Language of pages when neither the visitor's choice nor Accept-Language names one of \
         the site's",
    );
pub(crate) const I18N_LANGUAGES: Setting<Vec<String>, Optional> =
    Setting::with_parser("i18n.languages", parse_languages)
        .optional()
        .default_note("every language the apps have catalogs for")
        .help("The site's languages, comma-separated (en,de)");

/// Every core setting, in the order `--help` lists them.
pub(crate) const CORE_SETTINGS: &[&dyn AnySetting] = &[
    &HOST,
    &PORT,
    &BASE_URL,
    &MAX_BODY_SIZE,
    &UPLOAD_MAX_SIZE,
    &STORAGE_DIR,
    &SHUTDOWN_TIMEOUT,
    &PID_FILE,
    &DETACH,
    &RESTART_TIMEOUT,
    &DATABASE_DSN,
    &DATABASE_PASSWORD_FILE,
    &DATABASE_POOL_SIZE,
    &DATABASE_ACQUIRE_TIMEOUT,
    &REQUEST_TIMEOUT,
    &HEADER_TIMEOUT,
    &IDLE_TIMEOUT,
    &MAX_CONNECTIONS,
    &MAX_CONNECTIONS_PER_IP,
    &CLIENT_IP_MODE,
    &TRUSTED_PROXIES,
    &RATE_LIMIT,
    &CONTENT_SECURITY_POLICY,
    &PERMISSIONS_POLICY,
    &HSTS_PRELOAD,
    &DATABASE_READ_TIMEOUT,
    &DATABASE_CHECKPOINTS,
    &LOG_LEVEL,
    &LOG_FORMAT,
    &TLS_MODE,
    &TLS_CERT_DIR,
    &TLS_EMAIL,
    &TLS_CERT_FILE,
    &TLS_KEY_FILE,
    &TLS_ACME_DIRECTORY,
    &TLS_ACME_CA_ROOT,
    &TLS_ACME_EAB_KID,
    &TLS_ACME_EAB_HMAC_KEY,
    &TLS_HTTP_PORT,
    &TLS_HTTPS_PORT,
    &mail::SMTP_HOST,
    &mail::SMTP_PORT,
    &mail::SMTP_TLS,
    &mail::SMTP_USERNAME,
    &mail::SMTP_PASSWORD,
    &mail::SMTP_PASSWORD_FILE,
    &mail::SMTP_FROM,
    &mail::SMTP_CA_ROOT,
    &I18N_DEFAULT_LANGUAGE,
    &I18N_LANGUAGES,
    &DEV,
    &DEV_ALLOW_PUBLIC,
    &DEV_SOURCE_ROOT,
];

/// The default ACME directory: Let's Encrypt production.
pub(crate) const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// `--host`, parsed once: where to bind, and the name for URLs, TLS and certificates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// Empty: every interface; URLs then use `localhost`.
    Any,
    /// A domain name, in lower case (as DNS, ACME and certificates compare names).
    Domain(String),
    /// An IP address; IPv6 may be written with or without `[…]`.
    Ip(IpAddr),
}

impl Host {
    /// The name without brackets, as certificates and ACME spell it; empty for [`Host::Any`].
    pub fn name(&self) -> String {
        match self {
            Host::Any => String::new(),
            Host::Domain(name) => name.clone(),
            Host::Ip(ip) => ip.to_string(),
        }
    }

    /// Hosts only this machine can reach: `localhost`, `*.localhost` and loopback addresses
    /// (not every interface).
    pub fn is_loopback(&self) -> bool {
        match self {
            Host::Any => false,
            Host::Domain(name) => name == "localhost" || name.ends_with(".localhost"),
            Host::Ip(ip) => ip.is_loopback(),
        }
    }

    /// Hosts on which `auto` TLS serves plain HTTP: every interface, `localhost`,
    /// `*.localhost` and loopback addresses.
    pub fn is_local(&self) -> bool {
        match self {
            Host::Any => true,
            Host::Domain(name) => name == "localhost" || name.ends_with(".localhost"),
            Host::Ip(ip) => ip.is_loopback(),
        }
    }
}

impl FromStr for Host {
    type Err = String;

    fn from_str(raw: &str) -> Result<Host, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(Host::Any);
        }
        let bracketed = raw.strip_prefix('[').and_then(|inner| inner.strip_suffix(']'));
        if let Ok(ip) = bracketed.unwrap_or(raw).parse::<IpAddr>() {
            return Ok(Host::Ip(ip));
        }
        if bracketed.is_some()
            || raw.contains(['/', '@', '[', ']'])
            || raw.contains(char::is_whitespace)
        {
            return Err("expected a host name or IP address".into());
        }
        Ok(Host::Domain(raw.to_ascii_lowercase()))
    }
}

/// As in a URL: IPv6 in brackets; empty for [`Host::Any`].
impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Any => Ok(()),
            Host::Domain(name) => f.write_str(name),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Detach {
    /// Detach when a PID file is given (and not under Type=notify or as PID 1).
    Auto,
    Always,
    Never,
}

impl FromStr for Detach {
    type Err = String;

    fn from_str(raw: &str) -> Result<Detach, String> {
        match raw {
            "auto" => Ok(Detach::Auto),
            "true" | "yes" | "1" => Ok(Detach::Always),
            "false" | "no" | "0" => Ok(Detach::Never),
            _ => Err("expected auto, true or false".into()),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(raw: &str) -> Result<LogFormat, String> {
        match raw {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected text or json".into()),
        }
    }
}
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TlsMode {
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
pub(crate) struct TlsSettings {
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
pub(crate) struct AcmeEab {
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
pub(crate) struct SecurityHeaders {
    pub content_security_policy: Option<String>,
    pub permissions_policy: Option<String>,
    /// `preload` in Strict-Transport-Security (sent only for an https base URL).
    pub hsts_preload: bool,
}

/// The validated core configuration.
#[derive(Clone, Debug)]
pub struct Settings {
    pub host: Host,
    pub port: u16,
    pub base_url: String,
    pub max_body_size: usize,
    /// The limit for `multipart/form-data` bodies (uploads) instead of `max_body_size`.
    pub upload_max_size: usize,
    /// Where uploaded files are stored (`storage::FileSystem`).
    pub storage_dir: PathBuf,
    pub shutdown_timeout: Duration,
    pub(crate) pid_file: Option<PathBuf>,
    /// Start the server as a background process and exit once it is ready (Type=forking).
    pub(crate) detach: Detach,
    pub(crate) restart_timeout: Duration,
    pub database: Dsn,
    /// PostgreSQL: the password read from `--database-password-file`.
    pub(crate) database_password: Option<Password>,
    /// PostgreSQL: connections at most, and how long a request waits for one.
    pub(crate) database_pool_size: usize,
    pub(crate) database_acquire_timeout: Duration,
    /// `external` leaves WAL checkpoints to Litestream or a similar tool.
    pub checkpoints: Checkpoints,
    /// Requests running longer are answered 503.
    pub request_timeout: Duration,
    /// Limits on connections: how long they may stay silent, how many may be open.
    pub connections: ConnectionLimits,
    /// Which reverse proxies are trusted, and which of their headers names the client.
    pub(crate) proxies: Proxies,
    /// `--rate-limit`: requests per client IP on every route (`None`: off).
    pub rate_limit: Option<Rate>,
    /// Headers every response carries (beyond the fixed ones).
    pub(crate) security: SecurityHeaders,
    /// A read running longer is interrupted (SQLITE_INTERRUPT).
    pub db_read_timeout: Duration,
    pub log_level: tracing::Level,
    pub(crate) log_format: LogFormat,
    pub(crate) tls: TlsSettings,
    /// `--dev`: development mode (`None` in production).
    pub(crate) dev: Option<DevSettings>,
    /// `--smtp-*`: where mail goes (`None`: no mail).
    pub(crate) mail: Option<MailSettings>,
    /// `--i18n-default-language` and `--i18n-languages` (`None`: every language with a
    /// catalog); checked against the catalogs when the server builds them.
    pub(crate) i18n_default_language: String,
    pub(crate) i18n_languages: Option<Vec<String>>,
}

/// What `--dev` changes (docs/guide/development.md).
#[derive(Clone, Debug, Default)]
pub(crate) struct DevSettings {
    /// Where app folders are read from instead of where they were built.
    pub source_root: Option<PathBuf>,
}

impl Settings {
    pub(crate) fn from_config(config: &Config) -> Result<Settings, ConfigError> {
        let host = config.get(&HOST)?;
        let tls = tls_settings(config, &host)?;
        let database = config.get(&DATABASE_DSN)?;
        if tls.mode == TlsMode::Acme && database.is_postgres() {
            // Each instance would answer HTTP-01 challenges only for its own orders, and
            // keep its own certificate: docs/postgres.md shows the ways that work.
            return Err(config.error(
                &TLS_MODE,
                &format!(
                    "ACME ({}) cannot be used with a PostgreSQL database, whose instances share \
                     no certificate store: terminate TLS at the load balancer, or use \
                     --tls-mode manual",
                    tls.reason
                ),
            ));
        }
        if tls.mode == TlsMode::Acme && *config.source(&PORT) != Source::Default {
            return Err(config.error(
                &PORT,
                "a port cannot be set with --tls-mode acme, which serves on 443 and 80",
            ));
        }
        let port = config.get(&PORT)?;
        let base_url = match config.get(&BASE_URL)? {
            Some(url) => {
                validate_base_url(&url).map_err(|reason| config.error(&BASE_URL, &reason))?
            }
            None => derive_base_url(
                &host,
                if tls.mode == TlsMode::Acme { tls.https_port } else { port },
                tls.mode,
            ),
        };
        let log_level = config.get(&LOG_LEVEL)?;
        let log_format = config.get(&LOG_FORMAT)?;
        let dev = dev_settings(config, &host)?;
        Ok(Settings {
            host,
            port,
            base_url,
            max_body_size: config.get(&MAX_BODY_SIZE)?,
            upload_max_size: config.get(&UPLOAD_MAX_SIZE)?,
            storage_dir: storage_dir(config)?,
            shutdown_timeout: config.get(&SHUTDOWN_TIMEOUT)?,
            pid_file: config.get(&PID_FILE)?,
            detach: config.get(&DETACH)?,
            restart_timeout: config.get(&RESTART_TIMEOUT)?,
            database,
            database_password: match config.get(&DATABASE_PASSWORD_FILE)? {
                Some(path) => Some(read_password_file(config, &DATABASE_PASSWORD_FILE, &path)?),
                None => None,
            },
            database_pool_size: pool_size(config)?,
            database_acquire_timeout: positive_duration(config, &DATABASE_ACQUIRE_TIMEOUT)?,
            checkpoints: config.get(&DATABASE_CHECKPOINTS)?,
            request_timeout: config.get(&REQUEST_TIMEOUT)?,
            connections: connection_limits(config)?,
            proxies: proxies(config)?,
            rate_limit: config.get(&RATE_LIMIT)?,
            security: SecurityHeaders {
                content_security_policy: config.get(&CONTENT_SECURITY_POLICY)?,
                permissions_policy: config.get(&PERMISSIONS_POLICY)?,
                hsts_preload: config.get(&HSTS_PRELOAD)?,
            },
            db_read_timeout: positive_duration(config, &DATABASE_READ_TIMEOUT)?,
            log_level,
            log_format,
            tls,
            dev,
            mail: MailSettings::from_config(config)?,
            i18n_default_language: config.get(&I18N_DEFAULT_LANGUAGE)?,
            i18n_languages: config.get(&I18N_LANGUAGES)?,
        })
    }
}

/// A language tag as catalogs are named (`en`, `de`, `pt-BR`): letters, digits and `-`.
fn parse_language(raw: &str) -> Result<String, String> {
    let tag = raw.trim();
    let valid = (tag.split('-').enumerate()).all(|(i, part)| {
        (1..=8).contains(&part.len())
            && part.bytes().all(|b| b.is_ascii_alphanumeric())
            && (i > 0 || part.bytes().all(|b| b.is_ascii_alphabetic()))
    });
    if valid {
        Ok(tag.to_ascii_lowercase())
    } else {
        Err(format!("{raw:?} is not a language tag such as en, de or pt-BR"))
    }
}

fn parse_languages(raw: &str) -> Result<Vec<String>, String> {
    let mut tags = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let tag = parse_language(part)?;
        if !tags.contains(&tag) {
            tags.push(tag);
        }
    }
    if tags.is_empty() {
        return Err("names no language; give a list such as en,de".into());
    }
    Ok(tags)
}

/// `--storage-dir`: an existing directory must be one this user can write in; a missing
/// one that was configured must be creatable (its nearest existing parent writable).
/// Nothing is created here: the first upload creates it. The default, missing under a
/// working directory the server may not write (a container's `/`), is no error: a server
/// whose apps take no uploads never needs it ([`storage_dir_warning`] says so at start).
fn storage_dir(config: &Config) -> Result<PathBuf, ConfigError> {
    let dir = config.get(&STORAGE_DIR)?;
    let configured = *config.source(&STORAGE_DIR) != Source::Default;
    match storage_dir_problem(&dir) {
        Some(problem) if configured || dir.exists() => Err(config.error(&STORAGE_DIR, &problem)),
        _ => Ok(dir),
    }
}

/// Why uploads could not be stored in `dir`, if they could not.
fn storage_dir_problem(dir: &Path) -> Option<String> {
    let mut existing = dir;
    loop {
        match std::fs::metadata(existing) {
            Ok(meta) if !meta.is_dir() => {
                return Some(format!("{} is not a directory", existing.display()));
            }
            Ok(_) if !crate::files::dir_writable(existing) => {
                let shown = std::path::absolute(existing).unwrap_or_else(|_| existing.into());
                let what = if existing == dir { "directory" } else { "parent directory" };
                return Some(format!(
                    "{what} {} is not writable by this user: uploads could not be stored",
                    shown.display()
                ));
            }
            Ok(_) => return None,
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Some(format!("{}: {e}", existing.display()));
            }
            Err(_) => match existing.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => existing = parent,
                _ => existing = Path::new("."),
            },
        }
    }
}

/// The warning for a default `--storage-dir` that uploads could not use.
pub(crate) fn storage_dir_warning(dir: &Path) -> Option<String> {
    storage_dir_problem(dir).map(|problem| {
        format!(
            "--storage-dir {}: {problem}; set --storage-dir if an app takes uploads",
            dir.display()
        )
    })
}

/// `--dev` shows template errors and source files and opens a reload stream, so it binds
/// only loopback hosts unless `--dev-allow-public` says otherwise.
fn dev_settings(config: &Config, host: &Host) -> Result<Option<DevSettings>, ConfigError> {
    if !config.get(&DEV)? {
        return Ok(None);
    }
    if !host.is_loopback() && !config.get(&DEV_ALLOW_PUBLIC)? {
        let shown = match host {
            Host::Any => "'' (every interface)".to_string(),
            host => format!("'{}'", host.name()),
        };
        return Err(config.error(
            &DEV,
            &format!(
                "development mode would be reachable from other machines (--host {shown}); \
                 use a loopback host such as localhost, or add --dev-allow-public"
            ),
        ));
    }
    Ok(Some(DevSettings { source_root: config.get(&DEV_SOURCE_ROOT)? }))
}

/// A client-IP mode other than remote-addr believes headers only from trusted proxies:
/// without any, it would never read them, which is a mistake worth stopping for.
fn proxies(config: &Config) -> Result<Proxies, ConfigError> {
    let mode = config.get(&CLIENT_IP_MODE)?;
    let trusted = config.get(&TRUSTED_PROXIES)?.unwrap_or_default();
    if mode != ClientIpMode::RemoteAddr && trusted.is_empty() {
        return Err(config.error(
            &CLIENT_IP_MODE,
            &format!(
                "{} is read only from trusted proxies: set --trusted-proxies too (e.g. \
                 127.0.0.1/32 for a proxy on this machine)",
                mode.as_str()
            ),
        ));
    }
    Ok(Proxies { mode, trusted })
}

fn connection_limits(config: &Config) -> Result<ConnectionLimits, ConfigError> {
    let max = config.get(&MAX_CONNECTIONS)?;
    if max == 0 {
        return Err(config.error(&MAX_CONNECTIONS, "must be at least 1"));
    }
    Ok(ConnectionLimits {
        header_timeout: positive_duration(config, &HEADER_TIMEOUT)?,
        idle_timeout: positive_duration(config, &IDLE_TIMEOUT)?,
        max,
        max_per_ip: config.get(&MAX_CONNECTIONS_PER_IP)?,
    })
}

impl Settings {
    /// How to open the database.
    pub(crate) fn db_options(&self) -> DbOptions {
        // More readers than cores: one expensive query per reader can then not make the
        // cheap ones queue behind it (they share the CPU instead of waiting for a reader).
        // bench/attack.sh: with 4 readers on 2 cores, 8 costly searches in a loop cut
        // normal pages to 13 requests/s (p99 0.86 s); with 16, 1,576 requests/s (p99 26 ms).
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        DbOptions {
            readers: (cores * 8).clamp(8, 64),
            checkpoints: self.checkpoints,
            read_timeout: self.db_read_timeout,
            pool_size: self.database_pool_size,
            acquire_timeout: self.database_acquire_timeout,
            password: self.database_password.as_ref().map(|p| p.0.clone()),
        }
    }
}

/// A password that `Debug` does not show.
#[derive(Clone)]
pub(crate) struct Password(pub(crate) String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

/// A password file's first line, read at start-up so a missing or unreadable file is a
/// one-line error before anything is written.
pub(crate) fn read_password_file(
    config: &Config,
    setting: &Setting<PathBuf, Optional>,
    path: &Path,
) -> Result<Password, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| config.error(setting, &format!("cannot read {}: {e}", path.display())))?;
    let password = text.lines().next().unwrap_or("").to_string();
    if password.is_empty() {
        return Err(config.error(setting, &format!("{} is empty", path.display())));
    }
    Ok(Password(password))
}

fn pool_size(config: &Config) -> Result<usize, ConfigError> {
    let size = config.get(&DATABASE_POOL_SIZE)?;
    if size == 0 {
        return Err(config.error(&DATABASE_POOL_SIZE, "must be at least 1"));
    }
    Ok(size)
}

/// A duration that must not be zero.
fn positive_duration(
    config: &Config,
    setting: &Setting<Duration>,
) -> Result<Duration, ConfigError> {
    let value = config.get(setting)?;
    if value.is_zero() {
        return Err(config.error(setting, "must be longer than zero"));
    }
    Ok(value)
}

/// A response header value: printable ASCII on one line.
fn parse_header_value(raw: &str) -> Result<String, String> {
    if raw.bytes().all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic()) {
        Ok(raw.to_string())
    } else {
        Err("expected printable ASCII on one line (a header value)".into())
    }
}

fn parse_log_level(raw: &str) -> Result<tracing::Level, String> {
    raw.parse().map_err(|_| "expected error, warn, info, debug or trace".into())
}

fn parse_checkpoints(raw: &str) -> Result<Checkpoints, String> {
    match raw {
        "server" => Ok(Checkpoints::Server),
        "external" | "litestream" => Ok(Checkpoints::External),
        _ => Err("expected server or external".into()),
    }
}

fn parse_tls_mode(raw: &str) -> Result<Option<TlsMode>, String> {
    match raw {
        "auto" => Ok(None),
        "off" => Ok(Some(TlsMode::Off)),
        "acme" => Ok(Some(TlsMode::Acme)),
        "selfsigned" => Ok(Some(TlsMode::SelfSigned)),
        "manual" => Ok(Some(TlsMode::Manual)),
        _ => Err("expected auto, acme, selfsigned, manual or off".into()),
    }
}

fn tls_settings(config: &Config, host: &Host) -> Result<TlsSettings, ConfigError> {
    let (mode, reason) = match config.get(&TLS_MODE)? {
        Some(mode) => {
            (mode, format!("--tls-mode {} (from {})", mode.as_str(), config.source(&TLS_MODE)))
        }
        None if host.is_local() => (TlsMode::Off, format!("auto: host '{host}' is local")),
        None if matches!(host, Host::Ip(_)) => (
            TlsMode::Off,
            format!("auto: host '{host}' is an IP address (ACME certificates need a domain name)"),
        ),
        None => (TlsMode::Acme, format!("auto: host '{host}' is a public name")),
    };
    let tls = TlsSettings {
        mode,
        reason,
        cert_dir: config.get(&TLS_CERT_DIR)?,
        email: config.get(&TLS_EMAIL)?,
        cert_file: config.get(&TLS_CERT_FILE)?,
        key_file: config.get(&TLS_KEY_FILE)?,
        acme_directory: config.get(&TLS_ACME_DIRECTORY)?,
        acme_ca_root: config.get(&TLS_ACME_CA_ROOT)?,
        acme_eab: acme_eab(config)?,
        http_port: config.get(&TLS_HTTP_PORT)?,
        https_port: config.get(&TLS_HTTPS_PORT)?,
    };
    match mode {
        TlsMode::Acme => {
            if tls.email.is_none() {
                return Err(config
                    .error(&TLS_EMAIL, "an ACME account email is required with --tls-mode acme"));
            }
            let public_domain = matches!(host, Host::Domain(name) if name.contains('.'));
            if !public_domain || host.is_local() {
                return Err(
                    config.error(&HOST, "--tls-mode acme needs a public domain name as host")
                );
            }
            if !tls.acme_directory.starts_with("https://")
                || tls.acme_directory.len() <= "https://".len()
            {
                return Err(config
                    .error(&TLS_ACME_DIRECTORY, "expected an https:// URL of an ACME directory"));
            }
            if tls.http_port == 0 || tls.https_port == 0 || tls.http_port == tls.https_port {
                return Err(config.error(
                    &TLS_HTTP_PORT,
                    "--tls-http-port and --tls-https-port must be two different ports other than 0",
                ));
            }
        }
        TlsMode::Manual => {
            if tls.cert_file.is_none() {
                return Err(config.error(
                    &TLS_CERT_FILE,
                    "a certificate file is required with --tls-mode manual",
                ));
            }
            if tls.key_file.is_none() {
                return Err(config.error(
                    &TLS_KEY_FILE,
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
    let kid = config.get(&TLS_ACME_EAB_KID)?;
    let key = config.get(&TLS_ACME_EAB_HMAC_KEY)?;
    match (kid, key) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(config.error(
            &TLS_ACME_EAB_KID,
            "set --tls-acme-eab-hmac-key too (the HMAC key the CA gave with the key ID)",
        )),
        (None, Some(_)) => Err(config.error(
            &TLS_ACME_EAB_HMAC_KEY,
            "set --tls-acme-eab-kid too (the key ID the CA gave with the HMAC key)",
        )),
        (Some(kid), Some(key)) => match decode_eab_key(&key) {
            Some(hmac_key) => Ok(Some(AcmeEab { kid, hmac_key })),
            None => Err(config.error(
                &TLS_ACME_EAB_HMAC_KEY,
                "expected the base64url HMAC key the CA gave with the key ID (letters, digits, '-' \
                 and '_')",
            )),
        },
    }
}

/// `None` for bad base64 or an empty key.
fn decode_eab_key(raw: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let normalized: String = raw
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    LENIENT.decode(normalized).ok().filter(|k| !k.is_empty())
}

fn derive_base_url(host: &Host, port: u16, mode: TlsMode) -> String {
    let host = match host {
        Host::Any => "localhost".to_string(),
        host => host.to_string(),
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
    fn postgres_settings_and_no_acme_on_postgres() {
        let pg = ("database.dsn", "postgres://app:pw@db.internal/notes?sslmode=verify-full");
        let err =
            settings(&[pg, ("server.host", "example.com"), ("tls.email", "a@b.c")]).unwrap_err();
        assert!(err.0.contains("--tls-mode") && err.0.contains("PostgreSQL"), "{err}");
        assert!(!err.0.contains("pw@"), "{err}");
        let s = settings(&[pg, ("database.pool_size", "4"), ("database.acquire_timeout", "2")])
            .unwrap();
        assert_eq!(s.database_pool_size, 4);
        assert_eq!(s.database_acquire_timeout, Duration::from_secs(2));
        let err = settings(&[pg, ("database.pool_size", "0")]).unwrap_err();
        assert!(err.0.contains("--database-pool-size"), "{err}");
        let err = settings(&[pg, ("database.password_file", "/nonexistent/pw")]).unwrap_err();
        assert!(err.0.contains("--database-password-file") && err.0.contains("cannot read"));
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
    fn dev_mode_binds_loopback_hosts_only_unless_allowed() {
        assert!(settings(&[]).unwrap().dev.is_none());
        for host in ["localhost", "app.localhost", "127.0.0.1", "::1"] {
            let s = settings(&[("server.dev", "true"), ("server.host", host)]).unwrap();
            assert!(s.dev.is_some(), "{host}");
        }
        for host in ["0.0.0.0", "", "192.0.2.7", "[::]"] {
            let err = settings(&[("server.dev", "true"), ("server.host", host)]).unwrap_err();
            assert!(
                err.0.starts_with("invalid --dev (from flag --dev)")
                    && err.0.contains("--dev-allow-public"),
                "{host}: {err}"
            );
            let pairs = [
                ("server.dev", "true"),
                ("server.host", host),
                ("server.dev_allow_public", "true"),
                ("server.dev_source_root", "/src/app"),
            ];
            let dev = settings(&pairs).unwrap().dev.expect("dev");
            assert_eq!(dev.source_root.as_deref(), Some(std::path::Path::new("/src/app")));
        }
    }

    #[test]
    fn proxies_and_the_rate_limit() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.proxies, Proxies::default());
        assert_eq!(s.rate_limit, None);
        let s = settings(&[
            ("server.client_ip_mode", "x-forwarded-for"),
            ("server.trusted_proxies", "127.0.0.1/32, 10.0.0.0/8,::1"),
            ("server.rate_limit", "300/1m"),
        ])
        .unwrap();
        assert_eq!(s.proxies.mode, ClientIpMode::XForwardedFor);
        assert_eq!(s.proxies.trusted.len(), 3);
        assert_eq!(s.rate_limit, Some(Rate::per_minute(300)));
        let err = settings(&[("server.trusted_proxies", "10.0.0.0/40")]).unwrap_err();
        assert_eq!(
            err.0,
            "invalid value '10.0.0.0/40' for --trusted-proxies (from flag --trusted-proxies): \
             '10.0.0.0/40' is not an IP address or CIDR block such as 10.0.0.0/8"
        );
        let err = settings(&[("server.client_ip_mode", "forwarded")]).unwrap_err();
        assert!(err.0.contains("--client-ip-mode") && err.0.contains("--trusted-proxies"), "{err}");
        let err = settings(&[("server.client_ip_mode", "cf-connecting-ip")]).unwrap_err();
        assert!(err.0.contains("remote-addr, x-forwarded-for"), "{err}");
        let err = settings(&[("server.rate_limit", "lots")]).unwrap_err();
        assert!(err.0.contains("--rate-limit") && !err.0.contains('\n'), "{err}");
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
    #[test]
    fn every_core_setting_is_declared_once_under_the_guides_names() {
        Config::from_pairs(CORE_SETTINGS, &[]).check_all().expect("every default parses");
        let names: Vec<(String, String)> =
            CORE_SETTINGS.iter().map(|s| (s.info().flag(), s.info().env())).collect();
        for (i, (flag, env)) in names.iter().enumerate() {
            assert!(!names[..i].iter().any(|(f, e)| f == flag || e == env), "{flag} twice");
        }
        for (flag, env) in [
            ("host", "HOST"),
            ("port", "PORT"),
            ("base-url", "BASE_URL"),
            ("max-body-size", "MAX_BODY_SIZE"),
            ("shutdown-timeout", "SHUTDOWN_TIMEOUT"),
            ("pid-file", "PID_FILE"),
            ("database-dsn", "DATABASE_DSN"),
            ("log-level", "LOG_LEVEL"),
            ("log-format", "LOG_FORMAT"),
            ("tls-mode", "TLS_MODE"),
            ("tls-cert-dir", "TLS_CERT_DIR"),
            ("tls-email", "TLS_EMAIL"),
            ("tls-cert-file", "TLS_CERT_FILE"),
            ("tls-key-file", "TLS_KEY_FILE"),
        ] {
            assert!(names.contains(&(flag.into(), env.into())), "--{flag} / {env} missing");
        }
    }

    #[test]
    fn the_host_is_parsed_once() {
        let v6: IpAddr = "::1".parse().unwrap();
        for (raw, host, in_urls) in [
            ("", Host::Any, ""),
            (" Example.COM ", Host::Domain("example.com".into()), "example.com"),
            ("192.0.2.7", Host::Ip("192.0.2.7".parse().unwrap()), "192.0.2.7"),
            ("::1", Host::Ip(v6), "[::1]"),
            ("[::1]", Host::Ip(v6), "[::1]"),
        ] {
            assert_eq!(raw.parse::<Host>().as_ref(), Ok(&host), "{raw}");
            assert_eq!(host.to_string(), in_urls, "{raw}");
        }
        assert_eq!(Host::Ip(v6).name(), "::1");
        for bad in ["a/b", "user@example.com", "a b", "[example.com]", "[::1"] {
            assert!(bad.parse::<Host>().is_err(), "{bad}");
        }
        for (raw, base_url) in [
            ("", "http://localhost:8080"),
            ("::1", "http://[::1]:8080"),
            ("[::1]", "http://[::1]:8080"),
            ("0.0.0.0", "http://0.0.0.0:8080"),
        ] {
            assert_eq!(settings(&[("server.host", raw)]).unwrap().base_url, base_url, "{raw}");
        }
        let err = settings(&[("server.host", "a/b")]).unwrap_err();
        assert_eq!(
            err.0,
            "invalid value 'a/b' for --host (from flag --host): expected a host name or IP address"
        );
    }
}
