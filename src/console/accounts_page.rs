//! The Accounts page (`manage-accounts`, administrators only): who may sign in, with which role
//! and rights, and how many sessions each has open now; an administrator may end every session of
//! an account at once (a lost laptop, a role changed in the file). In: the accounts in force and
//! the open sessions. Out: HTML; the sign-out-everywhere act is audited naming both accounts.
//! Accounts themselves live in the `console_accounts` file (argon2 hashes made by
//! `kaigo-hub console hash-password`); this page never shows or takes a password or a hash.

use super::layout::{escape, page};
use super::roles::{Action, allows};
use super::session::{Posted, Session};
use super::{Console, ConsoleError};
use crate::audit::{Decision, Hop};
use actix_web::{HttpResponse, web};

/// `GET /console/accounts`.
pub async fn list(
    session: Session,
    console: web::Data<Console>,
) -> Result<HttpResponse, ConsoleError> {
    session.require(Action::ManageAccounts)?;
    Ok(render(&session, &console, None))
}

/// `POST /console/accounts/sign-out`: ends every open session of the account `account`.
pub async fn sign_out_everywhere(
    post: Posted,
    console: web::Data<Console>,
) -> Result<HttpResponse, ConsoleError> {
    post.session.require(Action::ManageAccounts)?;
    let name = post
        .get("account")
        .ok_or_else(|| ConsoleError::BadRequest("which account? (field `account`)".into()))?;
    let Some(account) = console.accounts.get(name) else {
        return Err(ConsoleError::BadRequest(
            "no such account in force (the accounts file and --demo say who)".into(),
        ));
    };
    let ended = console.sessions.close_all_of(&account.name);
    let target = account.name.clone();
    console.audit(Hop::Admin, &post.session, |d| {
        d.decision(Decision::Accepted)
            .reason(format!("console-sign-out-everywhere:{target}"))
    });
    let note = format!("Ended {ended} session(s) of {}.", escape(&account.name));
    // The administrator who ended their own sessions is signed out too: back to sign-in.
    if account.name == post.session.account {
        return Ok(super::see_other("/console/login"));
    }
    Ok(render(&post.session, &console, Some(&note)))
}

fn render(session: &Session, console: &Console, note: Option<&str>) -> HttpResponse {
    let mut rows = String::new();
    for a in console.accounts.iter() {
        let rights: Vec<&str> = Action::ALL
            .iter()
            .filter(|act| allows(a.role, **act))
            .map(|act| act.as_str())
            .collect();
        rows.push_str(&format!(
            r#"<tr data-account="{name}"><td>{name}</td><td class="role">{role}</td><td>{rights}</td><td class="sessions">{open}</td><td><form method="post" action="/console/accounts/sign-out">{csrf}<input type="hidden" name="account" value="{name}"><button type="submit" class="sign-out-everywhere">End its sessions</button></form></td></tr>"#,
            name = escape(&a.name),
            role = escape(a.role.as_str()),
            rights = escape(&rights.join(", ")),
            open = console.sessions.open_of(&a.name),
            csrf = session.csrf_field(),
        ));
    }
    let body = format!(
        r#"<h1>Accounts</h1>
{note}<p>Who may sign in to this console, as the <code>console_accounts</code> file says (and the demo
accounts under <code>serve --demo</code>). To add an account or change a role or password, edit that
file (hashes from <code>kaigo-hub console hash-password</code>) and restart the hub; docs/console.md
says how. Ending an account's sessions signs it out everywhere at once.</p>
<table id="accounts"><thead><tr><th>Account</th><th>Role</th><th>May</th><th>Open sessions</th><th></th></tr></thead>
<tbody>{rows}</tbody></table>"#,
        note = note
            .map(|n| format!(r#"<p id="accounts-note">{n}</p>"#))
            .unwrap_or_default(),
    );
    page("Accounts", session, &body)
}
