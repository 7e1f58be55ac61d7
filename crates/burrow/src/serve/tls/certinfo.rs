//! What the server needs to know about a certificate: its validity period and the names
//! it covers (to reuse a self-signed certificate, and to time ACME renewals).

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use x509_parser::extensions::GeneralName;

#[derive(Clone, Debug)]
pub(crate) struct CertInfo {
    pub(crate) not_before: SystemTime,
    pub(crate) not_after: SystemTime,
    dns: Vec<String>,
    ips: Vec<IpAddr>,
}

impl CertInfo {
    /// Parses a DER certificate.
    pub(crate) fn parse(der: &[u8]) -> Result<CertInfo, String> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| format!("not an X.509 certificate ({e})"))?;
        let time =
            |t: i64| if t >= 0 { UNIX_EPOCH + Duration::from_secs(t as u64) } else { UNIX_EPOCH };
        let validity = cert.validity();
        let mut info = CertInfo {
            not_before: time(validity.not_before.timestamp()),
            not_after: time(validity.not_after.timestamp()),
            dns: Vec::new(),
            ips: Vec::new(),
        };
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => info.dns.push(dns.to_ascii_lowercase()),
                    GeneralName::IPAddress(bytes) => match bytes.len() {
                        4 => info
                            .ips
                            .push(IpAddr::from(<[u8; 4]>::try_from(*bytes).expect("4 bytes"))),
                        16 => info
                            .ips
                            .push(IpAddr::from(<[u8; 16]>::try_from(*bytes).expect("16 bytes"))),
                        _ => {}
                    },
                    _ => {}
                }
            }
        }
        Ok(info)
    }

    pub(crate) fn expired(&self, now: SystemTime) -> bool {
        now >= self.not_after
    }

    pub(crate) fn lifetime(&self) -> Duration {
        self.not_after.duration_since(self.not_before).unwrap_or_default()
    }

    /// The subject alternative names, for logs.
    pub(crate) fn names(&self) -> Vec<String> {
        self.dns.iter().cloned().chain(self.ips.iter().map(IpAddr::to_string)).collect()
    }

    /// True when a client connecting to `host` accepts this certificate's names (exact DNS
    /// name, a `*.` wildcard one label deep, or the IP address).
    pub(crate) fn covers(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.ips.contains(&ip);
        }
        self.dns.iter().any(|name| match name.strip_prefix("*.") {
            Some(suffix) => host
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
            None => *name == host,
        })
    }
}

/// RFC 3339 in UTC, for logs.
pub(crate) fn format_time(t: SystemTime) -> String {
    let t = time::OffsetDateTime::from(t);
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_validity_of_a_generated_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![
            "example.com".into(),
            "*.apps.example.com".into(),
            "127.0.0.1".into(),
        ])
        .unwrap();
        let cert = params.self_signed(&key).unwrap();
        let info = CertInfo::parse(cert.der()).unwrap();
        assert!(
            info.covers("example.com")
                && info.covers("EXAMPLE.com")
                && info.covers("x.apps.example.com")
        );
        assert!(
            info.covers("127.0.0.1")
                && !info.covers("::1")
                && !info.covers("a.b.apps.example.com")
                && !info.covers("other.com")
        );
        assert!(!info.expired(SystemTime::now()));
        assert!(info.lifetime() > Duration::from_secs(86400));
    }
}
