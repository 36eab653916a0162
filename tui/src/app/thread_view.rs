//! The thread view: the open thread's messages (newest at the bottom, older pages fetched going
//! up), the read-once messages opened in this session, and its pane.

use super::{Effect, Out};
use crate::keys::{Action, Keymap, Mode};
use crate::theme::Theme;
use crate::ui::countdown;
use crate::wrap::wrap;
use chrono::{DateTime, Utc};
use convos_core::api::{Message, Page, Thread, ThreadAction};
use convos_core::text;
use convos_core::{MessageId, ThreadId, UserId};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

/// Rows of a message's body and the width they were wrapped for.
type Wrapped = (usize, Rc<Vec<Line<'static>>>);

/// The open thread.
#[derive(Clone, Debug)]
pub struct OpenThread {
    /// The thread.
    pub thread: Thread,
    /// Its messages, oldest first (`None` while loading).
    pub messages: Option<Vec<Message>>,
    /// Where the older messages continue, if there are more.
    pub older: Option<String>,
    /// Rows scrolled back from the bottom.
    pub scroll: usize,
}

/// The thread pane: what is open in it and what was revealed.
#[derive(Debug, Default)]
pub struct ThreadView {
    /// The open thread.
    pub open: Option<OpenThread>,
    /// Read-once messages opened in this session: their one read survives refreshes.
    pub revealed: HashMap<MessageId, Message>,
    /// When the messages shown were cached, while they come from the cache.
    pub cached: Option<DateTime<Utc>>,
    /// The open thread's messages could not be fetched, and none were cached.
    pub unavailable: bool,
    /// Rows the last draw showed (a page), and how far back from the bottom it could scroll.
    page: Cell<usize>,
    limit: Cell<usize>,
    /// Each message's body as a draw wrapped it, by message, whether its body was there (a
    /// read-once message's appears when opened) and the width: a draw wraps only what it has
    /// not wrapped before, and copies only the rows it shows. Rewrapping a thread of three
    /// 64,000-character messages of short lines took a quarter of a second a frame.
    bodies: RefCell<HashMap<(MessageId, bool), Wrapped>>,
}

impl ThreadView {
    /// Opens `thread`: its messages are fetched, and it is marked read if it had unread ones.
    pub fn open(&mut self, thread: Thread) -> Vec<Effect> {
        self.close();
        let mut effects = vec![Effect::LoadMessages(thread.id)];
        if thread.unread_count > 0 {
            effects.push(Effect::ThreadAction {
                thread: thread.id,
                action: ThreadAction::Read,
                done: "",
            });
        }
        self.open = Some(OpenThread {
            thread,
            messages: None,
            older: None,
            scroll: 0,
        });
        effects
    }

    /// Closes the thread. Read-once messages opened in it go with it: their one read was
    /// this visit.
    pub fn close(&mut self) {
        self.cached = None;
        self.bodies.get_mut().clear();
        self.unavailable = false;
        if let Some(open) = self.open.take() {
            self.revealed.retain(|_, m| m.thread_id != open.thread.id);
        }
    }

    /// When the messages shown expire.
    pub fn expiries(&self) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        self.open
            .iter()
            .flat_map(|o| o.messages.iter().flatten())
            .chain(self.revealed.values())
            .filter_map(|m| m.expires_at)
    }

    /// Drops the messages expired by `now` (also read-once ones opened here); returns them.
    pub fn expire(&mut self, now: DateTime<Utc>) -> Vec<MessageId> {
        let expired = |m: &Message| m.expires_at.is_some_and(|at| at <= now);
        let mut gone: Vec<MessageId> = Vec::new();
        if let Some(messages) = self.open.as_mut().and_then(|o| o.messages.as_mut()) {
            gone.extend(messages.iter().filter(|m| expired(m)).map(|m| m.id));
            messages.retain(|m| !expired(m));
        }
        self.revealed.retain(|id, m| {
            let keep = !expired(m);
            if !keep && !gone.contains(id) {
                gone.push(*id);
            }
            keep
        });
        gone
    }

    /// The open thread, if any.
    pub fn thread(&self) -> Option<&Thread> {
        self.open.as_ref().map(|o| &o.thread)
    }

    /// Whether `thread` is the one open.
    pub fn shows(&self, thread: ThreadId) -> bool {
        self.thread().is_some_and(|t| t.id == thread)
    }

    /// Fetches the open thread's newest messages again.
    pub fn reload(&self) -> Option<Effect> {
        self.thread().map(|t| Effect::LoadMessages(t.id))
    }

    /// The thread as the list now has it (counts, flags).
    pub fn refreshed(&mut self, fresh: &Thread) {
        if let Some(open) = &mut self.open
            && open.thread.id == fresh.id
        {
            open.thread = fresh.clone();
        }
    }

    /// A page of messages (newest first) for `thread`; `older` continues back in time.
    pub fn messages(&mut self, thread: ThreadId, older: bool, page: Page<Message>) {
        let Some(open) = &mut self.open else { return };
        if open.thread.id != thread {
            return;
        }
        let mut items = page.items;
        items.reverse();
        if older {
            items.extend(open.messages.take().unwrap_or_default());
        }
        open.messages = Some(items);
        open.older = page.next_cursor;
        self.cached = None;
        self.unavailable = false;
        self.show_revealed();
    }

    /// The newest page of `thread` (newest first), fetched for a new message: messages not
    /// shown yet join at the bottom and those shown take their fresh state. A page with no
    /// message in common with those shown, and more before it, leaves a gap: then it replaces
    /// them, as a reload does.
    pub fn merge_newest(&mut self, thread: ThreadId, page: Page<Message>) {
        let Some(open) = &mut self.open else { return };
        let Some(shown) = &mut open.messages else {
            // Still loading: that answer brings the newest messages too.
            return;
        };
        if open.thread.id != thread {
            return;
        }
        let overlaps = page
            .items
            .iter()
            .any(|m| shown.iter().any(|s| s.id == m.id));
        if !overlaps && page.next_cursor.is_some() && !shown.is_empty() {
            self.messages(thread, false, page);
            return;
        }
        for message in page.items {
            match shown.iter_mut().find(|s| s.id == message.id) {
                Some(slot) => *slot = message,
                None => shown.push(message),
            }
        }
        shown.sort_by_key(|m| (m.created_at, m.id));
        self.show_revealed();
    }

    /// Sets a shown message's read flag (changed in another session).
    pub fn set_read(&mut self, message: MessageId, is_read: bool) {
        let shown = self
            .open
            .iter_mut()
            .flat_map(|o| o.messages.iter_mut().flatten());
        for m in shown.filter(|m| m.id == message) {
            m.is_read = is_read;
        }
    }

    /// Shows the open thread's cached `messages` (oldest first, cached at `at`) until the
    /// server answers.
    pub fn show_cached(&mut self, messages: Vec<Message>, at: Option<DateTime<Utc>>) {
        let Some(open) = &mut self.open else { return };
        if open.messages.is_some() {
            return;
        }
        open.messages = Some(messages);
        self.cached = at;
        self.show_revealed();
    }

    /// The open thread's messages could not be fetched: without cached ones, it says it is
    /// not available offline.
    pub fn unavailable(&mut self) {
        if self.open.as_ref().is_some_and(|o| o.messages.is_none()) {
            self.unavailable = true;
        }
    }

    /// A read-once message's one read.
    pub fn opened(&mut self, message: Message) -> Vec<Out> {
        self.revealed.insert(message.id, message);
        self.show_revealed();
        vec![Out::Status(
            "Opened: this was its one read; it is gone once you leave the thread".into(),
        )]
    }

    /// Moves through the thread: scrolling, and going up from the oldest message shown
    /// fetches the page before it.
    pub fn scroll(&mut self, action: Action) -> Vec<Out> {
        let Some(open) = &mut self.open else {
            return vec![];
        };
        if matches!(action, Action::Top | Action::PageUp)
            && let Some(cursor) = open.older.take()
        {
            return vec![
                Out::Status("Loading older messages…".into()),
                Out::Run(Effect::LoadOlder(open.thread.id, cursor)),
            ];
        }
        // Before the first draw a page is 10 rows and the limit unknown (the draw clamps).
        let page = match self.page.get() {
            0 => 10,
            rows => rows.saturating_sub(1).max(1),
        };
        let limit = match self.page.get() {
            0 => usize::MAX,
            _ => self.limit.get(),
        };
        open.scroll = match action {
            Action::Up => open.scroll.saturating_add(1),
            Action::Down => open.scroll.saturating_sub(1),
            Action::PageUp => open.scroll.saturating_add(page),
            Action::PageDown => open.scroll.saturating_sub(page),
            Action::Top => usize::MAX,
            _ => 0,
        }
        .min(limit);
        vec![]
    }

    /// Opens the first sealed read-once message `me` received here.
    pub fn open_once(&self, me: Option<UserId>) -> Vec<Out> {
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
            Some(message) => vec![Out::Run(Effect::OpenOnce(message.id))],
            None => vec![Out::Status("No unopened read-once message here".into())],
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

    /// Draws the thread pane.
    #[allow(
        clippy::too_many_arguments,
        reason = "what the pane shows comes from the root: focus, keys, clock, reader, theme"
    )]
    pub fn render(
        &self,
        frame: &mut Frame,
        area: Rect,
        focused: bool,
        keymap: &Keymap,
        now: DateTime<Utc>,
        me: Option<UserId>,
        theme: &Theme,
    ) {
        let Some(open) = &self.open else {
            let open = keymap.key(Mode::Mailbox, Action::Open);
            let hint = Paragraph::new(format!("Select a thread and press {open} to read it."))
                .style(theme.dim)
                .block(theme.block("Thread".into(), focused));
            frame.render_widget(hint, area);
            return;
        };
        let mut title = text::shown_line(&open.thread.subject);
        if let Some(at) = self.cached {
            title.push_str(&format!(" · cached {}", crate::ui::clock(at, now)));
        }
        let inner_width = area.width.saturating_sub(2).max(1) as usize;
        let pieces: Vec<Rc<Vec<Line<'static>>>> = match &open.messages {
            None if self.unavailable => vec![Rc::new(wrapped(
                vec![
                    Line::styled("Not available offline.", theme.warning),
                    Line::from(""),
                    Line::styled(
                        "This thread was not opened here while the server could be reached, \
                         so nothing of it is cached. It loads once the server answers again.",
                        theme.dim,
                    ),
                ],
                inner_width,
            ))],
            None => vec![Rc::new(vec![Line::from("Loading…")])],
            Some(messages) => {
                let mut bodies = self.bodies.borrow_mut();
                let blank = Rc::new(vec![Line::from("")]);
                let mut pieces = Vec::with_capacity(messages.len() * 3);
                for m in messages {
                    let header = wrapped(vec![message_header(m, now, theme)], inner_width);
                    let key = (m.id, m.body.is_some());
                    let body = match bodies.get(&key) {
                        Some((width, rows)) if *width == inner_width => rows.clone(),
                        _ => {
                            let rows = Rc::new(wrapped(message_body(m, keymap, me), inner_width));
                            bodies.insert(key, (inner_width, rows.clone()));
                            rows
                        }
                    };
                    pieces.extend([Rc::new(header), body, blank.clone()]);
                }
                pieces
            }
        };
        // Newest at the bottom: the rows that end there, less what the user scrolled back.
        // Wrapped here, so the count of rows is the count shown, whatever the thread's length;
        // only the rows shown are copied.
        let total: usize = pieces.iter().map(|rows| rows.len()).sum();
        let height = area.height.saturating_sub(2) as usize;
        let bottom = total.saturating_sub(height);
        self.page.set(height.max(1));
        self.limit.set(bottom);
        let mut skip = bottom.saturating_sub(open.scroll);
        let mut shown: Vec<Line> = Vec::with_capacity(height);
        for rows in &pieces {
            if shown.len() == height {
                break;
            }
            if skip >= rows.len() {
                skip -= rows.len();
                continue;
            }
            shown.extend(rows[skip..].iter().take(height - shown.len()).cloned());
            skip = 0;
        }
        let view = Paragraph::new(shown).block(theme.block(title, focused));
        frame.render_widget(view, area);
    }
}

/// `lines` in rows of `width` columns.
fn wrapped(lines: Vec<Line<'static>>, width: usize) -> Vec<Line<'static>> {
    lines.iter().flat_map(|line| wrap(line, width)).collect()
}

/// A message's heading: who, when, and what it does (read once, expires).
fn message_header(m: &Message, now: DateTime<Utc>, theme: &Theme) -> Line<'static> {
    let mut header = vec![
        Span::styled(text::shown_line(&m.sender.display_name), theme.strong),
        Span::styled(
            format!(" <{}>", text::shown_line(&m.sender.username)),
            theme.dim,
        ),
        Span::raw(format!("  {}", m.created_at.format("%Y-%m-%d %H:%M"))),
    ];
    if m.read_once {
        header.push(Span::styled("  [read once]", theme.warning));
    }
    if let Some(until) = m.expires_at {
        header.push(Span::styled(
            format!("  [expires in {}]", countdown(until, now)),
            theme.warning,
        ));
    }
    Line::from(header)
}

/// A message's text, or what stands for it, indented.
fn message_body(m: &Message, keymap: &Keymap, me: Option<UserId>) -> Vec<Line<'static>> {
    let body = match &m.body {
        Some(body) => text::shown_body(body),
        // The sender never sees the body again; only the recipient can open it.
        None if m.read_once && Some(m.recipient.id) != me && me.is_some() => format!(
            "(read-once: only {} can open it, once)",
            text::shown_line(&m.recipient.username)
        ),
        None if m.read_once => format!(
            "(read-once message: press {} to open it; it can be read only once)",
            keymap.key(Mode::Mailbox, Action::OpenOnce)
        ),
        None => "(no longer available)".into(),
    };
    body.lines().map(|l| Line::from(format!("  {l}"))).collect()
}
