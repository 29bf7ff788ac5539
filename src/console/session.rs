//! Signed-in operators: sessions, the session cookie, and CSRF. In: a request's `Cookie` header
//! and, for a POST, its form. Out: the [`Session`] of the operator (account, role, CSRF token), or
//! a refusal: no or expired session → the sign-in page; a POST without the session's `csrf` field
//! → 403. Sessions live in this process's memory (part 1 of the console: a restart signs everyone
//! out, and with several hub processes an operator signs in to each) and end after
//! `console_idle_secs` without a request, or at sign-out.
//!
//! The cookie `kaigo_console` holds only a random token (32 bytes, hex): `HttpOnly`,
//! `SameSite=Strict`, `Path=/console`, and `Secure` when the hub serves HTTPS (over plain HTTP the
//! console answers loopback clients only, and a browser would not send a `Secure` cookie back
//! there). Must never put an account's password, or anything personal, in a cookie or a URL.

use super::ConsoleError;
use super::accounts::Account;
use super::roles::{Action, Role, allows};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The session cookie's name.
pub const COOKIE: &str = "kaigo_console";
/// The sign-in form's own cookie: a random value the form repeats in its `csrf` field
/// (double-submit), so a sign-in cannot be posted from another site either.
pub const SIGN_IN_COOKIE: &str = "kaigo_console_sign_in";
/// The largest console form read, bytes (a form holds ids, a query and a reason, never a body).
pub const FORM_LIMIT: usize = 64 * 1024;

/// A signed-in operator, as a handler sees it.
#[derive(Debug, Clone)]
pub struct Session {
    /// The account name (shown as the operator, and the actor of audit events).
    pub account: String,
    /// The account's role when it signed in.
    pub role: Role,
    /// This session's CSRF token: every form carries it as the hidden field `csrf`.
    pub csrf: String,
    token: String,
}

impl Session {
    /// May this operator do `action` ([`allows`])?
    pub fn may(&self, action: Action) -> bool {
        allows(self.role, action)
    }

    /// `Ok` when this operator may do `action`, else the 403 that says which role it takes.
    pub fn require(&self, action: Action) -> Result<(), ConsoleError> {
        if self.may(action) {
            Ok(())
        } else {
            Err(ConsoleError::Forbidden(format!(
                "Your role ({}) does not allow {action}; docs/console.md lists which role does.",
                self.role
            )))
        }
    }

    /// The session's cookie value.
    pub(super) fn token(&self) -> &str {
        &self.token
    }

    /// The hidden form field every POST form of the console carries.
    pub fn csrf_field(&self) -> String {
        format!(
            r#"<input type="hidden" name="csrf" value="{}">"#,
            super::layout::escape(&self.csrf)
        )
    }
}

struct Entry {
    account: String,
    role: Role,
    csrf: String,
    last_seen: Instant,
}

/// Every open session of this process.
pub struct Sessions {
    idle: Duration,
    open: Mutex<HashMap<String, Entry>>,
}

/// A fresh random token (32 bytes as hex), or `None` when the system's random source failed.
pub fn token() -> Option<String> {
    crate::key_file::random(32).map(|b| crate::key_file::hex(&b))
}

/// Compares two secrets in time that does not depend on where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Sessions {
    /// No sessions yet; each ends after `idle` without a request.
    pub fn new(idle: Duration) -> Sessions {
        Sessions {
            idle,
            open: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock leaves a map that is still whole.
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session for `account` (dropping the expired ones); `None` when no random token
    /// could be made.
    pub fn open(&self, account: &Account) -> Option<Session> {
        let (token, csrf) = (token()?, token()?);
        let now = Instant::now();
        let mut open = self.lock();
        open.retain(|_, e| now.duration_since(e.last_seen) <= self.idle);
        open.insert(
            token.clone(),
            Entry {
                account: account.name.clone(),
                role: account.role,
                csrf: csrf.clone(),
                last_seen: now,
            },
        );
        Some(Session {
            account: account.name.clone(),
            role: account.role,
            csrf,
            token,
        })
    }

    /// The session of `token` if it is open and was used within the idle time (it is then
    /// used again now); an expired one is closed.
    pub fn touch(&self, token: &str) -> Option<Session> {
        let now = Instant::now();
        let mut open = self.lock();
        let entry = open.get_mut(token)?;
        if now.duration_since(entry.last_seen) > self.idle {
            open.remove(token);
            return None;
        }
        entry.last_seen = now;
        Some(Session {
            account: entry.account.clone(),
            role: entry.role,
            csrf: entry.csrf.clone(),
            token: token.to_string(),
        })
    }

    /// Ends `session` (sign-out).
    pub fn close(&self, session: &Session) {
        self.lock().remove(&session.token);
    }

    /// How many sessions of `account` are open now (used within the idle time).
    pub fn open_of(&self, account: &str) -> usize {
        let now = Instant::now();
        self.lock()
            .values()
            .filter(|e| e.account == account && now.duration_since(e.last_seen) <= self.idle)
            .count()
    }

    /// Ends every session of `account` (an administrator's "sign out everywhere"); returns how
    /// many were open now.
    pub fn close_all_of(&self, account: &str) -> usize {
        let ended = self.open_of(account);
        self.lock().retain(|_, e| e.account != account);
        ended
    }

    /// How many sessions are open (expired ones not yet dropped included).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The value of the cookie `name` in the request's `Cookie` header(s).
pub fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_string())
}

/// A `Set-Cookie` value for a console cookie: HttpOnly, SameSite=Strict, Path=/console, Secure
/// over HTTPS; `max_age` 0 deletes it, `None` makes it last until the browser closes.
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> String {
    let mut c = format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict");
    if secure {
        c.push_str("; Secure");
    }
    if let Some(s) = max_age {
        c.push_str(&format!("; Max-Age={s}"));
    }
    c
}

impl FromRequest for Session {
    type Error = ConsoleError;
    type Future = std::future::Ready<Result<Session, ConsoleError>>;

    /// The open session of the request's cookie, or [`ConsoleError::SignIn`].
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(current(req).ok_or(ConsoleError::SignIn))
    }
}

/// The request's open session, if any.
fn current(req: &HttpRequest) -> Option<Session> {
    let console = req.app_data::<web::Data<super::Console>>()?;
    console.sessions.touch(&cookie(req, COOKIE)?)
}

/// A console form POSTed by a signed-in operator, its `csrf` field checked against the session:
/// a handler that takes a `Posted` cannot forget the check. Fields may repeat (checkboxes).
pub struct Posted {
    /// Who posted it.
    pub session: Session,
    fields: Vec<(String, String)>,
}

impl Posted {
    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in the form's order (e.g. the ticked checkboxes).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Reads an `application/x-www-form-urlencoded` body of at most [`FORM_LIMIT`] bytes.
pub async fn read_form(
    req: &HttpRequest,
    payload: &mut Payload,
) -> Result<Vec<(String, String)>, ConsoleError> {
    let body = web::Bytes::from_request(req, payload)
        .await
        .map_err(|_| ConsoleError::BadRequest("The form could not be read.".into()))?;
    if body.len() > FORM_LIMIT {
        return Err(ConsoleError::BadRequest(format!(
            "The form is larger than {FORM_LIMIT} bytes."
        )));
    }
    Ok(form_urlencoded::parse(&body).into_owned().collect())
}

impl FromRequest for Posted {
    type Error = ConsoleError;
    type Future = LocalBoxFuture<'static, Result<Posted, ConsoleError>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let mut payload = payload.take();
        Box::pin(async move {
            let session = current(&req).ok_or(ConsoleError::SignIn)?;
            let fields = read_form(&req, &mut payload).await?;
            let sent = fields.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v);
            match sent {
                Some(t) if same_secret(t, &session.csrf) => Ok(Posted { session, fields }),
                Some(_) => Err(ConsoleError::Forbidden(
                    "The form's csrf token is not this session's: reload the page and send it again."
                        .into(),
                )),
                None => Err(ConsoleError::Forbidden(
                    "The form has no csrf token: console forms are sent from the console's own pages."
                        .into(),
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(name: &str, role: Role) -> Account {
        Account::for_tests(name, role)
    }

    #[test]
    fn a_session_is_found_by_its_token_until_closed() {
        let s = Sessions::new(Duration::from_secs(60));
        let a = s.open(&account("ops", Role::Operator)).expect("random");
        assert_eq!(a.token.len(), 64);
        assert_ne!(a.token, a.csrf);
        let b = s.touch(&a.token).expect("open");
        assert_eq!((b.account.as_str(), b.role), ("ops", Role::Operator));
        assert!(s.touch("not-a-token").is_none());
        s.close(&b);
        assert!(s.touch(&a.token).is_none());
    }

    #[test]
    fn an_idle_session_expires() {
        let s = Sessions::new(Duration::from_millis(30));
        let a = s.open(&account("v", Role::Viewer)).expect("random");
        std::thread::sleep(Duration::from_millis(60));
        assert!(s.touch(&a.token).is_none());
        assert!(s.is_empty(), "an expired session is dropped");
    }

    #[test]
    fn cookies_carry_the_flags_and_secure_only_over_https() {
        let c = set_cookie(COOKIE, "t", false, None);
        assert_eq!(
            c,
            "kaigo_console=t; Path=/console; HttpOnly; SameSite=Strict"
        );
        assert!(set_cookie(COOKIE, "t", true, Some(0)).ends_with("; Secure; Max-Age=0"));
    }

    #[test]
    fn a_role_without_the_right_is_refused_with_403_naming_the_role() {
        let s = Sessions::new(Duration::from_secs(60));
        let viewer = s.open(&account("v", Role::Viewer)).expect("random");
        let e = viewer
            .require(Action::Replay)
            .expect_err("a viewer does not replay");
        assert!(
            matches!(&e, ConsoleError::Forbidden(m) if m.contains("viewer") && m.contains("replay")),
            "{e}"
        );
        assert!(viewer.require(Action::ViewMetadata).is_ok());
        let privacy = s.open(&account("p", Role::Privacy)).expect("random");
        assert!(privacy.require(Action::ViewBody).is_ok());
        assert!(privacy.require(Action::ManageAccounts).is_err());
    }

    #[test]
    fn secrets_compare_equal_only_when_equal() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
    }
}
