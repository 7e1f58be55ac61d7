//! The certificate resolver every TLS listener uses: one certificate, replaceable while
//! serving (ACME renewal), read by every handshake.

use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Holds the certificate served to every client. Empty until acme mode obtains its first
/// certificate: handshakes fail until then (rustls sends an alert), plain HTTP is unaffected.
#[derive(Debug, Default)]
pub(crate) struct CertStore {
    // A std RwLock is enough: handshakes only clone the Arc, writes happen once per renewal.
    current: RwLock<Option<Arc<CertifiedKey>>>,
}

impl CertStore {
    pub(crate) fn with(key: CertifiedKey) -> Arc<CertStore> {
        let store = Arc::new(CertStore::default());
        store.set(key);
        store
    }

    /// Serves `key` to every handshake from now on; connections already open keep theirs.
    pub(crate) fn set(&self, key: CertifiedKey) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(key));
    }

    pub(crate) fn get(&self) -> Option<Arc<CertifiedKey>> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.get()
    }
}
