//! `GET /api/v1/events`: the caller's live events as server-sent events.

use crate::error::Result;
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
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
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
/// are kept for at least an hour). Without it, or when it is too old, the first event is
/// `reset`: refetch what you show, then continue from its id. Comments (`: heartbeat`) keep
/// idle connections open.
#[utoipa::path(get, path = "/api/v1/events", tag = "events",
    security(("bearer" = [])),
    params(("Last-Event-ID" = Option<String>, Header, description = "The id of the last event received")),
    responses(
        (status = 200, description = "An event stream", content_type = "text/event-stream", body = String),
        (status = 401, body = ErrorBody)))]
pub async fn stream_events(
    State(state): State<AppState>,
    caller: AuthUser,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = std::result::Result<SseEvent, Infallible>>>> {
    let me = caller.user.id;
    state.metrics.sse_open.inc();
    let guard = crate::metrics::StreamGuard(state.metrics.sse_open.clone());
    // Listen before catching up, so nothing falls between the replay and the live events.
    let live = BroadcastStream::new(state.hub.subscribe());
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(StreamId::parse);
    let catchup = catch_up(&state.redis, &state.settings.redis_prefix, me, last).await;
    let (first, mut seen): (Vec<SseEvent>, Option<StreamId>) = match catchup {
        Catchup::Replay(events) => {
            let seen = events.last().and_then(|e| StreamId::parse(&e.id)).or(last);
            (events.iter().map(event).collect(), seen)
        }
        Catchup::Reset { reason, now } => (vec![reset(reason, now)], now),
    };
    let live = live.filter_map(move |message| {
        let _open = &guard;
        let out = match message {
            Ok(HubMessage::Event(envelope)) if envelope.user == me => {
                let id = StreamId::parse(&envelope.id);
                // Skip what the replay already sent.
                if id.is_some() && seen.is_some() && id <= seen {
                    None
                } else {
                    seen = id.or(seen);
                    Some(event(&envelope))
                }
            }
            Ok(HubMessage::Event(_)) => None,
            Ok(HubMessage::Reset) | Err(BroadcastStreamRecvError::Lagged(_)) => {
                Some(reset("interrupted", None))
            }
        };
        std::future::ready(out.map(Ok))
    });
    let heartbeat = Duration::from_secs(state.settings.sse_heartbeat_secs.max(1));
    // The stream ends when the server shuts down, or once its session is revoked (checked at
    // every heartbeat interval), so a logged-out token stops receiving events.
    let (db, token) = (state.db.clone(), caller.token);
    let revoked = async move {
        loop {
            tokio::time::sleep(heartbeat).await;
            if !convos_store::tokens::is_live(&db, token)
                .await
                .unwrap_or(true)
            {
                break;
            }
        }
    };
    let stop = futures::future::select(
        Box::pin(state.shutdown.clone().cancelled_owned()),
        Box::pin(revoked),
    );
    let stream = futures::stream::iter(first.into_iter().map(Ok))
        .chain(live)
        .take_until(stop);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat")))
}
