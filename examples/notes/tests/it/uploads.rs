//! Uploads: attachments on notes through multipart forms (with JavaScript off and with
//! htmx), stored content-addressed under `--storage-dir`, judged by their bytes, served
//! with safe headers, refused over the size limit while they stream in, and gone with
//! their note. The attachment tests run on both engines.

use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use crate::both_engines;
use crate::support::{
    Credentials, Database, Engine, Launch, RawRequest, Server, client, connect, create_note, mode,
    read_response, tempdir,
};

/// A real `width`×`height` 8-bit grayscale PNG: signature, IHDR, one stored (uncompressed)
/// zlib block of filtered rows in IDAT, IEND, with their CRCs.
fn png(width: u32, height: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend(kind);
        out.extend(data);
        let crc = crc32(&out[start..]);
        out.extend(crc.to_be_bytes());
    }
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffffu32;
        for &b in bytes {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
    let mut raw = Vec::new();
    for y in 0..height {
        raw.push(0); // filter: none
        raw.extend((0..width).map(|x| ((x * 40 + y * 90) % 256) as u8));
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &raw {
        a = (a + byte as u32) % 65521;
        b = (b + a) % 65521;
    }
    let mut zlib = vec![0x78, 0x01, 0x01];
    zlib.extend((raw.len() as u16).to_le_bytes());
    zlib.extend((!(raw.len() as u16)).to_le_bytes());
    zlib.extend(&raw);
    zlib.extend(((b << 16) | a).to_be_bytes());
    let mut ihdr = Vec::new();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 0, 0, 0, 0]); // 8 bits, grayscale, deflate, adaptive, no interlace
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &zlib);
    chunk(&mut out, b"IEND", &[]);
    out
}

/// The start of an x86-64 ELF executable.
fn elf() -> Vec<u8> {
    let mut bytes = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0\x01\0\0\0".to_vec();
    bytes.resize(4096, 0);
    bytes
}

const BOUNDARY: &str = "----burrow-upload-test";

/// A `multipart/form-data` body: text fields, then one file part.
fn multipart(fields: &[(&str, &str)], file: Option<(&str, &str, &str, &[u8])>) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .bytes(),
        );
    }
    if let Some((field, file_name, content_type, bytes)) = file {
        body.extend(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; \
                 filename=\"{file_name}\"\r\nContent-Type: {content_type}\r\n\r\n"
            )
            .bytes(),
        );
        body.extend(bytes);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{BOUNDARY}--\r\n").bytes());
    body
}

fn content_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// Posts a file to a note as a browser without JavaScript does: the CSRF token in the
/// form, not in a header.
async fn attach(
    http: &reqwest::Client,
    server: &Server,
    csrf: &Credentials,
    note: i64,
    file_name: &str,
    claimed: &str,
    bytes: &[u8],
) -> reqwest::Response {
    let body = multipart(&[("csrf_token", &csrf.token)], Some(("file", file_name, claimed, bytes)));
    http.post(server.url(&format!("/notes/{note}/attachments")))
        .header("Content-Type", content_type())
        .header("Cookie", &csrf.cookie)
        .body(body)
        .send()
        .await
        .expect("POST attachments")
}

fn media(dir: &Path) -> PathBuf {
    dir.join("data").join("media")
}

/// Every stored file (not uploads in progress) under the storage directory.
fn stored_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for kind in ["public", "private"] {
        let Ok(fanout) = std::fs::read_dir(media(dir).join(kind)) else { continue };
        for sub in fanout {
            for file in std::fs::read_dir(sub.unwrap().path()).unwrap() {
                found.push(file.unwrap().path());
            }
        }
    }
    found.sort();
    found
}

fn attachment_links(html: &str, note: i64) -> Vec<String> {
    let prefix = format!("/notes/{note}/attachments/");
    html.match_indices(&prefix)
        .filter_map(|(at, _)| {
            let rest = &html[at + prefix.len()..];
            let id: String = rest.chars().take_while(char::is_ascii_digit).collect();
            (!id.is_empty()).then(|| format!("{prefix}{id}"))
        })
        .collect()
}

both_engines!(attachments_are_stored_shown_served_and_deleted, |engine: Engine| async move {
    let dir = tempdir();
    let db = Database::new(engine, dir.path());
    let server = Launch::serve_on(&db, dir.path()).start();
    let http = client();
    let csrf = server.credentials();
    assert!(!media(dir.path()).exists(), "the storage directory is made by the first upload");
    let note = create_note(&http, &server, "With a picture", "See the attachment.").await;

    // A real PNG, by a browser without JavaScript: 303 back to the note.
    let image = png(3, 2);
    let res = attach(&http, &server, &csrf, note, "pixel.png", "image/png", &image).await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let stored = stored_files(dir.path());
    assert_eq!(stored.len(), 1, "{stored:?}");
    let sha256 = stored[0].file_name().unwrap().to_str().unwrap().to_string();
    assert!(stored[0].starts_with(media(dir.path()).join("private").join(&sha256[..2])));
    assert_eq!(std::fs::read(&stored[0]).unwrap(), image);
    assert_eq!(mode(&stored[0]), 0o640);
    assert_eq!(mode(&media(dir.path())), 0o750);
    assert_eq!(mode(&media(dir.path()).join("private")), 0o750);

    let page = http.get(server.url(&format!("/notes/{note}"))).header("Cookie", &csrf.cookie);
    let page = page.send().await.unwrap().text().await.unwrap();
    assert!(page.contains("pixel.png") && page.contains("3×2"), "note page:\n{page}");
    assert!(page.contains("enctype=\"multipart/form-data\""), "{page}");
    let links = attachment_links(&page, note);
    assert_eq!(links.len(), 1, "{page}");

    // Downloaded by its author, with the headers a file from anyone needs.
    let res = http.get(server.url(&links[0])).header("Cookie", &csrf.cookie).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let header = |name: &str| res.headers().get(name).map(|v| v.to_str().unwrap().to_string());
    assert_eq!(header("content-type").as_deref(), Some("image/png"));
    assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(
        header("content-disposition").as_deref(),
        Some("inline; filename=\"pixel.png\"; filename*=UTF-8''pixel.png")
    );
    assert_eq!(header("cache-control").as_deref(), Some("private, no-store"));
    assert_eq!(header("etag"), Some(format!("\"{sha256}\"")));
    assert_eq!(res.bytes().await.unwrap(), image);

    // Not by another user: the 404 of a note that is not theirs.
    let other = Credentials::sign_in_as(&Launch::serve_on(&db, dir.path()), server.port, "other");
    let res = http.get(server.url(&links[0])).header("Cookie", &other.cookie).send().await;
    assert_eq!(res.unwrap().status(), 404);
    // Private files are never under /media/, hash or not.
    for path in [format!("/media/{sha256}"), "/media/".into(), "/media".into()] {
        let res = http.get(server.url(&path)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
    }

    // A renamed executable claiming to be a PNG: 422 with the form's error, nothing stored.
    let res = attach(&http, &server, &csrf, note, "photo.png", "image/png", &elf()).await;
    assert_eq!(res.status(), 422);
    let body = res.text().await.unwrap();
    assert!(body.contains("File must be a file of type image"), "{body}");
    assert_eq!(stored_files(dir.path()).len(), 1);

    // With htmx: the attachments section answers, the CSRF token still in the form.
    let body = multipart(&[("csrf_token", &csrf.token)], Some(("file", "again.png", "", &image)));
    let res = http
        .post(server.url(&format!("/notes/{note}/attachments")))
        .header("Content-Type", content_type())
        .header("Cookie", &csrf.cookie)
        .header("HX-Request", "true")
        .header("HX-Trigger", "attach")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let section = res.text().await.unwrap();
    assert!(section.contains("id=\"attachments\"") && !section.contains("<html"), "{section}");
    assert_eq!(attachment_links(&section, note).len(), 2, "{section}");
    assert_eq!(stored_files(dir.path()).len(), 1, "the same bytes are stored once");

    // Without the token in the form or a header: 403, nothing stored.
    let body = multipart(&[], Some(("file", "x.png", "image/png", &png(1, 1))));
    let res = http
        .post(server.url(&format!("/notes/{note}/attachments")))
        .header("Content-Type", content_type())
        .header("Cookie", &csrf.cookie)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(stored_files(dir.path()).len(), 1);
    let spool = std::fs::read_dir(media(dir.path()).join(".uploads")).unwrap().count();
    assert_eq!(spool, 0, "uploads left in the spool directory");

    // A second note with the same file: deleting the first keeps the file, deleting the
    // second deletes it (the file is stored once for both).
    let second = create_note(&http, &server, "Same picture", "").await;
    let res = attach(&http, &server, &csrf, second, "copy.png", "image/png", &image).await;
    assert_eq!(res.status(), 303);
    let delete = |id: i64| {
        http.post(server.url(&format!("/notes/{id}/delete")))
            .header("Cookie", &csrf.cookie)
            .header("X-CSRF-Token", &csrf.token)
            .send()
    };
    assert_eq!(delete(note).await.unwrap().status(), 303);
    assert_eq!(stored_files(dir.path()).len(), 1, "still attached to the second note");
    assert_eq!(delete(second).await.unwrap().status(), 303);
    assert_eq!(stored_files(dir.path()), Vec::<PathBuf>::new(), "deleted with the last note");

    // A note deleted elsewhere (the admin, a deleted user: here plain SQL) takes its rows
    // with it (ON DELETE CASCADE); the next sweep deletes their files.
    let (elsewhere, here) = (
        create_note(&http, &server, "Deleted elsewhere", "").await,
        create_note(&http, &server, "Deleted here", "").await,
    );
    let res = attach(&http, &server, &csrf, elsewhere, "a.png", "image/png", &png(5, 5)).await;
    assert_eq!(res.status(), 303);
    let res = attach(&http, &server, &csrf, here, "b.png", "image/png", &png(6, 6)).await;
    assert_eq!(res.status(), 303);
    assert_eq!(stored_files(dir.path()).len(), 2);
    let sql = format!("DELETE FROM notes WHERE id = {elsewhere}");
    match engine {
        Engine::Sqlite => {
            let conn = rusqlite::Connection::open(db.path()).unwrap();
            conn.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
            conn.execute_batch(&format!("PRAGMA foreign_keys = ON; {sql}")).unwrap();
        }
        Engine::Postgres => {
            db.psql(&sql);
        }
    }
    assert_eq!(stored_files(dir.path()).len(), 2, "no sweep has run yet");
    assert_eq!(delete(here).await.unwrap().status(), 303);
    assert_eq!(stored_files(dir.path()), Vec::<PathBuf>::new(), "the sweep took both");
});

/// Public files (here placed by hand, as an app storing with `Access::Public` would) are
/// served under `/media/{sha256}` with immutable caching; nothing else is under `/media/`.
#[tokio::test]
async fn media_serves_public_files_by_hash_only() {
    let dir = tempdir();
    let server = Launch::serve(dir.path()).start();
    let http = client();
    let csrf = server.credentials();
    let note = create_note(&http, &server, "Picture", "").await;
    let image = png(4, 4);
    let res = attach(&http, &server, &csrf, note, "p.png", "image/png", &image).await;
    assert_eq!(res.status(), 303);
    let private = stored_files(dir.path()).remove(0);
    let sha256 = private.file_name().unwrap().to_str().unwrap().to_string();
    let public = media(dir.path()).join("public").join(&sha256[..2]);
    std::fs::create_dir_all(&public).unwrap();
    std::fs::copy(&private, public.join(&sha256)).unwrap();
    std::fs::write(media(dir.path()).join("public").join("notes.txt"), "not a stored file")
        .unwrap();

    let res = http.get(server.url(&format!("/media/{sha256}"))).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let header = |name: &str| res.headers().get(name).map(|v| v.to_str().unwrap().to_string());
    assert_eq!(header("content-type").as_deref(), Some("image/png"));
    assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(header("cache-control").as_deref(), Some("public, max-age=31536000, immutable"));
    let disposition = header("content-disposition").unwrap();
    assert_eq!(
        disposition,
        format!("inline; filename=\"{sha256}.png\"; filename*=UTF-8''{sha256}.png")
    );
    assert_eq!(header("etag"), Some(format!("\"{sha256}\"")));
    assert_eq!(res.bytes().await.unwrap(), image);
    let res = http
        .get(server.url(&format!("/media/{sha256}")))
        .header("If-None-Match", format!("\"{sha256}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 304);

    // Listings, other names, traversal (sent raw: a client would normalize `..`).
    for path in [
        "/media/".to_string(),
        "/media/public".into(),
        "/media/notes.txt".into(),
        format!("/media/{}", sha256.to_uppercase()),
        format!("/media/{}", &sha256[..63]),
        "/media/../app.db".into(),
        "/media/..%2fapp.db".into(),
        "/media/%2e%2e/%2e%2e/etc/passwd".into(),
        format!("/media/{}/..%2f..%2fapp.db", sha256),
    ] {
        let res = RawRequest::get(server.port, &path).send().unwrap();
        assert_eq!(res.status, 404, "{path}: {}", res.text());
    }

    // `backup --include-media` copies the stored files beside the database's copy.
    let backups = dir.path().join("backups");
    std::fs::create_dir(&backups).unwrap();
    let out = Launch::serve(dir.path()).args(["backup", "backups", "--include-media"]).run();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("Copied 2 uploaded file(s)"), "{}", out.stdout);
    let copy = std::fs::read_dir(&backups)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "media"))
        .expect("BACKUP.media beside the backup");
    let copied = copy.join("private").join(&sha256[..2]).join(&sha256);
    assert_eq!(std::fs::read(copied).unwrap(), image);
    assert!(copy.join("public").join(&sha256[..2]).join(&sha256).exists());
    assert!(!copy.join("public").join("notes.txt").exists(), "only stored files are copied");
    let out = Launch::serve(dir.path()).args(["backup", "backups/again.db"]).run();
    assert_eq!(out.code(), Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("are not in this backup: add --include-media"), "{}", out.stdout);
}

/// The server's peak resident memory, from /proc.
fn peak_rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// 50 MB over a 20 MB limit: refused with 413 at once when the length is declared, and
/// after at most the limit when it is not (chunked), with the server's memory flat: the
/// body is never held whole, not even the part under the limit.
#[tokio::test]
async fn an_upload_over_the_limit_is_refused_while_it_streams() {
    let dir = tempdir();
    let server = Launch::serve(dir.path()).args(["--upload-max-size", "20MB"]).start();
    let http = client();
    let csrf = server.credentials();
    let note = create_note(&http, &server, "Big", "").await;
    let path = format!("/notes/{note}/attachments");
    let before = peak_rss_kb(server.pid());

    const SIZE: usize = 50 << 20;
    let head = multipart(&[("csrf_token", &csrf.token)], None);
    let head = &head[..head.len() - format!("--{BOUNDARY}--\r\n").len()];
    let file_head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; \
         filename=\"big.png\"\r\nContent-Type: image/png\r\n\r\n"
    );

    // Declared: answered from the headers, before the body is sent.
    let declared = RawRequest::post_form(server.port, &path, Vec::new())
        .header("Content-Type", content_type())
        .header("Cookie", &csrf.cookie)
        .body(vec![b'x'; SIZE])
        .send_expecting_continue()
        .unwrap();
    assert_eq!(declared.status, 413, "{}", declared.text());

    // Not declared: a real file of 50 MB streamed chunk by chunk; the server answers once
    // it has read the limit, and the writer finds the connection closed long before the
    // end (the kernel's socket buffers hold a few MB at most). (The response is read while writing, so a reset cannot swallow it.)
    let request = RawRequest::new(server.port, "POST", &path)
        .header("Content-Type", content_type())
        .header("Cookie", &csrf.cookie)
        .header("Transfer-Encoding", "chunked");
    let mut stream = connect(server.port).unwrap();
    stream.write_all(request.head().as_bytes()).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let answer = std::thread::spawn(move || read_response(&mut reader));
    let mut sent = 0usize;
    let mut write_chunk = |bytes: &[u8]| -> std::io::Result<()> {
        stream.write_all(format!("{:x}\r\n", bytes.len()).as_bytes())?;
        stream.write_all(bytes)?;
        stream.write_all(b"\r\n")
    };
    let mut result = write_chunk(head).and_then(|()| write_chunk(file_head.as_bytes()));
    let block = vec![0u8; 64 << 10];
    while result.is_ok() && sent < SIZE {
        result = write_chunk(&block);
        sent += block.len();
    }
    if result.is_ok() {
        result = stream.write_all(b"0\r\n\r\n");
    }
    let answer = answer.join().unwrap().expect("an answer before the connection closed");
    assert_eq!(answer.status, 413, "{}", answer.text());
    assert!(result.is_err() || sent >= SIZE, "the write loop ended early without an error");
    assert!(
        sent < SIZE,
        "the server read all {SIZE} bytes instead of stopping at the limit ({sent} sent)"
    );

    let after = peak_rss_kb(server.pid());
    eprintln!("peak RSS {before} kB before, {after} kB after; {sent} of {SIZE} bytes sent");
    // Buffering the 20 MB it read would raise the peak by 20 MB at least.
    assert!(
        after < before + 12 * 1024,
        "peak RSS grew from {before} kB to {after} kB while refusing a 50 MB upload"
    );
    assert!(stored_files(dir.path()).is_empty());
    let spool = std::fs::read_dir(media(dir.path()).join(".uploads")).unwrap().count();
    assert_eq!(spool, 0, "the refused upload's spooled part is left on disk");
}

/// `--storage-dir` that cannot be used stops the start with one line naming the setting.
#[test]
fn a_storage_dir_that_is_a_file_is_refused_at_start() {
    let dir = tempdir();
    let file = dir.path().join("media");
    std::fs::write(&file, "").unwrap();
    let out = Launch::serve(dir.path()).arg("--storage-dir").arg(&file).run();
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("--storage-dir") && out.stderr.contains("not a directory"),
        "{}",
        out.stderr
    );
    assert!(!dir.path().join("app.db").exists(), "the database was created before the check");
}
