//! What the client has shown, kept for its next start and for reading offline: the account and
//! its counts, the pages of each folder listed, and the threads opened most recently with their
//! newest messages. The root records the server's answers here as they are applied and asks
//! the runtime to write it down (`tui/src/cache.rs` holds the files); read-once bodies never
//! enter it, and it stays within fixed bounds.

use chrono::{DateTime, Utc};
use convos_core::api::{Folder, Me, Message, Thread};
use convos_core::{MessageId, ThreadId, UserId};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// At most this many threads of a folder are kept (the pages shown, newest first).
pub const MAX_LISTED: usize = 500;
/// At most this many opened threads are kept, the most recently opened first.
pub const MAX_THREADS: usize = 30;
/// At most this many messages of an opened thread are kept, the newest.
pub const MAX_MESSAGES: usize = 50;
/// The opened threads' bodies together stay under this many bytes: the least recently opened
/// threads go first.
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

/// A folder's list as last shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedFolder {
    /// Which folder.
    pub folder: Folder,
    /// Its threads, newest first: the pages shown, up to [`MAX_LISTED`].
    pub threads: Vec<Thread>,
    /// When the server sent them (`None`: in this session, not yet written down).
    pub at: Option<DateTime<Utc>>,
}

/// An opened thread as last shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedThread {
    /// The thread as it was listed when opened.
    pub thread: Thread,
    /// Its newest messages, oldest first, up to [`MAX_MESSAGES`]; read-once ones without a body.
    pub messages: Vec<Message>,
    /// When the server sent them (`None`: in this session, not yet written down).
    pub at: Option<DateTime<Utc>>,
}

/// Everything kept of one account on one server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The server's base URL.
    pub server: String,
    /// Whose mail it is (`None` until the server said who the session belongs to).
    pub user: Option<UserId>,
    /// The account and its unread counts.
    pub me: Option<Me>,
    /// The folders' lists.
    pub folders: Vec<CachedFolder>,
    /// The opened threads, the most recently opened first.
    pub threads: Vec<CachedThread>,
    /// Changed since it was last written down.
    #[serde(skip)]
    pub dirty: bool,
    /// Folders the server answered for in this session (their cached lists are out of date).
    #[serde(skip)]
    pub fresh: HashSet<Folder>,
}

/// A message as it may be kept: a read-once message never keeps its body.
fn keepable(mut message: Message) -> Message {
    if message.read_once {
        message.body = None;
    }
    message
}

impl Snapshot {
    /// An empty cache for `server`.
    pub fn new(server: &str) -> Self {
        Self {
            server: server.to_owned(),
            ..Self::default()
        }
    }

    /// The account answered: from now on the cache is this user's. Another user's data in it
    /// (which the runtime never loads for this session, but a change of session could leave)
    /// is dropped.
    pub fn me(&mut self, me: &Me) {
        if self.user.is_some_and(|u| u != me.user.id) {
            *self = Self::new(&self.server);
        }
        self.user = Some(me.user.id);
        self.me = Some(me.clone());
        self.dirty = true;
    }

    /// A page of `folder` answered: it continues the list kept (`append`) or replaces it.
    pub fn listed(&mut self, folder: Folder, append: bool, threads: &[Thread]) {
        self.fresh.insert(folder);
        let entry = match self.folders.iter_mut().find(|f| f.folder == folder) {
            Some(entry) => entry,
            None => {
                self.folders.push(CachedFolder {
                    folder,
                    threads: Vec::new(),
                    at: None,
                });
                self.folders.last_mut().expect("just pushed")
            }
        };
        if !append {
            entry.threads.clear();
        }
        let room = MAX_LISTED.saturating_sub(entry.threads.len());
        entry.threads.extend(threads.iter().take(room).cloned());
        entry.at = None;
        self.dirty = true;
    }

    /// A page of the open `thread`'s messages answered (newest first): it replaces the
    /// messages kept, or continues them back in time (`older`). The thread becomes the most
    /// recently opened.
    pub fn messages(&mut self, thread: &Thread, older: bool, page: &[Message]) {
        let at = self.threads.iter().position(|t| t.thread.id == thread.id);
        let mut entry = match at {
            Some(at) => self.threads.remove(at),
            None => CachedThread {
                thread: thread.clone(),
                messages: Vec::new(),
                at: None,
            },
        };
        entry.thread = thread.clone();
        let mut items: Vec<Message> = page.iter().rev().cloned().map(keepable).collect();
        if older {
            items.append(&mut entry.messages);
        }
        // The newest are kept: they are what opening the thread shows.
        let excess = items.len().saturating_sub(MAX_MESSAGES);
        items.drain(..excess);
        entry.messages = items;
        entry.at = None;
        self.threads.insert(0, entry);
        self.bound();
        self.dirty = true;
    }

    /// The thread is gone (deleted, or nothing in it is visible any more).
    pub fn forget(&mut self, thread: ThreadId) {
        let before = self.threads.len();
        self.threads.retain(|t| t.thread.id != thread);
        for folder in &mut self.folders {
            folder.threads.retain(|t| t.id != thread);
        }
        self.dirty |= before != self.threads.len();
    }

    /// A folder's list as kept, if any.
    pub fn folder(&self, folder: Folder) -> Option<&CachedFolder> {
        self.folders.iter().find(|f| f.folder == folder)
    }

    /// An opened thread as kept, if any.
    pub fn thread(&self, thread: ThreadId) -> Option<&CachedThread> {
        self.threads.iter().find(|t| t.thread.id == thread)
    }

    /// Takes in an older cache of the same account (read from disk): what this one does not
    /// hold yet (folders not answered, threads not opened in this session) comes from it.
    pub fn adopt(&mut self, older: Snapshot) {
        if self.user.is_some_and(|u| older.user != Some(u)) {
            return;
        }
        self.user = older.user;
        if self.me.is_none() {
            self.me = older.me;
        }
        for folder in older.folders {
            if self.folder(folder.folder).is_none() {
                self.folders.push(folder);
            }
        }
        for thread in older.threads {
            if self.thread(thread.thread.id).is_none() {
                self.threads.push(thread);
            }
        }
        self.bound();
    }

    /// Dates what this session added with `now` (just before it is written down).
    pub fn stamp(&mut self, now: DateTime<Utc>) {
        for folder in &mut self.folders {
            folder.at.get_or_insert(now);
        }
        for thread in &mut self.threads {
            thread.at.get_or_insert(now);
        }
    }

    /// What may be written down: without the messages that vanished from the screen (expired,
    /// or opened once) and without those expired by `now`.
    pub fn to_keep(&self, vanished: &HashSet<MessageId>, now: Option<DateTime<Utc>>) -> Self {
        let mut kept = self.clone();
        kept.prune(|id, expires| {
            vanished.contains(&id) || expires.zip(now).is_some_and(|(at, now)| at <= now)
        });
        kept
    }

    /// Drops what expired by `now` (a cache read from disk).
    pub fn expire(&mut self, now: DateTime<Utc>) {
        self.prune(|_, expires| expires.is_some_and(|at| at <= now));
    }

    /// Drops the messages `gone` says, as the screen does: a listed thread whose newest message
    /// went counts one message less, and leaves when nothing is left.
    fn prune(&mut self, gone: impl Fn(MessageId, Option<DateTime<Utc>>) -> bool) {
        for thread in &mut self.threads {
            thread.messages.retain(|m| !gone(m.id, m.expires_at));
        }
        self.threads.retain(|t| !t.messages.is_empty());
        for folder in &mut self.folders {
            folder.threads.retain_mut(|t| {
                if t.last_message
                    .take_if(|m| gone(m.id, m.expires_at))
                    .is_none()
                {
                    return true;
                }
                t.message_count -= 1;
                t.unread_count = t.unread_count.min(t.message_count);
                t.message_count > 0
            });
        }
    }

    /// Keeps within the bounds (also those of a file written by hand or by another version).
    pub fn bound(&mut self) {
        for folder in &mut self.folders {
            folder.threads.truncate(MAX_LISTED);
        }
        self.threads.truncate(MAX_THREADS);
        let mut bytes = 0usize;
        let mut keep = 0usize;
        for thread in &mut self.threads {
            let excess = thread.messages.len().saturating_sub(MAX_MESSAGES);
            thread.messages.drain(..excess);
            for message in &mut thread.messages {
                if message.read_once {
                    message.body = None;
                }
            }
            let size: usize = thread
                .messages
                .iter()
                .map(|m| m.body.as_ref().map_or(0, String::len))
                .sum();
            // The most recently opened thread is kept whatever its size.
            if keep > 0 && bytes + size > MAX_BODY_BYTES {
                break;
            }
            bytes += size;
            keep += 1;
        }
        self.threads.truncate(keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::tests::{thread, user};
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 9, 5, 0).unwrap()
    }

    fn message(thread: ThreadId, body: &str) -> Message {
        Message {
            id: MessageId::generate(),
            thread_id: thread,
            subject: "Lunch".into(),
            body: Some(body.into()),
            sender: user("alice"),
            recipient: user("bob"),
            is_read: true,
            created_at: now(),
            in_reply_to: None,
            expires_at: None,
            read_once: false,
        }
    }

    #[test]
    fn a_read_once_body_is_never_kept() {
        let t = thread("Secret", 0);
        let mut once = message(t.id, "the one read");
        once.read_once = true;
        let mut cache = Snapshot::new("http://s");
        cache.messages(&t, false, &[once.clone(), message(t.id, "plain")]);
        let kept = &cache.thread(t.id).unwrap().messages;
        assert_eq!(kept.len(), 2);
        assert!(
            kept.iter()
                .all(|m| m.body.as_deref() != Some("the one read"))
        );
        assert_eq!(
            kept[1].id, once.id,
            "oldest first: the sealed message stays listed"
        );
        assert_eq!(kept[1].body, None);
    }

    #[test]
    fn lists_and_threads_stay_within_their_bounds() {
        let mut cache = Snapshot::new("http://s");
        let many: Vec<Thread> = (0..MAX_LISTED + 20).map(|_| thread("t", 0)).collect();
        cache.listed(Folder::Inbox, false, &many[..300]);
        cache.listed(Folder::Inbox, true, &many[300..]);
        assert_eq!(
            cache.folder(Folder::Inbox).unwrap().threads.len(),
            MAX_LISTED
        );
        assert_eq!(cache.folder(Folder::Inbox).unwrap().threads[0], many[0]);

        for t in &many[..MAX_THREADS + 5] {
            let page: Vec<Message> = (0..MAX_MESSAGES + 10)
                .map(|i| message(t.id, &format!("m{i}")))
                .collect();
            cache.messages(t, false, &page);
        }
        assert_eq!(cache.threads.len(), MAX_THREADS);
        assert_eq!(
            cache.threads[0].thread.id,
            many[MAX_THREADS + 4].id,
            "the most recently opened first"
        );
        let kept = &cache.threads[0].messages;
        assert_eq!(kept.len(), MAX_MESSAGES);
        assert_eq!(
            kept.last().unwrap().body.as_deref(),
            Some("m0"),
            "the newest messages are kept, oldest first"
        );
    }

    #[test]
    fn big_bodies_push_out_the_least_recently_opened_threads() {
        let mut cache = Snapshot::new("http://s");
        let big = "x".repeat(MAX_BODY_BYTES / 3);
        let threads: Vec<Thread> = (0..4).map(|_| thread("t", 0)).collect();
        for t in &threads {
            cache.messages(t, false, &[message(t.id, &big)]);
        }
        let ids: Vec<ThreadId> = cache.threads.iter().map(|t| t.thread.id).collect();
        assert_eq!(ids, [threads[3].id, threads[2].id, threads[1].id]);
    }

    #[test]
    fn expired_messages_are_dropped_and_listed_threads_count_one_less() {
        let mut t = thread("Ephemeral", 1);
        t.last_message.as_mut().unwrap().expires_at = Some(now());
        let mut gone = message(t.id, "soon gone");
        gone.expires_at = Some(now());
        let mut cache = Snapshot::new("http://s");
        cache.listed(Folder::Inbox, false, std::slice::from_ref(&t));
        cache.messages(&t, false, &[gone, message(t.id, "stays")]);
        cache.expire(now());
        let listed = &cache.folder(Folder::Inbox).unwrap().threads[0];
        assert_eq!(listed.message_count, 1);
        assert!(listed.last_message.is_none());
        let kept = &cache.thread(t.id).unwrap().messages;
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].body.as_deref(), Some("stays"));
    }

    #[test]
    fn another_users_answer_empties_the_cache() {
        let mut cache = Snapshot::new("http://s");
        let t = thread("Mine", 0);
        cache.listed(Folder::Inbox, false, std::slice::from_ref(&t));
        let mut me = crate::app::cache_tests::me("alice");
        cache.me(&me);
        let alice = cache.user;
        me.user.id = UserId::generate();
        cache.me(&me);
        assert_ne!(cache.user, alice);
        assert!(cache.folders.is_empty(), "alice's list is not bob's");
        // And an older cache of someone else is never adopted.
        let mut other = Snapshot::new("http://s");
        other.user = alice;
        other.listed(Folder::Inbox, false, &[t]);
        cache.adopt(other);
        assert!(cache.folders.is_empty());
    }
}
