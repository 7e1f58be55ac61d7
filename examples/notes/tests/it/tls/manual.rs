//! Manual mode: the operator's certificate chain and key (PKCS#8, SEC1, RSA), every bad
//! file refused at start-up naming it, and renewed files going live on SIGHUP.

use std::path::Path;
use std::process::{Command, Stdio};

use super::pki::make_pki;
use crate::support::https::{https_get, trusting};
use crate::support::procs::{Cleanup, hand_over, read_pid_file, with_pid_file};
use crate::support::tools::require_tool;
use crate::support::{Launch, tempdir};

/// A server in manual mode, with the certificate chain `cert` and its key `key`.
fn manual(dir: &Path, cert: &Path, key: &Path) -> Launch {
    Launch::serve(dir)
        .args(["--tls-mode", "manual", "--tls-cert-file"])
        .arg(cert)
        .arg("--tls-key-file")
        .arg(key)
}

#[tokio::test]
async fn manual_serves_the_given_chain_with_pkcs8_sec1_and_rsa_keys() {
    require_tool("openssl", "openssl");
    let dir = tempdir();
    // PKCS#8 key, full chain (leaf + CA) in the certificate file.
    let pki = make_pki(dir.path(), "p8", &["localhost", "127.0.0.1"]);
    let server = manual(dir.path(), &pki.chain, &pki.key).start_https();
    let r = https_get(
        server.port,
        "localhost",
        trusting(&pki.ca, &["h2", "http/1.1"]),
        "/healthz/live",
    )
    .await
    .unwrap();
    assert_eq!(
        (r.status, r.http, r.chain.len()),
        (200, hyper::Version::HTTP_2, 2),
        "leaf and CA presented"
    );
    assert_eq!(r.chain[0], pki.leaf_der);
    drop(server);

    // SEC1 ("EC PRIVATE KEY") and RSA ("RSA PRIVATE KEY", PKCS#1) keys made by openssl.
    for (kind, genkey) in [
        ("sec1", "openssl ecparam -name prime256v1 -genkey -noout -out KEY"),
        ("rsa", "openssl genrsa -traditional -out KEY 2048"),
    ] {
        let key = dir.path().join(format!("{kind}-key.pem"));
        let cert = dir.path().join(format!("{kind}-cert.pem"));
        let script = format!(
            "{} && openssl req -x509 -key {} -out {} -days 30 -subj /CN=localhost \
             -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
             -addext basicConstraints=critical,CA:FALSE",
            genkey.replace("KEY", key.to_str().unwrap()),
            key.display(),
            cert.display()
        );
        let status = Command::new("sh")
            .args(["-c", &script])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "openssl failed for {kind}");
        let head = std::fs::read_to_string(&key).unwrap();
        let expected = if kind == "rsa" { "BEGIN RSA PRIVATE KEY" } else { "BEGIN EC PRIVATE KEY" };
        assert!(head.contains(expected), "{kind} key is not in the expected format");
        let server = manual(dir.path(), &cert, &key).start_https();
        let r =
            https_get(server.port, "localhost", trusting(&cert, &["http/1.1"]), "/healthz/live")
                .await
                .unwrap();
        assert_eq!((r.status, r.http), (200, hyper::Version::HTTP_11), "{kind}");
    }
}

#[test]
fn manual_bad_files_stop_the_start_naming_the_file() {
    let dir = tempdir();
    let good = make_pki(dir.path(), "good", &["localhost"]);
    let other = make_pki(dir.path(), "other", &["localhost"]);
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\n!!!! not base64 !!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "nothing PEM in here\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let a_dir = dir.path().join("a-directory");
    std::fs::create_dir(&a_dir).unwrap();
    let key_text = std::fs::read_to_string(&good.key).unwrap();
    let key_line = key_text.lines().nth(1).unwrap().to_string();
    let cases: Vec<(&str, &Path, &Path, &Path, &str)> = vec![
        ("missing certificate file", &missing, &good.key, &missing, "--tls-cert-file"),
        ("missing key file", &good.chain, &missing, &missing, "--tls-key-file"),
        ("unreadable certificate (a directory)", &a_dir, &good.key, &a_dir, "--tls-cert-file"),
        ("bad PEM certificate", &garbage, &good.key, &garbage, "--tls-cert-file"),
        ("no certificate in the file", &good.key, &good.key, &good.key, "--tls-cert-file"),
        ("no certificate (not PEM at all)", &empty, &good.key, &empty, "--tls-cert-file"),
        ("no key in the key file", &good.chain, &good.chain, &good.chain, "--tls-key-file"),
        ("bad PEM key", &good.chain, &garbage, &garbage, "--tls-key-file"),
        ("key does not match", &good.chain, &other.key, &other.key, "--tls-key-file"),
    ];
    for (what, cert, key, named, flag) in cases {
        let out = manual(dir.path(), cert, key).run();
        assert_eq!(out.code(), Some(2), "{what}: exit code; stderr:\n{}", out.stderr);
        let errors: Vec<&str> = out.stderr.lines().filter(|l| l.contains("error:")).collect();
        assert_eq!(errors.len(), 1, "{what}: one error line expected:\n{}", out.stderr);
        assert!(
            errors[0].contains(&named.display().to_string()) && errors[0].contains(flag),
            "{what}: {}",
            errors[0]
        );
        assert!(!out.stderr.contains(&key_line), "{what}: key material in the output");
        assert!(!dir.path().join("app.db").exists(), "{what}: the database was created");
        eprintln!("{what}: {}", errors[0]);
    }
}

#[tokio::test]
async fn manual_renewed_files_go_live_on_sighup() {
    let dir = tempdir();
    let old = make_pki(dir.path(), "old", &["localhost"]);
    let new = make_pki(dir.path(), "new", &["localhost"]);
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::copy(&old.chain, &cert).unwrap();
    std::fs::copy(&old.key, &key).unwrap();
    let pid_file = dir.path().join("server.pid");
    let mut server = with_pid_file(manual(dir.path(), &cert, &key), &pid_file).start_https();
    // After the SIGHUP the serving process is not the test's child.
    let _cleanup = Cleanup::new(dir.path());
    let r = https_get(server.port, "localhost", trusting(&old.ca, &["h2"]), "/healthz/live")
        .await
        .unwrap();
    assert_eq!(r.chain[0], old.leaf_der);
    // The operator installs the renewed pair and reloads.
    std::fs::copy(&new.chain, &cert).unwrap();
    std::fs::copy(&new.key, &key).unwrap();
    hand_over(&mut server);
    assert_ne!(read_pid_file(&pid_file).expect("a PID in the PID file"), server.pid());
    let r = https_get(server.port, "localhost", trusting(&new.ca, &["h2"]), "/healthz/live")
        .await
        .unwrap();
    assert_eq!(
        (r.status, &r.chain[0]),
        (200, &new.leaf_der),
        "the new process serves the renewed certificate"
    );
}
