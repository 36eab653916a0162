//! Snapshots of the login screen, the sign-up form and the settings screen, at 80×24 and at a
//! large size.

use super::*;
use crate::app::{AccountAnswer, App, Connection, LoginAnswer, LoginField, Modal, Settings};
use crate::keys::Keymap;
use chrono::TimeZone;
use convos_core::api::{EmailMode, FolderCounts, Me, Preferences, SessionInfo, User};
use convos_core::{ErrorBody, SessionId, UserId};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 9, 5, 0).unwrap()
}

fn draw(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| render(f, app, now())).unwrap();
    terminal.backend().to_string()
}

fn press(app: &mut App, code: KeyCode) {
    app.update(crate::app::Msg::Key(KeyEvent::new(
        code,
        KeyModifiers::NONE,
    )));
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        press(app, KeyCode::Char(c));
    }
}

/// Bob typed a wrong password.
fn login_refused() -> App {
    let mut app = App::new();
    app.server = "http://127.0.0.1:8080".into();
    app.sign_out(None);
    type_text(&mut app, "bob");
    press(&mut app, KeyCode::Tab);
    type_text(&mut app, "hunter2");
    press(&mut app, KeyCode::Enter);
    app.update(crate::app::Msg::Login(LoginAnswer::LoggedIn {
        server: "http://127.0.0.1:8080".into(),
        result: Err(crate::api::ApiError::Server {
            status: 401,
            body: ErrorBody::new("invalid_credentials", "wrong username or password"),
            retry_after: None,
        }),
    }));
    type_text(&mut app, "secret");
    app
}

#[test]
fn login_screen() {
    let app = login_refused();
    let screen = draw(&app, 80, 24);
    assert!(screen.contains("••••••"), "the password is masked");
    assert!(!screen.contains("secret"));
    insta::assert_snapshot!(screen);
}

#[test]
fn login_screen_large() {
    insta::assert_snapshot!(draw(&login_refused(), 140, 40));
}

/// Dave filling in the sign-up form, with the server's refusals on their fields.
fn sign_up_refused() -> App {
    let mut app = App::new();
    app.server = "https://convos.example.org".into();
    app.sign_out(Some(
        "Your session has ended (expired or logged out): log in again.".into(),
    ));
    app.update(crate::app::Msg::Key(KeyEvent::new(
        KeyCode::Char('n'),
        KeyModifiers::CONTROL,
    )));
    type_text(&mut app, "dave");
    press(&mut app, KeyCode::Tab);
    type_text(&mut app, "dave@example.com");
    press(&mut app, KeyCode::Tab);
    type_text(&mut app, "Dave Grohl");
    press(&mut app, KeyCode::Tab);
    type_text(&mut app, "correct horse battery");
    press(&mut app, KeyCode::Enter);
    app.update(crate::app::Msg::Login(LoginAnswer::SignedUp(Err(
        crate::api::ApiError::Server {
            status: 409,
            body: ErrorBody::new("conflict", "username is already taken"),
            retry_after: None,
        },
    ))));
    let login = app.login.as_ref().unwrap();
    assert_eq!(login.field, LoginField::Username);
    app
}

#[test]
fn sign_up_form() {
    let screen = draw(&sign_up_refused(), 80, 24);
    assert!(screen.contains("is already taken"));
    insta::assert_snapshot!(screen);
}

#[test]
fn sign_up_form_large() {
    insta::assert_snapshot!(draw(&sign_up_refused(), 140, 40));
}

fn session(client: Option<&str>, current: bool, used: Option<DateTime<Utc>>) -> SessionInfo {
    let at = Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap();
    SessionInfo {
        id: SessionId::generate(),
        client: client.map(str::to_owned),
        created_at: at,
        last_used_at: used,
        expires_at: at + chrono::Duration::days(30),
        current,
    }
}

/// Bob's settings: a daily digest, paused from an email's link, three sessions.
fn settings() -> App {
    let mut app = App::new();
    app.connection = Connection::Live;
    let mut prefs = Preferences::new(true);
    prefs.email_mode = EmailMode::Daily;
    prefs.digest_hour = 7;
    prefs.time_zone = "Europe/Paris".into();
    prefs.email_paused_until = Some(Utc.with_ymd_and_hms(2026, 11, 29, 9, 0, 0).unwrap());
    app.me = Some(Me {
        user: User {
            id: UserId::generate(),
            username: "bob".into(),
            email: "bob@example.com".into(),
            display_name: "Bob".into(),
            is_admin: false,
            created_at: now(),
            email_verified: true,
            email_stopped: None,
        },
        unread_count: 0,
        unread_by_folder: FolderCounts::default(),
        settings: prefs,
    });
    let mut screen = Settings::new(app.me.as_ref());
    screen.answer(AccountAnswer::Sessions(Ok(vec![
        session(Some("convos-tui/0.1.0"), true, Some(now())),
        session(
            Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"),
            false,
            Some(now() - chrono::Duration::hours(3)),
        ),
        session(None, false, None),
    ])));
    app.modal = Modal::Settings(Box::new(screen));
    app
}

#[test]
fn settings_screen() {
    insta::assert_snapshot!(draw(&settings(), 80, 24));
}

#[test]
fn settings_screen_large() {
    insta::assert_snapshot!(draw(&settings(), 120, 40));
}

#[test]
fn the_settings_screen_scrolls_to_the_highlighted_row() {
    let mut app = settings();
    let keymap = Keymap::default();
    if let Modal::Settings(screen) = &mut app.modal {
        while screen.selected() != crate::app::Row::ReplyAddresses {
            screen.key(KeyEvent::new(KeyCode::Down, KeyModifiers::NONE), &keymap);
        }
    }
    let screen = draw(&app, 80, 24);
    assert!(
        screen.contains("reply addresses and links in emails sent so far"),
        "{screen}"
    );
}

#[test]
fn the_login_and_settings_hints_follow_the_keys() {
    let overrides = std::collections::BTreeMap::from([
        ("login_screen.switch_form".to_owned(), "ctrl+a".to_owned()),
        ("settings_screen.close".to_owned(), "q".to_owned()),
    ]);
    let keymap = Keymap::with_overrides(&overrides).unwrap();
    let mut app = login_refused();
    app.keymap = keymap.clone();
    assert!(draw(&app, 100, 24).contains("Ctrl-a create an account"));
    let mut app = settings();
    app.keymap = keymap;
    assert!(draw(&app, 100, 24).contains("q close"));
}
