//! Liveness and readiness probes.

use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use convos_core::api::Health;
use std::collections::BTreeMap;
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        checks: BTreeMap::new(),
    })
}

/// PostgreSQL and Redis both answer; 503 naming the one that does not.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Health>) {
    const LIMIT: Duration = Duration::from_secs(2);
    let db = tokio::time::timeout(LIMIT, sqlx::query("select 1").execute(&state.db)).await;
    let ping = tokio::time::timeout(LIMIT, async {
        let mut conn = state.redis.get().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    })
    .await;
    let mut checks = BTreeMap::new();
    checks.insert(
        "postgres".to_owned(),
        match db {
            Ok(Ok(_)) => "ok".to_owned(),
            Ok(Err(e)) => failed("postgres", &e),
            Err(_) => "timeout".to_owned(),
        },
    );
    checks.insert(
        "redis".to_owned(),
        match ping {
            Ok(Ok(_)) => "ok".to_owned(),
            Ok(Err(e)) => failed("redis", &e),
            Err(_) => "timeout".to_owned(),
        },
    );
    let ready = checks.values().all(|v| v == "ok");
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let label = if ready { "ok" } else { "unavailable" };
    (
        status,
        Json(Health {
            status: label.into(),
            checks,
        }),
    )
}

/// A check that failed: `error` for anyone who asks (the route needs no login, and a driver's
/// error names hosts, ports and databases), the reason in the log for the operators.
fn failed(service: &str, error: &dyn std::fmt::Display) -> String {
    tracing::warn!(%error, service, "readiness check failed");
    "error".to_owned()
}
