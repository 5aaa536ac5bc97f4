//! What a request that cannot be served gets: a status and one line, as
//! JSON for the API and as a page for a browser.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sitq_core::Error;

/// A refusal or failure, with the status it answers with.
#[derive(Debug)]
pub struct WebError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, for the person or program that asked.
    pub message: String,
}

impl WebError {
    /// 400: the request itself is wrong.
    pub fn bad_request(message: impl Into<String>) -> WebError {
        WebError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> WebError {
        WebError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// 403: the dashboard is read-only.
    pub fn read_only() -> WebError {
        WebError {
            status: StatusCode::FORBIDDEN,
            message: "this dashboard is read-only".to_owned(),
        }
    }

    /// 403: a form without the browser's CSRF token.
    pub fn csrf() -> WebError {
        WebError {
            status: StatusCode::FORBIDDEN,
            message: "the form's CSRF token does not match this browser's cookie: reload the page and try again".to_owned(),
        }
    }
}

impl From<Error> for WebError {
    fn from(err: Error) -> WebError {
        let status = match &err {
            Error::NotFound(_) | Error::WorkflowNotFound(_) | Error::WorkerNotFound(_) => {
                StatusCode::NOT_FOUND
            }
            Error::NotRetryable { .. }
            | Error::NotDeletable { .. }
            | Error::DuplicateTask { .. } => StatusCode::CONFLICT,
            Error::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            // The dashboard's database role may not do this (e.g. a
            // producer's role behind a read-mostly dashboard).
            Error::PermissionDenied { .. } => StatusCode::FORBIDDEN,
            Error::Encode { .. }
            | Error::InvalidOptions(_)
            | Error::InvalidQueueSettings(_)
            | Error::Config(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %sitq_core::inspect::one_line(&err), "dashboard request failed");
        }
        WebError {
            status,
            message: sitq_core::inspect::one_line(&err),
        }
    }
}

/// The API's rendering: `{"error": "…"}` with the status.
pub struct ApiError(pub WebError);

impl<E: Into<WebError>> From<E> for ApiError {
    fn from(err: E) -> ApiError {
        ApiError(err.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0.status,
            Json(serde_json::json!({ "error": self.0.message })),
        )
            .into_response()
    }
}
