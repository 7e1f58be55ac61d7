//! HTTP/1.1 written and read by hand on plain sockets, for what a client library hides or
//! does not allow: chunked and `Expect: 100-continue` bodies, an answer sent before the
//! body was read, a connection from a chosen address, errors reported instead of panics.

use std::fmt::Display;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A new connection to the server's port, with generous read and write timeouts.
pub fn connect(port: u16) -> std::io::Result<TcpStream> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    Ok(stream)
}

/// A request to 127.0.0.1:`port` that asks the server to close the connection after its
/// answer (`Connection: close`), so the answer ends at EOF at the latest.
pub struct RawRequest {
    port: u16,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    chunked: bool,
}

impl RawRequest {
    pub fn new(port: u16, method: &str, path: &str) -> RawRequest {
        RawRequest {
            port,
            method: method.to_string(),
            path: path.to_string(),
            headers: Vec::new(),
            body: None,
            chunked: false,
        }
    }

    pub fn get(port: u16, path: &str) -> RawRequest {
        RawRequest::new(port, "GET", path)
    }

    /// A POST of a form (`application/x-www-form-urlencoded`).
    pub fn post_form(port: u16, path: &str, body: impl Into<Vec<u8>>) -> RawRequest {
        RawRequest::new(port, "POST", path)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
    }

    pub fn header(mut self, name: impl Display, value: impl Display) -> RawRequest {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn headers<N: Display, V: Display>(
        self,
        headers: impl IntoIterator<Item = (N, V)>,
    ) -> RawRequest {
        headers.into_iter().fold(self, |request, (name, value)| request.header(name, value))
    }

    /// A body, announced by `Content-Length` (even when empty).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> RawRequest {
        self.body = Some(body.into());
        self
    }

    /// Sends the body as 1 KiB chunks (`Transfer-Encoding: chunked`), so the server learns
    /// its size only while reading it.
    pub fn chunked(mut self) -> RawRequest {
        self.chunked = true;
        self
    }

    /// The request line and the headers, up to and with the blank line that ends them.
    pub fn head(&self) -> String {
        let mut head =
            format!("{} {} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n", self.method, self.path, self.port);
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        match &self.body {
            Some(_) if self.chunked => head.push_str("Transfer-Encoding: chunked\r\n"),
            Some(body) => head.push_str(&format!("Content-Length: {}\r\n", body.len())),
            None => {}
        }
        head.push_str("Connection: close\r\n\r\n");
        head
    }

    /// The body as it goes on the wire (chunked or not).
    pub fn wire_body(&self) -> Vec<u8> {
        let body = self.body.as_deref().unwrap_or_default();
        if !self.chunked {
            return body.to_vec();
        }
        let mut wire = Vec::new();
        for chunk in body.chunks(1024) {
            wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            wire.extend_from_slice(chunk);
            wire.extend_from_slice(b"\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        wire
    }

    /// Sends the request on a new connection and reads the answer.
    pub fn send(&self) -> std::io::Result<RawResponse> {
        self.send_on(connect(self.port)?)
    }

    /// Sends the whole request on `stream` in one write, then reads the answer. A server
    /// may answer before it has read the request (e.g. 413, 431) and close: when the write
    /// fails, that answer is what comes back, and the write error only if there is none.
    pub fn send_on(&self, mut stream: TcpStream) -> std::io::Result<RawResponse> {
        let mut request = self.head().into_bytes();
        request.extend(self.wire_body());
        let written = stream.write_all(&request);
        let answer = read_response(&mut BufReader::new(stream));
        match written {
            Err(e) if answer.is_err() => Err(e),
            _ => answer,
        }
    }

    /// Sends the request the way curl sends large bodies: with `Expect: 100-continue`,
    /// sending the body only if the server asks for it with `100 Continue`. A server that
    /// rejects the request from its headers (413) answers before any body byte is sent, so
    /// the answer cannot be lost to a connection reset while the client is still writing,
    /// as it can with a client that writes eagerly.
    pub fn send_expecting_continue(self) -> std::io::Result<RawResponse> {
        let request = self.header("Expect", "100-continue");
        let mut stream = connect(request.port)?;
        stream.write_all(request.head().as_bytes())?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let response = read_response(&mut reader)?;
        if response.status != 100 {
            return Ok(response);
        }
        stream.write_all(&request.wire_body())?;
        read_response(&mut reader)
    }
}

/// `GET path` on a new connection; an error instead of a panic if the connection or the
/// answer fails.
pub fn raw_get(port: u16, path: &str) -> std::io::Result<RawResponse> {
    RawRequest::get(port, path).send()
}

/// A response read off a raw socket.
pub struct RawResponse {
    pub status: u16,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced), for assertions and their messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

/// Reads one response (status line, headers, body by Content-Length, chunks or EOF; no
/// body after `100 Continue`).
pub fn read_response(reader: &mut impl BufRead) -> std::io::Result<RawResponse> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed before the status line",
        ));
    }
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| invalid(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let (name, value) =
            trimmed.split_once(':').ok_or_else(|| invalid(format!("bad header {trimmed:?}")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut response = RawResponse { status, headers, body: Vec::new() };
    if status == 100 {
        return Ok(response);
    }
    if let Some(length) = response.header("content-length") {
        let mut body =
            vec![0; length.parse().map_err(|_| invalid(format!("bad content-length {length}")))?];
        reader.read_exact(&mut body)?;
        response.body = body;
    } else if response
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| invalid(format!("bad chunk size {line:?}")))?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            response.body.extend_from_slice(&chunk[..size]);
        }
    } else {
        reader.read_to_end(&mut response.body)?;
    }
    Ok(response)
}
