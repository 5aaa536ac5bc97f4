//! What every request passes before a handler: the host check (DNS
//! rebinding), the token, the cross-site check for anything that changes
//! state, and the CSRF cookie the forms echo.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

/// The cookie holding the CSRF token the forms echo in their `csrf` field.
pub const CSRF_COOKIE: &str = "sitq_csrf";

/// The request checks [`check`] applies.
pub struct Guard {
    /// The token every request must carry, if any.
    pub token: Option<String>,
    /// Answer only requests addressed to a loopback host.
    pub loopback_hosts: bool,
}

/// The CSRF token of this browser: from its cookie, or new (and then set on
/// the response).
#[derive(Clone, Debug)]
pub struct CsrfToken(pub String);

/// Runs the checks, then the handler; sets the CSRF cookie when the
/// browser had none.
pub async fn check(State(guard): State<Arc<Guard>>, mut request: Request, next: Next) -> Response {
    let headers = request.headers();
    if guard.loopback_hosts && !loopback_host(headers) {
        return refuse(
            StatusCode::FORBIDDEN,
            "this dashboard answers only requests addressed to localhost or a loopback address",
        );
    }
    if let Some(token) = &guard.token
        && !authorized(headers, token)
    {
        let mut response = refuse(
            StatusCode::UNAUTHORIZED,
            "a token is required: send 'Authorization: Bearer <token>' (or basic auth with the token as the password)",
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"sitq\", charset=\"UTF-8\""),
        );
        return response;
    }
    if !safe_method(request.method()) && cross_site(headers) {
        return refuse(
            StatusCode::FORBIDDEN,
            "cross-site request refused: the Origin does not match this dashboard",
        );
    }
    let existing = cookie(headers, CSRF_COOKIE).filter(|value| well_formed(value));
    let token = existing.clone().unwrap_or_else(new_token);
    request.extensions_mut().insert(CsrfToken(token.clone()));
    let mut response = next.run(request).await;
    if existing.is_none()
        && let Ok(value) = HeaderValue::from_str(&format!(
            "{CSRF_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
        ))
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// Whether a form's `csrf` field matches the browser's cookie.
pub fn form_token_matches(headers: &HeaderMap, submitted: &str) -> bool {
    cookie(headers, CSRF_COOKIE)
        .is_some_and(|cookie| well_formed(&cookie) && constant_time_eq(&cookie, submitted))
}

fn refuse(status: StatusCode, message: &'static str) -> Response {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut response = (status, Body::from(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn safe_method(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// A browser says where a request comes from: `Sec-Fetch-Site` (cross-site)
/// or an `Origin` whose host differs from the `Host` it was sent to.
/// Programs (curl) send neither and pass.
fn cross_site(headers: &HeaderMap) -> bool {
    if headers
        .get("sec-fetch-site")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|site| site == "cross-site")
    {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let origin = origin.to_str().unwrap_or("null");
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'));
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok());
    match (origin_host, host) {
        (Some(origin_host), Some(host)) => !origin_host.eq_ignore_ascii_case(host),
        _ => true,
    }
}

fn loopback_host(headers: &HeaderMap) -> bool {
    let Some(host) = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
    else {
        return false;
    };
    let (scheme, credentials) = value.trim().split_once(' ').unwrap_or((value, ""));
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return constant_time_eq(credentials, token);
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(credentials) else {
            return false;
        };
        let decoded = String::from_utf8_lossy(&decoded);
        return decoded
            .split_once(':')
            .is_some_and(|(_, password)| constant_time_eq(password, token));
    }
    false
}

/// Compares without stopping at the first difference, so timing does not
/// reveal how much of a guess was right.
fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut difference = a.len() ^ b.len();
    for (i, &byte) in a.iter().enumerate() {
        difference |= usize::from(byte ^ b.get(i).copied().unwrap_or(!byte));
    }
    difference == 0
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

fn well_formed(token: &str) -> bool {
    token.len() == 32 && token.bytes().all(|byte| byte.is_ascii_hexdigit())
}

fn new_token() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // Without an entropy source the process cannot make a secret; a
        // token from the clock and address still differs per browser but
        // is guessable, so say so.
        tracing::warn!("no OS randomness for the CSRF token; using a weaker one");
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or(0);
        bytes = nanos.to_le_bytes();
    }
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            if let Ok(value) = HeaderValue::from_str(value) {
                map.append(*name, value);
            }
        }
        map
    }

    #[test]
    fn tokens_by_bearer_or_basic() {
        assert!(authorized(
            &headers(&[("authorization", "Bearer s3cret")]),
            "s3cret"
        ));
        // "ops:s3cret"
        assert!(authorized(
            &headers(&[("authorization", "Basic b3BzOnMzY3JldA==")]),
            "s3cret"
        ));
        assert!(!authorized(
            &headers(&[("authorization", "Bearer s3cre")]),
            "s3cret"
        ));
        assert!(!authorized(&headers(&[]), "s3cret"));
        assert!(!authorized(
            &headers(&[("authorization", "Basic !!")]),
            "s3cret"
        ));
    }

    #[test]
    fn hosts_and_origins() {
        for host in ["localhost:8080", "127.0.0.1:1", "[::1]:80", "localhost"] {
            assert!(loopback_host(&headers(&[("host", host)])), "{host}");
        }
        for host in ["evil.example:8080", "10.0.0.1", ""] {
            assert!(!loopback_host(&headers(&[("host", host)])), "{host}");
        }
        assert!(!cross_site(&headers(&[("host", "127.0.0.1:8080")])));
        assert!(!cross_site(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080")
        ])));
        assert!(cross_site(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example")
        ])));
        assert!(cross_site(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "null")
        ])));
        assert!(cross_site(&headers(&[("sec-fetch-site", "cross-site")])));
    }

    #[test]
    fn csrf_cookie() {
        let token = new_token();
        assert!(well_formed(&token));
        let map = headers(&[("cookie", &format!("a=b; {CSRF_COOKIE}={token}"))]);
        assert!(form_token_matches(&map, &token));
        assert!(!form_token_matches(&map, "0123"));
        assert!(!form_token_matches(&headers(&[]), &token));
    }
}
