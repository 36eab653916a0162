//! The mailbox: the folder pane and the thread list of the folder shown, with paging as the
//! selection nears the end, and the thread actions (archive, mute, read/unread) it offers.

use super::{Effect, Out};
use crate::keys::Action;
use crate::theme::Theme;
use crate::ui::{ago, countdown, person};
use chrono::{DateTime, Utc};
use convos_core::api::{EmailStopped, Folder, Me, Page, Thread, ThreadAction};
use convos_core::text;
use convos_core::{MessageId, ThreadId, UserId};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{List, ListItem, ListState, Paragraph};
use unicode_width::UnicodeWidthStr;

/// The folders and the listed threads.
#[derive(Debug)]
pub struct Mailbox {
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
    /// When the list shown was cached, while it comes from the cache (`None`: from the
    /// server, or cached earlier in this session).
    pub cached: Option<DateTime<Utc>>,
}

impl Default for Mailbox {
    fn default() -> Self {
        Self {
            folder: Folder::Inbox,
            folder_cursor: 0,
            threads: Vec::new(),
            next_cursor: None,
            selected: 0,
            cached: None,
        }
    }
}

/// Where `action` moves a cursor in a list of `len` items.
fn step(action: Action, current: usize, len: usize) -> usize {
    let last = len.saturating_sub(1);
    match action {
        Action::Down => (current + 1).min(last),
        Action::Up => current.saturating_sub(1),
        Action::Top => 0,
        Action::Bottom => last,
        Action::PageDown => (current + 10).min(last),
        _ => current.saturating_sub(10),
    }
}

impl Mailbox {
    /// Fetches the first page of the folder shown.
    pub fn load(&self) -> Effect {
        Effect::LoadThreads {
            folder: self.folder,
            cursor: None,
        }
    }

    /// The highlighted thread.
    pub fn selected_thread(&self) -> Option<&Thread> {
        self.threads.get(self.selected)
    }

    /// A listed thread.
    pub fn thread(&self, id: ThreadId) -> Option<&Thread> {
        self.threads.iter().find(|t| t.id == id)
    }

    /// When the listed threads' newest messages expire.
    pub fn expiries(&self) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        self.threads
            .iter()
            .filter_map(|t| t.last_message.as_ref()?.expires_at)
    }

    /// Takes out the newest messages expired by `now` (returned): a thread with nothing else
    /// leaves the list, the others count one message less until the list is fetched again.
    pub fn expire(&mut self, now: DateTime<Utc>) -> Vec<MessageId> {
        let keep = self.selected_thread().map(|t| t.id);
        let mut gone = Vec::new();
        self.threads.retain_mut(|t| {
            let Some(last) = t
                .last_message
                .take_if(|m| m.expires_at.is_some_and(|at| at <= now))
            else {
                return true;
            };
            gone.push(last.id);
            t.message_count -= 1;
            if t.unread_count > t.message_count {
                t.unread_count = t.message_count;
            }
            t.message_count > 0
        });
        if !gone.is_empty() {
            self.selected = keep
                .and_then(|id| self.threads.iter().position(|t| t.id == id))
                .unwrap_or(self.selected)
                .min(self.threads.len().saturating_sub(1));
        }
        gone
    }

    /// Moves the folder cursor.
    pub fn move_folder(&mut self, action: Action) {
        self.folder_cursor = step(action, self.folder_cursor, Folder::ALL.len());
    }

    /// Moves the thread selection, loading the next page before the list runs out.
    pub fn move_thread(&mut self, action: Action) -> Vec<Out> {
        self.selected = step(action, self.selected, self.threads.len());
        if self.selected + 10 >= self.threads.len()
            && let Some(cursor) = self.next_cursor.take()
        {
            return vec![Out::Run(Effect::LoadThreads {
                folder: self.folder,
                cursor: Some(cursor),
            })];
        }
        vec![]
    }

    /// Selects the thread at `index` (a mouse click), loading the next page before the list
    /// runs out.
    pub fn select_thread(&mut self, index: usize) -> Vec<Out> {
        self.selected = index.min(self.threads.len().saturating_sub(1));
        if self.selected + 10 >= self.threads.len()
            && let Some(cursor) = self.next_cursor.take()
        {
            return vec![Out::Run(Effect::LoadThreads {
                folder: self.folder,
                cursor: Some(cursor),
            })];
        }
        vec![]
    }

    /// Lists the highlighted folder.
    pub fn open_folder(&mut self) -> Effect {
        self.folder = Folder::ALL[self.folder_cursor];
        self.threads.clear();
        self.next_cursor = None;
        self.selected = 0;
        self.cached = None;
        self.load()
    }

    /// Lists `threads` from the cache (cached at `at`) until the server answers; no further
    /// pages are fetched from a cached list.
    pub fn show_cached(&mut self, threads: Vec<Thread>, at: Option<DateTime<Utc>>) {
        let keep = self.selected_thread().map(|t| t.id);
        self.threads = threads;
        self.next_cursor = None;
        self.cached = at;
        self.selected = keep
            .and_then(|id| self.threads.iter().position(|t| t.id == id))
            .unwrap_or(0);
    }

    /// A page of `folder`: it continues the list (`append`) or replaces it, keeping the
    /// selection on the same thread. A page of a folder no longer shown is dropped.
    pub fn loaded(&mut self, folder: Folder, append: bool, page: Page<Thread>) {
        if folder != self.folder {
            return;
        }
        let keep = self.selected_thread().map(|t| t.id);
        if append {
            self.threads.extend(page.items);
        } else {
            self.threads = page.items;
        }
        self.next_cursor = page.next_cursor;
        self.cached = None;
        self.selected = keep
            .and_then(|id| self.threads.iter().position(|t| t.id == id))
            .unwrap_or(self.selected)
            .min(self.threads.len().saturating_sub(1));
    }

    /// Takes a thread out of the list (it left the folder, or is gone).
    pub fn remove(&mut self, id: ThreadId) {
        let keep = self.selected_thread().map(|t| t.id);
        self.threads.retain(|t| t.id != id);
        self.reselect(keep);
    }

    /// One thread as the server now has it: it replaces its row, moving to where its last
    /// activity sorts, joins the list, or leaves it, by whether it belongs in the folder shown.
    /// `me` is the signed-in user. Returns `false` when the row alone cannot tell whether it
    /// belongs (the folder's first page must be fetched again).
    pub fn upsert(&mut self, thread: Thread, me: Option<UserId>) -> bool {
        let listed = self.thread(thread.id);
        // Listed, and no message left it: whatever put it in the folder is still there.
        let kept = listed.is_some_and(|old| thread.message_count >= old.message_count);
        let newest_mine = match (&thread.last_message, me) {
            (Some(last), Some(me)) => Some(last.sender.id == me),
            _ => None,
        };
        let belongs = match self.folder {
            Folder::All => Some(true),
            Folder::Archive => Some(thread.archived),
            Folder::Inbox if thread.archived => Some(false),
            Folder::Inbox if newest_mine == Some(false) || kept => Some(true),
            Folder::Sent if newest_mine == Some(true) || kept => Some(true),
            Folder::Inbox | Folder::Sent => None,
        };
        let keep = self.selected_thread().map(|t| t.id);
        match belongs {
            None => return false,
            Some(false) => self.threads.retain(|t| t.id != thread.id),
            Some(true) => {
                self.threads.retain(|t| t.id != thread.id);
                // Newest activity first, as the server lists them (ties by id, descending).
                let order = |t: &Thread| std::cmp::Reverse((t.last_message_at, t.id));
                let at = self.threads.partition_point(|t| order(t) < order(&thread));
                // Past the end of a list that continues: it comes with a later page.
                if at < self.threads.len() || self.next_cursor.is_none() {
                    self.threads.insert(at, thread);
                }
            }
        }
        self.reselect(keep);
        true
    }

    /// Keeps the selection on `keep` if it is still listed, else in range.
    fn reselect(&mut self, keep: Option<ThreadId>) {
        self.selected = keep
            .and_then(|id| self.threads.iter().position(|t| t.id == id))
            .unwrap_or(self.selected)
            .min(self.threads.len().saturating_sub(1));
    }

    /// Draws the folder pane.
    pub fn render_folders(
        &self,
        frame: &mut Frame,
        area: Rect,
        me: Option<&Me>,
        focused: bool,
        theme: &Theme,
    ) {
        let counts = me.map(|m| m.unread_by_folder.clone()).unwrap_or_default();
        let items: Vec<ListItem> = Folder::ALL
            .into_iter()
            .map(|f| {
                let unread = counts.get(f);
                let mut text = folder_label(f).to_owned();
                if unread > 0 {
                    text.push_str(&format!(" ({unread})"));
                }
                let style = if f == self.folder {
                    theme.strong
                } else {
                    Style::default()
                };
                ListItem::new(Span::styled(text, style))
            })
            .chain(email_stopped(me, theme))
            .collect();
        let list = List::new(items)
            .block(theme.block("Folders".into(), focused))
            .highlight_symbol("> ")
            .highlight_style(theme.cursor);
        let mut state = ListState::default().with_selected(Some(self.folder_cursor));
        frame.render_stateful_widget(list, area, &mut state);
    }

    /// Draws the thread list; `loading` says answers are still awaited, for an empty list.
    #[allow(
        clippy::too_many_arguments,
        reason = "what the root knows about the list, then the drawing context"
    )]
    pub fn render_threads(
        &self,
        frame: &mut Frame,
        area: Rect,
        me: Option<&Me>,
        focused: bool,
        loading: bool,
        now: DateTime<Utc>,
        theme: &Theme,
    ) {
        let me = me.map(|m| m.user.username.as_str());
        let width = area.width.saturating_sub(4) as usize;
        let items: Vec<ListItem> = self
            .threads
            .iter()
            .map(|t| thread_item(t, me, width, now, theme))
            .collect();
        let mut title = format!("{} ({})", folder_label(self.folder), self.threads.len());
        if let Some(at) = self.cached {
            title.push_str(&format!(" · cached {}", crate::ui::clock(at, now)));
        }
        let empty = items.is_empty();
        let list = List::new(items)
            .block(theme.block(title, focused))
            .highlight_style(theme.selection);
        let mut state = ListState::default().with_selected((!empty).then_some(self.selected));
        frame.render_stateful_widget(list, area, &mut state);
        if empty {
            let inner = area.inner(ratatui::layout::Margin {
                horizontal: 2,
                vertical: 1,
            });
            let text = if loading {
                "Loading…"
            } else {
                "No conversations here."
            };
            frame.render_widget(Paragraph::new(text).style(theme.dim), inner);
        }
    }
}

/// What archive, mute or read/unread does to `thread`, by its state.
pub fn thread_action(thread: &Thread, action: Action) -> Option<Effect> {
    Some(match action {
        Action::Archive if thread.archived => Effect::ThreadAction {
            thread: thread.id,
            action: ThreadAction::Unarchive,
            done: "Moved to the inbox",
        },
        Action::Archive => Effect::ThreadAction {
            thread: thread.id,
            action: ThreadAction::Archive,
            done: "Archived",
        },
        Action::Mute if thread.muted => Effect::ThreadAction {
            thread: thread.id,
            action: ThreadAction::Unmute,
            done: "Unmuted",
        },
        Action::Mute => Effect::ThreadAction {
            thread: thread.id,
            action: ThreadAction::Mute,
            done: "Muted",
        },
        _ if thread.unread_count > 0 => Effect::ThreadAction {
            thread: thread.id,
            action: ThreadAction::Read,
            done: "Marked read",
        },
        _ => Effect::MarkUnread(thread.last_message.as_ref()?.id),
    })
}

/// The name a folder is shown by.
pub fn folder_label(folder: Folder) -> &'static str {
    match folder {
        Folder::Inbox => "Inbox",
        Folder::Sent => "Sent",
        Folder::Archive => "Archive",
        Folder::All => "All",
    }
}

/// Below the folders, why Convos stopped emailing the user, if it did.
fn email_stopped(me: Option<&Me>, theme: &Theme) -> Vec<ListItem<'static>> {
    let why = match me.and_then(|m| m.user.email_stopped) {
        Some(EmailStopped::Bounced) => "bounced",
        Some(EmailStopped::Complaint) => "complaint",
        None => return Vec::new(),
    };
    let warn = theme.notice;
    vec![
        ListItem::new(""),
        ListItem::new(Span::styled("No email:", warn)),
        ListItem::new(Span::styled(why, warn)),
    ]
}

/// Who the thread is with, in `width` columns: their name and the username beside it
/// ([`person`]).
fn peer(thread: &Thread, me: Option<&str>, width: usize) -> (String, String) {
    thread
        .participants
        .iter()
        .find(|p| Some(p.username.as_str()) != me)
        .or(thread.participants.first())
        .map_or_else(Default::default, |p| person(p, width))
}

fn thread_item(
    t: &Thread,
    me: Option<&str>,
    width: usize,
    now: DateTime<Utc>,
    theme: &Theme,
) -> ListItem<'static> {
    let unread = t.unread_count > 0;
    let marker = if unread { "● " } else { "  " };
    let when = match t.last_message.as_ref().and_then(|m| m.expires_at) {
        Some(until) => format!(
            "{} left · {}",
            countdown(until, now),
            ago(t.last_message_at, now)
        ),
        None => ago(t.last_message_at, now),
    };
    let count = if t.message_count > 1 {
        format!(" ({})", t.message_count)
    } else {
        String::new()
    };
    // The count and the time keep their places, with a space before the time; a long name
    // gives way.
    let room = width.saturating_sub(marker.width() + count.width() + when.width() + 1);
    let (name, tag) = peer(t, me, room);
    let pad = width
        .saturating_sub(marker.width() + name.width() + tag.width() + count.width() + when.width());
    let bold = if unread {
        theme.unread
    } else {
        Style::default()
    };
    let first = Line::from(vec![
        Span::styled(format!("{marker}{name}"), bold),
        Span::styled(tag, theme.dim),
        Span::styled(count, bold),
        Span::raw(" ".repeat(pad)),
        Span::raw(when),
    ]);
    let excerpt = match &t.last_message {
        Some(m) => m
            .body_excerpt
            .as_deref()
            .map_or_else(|| "(read-once)".into(), text::shown_line),
        // Its newest message expired; the list is being fetched again.
        None => "…".into(),
    };
    let second = Line::from(vec![
        Span::raw("  "),
        Span::styled(text::shown_line(&t.subject), bold),
        Span::styled(format!(" — {excerpt}"), theme.dim),
    ]);
    ListItem::new(vec![first, second])
}
