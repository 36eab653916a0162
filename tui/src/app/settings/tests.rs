//! The settings screen alone: keys and answers in, calls and state out.

use super::*;
use chrono::TimeZone;
use convos_core::ErrorBody;
use convos_core::api::{FolderCounts, Preferences, User};

fn press(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn me(mode: EmailMode) -> Me {
    let mut settings = Preferences::new(mode != EmailMode::Off);
    settings.email_mode = mode;
    Me {
        user: User {
            id: convos_core::UserId::generate(),
            username: "bob".into(),
            email: "bob@example.com".into(),
            display_name: "Bob".into(),
            is_admin: false,
            created_at: Utc.with_ymd_and_hms(2026, 11, 1, 9, 0, 0).unwrap(),
            email_verified: true,
            email_stopped: None,
        },
        unread_count: 0,
        unread_by_folder: FolderCounts::default(),
        settings,
    }
}

fn session(client: &str, current: bool) -> SessionInfo {
    let at = Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap();
    SessionInfo {
        id: SessionId::generate(),
        client: Some(client.into()),
        created_at: at,
        last_used_at: Some(at),
        expires_at: at + chrono::Duration::days(30),
        current,
    }
}

/// The screen for bob, with his two sessions listed (this client's first).
fn screen() -> (Settings, Keymap) {
    let mut settings = Settings::new(Some(&me(EmailMode::Each)));
    settings.answer(AccountAnswer::Sessions(Ok(vec![
        session("convos-tui/0.1.0", true),
        session("curl/8.5.0", false),
    ])));
    (settings, Keymap::default())
}

fn go_to(settings: &mut Settings, keymap: &Keymap, row: Row) {
    while settings.selected() != row {
        settings.key(press(KeyCode::Down), keymap);
    }
}

#[test]
fn right_then_enter_saves_a_daily_digest() {
    let (mut settings, keymap) = screen();

    settings.key(press(KeyCode::Right), &keymap);
    assert!(settings.edited, "not saved yet");
    let outs = settings.key(press(KeyCode::Enter), &keymap);

    assert!(matches!(
        outs.as_slice(),
        [Out::Run(Effect::Account(AccountCall::SaveEmail {
            mode: EmailMode::Daily,
            digest_hour: 8,
            time_zone,
        }))] if time_zone == "UTC"
    ));
    settings.answer(AccountAnswer::Saved(Ok(me(EmailMode::Daily))));
    assert!(!settings.edited);
    assert_eq!(
        settings.notice.as_deref(),
        Some("Saved: a daily digest at 08:00 UTC.")
    );
}

#[test]
fn the_hour_wraps_and_the_time_zone_is_typed() {
    let (mut settings, keymap) = screen();
    go_to(&mut settings, &keymap, Row::DigestHour);
    for _ in 0..9 {
        settings.key(press(KeyCode::Left), &keymap);
    }
    assert_eq!(settings.digest_hour, 23);
    go_to(&mut settings, &keymap, Row::TimeZone);
    for _ in 0..3 {
        settings.key(press(KeyCode::Backspace), &keymap);
    }
    for c in "Europe/Paris".chars() {
        settings.key(press(KeyCode::Char(c)), &keymap);
    }
    assert_eq!(settings.time_zone, "Europe/Paris");
}

#[test]
fn a_refused_time_zone_is_shown_on_its_row_and_the_edit_is_kept() {
    let (mut settings, keymap) = screen();
    settings.time_zone = "Mars/Olympus".into();
    settings.edited = true;
    settings.key(press(KeyCode::Enter), &keymap);
    let mut body = ErrorBody::new("validation_failed", "the request has invalid fields");
    body.error.fields = Some(
        [(
            "time_zone".to_owned(),
            "is not a known time zone".to_owned(),
        )]
        .into(),
    );

    settings.answer(AccountAnswer::Saved(Err(ApiError::Server {
        status: 422,
        body,
        retry_after: None,
    })));

    assert_eq!(settings.errors["time_zone"], "is not a known time zone");
    assert_eq!(settings.time_zone, "Mars/Olympus");
    // A fresh account from the server does not overwrite the edit in progress.
    settings.me_loaded(&me(EmailMode::Each));
    assert_eq!(settings.time_zone, "Mars/Olympus");
}

#[test]
fn another_session_is_logged_out_after_a_yes_and_the_list_reloads() {
    let (mut settings, keymap) = screen();
    go_to(&mut settings, &keymap, Row::Session(1));
    let other = settings.sessions.as_ref().unwrap()[1].id;

    assert!(settings.key(press(KeyCode::Enter), &keymap).is_empty());
    assert!(settings.confirm.is_some(), "asks first");
    let outs = settings.key(press(KeyCode::Char('y')), &keymap);

    assert!(settings.confirm.is_none());
    assert!(outs.iter().any(
        |o| matches!(o, Out::Run(Effect::Account(AccountCall::RevokeSession(id))) if *id == other)
    ));
    assert!(
        !outs.iter().any(|o| matches!(o, Out::Close)),
        "the screen stays open"
    );
    let outs = settings.answer(AccountAnswer::Revoked(Ok(())));
    assert!(matches!(
        outs.as_slice(),
        [Out::Run(Effect::Account(AccountCall::LoadSessions))]
    ));
}

#[test]
fn no_to_the_question_changes_nothing() {
    let (mut settings, keymap) = screen();
    go_to(&mut settings, &keymap, Row::OtherSessions);
    settings.key(press(KeyCode::Enter), &keymap);
    let outs = settings.key(press(KeyCode::Char('n')), &keymap);
    assert!(!outs.iter().any(|o| matches!(o, Out::Run(_))));
}

#[test]
fn this_clients_own_session_is_not_revoked_from_the_list() {
    let (mut settings, keymap) = screen();
    go_to(&mut settings, &keymap, Row::Session(0));
    assert!(settings.key(press(KeyCode::Enter), &keymap).is_empty());
    assert!(settings.confirm.is_none());
    assert!(
        settings
            .notice
            .as_deref()
            .unwrap()
            .contains("convos logout")
    );
}

#[test]
fn the_password_change_is_checked_first_and_its_errors_land_on_their_rows() {
    let (mut settings, keymap) = screen();
    go_to(&mut settings, &keymap, Row::CurrentPassword);
    for c in "old-password".chars() {
        settings.key(press(KeyCode::Char(c)), &keymap);
    }
    settings.key(press(KeyCode::Down), &keymap);
    for c in "short".chars() {
        settings.key(press(KeyCode::Char(c)), &keymap);
    }
    assert!(settings.key(press(KeyCode::Enter), &keymap).is_empty());
    assert!(settings.errors["new"].starts_with("must be 8 to 256 characters"));

    for c in "-enough".chars() {
        settings.key(press(KeyCode::Char(c)), &keymap);
    }
    let outs = settings.key(press(KeyCode::Enter), &keymap);
    let [Out::Run(Effect::Account(call))] = outs.as_slice() else {
        panic!("one change: {outs:?}");
    };
    let request = call.password_request().unwrap();
    assert_eq!(request.current.as_deref(), Some("old-password"));
    assert_eq!(request.new.as_deref(), Some("short-enough"));
    assert!(!format!("{call:?} {settings:?}").contains("old-password"));

    let mut body = ErrorBody::new("validation_failed", "the request has invalid fields");
    body.error.fields = Some(
        [(
            "current".to_owned(),
            "is not your current password".to_owned(),
        )]
        .into(),
    );
    settings.answer(AccountAnswer::PasswordChanged(Err(ApiError::Server {
        status: 422,
        body,
        retry_after: None,
    })));
    assert_eq!(settings.errors["current"], "is not your current password");

    let outs = settings.answer(AccountAnswer::PasswordChanged(Ok(())));
    assert!(matches!(
        outs.as_slice(),
        [Out::Run(Effect::Account(AccountCall::LoadSessions))]
    ));
    assert_eq!(
        settings.current_password.expose(),
        "",
        "forgotten once used"
    );
}

#[test]
fn moving_to_another_address_takes_the_password_and_shows_where_the_link_went() {
    let (mut settings, keymap) = screen();
    go_to(&mut settings, &keymap, Row::NewAddress);
    for c in "bob@new.example".chars() {
        settings.key(press(KeyCode::Char(c)), &keymap);
    }
    assert!(settings.key(press(KeyCode::Enter), &keymap).is_empty());
    assert_eq!(settings.errors["password"], "is required");

    settings.key(press(KeyCode::Down), &keymap);
    for c in "password-bob".chars() {
        settings.key(press(KeyCode::Char(c)), &keymap);
    }
    assert!(
        !settings.errors.contains_key("password"),
        "typing clears it"
    );
    let outs = settings.key(press(KeyCode::Enter), &keymap);
    let [Out::Run(Effect::Account(call))] = outs.as_slice() else {
        panic!("one change: {outs:?}");
    };
    let request = call.email_request().unwrap();
    assert_eq!(request.email.as_deref(), Some("bob@new.example"));
    assert_eq!(request.password.as_deref(), Some("password-bob"));
    assert!(!format!("{call:?} {settings:?}").contains("password-bob"));

    let mut body = ErrorBody::new("validation_failed", "the request has invalid fields");
    body.error.fields = Some([("password".to_owned(), "is not your password".to_owned())].into());
    settings.answer(AccountAnswer::EmailChanged(Err(ApiError::Server {
        status: 422,
        body,
        retry_after: None,
    })));
    assert_eq!(settings.errors["password"], "is not your password");

    let outs = settings.answer(AccountAnswer::EmailChanged(Ok("bob@new.example".into())));
    assert!(
        matches!(outs.as_slice(), [Out::Run(Effect::LoadMe)]),
        "{outs:?}"
    );
    assert!(
        settings
            .notice
            .as_deref()
            .unwrap()
            .contains("Now bob@new.example")
    );
    assert_eq!(settings.new_address, "", "the form is cleared");
    assert_eq!(settings.address_password.expose(), "");
}

#[test]
fn the_reply_addresses_are_revoked_after_a_yes() {
    let (mut settings, keymap) = screen();
    go_to(&mut settings, &keymap, Row::ReplyAddresses);
    settings.key(press(KeyCode::Enter), &keymap);
    let outs = settings.key(press(KeyCode::Char('y')), &keymap);
    assert!(outs.iter().any(|o| matches!(
        o,
        Out::Run(Effect::Account(AccountCall::RevokeReplyAddresses))
    )));
}

#[test]
fn escape_closes_the_screen() {
    let (mut settings, keymap) = screen();
    assert!(matches!(
        settings.key(press(KeyCode::Esc), &keymap).as_slice(),
        [Out::Close]
    ));
}
