//! Building and running the application: bind first, serve until a shutdown future resolves.

use crate::auth;
use crate::config::Settings;
use crate::error::ApiError;
use crate::events::Hub;
use crate::extract::BODY_LIMIT;
use crate::listener::{self, ConnectionLimits};
use crate::rate_limit::RateLimiter;
use crate::redis_conn::RedisConn;
use crate::routes;
use crate::state::AppState;
use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::HeaderName;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use convos_core::Password;
use secrecy::ExposeSecret;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnFailure, DefaultOnResponse, TraceLayer};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A bound, ready-to-serve server.
pub struct Application {
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    metrics: Option<(TcpListener, Router)>,
    shutdown: CancellationToken,
}

impl Application {
    /// Connects to PostgreSQL and Redis, migrates if configured, and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let url = settings.database_url.expose_secret();
        if settings.migrate_on_start {
            // Migrations may run longer than a request's statement limit: their own connection,
            // without one.
            let unlimited =
                convos_store::connect(url, 1, convos_store::StatementLimits::NONE).await?;
            convos_store::MIGRATOR
                .run(&unlimited)
                .await
                .context("could not apply migrations")?;
            unlimited.close().await;
        }
        let limits = convos_store::StatementLimits::statements(std::time::Duration::from_millis(
            settings.db_statement_timeout_ms,
        ));
        let db = convos_store::connect(url, settings.db_max_connections, limits).await?;
        Self::with_pool(settings, db).await
    }

    /// Like [`Application::build`] over an existing pool (tests get one database each).
    pub async fn with_pool(settings: Settings, db: sqlx::PgPool) -> anyhow::Result<Self> {
        let redis =
            RedisConn::new(settings.redis_url.expose_secret()).context("invalid REDIS_URL")?;
        match redis.get().await {
            Err(e) => {
                tracing::warn!(error = %e, "redis is unreachable; starting anyway (rate limits off)")
            }
            Ok(mut conn) => convos_plumbing::redis_client::check_version(&mut conn)
                .await
                .map_err(anyhow::Error::msg)?,
        }
        let dummy_hash = tokio::task::spawn_blocking(|| {
            let random = crate::auth::new_token();
            Password::parse(&random)
                .map_err(anyhow::Error::from)
                .and_then(|p| auth::hash_password(&p))
        })
        .await??;
        let shutdown = CancellationToken::new();
        let hub = Hub::start(
            redis.clone(),
            settings.redis_prefix.clone(),
            shutdown.clone(),
        );
        let costly_wait = std::time::Duration::from_millis(settings.costly_wait_ms);
        let state = AppState {
            wake: crate::wake::WorkerWake::start(redis.clone(), &settings.redis_prefix),
            limiter: RateLimiter::new(redis.clone(), settings.redis_prefix.clone()),
            hub,
            streams: crate::streams::Streams::new(settings.max_streams_per_user),
            in_flight: crate::in_flight::InFlight::new(settings.max_requests_per_user),
            requests: convos_plumbing::request_rate::RequestRate::new(
                settings.requests_per_sec_per_addr,
            ),
            searches: crate::costly::Budget::new(settings.max_searches, costly_wait),
            long_thread_actions: crate::costly::Budget::new(
                settings.max_long_thread_actions,
                costly_wait,
            ),
            metrics: crate::metrics::Metrics::new(),
            hashing: crate::hashing::Hasher::for_this_machine()
                .context("could not start the password hashing threads")?,
            shutdown: shutdown.clone(),
            notify: convos_store::jobs::NotifySettings {
                notify_delay: std::time::Duration::from_secs(settings.notify_delay_secs),
            },
            db,
            redis,
            dummy_hash: Arc::from(dummy_hash),
            proxies: Arc::new(
                crate::client_addr::TrustedProxies::parse(&settings.trusted_proxies)
                    .map_err(|e| anyhow::anyhow!("CONVOS_TRUSTED_PROXIES: {e}"))?,
            ),
            settings: Arc::new(settings),
        };
        let listener = TcpListener::bind(state.settings.addr)
            .await
            .with_context(|| format!("could not listen on {}", state.settings.addr))?;
        let metrics = match state.settings.server_metrics_addr {
            Some(addr) => Some((
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("could not listen for /metrics on {addr}"))?,
                crate::metrics::router(&state),
            )),
            None => None,
        };
        let limits = ConnectionLimits {
            max_connections: state.settings.max_connections,
            max_per_addr: state.settings.max_connections_per_addr,
            proxies: state.proxies.clone(),
            header_timeout: Duration::from_secs(state.settings.header_timeout_secs.max(1)),
            write_timeout: Duration::from_secs(state.settings.write_timeout_secs.max(1)),
        };
        Ok(Self {
            shutdown,
            listener,
            limits,
            metrics,
            router: app(state),
        })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or_default()
    }

    /// The port `/metrics` is served on, if it is served.
    pub fn metrics_port(&self) -> Option<u16> {
        let (listener, _) = self.metrics.as_ref()?;
        listener.local_addr().ok().map(|a| a.port())
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(addr = ?self.listener.local_addr().ok(), "listening");
        let token = self.shutdown.clone();
        tokio::spawn(async move {
            shutdown.await;
            // Ends event streams and the hub, which would otherwise hold shutdown open.
            token.cancel();
        });
        if let Some((listener, router)) = self.metrics {
            tracing::info!(addr = ?listener.local_addr().ok(), "serving /metrics");
            // A few scrapers at a time, each with the same header deadline.
            let limits = ConnectionLimits {
                max_connections: 16,
                ..self.limits.clone()
            };
            tokio::spawn(listener::serve(
                listener,
                router,
                limits,
                self.shutdown.clone(),
            ));
        }
        let result = listener::serve(
            self.listener,
            self.router,
            self.limits,
            self.shutdown.clone(),
        )
        .await;
        self.shutdown.cancel();
        result
    }
}

/// The whole HTTP application over `state`.
pub fn app(state: AppState) -> Router {
    let (api, _) = routes::router();
    let request_timeout = Duration::from_secs(state.settings.request_timeout_secs.max(1));
    let running = Arc::new(tokio::sync::Semaphore::new(
        state.settings.max_connections.max(1),
    ));
    api.layer(axum::middleware::map_response(guard_page))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(|req: Request, next: Next| {
            crate::extract::refuse_declared_over(BODY_LIMIT, req, next)
        }))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::fair_share::limit,
        ))
        // Outside the refusals above, so their 413s and 429s are counted too.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        // Inside the request id and trace layers, so a timed-out request is logged with its id.
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| deadline(request_timeout, req, next),
        ))
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| detached(running.clone(), request_timeout, req, next),
        ))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let route = req
                        .extensions()
                        .get::<MatchedPath>()
                        .map(MatchedPath::as_str);
                    let request_id = req
                        .headers()
                        .get(REQUEST_ID)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    tracing::info_span!("request", method = %req.method(), route, request_id)
                })
                // One access-log line per request, inside the span that carries the request id.
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO))
                // A 5xx is mostly a client's timeout or an outage already logged where it was met
                // (`ApiError` logs internal errors with their cause): warn, not error, so one
                // client cannot flood the error log.
                .on_failure(DefaultOnFailure::new().level(tracing::Level::WARN)),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(axum::middleware::from_fn(drop_unusable_request_id))
        .with_state(state)
}

/// The headers of every HTML page (the verification and email-link pages, whose URL is a
/// capability and whose buttons act with it): not cached anywhere, never framed by another
/// site (a "turn email off" button under a stranger's page), never named in a `Referer`, and
/// able to load nothing and post only to us.
async fn guard_page(mut response: Response) -> Response {
    use axum::http::{HeaderValue, header};
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if html {
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
    }
    response
}

/// Answers 503 when a request's response has not started within `limit`. An event stream has
/// started once its headers are out, so its long life is not cut by this.
async fn deadline(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::RequestTimedOut.into_response(),
    }
}

/// Runs a request (its deadline included) in a task of its own, so that a client hanging up
/// does not cancel it halfway: a cancelled handler gave back its user's place among their
/// requests under way (decision 53) while its statement went on holding a pooled connection
/// (sqlx waits for it before the connection is reused), so a client that sent a search and hung
/// up at once, again and again, held the pool past its share. The work stays bounded by the
/// request deadline and the statement limits; a panic in the task is a 500 with the error body,
/// as one in a handler is.
///
/// At most `running` such tasks at once, as many as connections are served: a request holds a
/// permit until its task ends, so hanging up and connecting again cannot pile up more work
/// than open connections could (a request finding none free waits for one, within
/// `request_timeout`, as it would have waited in the connection backlog).
async fn detached(
    running: Arc<tokio::sync::Semaphore>,
    request_timeout: Duration,
    req: Request,
    next: Next,
) -> Response {
    let Ok(Ok(permit)) = tokio::time::timeout(request_timeout, running.acquire_owned()).await
    else {
        return ApiError::RequestTimedOut.into_response();
    };
    let task = tokio::spawn(async move {
        let response = next.run(req).await;
        drop(permit);
        response
    });
    match task.await {
        Ok(response) => response,
        Err(e) => ApiError::Internal(anyhow::anyhow!("request task failed: {e}")).into_response(),
    }
}

/// A client's own `X-Request-Id` is kept (and echoed) only when it is short and plain; anything
/// else is replaced by a fresh id, so nobody can write arbitrary text into the logs.
async fn drop_unusable_request_id(mut req: Request, next: Next) -> Response {
    let usable = req.headers().get(REQUEST_ID).is_some_and(|v| {
        let bytes = v.as_bytes();
        (1..=64).contains(&bytes.len())
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    });
    if !usable {
        req.headers_mut().remove(REQUEST_ID);
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::Notify;
    use tower::ServiceExt;

    #[tokio::test]
    async fn requests_whose_clients_hung_up_still_hold_their_place_among_those_running() {
        // One request may run at once. The first is abandoned by its client while its handler
        // waits; the handler goes on, and the second waits for it rather than running beside it
        // (hanging up and connecting again must not pile up more work than connections can).
        let release = Arc::new(Notify::new());
        let started = Arc::new(AtomicUsize::new(0));
        let handler = {
            let (release, started) = (release.clone(), started.clone());
            move || async move {
                if started.fetch_add(1, Ordering::SeqCst) == 0 {
                    release.notified().await;
                }
                "done"
            }
        };
        let running = Arc::new(tokio::sync::Semaphore::new(1));
        let app = Router::new()
            .route("/", get(handler))
            .layer(axum::middleware::from_fn(
                move |req: Request, next: Next| {
                    detached(running.clone(), Duration::from_secs(30), req, next)
                },
            ));
        let request = || Request::builder().uri("/").body(Body::empty()).unwrap();

        let abandoned = tokio::spawn(app.clone().oneshot(request()));
        while started.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        abandoned.abort();
        let second = tokio::spawn(app.oneshot(request()));
        tokio::time::sleep(Duration::from_millis(200)).await;

        assert!(!second.is_finished(), "ran beside the abandoned one");
        assert_eq!(started.load(Ordering::SeqCst), 1);
        release.notify_one();
        let answer = second.await.unwrap().unwrap();
        assert_eq!(answer.status(), axum::http::StatusCode::OK);
        assert_eq!(started.load(Ordering::SeqCst), 2);
    }
}
