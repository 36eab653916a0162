//! The help window: the mailbox's keys as a table and the composer's in one line, generated
//! from the keys in force, so a rebind shows here at once. Any key closes it.

use super::{Out, composer};
use crate::keys::{BINDINGS, Keymap, Mode};
use crate::theme::Theme;
use crate::ui::centered;
use ratatui::Frame;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};

/// The help window (it has no state of its own).
#[derive(Debug, Default)]
pub struct Help;

impl Help {
    /// Any key closes it.
    pub fn key(&mut self) -> Vec<Out> {
        vec![Out::Close]
    }

    /// The lines of the help, from the keys in force.
    pub fn lines(keymap: &Keymap, theme: &Theme) -> Vec<Line<'static>> {
        let mut lines: Vec<Line> = BINDINGS
            .iter()
            .filter(|b| b.mode == Mode::Mailbox)
            .map(|b| {
                Line::from(vec![
                    Span::styled(
                        format!("{:>9}  ", keymap.describe(b.mode, b.action)),
                        theme.accent,
                    ),
                    Span::raw(b.help),
                ])
            })
            .collect();
        lines.push(Line::from(""));
        lines.push(Line::from(Span::styled(
            composer::help_line(keymap),
            theme.hint,
        )));
        lines.push(Line::from(Span::styled(
            "  Any key closes this help.",
            theme.hint,
        )));
        lines
    }

    /// Draws the help in the middle of the screen.
    pub fn render(&self, frame: &mut Frame, keymap: &Keymap, theme: &Theme) {
        let lines = Self::lines(keymap, theme);
        let area = centered(frame.area(), 74, lines.len() as u16 + 2);
        frame.render_widget(Clear, area);
        frame.render_widget(
            Paragraph::new(lines).block(theme.block("Keys".into(), true)),
            area,
        );
    }
}
