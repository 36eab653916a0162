//! A yes/no question over the mailbox. It knows nothing of what it guards: the root gives it
//! what to do on yes and on no, and it hands that back.

use super::Out;
use crate::keys::{Action, Keymap, Mode};
use crate::theme::Theme;
use crate::ui::centered;
use crossterm::event::KeyEvent;
use ratatui::Frame;
use ratatui::widgets::{Clear, Paragraph};
use unicode_width::UnicodeWidthStr;

/// A question waiting for its answer.
#[derive(Debug)]
pub struct Confirm {
    /// The window's title.
    pub title: String,
    /// The question.
    pub question: String,
    /// What the root does on yes.
    pub yes: Vec<Out>,
    /// What the root does on no (any key but yes).
    pub no: Vec<Out>,
}

impl Confirm {
    /// The answer: the window closes, and the root runs what was given for it.
    pub fn key(&mut self, key: KeyEvent, keymap: &Keymap) -> Vec<Out> {
        let answer = if keymap.is(Mode::Confirm, Action::Yes, key) {
            std::mem::take(&mut self.yes)
        } else {
            std::mem::take(&mut self.no)
        };
        std::iter::once(Out::Close).chain(answer).collect()
    }

    /// Draws the question in the middle of the screen.
    pub fn render(&self, frame: &mut Frame, keymap: &Keymap, theme: &Theme) {
        let text = format!(
            "{} ({}/{})",
            self.question,
            keymap.key(Mode::Confirm, Action::Yes),
            keymap.key(Mode::Confirm, Action::No)
        );
        let width = u16::try_from(text.width() + 2).unwrap_or(u16::MAX).max(44);
        let area = centered(frame.area(), width, 3);
        frame.render_widget(Clear, area);
        frame.render_widget(
            Paragraph::new(text).block(theme.block(self.title.clone(), true)),
            area,
        );
    }
}
