//! The operators' screen: the queue board and the dead jobs a page at a time, refreshed every
//! few seconds, with pause/resume, retry and discard behind a yes/no question.

use super::{Effect, Out};
use crate::keys::{Action, Keymap, Mode};
use crate::theme::Theme;
use crate::ui::ago;
use chrono::{DateTime, Utc};
use convos_core::api::Page;
use convos_core::ops::{Board, BoardColumn, JobSummary, OpsCommand, board_header, board_row};
use convos_core::text;
use crossterm::event::KeyEvent;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, List, ListItem, ListState, Paragraph, Wrap};

/// Which list of the Ops screen has the keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpsFocus {
    /// The queue board.
    Queues,
    /// The dead jobs.
    Dead,
}

/// Dead jobs fetched a page at a time (the API's largest page).
const DEAD_PAGE: usize = 100;

/// The question asked before an operator action.
pub fn question(command: &OpsCommand) -> String {
    match command {
        OpsCommand::Retry(id) => format!("Retry job {id}?"),
        OpsCommand::Discard(id) => format!("Discard job {id} for good?"),
        OpsCommand::Pause(queue) => format!("Pause queue {queue}? Jobs wait until resumed."),
        OpsCommand::Resume(queue) => format!("Resume queue {queue}?"),
    }
}

/// The status once an operator action is done.
/// The status when the server changed nothing: the job was retried or discarded meanwhile
/// (by another operator, or its retry ran), so it is no longer dead.
fn unchanged(command: &OpsCommand) -> &'static str {
    match command {
        OpsCommand::Retry(_) => "Nothing retried: that job is no longer dead",
        OpsCommand::Discard(_) => "Nothing discarded: that job is no longer dead",
        OpsCommand::Pause(_) | OpsCommand::Resume(_) => done(command),
    }
}

fn done(command: &OpsCommand) -> &'static str {
    match command {
        OpsCommand::Retry(_) => "Retried",
        OpsCommand::Discard(_) => "Discarded",
        OpsCommand::Pause(_) => "Paused",
        OpsCommand::Resume(_) => "Resumed",
    }
}

/// The operators' screen: the queue board and the dead jobs.
#[derive(Clone, Debug)]
pub struct Ops {
    /// The board, once loaded.
    pub board: Option<Board>,
    /// A page of dead jobs, newest first.
    pub dead: Vec<JobSummary>,
    /// The cursor of the page shown (`None`: the newest).
    cursor: Option<String>,
    /// The cursors of the newer pages, the newest first, to page back through.
    newer: Vec<Option<String>>,
    /// The cursor of the next, older page, if there is one.
    older: Option<String>,
    /// Which list has the keys.
    pub focus: OpsFocus,
    /// The highlighted queue.
    pub queue: usize,
    /// The highlighted dead job.
    pub job: usize,
    /// An action waiting for yes or no.
    pub confirm: Option<OpsCommand>,
}

impl Default for Ops {
    fn default() -> Self {
        Self {
            board: None,
            dead: Vec::new(),
            cursor: None,
            newer: Vec::new(),
            older: None,
            focus: OpsFocus::Queues,
            queue: 0,
            job: 0,
            confirm: None,
        }
    }
}

impl Ops {
    /// Fetches the board and the page of dead jobs shown (on opening, on every tick, after an
    /// action).
    pub fn load(&self) -> Vec<Effect> {
        vec![Effect::LoadBoard, Effect::LoadDeadJobs(self.cursor.clone())]
    }

    /// Moves to the page from `cursor`; the list empties until it arrives.
    fn turn_to(&mut self, cursor: Option<String>) -> Effect {
        self.cursor = cursor;
        self.dead.clear();
        self.older = None;
        self.job = 0;
        Effect::LoadDeadJobs(self.cursor.clone())
    }

    /// Where the page shown starts among all dead jobs (0 for the newest).
    fn first_shown(&self) -> usize {
        self.newer.len() * DEAD_PAGE
    }

    /// A key press on the board.
    pub fn key(&mut self, key: KeyEvent, keymap: &Keymap) -> Vec<Out> {
        if let Some(command) = self.confirm.take() {
            if keymap.is(Mode::Confirm, Action::Yes, key) {
                return vec![
                    Out::Status("Working…".into()),
                    Out::Run(Effect::Admin {
                        done: done(&command).into(),
                        unchanged: unchanged(&command).into(),
                        command,
                    }),
                ];
            }
            return vec![Out::Status("Cancelled".into())];
        }
        let queue_count = self.board.as_ref().map_or(0, |b| b.queues.len());
        match keymap.action(Mode::Ops, key) {
            Some(Action::Back) => return vec![Out::Close],
            Some(Action::NextPane) => {
                self.focus = match self.focus {
                    OpsFocus::Queues => OpsFocus::Dead,
                    OpsFocus::Dead => OpsFocus::Queues,
                };
            }
            Some(Action::Down) => match self.focus {
                OpsFocus::Queues => {
                    self.queue = (self.queue + 1).min(queue_count.saturating_sub(1));
                }
                OpsFocus::Dead => self.job = (self.job + 1).min(self.dead.len().saturating_sub(1)),
            },
            Some(Action::Up) => match self.focus {
                OpsFocus::Queues => self.queue = self.queue.saturating_sub(1),
                OpsFocus::Dead => self.job = self.job.saturating_sub(1),
            },
            Some(Action::Pause) => {
                if let Some(q) = self.board.as_ref().and_then(|b| b.queues.get(self.queue)) {
                    let name = q.name.clone();
                    self.confirm = Some(if q.paused {
                        OpsCommand::Resume(name)
                    } else {
                        OpsCommand::Pause(name)
                    });
                }
            }
            Some(Action::Retry) if self.focus == OpsFocus::Dead => {
                self.confirm = self.dead.get(self.job).map(|j| OpsCommand::Retry(j.id));
            }
            Some(Action::Discard) if self.focus == OpsFocus::Dead => {
                self.confirm = self.dead.get(self.job).map(|j| OpsCommand::Discard(j.id));
            }
            Some(Action::PageDown) => {
                if let Some(older) = self.older.take() {
                    self.newer.push(self.cursor.take());
                    return vec![Out::Run(self.turn_to(Some(older)))];
                }
            }
            Some(Action::PageUp) => {
                if let Some(newer) = self.newer.pop() {
                    return vec![Out::Run(self.turn_to(newer))];
                }
            }
            Some(Action::Refresh) => return self.load().into_iter().map(Out::Run).collect(),
            _ => {}
        }
        vec![]
    }

    /// The board, fetched.
    pub fn board(&mut self, board: Board) {
        self.queue = self.queue.min(board.queues.len().saturating_sub(1));
        self.board = Some(board);
    }

    /// A page of dead jobs, fetched from `cursor`; one for another page than the one shown
    /// (asked for before a page turn) is dropped. The highlight stays on the job it was on (new
    /// dead jobs come first and pushed it onto another), or at its place if that job left the
    /// list. A page left empty (its jobs retried or discarded) turns back to the newer one.
    pub fn dead_jobs(&mut self, cursor: Option<String>, page: Page<JobSummary>) -> Vec<Effect> {
        if cursor != self.cursor {
            return vec![];
        }
        if page.items.is_empty()
            && let Some(newer) = self.newer.pop()
        {
            return vec![self.turn_to(newer)];
        }
        let on = self.dead.get(self.job).map(|job| job.id);
        self.dead = page.items;
        self.older = page.next_cursor;
        self.job = on
            .and_then(|id| self.dead.iter().position(|job| job.id == id))
            .unwrap_or(self.job)
            .min(self.dead.len().saturating_sub(1));
        vec![]
    }

    /// Draws the screen over everything but the status bar.
    pub fn render(&self, frame: &mut Frame, keymap: &Keymap, now: DateTime<Utc>, theme: &Theme) {
        let area = frame.area();
        let area = Rect {
            height: area.height.saturating_sub(1),
            ..area
        };
        frame.render_widget(Clear, area);
        let outer = theme.block("Ops — job queues (refreshes every 3 s)".into(), true);
        let inner = outer.inner(area);
        frame.render_widget(outer, area);
        let queue_rows = self.board.as_ref().map_or(1, |b| b.queues.len() + 2) as u16;
        let [queues_area, dead_area, detail_area, keys_area] = Layout::vertical([
            Constraint::Length(queue_rows + 2),
            Constraint::Min(4),
            Constraint::Length(3),
            Constraint::Length(1),
        ])
        .areas(inner);
        self.render_queues(frame, queues_area, theme);
        let empty = self.render_dead(frame, dead_area, now, theme);
        frame.render_widget(
            Paragraph::new(self.detail(empty, keymap, theme))
                .wrap(Wrap { trim: true })
                .block(theme.block("Detail".into(), false)),
            detail_area,
        );
        frame.render_widget(
            Paragraph::new(Span::styled(footer(keymap), theme.hint)),
            keys_area,
        );
    }

    fn render_queues(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let mut lines = vec![Line::from(Span::styled(
            format!("  {}", board_header(&BoardColumn::COMPACT)),
            theme.strong,
        ))];
        match &self.board {
            None => lines.push(Line::from("  Loading…")),
            Some(board) => {
                for (i, q) in board.queues.iter().enumerate() {
                    let selected = self.focus == OpsFocus::Queues && i == self.queue;
                    let mut style = Style::default();
                    if q.dead > 0 {
                        style = style.patch(theme.error);
                    }
                    if selected {
                        style = style.patch(theme.selection);
                    }
                    lines.push(Line::from(Span::styled(
                        format!(
                            "{}{}",
                            if selected { "> " } else { "  " },
                            board_row(&BoardColumn::COMPACT, q)
                        ),
                        style,
                    )));
                }
                lines.push(Line::from(Span::styled(
                    format!(
                        "  {} worker(s) seen in the last minute",
                        board.workers.len()
                    ),
                    theme.dim,
                )));
            }
        }
        frame.render_widget(
            Paragraph::new(lines)
                .block(theme.block("Queues".into(), self.focus == OpsFocus::Queues)),
            area,
        );
    }

    /// Draws the dead jobs; says whether there are none.
    fn render_dead(
        &self,
        frame: &mut Frame,
        area: Rect,
        now: DateTime<Utc>,
        theme: &Theme,
    ) -> bool {
        let items: Vec<ListItem> = self
            .dead
            .iter()
            .map(|j| {
                let error = text::shown_line(j.last_error.as_deref().unwrap_or("-"));
                ListItem::new(format!(
                    "{:<13} {:>2}/{:<2} {:>5}  {}",
                    j.kind,
                    j.attempts,
                    j.max_attempts,
                    ago(j.updated_at, now),
                    error
                ))
            })
            .collect();
        let empty = items.is_empty();
        let title = if self.newer.is_empty() && self.older.is_none() {
            format!("Dead jobs ({})", self.dead.len())
        } else {
            let total: i64 = self
                .board
                .as_ref()
                .map_or(0, |b| b.queues.iter().map(|q| q.dead).sum());
            let first = self.first_shown();
            format!(
                "Dead jobs {}–{} of {total}",
                first + 1,
                first + self.dead.len()
            )
        };
        let list = List::new(items)
            .block(theme.block(title, self.focus == OpsFocus::Dead))
            .highlight_style(theme.selection);
        let mut state = ListState::default()
            .with_selected((!empty && self.focus == OpsFocus::Dead).then_some(self.job));
        frame.render_stateful_widget(list, area, &mut state);
        empty
    }

    fn detail(&self, empty: bool, keymap: &Keymap, theme: &Theme) -> Line<'static> {
        match (&self.confirm, self.dead.get(self.job)) {
            (Some(command), _) => Line::from(Span::styled(
                format!(
                    "{}  ({}/{})",
                    question(command),
                    keymap.key(Mode::Confirm, Action::Yes),
                    keymap.key(Mode::Confirm, Action::No)
                ),
                theme.question,
            )),
            (None, Some(job)) if self.focus == OpsFocus::Dead => Line::from(format!(
                "{}  {}",
                job.id,
                text::shown_line(job.last_error.as_deref().unwrap_or(""))
            )),
            _ if empty => Line::from(Span::styled("No dead jobs: delivery is healthy.", theme.ok)),
            _ => Line::from(Span::styled(
                format!(
                    "{} to the dead jobs to see their errors, retry or discard them.",
                    keymap.key(Mode::Ops, Action::NextPane)
                ),
                theme.hint,
            )),
        }
    }
}

/// The board's key hint, from the keys in force.
pub fn footer(keymap: &Keymap) -> String {
    let key = |action| keymap.key(Mode::Ops, action);
    format!(
        "{} queues/dead · {}/{} move · {}/{} older/newer · {} pause/resume · {} retry · {} discard · {} refresh · {} close",
        key(Action::NextPane),
        key(Action::Down),
        key(Action::Up),
        key(Action::PageDown),
        key(Action::PageUp),
        key(Action::Pause),
        key(Action::Retry),
        key(Action::Discard),
        key(Action::Refresh),
        key(Action::Back),
    )
}
