//! Live events update what they name (decision 32): a new message fetches its thread's row, the
//! counts and, when that thread is open, its newest messages, and is announced (status, bell,
//! desktop) once the row says someone else wrote it; a read flag flips on the spot; a changed
//! thread fetches its row. A live event's fetches coalesce: while one of the same thing
//! is in flight a second is not started, but the first's answer starts one more, so a burst of
//! events for one thread costs two fetches of each, and the last answer is never older than the
//! last event.

use super::{App, Effect, Msg, Pane};
use crate::api::ApiError;
use convos_core::ThreadId;
use convos_core::api::{Message, Page, Thread, ThreadAction};
use convos_core::events::Event;
use std::collections::HashSet;

/// A fetch that coalesces: at most one of each is in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Fetch {
    /// The account and the unread counts ([`Effect::LoadMe`]).
    Me,
    /// One thread's row ([`Effect::LoadThreadRow`]).
    Row(ThreadId),
    /// One thread's newest messages ([`Effect::LoadNewMessages`]).
    Newest(ThreadId),
}

impl Fetch {
    /// The fetch an effect is, if it coalesces.
    fn of_effect(effect: &Effect) -> Option<Fetch> {
        match effect {
            Effect::LoadMe => Some(Fetch::Me),
            Effect::LoadThreadRow(thread) => Some(Fetch::Row(*thread)),
            Effect::LoadNewMessages(thread) => Some(Fetch::Newest(*thread)),
            _ => None,
        }
    }

    /// The fetch a message answers, if it coalesces.
    fn of_answer(msg: &Msg) -> Option<Fetch> {
        match msg {
            Msg::Me(_) => Some(Fetch::Me),
            Msg::ThreadRow { thread, .. } => Some(Fetch::Row(*thread)),
            Msg::NewMessages { thread, .. } => Some(Fetch::Newest(*thread)),
            _ => None,
        }
    }

    fn effect(self) -> Effect {
        match self {
            Fetch::Me => Effect::LoadMe,
            Fetch::Row(thread) => Effect::LoadThreadRow(thread),
            Fetch::Newest(thread) => Effect::LoadNewMessages(thread),
        }
    }
}

/// What live events left pending: the coalescing fetches in flight, those asked for again
/// meanwhile, and the threads whose new message waits to be announced.
#[derive(Debug, Default)]
pub struct Live {
    running: HashSet<Fetch>,
    again: HashSet<Fetch>,
    /// Threads with a new message, announced when their row tells who wrote it (the user's
    /// own message from another session, or this one, is not news).
    news: HashSet<ThreadId>,
}

impl Live {
    /// An answer arrived: its fetch is done, and runs once more if it was asked for meanwhile.
    pub(super) fn answered(&mut self, msg: &Msg) -> Option<Effect> {
        let fetch = Fetch::of_answer(msg)?;
        self.running.remove(&fetch);
        self.again.remove(&fetch).then(|| fetch.effect())
    }

    /// Drops from `effects` the fetches already in flight (marking them to run again when
    /// they answer), and counts the others as in flight.
    pub(super) fn coalesce(&mut self, effects: &mut Vec<Effect>) {
        effects.retain(|effect| match Fetch::of_effect(effect) {
            Some(fetch) if self.running.contains(&fetch) => {
                self.again.insert(fetch);
                false
            }
            Some(fetch) => {
                self.running.insert(fetch);
                true
            }
            None => true,
        });
    }
}

impl App {
    /// A live event: fetches what it names, and announces new mail.
    pub(super) fn live_event(&mut self, event: Event) -> Vec<Effect> {
        let mut effects = vec![];
        match event {
            Event::MessageCreated { thread_id, .. } => {
                // Not `GET /messages/{id}`: for the recipient of a read-once message that
                // would be its one read. The thread's newest page lists it sealed.
                if self.thread.shows(thread_id) {
                    effects.push(Effect::LoadNewMessages(thread_id));
                }
                effects.extend([Effect::LoadThreadRow(thread_id), Effect::LoadMe]);
                self.live.news.insert(thread_id);
            }
            Event::MessageRead {
                message_id,
                thread_id,
                is_read,
            } => {
                self.thread.set_read(message_id, is_read);
                effects.extend([Effect::LoadThreadRow(thread_id), Effect::LoadMe]);
            }
            Event::ThreadUpdated { thread_id } => {
                effects.extend([Effect::LoadThreadRow(thread_id), Effect::LoadMe]);
            }
        }
        effects
    }

    /// One thread's row as the server now has it: it takes its place in the list (or leaves
    /// it), and the open thread takes its counts and flags.
    pub(super) fn thread_row(
        &mut self,
        thread: ThreadId,
        result: Result<Thread, ApiError>,
    ) -> Vec<Effect> {
        let news = self.live.news.remove(&thread);
        let fresh = match result {
            Ok(fresh) => fresh,
            // Nothing of it is visible any more (deleted, expired, its read-once message
            // opened): it leaves the list; the open thread's own fetch says what stays shown.
            Err(ApiError::Server { status: 404, .. }) => {
                self.mailbox.remove(thread);
                return self.thread.reload().into_iter().collect();
            }
            Err(e) => return self.error(&e),
        };
        let mut effects = Vec::new();
        if let Some(open) = self.thread.thread()
            && open.id == thread
        {
            // Fewer messages than before: some left (deleted elsewhere, read-once opened by
            // its recipient), so the thread is fetched again; new ones come by their event.
            if fresh.message_count < open.message_count {
                effects.extend(self.thread.reload());
            }
            self.thread.refreshed(&fresh);
        }
        let vanished = fresh
            .last_message
            .as_ref()
            .is_some_and(|m| self.vanished.contains(&m.id));
        if vanished {
            self.mailbox.remove(thread);
            return effects;
        }
        let me = self.me.as_ref().map(|m| m.user.id);
        let from_me = fresh
            .last_message
            .as_ref()
            .is_some_and(|m| Some(m.sender.id) == me);
        if !self.mailbox.upsert(fresh, me) {
            // The row alone cannot tell whether the thread belongs in this folder: its first
            // page is fetched again.
            effects.push(self.mailbox.load());
        }
        if news && !from_me {
            self.status = "New mail".into();
            if self.bell {
                effects.push(Effect::Bell);
            }
            effects.extend(self.notification(thread));
        }
        effects
    }

    /// The open thread's newest messages, fetched for a new message: merged with those shown.
    pub(super) fn new_messages(
        &mut self,
        thread: ThreadId,
        result: Result<Page<Message>, ApiError>,
    ) -> Vec<Effect> {
        match result {
            Ok(mut page) => {
                page.items.retain(|m| !self.vanished.contains(&m.id));
                let me = self.me.as_ref().map(|me| me.user.id);
                let unread = page
                    .items
                    .iter()
                    .any(|m| !m.is_read && Some(m.recipient.id) == me);
                self.thread.merge_newest(thread, page);
                // Read where it is read: in the open thread, its pane focused and at its newest
                // message, as opening a thread reads it. Scrolled back, or in another pane, the
                // new message stays unread.
                let watched = self.pane == Pane::Thread
                    && self.thread.shows(thread)
                    && self.thread.open.as_ref().is_some_and(|o| o.scroll == 0);
                if unread && watched {
                    return vec![Effect::ThreadAction {
                        thread,
                        action: ThreadAction::Read,
                        done: "",
                    }];
                }
                vec![]
            }
            // The thread is gone: its row's answer closes or keeps it.
            Err(ApiError::Server { status: 404, .. }) => vec![],
            Err(e) => self.error(&e),
        }
    }
}
