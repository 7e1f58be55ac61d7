//! TLS of the `server` binary (docs/tls.md), with real handshakes: self-signed (trusted
//! and untrusted clients, HTTP/1.1 and HTTP/2, reuse, replacement of an expired
//! certificate), manual files (chain, PKCS#8 / SEC1 / RSA keys, every bad-file case, a
//! renewed certificate installed by SIGHUP), TLS 1.1 refused (openssl s_client), and ACME
//! end to end against Debian's `pebble` on loopback: HTTP-01, redirect, cache reuse,
//! renewal while serving, renewal failing while the CA is down (cached certificate kept,
//! renewed once it is back), external account binding (right, missing and wrong key;
//! backoff 10 s then 20 s), SIGHUP hand-over of both listeners.
//!
//! Tools (`pebble`, `pebble-challtestsrv`, `openssl`) are installed with apt-get when
//! missing; a test fails loudly if that is impossible, it never skips.
//!
//! The tests are in one module per mode ([`selfsigned`], [`manual`], [`acme`] and its
//! external account binding, [`acme_eab`]) and [`versions`]; their harness is [`pki`] (a
//! test CA) and [`pebble`] (the ACME CA). The TLS client they share with other areas is
//! `crate::support::https`.

mod acme;
mod acme_eab;
mod manual;
mod pebble;
mod pki;
mod selfsigned;
mod versions;
