//! `GET /api/v1/events`: the caller's live events as server-sent events.

use crate::error::{ApiError, Result};
use crate::events::{Catchup, HubMessage, StreamId, catch_up};
use crate::extract::AuthUser;
use crate::state::AppState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use convos_core::ErrorBody;
use convos_core::events::Envelope;
use futures::Stream;
use futures::StreamExt;
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stream_events))
}

fn event(envelope: &Envelope) -> SseEvent {
    SseEvent::default()
        .event(envelope.event.name())
        .id(envelope.id.clone())
        .data(serde_json::to_string(&envelope.event).unwrap_or_default())
}

fn reset(reason: &str, now: Option<StreamId>) -> SseEvent {
    let event = SseEvent::default()
        .event("reset")
        .data(serde_json::json!({ "reason": reason }).to_string());
    match now {
        Some(id) => event.id(id.to_string()),
        None => event,
    }
}

/// The caller's events: `message.created`, `message.read`, `thread.updated` (ids only; fetch the
/// content through the API). Send `Last-Event-ID` to resume: missed events are replayed (they
/// are kept for two hours, at most the newest 1,000). Without it, or when it is too old, the
/// first event is
/// `reset`: refetch what you show, then continue from its id. Comments (`: heartbeat`) keep
/// idle connections open.
#[utoipa::path(get, path = "/api/v1/events", tag = "events",
    security(("bearer" = [])),
    params(("Last-Event-ID" = Option<String>, Header, description = "The id of the last event received")),
    responses(
        (status = 200, description = "An event stream", content_type = "text/event-stream", body = String),
        (status = 401, body = ErrorBody),
        (status = 429, description = "Too many streams opened this minute; see Retry-After", body = ErrorBody)))]
pub async fn stream_events(
    State(state): State<AppState>,
    caller: AuthUser,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = std::result::Result<SseEvent, Infallible>>>> {
    let me = caller.user.id;
    let limit = state.settings.stream_opens_per_min;
    state
        .limiter
        .per_user_minute("stream_open", me, limit)
        .await?;
    // Listen before catching up, so nothing falls between the replay and the live events.
    let hub = state.hub.subscribe(me);
    // And ask once more whether the session lives, now that its end would be heard: one that
    // ended between the token's check and the subscription was announced to nobody here, and
    // its stream lived until its hourly check, receiving the user's events.
    let lifetimes = crate::auth::lifetimes(&state.settings);
    if !convos_store::tokens::is_live(&state.db, caller.token, lifetimes)
        .await
        .unwrap_or(true)
    {
        return Err(ApiError::Unauthorized);
    }
    // Opening one more than the per-user limit closes the user's oldest stream.
    let slot = state.streams.open(me, &state.shutdown);
    state.metrics.sse_open.inc();
    let guard = crate::metrics::StreamGuard(state.metrics.sse_open.clone());
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(StreamId::parse);
    let catchup = catch_up(&state.redis, &state.settings.redis_prefix, me, last).await;
    let (first, seen): (Vec<SseEvent>, Option<StreamId>) = match catchup {
        Catchup::Replay(events) => {
            let seen = events.last().and_then(|e| StreamId::parse(&e.id)).or(last);
            (events.iter().map(event).collect(), seen)
        }
        Catchup::Reset { reason, now } => (vec![reset(reason, now)], now),
    };
    let live = Live {
        hub,
        token: caller.token,
        expires: session_deadline(caller.session_expires_at),
        seen,
        check: {
            let every = Duration::from_secs(state.settings.sse_session_check_secs.max(1));
            tokio::time::interval_at(tokio::time::Instant::now() + every, every)
        },
        lifetimes,
        db: state.db.clone(),
        slot,
        _open: guard,
    };
    let heartbeat = Duration::from_secs(state.settings.sse_heartbeat_secs.max(1));
    let stream = futures::stream::iter(first.into_iter().map(Ok))
        .chain(futures::stream::unfold(live, |mut live| async move {
            live.next().await.map(|event| (Ok(event), live))
        }));
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat")))
}

/// The instant a session's absolute expiry falls at, on the clock `tokio::time` sleeps by.
fn session_deadline(expires_at: chrono::DateTime<chrono::Utc>) -> tokio::time::Instant {
    let left = (expires_at - chrono::Utc::now())
        .to_std()
        .unwrap_or(Duration::ZERO);
    tokio::time::Instant::now() + left
}

/// The live part of one stream. It costs nothing while idle: no query runs per heartbeat. It
/// ends at shutdown, when a newer stream of the same user takes its place, and when its session
/// ends (announced through the hub; after an interruption of the hub, which may have missed an
/// announcement, the session is checked once in the database), reaches its absolute expiry, or
/// is found idle past its limit at one of the hourly checks (`sse_session_check_secs`: a
/// session idling out is no event).
struct Live {
    hub: crate::events::Subscription,
    token: convos_store::tokens::TokenId,
    /// The session's absolute expiry.
    expires: tokio::time::Instant,
    seen: Option<StreamId>,
    /// When the session is next looked at in the database, and the rule it is held to.
    check: tokio::time::Interval,
    lifetimes: convos_store::tokens::Lifetimes,
    db: sqlx::PgPool,
    slot: crate::streams::StreamSlot,
    _open: crate::metrics::StreamGuard,
}

impl Live {
    /// Whether the stream's session still lives, as the database says; `true` if it cannot
    /// tell (an outage must not close every stream).
    async fn session_lives(&self) -> bool {
        convos_store::tokens::is_live(&self.db, self.token, self.lifetimes)
            .await
            .unwrap_or(true)
    }

    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            let message = tokio::select! {
                () = self.slot.closed.cancelled() => return None,
                () = tokio::time::sleep_until(self.expires) => return None,
                _ = self.check.tick() => {
                    if !self.session_lives().await {
                        return None;
                    }
                    continue;
                }
                mine = self.hub.events.recv() => match mine {
                    Ok(envelope) => {
                        let id = StreamId::parse(&envelope.id);
                        // Skip what the replay already sent.
                        if id.is_some() && self.seen.is_some() && id <= self.seen {
                            continue;
                        }
                        self.seen = id.or(self.seen);
                        return Some(event(&envelope));
                    }
                    Err(RecvError::Lagged(_)) => Ok(HubMessage::Reset),
                    Err(RecvError::Closed) => return None,
                },
                message = self.hub.everyone.recv() => message,
            };
            match message {
                Ok(HubMessage::SessionsEnded(ended)) => {
                    if ended.contains(&self.token) {
                        return None;
                    }
                }
                Ok(HubMessage::Reset) | Err(RecvError::Lagged(_)) => {
                    if !self.session_lives().await {
                        return None;
                    }
                    return Some(reset("interrupted", None));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}
