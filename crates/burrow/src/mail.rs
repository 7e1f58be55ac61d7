//! Mail: messages rendered from templates, sent over SMTP.
//!
//! `--smtp-host` turns mail on; without it the server sends none, and features that need
//! mail (email verification) refuse to start. Mail leaves through lettre on rustls (ring,
//! the webpki roots plus `--smtp-ca-root`), never OpenSSL: `--smtp-tls starttls` (port 587,
//! the default), `tls` (implicit TLS, port 465) or `none` (plain text: only without a
//! password, or to a relay on this machine). The password comes from `SMTP_PASSWORD`, the
//! config file or `--smtp-password-file`, never from a flag, and is never logged.
//!
//! A mail is two templates: `NAME.txt`, whose first line is `Subject: …`, then the text
//! body; and `NAME.html` beside it, the HTML body, if the app has one. An app overrides
//! either by shipping a template of the same name.
//!
//! ```no_run
//! # async fn f(ctx: &burrow::AppContext) -> Result<(), burrow::mail::MailError> {
//! use burrow::mail::Email;
//! use burrow::minijinja::context;
//!
//! let email = Email::render(&ctx.templates, "shop/mail/receipt", "ann@example.com",
//!     context! { total => "12.00" })?;
//! ctx.mailer.send(&email).await?; // or `deliver` it in the background
//! # Ok(()) }
//! ```
//!
//! [`Mailer::deliver`] sends in the background with a few retries and logs the outcome;
//! a mail still being retried when the process stops is lost (the jobs queue will make
//! delivery durable).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use minijinja::Value;
use serde::{Deserialize, Serialize};

use crate::context::BoxError;
use crate::jobs::{Job, JobContext, JobOptions, Jobs};

use crate::config::{Config, ConfigError, Optional, Setting};
use crate::settings::Password;
use crate::template::Templates;

pub(crate) const SMTP_HOST: Setting<String, Optional> = Setting::new("smtp.host")
    .optional()
    .help("SMTP server mail is sent through (none: the server sends no mail)");
pub(crate) const SMTP_PORT: Setting<u16, Optional> = Setting::new("smtp.port")
    .optional()
    .default_note("587 for starttls, 465 for tls, 25 for none")
    .help("SMTP port");
pub(crate) const SMTP_TLS: Setting<SmtpTls> =
    Setting::with_parser("smtp.tls", SmtpTls::parse).default("starttls").help(
        "starttls, tls (implicit TLS) or none (plain text: no password, or a relay on this host)",
    );
pub(crate) const SMTP_USERNAME: Setting<String, Optional> =
    Setting::new("smtp.username").optional().help("SMTP user name (needs a password)");
pub(crate) const SMTP_PASSWORD: Setting<String, Optional> =
    Setting::new("smtp.password").optional().secret().no_flag().help(
        "SMTP password: from SMTP_PASSWORD or the config file only (or --smtp-password-file)",
    );
pub(crate) const SMTP_PASSWORD_FILE: Setting<PathBuf, Optional> =
    Setting::new("smtp.password_file")
        .optional()
        .help("File holding the SMTP password (its first line)");
pub(crate) const SMTP_FROM: Setting<Mailbox, Optional> = Setting::new("smtp.from")
    .optional()
    .help("Sender of mails, e.g. \"Notes <notes@example.com>\" (required with --smtp-host)");
pub(crate) const SMTP_CA_ROOT: Setting<PathBuf, Optional> = Setting::new("smtp.ca_root")
    .optional()
    .help("PEM file of CA certificates trusted beside the public roots (a private relay)");

/// How the connection to the SMTP server is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required, not opportunistic).
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
    /// No encryption.
    None,
}

impl SmtpTls {
    fn parse(raw: &str) -> Result<SmtpTls, String> {
        match raw {
            "starttls" => Ok(SmtpTls::Starttls),
            "tls" => Ok(SmtpTls::Tls),
            "none" => Ok(SmtpTls::None),
            _ => Err("expected starttls, tls or none".into()),
        }
    }

    fn default_port(self) -> u16 {
        match self {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        }
    }
}

/// The SMTP settings, read and checked at start-up (files included), so a mistake is a
/// one-line error before anything is written.
#[derive(Clone, Debug)]
pub(crate) struct MailSettings {
    host: String,
    port: u16,
    tls: SmtpTls,
    credentials: Option<(String, Password)>,
    from: Mailbox,
    ca_root: Option<Vec<u8>>,
}

impl MailSettings {
    /// `None` without `--smtp-host`.
    pub(crate) fn from_config(config: &Config) -> Result<Option<MailSettings>, ConfigError> {
        let Some(host) = config.get(&SMTP_HOST)? else { return Ok(None) };
        let tls = config.get(&SMTP_TLS)?;
        let port = config.get(&SMTP_PORT)?.unwrap_or(tls.default_port());
        let from = config.get(&SMTP_FROM)?.ok_or_else(|| {
            config.error(&SMTP_FROM, "required with --smtp-host (the sender of every mail)")
        })?;
        let password = match config.get(&SMTP_PASSWORD_FILE)? {
            Some(path) => {
                Some(crate::settings::read_password_file(config, &SMTP_PASSWORD_FILE, &path)?)
            }
            None => config.get(&SMTP_PASSWORD)?.map(Password),
        };
        let credentials = match (config.get(&SMTP_USERNAME)?, password) {
            (Some(user), Some(password)) => Some((user, password)),
            (None, None) => None,
            (Some(_), None) => {
                let reason =
                    "needs a password (SMTP_PASSWORD, smtp.password or --smtp-password-file)";
                return Err(config.error(&SMTP_USERNAME, reason));
            }
            (None, Some(_)) => {
                return Err(config.error(&SMTP_USERNAME, "required with an SMTP password"));
            }
        };
        if tls == SmtpTls::None && credentials.is_some() && !is_loopback(&host) {
            let reason = "none would send the SMTP password unencrypted to another host: use \
                          starttls or tls";
            return Err(config.error(&SMTP_TLS, reason));
        }
        let ca_root = match config.get(&SMTP_CA_ROOT)? {
            None => None,
            Some(path) => {
                let pem = std::fs::read(&path).map_err(|e| {
                    config.error(&SMTP_CA_ROOT, &format!("cannot read {}: {e}", path.display()))
                })?;
                if Certificate::from_pem(&pem).is_err() || !pem.starts_with(b"-----BEGIN") {
                    let reason = format!("{} holds no PEM certificate", path.display());
                    return Err(config.error(&SMTP_CA_ROOT, &reason));
                }
                Some(pem)
            }
        };
        Ok(Some(MailSettings { host, port, tls, credentials, from, ca_root }))
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A mail to one recipient: a subject, a text body and an optional HTML body.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

impl Email {
    /// Renders `NAME.txt` (first line `Subject: …`, then the body) and, if there is one,
    /// `NAME.html`, with `ctx`.
    pub fn render(
        templates: &Templates,
        name: &str,
        to: &str,
        ctx: Value,
    ) -> Result<Email, MailError> {
        let render = |file: String| {
            templates
                .render_detached(&file, ctx.clone())
                .map_err(|e| MailError(format!("rendering {file}: {}", crate::error::one_line(&e))))
        };
        let text_name = format!("{name}.txt");
        let text = render(text_name.clone())?
            .ok_or_else(|| MailError(format!("no template {text_name}")))?;
        let (first, body) = text.trim_start().split_once('\n').unwrap_or((&text, ""));
        let subject = first
            .strip_prefix("Subject:")
            .map(str::trim)
            .ok_or_else(|| MailError(format!("{text_name} must begin with a line 'Subject: …'")))?;
        Ok(Email {
            to: to.to_string(),
            subject: subject.to_string(),
            text: body.trim_start_matches('\n').to_string(),
            html: render(format!("{name}.html"))?,
        })
    }
}

/// Why a mail was not sent (never with a password or a message body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailError(pub String);

impl fmt::Display for MailError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MailError {}

/// Sends mail through the configured SMTP server; cheap to clone. Without `--smtp-host`
/// it is off: [`is_configured`](Mailer::is_configured) is false and sending fails.
#[derive(Clone)]
pub struct Mailer {
    smtp: Option<Arc<Smtp>>,
    /// Where [`deliver`](Mailer::deliver) queues mail when the `jobs` app is installed.
    jobs: Jobs,
}

struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// For messages: `host:port`.
    server: String,
}

/// Pauses before the retries of [`Mailer::deliver`] without the job queue.
const RETRIES: [Duration; 3] =
    [Duration::from_secs(2), Duration::from_secs(10), Duration::from_secs(60)];

impl Mailer {
    pub(crate) fn new(settings: Option<&MailSettings>, jobs: Jobs) -> Mailer {
        let Some(s) = settings else { return Mailer { smtp: None, jobs } };
        let params = || {
            let mut builder = TlsParameters::builder(s.host.clone());
            if let Some(pem) = &s.ca_root {
                // Checked at start-up.
                builder = builder.add_root_certificate(
                    Certificate::from_pem(pem).expect("the CA file was checked at start-up"),
                );
            }
            builder.build_rustls().expect("rustls parameters with ring and webpki roots")
        };
        let tls = match s.tls {
            SmtpTls::Starttls => Tls::Required(params()),
            SmtpTls::Tls => Tls::Wrapper(params()),
            SmtpTls::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host)
            .port(s.port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(30)));
        if let Some((user, password)) = &s.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.0.clone()));
        }
        let smtp = Arc::new(Smtp {
            transport: builder.build(),
            from: s.from.clone(),
            server: format!("{}:{}", s.host, s.port),
        });
        Mailer { smtp: Some(smtp), jobs }
    }

    /// Whether `--smtp-host` is set.
    pub fn is_configured(&self) -> bool {
        self.smtp.is_some()
    }

    /// Sends `email` now: one attempt.
    pub async fn send(&self, email: &Email) -> Result<(), MailError> {
        let Some(smtp) = &self.smtp else {
            return Err(MailError("mail is off: set --smtp-host and --smtp-from".into()));
        };
        let to: Mailbox = (email.to.parse())
            .map_err(|e| MailError(format!("invalid recipient '{}': {e}", email.to)))?;
        let builder = Message::builder().from(smtp.from.clone()).to(to).subject(&email.subject);
        let message = match &email.html {
            Some(html) => builder
                .multipart(MultiPart::alternative_plain_html(email.text.clone(), html.clone())),
            None => builder.singlepart(
                SinglePart::builder().header(ContentType::TEXT_PLAIN).body(email.text.clone()),
            ),
        }
        .map_err(|e| MailError(format!("building the mail: {e}")))?;
        match smtp.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) => Err(MailError(format!("SMTP server {}: {e}", smtp.server))),
        }
    }

    /// Sends `email` in the background. With the `jobs` app it is a job ([`SendMail`]):
    /// it survives a restart or a crash and is retried with backoff (5 attempts, from
    /// 10 s), and `Err` means it was not queued. Without it, this process retries a failed
    /// attempt after 2 s, 10 s and 60 s. The outcome is logged (recipient and subject,
    /// never the body).
    pub async fn deliver(&self, email: Email) -> Result<(), MailError> {
        if !self.is_configured() {
            return Err(MailError("mail is off: set --smtp-host and --smtp-from".into()));
        }
        if self.jobs.is_installed() {
            let queued = self.jobs.enqueue(SendMail(email)).await;
            return queued.map(drop).map_err(|e| MailError(format!("mail not queued: {e}")));
        }
        let mailer = self.clone();
        tokio::spawn(async move {
            let mut pauses = RETRIES.iter();
            loop {
                match mailer.send(&email).await {
                    Ok(()) => {
                        tracing::info!(to = %email.to, subject = %email.subject, "mail sent");
                        return;
                    }
                    Err(e) => match pauses.next() {
                        Some(pause) => {
                            tracing::warn!(to = %email.to, error = %e, "mail not sent, retrying");
                            tokio::time::sleep(*pause).await;
                        }
                        None => {
                            tracing::error!(to = %email.to, subject = %email.subject,
                                error = %e, "mail not sent, giving up");
                            return;
                        }
                    },
                }
            }
        });
        Ok(())
    }
}

/// The job [`Mailer::deliver`] queues: one mail, sent by whichever process claims it.
#[derive(Serialize, Deserialize)]
pub struct SendMail(pub Email);

impl Job for SendMail {
    const TYPE: &'static str = "burrow.mail";

    fn options() -> JobOptions {
        JobOptions::new()
            .max_attempts(5)
            .backoff(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
    }

    async fn run(self, cx: JobContext) -> Result<(), BoxError> {
        let email = self.0;
        cx.app.mailer.send(&email).await?;
        tracing::info!(to = %email.to, subject = %email.subject, "mail sent");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Option<MailSettings>, ConfigError> {
        MailSettings::from_config(&Config::from_pairs(crate::settings::CORE_SETTINGS, pairs))
    }

    #[test]
    fn mail_is_off_without_a_host_and_needs_a_sender_with_one() {
        assert!(settings(&[]).unwrap().is_none());
        let err = settings(&[("smtp.host", "mail.example.com")]).unwrap_err();
        assert!(err.0.contains("--smtp-from") && err.0.contains("required"), "{err}");
        let on = settings(&[("smtp.host", "mail.example.com"), ("smtp.from", "N <n@example.com>")]);
        let on = on.unwrap().unwrap();
        assert_eq!((on.port, on.tls), (587, SmtpTls::Starttls));
        let err = settings(&[("smtp.host", "h"), ("smtp.from", "not an address")]).unwrap_err();
        assert!(err.0.contains("--smtp-from"), "{err}");
    }

    #[test]
    fn a_password_needs_a_user_and_never_goes_out_in_plain_text() {
        let base = [("smtp.host", "mail.example.com"), ("smtp.from", "n@example.com")];
        let with = |extra: &[(&'static str, &'static str)]| {
            settings(&[&base[..], extra].concat()).map(|s| s.unwrap())
        };
        let err = with(&[("smtp.username", "u")]).unwrap_err();
        assert!(err.0.contains("--smtp-username") && err.0.contains("password"), "{err}");
        let err = with(&[("smtp.password", "hunter2")]).unwrap_err();
        assert!(!err.0.contains("hunter2"), "{err}");
        let ok = with(&[("smtp.username", "u"), ("smtp.password", "hunter2")]).unwrap();
        assert!(!format!("{ok:?}").contains("hunter2"), "Debug hides the password");
        let err = with(&[("smtp.username", "u"), ("smtp.password", "pw"), ("smtp.tls", "none")])
            .unwrap_err();
        assert!(err.0.contains("--smtp-tls") && err.0.contains("unencrypted"), "{err}");
        let local = settings(&[
            ("smtp.host", "127.0.0.1"),
            ("smtp.from", "n@example.com"),
            ("smtp.tls", "none"),
            ("smtp.username", "u"),
            ("smtp.password", "pw"),
        ]);
        assert_eq!(local.unwrap().unwrap().port, 25);
        let err = with(&[("smtp.ca_root", "/nonexistent.pem")]).unwrap_err();
        assert!(err.0.contains("--smtp-ca-root") && err.0.contains("cannot read"), "{err}");
    }
}
