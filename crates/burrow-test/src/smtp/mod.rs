//! A real SMTP server for tests: [`SmtpSink`] runs Debian's `python3-aiosmtpd` on a
//! loopback port, with STARTTLS or implicit TLS under a test CA and a password if asked,
//! and keeps every message it accepts for the test to read.
//!
//! ```no_run
//! use burrow_test::smtp::{SmtpSink, Security};
//!
//! let sink = SmtpSink::start(Security::Starttls { password: Some("s3cret") });
//! let args = sink.server_args(); // --smtp-host, --smtp-port, --smtp-tls, …
//! // … start the server with `args` (and SMTP_PASSWORD=s3cret), make it send a mail …
//! let mail = sink.wait_for(1).remove(0);
//! assert!(mail.tls && mail.data.contains("Subject: Welcome"));
//! ```
//!
//! It needs `/usr/bin/python3` with aiosmtpd (`apt-get install python3-aiosmtpd`), and
//! panics, naming the package, without it: a test of mail never passes without a server.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

/// The user name the sink accepts when it asks for a password.
pub const USER: &str = "burrow";

/// How the sink is reached.
#[derive(Clone, Copy, Debug)]
pub enum Security {
    /// Plain SMTP, no AUTH.
    None,
    /// STARTTLS required before a message; with a password, AUTH too (only after TLS).
    Starttls { password: Option<&'static str> },
    /// TLS from the first byte; with a password, AUTH too.
    Tls { password: Option<&'static str> },
}

/// A message as the sink received it.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct Received {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    /// Whether the connection was encrypted when the message came.
    pub tls: bool,
    /// The user that authenticated, if any.
    pub auth: Option<String>,
    /// The whole message: headers, blank line, (MIME) body.
    pub data: String,
    /// The subject, decoded (a non-ASCII one is sent in RFC 2047 words).
    pub subject: String,
    /// The text part, decoded (quoted-printable or base64 in `data`), with `\n` line ends.
    pub text: String,
    /// The HTML part, decoded; empty without one.
    pub html: String,
}

impl Received {
    /// The first `scheme://…` link in the message (quoted-printable soft breaks undone),
    /// up to whitespace, a quote or `<`.
    pub fn link(&self, prefix: &str) -> Option<String> {
        let text = self.data.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=");
        let start = text.find(prefix)?;
        let rest = &text[start..];
        let end =
            rest.find(|c: char| c.is_whitespace() || "\"<>".contains(c)).unwrap_or(rest.len());
        Some(rest[..end].to_string())
    }
}

/// A running aiosmtpd; stopped on drop.
pub struct SmtpSink {
    child: Child,
    port: u16,
    security: Security,
    dir: tempfile::TempDir,
    ca: PathBuf,
}

impl SmtpSink {
    /// Starts the sink on a free loopback port and waits until it listens.
    pub fn start(security: Security) -> SmtpSink {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let inbox = dir.path().join("inbox");
        std::fs::create_dir(&inbox).expect("the inbox directory");
        let script = dir.path().join("sink.py");
        std::fs::write(&script, include_str!("sink.py")).expect("writing the sink script");
        let ca = write_pki(dir.path());
        let port = crate::free_port();
        let (mode, password) = match security {
            Security::None => ("none", None),
            Security::Starttls { password } => ("starttls", password),
            Security::Tls { password } => ("tls", password),
        };
        let mut command = Command::new("/usr/bin/python3");
        command.arg(&script).arg(&inbox).arg(port.to_string()).arg(mode);
        if mode != "none" {
            command.arg(dir.path().join("smtp-chain.pem")).arg(dir.path().join("smtp-key.pem"));
            if let Some(password) = password {
                command.args([USER, password]);
            }
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting /usr/bin/python3 (apt-get install python3-aiosmtpd)");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("the sink's stdout");
        BufReader::new(stdout).read_line(&mut line).expect("reading the sink's stdout");
        assert_eq!(
            line.trim(),
            "ready",
            "the SMTP sink did not start (is python3-aiosmtpd installed? apt-get install \
             python3-aiosmtpd)"
        );
        SmtpSink { child, port, security, dir, ca }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The PEM file of the CA that signed the sink's certificate (for `--smtp-ca-root`).
    pub fn ca_file(&self) -> &std::path::Path {
        &self.ca
    }

    /// The settings that send mail here (the password, if any, goes in `SMTP_PASSWORD`),
    /// as `(key, value)` pairs with the sender `Burrow <burrow@example.com>`.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        let (tls, password) = match self.security {
            Security::None => ("none", None),
            Security::Starttls { password } => ("starttls", password),
            Security::Tls { password } => ("tls", password),
        };
        let mut pairs = vec![
            ("smtp.host", "localhost".to_string()),
            ("smtp.port", self.port.to_string()),
            ("smtp.tls", tls.to_string()),
            ("smtp.from", "Burrow <burrow@example.com>".to_string()),
        ];
        if tls != "none" {
            pairs.push(("smtp.ca_root", self.ca.display().to_string()));
        }
        if password.is_some() {
            pairs.push(("smtp.username", USER.to_string()));
        }
        pairs
    }

    /// [`settings`](SmtpSink::settings) as command-line flags.
    pub fn server_args(&self) -> Vec<String> {
        (self.settings().into_iter())
            .map(|(key, value)| format!("--{}={value}", key.replace(['.', '_'], "-")))
            .collect()
    }

    /// Every message received so far, oldest first.
    pub fn received(&self) -> Vec<Received> {
        let inbox = self.dir.path().join("inbox");
        let mut names: Vec<PathBuf> = std::fs::read_dir(&inbox)
            .expect("the inbox")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        (names.iter())
            .map(|p| {
                let text = std::fs::read_to_string(p).expect("a stored message");
                serde_json::from_str(&text).expect("the sink's JSON")
            })
            .collect()
    }

    /// Waits (up to 20 s) until at least `count` messages arrived, and returns them all.
    pub fn wait_for(&self, count: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "the SMTP sink got {} message(s), expected {count}",
                received.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA and a certificate for `localhost` and 127.0.0.1 it signed: `smtp-ca.pem`,
/// `smtp-chain.pem`, `smtp-key.pem` in `dir`. Returns the CA's path.
fn write_pki(dir: &std::path::Path) -> PathBuf {
    let ca_key = KeyPair::generate().expect("a CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("the CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().expect("a key");
    let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("leaf parameters")
        .signed_by(&leaf_key, &issuer)
        .expect("the leaf certificate");
    let ca = dir.join("smtp-ca.pem");
    std::fs::write(&ca, ca_cert.pem()).expect("writing the CA");
    std::fs::write(dir.join("smtp-chain.pem"), format!("{}{}", leaf.pem(), ca_cert.pem()))
        .expect("writing the chain");
    std::fs::write(dir.join("smtp-key.pem"), leaf_key.serialize_pem()).expect("writing the key");
    ca
}
