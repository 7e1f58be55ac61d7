//! The audit log of accounts: a row in `auth_events` and a line in the log for every
//! sign-in, sign-out, account and role change. Never a secret: tokens, codes and keys
//! stay out of both.

use super::users::User;
use crate::db::{Conn, DbError, params};

/// Log target of the audit lines (`RUST_LOG=burrow::auth=info`).
const TARGET: &str = "burrow::auth";

/// One event, recorded with [`record`] in the transaction of the change it describes.
pub(crate) struct Event<'a> {
    name: &'static str,
    user_id: Option<i64>,
    username: &'a str,
    detail: String,
    ip: String,
}

impl<'a> Event<'a> {
    pub(crate) fn new(name: &'static str, user: &'a User) -> Event<'a> {
        Event {
            name,
            user_id: Some(user.id),
            username: &user.username,
            detail: String::new(),
            ip: String::new(),
        }
    }

    /// An event of no account (e.g. an invite made from the command line).
    pub(crate) fn anonymous(name: &'static str) -> Event<'static> {
        Event { name, user_id: None, username: "", detail: String::new(), ip: String::new() }
    }

    pub(crate) fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    pub(crate) fn ip(mut self, ip: Option<std::net::IpAddr>) -> Self {
        self.ip = ip.map(|ip| ip.to_string()).unwrap_or_default();
        self
    }
}

pub(crate) fn record(c: &Conn, event: Event) -> Result<(), DbError> {
    c.execute(
        "INSERT INTO auth_events (event, user_id, username, detail, ip) VALUES (?, ?, ?, ?, ?)",
        params![
            event.name,
            event.user_id,
            event.username,
            event.detail.as_str(),
            event.ip.as_str()
        ],
    )?;
    tracing::info!(
        target: TARGET,
        event = event.name,
        user = event.username,
        detail = event.detail.as_str(),
        ip = event.ip.as_str(),
        "auth event"
    );
    Ok(())
}
