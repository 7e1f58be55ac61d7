//! TLS for the listeners the server creates: rustls only (ring), TLS 1.2 minimum and 1.3
//! preferred, ALPN `h2` and `http/1.1`.
//!
//! Every mode serves through one [`CertStore`] (a certificate resolver whose certificate
//! can be replaced while serving), so ACME renewal swaps certificates without a restart and
//! manual / self-signed certificates use the same path with a certificate that never
//! changes. Modes:
//!
//! - [`manual`]: PEM files read on every start (a SIGHUP restart installs renewed files);
//! - [`selfsigned`]: generated once into the cert dir and reused;
//! - [`acme`]: obtained by HTTP-01 from an ACME CA, cached in the cert dir, renewed in the
//!   background.

pub(crate) mod acme;
pub(crate) mod certinfo;
pub(crate) mod manual;
pub(crate) mod pem;
pub(crate) mod resolver;
pub(crate) mod selfsigned;

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use tokio_rustls::TlsAcceptor;

use crate::settings::{Settings, TlsMode};
pub(crate) use resolver::CertStore;

/// The TLS material of a start: what the app listeners accept with, and the ACME manager
/// (challenge listener, background ordering and renewal) in acme mode.
pub(crate) struct Tls {
    pub(crate) acceptor: Option<TlsAcceptor>,
    pub(crate) acme: Option<acme::Acme>,
}

/// The one crypto provider: ring (no aws-lc, no OpenSSL).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads or creates the certificate for the TLS mode. Runs after the listeners exist and
/// before the database is opened, so a bad certificate file stops the start with nothing
/// written. In acme mode only the cache is read here; ordering happens once serving (the
/// CA must be able to reach the challenge listener).
pub(crate) fn prepare(settings: &Settings) -> Result<Tls, String> {
    let tls = &settings.tls;
    match tls.mode {
        TlsMode::Off => Ok(Tls { acceptor: None, acme: None }),
        TlsMode::Manual => {
            let (cert, key) = (
                tls.cert_file.as_deref().expect("validated"),
                tls.key_file.as_deref().expect("validated"),
            );
            let loaded = manual::load(cert, key)?;
            tracing::info!(
                cert_file = %cert.display(),
                names = %loaded.info.names().join(","),
                not_after = %certinfo::format_time(loaded.info.not_after),
                "TLS certificate loaded"
            );
            if loaded.info.expired(std::time::SystemTime::now()) {
                tracing::warn!(
                    cert_file = %cert.display(),
                    "the TLS certificate has expired; clients will refuse it"
                );
            }
            Ok(Tls { acceptor: Some(acceptor(CertStore::with(loaded.key))), acme: None })
        }
        TlsMode::SelfSigned => {
            let key = selfsigned::load_or_generate(&tls.cert_dir, &settings.host.name())?;
            Ok(Tls { acceptor: Some(acceptor(CertStore::with(key))), acme: None })
        }
        TlsMode::Acme => {
            let acme = acme::Acme::prepare(settings)?;
            Ok(Tls { acceptor: Some(acceptor(acme.store())), acme: Some(acme) })
        }
    }
}

/// The server configuration all TLS modes share.
pub(crate) fn server_config(store: Arc<CertStore>) -> Arc<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(provider())
        // Listed in preference order: 1.3 whenever the client offers it.
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

fn acceptor(store: Arc<CertStore>) -> TlsAcceptor {
    TlsAcceptor::from(server_config(store))
}
