//! Live events: what the server streams to clients at `GET /api/v1/events`.
//!
//! Events carry ids only, never bodies: a client that wants the content fetches it through the
//! permission-checked API.

use crate::ids::{MessageId, ThreadId, UserId};
use serde::{Deserialize, Serialize};

/// One thing that happened, as sent in an SSE `data:` line; the SSE `event:` name is
/// [`Event::name`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Event {
    /// A message arrived in (or was sent from another session into) a thread.
    #[serde(rename = "message.created")]
    MessageCreated {
        /// The new message.
        message_id: MessageId,
        /// Its thread.
        thread_id: ThreadId,
    },
    /// The user's read flag on a message changed (from another session).
    #[serde(rename = "message.read")]
    MessageRead {
        /// The message.
        message_id: MessageId,
        /// Its thread.
        thread_id: ThreadId,
        /// The flag now: `false` when it was marked unread.
        is_read: bool,
    },
    /// Something about a thread changed for the user: read all, archive, mute, delete.
    #[serde(rename = "thread.updated")]
    ThreadUpdated {
        /// The thread.
        thread_id: ThreadId,
    },
}

impl Event {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            Event::MessageCreated { .. } => "message.created",
            Event::MessageRead { .. } => "message.read",
            Event::ThreadUpdated { .. } => "thread.updated",
        }
    }
}

/// An event addressed to one user, as fanned out between processes through Redis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Who it is for.
    pub user: UserId,
    /// Its id in the user's event stream (the SSE `id:`), ordered.
    pub id: String,
    /// What happened.
    pub event: Event,
}

/// Redis key of a user's retained event stream.
pub fn stream_key(prefix: &str, user: UserId) -> String {
    format!("{prefix}events:{user}")
}

/// Redis channel on which new events are announced to every server process.
pub fn channel(prefix: &str) -> String {
    format!("{prefix}events")
}

/// How long events are kept for clients that reconnect with `Last-Event-ID`.
pub const RETENTION_SECS: u64 = 2 * 60 * 60;

/// The most events a user's stream keeps (none older than [`RETENTION_SECS`] either): the most
/// a reconnecting client is replayed (a client further behind refetches instead), so older
/// ones are of no use. A stream may hold up to one Redis stream node (100 entries) more, since
/// it is trimmed by whole nodes.
pub const STREAM_KEEPS: usize = 1_000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_serialise_with_their_type_and_ids_only() {
        let e = Event::MessageCreated {
            message_id: MessageId::generate(),
            thread_id: ThreadId::generate(),
        };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["type"], "message.created");
        assert_eq!(json.as_object().unwrap().len(), 3);
        assert_eq!(serde_json::from_value::<Event>(json).unwrap(), e);
    }
}
