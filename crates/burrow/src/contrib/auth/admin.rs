//! Users and invites in the admin (`/admin/users/`, `/admin/invites/`).
//!
//! Users: filtered by role, state and date, searched by name and address; staff edit the
//! display name, address, role and state, and (de)activate in bulk. The last active admin
//! cannot be demoted, deactivated or deleted. A change of role or state signs the user out
//! everywhere, as `server set-role` does. Accounts are made by registering (or `server
//! users create`), not here.
//!
//! Invites: created with an address (mailed when mail is on, else the link is shown once),
//! revoked, listed with who made and used them.

use crate::admin::{Access, Action, AdminSite, Change, Filter, ModelAdmin, Permissions};
use crate::db::{Conn, DbError, Value, params, utc_now};
use crate::error::Error;
use crate::forms::Form;

use super::events::{self, Event};
use super::users;

const ROLES: &[(&str, &str)] = &[("user", "User"), ("staff", "Staff"), ("admin", "Admin")];

/// What staff may change about an account.
#[derive(Form)]
struct UserAdminForm {
    #[form(max_length = 100, label = "Display name")]
    display_name: String,
    #[form(email, max_length = 254, label = "Email address")]
    email: Option<String>,
    #[form(required, choices = ROLES)]
    role: String,
    #[form(label = "Active (may sign in)")]
    is_active: bool,
}

/// An invitation, by address.
#[derive(Form)]
struct InviteForm {
    #[form(required, email, max_length = 254, label = "Email address")]
    email: String,
}

pub(super) fn register(site: &mut AdminSite) {
    site.register(
        ModelAdmin::new("users")
            .names("user", "users")
            .form::<UserAdminForm>()
            .list(&["username", "display_name", "email", "role", "is_active", "created_at"])
            .label_column("username")
            .ordering("username")
            .sortable(&["username", "display_name", "email", "role", "created_at"])
            .search(&["username", "display_name", "email"])
            .choices("role", ROLES)
            .choices("is_active", &[("1", "Yes"), ("0", "No")])
            .filter(Filter::choices("role", "Role", ROLES))
            .filter(Filter::boolean("is_active", "Active"))
            .filter(Filter::date_range("created_at", "Joined"))
            .readonly(&["username", "email_verified", "language", "created_at", "updated_at"])
            .permissions(Permissions {
                create: Access::Nobody,
                delete: Access::Admin,
                ..Permissions::default()
            })
            .before_change(check_user_change)
            .action(
                Action::new("activate", "Activate", |c, ids| set_active(c, ids, true)).on_rows(),
            )
            .action(
                Action::new("deactivate", "Deactivate (signs them out)", |c, ids| {
                    set_active(c, ids, false)
                })
                .on_rows()
                .confirm(),
            ),
    );
    site.register(
        ModelAdmin::new("invites")
            .names("invite", "invites")
            .form::<InviteForm>()
            .list(&["email", "created_by", "expires_at", "used_at", "used_by", "created_at"])
            .label_column("email")
            .ordering("-created_at")
            .sortable(&["email", "expires_at", "created_at"])
            .search(&["email"])
            .relation("created_by", "Invited by", "users", "username")
            .relation("used_by", "Used by", "users", "username")
            .filter(Filter::date_range("created_at", "Created"))
            .readonly(&["created_by", "expires_at", "used_at", "used_by", "created_at"])
            .permissions(Permissions { edit: Access::Nobody, ..Permissions::default() })
            .create_with(|ctx, by, locale, values| async move {
                // Said, and mailed, in the language of the inviting staff member's request.
                let email = match values.first() {
                    Some((_, Value::Text(email))) => email.clone(),
                    _ => return Err(Error::bad_request(locale.t("auth-admin-email-needed"))),
                };
                let email = users::normalize_email(&email)
                    .map_err(|_| Error::bad_request(locale.t("auth-email-invalid")))?;
                let address = email.clone();
                let (id, issued) = ctx
                    .db
                    .write(move |c| {
                        let by = users::by_id(c, by)?;
                        let issued = super::invites::create(c, &address, by.as_ref())?;
                        let id: i64 = c.query_one(
                            "SELECT id FROM invites WHERE token_hash = ?",
                            params![super::links::hash(&issued.token)],
                        )?;
                        Ok((id, issued))
                    })
                    .await?;
                let base = ctx.settings.base_url.trim_end_matches('/');
                let invite = super::Invite {
                    email: email.clone(),
                    url: format!("{base}/auth/register?invite={}", issued.token),
                    expires_at: issued.expires_at,
                };
                let mailed = ctx.mailer.is_configured();
                if mailed {
                    super::mail_invite(&ctx, &invite, locale.lang()).await.map_err(|e| {
                        Error::internal(format!(
                            "the invite for {email} was made, mailing it failed: {e}"
                        ))
                    })?;
                }
                let key =
                    if mailed { "auth-admin-invited-mailed" } else { "auth-admin-invited-shown" };
                let args: [(&str, &dyn std::fmt::Display); 3] = [
                    ("email", &invite.email),
                    ("expires_at", &invite.expires_at),
                    ("url", &invite.url),
                ];
                Ok((id, locale.t_args(key, &args)))
            })
            .action(
                Action::new("revoke", "Revoke", |c, ids| {
                    for id in ids {
                        c.execute(
                            "UPDATE invites SET expires_at = ? WHERE id = ? AND used_at IS NULL",
                            params![utc_now(), *id],
                        )?;
                    }
                    // A catalog key: the admin says it with {count}, the rows selected
                    // (used ones were already unusable).
                    Ok("auth-admin-revoked")
                })
                .on_rows(),
            ),
    );
}

fn active_admins_besides(c: &Conn, ids: &[i64]) -> Result<i64, DbError> {
    let (n,): (i64,) = c.query_one(
        "SELECT count(*) FROM users WHERE role = 'admin' AND is_active = ?",
        params![true],
    )?;
    let mut gone = 0;
    for id in ids {
        let (admin,): (i64,) = c.query_one(
            "SELECT count(*) FROM users WHERE id = ? AND role = 'admin' AND is_active = ?",
            params![*id, true],
        )?;
        gone += admin;
    }
    Ok(n - gone)
}

/// The last active admin stays one; a change of role or state signs the user out
/// everywhere (their sessions carry the old rights) and is recorded in the audit log.
fn check_user_change(c: &Conn, change: Change<'_>) -> Result<Result<(), String>, DbError> {
    match change {
        Change::Edit(id, values) => {
            let Some(user) = users::by_id(c, id)? else { return Ok(Ok(())) };
            let value =
                |name: &str| values.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
            let role = match value("role") {
                Some(Value::Text(role)) => role,
                _ => user.role.as_str().to_string(),
            };
            let active = !matches!(value("is_active"), Some(Value::Integer(0)));
            let demoted = user.is_admin() && user.is_active && (role != "admin" || !active);
            if demoted && active_admins_besides(c, &[id])? < 1 {
                return Ok(Err("auth-admin-last-admin".into()));
            }
            if role != user.role.as_str() || active != user.is_active {
                users::end_sessions(c, id)?;
                let detail = format!(
                    "{} -> {role}, active {} -> {active} (admin)",
                    user.role, user.is_active
                );
                events::record(c, Event::new("role_changed", &user).detail(detail))?;
            }
            Ok(Ok(()))
        }
        Change::Delete(ids) => {
            if active_admins_besides(c, ids)? < 1 {
                return Ok(Err("auth-admin-last-admin-deleted".into()));
            }
            Ok(Ok(()))
        }
        Change::Create(_) => Ok(Ok(())),
    }
}

fn set_active(c: &Conn, ids: &[i64], active: bool) -> Result<String, DbError> {
    if !active && active_admins_besides(c, ids)? < 1 {
        // An action's message is all it can say: nothing changes.
        return Ok("auth-admin-last-admin-kept".into());
    }
    for id in ids {
        let n = c.execute(
            "UPDATE users SET is_active = ?, session_generation = session_generation + 1, \
             updated_at = ? WHERE id = ? AND is_active <> ?",
            params![active, utc_now(), *id, active],
        )?;
        if n == 1
            && let Some(user) = users::by_id(c, *id)?
        {
            let event = if active { "activated" } else { "deactivated" };
            events::record(c, Event::new(event, &user).detail("admin"))?;
        }
    }
    // Catalog keys: the admin says them with {count}, the rows selected (some may have
    // been in that state already).
    Ok(if active { "auth-admin-activated" } else { "auth-admin-deactivated" }.into())
}
