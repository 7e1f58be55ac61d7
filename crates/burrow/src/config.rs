//! Configuration: every setting has a flag, an environment variable and a TOML key.
//!
//! Precedence is **flag > env > TOML (`--config FILE`) > default**. Apps declare their
//! settings with [`Setting`] in [`App::settings`](crate::App::settings) and read them in
//! [`App::configure`](crate::App::configure) through [`Config`]. Every error names the
//! setting and where its value came from, so an operator knows what to fix; the
//! process then exits with code 2 before anything is written.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{Arg, ArgMatches};

/// One configurable value, declared once and exposed as flag, env var and TOML key.
#[derive(Clone, Debug)]
pub struct Setting {
    /// Dotted TOML key, e.g. `server.port`; also the id used with [`Config`].
    pub key: &'static str,
    /// Long flag without dashes, e.g. `port`.
    pub flag: &'static str,
    /// Environment variable, e.g. `PORT`.
    pub env: &'static str,
    /// Default value as text, parsed like any other source.
    pub default: Option<&'static str>,
    /// What `--help` shows when there is no default, e.g. "random, with a warning".
    pub default_note: Option<&'static str>,
    pub help: &'static str,
    /// Secret values never appear in `--help` output, logs or error messages.
    pub secret: bool,
}

impl Setting {
    pub const fn new(
        key: &'static str,
        flag: &'static str,
        env: &'static str,
        help: &'static str,
    ) -> Self {
        Setting { key, flag, env, default: None, default_note: None, help, secret: false }
    }

    pub const fn default(mut self, value: &'static str) -> Self {
        self.default = Some(value);
        self
    }

    pub const fn default_note(mut self, note: &'static str) -> Self {
        self.default_note = Some(note);
        self
    }

    pub const fn secret(mut self) -> Self {
        self.secret = true;
        self
    }

    pub(crate) fn to_arg(&self) -> Arg {
        let mut help = self.help.to_string();
        if let Some(note) = self.default_note {
            help.push_str(&format!(" [default: {note}]"));
        }
        let mut arg = Arg::new(self.key)
            .long(self.flag)
            .env(self.env)
            .help(help)
            .global(true)
            .hide_env_values(self.secret);
        if let Some(default) = self.default {
            arg = arg.default_value(default);
        }
        arg
    }
}

/// Where a value came from; part of every configuration error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Flag(&'static str),
    Env(&'static str),
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
    value: Option<String>,
    source: Source,
    flag: &'static str,
    secret: bool,
}

/// The resolved settings of every app, read with typed getters.
#[derive(Clone, Debug, Default)]
pub struct Config {
    values: BTreeMap<&'static str, Resolved>,
    file: Option<PathBuf>,
}

impl Config {
    /// Resolves every setting from parsed flags/env (clap) and the optional TOML file.
    pub(crate) fn resolve(
        settings: &[Setting],
        matches: &ArgMatches,
    ) -> Result<Config, ConfigError> {
        let file = matches.get_one::<String>("config").map(PathBuf::from);
        let table = match &file {
            Some(path) => load_toml(path)?,
            None => BTreeMap::new(),
        };
        let mut values = BTreeMap::new();
        for setting in settings {
            let explicit = match matches.value_source(setting.key) {
                Some(ValueSource::CommandLine) => Some(Source::Flag(setting.flag)),
                Some(ValueSource::EnvVariable) => Some(Source::Env(setting.env)),
                _ => None,
            };
            let (value, source) = match explicit {
                Some(source) => (matches.get_one::<String>(setting.key).cloned(), source),
                None => match table.get(setting.key) {
                    Some(value) => {
                        (Some(value.clone()), Source::File(file.clone().unwrap_or_default()))
                    }
                    None => (setting.default.map(str::to_string), Source::Default),
                },
            };
            values.insert(
                setting.key,
                Resolved { value, source, flag: setting.flag, secret: setting.secret },
            );
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

    /// A configuration built from explicit values, for tests and embedding.
    pub fn from_pairs(settings: &[Setting], pairs: &[(&str, &str)]) -> Config {
        let mut values = BTreeMap::new();
        for setting in settings {
            let explicit =
                pairs.iter().find(|(k, _)| *k == setting.key).map(|(_, v)| v.to_string());
            let (value, source) = match explicit {
                Some(v) => (Some(v), Source::Flag(setting.flag)),
                None => (setting.default.map(str::to_string), Source::Default),
            };
            values.insert(
                setting.key,
                Resolved { value, source, flag: setting.flag, secret: setting.secret },
            );
        }
        Config { values, file: None }
    }

    /// The TOML file given with `--config`, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The raw text of a setting, if set anywhere (including its default).
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.entry(key).value.as_deref()
    }

    /// Where the setting's value came from.
    pub fn source(&self, key: &str) -> &Source {
        &self.entry(key).source
    }

    /// Parses a setting that may be absent.
    pub fn get<T>(&self, key: &str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.parse_with(key, |raw| raw.parse::<T>().map_err(|e| e.to_string()))
    }

    /// Parses a setting that must have a value (it has a default, or is required).
    pub fn require<T>(&self, key: &str) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.get(key)?.ok_or_else(|| self.error(key, "a value is required"))
    }

    /// Parses a setting with a custom parser; the parser's message becomes the error's reason.
    pub fn parse_with<T>(
        &self,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        let entry = self.entry(key);
        match entry.value.as_deref() {
            None => Ok(None),
            Some(raw) => parse(raw.trim()).map(Some).map_err(|reason| {
                if entry.secret {
                    self.error(key, &reason)
                } else {
                    ConfigError(format!(
                        "invalid value '{raw}' for --{} (from {}): {reason}",
                        entry.flag, entry.source
                    ))
                }
            }),
        }
    }

    /// An error about a setting, naming its flag and source but never a secret value.
    pub fn error(&self, key: &str, reason: &str) -> ConfigError {
        let entry = self.entry(key);
        ConfigError(format!("invalid --{} (from {}): {reason}", entry.flag, entry.source))
    }

    fn entry(&self, key: &str) -> &Resolved {
        self.values
            .get(key)
            .unwrap_or_else(|| panic!("setting '{key}' was read but never declared"))
    }
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

/// Parses a duration: plain seconds (`10`) or with a unit (`500ms`, `10s`, `2m`).
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
        other => return Err(format!("unknown unit '{other}' (use ms, s, m or h)")),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("10").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("-1").is_err());
        assert_eq!(parse_size("1").unwrap(), 1 << 20);
        assert_eq!(parse_size("512KB").unwrap(), 512 << 10);
        assert!(parse_size("0").is_err());
        assert!(parse_size("3 parsecs").is_err());
    }

    #[test]
    fn errors_name_flag_and_source_but_not_secrets() {
        let settings = [
            Setting::new("server.port", "port", "PORT", "port").default("8080"),
            Setting::new("session.hash_key", "session-hash-key", "SESSION_HASH_KEY", "key")
                .secret(),
        ];
        let config = Config::from_pairs(
            &settings,
            &[("server.port", "eighty"), ("session.hash_key", "hunter2")],
        );
        let err = config.get::<u16>("server.port").unwrap_err().to_string();
        assert!(
            err.contains("--port") && err.contains("eighty") && err.contains("flag --port"),
            "{err}"
        );
        let err = config
            .parse_with::<()>("session.hash_key", |_| Err("must be 64 hex characters".into()))
            .unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(err.to_string().contains("--session-hash-key"));
    }
}
