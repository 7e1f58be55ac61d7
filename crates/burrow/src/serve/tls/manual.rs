//! manual mode: a PEM certificate chain and private key given by the operator. Read on
//! every start, so a SIGHUP restart is how a renewed certificate goes live without
//! downtime (the old process keeps serving if the new files are bad).

use std::path::Path;

use super::pem::{self, Loaded, Problem};

/// Loads the pair, or one line naming the file and its setting.
pub(crate) fn load(cert_file: &Path, key_file: &Path) -> Result<Loaded, String> {
    let cert_at = || format!("certificate file {} (--tls-cert-file)", cert_file.display());
    let key_at = || format!("private key file {} (--tls-key-file)", key_file.display());
    let cert_pem =
        std::fs::read(cert_file).map_err(|e| format!("cannot read {}: {e}", cert_at()))?;
    let key_pem = std::fs::read(key_file).map_err(|e| format!("cannot read {}: {e}", key_at()))?;
    pem::load(&cert_pem, &key_pem).map_err(|problem| match problem {
        Problem::CertNotPem(_) | Problem::NoCert | Problem::BadCert(_) => {
            format!("{}: {problem}", cert_at())
        }
        Problem::KeyNotPem | Problem::NoKey | Problem::BadKey => format!("{}: {problem}", key_at()),
        Problem::Mismatch => {
            format!(
                "the private key in {} does not match the certificate in {}",
                key_at(),
                cert_at()
            )
        }
    })
}
