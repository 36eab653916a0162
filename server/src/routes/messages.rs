//! Messages: starting a thread, reading, read flags and delete-for-me.

use crate::error::{ApiError, Result};
use crate::extract::{ApiJson, ApiPath, AuthUser, IdempotencyHeader, parse_id};
use crate::rate_limit::Counted;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use convos_core::api::{CreateMessageRequest, Message};
use convos_core::{ErrorBody, MessageId, UserId};
use convos_plumbing::rate_limit::{Unsent, message_volume};
use convos_store::StoreError;
use convos_store::messages::{self, Created, Idempotency, Recipient};
use convos_store::written::Written;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_message))
        .routes(routes!(get_message, delete_message))
        .routes(routes!(mark_read))
        .routes(routes!(mark_unread))
}

/// Counts one send of `bytes` ([`message_volume`]) against the caller's messages a minute and
/// volume a day (decision 72).
pub(crate) async fn check_send(state: &AppState, sender: UserId, bytes: u64) -> Result<Counted> {
    let limits = state.settings.send_limits();
    state.limiter.send(sender, limits, bytes).await
}

/// Gives back what [`check_send`] counted when the send stored nothing: refused (an unknown
/// recipient, a thread the sender cannot see) or a replay of a twin with the same idempotency
/// key that got in first, its attempt and its bytes; failed (the database), its bytes alone.
pub(crate) async fn give_back_unless_stored(
    state: &AppState,
    sender: UserId,
    bytes: u64,
    counted: Counted,
    created: &std::result::Result<Written<Created>, StoreError>,
) {
    let unsent = match created.as_ref().map(Written::value) {
        Ok(Created::New(_)) => return,
        Ok(Created::Replayed(_))
        | Err(
            StoreError::UnknownRecipient
            | StoreError::SelfRecipient
            | StoreError::NotFound
            | StoreError::IdempotencyMismatch,
        ) => Unsent::Refused,
        Err(_) => Unsent::Failed,
    };
    state
        .limiter
        .give_back_send(sender, bytes, counted, unsent)
        .await;
}

/// Counts one change of the caller's read flags, folders or copies (decision 61): each writes
/// a live event's job to the ledger, kept for days, so it is capped like a send.
pub(crate) async fn check_action_rate(state: &AppState, caller: UserId) -> Result<()> {
    let limit = state.settings.actions_per_min;
    state.limiter.per_user_minute("action", caller, limit).await
}

/// The answer to a create: 201 with the message; a replay carries `Idempotent-Replayed: true`.
pub(crate) async fn created_response(
    state: &AppState,
    caller: UserId,
    created: Created,
) -> Result<Response> {
    let mut headers = HeaderMap::new();
    let message = match created {
        Created::New(message) => *message,
        Created::Replayed(id) => {
            headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
            messages::replay_view(&state.db, caller, id).await?
        }
    };
    Ok((StatusCode::CREATED, headers, Json(message)).into_response())
}

/// Starts a new thread with its first message. The sender is always the caller.
#[utoipa::path(post, path = "/api/v1/messages", tag = "messages",
    security(("bearer" = [])),
    request_body = CreateMessageRequest,
    params(("Idempotency-Key" = Option<String>, Header,
        description = "Repeat a create safely: the same key within 24 hours returns the original message")),
    responses(
        (status = 201, description = "Sent", body = Message),
        (status = 401, body = ErrorBody),
        (status = 403, description = "The recipient has blocked the caller", body = ErrorBody),
        (status = 422, body = ErrorBody),
        (status = 429, description = "Sending too fast, or today's volume sent; see Retry-After",
            body = ErrorBody)))]
pub async fn create_message(
    State(state): State<AppState>,
    caller: AuthUser,
    IdempotencyHeader(key): IdempotencyHeader,
    body: ApiJson<CreateMessageRequest>,
) -> Result<Response> {
    let new = body.value.parse().map_err(ApiError::Validation)?;
    let idem = key.map(|k| Idempotency::new(k, "POST /api/v1/messages", &body.canonical));
    if let Some(idem) = &idem
        && let Some(original) = messages::replayed(&state.db, caller.user.id, idem).await?
    {
        return created_response(&state, caller.user.id, Created::Replayed(original)).await;
    }
    let bytes = message_volume(new.subject.as_str(), new.content.body.as_str());
    let counted = check_send(&state, caller.user.id, bytes).await?;
    // The recipient is resolved inside the insert.
    let created = messages::create_thread(
        &state.db,
        &state.notify,
        caller.user.id,
        Recipient::Username(&new.recipient),
        &new.subject,
        &new.content,
        idem.as_ref(),
    )
    .await;
    give_back_unless_stored(&state, caller.user.id, bytes, counted, &created).await;
    let created = state.wake.committed(created?);
    created_response(&state, caller.user.id, created).await
}

/// One message. For the recipient of a read-once message this is the one read that returns
/// its body; afterwards it is gone for both sides. Otherwise reading changes nothing, and a
/// `HEAD` (answered by this route, its body dropped) never does: it must not spend the one read.
#[utoipa::path(get, path = "/api/v1/messages/{id}", tag = "messages",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Message id")),
    responses((status = 200, body = Message), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub async fn get_message(
    State(state): State<AppState>,
    caller: AuthUser,
    method: Method,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Message>> {
    let id: MessageId = parse_id(&id)?;
    if method == Method::HEAD {
        return Ok(Json(messages::get(&state.db, caller.user.id, id).await?));
    }
    let opened = state
        .wake
        .committed(messages::open(&state.db, caller.user.id, id).await?);
    Ok(Json(opened.message))
}

/// Deletes the caller's copy; the other participant keeps theirs.
#[utoipa::path(delete, path = "/api/v1/messages/{id}", tag = "messages",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Message id")),
    responses((status = 204, description = "Deleted for the caller"),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 429, description = "Too many actions this minute; see Retry-After", body = ErrorBody)))]
pub async fn delete_message(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode> {
    let id: MessageId = parse_id(&id)?;
    check_action_rate(&state, caller.user.id).await?;
    state
        .wake
        .committed(messages::delete_for_me(&state.db, caller.user.id, id).await?);
    Ok(StatusCode::NO_CONTENT)
}

/// Marks the message read for the caller only; idempotent.
#[utoipa::path(post, path = "/api/v1/messages/{id}/read", tag = "messages",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Message id")),
    responses((status = 200, body = Message), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 429, description = "Too many actions this minute; see Retry-After", body = ErrorBody)))]
pub async fn mark_read(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Message>> {
    let id: MessageId = parse_id(&id)?;
    check_action_rate(&state, caller.user.id).await?;
    let message = state
        .wake
        .committed(messages::set_read(&state.db, caller.user.id, id, true).await?);
    Ok(Json(message))
}

/// Marks the message unread for the caller only; idempotent.
#[utoipa::path(post, path = "/api/v1/messages/{id}/unread", tag = "messages",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Message id")),
    responses((status = 200, body = Message), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 429, description = "Too many actions this minute; see Retry-After", body = ErrorBody)))]
pub async fn mark_unread(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Message>> {
    let id: MessageId = parse_id(&id)?;
    check_action_rate(&state, caller.user.id).await?;
    let message = state
        .wake
        .committed(messages::set_read(&state.db, caller.user.id, id, false).await?);
    Ok(Json(message))
}
