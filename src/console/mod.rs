//! The operators' web console at `/console`, served by the HTTP source (DESIGN §2): sign-in and
//! roles, then pages over the hub's own data. In: browser requests (HTML forms, a little
//! JavaScript served from the binary). Out: server-rendered HTML and `flow.json`. Over plain HTTP
//! it answers loopback clients only (anyone else gets 403 saying so); with `tls_cert` it answers
//! any client. Every page but the sign-in page needs a session ([`session::Session`]), every POST
//! a CSRF token ([`session::Posted`]), every privileged act a role that allows it
//! ([`roles::allows`]). Must never show a body without a role that allows it or without auditing
//! the view, and never put a person's numbers in a URL (searches are POSTed).
//!
//! | route | who | what |
//! |---|---|---|
//! | `GET /console` | anyone | 303 to the Flow page, or to sign-in |
//! | `GET /console/login`, `POST /console/login` | anyone | sign in (303 to `/console/flow`) |
//! | `POST /console/logout` | signed in | sign out |
//! | `GET /console/flow`, `GET /console/flow.json` | signed in | the flow picture and its counts |
//! | `GET /console/messages`, `POST /console/messages` | signed in | recent messages, a search |
//! | `GET /console/messages/{envelope}` | signed in | one message's trace |
//! | `POST /console/messages/{envelope}/body` | privacy, admin | its bodies, with a reason (audited) |
//! | `GET /console/assets/*` | anyone | the stylesheet and the flow script |
//! | `GET /console/parked` | signed in | dead letters and quarantine by reason ([`parked`]) |
//! | `POST /console/parked/preview`, `POST /console/parked/replay` | `replay` | preview, replay |

pub mod accounts;
pub mod flow;
pub mod layout;
pub mod messages;
pub mod parked;
pub mod roles;
pub mod session;
pub mod throttle;

use crate::audit::{AuditDraft, Decision, Hop, Timestamp};
use crate::pipeline::Hub;
use accounts::Accounts;
use actix_web::body::EitherBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use futures_util::future::LocalBoxFuture;
use layout::escape;
use session::{COOKIE, SIGN_IN_COOKIE, Session, Sessions};
use std::sync::Arc;
use std::time::{Duration, Instant};
use throttle::Throttle;

/// What the console is built from (settings `console_accounts`, `console_idle_secs`, whether
/// the HTTP source serves HTTPS, and `serve --demo`).
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// Who may sign in.
    pub accounts: Accounts,
    /// A session ends after this long without a request (`console_idle_secs`).
    pub idle: Duration,
    /// The HTTP source serves HTTPS (`tls_cert`): cookies are `Secure` and any client may
    /// connect; otherwise only loopback clients.
    pub tls: bool,
    /// The MLLP source speaks TLS (shown on the Flow page).
    pub mllp_tls: bool,
    /// The audit logs the Messages page reads traces from (the hub's and the CLI's).
    pub audit_logs: Vec<std::path::PathBuf>,
}

/// The console's state, shared by every request.
pub struct Console {
    /// The running hub (metrics, parties, store, audit, bus).
    pub hub: Arc<Hub>,
    /// Who may sign in.
    pub accounts: Accounts,
    /// Open sessions.
    pub sessions: Sessions,
    /// Wrong passwords per account.
    throttle: Throttle,
    /// HTTPS (see [`ConsoleConfig::tls`]).
    pub tls: bool,
    /// MLLP over TLS.
    pub mllp_tls: bool,
    /// The audit logs traces are read from ([`ConsoleConfig::audit_logs`]).
    pub audit_logs: Vec<std::path::PathBuf>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("accounts", &self.accounts.len())
            .field("sessions", &self.sessions.len())
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl Console {
    /// The console of `hub`.
    pub fn new(hub: Arc<Hub>, cfg: ConsoleConfig) -> Console {
        Console {
            hub,
            accounts: cfg.accounts,
            sessions: Sessions::new(cfg.idle),
            throttle: Throttle::default(),
            tls: cfg.tls,
            mllp_tls: cfg.mllp_tls,
            audit_logs: cfg.audit_logs,
        }
    }

    /// Records an audit event of an operator's act: `hop` (e.g. `Hop::Replay` for a replay,
    /// `Hop::Admin` for a body view or a person search), actor `console:<account>`; `f` adds
    /// the decision, reason code, envelope id, subject hash. Never a body or a raw number.
    pub fn audit(&self, hop: Hop, session: &Session, f: impl FnOnce(AuditDraft) -> AuditDraft) {
        self.record(hop, &actor(&session.account), f);
    }

    fn record(&self, hop: Hop, actor: &str, f: impl FnOnce(AuditDraft) -> AuditDraft) {
        let Ok(at) = Timestamp::parse(&crate::pipeline::clock::now_rfc3339()) else {
            return;
        };
        self.hub.audit.record(f(AuditDraft::new(at, hop, actor)));
    }
}

/// The audit actor of a console account.
pub fn actor(account: &str) -> String {
    format!("console:{account}")
}

/// Why a console request is refused.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No session (or it expired): 303 to the sign-in page.
    #[error("sign in first")]
    SignIn,
    /// Not allowed (role, CSRF, address): 403 with the reason.
    #[error("{0}")]
    Forbidden(String),
    /// The request cannot be read: 400 with the reason.
    #[error("{0}")]
    BadRequest(String),
    /// Something in the hub failed: 500; the reason is logged, the page says where to look.
    #[error("{0}")]
    Internal(String),
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            ConsoleError::SignIn => StatusCode::SEE_OTHER,
            ConsoleError::Forbidden(_) => StatusCode::FORBIDDEN,
            ConsoleError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ConsoleError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        match self {
            ConsoleError::SignIn => see_other("/console/login"),
            ConsoleError::Forbidden(why) => refusal(403, "Not allowed", why),
            ConsoleError::BadRequest(why) => refusal(400, "Bad request", why),
            ConsoleError::Internal(why) => {
                tracing::error!(error = %why, "console request failed");
                refusal(
                    500,
                    "Something failed",
                    "The hub could not answer this page; its log says why.",
                )
            }
        }
    }
}

fn refusal(status: u16, title: &str, why: &str) -> HttpResponse {
    layout::bare(
        status,
        title,
        &format!(
            "<h1>{}</h1>\n<p class=\"error\" id=\"refusal\">{}</p>\n<p><a href=\"/console/flow\">Back to the console</a></p>",
            escape(title),
            escape(why)
        ),
    )
}

/// A 303 to `to` (a fixed console path).
pub fn see_other(to: &'static str) -> HttpResponse {
    layout::secure_headers(
        HttpResponse::SeeOther()
            .insert_header((header::LOCATION, to))
            .finish(),
    )
}

/// Whether a client at `peer` may use the console: any over HTTPS, loopback only over HTTP.
pub fn client_allowed(tls: bool, peer: Option<std::net::SocketAddr>) -> bool {
    tls || peer.is_some_and(|a| a.ip().to_canonical().is_loopback())
}

/// Mounts the console at `/console` (in the HTTP source's `App`).
pub fn configure(cfg: &mut web::ServiceConfig, console: web::Data<Console>) {
    let tls = console.tls;
    cfg.service(
        web::scope("/console")
            .app_data(console)
            .wrap_fn(move |req, srv| {
                let fut: LocalBoxFuture<'static, _> = if client_allowed(tls, req.peer_addr()) {
                    let call = srv.call(req);
                    Box::pin(async move { call.await.map(ServiceResponse::map_into_left_body) })
                } else {
                    let res = refusal(
                        403,
                        "Console not available from here",
                        "Over plain HTTP the console answers only on the hub's own machine \
                         (loopback). To reach it from elsewhere, serve HTTPS (tls_cert and tls_key).",
                    );
                    let res = req.into_response(res).map_into_right_body();
                    Box::pin(async move { Ok::<ServiceResponse<EitherBody<_>>, _>(res) })
                };
                fut
            })
            .route("", web::get().to(home))
            .route("/", web::get().to(home))
            .route("/login", web::get().to(sign_in_page))
            .route("/login", web::post().to(sign_in))
            .route("/logout", web::post().to(sign_out))
            .route("/flow", web::get().to(flow::page))
            .route("/flow.json", web::get().to(flow::json))
            .route("/messages", web::get().to(messages::page))
            .route("/messages", web::post().to(messages::search))
            .route("/messages/{envelope}", web::get().to(messages::trace))
            .route("/messages/{envelope}/body", web::post().to(messages::body))
            .route("/parked", web::get().to(parked::page))
            .route("/parked/preview", web::post().to(parked::preview))
            .route("/parked/replay", web::post().to(parked::replay))
            .route("/assets/console.css", web::get().to(layout::css))
            .route("/assets/flow.js", web::get().to(layout::flow_js))
            .default_service(web::to(not_found)),
    );
}

async fn not_found() -> HttpResponse {
    refusal(
        404,
        "Not found",
        "There is no console page at this address.",
    )
}

/// `GET /console`: the Flow page when signed in, else the sign-in page.
async fn home(req: HttpRequest, console: web::Data<Console>) -> HttpResponse {
    let signed_in =
        session::cookie(&req, COOKIE).is_some_and(|t| console.sessions.touch(&t).is_some());
    see_other(if signed_in {
        "/console/flow"
    } else {
        "/console/login"
    })
}

/// The sign-in form; `error` (already plain text) is shown as `#sign-in-error`.
fn sign_in_form(console: &Console, nonce: &str, error: Option<&str>, status: u16) -> HttpResponse {
    let error = error
        .map(|e| {
            format!(
                "<p class=\"error\" id=\"sign-in-error\" role=\"alert\">{}</p>\n",
                escape(e)
            )
        })
        .unwrap_or_default();
    let none = if console.accounts.is_empty() {
        "<p class=\"note\" id=\"no-accounts\">No console account is set up: name an accounts file in \
         the setting <code>console_accounts</code> (see docs/console.md).</p>\n"
    } else {
        ""
    };
    let body = format!(
        r#"<h1>Sign in to the kaigo-hub console</h1>
{error}{none}<form id="sign-in-form" class="card" method="post" action="/console/login">
<input type="hidden" name="csrf" value="{nonce}">
<label for="username">Account</label>
<input type="text" id="username" name="username" autocomplete="username" required autofocus>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<p><button id="sign-in" type="submit">Sign in</button></p>
</form>"#,
        nonce = escape(nonce)
    );
    let mut res = layout::bare(status, "Sign in", &body);
    if let Ok(v) = header::HeaderValue::from_str(&session::set_cookie(
        SIGN_IN_COOKIE,
        nonce,
        console.tls,
        None,
    )) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

/// `GET /console/login`.
async fn sign_in_page(
    req: HttpRequest,
    console: web::Data<Console>,
) -> Result<HttpResponse, ConsoleError> {
    if session::cookie(&req, COOKIE).is_some_and(|t| console.sessions.touch(&t).is_some()) {
        return Ok(see_other("/console/flow"));
    }
    let nonce =
        session::token().ok_or_else(|| ConsoleError::Internal("no random source".into()))?;
    Ok(sign_in_form(&console, &nonce, None, 200))
}

/// `POST /console/login`: `csrf` (the sign-in cookie's value), `username`, `password`.
async fn sign_in(
    req: HttpRequest,
    payload: web::Payload,
    console: web::Data<Console>,
) -> Result<HttpResponse, ConsoleError> {
    let fields = session::read_form(&req, &mut payload.into_inner()).await?;
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let cookie = session::cookie(&req, SIGN_IN_COOKIE).unwrap_or_default();
    let sent = field("csrf");
    if cookie.is_empty() || !session::same_secret(&sent, &cookie) {
        return Err(ConsoleError::Forbidden(
            "The sign-in form's csrf token does not match: open the sign-in page and sign in from there."
                .into(),
        ));
    }
    let (name, password) = (field("username"), field("password"));
    let known = console.accounts.get(&name).is_some();
    let nonce =
        session::token().ok_or_else(|| ConsoleError::Internal("no random source".into()))?;
    if known && let Err(wait) = console.throttle.check(&name, Instant::now()) {
        console.record(Hop::Admin, &actor(&name), |d| {
            d.decision(Decision::Rejected)
                .reason("console-sign-in-throttled")
        });
        let secs = wait.as_secs().max(1);
        let mut res = sign_in_form(
            &console,
            &nonce,
            Some(&format!(
                "Too many wrong passwords for this account: try again in {secs} s."
            )),
            429,
        );
        res.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        return Ok(res);
    }
    let accounts = console.accounts.clone();
    let checked_name = name.clone();
    let account = web::block(move || accounts.verify(&checked_name, &password))
        .await
        .map_err(|e| ConsoleError::Internal(format!("checking a password: {e}")))?;
    let Some(account) = account else {
        if known {
            console.throttle.failed(&name, Instant::now());
            console.record(Hop::Admin, &actor(&name), |d| {
                d.decision(Decision::Rejected)
                    .reason("console-sign-in-wrong-password")
            });
        } else {
            // What was typed as a name may be anything (a password, a person's name): not kept.
            console.record(Hop::Admin, "console", |d| {
                d.decision(Decision::Rejected)
                    .reason("console-sign-in-unknown-account")
            });
        }
        return Ok(sign_in_form(
            &console,
            &nonce,
            Some("Wrong account name or password."),
            401,
        ));
    };
    console.throttle.succeeded(&account.name);
    if let Some(old) = session::cookie(&req, COOKIE).and_then(|t| console.sessions.touch(&t)) {
        console.sessions.close(&old);
    }
    let session = console
        .sessions
        .open(&account)
        .ok_or_else(|| ConsoleError::Internal("no random source".into()))?;
    console.audit(Hop::Admin, &session, |d| {
        d.decision(Decision::Accepted).reason("console-sign-in")
    });
    tracing::info!(account = %account.name, role = %account.role, "console: signed in");
    let mut res = see_other("/console/flow");
    for c in [
        session::set_cookie(COOKIE, &session_token(&session), console.tls, None),
        session::set_cookie(SIGN_IN_COOKIE, "", console.tls, Some(0)),
    ] {
        if let Ok(v) = header::HeaderValue::from_str(&c) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(res)
}

fn session_token(s: &Session) -> String {
    s.token().to_string()
}

/// `POST /console/logout`.
async fn sign_out(post: session::Posted, console: web::Data<Console>) -> HttpResponse {
    console.sessions.close(&post.session);
    console.audit(Hop::Admin, &post.session, |d| {
        d.decision(Decision::Accepted).reason("console-sign-out")
    });
    let mut res = see_other("/console/login");
    if let Ok(v) =
        header::HeaderValue::from_str(&session::set_cookie(COOKIE, "", console.tls, Some(0)))
    {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_clients_over_plain_http() {
        let at = |s: &str| Some(s.parse().expect("address"));
        assert!(client_allowed(false, at("127.0.0.1:5000")));
        assert!(client_allowed(false, at("[::1]:5000")));
        assert!(client_allowed(false, at("[::ffff:127.0.0.1]:5000")));
        assert!(!client_allowed(false, at("192.0.2.7:5000")));
        assert!(!client_allowed(false, None));
        assert!(client_allowed(true, at("192.0.2.7:5000")));
    }
}
