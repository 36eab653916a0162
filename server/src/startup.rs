//! Building and running the application: bind first, serve until a shutdown future resolves.

use crate::auth;
use crate::config::Settings;
use crate::error::ApiError;
use crate::events::Hub;
use crate::extract::BODY_LIMIT;
use crate::rate_limit::RateLimiter;
use crate::redis_conn::RedisConn;
use crate::routes;
use crate::state::AppState;
use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::HeaderName;
use axum::response::IntoResponse;
use convos_core::Password;
use secrecy::ExposeSecret;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A bound, ready-to-serve server.
pub struct Application {
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
}

impl Application {
    /// Connects to PostgreSQL and Redis, migrates if configured, and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let db = convos_store::connect(
            settings.database_url.expose_secret(),
            settings.db_max_connections,
        )
        .await
        .context("could not connect to postgres")?;
        if settings.migrate_on_start {
            convos_store::MIGRATOR
                .run(&db)
                .await
                .context("could not apply migrations")?;
        }
        Self::with_pool(settings, db).await
    }

    /// Like [`Application::build`] over an existing pool (tests get one database each).
    pub async fn with_pool(settings: Settings, db: sqlx::PgPool) -> anyhow::Result<Self> {
        let redis =
            RedisConn::new(settings.redis_url.expose_secret()).context("invalid REDIS_URL")?;
        if let Err(e) = redis.get().await {
            tracing::warn!(error = %e, "redis is unreachable; starting anyway (rate limits off)");
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
        let state = AppState {
            wake: crate::wake::WorkerWake::start(redis.clone(), &settings.redis_prefix),
            limiter: RateLimiter::new(redis.clone(), settings.redis_prefix.clone()),
            hub,
            streams: crate::streams::Streams::new(settings.max_streams_per_user),
            metrics: crate::metrics::Metrics::new(),
            hashing: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get() * 2),
            )),
            shutdown: shutdown.clone(),
            outbox: convos_store::jobs::Outbox {
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
        Ok(Self {
            shutdown,
            listener,
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

    /// Serves until `shutdown` resolves, then lets in-flight requests finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(addr = ?self.listener.local_addr().ok(), "listening");
        let token = self.shutdown.clone();
        let signal = async move {
            shutdown.await;
            // Ends event streams and the hub, which would otherwise hold shutdown open.
            token.cancel();
        };
        // `into_make_service` hands each connection a clone of one prepared router (an `Arc`);
        // serving the `Router` itself would deep-copy every route and its layers per connection
        // (axum's `Router::with_state` on a shared router), about 130 KiB held by every open
        // event stream.
        let result = axum::serve(self.listener, self.router.into_make_service())
            .with_graceful_shutdown(signal)
            .await;
        self.shutdown.cancel();
        result
    }
}

/// The whole HTTP application over `state`.
pub fn app(state: AppState) -> Router {
    let (api, _) = routes::router();
    api.route("/metrics", axum::routing::get(crate::metrics::serve))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
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
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT). The handlers are installed when this is called, not
/// when it is first awaited: a signal arriving in between must still mean a graceful stop, not
/// the default kill. Call it from within the runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = int.recv() => {},
                }
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "could not listen for SIGTERM/SIGINT");
                std::future::pending::<()>().await;
            }
        }
        tracing::info!("shutting down: finishing in-flight requests");
    }
}
