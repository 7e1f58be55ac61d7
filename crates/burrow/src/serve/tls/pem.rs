//! PEM certificate chains and private keys (PKCS#8, SEC1 and RSA/PKCS#1), turned into what
//! rustls serves. Error texts never contain key material.

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::certinfo::CertInfo;

/// Why a certificate / key pair cannot be served.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Problem {
    CertNotPem(String),
    NoCert,
    BadCert(String),
    KeyNotPem,
    NoKey,
    BadKey,
    Mismatch,
}

/// A certificate chain with its key, and what the leaf says about itself.
pub(crate) struct Loaded {
    pub(crate) key: CertifiedKey,
    pub(crate) info: CertInfo,
}

pub(crate) fn parse_chain(cert_pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Problem> {
    let certs = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Problem::CertNotPem(e.to_string()))?;
    if certs.is_empty() {
        return Err(Problem::NoCert);
    }
    Ok(certs)
}

pub(crate) fn load(cert_pem: &[u8], key_pem: &[u8]) -> Result<Loaded, Problem> {
    let certs = parse_chain(cert_pem)?;
    let info = CertInfo::parse(&certs[0]).map_err(Problem::BadCert)?;
    let key = match PrivateKeyDer::from_pem_slice(key_pem) {
        Ok(key) => key,
        Err(pem::Error::NoItemsFound) => return Err(Problem::NoKey),
        // The details of a PEM error could quote the file: say less.
        Err(_) => return Err(Problem::KeyNotPem),
    };
    let signing =
        super::provider().key_provider.load_private_key(key).map_err(|_| Problem::BadKey)?;
    let key = CertifiedKey::new(certs, signing);
    match key.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(Loaded { key, info })
        }
        Err(_) => Err(Problem::Mismatch),
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::CertNotPem(e) => write!(f, "the certificate is not valid PEM ({e})"),
            Problem::NoCert => {
                f.write_str("no certificate found (expected -----BEGIN CERTIFICATE-----)")
            }
            Problem::BadCert(e) => write!(f, "the certificate cannot be parsed: {e}"),
            Problem::KeyNotPem => f.write_str("the private key is not valid PEM"),
            Problem::NoKey => {
                f.write_str("no private key found (expected a PKCS#8, SEC1 or RSA PEM key)")
            }
            Problem::BadKey => {
                f.write_str("the private key cannot be used (unsupported type or corrupt)")
            }
            Problem::Mismatch => f.write_str("the private key does not match the certificate"),
        }
    }
}
