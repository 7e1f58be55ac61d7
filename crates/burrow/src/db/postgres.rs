//! The PostgreSQL backend: a bounded pool of connections used from blocking threads.
//!
//! App closures are synchronous (`FnOnce(&Conn)`), as on SQLite, so each connection is a
//! blocking `postgres::Client` that does its own I/O on the thread running the closure: no
//! hop through the async runtime per statement. Writes keep SQLite's guarantee that they
//! run one at a time: in this process behind a fair async lock, and across every process
//! on the database behind a transaction-level advisory lock ([`BEGIN_WRITE`]), so a
//! read-modify-write in `Db::write` never loses an update on either engine.
//!
//! A read whose future is dropped (request timeout, client gone) has its statement
//! cancelled on the server; every statement is bounded by `statement_timeout` (the read
//! budget). A connection that broke (the server restarted) is dropped, and so are the idle
//! connections opened before it: the next request connects afresh instead of failing.

use std::cell::RefCell;
use std::collections::HashMap;
use std::error::Error as StdError;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use bytes::BytesMut;
use postgres::config::SslMode;
use postgres::types::{FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};
use postgres::{CancelToken, Client, NoTls, Statement};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::conn::Inner;
use super::dsn::{PgDsn, PgTls};
use super::{Conn, DbError, DbOptions, Dsn, Value};
use crate::live::Hub;

/// How a write transaction starts: with the transaction-level advisory lock that makes
/// writes one at a time across every process on the database, as SQLite's single writer
/// does (key 0x6275_7272_6f77_0001, "burrow" + 1; [`MIGRATE_LOCK`] is + 2).
const BEGIN_WRITE: &str = "BEGIN; SELECT pg_advisory_xact_lock(7094702623813992449)";
/// Key of the session-level advisory lock held while migrating: of several processes
/// starting at once, one migrates and the others wait, then find nothing to do.
pub(super) const MIGRATE_LOCK: i64 = 0x6275_7272_6f77_0002;
/// Prepared statements kept per connection; the cache is emptied when it is full.
const STATEMENT_CACHE: usize = 128;

/// How a connection is secured: no TLS, or rustls (never OpenSSL or libpq).
#[derive(Clone)]
enum Tls {
    Plain,
    Rustls(MakeRustlsConnect),
}

pub(super) struct PgPool {
    dsn: Dsn,
    config: postgres::Config,
    tls: Tls,
    idle: StdMutex<Vec<Idle>>,
    slots: Arc<Semaphore>,
    size: usize,
    acquire_timeout: Duration,
    read_timeout: Duration,
    /// Writes queue here, in arrival order, before taking a pool connection.
    writer: Arc<Mutex<()>>,
    /// Bumped when a connection is found broken: idle connections of an older generation
    /// are dropped rather than used.
    generation: AtomicU64,
    closing: AtomicBool,
    /// Cancel tokens of the closures running now, so closing can stop them.
    running: StdMutex<HashMap<u64, CancelToken>>,
    next_id: AtomicU64,
    busy: AtomicUsize,
    /// Handed to every connection, for `Conn::publish`.
    live: Hub,
}

struct Idle {
    generation: u64,
    conn: Conn,
}

/// A connection: the client, its prepared statements and the generation it belongs to.
pub(crate) struct PgConn {
    client: RefCell<Owned>,
    statements: RefCell<HashMap<String, Statement>>,
    generation: u64,
}

/// A `postgres::Client` dropped on a thread of its own: the client owns a small runtime,
/// and a runtime must not be dropped on a thread that runs async code.
struct Owned(Option<Client>);

impl Drop for Owned {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                let _ = std::thread::Builder::new()
                    .name("burrow-pg-close".into())
                    .spawn(move || drop(client));
            } else {
                drop(client);
            }
        }
    }
}

impl PgConn {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>,
    ) -> Result<T, DbError> {
        let mut owned = self.client.borrow_mut();
        let client = owned.0.as_mut().ok_or(DbError::Closed)?;
        f(client).map_err(db_error)
    }

    fn statement(&self, sql: &str) -> Result<Statement, DbError> {
        if let Some(stmt) = self.statements.borrow().get(sql) {
            return Ok(stmt.clone());
        }
        let translated = translate_placeholders(sql);
        let stmt = self.with(|c| c.prepare(&translated))?;
        let mut cache = self.statements.borrow_mut();
        if cache.len() >= STATEMENT_CACHE {
            cache.clear();
        }
        cache.insert(sql.to_string(), stmt.clone());
        Ok(stmt)
    }

    pub(super) fn execute(&self, sql: &str, params: &[Value]) -> Result<usize, DbError> {
        let stmt = self.statement(sql)?;
        let n = self.with(|c| c.execute(&stmt, &refs(params)))?;
        Ok(n as usize)
    }

    pub(super) fn execute_batch(&self, sql: &str) -> Result<(), DbError> {
        self.with(|c| c.batch_execute(sql))
    }

    pub(super) fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<postgres::Row>, DbError> {
        let stmt = self.statement(sql)?;
        self.with(|c| c.query(&stmt, &refs(params)))
    }

    /// Hands each row of a query to `f` as it arrives, without keeping them.
    pub(super) fn query_each(
        &self,
        sql: &str,
        params: &[Value],
        mut f: impl FnMut(&postgres::Row) -> Result<(), DbError>,
    ) -> Result<(), DbError> {
        use postgres::fallible_iterator::FallibleIterator;
        let stmt = self.statement(sql)?;
        let mut owned = self.client.borrow_mut();
        let client = owned.0.as_mut().ok_or(DbError::Closed)?;
        let mut rows = client.query_raw(&stmt, refs(params)).map_err(db_error)?;
        while let Some(row) = rows.next().map_err(db_error)? {
            f(&row)?;
        }
        Ok(())
    }

    fn is_broken(&self) -> bool {
        self.client.borrow().0.as_ref().is_none_or(Client::is_closed)
    }

    fn cancel_token(&self) -> Option<CancelToken> {
        self.client.borrow().0.as_ref().map(Client::cancel_token)
    }
}

fn refs(params: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    params.iter().map(|p| p as &(dyn ToSql + Sync)).collect()
}

/// The value at `index` of a PostgreSQL row (see [`Value`] for the type mapping).
pub(super) fn value_at(row: &postgres::Row, index: usize) -> Result<Value, DbError> {
    row.try_get::<_, Value>(index).map_err(|e| DbError::Decode {
        column: row.columns().get(index).map_or_else(|| index.to_string(), |c| c.name().into()),
        reason: e.source().map_or_else(|| e.to_string(), ToString::to_string),
    })
}

impl PgPool {
    pub(super) fn open(
        dsn: &Dsn,
        pg: &PgDsn,
        options: &DbOptions,
        live: Hub,
    ) -> Result<PgPool, DbError> {
        let mut config = pg.config();
        if config.get_password().is_none() {
            if let Some(password) = &options.password {
                config.password(password.as_bytes());
            } else if let Ok(password) = std::env::var("PGPASSWORD") {
                config.password(password);
            }
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        if config.get_application_name().is_none() {
            config.application_name("burrow");
        }
        config.ssl_mode(match pg.tls {
            PgTls::Disable => SslMode::Disable,
            PgTls::Prefer => SslMode::Prefer,
            PgTls::Require | PgTls::VerifyFull { .. } => SslMode::Require,
        });
        let tls = tls_for(&pg.tls).map_err(|e| DbError::Setup(format!("{dsn}: {e}")))?;
        let size = options.pool_size.max(1);
        Ok(PgPool {
            dsn: dsn.clone(),
            config,
            tls,
            idle: StdMutex::new(Vec::new()),
            slots: Arc::new(Semaphore::new(size)),
            size,
            acquire_timeout: options.acquire_timeout,
            read_timeout: options.read_timeout,
            writer: Arc::new(Mutex::new(())),
            generation: AtomicU64::new(0),
            closing: AtomicBool::new(false),
            running: StdMutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
            live,
        })
    }

    pub(super) fn dsn(&self) -> &Dsn {
        &self.dsn
    }

    /// A new connection, its statements bounded by the read budget.
    fn connect(&self) -> Result<Conn, DbError> {
        let client = match &self.tls {
            Tls::Plain => self.config.connect(NoTls),
            Tls::Rustls(tls) => self.config.connect(tls.clone()),
        }
        .map_err(|e| {
            DbError::Unavailable(format!("cannot connect to {}: {}", self.dsn, why(&e)))
        })?;
        let conn = PgConn {
            client: RefCell::new(Owned(Some(client))),
            statements: RefCell::default(),
            generation: self.generation.load(Ordering::Relaxed),
        };
        let budget = self.read_timeout.as_millis().max(1);
        conn.execute_batch(&format!("SET statement_timeout = {budget}"))?;
        Ok(Conn::new(Inner::Postgres(Box::new(conn)), self.live.clone()))
    }

    fn checkout(&self) -> Result<Conn, DbError> {
        let current = self.generation.load(Ordering::Relaxed);
        loop {
            let idle = self.idle.lock().expect("pool poisoned").pop();
            match idle {
                Some(idle) if idle.generation == current && !pg(&idle.conn).is_broken() => {
                    return Ok(idle.conn);
                }
                Some(_) => continue,
                None => return self.connect(),
            }
        }
    }

    /// Returns a connection to the pool, unless it broke (then the idle ones opened before
    /// it are suspect too: the server restarted or dropped them).
    fn checkin(&self, conn: Conn) {
        let c = pg(&conn);
        if c.is_broken() {
            self.generation.fetch_max(c.generation + 1, Ordering::Relaxed);
            return;
        }
        if !self.closing.load(Ordering::Relaxed) {
            let generation = c.generation;
            self.idle.lock().expect("pool poisoned").push(Idle { generation, conn });
        }
    }

    async fn acquire(&self) -> Result<OwnedSemaphorePermit, DbError> {
        match tokio::time::timeout(self.acquire_timeout, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(DbError::Closed),
            Err(_) => Err(DbError::Unavailable(format!(
                "no database connection became free within {} s (all {} in use; \
                 --database-pool-size)",
                self.acquire_timeout.as_secs_f64(),
                self.size
            ))),
        }
    }

    /// Runs `f` on a pooled connection on a blocking thread; `transaction` wraps it in
    /// BEGIN … COMMIT with the write lock. A read's statement is cancelled on the server
    /// when this future is dropped.
    async fn run<T, F>(self: &Arc<Self>, write: bool, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Conn) -> Result<T, DbError> + Send + 'static,
    {
        let permit = self.acquire().await?;
        let pool = self.clone();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let cancel = Arc::new(Cancel::default());
        let mut on_drop =
            CancelOnDrop { cancel: (!write).then(|| cancel.clone()), tls: self.tls.clone() };
        let result = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let conn = pool.checkout()?;
            let c = pg(&conn);
            if let Some(token) = c.cancel_token() {
                *cancel.token.lock().expect("cancel poisoned") = Some(token.clone());
                pool.running.lock().expect("pool poisoned").insert(id, token);
            }
            if pool.closing.load(Ordering::Relaxed) {
                pool.running.lock().expect("pool poisoned").remove(&id);
                return Err(DbError::Closed);
            }
            pool.busy.fetch_add(1, Ordering::Relaxed);
            let result = if write { conn.transaction(BEGIN_WRITE, f) } else { f(&conn) };
            pool.busy.fetch_sub(1, Ordering::Relaxed);
            pool.running.lock().expect("pool poisoned").remove(&id);
            *cancel.token.lock().expect("cancel poisoned") = None;
            pool.checkin(conn);
            match result {
                Err(DbError::Interrupted)
                    if !cancel.requested.load(Ordering::Relaxed)
                        && !pool.closing.load(Ordering::Relaxed) =>
                {
                    Err(DbError::Timeout(pool.read_timeout))
                }
                other => other,
            }
        })
        .await;
        on_drop.cancel = None;
        result.map_err(|e| DbError::Other(format!("database task failed: {e}")))?
    }

    pub(super) async fn read<T, F>(self: &Arc<Self>, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Conn) -> Result<T, DbError> + Send + 'static,
    {
        self.run(false, f).await
    }

    pub(super) async fn write<T, F>(self: &Arc<Self>, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Conn) -> Result<T, DbError> + Send + 'static,
    {
        let _queued = self.writer.clone().lock_owned().await;
        self.run(true, f).await
    }

    /// Runs `f` on a connection of its own on this thread, outside the pool (migrations,
    /// `migrate --list`, `server check`), without a statement budget.
    pub(super) fn with_conn_blocking<T>(
        &self,
        f: impl FnOnce(&Conn) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let conn = self.connect()?;
        conn.execute_batch("SET statement_timeout = 0")?;
        f(&conn)
    }

    /// `LISTEN`s on `channel` on a connection of its own (outside the pool: it is held for
    /// as long as the process serves), handing payloads to `on` until `stop` is set or the
    /// connection fails.
    pub(super) fn listen_blocking(
        &self,
        channel: &str,
        stop: &AtomicBool,
        listening: &mut dyn FnMut(),
        on: &mut dyn FnMut(&str),
    ) -> Result<(), DbError> {
        use postgres::fallible_iterator::FallibleIterator;
        let conn = self.connect()?;
        let c = pg(&conn);
        // Not a statement: LISTEN takes no parameters; the channel is the caller's constant.
        c.execute_batch(&format!("SET statement_timeout = 0; LISTEN {channel}"))?;
        listening();
        while !stop.load(Ordering::Relaxed) {
            c.with(|client| {
                let mut notifications = client.notifications();
                let mut batch = notifications.timeout_iter(Duration::from_millis(500));
                while let Some(notification) = batch.next()? {
                    on(notification.payload());
                }
                Ok(())
            })?;
            if c.is_broken() {
                return Err(DbError::Unavailable(format!("{}: connection closed", self.dsn)));
            }
        }
        Ok(())
    }

    /// The server answers and takes writes (after a failover, the old address may lead to
    /// a standby that is read-only).
    pub(super) async fn check(self: &Arc<Self>) -> Result<(), DbError> {
        let read_only: String = self
            .read(|c| c.query_one("SELECT current_setting('transaction_read_only')", &[]))
            .await?;
        if read_only == "on" {
            return Err(DbError::Unavailable(format!("{} is read-only (a standby?)", self.dsn)));
        }
        Ok(())
    }

    /// Cancels every running statement, refuses new work, closes idle connections and
    /// waits at most `grace` for running closures. Returns how many were still running.
    pub(super) async fn close(&self, grace: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + grace;
        self.closing.store(true, Ordering::Relaxed);
        self.slots.close();
        let tokens: Vec<CancelToken> =
            self.running.lock().expect("pool poisoned").values().cloned().collect();
        for token in tokens {
            cancel_in_background(token, self.tls.clone());
        }
        drop(std::mem::take(&mut *self.idle.lock().expect("pool poisoned")));
        while self.busy.load(Ordering::Relaxed) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.busy.load(Ordering::Relaxed)
    }
}

fn pg(conn: &Conn) -> &PgConn {
    match &conn.0 {
        Inner::Postgres(c) => c,
        Inner::Sqlite(_) => unreachable!("a PostgreSQL pool holds PostgreSQL connections"),
    }
}

/// What a dropped read needs to cancel its statement on the server.
#[derive(Default)]
struct Cancel {
    token: StdMutex<Option<CancelToken>>,
    requested: AtomicBool,
}

struct CancelOnDrop {
    cancel: Option<Arc<Cancel>>,
    tls: Tls,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if let Some(cancel) = self.cancel.take() {
            cancel.requested.store(true, Ordering::Relaxed);
            if let Some(token) = cancel.token.lock().expect("cancel poisoned").clone() {
                cancel_in_background(token, self.tls.clone());
            }
        }
    }
}

/// Sends a cancel request (a connection of its own) without blocking the caller.
fn cancel_in_background(token: CancelToken, tls: Tls) {
    let _ = std::thread::Builder::new().name("burrow-pg-cancel".into()).spawn(move || {
        let _ = match tls {
            Tls::Plain => token.cancel_query(NoTls),
            Tls::Rustls(tls) => token.cancel_query(tls),
        };
    });
}

/// The error's own message with its cause (e.g. "error connecting to server: Connection
/// refused"). postgres errors never include the password.
fn why(e: &postgres::Error) -> String {
    match e.source() {
        Some(source) => format!("{e}: {source}"),
        None => e.to_string(),
    }
}

fn db_error(e: postgres::Error) -> DbError {
    use super::error::Constraint;
    let Some(db) = e.as_db_error() else {
        if e.is_closed() || e.source().is_some_and(|s| s.is::<std::io::Error>()) {
            return DbError::Unavailable(why(&e));
        }
        return DbError::Sql { message: why(&e), rejected: false };
    };
    let message = db.message().to_string();
    let code = db.code().code();
    let constraint = |kind| DbError::Constraint { kind, message: message.clone() };
    match code {
        "23505" => constraint(Constraint::Unique),
        "23514" => constraint(Constraint::Check),
        "23503" => constraint(Constraint::ForeignKey),
        "23502" => constraint(Constraint::NotNull),
        // query_canceled: a cancel request or statement_timeout.
        "57014" => DbError::Interrupted,
        // The server is shutting down or restarting, or the connection failed.
        c if c.starts_with("57P") || c.starts_with("08") => DbError::Unavailable(message),
        // Syntax or access rule violations, and bad values for a type.
        c if c.starts_with("42") || c.starts_with("22") => DbError::Sql { message, rejected: true },
        _ => DbError::Sql { message, rejected: false },
    }
}

/// `?` and `?N` placeholders → `$n`, outside string literals, quoted identifiers,
/// dollar-quoted strings and comments.
pub(crate) fn translate_placeholders(sql: &str) -> String {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 8);
    let mut next = 0u32;
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"') => {
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    i += 1;
                }
                i += 1;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..].find("*/").map_or(bytes.len(), |end| i + 2 + end + 2);
            }
            b'$' => {
                // A dollar quote: $$…$$ or $tag$…$tag$ (a tag is an identifier).
                let tag_end = sql[i + 1..]
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .map(|n| i + 1 + n);
                match tag_end {
                    Some(end) if bytes[end] == b'$' && !bytes[i + 1].is_ascii_digit() => {
                        let tag = &sql[i..=end];
                        i = sql[end + 1..]
                            .find(tag)
                            .map_or(bytes.len(), |n| end + 1 + n + tag.len());
                    }
                    _ => i += 1,
                }
            }
            b'?' => {
                out.push_str(&sql[copied..i]);
                let digits = bytes[i + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
                out.push('$');
                if digits > 0 {
                    out.push_str(&sql[i + 1..i + 1 + digits]);
                } else {
                    next += 1;
                    out.push_str(&next.to_string());
                }
                i += 1 + digits;
                copied = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied.min(sql.len())..]);
    out
}

fn tls_for(mode: &PgTls) -> Result<Tls, String> {
    use rustls::ClientConfig;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let config = match mode {
        PgTls::Disable => return Ok(Tls::Plain),
        // Encrypted, not authenticated: what libpq's prefer and require promise.
        PgTls::Prefer | PgTls::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
        PgTls::VerifyFull { root } => {
            let mut roots = rustls::RootCertStore::empty();
            match root {
                Some(path) => {
                    use rustls_pki_types::pem::PemObject;
                    let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
                        .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
                    for cert in certs {
                        let cert =
                            cert.map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
                        roots
                            .add(cert)
                            .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
                    }
                    if roots.is_empty() {
                        return Err(format!("sslrootcert {} holds no certificate", path.display()));
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(Tls::Rustls(MakeRustlsConnect::new(config)))
}

/// Accepts the server's certificate without checking who issued it (sslmode `require`),
/// still checking that the server holds its key.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

type BoxError = Box<dyn StdError + Sync + Send>;

/// Binds a [`Value`] to whatever type PostgreSQL inferred for its placeholder.
impl ToSql for Value {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Integer(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::OID => u32::try_from(*i)?.to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                Type::FLOAT4 => (*i as f32).to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                _ if is_text(ty) => i.to_string().as_str().to_sql(ty, out),
                _ => Err(cannot_bind("an integer", ty)),
            },
            Value::Real(f) => match *ty {
                Type::FLOAT8 => f.to_sql(ty, out),
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                _ if is_text(ty) => f.to_string().as_str().to_sql(ty, out),
                _ => Err(cannot_bind("a real number", ty)),
            },
            Value::Text(s) => match *ty {
                Type::JSONB => {
                    out.extend_from_slice(&[1]);
                    out.extend_from_slice(s.as_bytes());
                    Ok(IsNull::No)
                }
                Type::JSON => {
                    out.extend_from_slice(s.as_bytes());
                    Ok(IsNull::No)
                }
                Type::UUID => {
                    out.extend_from_slice(&parse_uuid(s).ok_or("not a UUID")?);
                    Ok(IsNull::No)
                }
                Type::BYTEA => s.as_bytes().to_sql(ty, out),
                _ if is_text(ty) => s.as_str().to_sql(ty, out),
                _ => Err(cannot_bind("text", ty)),
            },
            Value::Blob(b) => match *ty {
                Type::BYTEA => b.as_slice().to_sql(ty, out),
                _ => Err(cannot_bind("a blob", ty)),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn is_text(ty: &Type) -> bool {
    matches!(*ty, Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN)
        || matches!(ty.kind(), Kind::Enum(_))
        || ty.name() == "citext"
}

fn cannot_bind(what: &str, ty: &Type) -> BoxError {
    format!(
        "cannot bind {what} to a parameter of type {}; store portable types (integer, real, \
         text, blob, boolean) or CAST the parameter in SQL",
        ty.name()
    )
    .into()
}

fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = s.bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

/// Reads any column as a [`Value`] (the mapping is documented on [`Value`]).
impl<'a> FromSql<'a> for Value {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Value, BoxError> {
        Ok(match *ty {
            Type::INT8 => Value::Integer(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Integer(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => Value::Integer(i16::from_sql(ty, raw)?.into()),
            Type::OID => Value::Integer(u32::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => Value::Real(f32::from_sql(ty, raw)?.into()),
            Type::BOOL => Value::Integer(bool::from_sql(ty, raw)?.into()),
            Type::BYTEA => Value::Blob(raw.to_vec()),
            Type::JSONB => Value::Text(String::from_utf8(raw.get(1..).unwrap_or(&[]).to_vec())?),
            Type::JSON => Value::Text(String::from_utf8(raw.to_vec())?),
            Type::NUMERIC => numeric(raw).ok_or("a malformed numeric value")?,
            Type::UUID => Value::Text(uuid_text(raw).ok_or("a malformed uuid")?),
            Type::TIMESTAMPTZ | Type::TIMESTAMP => Value::Text(
                timestamp_text(i64::from_sql(ty, raw)?).ok_or("timestamp out of range")?,
            ),
            Type::DATE => {
                let days = i32::from_sql(ty, raw)?;
                Value::Text(date_text(days).ok_or("date out of range")?)
            }
            _ if is_text(ty) || *ty == Type::XML => Value::Text(String::from_utf8(raw.to_vec())?),
            _ => {
                return Err(format!(
                    "columns of type {} are not supported; cast it (e.g. col::text)",
                    ty.name()
                )
                .into());
            }
        })
    }

    fn from_sql_null(_: &Type) -> Result<Value, BoxError> {
        Ok(Value::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

fn uuid_text(raw: &[u8]) -> Option<String> {
    if raw.len() != 16 {
        return None;
    }
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

/// Days since 2000-01-01 (PostgreSQL's epoch) → `YYYY-MM-DD`.
fn date_text(days: i32) -> Option<String> {
    let epoch = time::Date::from_calendar_date(2000, time::Month::January, 1).ok()?;
    let date = epoch.checked_add(time::Duration::days(days.into()))?;
    Some(format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day()))
}

/// Microseconds since 2000-01-01 00:00 UTC → RFC 3339 in UTC, with a fraction only when
/// there is one (`2026-12-02T10:33:52Z`, as Burrow stores times on SQLite).
fn timestamp_text(micros: i64) -> Option<String> {
    let epoch = time::Date::from_calendar_date(2000, time::Month::January, 1).ok()?.midnight();
    let at = epoch.checked_add(time::Duration::microseconds(micros))?;
    let mut text = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    if at.microsecond() != 0 {
        text.push_str(&format!(".{:06}", at.microsecond()));
    }
    text.push('Z');
    Some(text)
}

/// PostgreSQL's binary `numeric`: an integer when it has no fraction and fits (e.g.
/// `sum()` of integers), a real number otherwise.
fn numeric(raw: &[u8]) -> Option<Value> {
    let word = |i: usize| raw.get(i..i + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let ndigits = word(0)? as usize;
    let weight = word(2)? as i16 as i32;
    let sign = word(4)?;
    let scale = word(6)?;
    if sign == 0xC000 {
        return Some(Value::Real(f64::NAN));
    }
    let digits: Vec<u16> = (0..ndigits).map(|i| word(8 + 2 * i)).collect::<Option<_>>()?;
    let negative = sign == 0x4000;
    let integral = scale == 0 && (ndigits as i32) <= weight + 1;
    if integral {
        let mut value: i128 = 0;
        for (i, d) in digits.iter().enumerate() {
            let power = weight - i as i32;
            value = value
                .checked_add(i128::from(*d).checked_mul(10_000i128.checked_pow(power as u32)?)?)?;
        }
        if let Ok(v) = i64::try_from(if negative { -value } else { value }) {
            return Some(Value::Integer(v));
        }
    }
    let mut value = 0f64;
    for (i, d) in digits.iter().enumerate() {
        value += f64::from(*d) * 10_000f64.powi(weight - i as i32);
    }
    Some(Value::Real(if negative { -value } else { value }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_numbered_outside_literals_and_comments() {
        assert_eq!(translate_placeholders("SELECT ?, ?"), "SELECT $1, $2");
        assert_eq!(
            translate_placeholders("a = ?1 OR b = ?1 AND c = ?2"),
            "a = $1 OR b = $1 AND c = $2"
        );
        assert_eq!(
            translate_placeholders(
                "SELECT '?', \"a?\", ? -- what?\n, ? /* ? */, $$?$$, $t$ ? $t$, ?"
            ),
            "SELECT '?', \"a?\", $1 -- what?\n, $2 /* ? */, $$?$$, $t$ ? $t$, $3"
        );
        assert_eq!(translate_placeholders("x = 'it''s' AND y = ?"), "x = 'it''s' AND y = $1");
        assert_eq!(translate_placeholders("SELECT $1"), "SELECT $1");
        assert_eq!(translate_placeholders("unterminated '?"), "unterminated '?");
    }

    #[test]
    fn binary_values_read_as_sqlite_would_store_them() {
        // 12345678 = [1234, 5678], weight 1; -1.5 = [1, 5000], weight 0, scale 1.
        let n = |ndigits: u16, weight: i16, sign: u16, scale: u16, digits: &[u16]| {
            let mut raw = Vec::new();
            for w in [ndigits, weight as u16, sign, scale].iter().chain(digits) {
                raw.extend_from_slice(&w.to_be_bytes());
            }
            numeric(&raw).unwrap()
        };
        assert_eq!(n(2, 1, 0, 0, &[1234, 5678]), Value::Integer(12_345_678));
        assert_eq!(n(1, 2, 0, 0, &[7]), Value::Integer(700_000_000));
        assert_eq!(n(2, 0, 0x4000, 1, &[1, 5000]), Value::Real(-1.5));
        assert_eq!(n(0, 0, 0, 0, &[]), Value::Integer(0));
        assert_eq!(timestamp_text(0).unwrap(), "2000-01-01T00:00:00Z");
        assert_eq!(timestamp_text(86_400_000_001).unwrap(), "2000-01-02T00:00:00.000001Z");
        assert_eq!(date_text(-1).unwrap(), "1999-12-31");
        let uuid = "0f8fad5b-d9cb-469f-a165-70867728950e";
        assert_eq!(uuid_text(&parse_uuid(uuid).unwrap()).unwrap(), uuid);
    }
}
