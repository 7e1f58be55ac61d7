//! Configuration: every setting has a flag, an environment variable and a TOML key.
//!
//! Precedence is **flag > env > TOML (`--config FILE`) > default**. A setting is declared
//! once, as a typed [`Setting`] constant: its TOML key, how its value is parsed, its
//! default and its help. The flag and the environment variable are derived from the key
//! (`session.max_age` → `--session-max-age`, `SESSION_MAX_AGE`; the core `server` section
//! goes without its name: `server.port` → `--port`, `PORT`), and can be overridden with
//! [`Setting::flag`] and [`Setting::env`].
//!
//! Apps return their settings from [`App::settings`](crate::App::settings) and read them in
//! [`App::configure`](crate::App::configure) with [`Config::get`], which returns the parsed
//! value (an `Option` for settings declared [`optional`](Setting::optional)). Every error
//! is one line naming the flag and where the value came from (never a secret value), so an
//! operator knows what to fix; the process then exits with code 2 before anything is
//! written. At start-up the server parses every declared setting once, so a bad value is
//! reported even for a setting no app reads, and reading a setting that was never declared
//! is such an error too, not a panic.
//!
//! ```
//! use std::time::Duration;
//! use burrow::config::{AnySetting, Config, Optional, Setting, parse_duration};
//!
//! const GREETING: Setting<String> =
//!     Setting::new("hello.greeting").default("Hello").help("What the home page says");
//! const TIMEOUT: Setting<Duration> = Setting::with_parser("hello.timeout", parse_duration)
//!     .default("5")
//!     .help("Seconds to wait for the upstream service");
//! const API_KEY: Setting<String, Optional> =
//!     Setting::new("hello.api_key").optional().secret().help("Key for the upstream service");
//!
//! // What `App::settings` returns.
//! const SETTINGS: &[&dyn AnySetting] = &[&GREETING, &TIMEOUT, &API_KEY];
//!
//! let config = Config::from_pairs(SETTINGS, &[("hello.timeout", "2m")]);
//! assert_eq!(config.get(&GREETING).unwrap(), "Hello");
//! assert_eq!(config.get(&TIMEOUT).unwrap(), Duration::from_secs(120));
//! assert_eq!(config.get(&API_KEY).unwrap(), None);
//! assert_eq!(TIMEOUT.info().flag(), "hello-timeout");
//! assert_eq!(TIMEOUT.info().env(), "HELLO_TIMEOUT");
//!
//! let config = Config::from_pairs(SETTINGS, &[("hello.timeout", "soon")]);
//! assert_eq!(
//!     config.get(&TIMEOUT).unwrap_err().to_string(),
//!     "invalid value 'soon' for --hello-timeout (from flag --hello-timeout): \
//!      expected a duration such as 10, 10s, 500ms or 2m"
//! );
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{Arg, ArgMatches};

/// One configurable value of type `T`, declared once as a constant and read with
/// [`Config::get`]. `P` is [`Required`] (a value, from a source or the default) or
/// [`Optional`] (`None` when set nowhere or set to an empty value).
pub struct Setting<T, P = Required> {
    info: SettingInfo,
    parse: fn(&str) -> Result<T, String>,
    // `fn() -> P`: the marker is never stored, and the setting stays `Send + Sync`.
    presence: PhantomData<fn() -> P>,
}

/// A setting's declaration without its type: key, flag, env var, default and help.
#[derive(Clone, Copy, Debug)]
pub struct SettingInfo {
    key: &'static str,
    flag: Option<&'static str>,
    env: Option<&'static str>,
    help: &'static str,
    default: Option<&'static str>,
    default_note: Option<&'static str>,
    secret: bool,
    optional: bool,
    switch: bool,
    no_flag: bool,
}

/// A setting must have a value: from a source or its default.
pub struct Required;

/// A setting may be absent: [`Config::get`] returns an `Option`.
pub struct Optional;

/// What reading a setting returns: `T` for [`Required`], `Option<T>` for [`Optional`].
pub trait Presence<T> {
    type Value;
    fn present(value: T) -> Self::Value;
    /// The value when the setting is set nowhere; `None` when that is an error.
    fn absent() -> Option<Self::Value>;
}

impl<T> Presence<T> for Required {
    type Value = T;
    fn present(value: T) -> T {
        value
    }
    fn absent() -> Option<T> {
        None
    }
}

impl<T> Presence<T> for Optional {
    type Value = Option<T>;
    fn present(value: T) -> Option<T> {
        Some(value)
    }
    fn absent() -> Option<Option<T>> {
        Some(None)
    }
}

fn from_str<T>(raw: &str) -> Result<T, String>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    raw.parse().map_err(|e: T::Err| e.to_string())
}

const fn info(key: &'static str) -> SettingInfo {
    SettingInfo {
        key,
        flag: None,
        env: None,
        help: "",
        default: None,
        default_note: None,
        secret: false,
        optional: false,
        switch: false,
        no_flag: false,
    }
}

impl<T> Setting<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    /// A setting parsed with `T`'s `FromStr`; the key is its TOML key, e.g. `server.port`.
    pub const fn new(key: &'static str) -> Self {
        Setting { info: info(key), parse: from_str::<T>, presence: PhantomData }
    }
}

impl<T> Setting<T> {
    /// A setting with its own parser, e.g. [`parse_duration`]; the parser's message
    /// becomes the error's reason.
    pub const fn with_parser(key: &'static str, parse: fn(&str) -> Result<T, String>) -> Self {
        Setting { info: info(key), parse, presence: PhantomData }
    }

    /// Reading gives `None` when the setting is set nowhere or set to an empty value (so
    /// `PID_FILE=` in an environment file switches it off). `--help` shows
    /// `[default: none]` unless [`default_note`](Setting::default_note) says otherwise.
    pub const fn optional(self) -> Setting<T, Optional> {
        let mut info = self.info;
        info.optional = true;
        Setting { info, parse: self.parse, presence: PhantomData }
    }
}

impl<T, P> Setting<T, P> {
    /// The text `--help` shows.
    pub const fn help(mut self, help: &'static str) -> Self {
        self.info.help = help;
        self
    }

    /// The default, written as an operator would write the value (`"10"`, `"512KB"`):
    /// `--help` shows it, and it is parsed like a value from any other source.
    pub const fn default(mut self, value: &'static str) -> Self {
        self.info.default = Some(value);
        self
    }

    /// What `--help` shows for a setting without a default, e.g. "random, with a warning".
    pub const fn default_note(mut self, note: &'static str) -> Self {
        self.info.default_note = Some(note);
        self
    }

    /// The value never appears in `--help`, logs or error messages.
    pub const fn secret(mut self) -> Self {
        self.info.secret = true;
        self
    }

    /// The flag may be given without a value (`--dev` for `--dev=true`); a value then
    /// needs `=` (`--dev=false`), so that `--dev serve` is not read as `--dev=serve`.
    pub const fn switch(mut self) -> Self {
        self.info.switch = true;
        self
    }

    /// Not accepted as a flag, only from the environment or the config file: for a
    /// password, which a flag would show to every user of the machine (`ps`,
    /// `/proc/PID/cmdline`).
    pub const fn no_flag(mut self) -> Self {
        self.info.no_flag = true;
        self
    }

    /// The long flag (without dashes), where the derived one does not fit.
    pub const fn flag(mut self, flag: &'static str) -> Self {
        self.info.flag = Some(flag);
        self
    }

    /// The environment variable, where the derived one does not fit.
    pub const fn env(mut self, env: &'static str) -> Self {
        self.info.env = Some(env);
        self
    }

    /// The declaration without its type: key, derived flag and env var, help.
    pub const fn info(&self) -> &SettingInfo {
        &self.info
    }
}

impl<T, P> fmt::Debug for Setting<T, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.info.fmt(f)
    }
}

impl SettingInfo {
    /// The dotted TOML key, e.g. `server.port`; a setting's identity.
    pub fn key(&self) -> &'static str {
        self.key
    }

    /// The long flag without dashes: the key with `.` and `_` as `-`, without the core
    /// section's `server.` (`server.max_body_size` → `max-body-size`, `tls.cert_dir` →
    /// `tls-cert-dir`), unless overridden.
    pub fn flag(&self) -> String {
        self.flag.map_or_else(|| self.derived_flag(), str::to_string)
    }

    /// The environment variable: the derived flag in upper case with `_` (`TLS_CERT_DIR`),
    /// unless overridden.
    pub fn env(&self) -> String {
        self.env.map_or_else(
            || self.derived_flag().to_ascii_uppercase().replace('-', "_"),
            str::to_string,
        )
    }

    pub fn is_secret(&self) -> bool {
        self.secret
    }

    /// Every way to set it, for messages: `--csrf-key, CSRF_KEY or csrf.key`.
    pub fn ways_to_set(&self) -> String {
        if self.no_flag {
            return format!("{} or {}", self.env(), self.key);
        }
        format!("--{}, {} or {}", self.flag(), self.env(), self.key)
    }

    fn derived_flag(&self) -> String {
        self.key.strip_prefix("server.").unwrap_or(self.key).replace(['.', '_'], "-")
    }

    /// What `--help` shows as the value: the key's last part in capitals (`server.port` →
    /// `PORT`, `tls.cert_dir` → `CERT_DIR`).
    fn value_name(&self) -> String {
        self.key.rsplit('.').next().unwrap_or(self.key).to_ascii_uppercase()
    }

    pub(crate) fn clap_arg(&self) -> Arg {
        let mut help = self.help.to_string();
        let none = (self.optional && self.default.is_none()).then_some("none");
        if let Some(note) = self.default_note.or(none) {
            help.push_str(&format!(" [default: {note}]"));
        }
        // The TOML key is where the setting goes in the config file; the placeholder is
        // what to write (`--port <PORT>`, `--database-dsn <DSN>`).
        help.push_str(&format!(" [config: {}]", self.key));
        let mut arg = Arg::new(self.key)
            .long(self.flag())
            .value_name(self.value_name())
            .env(self.env())
            .help(help)
            .global(true)
            .hide(self.no_flag)
            .hide_env_values(self.secret);
        if let Some(default) = self.default {
            arg = arg.default_value(default);
        }
        if self.switch {
            arg = arg.num_args(0..=1).require_equals(true).default_missing_value("true");
        }
        arg
    }
}

/// A [`Setting`] of any type, as apps list them in
/// [`App::settings`](crate::App::settings): `&[&PORT, &PID_FILE]`.
pub trait AnySetting: fmt::Debug + Send + Sync {
    fn info(&self) -> &SettingInfo;

    /// Parses a (trimmed) value, keeping only the reason it is invalid.
    fn check(&self, raw: &str) -> Result<(), String>;
}

impl<T, P> AnySetting for Setting<T, P> {
    fn info(&self) -> &SettingInfo {
        &self.info
    }

    fn check(&self, raw: &str) -> Result<(), String> {
        (self.parse)(raw).map(drop)
    }
}

/// Where a value came from; part of every configuration error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The flag, without dashes.
    Flag(String),
    Env(String),
    File(PathBuf),
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag(flag) => write!(f, "flag --{flag}"),
            Source::Env(var) => write!(f, "environment variable {var}"),
            Source::File(path) => write!(f, "config file {}", path.display()),
            Source::Default => f.write_str("default"),
        }
    }
}

/// A configuration problem: one line for the operator, exit code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

#[derive(Clone, Debug)]
struct Resolved {
    setting: &'static dyn AnySetting,
    value: Option<String>,
    source: Source,
}

impl Resolved {
    /// The trimmed value to parse; `None` when unset (an empty optional setting is unset).
    fn text(&self) -> Option<&str> {
        let optional = self.setting.info().optional;
        self.value.as_deref().map(str::trim).filter(|text| !(optional && text.is_empty()))
    }
}

/// The resolved settings of every app, read with [`Config::get`].
#[derive(Clone, Debug, Default)]
pub struct Config {
    values: BTreeMap<&'static str, Resolved>,
    file: Option<PathBuf>,
}

impl Config {
    /// Resolves every setting from parsed flags/env (clap) and the optional TOML file.
    pub(crate) fn resolve(
        settings: &[&'static dyn AnySetting],
        matches: &ArgMatches,
    ) -> Result<Config, ConfigError> {
        let file = matches.get_one::<String>("config").map(PathBuf::from);
        let table = match &file {
            Some(path) => load_toml(path)?,
            None => BTreeMap::new(),
        };
        let mut values = BTreeMap::new();
        for &setting in settings {
            let info = setting.info();
            let explicit = match matches.value_source(info.key) {
                Some(ValueSource::CommandLine) => Some(Source::Flag(info.flag())),
                Some(ValueSource::EnvVariable) => Some(Source::Env(info.env())),
                _ => None,
            };
            if info.no_flag && matches!(explicit, Some(Source::Flag(_))) {
                return Err(ConfigError(format!(
                    "--{} is not accepted as a flag (every user of the machine can read a \
                     process's arguments): set {}",
                    info.flag(),
                    info.ways_to_set()
                )));
            }
            let (value, source) = match explicit {
                Some(source) => (matches.get_one::<String>(info.key).cloned(), source),
                None => match table.get(info.key) {
                    Some(value) => {
                        (Some(value.clone()), Source::File(file.clone().unwrap_or_default()))
                    }
                    None => (info.default.map(str::to_string), Source::Default),
                },
            };
            values.insert(info.key, Resolved { setting, value, source });
        }
        if let Some(unknown) = table.keys().find(|key| !values.contains_key(key.as_str())) {
            let path = file.as_deref().unwrap_or(Path::new("?"));
            return Err(ConfigError(format!(
                "unknown setting '{unknown}' in config file {}",
                path.display()
            )));
        }
        Ok(Config { values, file })
    }

    /// A configuration built from explicit values (`(key, value)`, as if given as flags),
    /// for tests and embedding.
    pub fn from_pairs(settings: &[&'static dyn AnySetting], pairs: &[(&str, &str)]) -> Config {
        let mut values = BTreeMap::new();
        for &setting in settings {
            let info = setting.info();
            let explicit = pairs.iter().find(|(k, _)| *k == info.key).map(|(_, v)| v.to_string());
            let (value, source) = match explicit {
                Some(v) => (Some(v), Source::Flag(info.flag())),
                None => (info.default.map(str::to_string), Source::Default),
            };
            values.insert(info.key, Resolved { setting, value, source });
        }
        Config { values, file: None }
    }

    /// The TOML file given with `--config`, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The parsed value of a setting: `T`, or `Option<T>` for an [`Optional`] one. A bad
    /// value, a missing required one, or a setting no app declared is an error.
    pub fn get<T, P: Presence<T>>(&self, setting: &Setting<T, P>) -> Result<P::Value, ConfigError> {
        let Some(entry) = self.values.get(setting.info.key) else {
            return Err(undeclared(&setting.info));
        };
        match entry.text() {
            None => P::absent().ok_or_else(|| missing(entry)),
            Some(text) => {
                (setting.parse)(text).map(P::present).map_err(|reason| invalid(entry, &reason))
            }
        }
    }

    /// Where the setting's value came from ([`Source::Default`] for one not declared).
    pub fn source<T, P>(&self, setting: &Setting<T, P>) -> &Source {
        self.values.get(setting.info.key).map_or(&Source::Default, |entry| &entry.source)
    }

    /// An error about a setting, naming its flag and source but never its value.
    pub fn error<T, P>(&self, setting: &Setting<T, P>, reason: &str) -> ConfigError {
        let source = self.source(setting);
        ConfigError(format!("invalid --{} (from {source}): {reason}", setting.info.flag()))
    }

    /// The value of the setting `key` as text, for the `setting("key")` template function:
    /// `None` for an optional setting without a value. A key no app declared, or a secret
    /// setting, is an error (templates can be edited by people who should not see keys).
    pub(crate) fn text_for_template(&self, key: &str) -> Result<Option<String>, String> {
        let Some(entry) = self.values.get(key) else {
            return Err(format!("setting(\"{key}\"): no app declares this setting"));
        };
        if entry.setting.info().secret {
            return Err(format!("setting(\"{key}\"): a secret setting is not given to templates"));
        }
        Ok(entry.text().map(str::to_string))
    }

    /// The declaration of the setting called `key`, if one was declared.
    pub(crate) fn declared(&self, key: &str) -> Option<&SettingInfo> {
        self.values.get(key).map(|entry| entry.setting.info())
    }

    /// Parses every declared setting once, so a bad value is an error at start-up even
    /// for a setting nothing has read yet (or a bad default).
    pub(crate) fn check_all(&self) -> Result<(), ConfigError> {
        for entry in self.values.values() {
            match entry.text() {
                Some(text) => {
                    entry.setting.check(text).map_err(|reason| invalid(entry, &reason))?
                }
                None if entry.setting.info().optional => {}
                None => return Err(missing(entry)),
            }
        }
        Ok(())
    }
}

/// The error for a value that does not parse: with the value, unless it is secret.
fn invalid(entry: &Resolved, reason: &str) -> ConfigError {
    let info = entry.setting.info();
    let (flag, source) = (info.flag(), &entry.source);
    match entry.value.as_deref() {
        Some(raw) if !info.secret => {
            ConfigError(format!("invalid value '{raw}' for --{flag} (from {source}): {reason}"))
        }
        _ => ConfigError(format!("invalid --{flag} (from {source}): {reason}")),
    }
}

fn missing(entry: &Resolved) -> ConfigError {
    let flag = entry.setting.info().flag();
    ConfigError(format!("invalid --{flag} (from {}): a value is required", entry.source))
}

/// A programming error in an app, reported at start-up (configure runs before anything is
/// opened) rather than as a panic.
fn undeclared(info: &SettingInfo) -> ConfigError {
    ConfigError(format!(
        "setting '{}' is read but was never declared (add it to its app's App::settings)",
        info.key
    ))
}
/// Flattens a TOML file into dotted keys (`[server] port = 80` → `server.port = "80"`).
fn load_toml(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(format!("cannot read config file {} (from --config): {e}", path.display()))
    })?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let reason = e.message().replace('\n', " ");
        let line = e.span().map(|span| text[..span.start].lines().count().max(1));
        match line {
            Some(line) => {
                ConfigError(format!("config file {} line {line}: {reason}", path.display()))
            }
            None => ConfigError(format!("config file {}: {reason}", path.display())),
        }
    })?;
    let mut out = BTreeMap::new();
    flatten(path, "", &table, &mut out)?;
    Ok(out)
}

fn flatten(
    path: &Path,
    prefix: &str,
    table: &toml::Table,
    out: &mut BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    for (name, value) in table {
        let key = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
        let text = match value {
            toml::Value::Table(inner) => {
                flatten(path, &key, inner, out)?;
                continue;
            }
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Datetime(d) => d.to_string(),
            toml::Value::Array(_) => {
                return Err(ConfigError(format!(
                    "setting '{key}' in config file {}: lists are not supported",
                    path.display()
                )));
            }
        };
        out.insert(key, text);
    }
    Ok(())
}

/// Parses a duration: plain seconds (`10`) or with a unit (`500ms`, `10s`, `2m`, `1h`, `7d`).
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    let (number, unit) = split_unit(raw);
    let value: f64 = number
        .parse()
        .map_err(|_| "expected a duration such as 10, 10s, 500ms or 2m".to_string())?;
    if !value.is_finite() || value < 0.0 {
        return Err("a duration must be zero or positive".into());
    }
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        "d" => value * 86400.0,
        other => return Err(format!("unknown unit '{other}' (use ms, s, m, h or d)")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

/// Parses a size: plain megabytes (`1`) or with a unit (`512KB`, `2MB`, `100B`).
pub fn parse_size(raw: &str) -> Result<usize, String> {
    let (number, unit) = split_unit(raw);
    let value: f64 =
        number.parse().map_err(|_| "expected a size such as 1 (MB), 512KB or 2MB".to_string())?;
    if !value.is_finite() || value <= 0.0 {
        return Err("a size must be positive".into());
    }
    let factor = match unit.to_ascii_uppercase().as_str() {
        "" | "MB" | "M" => 1024.0 * 1024.0,
        "B" => 1.0,
        "KB" | "K" => 1024.0,
        "GB" | "G" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("unknown unit '{other}' (use B, KB, MB or GB)")),
    };
    Ok((value * factor) as usize)
}

fn split_unit(raw: &str) -> (&str, &str) {
    let at = raw.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(raw.len());
    (raw[..at].trim(), raw[at..].trim())
}

/// Parses a yes/no value: `true`, `yes`, `1`, `on` or `false`, `no`, `0`, `off`.
pub fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw {
        "true" | "yes" | "1" | "on" => Ok(true),
        "false" | "no" | "0" | "off" => Ok(false),
        _ => Err("expected true or false".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(7 * 86400));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("-1").is_err());
        assert_eq!(parse_size("1").unwrap(), 1 << 20);
        assert_eq!(parse_size("512KB").unwrap(), 512 << 10);
        assert!(parse_size("0").is_err());
        assert!(parse_size("3 parsecs").is_err());
    }

    const PORT: Setting<u16> = Setting::new("server.port").default("8080").help("port");
    const HASH_KEY: Setting<String, Optional> =
        Setting::with_parser("session.hash_key", |_| Err("must be 64 hex characters".into()))
            .optional()
            .secret()
            .help("key");
    const LEVEL: Setting<String> = Setting::new("log.level").flag("verbosity").env("RUST_LOG");
    const UNDECLARED: Setting<u16> = Setting::new("server.undeclared");

    #[test]
    fn flag_and_env_are_derived_from_the_key_unless_overridden() {
        assert_eq!((PORT.info().flag(), PORT.info().env()), ("port".into(), "PORT".into()));
        let info = HASH_KEY.info();
        assert_eq!(
            (info.flag(), info.env()),
            ("session-hash-key".into(), "SESSION_HASH_KEY".into())
        );
        assert_eq!(info.ways_to_set(), "--session-hash-key, SESSION_HASH_KEY or session.hash_key");
        assert_eq!(
            (PORT.info().value_name(), info.value_name()),
            ("PORT".into(), "HASH_KEY".into())
        );
        assert_eq!(
            (LEVEL.info().flag(), LEVEL.info().env()),
            ("verbosity".into(), "RUST_LOG".into())
        );
    }

    #[test]
    fn errors_name_flag_and_source_but_not_secrets() {
        let settings: &[&dyn AnySetting] = &[&PORT, &HASH_KEY];
        let config = Config::from_pairs(
            settings,
            &[("server.port", "eighty"), ("session.hash_key", "hunter2")],
        );
        assert_eq!(
            config.get(&PORT).unwrap_err().to_string(),
            "invalid value 'eighty' for --port (from flag --port): invalid digit found in string"
        );
        let err = config.get(&HASH_KEY).unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid --session-hash-key (from flag --session-hash-key): must be 64 hex characters"
        );
        let config = Config::from_pairs(settings, &[("session.hash_key", "hunter2")]);
        assert_eq!(config.check_all().unwrap_err().to_string(), err, "checked at start-up too");
    }

    #[test]
    fn optional_settings_are_none_when_unset_or_empty() {
        let settings: &[&dyn AnySetting] = &[&PORT, &HASH_KEY];
        let config = Config::from_pairs(settings, &[]);
        assert_eq!((config.get(&PORT), config.get(&HASH_KEY)), (Ok(8080), Ok(None)));
        assert_eq!(config.source(&PORT), &Source::Default);
        let config = Config::from_pairs(settings, &[("session.hash_key", " ")]);
        assert_eq!(config.get(&HASH_KEY), Ok(None));
        assert!(config.check_all().is_ok());
    }

    #[test]
    fn reading_an_undeclared_setting_is_an_error_not_a_panic() {
        let config = Config::from_pairs(&[&PORT], &[]);
        let err = config.get(&UNDECLARED).unwrap_err().to_string();
        assert!(err.contains("'server.undeclared'") && err.contains("never declared"), "{err}");
    }
}
