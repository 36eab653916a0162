//! The help window: every mode's keys, grouped by mode under headings that name the mode's
//! table in `config.toml`, generated from the keys in force, so a rebind shows here at once.
//! It scrolls when it does not fit (its own keys, `[keys.help_screen]`), any other key closes
//! it, and a wide screen shows it in two columns.

use super::Out;
use crate::keys::{Action, BINDINGS, Keymap, Mode};
use crate::theme::Theme;
use crate::ui::centered;
use crossterm::event::KeyEvent;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use std::cell::Cell;
use unicode_width::UnicodeWidthStr;

/// Every mode, in the order the help lists them, with its heading.
pub const SECTIONS: [(Mode, &str); 10] = [
    (Mode::Mailbox, "Mailbox: folders, threads, the open thread"),
    (Mode::Global, "Anywhere"),
    (Mode::Compose, "Writing a message"),
    (Mode::Drafts, "Drafts"),
    (Mode::Search, "Search prompt"),
    (Mode::Confirm, "Yes/no questions"),
    (Mode::Settings, "Settings"),
    (Mode::Ops, "Queue board (operators)"),
    (Mode::Login, "Login screen"),
    (Mode::Help, "This help"),
];

/// Columns one column of the help takes.
const COLUMN: u16 = 66;

/// The help window and how far it is scrolled.
#[derive(Debug, Default)]
pub struct Help {
    /// Lines scrolled down.
    pub scroll: u16,
    /// Rows the last draw showed (a page), and how far it could scroll.
    page: Cell<u16>,
    limit: Cell<u16>,
}

impl Help {
    /// Its scroll keys move it; any other key closes it (any key at all when it fits).
    pub fn key(&mut self, key: KeyEvent, keymap: &Keymap) -> Vec<Out> {
        if self.limit.get() == 0 {
            return vec![Out::Close];
        }
        let page = self.page.get().max(1);
        self.scroll = match keymap.action(Mode::Help, key) {
            Some(Action::Down) => self.scroll.saturating_add(1),
            Some(Action::Up) => self.scroll.saturating_sub(1),
            Some(Action::PageDown) => self.scroll.saturating_add(page),
            Some(Action::PageUp) => self.scroll.saturating_sub(page),
            Some(Action::Top) => 0,
            Some(Action::Bottom) => u16::MAX,
            _ => return vec![Out::Close],
        }
        .min(self.limit.get());
        vec![]
    }

    /// The help's sections, one per mode: a heading, then a line per action with its keys.
    pub fn sections(keymap: &Keymap, theme: &Theme) -> Vec<Vec<Line<'static>>> {
        SECTIONS
            .iter()
            .map(|&(mode, heading)| {
                let bindings = BINDINGS.iter().filter(|b| b.mode == mode);
                let keys: Vec<(String, &str)> = bindings
                    .map(|b| (keymap.describe(mode, b.action), b.help))
                    .collect();
                let width = keys.iter().map(|(k, _)| k.width()).max().unwrap_or(0);
                let width = width.max(9);
                let table = mode
                    .table()
                    .map_or_else(|| "[keys]".to_owned(), |t| format!("[keys.{t}]"));
                let mut lines = vec![Line::from(vec![
                    Span::styled(heading, theme.strong),
                    Span::styled(format!("  {table}"), theme.dim),
                ])];
                lines.extend(keys.into_iter().map(|(keys, help)| {
                    let pad = " ".repeat(width.saturating_sub(keys.width()));
                    Line::from(vec![
                        Span::styled(format!("{pad}{keys}  "), theme.accent),
                        Span::raw(help),
                    ])
                }));
                lines.push(Line::from(""));
                lines
            })
            .collect()
    }

    /// Draws the help in the middle of the screen, above the status bar: one column, or two
    /// where they fit, scrolled together.
    pub fn render(&self, frame: &mut Frame, keymap: &Keymap, theme: &Theme) {
        let screen = frame.area();
        let room = Rect {
            height: screen.height.saturating_sub(1),
            ..screen
        };
        let sections = Self::sections(keymap, theme);
        let two = room.width >= 2 * COLUMN + 3;
        let columns = if two {
            let (left, right) = halves(sections);
            vec![left, right]
        } else {
            vec![sections.concat()]
        };
        let longest = columns.iter().map(Vec::len).max().unwrap_or(0);
        let longest = u16::try_from(longest).unwrap_or(u16::MAX);
        let width = if two { 2 * COLUMN + 3 } else { COLUMN + 2 };
        let area = centered(room, width, longest.saturating_add(2));
        let shown = area.height.saturating_sub(2);
        let limit = longest.saturating_sub(shown);
        self.page.set(shown);
        self.limit.set(limit);
        let scroll = self.scroll.min(limit);
        let key = |action| keymap.key(Mode::Help, action);
        let hint = if limit == 0 {
            " any key closes ".to_owned()
        } else {
            format!(
                " {}/{} scroll · {} a page · any other key closes ",
                key(Action::Down),
                key(Action::Up),
                key(Action::PageDown)
            )
        };
        let block = theme
            .block(
                format!("Keys ({}/{})", scroll + shown.min(longest), longest),
                true,
            )
            .title_bottom(Line::from(Span::styled(hint, theme.hint)));
        let inner = block.inner(area);
        frame.render_widget(Clear, area);
        frame.render_widget(block, area);
        let places: Vec<Rect> = if two {
            let [left, _, right] = Layout::horizontal([
                Constraint::Length(COLUMN),
                Constraint::Length(1),
                Constraint::Min(0),
            ])
            .areas(inner);
            vec![left, right]
        } else {
            vec![inner]
        };
        for (lines, place) in columns.into_iter().zip(places) {
            frame.render_widget(Paragraph::new(lines).scroll((scroll, 0)), place);
        }
    }
}

/// Splits the sections in two columns at the section boundary that evens them out best.
fn halves(sections: Vec<Vec<Line<'static>>>) -> (Vec<Line<'static>>, Vec<Line<'static>>) {
    let total: usize = sections.iter().map(Vec::len).sum();
    let mut before = 0;
    let mut best = (total, 0);
    for (at, section) in sections.iter().enumerate() {
        let taller = before.max(total - before);
        if taller < best.0 {
            best = (taller, at);
        }
        before += section.len();
    }
    let mut left = sections;
    let right = left.split_off(best.1);
    (left.concat(), right.concat())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::{KeyCode, KeyModifiers};

    #[test]
    fn every_mode_with_keys_has_a_section() {
        for binding in BINDINGS {
            assert!(
                SECTIONS.iter().any(|(mode, _)| *mode == binding.mode),
                "{:?} has no section",
                binding.mode
            );
        }
    }

    #[test]
    fn two_columns_split_at_the_most_even_section_boundary() {
        let section = |n: usize| vec![Line::from(""); n];
        let (left, right) = halves(vec![section(10), section(4), section(5), section(3)]);
        assert_eq!((left.len(), right.len()), (10, 12));
    }

    #[test]
    fn scroll_keys_stop_at_the_ends_and_other_keys_close() {
        let keymap = Keymap::default();
        let mut help = Help::default();
        help.page.set(10);
        help.limit.set(25);
        let press = |code| KeyEvent::new(code, KeyModifiers::NONE);
        assert!(help.key(press(KeyCode::Char('j')), &keymap).is_empty());
        assert_eq!(help.scroll, 1);
        help.key(press(KeyCode::PageDown), &keymap);
        assert_eq!(help.scroll, 11);
        help.key(press(KeyCode::Char('G')), &keymap);
        assert_eq!(help.scroll, 25, "the end, not past it");
        help.key(press(KeyCode::Char('j')), &keymap);
        assert_eq!(help.scroll, 25);
        help.key(press(KeyCode::Char('g')), &keymap);
        help.key(press(KeyCode::Up), &keymap);
        assert_eq!(help.scroll, 0);
        let closes = help.key(press(KeyCode::Char('q')), &keymap);
        assert!(matches!(closes.as_slice(), [Out::Close]));

        help.limit.set(0);
        let closes = help.key(press(KeyCode::Char('j')), &keymap);
        assert!(
            matches!(closes.as_slice(), [Out::Close]),
            "when it all fits, any key closes it, as it says"
        );
    }
}
