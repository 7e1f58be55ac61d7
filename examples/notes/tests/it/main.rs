//! Integration tests of the notes server: the real `server` binary as a child process,
//! a real SQLite file in a temporary directory, a real HTTP client.
//! The contract they check is docs/notes-contract.md.

mod browser;
mod cli;
mod files;
mod http;
mod lifecycle;
mod limits;
mod load;
mod notes;
mod procs;
mod security;
mod sessions;
mod sqlite;
mod startup;
mod support;
mod tls;
