//! acme mode: certificates from an ACME CA (Let's Encrypt by default) by HTTP-01.
//!
//! Files, under `<cert dir>/acme/<directory>/` (one folder per CA directory URL, so
//! staging and production never mix): `account.json` (account key, 0600),
//! `<domain>.cert.pem` + `<domain>.key.pem` (0600) and `<domain>.lock`; challenge responses
//! go to `<cert dir>/acme/challenges/<token>`.
//!
//! - Start-up reads the cache: a valid cached certificate is served at once and no order
//!   is placed while it is valid and not due for renewal.
//! - A background task ([`Acme::run`]) orders the first certificate (after listening: the
//!   CA must reach the challenge port) and renews when a third of the lifetime is left, or
//!   inside the renewal window when the CA offers ARI (RFC 9773). The new certificate is
//!   swapped into the resolver: no restart, open connections unaffected.
//! - Ordering holds an exclusive lock on `<domain>.lock`, and re-reads the cache once it
//!   has it: during a SIGHUP restart two processes run; the second to get the lock finds
//!   the certificate the first one stored, and installs it instead of ordering again.
//! - Challenge responses are files, not memory: while two processes share the challenge
//!   socket (SIGHUP hand-over), the CA's request may reach either; both can answer.
//! - Failures are logged with the CA's message and retried with backoff; the current
//!   certificate keeps being served meanwhile.
//! - External account binding (`--tls-acme-eab-kid` + `--tls-acme-eab-hmac-key`, ZeroSSL)
//!   is used when the account is registered; a CA that no longer knows the cached account
//!   (`accountDoesNotExist`) gets a new registration and the order is retried once.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, BytesResponse,
    CertificateIdentifier, ChallengeType, ExternalAccountKey, HttpClient, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use rustls_pki_types::CertificateDer;

use super::certinfo::{CertInfo, format_time};
use super::pem;
use super::resolver::CertStore;
use crate::files::{ensure_private_dir, write_atomic};
use crate::serve::blocking;
use crate::settings::{AcmeEab, Settings};

/// First retry after a failed order; doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// How often a process with a certificate not yet due wakes up to look again (another
/// process may have renewed; the ARI window may have moved).
const RECHECK: Duration = Duration::from_secs(6 * 3600);
/// Patience for the CA to validate, and to issue.
const ORDER_TIMEOUT: Duration = Duration::from_secs(120);

/// The ACME manager of one server: the certificate store its HTTPS listener serves from,
/// the challenge/redirect router of its HTTP listener, and the background renewal.
#[derive(Clone)]
pub(crate) struct Acme {
    inner: Arc<Inner>,
}

struct Inner {
    domain: String,
    email: String,
    directory: String,
    extra_roots: Vec<CertificateDer<'static>>,
    /// External account binding, used when registering the account.
    eab: Option<AcmeEab>,
    /// `<cert dir>/acme/<directory slug>`
    dir: PathBuf,
    challenges: PathBuf,
    store: Arc<CertStore>,
    /// The installed certificate's leaf and what it says.
    current: Mutex<Option<(CertificateDer<'static>, CertInfo)>>,
    /// Where the HTTP port redirects to: `https://host[:port]`, no trailing slash.
    https_base: String,
}

/// A cached or new certificate, checked.
struct Cached {
    loaded: pem::Loaded,
}

impl Acme {
    /// Reads the cache and the CA root file; creates the directories. No network.
    pub(crate) fn prepare(settings: &Settings) -> Result<Acme, String> {
        let tls = &settings.tls;
        let extra_roots = match &tls.acme_ca_root {
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|e| {
                    format!(
                        "cannot read the ACME CA root file {} (--tls-acme-ca-root): {e}",
                        path.display()
                    )
                })?;
                pem::parse_chain(&bytes).map_err(|e| {
                    format!("ACME CA root file {} (--tls-acme-ca-root): {e}", path.display())
                })?
            }
            None => Vec::new(),
        };
        let root = tls.cert_dir.join("acme");
        let dir = root.join(slug(&tls.acme_directory));
        let challenges = root.join("challenges");
        for d in [&tls.cert_dir, &root, &dir, &challenges] {
            ensure_private_dir(d, "--tls-cert-dir")?;
        }
        let https_base = if settings.base_url.starts_with("https://") {
            settings.base_url.clone()
        } else if tls.https_port == 443 {
            format!("https://{}", settings.host)
        } else {
            format!("https://{}:{}", settings.host, tls.https_port)
        };
        let acme = Acme {
            inner: Arc::new(Inner {
                domain: settings.host.name(),
                email: tls.email.clone().unwrap_or_default(),
                directory: tls.acme_directory.clone(),
                extra_roots,
                eab: tls.acme_eab.clone(),
                dir,
                challenges,
                store: Arc::new(CertStore::default()),
                current: Mutex::new(None),
                https_base,
            }),
        };
        match acme.read_cache() {
            Ok(Some(cached)) if !cached.loaded.info.expired(SystemTime::now()) => {
                tracing::info!(
                    domain = %acme.inner.domain,
                    not_after = %format_time(cached.loaded.info.not_after),
                    "using the cached ACME certificate"
                );
                acme.install(cached);
            }
            Ok(Some(cached)) => tracing::info!(
                domain = %acme.inner.domain,
                "the cached ACME certificate expired at {}; a new one will be ordered once \
                 listening",
                format_time(cached.loaded.info.not_after)
            ),
            Ok(None) => tracing::info!(
                domain = %acme.inner.domain,
                directory = %acme.inner.directory,
                "no cached ACME certificate; one will be ordered once listening (HTTPS \
                 handshakes fail until it arrives)"
            ),
            Err(e) => {
                tracing::warn!(
                    domain = %acme.inner.domain,
                    "the cached ACME certificate cannot be used ({e}); ordering a new one"
                )
            }
        }
        Ok(acme)
    }

    pub(crate) fn store(&self) -> Arc<CertStore> {
        self.inner.store.clone()
    }

    fn cert_path(&self) -> PathBuf {
        self.inner.dir.join(format!("{}.cert.pem", self.inner.domain))
    }

    fn key_path(&self) -> PathBuf {
        self.inner.dir.join(format!("{}.key.pem", self.inner.domain))
    }

    /// The cached certificate, if both files exist.
    fn read_cache(&self) -> Result<Option<Cached>, String> {
        let (cert, key) = (self.cert_path(), self.key_path());
        if !cert.exists() || !key.exists() {
            return Ok(None);
        }
        let read =
            |p: &Path| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
        let loaded = pem::load(&read(&cert)?, &read(&key)?)
            .map_err(|e| format!("{}: {e}", cert.display()))?;
        if !loaded.info.covers(&self.inner.domain) {
            return Err(format!(
                "{} is for {}, not {}",
                cert.display(),
                loaded.info.names().join(", "),
                self.inner.domain
            ));
        }
        Ok(Some(Cached { loaded }))
    }

    fn install(&self, cached: Cached) {
        let leaf = cached.loaded.key.cert[0].clone();
        *self.inner.current.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((leaf, cached.loaded.info));
        self.inner.store.set(cached.loaded.key);
    }

    fn current(&self) -> Option<(CertificateDer<'static>, CertInfo)> {
        self.inner.current.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The router of the HTTP port: HTTP-01 challenge responses; every other GET/HEAD is
    /// redirected to the same path and query on https; other methods get 400.
    pub(crate) fn http_router(&self) -> Router {
        Router::new().fallback(http_port).with_state(self.clone())
    }

    /// Orders the first certificate if there is none, then renews forever. Runs until
    /// the task is dropped (shutdown).
    pub(crate) async fn run(self) {
        let mut account: Option<Account> = None;
        let mut backoff = FIRST_BACKOFF;
        loop {
            self.install_stored().await;
            let (due, recheck) = self.due(&mut account).await;
            let now = SystemTime::now();
            if due > now {
                let wait = due.duration_since(now).unwrap_or_default();
                tracing::debug!(
                    domain = %self.inner.domain,
                    renew_at = %format_time(due),
                    "next ACME renewal"
                );
                tokio::time::sleep(wait.min(recheck)).await;
                continue;
            }
            match self.obtain(&mut account).await {
                Ok(()) => backoff = FIRST_BACKOFF,
                Err(e) => {
                    let serving = match self.current() {
                        Some((_, info)) if !info.expired(SystemTime::now()) => {
                            format!(
                                "still serving the current certificate (valid until {})",
                                format_time(info.not_after)
                            )
                        }
                        _ => "HTTPS has no valid certificate until this succeeds".to_string(),
                    };
                    // One line, whatever the CA's message looks like.
                    let e = e.split_whitespace().collect::<Vec<_>>().join(" ");
                    tracing::warn!(
                        domain = %self.inner.domain,
                        retry_in_s = backoff.as_secs(),
                        "ACME: could not obtain a certificate: {e}; {serving}; retrying in {}s",
                        backoff.as_secs()
                    );
                    // The account may be what failed (e.g. a CA reset): start afresh.
                    account = None;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// When the installed certificate should be renewed, and how long to sleep at most
    /// before looking again.
    async fn due(&self, account: &mut Option<Account>) -> (SystemTime, Duration) {
        let Some((leaf, info)) = self.current() else {
            return (SystemTime::now(), RECHECK);
        };
        let fallback = renew_at(&info);
        // ARI: the CA's window wins when it offers one (e.g. it revokes early).
        if let Ok(id) = CertificateIdentifier::try_from(&leaf)
            && let Ok(account) = self.account(account).await
        {
            match account.renewal_info(&id).await {
                Ok((ari, retry_after)) => {
                    let (start, end) = (
                        SystemTime::from(ari.suggested_window.start),
                        SystemTime::from(ari.suggested_window.end),
                    );
                    let span = end.duration_since(start).unwrap_or_default();
                    let at = start + span.mul_f64(random_fraction());
                    tracing::debug!(
                        domain = %self.inner.domain,
                        window_start = %format_time(start),
                        window_end = %format_time(end),
                        "ACME renewal information"
                    );
                    return (at, retry_after.clamp(Duration::from_secs(60), RECHECK));
                }
                Err(instant_acme::Error::Unsupported(_)) => {}
                Err(e) => {
                    tracing::debug!(
                        domain = %self.inner.domain,
                        "ACME renewal information unavailable: {e}"
                    )
                }
            }
        }
        (fallback, RECHECK)
    }

    /// Installs the certificate another process stored in the cache when it is not the one
    /// being served, is newer and has not expired: during a SIGHUP hand-over two processes
    /// share the cache, and whichever renews, the other serves its certificate instead of
    /// ordering one of its own. Returns what it installed.
    async fn install_stored(&self) -> Option<CertInfo> {
        let acme = self.clone();
        let Ok(Some(cached)) = blocking(move || acme.read_cache()).await else { return None };
        let info = cached.loaded.info.clone();
        let newer = match self.current() {
            Some((leaf, current)) => {
                leaf != cached.loaded.key.cert[0] && info.not_after > current.not_after
            }
            None => true,
        };
        if !newer || info.expired(SystemTime::now()) {
            return None;
        }
        self.install(cached);
        tracing::info!(
            domain = %self.inner.domain,
            not_after = %format_time(info.not_after),
            "installed the ACME certificate another process stored"
        );
        Some(info)
    }

    /// Under the lock: takes a certificate another process stored meanwhile, or orders one.
    async fn obtain(&self, account: &mut Option<Account>) -> Result<(), String> {
        let _lock = self.lock().await?;
        if let Some(stored) = self.install_stored().await
            && SystemTime::now() < renew_at(&stored)
        {
            return Ok(());
        }
        let renewing = self.current().is_some();
        tracing::info!(
            domain = %self.inner.domain,
            directory = %self.inner.directory,
            "ACME: ordering a certificate"
        );
        let started = std::time::Instant::now();
        let (chain_pem, key_pem) = match self.order(&self.account(account).await?).await {
            Err(Failure::UnknownAccount(why)) => {
                // The CA lost or deactivated the cached account (e.g. a test CA restarted,
                // a CA reset): register a new one (with the binding, if any) and retry once.
                tracing::warn!(
                    domain = %self.inner.domain,
                    directory = %self.inner.directory,
                    "ACME: the CA does not know the cached account ({why}); registering a new one"
                );
                let path = self.account_path();
                blocking(move || {
                    std::fs::remove_file(&path)
                        .map_err(|e| format!("cannot remove {}: {e}", path.display()))
                })
                .await?;
                *account = None;
                self.order(&self.account(account).await?).await.map_err(Failure::into_message)?
            }
            other => other.map_err(Failure::into_message)?,
        };
        let loaded = pem::load(chain_pem.as_bytes(), key_pem.as_bytes())
            .map_err(|e| format!("the CA's certificate is unusable: {e}"))?;
        write_file(self.key_path(), key_pem.into_bytes(), 0o600).await?;
        write_file(self.cert_path(), chain_pem.into_bytes(), 0o644).await?;
        let not_after = loaded.info.not_after;
        // Installed before it is logged: whoever reads "now serving it" gets it.
        self.install(Cached { loaded });
        tracing::info!(
            domain = %self.inner.domain,
            not_after = %format_time(not_after),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "ACME certificate {}; now serving it",
            if renewing { "renewed" } else { "obtained" }
        );
        Ok(())
    }

    /// Waits for the exclusive lock on `<domain>.lock` (held until the guard drops).
    async fn lock(&self) -> Result<Lock, String> {
        let path = self.inner.dir.join(format!("{}.lock", self.inner.domain));
        let mut logged = false;
        loop {
            let attempt = path.clone();
            match blocking(move || Lock::try_acquire(&attempt)).await? {
                Some(lock) => return Ok(lock),
                None => {
                    if !logged {
                        tracing::info!(
                            domain = %self.inner.domain,
                            "another process is ordering this certificate; waiting for it"
                        );
                        logged = true;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// The ACME account: from `account.json`, or registered now (and saved).
    async fn account(&self, account: &mut Option<Account>) -> Result<Account, String> {
        if let Some(account) = account {
            return Ok(account.clone());
        }
        let path = self.account_path();
        let builder = || Ok::<_, String>(Account::builder_with_http(Box::new(self.http_client()?)));
        let stored = {
            let path = path.clone();
            blocking(move || {
                if !path.exists() {
                    return Ok(None);
                }
                std::fs::read(&path)
                    .map(Some)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))
            })
            .await?
        };
        let fresh = if let Some(bytes) = stored {
            let credentials: AccountCredentials = serde_json::from_slice(&bytes)
                .map_err(|e| format!("{} is not an ACME account file: {e}", path.display()))?;
            builder()?
                .from_credentials(credentials)
                .await
                .map_err(|e| format!("ACME directory {}: {}", self.inner.directory, why(&e)))?
        } else {
            let contact = format!("mailto:{}", self.inner.email);
            let eab = self
                .inner
                .eab
                .as_ref()
                .map(|eab| ExternalAccountKey::new(eab.kid.clone(), &eab.hmac_key));
            let binding = match &self.inner.eab {
                Some(eab) => format!(" with external account binding (key ID {})", eab.kid),
                None => String::new(),
            };
            let (account, credentials) = builder()?
                .create(
                    &NewAccount {
                        contact: &[&contact],
                        terms_of_service_agreed: true,
                        only_return_existing: false,
                    },
                    self.inner.directory.clone(),
                    eab.as_ref(),
                )
                .await
                .map_err(|e| {
                    format!(
                        "registering an ACME account{binding} at {}: {}",
                        self.inner.directory,
                        why(&e)
                    )
                })?;
            let json = serde_json::to_vec(&credentials).map_err(|e| e.to_string())?;
            write_file(path, json, 0o600).await?;
            tracing::info!(
                directory = %self.inner.directory,
                email = %self.inner.email,
                "registered an ACME account{binding}"
            );
            account
        };
        *account = Some(fresh.clone());
        Ok(fresh)
    }

    fn account_path(&self) -> PathBuf {
        self.inner.dir.join("account.json")
    }

    /// One order: HTTP-01 for the domain, CSR with a fresh P-256 key, the chain.
    async fn order(&self, account: &Account) -> Result<(String, String), Failure> {
        let ids = [Identifier::Dns(self.inner.domain.clone())];
        let mut order = account.new_order(&NewOrder::new(&ids)).await.map_err(|e| match &e {
            instant_acme::Error::Api(problem)
                if problem.r#type.as_deref() == Some(ACCOUNT_DOES_NOT_EXIST) =>
            {
                Failure::UnknownAccount(why(&e))
            }
            _ => Failure::Other(format!("new order: {}", why(&e))),
        })?;
        self.complete(&mut order).await.map_err(Failure::Other)
    }

    /// Validation, finalization and the chain of a placed order.
    async fn complete(&self, order: &mut instant_acme::Order) -> Result<(String, String), String> {
        let mut tokens = Tokens { dir: self.inner.challenges.clone(), names: Vec::new() };
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz.map_err(|e| format!("authorization: {}", why(&e)))?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(format!("authorization for {} is {other:?}", self.inner.domain));
                }
            }
            let mut challenge = authz
                .challenge(ChallengeType::Http01)
                .ok_or("the CA offered no HTTP-01 challenge")?;
            let token = challenge.token.clone();
            if !valid_token(&token) {
                return Err("the CA sent a malformed challenge token".into());
            }
            let answer = challenge.key_authorization().as_str().as_bytes().to_vec();
            write_file(self.inner.challenges.join(&token), answer, 0o644).await?;
            tokens.names.push(token);
            challenge.set_ready().await.map_err(|e| format!("challenge: {}", why(&e)))?;
        }
        let policy = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .backoff(1.5)
            .timeout(ORDER_TIMEOUT);
        let status = order
            .poll_ready(&policy)
            .await
            .map_err(|e| format!("waiting for validation: {}", why(&e)))?;
        if status != OrderStatus::Ready {
            // The CA's reason is on the challenge (e.g. "connection refused").
            let mut reasons = Vec::new();
            if let Some(problem) = &order.state().error {
                reasons.push(problem.to_string());
            }
            let mut authorizations = order.authorizations();
            while let Some(Ok(authz)) = authorizations.next().await {
                reasons.extend(
                    authz.challenges.iter().filter_map(|c| c.error.as_ref()).map(|p| p.to_string()),
                );
            }
            return Err(format!(
                "order is {status:?}: {}",
                if reasons.is_empty() { "no reason given".into() } else { reasons.join("; ") }
            ));
        }
        drop(tokens);
        let key_pem = order.finalize().await.map_err(|e| format!("finalize: {}", why(&e)))?;
        let chain = order
            .poll_certificate(&policy)
            .await
            .map_err(|e| format!("certificate: {}", why(&e)))?;
        Ok((chain, key_pem))
    }

    /// An HTTPS client for the ACME API trusting the embedded webpki roots (a copied binary
    /// needs no CA bundle on the host) plus `--tls-acme-ca-root`.
    fn http_client(&self) -> Result<AcmeClient, String> {
        let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        for root in &self.inner.extra_roots {
            roots
                .add(root.clone())
                .map_err(|e| format!("--tls-acme-ca-root: unusable certificate: {e}"))?;
        }
        let config = rustls::ClientConfig::builder_with_provider(super::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .enable_http1()
            .enable_http2()
            .build();
        Ok(AcmeClient(HyperClient::builder(TokioExecutor::new()).build(connector)))
    }
}

const ACCOUNT_DOES_NOT_EXIST: &str = "urn:ietf:params:acme:error:accountDoesNotExist";

/// Why an order failed: the account is unknown to the CA (register again), or anything else.
enum Failure {
    UnknownAccount(String),
    Other(String),
}

impl Failure {
    fn into_message(self) -> String {
        match self {
            Failure::UnknownAccount(why) => format!("the CA does not know the ACME account: {why}"),
            Failure::Other(message) => message,
        }
    }
}

/// An error with its causes ("client error (Connect): invalid peer certificate: …"): the
/// top-level text of HTTP client errors alone does not say what went wrong.
fn why(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// When a third of the lifetime is left.
fn renew_at(info: &CertInfo) -> SystemTime {
    info.not_before + info.lifetime().mul_f64(2.0 / 3.0)
}

/// Writes a file of the cache or a challenge answer through [`write_atomic`], whose fsyncs
/// run on the blocking pool.
async fn write_file(path: PathBuf, bytes: Vec<u8>, mode: u32) -> Result<(), String> {
    blocking(move || {
        write_atomic(&path, &bytes, mode)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    })
    .await
}

/// In [0, 1): spreads renewals over the ARI window as RFC 9773 asks.
fn random_fraction() -> f64 {
    let mut bytes = [0u8; 4];
    crate::random::fill(&mut bytes);
    f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0)
}

/// `https://acme-v02.api.letsencrypt.org/directory` → `acme-v02.api.letsencrypt.org_directory`.
fn slug(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest).trim_end_matches('/');
    rest.chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
        .collect()
}

/// ACME tokens are base64url; anything else never names a file.
fn valid_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 256
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Challenge files of one order, removed when it is done (validated or failed).
struct Tokens {
    dir: PathBuf,
    names: Vec<String>,
}

impl Drop for Tokens {
    /// Unlinking is blocking I/O: on the blocking pool when there is a runtime (an order
    /// ends, or is dropped, inside the renewal task), inline otherwise.
    fn drop(&mut self) {
        let paths: Vec<PathBuf> = self.names.drain(..).map(|name| self.dir.join(name)).collect();
        let remove = move || {
            for path in paths {
                let _ = std::fs::remove_file(path);
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(remove)),
            Err(_) => remove(),
        }
    }
}

async fn http_port(State(acme): State<Acme>, method: Method, uri: Uri) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return (StatusCode::BAD_REQUEST, "This port only redirects to https.\n").into_response();
    }
    if let Some(token) = uri.path().strip_prefix("/.well-known/acme-challenge/") {
        let answer = if valid_token(token) {
            let path = acme.inner.challenges.join(token);
            blocking(move || std::fs::read(path).ok()).await
        } else {
            None
        };
        return match answer {
            Some(body) => {
                tracing::info!(token, "answered an ACME HTTP-01 challenge");
                ([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response()
            }
            None => (StatusCode::NOT_FOUND, "Unknown challenge.\n").into_response(),
        };
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let location = format!("{}{path}", acme.inner.https_base);
    (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, location)]).into_response()
}

/// The exclusive lock on a file (`flock`), released when dropped or when the process dies.
struct Lock {
    #[cfg(unix)]
    _file: nix::fcntl::Flock<std::fs::File>,
}

impl Lock {
    fn try_acquire(path: &Path) -> Result<Option<Lock>, String> {
        let mut options = std::fs::OpenOptions::new();
        options.create(true).truncate(false).write(true);
        // Shared by the processes of a SIGHUP hand-over, so not a TempFile; still never
        // opened through a symbolic link.
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600).custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC);
        }
        let file = options
            .open(path)
            .map_err(|e| format!("cannot open the lock file {}: {e}", path.display()))?;
        #[cfg(unix)]
        {
            match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                Ok(file) => Ok(Some(Lock { _file: file })),
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => Ok(None),
                Err((_, e)) => Err(format!("cannot lock {}: {e}", path.display())),
            }
        }
        #[cfg(not(unix))]
        {
            // No SIGHUP hand-over without Unix: one process at a time.
            drop(file);
            Ok(Some(Lock {}))
        }
    }
}

/// instant-acme's HTTP client, on hyper-util + hyper-rustls with our rustls config.
struct AcmeClient(HyperClient<hyper_rustls::HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>);

impl HttpClient for AcmeClient {
    fn request(
        &self,
        req: hyper::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let fut = self.0.request(req);
        Box::pin(async move {
            match fut.await {
                Ok(rsp) => Ok(BytesResponse::from(rsp)),
                Err(e) => Err(instant_acme::Error::Other(Box::new(e))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_slugs_and_tokens() {
        assert_eq!(
            slug("https://acme-v02.api.letsencrypt.org/directory"),
            "acme-v02.api.letsencrypt.org_directory"
        );
        assert_eq!(slug("https://127.0.0.1:14000/dir"), "127.0.0.1_14000_dir");
        assert!(valid_token("abc-DEF_123"));
        assert!(!valid_token("../etc/passwd") && !valid_token("") && !valid_token("a/b"));
    }

    #[test]
    fn renewal_when_a_third_is_left() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["example.com".into()]).unwrap();
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        params.not_before = start.into();
        params.not_after = (start + Duration::from_secs(90 * 86400)).into();
        let info = CertInfo::parse(params.self_signed(&key).unwrap().der()).unwrap();
        assert_eq!(renew_at(&info), start + Duration::from_secs(60 * 86400));
    }

    #[test]
    fn lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let held = Lock::try_acquire(&path).unwrap().expect("first lock");
        assert!(Lock::try_acquire(&path).unwrap().is_none(), "second lock while held");
        drop(held);
        assert!(Lock::try_acquire(&path).unwrap().is_some());
    }
}
