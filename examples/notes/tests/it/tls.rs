//! TLS of the `server` binary (docs/tls.md), with real handshakes: self-signed (trusted
//! and untrusted clients, HTTP/1.1 and HTTP/2, reuse, replacement of an expired
//! certificate), manual files (chain, PKCS#8 / SEC1 / RSA keys, every bad-file case, a
//! renewed certificate installed by SIGHUP), TLS 1.1 refused (openssl s_client), and ACME
//! end to end against Debian's `pebble` on loopback: HTTP-01, redirect, cache reuse,
//! renewal while serving, renewal failing while the CA is down (cached certificate kept,
//! renewed once it is back), external account binding (right, missing and wrong key;
//! backoff 10 s then 20 s), SIGHUP hand-over of both listeners.
//!
//! Tools (`pebble`, `pebble-challtestsrv`, `openssl`) are installed with apt-get when
//! missing; a test fails loudly if that is impossible, it never skips.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

use crate::support::{Launch, Server, client, signal, tempdir};

// ---------------------------------------------------------------------------------------
// A TLS client built by hand: which certificate it trusts, which ALPN it offers, and what
// the handshake negotiated are all visible to the test.

/// What one HTTPS request saw.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: hyper::HeaderMap,
    http: hyper::Version,
    tls: rustls::ProtocolVersion,
    /// DER of every certificate the server presented (leaf first).
    chain: Vec<Vec<u8>>,
    body: String,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client trusting exactly `roots` (PEM files' certificates), offering `alpn`.
fn client_config(
    roots: &[CertificateDer<'static>],
    alpn: &[&str],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).expect("trust anchor");
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    // Every connection a full handshake: the certificate a client sees is the one served now.
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

pub(crate) fn trusting(pem_file: &Path, alpn: &[&str]) -> Arc<ClientConfig> {
    client_config(&certs_in(pem_file), alpn, rustls::DEFAULT_VERSIONS)
}

fn certs_in(pem_file: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(pem_file)
        .unwrap_or_else(|e| panic!("{}: {e}", pem_file.display()))
        .map(|c| c.unwrap())
        .collect()
}

/// GET `path` over a new TLS connection to 127.0.0.1:`port`, presenting `name` as SNI and
/// verifying the certificate for it. HTTP/2 when ALPN picked h2, else HTTP/1.1.
pub(crate) async fn https_get(
    port: u16,
    name: &str,
    config: Arc<ClientConfig>,
    path: &str,
) -> Result<Reply, String> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let server_name = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
    let tls = tokio::time::timeout(
        Duration::from_secs(20),
        tokio_rustls::TlsConnector::from(config).connect(server_name, tcp),
    )
    .await
    .map_err(|_| "handshake timed out".to_string())?
    .map_err(|e| format!("handshake: {e}"))?;
    let (_, conn) = tls.get_ref();
    let tls_version = conn.protocol_version().expect("negotiated version");
    let h2 = conn.alpn_protocol() == Some(b"h2");
    let chain: Vec<Vec<u8>> =
        conn.peer_certificates().unwrap_or_default().iter().map(|c| c.as_ref().to_vec()).collect();
    let io = TokioIo::new(tls);
    let authority = format!("{name}:{port}");
    let response = if h2 {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| format!("h2: {e}"))?;
        tokio::spawn(conn);
        let request = hyper::Request::get(format!("https://{authority}{path}"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        send.send_request(request).await.map_err(|e| format!("h2 request: {e}"))?
    } else {
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(io).await.map_err(|e| format!("h1: {e}"))?;
        tokio::spawn(conn);
        let request = hyper::Request::get(path)
            .header("host", &authority)
            .body(Empty::<Bytes>::new())
            .unwrap();
        send.send_request(request).await.map_err(|e| format!("h1 request: {e}"))?
    };
    let status = response.status().as_u16();
    let http = response.version();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.map_err(|e| format!("body: {e}"))?.to_bytes();
    Ok(Reply {
        status,
        headers,
        http,
        tls: tls_version,
        chain,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

// ---------------------------------------------------------------------------------------
// Starting servers and tools

/// Starts `launch` and waits for `listening on https://127.0.0.1:PORT` and `ready`.
pub(crate) fn start_https(launch: &Launch) -> Server {
    let mut server = launch.spawn();
    const MARK: &str = "listening on https://127.0.0.1:";
    let line = server.wait_for_log("listening on https://127.0.0.1:PORT", |l| l.contains(MARK));
    let digits: String = line[line.find(MARK).unwrap() + MARK.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    server.port = digits.parse().unwrap();
    server.wait_for_log("ready", |l| l.contains("ready pid="));
    server
}

/// Installs the Debian package providing `tool` when it is missing, once; panics if that
/// fails (a missing tool is a failure, never a skip).
fn require_tool(tool: &str, package: &str) {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let found = || {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if found() {
        return;
    }
    eprintln!("installing {package} for {tool}");
    let _ = Command::new("apt-get").args(["update", "-qq"]).status();
    let _ = Command::new("apt-get")
        .args(["install", "-y", "-qq", package])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status();
    assert!(
        found(),
        "`{tool}` is required by the TLS tests and could not be installed (apt-get install {package})"
    );
}

/// A port nobody listens on right now (bound on all interfaces, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("[::]:0")
        .or_else(|_| std::net::TcpListener::bind("0.0.0.0:0"))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} does not listen on port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process killed (by its own PID) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A CA and a leaf certificate it signed, written as PEM files into `dir`.
struct Pki {
    ca: PathBuf,
    chain: PathBuf,
    key: PathBuf,
    leaf_der: Vec<u8>,
}

fn make_pki(dir: &Path, prefix: &str, names: &[&str]) -> Pki {
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

// ---------------------------------------------------------------------------------------
// selfsigned

#[tokio::test]
async fn selfsigned_serves_http1_and_http2_to_a_trusting_client_and_fails_an_untrusting_one() {
    let dir = tempdir();
    let certs = dir.path().join("certs");
    let server = start_https(
        &Launch::serve(dir.path()).args(["--tls-mode", "selfsigned", "--tls-cert-dir"]).arg(&certs),
    );
    let cert = certs.join("selfsigned-cert.pem");
    assert!(
        server.log().iter().any(|l| l.contains("generated a self-signed certificate")),
        "{}",
        server.log().join("\n")
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&certs), 0o700, "cert dir mode");
        assert_eq!(mode(&certs.join("selfsigned-key.pem")), 0o600, "key file mode");
    }
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
        let h2 = https_get(server.port, name, trusting(&cert, &["h2", "http/1.1"]), "/notes")
            .await
            .unwrap();
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
    let launch =
        Launch::serve(dir.path()).args(["--tls-mode", "selfsigned", "--tls-cert-dir"]).arg(&certs);
    let cert = certs.join("selfsigned-cert.pem");
    let mut first = start_https(&launch);
    let bytes = std::fs::read(&cert).unwrap();
    let served = https_get(first.port, "localhost", trusting(&cert, &["h2"]), "/healthz/live")
        .await
        .unwrap();
    assert_eq!(first.terminate().code(), Some(0));

    let mut second = start_https(&launch);
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
    let third = start_https(&launch);
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

// ---------------------------------------------------------------------------------------
// TLS versions

#[tokio::test]
async fn a_tls_1_1_client_is_refused_and_tls_1_2_accepted() {
    require_tool("openssl", "openssl");
    let dir = tempdir();
    let server = start_https(
        &Launch::serve(dir.path())
            .args(["--tls-mode", "selfsigned", "--tls-cert-dir"])
            .arg(dir.path().join("certs")),
    );
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

// ---------------------------------------------------------------------------------------
// manual

#[tokio::test]
async fn manual_serves_the_given_chain_with_pkcs8_sec1_and_rsa_keys() {
    require_tool("openssl", "openssl");
    let dir = tempdir();
    // PKCS#8 key, full chain (leaf + CA) in the certificate file.
    let pki = make_pki(dir.path(), "p8", &["localhost", "127.0.0.1"]);
    let server = start_https(
        &Launch::serve(dir.path())
            .args(["--tls-mode", "manual", "--tls-cert-file"])
            .arg(&pki.chain)
            .arg("--tls-key-file")
            .arg(&pki.key),
    );
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
            "{} && openssl req -x509 -key {} -out {} -days 30 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -addext basicConstraints=critical,CA:FALSE",
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
        let server = start_https(
            &Launch::serve(dir.path())
                .args(["--tls-mode", "manual", "--tls-cert-file"])
                .arg(&cert)
                .arg("--tls-key-file")
                .arg(&key),
        );
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
        let out = Launch::serve(dir.path())
            .args(["--tls-mode", "manual", "--tls-cert-file"])
            .arg(cert)
            .arg("--tls-key-file")
            .arg(key)
            .run();
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

/// Removes `server.pid`'s process on drop: after a SIGHUP, the serving process is not
/// the test's child.
struct KillPidFile(PathBuf);

impl Drop for KillPidFile {
    fn drop(&mut self) {
        let Some(pid) =
            std::fs::read_to_string(&self.0).ok().and_then(|p| p.trim().parse::<u32>().ok())
        else {
            return;
        };
        signal(pid, "TERM");
        let deadline = Instant::now() + Duration::from_secs(15);
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        signal(pid, "KILL");
    }
}

fn pid_in(file: &Path) -> u32 {
    std::fs::read_to_string(file).unwrap().trim().parse().unwrap()
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
    let _cleanup = KillPidFile(pid_file.clone());
    let mut server = start_https(
        &Launch::serve(dir.path())
            .args(["--tls-mode", "manual", "--detach", "false", "--tls-cert-file"])
            .arg(&cert)
            .arg("--tls-key-file")
            .arg(&key)
            .arg("--pid-file")
            .arg(&pid_file),
    );
    let r = https_get(server.port, "localhost", trusting(&old.ca, &["h2"]), "/healthz/live")
        .await
        .unwrap();
    assert_eq!(r.chain[0], old.leaf_der);
    // The operator installs the renewed pair and reloads.
    std::fs::copy(&new.chain, &cert).unwrap();
    std::fs::copy(&new.key, &key).unwrap();
    let mark = server.log_len();
    assert!(signal(server.pid(), "HUP"));
    server.wait_for_log_after(mark, "new process ready", |l| {
        l.contains("new process") && l.contains("ready")
    });
    assert_eq!(
        server.wait_exit(Duration::from_secs(30)).and_then(|s| s.code()),
        Some(0),
        "old process exit"
    );
    assert_ne!(pid_in(&pid_file), server.pid());
    let r = https_get(server.port, "localhost", trusting(&new.ca, &["h2"]), "/healthz/live")
        .await
        .unwrap();
    assert_eq!(
        (r.status, &r.chain[0]),
        (200, &new.leaf_der),
        "the new process serves the renewed certificate"
    );
}

// ---------------------------------------------------------------------------------------
// ACME against pebble

const DOMAIN: &str = "burrow.test";

/// A private ACME CA on loopback: `pebble` with its own API certificate (generated here:
/// the package ships none), `pebble-challtestsrv` as its DNS server resolving every name
/// to 127.0.0.1, and validation (HTTP-01) against `http_port`.
struct Pebble {
    /// `None` while stopped ([`Pebble::stop`]).
    pebble: Option<Proc>,
    _dns: Proc,
    dir: PathBuf,
    config_file: PathBuf,
    dns_port: u16,
    api_port: u16,
    management_port: u16,
    /// CA of pebble's API certificate: what the server gets as --tls-acme-ca-root.
    api_ca: PathBuf,
}

impl Pebble {
    fn start(dir: &Path, http_port: u16, validity_s: Option<u64>) -> Pebble {
        let mut extra = serde_json::json!({});
        if let Some(v) = validity_s {
            extra["certificateValidityPeriod"] = v.into();
        }
        Pebble::start_with(dir, http_port, extra)
    }

    /// Like [`Pebble::start`], with `extra` merged into pebble's configuration object.
    fn start_with(dir: &Path, http_port: u16, extra: serde_json::Value) -> Pebble {
        require_tool("pebble", "pebble");
        require_tool("pebble-challtestsrv", "pebble");
        let dir = dir.join("pebble");
        std::fs::create_dir_all(&dir).unwrap();
        let api = make_pki(&dir, "api", &["localhost", "127.0.0.1"]);
        let leaf_only = dir.join("api-cert.pem");
        let chain = std::fs::read_to_string(&api.chain).unwrap();
        let end = "-----END CERTIFICATE-----";
        std::fs::write(&leaf_only, &chain[..chain.find(end).unwrap() + end.len()]).unwrap();
        let (api_port, management_port, dns_port, chall_mgmt, tls_port) =
            (free_port(), free_port(), free_port(), free_port(), free_port());
        let mut config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{api_port}"),
            "managementListenAddress": format!("127.0.0.1:{management_port}"),
            "certificate": leaf_only, "privateKey": api.key,
            "httpPort": http_port, "tlsPort": tls_port,
            "ocspResponderURL": "", "externalAccountBindingRequired": false,
        }});
        for (key, value) in extra.as_object().expect("a JSON object") {
            config["pebble"][key] = value.clone();
        }
        let config_file = dir.join("pebble-config.json");
        std::fs::write(&config_file, config.to_string()).unwrap();
        let log = |name: &str| std::fs::File::create(dir.join(name)).unwrap();
        let dns = Command::new("pebble-challtestsrv")
            .args([
                "-dns01",
                &format!("127.0.0.1:{dns_port}"),
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-defaultIPv6",
                "",
            ])
            .args(["-management", &format!("127.0.0.1:{chall_mgmt}")])
            .stdout(log("challtestsrv.log"))
            .stderr(log("challtestsrv.err"))
            .spawn()
            .expect("start pebble-challtestsrv");
        let dns = Proc(dns);
        wait_port(chall_mgmt, "pebble-challtestsrv");
        let mut pebble = Pebble {
            pebble: None,
            _dns: dns,
            dir,
            config_file,
            dns_port,
            api_port,
            management_port,
            api_ca: api.ca,
        };
        pebble.restart();
        pebble
    }

    /// Starts pebble (again, after [`Pebble::stop`]): same configuration and ports, but a
    /// new issuing root and no memory of accounts, orders or certificates.
    fn restart(&mut self) {
        assert!(self.pebble.is_none(), "pebble is running");
        // Appended to: `issued` counts across restarts.
        let log = |name: &str| {
            std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join(name)).unwrap()
        };
        let pebble = Command::new("pebble")
            .args([
                "-config",
                self.config_file.to_str().unwrap(),
                "-dnsserver",
                &format!("127.0.0.1:{}", self.dns_port),
            ])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn()
            .expect("start pebble");
        self.pebble = Some(Proc(pebble));
        wait_port(self.api_port, "pebble");
        wait_port(self.management_port, "pebble management");
    }

    /// Kills pebble (its API port refuses connections until [`Pebble::restart`]).
    fn stop(&mut self) {
        drop(self.pebble.take().expect("pebble is running"));
    }

    fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.api_port)
    }

    /// The root pebble issues under (from its management endpoint), as a PEM file.
    async fn issuing_root(&self) -> PathBuf {
        let config = trusting(&self.api_ca, &["http/1.1"]);
        let r = https_get(self.management_port, "127.0.0.1", config, "/roots/0")
            .await
            .expect("GET pebble /roots/0");
        assert_eq!(r.status, 200, "{}", r.body);
        let file = self.dir.join("issuing-root.pem");
        std::fs::write(&file, r.body).unwrap();
        file
    }

    /// How many certificates pebble has issued (from its log).
    fn issued(&self) -> usize {
        std::fs::read_to_string(self.dir.join("pebble.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("Issued certificate serial"))
            .count()
    }
}

/// An acme-mode server for `DOMAIN` against `pebble`.
fn acme_launch(dir: &Path, pebble: &Pebble, http_port: u16, https_port: u16) -> Launch {
    Launch::new(dir)
        .args([
            "--host",
            DOMAIN,
            "--tls-email",
            "ops@burrow.test",
            "--tls-acme-directory",
            &pebble.directory(),
            "--tls-acme-ca-root",
        ])
        .arg(&pebble.api_ca)
        .args([
            "--tls-http-port",
            &http_port.to_string(),
            "--tls-https-port",
            &https_port.to_string(),
            "--tls-cert-dir",
        ])
        .arg(dir.join("certs"))
        .arg("--database-dsn")
        .arg(dir.join("app.db"))
}

fn start_ready(launch: &Launch) -> Server {
    let server = launch.spawn();
    server.wait_for_log("ready", |l| l.contains("ready pid="));
    server
}

#[tokio::test]
async fn acme_obtains_by_http01_serves_https_redirects_http_and_reuses_the_cache() {
    let dir = tempdir();
    let (http_port, https_port) = (free_port(), free_port());
    let pebble = Pebble::start(dir.path(), http_port, None);
    let launch = acme_launch(dir.path(), &pebble, http_port, https_port);
    let mut server = start_ready(&launch);
    server.wait_for_log("listening on both ports", |l| l.contains("ACME HTTP-01 challenges"));
    let obtained =
        server.wait_for_log("certificate obtained", |l| l.contains("ACME certificate obtained"));
    assert!(
        server.log().iter().any(|l| l.contains("answered an ACME HTTP-01 challenge")),
        "the CA validated through our port"
    );
    eprintln!("{obtained}");
    let root = pebble.issuing_root().await;

    let h2 = https_get(https_port, DOMAIN, trusting(&root, &["h2", "http/1.1"]), "/healthz/live")
        .await
        .unwrap();
    assert_eq!(
        (h2.status, h2.http, h2.tls),
        (200, hyper::Version::HTTP_2, rustls::ProtocolVersion::TLSv1_3),
        "{h2:?}"
    );
    let h1 = https_get(https_port, DOMAIN, trusting(&root, &["http/1.1"]), "/notes").await.unwrap();
    assert_eq!((h1.status, h1.http), (200, hyper::Version::HTTP_11));
    let leaf = h2.chain[0].clone();

    // Port 80's job: redirect GET/HEAD to https with path and query; other methods 400.
    let http = client();
    let res =
        http.get(format!("http://127.0.0.1:{http_port}/notes?q=rust&page=2")).send().await.unwrap();
    assert_eq!(res.status(), 301);
    assert_eq!(
        res.headers()["location"],
        format!("https://{DOMAIN}:{https_port}/notes?q=rust&page=2")
    );
    let res = http.head(format!("http://127.0.0.1:{http_port}/")).send().await.unwrap();
    assert_eq!(res.status(), 301);
    let res = http
        .post(format!("http://127.0.0.1:{http_port}/notes"))
        .body("title=x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = http
        .get(format!("http://127.0.0.1:{http_port}/.well-known/acme-challenge/unknown-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);

    // The base URL is https (cookies' Secure flag, CSRF origins, redirects).
    assert!(
        server.log().iter().any(|l| l.contains(&format!("base_url=https://{DOMAIN}:{https_port}"))),
        "{}",
        server.log().join("\n")
    );
    assert_eq!(server.terminate().code(), Some(0));
    let issued = pebble.issued();

    // A stop/start serves the cached certificate at once and orders nothing.
    let mut again = start_ready(&launch);
    let r = https_get(https_port, DOMAIN, trusting(&root, &["h2"]), "/healthz/live").await.unwrap();
    assert_eq!(
        (r.status, &r.chain[0]),
        (200, &leaf),
        "cached certificate served right after ready"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        again.log().iter().any(|l| l.contains("using the cached ACME certificate")),
        "{}",
        again.log().join("\n")
    );
    assert!(
        !again.log().iter().any(|l| l.contains("ACME: ordering")),
        "a new order was placed:\n{}",
        again.log().join("\n")
    );
    assert_eq!(pebble.issued(), issued, "pebble issued another certificate");
    assert_eq!(again.terminate().code(), Some(0));
    eprintln!("acme: 1 certificate issued by pebble, reused after a restart");
}

/// Requests in a loop on fresh connections until `stop`; counts successes and failures.
fn hammer(
    port: u16,
    config: Arc<ClientConfig>,
    stop: Arc<AtomicBool>,
    leaves: Arc<Mutex<Vec<Vec<u8>>>>,
) -> tokio::task::JoinHandle<(usize, Vec<String>)> {
    tokio::spawn(async move {
        let (mut ok, mut failures) = (0, Vec::new());
        while !stop.load(Ordering::Relaxed) {
            match https_get(port, DOMAIN, config.clone(), "/healthz/live").await {
                Ok(r) if r.status == 200 => {
                    ok += 1;
                    let mut seen = leaves.lock().unwrap();
                    if !seen.contains(&r.chain[0]) {
                        seen.push(r.chain[0].clone());
                    }
                }
                Ok(r) => failures.push(format!("status {}", r.status)),
                Err(e) => failures.push(e),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (ok, failures)
    })
}

// Multi-threaded: the load keeps running while the test thread blocks on log lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_renews_short_lived_certificates_while_serving_without_a_failed_request() {
    let dir = tempdir();
    let (http_port, https_port) = (free_port(), free_port());
    // 24 s certificates: renewal is due after 16 s (a third of the lifetime left).
    let pebble = Pebble::start(dir.path(), http_port, Some(24));
    let mut server = start_ready(&acme_launch(dir.path(), &pebble, http_port, https_port));
    server.wait_for_log("certificate obtained", |l| l.contains("ACME certificate obtained"));
    let root = pebble.issuing_root().await;
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let leaves = Arc::new(Mutex::new(Vec::new()));
    let load =
        hammer(https_port, trusting(&root, &["h2", "http/1.1"]), stop.clone(), leaves.clone());
    let mark = server.log_len();
    let line = tokio::task::block_in_place(|| {
        server
            .wait_for_log_after(mark, "certificate renewed", |l| {
                l.contains("ACME certificate renewed")
            })
            .1
    });
    let renewed_after = started.elapsed();
    // Keep serving a little on the new certificate.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let (ok, failures) = load.await.unwrap();
    let distinct = leaves.lock().unwrap().len();
    eprintln!(
        "renewal: {line}\nrenewed {:.1}s after the first certificate; {ok} requests, {} failed, {distinct} certificates seen",
        renewed_after.as_secs_f64(),
        failures.len()
    );
    assert!(failures.is_empty(), "failed requests during renewal: {failures:?}");
    assert!(distinct >= 2, "the client never saw the renewed certificate");
    assert!(ok > 0);
    assert_eq!(server.terminate().code(), Some(0));
}

// Multi-threaded: the load keeps running while the test thread blocks on log lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_sighup_hands_over_both_listeners_without_a_failed_request() {
    let dir = tempdir();
    let (http_port, https_port) = (free_port(), free_port());
    let pebble = Pebble::start(dir.path(), http_port, None);
    let pid_file = dir.path().join("server.pid");
    let _cleanup = KillPidFile(pid_file.clone());
    let launch = acme_launch(dir.path(), &pebble, http_port, https_port)
        .args(["--detach", "false", "--pid-file"])
        .arg(&pid_file);
    let mut server = start_ready(&launch);
    server.wait_for_log("certificate obtained", |l| l.contains("ACME certificate obtained"));
    let root = pebble.issuing_root().await;
    let issued = pebble.issued();

    let stop = Arc::new(AtomicBool::new(false));
    let leaves = Arc::new(Mutex::new(Vec::new()));
    let https_load =
        hammer(https_port, trusting(&root, &["h2", "http/1.1"]), stop.clone(), leaves.clone());
    let redirects = Arc::new(AtomicUsize::new(0));
    let http_load = {
        let (stop, redirects) = (stop.clone(), redirects.clone());
        tokio::spawn(async move {
            let http = client();
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match http.get(format!("http://127.0.0.1:{http_port}/notes")).send().await {
                    Ok(r) if r.status() == 301 => {
                        redirects.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failures.push(format!("status {}", r.status())),
                    Err(e) => failures.push(e.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            failures
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mark = server.log_len();
    assert!(signal(server.pid(), "HUP"));
    tokio::task::block_in_place(|| {
        server.wait_for_log_after(mark, "new process ready", |l| {
            l.contains("new process") && l.contains("ready")
        });
        assert_eq!(
            server.wait_exit(Duration::from_secs(30)).and_then(|s| s.code()),
            Some(0),
            "old process exit"
        );
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let (ok, https_failures) = https_load.await.unwrap();
    let http_failures = http_load.await.unwrap();
    let log = server.log()[mark..].join("\n");
    eprintln!(
        "SIGHUP in acme mode: {ok} HTTPS requests ({} failed), {} HTTP redirects ({} failed)",
        https_failures.len(),
        redirects.load(Ordering::Relaxed),
        http_failures.len()
    );
    assert!(
        https_failures.is_empty() && http_failures.is_empty(),
        "failures: {https_failures:?} {http_failures:?}"
    );
    assert!(log.contains("inherited 2 listeners"), "{log}");
    assert!(log.contains("using the cached ACME certificate"), "{log}");
    assert!(!log.contains("ACME: ordering"), "the new process ordered a certificate:\n{log}");
    assert_eq!(pebble.issued(), issued);
    assert_eq!(leaves.lock().unwrap().len(), 1, "one certificate served across the restart");
    // The new process serves both ports.
    let new_pid = pid_in(&pid_file);
    assert_ne!(new_pid, server.pid());
    let r = https_get(https_port, DOMAIN, trusting(&root, &["h2"]), "/healthz/live").await.unwrap();
    assert_eq!(r.status, 200);
    let res = client().get(format!("http://127.0.0.1:{http_port}/x")).send().await.unwrap();
    assert_eq!(res.status(), 301);
}

// Multi-threaded: the load keeps running while the test thread blocks on log lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_renewal_failure_keeps_serving_the_cached_certificate_and_succeeds_once_the_ca_is_back()
 {
    let dir = tempdir();
    let (http_port, https_port) = (free_port(), free_port());
    // 54 s certificates: renewal is due after 36 s; the first retry (10 s later) still
    // happens while the certificate is valid.
    let mut pebble = Pebble::start(dir.path(), http_port, Some(54));
    let mut server = start_ready(&acme_launch(dir.path(), &pebble, http_port, https_port));
    tokio::task::block_in_place(|| {
        server.wait_for_log("certificate obtained", |l| l.contains("ACME certificate obtained"))
    });
    let obtained = Instant::now();
    let old_root = pebble.issuing_root().await;
    let old_root = {
        let kept = dir.path().join("old-issuing-root.pem");
        std::fs::rename(&old_root, &kept).unwrap();
        kept
    };
    let first =
        https_get(https_port, DOMAIN, trusting(&old_root, &["h2"]), "/healthz/live").await.unwrap();

    // The CA goes away; the server keeps serving while its renewal fails.
    pebble.stop();
    let stop = Arc::new(AtomicBool::new(false));
    let leaves = Arc::new(Mutex::new(Vec::new()));
    let load =
        hammer(https_port, trusting(&old_root, &["h2", "http/1.1"]), stop.clone(), leaves.clone());
    let mark = server.log_len();
    let (at, failure) = tokio::task::block_in_place(|| {
        server.wait_for_log_after(mark, "renewal failure", |l| {
            l.contains("ACME: could not obtain a certificate")
        })
    });
    let failed_after = obtained.elapsed();
    // Keep serving a little after the failure.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let (ok, failures) = load.await.unwrap();
    eprintln!(
        "renewal failure {:.1}s after the certificate was obtained:\n  {failure}\n  while the CA was down: {ok} requests, {} failed",
        failed_after.as_secs_f64(),
        failures.len()
    );
    assert!(
        failure.contains("Connection refused") || failure.contains("connection refused"),
        "the reason: {failure}"
    );
    assert!(
        failure.contains("still serving the current certificate (valid until")
            && failure.contains("retrying in 10s"),
        "{failure}"
    );
    assert!(failures.is_empty(), "failed requests while the CA was down: {failures:?}");
    assert!(ok > 0);
    assert_eq!(
        *leaves.lock().unwrap(),
        vec![first.chain[0].clone()],
        "the same certificate throughout"
    );
    assert_eq!(failures_after(&server, mark).len(), 1);

    // The CA is back (same configuration and ports; a new root and no memory of the
    // account): the retry registers a new account and renews.
    pebble.restart();
    let new_root = pebble.issuing_root().await;
    let (_, renewed) = tokio::task::block_in_place(|| {
        server.wait_for_log_after(at + 1, "certificate renewed", |l| {
            l.contains("ACME certificate renewed")
        })
    });
    let renewed_after = obtained.elapsed();
    let log = server.log()[at + 1..].join("\n");
    eprintln!(
        "  CA back; renewed {:.1}s after the first certificate: {renewed}",
        renewed_after.as_secs_f64()
    );
    assert!(
        log.contains("the CA does not know the cached account")
            && log.contains("registered an ACME account"),
        "{log}"
    );
    assert!(renewed_after < Duration::from_secs(54), "renewed after the certificate expired");
    let r =
        https_get(https_port, DOMAIN, trusting(&new_root, &["h2"]), "/healthz/live").await.unwrap();
    assert_eq!(r.status, 200);
    assert_ne!(r.chain[0], first.chain[0], "a new certificate is served");
    assert_eq!(server.terminate().code(), Some(0));
}

/// pebble's example EAB key (base64url, as CAs hand them out) and a different one.
const EAB_KID: &str = "kid-1";
const EAB_KEY: &str = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
const WRONG_EAB_KEY: &str = "b10lLJs8l1GPIzsLP0s6pMt8O0XVGnfTaCeROxQM0BIt2XrJMDHJZBM5NuQmQJQH";

/// The `ACME: could not obtain a certificate` warnings logged at index `from` or later.
fn failures_after(server: &Server, from: usize) -> Vec<String> {
    server.log()[from..]
        .iter()
        .filter(|l| l.contains("ACME: could not obtain a certificate"))
        .cloned()
        .collect()
}

// Multi-threaded: three servers' logs are awaited while the others keep running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_external_account_binding_right_key_gets_a_certificate_missing_or_wrong_key_is_refused_and_retried()
 {
    let dir = tempdir();
    let (http_port, https_port) = (free_port(), free_port());
    let pebble = Pebble::start_with(
        dir.path(),
        http_port,
        serde_json::json!({"externalAccountBindingRequired": true, "externalAccountMACKeys": {EAB_KID: EAB_KEY}}),
    );
    let server_dir = |name: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let (good_dir, none_dir, wrong_dir) =
        (server_dir("good"), server_dir("none"), server_dir("wrong"));
    // The key as an environment variable (how a secret is best passed), the key ID as a flag.
    let good = acme_launch(&good_dir, &pebble, http_port, https_port)
        .args(["--tls-acme-eab-kid", EAB_KID])
        .env("TLS_ACME_EAB_HMAC_KEY", EAB_KEY);
    let (none_http, none_https) = (free_port(), free_port());
    let mut none = start_ready(&acme_launch(&none_dir, &pebble, none_http, none_https));
    let wrong = start_ready(&acme_launch(&wrong_dir, &pebble, free_port(), free_port()).args([
        "--tls-acme-eab-kid",
        EAB_KID,
        "--tls-acme-eab-hmac-key",
        WRONG_EAB_KEY,
    ]));
    let mut server = start_ready(&good);
    let (at, line) = tokio::task::block_in_place(|| {
        none.wait_for_log_after(0, "first failure", |l| l.contains("could not obtain"))
    });
    let first = Instant::now();

    // The right key ID and key: registered with the binding, certificate obtained.
    tokio::task::block_in_place(|| {
        server.wait_for_log("certificate obtained", |l| l.contains("ACME certificate obtained"));
    });
    let registered: Vec<String> =
        server.log().into_iter().filter(|l| l.contains("registered an ACME account")).collect();
    assert_eq!(registered.len(), 1, "{registered:?}");
    assert!(
        registered[0].contains("with external account binding (key ID kid-1)"),
        "{}",
        registered[0]
    );
    let root = pebble.issuing_root().await;
    let r = https_get(https_port, DOMAIN, trusting(&root, &["h2"]), "/healthz/live").await.unwrap();
    assert_eq!(r.status, 200);
    eprintln!("EAB: {}", registered[0]);

    // No binding: the CA's refusal, logged on one line, then retries 10 s and 20 s later.
    let (_, second) = tokio::task::block_in_place(|| {
        none.wait_for_log_after(at + 1, "second failure", |l| l.contains("could not obtain"))
    });
    let between = first.elapsed();
    eprintln!(
        "no EAB:\n  {line}\n  {second}\n  second failure {:.1}s after the first was seen",
        between.as_secs_f64()
    );
    assert!(
        line.contains("registering an ACME account at") && line.contains("externalAccountRequired"),
        "{line}"
    );
    assert!(
        line.contains("HTTPS has no valid certificate until this succeeds")
            && line.contains("retrying in 10s"),
        "{line}"
    );
    assert!(
        second.contains("externalAccountRequired") && second.contains("retrying in 20s"),
        "{second}"
    );
    assert!(
        (8.0..16.0).contains(&between.as_secs_f64()),
        "second attempt {between:?} after the first"
    );
    // Still up: the HTTP port redirects, HTTPS fails the handshake cleanly.
    assert_eq!(none.wait_exit(Duration::ZERO), None, "the server exited");
    let res =
        client().get(format!("http://127.0.0.1:{none_http}/healthz/live")).send().await.unwrap();
    assert_eq!(res.status(), 301);
    let err =
        https_get(none_https, DOMAIN, trusting(&root, &["h2"]), "/healthz/live").await.unwrap_err();
    assert!(err.starts_with("handshake:"), "{err}");
    eprintln!("  meanwhile: HTTP port 301, HTTPS {err}");

    // A wrong HMAC key: the CA's verification error; the key never appears in the log.
    let (_, line) = tokio::task::block_in_place(|| {
        wrong.wait_for_log_after(0, "failure", |l| l.contains("could not obtain"))
    });
    eprintln!("wrong key: {line}");
    assert!(
        line.contains("with external account binding (key ID kid-1)")
            && line.contains("retrying in 10s"),
        "{line}"
    );
    assert!(
        line.to_lowercase().contains("external account binding") && line.contains("verification"),
        "{line}"
    );
    for (name, log) in [("good", server.log()), ("none", none.log()), ("wrong", wrong.log())] {
        assert!(
            !log.iter().any(|l| l.contains(EAB_KEY) || l.contains(WRONG_EAB_KEY)),
            "{name}: key in the log"
        );
    }
    assert!(!none.log().iter().any(|l| l.contains("ACME certificate obtained")));
    assert!(!wrong.log().iter().any(|l| l.contains("ACME certificate obtained")));
    assert_eq!(none.terminate().code(), Some(0), "a failing server still stops cleanly");

    // The account is registered once: a new order (certificate removed) reuses account.json.
    assert_eq!(server.terminate().code(), Some(0));
    let cache = good_dir.join("certs/acme").join(format!("127.0.0.1_{}_dir", pebble.api_port));
    assert!(cache.join("account.json").exists());
    std::fs::remove_file(cache.join(format!("{DOMAIN}.cert.pem"))).unwrap();
    let mut again = start_ready(&good);
    tokio::task::block_in_place(|| {
        again.wait_for_log("certificate obtained", |l| l.contains("ACME certificate obtained"));
    });
    assert!(
        !again.log().iter().any(|l| l.contains("registered an ACME account")),
        "{}",
        again.log().join("\n")
    );
    assert_eq!(pebble.issued(), 2);
    assert_eq!(again.terminate().code(), Some(0));
}

#[test]
fn acme_external_account_binding_configuration_errors() {
    let dir = tempdir();
    let run = |extra: &[&str]| {
        Launch::new(dir.path())
            .args([
                "--host",
                DOMAIN,
                "--tls-mode",
                "acme",
                "--tls-email",
                "a@b.test",
                "--database-dsn",
            ])
            .arg(dir.path().join("app.db"))
            .args(extra)
            .run()
    };
    let bad_key = "this is not base64url!";
    for (args, flag) in [
        (&["--tls-acme-eab-kid", EAB_KID][..], "--tls-acme-eab-hmac-key"),
        (&["--tls-acme-eab-hmac-key", EAB_KEY][..], "--tls-acme-eab-kid"),
        (
            &["--tls-acme-eab-kid", EAB_KID, "--tls-acme-eab-hmac-key", bad_key][..],
            "--tls-acme-eab-hmac-key",
        ),
    ] {
        let out = run(args);
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
        let errors: Vec<&str> = out.stderr.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(errors.len(), 1, "{args:?}: one error line expected:\n{}", out.stderr);
        assert!(errors[0].contains(flag), "{args:?}: {}", errors[0]);
        assert!(
            !out.stderr.contains(EAB_KEY) && !out.stderr.contains(bad_key),
            "{args:?}: the key in the output: {}",
            out.stderr
        );
        eprintln!("{args:?}: {}", errors[0]);
    }
    assert!(!dir.path().join("app.db").exists());
    // --help documents both settings and never shows the key's value from the environment.
    let help = Launch::new(dir.path()).args(["--help"]).env("TLS_ACME_EAB_HMAC_KEY", EAB_KEY).run();
    assert!(
        help.stdout.contains("--tls-acme-eab-kid")
            && help.stdout.contains("--tls-acme-eab-hmac-key"),
        "{}",
        help.stdout
    );
    assert!(!help.stdout.contains(EAB_KEY) && !help.stderr.contains(EAB_KEY), "{}", help.stdout);
}

#[test]
fn acme_configuration_errors() {
    let dir = tempdir();
    let base = |extra: &[&str]| {
        Launch::new(dir.path())
            .args(["--host", DOMAIN, "--tls-mode", "acme", "--database-dsn"])
            .arg(dir.path().join("app.db"))
            .args(extra)
            .run()
    };
    for (args, flag) in [
        (&["--tls-email", "a@b.test", "--port", "8443"][..], "--port"),
        (&[][..], "--tls-email"),
        (
            &[
                "--tls-email",
                "a@b.test",
                "--tls-acme-ca-root",
                "/nonexistent/root.pem",
                "--tls-http-port",
                "0",
            ][..],
            "--tls-http-port",
        ),
    ] {
        let out = base(args);
        assert_eq!(out.code(), Some(2), "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains(flag), "{args:?}: {}", out.stderr);
    }
    let (http_port, https_port) = (free_port(), free_port());
    let out = base(&[
        "--tls-email",
        "a@b.test",
        "--tls-acme-ca-root",
        "/nonexistent/root.pem",
        "--tls-http-port",
        &http_port.to_string(),
        "--tls-https-port",
        &https_port.to_string(),
        "--tls-cert-dir",
        dir.path().join("certs").to_str().unwrap(),
    ]);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("/nonexistent/root.pem") && out.stderr.contains("--tls-acme-ca-root"),
        "{}",
        out.stderr
    );
    assert!(!dir.path().join("app.db").exists());
}
