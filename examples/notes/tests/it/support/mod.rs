//! The harness of the integration tests: no tests here, only what they share.
//!
//! Every test gets its own temporary directory (database, config, PID file) and its own
//! port (`--port 0`; the port is read from the `listening on http://127.0.0.1:PORT` log
//! line), so tests run in parallel.
//!
//! What nearly every test uses is re-exported here (`use crate::support::{Launch, …}`):
//! - [`launch`]: running the `server` binary ([`Launch`]) to completion ([`Output`]) or as
//!   a [`Server`] ([`server`]), whose output [`lines`] captures line by line;
//! - [`http`]: the reqwest client, GETs, creating a note, reading HTML answers;
//! - [`raw`]: HTTP/1.1 written and read by hand on plain sockets ([`RawRequest`]);
//! - [`csrf`]: the cookies and token an unsafe request needs ([`Credentials`]);
//! - [`files`]: temporary directories, database paths and sidecars, modes, `nobody`'s id;
//!   and [`require_nobody`], from [`tools`].
//!
//! The rest is named by its module where a few areas use it:
//! - [`procs`]: servers that are not the test's children (after a restart), through PID
//!   files and `/proc`; [`procs::Cleanup`] kills them;
//! - [`probes`]: requests made while servers restart, reporting errors instead of panicking;
//! - [`fds`]: what a process holds open (connections, database files);
//! - [`load`]: a load generator for restarts;
//! - [`postgres`]: the engine a test runs on ([`Engine`], [`Database`], the `both_engines!`
//!   macro), psql, and PostgreSQL clusters of a test's own;
//! - [`https`]: a TLS client that shows what the handshake negotiated;
//! - [`failure`]: what a refused start or command must look like;
//! - [`tools`]: programs the tests need (installed if missing), root to act as `nobody`.

use std::time::Duration;

pub mod csrf;
pub mod failure;
pub mod fds;
pub mod files;
pub mod http;
pub mod https;
pub mod launch;
mod lines;
pub mod load;
pub mod postgres;
pub mod probes;
pub mod procs;
pub mod raw;
pub mod server;
pub mod tools;

pub use burrow_test::free_port;
pub use csrf::{Credentials, TESTER, cookie_set_by, csrf_token, set_cookie_value};
pub use files::{NOBODY, chmod, db_path, files_in, mode, sidecar, tempdir};
pub use http::{
    client, create_note, encode, get, get_htmx, header, note_ids, short, try_create_note,
};
pub use launch::{
    BIN, CSRF_KEY, Launch, Output, SESSION_HASH_KEY, VERSION, generate_notes, generate_notes_in,
};
pub use postgres::{Database, Engine};
pub use raw::{RawRequest, RawResponse, connect, raw_get, read_response};
pub use server::{Server, signal};
pub use tools::require_nobody;

/// Upper bound for waiting on a child (a log line, its exit, a restart). Not a performance
/// assertion: it only keeps a broken server from hanging the suite forever.
pub const PATIENCE: Duration = Duration::from_secs(60);
