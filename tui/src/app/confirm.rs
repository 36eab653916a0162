//! Questions over the mailbox: yes or no ([`Confirm`]), or one of a few answers ([`Choice`]).
//! They know nothing of what they guard: the root gives them what to do on each answer, and
//! they hand that back.

use super::Out;
use crate::keys::{Action, Keymap, Mode};
use crate::theme::Theme;
use crate::ui::centered;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
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

/// A question with a few answers, each on a key of its own; any other key answers no.
#[derive(Debug)]
pub struct Choice {
    /// The window's title.
    pub title: String,
    /// The question.
    pub question: String,
    /// Each answer: its key, its name, and what the root does on it.
    pub answers: Vec<(char, String, Vec<Out>)>,
    /// What the root does on any other key.
    pub no: Vec<Out>,
}

impl Choice {
    /// The answer: the window closes, and the root runs what was given for it.
    pub fn key(&mut self, key: KeyEvent) -> Vec<Out> {
        let plain = (key.modifiers - KeyModifiers::SHIFT).is_empty();
        let chosen = match key.code {
            KeyCode::Char(c) if plain => self
                .answers
                .iter_mut()
                .find(|(k, _, _)| *k == c)
                .map(|(_, _, outs)| std::mem::take(outs)),
            _ => None,
        };
        let answer = chosen.unwrap_or_else(|| std::mem::take(&mut self.no));
        std::iter::once(Out::Close).chain(answer).collect()
    }

    /// The answers as the window lists them: `s spam · h harassment · any other key: no`.
    pub fn answers_line(&self) -> String {
        let mut line: Vec<String> = self
            .answers
            .iter()
            .map(|(key, name, _)| format!("{key} {name}"))
            .collect();
        line.push("any other key: no".into());
        line.join(" · ")
    }

    /// Draws the question and its answers in the middle of the screen.
    pub fn render(&self, frame: &mut Frame, theme: &Theme) {
        let answers = self.answers_line();
        let width = self.question.width().max(answers.width()) + 2;
        let width = u16::try_from(width)
            .unwrap_or(u16::MAX)
            .clamp(44, frame.area().width.max(44));
        let area = centered(frame.area(), width, 4);
        frame.render_widget(Clear, area);
        frame.render_widget(
            Paragraph::new(format!("{}\n{answers}", self.question))
                .block(theme.block(self.title.clone(), true)),
            area,
        );
    }
}
