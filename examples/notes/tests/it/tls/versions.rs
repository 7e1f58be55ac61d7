//! TLS versions: 1.1 refused (openssl s_client offering it), 1.2 accepted.

use std::process::{Command, Stdio};

use crate::support::tools::require_tool;
use crate::support::{Launch, tempdir};

#[tokio::test]
async fn a_tls_1_1_client_is_refused_and_tls_1_2_accepted() {
    require_tool("openssl", "openssl");
    let dir = tempdir();
    let server = Launch::serve(dir.path()).selfsigned(&dir.path().join("certs")).start_https();
    let s_client = |version: &str| {
        // SECLEVEL=0: let the client offer TLS 1.1 at all; the server must be the one refusing.
        let out = Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{}", server.port),
                "-servername",
                "localhost",
                version,
                "-cipher",
                "DEFAULT:@SECLEVEL=0",
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run openssl s_client");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, text) = s_client("-tls1_1");
    assert!(!ok, "TLS 1.1 handshake succeeded:\n{text}");
    assert!(
        text.contains("alert") && text.contains("no peer certificate available"),
        "expected an alert and no certificate:\n{text}"
    );
    let (ok, text) = s_client("-tls1_2");
    assert!(ok && text.contains("TLSv1.2"), "TLS 1.2 handshake failed:\n{text}");
}
