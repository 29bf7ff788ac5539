//! The console's page shell: every page is `<!doctype html>`, the embedded stylesheet, a nav
//! (Flow · Messages · Dead and quarantine · the operator's account and role · Sign out) and the
//! page's own body. In: a title, the [`Session`] and the body's HTML (its values already put
//! through [`escape`]). Out: the `HttpResponse`, with headers that keep it out of caches and
//! frames and allow only the console's own scripts (`Content-Security-Policy`). Must never put a
//! value into HTML without [`escape`].

use super::session::Session;
use actix_web::HttpResponse;
use actix_web::http::header;

/// Escapes `text` for HTML text and for attribute values in double or single quotes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Headers every console answer carries: no caching (pages show operational data), no framing,
/// no sniffing, no referrer, scripts only from the console itself.
pub fn secure_headers(mut res: HttpResponse) -> HttpResponse {
    let h = res.headers_mut();
    let pairs = [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    ];
    for (k, v) in pairs {
        h.insert(k, header::HeaderValue::from_static(v));
    }
    res
}

/// A page of the signed-in console: the nav, then `body_html` (already escaped) in `<main>`.
pub fn page(title: &str, session: &Session, body_html: &str) -> HttpResponse {
    let nav = format!(
        r#"<nav>
<span class="brand">kaigo-hub</span>
<a id="nav-flow" href="/console/flow">Flow</a>
<a id="nav-messages" href="/console/messages">Messages</a>
<a id="nav-parked" href="/console/parked">Dead and quarantine</a>
{accounts}<span class="spacer"></span>
<span id="operator">{account} <span class="role">({role})</span></span>
<form id="sign-out-form" method="post" action="/console/logout">{csrf}<button id="sign-out" type="submit">Sign out</button></form>
</nav>"#,
        account = escape(&session.account),
        role = escape(session.role.as_str()),
        accounts = if session.may(super::roles::Action::ManageAccounts) {
            "<a id=\"nav-accounts\" href=\"/console/accounts\">Accounts</a>\n"
        } else {
            ""
        },
        csrf = session.csrf_field(),
    );
    html(200, title, &format!("{nav}\n<main>\n{body_html}\n</main>"))
}

/// A page without the nav (sign-in, refusals), with `status`.
pub fn bare(status: u16, title: &str, body_html: &str) -> HttpResponse {
    html(
        status,
        title,
        &format!("<main class=\"bare\">\n{body_html}\n</main>"),
    )
}

fn html(status: u16, title: &str, inner: &str) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    let doc = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} · kaigo-hub console</title>\n\
         <link rel=\"stylesheet\" href=\"/console/assets/console.css\">\n</head>\n<body>\n{inner}\n</body>\n</html>\n",
        escape(title)
    );
    secure_headers(
        HttpResponse::build(status)
            .content_type("text/html; charset=utf-8")
            .body(doc),
    )
}

/// The embedded stylesheet.
pub const CSS: &str = include_str!("assets/console.css");
/// The embedded script of the Flow page (refreshes the counts).
pub const FLOW_JS: &str = include_str!("assets/flow.js");

/// `GET /console/assets/console.css`.
pub async fn css() -> HttpResponse {
    secure_headers(
        HttpResponse::Ok()
            .content_type("text/css; charset=utf-8")
            .body(CSS),
    )
}

/// `GET /console/assets/flow.js`.
pub async fn flow_js() -> HttpResponse {
    secure_headers(
        HttpResponse::Ok()
            .content_type("text/javascript; charset=utf-8")
            .body(FLOW_JS),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_neutralises_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x" onclick='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(escape("介護 ok"), "介護 ok");
    }
}
