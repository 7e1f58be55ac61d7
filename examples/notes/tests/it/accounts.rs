//! Accounts from the shell (`server users …`, `server set-role`) and the sign-in link an
//! operator hands out, followed in the real server on both engines.

use crate::both_engines;
use crate::support::{Database, Engine, Launch, client, cookie_set_by, csrf_token, tempdir};

/// `name=value; …` of every cookie an answer sets.
fn cookies_of(res: &reqwest::Response) -> String {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| cookie_set_by(v.to_str().ok()?).map(|(n, v)| format!("{n}={v}")))
        .collect::<Vec<_>>()
        .join("; ")
}

both_engines!(operator_creates_accounts_and_signs_in_with_a_link, |engine: Engine| async move {
    let dir = tempdir();
    let db = Database::new(engine, dir.path());
    let cli = |args: &[&str]| Launch::new(dir.path()).database(&db).args(args).run();

    let out = cli(&["users", "create", "Alice", "--email", "alice@example.org"]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(out.stdout.contains("Created user 'alice' (id 1, role admin)"), "{out:?}");
    let out = cli(&["users", "create", "bob", "--role", "staff"]);
    assert!(out.stdout.contains("'bob' (id 2, role staff)"), "{out:?}");
    let out = cli(&["users", "create", "alice"]);
    assert_ne!(out.code(), Some(0), "a taken username: {out:?}");
    assert!(out.stderr.contains("that username is already taken"), "{out:?}");
    let out = cli(&["set-role", "bob", "user"]);
    assert!(out.stdout.contains("User 'bob' is now user."), "{out:?}");
    let out = cli(&["set-role", "alice", "user"]);
    assert_ne!(out.code(), Some(0), "demoting the last admin: {out:?}");
    assert!(out.stderr.contains("last active admin"), "{out:?}");
    let out = cli(&["set-role", "nobody", "staff"]);
    assert!(out.stderr.contains("no user named 'nobody'"), "{out:?}");

    let list = cli(&["users", "list"]).stdout;
    let rows: Vec<Vec<&str>> = list.lines().map(|l| l.split_whitespace().collect()).collect();
    assert!(rows.iter().any(|r| r[..4] == ["1", "alice", "admin", "yes"]), "{list}");
    assert!(rows.iter().any(|r| r[..4] == ["2", "bob", "user", "yes"]), "{list}");
    assert!(list.contains("2 user(s)"), "{list}");

    let out = cli(&["users", "login-link", "alice"]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    let url = out.stdout.lines().find(|l| l.contains("/auth/link?token=")).expect("a URL");
    let path = &url[url.find("/auth/link").unwrap()..];
    let token = path.split_once("token=").unwrap().1;
    assert!(!out.stderr.contains(token), "the token is printed once, never logged: {out:?}");

    let server = Launch::serve_on(&db, dir.path()).start();
    let http = client();
    let page = http.get(server.url(path)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let cookie = cookies_of(&page);
    let html = page.text().await.unwrap();
    assert!(html.contains("Sign in as alice"), "{html}");
    let form = [("token", token.to_string()), ("csrf_token", csrf_token(&html).unwrap())];
    let sign_in = || http.post(server.url("/auth/link")).header("Cookie", &cookie).form(&form);
    let signed_in = sign_in().send().await.unwrap();
    assert_eq!(signed_in.status(), 303);
    assert_eq!(signed_in.headers()["location"], "/auth/credentials/");
    let session = cookies_of(&signed_in);
    let keys = http.get(server.url("/auth/credentials/")).header("Cookie", &session);
    let keys = keys.send().await.unwrap().text().await.unwrap();
    assert!(keys.contains("Signed in as alice.") && keys.contains("Sign out"), "{keys}");
    assert!(keys.contains("no passkey yet") && keys.contains("Add a passkey"), "{keys}");
    // The link worked once.
    let again = sign_in().send().await.unwrap();
    assert_eq!(again.status(), 400);
    assert!(again.text().await.unwrap().contains("already used or expired"));
    // The audit log names the events, never the token.
    let line = server.wait_for_log("the sign-in audit line", |l| l.contains("signed_in"));
    assert!(line.contains("user=alice") || line.contains("user=\"alice\""), "{line}");
    assert!(server.log().iter().all(|l| !l.contains(token)), "the token reached the log");
});

#[test]
fn with_use_email_accounts_are_named_by_their_address() {
    let dir = tempdir();
    let cli = |args: &[&str]| Launch::serve(dir.path()).arg("--auth-use-email").args(args).run();
    let out = cli(&["users", "create", "Bob@Example.org"]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(out.stdout.contains("Created user 'bob@example.org'"), "{out:?}");
    let out = cli(&["users", "create", "bob"]);
    assert_ne!(out.code(), Some(0), "{out:?}");
    assert!(out.stderr.contains("not an email address"), "{out:?}");
    let list = cli(&["users", "list"]).stdout;
    let row = list.lines().find(|l| l.contains("bob@example.org")).expect("listed");
    assert_eq!(row.matches("bob@example.org").count(), 2, "name and email: {list}");
}
