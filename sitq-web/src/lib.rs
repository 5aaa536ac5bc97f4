//! sitq's web dashboard and HTTP API.
//!
//! [`router`] (or [`Dashboard`] to configure it) gives an [`axum::Router`]
//! over a connected [`Queue`]: serve it alone (`sitq dashboard`, the admin
//! binary, does) or nest it in your own axum app.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let queue = sitq_core::Queue::connect("sqlite:///var/lib/app/tasks.db").await?;
//! let app = axum::Router::new().nest("/sitq", sitq_web::router(queue));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! The pages are server-rendered HTML with their stylesheet inline: no
//! script, no download, and every page refreshes itself. Overview (counts,
//! throughput and failure-rate charts over the last hour and day, queue
//! wait, oldest pending, live workers), tasks (filters, find by id, keyset
//! pages), one task (arguments, result, every attempt, dependencies),
//! queues (pause, resume), workers, schedules, workflows and the audit log.
//! Actions (retry, cancel, delete, pause, resume) are POST forms with a
//! CSRF token; cancel and delete ask first. Every action is written to the
//! audit log under the dashboard's actor.
//!
//! The same reads and actions are JSON under `/api`, with
//! `POST /api/tasks` to enqueue a task by name (see the README).
//!
//! Security: [`Dashboard::token`] requires `Authorization: Bearer <token>`
//! (or basic auth with the token as password) on every request;
//! [`check_bind`] refuses a non-loopback address without one.
//! [`Dashboard::read_only`] hides and refuses every action.

mod api;
mod auth;
mod error;
mod filter;
mod pages;
pub mod views;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use sitq_core::Queue;

/// The environment variable the `sitq dashboard` command reads its token
/// from when `--token` is not given.
pub const TOKEN_ENV: &str = "SITQ_DASHBOARD_TOKEN";

/// The dashboard over `queue` with the defaults: every action allowed, no
/// token, actions audited as `dashboard`. For a router served beyond
/// loopback, use [`Dashboard::token`].
pub fn router(queue: Queue) -> Router {
    Dashboard::new(queue).router()
}

/// The dashboard's settings; [`router`](Dashboard::router) builds it.
#[derive(Clone)]
pub struct Dashboard {
    queue: Queue,
    read_only: bool,
    token: Option<String>,
    actor: String,
    loopback_hosts: bool,
    refresh: Duration,
}

impl Dashboard {
    /// A dashboard over `queue`, every action allowed, no token.
    pub fn new(queue: Queue) -> Dashboard {
        Dashboard {
            queue,
            read_only: false,
            token: None,
            actor: "dashboard".to_owned(),
            loopback_hosts: false,
            refresh: Duration::from_secs(10),
        }
    }

    /// Hides every action and refuses every POST (403).
    pub fn read_only(mut self, read_only: bool) -> Dashboard {
        self.read_only = read_only;
        self
    }

    /// Requires `token` on every request: `Authorization: Bearer <token>`,
    /// or basic auth with any user name and the token as the password (what
    /// a browser asks for). An empty token is ignored.
    pub fn token(mut self, token: impl Into<String>) -> Dashboard {
        let token = token.into();
        self.token = (!token.is_empty()).then_some(token);
        self
    }

    /// Who actions are recorded for in the audit log (default `dashboard`).
    pub fn actor(mut self, actor: impl Into<String>) -> Dashboard {
        self.actor = actor.into();
        self
    }

    /// Answers only requests whose `Host` is `localhost` or a loopback
    /// address, so a web page elsewhere cannot reach a dashboard on
    /// loopback through DNS rebinding. `sitq dashboard` sets it when it
    /// binds to loopback without a token.
    pub fn loopback_hosts_only(mut self, only: bool) -> Dashboard {
        self.loopback_hosts = only;
        self
    }

    /// How often the pages reload themselves (default 10 s; zero turns it off).
    pub fn refresh(mut self, every: Duration) -> Dashboard {
        self.refresh = every;
        self
    }

    /// The router: pages at its root, the JSON API under `/api`.
    pub fn router(self) -> Router {
        let state = Arc::new(State {
            queue: self.queue,
            read_only: self.read_only,
            actor: self.actor,
            refresh: self.refresh,
            overview: pages::overview::Cache::default(),
        });
        let pages = Router::new()
            .route("/", get(pages::overview::page))
            .route("/tasks", get(pages::tasks::page))
            .route("/tasks/find", get(pages::tasks::find))
            .route("/tasks/{id}", get(pages::task::page))
            .route(
                "/tasks/{id}/{action}",
                get(pages::actions::confirm).post(pages::actions::task_action),
            )
            .route("/queues", get(pages::lists::queues))
            .route(
                "/queues/{name}/{action}",
                post(pages::actions::queue_action),
            )
            .route("/workers", get(pages::lists::workers))
            .route("/schedules", get(pages::lists::schedules))
            .route("/workflows/find", get(pages::workflow::find))
            .route("/workflows/{id}", get(pages::workflow::page))
            .route("/audit", get(pages::lists::audit));
        let api = Router::new()
            .route("/stats", get(api::stats))
            .route("/activity", get(api::activity))
            .route("/tasks", get(api::tasks).post(api::enqueue))
            .route("/tasks/{id}", get(api::task).delete(api::delete))
            .route("/tasks/{id}/retry", post(api::retry))
            .route("/tasks/{id}/cancel", post(api::cancel))
            .route("/queues", get(api::queues))
            .route("/queues/{name}/pause", post(api::pause))
            .route("/queues/{name}/resume", post(api::resume))
            .route("/workers", get(api::workers))
            .route("/schedules", get(api::schedules))
            .route("/workflows/{id}", get(api::workflow))
            .route("/audit", get(api::audit))
            .fallback(api::not_found);
        let guard = auth::Guard {
            token: self.token,
            loopback_hosts: self.loopback_hosts,
        };
        pages
            .nest("/api", api)
            .fallback(pages::not_found)
            .layer(axum::middleware::from_fn_with_state(
                Arc::new(guard),
                auth::check,
            ))
            .with_state(state)
    }
}

/// What every handler reads.
struct State {
    queue: Queue,
    read_only: bool,
    actor: String,
    refresh: Duration,
    /// The overview's last whole-table reads.
    overview: pages::overview::Cache,
}

type Shared = axum::extract::State<Arc<State>>;

/// Checks that the dashboard may listen on `addr`: a loopback address
/// always may; any other only with a token. The error says what to do.
pub fn check_bind(addr: &SocketAddr, token: Option<&str>) -> Result<(), String> {
    if addr.ip().is_loopback() || token.is_some_and(|token| !token.is_empty()) {
        return Ok(());
    }
    Err(format!(
        "refusing to serve the dashboard on {addr} without a token: anyone who reaches it could retry, cancel and delete tasks; pass --token or set {TOKEN_ENV} (or bind to 127.0.0.1)"
    ))
}
