//! Requests for checks made while servers restart, on a new connection each, reporting
//! what went wrong instead of panicking: liveness, a note posted, and a POST kept in flight
//! by trickling its body.

use std::io::{BufReader, Write};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::http::created_note_id;
use super::{Credentials, RawRequest, RawResponse, connect, encode, raw_get, read_response};

/// The `version` of `GET /healthz/live` if it answers 200, else a description of what it
/// answered.
pub fn live_version(port: u16) -> Result<String, String> {
    let res = raw_get(port, "/healthz/live").map_err(|e| format!("GET /healthz/live: {e}"))?;
    let body = res.text();
    if res.status != 200 {
        return Err(format!("GET /healthz/live: {} {body}", res.status));
    }
    let json: serde_json::Value = serde_json::from_str(&body)
        .map_err(|e| format!("GET /healthz/live: not JSON ({e}): {body}"))?;
    json["version"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("GET /healthz/live: no version in {body}"))
}

/// True if `GET /healthz/live` answers 200.
pub fn live(port: u16) -> bool {
    live_version(port).is_ok()
}

/// `POST /notes` on a new connection with the given credentials; the id from
/// `303 Location: /notes/{id}`, or a description of what came instead.
pub fn post_note(
    port: u16,
    credentials: &Credentials,
    title: &str,
    content: &str,
) -> Result<i64, String> {
    let res = note_form(port, credentials, title, content)
        .send()
        .map_err(|e| format!("POST /notes {title:?}: {e}"))?;
    created(title, res)
}

/// The `POST /notes` of the note form, with `credentials`.
fn note_form(port: u16, credentials: &Credentials, title: &str, content: &str) -> RawRequest {
    let body = format!("title={}&content={}", encode(title), encode(content));
    RawRequest::post_form(port, "/notes", body).headers(credentials.headers())
}

/// The id of `303 Location: /notes/{id}`, or a description of the answer.
fn created(title: &str, res: RawResponse) -> Result<i64, String> {
    created_note_id(title, res.status, res.header("location"), &res.text())
}

/// A `POST /notes` whose body is sent a few bytes at a time over `over`, from its own
/// thread: a request that is in flight for a while.
pub struct SlowPost {
    pub title: String,
    thread: JoinHandle<Result<RawResponse, String>>,
}

impl SlowPost {
    /// Connects, sends the head and the first bytes of the body, then returns (the rest
    /// of the body follows from the thread).
    pub fn start(port: u16, credentials: &Credentials, title: &str, over: Duration) -> SlowPost {
        let (tx, started) = mpsc::channel();
        let content = format!("sent slowly {}", "x".repeat(40));
        let request = note_form(port, credentials, title, &content);
        let (head, body) = (request.head(), request.wire_body());
        let thread = std::thread::spawn(move || {
            let fail = |step: &str, e: std::io::Error| format!("slow POST ({step}): {e}");
            let mut stream = connect(port).map_err(|e| fail("connect", e))?;
            stream.write_all(head.as_bytes()).map_err(|e| fail("head", e))?;
            let chunks: Vec<&[u8]> = body.chunks(body.len().div_ceil(16)).collect();
            let pause = over / chunks.len() as u32;
            for (i, chunk) in chunks.iter().enumerate() {
                if let Err(e) = stream.write_all(chunk) {
                    // The server may have answered early (e.g. 403) and closed: show that.
                    return read_response(&mut BufReader::new(stream)).map_err(|_| fail("body", e));
                }
                if i == 0 {
                    let _ = tx.send(());
                }
                std::thread::sleep(pause);
            }
            read_response(&mut BufReader::new(stream)).map_err(|e| fail("response", e))
        });
        // The thread signals once the first body bytes are out (or drops the sender on error).
        let _ = started.recv_timeout(Duration::from_secs(30));
        SlowPost { title: title.to_string(), thread }
    }

    /// Waits for the answer; `Err` describes what went wrong instead of a 303.
    pub fn finish(self) -> Result<RawResponse, String> {
        self.thread.join().unwrap_or_else(|_| Err("slow POST thread panicked".into()))
    }

    /// Waits for the answer and checks it is `303 Location: /notes/{id}`; returns the id.
    pub fn expect_created(self) -> Result<i64, String> {
        let title = format!("{} (slow)", self.title);
        created(&title, self.finish()?)
    }
}
