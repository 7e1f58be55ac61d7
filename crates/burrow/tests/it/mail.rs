//! Mail through a real SMTP server (aiosmtpd on loopback): STARTTLS with a password,
//! implicit TLS, plain SMTP; templates with a subject line and an HTML part; and the
//! errors of a server that cannot be trusted or reached, and of a wrong password.

use burrow::mail::{Email, MailError};
use burrow::minijinja::context;
use burrow::{App, Server};
use burrow_test::smtp::{Security, SmtpSink};

use crate::Site;

static TEMPLATES: burrow::Dir<'static> =
    burrow::embed_dir!("$CARGO_MANIFEST_DIR/tests/it/templates_mail");

struct Shop;

impl App for Shop {
    fn name(&self) -> &'static str {
        "shop"
    }

    fn templates(&self) -> Option<&'static burrow::Dir<'static>> {
        Some(&TEMPLATES)
    }
}

/// A server built with the sink's settings, plus `extra` flags; the password, if any, in
/// a file.
fn context(
    sink: &SmtpSink,
    site: &Site,
    password: Option<&str>,
    extra: &[&str],
) -> burrow::AppContext {
    let mut args: Vec<String> = sink.server_args();
    if let Some(password) = password {
        let file = site.dir.path().join("smtp-password");
        std::fs::write(&file, format!("{password}\n")).unwrap();
        args.push(format!("--smtp-password-file={}", file.display()));
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    site.build(Server::new("s", "1").app(Shop), &args).expect("server builds").ctx
}

fn receipt(ctx: &burrow::AppContext) -> Email {
    let ctx_values = context! { name => "Ann", total => "12 €" };
    Email::render(&ctx.templates, "shop/mail/receipt", "ann@example.com", ctx_values).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn mail_goes_out_over_starttls_with_a_password_as_text_and_html() {
    let sink = SmtpSink::start(Security::Starttls { password: Some("pass word") });
    let site = Site::new();
    let ctx = context(&sink, &site, Some("pass word"), &[]);
    assert!(ctx.mailer.is_configured());
    let email = receipt(&ctx);
    assert_eq!(email.subject, "Your receipt for 12 €");
    assert!(email.text.starts_with("Hello Ann,") && email.text.contains("<Thanks> & goodbye"));
    assert!(email.html.as_deref().unwrap().contains("<strong>12 €</strong>"));
    ctx.mailer.send(&email).await.expect("sent");
    let got = sink.wait_for(1).remove(0);
    assert!(got.tls, "STARTTLS was on");
    assert_eq!(got.auth.as_deref(), Some(burrow_test::smtp::USER));
    assert_eq!(
        (got.mail_from.as_str(), got.rcpt_tos.as_slice()),
        ("burrow@example.com", &["ann@example.com".to_string()][..])
    );
    assert!(
        got.data.contains("multipart/alternative") && got.data.contains("text/html"),
        "{}",
        got.data
    );
    assert!(got.data.contains("From: Burrow <burrow@example.com>"), "{}", got.data);

    // A text-only mail is one plain part.
    let plain =
        Email::render(&ctx.templates, "shop/mail/plain", "bob@example.com", context! {}).unwrap();
    assert!(plain.html.is_none());
    ctx.mailer.send(&plain).await.unwrap();
    let got = sink.wait_for(2).remove(1);
    assert!(
        got.data.contains("Subject: Only text") && !got.data.contains("multipart"),
        "{}",
        got.data
    );

    // A template that is missing, or that does not begin with a subject, is an error.
    let err = Email::render(&ctx.templates, "shop/mail/nothing", "a@b.c", context! {}).unwrap_err();
    assert!(err.0.contains("no template shop/mail/nothing.txt"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_an_untrusted_certificate_and_no_server_are_errors_without_secrets() {
    let sink = SmtpSink::start(Security::Starttls { password: Some("right") });
    let site = Site::new();
    let ctx = context(&sink, &site, Some("wrong-secret"), &[]);
    let MailError(err) = ctx.mailer.send(&receipt(&ctx)).await.unwrap_err();
    assert!(err.contains(&format!("localhost:{}", sink.port())), "{err}");
    assert!(!err.contains("wrong-secret"), "{err}");

    // Without the test CA, the sink's certificate is not trusted: nothing is sent.
    let untrusted = Site::new();
    let mut args: Vec<String> =
        sink.server_args().into_iter().filter(|a| !a.starts_with("--smtp-ca-root")).collect();
    let file = untrusted.dir.path().join("pw");
    std::fs::write(&file, "right").unwrap();
    args.push(format!("--smtp-password-file={}", file.display()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ctx = untrusted.build(Server::new("s", "1").app(Shop), &args).unwrap().ctx;
    let MailError(err) = ctx.mailer.send(&receipt(&ctx)).await.unwrap_err();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(sink.received().is_empty());

    // Nobody listening.
    let port = sink.port().to_string();
    drop(sink);
    let gone = Site::new();
    let args = ["--smtp-host=127.0.0.1", "--smtp-tls=none", "--smtp-from=a@example.com"];
    let ctx = gone
        .build(Server::new("s", "1").app(Shop), &[&args[..], &["--smtp-port", &port]].concat())
        .unwrap()
        .ctx;
    assert!(ctx.mailer.send(&receipt(&ctx)).await.is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn implicit_tls_and_plain_smtp_work_too() {
    let tls = SmtpSink::start(Security::Tls { password: None });
    let site = Site::new();
    let ctx = context(&tls, &site, None, &[]);
    ctx.mailer.send(&receipt(&ctx)).await.unwrap();
    let got = tls.wait_for(1).remove(0);
    assert!(got.tls && got.auth.is_none());

    let plain = SmtpSink::start(Security::None);
    let site = Site::new();
    let ctx = context(&plain, &site, None, &[]);
    ctx.mailer.deliver(receipt(&ctx)).await.unwrap();
    assert!(!plain.wait_for(1)[0].tls);
}

/// With the `jobs` app, `deliver` queues the mail as a job: nothing is sent until a worker
/// runs it, and a mail the SMTP server refuses stays in the queue, failed, to be retried.
#[tokio::test(flavor = "multi_thread")]
async fn deliver_queues_a_job_when_the_jobs_app_is_installed() {
    use burrow::contrib::jobs::{JobsApp, run_due};

    let sink = SmtpSink::start(Security::None);
    let site = Site::new();
    let args = sink.server_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::new("s", "1").app(JobsApp::new()).app(Shop);
    let ctx = site.build(server, &args).expect("server builds").ctx;
    ctx.mailer.deliver(receipt(&ctx)).await.expect("queued");
    let stats = ctx.jobs.stats().await.unwrap();
    assert_eq!((stats.pending, stats.completed), (1, 0));
    assert_eq!(run_due(&ctx).await, 1);
    let got = sink.wait_for(1).remove(0);
    assert!(got.data.contains("Your receipt"), "{}", got.data);
    assert_eq!(ctx.jobs.stats().await.unwrap().completed, 1);

    // Nobody listens any more: the attempt fails and the job waits for its retry.
    let closed = sink.port().to_string();
    drop(sink);
    let site = Site::new();
    let server = Server::new("s", "1").app(JobsApp::new()).app(Shop);
    let args = [&args[..], &["--smtp-port", &closed]].concat();
    let ctx = site.build(server, &args).expect("server builds").ctx;
    ctx.mailer.deliver(receipt(&ctx)).await.expect("queued");
    assert_eq!(run_due(&ctx).await, 1);
    let stats = ctx.jobs.stats().await.unwrap();
    assert_eq!((stats.failed, stats.completed), (1, 0), "{stats:?}");
}

#[test]
fn smtp_settings_are_checked_at_start_up_and_the_password_is_no_flag() {
    let site = Site::new();
    let build = |args: &[&str]| site.build(Server::new("s", "1").app(Shop), args).map(drop);
    let err = build(&["--smtp-host=mail.example.com"]).unwrap_err();
    assert_eq!(err.code, 2);
    assert!(err.message.contains("--smtp-from"), "{}", err.message);
    let err =
        build(&["--smtp-host=h", "--smtp-from=a@b.c", "--smtp-password=hunter2"]).unwrap_err();
    assert_eq!(err.code, 2);
    assert!(err.message.contains("--smtp-password is not accepted as a flag"), "{}", err.message);
    assert!(err.message.contains("SMTP_PASSWORD or smtp.password"), "{}", err.message);
    assert!(!err.message.contains("hunter2"), "{}", err.message);
    let err = build(&["--smtp-host=h", "--smtp-from=a@b.c", "--smtp-tls=maybe"]).unwrap_err();
    assert!(err.message.contains("--smtp-tls") && err.message.contains("starttls, tls or none"));
    let pem = site.dir.path().join("not.pem");
    std::fs::write(&pem, "hello").unwrap();
    let arg = format!("--smtp-ca-root={}", pem.display());
    let err = build(&["--smtp-host=h", "--smtp-from=a@b.c", &arg]).unwrap_err();
    assert!(err.message.contains("no PEM certificate"), "{}", err.message);
    // Off without a host: nothing to send through.
    let ctx = site.build(Server::new("s", "1").app(Shop), &[]).unwrap().ctx;
    assert!(!ctx.mailer.is_configured());
}
