//! `server users list|create|login-link` and `server set-role`: accounts from the shell,
//! for operators on a headless host.

use clap::{Arg, ArgMatches};

use super::users::{self, NewUser, Role};
use crate::command::Command;
use crate::context::{AppContext, BoxError};

pub(super) fn all() -> Vec<Command> {
    let username = || Arg::new("username").value_name("USERNAME").required(true);
    let role = || Arg::new("role").value_name("ROLE").value_parser(["user", "staff", "admin"]);
    let users = clap::Command::new("users")
        .about("List and create user accounts, and issue sign-in links")
        .subcommand_required(true)
        .subcommand(clap::Command::new("list").about("List every user"))
        .subcommand(
            clap::Command::new("create")
                .about("Create a user without a passkey (the first user is an admin)")
                .arg(username())
                .arg(role().long("role").help("user (default), staff or admin"))
                .arg(Arg::new("email").long("email").value_name("EMAIL").help("Email address"))
                .arg(
                    Arg::new("display-name")
                        .long("display-name")
                        .value_name("NAME")
                        .help("Name shown instead of the username"),
                ),
        )
        .subcommand(
            clap::Command::new("login-link")
                .about("Print a single-use sign-in URL, valid for 15 minutes")
                .arg(username()),
        );
    let set_role = clap::Command::new("set-role")
        .about("Change a user's role (signs them out everywhere)")
        .arg(username())
        .arg(role().required(true));
    let invite = clap::Command::new("create-invite")
        .about("Print an invitation URL to register, valid for 7 days")
        .arg(Arg::new("email").value_name("EMAIL").required(true))
        .arg(
            Arg::new("language")
                .long("language")
                .value_name("TAG")
                .help("The language of the invitation mail (default: the site's)"),
        );
    vec![
        Command::new(users, run_users),
        Command::new(set_role, run_set_role),
        Command::new(invite, run_create_invite),
    ]
}

async fn run_users(ctx: AppContext, args: ArgMatches) -> Result<(), BoxError> {
    match args.subcommand() {
        Some(("list", _)) => {
            let all = ctx.db.read(users::list).await?;
            println!(
                "{:>6}  {:<24} {:<6} {:<8} {:<32} {:<20} language",
                "id", "username", "role", "active", "email", "created"
            );
            for u in &all {
                let active = if u.is_active { "yes" } else { "no" };
                let email = u.email.as_deref().unwrap_or("-");
                // Empty: the site's default.
                let language = if u.language.is_empty() { "-" } else { u.language.as_str() };
                println!(
                    "{:>6}  {:<24} {:<6} {:<8} {:<32} {:<20} {}",
                    u.id, u.username, u.role, active, email, u.created_at, language
                );
            }
            println!("{} user(s)", all.len());
            Ok(())
        }
        Some(("create", sub)) => {
            let username = arg(sub, "username");
            // With --auth-use-email the name is the address.
            let email = if ctx.config.get(&super::USE_EMAIL)? {
                Some(users::normalize_email(&username)?)
            } else {
                sub.get_one::<String>("email").cloned()
            };
            let new = NewUser {
                username,
                email,
                display_name: sub.get_one::<String>("display-name").cloned().unwrap_or_default(),
                role: sub.get_one::<String>("role").map(|r| r.parse::<Role>()).transpose()?,
                // The operator vouches for the address they typed.
                email_verified: true,
                // The site's default until the user signs in.
                language: String::new(),
            };
            let user = ctx.db.write(move |c| Ok(users::create(c, &new))).await??;
            println!("Created user '{}' (id {}, role {}).", user.username, user.id, user.role);
            Ok(())
        }
        Some(("login-link", sub)) => {
            let name = arg(sub, "username");
            let link = super::login_link(&ctx, &name).await?;
            println!("Sign-in link for '{}' (single use, expires {}):", name, link.expires_at);
            println!("{}", link.url);
            Ok(())
        }
        _ => unreachable!("clap requires a subcommand"),
    }
}

async fn run_set_role(ctx: AppContext, args: ArgMatches) -> Result<(), BoxError> {
    let name = arg(&args, "username");
    let role: Role = arg(&args, "role").parse()?;
    let user = ctx.db.write(move |c| Ok(users::set_role(c, &name, role))).await??;
    println!("User '{}' is now {}.", user.username, user.role);
    Ok(())
}

async fn run_create_invite(ctx: AppContext, args: ArgMatches) -> Result<(), BoxError> {
    let email = arg(&args, "email");
    let invite = super::create_invite(&ctx, &email).await?;
    let email = &invite.email;
    println!("Invitation for {email} (single use, expires {}):", invite.expires_at);
    println!("{}", invite.url);
    if ctx.mailer.is_configured() {
        let language = args.get_one::<String>("language").map_or("", String::as_str);
        super::mail_invite(&ctx, &invite, language).await.map_err(|e| {
            format!("the invitation above was created but not mailed to {email}: {e}")
        })?;
        println!("Mailed to {email}.");
    }
    Ok(())
}

fn arg(args: &ArgMatches, name: &str) -> String {
    args.get_one::<String>(name).cloned().expect("required by clap")
}
