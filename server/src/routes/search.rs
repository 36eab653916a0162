//! `GET /api/v1/search`: full-text search over the caller's own convos.

use crate::error::{ApiError, Result};
use crate::extract::{ApiQuery, AuthUser, parse_limit};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use convos_core::ErrorBody;
use convos_core::api::{Page, SearchHit};
use convos_store::search;
use serde::Deserialize;
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(search_messages))
}

/// Query of `GET /api/v1/search`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// Words to find (web-search syntax: `"a phrase"`, `-excluded`, `or`): 1 to 200
    /// characters, at most 8 words, at most 4 words in one quoted phrase.
    q: Option<String>,
    /// 1 to 100, default 25.
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Searches the subjects and bodies of the messages the caller can see (never the body of a
/// read-once message), best matches first, with the matching words between `«` and `»`.
///
/// Only the newest 1,000 matching messages are ranked. A search that runs past
/// `search_timeout_ms` is stopped and answers 503 `timed_out` (retry, or narrow the query).
#[utoipa::path(get, path = "/api/v1/search", tag = "messages",
    security(("bearer" = [])), params(SearchQuery),
    responses((status = 200, body = Page<SearchHit>), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn search_messages(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> Result<Json<Page<SearchHit>>> {
    let q = search::SearchQuery::parse(query.q.as_deref().unwrap_or_default())
        .map_err(|e| ApiError::field("q", e.to_string()))?;
    let limit = parse_limit(query.limit.as_deref(), 25, 100)?;
    let offset = match query.cursor.as_deref() {
        None => 0,
        Some(c) => search::offset(c)
            .ok_or_else(|| ApiError::field("cursor", "is not a cursor returned by this API"))?,
    };
    let timeout = Duration::from_millis(state.settings.search_timeout_ms);
    // Searches are the costliest reads (up to their 2 s limit each): however many accounts ask,
    // no more than `max_searches` hold pooled connections at once (decision 53), handed out
    // fairly when all are taken (decision 79).
    let _running = state.searches.place(caller.user.id).await?;
    Ok(Json(
        search::search(&state.db, caller.user.id, &q, limit, offset, timeout).await?,
    ))
}
