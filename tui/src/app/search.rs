//! Search: the prompt while the words are typed, then the results in place of the thread list,
//! best first, with the matches highlighted.

use super::{Effect, Out, Pane};
use crate::api::ApiError;
use crate::keys::{Action, Keymap, Mode};
use crate::theme::Theme;
use crate::ui::{ago, person};
use chrono::{DateTime, Utc};
use convos_core::api::{Page, SearchHit};
use convos_core::text;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{List, ListItem, ListState, Paragraph};
use unicode_width::UnicodeWidthStr;

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

impl Search {
    /// A new search, waiting for its words.
    pub fn new() -> Self {
        Self {
            editing: true,
            ..Self::default()
        }
    }

    /// The highlighted result.
    pub fn selected_hit(&self) -> Option<&SearchHit> {
        self.hits.as_ref().and_then(|h| h.get(self.selected))
    }

    /// A key press; `None` when the search does not take it (the mailbox then does). The
    /// results only take keys while the thread list pane (`in_list`) has them.
    pub fn key(&mut self, key: KeyEvent, keymap: &Keymap, in_list: bool) -> Option<Vec<Out>> {
        if self.editing {
            return Some(self.edit(key, keymap));
        }
        if !in_list {
            return None;
        }
        let count = self.hits.as_ref().map_or(0, Vec::len);
        match keymap.action(Mode::Mailbox, key)? {
            Action::Down => self.selected = (self.selected + 1).min(count.saturating_sub(1)),
            Action::Up => self.selected = self.selected.saturating_sub(1),
            Action::Top => self.selected = 0,
            Action::Bottom => self.selected = count.saturating_sub(1),
            Action::Back => return Some(vec![Out::Close, Out::Status(String::new())]),
            _ => return None,
        }
        Some(vec![])
    }

    /// Pasted text appended to the words, on one line.
    pub fn paste(&mut self, text: &str) {
        self.query
            .push_str(&super::composer::one_line(&text.replace('\r', "\n")));
    }

    fn edit(&mut self, key: KeyEvent, keymap: &Keymap) -> Vec<Out> {
        match keymap.action(Mode::Search, key) {
            Some(Action::Cancel) => return vec![Out::Close],
            Some(Action::Submit) if !self.query.trim().is_empty() => {
                self.editing = false;
                self.hits = None;
                return vec![
                    Out::Focus(Pane::Threads),
                    Out::Run(Effect::Search(self.query.trim().to_owned())),
                ];
            }
            Some(_) => {}
            None => match key.code {
                KeyCode::Backspace => {
                    self.query.pop();
                }
                KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                    self.query.push(c);
                }
                _ => {}
            },
        }
        vec![]
    }

    /// The answer to the search for `query`; only the search on screen takes it.
    pub fn results(&mut self, query: &str, result: Result<Page<SearchHit>, ApiError>) -> Vec<Out> {
        if self.query.trim() != query {
            return vec![];
        }
        match result {
            Ok(page) => {
                let found = format!("{} found", page.items.len());
                self.hits = Some(page.items);
                self.selected = 0;
                vec![Out::Status(found)]
            }
            // Back to the words, kept, with why: "Searching…" stayed on screen for good.
            Err(e) => {
                self.editing = true;
                self.hits = None;
                let why = match &e {
                    ApiError::Server { body, .. } => body
                        .error
                        .fields
                        .as_ref()
                        .and_then(|fields| fields.get("q"))
                        .map(|q| format!("Search refused: the query {q}")),
                    _ => None,
                };
                vec![Out::Status(why.unwrap_or_else(|| format!("Error: {e}")))]
            }
        }
    }

    /// Whether the results replace the thread list (once the words are sent).
    pub fn shows_results(&self) -> bool {
        !self.editing || self.hits.is_some()
    }

    /// Draws the results in the thread list's place.
    pub fn render_results(
        &self,
        frame: &mut Frame,
        area: Rect,
        focused: bool,
        now: DateTime<Utc>,
        theme: &Theme,
    ) {
        let title = format!("Search: {}", text::shown_line(&self.query));
        let Some(hits) = &self.hits else {
            let text = Paragraph::new("Searching…").block(theme.block(title, focused));
            frame.render_widget(text, area);
            return;
        };
        let width = area.width.saturating_sub(4) as usize;
        let items: Vec<ListItem> = hits
            .iter()
            .map(|h| hit_item(h, width, now, theme))
            .collect();
        let empty = items.is_empty();
        let list = List::new(items)
            .block(theme.block(format!("{title} ({})", hits.len()), focused))
            .highlight_style(theme.selection);
        let mut state = ListState::default().with_selected((!empty).then_some(self.selected));
        frame.render_stateful_widget(list, area, &mut state);
        if empty {
            let inner = area.inner(ratatui::layout::Margin {
                horizontal: 2,
                vertical: 1,
            });
            frame.render_widget(Paragraph::new("Nothing found.").style(theme.dim), inner);
        }
    }

    /// Draws the prompt in the status bar's place while the words are typed.
    pub fn render_prompt(&self, frame: &mut Frame, area: Rect, keymap: &Keymap, theme: &Theme) {
        let key = |action| keymap.key(Mode::Search, action);
        let hint = format!(
            "   {} search · {} cancel",
            key(Action::Submit),
            key(Action::Cancel)
        );
        // The words' end, where the cursor is, stays in sight (they went past the edge).
        let room = usize::from(area.width).saturating_sub("Search: ".len() + 1 + hint.width());
        let prompt = Line::from(vec![
            Span::styled("Search: ", theme.prompt),
            Span::raw(crate::ui::fitted(
                &text::shown_line(&self.query),
                room,
                true,
            )),
            Span::styled("▏", theme.accent),
            Span::styled(hint, theme.hint),
        ]);
        frame.render_widget(Paragraph::new(prompt), area);
    }
}

fn hit_item(h: &SearchHit, width: usize, now: DateTime<Utc>, theme: &Theme) -> ListItem<'static> {
    let when = ago(h.created_at, now);
    let (name, tag) = person(&h.sender, width.saturating_sub(when.width() + 3));
    let pad = width.saturating_sub(name.width() + tag.width() + when.width() + 2);
    let first = Line::from(vec![
        Span::raw("  "),
        Span::styled(name, theme.strong),
        Span::styled(tag, theme.dim),
        Span::raw(" ".repeat(pad)),
        Span::raw(when),
    ]);
    let mut second = vec![
        Span::raw("  "),
        Span::raw(text::shown_line(&h.subject)),
        Span::raw(" — "),
    ];
    match &h.excerpt {
        Some(excerpt) => second.extend(highlighted(excerpt, theme)),
        None => second.push(Span::styled("(read-once)", theme.dim)),
    }
    ListItem::new(vec![first, Line::from(second)])
}

/// A search excerpt with the matches (between « and ») in bold.
fn highlighted(excerpt: &str, theme: &Theme) -> Vec<Span<'static>> {
    let mut spans = Vec::new();
    for (i, part) in text::shown_line(excerpt).split(['«', '»']).enumerate() {
        let style = if i % 2 == 1 { theme.matched } else { theme.dim };
        spans.push(Span::styled(part.to_owned(), style));
    }
    spans
}
