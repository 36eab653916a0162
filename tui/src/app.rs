//! The client as a pure state machine: [`App::update`] takes a [`Msg`] (a key, an API answer,
//! a live event) and returns the [`Effect`]s to run. No I/O happens here, so every behaviour is
//! tested without a terminal or a server.
//!
//! The root is small: it owns what every screen shares (the account, the status line, the
//! connection, the outbox, the keys) and routes keys and answers to the components, one per
//! screen or mode, each in its own module with its own state, keys and drawing. A component
//! never touches another's state; it answers with [`Out`]s that the root carries out.

mod cache;
mod composer;
mod confirm;
mod drafts;
mod ephemeral;
pub(crate) mod help;
mod live;
mod login;
mod mailbox;
mod ops;
mod report;
mod search;
mod settings;
mod terminal;
mod thread_view;

pub use cache::{CachedFolder, CachedThread, Snapshot};
pub use composer::{Composer, Field};
pub use confirm::{Choice, Confirm};
pub use drafts::{Draft, DraftList};
pub use ephemeral::{SendOptions, seconds_left};
pub use help::Help;
pub use login::{Login, LoginAnswer, LoginCall, LoginField, Secret};
pub use mailbox::{Mailbox, folder_label};
pub use ops::{Ops, OpsFocus};
pub use report::reported;
pub use search::Search;
pub use settings::{AccountAnswer, AccountCall, Row, Settings};
pub use thread_view::{OpenThread, ThreadView};

use crate::api::ApiError;
use crate::keys::{self, Action, Mode};
use convos_core::api::{
    Folder, Me, Message, Page, ReportReason, SearchHit, Thread, ThreadAction, UserSummary,
};
use convos_core::events::Event;
use convos_core::ops::{Board, JobSummary, OpsCommand};
use convos_core::{MessageId, ThreadId};
use crossterm::event::KeyEvent;

/// Which pane has the keyboard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pane {
    /// The folder list.
    Folders,
    /// The thread list.
    Threads,
    /// The open thread.
    Thread,
}

/// The live connection, as the status bar shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connection {
    /// Not yet connected.
    Connecting,
    /// Events arrive live.
    Live,
    /// Lost; trying again in this many seconds.
    Reconnecting(u64),
}

/// What is over the mailbox: the component with the keys.
#[derive(Debug)]
pub enum Modal {
    /// The operators' queue board.
    Ops(Box<Ops>),
    /// Nothing: the mailbox has the keys.
    None,
    /// The key help.
    Help(Help),
    /// A yes/no question.
    Confirm(Confirm),
    /// A question with a few answers.
    Choice(Choice),
    /// Writing a message.
    Compose(Box<Composer>),
    /// The settings and account screen.
    Settings(Box<Settings>),
    /// The drafts list.
    Drafts(Box<DraftList>),
}

/// What a component asks the root to do: the only way components reach beyond themselves.
#[derive(Clone, Debug)]
pub enum Out {
    /// Run this effect.
    Run(Effect),
    /// Show this in the status bar (empty: clear it).
    Status(String),
    /// Close the component that asked (a window, or the search).
    Close,
    /// Give the keys to this pane.
    Focus(Pane),
    /// Fetch what is shown again.
    Refresh,
    /// Close this thread if it is the one open.
    CloseThread(ThreadId),
    /// Keep this message in the outbox until the server answers.
    Queue(Outgoing),
    /// Quit the client.
    Quit,
    /// Open this draft in the composer.
    Resume(Draft),
}

/// A message written while the server could not be reached: kept on disk with its
/// idempotency key and sent when the server answers again, never twice.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Outgoing {
    /// Its `Idempotency-Key`.
    pub key: String,
    /// For a reply: the thread and its subject.
    pub reply_to: Option<(ThreadId, String)>,
    /// For a new thread: the recipient.
    pub recipient: String,
    /// For a new thread: the subject.
    pub subject: String,
    /// The text.
    pub body: String,
    /// Expiry and read-once (absent from outboxes written before they existed).
    #[serde(default)]
    pub options: SendOptions,
}

/// Seconds between retries of a non-empty outbox ([`Msg::RetryOutbox`]).
pub const OUTBOX_RETRY_SECS: u64 = 10;

/// Something that happened.
#[derive(Debug)]
pub enum Msg {
    /// A key press.
    Key(KeyEvent),
    /// Text pasted into the terminal (bracketed paste): typed into the field with the cursor,
    /// never read as keys.
    Paste(String),
    /// The caller's account and unread total.
    Me(Result<Me, ApiError>),
    /// A page of a folder.
    Threads {
        /// The folder asked for.
        folder: Folder,
        /// Whether it continues the list (next page) or replaces it.
        append: bool,
        /// The answer.
        result: Result<Page<Thread>, ApiError>,
    },
    /// A thread's messages (a page, newest first).
    Messages {
        /// The thread asked for.
        thread: ThreadId,
        /// Whether this page continues back in time (older messages).
        older: bool,
        /// The answer.
        result: Result<Page<Message>, ApiError>,
    },
    /// A send or reply finished: the draft's idempotency key and the answer.
    Sent(String, Result<Message, ApiError>),
    /// A thread action finished; the text says what it was.
    Done(String, Result<(), ApiError>),
    /// Whether a person is blocked, looked up to ask whether to block or unblock them.
    BlockLooked(UserSummary, Result<bool, ApiError>),
    /// A person's newest message among a thread's latest 20 (`None`: none of them is theirs),
    /// looked up to ask whether to report it.
    ReportLooked(UserSummary, Result<Option<Message>, ApiError>),
    /// A live event.
    Live(Event),
    /// One thread's row, fetched for a live event.
    ThreadRow {
        /// The thread asked for.
        thread: ThreadId,
        /// The answer.
        result: Result<Thread, ApiError>,
    },
    /// A thread's newest messages (newest first), fetched for a live new message.
    NewMessages {
        /// The thread asked for.
        thread: ThreadId,
        /// The answer.
        result: Result<Page<Message>, ApiError>,
    },
    /// The live connection changed.
    Connection(Connection),
    /// The event stream says events were missed: everything shown is fetched again.
    Reset,
    /// The queue board.
    Board(Result<Board, ApiError>),
    /// A page of dead jobs: the cursor it was asked for (`None`: the newest) and the page.
    DeadJobs(Option<String>, Result<Page<JobSummary>, ApiError>),
    /// A few seconds passed (sent only while the Ops screen is open).
    Tick,
    /// Search results.
    SearchResults(String, Result<Page<SearchHit>, ApiError>),
    /// A thread fetched to be opened (from a search result).
    ThreadLoaded(Result<Thread, ApiError>),
    /// A read-once message's one read.
    Opened(Result<Message, ApiError>),
    /// A queued message's send finished.
    Flushed {
        /// Its idempotency key.
        key: String,
        /// The answer.
        result: Result<Message, ApiError>,
    },
    /// Time to try the queued messages again.
    RetryOutbox,
    /// The external editor closed with this text (or failed).
    Edited(Result<String, String>),
    /// How many effects the runtime is still running (for the spinner); the runtime counts
    /// them, not the components.
    InFlight(usize),
    /// A mouse event (only with `mouse = true`), with the screen's size to place it.
    Mouse {
        /// What the mouse did, and where.
        event: crossterm::event::MouseEvent,
        /// The whole screen.
        screen: ratatui::layout::Rect,
    },
    /// Directory matches for a typed recipient prefix.
    Completions {
        /// The prefix asked for.
        prefix: String,
        /// The matching usernames.
        result: Result<Vec<String>, ApiError>,
    },
    /// The answer to the login screen's call.
    Login(LoginAnswer),
    /// The answer to the settings screen's call.
    Account(AccountAnswer),
    /// The typing paused with a draft not yet saved ([`App::draft_pending`]): save it.
    SaveDraft,
    /// The drafts on disk, as read again.
    Drafts(Vec<Draft>),
    /// The clock reached [`App::next_wake`]: messages expired by this time leave the screen,
    /// and countdowns move on.
    Expire(chrono::DateTime<chrono::Utc>),
    /// What the cache on disk holds for this session's account (read at start, before the
    /// first frame, or once the server said whose the session is).
    Cached(Box<Snapshot>),
    /// A moment passed since what is shown changed ([`App::cache_pending`]): write the cache
    /// down, dated now.
    SaveCache(chrono::DateTime<chrono::Utc>),
}

/// Something to do outside the state machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Fetch the account and unread total.
    LoadMe,
    /// Fetch a page of a folder.
    LoadThreads {
        /// Which folder.
        folder: Folder,
        /// From where (`None`: the first page).
        cursor: Option<String>,
    },
    /// Fetch a thread's newest messages.
    LoadMessages(ThreadId),
    /// Fetch the messages before the ones shown.
    LoadOlder(ThreadId, String),
    /// Fetch one thread's row (answered with [`Msg::ThreadRow`]).
    LoadThreadRow(ThreadId),
    /// Fetch a thread's newest messages, to merge with those shown (answered with
    /// [`Msg::NewMessages`]).
    LoadNewMessages(ThreadId),
    /// Start a thread.
    Send {
        /// To whom.
        recipient: String,
        /// The subject.
        subject: String,
        /// The text.
        body: String,
        /// Its idempotency key.
        key: String,
        /// Expiry and read-once.
        options: SendOptions,
    },
    /// Reply in a thread.
    Reply {
        /// Where.
        thread: ThreadId,
        /// The text.
        body: String,
        /// Its idempotency key.
        key: String,
        /// Expiry and read-once.
        options: SendOptions,
    },
    /// Read, archive, unarchive, mute or unmute a thread.
    ThreadAction {
        /// Which thread.
        thread: ThreadId,
        /// What to do.
        action: ThreadAction,
        /// The status text when it worked.
        done: &'static str,
    },
    /// Mark one message unread.
    MarkUnread(MessageId),
    /// Delete a thread for me.
    DeleteThread(ThreadId),
    /// Look up whether this person is blocked (answered with [`Msg::BlockLooked`]).
    LookUpBlock(UserSummary),
    /// Block (`true`) or unblock this person.
    SetBlock(UserSummary, bool),
    /// Find this person's newest message in this thread (answered with [`Msg::ReportLooked`]).
    LookUpReport(ThreadId, UserSummary),
    /// Report a message to the operators.
    Report(MessageId, ReportReason),
    /// Ring the terminal bell.
    Bell,
    /// Search.
    Search(String),
    /// Fetch a thread to open it.
    OpenThread(ThreadId),
    /// Read a read-once message (its one read).
    OpenOnce(MessageId),
    /// Look up usernames starting with this prefix.
    Complete(String),
    /// Hand the body to `$VISUAL`/`$EDITOR` and come back with its text.
    Editor(String),
    /// Write the outbox to disk.
    SaveOutbox(Vec<Outgoing>),
    /// Send the queued messages, one after the other.
    Flush(Vec<Outgoing>),
    /// Fetch the queue board.
    LoadBoard,
    /// Fetch a page of dead jobs, from this cursor (`None`: the newest).
    LoadDeadJobs(Option<String>),
    /// Give the terminal back to the shell until `fg` (Ctrl-Z).
    Suspend,
    /// Draw every cell of the screen again at the next draw (Ctrl-L).
    Redraw,
    /// Announce a new message on the desktop, as `notify` in the config says.
    Notify(crate::desktop::Notification),
    /// Run an operator action; the texts are the status when it worked.
    Admin {
        /// What to do.
        command: OpsCommand,
        /// The status text when it worked.
        done: String,
        /// The status text when the server answered that it changed nothing.
        unchanged: String,
    },
    /// Log in or sign up (the login screen).
    Login(LoginCall),
    /// From now on, use this server and session token, and store them as `convos login`
    /// does.
    UseSession {
        /// The server's base URL.
        server: String,
        /// The session's token.
        token: Secret,
    },
    /// A call of the settings screen.
    Account(AccountCall),
    /// Write this draft to its file.
    SaveDraft(Draft),
    /// Delete the draft with this key (sent, queued or discarded).
    DeleteDraft(String),
    /// Read the drafts on disk again (answered with [`Msg::Drafts`]).
    LoadDrafts,
    /// Write the cache to disk (off the draw path).
    SaveCache(Box<Snapshot>),
}

/// Everything the client shows.
#[derive(Debug)]
pub struct App {
    /// The signed-in user.
    pub me: Option<Me>,
    /// The folders and the thread list.
    pub mailbox: Mailbox,
    /// The open thread.
    pub thread: ThreadView,
    /// A search, shown in place of the thread list while active.
    pub search: Option<Search>,
    /// Which pane has the keys.
    pub pane: Pane,
    /// What is over the mailbox.
    pub modal: Modal,
    /// The last action's result, for the status bar.
    pub status: String,
    /// The live connection.
    pub connection: Connection,
    /// Effects the runtime is still running (for the spinner), as it last said.
    pub in_flight: usize,
    /// Ring the bell on new mail.
    pub bell: bool,
    /// How new mail is announced on the desktop.
    pub notify: crate::desktop::Notify,
    /// Messages waiting for the server (persisted by the runtime).
    pub outbox: Vec<Outgoing>,
    /// Retries of the outbox to let pass before the next: the server said when to come back
    /// (a day's volume sent, decision 72), and each retry before then would spend one of the
    /// minute's sends for nothing.
    pub outbox_hold: u64,
    /// The keys in force.
    pub keymap: keys::Keymap,
    /// The colours and styles in force.
    pub theme: crate::theme::Theme,
    /// Set when the user quits.
    pub quit: bool,
    /// The login screen, shown instead of everything else while there is no session.
    pub login: Option<Box<Login>>,
    /// The server's base URL (for the login screen).
    pub server: String,
    /// Messages that expired on this screen: an answer still listing them (a server clock a
    /// little behind) does not bring them back.
    pub vanished: std::collections::HashSet<MessageId>,
    /// The drafts on disk, as last saved or read (the runtime loads them at start-up).
    pub drafts: Vec<Draft>,
    /// The coalescing fetches in flight (decision 32).
    live: live::Live,
    /// What has been shown, kept for the next start and for reading offline.
    pub cache: Snapshot,
    /// The last request could not reach the server (cleared by the next answer).
    pub offline: bool,
}

impl Default for App {
    fn default() -> Self {
        Self::new()
    }
}

impl App {
    /// A fresh client showing the inbox.
    pub fn new() -> Self {
        Self {
            me: None,
            mailbox: Mailbox::default(),
            thread: ThreadView::default(),
            search: None,
            pane: Pane::Threads,
            modal: Modal::None,
            status: String::new(),
            connection: Connection::Connecting,
            in_flight: 0,
            bell: false,
            notify: crate::desktop::Notify::Off,
            outbox: Vec::new(),
            outbox_hold: 0,
            keymap: keys::Keymap::default(),
            theme: crate::theme::Theme::default(),
            quit: false,
            login: None,
            server: String::new(),
            vanished: Default::default(),
            drafts: Vec::new(),
            live: live::Live::default(),
            cache: Snapshot::default(),
            offline: false,
        }
    }

    /// What to fetch at start-up (and any queued messages to send).
    pub fn start(&mut self) -> Vec<Effect> {
        if self.login.is_some() {
            return vec![];
        }
        let mut effects = vec![Effect::LoadMe, self.mailbox.load()];
        effects.extend(self.flush());
        effects
    }

    /// The Ops screen's board and page of dead jobs, fetched again.
    fn reload_ops(&self) -> Vec<Effect> {
        match &self.modal {
            Modal::Ops(ops) => ops.load(),
            _ => vec![],
        }
    }

    /// Whether the runtime should send [`Msg::Tick`]s (the queue board is open).
    pub fn wants_ticks(&self) -> bool {
        matches!(self.modal, Modal::Ops(_))
    }

    /// When the screen next changes by itself: an expiring message's countdown moves on or it
    /// expires. The runtime sends [`Msg::Expire`] then; `None`: nothing shown expires.
    pub fn next_wake(
        &self,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        self.thread
            .expiries()
            .chain(self.mailbox.expiries())
            // What is already due (a wake-up missed while keys kept the loop busy, or a row
            // that arrived expired) wakes at once: it stayed shown with "0s left" for good.
            .map(|until| ephemeral::next_change(until, now).unwrap_or(now))
            .min()
    }

    /// Drops what expired by `now`; if a listed thread's newest message went, the list and
    /// the counts are fetched again (the thread shows its previous message, or leaves).
    fn expire(&mut self, now: chrono::DateTime<chrono::Utc>) -> Vec<Effect> {
        let mut gone = self.thread.expire(now);
        let listed = self.mailbox.expire(now);
        let mut effects = Vec::new();
        if !gone.is_empty() || !listed.is_empty() {
            effects = vec![Effect::LoadMe, self.mailbox.load()];
        }
        if self.thread.open.as_ref().is_some_and(|o| {
            o.messages.as_ref().is_some_and(Vec::is_empty) && o.older.is_none() && !gone.is_empty()
        }) {
            self.close_thread();
            self.status = "The thread's last message expired".into();
        }
        gone.extend(listed);
        self.vanished.extend(gone);
        effects
    }

    fn flush(&self) -> Option<Effect> {
        // Signed out, a queued message waits for the next session; held, for its time.
        (!self.outbox.is_empty() && self.login.is_none() && self.outbox_hold == 0)
            .then(|| Effect::Flush(self.outbox.clone()))
    }

    /// The thread the thread keys act on: the open one in the thread pane, else the
    /// highlighted one.
    fn selected_thread(&self) -> Option<&Thread> {
        match self.pane {
            Pane::Thread => self.thread.thread(),
            _ => self.mailbox.selected_thread(),
        }
    }

    /// Asks why to report `person`'s `message`, if at all.
    fn ask_report(&mut self, person: &UserSummary, message: &Message) {
        self.status.clear();
        self.modal = Modal::Choice(report::question(person, message));
    }

    /// Asks whether to block `person` (or to unblock them, when `blocked`).
    fn ask_block(&mut self, person: UserSummary, blocked: bool) {
        let name = person.username.clone();
        let (title, question, doing, kept) = if blocked {
            (
                "Unblock",
                format!("Unblock {name}? They will be able to write to you again."),
                format!("Unblocking {name}…"),
                format!("{name} stays blocked"),
            )
        } else {
            (
                "Block",
                format!("Block {name}? They will not be able to write to you."),
                format!("Blocking {name}…"),
                format!("{name} is not blocked"),
            )
        };
        self.status.clear();
        self.modal = Modal::Confirm(Confirm {
            title: title.into(),
            question,
            yes: vec![
                Out::Status(doing),
                Out::Run(Effect::SetBlock(person, !blocked)),
            ],
            no: vec![Out::Status(kept)],
        });
    }

    fn refresh(&mut self) -> Vec<Effect> {
        let mut effects = vec![Effect::LoadMe, self.mailbox.load()];
        effects.extend(self.thread.reload());
        effects
    }

    fn open_thread(&mut self, thread: Thread) -> Vec<Effect> {
        self.pane = Pane::Thread;
        if self.reply_draft(thread.id).is_some() {
            let reply = self.keymap.key(Mode::Mailbox, Action::Reply);
            self.status = format!("A draft reply is waiting: press {reply} to resume it");
        }
        let id = thread.id;
        let effects = self.thread.open(thread);
        if let Some(cached) = self.cache.thread(id) {
            self.thread.show_cached(cached.messages.clone(), cached.at);
        }
        effects
    }

    fn close_thread(&mut self) {
        self.thread.close();
        self.pane = Pane::Threads;
    }

    fn error(&mut self, e: &ApiError) -> Vec<Effect> {
        if let ApiError::Offline(_) = e {
            // The status bar already says offline, and since when what is shown was cached.
            self.offline = true;
            self.status = "The server cannot be reached".into();
            return vec![];
        }
        if let ApiError::Server { status: 401, .. } = e {
            self.sign_out(Some(
                "Your session has ended (expired or logged out): log in again.".into(),
            ));
            return vec![];
        }
        self.status = format!("Error: {e}");
        vec![]
    }

    /// Shows the login screen instead of the mailbox (unless it is already shown), with why.
    pub fn sign_out(&mut self, notice: Option<String>) {
        if self.login.is_none() {
            self.login = Some(Box::new(Login::new(&self.server, notice)));
            self.modal = Modal::None;
            // The cache is the account's: nothing of it stays on screen or in memory.
            self.cache = Snapshot::default();
        }
    }

    /// The login screen is done: a fresh mailbox for the session it opened.
    fn signed_in(app: &mut App) {
        app.login = None;
        app.me = None;
        app.mailbox = Mailbox::default();
        app.thread = ThreadView::default();
        app.search = None;
        app.pane = Pane::Threads;
        app.connection = Connection::Connecting;
        app.live = live::Live::default();
        app.cache = Snapshot::default();
        app.offline = false;
    }

    /// Carries out what a component asked for; `close` closes that component.
    fn apply(&mut self, outs: Vec<Out>, close: fn(&mut App)) -> Vec<Effect> {
        let mut effects = Vec::new();
        for out in outs {
            match out {
                Out::Run(effect) => effects.push(effect),
                Out::Status(text) => self.status = text,
                Out::Close => close(self),
                Out::Focus(pane) => self.pane = pane,
                Out::Refresh => effects.extend(self.refresh()),
                Out::CloseThread(thread) => {
                    if self.thread.shows(thread) {
                        self.close_thread();
                    }
                }
                Out::Queue(outgoing) => {
                    self.outbox.push(outgoing);
                    effects.push(Effect::SaveOutbox(self.outbox.clone()));
                }
                Out::Quit => self.quit = true,
                Out::Resume(draft) => {
                    close(self);
                    self.status = "Resumed a draft".into();
                    self.modal = Modal::Compose(Box::new(Composer::resumed(draft)));
                }
            }
        }
        effects
    }

    fn close_modal(app: &mut App) {
        app.modal = Modal::None;
    }

    fn close_search(app: &mut App) {
        app.search = None;
    }

    /// Applies one message; returns what to do next.
    pub fn update(&mut self, msg: Msg) -> Vec<Effect> {
        // A live event's fetches coalesce with those in flight (decision 32); an answer to
        // one asked for again meanwhile runs it once more.
        let live = matches!(msg, Msg::Live(_));
        let mut again: Vec<Effect> = self.live.answered(&msg).into_iter().collect();
        let mut effects = self.handle(msg);
        if live {
            self.live.coalesce(&mut effects);
        }
        self.live.coalesce(&mut again);
        effects.extend(again);
        self.track_drafts(&effects);
        self.track_cache(&effects);
        effects
    }

    fn handle(&mut self, msg: Msg) -> Vec<Effect> {
        match msg {
            Msg::SaveDraft => match &mut self.modal {
                Modal::Compose(composer) if composer.dirty => composer.save().into_iter().collect(),
                _ => vec![],
            },
            Msg::Drafts(drafts) => {
                if let Modal::Drafts(list) = &mut self.modal {
                    list.loaded(drafts.clone());
                }
                self.drafts = drafts;
                vec![]
            }
            Msg::Key(key) => self.key(key),
            Msg::Paste(text) => self.paste(&text),
            Msg::InFlight(count) => {
                self.in_flight = count;
                vec![]
            }
            Msg::Me(result) => match result {
                Ok(me) => {
                    if let Modal::Settings(settings) = &mut self.modal {
                        settings.me_loaded(&me);
                    }
                    self.cache.me(&me);
                    self.offline = false;
                    self.me = Some(me);
                    vec![]
                }
                Err(e) => self.error(&e),
            },
            Msg::Threads {
                folder,
                append,
                result,
            } => {
                if folder != self.mailbox.folder {
                    return vec![];
                }
                match result {
                    Ok(mut page) => {
                        page.items.retain(|t| {
                            !t.last_message
                                .as_ref()
                                .is_some_and(|m| self.vanished.contains(&m.id))
                        });
                        self.cache.listed(folder, append, &page.items);
                        self.offline = false;
                        self.mailbox.loaded(folder, append, page);
                        let open = self.thread.thread().map(|t| t.id);
                        if let Some(fresh) = open.and_then(|id| self.mailbox.thread(id)) {
                            self.thread.refreshed(fresh);
                        }
                        vec![]
                    }
                    Err(e) => self.error(&e),
                }
            }
            Msg::Messages {
                thread,
                older,
                result,
            } => match result {
                Ok(mut page) => {
                    page.items.retain(|m| !self.vanished.contains(&m.id));
                    if let Some(shown) = self.thread.thread().filter(|t| t.id == thread) {
                        self.cache.messages(shown, older, &page.items);
                    }
                    self.offline = false;
                    self.thread.messages(thread, older, page);
                    vec![]
                }
                // The thread has nothing visible left (expired, or its read-once message was
                // opened): a read-once message opened here stays until the thread is left.
                Err(ApiError::Server { status: 404, .. }) if self.thread.shows(thread) => {
                    let empty = Page {
                        items: Vec::new(),
                        next_cursor: None,
                    };
                    self.thread.messages(thread, false, empty);
                    self.cache.forget(thread);
                    let shown = self.thread.open.as_ref().and_then(|o| o.messages.as_ref());
                    if shown.is_none_or(Vec::is_empty) {
                        self.close_thread();
                        self.status = "This thread is gone".into();
                    }
                    vec![]
                }
                // Offline, a thread never opened here has nothing to show.
                Err(e @ ApiError::Offline(_)) if self.thread.shows(thread) && !older => {
                    self.thread.unavailable();
                    self.error(&e)
                }
                Err(e) => self.error(&e),
            },
            Msg::Sent(key, result) => match &mut self.modal {
                Modal::Compose(composer) if composer.key == key => {
                    let outs = composer.sent(result, &self.keymap);
                    self.apply(outs, Self::close_modal)
                }
                // The answer for a draft that is no longer open (discarded while sending): it
                // must not land on another draft.
                _ => {
                    self.status = match result {
                        Ok(_) => "Sent".into(),
                        Err(e) => format!("A discarded draft was not sent: {e}"),
                    };
                    vec![]
                }
            },
            Msg::BlockLooked(person, result) => match result {
                Ok(blocked) => {
                    self.ask_block(person, blocked);
                    vec![]
                }
                Err(e) => self.error(&e),
            },
            Msg::ReportLooked(person, result) => match result {
                Ok(Some(message)) => {
                    self.ask_report(&person, &message);
                    vec![]
                }
                Ok(None) => {
                    self.status = format!(
                        "None of the thread's latest 20 messages is {}'s to report",
                        person.username
                    );
                    vec![]
                }
                Err(e) => self.error(&e),
            },
            Msg::Done(what, result) => match result {
                Ok(()) if self.wants_ticks() => {
                    self.status = what;
                    self.reload_ops()
                }
                Ok(()) => {
                    self.status = what;
                    self.refresh()
                }
                Err(e) => self.error(&e),
            },
            Msg::Live(event) => self.live_event(event),
            Msg::ThreadRow { thread, result } => {
                let gone = matches!(result, Err(ApiError::Server { status: 404, .. }));
                let effects = self.thread_row(thread, result);
                self.cache_shown();
                if gone {
                    self.cache.forget(thread);
                }
                effects
            }
            Msg::NewMessages { thread, result } => {
                let effects = self.new_messages(thread, result);
                self.cache_shown();
                effects
            }
            Msg::Board(result) => match (result, &mut self.modal) {
                (Ok(board), Modal::Ops(ops)) => {
                    ops.board(board);
                    vec![]
                }
                (Err(e), _) => self.error(&e),
                _ => vec![],
            },
            Msg::DeadJobs(cursor, result) => match (result, &mut self.modal) {
                (Ok(page), Modal::Ops(ops)) => ops.dead_jobs(cursor, page),
                (Err(e), _) => self.error(&e),
                _ => vec![],
            },
            Msg::SearchResults(query, result) => match (&mut self.search, result) {
                (Some(search), result) => {
                    let outs = search.results(&query, result);
                    self.apply(outs, Self::close_search)
                }
                (None, Err(e)) => self.error(&e),
                (None, Ok(_)) => vec![],
            },
            Msg::ThreadLoaded(result) => match result {
                Ok(thread) => self.open_thread(thread),
                Err(e) => self.error(&e),
            },
            Msg::Opened(result) => match result {
                Ok(message) => {
                    let outs = self.thread.opened(message);
                    let mut effects = self.apply(outs, |_| {});
                    // The server no longer lists it: the list and the counts are fetched again
                    // (not the thread, whose listing no longer has it either).
                    effects.extend([Effect::LoadMe, self.mailbox.load()]);
                    effects
                }
                Err(ApiError::Server { status: 404, .. }) => {
                    self.status =
                        "Already opened, or expired: a read-once message opens once".into();
                    self.refresh()
                }
                Err(e) => self.error(&e),
            },
            Msg::RetryOutbox if self.outbox_hold > 0 => {
                self.outbox_hold -= 1;
                vec![]
            }
            Msg::RetryOutbox => self.flush().into_iter().collect(),
            Msg::Reset => self.refresh(),
            Msg::Completions { prefix, result } => match &mut self.modal {
                Modal::Compose(composer) => {
                    let outs = composer.completions(&prefix, result);
                    self.apply(outs, Self::close_modal)
                }
                _ => vec![],
            },
            Msg::Edited(result) => match (result, &mut self.modal) {
                (Ok(text), Modal::Compose(composer)) => {
                    let outs = composer.edited(&text);
                    self.apply(outs, Self::close_modal)
                }
                (Err(e), _) => {
                    self.status = format!("Editor: {e}");
                    vec![]
                }
                _ => vec![],
            },
            Msg::Flushed { key, result } => self.flushed(&key, result),
            Msg::Mouse { event, screen } => self.mouse(event, screen),
            Msg::Login(answer) => {
                let Some(login) = &mut self.login else {
                    return vec![];
                };
                let outs = login.answer(answer);
                let mut effects = self.apply(outs, Self::signed_in);
                for effect in &effects {
                    if let Effect::UseSession { server, .. } = effect {
                        self.server.clone_from(server);
                    }
                }
                effects.extend(self.start());
                effects
            }
            Msg::Account(answer) => {
                if let Some(e @ ApiError::Server { status: 401, .. }) = answer.error() {
                    let e = e.clone();
                    return self.error(&e);
                }
                if let AccountAnswer::Saved(Ok(me)) = &answer {
                    self.me = Some(me.clone());
                }
                match &mut self.modal {
                    Modal::Settings(settings) => {
                        let outs = settings.answer(answer);
                        self.apply(outs, Self::close_modal)
                    }
                    _ => match answer.error() {
                        Some(e) => {
                            let e = e.clone();
                            self.error(&e)
                        }
                        None => vec![],
                    },
                }
            }
            Msg::Expire(now) => self.expire(now),
            Msg::Cached(snapshot) => {
                self.restore(*snapshot);
                vec![]
            }
            Msg::SaveCache(now) => self.save_cache(now).into_iter().collect(),
            Msg::Tick if self.wants_ticks() => self.reload_ops(),
            Msg::Tick => vec![],
            Msg::Connection(connection) => {
                let was = self.connection;
                self.connection = connection;
                if connection == Connection::Live {
                    self.offline = false;
                }
                // Back after a gap: what was missed is fetched again.
                let mut effects = Vec::new();
                if connection == Connection::Live
                    && was != Connection::Live
                    && was != Connection::Connecting
                {
                    effects = self.refresh();
                }
                if connection == Connection::Live && was != Connection::Live {
                    effects.extend(self.flush());
                }
                effects
            }
        }
    }

    /// A queued message's send finished.
    /// A live event changed what is shown in place (decision 32): the cache keeps the folder's
    /// list and the open thread as they now are, so the next start shows them too.
    fn cache_shown(&mut self) {
        if self.mailbox.cached.is_none() {
            self.cache
                .listed(self.mailbox.folder, false, &self.mailbox.threads);
        }
        if let Some(open) = &self.thread.open
            && let Some(shown) = &open.messages
            && self.thread.cached.is_none()
        {
            let newest_first: Vec<Message> = shown.iter().rev().cloned().collect();
            self.cache.messages(&open.thread, false, &newest_first);
        }
    }

    fn flushed(&mut self, key: &str, result: Result<Message, ApiError>) -> Vec<Effect> {
        let Some(at) = self.outbox.iter().position(|o| o.key == key) else {
            return vec![];
        };
        match result {
            Ok(_) => {
                self.outbox.remove(at);
                self.status = "Sent a queued message".into();
                let mut effects = vec![Effect::SaveOutbox(self.outbox.clone())];
                effects.extend(self.refresh());
                effects
            }
            // Still unreachable, or the server cannot take it now: it stays queued.
            Err(ApiError::Offline(_)) => vec![],
            // The session ended, not the message: it stays queued for the next login.
            Err(e @ ApiError::Server { status: 401, .. }) => self.error(&e),
            Err(ApiError::Server {
                status: 429,
                retry_after: Some(wait),
                body,
            }) if wait > 60 => {
                self.outbox_hold = wait.div_ceil(OUTBOX_RETRY_SECS);
                self.status = format!("Queued message not sent yet: {}", body.error.message);
                vec![]
            }
            Err(ApiError::Server { status, .. })
                if status == 408 || status == 429 || status >= 500 =>
            {
                self.status = format!("Queued message not sent yet (server answered {status})");
                vec![]
            }
            Err(ApiError::Server { .. }) if !matches!(self.modal, Modal::None) => {
                // Refused, but a draft is open: it waits in the outbox and opens later.
                self.status =
                    "A queued message was refused; it opens when this draft is done".into();
                vec![]
            }
            Err(ApiError::Server { body, .. }) => {
                // Refused (e.g. the recipient no longer exists): back into the editor with the
                // reason, so nothing written is lost.
                let outgoing = self.outbox.remove(at);
                let errors = body.error.fields.clone().unwrap_or_default();
                let composer = Composer::refused(outgoing, errors.into_iter().collect());
                self.status = format!("A queued message was refused: {}", body.error.message);
                self.modal = Modal::Compose(Box::new(composer));
                vec![Effect::SaveOutbox(self.outbox.clone())]
            }
            Err(e) => {
                self.status = format!("Queued message not sent yet: {e}");
                vec![]
            }
        }
    }

    /// Routes a key press to the component that has the keys.
    /// Pasted text goes into the field with the cursor: the composer's or the search's words.
    /// Anywhere else it is dropped: its letters are not commands.
    fn paste(&mut self, text: &str) -> Vec<Effect> {
        if self.login.is_some() {
            return vec![];
        }
        if let Modal::Compose(composer) = &mut self.modal {
            composer.paste(text);
            return vec![];
        }
        if let Some(search) = self.search.as_mut().filter(|s| s.editing) {
            search.paste(text);
            return vec![];
        }
        if matches!(self.modal, Modal::None) {
            self.status = "Pasted text is typed only into the composer or the search".into();
        }
        vec![]
    }

    fn key(&mut self, key: KeyEvent) -> Vec<Effect> {
        if self.keymap.is(Mode::Global, Action::Suspend, key) {
            return vec![Effect::Suspend];
        }
        if self.keymap.is(Mode::Global, Action::Redraw, key) {
            return vec![Effect::Redraw];
        }
        if let Some(login) = &mut self.login {
            if self.keymap.is(Mode::Global, Action::Quit, key) {
                self.quit = true;
                return vec![];
            }
            let outs = login.key(key, &self.keymap);
            return self.apply(outs, Self::signed_in);
        }
        let outs = match &mut self.modal {
            Modal::Compose(composer) => Some(composer.key(key, &self.keymap)),
            Modal::Ops(ops) => Some(ops.key(key, &self.keymap)),
            Modal::Help(help) => Some(help.key(key, &self.keymap)),
            Modal::Confirm(confirm) => Some(confirm.key(key, &self.keymap)),
            Modal::Choice(choice) => Some(choice.key(key)),
            Modal::Settings(settings) => Some(settings.key(key, &self.keymap)),
            Modal::Drafts(list) => Some(list.key(key, &self.keymap)),
            Modal::None => None,
        };
        if let Some(outs) = outs {
            return self.apply(outs, Self::close_modal);
        }
        if self.keymap.is(Mode::Global, Action::Quit, key) {
            self.quit = true;
            return vec![];
        }
        let in_list = self.pane == Pane::Threads;
        if let Some(search) = &mut self.search
            && let Some(outs) = search.key(key, &self.keymap, in_list)
        {
            return self.apply(outs, Self::close_search);
        }
        match self.keymap.action(Mode::Mailbox, key) {
            // Esc backs out of what is open, never out of the client: one press too many (after
            // the composer's two, say) quit it without a word.
            Some(Action::Back)
                if key.code == crossterm::event::KeyCode::Esc && self.pane != Pane::Thread =>
            {
                let quit = self.keymap.key(Mode::Mailbox, Action::Back);
                self.status = format!("{quit} quits");
                vec![]
            }
            Some(action) => self.act(action),
            None => vec![],
        }
    }

    /// A mailbox action: moves go to the pane with the keys, the rest is routed from here.
    fn act(&mut self, action: Action) -> Vec<Effect> {
        match action {
            Action::Down
            | Action::Up
            | Action::Top
            | Action::Bottom
            | Action::PageDown
            | Action::PageUp => match self.pane {
                Pane::Folders => {
                    self.mailbox.move_folder(action);
                    vec![]
                }
                Pane::Threads => {
                    let outs = self.mailbox.move_thread(action);
                    self.apply(outs, |_| {})
                }
                Pane::Thread => {
                    let outs = self.thread.scroll(action);
                    self.apply(outs, |_| {})
                }
            },
            Action::Open => match self.pane {
                Pane::Folders => {
                    self.pane = Pane::Threads;
                    let load = self.mailbox.open_folder();
                    self.show_cached_folder();
                    vec![load]
                }
                Pane::Threads | Pane::Thread => {
                    if let Some(hit) = self.search.as_ref().and_then(Search::selected_hit) {
                        return vec![Effect::OpenThread(hit.thread_id)];
                    }
                    match self.mailbox.selected_thread().cloned() {
                        Some(thread) => self.open_thread(thread),
                        None => vec![],
                    }
                }
            },
            Action::NextPane => {
                self.pane = match self.pane {
                    Pane::Folders => Pane::Threads,
                    Pane::Threads if self.thread.open.is_some() => Pane::Thread,
                    Pane::Threads | Pane::Thread => Pane::Folders,
                };
                vec![]
            }
            Action::Reply => {
                let waiting = self
                    .selected_thread()
                    .and_then(|t| self.reply_draft(t.id))
                    .cloned();
                if let Some(draft) = waiting {
                    self.status = "Resumed your draft reply".into();
                    self.modal = Modal::Compose(Box::new(Composer::resumed(draft)));
                    return vec![];
                }
                match self.selected_thread() {
                    Some(thread) => {
                        let to = (thread.id, thread.subject.clone());
                        self.modal = Modal::Compose(Box::new(Composer::new(Some(to))));
                    }
                    None => self.status = "No thread to reply to".into(),
                }
                vec![]
            }
            Action::Compose => {
                self.modal = Modal::Compose(Box::new(Composer::new(None)));
                vec![]
            }
            Action::Drafts => {
                self.modal = Modal::Drafts(Box::new(DraftList::new(self.drafts.clone())));
                vec![Effect::LoadDrafts]
            }
            Action::Archive | Action::Mute | Action::ToggleUnread => {
                let Some(thread) = self.selected_thread().cloned() else {
                    return vec![];
                };
                let Some(effect) = mailbox::thread_action(&thread, action) else {
                    return vec![];
                };
                if action == Action::Archive && self.thread.shows(thread.id) {
                    self.close_thread();
                }
                vec![effect]
            }
            Action::Delete => {
                if let Some(thread) = self.selected_thread().map(|t| t.id) {
                    self.modal = Modal::Confirm(Confirm {
                        title: "Delete".into(),
                        question: "Delete this thread for you?".into(),
                        yes: vec![
                            Out::Status("Deleting…".into()),
                            Out::CloseThread(thread),
                            Out::Run(Effect::DeleteThread(thread)),
                        ],
                        no: vec![Out::Status("Not deleted".into())],
                    });
                }
                vec![]
            }
            Action::Block => {
                // The other person: until the account is known, nobody can be told apart.
                let Some(me) = self.me.as_ref().map(|m| m.user.id) else {
                    return vec![];
                };
                let Some(person) = self
                    .selected_thread()
                    .and_then(|t| t.participants.iter().find(|p| p.id != me))
                    .cloned()
                else {
                    return vec![];
                };
                self.status = format!("Looking up {}…", person.username);
                vec![Effect::LookUpBlock(person)]
            }
            Action::Report => {
                let Some(me) = self.me.as_ref().map(|m| m.user.id) else {
                    return vec![];
                };
                let Some((thread, person)) = self.selected_thread().and_then(|t| {
                    let person = t.participants.iter().find(|p| p.id != me)?;
                    Some((t.id, person.clone()))
                }) else {
                    return vec![];
                };
                self.status = format!("Finding {}'s last message…", person.username);
                vec![Effect::LookUpReport(thread, person)]
            }
            Action::Refresh => {
                self.status = "Refreshing…".into();
                self.refresh()
            }
            Action::Help => {
                self.modal = Modal::Help(Help::default());
                vec![]
            }
            Action::Search => {
                self.search = Some(Search::new());
                vec![]
            }
            Action::OpenOnce => {
                let outs = self.thread.open_once(self.me.as_ref().map(|m| m.user.id));
                self.apply(outs, |_| {})
            }
            Action::Ops => {
                if !self.me.as_ref().is_some_and(|m| m.user.is_admin) {
                    self.status = "The queue board is for operators".into();
                    return vec![];
                }
                let ops = Ops::default();
                let load = ops.load();
                self.modal = Modal::Ops(Box::new(ops));
                load
            }
            Action::Settings => {
                self.modal = Modal::Settings(Box::new(Settings::new(self.me.as_ref())));
                Settings::load()
            }
            Action::Back => {
                match self.pane {
                    Pane::Thread => self.close_thread(),
                    _ => self.quit = true,
                }
                vec![]
            }
            Action::Quit => {
                self.quit = true;
                vec![]
            }
            // The other modes' actions never come from the mailbox's keys.
            _ => vec![],
        }
    }
}

/// Drafts: what the root keeps of them and asks the runtime for.
impl App {
    /// Whether the composer holds typing not yet saved: the runtime sends [`Msg::SaveDraft`]
    /// after a pause of a second in the typing.
    pub fn draft_pending(&self) -> bool {
        matches!(&self.modal, Modal::Compose(composer) if composer.dirty)
    }

    /// What to do before the client quits: an open composer is kept as a draft.
    pub fn on_exit(&mut self) -> Vec<Effect> {
        let effects: Vec<Effect> = match &mut self.modal {
            Modal::Compose(composer) => composer.save().into_iter().collect(),
            _ => vec![],
        };
        self.track_drafts(&effects);
        effects
    }

    /// A draft reply to this thread, if one is kept.
    fn reply_draft(&self, thread: ThreadId) -> Option<&Draft> {
        self.drafts
            .iter()
            .find(|d| d.reply_to.as_ref().is_some_and(|(t, _)| *t == thread))
    }

    /// Keeps the list of drafts in step with the saves and deletions asked for.
    fn track_drafts(&mut self, effects: &[Effect]) {
        for effect in effects {
            match effect {
                Effect::SaveDraft(draft) => {
                    self.drafts.retain(|d| d.key != draft.key);
                    self.drafts.insert(0, draft.clone());
                }
                Effect::DeleteDraft(key) => self.drafts.retain(|d| d.key != *key),
                _ => {}
            }
        }
    }
}

/// The cache: what the root records of the answers, shows from it, and asks the runtime to
/// write down.
impl App {
    /// Whether the cache changed since it was written down: the runtime sends
    /// [`Msg::SaveCache`] a moment later (changes meanwhile are written together).
    pub fn cache_pending(&self) -> bool {
        self.cache.dirty && self.cache.user.is_some() && self.login.is_none()
    }

    /// When what is on screen was cached, while some of it is not fresh from the server:
    /// the older of the thread list and the open thread.
    pub fn stale(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        [self.mailbox.cached, self.thread.cached]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether the server cannot be reached now: a request failed for it, or the live
    /// connection is lost.
    pub fn is_offline(&self) -> bool {
        self.offline || matches!(self.connection, Connection::Reconnecting(_))
    }

    fn save_cache(&mut self, now: chrono::DateTime<chrono::Utc>) -> Option<Effect> {
        if !self.cache_pending() {
            return None;
        }
        self.cache.stamp(now);
        self.cache.dirty = false;
        let mut kept = self.cache.to_keep(&self.vanished, Some(now));
        kept.server.clone_from(&self.server);
        Some(Effect::SaveCache(Box::new(kept)))
    }

    /// Takes in what the disk holds for this account: what the server has not answered yet
    /// is drawn from it, marked as cached.
    fn restore(&mut self, snapshot: Snapshot) {
        if self.login.is_some() || snapshot.server != self.server {
            return;
        }
        let user = self.me.as_ref().map(|m| m.user.id).or(self.cache.user);
        if user.is_some_and(|u| snapshot.user != Some(u)) {
            return;
        }
        self.cache.adopt(snapshot);
        if self.me.is_none() {
            self.me.clone_from(&self.cache.me);
        }
        if !self.cache.fresh.contains(&self.mailbox.folder) {
            self.show_cached_folder();
        }
        let open = self.thread.thread().map(|t| t.id);
        if let Some(cached) = open.and_then(|id| self.cache.thread(id)) {
            self.thread.show_cached(cached.messages.clone(), cached.at);
        }
    }

    /// Lists the folder shown from the cache, until the server's answer replaces it.
    fn show_cached_folder(&mut self) {
        let Some(cached) = self.cache.folder(self.mailbox.folder) else {
            return;
        };
        let threads = cached.threads.clone();
        let at = cached.at;
        self.mailbox.show_cached(threads, at);
    }

    /// Keeps the cache in step with the deletions asked for.
    fn track_cache(&mut self, effects: &[Effect]) {
        for effect in effects {
            if let Effect::DeleteThread(thread) = effect {
                self.cache.forget(*thread);
            }
        }
    }
}

#[cfg(test)]
mod account_tests;
#[cfg(test)]
pub(crate) mod tests;

#[cfg(test)]
mod ephemeral_tests;

#[cfg(test)]
mod drafts_tests;

#[cfg(test)]
mod live_tests;

#[cfg(test)]
pub(crate) mod cache_tests;
