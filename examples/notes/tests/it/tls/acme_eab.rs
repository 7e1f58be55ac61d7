//! ACME external account binding against pebble: the right key gets a certificate, a
//! missing or wrong key is refused and retried, and bad settings stop the start.

use std::time::{Duration, Instant};

use super::pebble::{DOMAIN, Pebble, acme_launch};
use crate::support::https::{https_get, trusting};
use crate::support::{Launch, client, free_port, tempdir};

/// pebble's example EAB key (base64url, as CAs hand them out) and a different one.
const EAB_KID: &str = "kid-1";
const EAB_KEY: &str = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
const WRONG_EAB_KEY: &str = "b10lLJs8l1GPIzsLP0s6pMt8O0XVGnfTaCeROxQM0BIt2XrJMDHJZBM5NuQmQJQH";

// Multi-threaded: three servers' logs are awaited while the others keep running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_eab_right_key_gets_a_certificate_missing_or_wrong_key_is_refused_and_retried() {
    let dir = tempdir();
    let (http_port, https_port) = (free_port(), free_port());
    let pebble = Pebble::start_with(
        dir.path(),
        http_port,
        serde_json::json!({
            "externalAccountBindingRequired": true,
            "externalAccountMACKeys": {EAB_KID: EAB_KEY}
        }),
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
    let mut none = acme_launch(&none_dir, &pebble, none_http, none_https).start_ready();
    let wrong = acme_launch(&wrong_dir, &pebble, free_port(), free_port())
        .args(["--tls-acme-eab-kid", EAB_KID, "--tls-acme-eab-hmac-key", WRONG_EAB_KEY])
        .start_ready();
    let mut server = good.start_ready();
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
    let mut again = good.start_ready();
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
