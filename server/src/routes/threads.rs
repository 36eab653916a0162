//! Threads: mailbox folders, one thread's messages, replies and thread-wide actions.

use crate::error::{ApiError, Result};
use crate::extract::{
    ApiJson, ApiPath, ApiQuery, AuthUser, IdempotencyHeader, parse_bool, parse_cursor, parse_id,
    parse_limit,
};
use crate::routes::messages::{check_action_rate, check_send, created_response};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use convos_core::api::{CreateReplyRequest, Folder, Message, Page, Thread};
use convos_core::{ErrorBody, ThreadId};
use convos_store::messages::{self, Created, Idempotency};
use convos_store::threads::{self, Flag, Order};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_threads))
        .routes(routes!(get_thread, delete_thread))
        .routes(routes!(list_thread_messages, reply))
        .routes(routes!(read_thread))
        .routes(routes!(archive_thread))
        .routes(routes!(unarchive_thread))
        .routes(routes!(mute_thread))
        .routes(routes!(unmute_thread))
}

/// Query of `GET /api/v1/threads`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ThreadListQuery {
    /// `inbox` (default), `sent`, `archive` or `all`.
    folder: Option<String>,
    /// `true` to list only threads with unread messages.
    unread: Option<String>,
    /// 1 to 100, default 25.
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// A folder of the caller's threads, newest activity first, keyset-paginated.
#[utoipa::path(get, path = "/api/v1/threads", tag = "threads",
    security(("bearer" = [])),
    params(ThreadListQuery),
    responses((status = 200, body = Page<Thread>), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn list_threads(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(query): ApiQuery<ThreadListQuery>,
) -> Result<Json<Page<Thread>>> {
    let folder = match query.folder.as_deref() {
        None => Folder::default(),
        Some(raw) => raw
            .parse::<Folder>()
            .map_err(|e| ApiError::Validation(vec![e]))?,
    };
    let unread = parse_bool("unread", query.unread.as_deref())?;
    let limit = parse_limit(query.limit.as_deref(), 25, 100)?;
    let cursor = parse_cursor(query.cursor.as_deref())?;
    let page = threads::list(&state.db, caller.user.id, folder, unread, limit, cursor).await?;
    Ok(Json(page))
}

/// One thread, from the caller's point of view.
#[utoipa::path(get, path = "/api/v1/threads/{id}", tag = "threads",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Thread id")),
    responses((status = 200, body = Thread), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn get_thread(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Thread>> {
    let id: ThreadId = parse_id(&id)?;
    Ok(Json(threads::get(&state.db, caller.user.id, id).await?))
}

/// Deletes every copy the caller has in the thread; the other participant keeps theirs.
#[utoipa::path(delete, path = "/api/v1/threads/{id}", tag = "threads",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Thread id")),
    responses((status = 204, description = "Deleted for the caller"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn delete_thread(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode> {
    let id: ThreadId = parse_id(&id)?;
    check_action_rate(&state, caller.user.id).await?;
    let _place = long_thread_place(&state, &caller, id).await?;
    state
        .wake
        .committed(threads::delete_for_me(&state.db, caller.user.id, id).await?);
    Ok(StatusCode::NO_CONTENT)
}

/// Query of `GET /api/v1/threads/{id}/messages`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageListQuery {
    /// 1 to 100, default 15.
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// `desc` (newest first, default) or `asc`.
    order: Option<String>,
}

/// The messages the caller can see in a thread, keyset-paginated.
#[utoipa::path(get, path = "/api/v1/threads/{id}/messages", tag = "threads",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Thread id"), MessageListQuery),
    responses((status = 200, body = Page<Message>), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn list_thread_messages(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<MessageListQuery>,
) -> Result<Json<Page<Message>>> {
    let id: ThreadId = parse_id(&id)?;
    let order = match query.order.as_deref() {
        None | Some("desc") => Order::Desc,
        Some("asc") => Order::Asc,
        Some(_) => return Err(ApiError::field("order", "must be asc or desc")),
    };
    let limit = parse_limit(query.limit.as_deref(), 15, 100)?;
    let cursor = parse_cursor(query.cursor.as_deref())?;
    Ok(Json(
        threads::messages(&state.db, caller.user.id, id, order, limit, cursor).await?,
    ))
}

/// Replies in a thread. The recipient is the other participant, the subject the thread's; a
/// `subject` in the request is ignored.
#[utoipa::path(post, path = "/api/v1/threads/{id}/messages", tag = "threads",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Thread id"),
        ("Idempotency-Key" = Option<String>, Header,
        description = "Repeat a create safely: the same key within 24 hours returns the original message")),
    request_body = CreateReplyRequest,
    responses((status = 201, body = Message), (status = 401, body = ErrorBody),
        (status = 403, description = "The other participant has blocked the caller",
            body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody),
        (status = 429, description = "Sending too fast, or today's volume sent; see Retry-After",
            body = ErrorBody)))]
pub async fn reply(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<String>,
    IdempotencyHeader(key): IdempotencyHeader,
    body: ApiJson<CreateReplyRequest>,
) -> Result<Response> {
    let id: ThreadId = parse_id(&id)?;
    let content = body.value.parse().map_err(ApiError::Validation)?;
    let route = format!("POST /api/v1/threads/{id}/messages");
    let idem = key.map(|k| Idempotency::new(k, &route, &body.canonical));
    if let Some(idem) = &idem
        && let Some(original) = messages::replayed(&state.db, caller.user.id, idem).await?
    {
        return created_response(&state, caller.user.id, Created::Replayed(original)).await;
    }
    let bytes = convos_plumbing::rate_limit::message_volume("", content.body.as_str());
    let counted = check_send(&state, caller.user.id, bytes).await?;
    // The reply's transaction checks that the caller can see the thread; a stranger learns
    // nothing (404).
    let created = messages::reply(
        &state.db,
        &state.notify,
        caller.user.id,
        id,
        &content,
        idem.as_ref(),
    )
    .await;
    super::messages::give_back_unless_stored(&state, caller.user.id, bytes, counted, &created)
        .await;
    let created = state.wake.committed(created?);
    created_response(&state, caller.user.id, created).await
}

/// A place among the actions on whole long threads under way in this process, when `thread`
/// holds more than `long_thread_messages` messages and the caller is in it; none is needed
/// otherwise. Marking a whole thread read or deleting it walks all of its messages (seconds for
/// hundreds of thousands), whatever the caller still holds of them: several accounts, each
/// within its own share of requests, could otherwise hold most of the pool with such actions
/// (decision 55).
async fn long_thread_place(
    state: &AppState,
    caller: &AuthUser,
    thread: ThreadId,
) -> Result<Option<crate::costly::Place>> {
    let long = state.settings.long_thread_messages;
    let size = threads::size_up_to(&state.db, caller.user.id, thread, long + 1).await?;
    if size.is_some_and(|size| size > long) {
        Ok(Some(state.long_thread_actions.place(caller.user.id).await?))
    } else {
        Ok(None)
    }
}

/// Marks every message the caller can see in the thread as read.
#[utoipa::path(post, path = "/api/v1/threads/{id}/read", tag = "threads",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Thread id")),
    responses((status = 200, body = Thread), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn read_thread(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Thread>> {
    let id: ThreadId = parse_id(&id)?;
    check_action_rate(&state, caller.user.id).await?;
    let _place = long_thread_place(&state, &caller, id).await?;
    let thread = state
        .wake
        .committed(threads::mark_read(&state.db, caller.user.id, id).await?);
    Ok(Json(thread))
}

macro_rules! thread_action {
    ($(#[$doc:meta])* $name:ident, $path:literal, |$db:ident, $me:ident, $id:ident| $call:expr) => {
        $(#[$doc])*
        #[utoipa::path(post, path = $path, tag = "threads",
            security(("bearer" = [])),
            params(("id" = String, Path, description = "Thread id")),
            responses((status = 200, body = Thread), (status = 401, body = ErrorBody),
                (status = 404, body = ErrorBody),
                (status = 429, description = "Too many actions this minute; see Retry-After", body = ErrorBody)))]
        pub async fn $name(
            State(state): State<AppState>,
            caller: AuthUser,
            ApiPath(id): ApiPath<String>,
        ) -> Result<Json<Thread>> {
            let ($db, $me, $id): (_, _, ThreadId) = (&state.db, caller.user.id, parse_id(&id)?);
            check_action_rate(&state, $me).await?;
            // The action announces a `thread.updated` event whenever it changed something.
            let thread = state.wake.committed($call.await?);
            Ok(Json(thread))
        }
    };
}

thread_action!(
    /// Moves the thread out of the caller's inbox until a new message arrives.
    archive_thread, "/api/v1/threads/{id}/archive",
    |db, me, id| threads::set_flag(db, me, id, Flag::Archived, true)
);
thread_action!(
    /// Brings an archived thread back to the caller's inbox.
    unarchive_thread, "/api/v1/threads/{id}/unarchive",
    |db, me, id| threads::set_flag(db, me, id, Flag::Archived, false)
);
thread_action!(
    /// Stops notifications for the thread (the caller's view only).
    mute_thread, "/api/v1/threads/{id}/mute",
    |db, me, id| threads::set_flag(db, me, id, Flag::Muted, true)
);
thread_action!(
    /// Resumes notifications for the thread.
    unmute_thread, "/api/v1/threads/{id}/unmute",
    |db, me, id| threads::set_flag(db, me, id, Flag::Muted, false)
);
