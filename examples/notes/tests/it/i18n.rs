//! Languages on real pages: the catalogs of every app the notes server has are complete,
//! `Accept-Language` and the switcher pick the language, and the framework's texts (error
//! pages, validation, the admin, flash messages, plurals) follow it. In-process through the
//! whole middleware stack; `a_german_browser_gets_german_pages_from_the_binary` drives the
//! real binary.

use burrow_test::Client;

use crate::support::failure::Failure;
use crate::support::{Launch, tempdir};

fn signed_in() -> Client {
    let client = Client::new(notes::server());
    client.sign_in("ann");
    client
}

fn german<'c>(client: &'c Client, method: &str, path: &str) -> burrow_test::RequestBuilder<'c> {
    client.request(method, path).header("accept-language", "de-AT,de;q=0.9,en;q=0.5")
}

#[test]
fn every_catalog_the_server_ships_is_complete() {
    let client = Client::new(notes::server());
    let i18n = client.context().templates.i18n();
    assert_eq!(i18n.languages().collect::<Vec<_>>(), ["en", "de"]);
    assert_eq!(i18n.incomplete(), Vec::<String>::new());
}

#[test]
fn accept_language_picks_german_and_the_switcher_overrides_it() {
    let client = signed_in();
    let home = german(&client, "GET", "/").send();
    assert_eq!(home.status(), 200);
    assert_eq!(home.attr("html", "lang"), ["de"]);
    assert_eq!(home.select_one("h1"), "Ihre Notizen, in einer Datei.");
    assert_eq!(home.select("nav.site-nav a"), ["Start", "Notizen", "Neue Notiz", "Admin"]);
    assert_eq!(home.select(".language-switch option"), ["English", "Deutsch"]);
    assert_eq!(home.attr(".language-switch option[selected]", "value"), ["de"]);
    // A browser that asks for English, or nothing the site has, gets English.
    let english = client.request("GET", "/").header("accept-language", "fr-CH, en;q=0.5").send();
    assert_eq!(english.attr("html", "lang"), ["en"]);
    assert_eq!(english.select_one("h1"), "Your notes, in one file.");

    // The switcher: a cookie for a year, back to `next`; it beats Accept-Language.
    let switched = german(&client, "POST", "/i18n/language")
        .form(&[("lang", "en"), ("next", "/notes")])
        .follow_redirects(false)
        .send();
    assert_eq!(switched.status(), 303, "{switched:?}");
    assert_eq!(switched.location(), Some("/notes"));
    let cookie = switched.header("set-cookie").expect("a language cookie");
    assert!(cookie.starts_with("lang=en; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax"));
    assert_eq!(client.cookie("lang").as_deref(), Some("en"));
    let list = german(&client, "GET", "/notes").send();
    assert_eq!(list.attr("html", "lang"), ["en"]);
    assert_eq!(list.select_one("p.empty"), "No notes yet. Write the first one above.");

    // Only the site's languages, only paths on this site, and the CSRF check as for any form.
    let unknown = client.post("/i18n/language", &[("lang", "fr"), ("next", "/")]);
    assert_eq!(unknown.status(), 400);
    assert!(unknown.text().contains("no language"), "{}", unknown.text());
    let away = client
        .request("POST", "/i18n/language")
        .form(&[("lang", "de"), ("next", "//evil.example/")])
        .follow_redirects(false)
        .send();
    assert_eq!(away.location(), Some("/"));
    let forged = client.request("POST", "/i18n/language").form(&[("lang", "de")]).without_csrf();
    assert_eq!(forged.send().status(), 403);
}

#[test]
fn error_pages_validation_and_flash_messages_speak_german() {
    let client = signed_in();
    let missing = german(&client, "GET", "/no/such/page").send();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.select_one("h1"), "404 Nicht gefunden");
    assert_eq!(missing.select_one(".error-page p"), "Die angeforderte Seite gibt es nicht.");
    let json = german(&client, "GET", "/no/such/page").header("accept", "application/json").send();
    assert_eq!(json.json()["error"], "Die angeforderte Seite gibt es nicht.");

    let forged = german(&client, "POST", "/notes").form(&[("title", "x")]).csrf_token("forged");
    let forged = forged.send();
    assert_eq!(forged.status(), 403);
    assert!(forged.select_one(".error-page p").starts_with("Das Formular ist abgelaufen"));

    let invalid = german(&client, "POST", "/notes").form(&[("title", " "), ("content", "")]);
    let invalid = invalid.send();
    assert_eq!(invalid.status(), 422);
    assert_eq!(invalid.select_one("label[for='title']"), "Titel");
    assert_eq!(invalid.select_one("#title-error"), "Titel ist erforderlich.");
    let long = "x".repeat(201);
    let invalid = german(&client, "POST", "/notes").form(&[("title", long.as_str())]).send();
    assert_eq!(invalid.select_one("#title-error"), "Titel darf höchstens 200 Zeichen lang sein.");

    let created = german(&client, "POST", "/notes").form(&[("title", "Einkauf")]);
    let created = created.follow_redirects(true).send();
    assert_eq!(created.status(), 200, "{created:?}");
    assert_eq!(created.messages(), ["„Einkauf“ angelegt."]);
    assert_eq!(created.select_one("article .meta").split_whitespace().next(), Some("Angelegt"));
}

#[test]
fn the_admin_speaks_german_with_plurals() {
    let client = signed_in();
    for title in ["Eins", "Zwei", "Drei", "Vier"] {
        assert_eq!(client.post("/notes", &[("title", title)]).status(), 303);
    }
    let list = german(&client, "GET", "/admin/notes/").send();
    assert_eq!(list.status(), 200);
    assert_eq!(list.select_one("title"), "Notizen · Verwaltung · Burrow Notes");
    assert_eq!(list.select_one("h1").split_whitespace().next(), Some("Notizen"));
    assert_eq!(list.select(".admin-table thead th a"), ["Titel", "Angelegt am", "Geändert am"]);
    assert!(list.select(".admin-table thead th").contains(&"Autor".to_string()));
    assert_eq!(list.select("#admin-action option"), ["Ausgewählte Notizen löschen"]);
    assert_eq!(list.select(".admin-filters h3"), ["Autor", "Angelegt"]);
    assert_eq!(list.select_one(".admin-filters li a"), "Alle");
    let ids = list.attr("input[name='ids']", "value");
    assert_eq!(ids.len(), 4);

    // Three: the plural form, on the confirmation and in the flash message.
    let picked = [("action", "delete"), ("ids", &ids[0]), ("ids", &ids[1]), ("ids", &ids[2])];
    let confirm = german(&client, "POST", "/admin/notes/bulk").form(&picked).send();
    assert_eq!(confirm.select_one("h1"), "3 Notizen löschen?");
    assert_eq!(confirm.select_one(".card > p.muted"), "Keine anderen Zeilen verweisen darauf.");
    assert_eq!(confirm.select_one(".card button[type='submit']"), "Ja, 3 Notizen löschen");
    let mut confirmed = picked.to_vec();
    confirmed.push(("confirmed", "1"));
    let done = german(&client, "POST", "/admin/notes/bulk").form(&confirmed);
    let done = done.follow_redirects(true).send();
    assert_eq!(done.messages(), ["3 Notizen gelöscht."]);
    // One: the singular form.
    let one = [("action", "delete"), ("ids", &ids[3]), ("confirmed", "1")];
    let done = german(&client, "POST", "/admin/notes/bulk").form(&one);
    let done = done.follow_redirects(true).send();
    assert_eq!(done.messages(), ["Notiz gelöscht."]);
    // The same in English.
    client.post("/notes", &[("title", "Five")]);
    let id = client.get("/admin/notes/").attr("input[name='ids']", "value").remove(0);
    let done =
        client.post("/admin/notes/bulk", &[("action", "delete"), ("ids", &id), ("confirmed", "1")]);
    assert_eq!(done.status(), 303);
    assert_eq!(client.get("/admin/notes/").messages(), ["Deleted note."]);
}

#[test]
fn the_job_queues_admin_speaks_german() {
    let client = signed_in();
    let jobs = client.context().jobs.clone();
    let first = client.block_on(jobs.enqueue(notes::ExportNotes { export_id: 1 })).unwrap();
    let second = client.block_on(jobs.enqueue(notes::ExportNotes { export_id: 2 })).unwrap();
    let list = german(&client, "GET", "/admin/jobs/").send();
    assert_eq!(list.status(), 200);
    assert_eq!(list.select_one("h1").split_whitespace().next(), Some("Aufträge"));
    let columns = list.select(".admin-table thead th");
    for column in ["Typ", "Warteschlange", "Status", "Versuche", "Fällig um", "Letzter Fehler"] {
        assert!(columns.iter().any(|c| c.starts_with(column)), "{column} in {columns:?}");
    }
    assert!(list.select(".admin-table tbody td").contains(&"Wartend".to_string()));
    assert_eq!(list.select(".admin-filters h3"), ["Status", "Angelegt"]);
    let actions = list.select("#admin-action option");
    assert_eq!(actions, ["Ausgewählte Aufträge löschen", "Jetzt wiederholen", "Abbrechen"]);

    let (a, b) = (first.to_string(), second.to_string());
    let cancel = [("action", "cancel"), ("ids", a.as_str()), ("ids", b.as_str())];
    let confirm = german(&client, "POST", "/admin/jobs/bulk").form(&cancel).send();
    assert_eq!(confirm.select_one(".card button[type='submit']"), "Ja, abbrechen");
    let mut confirmed = cancel.to_vec();
    confirmed.push(("confirmed", "1"));
    let done = german(&client, "POST", "/admin/jobs/bulk").form(&confirmed);
    assert_eq!(done.follow_redirects(true).send().messages(), ["2 Aufträge abgebrochen."]);
    // Only a dead job is queued again: the other is left alone, and the message says so.
    let running = client.block_on(jobs.enqueue(notes::ExportNotes { export_id: 3 })).unwrap();
    let c = running.to_string();
    let retry = [("action", "retry"), ("ids", a.as_str()), ("ids", c.as_str())];
    let done = german(&client, "POST", "/admin/jobs/bulk").form(&retry);
    let messages = done.follow_redirects(true).send().messages();
    assert_eq!(
        messages,
        ["1 von 2 Aufträgen wieder eingereiht; die in einem anderen Zustand blieben unverändert."]
    );
}

#[test]
fn the_users_and_invites_admin_speaks_german() {
    let client = signed_in();
    let users = german(&client, "GET", "/admin/users/").send();
    assert_eq!(users.status(), 200, "{users:?}");
    assert_eq!(users.select_one("h1").split_whitespace().next(), Some("Benutzer"));
    let columns = users.select(".admin-table thead th a");
    assert_eq!(
        columns,
        ["Benutzername ▲", "Anzeigename", "E-Mail-Adresse", "Rolle", "Angelegt am"]
    );
    assert_eq!(users.select(".admin-filters h3"), ["Rolle", "Aktiv", "Beigetreten"]);
    let actions = users.select("#admin-action option");
    assert!(actions.contains(&"Deaktivieren (meldet sie ab)".to_string()), "{actions:?}");
    let cells = users.select(".admin-table tbody td").join(" ");
    assert!(cells.contains("Admin") && cells.contains("Ja"), "{cells}");
    // Ann's language (that of her mails): the site's default until she chooses one with
    // the switcher; her German browser alone does not change it.
    let ann = users.attr("input[name='ids']", "value").remove(0);
    let language = |client: &Client| {
        let page = german(client, "GET", &format!("/admin/users/{ann}")).send();
        let fields = page.select(".field.readonly");
        let field = fields.iter().find(|f| f.starts_with("Sprache"));
        field.unwrap_or_else(|| panic!("{fields:?}"))["Sprache".len()..].trim().to_string()
    };
    assert_eq!(language(&client), "—");
    let switched = german(&client, "POST", "/i18n/language").form(&[("lang", "de"), ("next", "/")]);
    assert_eq!(switched.follow_redirects(false).send().status(), 303);
    assert_eq!(language(&client), "de");

    // The last admin stays one, said in German (an action's message, a refusal).
    let deactivate = german(&client, "POST", &format!("/admin/users/{ann}/actions/deactivate"));
    let done = deactivate.form(&[("x", "")]).follow_redirects(true).send();
    let kept = "Nichts geändert: Damit würde der letzte aktive Administrator deaktiviert.";
    assert_eq!(done.messages(), [kept]);
    let mut form = client.get(&format!("/admin/users/{ann}")).form_fields("form.admin-form");
    form.iter_mut().filter(|(k, _)| k == "role").for_each(|(_, v)| *v = "user".into());
    let demoted = german(&client, "POST", &format!("/admin/users/{ann}")).form(&form).send();
    assert_eq!(demoted.status(), 422);
    let refusal = demoted.select_one(".errors");
    assert!(refusal.contains("Dies ist der letzte aktive Administrator"), "{refusal}");

    // An invite: made, and revoked, in German (mail is off: the link is shown).
    let made = german(&client, "POST", "/admin/invites/new").form(&[("email", "ida@example.org")]);
    let made = made.follow_redirects(true).send();
    let message = made.messages().join(" ");
    assert!(
        message.starts_with("ida@example.org eingeladen. E-Mail ist abgeschaltet"),
        "{message}"
    );
    let invites = german(&client, "GET", "/admin/invites/").send();
    assert_eq!(invites.select_one("h1").split_whitespace().next(), Some("Einladungen"));
    let id = invites.attr("input[name='ids']", "value").remove(0);
    let revoke = german(&client, "POST", &format!("/admin/invites/{id}/actions/revoke"));
    let revoked = revoke.form(&[("x", "")]).follow_redirects(true).send();
    assert_eq!(revoked.messages(), ["1 Einladung widerrufen."]);
}

#[tokio::test]
async fn a_german_browser_gets_german_pages_from_the_binary() {
    let dir = tempdir();
    let server = Launch::serve(dir.path()).start();
    let http = reqwest::Client::new();
    let page = |path: &str, language: &str| {
        http.get(server.url(path)).header("accept-language", language.to_string()).send()
    };
    let home = page("/", "de").await.unwrap();
    assert_eq!(home.status(), 200);
    let body = home.text().await.unwrap();
    assert!(body.contains("<html lang=\"de\">"), "{body}");
    assert!(body.contains("Ihre Notizen, in einer Datei."));
    let missing = page("/nothing-here", "de-CH").await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.text().await.unwrap().contains("Die angeforderte Seite gibt es nicht."));
    let english = page("/", "en-GB").await.unwrap().text().await.unwrap();
    assert!(english.contains("<html lang=\"en\">") && english.contains("Your notes, in one file."));
}

#[test]
fn a_language_the_site_cannot_show_stops_the_start() {
    for (args, words) in [
        (
            &["--i18n-default-language", "fr"][..],
            &["--i18n-default-language", "no catalog is in fr"][..],
        ),
        (
            &["--i18n-languages", "en", "--i18n-default-language", "de"],
            &["--i18n-default-language", "not among"],
        ),
        (&["--i18n-languages", "en,d_e"], &["--i18n-languages", "not a language tag"]),
    ] {
        let dir = tempdir();
        let out = Launch::serve(dir.path()).args(args).run();
        Failure::of(&out).mentions(words).no_database(dir.path()).check();
    }
    // English only: no switcher, English whatever the browser asks.
    let client = Client::with_args(notes::server(), &["--i18n-languages", "en"]);
    let home = german(&client, "GET", "/").send();
    assert_eq!(home.attr("html", "lang"), ["en"]);
    assert!(home.select(".language-switch").is_empty());
    assert_eq!(client.post("/i18n/language", &[("lang", "en")]).status(), 404);
}
