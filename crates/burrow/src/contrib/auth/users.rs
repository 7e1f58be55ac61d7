//! Users: the `users` table, roles, and the writes that keep its rules (the first user is
//! an admin, the last active admin stays one, every change in the audit log).

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use super::events::{self, Event};
use crate::db::{Conn, DbError, FromRow, Row, params, utc_now};

/// What a user may do beyond their own data. Staff see the admin; admins also manage
/// users and roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Staff,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Staff => "staff",
            Role::Admin => "admin",
        }
    }

    /// Staff and admins.
    pub fn is_staff(self) -> bool {
        self >= Role::Staff
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "user" => Ok(Role::User),
            "staff" => Ok(Role::Staff),
            "admin" => Ok(Role::Admin),
            _ => Err(format!("unknown role '{s}': expected user, staff or admin")),
        }
    }
}

/// A row of `users`. Templates see it as `current_user()`.
#[derive(Clone, Debug, Serialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub email: Option<String>,
    pub display_name: String,
    pub role: Role,
    pub is_active: bool,
    pub email_verified: bool,
    /// The language of the user's mails (a tag of the site's languages); empty for the
    /// site's default. See [`set_language`].
    pub language: String,
    pub created_at: String,
    pub updated_at: String,
    /// Raised to sign out every session of the user (see `guards`).
    #[serde(skip)]
    pub(crate) session_generation: i64,
}

impl User {
    /// The display name, or the username when there is none.
    pub fn name(&self) -> &str {
        if self.display_name.is_empty() { &self.username } else { &self.display_name }
    }

    pub fn is_staff(&self) -> bool {
        self.role.is_staff()
    }

    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

impl FromRow for User {
    fn from_row(row: &Row) -> Result<Self, DbError> {
        let role: String = row.get("role")?;
        Ok(User {
            id: row.get("id")?,
            username: row.get("username")?,
            email: row.get("email")?,
            display_name: row.get("display_name")?,
            role: role
                .parse()
                .map_err(|reason| DbError::Decode { column: "role".into(), reason })?,
            is_active: row.get("is_active")?,
            email_verified: row.get("email_verified")?,
            language: row.get("language")?,
            created_at: row.get("created_at")?,
            updated_at: row.get("updated_at")?,
            session_generation: row.get("session_generation")?,
        })
    }
}

const COLUMNS: &str = "id, username, email, display_name, role, is_active, email_verified, \
                       language, created_at, updated_at, session_generation";

/// A username as stored: trimmed and lowercased, so `Alice` and `alice` are one account.
pub fn normalize_username(raw: &str) -> Result<String, String> {
    let name = raw.trim().to_lowercase();
    if name.is_empty() {
        return Err("a username is required".into());
    }
    if name.chars().count() > 64 {
        return Err("a username has at most 64 characters".into());
    }
    if !name.chars().all(|c| c.is_alphanumeric() || "._-@+".contains(c)) {
        return Err("a username has letters, digits and . _ - @ + only".into());
    }
    Ok(name)
}

/// An email address as stored: trimmed and lowercased; something before and after one
/// `@`, a dot in the domain, no spaces. (Whether it receives mail is for email
/// verification to say.)
pub fn normalize_email(raw: &str) -> Result<String, String> {
    let email = raw.trim().to_lowercase();
    let valid = email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !domain.contains('@')
    }) && !email.contains(char::is_whitespace)
        && email.chars().count() <= 254;
    if valid { Ok(email) } else { Err(format!("'{email}' is not an email address")) }
}

/// What a new account starts with.
#[derive(Clone, Debug, Default)]
pub struct NewUser {
    pub username: String,
    pub email: Option<String>,
    pub display_name: String,
    pub role: Option<Role>,
    /// The address is known to be the user's (e.g. an invitation mailed to it was used).
    pub email_verified: bool,
    /// The language of the user's mails (`de`); empty for the site's default.
    pub language: String,
}

/// Why an account was not created or changed.
#[derive(Debug)]
pub enum UserError {
    Invalid(String),
    Taken(&'static str),
    NotFound(String),
    LastAdmin,
    Db(DbError),
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserError::Invalid(why) => f.write_str(why),
            UserError::Taken(what) => write!(f, "that {what} is already taken"),
            UserError::NotFound(name) => write!(f, "no user named '{name}'"),
            UserError::LastAdmin => {
                f.write_str("this is the last active admin: make another user admin first")
            }
            UserError::Db(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for UserError {}

impl From<DbError> for UserError {
    fn from(e: DbError) -> Self {
        UserError::Db(e)
    }
}

/// Creates an account in the caller's write transaction. The very first user becomes an
/// admin whatever was asked; others get `new.role` or `user`.
pub fn create(c: &Conn, new: &NewUser) -> Result<User, UserError> {
    create_with_handle(c, new, None)
}

/// [`create`], with the WebAuthn user handle a passkey registration chose.
pub(crate) fn create_with_handle(
    c: &Conn,
    new: &NewUser,
    webauthn_id: Option<&str>,
) -> Result<User, UserError> {
    let username = normalize_username(&new.username)
        .or_else(|why| normalize_email(&new.username).map_err(|_| why))
        .map_err(UserError::Invalid)?;
    let email = match new.email.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(email) => Some(normalize_email(email).map_err(UserError::Invalid)?),
    };
    if by_username(c, &username)?.is_some() {
        return Err(UserError::Taken("username"));
    }
    if let Some(email) = &email {
        let sql = "SELECT id FROM users WHERE email = ?";
        if c.query_opt::<(i64,)>(sql, params![email.as_str()])?.is_some() {
            return Err(UserError::Taken("email"));
        }
    }
    let (existing,): (i64,) = c.query_one("SELECT count(*) FROM users", &[])?;
    let role = if existing == 0 { Role::Admin } else { new.role.unwrap_or(Role::User) };
    // Checked above; another instance on the same PostgreSQL database may still win the
    // race, and then the constraint answers (the transaction is over: no more queries).
    let inserted = c.execute(
        "INSERT INTO users (username, email, display_name, role, webauthn_id, email_verified, \
         language) VALUES (?, ?, ?, ?, ?, ?, ?)",
        params![
            username.as_str(),
            email.as_deref(),
            new.display_name.trim(),
            role.as_str(),
            webauthn_id,
            new.email_verified && email.is_some(),
            new.language.as_str()
        ],
    );
    match inserted {
        Err(e) if e.is_unique_violation() => return Err(UserError::Taken("username or email")),
        other => other?,
    };
    let user = by_username(c, &username)?.ok_or_else(|| UserError::NotFound(username.clone()))?;
    events::record(c, Event::new("user_created", &user).detail(format!("role {role}")))?;
    Ok(user)
}

/// The account with this (normalized) email address.
pub(crate) fn by_email(c: &Conn, email: &str) -> Result<Option<User>, DbError> {
    c.query_opt(&format!("SELECT {COLUMNS} FROM users WHERE email = ?"), params![email])
}

pub fn by_id(c: &Conn, id: i64) -> Result<Option<User>, DbError> {
    c.query_opt(&format!("SELECT {COLUMNS} FROM users WHERE id = ?"), params![id])
}

pub(crate) fn by_webauthn_id(c: &Conn, handle: &str) -> Result<Option<User>, DbError> {
    c.query_opt(&format!("SELECT {COLUMNS} FROM users WHERE webauthn_id = ?"), params![handle])
}

pub fn by_username(c: &Conn, username: &str) -> Result<Option<User>, DbError> {
    // An email address for a username (`--auth-use-email`) may hold what usernames do not.
    let Ok(username) = normalize_username(username).or_else(|_| normalize_email(username)) else {
        return Ok(None);
    };
    c.query_opt(&format!("SELECT {COLUMNS} FROM users WHERE username = ?"), params![username])
}

/// Every user, oldest first.
pub fn list(c: &Conn) -> Result<Vec<User>, DbError> {
    c.query(&format!("SELECT {COLUMNS} FROM users ORDER BY id"), &[])
}

/// Changes a role and signs the user out everywhere (their sessions carry the old role's
/// rights). The last active admin cannot stop being one.
pub fn set_role(c: &Conn, username: &str, role: Role) -> Result<User, UserError> {
    let user = by_username(c, username)?.ok_or_else(|| UserError::NotFound(username.into()))?;
    if user.role == role {
        return Ok(user);
    }
    if user.is_admin() && user.is_active && active_admins(c)? <= 1 {
        return Err(UserError::LastAdmin);
    }
    c.execute(
        "UPDATE users SET role = ?, session_generation = session_generation + 1, \
         updated_at = ? WHERE id = ?",
        params![role.as_str(), utc_now(), user.id],
    )?;
    let detail = format!("{} -> {role}", user.role);
    events::record(c, Event::new("role_changed", &user).detail(detail))?;
    by_id(c, user.id)?.ok_or_else(|| UserError::NotFound(username.into()))
}

/// Remembers `language` (a tag of the site's languages) as the one of the user's mails,
/// unless it is so already: at each sign-in, and when a signed-in user picks a language
/// with the switcher (see `guards`). True if it changed.
pub fn set_language(c: &Conn, user_id: i64, language: &str) -> Result<bool, DbError> {
    let sql = "UPDATE users SET language = ? WHERE id = ? AND language <> ?";
    Ok(c.execute(sql, params![language, user_id, language])? == 1)
}

/// Signs out every session of the user (logout does it, so a copied cookie stops working).
pub fn end_sessions(c: &Conn, user_id: i64) -> Result<(), DbError> {
    c.execute(
        "UPDATE users SET session_generation = session_generation + 1 WHERE id = ?",
        params![user_id],
    )?;
    Ok(())
}

fn active_admins(c: &Conn) -> Result<i64, DbError> {
    let sql = "SELECT count(*) FROM users WHERE role = 'admin' AND is_active = ?";
    let (n,): (i64,) = c.query_one(sql, params![true])?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_trimmed_lowercased_and_plain() {
        assert_eq!(normalize_username("  Alice ").unwrap(), "alice");
        assert_eq!(normalize_username("bob.smith@example.org").unwrap(), "bob.smith@example.org");
        assert!(normalize_username("").is_err());
        assert!(normalize_username("a b").is_err());
        assert!(normalize_username("<script>").is_err());
        assert!(normalize_username(&"x".repeat(65)).is_err());
    }

    #[test]
    fn emails_are_trimmed_lowercased_and_plausible() {
        assert_eq!(normalize_email(" Ann@Example.ORG ").unwrap(), "ann@example.org");
        for bad in ["ann", "@example.org", "ann@example", "ann@@example.org", "a nn@example.org"] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn roles_order_and_parse() {
        assert!(Role::Admin.is_staff() && Role::Staff.is_staff() && !Role::User.is_staff());
        assert_eq!("staff".parse::<Role>().unwrap(), Role::Staff);
        assert!("root".parse::<Role>().unwrap_err().contains("user, staff or admin"));
    }
}
