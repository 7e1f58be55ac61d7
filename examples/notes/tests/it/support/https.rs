//! A TLS client built by hand: which certificates it trusts, which ALPN it offers and what
//! the handshake negotiated (version, protocol, certificate chain) are all visible to the
//! test.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

/// What one HTTPS request saw.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub http: hyper::Version,
    pub tls: rustls::ProtocolVersion,
    /// DER of every certificate the server presented (leaf first).
    pub chain: Vec<Vec<u8>>,
    pub body: String,
}

pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client trusting exactly `roots` (PEM files' certificates), offering `alpn`.
pub fn client_config(
    roots: &[CertificateDer<'static>],
    alpn: &[&str],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).expect("trust anchor");
    }
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(store)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    // Every connection a full handshake: the certificate a client sees is the one served now.
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// A client trusting the certificates of `pem_file`, offering `alpn`.
pub fn trusting(pem_file: &Path, alpn: &[&str]) -> Arc<ClientConfig> {
    client_config(&certs_in(pem_file), alpn, rustls::DEFAULT_VERSIONS)
}

pub fn certs_in(pem_file: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(pem_file)
        .unwrap_or_else(|e| panic!("{}: {e}", pem_file.display()))
        .map(|c| c.unwrap())
        .collect()
}

/// GET `path` over a new TLS connection to 127.0.0.1:`port`, presenting `name` as SNI and
/// verifying the certificate for it. HTTP/2 when ALPN picked h2, else HTTP/1.1.
pub async fn https_get(
    port: u16,
    name: &str,
    config: Arc<ClientConfig>,
    path: &str,
) -> Result<Reply, String> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let server_name = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
    let tls = tokio::time::timeout(
        Duration::from_secs(20),
        tokio_rustls::TlsConnector::from(config).connect(server_name, tcp),
    )
    .await
    .map_err(|_| "handshake timed out".to_string())?
    .map_err(|e| format!("handshake: {e}"))?;
    let (_, conn) = tls.get_ref();
    let tls_version = conn.protocol_version().expect("negotiated version");
    let h2 = conn.alpn_protocol() == Some(b"h2");
    let chain: Vec<Vec<u8>> =
        conn.peer_certificates().unwrap_or_default().iter().map(|c| c.as_ref().to_vec()).collect();
    let io = TokioIo::new(tls);
    let authority = format!("{name}:{port}");
    let response = if h2 {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(|e| format!("h2: {e}"))?;
        tokio::spawn(conn);
        let request = hyper::Request::get(format!("https://{authority}{path}"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        send.send_request(request).await.map_err(|e| format!("h2 request: {e}"))?
    } else {
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(io).await.map_err(|e| format!("h1: {e}"))?;
        tokio::spawn(conn);
        let request = hyper::Request::get(path)
            .header("host", &authority)
            .body(Empty::<Bytes>::new())
            .unwrap();
        send.send_request(request).await.map_err(|e| format!("h1 request: {e}"))?
    };
    let status = response.status().as_u16();
    let http = response.version();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.map_err(|e| format!("body: {e}"))?.to_bytes();
    Ok(Reply {
        status,
        headers,
        http,
        tls: tls_version,
        chain,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

// ---------------------------------------------------------------------------------------
