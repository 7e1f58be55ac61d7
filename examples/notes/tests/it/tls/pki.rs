//! A test PKI: PEM files of a CA and of a certificate it signed.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A CA and a leaf certificate it signed, written as PEM files into `dir`.
pub struct Pki {
    pub ca: PathBuf,
    /// The leaf, then the CA.
    pub chain: PathBuf,
    /// The leaf's key (PKCS#8).
    pub key: PathBuf,
    pub leaf_der: Vec<u8>,
}

pub fn make_pki(dir: &Path, prefix: &str, names: &[&str]) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, format!("{prefix} test CA"));
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let pki = Pki {
        ca: dir.join(format!("{prefix}-ca.pem")),
        chain: dir.join(format!("{prefix}-chain.pem")),
        key: dir.join(format!("{prefix}-key.pem")),
        leaf_der: leaf.der().to_vec(),
    };
    std::fs::write(&pki.ca, ca_cert.pem()).unwrap();
    std::fs::write(&pki.chain, format!("{}{}", leaf.pem(), ca_cert.pem())).unwrap();
    std::fs::write(&pki.key, leaf_key.serialize_pem()).unwrap();
    pki
}
