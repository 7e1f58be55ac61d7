//! ACME end to end against pebble: HTTP-01, the HTTP port's redirect, the cached
//! certificate reused, renewal while serving, renewal failing while the CA is down, SIGHUP
//! hand-over of both listeners, and configuration errors.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::ClientConfig;

use super::pebble::{DOMAIN, Pebble, acme_launch};
use crate::support::https::{https_get, trusting};
use crate::support::procs::{Cleanup, hand_over, read_pid_file, with_pid_file};
use crate::support::{Launch, Server, client, free_port, tempdir};

#[tokio::test]
async fn acme_obtains_by_http01_serves_https_redirects_http_and_reuses_the_cache() {
    let dir = tempdir();
    let (http_port, https_port) = (free_port(), free_port());
    let pebble = Pebble::start(dir.path(), http_port, None);
    let launch = acme_launch(dir.path(), &pebble, http_port, https_port);
    let mut server = launch.start_ready();
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
    // A page of the app (the home page: the notes need a signed-in user).
    let h1 = https_get(https_port, DOMAIN, trusting(&root, &["http/1.1"]), "/").await.unwrap();
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
    let mut again = launch.start_ready();
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
    let mut server = acme_launch(dir.path(), &pebble, http_port, https_port).start_ready();
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
        "renewal: {line}\nrenewed {:.1}s after the first certificate; {ok} requests, {} failed, \
         {distinct} certificates seen",
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
    let launch = with_pid_file(acme_launch(dir.path(), &pebble, http_port, https_port), &pid_file);
    let mut server = launch.start_ready();
    // After the SIGHUP the serving process is not the test's child.
    let _cleanup = Cleanup::new(dir.path());
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
    tokio::task::block_in_place(|| hand_over(&mut server));
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
    let new_pid = read_pid_file(&pid_file).expect("a PID in the PID file");
    assert_ne!(new_pid, server.pid());
    let r = https_get(https_port, DOMAIN, trusting(&root, &["h2"]), "/healthz/live").await.unwrap();
    assert_eq!(r.status, 200);
    let res = client().get(format!("http://127.0.0.1:{http_port}/x")).send().await.unwrap();
    assert_eq!(res.status(), 301);
}

// Multi-threaded: the load keeps running while the test thread blocks on log lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_renewal_failure_keeps_serving_the_cached_cert_and_succeeds_once_the_ca_is_back() {
    let dir = tempdir();
    let (http_port, https_port) = (free_port(), free_port());
    // 54 s certificates: renewal is due after 36 s; the first retry (10 s later) still
    // happens while the certificate is valid.
    let mut pebble = Pebble::start(dir.path(), http_port, Some(54));
    let mut server = acme_launch(dir.path(), &pebble, http_port, https_port).start_ready();
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
        "renewal failure {:.1}s after the certificate was obtained:\n  {failure}\n  \
         while the CA was down: {ok} requests, {} failed",
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

/// The `ACME: could not obtain a certificate` warnings logged at index `from` or later.
fn failures_after(server: &Server, from: usize) -> Vec<String> {
    server.log()[from..]
        .iter()
        .filter(|l| l.contains("ACME: could not obtain a certificate"))
        .cloned()
        .collect()
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
