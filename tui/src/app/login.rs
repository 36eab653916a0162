//! The login screen: shown instead of the mailbox while the client has no session (no token at
//! start, or the server said the token has ended). It logs in with a server, a username and a
//! password, or creates an account first and then logs in. The password lives only in this
//! form, in memory, and goes once to the server; only the session token it buys is stored, by
//! the runtime, as `convos login` stores it.

use super::{Effect, Out};
use crate::api::ApiError;
use crate::keys::{Action, Keymap, Mode};
use crate::theme::Theme;
use crate::ui::centered;
use convos_core::api::{CreateUserRequest, Session, User};
use convos_core::text;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Frame;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Padding, Paragraph};
use std::collections::BTreeMap;

/// Text that must not be printed or logged (a password, a session token): its `Debug` shows
/// only that there is something.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The secret itself, for the one request that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The text, for a form field that types into it.
    pub(crate) fn text_mut(&mut self) -> &mut String {
        &mut self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// What the login screen asks the runtime to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginCall {
    /// `POST /api/v1/sessions` on `server`.
    LogIn {
        /// The server's base URL.
        server: String,
        /// The username.
        username: String,
        /// The password.
        password: Secret,
    },
    /// `POST /api/v1/users` on `server` (a [`CreateUserRequest`] at the edge).
    SignUp {
        /// The server's base URL.
        server: String,
        /// The username.
        username: String,
        /// The email address.
        email: String,
        /// The name shown to others (`None`: the username).
        display_name: Option<String>,
        /// The password.
        password: Secret,
    },
}

impl LoginCall {
    /// The request body of a sign-up, as the wire contract spells it.
    pub fn sign_up_request(&self) -> Option<CreateUserRequest> {
        match self {
            LoginCall::SignUp {
                username,
                email,
                display_name,
                password,
                ..
            } => Some(CreateUserRequest {
                username: Some(username.clone()),
                email: Some(email.clone()),
                password: Some(password.expose().to_owned()),
                display_name: display_name.clone(),
            }),
            LoginCall::LogIn { .. } => None,
        }
    }
}

/// The server's answer to a [`LoginCall`].
#[derive(Debug)]
pub enum LoginAnswer {
    /// The login's answer, with the server it was sent to.
    LoggedIn {
        /// The server's base URL.
        server: String,
        /// The session (its token is shown this once).
        result: Result<Session, ApiError>,
    },
    /// The sign-up's answer.
    SignedUp(Result<User, ApiError>),
}

/// A field of the form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginField {
    /// The server's base URL.
    Server,
    /// The username.
    Username,
    /// The email address (sign-up only).
    Email,
    /// The name shown to others (sign-up only, optional).
    DisplayName,
    /// The password (masked).
    Password,
}

impl LoginField {
    /// The API's name for it, as in error bodies (`server` is the client's own).
    pub fn api(self) -> &'static str {
        match self {
            LoginField::Server => "server",
            LoginField::Username => "username",
            LoginField::Email => "email",
            LoginField::DisplayName => "display_name",
            LoginField::Password => "password",
        }
    }

    fn label(self) -> &'static str {
        match self {
            LoginField::Server => "Server",
            LoginField::Username => "Username",
            LoginField::Email => "Email",
            LoginField::DisplayName => "Display name",
            LoginField::Password => "Password",
        }
    }
}

/// The login (or sign-up) form.
#[derive(Debug)]
pub struct Login {
    /// The server's base URL.
    pub server: String,
    /// The username.
    pub username: String,
    /// The email address (sign-up).
    pub email: String,
    /// The display name (sign-up, optional).
    pub display_name: String,
    /// The password, never stored.
    password: Secret,
    /// Creating an account rather than logging in.
    pub signing_up: bool,
    /// The field with the cursor.
    pub field: LoginField,
    /// Errors per field (API names), from local checks or the server.
    pub errors: BTreeMap<String, String>,
    /// A line about the whole form: why it is shown, or what went wrong.
    pub notice: Option<String>,
    /// A request is on its way: keys other than quit wait.
    pub busy: bool,
}

impl Login {
    /// An empty form for `server`, with a notice (why the screen is shown) if there is one.
    pub fn new(server: &str, notice: Option<String>) -> Self {
        Self {
            server: server.to_owned(),
            username: String::new(),
            email: String::new(),
            display_name: String::new(),
            password: Secret::default(),
            signing_up: false,
            field: LoginField::Username,
            errors: BTreeMap::new(),
            notice,
            busy: false,
        }
    }

    /// The fields of the form in force, in order.
    pub fn fields(&self) -> &'static [LoginField] {
        if self.signing_up {
            &[
                LoginField::Server,
                LoginField::Username,
                LoginField::Email,
                LoginField::DisplayName,
                LoginField::Password,
            ]
        } else {
            &[
                LoginField::Server,
                LoginField::Username,
                LoginField::Password,
            ]
        }
    }

    /// How many characters the password has (the screen shows that many dots).
    pub fn password_len(&self) -> usize {
        self.password.0.chars().count()
    }

    fn text(&mut self, field: LoginField) -> &mut String {
        match field {
            LoginField::Server => &mut self.server,
            LoginField::Username => &mut self.username,
            LoginField::Email => &mut self.email,
            LoginField::DisplayName => &mut self.display_name,
            LoginField::Password => &mut self.password.0,
        }
    }

    fn step(&mut self, forward: bool) {
        let fields = self.fields();
        let at = fields.iter().position(|f| *f == self.field).unwrap_or(0);
        let next = if forward {
            (at + 1) % fields.len()
        } else {
            (at + fields.len() - 1) % fields.len()
        };
        self.field = fields[next];
    }

    /// A key press.
    pub fn key(&mut self, key: KeyEvent, keymap: &Keymap) -> Vec<Out> {
        let action = keymap.action(Mode::Login, key);
        if action == Some(Action::Quit) {
            return vec![Out::Quit];
        }
        if self.busy {
            return vec![];
        }
        match action {
            Some(Action::Submit) => return self.submit(),
            Some(Action::NextField) => self.step(true),
            Some(Action::PreviousField) => self.step(false),
            Some(Action::SwitchForm) => {
                self.signing_up = !self.signing_up;
                self.errors.clear();
                self.notice = None;
                if !self.fields().contains(&self.field) {
                    self.field = LoginField::Username;
                }
            }
            Some(_) => {}
            None => match key.code {
                KeyCode::Backspace => {
                    self.text(self.field).pop();
                    self.errors.remove(self.field.api());
                }
                KeyCode::Char(c)
                    if !key
                        .modifiers
                        .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) =>
                {
                    self.text(self.field).push(c);
                    self.errors.remove(self.field.api());
                }
                _ => {}
            },
        }
        vec![]
    }

    /// Checks the form as the server would, and sends it if nothing is refused.
    fn submit(&mut self) -> Vec<Out> {
        self.errors.clear();
        self.notice = None;
        let server = self.server.trim().trim_end_matches('/').to_owned();
        if !(server.starts_with("http://") || server.starts_with("https://")) {
            self.errors.insert(
                "server".into(),
                "must start with http:// or https://".into(),
            );
        }
        let username = self.username.trim().to_owned();
        let call = if self.signing_up {
            let display_name = self.display_name.trim();
            let call = LoginCall::SignUp {
                server,
                username,
                email: self.email.trim().to_owned(),
                display_name: (!display_name.is_empty()).then(|| display_name.to_owned()),
                password: self.password.clone(),
            };
            // The wire contract's own checks: the same rules, the same words, before the trip.
            let request = call.sign_up_request().unwrap_or_default();
            if let Err(refused) = request.parse() {
                for error in refused {
                    self.errors.insert(error.field.into(), error.reason);
                }
            }
            call
        } else {
            if username.is_empty() {
                self.errors.insert("username".into(), "is required".into());
            }
            if self.password.0.is_empty() {
                self.errors.insert("password".into(), "is required".into());
            }
            LoginCall::LogIn {
                server,
                username,
                password: self.password.clone(),
            }
        };
        if !self.errors.is_empty() {
            self.focus_first_error();
            return vec![];
        }
        self.busy = true;
        self.notice = Some(if self.signing_up {
            "Creating your account…".into()
        } else {
            "Logging in…".into()
        });
        vec![Out::Run(Effect::Login(call))]
    }

    fn focus_first_error(&mut self) {
        if let Some(field) = self
            .fields()
            .iter()
            .find(|f| self.errors.contains_key(f.api()))
        {
            self.field = *field;
        }
    }

    /// The server's answer. A session closes the screen and hands its token to the root; an
    /// account is logged into at once.
    pub fn answer(&mut self, answer: LoginAnswer) -> Vec<Out> {
        self.busy = false;
        match answer {
            LoginAnswer::LoggedIn {
                server,
                result: Ok(session),
            } => {
                // The password has done its work: it is forgotten with the form.
                self.password = Secret::default();
                vec![
                    Out::Run(Effect::UseSession {
                        server,
                        token: Secret::new(session.token),
                    }),
                    Out::Status(format!(
                        "Logged in as {}",
                        text::shown_line(&session.user.username)
                    )),
                    Out::Close,
                ]
            }
            LoginAnswer::SignedUp(Ok(user)) => {
                self.signing_up = false;
                self.username = user.username.clone();
                self.busy = true;
                self.notice = Some(format!(
                    "Account {} created; logging in…",
                    text::shown_line(&user.username)
                ));
                vec![Out::Run(Effect::Login(LoginCall::LogIn {
                    server: self.server.trim().trim_end_matches('/').to_owned(),
                    username: user.username,
                    password: self.password.clone(),
                }))]
            }
            LoginAnswer::LoggedIn { result: Err(e), .. } | LoginAnswer::SignedUp(Err(e)) => {
                self.failed(e);
                vec![]
            }
        }
    }

    fn failed(&mut self, e: ApiError) {
        self.notice = None;
        match e {
            ApiError::Server { status: 401, .. } => {
                self.notice = Some("Wrong username or password.".into());
                self.password = Secret::default();
                self.field = LoginField::Password;
            }
            ApiError::Server {
                status: 429,
                retry_after,
                ..
            } => {
                self.notice = Some(match retry_after {
                    Some(wait) => format!("Too many attempts: try again in {wait}s."),
                    None => "Too many attempts: try again later.".into(),
                });
            }
            ApiError::Server { body, .. } => {
                let message = body.error.message;
                match body.error.fields {
                    Some(fields) if !fields.is_empty() => {
                        self.errors = fields.into_iter().collect();
                        self.focus_first_error();
                    }
                    // A 409 names its field in its message ("username is already taken").
                    _ => match ["username", "email"]
                        .into_iter()
                        .find(|f| message.starts_with(f))
                    {
                        Some(field) => {
                            let reason = message[field.len()..].trim().to_owned();
                            self.errors.insert(field.into(), reason);
                            self.focus_first_error();
                        }
                        None => self.notice = Some(format!("Refused: {message}")),
                    },
                }
            }
            ApiError::Offline(_) => {
                self.errors.insert(
                    "server".into(),
                    "cannot be reached; check the address".into(),
                );
                self.field = LoginField::Server;
            }
            ApiError::Protocol(_) => {
                self.errors.insert(
                    "server".into(),
                    "did not answer like a Convos server".into(),
                );
                self.field = LoginField::Server;
            }
        }
    }

    /// Draws the form over the whole screen.
    pub fn render(&self, frame: &mut Frame, keymap: &Keymap, theme: &Theme) {
        frame.render_widget(Clear, frame.area());
        let key = |action| keymap.key(Mode::Login, action);
        let (title, intro, submit, switch) = if self.signing_up {
            (
                "Convos: create an account",
                "A new account on this server; you are logged in once it exists.",
                "create",
                "log in instead",
            )
        } else {
            (
                "Convos: log in",
                "Log in to your Convos server. The password is never stored.",
                "log in",
                "create an account",
            )
        };
        let dim = theme.dim;
        let mut lines = vec![Line::from(Span::styled(intro, dim)), Line::from("")];
        for field in self.fields() {
            let focused = *field == self.field;
            let style = if focused {
                theme.prompt
            } else {
                Style::default()
            };
            let value = match field {
                LoginField::Password => "•".repeat(self.password_len()),
                LoginField::Server => text::shown_line(&self.server),
                LoginField::Username => text::shown_line(&self.username),
                LoginField::Email => text::shown_line(&self.email),
                LoginField::DisplayName => text::shown_line(&self.display_name),
            };
            let mut spans = vec![
                Span::styled(format!("{:>12}: ", field.label()), style),
                Span::raw(value),
            ];
            if focused {
                spans.push(Span::styled("▏", theme.accent));
            }
            if *field == LoginField::DisplayName && self.display_name.is_empty() && !focused {
                spans.push(Span::styled("(optional)", dim));
            }
            lines.push(Line::from(spans));
            if let Some(error) = self.errors.get(field.api()) {
                lines.push(Line::from(Span::styled(
                    format!("              ⚠ {}", text::shown_line(error)),
                    theme.error,
                )));
            }
        }
        lines.push(Line::from(""));
        if let Some(notice) = &self.notice {
            let style = if self.busy {
                theme.warning
            } else {
                theme.error
            };
            lines.push(Line::from(Span::styled(text::shown_line(notice), style)));
        } else {
            lines.push(Line::from(""));
        }
        lines.push(Line::from(""));
        lines.push(Line::from(Span::styled(
            format!(
                "{} {submit} · {} next field · {} {switch} · {} quit",
                key(Action::Submit),
                key(Action::NextField),
                key(Action::SwitchForm),
                key(Action::Quit),
            ),
            dim,
        )));
        let height = u16::try_from(lines.len() + 2).unwrap_or(u16::MAX);
        let area = centered(frame.area(), 78, height);
        frame.render_widget(
            Paragraph::new(lines).block(
                theme
                    .block(title.into(), true)
                    .padding(Padding::horizontal(1)),
            ),
            area,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use convos_core::ErrorBody;
    use convos_core::api::User;

    fn press(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn type_text(login: &mut Login, keymap: &Keymap, text: &str) {
        for c in text.chars() {
            login.key(press(KeyCode::Char(c)), keymap);
        }
    }

    fn user(name: &str) -> User {
        User {
            id: convos_core::UserId::generate(),
            username: name.into(),
            email: format!("{name}@example.com"),
            display_name: name.into(),
            is_admin: false,
            created_at: chrono::Utc::now(),
            email_verified: false,
            email_stopped: None,
        }
    }

    fn refused(status: u16, body: ErrorBody) -> ApiError {
        ApiError::Server {
            status,
            body,
            retry_after: None,
        }
    }

    /// Bob's form, filled in, on the default server.
    fn filled() -> (Login, Keymap) {
        let keymap = Keymap::default();
        let mut login = Login::new("http://127.0.0.1:8080", None);
        type_text(&mut login, &keymap, "bob");
        login.key(press(KeyCode::Tab), &keymap);
        type_text(&mut login, &keymap, "password-bob");
        (login, keymap)
    }

    #[test]
    fn enter_logs_in_with_what_was_typed_and_the_password_stays_out_of_debug_output() {
        let (mut login, keymap) = filled();

        let outs = login.key(press(KeyCode::Enter), &keymap);

        let [Out::Run(Effect::Login(call))] = outs.as_slice() else {
            panic!("one login: {outs:?}");
        };
        assert_eq!(
            *call,
            LoginCall::LogIn {
                server: "http://127.0.0.1:8080".into(),
                username: "bob".into(),
                password: Secret::new("password-bob"),
            }
        );
        assert!(login.busy);
        assert!(!format!("{call:?} {login:?}").contains("password-bob"));
    }

    #[test]
    fn a_session_closes_the_screen_and_hands_over_its_token() {
        let (mut login, keymap) = filled();
        login.key(press(KeyCode::Enter), &keymap);

        let outs = login.answer(LoginAnswer::LoggedIn {
            server: "http://127.0.0.1:8080".into(),
            result: Ok(Session {
                token: "cvs_new".into(),
                user: user("bob"),
            }),
        });

        assert!(matches!(
            &outs[0],
            Out::Run(Effect::UseSession { server, token })
                if server == "http://127.0.0.1:8080" && token.expose() == "cvs_new"
        ));
        assert!(matches!(&outs[1], Out::Status(s) if s == "Logged in as bob"));
        assert!(matches!(outs[2], Out::Close));
        assert_eq!(login.password_len(), 0, "the password is forgotten");
    }

    #[test]
    fn empty_fields_and_a_bad_server_are_refused_on_the_spot() {
        let keymap = Keymap::default();
        let mut login = Login::new("127.0.0.1:8080", None);

        assert!(login.key(press(KeyCode::Enter), &keymap).is_empty());

        assert_eq!(
            login.errors["server"],
            "must start with http:// or https://"
        );
        assert_eq!(login.errors["username"], "is required");
        assert_eq!(login.errors["password"], "is required");
        assert_eq!(login.field, LoginField::Server, "the first refused field");
    }

    #[test]
    fn a_wrong_password_says_so_and_empties_the_password() {
        let (mut login, keymap) = filled();
        login.key(press(KeyCode::Enter), &keymap);

        login.answer(LoginAnswer::LoggedIn {
            server: "http://127.0.0.1:8080".into(),
            result: Err(refused(
                401,
                ErrorBody::new("invalid_credentials", "wrong username or password"),
            )),
        });

        assert_eq!(login.notice.as_deref(), Some("Wrong username or password."));
        assert_eq!(login.password_len(), 0);
        assert_eq!(login.field, LoginField::Password);
        assert!(!login.busy, "the form takes keys again");
    }

    #[test]
    fn too_many_attempts_say_how_long_to_wait() {
        let (mut login, _) = filled();
        login.answer(LoginAnswer::LoggedIn {
            server: String::new(),
            result: Err(ApiError::Server {
                status: 429,
                body: ErrorBody::new("rate_limited", "too many attempts"),
                retry_after: Some(30),
            }),
        });
        assert_eq!(
            login.notice.as_deref(),
            Some("Too many attempts: try again in 30s.")
        );
    }

    #[test]
    fn an_unreachable_server_is_blamed_on_the_server_field() {
        let (mut login, _) = filled();
        login.answer(LoginAnswer::LoggedIn {
            server: String::new(),
            result: Err(ApiError::Offline("connection refused".into())),
        });
        assert_eq!(
            login.errors["server"],
            "cannot be reached; check the address"
        );
        assert_eq!(login.field, LoginField::Server);
    }

    #[test]
    fn sign_up_checks_fields_as_the_server_does_then_logs_in() {
        let keymap = Keymap::default();
        let mut login = Login::new("http://127.0.0.1:8080", None);
        login.key(
            KeyEvent::new(KeyCode::Char('n'), KeyModifiers::CONTROL),
            &keymap,
        );
        assert!(login.signing_up);
        type_text(&mut login, &keymap, "d");
        login.key(press(KeyCode::Tab), &keymap);
        type_text(&mut login, &keymap, "nope");
        login.key(press(KeyCode::Tab), &keymap);
        login.key(press(KeyCode::Tab), &keymap);
        type_text(&mut login, &keymap, "short");

        assert!(login.key(press(KeyCode::Enter), &keymap).is_empty());
        assert!(login.errors["username"].starts_with("must be 3 to 32 characters"));
        assert!(login.errors.contains_key("email"));
        assert!(login.errors["password"].starts_with("must be 8 to 256 characters"));
        assert_eq!(login.field, LoginField::Username);

        // Fixed: the sign-up goes out, then a login with the same password.
        login.username = "dave".into();
        login.email = "dave@example.com".into();
        login.password = Secret::new("correct horse battery");
        let outs = login.key(press(KeyCode::Enter), &keymap);
        let [Out::Run(Effect::Login(call))] = outs.as_slice() else {
            panic!("one sign-up: {outs:?}");
        };
        let request = call.sign_up_request().expect("a sign-up");
        assert_eq!(request.username.as_deref(), Some("dave"));
        assert_eq!(request.display_name, None, "defaults to the username");

        let outs = login.answer(LoginAnswer::SignedUp(Ok(user("dave"))));
        assert!(matches!(
            outs.as_slice(),
            [Out::Run(Effect::Login(LoginCall::LogIn { username, password, .. }))]
                if username == "dave" && password.expose() == "correct horse battery"
        ));
        assert!(!login.signing_up);
    }

    #[test]
    fn a_taken_username_is_shown_on_its_field() {
        let mut login = Login::new("http://127.0.0.1:8080", None);
        login.signing_up = true;
        login.answer(LoginAnswer::SignedUp(Err(refused(
            409,
            ErrorBody::new("conflict", "username is already taken"),
        ))));
        assert_eq!(login.errors["username"], "is already taken");
    }

    #[test]
    fn a_422_puts_each_reason_on_its_field() {
        let mut login = Login::new("http://127.0.0.1:8080", None);
        login.signing_up = true;
        let mut body = ErrorBody::new("validation_failed", "the request has invalid fields");
        body.error.fields = Some(
            [("email".to_owned(), "must be an address".to_owned())]
                .into_iter()
                .collect(),
        );
        login.answer(LoginAnswer::SignedUp(Err(refused(422, body))));
        assert_eq!(login.errors["email"], "must be an address");
        assert_eq!(login.field, LoginField::Email);
    }

    #[test]
    fn escape_quits_even_while_waiting() {
        let (mut login, keymap) = filled();
        login.key(press(KeyCode::Enter), &keymap);
        assert!(matches!(
            login.key(press(KeyCode::Esc), &keymap).as_slice(),
            [Out::Quit]
        ));
    }
}
