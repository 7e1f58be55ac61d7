//! Self-signed mode: a certificate generated on the first start, trusted by a client given
//! it and refused by one that trusts the public roots, over HTTP/1.1 and HTTP/2; reused by
//! the next start, and replaced once expired.

use std::sync::Arc;

use rcgen::{CertificateParams, KeyPair};
use rustls::ClientConfig;

use crate::support::https::{certs_in, client_config, https_get, provider, trusting};
use crate::support::{Launch, mode, tempdir};

#[tokio::test]
async fn selfsigned_serves_http1_and_http2_to_a_trusting_client_and_fails_an_untrusting_one() {
    let dir = tempdir();
    let certs = dir.path().join("certs");
    let server = Launch::serve(dir.path()).selfsigned(&certs).start_https();
    let cert = certs.join("selfsigned-cert.pem");
    assert!(
        server.log().iter().any(|l| l.contains("generated a self-signed certificate")),
        "{}",
        server.log().join("\n")
    );
    assert_eq!(mode(&certs), 0o700, "cert dir mode");
    assert_eq!(mode(&certs.join("selfsigned-key.pem")), 0o600, "key file mode");
    let mut handshakes = 0;
    for name in ["localhost", "127.0.0.1"] {
        let h1 = https_get(server.port, name, trusting(&cert, &["http/1.1"]), "/healthz/live")
            .await
            .unwrap();
        assert_eq!(
            (h1.status, h1.http, h1.tls),
            (200, hyper::Version::HTTP_11, rustls::ProtocolVersion::TLSv1_3),
            "{h1:?}"
        );
        // A page of the app (the home page: the notes need a signed-in user).
        let h2 =
            https_get(server.port, name, trusting(&cert, &["h2", "http/1.1"]), "/").await.unwrap();
        assert_eq!((h2.status, h2.http), (200, hyper::Version::HTTP_2), "{h2:?}");
        assert!(
            h2.body.contains("<html")
                || h2.body.contains("<!DOCTYPE")
                || h2.body.contains("<!doctype"),
            "{}",
            &h2.body[..200.min(h2.body.len())]
        );
        handshakes += 2;
    }
    // TLS 1.2 is still accepted (the minimum).
    let tls12 = client_config(&certs_in(&cert), &["h2"], &[&rustls::version::TLS12]);
    let r = https_get(server.port, "localhost", tls12, "/healthz/live").await.unwrap();
    assert_eq!((r.status, r.tls), (200, rustls::ProtocolVersion::TLSv1_2));
    handshakes += 1;
    // A client that does not trust it (the public web PKI roots): verification fails.
    let public = {
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let mut c = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        c.alpn_protocols = vec![b"h2".to_vec()];
        Arc::new(c)
    };
    let err = https_get(server.port, "localhost", public, "/healthz/live").await.unwrap_err();
    assert!(err.contains("invalid peer certificate") && err.contains("UnknownIssuer"), "{err}");
    eprintln!("selfsigned: {handshakes} successful handshakes, 1 refused by an untrusting client");
}

#[tokio::test]
async fn selfsigned_is_reused_and_an_expired_one_replaced() {
    let dir = tempdir();
    let certs = dir.path().join("certs");
    let launch = Launch::serve(dir.path()).selfsigned(&certs);
    let cert = certs.join("selfsigned-cert.pem");
    let mut first = launch.start_https();
    let bytes = std::fs::read(&cert).unwrap();
    let served = https_get(first.port, "localhost", trusting(&cert, &["h2"]), "/healthz/live")
        .await
        .unwrap();
    assert_eq!(first.terminate().code(), Some(0));

    let mut second = launch.start_https();
    assert_eq!(std::fs::read(&cert).unwrap(), bytes, "second start must reuse the certificate");
    assert!(
        second.log().iter().any(|l| l.contains("using the stored self-signed certificate")),
        "{}",
        second.log().join("\n")
    );
    let again = https_get(second.port, "localhost", trusting(&cert, &["h2"]), "/healthz/live")
        .await
        .unwrap();
    assert_eq!(again.chain[0], served.chain[0], "same certificate served after restart");
    assert_eq!(second.terminate().code(), Some(0));

    // Replace the stored pair with an expired certificate for the same names.
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]).unwrap();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(400);
    params.not_after = now - time::Duration::days(35);
    let expired = params.self_signed(&key).unwrap();
    std::fs::write(&cert, expired.pem()).unwrap();
    std::fs::write(certs.join("selfsigned-key.pem"), key.serialize_pem()).unwrap();
    let third = launch.start_https();
    assert!(
        third
            .log()
            .iter()
            .any(|l| l.contains("replacing the stored self-signed certificate")
                && l.contains("expired")),
        "{}",
        third.log().join("\n")
    );
    let renewed = std::fs::read(&cert).unwrap();
    assert_ne!(renewed, expired.pem().into_bytes());
    let r = https_get(third.port, "localhost", trusting(&cert, &["h2"]), "/healthz/live")
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_ne!(r.chain[0], expired.der().to_vec());
}
