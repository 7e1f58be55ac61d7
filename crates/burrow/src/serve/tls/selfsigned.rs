//! selfsigned mode: an ECDSA P-256 certificate for the host, localhost, 127.0.0.1 and ::1,
//! valid 365 days, stored in the cert dir as `selfsigned-cert.pem` / `selfsigned-key.pem`
//! and reused on later starts (clients that pinned or trusted it keep working). A stored
//! certificate that expired, does not cover `--host`, or does not match its key is
//! replaced by a new one.

use std::net::IpAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};
use rustls::sign::CertifiedKey;

use super::pem;
use crate::files::{ensure_private_dir, write_atomic};

pub(crate) const CERT_FILE: &str = "selfsigned-cert.pem";
pub(crate) const KEY_FILE: &str = "selfsigned-key.pem";
const VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

/// The names the certificate is for: the host (unless empty or already listed), then the
/// loopback names a developer connects with.
pub(crate) fn names(host: &str) -> Vec<String> {
    let host = host.to_ascii_lowercase();
    let mut names = Vec::new();
    let unspecified = host.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified());
    if !host.is_empty() && !unspecified {
        names.push(host);
    }
    for name in ["localhost", "127.0.0.1", "::1"] {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    names
}

/// Reuses the stored certificate when it is still good for `host`, else generates one.
pub(crate) fn load_or_generate(dir: &Path, host: &str) -> Result<CertifiedKey, String> {
    // Also when the certificate is reused: a key in a directory others can enter is no
    // longer private.
    ensure_private_dir(dir, "--tls-cert-dir")?;
    let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
    if cert_path.exists() && key_path.exists() {
        let read = |path: &Path| {
            std::fs::read(path)
                .map_err(|e| format!("cannot read {} (--tls-cert-dir): {e}", path.display()))
        };
        let (cert_pem, key_pem) = (read(&cert_path)?, read(&key_path)?);
        let replace_because = match pem::load(&cert_pem, &key_pem) {
            Ok(loaded) if loaded.info.expired(SystemTime::now()) => {
                format!("it expired at {}", super::certinfo::format_time(loaded.info.not_after))
            }
            Ok(loaded) if !names(host).iter().all(|n| loaded.info.covers(n)) => {
                format!("it is for {} and not for host '{host}'", loaded.info.names().join(", "))
            }
            Ok(loaded) => {
                tracing::info!(
                    cert_file = %cert_path.display(),
                    names = %loaded.info.names().join(","),
                    not_after = %super::certinfo::format_time(loaded.info.not_after),
                    sha256 = %fingerprint(&loaded.key),
                    "using the stored self-signed certificate"
                );
                return Ok(loaded.key);
            }
            Err(problem) => format!("it cannot be used: {problem}"),
        };
        tracing::warn!(
            cert_file = %cert_path.display(),
            "replacing the stored self-signed certificate: {replace_because}"
        );
    }
    generate(dir, host)
}

fn generate(dir: &Path, host: &str) -> Result<CertifiedKey, String> {
    let names = names(host);
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| format!("cannot generate a key: {e}"))?;
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, names[0].clone());
    subject.push(DnType::OrganizationName, "Burrow self-signed");
    params.distinguished_name = subject;
    params.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => n
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|e| format!("'{n}' cannot be a certificate name: {e}")),
        })
        .collect::<Result<_, _>>()?;
    // A minute back, for clients whose clock is slightly behind.
    let now = SystemTime::now() - Duration::from_secs(60);
    params.not_before = now.into();
    params.not_after = (now + VALIDITY).into();
    let cert = params
        .self_signed(&key)
        .map_err(|e| format!("cannot create a self-signed certificate: {e}"))?;
    let (cert_path, key_path) = (dir.join(CERT_FILE), dir.join(KEY_FILE));
    let key_pem = key.serialize_pem();
    write_atomic(&key_path, key_pem.as_bytes(), 0o600)
        .map_err(|e| format!("cannot write {} (--tls-cert-dir): {e}", key_path.display()))?;
    write_atomic(&cert_path, cert.pem().as_bytes(), 0o644)
        .map_err(|e| format!("cannot write {} (--tls-cert-dir): {e}", cert_path.display()))?;
    let loaded = pem::load(cert.pem().as_bytes(), key_pem.as_bytes())
        .map_err(|e| format!("generated certificate unusable: {e}"))?;
    tracing::info!(
        cert_file = %cert_path.display(),
        names = %names.join(","),
        not_after = %super::certinfo::format_time(loaded.info.not_after),
        sha256 = %fingerprint(&loaded.key),
        "generated a self-signed certificate"
    );
    Ok(loaded.key)
}

/// SHA-256 of the leaf certificate, for operators who compare it with what a browser shows.
fn fingerprint(key: &CertifiedKey) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, key.cert[0].as_ref());
    digest.as_ref().iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_always_include_loopback_once() {
        assert_eq!(names("example.com"), ["example.com", "localhost", "127.0.0.1", "::1"]);
        assert_eq!(names("localhost"), ["localhost", "127.0.0.1", "::1"]);
        assert_eq!(names("::1"), ["::1", "localhost", "127.0.0.1"]);
        assert_eq!(names(""), ["localhost", "127.0.0.1", "::1"]);
        assert_eq!(names("0.0.0.0"), ["localhost", "127.0.0.1", "::1"]);
    }

    #[test]
    fn generates_then_reuses_then_replaces_for_another_host() {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        let first = load_or_generate(&certs, "app.example").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&certs), 0o700);
            assert_eq!(mode(&certs.join(KEY_FILE)), 0o600);
        }
        let again = load_or_generate(&certs, "app.example").unwrap();
        assert_eq!(first.cert[0], again.cert[0]);
        let other = load_or_generate(&certs, "other.example").unwrap();
        assert_ne!(first.cert[0], other.cert[0]);
    }
}
