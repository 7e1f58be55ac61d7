//! Stand-in for the template's tests/app.rs while `burrow::test::Client` (burrow's
//! `testing` feature) is not in the burrow crate yet: the same checks, over HTTP against
//! the built binary. tests/new.rs writes it into the generated project only when burrow has
//! no `testing` feature. `{{crate}}`, `{{bin}}` and `{{Title}}` are filled in by tests/new.rs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

/// The binary serving a fresh database; killed when dropped.
struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("{{bin}}"))
            .args(["--port", "0", "--database-dsn"])
            .arg(dir.path().join("app.db"))
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
        std::thread::spawn(move || lines.for_each(drop));
        Server { child, port, _dir: dir }
    }

    /// One HTTP/1.0 exchange (the body ends with the connection): status, `Set-Cookie`
    /// pairs, `Location` and body.
    fn send(&self, method: &str, path: &str, cookie: &str, body: &str) -> Reply {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let request = format!(
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let mut cookies = Vec::new();
        let mut location = String::new();
        for line in head.lines().skip(1) {
            let (name, value) = line.split_once(": ").unwrap();
            match name.to_ascii_lowercase().as_str() {
                "set-cookie" => cookies.push(value.split(';').next().unwrap().to_string()),
                "location" => location = value.to_string(),
                _ => {}
            }
        }
        Reply { status, cookies: cookies.join("; "), location, body: body.to_string() }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Reply {
    status: u16,
    cookies: String,
    location: String,
    body: String,
}

/// The page's CSRF token and cookie, as a browser holds them after a GET.
fn form(server: &Server) -> (String, String) {
    let page = server.send("GET", "/", "", "");
    const FIELD: &str = "name=\"csrf_token\" value=\"";
    let at = page.body.find(FIELD).expect("a csrf_token field") + FIELD.len();
    (page.body[at..].chars().take_while(|&c| c != '"').collect(), page.cookies)
}

#[test]
fn the_list_starts_empty() {
    let server = Server::start();
    let page = server.send("GET", "/", "", "");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<h1>{{Title}}</h1>"), "{}", page.body);
    assert!(page.body.contains("Nothing yet"), "{}", page.body);
}

#[test]
fn an_invalid_form_is_shown_again() {
    let server = Server::start();
    let (token, cookie) = form(&server);
    let page = server.send("POST", "/", &cookie, &format!("csrf_token={token}&title=+"));
    assert_eq!(page.status, 422, "{}", page.body);
    assert!(page.body.contains("<h1>{{Title}}</h1>"), "{}", page.body);
}

#[test]
fn adding_an_item_redirects_to_the_list_with_a_message() {
    let server = Server::start();
    let (token, cookie) = form(&server);
    let body = format!("csrf_token={token}&title=The+first+item");
    let page = server.send("POST", "/", &cookie, &body);
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location, "/");
    let page = server.send("GET", "/", &page.cookies, "");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Added “The first item”."), "{}", page.body);
    assert!(page.body.contains("The first item <time"), "{}", page.body);
}
