//! The event streams open in this process, at most a set number per user: opening one more
//! closes that user's oldest (a client that vanished without closing its connection must not
//! lock its owner out, and one token cannot pile up connections).

use convos_core::UserId;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

/// A user's open streams, oldest first: each one's id and the token that closes it.
type OpenStreams = VecDeque<(u64, CancellationToken)>;

/// Every open stream of this process, by user.
#[derive(Clone)]
pub struct Streams {
    per_user: usize,
    open: Arc<Mutex<HashMap<UserId, OpenStreams>>>,
    next: Arc<std::sync::atomic::AtomicU64>,
}

/// One registered stream; dropping it (when the stream ends) frees its place.
pub struct StreamSlot {
    streams: Streams,
    user: UserId,
    id: u64,
    /// Cancelled when the stream must end: shutdown, or a newer stream of its user took the
    /// place.
    pub closed: CancellationToken,
}

impl Streams {
    /// At most `per_user` streams a user (at least one).
    pub fn new(per_user: usize) -> Self {
        Self {
            per_user: per_user.max(1),
            open: Arc::default(),
            next: Arc::default(),
        }
    }

    /// Registers a new stream of `user`, closing their oldest ones beyond the limit. The slot's
    /// token is a child of `shutdown`.
    pub fn open(&self, user: UserId, shutdown: &CancellationToken) -> StreamSlot {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let closed = shutdown.child_token();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let mine = open.entry(user).or_default();
        mine.push_back((id, closed.clone()));
        while mine.len() > self.per_user {
            if let Some((_, oldest)) = mine.pop_front() {
                oldest.cancel();
            }
        }
        StreamSlot {
            streams: self.clone(),
            user,
            id,
            closed,
        }
    }

    /// How many streams `user` has open here.
    pub fn count(&self, user: UserId) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&user).map_or(0, VecDeque::len)
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.streams.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mine) = open.get_mut(&self.user) {
            mine.retain(|(id, _)| *id != self.id);
            if mine.is_empty() {
                open.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oldest_stream_closes_when_a_user_opens_one_too_many() {
        let streams = Streams::new(2);
        let shutdown = CancellationToken::new();
        let user = UserId::from(uuid::Uuid::now_v7());
        let first = streams.open(user, &shutdown);
        let second = streams.open(user, &shutdown);
        let third = streams.open(user, &shutdown);
        assert!(first.closed.is_cancelled());
        assert!(!second.closed.is_cancelled() && !third.closed.is_cancelled());
        assert_eq!(streams.count(user), 2);
        drop(first);
        drop(second);
        assert_eq!(streams.count(user), 1);
        drop(third);
        assert_eq!(streams.count(user), 0);
    }

    #[test]
    fn other_users_are_not_affected() {
        let streams = Streams::new(1);
        let shutdown = CancellationToken::new();
        let a = streams.open(UserId::from(uuid::Uuid::now_v7()), &shutdown);
        let _b = streams.open(UserId::from(uuid::Uuid::now_v7()), &shutdown);
        assert!(!a.closed.is_cancelled());
        shutdown.cancel();
        assert!(a.closed.is_cancelled());
    }
}
