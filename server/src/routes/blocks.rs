//! `/api/v1/me/blocks`: the people the caller has blocked, who can no longer write to them
//! (decision 87).

use crate::error::{ApiError, Result};
use crate::extract::{ApiPath, AuthUser};
use crate::routes::messages::check_action_rate;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use convos_core::api::{Items, UserSummary};
use convos_core::{ErrorBody, Username};
use convos_store::blocks::{self, Blocked, MAX_BLOCKS};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_blocks))
        .routes(routes!(block_user, unblock_user))
}

/// The people the caller has blocked, by username (at most 1,000).
#[utoipa::path(get, path = "/api/v1/me/blocks", tag = "accounts",
    security(("bearer" = [])),
    responses((status = 200, body = Items<UserSummary>), (status = 401, body = ErrorBody)))]
pub async fn list_blocks(
    State(state): State<AppState>,
    caller: AuthUser,
) -> Result<Json<Items<UserSummary>>> {
    let items = blocks::list(&state.db, caller.user.id).await?;
    Ok(Json(Items { items }))
}

/// Blocks a person: from now on they can start no thread with the caller and write in none of
/// the caller's threads (`403`), whatever account of theirs they write from is blocked
/// separately. Their earlier messages stay; the caller can still write to them. Blocking them
/// again changes nothing.
#[utoipa::path(put, path = "/api/v1/me/blocks/{username}", tag = "accounts",
    security(("bearer" = [])),
    params(("username" = String, Path, description = "Their username (any case)")),
    responses(
        (status = 200, description = "Blocked (or already was)", body = UserSummary),
        (status = 401, body = ErrorBody),
        (status = 404, description = "Nobody has this username", body = ErrorBody),
        (status = 422, description = "Not a username, the caller's own, or 1,000 people are \
            blocked already", body = ErrorBody),
        (status = 429, description = "Too many changes this minute", body = ErrorBody)))]
pub async fn block_user(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(username): ApiPath<String>,
) -> Result<Json<UserSummary>> {
    let username = parse(&username)?;
    check_action_rate(&state, caller.user.id).await?;
    match blocks::block(&state.db, caller.user.id, &username).await? {
        Blocked::Blocked(user) => Ok(Json(user)),
        Blocked::Oneself => Err(ApiError::field("username", "is your own")),
        Blocked::TooMany => Err(ApiError::field(
            "username",
            format!("cannot be blocked: you have blocked {MAX_BLOCKS} people already"),
        )),
    }
}

/// Unblocks a person (nothing to do if they were not blocked).
#[utoipa::path(delete, path = "/api/v1/me/blocks/{username}", tag = "accounts",
    security(("bearer" = [])),
    params(("username" = String, Path, description = "Their username (any case)")),
    responses(
        (status = 204, description = "Not blocked (any more)"),
        (status = 401, body = ErrorBody),
        (status = 404, description = "Nobody has this username", body = ErrorBody),
        (status = 422, description = "Not a username", body = ErrorBody),
        (status = 429, description = "Too many changes this minute", body = ErrorBody)))]
pub async fn unblock_user(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(username): ApiPath<String>,
) -> Result<StatusCode> {
    let username = parse(&username)?;
    check_action_rate(&state, caller.user.id).await?;
    blocks::unblock(&state.db, caller.user.id, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn parse(raw: &str) -> Result<Username> {
    Username::parse(raw).map_err(|e| ApiError::field("username", e.reason))
}
