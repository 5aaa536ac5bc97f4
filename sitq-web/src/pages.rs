//! The HTML pages: server-rendered with maud (which escapes every value it
//! interpolates), one module per page, the shell and stylesheet in
//! `layout`.

pub mod actions;
pub mod chart;
pub mod layout;
pub mod lists;
pub mod overview;
pub mod task;
pub mod tasks;
pub mod workflow;

use std::sync::Arc;

use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use crate::State;
use crate::auth::CsrfToken;
use crate::error::WebError;
use layout::Nav;

/// What a page handler needs besides its own input: the state, the path
/// prefix the router is nested under, and the browser's CSRF token.
pub struct Ctx {
    /// The shared state.
    pub state: Arc<State>,
    /// The prefix the dashboard is served under (`""` at the root).
    pub base: String,
    /// The CSRF token forms carry.
    pub csrf: String,
}

impl FromRequestParts<Arc<State>> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<State>,
    ) -> Result<Ctx, Self::Rejection> {
        let inner = parts.uri.path().to_owned();
        let original = parts
            .extensions
            .get::<OriginalUri>()
            .map(|uri| uri.0.path().to_owned())
            .unwrap_or_else(|| inner.clone());
        let base = if inner == "/" {
            original.trim_end_matches('/').to_owned()
        } else {
            original
                .strip_suffix(inner.as_str())
                .unwrap_or("")
                .to_owned()
        };
        let csrf = parts
            .extensions
            .get::<CsrfToken>()
            .map(|token| token.0.clone())
            .unwrap_or_default();
        Ok(Ctx {
            state: Arc::clone(state),
            base,
            csrf,
        })
    }
}

impl Ctx {
    /// `path` under the dashboard's prefix.
    pub fn link(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The page, or the error page with the error's status.
    pub fn respond(&self, title: &str, nav: Nav, body: Result<Markup, WebError>) -> Response {
        match body {
            Ok(body) => layout::page(self, title, nav, body).into_response(),
            Err(err) => self.error(err),
        }
    }

    /// The error page.
    pub fn error(&self, err: WebError) -> Response {
        let body = html! {
            div.notice.error { (err.message) }
            p { a href=(self.link("/")) { "Back to the overview" } }
        };
        let title = err.status.canonical_reason().unwrap_or("Error").to_owned();
        (err.status, layout::page(self, &title, Nav::None, body)).into_response()
    }

    /// A POST form with one button: the CSRF token, `fields` as hidden
    /// inputs.
    pub fn button(
        &self,
        action: &str,
        label: &str,
        class: &str,
        fields: &[(&str, &str)],
    ) -> Markup {
        html! {
            form.inline method="post" action=(self.link(action)) {
                input type="hidden" name="csrf" value=(self.csrf);
                @for (name, value) in fields {
                    input type="hidden" name=(name) value=(value);
                }
                button.(class) type="submit" { (label) }
            }
        }
    }
}

/// Any other path.
pub async fn not_found(ctx: Ctx) -> Response {
    ctx.error(WebError::not_found("no such page"))
}
