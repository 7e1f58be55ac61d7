//! Rate limits of the auth endpoints ([`crate::rate_limit`]): per client IP on the routes
//! that verify something (only those requests pay for them), and per account for recovery
//! codes and verification mails. Each is a setting (`--auth-rate-limit-…`, `off` to
//! disable).

use crate::config::{Config, ConfigError, Setting};
use crate::rate_limit::{DEFAULT_MAX_KEYS, Key, Limiter, Rate, RateLimit, TooMany, parse_rate};

pub(crate) const CEREMONIES: Setting<Option<Rate>> =
    Setting::with_parser("auth.rate_limit_ceremonies", parse_rate).default("30/1m").help(
        "Passkey sign-ins, registrations and passkeys added, per client IP: COUNT/WINDOW or off",
    );
pub(crate) const CODES: Setting<Option<Rate>> =
    Setting::with_parser("auth.rate_limit_codes", parse_rate).default("10/10m").help(
        "Recovery codes, sign-in links and verification links tried, per client IP: \
         COUNT/WINDOW or off",
    );
pub(crate) const CODES_PER_ACCOUNT: Setting<Option<Rate>> =
    Setting::with_parser("auth.rate_limit_codes_per_account", parse_rate)
        .default("5/15m")
        .help("Recovery codes tried per account: COUNT/WINDOW or off");
pub(crate) const MAILS: Setting<Option<Rate>> =
    Setting::with_parser("auth.rate_limit_mails", parse_rate)
        .default("10/1h")
        .help("New verification links asked for, per client IP: COUNT/WINDOW or off");
pub(crate) const MAILS_PER_ACCOUNT: Setting<Option<Rate>> =
    Setting::with_parser("auth.rate_limit_mails_per_account", parse_rate)
        .default("3/1h")
        .help("Verification mails sent per address: COUNT/WINDOW or off");

/// The auth app's limits, read from its settings.
pub(crate) struct Limits {
    /// Route layers per client IP (unlimited when off).
    pub(crate) ceremonies: RateLimit,
    pub(crate) codes: RateLimit,
    pub(crate) mails: RateLimit,
    /// Taken by the handlers, per account.
    codes_per_account: Option<Limiter>,
    mails_per_account: Option<Limiter>,
}

impl Limits {
    pub(crate) fn from_config(config: &Config) -> Result<Limits, ConfigError> {
        let per_ip =
            |setting: &Setting<Option<Rate>>| config.get(setting).map(RateLimit::per_ip_or_off);
        let per_account = |setting: &Setting<Option<Rate>>| {
            config.get(setting).map(|rate| rate.map(|rate| Limiter::new(rate, DEFAULT_MAX_KEYS)))
        };
        Ok(Limits {
            ceremonies: per_ip(&CEREMONIES)?,
            codes: per_ip(&CODES)?,
            mails: per_ip(&MAILS)?,
            codes_per_account: per_account(&CODES_PER_ACCOUNT)?,
            mails_per_account: per_account(&MAILS_PER_ACCOUNT)?,
        })
    }

    /// One recovery-code attempt for `account`.
    pub(crate) fn code_for(&self, account: &str) -> Result<(), TooMany> {
        take(self.codes_per_account.as_ref(), account)
    }

    /// One verification mail to `address`.
    pub(crate) fn mail_to(&self, address: &str) -> Result<(), TooMany> {
        take(self.mails_per_account.as_ref(), address)
    }
}

fn take(limiter: Option<&Limiter>, key: &str) -> Result<(), TooMany> {
    limiter.map_or(Ok(()), |limiter| limiter.take(Key::name(key)))
}
