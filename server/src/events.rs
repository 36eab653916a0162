//! Live events: one Redis pub/sub subscription per server process fans events out to the SSE
//! streams of the users connected here, each user's on a channel of their own; each user's
//! recent events are replayed from their Redis stream when a client reconnects with
//! `Last-Event-ID`.

use crate::redis_conn::RedisConn;
use convos_core::UserId;
use convos_core::events::{Envelope, channel, stream_key};
use convos_store::tokens::TokenId;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Events one user's channel holds for a stream that has not taken them yet; a stream further
/// behind is told to refetch (a `reset`). Allocated per connected user, so small.
const USER_CHANNEL: usize = 128;

/// What the hub tells every local stream, whoever its user.
#[derive(Clone, Debug)]
pub enum HubMessage {
    /// The subscription was interrupted: events (and ended sessions) may have been missed.
    Reset,
    /// These sessions were revoked or expired: their streams end.
    SessionsEnded(Arc<Vec<TokenId>>),
}

/// The process-wide fan-out point.
#[derive(Clone)]
pub struct Hub {
    tx: broadcast::Sender<HubMessage>,
    users: Users,
    redis: RedisConn,
    sessions_channel: String,
}

/// The channel of each user with a stream open here. An event wakes only its own user's
/// streams: with one channel for all, every event woke every stream of the process to be
/// dropped by all but one (streams × events wake-ups; decision 81).
#[derive(Clone, Default)]
struct Users(Arc<Mutex<HashMap<UserId, broadcast::Sender<Arc<Envelope>>>>>);

impl Users {
    fn lock(&self) -> MutexGuard<'_, HashMap<UserId, broadcast::Sender<Arc<Envelope>>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands `envelope` to its user's streams here, if any.
    fn send(&self, envelope: Envelope) {
        let channel = self.lock().get(&envelope.user).cloned();
        if let Some(channel) = channel {
            let _ = channel.send(Arc::new(envelope));
        }
    }
}

/// One stream's hearing: its user's events, and what the hub tells every stream. Dropping the
/// last of a user's subscriptions forgets the user's channel.
pub struct Subscription {
    /// Events for the stream's user.
    pub events: broadcast::Receiver<Arc<Envelope>>,
    /// Interruptions and ended sessions.
    pub everyone: broadcast::Receiver<HubMessage>,
    user: UserId,
    users: Users,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut users = self.users.lock();
        // This subscription's receiver goes first, under the lock: two of a user's streams
        // ending at once then cannot both count the other and leave the channel behind.
        let (_, detached) = broadcast::channel(1);
        drop(std::mem::replace(&mut self.events, detached));
        if users
            .get(&self.user)
            .is_some_and(|channel| channel.receiver_count() == 0)
        {
            users.remove(&self.user);
        }
    }
}

impl Hub {
    /// Starts listening on the events channel until `cancel` fires, reconnecting as needed.
    pub fn start(redis: RedisConn, prefix: String, cancel: CancellationToken) -> Self {
        let (tx, _) = broadcast::channel(4096);
        let sessions = sessions_channel(&prefix);
        let users = Users::default();
        let hub = Self {
            tx: tx.clone(),
            users: users.clone(),
            redis: redis.clone(),
            sessions_channel: sessions.clone(),
        };
        tokio::spawn(async move {
            let channels = [channel(&prefix), sessions.clone()];
            let mut connected_before = false;
            loop {
                if cancel.is_cancelled() {
                    return;
                }
                match subscribe(&redis, &channels).await {
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
                                        if msg.get_channel_name() == sessions {
                                            let ended = parse_sessions(&payload);
                                            let _ = tx.send(HubMessage::SessionsEnded(Arc::new(ended)));
                                            continue;
                                        }
                                        match serde_json::from_str::<Envelope>(&payload) {
                                            Ok(envelope) => users.send(envelope),
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

    /// What a stream of `user` hears from now on: their events, and what every stream is told.
    pub fn subscribe(&self, user: UserId) -> Subscription {
        let events = self
            .users
            .lock()
            .entry(user)
            .or_insert_with(|| broadcast::channel(USER_CHANNEL).0)
            .subscribe();
        Subscription {
            events,
            everyone: self.tx.subscribe(),
            user,
            users: self.users.clone(),
        }
    }

    /// Users with a stream subscribed here.
    #[cfg(test)]
    fn users_heard(&self) -> usize {
        self.users.lock().len()
    }

    /// Ends the event streams of these sessions in every server process. Call after the
    /// revocation committed. The streams of this process end at once; the others hear it over
    /// Redis. Publishing is retried in the background for about ten seconds. Should it never get
    /// through (this process cut off from a Redis the others still reach), their streams of
    /// these sessions last until their hub is next interrupted (each stream then checks its
    /// session) or the session's absolute expiry; requests with the token fail at once anyway.
    pub async fn end_sessions(&self, ended: &[TokenId]) {
        if ended.is_empty() {
            return;
        }
        let _ = self
            .tx
            .send(HubMessage::SessionsEnded(Arc::new(ended.to_vec())));
        let payload = ended
            .iter()
            .map(|t| t.0.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let (redis, channel) = (self.redis.clone(), self.sessions_channel.clone());
        tokio::spawn(async move {
            let mut wait = Duration::from_millis(250);
            for attempt in 1..=6 {
                match publish(&redis, &channel, &payload).await {
                    Ok(()) => return,
                    Err(e) if attempt == 6 => {
                        tracing::warn!(error = %e, "could not announce ended sessions to other servers");
                    }
                    Err(_) => {
                        tokio::time::sleep(wait).await;
                        wait *= 2;
                    }
                }
            }
        });
    }
}

async fn publish(redis: &RedisConn, channel: &str, payload: &str) -> redis::RedisResult<()> {
    let mut conn = redis.get().await?;
    redis::cmd("PUBLISH")
        .arg(channel)
        .arg(payload)
        .query_async(&mut conn)
        .await
}

/// The channel on which servers tell each other which sessions ended.
fn sessions_channel(prefix: &str) -> String {
    format!("{prefix}sessions:ended")
}

fn parse_sessions(payload: &str) -> Vec<TokenId> {
    payload
        .split(',')
        .filter_map(|id| id.trim().parse().ok().map(TokenId))
        .collect()
}

async fn subscribe(
    redis: &RedisConn,
    channels: &[String],
) -> redis::RedisResult<redis::aio::PubSub> {
    let mut pubsub = redis.client().get_async_pubsub().await?;
    for channel in channels {
        pubsub.subscribe(channel).await?;
    }
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
        // No stream (Redis answers `ERR no such key`): nothing was ever kept for this user, or
        // it expired while idle.
        Err(e) if e.code() == Some("ERR") => (None, None),
        // Redis did not answer: where the client stands cannot be known (a probe was told
        // `too_old` through an outage).
        Err(_) => {
            return Catchup::Reset {
                reason: "unavailable",
                now: None,
            };
        }
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

/// Most events replayed on reconnect; a client further behind refetches instead. Each replay
/// is read whole from Redis before it is sent (a probe's 10,000 cost Redis 3.5 ms and the
/// server 130 ms, and 1.4–1.9 MB of socket buffer each), so it stays small: refetching a page
/// of threads is cheaper than replaying more. Streams keep no more (the worker trims them).
const REPLAY_LIMIT: usize = convos_core::events::STREAM_KEEPS;

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
    use super::*;
    use convos_core::ThreadId;
    use convos_core::events::Event;

    #[tokio::test]
    async fn an_event_reaches_only_its_own_users_streams() {
        // With one channel for all, every event woke every stream of the process (a free
        // account flipping read flags woke thousands of other users' streams, each of which
        // dropped it): an audit found the wake-ups grow as streams times events.
        let redis = RedisConn::new(&convos_testkit::env::redis_url()).unwrap();
        let prefix = format!("hub-test-{}:", uuid::Uuid::now_v7());
        let cancel = CancellationToken::new();
        let hub = Hub::start(redis.clone(), prefix.clone(), cancel.clone());
        let (alice, bob) = (UserId::generate(), UserId::generate());
        let mut hers = [hub.subscribe(alice), hub.subscribe(alice)];
        let mut his = hub.subscribe(bob);
        let envelope = Envelope {
            user: alice,
            id: "1700000000000-1".into(),
            event: Event::ThreadUpdated {
                thread_id: ThreadId::generate(),
            },
        };
        let payload = serde_json::to_string(&envelope).unwrap();
        // Published until the hub's subscription hears it.
        let mut conn = redis.get().await.unwrap();
        loop {
            let heard: i64 = redis::cmd("PUBLISH")
                .arg(channel(&prefix))
                .arg(&payload)
                .query_async(&mut conn)
                .await
                .unwrap();
            if heard > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        for stream in &mut hers {
            let got = tokio::time::timeout(Duration::from_secs(5), stream.events.recv())
                .await
                .expect("Alice's stream hears her event")
                .unwrap();
            assert_eq!(*got, envelope);
        }
        assert!(
            matches!(
                his.events.try_recv(),
                Err(broadcast::error::TryRecvError::Empty)
            ),
            "Bob's stream is not woken by Alice's event"
        );
        assert_eq!(hub.users_heard(), 2);
        drop(hers);
        assert_eq!(
            hub.users_heard(),
            1,
            "Alice's channel goes with her last stream"
        );
        drop(his);
        assert_eq!(hub.users_heard(), 0);
        cancel.cancel();
    }

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
