//! Access log: one line per request (text or JSON by `--log-format`), written by the core
//! layer once the response is ready.
//!
//! The line is `tracing`'s (target `burrow::access`, message `request`). When the installed
//! subscriber would log it without colours, it is formatted here instead, byte for byte as
//! `tracing-subscriber` formats it, into a reused buffer: the generic formatter (field
//! visitors, a timestamp from scratch) cost 5% of a small request.

use std::cell::RefCell;
use std::io::Write;
use std::net::IpAddr;
use std::time::Instant;

use axum::response::Response;

use super::errors::Summary;
use crate::logging::{self, ACCESS_TARGET};
use crate::settings::LogFormat;

pub(crate) fn log(request: &Summary, response: &Response, start: Instant) {
    let line = AccessLine {
        method: request.method.as_str(),
        // The path only: query strings may carry tokens.
        path: request.uri.path(),
        status: response.status().as_u16(),
        micros: start.elapsed().as_micros() as u64,
        request_id: request.request_id(),
        client: request.client,
        proxy: request.proxy,
    };
    match logging::access_format() {
        Some(format) => line.write(format),
        None => line.trace(),
    }
}

/// What an access line says.
struct AccessLine<'a> {
    method: &'a str,
    path: &'a str,
    status: u16,
    micros: u64,
    request_id: &'a str,
    /// The client's address (behind trusted proxies, the one they forwarded).
    client: Option<IpAddr>,
    /// The TCP peer when it is not the client: the proxy.
    proxy: Option<IpAddr>,
}

impl AccessLine<'_> {
    fn trace(&self) {
        tracing::info!(
            target: ACCESS_TARGET,
            method = %self.method,
            path = self.path,
            status = self.status,
            duration_us = self.micros,
            request_id = self.request_id,
            client = self.client.map(tracing::field::display),
            proxy = self.proxy.map(tracing::field::display),
            "request"
        );
    }

    fn write(&self, format: LogFormat) {
        thread_local! {
            static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        }
        BUFFER.with_borrow_mut(|buffer| {
            buffer.clear();
            self.format(format, &logging::timestamp(), buffer);
            logging::write_access(buffer);
            // A very long line (a huge path) does not keep its buffer for the thread's life.
            buffer.shrink_to(4096);
        });
    }

    /// Appends the line: the same bytes as `tracing-subscriber`'s.
    fn format(&self, format: LogFormat, timestamp: &[u8], out: &mut Vec<u8>) {
        let AccessLine { method, path, status, micros, request_id, client, proxy } = self;
        // Writing to a Vec cannot fail.
        let _ = match format {
            LogFormat::Text => {
                // By hand rather than `write!`: `core::fmt` was about half of the line's cost.
                out.extend_from_slice(timestamp);
                out.extend_from_slice(b"  INFO request method=");
                out.extend_from_slice(method.as_bytes());
                out.extend_from_slice(b" path=");
                debug_str(out, path);
                out.extend_from_slice(b" status=");
                decimal(out, u64::from(*status));
                out.extend_from_slice(b" duration_us=");
                decimal(out, *micros);
                out.extend_from_slice(b" request_id=");
                // Quoted as `{:?}` would, with nothing to escape: generated ids are hex and
                // '-', and a client's passed `request_id::acceptable`, which has no `"`,
                // `\` or control characters.
                debug_assert!(
                    request_id.bytes().all(|b| b.is_ascii_graphic() && !b"\"\\".contains(&b))
                );
                out.push(b'"');
                out.extend_from_slice(request_id.as_bytes());
                out.push(b'"');
                for (name, ip) in [(&b" client="[..], client), (b" proxy=", proxy)] {
                    if let Some(ip) = ip {
                        out.extend_from_slice(name);
                        address(out, *ip);
                    }
                }
                out.push(b'\n');
                Ok(())
            }
            LogFormat::Json => {
                out.extend_from_slice(b"{\"timestamp\":\"");
                out.extend_from_slice(timestamp);
                out.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":\"request\",\"method\":");
                json_string(out, method);
                out.extend_from_slice(b",\"path\":");
                json_string(out, path);
                write!(out, ",\"status\":{status},\"duration_us\":{micros},\"request_id\":")
                    .map(|()| json_string(out, request_id))
                    .and_then(|()| match client {
                        Some(client) => write!(out, ",\"client\":\"{client}\""),
                        None => Ok(()),
                    })
                    .and_then(|()| match proxy {
                        Some(proxy) => write!(out, ",\"proxy\":\"{proxy}\""),
                        None => Ok(()),
                    })
                    .and_then(|()| writeln!(out, ",\"target\":\"{ACCESS_TARGET}\"}}"))
            }
        };
    }
}

/// `value` as `{value:?}` writes it: quoted and escaped (the common case, printable ASCII
/// without `"` or `\`, without `core::fmt`).
fn debug_str(out: &mut Vec<u8>, value: &str) {
    // A fold without early exit, which the compiler vectorizes (`all` tested byte by byte).
    let plain = value
        .bytes()
        .fold(true, |plain, b| plain & (b' '..=b'~').contains(&b) & (b != b'"') & (b != b'\\'));
    if plain {
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else {
        let _ = write!(out, "{value:?}");
    }
}

/// `n` in decimal digits. Not inlined: one copy of the loop for the line's two numbers, as
/// the request path's code is what a request waits for (bench/README.md, step 49).
#[inline(never)]
fn decimal(out: &mut Vec<u8>, mut n: u64) {
    let len = n.checked_ilog10().unwrap_or(0) as usize + 1;
    let mut digits = [0u8; 20];
    for slot in digits[..len].iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
    // The whole array, then the unused end cut off: a copy of a length known at compile
    // time is a few stores, where one of `len` bytes calls `memcpy` (six numbers a line).
    out.extend_from_slice(&digits);
    out.truncate(out.len() - (digits.len() - len));
}

/// An address as `Display` writes it (IPv4 without `core::fmt`).
fn address(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            // Into an array, copied once as `decimal` does: with `decimal` for each octet
            // this was half of the line's code.
            let mut text = [0u8; 16];
            let mut len = 0;
            for octet in v4.octets() {
                if octet >= 100 {
                    text[len] = b'0' + octet / 100;
                    len += 1;
                }
                if octet >= 10 {
                    text[len] = b'0' + octet / 10 % 10;
                    len += 1;
                }
                text[len] = b'0' + octet % 10;
                text[len + 1] = b'.';
                len += 2;
            }
            // Without the last octet's '.'.
            out.extend_from_slice(&text);
            out.truncate(out.len() - (text.len() - len) - 1);
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

fn json_string(out: &mut Vec<u8>, value: &str) {
    // serde_json escapes as the JSON subscriber does (it writes with serde_json too).
    let _ = serde_json::to_writer(&mut *out, value);
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// What the subscriber writes, kept.
    #[derive(Clone, Default)]
    struct Kept(Arc<Mutex<Vec<u8>>>);

    impl Write for Kept {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The line `tracing-subscriber` writes for `line`, configured as the server's.
    fn subscribers_line(format: LogFormat, line: &AccessLine) -> String {
        let kept = Kept::default();
        let writer = kept.clone();
        let filter = logging::filter(tracing::Level::INFO);
        let subscriber = logging::subscriber(format, filter, false, move || writer.clone());
        tracing::subscriber::with_default(subscriber, || line.trace());
        String::from_utf8(kept.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn lines_are_the_subscribers_byte_for_byte() {
        let local = Some("127.0.0.1".parse().unwrap());
        let v6 = Some("::1".parse().unwrap());
        let client = Some("203.0.113.9".parse().unwrap());
        let lines = [
            ("GET", "/plaintext", 200, 59, "37eae0851451-00000000", local, None),
            ("POST", "/quote\"back\\slash", 403, 0, "", None, None),
            ("DELETE", "/ünïcode/\u{1}\t", 500, u64::MAX, "client-id_1.2:3/4+5=6", v6, None),
            ("GET", "/behind/a/proxy", 200, 7, "x", client, local),
            ("GET", "/it's ~ {here}", 200, 10, "ab", Some("255.0.10.1".parse().unwrap()), v6),
        ];
        for format in [LogFormat::Text, LogFormat::Json] {
            for (method, path, status, micros, request_id, client, proxy) in lines {
                let line = AccessLine { method, path, status, micros, request_id, client, proxy };
                let theirs = subscribers_line(format, &line);
                // The subscriber's own timestamp, put into ours.
                let at = theirs.find(char::is_numeric).unwrap();
                let timestamp = &theirs.as_bytes()[at..at + 27];
                let mut ours = Vec::new();
                line.format(format, timestamp, &mut ours);
                assert_eq!(String::from_utf8(ours).unwrap(), theirs, "{format:?}");
            }
        }
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for n in 0..=255u8 {
            for ip in [[n, 0, 9, 10], [99, n, 100, 255], [1, 10, n, 0], [255, 255, 100, n]] {
                let ip = IpAddr::from(ip);
                let mut ours = b"x".to_vec();
                address(&mut ours, ip);
                assert_eq!(String::from_utf8(ours).unwrap(), format!("x{ip}"));
            }
        }
        let mut v6 = vec![];
        address(&mut v6, "2001:db8::7".parse().unwrap());
        assert_eq!(v6, b"2001:db8::7");
    }

    #[test]
    fn timestamps_are_the_subscribers_shape() {
        let kept = Kept::default();
        let writer = kept.clone();
        let filter = logging::filter(tracing::Level::INFO);
        let subscriber =
            logging::subscriber(LogFormat::Text, filter, false, move || writer.clone());
        let before = logging::timestamp();
        tracing::subscriber::with_default(subscriber, || tracing::info!("now"));
        let after = logging::timestamp();
        let text = |t: &[u8]| String::from_utf8(t[..27].to_vec()).unwrap();
        let (before, theirs, after) = (text(&before), text(&kept.0.lock().unwrap()), text(&after));
        // Same shape, so the text's order is the time's: ours must bracket theirs.
        let shape = |t: &str| t.replace(|c: char| c.is_ascii_digit(), "0");
        assert_eq!(shape(&before), shape(&theirs), "{before} against {theirs}");
        assert!(before <= theirs && theirs <= after, "{before} ≤ {theirs} ≤ {after}");
    }
}
