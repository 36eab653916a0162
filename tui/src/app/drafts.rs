//! Drafts: messages being written, kept on disk as the user types (see `crate::drafts`), and
//! the list that shows them and resumes one in the composer, like mutt's postponed messages.

use super::{Effect, Out};
use crate::keys::{Action, Keymap, Mode};
use crate::theme::Theme;
use crate::ui::{ago, centered, fit};
use chrono::{DateTime, Utc};
use convos_core::ThreadId;
use convos_core::text;
use crossterm::event::KeyEvent;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};

/// A message being written, as kept on disk: only what the user typed and chose (never a
/// message from the server, so a read-once body is never written here).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Draft {
    /// Its `Idempotency-Key`, also the name of its file.
    pub key: String,
    /// For a reply: the thread and its subject.
    pub reply_to: Option<(ThreadId, String)>,
    /// For a new thread: the recipient.
    pub recipient: String,
    /// For a new thread: the subject.
    pub subject: String,
    /// The text.
    pub body: String,
    /// The expiry as typed or picked (`1h`); empty: the message stays.
    #[serde(default)]
    pub expiry: String,
    /// The recipient can open it once.
    #[serde(default)]
    pub read_once: bool,
    /// When it was last saved (stamped by the runtime as it writes the file).
    #[serde(default)]
    pub saved_at: Option<DateTime<Utc>>,
}

impl Draft {
    /// Who it goes to, as listed: the recipient, or the thread's subject for a reply.
    fn to(&self) -> String {
        match &self.reply_to {
            Some((_, subject)) => format!("Re: {subject}"),
            None => self.recipient.clone(),
        }
    }

    /// The body's first non-empty line.
    pub fn first_line(&self) -> &str {
        self.body
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
    }
}

/// The drafts list.
#[derive(Debug, Default)]
pub struct DraftList {
    /// The drafts, newest first.
    pub drafts: Vec<Draft>,
    /// The highlighted one.
    pub selected: usize,
}

impl DraftList {
    /// The list of these drafts.
    pub fn new(drafts: Vec<Draft>) -> Self {
        Self {
            drafts,
            selected: 0,
        }
    }

    /// The drafts as read from disk again (another client may have added some).
    pub fn loaded(&mut self, drafts: Vec<Draft>) {
        self.drafts = drafts;
        self.selected = self.selected.min(self.drafts.len().saturating_sub(1));
    }

    /// A key press in the list.
    pub fn key(&mut self, key: KeyEvent, keymap: &Keymap) -> Vec<Out> {
        match keymap.action(Mode::Drafts, key) {
            Some(Action::Down) => {
                if self.selected + 1 < self.drafts.len() {
                    self.selected += 1;
                }
                vec![]
            }
            Some(Action::Up) => {
                self.selected = self.selected.saturating_sub(1);
                vec![]
            }
            Some(Action::Open) => match self.drafts.get(self.selected) {
                Some(draft) => vec![Out::Resume(draft.clone())],
                None => vec![],
            },
            Some(Action::Discard) if self.selected < self.drafts.len() => {
                let draft = self.drafts.remove(self.selected);
                self.selected = self.selected.min(self.drafts.len().saturating_sub(1));
                vec![
                    Out::Run(Effect::DeleteDraft(draft.key)),
                    Out::Status("Draft discarded".into()),
                ]
            }
            Some(Action::Back) => vec![Out::Close],
            _ => vec![],
        }
    }

    /// Draws the list over the mailbox: to, subject, first line and age of each draft.
    pub fn render(&self, frame: &mut Frame, keymap: &Keymap, now: DateTime<Utc>, theme: &Theme) {
        let area = centered(
            frame.area(),
            frame.area().width.saturating_sub(6).min(110),
            frame.area().height.saturating_sub(4),
        );
        frame.render_widget(Clear, area);
        let outer = theme.block(format!("Drafts ({})", self.drafts.len()), true);
        let inner = outer.inner(area);
        frame.render_widget(outer, area);
        let [list, foot] =
            Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(inner);
        let width = list.width as usize;
        let mut lines: Vec<Line> = Vec::new();
        if self.drafts.is_empty() {
            lines.push(Line::from(Span::styled(
                "No drafts: a message being written is kept here until it is sent.",
                theme.dim,
            )));
        }
        for (i, draft) in self.drafts.iter().enumerate() {
            let age = draft.saved_at.map(|at| ago(at, now)).unwrap_or_default();
            let to = fit(&text::shown_line(&draft.to()), 24);
            let subject = if draft.reply_to.is_some() {
                String::new()
            } else {
                fit(&text::shown_line(&draft.subject), 28)
            };
            let head = format!("{to:<24} {subject:<28} ");
            let room = width.saturating_sub(head.chars().count() + age.chars().count() + 2);
            let first = fit(&text::shown_line(draft.first_line()), room);
            let pad = room.saturating_sub(first.chars().count());
            let style = if i == self.selected {
                theme.selection
            } else {
                ratatui::style::Style::default()
            };
            lines.push(Line::from(vec![
                Span::styled(head, style),
                Span::styled(first, style.patch(theme.dim)),
                Span::styled(format!("{}  {age}", " ".repeat(pad)), style),
            ]));
        }
        let scroll = self
            .selected
            .saturating_sub(list.height.saturating_sub(1) as usize);
        frame.render_widget(Paragraph::new(lines).scroll((scroll as u16, 0)), list);
        let key = |action| keymap.key(Mode::Drafts, action);
        frame.render_widget(
            Paragraph::new(Span::styled(
                format!(
                    "{} resume · {} discard · {} close",
                    key(Action::Open),
                    key(Action::Discard),
                    key(Action::Back)
                ),
                theme.hint,
            )),
            foot,
        );
    }
}
