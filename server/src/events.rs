//! Live events: one Redis pub/sub subscription per server process fans events out to the SSE
//! streams of the users connected here; each user's recent events are replayed from their Redis
//! stream when a client reconnects with `Last-Event-ID`.

use crate::redis_conn::RedisConn;
use convos_core::UserId;
use convos_core::events::{Envelope, channel, stream_key};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// What the hub tells local streams.
#[derive(Clone, Debug)]
pub enum HubMessage {
    /// A new event for some user.
    Event(Arc<Envelope>),
    /// The subscription was interrupted: events may have been missed.
    Reset,
}

/// The process-wide fan-out point.
#[derive(Clone)]
pub struct Hub {
    tx: broadcast::Sender<HubMessage>,
}

impl Hub {
    /// Starts listening on the events channel until `cancel` fires, reconnecting as needed.
    pub fn start(redis: RedisConn, prefix: String, cancel: CancellationToken) -> Self {
        let (tx, _) = broadcast::channel(4096);
        let hub = Self { tx: tx.clone() };
        tokio::spawn(async move {
            let channel = channel(&prefix);
            let mut connected_before = false;
            loop {
                if cancel.is_cancelled() {
                    return;
                }
                match subscribe(&redis, &channel).await {
                    Ok(mut pubsub) => {
                        if connected_before {
                            // Anything published while we were away was missed.
                            let _ = tx.send(HubMessage::Reset);
                        }
                        connected_before = true;
                        let mut messages = pubsub.on_message();
                        loop {
                            tokio::select! {
                                () = cancel.cancelled() => return,
                                next = messages.next() => match next {
                                    Some(msg) => {
                                        let payload: String = msg.get_payload().unwrap_or_default();
                                        match serde_json::from_str::<Envelope>(&payload) {
                                            Ok(envelope) => {
                                                let _ = tx.send(HubMessage::Event(Arc::new(envelope)));
                                            }
                                            Err(e) => tracing::warn!(error = %e, "malformed event"),
                                        }
                                    }
                                    None => break,
                                }
                            }
                        }
                        tracing::warn!("event subscription lost; reconnecting");
                        let _ = tx.send(HubMessage::Reset);
                    }
                    Err(e) => tracing::debug!(error = %e, "event subscription unavailable"),
                }
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        });
        hub
    }

    /// A receiver of everything the hub hears from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<HubMessage> {
        self.tx.subscribe()
    }
}

async fn subscribe(redis: &RedisConn, channel: &str) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = redis.client().get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub)
}

/// A Redis stream id, ordered as Redis orders them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct StreamId(pub u64, pub u64);

impl StreamId {
    /// Parses `ms-seq`.
    pub fn parse(raw: &str) -> Option<Self> {
        let (ms, seq) = raw.trim().split_once('-')?;
        Some(Self(ms.parse().ok()?, seq.parse().ok()?))
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// What a reconnecting client gets before live events.
#[derive(Debug)]
pub enum Catchup {
    /// The events it missed, in order.
    Replay(Vec<Envelope>),
    /// It cannot be caught up (no `Last-Event-ID`, too old, or unknown): refetch. The id, if
    /// any, is where the stream stands now.
    Reset {
        reason: &'static str,
        now: Option<StreamId>,
    },
}

/// Works out what a client of `user` that last saw `last` has missed.
pub async fn catch_up(
    redis: &RedisConn,
    prefix: &str,
    user: UserId,
    last: Option<StreamId>,
) -> Catchup {
    let key = stream_key(prefix, user);
    let mut conn = match redis.get().await {
        Ok(conn) => conn,
        Err(_) => {
            return Catchup::Reset {
                reason: "unavailable",
                now: None,
            };
        }
    };
    let info: redis::RedisResult<redis::Value> = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(&key)
        .query_async(&mut conn)
        .await;
    let (newest, first) = match info {
        Ok(value) => (
            field_id(&value, "last-generated-id"),
            first_entry_id(&value),
        ),
        // No stream: nothing was ever kept for this user, or it expired while idle.
        Err(_) => (None, None),
    };
    let Some(last) = last else {
        return Catchup::Reset {
            reason: "no_last_event_id",
            now: newest,
        };
    };
    // Anything older than the oldest kept entry may have been trimmed away (or the stream
    // expired and began again): the client cannot be caught up exactly.
    if newest.is_none() || first.is_some_and(|first| last < first) || newest < Some(last) {
        return Catchup::Reset {
            reason: "too_old",
            now: newest,
        };
    }
    let entries: redis::RedisResult<Vec<StreamEntry>> = redis::cmd("XRANGE")
        .arg(&key)
        .arg(format!("({last}"))
        .arg("+")
        .arg("COUNT")
        .arg(REPLAY_LIMIT)
        .query_async(&mut conn)
        .await;
    match entries {
        Ok(entries) if entries.len() >= REPLAY_LIMIT => Catchup::Reset {
            reason: "too_old",
            now: newest,
        },
        Ok(entries) => Catchup::Replay(
            entries
                .into_iter()
                .filter_map(|(id, fields)| {
                    let event = fields.into_iter().find(|(k, _)| k == "event")?.1;
                    Some(Envelope {
                        user,
                        id,
                        event: serde_json::from_str(&event).ok()?,
                    })
                })
                .collect(),
        ),
        Err(_) => Catchup::Reset {
            reason: "unavailable",
            now: newest,
        },
    }
}

/// Most events replayed on reconnect; a client further behind refetches instead.
const REPLAY_LIMIT: usize = 10_000;

/// The id of the oldest entry still kept, from `XINFO STREAM`'s `first-entry`.
fn first_entry_id(info: &redis::Value) -> Option<StreamId> {
    let items: Vec<&redis::Value> = match info {
        redis::Value::Array(items) => items.iter().collect(),
        redis::Value::Map(pairs) => pairs.iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => return None,
    };
    items.chunks(2).find_map(|pair| {
        if as_text(pair.first()?)? != "first-entry" {
            return None;
        }
        match pair.get(1)? {
            redis::Value::Array(entry) => StreamId::parse(&as_text(entry.first()?)?),
            _ => None,
        }
    })
}

/// An entry of a Redis stream: its id and its field/value pairs.
type StreamEntry = (String, Vec<(String, String)>);

fn field_id(info: &redis::Value, name: &str) -> Option<StreamId> {
    let items: Vec<&redis::Value> = match info {
        redis::Value::Array(items) => items.iter().collect(),
        redis::Value::Map(pairs) => pairs.iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => return None,
    };
    items.chunks(2).find_map(|pair| {
        let key = as_text(pair.first()?)?;
        if key != name {
            return None;
        }
        StreamId::parse(&as_text(pair.get(1)?)?).filter(|id| *id != StreamId(0, 0))
    })
}

fn as_text(value: &redis::Value) -> Option<String> {
    match value {
        redis::Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        redis::Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::StreamId;

    #[test]
    fn stream_ids_order_like_redis() {
        let a = StreamId::parse("1700000000000-5").unwrap();
        let b = StreamId::parse("1700000000000-12").unwrap();
        let c = StreamId::parse("1700000000001-0").unwrap();
        assert!(a < b && b < c);
        assert_eq!(a.to_string(), "1700000000000-5");
        assert!(StreamId::parse("nonsense").is_none());
    }
}
