//! The root with the login and settings screens: when the login screen is shown, what a
//! session opens, and how the settings screen's answers reach the account.

use super::*;
use crate::app::tests::thread;
use chrono::Utc;
use convos_core::ErrorBody;
use convos_core::api::{EmailMode, FolderCounts, Preferences, Session, User};
use crossterm::event::{KeyCode, KeyModifiers};

fn key(code: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        app.update(key(KeyCode::Char(c)));
    }
}

fn user(name: &str) -> User {
    User {
        id: convos_core::UserId::generate(),
        username: name.into(),
        email: format!("{name}@example.com"),
        display_name: name.into(),
        is_admin: false,
        created_at: Utc::now(),
        email_verified: true,
        email_stopped: None,
    }
}

fn me(mode: EmailMode) -> Me {
    let mut settings = Preferences::new(true);
    settings.email_mode = mode;
    Me {
        user: user("bob"),
        unread_count: 0,
        unread_by_folder: FolderCounts::default(),
        settings,
    }
}

fn unauthorized() -> ApiError {
    ApiError::Server {
        status: 401,
        body: ErrorBody::new("unauthorized", "a valid bearer token is required"),
        retry_after: None,
    }
}

/// A client started without a token, as the runtime starts it.
fn signed_out() -> App {
    let mut app = App::new();
    app.server = "http://127.0.0.1:8080".into();
    app.sign_out(None);
    app
}

#[test]
fn without_a_token_the_login_screen_has_the_keys_and_nothing_is_fetched() {
    let mut app = signed_out();

    assert_eq!(app.start(), [], "no token: nothing to fetch");
    type_text(&mut app, "bob");
    // A mailbox key is typed into the form, not acted on.
    type_text(&mut app, "c");

    let login = app.login.as_ref().expect("the login screen");
    assert_eq!(login.server, "http://127.0.0.1:8080");
    assert_eq!(login.username, "bobc");
    assert!(matches!(app.modal, Modal::None));
}

#[test]
fn a_session_opens_a_fresh_mailbox_and_is_used_before_anything_is_fetched() {
    let mut app = signed_out();
    app.mailbox.threads = vec![thread("Someone else's thread", 1)];
    type_text(&mut app, "bob");
    app.update(key(KeyCode::Tab));
    type_text(&mut app, "password-bob");
    let effects = app.update(key(KeyCode::Enter));
    assert!(matches!(
        effects.as_slice(),
        [Effect::Login(LoginCall::LogIn { username, .. })] if username == "bob"
    ));

    let effects = app.update(Msg::Login(LoginAnswer::LoggedIn {
        server: "http://convos.test".into(),
        result: Ok(Session {
            token: "cvs_fresh".into(),
            user: user("bob"),
        }),
    }));

    assert!(
        matches!(&effects[0], Effect::UseSession { server, token }
            if server == "http://convos.test" && token.expose() == "cvs_fresh"),
        "{effects:?}"
    );
    assert_eq!(effects[1], Effect::LoadMe);
    assert!(matches!(effects[2], Effect::LoadThreads { .. }));
    assert!(app.login.is_none());
    assert!(app.mailbox.threads.is_empty(), "nothing of another session");
    assert_eq!(app.server, "http://convos.test");
    assert_eq!(app.status, "Logged in as bob");
}

#[test]
fn an_ended_token_at_start_opens_the_login_screen_and_says_why() {
    let mut app = App::new();
    app.server = "http://127.0.0.1:8080".into();
    app.start();

    app.update(Msg::Me(Err(unauthorized())));

    let login = app.login.as_ref().expect("the login screen");
    assert!(login.notice.as_deref().unwrap().contains("log in again"));
    // A late answer of the old session does not reset what is being typed.
    type_text(&mut app, "bob");
    app.update(Msg::Threads {
        folder: Folder::Inbox,
        append: false,
        result: Err(unauthorized()),
    });
    assert_eq!(app.login.as_ref().unwrap().username, "bob");
}

#[test]
fn ctrl_c_and_escape_quit_from_the_login_screen() {
    let mut app = signed_out();
    app.update(Msg::Key(KeyEvent::new(
        KeyCode::Char('c'),
        KeyModifiers::CONTROL,
    )));
    assert!(app.quit);

    let mut app = signed_out();
    app.update(key(KeyCode::Esc));
    assert!(app.quit);
}

#[test]
fn s_opens_the_settings_and_loads_the_account_and_the_sessions() {
    let mut app = App::new();
    app.me = Some(me(EmailMode::Each));

    let effects = app.update(key(KeyCode::Char('S')));

    assert_eq!(
        effects,
        [Effect::LoadMe, Effect::Account(AccountCall::LoadSessions)]
    );
    assert!(matches!(app.modal, Modal::Settings(_)));
}

#[test]
fn saved_settings_become_the_account_shown_everywhere() {
    let mut app = App::new();
    app.me = Some(me(EmailMode::Each));
    app.update(key(KeyCode::Char('S')));
    app.update(key(KeyCode::Right));
    let effects = app.update(key(KeyCode::Enter));
    assert!(matches!(
        effects.as_slice(),
        [Effect::Account(AccountCall::SaveEmail {
            mode: EmailMode::Daily,
            ..
        })]
    ));

    app.update(Msg::Account(AccountAnswer::Saved(Ok(me(EmailMode::Daily)))));

    assert_eq!(
        app.me.as_ref().unwrap().settings.email_mode,
        EmailMode::Daily
    );
    assert_eq!(app.status, "Settings saved");
    app.update(key(KeyCode::Esc));
    assert!(matches!(app.modal, Modal::None));
}

#[test]
fn a_settings_call_with_an_ended_token_opens_the_login_screen() {
    let mut app = App::new();
    app.update(key(KeyCode::Char('S')));

    app.update(Msg::Account(AccountAnswer::Sessions(Err(unauthorized()))));

    assert!(app.login.is_some());
    assert!(matches!(app.modal, Modal::None));
}

#[test]
fn the_settings_key_can_be_rebound() {
    let overrides = std::collections::BTreeMap::from([("settings".to_owned(), ",".to_owned())]);
    let mut app = App::new();
    app.keymap = keys::Keymap::with_overrides(&overrides).unwrap();

    app.update(key(KeyCode::Char(',')));

    assert!(matches!(app.modal, Modal::Settings(_)));
}

#[test]
fn a_queued_message_outlives_an_ended_session_and_goes_with_the_next_one() {
    let mut app = App::new();
    app.outbox = vec![Outgoing {
        key: "k1".into(),
        reply_to: None,
        recipient: "alice".into(),
        subject: "Hi".into(),
        body: "Hello".into(),
        options: Default::default(),
    }];

    app.update(Msg::Flushed {
        key: "k1".into(),
        result: Err(unauthorized()),
    });

    assert!(app.login.is_some());
    assert_eq!(app.outbox.len(), 1, "still queued");
    assert!(matches!(app.modal, Modal::None), "not reopened as refused");
    assert_eq!(
        app.update(Msg::RetryOutbox),
        [],
        "not retried while signed out"
    );
    let effects = app.update(Msg::Login(LoginAnswer::LoggedIn {
        server: "http://127.0.0.1:8080".into(),
        result: Ok(Session {
            token: "cvs_fresh".into(),
            user: user("bob"),
        }),
    }));
    assert!(matches!(effects.last(), Some(Effect::Flush(queued)) if queued.len() == 1));
}
