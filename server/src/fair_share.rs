//! Each client network's fair share of this server (decision 78): a request over its network's
//! rate (`requests_per_sec_per_addr`) is `429` before anything else of it runs, so no number of
//! requests from one host or site (a flood of made-up tokens, each a database lookup, or of
//! `/healthz`) takes more than its share of the cores every user's requests need.

use crate::client_addr::ClientAddr;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::{Duration, Instant};

/// How long a request over its network's rate waits for its `429`.
pub const REFUSAL_PAUSE: Duration = Duration::from_secs(1);

/// Lets the request through if its client network has a request to spend.
pub async fn limit(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let client = match ClientAddr::from_request_parts(&mut parts, &state).await {
        Ok(client) => client,
        Err(e) => return e.into_response(),
    };
    if let Err(wait) = state.requests.take(client.0, Instant::now()) {
        // Answered after a pause: a refusal at once let a flood go on at whatever rate the
        // server could refuse it (3,300 a second, and the cores with it); held, a network's
        // refusals come no faster than its connections (`max_connections_per_addr`) a
        // [`REFUSAL_PAUSE`].
        tokio::time::sleep(REFUSAL_PAUSE).await;
        return ApiError::RateLimited(wait.max(REFUSAL_PAUSE)).into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}
