//! The settings and account screen: how email arrives (each message, a daily digest at an hour
//! in a time zone, or none), whether it is paused or stopped and why, the live sessions with
//! their revocation, the password change, moving to another address, and revoking the
//! reply-by-email addresses. It owns
//! the form being edited; the account itself (`Me`) is the root's and is lent for drawing.

use super::{Confirm, Effect, Out};
use crate::api::ApiError;
use crate::keys::{Action, Keymap, Mode};
use crate::theme::Theme;
use crate::ui::{ago, centered};
use chrono::{DateTime, Utc};
use convos_core::SessionId;
use convos_core::api::{
    ChangeEmailRequest, ChangePasswordRequest, EmailMode, EmailStopped, Me, SessionInfo,
};
use convos_core::text;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Padding, Paragraph};
use std::collections::BTreeMap;

use super::login::Secret;

/// What the settings screen asks the runtime to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccountCall {
    /// `PATCH /api/v1/me` with these email settings.
    SaveEmail {
        /// Each, daily or off.
        mode: EmailMode,
        /// The digest's local hour.
        digest_hour: i16,
        /// The digest's time zone.
        time_zone: String,
    },
    /// `GET /api/v1/sessions`.
    LoadSessions,
    /// `DELETE /api/v1/sessions/{id}`.
    RevokeSession(SessionId),
    /// `DELETE /api/v1/sessions`: every session but this one.
    RevokeOtherSessions,
    /// `PUT /api/v1/me/password`.
    ChangePassword {
        /// The password in use.
        current: Secret,
        /// The new one.
        new: Secret,
    },
    /// `PUT /api/v1/me/email`.
    ChangeEmail {
        /// The address to move to.
        email: String,
        /// The account's password.
        password: Secret,
    },
    /// `DELETE /api/v1/me/reply-addresses`.
    RevokeReplyAddresses,
}

impl AccountCall {
    /// The body of a password change, as the wire contract spells it.
    pub fn password_request(&self) -> Option<ChangePasswordRequest> {
        match self {
            AccountCall::ChangePassword { current, new } => Some(ChangePasswordRequest {
                current: Some(current.expose().to_owned()),
                new: Some(new.expose().to_owned()),
            }),
            _ => None,
        }
    }

    /// The body of a change of address, as the wire contract spells it.
    pub fn email_request(&self) -> Option<ChangeEmailRequest> {
        match self {
            AccountCall::ChangeEmail { email, password } => Some(ChangeEmailRequest {
                email: Some(email.clone()),
                password: Some(password.expose().to_owned()),
            }),
            _ => None,
        }
    }
}

/// The server's answer to an [`AccountCall`].
#[derive(Debug)]
pub enum AccountAnswer {
    /// The settings as saved.
    Saved(Result<Me, ApiError>),
    /// The live sessions.
    Sessions(Result<Vec<SessionInfo>, ApiError>),
    /// One session ended.
    Revoked(Result<(), ApiError>),
    /// How many other sessions ended.
    RevokedOthers(Result<u64, ApiError>),
    /// The password changed (and the other sessions ended).
    PasswordChanged(Result<(), ApiError>),
    /// The account moved to this address, which waits to be confirmed.
    EmailChanged(Result<String, ApiError>),
    /// The reply addresses and email links were revoked.
    ReplyAddressesRevoked(Result<(), ApiError>),
}

impl AccountAnswer {
    /// The error, if the call failed.
    pub fn error(&self) -> Option<&ApiError> {
        match self {
            AccountAnswer::Saved(Err(e))
            | AccountAnswer::Sessions(Err(e))
            | AccountAnswer::Revoked(Err(e))
            | AccountAnswer::RevokedOthers(Err(e))
            | AccountAnswer::PasswordChanged(Err(e))
            | AccountAnswer::EmailChanged(Err(e))
            | AccountAnswer::ReplyAddressesRevoked(Err(e)) => Some(e),
            _ => None,
        }
    }
}

/// A row of the screen that takes keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Row {
    /// Each, daily or off.
    EmailMode,
    /// The digest's hour.
    DigestHour,
    /// The digest's time zone (typed).
    TimeZone,
    /// A session of the list, by its place.
    Session(usize),
    /// Log out every other session.
    OtherSessions,
    /// The password in use (typed, masked).
    CurrentPassword,
    /// The new password (typed, masked).
    NewPassword,
    /// The address to move to (typed).
    NewAddress,
    /// The password that moves it (typed, masked).
    AddressPassword,
    /// Revoke the reply-by-email addresses.
    ReplyAddresses,
}

/// The settings screen.
#[derive(Debug)]
pub struct Settings {
    /// The email mode chosen.
    pub mode: EmailMode,
    /// The digest hour chosen.
    pub digest_hour: i16,
    /// The time zone typed.
    pub time_zone: String,
    /// The email form was changed here and not saved yet.
    pub edited: bool,
    /// The live sessions (`None` until they arrive).
    pub sessions: Option<Vec<SessionInfo>>,
    /// The highlighted row, as a place in [`Settings::rows`].
    pub row: usize,
    current_password: Secret,
    new_password: Secret,
    new_address: String,
    address_password: Secret,
    /// Errors per field (API names), from local checks or the server.
    pub errors: BTreeMap<String, String>,
    /// What the last action did, or why not.
    pub notice: Option<String>,
    /// A question asked before revoking.
    pub confirm: Option<Confirm>,
}

impl Settings {
    /// The screen for the account as last loaded (if it is).
    pub fn new(me: Option<&Me>) -> Self {
        let mut settings = Self {
            mode: EmailMode::Each,
            digest_hour: 8,
            time_zone: "UTC".into(),
            edited: false,
            sessions: None,
            row: 0,
            current_password: Secret::default(),
            new_password: Secret::default(),
            new_address: String::new(),
            address_password: Secret::default(),
            errors: BTreeMap::new(),
            notice: None,
            confirm: None,
        };
        if let Some(me) = me {
            settings.me_loaded(me);
        }
        settings
    }

    /// What to fetch when the screen opens.
    pub fn load() -> Vec<Effect> {
        vec![Effect::LoadMe, Effect::Account(AccountCall::LoadSessions)]
    }

    /// The account arrived: the email form shows it, unless it is being edited.
    pub fn me_loaded(&mut self, me: &Me) {
        if !self.edited {
            self.mode = me.settings.email_mode;
            self.digest_hour = me.settings.digest_hour;
            self.time_zone = me.settings.time_zone.clone();
        }
    }

    /// The rows that take keys, top to bottom.
    pub fn rows(&self) -> Vec<Row> {
        let mut rows = vec![Row::EmailMode, Row::DigestHour, Row::TimeZone];
        let sessions = self.sessions.as_ref().map_or(0, Vec::len);
        rows.extend((0..sessions).map(Row::Session));
        rows.extend([
            Row::OtherSessions,
            Row::CurrentPassword,
            Row::NewPassword,
            Row::NewAddress,
            Row::AddressPassword,
            Row::ReplyAddresses,
        ]);
        rows
    }

    /// The highlighted row.
    pub fn selected(&self) -> Row {
        let rows = self.rows();
        rows[self.row.min(rows.len() - 1)]
    }

    /// A key press.
    pub fn key(&mut self, key: KeyEvent, keymap: &Keymap) -> Vec<Out> {
        if let Some(confirm) = &mut self.confirm {
            let outs = confirm.key(key, keymap);
            self.confirm = None;
            // The question's own Close is for the question; the rest goes to the root.
            return outs
                .into_iter()
                .filter(|out| !matches!(out, Out::Close))
                .collect();
        }
        let rows = self.rows().len();
        match keymap.action(Mode::Settings, key) {
            Some(Action::Back) => return vec![Out::Close],
            Some(Action::NextField) => self.row = (self.row + 1).min(rows - 1),
            Some(Action::PreviousField) => self.row = self.row.saturating_sub(1),
            Some(Action::NextValue) => self.change(true),
            Some(Action::PreviousValue) => self.change(false),
            Some(Action::Submit) => return self.submit(),
            Some(_) => {}
            None => self.type_key(key),
        }
        vec![]
    }

    fn change(&mut self, forward: bool) {
        match self.selected() {
            Row::EmailMode => {
                const MODES: [EmailMode; 3] = [EmailMode::Each, EmailMode::Daily, EmailMode::Off];
                let at = MODES.iter().position(|m| *m == self.mode).unwrap_or(0);
                let next = if forward {
                    at + 1
                } else {
                    at + MODES.len() - 1
                };
                self.mode = MODES[next % MODES.len()];
                self.errors.remove("email_mode");
            }
            Row::DigestHour => {
                let step = if forward { 1 } else { 23 };
                self.digest_hour = (self.digest_hour + step).rem_euclid(24);
                self.errors.remove("digest_hour");
            }
            _ => return,
        }
        self.edited = true;
    }

    fn type_key(&mut self, key: KeyEvent) {
        let text = match self.selected() {
            Row::TimeZone => {
                self.edited = true;
                self.errors.remove("time_zone");
                &mut self.time_zone
            }
            Row::CurrentPassword => {
                self.errors.remove("current");
                self.current_password.text_mut()
            }
            Row::NewPassword => {
                self.errors.remove("new");
                self.new_password.text_mut()
            }
            Row::NewAddress => {
                self.errors.remove("email");
                &mut self.new_address
            }
            Row::AddressPassword => {
                self.errors.remove("password");
                self.address_password.text_mut()
            }
            _ => return,
        };
        match key.code {
            KeyCode::Backspace => {
                text.pop();
            }
            KeyCode::Char(c)
                if !key
                    .modifiers
                    .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) =>
            {
                text.push(c);
            }
            _ => {}
        }
    }

    fn ask(&mut self, question: String, yes: AccountCall) {
        self.confirm = Some(Confirm {
            title: "Settings".into(),
            question,
            yes: vec![
                Out::Status("Working…".into()),
                Out::Run(Effect::Account(yes)),
            ],
            no: vec![Out::Status("Nothing changed".into())],
        });
    }

    fn submit(&mut self) -> Vec<Out> {
        match self.selected() {
            Row::EmailMode | Row::DigestHour | Row::TimeZone => {
                self.errors.remove("email_mode");
                self.errors.remove("digest_hour");
                self.errors.remove("time_zone");
                self.notice = Some("Saving…".into());
                vec![Out::Run(Effect::Account(AccountCall::SaveEmail {
                    mode: self.mode,
                    digest_hour: self.digest_hour,
                    time_zone: self.time_zone.trim().to_owned(),
                }))]
            }
            Row::Session(at) => {
                let Some(session) = self.sessions.as_ref().and_then(|s| s.get(at)) else {
                    return vec![];
                };
                if session.current {
                    self.notice =
                        Some("This is this client's own session; `convos logout` ends it.".into());
                    return vec![];
                }
                let question = format!("Log out {}?", client_name(session));
                let id = session.id;
                self.ask(question, AccountCall::RevokeSession(id));
                vec![]
            }
            Row::OtherSessions => {
                self.ask(
                    "Log out every other session?".into(),
                    AccountCall::RevokeOtherSessions,
                );
                vec![]
            }
            Row::CurrentPassword | Row::NewPassword => {
                let request = ChangePasswordRequest {
                    current: Some(self.current_password.expose().to_owned())
                        .filter(|p| !p.is_empty()),
                    new: Some(self.new_password.expose().to_owned()).filter(|p| !p.is_empty()),
                };
                self.errors.remove("current");
                self.errors.remove("new");
                // The wire contract's own checks, before the trip.
                if let Err(refused) = request.parse() {
                    for error in refused {
                        self.errors.insert(error.field.into(), error.reason);
                    }
                    return vec![];
                }
                self.notice = Some("Changing the password…".into());
                vec![Out::Run(Effect::Account(AccountCall::ChangePassword {
                    current: self.current_password.clone(),
                    new: self.new_password.clone(),
                }))]
            }
            Row::NewAddress | Row::AddressPassword => {
                let request = ChangeEmailRequest {
                    email: Some(self.new_address.trim().to_owned()).filter(|e| !e.is_empty()),
                    password: Some(self.address_password.expose().to_owned())
                        .filter(|p| !p.is_empty()),
                };
                self.errors.remove("email");
                self.errors.remove("password");
                if let Err(refused) = request.parse() {
                    for error in refused {
                        self.errors.insert(error.field.into(), error.reason);
                    }
                    return vec![];
                }
                self.notice = Some("Changing the address…".into());
                vec![Out::Run(Effect::Account(AccountCall::ChangeEmail {
                    email: self.new_address.trim().to_owned(),
                    password: self.address_password.clone(),
                }))]
            }
            Row::ReplyAddresses => {
                self.ask(
                    "Revoke the reply addresses and links of every email sent so far?".into(),
                    AccountCall::RevokeReplyAddresses,
                );
                vec![]
            }
        }
    }

    /// The server's answer to one of this screen's calls.
    pub fn answer(&mut self, answer: AccountAnswer) -> Vec<Out> {
        let reload = Out::Run(Effect::Account(AccountCall::LoadSessions));
        match answer {
            AccountAnswer::Saved(Ok(me)) => {
                self.edited = false;
                self.me_loaded(&me);
                self.notice = Some(format!("Saved: {}.", describe_mode(&me)));
                vec![Out::Status("Settings saved".into())]
            }
            AccountAnswer::Sessions(Ok(sessions)) => {
                self.sessions = Some(sessions);
                self.row = self.row.min(self.rows().len() - 1);
                vec![]
            }
            AccountAnswer::Revoked(Ok(())) => {
                self.notice = Some("That session is logged out.".into());
                vec![reload]
            }
            AccountAnswer::RevokedOthers(Ok(count)) => {
                self.notice = Some(match count {
                    1 => "1 other session logged out.".into(),
                    n => format!("{n} other sessions logged out."),
                });
                vec![reload]
            }
            AccountAnswer::PasswordChanged(Ok(())) => {
                self.current_password = Secret::default();
                self.new_password = Secret::default();
                self.notice = Some("Password changed; every other session was logged out.".into());
                vec![reload]
            }
            AccountAnswer::EmailChanged(Ok(email)) => {
                self.new_address.clear();
                self.address_password = Secret::default();
                self.notice = Some(format!(
                    "Now {}: follow the link emailed there to confirm it. Nothing else is \
                     emailed until then.",
                    text::shown_line(&email)
                ));
                vec![Out::Run(Effect::LoadMe)]
            }
            AccountAnswer::ReplyAddressesRevoked(Ok(())) => {
                self.notice = Some(
                    "Old emails' reply addresses and links no longer work; new emails get new ones."
                        .into(),
                );
                vec![]
            }
            AccountAnswer::Saved(Err(e))
            | AccountAnswer::Sessions(Err(e))
            | AccountAnswer::Revoked(Err(e))
            | AccountAnswer::RevokedOthers(Err(e))
            | AccountAnswer::PasswordChanged(Err(e))
            | AccountAnswer::EmailChanged(Err(e))
            | AccountAnswer::ReplyAddressesRevoked(Err(e)) => {
                self.failed(e);
                vec![]
            }
        }
    }

    fn failed(&mut self, e: ApiError) {
        self.notice = Some(match e {
            ApiError::Server {
                status: 429,
                retry_after,
                ..
            } => match retry_after {
                Some(wait) => format!("Too many attempts: try again in {wait}s."),
                None => "Too many attempts: try again later.".into(),
            },
            ApiError::Server { body, .. } => match body.error.fields {
                Some(fields) if !fields.is_empty() => {
                    self.errors.extend(fields);
                    "Not saved: see the fields marked.".into()
                }
                _ => format!("Refused: {}", body.error.message),
            },
            e => format!("Not done: {e}"),
        });
    }

    /// Draws the screen over the mailbox; `me` is the account as the root last loaded it.
    pub fn render(
        &self,
        frame: &mut Frame,
        me: Option<&Me>,
        keymap: &Keymap,
        now: DateTime<Utc>,
        theme: &Theme,
    ) {
        let area = centered(
            frame.area(),
            frame.area().width.saturating_sub(4),
            frame.area().height.saturating_sub(2),
        );
        frame.render_widget(Clear, area);
        let outer = theme
            .block("Settings".into(), true)
            .padding(Padding::horizontal(1));
        let inner = outer.inner(area);
        frame.render_widget(outer, area);
        let selected = self.selected();
        let mut lines: Vec<Line<'static>> = Vec::new();
        // The line of the highlighted row, so the view can scroll to it.
        let mut selected_line = 0;
        let mut row =
            |lines: &mut Vec<Line<'static>>, which: Row, label: &str, value: Vec<Span<'static>>| {
                let focused = which == selected;
                if focused {
                    selected_line = lines.len();
                }
                let style = if focused {
                    theme.prompt
                } else {
                    Style::default()
                };
                let marker = if focused { "›" } else { " " };
                let mut spans = vec![Span::styled(format!("{marker}{label:>14}: "), style)];
                spans.extend(value);
                lines.push(Line::from(spans));
            };
        let bold = theme.strong;
        let dim = theme.dim;
        let warn = theme.warning;

        match me {
            Some(me) => {
                let verified = if me.user.email_verified {
                    "verified"
                } else {
                    "not verified yet: nothing is sent until it is"
                };
                lines.push(Line::from(vec![
                    Span::styled("Email", bold),
                    Span::styled(
                        format!(" to {} ({verified})", text::shown_line(&me.user.email)),
                        dim,
                    ),
                ]));
            }
            None => lines.push(Line::from(Span::styled("Email", bold))),
        }
        let mode = match self.mode {
            EmailMode::Each => "each  (one email per new message)",
            EmailMode::Daily => "daily (one digest a day)",
            EmailMode::Off => "off   (no email)",
        };
        let mut value = vec![Span::raw(format!("‹ {mode} ›"))];
        if self.edited {
            value.push(Span::styled("  not saved", warn));
        }
        row(&mut lines, Row::EmailMode, "Email mode", value);
        lines.extend(self.error_line("email_mode", theme));
        row(
            &mut lines,
            Row::DigestHour,
            "Digest hour",
            vec![Span::raw(format!("‹ {:02}:00 ›", self.digest_hour))],
        );
        lines.extend(self.error_line("digest_hour", theme));
        let mut tz = vec![Span::raw(text::shown_line(&self.time_zone))];
        if selected == Row::TimeZone {
            tz.push(Span::styled("▏", theme.accent));
        }
        row(&mut lines, Row::TimeZone, "Time zone", tz);
        lines.extend(self.error_line("time_zone", theme));
        if let Some(me) = me {
            if let Some(until) = me.settings.email_paused_until
                && until > now
            {
                lines.push(Line::from(Span::styled(
                    format!(
                        "  Email is paused until {} (from the link in an email).",
                        until.format("%Y-%m-%d %H:%M UTC")
                    ),
                    warn,
                )));
            }
            match me.user.email_stopped {
                Some(EmailStopped::Bounced) => lines.push(Line::from(Span::styled(
                    "  Email stopped: your address bounced; verify it again to resume.",
                    warn,
                ))),
                Some(EmailStopped::Complaint) => lines.push(Line::from(Span::styled(
                    "  Email stopped: a notification was reported as spam.",
                    warn,
                ))),
                None => {}
            }
        }

        lines.push(Line::from(""));
        lines.push(Line::from(Span::styled("Sessions", bold)));
        match &self.sessions {
            None => lines.push(Line::from(Span::styled("  Loading…", dim))),
            Some(sessions) => {
                for (at, session) in sessions.iter().enumerate() {
                    let used = match session.last_used_at {
                        Some(used) => format!("used {}", ago(used, now)),
                        None => "never used".into(),
                    };
                    let mut value = vec![Span::raw(format!(
                        "{used:<12} logged in {}",
                        session.created_at.format("%b %d")
                    ))];
                    if session.current {
                        value.push(Span::styled("  (this client)", theme.accent));
                    }
                    row(&mut lines, Row::Session(at), &client_name(session), value);
                }
            }
        }
        row(
            &mut lines,
            Row::OtherSessions,
            "Log out",
            vec![Span::raw("every other session")],
        );

        lines.push(Line::from(""));
        lines.push(Line::from(vec![
            Span::styled("Password", bold),
            Span::styled(" (changing it logs out every other session)", dim),
        ]));
        for (which, label, secret, field) in [
            (
                Row::CurrentPassword,
                "Current",
                &self.current_password,
                "current",
            ),
            (Row::NewPassword, "New", &self.new_password, "new"),
        ] {
            let mut value = vec![Span::raw("•".repeat(secret.expose().chars().count()))];
            if which == selected {
                value.push(Span::styled("▏", theme.accent));
            }
            row(&mut lines, which, label, value);
            lines.extend(self.error_line(field, theme));
        }

        lines.push(Line::from(""));
        lines.push(Line::from(vec![
            Span::styled("Address", bold),
            Span::styled(" (the new one is used once confirmed from its inbox)", dim),
        ]));
        let mut address = vec![Span::raw(text::shown_line(&self.new_address))];
        if selected == Row::NewAddress {
            address.push(Span::styled("▏", theme.accent));
        }
        row(&mut lines, Row::NewAddress, "New address", address);
        lines.extend(self.error_line("email", theme));
        let mut password = vec![Span::raw(
            "•".repeat(self.address_password.expose().chars().count()),
        )];
        if selected == Row::AddressPassword {
            password.push(Span::styled("▏", theme.accent));
        }
        row(&mut lines, Row::AddressPassword, "Password", password);
        lines.extend(self.error_line("password", theme));

        lines.push(Line::from(""));
        lines.push(Line::from(Span::styled("Acting from email", bold)));
        row(
            &mut lines,
            Row::ReplyAddresses,
            "Revoke",
            vec![Span::raw("reply addresses and links in emails sent so far")],
        );

        let [body, notice, hints] = Layout::vertical([
            Constraint::Min(1),
            Constraint::Length(1),
            Constraint::Length(1),
        ])
        .areas(inner);
        let visible = usize::from(body.height).max(1);
        let scroll = (selected_line + 2).saturating_sub(visible);
        frame.render_widget(
            Paragraph::new(lines).scroll((u16::try_from(scroll).unwrap_or(0), 0)),
            body,
        );
        if let Some(text) = &self.notice {
            frame.render_widget(
                Paragraph::new(Span::styled(text::shown_line(text), warn)),
                notice,
            );
        }
        let key = |action| keymap.key(Mode::Settings, action);
        frame.render_widget(
            Paragraph::new(Span::styled(
                format!(
                    "{}/{} move · {}/{} change · {} save, log out, revoke · {} close",
                    key(Action::NextField),
                    key(Action::PreviousField),
                    key(Action::PreviousValue),
                    key(Action::NextValue),
                    key(Action::Submit),
                    key(Action::Back),
                ),
                dim,
            )),
            hints,
        );
        if let Some(confirm) = &self.confirm {
            confirm.render(frame, keymap, theme);
        }
    }

    fn error_line(&self, field: &str, theme: &Theme) -> Option<Line<'static>> {
        self.errors.get(field).map(|e| {
            Line::from(Span::styled(
                format!("                 ⚠ {}", text::shown_line(e)),
                theme.error,
            ))
        })
    }
}

/// A session's client as the list names it: its `User-Agent`, cut short.
fn client_name(session: &SessionInfo) -> String {
    let name = session
        .client
        .as_deref()
        .map(text::shown_line)
        .filter(|c| !c.trim().is_empty())
        .unwrap_or_else(|| "unknown client".into());
    if name.chars().count() <= 14 {
        return name;
    }
    let cut: String = name.chars().take(13).collect();
    format!("{cut}…")
}

/// How email reaches the user, in a few words.
fn describe_mode(me: &Me) -> String {
    let s = &me.settings;
    match s.email_mode {
        EmailMode::Each => "one email per new message".into(),
        EmailMode::Daily => format!(
            "a daily digest at {:02}:00 {}",
            s.digest_hour,
            text::shown_line(&s.time_zone)
        ),
        EmailMode::Off => "no email".into(),
    }
}

#[cfg(test)]
mod tests;
