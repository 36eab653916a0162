//! The client as a pure state machine: [`App::update`] takes a [`Msg`] (a key, an API answer,
//! a live event) and returns the [`Effect`]s to run. No I/O happens here, so every behaviour is
//! tested without a terminal or a server.

use crate::api::ApiError;
use crate::keys::{self, Action};
use convos_core::api::{Folder, Me, Message, Page, SearchHit, Thread};
use convos_core::events::Event;
use convos_core::ops::{Board, JobSummary};
use convos_core::{Body, MessageId, Subject, ThreadId, Username};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui_textarea::TextArea;
use std::collections::BTreeMap;

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

/// A field of the compose form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// Who it goes to.
    Recipient,
    /// The subject.
    Subject,
    /// The text.
    Body,
}

impl Field {
    /// The API's name for it, as used in error bodies.
    pub fn api(self) -> &'static str {
        match self {
            Field::Recipient => "recipient",
            Field::Subject => "subject",
            Field::Body => "body",
        }
    }
}

/// A message being written.
#[derive(Debug)]
pub struct Compose {
    /// For a reply: the thread and its subject (shown, not editable).
    pub reply_to: Option<(ThreadId, String)>,
    /// The recipient's username.
    pub recipient: String,
    /// The subject.
    pub subject: String,
    /// The body editor.
    pub body: TextArea<'static>,
    /// The field with the cursor.
    pub field: Field,
    /// Errors per field, from local checks or the server's 422.
    pub errors: BTreeMap<String, String>,
    /// Esc was pressed once: a second Esc discards.
    pub confirm_discard: bool,
    /// Sent and waiting for the answer.
    pub sending: bool,
    /// The `Idempotency-Key` of this message: a resend can never create a second one.
    pub key: String,
    /// Usernames from the directory matching what was typed in the recipient field.
    pub suggestions: Vec<String>,
}

impl Compose {
    fn new(reply_to: Option<(ThreadId, String)>) -> Self {
        let field = if reply_to.is_some() {
            Field::Body
        } else {
            Field::Recipient
        };
        Self {
            reply_to,
            recipient: String::new(),
            subject: String::new(),
            body: TextArea::default(),
            field,
            errors: BTreeMap::new(),
            confirm_discard: false,
            sending: false,
            key: uuid::Uuid::new_v4().to_string(),
            suggestions: Vec::new(),
        }
    }

    /// The body's text.
    pub fn body_text(&self) -> String {
        self.body.lines().join("\n")
    }

    fn fields(&self) -> &'static [Field] {
        if self.reply_to.is_some() {
            &[Field::Body]
        } else {
            &[Field::Recipient, Field::Subject, Field::Body]
        }
    }

    /// Checks the fields as the server will, so mistakes show before sending.
    fn check(&mut self) -> bool {
        self.errors.clear();
        if self.reply_to.is_none() {
            if let Err(e) = Username::parse_field("recipient", self.recipient.trim()) {
                self.errors.insert(e.field.to_owned(), e.reason);
            }
            if let Err(e) = Subject::parse(&self.subject) {
                self.errors.insert(e.field.to_owned(), e.reason);
            }
        }
        if let Err(e) = Body::parse(&self.body_text()) {
            self.errors.insert(e.field.to_owned(), e.reason);
        }
        self.errors.is_empty()
    }
}

/// Which list of the Ops screen has the keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpsFocus {
    /// The queue board.
    Queues,
    /// The dead jobs.
    Dead,
}

/// An operator action waiting for its confirmation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpsCommand {
    /// Run a dead job again.
    Retry(uuid::Uuid),
    /// Give up on a dead job.
    Discard(uuid::Uuid),
    /// Stop workers from starting a queue's jobs.
    Pause(String),
    /// Let them start again.
    Resume(String),
}

impl OpsCommand {
    /// The admin API path.
    pub fn path(&self) -> String {
        match self {
            OpsCommand::Retry(id) => format!("jobs/{id}/retry"),
            OpsCommand::Discard(id) => format!("jobs/{id}/discard"),
            OpsCommand::Pause(queue) => format!("queues/{queue}/pause"),
            OpsCommand::Resume(queue) => format!("queues/{queue}/resume"),
        }
    }

    /// The question asked before doing it.
    pub fn question(&self) -> String {
        match self {
            OpsCommand::Retry(id) => format!("Retry job {id}?"),
            OpsCommand::Discard(id) => format!("Discard job {id} for good?"),
            OpsCommand::Pause(queue) => format!("Pause queue {queue}? Jobs wait until resumed."),
            OpsCommand::Resume(queue) => format!("Resume queue {queue}?"),
        }
    }
}

/// The operators' screen: the queue board and the dead jobs, refreshed every few seconds.
#[derive(Debug)]
pub struct Ops {
    /// The board, once loaded.
    pub board: Option<Board>,
    /// Dead jobs, newest first.
    pub dead: Vec<JobSummary>,
    /// Which list has the keys.
    pub focus: OpsFocus,
    /// The highlighted queue.
    pub queue: usize,
    /// The highlighted dead job.
    pub job: usize,
    /// An action waiting for y/n.
    pub confirm: Option<OpsCommand>,
}

/// What is over the mailbox.
#[derive(Debug)]
pub enum Modal {
    /// The operators' queue board.
    Ops(Box<Ops>),
    /// Nothing: the mailbox has the keys.
    None,
    /// The key help.
    Help,
    /// Delete this thread? (y/n)
    ConfirmDelete(ThreadId),
    /// Writing a message.
    Compose(Box<Compose>),
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
}

/// A search in progress or its results.
#[derive(Clone, Debug, Default)]
pub struct Search {
    /// The words.
    pub query: String,
    /// Still typing the words.
    pub editing: bool,
    /// The results, best first (`None` while searching).
    pub hits: Option<Vec<SearchHit>>,
    /// The highlighted result.
    pub selected: usize,
}

/// The open thread.
#[derive(Clone, Debug)]
pub struct OpenThread {
    /// The thread.
    pub thread: Thread,
    /// Its messages, oldest first (`None` while loading).
    pub messages: Option<Vec<Message>>,
    /// Where the older messages continue, if there are more.
    pub older: Option<String>,
    /// Lines scrolled from the bottom.
    pub scroll: u16,
}

/// Everything the client shows.
#[derive(Debug)]
pub struct App {
    /// The signed-in user.
    pub me: Option<Me>,
    /// The folder listed.
    pub folder: Folder,
    /// The highlighted folder in the folder pane.
    pub folder_cursor: usize,
    /// The listed threads.
    pub threads: Vec<Thread>,
    /// The next page of the folder, if any.
    pub next_cursor: Option<String>,
    /// The highlighted thread.
    pub selected: usize,
    /// The open thread.
    pub open: Option<OpenThread>,
    /// Which pane has the keys.
    pub pane: Pane,
    /// What is over the mailbox.
    pub modal: Modal,
    /// The last action's result, for the status bar.
    pub status: String,
    /// The live connection.
    pub connection: Connection,
    /// Requests in flight (for the spinner).
    pub pending: usize,
    /// Ring the bell on new mail.
    pub bell: bool,
    /// A search, shown in place of the thread list while active.
    pub search: Option<Search>,
    /// Messages waiting for the server (persisted by the runtime).
    pub outbox: Vec<Outgoing>,
    /// The keys in force.
    pub keymap: keys::Keymap,
    /// Read-once messages opened in this session: their one read survives refreshes.
    pub revealed: std::collections::HashMap<MessageId, Message>,
    /// Set when the user quits.
    pub quit: bool,
}

/// Something that happened.
#[derive(Debug)]
pub enum Msg {
    /// A key press.
    Key(KeyEvent),
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
    /// A live event.
    Live(Event),
    /// The live connection changed.
    Connection(Connection),
    /// The event stream says events were missed: everything shown is fetched again.
    Reset,
    /// The queue board.
    Board(Result<Board, ApiError>),
    /// The dead jobs.
    DeadJobs(Result<Page<JobSummary>, ApiError>),
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
    /// Directory matches for a typed recipient prefix.
    Completions {
        /// The prefix asked for.
        prefix: String,
        /// The matching usernames.
        result: Result<Vec<String>, ApiError>,
    },
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
    },
    /// Reply in a thread.
    Reply {
        /// Where.
        thread: ThreadId,
        /// The text.
        body: String,
        /// Its idempotency key.
        key: String,
    },
    /// `read`, `archive`, `unarchive`, `mute` or `unmute` a thread.
    ThreadAction {
        /// Which thread.
        thread: ThreadId,
        /// The API action.
        action: &'static str,
        /// The status text when it worked.
        done: &'static str,
    },
    /// Mark one message unread.
    MarkUnread(MessageId),
    /// Delete a thread for me.
    DeleteThread(ThreadId),
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
    /// Fetch the dead jobs.
    LoadDeadJobs,
    /// Run an operator action (admin API path); the text is the status when it worked.
    Admin {
        /// The admin API path.
        path: String,
        /// The status text when it worked.
        done: String,
    },
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
            folder: Folder::Inbox,
            folder_cursor: 0,
            threads: Vec::new(),
            next_cursor: None,
            selected: 0,
            open: None,
            pane: Pane::Threads,
            modal: Modal::None,
            status: String::new(),
            connection: Connection::Connecting,
            pending: 0,
            bell: false,
            search: None,
            outbox: Vec::new(),
            keymap: keys::Keymap::default(),
            revealed: std::collections::HashMap::new(),
            quit: false,
        }
    }

    /// What to fetch at start-up (and any queued messages to send).
    pub fn start(&mut self) -> Vec<Effect> {
        self.pending += 2;
        let mut effects = vec![
            Effect::LoadMe,
            Effect::LoadThreads {
                folder: self.folder,
                cursor: None,
            },
        ];
        effects.extend(self.flush());
        effects
    }

    fn flush(&self) -> Option<Effect> {
        (!self.outbox.is_empty()).then(|| Effect::Flush(self.outbox.clone()))
    }

    fn selected_thread(&self) -> Option<&Thread> {
        match self.pane {
            Pane::Thread => self.open.as_ref().map(|o| &o.thread),
            _ => self.threads.get(self.selected),
        }
    }

    fn refresh(&mut self) -> Vec<Effect> {
        let mut effects = vec![
            Effect::LoadMe,
            Effect::LoadThreads {
                folder: self.folder,
                cursor: None,
            },
        ];
        if let Some(open) = &self.open {
            effects.push(Effect::LoadMessages(open.thread.id));
        }
        self.pending += effects.len();
        effects
    }

    /// Applies one message; returns what to do next.
    pub fn update(&mut self, msg: Msg) -> Vec<Effect> {
        match msg {
            Msg::Key(key) => self.key(key),
            Msg::Me(result) => {
                self.pending = self.pending.saturating_sub(1);
                match result {
                    Ok(me) => self.me = Some(me),
                    Err(e) => self.status = format!("Error: {e}"),
                }
                vec![]
            }
            Msg::Threads {
                folder,
                append,
                result,
            } => {
                self.pending = self.pending.saturating_sub(1);
                if folder != self.folder {
                    return vec![];
                }
                match result {
                    Ok(page) => {
                        let keep = self.threads.get(self.selected).map(|t| t.id);
                        if append {
                            self.threads.extend(page.items);
                        } else {
                            self.threads = page.items;
                        }
                        self.next_cursor = page.next_cursor;
                        self.selected = keep
                            .and_then(|id| self.threads.iter().position(|t| t.id == id))
                            .unwrap_or(self.selected)
                            .min(self.threads.len().saturating_sub(1));
                        if let Some(open) = &mut self.open
                            && let Some(fresh) =
                                self.threads.iter().find(|t| t.id == open.thread.id)
                        {
                            open.thread = fresh.clone();
                        }
                    }
                    Err(e) => self.status = format!("Error: {e}"),
                }
                vec![]
            }
            Msg::Messages {
                thread,
                older,
                result,
            } => {
                self.pending = self.pending.saturating_sub(1);
                match (result, &mut self.open) {
                    (Ok(page), Some(open)) if open.thread.id == thread => {
                        let mut items = page.items;
                        items.reverse();
                        if older {
                            items.extend(open.messages.take().unwrap_or_default());
                        }
                        open.messages = Some(items);
                        open.older = page.next_cursor;
                        self.show_revealed();
                    }
                    (Err(e), _) => self.status = format!("Error: {e}"),
                    _ => {}
                }
                vec![]
            }
            Msg::Sent(key, result) => self.sent(&key, result),
            Msg::Done(what, result) => {
                self.pending = self.pending.saturating_sub(1);
                match result {
                    Ok(()) if matches!(self.modal, Modal::Ops(_)) => {
                        self.status = what;
                        self.pending += 2;
                        vec![Effect::LoadBoard, Effect::LoadDeadJobs]
                    }
                    Ok(()) => {
                        self.status = what;
                        self.refresh()
                    }
                    Err(e) => {
                        self.status = format!("Error: {e}");
                        vec![]
                    }
                }
            }
            Msg::Live(event) => {
                let mut effects = self.refresh();
                if let Event::MessageCreated { .. } = event {
                    self.status = "New mail".into();
                    if self.bell {
                        effects.push(Effect::Bell);
                    }
                }
                effects
            }
            Msg::Board(result) => {
                self.pending = self.pending.saturating_sub(1);
                match (result, &mut self.modal) {
                    (Ok(board), Modal::Ops(ops)) => {
                        ops.queue = ops.queue.min(board.queues.len().saturating_sub(1));
                        ops.board = Some(board);
                    }
                    (Err(e), _) => self.status = format!("Error: {e}"),
                    _ => {}
                }
                vec![]
            }
            Msg::DeadJobs(result) => {
                self.pending = self.pending.saturating_sub(1);
                match (result, &mut self.modal) {
                    (Ok(page), Modal::Ops(ops)) => {
                        ops.dead = page.items;
                        ops.job = ops.job.min(ops.dead.len().saturating_sub(1));
                    }
                    (Err(e), _) => self.status = format!("Error: {e}"),
                    _ => {}
                }
                vec![]
            }
            Msg::SearchResults(query, result) => {
                self.pending = self.pending.saturating_sub(1);
                match (result, &mut self.search) {
                    // Only the answer to the search on screen.
                    (_, Some(search)) if search.query.trim() != query => {}
                    (Ok(page), Some(search)) => {
                        self.status = format!("{} found", page.items.len());
                        search.hits = Some(page.items);
                        search.selected = 0;
                    }
                    (Err(e), _) => self.status = format!("Error: {e}"),
                    _ => {}
                }
                vec![]
            }
            Msg::ThreadLoaded(result) => {
                self.pending = self.pending.saturating_sub(1);
                match result {
                    Ok(thread) => self.open_thread(thread),
                    Err(e) => {
                        self.status = format!("Error: {e}");
                        vec![]
                    }
                }
            }
            Msg::Opened(result) => {
                self.pending = self.pending.saturating_sub(1);
                match result {
                    Ok(message) => {
                        self.revealed.insert(message.id, message);
                        self.show_revealed();
                        self.status = "Opened: this was its one read".into();
                    }
                    Err(e) => self.status = format!("Error: {e}"),
                }
                vec![]
            }
            Msg::RetryOutbox => self.flush().into_iter().collect(),
            Msg::Reset => self.refresh(),
            Msg::Completions { prefix, result } => {
                self.pending = self.pending.saturating_sub(1);
                let Modal::Compose(compose) = &mut self.modal else {
                    return vec![];
                };
                if compose.recipient.trim() != prefix {
                    return vec![];
                }
                match result {
                    Ok(names) if names.is_empty() => {
                        compose.suggestions.clear();
                        compose.errors.insert(
                            "recipient".into(),
                            "no user has a name starting like this".into(),
                        );
                    }
                    Ok(names) => {
                        // Fill in as much as all the matches share.
                        let mut common = names[0].clone();
                        for name in &names[1..] {
                            let shared = common
                                .chars()
                                .zip(name.chars())
                                .take_while(|(a, b)| a == b)
                                .count();
                            common = common.chars().take(shared).collect();
                        }
                        let exact = names.len() == 1 && names[0] == prefix;
                        if common.chars().count() > prefix.chars().count() || names.len() == 1 {
                            compose.recipient = common;
                        }
                        compose.suggestions = names;
                        // A full, known username: on to the subject.
                        if exact {
                            compose.field = Field::Subject;
                        }
                    }
                    Err(e) => self.status = format!("Error: {e}"),
                }
                vec![]
            }
            Msg::Edited(result) => {
                match (result, &mut self.modal) {
                    (Ok(text), Modal::Compose(compose)) => {
                        let text = text.strip_suffix('\n').unwrap_or(&text);
                        compose.body =
                            TextArea::from(text.lines().map(str::to_owned).collect::<Vec<_>>());
                        compose.field = Field::Body;
                        self.status = "Back from the editor".into();
                    }
                    (Err(e), _) => self.status = format!("Editor: {e}"),
                    _ => {}
                }
                vec![]
            }
            Msg::Flushed { key, result } => {
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
                    Err(ApiError::Server { status, .. })
                        if status == 408 || status == 429 || status >= 500 =>
                    {
                        self.status =
                            format!("Queued message not sent yet (server answered {status})");
                        vec![]
                    }
                    Err(ApiError::Server { .. }) if !matches!(self.modal, Modal::None) => {
                        // Refused, but a draft is open: it waits in the outbox and opens later.
                        self.status =
                            "A queued message was refused; it opens when this draft is done".into();
                        vec![]
                    }
                    Err(ApiError::Server { body, .. }) => {
                        // Refused (e.g. the recipient no longer exists): back into the editor
                        // with the reason, so nothing written is lost.
                        let outgoing = self.outbox.remove(at);
                        let mut compose = Compose::new(outgoing.reply_to.clone());
                        compose.key = outgoing.key;
                        compose.recipient = outgoing.recipient;
                        compose.subject = outgoing.subject;
                        compose.body = TextArea::from(
                            outgoing.body.lines().map(str::to_owned).collect::<Vec<_>>(),
                        );
                        compose.errors = body
                            .error
                            .fields
                            .clone()
                            .unwrap_or_default()
                            .into_iter()
                            .collect();
                        self.status =
                            format!("A queued message was refused: {}", body.error.message);
                        self.modal = Modal::Compose(Box::new(compose));
                        vec![Effect::SaveOutbox(self.outbox.clone())]
                    }
                    Err(e) => {
                        self.status = format!("Queued message not sent yet: {e}");
                        vec![]
                    }
                }
            }
            Msg::Tick => match self.modal {
                Modal::Ops(_) => {
                    self.pending += 2;
                    vec![Effect::LoadBoard, Effect::LoadDeadJobs]
                }
                _ => vec![],
            },
            Msg::Connection(connection) => {
                let was = self.connection;
                self.connection = connection;
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

    fn sent(&mut self, key: &str, result: Result<Message, ApiError>) -> Vec<Effect> {
        self.pending = self.pending.saturating_sub(1);
        let open = match &mut self.modal {
            Modal::Compose(compose) if compose.key == key => Some(compose),
            _ => None,
        };
        let Some(compose) = open else {
            // The answer for a draft that is no longer open (discarded while sending): it must
            // not land on another draft.
            self.status = match result {
                Ok(_) => "Sent".into(),
                Err(e) => format!("A discarded draft was not sent: {e}"),
            };
            return vec![];
        };
        compose.sending = false;
        match result {
            Ok(_) => {
                self.modal = Modal::None;
                self.status = "Sent".into();
                self.refresh()
            }
            Err(ApiError::Server {
                body,
                status,
                retry_after,
            }) => {
                if let Some(fields) = body.error.fields {
                    compose.errors = fields.into_iter().collect();
                }
                self.status = match (status, retry_after) {
                    (429, Some(wait)) => format!("Sending too fast: try again in {wait}s"),
                    _ => format!("Not sent: {}", body.error.message),
                };
                vec![]
            }
            Err(ApiError::Offline(_)) => {
                // Kept on disk and sent when the server answers; its key prevents a double send.
                let outgoing = Outgoing {
                    key: compose.key.clone(),
                    reply_to: compose.reply_to.clone(),
                    recipient: compose.recipient.trim().to_owned(),
                    subject: compose.subject.clone(),
                    body: compose.body_text(),
                };
                self.outbox.push(outgoing);
                self.modal = Modal::None;
                self.status = "Offline: queued, it will be sent when the server answers".into();
                vec![Effect::SaveOutbox(self.outbox.clone())]
            }
            Err(e) => {
                self.status = format!("Not sent ({e}); press Ctrl-s to try again");
                vec![]
            }
        }
    }

    fn key(&mut self, key: KeyEvent) -> Vec<Effect> {
        match &mut self.modal {
            Modal::Compose(_) => return self.compose_key(key),
            Modal::Ops(_) => return self.ops_key(key),
            Modal::Help => {
                self.modal = Modal::None;
                return vec![];
            }
            Modal::ConfirmDelete(thread) => {
                let thread = *thread;
                self.modal = Modal::None;
                if key.code == KeyCode::Char('y') {
                    self.pending += 1;
                    self.status = "Deleting…".into();
                    if self.open.as_ref().is_some_and(|o| o.thread.id == thread) {
                        self.open = None;
                        self.pane = Pane::Threads;
                    }
                    return vec![Effect::DeleteThread(thread)];
                }
                self.status = "Not deleted".into();
                return vec![];
            }
            Modal::None => {}
        }
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            self.quit = true;
            return vec![];
        }
        if let Some(effects) = self.search_key(key) {
            return effects;
        }
        let Some(action) = self.keymap.action(key) else {
            return vec![];
        };
        self.act(action)
    }

    fn act(&mut self, action: Action) -> Vec<Effect> {
        match action {
            Action::Down
            | Action::Up
            | Action::Top
            | Action::Bottom
            | Action::PageDown
            | Action::PageUp => self.move_selection(action),
            Action::Open => match self.pane {
                Pane::Folders => {
                    let folder = Folder::ALL[self.folder_cursor];
                    self.folder = folder;
                    self.threads.clear();
                    self.next_cursor = None;
                    self.selected = 0;
                    self.pane = Pane::Threads;
                    self.pending += 1;
                    vec![Effect::LoadThreads {
                        folder,
                        cursor: None,
                    }]
                }
                Pane::Threads | Pane::Thread => {
                    if let Some(search) = &self.search
                        && let Some(hit) = search.hits.as_ref().and_then(|h| h.get(search.selected))
                    {
                        self.pending += 1;
                        return vec![Effect::OpenThread(hit.thread_id)];
                    }
                    let Some(thread) = self.threads.get(self.selected).cloned() else {
                        return vec![];
                    };
                    self.open_thread(thread)
                }
            },
            Action::NextPane => {
                self.pane = match self.pane {
                    Pane::Folders => Pane::Threads,
                    Pane::Threads if self.open.is_some() => Pane::Thread,
                    Pane::Threads | Pane::Thread => Pane::Folders,
                };
                vec![]
            }
            Action::Reply => {
                match self.selected_thread() {
                    Some(thread) => {
                        let to = (thread.id, thread.subject.clone());
                        self.modal = Modal::Compose(Box::new(Compose::new(Some(to))));
                    }
                    None => self.status = "No thread to reply to".into(),
                }
                vec![]
            }
            Action::Compose => {
                self.modal = Modal::Compose(Box::new(Compose::new(None)));
                vec![]
            }
            Action::Archive | Action::Mute | Action::ToggleUnread => {
                let Some(thread) = self.selected_thread().cloned() else {
                    return vec![];
                };
                let effect = match action {
                    Action::Archive if thread.archived => Effect::ThreadAction {
                        thread: thread.id,
                        action: "unarchive",
                        done: "Moved to the inbox",
                    },
                    Action::Archive => Effect::ThreadAction {
                        thread: thread.id,
                        action: "archive",
                        done: "Archived",
                    },
                    Action::Mute if thread.muted => Effect::ThreadAction {
                        thread: thread.id,
                        action: "unmute",
                        done: "Unmuted",
                    },
                    Action::Mute => Effect::ThreadAction {
                        thread: thread.id,
                        action: "mute",
                        done: "Muted",
                    },
                    _ if thread.unread_count > 0 => Effect::ThreadAction {
                        thread: thread.id,
                        action: "read",
                        done: "Marked read",
                    },
                    _ => match &thread.last_message {
                        Some(last) => Effect::MarkUnread(last.id),
                        None => return vec![],
                    },
                };
                if action == Action::Archive
                    && self.open.as_ref().is_some_and(|o| o.thread.id == thread.id)
                {
                    self.open = None;
                    self.pane = Pane::Threads;
                }
                self.pending += 1;
                vec![effect]
            }
            Action::Delete => {
                if let Some(thread) = self.selected_thread() {
                    self.modal = Modal::ConfirmDelete(thread.id);
                }
                vec![]
            }
            Action::Refresh => {
                self.status = "Refreshing…".into();
                self.refresh()
            }
            Action::Help => {
                self.modal = Modal::Help;
                vec![]
            }
            Action::Search => {
                self.search = Some(Search {
                    editing: true,
                    ..Search::default()
                });
                vec![]
            }
            Action::OpenOnce => {
                let me = self.me.as_ref().map(|m| m.user.id);
                let sealed = self
                    .open
                    .as_ref()
                    .and_then(|o| o.messages.as_ref())
                    .and_then(|messages| {
                        messages
                            .iter()
                            .find(|m| m.read_once && m.body.is_none() && Some(m.recipient.id) == me)
                    });
                match sealed {
                    Some(message) => {
                        self.pending += 1;
                        vec![Effect::OpenOnce(message.id)]
                    }
                    None => {
                        self.status = "No unopened read-once message here".into();
                        vec![]
                    }
                }
            }
            Action::Ops => {
                if !self.me.as_ref().is_some_and(|m| m.user.is_admin) {
                    self.status = "The queue board is for operators".into();
                    return vec![];
                }
                self.modal = Modal::Ops(Box::new(Ops {
                    board: None,
                    dead: Vec::new(),
                    focus: OpsFocus::Queues,
                    queue: 0,
                    job: 0,
                    confirm: None,
                }));
                self.pending += 2;
                vec![Effect::LoadBoard, Effect::LoadDeadJobs]
            }
            Action::Back => {
                match self.pane {
                    Pane::Thread => {
                        self.open = None;
                        self.pane = Pane::Threads;
                    }
                    _ => self.quit = true,
                }
                vec![]
            }
        }
    }

    /// Puts the read-once messages opened in this session back into the open thread: the server
    /// no longer lists them (they are consumed), but the one read stays readable here.
    fn show_revealed(&mut self) {
        let Some(open) = &mut self.open else { return };
        let Some(messages) = &mut open.messages else {
            return;
        };
        let mut added = false;
        for revealed in self
            .revealed
            .values()
            .filter(|m| m.thread_id == open.thread.id)
        {
            match messages.iter_mut().find(|m| m.id == revealed.id) {
                Some(slot) => *slot = revealed.clone(),
                None => {
                    messages.push(revealed.clone());
                    added = true;
                }
            }
        }
        if added {
            messages.sort_by_key(|m| (m.created_at, m.id));
        }
    }

    fn open_thread(&mut self, thread: Thread) -> Vec<Effect> {
        let mut effects = vec![Effect::LoadMessages(thread.id)];
        if thread.unread_count > 0 {
            effects.push(Effect::ThreadAction {
                thread: thread.id,
                action: "read",
                done: "",
            });
        }
        self.pending += effects.len();
        self.open = Some(OpenThread {
            thread,
            messages: None,
            older: None,
            scroll: 0,
        });
        self.pane = Pane::Thread;
        effects
    }

    fn search_key(&mut self, key: KeyEvent) -> Option<Vec<Effect>> {
        let search = self.search.as_mut()?;
        if search.editing {
            match key.code {
                KeyCode::Esc => self.search = None,
                KeyCode::Enter if !search.query.trim().is_empty() => {
                    search.editing = false;
                    search.hits = None;
                    self.pending += 1;
                    self.pane = Pane::Threads;
                    return Some(vec![Effect::Search(search.query.trim().to_owned())]);
                }
                KeyCode::Backspace => {
                    search.query.pop();
                }
                KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                    search.query.push(c);
                }
                _ => {}
            }
            return Some(vec![]);
        }
        if self.pane != Pane::Threads {
            return None;
        }
        let count = search.hits.as_ref().map_or(0, Vec::len);
        match self.keymap.action(key)? {
            Action::Down => search.selected = (search.selected + 1).min(count.saturating_sub(1)),
            Action::Up => search.selected = search.selected.saturating_sub(1),
            Action::Top => search.selected = 0,
            Action::Bottom => search.selected = count.saturating_sub(1),
            Action::Back => {
                self.search = None;
                self.status.clear();
            }
            _ => return None,
        }
        Some(vec![])
    }

    fn move_selection(&mut self, action: Action) -> Vec<Effect> {
        let step = |current: usize, len: usize| -> usize {
            let last = len.saturating_sub(1);
            match action {
                Action::Down => (current + 1).min(last),
                Action::Up => current.saturating_sub(1),
                Action::Top => 0,
                Action::Bottom => last,
                Action::PageDown => (current + 10).min(last),
                _ => current.saturating_sub(10),
            }
        };
        match self.pane {
            Pane::Folders => self.folder_cursor = step(self.folder_cursor, Folder::ALL.len()),
            Pane::Threads => {
                self.selected = step(self.selected, self.threads.len());
                // Load the next page before the list runs out.
                if self.selected + 10 >= self.threads.len()
                    && let Some(cursor) = self.next_cursor.take()
                {
                    self.pending += 1;
                    return vec![Effect::LoadThreads {
                        folder: self.folder,
                        cursor: Some(cursor),
                    }];
                }
            }
            Pane::Thread => {
                if let Some(open) = &mut self.open {
                    // Going up from the oldest message shown fetches the page before it.
                    if matches!(action, Action::Top | Action::PageUp)
                        && let Some(cursor) = open.older.take()
                    {
                        self.pending += 1;
                        self.status = "Loading older messages…".into();
                        return vec![Effect::LoadOlder(open.thread.id, cursor)];
                    }
                    open.scroll = match action {
                        Action::Up => open.scroll.saturating_add(1),
                        Action::Down => open.scroll.saturating_sub(1),
                        Action::PageUp => open.scroll.saturating_add(10),
                        Action::PageDown => open.scroll.saturating_sub(10),
                        Action::Top => u16::MAX,
                        _ => 0,
                    };
                }
            }
        }
        vec![]
    }

    fn ops_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let Modal::Ops(ops) = &mut self.modal else {
            return vec![];
        };
        if let Some(command) = ops.confirm.take() {
            if key.code == KeyCode::Char('y') {
                self.pending += 1;
                self.status = "Working…".into();
                let done = match &command {
                    OpsCommand::Retry(_) => "Retried",
                    OpsCommand::Discard(_) => "Discarded",
                    OpsCommand::Pause(_) => "Paused",
                    OpsCommand::Resume(_) => "Resumed",
                };
                return vec![Effect::Admin {
                    path: command.path(),
                    done: done.into(),
                }];
            }
            self.status = "Cancelled".into();
            return vec![];
        }
        let queue_count = ops.board.as_ref().map_or(0, |b| b.queues.len());
        match key.code {
            KeyCode::Esc | KeyCode::Char('q') => self.modal = Modal::None,
            KeyCode::Tab => {
                ops.focus = if ops.focus == OpsFocus::Queues {
                    OpsFocus::Dead
                } else {
                    OpsFocus::Queues
                };
            }
            KeyCode::Char('j') | KeyCode::Down => match ops.focus {
                OpsFocus::Queues => ops.queue = (ops.queue + 1).min(queue_count.saturating_sub(1)),
                OpsFocus::Dead => ops.job = (ops.job + 1).min(ops.dead.len().saturating_sub(1)),
            },
            KeyCode::Char('k') | KeyCode::Up => match ops.focus {
                OpsFocus::Queues => ops.queue = ops.queue.saturating_sub(1),
                OpsFocus::Dead => ops.job = ops.job.saturating_sub(1),
            },
            KeyCode::Char('p') => {
                if let Some(q) = ops.board.as_ref().and_then(|b| b.queues.get(ops.queue)) {
                    let name = q.name.clone();
                    ops.confirm = Some(if q.paused {
                        OpsCommand::Resume(name)
                    } else {
                        OpsCommand::Pause(name)
                    });
                }
            }
            KeyCode::Char('r') if ops.focus == OpsFocus::Dead => {
                ops.confirm = ops.dead.get(ops.job).map(|j| OpsCommand::Retry(j.id));
            }
            KeyCode::Char('x') if ops.focus == OpsFocus::Dead => {
                ops.confirm = ops.dead.get(ops.job).map(|j| OpsCommand::Discard(j.id));
            }
            KeyCode::Char('R') => {
                self.pending += 2;
                return vec![Effect::LoadBoard, Effect::LoadDeadJobs];
            }
            _ => {}
        }
        vec![]
    }

    fn compose_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let Modal::Compose(compose) = &mut self.modal else {
            return vec![];
        };
        if key.code == KeyCode::Esc {
            if compose.confirm_discard
                || (compose.body_text().is_empty() && compose.subject.is_empty())
            {
                self.modal = Modal::None;
                self.status = "Discarded".into();
            } else {
                compose.confirm_discard = true;
                self.status = "Press Esc again to discard this message".into();
            }
            return vec![];
        }
        compose.confirm_discard = false;
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('e') {
            compose.field = Field::Body;
            return vec![Effect::Editor(compose.body_text())];
        }
        if ctrl && key.code == KeyCode::Char('s') {
            if compose.sending {
                return vec![];
            }
            if !compose.check() {
                self.status = "Fix the marked fields".into();
                return vec![];
            }
            compose.sending = true;
            self.pending += 1;
            self.status = "Sending…".into();
            let body = compose.body_text();
            let key = compose.key.clone();
            return vec![match &compose.reply_to {
                Some((thread, _)) => Effect::Reply {
                    thread: *thread,
                    body,
                    key,
                },
                None => Effect::Send {
                    recipient: compose.recipient.trim().to_owned(),
                    subject: compose.subject.clone(),
                    body,
                    key,
                },
            }];
        }
        // Tab in a recipient that is not a known username yet completes it from the directory.
        if key.code == KeyCode::Tab
            && compose.field == Field::Recipient
            && !compose.recipient.trim().is_empty()
            && !compose
                .suggestions
                .iter()
                .any(|s| *s == compose.recipient.trim())
        {
            self.pending += 1;
            return vec![Effect::Complete(compose.recipient.trim().to_owned())];
        }
        if key.code == KeyCode::Tab || key.code == KeyCode::BackTab {
            let fields = compose.fields();
            let at = fields.iter().position(|f| *f == compose.field).unwrap_or(0);
            let next = if key.code == KeyCode::Tab {
                at + 1
            } else {
                at + fields.len() - 1
            };
            compose.field = fields[next % fields.len()];
            return vec![];
        }
        let field = compose.field;
        compose.errors.remove(field.api());
        match field {
            Field::Body => {
                compose.body.input(key);
            }
            Field::Recipient | Field::Subject => {
                let text = if field == Field::Recipient {
                    &mut compose.recipient
                } else {
                    &mut compose.subject
                };
                match key.code {
                    KeyCode::Char(c) if !ctrl => text.push(c),
                    KeyCode::Backspace => {
                        text.pop();
                    }
                    KeyCode::Enter => {
                        compose.field = if field == Field::Recipient {
                            Field::Subject
                        } else {
                            Field::Body
                        };
                    }
                    _ => {}
                }
            }
        }
        vec![]
    }
}

#[cfg(test)]
pub(crate) mod tests;
