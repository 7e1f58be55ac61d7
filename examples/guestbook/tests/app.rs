//! The guestbook over HTTP: the real binary on a free port, as a browser would use it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// The `guestbook` binary serving a fresh database; killed when dropped.
struct Guestbook {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Guestbook {
    /// Starts on `--port 0` and reads the port from the `listening on …` log line.
    fn start(args: &[&str]) -> Guestbook {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_guestbook"))
            .args(["--port", "0", "--database-dsn"])
            .arg(dir.path().join("app.db"))
            .args(args)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mark = "listening on http://127.0.0.1:";
        let line = lines.by_ref().map(Result::unwrap).find(|l| l.contains(mark)).expect(mark);
        let port = line[line.find(mark).unwrap() + mark.len()..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|digits| digits.parse().ok())
            .expect("a port");
        lines.by_ref().map(Result::unwrap).find(|l| l.contains(" ready ")).expect("ready");
        // Keep reading the log: a server whose stderr is closed fails to write it.
        std::thread::spawn(move || lines.for_each(drop));
        Guestbook { child, port, _dir: dir }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Guestbook {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `name=value; …` of the `Set-Cookie` headers of `res`, for the next request's `Cookie`.
fn cookies(res: &reqwest::Response) -> String {
    let set = res.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap());
    set.filter_map(|v| v.split(';').next()).collect::<Vec<_>>().join("; ")
}

/// The value of the page's hidden `csrf_token` field.
fn csrf_token(html: &str) -> String {
    const FIELD: &str = "name=\"csrf_token\" value=\"";
    let at = html.find(FIELD).expect("a csrf_token field") + FIELD.len();
    html[at..].chars().take_while(|&c| c != '"').collect()
}

#[tokio::test]
async fn sign_the_guestbook() {
    let server = Guestbook::start(&["--guestbook-title", "Our guestbook"]);
    let client =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    // The form, with the setting in the heading, the CSRF cookie and token.
    let res = client.get(server.url()).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let csrf_cookie = cookies(&res);
    let html = res.text().await.unwrap();
    assert!(html.contains("<h1>Our guestbook</h1>"), "{html}");
    assert!(html.contains("Nobody has signed yet"), "{html}");
    let token = csrf_token(&html);

    // Without the CSRF token: refused.
    let res = client.post(server.url()).form(&[("name", "Ann"), ("message", "Hi")]).send();
    assert_eq!(res.await.unwrap().status(), 403);

    // Invalid: 422, the form again with its errors and what was typed.
    let too_long = "x".repeat(81);
    let res = client
        .post(server.url())
        .header("cookie", &csrf_cookie)
        .form(&[("csrf_token", token.as_str()), ("name", &too_long), ("message", " ")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let html = res.text().await.unwrap();
    assert!(html.contains("Name must be at most 80 characters."), "{html}");
    assert!(html.contains("Message is required."), "{html}");
    assert!(html.contains(&format!("value=\"{too_long}\"")), "{html}");

    // Valid: 303 to the list, which shows the flash message and the entries, newest first.
    for (name, message) in [("Ann", "First!"), ("Bob", "Hello <there>")] {
        let res = client
            .post(server.url())
            .header("cookie", &csrf_cookie)
            .form(&[("csrf_token", token.as_str()), ("name", name), ("message", message)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303);
        assert_eq!(res.headers()["location"], "/");
        let flash_cookie = cookies(&res);
        let res = client.get(server.url()).header("cookie", flash_cookie).send().await.unwrap();
        let html = res.text().await.unwrap();
        assert!(html.contains(&format!("Thank you for signing, {name}!")), "{html}");
    }
    let html = client.get(server.url()).send().await.unwrap().text().await.unwrap();
    assert!(!html.contains("Thank you for signing"), "the flash is shown once: {html}");
    let (bob, ann) = (html.find("Hello &lt;there&gt;").unwrap(), html.find("First!").unwrap());
    assert!(bob < ann, "newest first: {html}");
}

#[tokio::test]
async fn entries_are_paginated() {
    let server = Guestbook::start(&[]);
    let client = reqwest::Client::new();
    let res = client.get(server.url()).send().await.unwrap();
    let csrf_cookie = cookies(&res);
    let token = csrf_token(&res.text().await.unwrap());
    let no_redirects =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for n in 1..=21 {
        let form =
            [("csrf_token", token.clone()), ("name", format!("N{n}")), ("message", "hi".into())];
        let req = no_redirects.post(server.url()).header("cookie", &csrf_cookie).form(&form);
        assert_eq!(req.send().await.unwrap().status(), 303);
    }
    let page1 = client.get(server.url()).send().await.unwrap().text().await.unwrap();
    assert!(page1.contains("N21,") && !page1.contains("N1,"), "{page1}");
    assert!(page1.contains("href=\"/?page=2\""), "{page1}");
    let page2 = client.get(format!("{}?page=2", server.url())).send().await.unwrap();
    let page2 = page2.text().await.unwrap();
    assert!(page2.contains("N1,") && !page2.contains("N2,"), "{page2}");
    assert!(page2.contains("href=\"/?page=1\""), "{page2}");
}
