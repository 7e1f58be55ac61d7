//! Integration tests of the notes server: the real `server` binary as a child process,
//! a real SQLite file in a temporary directory or a real PostgreSQL database on the test
//! cluster (`both_engines!` runs a test on each), a real HTTP client.
//! The contract they check is docs/notes-contract.md.
//!
//! Each module but `support` (the harness they share) tests one area.

mod accounts;
mod admin;
mod browser;
mod cli;
mod dev;
mod exports;
mod files;
mod http;
mod i18n;
mod inprocess;
mod jobs;
mod lifecycle;
mod limits;
mod notes;
mod postgres;
mod proxy;
mod security;
mod sessions;
mod sqlite;
mod startup;
mod support;
mod theme;
mod tls;
mod uploads;
