//! The composer: a message being written (a new thread or a reply), its fields and their
//! errors, recipient completion, the external editor, and its window. It never sends by
//! itself: it asks the root to run a send, and is told the answer.

use super::ephemeral::{self, SendOptions};
use super::{Draft, Effect, Out, Outgoing};
use crate::api::ApiError;
use crate::keys::{Action, Keymap, Mode};
use crate::theme::Theme;
use crate::ui::centered;
use convos_core::ThreadId;
use convos_core::api::Message;
use convos_core::text;
use convos_core::{Body, Subject, Username};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};
use ratatui_textarea::TextArea;
use std::collections::BTreeMap;
use unicode_width::UnicodeWidthStr;

/// A field of the compose form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// Who it goes to.
    Recipient,
    /// The subject.
    Subject,
    /// The text.
    Body,
    /// When it disappears (reached with the expiry key, not by Tab).
    Expiry,
}

impl Field {
    /// The API's name for it, as used in error bodies.
    pub fn api(self) -> &'static str {
        match self {
            Field::Recipient => "recipient",
            Field::Subject => "subject",
            Field::Body => "body",
            Field::Expiry => "expires_in",
        }
    }
}

/// A message being written.
#[derive(Debug)]
pub struct Composer {
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
    /// The discard key was pressed once: a second press discards.
    pub confirm_discard: bool,
    /// Sent and waiting for the answer.
    pub sending: bool,
    /// The `Idempotency-Key` of this message: a resend can never create a second one.
    pub key: String,
    /// Usernames from the directory matching what was typed in the recipient field.
    pub suggestions: Vec<String>,
    /// The expiry as typed or picked (`1h`, `90m`); empty: the message stays.
    pub expiry: String,
    /// The recipient can open it once.
    pub read_once: bool,
    /// Typed into since the draft was last saved: the runtime saves it after a pause.
    pub dirty: bool,
}

/// `text` on one line: its line breaks as spaces, other control characters dropped.
pub fn one_line(text: &str) -> String {
    text.chars()
        .filter_map(|c| match c {
            '\n' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect()
}

fn status(text: impl Into<String>) -> Out {
    Out::Status(text.into())
}

impl Composer {
    /// An empty draft: a reply in `reply_to`, or a new thread.
    pub fn new(reply_to: Option<(ThreadId, String)>) -> Self {
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
            expiry: String::new(),
            read_once: false,
            dirty: false,
        }
    }

    /// A draft back in the composer, every field and option as it was, with its key (so its
    /// file is the one updated, and a send of it is never made twice).
    pub fn resumed(draft: Draft) -> Self {
        let mut composer = Self::new(draft.reply_to);
        composer.key = draft.key;
        composer.recipient = draft.recipient;
        composer.subject = draft.subject;
        composer.body = TextArea::from(draft.body.lines().map(str::to_owned).collect::<Vec<_>>());
        composer
            .body
            .move_cursor(ratatui_textarea::CursorMove::Bottom);
        composer.body.move_cursor(ratatui_textarea::CursorMove::End);
        composer.expiry = draft.expiry;
        composer.read_once = draft.read_once;
        // Back where the writing was.
        composer.field = Field::Body;
        composer
    }

    /// What is written, as a draft keeps it.
    pub fn draft(&self) -> Draft {
        Draft {
            key: self.key.clone(),
            reply_to: self.reply_to.clone(),
            recipient: self.recipient.clone(),
            subject: self.subject.clone(),
            body: self.body_text(),
            expiry: self.expiry.clone(),
            read_once: self.read_once,
            saved_at: None,
        }
    }

    /// Whether anything was written worth keeping.
    pub fn has_content(&self) -> bool {
        !self.body_text().trim().is_empty()
            || (self.reply_to.is_none()
                && !(self.recipient.trim().is_empty() && self.subject.trim().is_empty()))
    }

    /// Saves the draft now (if anything is written), as the runtime does after a pause in the
    /// typing and the composer does on every change of field or option.
    pub fn save(&mut self) -> Option<Effect> {
        self.dirty = false;
        self.has_content().then(|| Effect::SaveDraft(self.draft()))
    }

    /// A queued message the server refused, back in the composer with its key and the
    /// server's reasons, so nothing written is lost.
    pub fn refused(outgoing: Outgoing, errors: BTreeMap<String, String>) -> Self {
        let mut composer = Self::new(outgoing.reply_to);
        composer.key = outgoing.key;
        composer.recipient = outgoing.recipient;
        composer.subject = outgoing.subject;
        composer.body =
            TextArea::from(outgoing.body.lines().map(str::to_owned).collect::<Vec<_>>());
        composer.errors = errors;
        composer.expiry = outgoing
            .options
            .expires_in
            .map(ephemeral::describe)
            .unwrap_or_default();
        composer.read_once = outgoing.options.read_once;
        composer
    }

    /// The expiry and read-once options as they would be sent, if the expiry reads.
    pub fn options(&self) -> Result<SendOptions, String> {
        Ok(SendOptions {
            expires_in: ephemeral::parse_duration(&self.expiry)?,
            read_once: self.read_once,
        })
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
        if let Err(reason) = self.options() {
            self.errors.insert(Field::Expiry.api().to_owned(), reason);
        }
        self.errors.is_empty()
    }

    /// The draft as the outbox keeps it.
    fn outgoing(&self) -> Outgoing {
        Outgoing {
            key: self.key.clone(),
            reply_to: self.reply_to.clone(),
            recipient: self.recipient.trim().to_owned(),
            subject: self.subject.clone(),
            body: self.body_text(),
            options: self.options().unwrap_or_default(),
        }
    }

    /// A key press while writing.
    pub fn key(&mut self, key: KeyEvent, keymap: &Keymap) -> Vec<Out> {
        let action = keymap.action(Mode::Compose, key);
        if action == Some(Action::Discard) {
            if self.confirm_discard || !self.has_content() {
                return vec![
                    Out::Close,
                    status("Discarded"),
                    Out::Run(Effect::DeleteDraft(self.key.clone())),
                ];
            }
            self.confirm_discard = true;
            let discard = keymap.key(Mode::Compose, Action::Discard);
            let keep = keymap.key(Mode::Compose, Action::Postpone);
            return vec![status(format!(
                "Discard this message? {discard} again: discard · {keep}: keep it as a draft"
            ))];
        }
        self.confirm_discard = false;
        let before = self.field;
        let mut outs = self.act(action, key, keymap);
        // A change of field or option is a natural pause: the draft is saved at once.
        if (self.field != before || matches!(action, Some(Action::Expiry | Action::ReadOnce)))
            && let Some(save) = self.save()
        {
            outs.push(Out::Run(save));
        }
        outs
    }

    fn act(&mut self, action: Option<Action>, key: KeyEvent, keymap: &Keymap) -> Vec<Out> {
        match action {
            Some(Action::Postpone) => {
                let drafts = keymap.key(Mode::Mailbox, Action::Drafts);
                match self.save() {
                    Some(save) => vec![
                        Out::Close,
                        Out::Run(save),
                        status(format!("Kept as a draft: {drafts} lists the drafts")),
                    ],
                    None => vec![Out::Close, status("Nothing written: no draft kept")],
                }
            }
            Some(Action::Editor) => {
                self.field = Field::Body;
                vec![Out::Run(Effect::Editor(self.body_text()))]
            }
            Some(Action::Send) => self.send(),
            Some(Action::Expiry) => {
                self.field = Field::Expiry;
                self.errors.remove(Field::Expiry.api());
                self.expiry = ephemeral::next_preset(&self.expiry);
                vec![]
            }
            Some(Action::ReadOnce) => {
                self.read_once = !self.read_once;
                vec![]
            }
            // The expiry field is outside the Tab cycle: leaving it goes back to the text.
            Some(Action::NextField | Action::PreviousField) if self.field == Field::Expiry => {
                self.field = Field::Body;
                vec![]
            }
            // Next field in a recipient that is not a known username yet completes it from the
            // directory.
            Some(Action::NextField)
                if self.field == Field::Recipient
                    && !self.recipient.trim().is_empty()
                    && !self.suggestions.iter().any(|s| *s == self.recipient.trim()) =>
            {
                vec![Out::Run(Effect::Complete(self.recipient.trim().to_owned()))]
            }
            Some(step @ (Action::NextField | Action::PreviousField)) => {
                let fields = self.fields();
                let at = fields.iter().position(|f| *f == self.field).unwrap_or(0);
                let next = if step == Action::NextField {
                    at + 1
                } else {
                    at + fields.len() - 1
                };
                self.field = fields[next % fields.len()];
                vec![]
            }
            _ => {
                self.type_key(key);
                vec![]
            }
        }
    }

    fn send(&mut self) -> Vec<Out> {
        if self.sending {
            return vec![];
        }
        if !self.check() {
            return vec![status("Fix the marked fields")];
        }
        self.sending = true;
        let body = self.body_text();
        let key = self.key.clone();
        let options = self.options().unwrap_or_default();
        let effect = match &self.reply_to {
            Some((thread, _)) => Effect::Reply {
                thread: *thread,
                body,
                key,
                options,
            },
            None => Effect::Send {
                recipient: self.recipient.trim().to_owned(),
                subject: self.subject.clone(),
                body,
                key,
                options,
            },
        };
        vec![status(sent_text("Sending…", options)), Out::Run(effect)]
    }

    /// Text editing: the body editor's own keys, or typing in a one-line field.
    /// Pasted `text` at the cursor: whole in the body (its line breaks as the terminal sent
    /// them, `\r` or `\r\n`, read as new lines), on one line in the other fields.
    pub fn paste(&mut self, text: &str) {
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        self.dirty = true;
        self.confirm_discard = false;
        self.errors.remove(self.field.api());
        match self.field {
            Field::Body => {
                self.body.insert_str(text);
            }
            Field::Recipient | Field::Subject => {
                let line = one_line(&text);
                if self.field == Field::Recipient {
                    self.recipient.push_str(line.trim());
                } else {
                    self.subject.push_str(&line);
                }
            }
            Field::Expiry => self
                .expiry
                .extend(text.chars().filter(char::is_ascii_alphanumeric)),
        }
    }

    fn type_key(&mut self, key: KeyEvent) {
        let field = self.field;
        self.dirty = true;
        self.errors.remove(field.api());
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match field {
            Field::Body => {
                self.body.input(key);
            }
            Field::Expiry => match key.code {
                KeyCode::Char(c) if !ctrl && c.is_ascii_alphanumeric() => self.expiry.push(c),
                KeyCode::Backspace => {
                    self.expiry.pop();
                }
                KeyCode::Enter => self.field = Field::Body,
                _ => {}
            },
            Field::Recipient | Field::Subject => {
                let text = if field == Field::Recipient {
                    &mut self.recipient
                } else {
                    &mut self.subject
                };
                match key.code {
                    KeyCode::Char(c) if !ctrl => text.push(c),
                    KeyCode::Backspace => {
                        text.pop();
                    }
                    KeyCode::Enter => {
                        self.field = if field == Field::Recipient {
                            Field::Subject
                        } else {
                            Field::Body
                        };
                    }
                    _ => {}
                }
            }
        }
    }

    /// The answer to this draft's send.
    pub fn sent(&mut self, result: Result<Message, ApiError>, keymap: &Keymap) -> Vec<Out> {
        self.sending = false;
        match result {
            Ok(_) => vec![
                Out::Close,
                status(sent_text("Sent", self.options().unwrap_or_default())),
                Out::Run(Effect::DeleteDraft(self.key.clone())),
                Out::Refresh,
            ],
            Err(ApiError::Server {
                body,
                status: code,
                retry_after,
            }) => {
                if let Some(fields) = body.error.fields {
                    self.errors = fields.into_iter().collect();
                }
                // A minute's rate is a short wait; a day's volume (decision 72) is the server's
                // to explain.
                vec![status(match (code, retry_after) {
                    (429, Some(wait)) if wait <= 60 => {
                        format!("Sending too fast: try again in {wait}s")
                    }
                    _ => format!("Not sent: {}", body.error.message),
                })]
            }
            // Kept on disk and sent when the server answers; its key prevents a double send.
            Err(ApiError::Offline(_)) => vec![
                Out::Queue(self.outgoing()),
                Out::Run(Effect::DeleteDraft(self.key.clone())),
                Out::Close,
                status(sent_text(
                    "Offline: queued, it will be sent when the server answers",
                    self.options().unwrap_or_default(),
                )),
            ],
            Err(e) => {
                let send = keymap.key(Mode::Compose, Action::Send);
                vec![status(format!("Not sent ({e}); press {send} to try again"))]
            }
        }
    }

    /// Directory matches for the prefix typed in the recipient field.
    pub fn completions(&mut self, prefix: &str, result: Result<Vec<String>, ApiError>) -> Vec<Out> {
        if self.recipient.trim() != prefix {
            return vec![];
        }
        match result {
            Ok(names) if names.is_empty() => {
                self.suggestions.clear();
                self.errors.insert(
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
                    self.recipient = common;
                }
                self.suggestions = names;
                // A full, known username: on to the subject.
                if exact {
                    self.field = Field::Subject;
                }
            }
            Err(e) => return vec![status(format!("Error: {e}"))],
        }
        vec![]
    }

    /// The external editor closed with this text.
    pub fn edited(&mut self, text: &str) -> Vec<Out> {
        let text = text.strip_suffix('\n').unwrap_or(text);
        self.body = TextArea::from(text.lines().map(str::to_owned).collect::<Vec<_>>());
        self.field = Field::Body;
        let mut outs = vec![status("Back from the editor")];
        outs.extend(self.save().map(Out::Run));
        outs
    }

    /// Draws the compose window over the mailbox.
    pub fn render(&self, frame: &mut Frame, keymap: &Keymap, theme: &Theme) {
        let area = centered(
            frame.area(),
            frame.area().width.saturating_sub(6),
            frame.area().height.saturating_sub(4),
        );
        frame.render_widget(Clear, area);
        let title = if self.reply_to.is_some() {
            "Reply"
        } else {
            "New message"
        };
        let title = match self.options() {
            Ok(options) if !options.is_plain() => format!("{title} · {}", options.summary()),
            _ => title.to_owned(),
        };
        let outer = theme.block(title, true);
        let inner = outer.inner(area);
        frame.render_widget(outer, area);
        let mut header: Vec<Line> = Vec::new();
        match &self.reply_to {
            Some((_, subject)) => {
                header.push(field_line(
                    "Subject",
                    subject,
                    false,
                    None,
                    inner.width,
                    theme,
                ));
            }
            None => {
                header.push(field_line(
                    "To",
                    &self.recipient,
                    self.field == Field::Recipient,
                    None,
                    inner.width,
                    theme,
                ));
                header.extend(self.error_line("recipient", theme));
                if self.field == Field::Recipient && self.suggestions.len() > 1 {
                    header.push(Line::from(Span::styled(
                        format!("           {}", self.suggestions.join("  ")),
                        theme.dim,
                    )));
                }
                let count = format!("{}/140", self.subject.chars().count());
                header.push(field_line(
                    "Subject",
                    &self.subject,
                    self.field == Field::Subject,
                    Some(count),
                    inner.width,
                    theme,
                ));
                header.extend(self.error_line("subject", theme));
            }
        }
        header.extend(self.option_lines(keymap, theme));
        let body_count = format!("{}/64000", self.body_text().chars().count());
        header.push(field_line(
            "Body",
            "",
            self.field == Field::Body,
            Some(body_count),
            inner.width,
            theme,
        ));
        header.extend(self.error_line("body", theme));
        let [head, body, foot] = Layout::vertical([
            Constraint::Length(header.len() as u16),
            Constraint::Min(3),
            Constraint::Length(1),
        ])
        .areas(inner);
        frame.render_widget(Paragraph::new(header), head);
        frame.render_widget(&self.body, body);
        frame.render_widget(
            Paragraph::new(Span::styled(footer(keymap), theme.hint)),
            foot,
        );
    }

    /// The expiry and read-once options, with their keys, and while the expiry is being set
    /// what it takes.
    fn option_lines(&self, keymap: &Keymap, theme: &Theme) -> Vec<Line<'static>> {
        let key = |action| keymap.key(Mode::Compose, action);
        let dim = theme.dim;
        let focused = self.field == Field::Expiry;
        let expiry = if self.expiry.is_empty() && !focused {
            "never"
        } else {
            &self.expiry
        };
        let mut first = field_line("Expires", expiry, focused, None, u16::MAX, theme);
        first
            .spans
            .push(Span::styled(format!(" ({})", key(Action::Expiry)), dim));
        let once = if self.read_once {
            Span::styled("yes", theme.warning)
        } else {
            Span::raw("no")
        };
        first.spans.extend([
            Span::raw("   Read once: "),
            once,
            Span::styled(format!(" ({})", key(Action::ReadOnce)), dim),
        ]);
        let mut lines = vec![first];
        if focused {
            let presets = ephemeral::PRESETS.join(", ");
            lines.push(Line::from(Span::styled(
                format!(
                    "           {}: {presets}, never; or type 90m, 2h, 3d",
                    key(Action::Expiry)
                ),
                dim,
            )));
        }
        lines.extend(self.error_line(Field::Expiry.api(), theme));
        lines
    }

    fn error_line(&self, field: &str, theme: &Theme) -> Option<Line<'static>> {
        self.errors.get(field).map(|e| {
            Line::from(Span::styled(
                format!("           ⚠ {}", text::shown_line(e)),
                theme.error,
            ))
        })
    }
}

/// A status text with the options it was sent with, if any: "Sent · read once".
fn sent_text(text: &str, options: SendOptions) -> String {
    if options.is_plain() {
        text.to_owned()
    } else {
        format!("{text} · {}", options.summary())
    }
}

/// The composer's key hint, from the keys in force.
pub fn footer(keymap: &Keymap) -> String {
    let key = |action| keymap.key(Mode::Compose, action);
    format!(
        "{} send · {} $EDITOR · {} next field · {} discard",
        key(Action::Send),
        key(Action::Editor),
        key(Action::NextField),
        key(Action::Discard),
    )
}

fn field_line(
    label: &str,
    value: &str,
    focused: bool,
    counter: Option<String>,
    width: u16,
    theme: &Theme,
) -> Line<'static> {
    let style = if focused {
        theme.prompt
    } else {
        Style::default()
    };
    // The label, the cursor and the counter always show: a value longer than the rest of the
    // line shows its end while it is typed into (where the cursor is), else its start, cut
    // with `…` (the cursor and the 140-character counter went past the window's edge).
    let counter_width = counter.as_ref().map_or(0, |c| c.width() + 2);
    let room = usize::from(width).saturating_sub(11 + 1 + counter_width);
    let mut spans = vec![
        Span::styled(format!("{label:>9}: "), style),
        Span::raw(crate::ui::fitted(&text::shown_line(value), room, focused)),
    ];
    if focused {
        spans.push(Span::styled("▏", theme.accent));
    }
    if let Some(counter) = counter {
        spans.push(Span::styled(format!("  {counter}"), theme.dim));
    }
    Line::from(spans)
}
