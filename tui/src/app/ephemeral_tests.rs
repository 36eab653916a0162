//! Ephemeral and read-once messages in the state machine: options set in the composer, sent in
//! the request, kept by the outbox; expiring messages leaving the screen at the moment the clock
//! (passed in) reaches them; a read-once message opened once. Then their screens as snapshots.

use super::tests::{thread, user};
use super::*;
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use convos_core::UserId;
use convos_core::api::{FolderCounts, Preferences, User};
use crossterm::event::{KeyCode, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn key(code: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn ctrl(c: char) -> Msg {
    Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        app.update(key(KeyCode::Char(c)));
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 9, 5, 0).unwrap()
}

fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

fn composer(app: &App) -> &Composer {
    match &app.modal {
        Modal::Compose(composer) => composer,
        other => panic!("no composer: {other:?}"),
    }
}

/// A new message to bob, subject "Hi", body written, cursor in the body.
fn new_message_to_bob(app: &mut App) {
    app.update(key(KeyCode::Char('c')));
    type_text(app, "bob");
    app.update(key(KeyCode::Tab));
    app.update(Msg::Completions {
        prefix: "bob".into(),
        result: Ok(vec!["bob".into()]),
    });
    type_text(app, "Hi");
    app.update(key(KeyCode::Tab));
    type_text(app, "the code is 1234");
}

fn me(name: &str) -> Me {
    Me {
        user: User {
            id: UserId::generate(),
            username: name.into(),
            email: format!("{name}@example.com"),
            display_name: name.to_uppercase(),
            is_admin: false,
            created_at: now(),
            email_verified: true,
            email_stopped: None,
        },
        unread_count: 1,
        unread_by_folder: FolderCounts {
            inbox: 1,
            sent: 0,
            archive: 0,
            all: 1,
        },
        settings: Preferences::new(true),
    }
}

fn message_in(thread: &Thread, body: &str, expires_at: Option<DateTime<Utc>>) -> Message {
    Message {
        id: MessageId::generate(),
        thread_id: thread.id,
        subject: thread.subject.clone(),
        body: Some(body.into()),
        sender: user("alice"),
        recipient: user("bob"),
        is_read: true,
        created_at: now() - secs(300),
        in_reply_to: None,
        expires_at,
        read_once: false,
    }
}

fn show(app: &mut App, thread: &Thread, messages: Vec<Message>) {
    app.update(Msg::Messages {
        thread: thread.id,
        older: false,
        result: Ok(Page {
            items: messages.into_iter().rev().collect(),
            next_cursor: None,
        }),
    });
}

fn list(app: &mut App, threads: Vec<Thread>) {
    app.update(Msg::Threads {
        folder: app.mailbox.folder,
        append: false,
        result: Ok(Page {
            items: threads,
            next_cursor: None,
        }),
    });
}

fn shown(app: &App) -> Vec<String> {
    app.thread
        .open
        .as_ref()
        .and_then(|o| o.messages.as_ref())
        .map(|ms| ms.iter().filter_map(|m| m.body.clone()).collect())
        .unwrap_or_default()
}

/// A thread whose newest message expires at `at`, with `count` messages.
fn expiring_thread(subject: &str, count: i64, at: DateTime<Utc>) -> Thread {
    let mut t = thread(subject, 1);
    t.message_count = count;
    if let Some(last) = &mut t.last_message {
        last.expires_at = Some(at);
    }
    t
}

#[test]
fn the_expiry_and_read_once_set_in_the_composer_go_out_with_the_message() {
    let mut app = App::new();
    new_message_to_bob(&mut app);
    app.update(ctrl('t'));
    assert_eq!(
        composer(&app).field,
        Field::Expiry,
        "the expiry key goes to the field"
    );
    assert_eq!(composer(&app).expiry, "10m");
    app.update(ctrl('t'));
    app.update(ctrl('o'));
    assert_eq!(
        (composer(&app).expiry.as_str(), composer(&app).read_once),
        ("1h", true)
    );
    let effects = app.update(ctrl('s'));
    let [
        Effect::Send {
            recipient, options, ..
        },
    ] = effects.as_slice()
    else {
        panic!("{effects:?}")
    };
    assert_eq!(recipient, "bob");
    assert_eq!(
        *options,
        SendOptions {
            expires_in: Some(3600),
            read_once: true
        }
    );
    assert_eq!(
        app.status,
        "Sending… · disappears 1h after sending · read once"
    );
    let key = composer(&app).key.clone();
    app.update(Msg::Sent(key, Ok(message_in(&thread("Hi", 0), "", None))));
    assert_eq!(app.status, "Sent · disappears 1h after sending · read once");
}

#[test]
fn a_typed_duration_is_read_and_a_wrong_one_is_marked_before_sending() {
    let mut app = App::new();
    list(&mut app, vec![thread("Lunch", 0)]);
    app.update(key(KeyCode::Char('r')));
    type_text(&mut app, "on my way");
    app.update(ctrl('t'));
    for _ in 0..3 {
        app.update(key(KeyCode::Backspace));
    }
    type_text(&mut app, "90");
    assert_eq!(
        app.update(ctrl('s')),
        [],
        "a number without a unit is not sent"
    );
    assert_eq!(app.status, "Fix the marked fields");
    assert!(composer(&app).errors["expires_in"].contains("add a unit"));
    type_text(&mut app, "m");
    app.update(key(KeyCode::Enter));
    assert_eq!(
        composer(&app).field,
        Field::Body,
        "Enter goes back to the text"
    );
    let effects = app.update(ctrl('s'));
    let [Effect::Reply { options, body, .. }] = effects.as_slice() else {
        panic!("{effects:?}")
    };
    assert_eq!(body, "on my way");
    assert_eq!(options.expires_in, Some(5400));
    assert!(!options.read_once);
}

#[test]
fn a_queued_message_keeps_its_expiry_and_read_once() {
    let mut app = App::new();
    new_message_to_bob(&mut app);
    app.update(ctrl('t'));
    app.update(ctrl('o'));
    app.update(ctrl('s'));
    let key = composer(&app).key.clone();
    app.update(Msg::Sent(
        key.clone(),
        Err(ApiError::Offline("no route".into())),
    ));
    let options = SendOptions {
        expires_in: Some(600),
        read_once: true,
    };
    assert_eq!(app.outbox.len(), 1);
    assert_eq!(app.outbox[0].options, options);
    assert!(
        app.status
            .ends_with("· disappears 10m after sending · read once")
    );

    // On disk and back, and in the flush that sends it.
    let saved = serde_json::to_string(&app.outbox).unwrap();
    let loaded: Vec<Outgoing> = serde_json::from_str(&saved).unwrap();
    assert_eq!(loaded, app.outbox);
    let flush = app.update(Msg::RetryOutbox);
    let [Effect::Flush(queued)] = flush.as_slice() else {
        panic!()
    };
    assert_eq!(queued[0].options, options);

    // Refused when it is sent: back in the composer with its options.
    let body = convos_core::ErrorBody::new("validation_failed", "the request has invalid fields");
    app.update(Msg::Flushed {
        key,
        result: Err(ApiError::Server {
            status: 422,
            body,
            retry_after: None,
        }),
    });
    assert_eq!(
        (composer(&app).expiry.as_str(), composer(&app).read_once),
        ("10m", true)
    );
}

#[test]
fn an_outbox_written_before_the_options_existed_still_loads() {
    let old = r#"[{"key":"k","reply_to":null,"recipient":"bob","subject":"s","body":"b"}]"#;
    let loaded: Vec<Outgoing> = serde_json::from_str(old).unwrap();
    assert_eq!(loaded[0].options, SendOptions::default());
}

#[test]
fn an_expiring_message_leaves_the_open_thread_at_its_expiry_and_not_before() {
    let mut app = App::new();
    let at = now() + secs(90);
    let t = thread("Lunch", 0);
    list(&mut app, vec![t.clone()]);
    app.update(key(KeyCode::Enter));
    let stays = message_in(&t, "stays", None);
    let goes = message_in(&t, "self-destructs", Some(at));
    show(&mut app, &t, vec![stays, goes.clone()]);

    assert_eq!(app.next_wake(now()), Some(now() + secs(31)), "1m, then 59s");
    assert_eq!(app.update(Msg::Expire(at - secs(1))), []);
    assert_eq!(shown(&app), ["stays", "self-destructs"]);
    assert_eq!(app.next_wake(at - secs(1)), Some(at));

    let effects = app.update(Msg::Expire(at));
    assert_eq!(shown(&app), ["stays"]);
    assert_eq!(
        effects,
        [Effect::LoadMe, app.mailbox.load()],
        "counts and the list are fetched again"
    );
    assert_eq!(app.next_wake(at), None, "nothing left to expire");

    // An answer from a server whose clock is a little behind does not bring it back.
    show(&mut app, &t, vec![message_in(&t, "stays", None), goes]);
    assert_eq!(shown(&app), ["stays"]);
}

#[test]
fn a_thread_whose_last_message_expires_leaves_the_list_or_counts_one_less() {
    let mut app = App::new();
    let at = now() + secs(10);
    let only = expiring_thread("Vanishing", 1, at);
    let more = expiring_thread("Mixed", 3, at + secs(5));
    list(&mut app, vec![only.clone(), more.clone()]);
    assert_eq!(app.next_wake(now()), Some(now() + secs(1)));

    app.update(Msg::Expire(at));
    let ids: Vec<_> = app.mailbox.threads.iter().map(|t| t.id).collect();
    assert_eq!(ids, [more.id], "a thread with nothing left leaves");

    let effects = app.update(Msg::Expire(at + secs(5)));
    assert_eq!(effects, [Effect::LoadMe, app.mailbox.load()]);
    let mixed = &app.mailbox.threads[0];
    assert_eq!(
        (mixed.message_count, mixed.last_message.is_none()),
        (2, true)
    );
    // The fetched list shows its previous message.
    let mut fresh = thread("Mixed", 0);
    fresh.id = more.id;
    list(&mut app, vec![fresh.clone()]);
    assert_eq!(app.mailbox.threads, [fresh]);
}

#[test]
fn the_open_thread_closes_when_its_last_message_expires() {
    let mut app = App::new();
    let at = now() + secs(10);
    let t = expiring_thread("Vanishing", 1, at);
    list(&mut app, vec![t.clone()]);
    app.update(key(KeyCode::Enter));
    show(&mut app, &t, vec![message_in(&t, "poof", Some(at))]);
    app.update(Msg::Expire(at));
    assert!(app.thread.open.is_none());
    assert!(app.mailbox.threads.is_empty());
    assert_eq!(app.status, "The thread's last message expired");
}

#[test]
fn a_read_once_message_opened_is_gone_once_its_thread_is_left() {
    let mut app = App::new();
    app.update(Msg::Me(Ok(me("bob"))));
    let bob = app.me.as_ref().unwrap().user.id;
    let t = thread("Secret", 1);
    list(&mut app, vec![t.clone()]);
    app.update(key(KeyCode::Enter));
    let mut sealed = message_in(&t, "", None);
    sealed.body = None;
    sealed.read_once = true;
    sealed.recipient.id = bob;
    show(&mut app, &t, vec![sealed.clone()]);
    assert_eq!(
        app.update(key(KeyCode::Char('o'))),
        [Effect::OpenOnce(sealed.id)]
    );
    app.update(Msg::Opened(Ok(Message {
        body: Some("the code is 1234".into()),
        ..sealed
    })));
    assert_eq!(shown(&app), ["the code is 1234"]);
    assert!(app.status.contains("one read"));
    // A refresh while reading keeps it (the server no longer lists it)…
    show(&mut app, &t, vec![]);
    assert_eq!(shown(&app), ["the code is 1234"]);
    // …leaving the thread ends its one read.
    app.update(key(KeyCode::Char('q')));
    app.update(key(KeyCode::Enter));
    show(&mut app, &t, vec![]);
    assert!(shown(&app).is_empty());
}

// Screens.

fn draw(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| crate::ui::render(f, app, now())).unwrap();
    terminal.backend().to_string()
}

fn composing_with_options() -> App {
    let mut app = App::new();
    app.connection = Connection::Live;
    app.me = Some(me("alice"));
    new_message_to_bob(&mut app);
    app.update(ctrl('t'));
    for _ in 0..3 {
        app.update(key(KeyCode::Backspace));
    }
    type_text(&mut app, "2h");
    app.update(ctrl('o'));
    app
}

#[test]
fn composer_with_expiry_options_at_80_by_24() {
    insta::assert_snapshot!(draw(&composing_with_options(), 80, 24));
}

#[test]
fn composer_with_expiry_options_large() {
    insta::assert_snapshot!(draw(&composing_with_options(), 140, 40));
}

fn thread_with_an_expiring_message() -> App {
    let mut app = App::new();
    app.connection = Connection::Live;
    app.me = Some(me("bob"));
    let mut lunch = expiring_thread("Lunch on Friday?", 2, now() + secs(42 * 60));
    lunch.last_message_at = now() - secs(180);
    let report = thread("Quarterly report", 0);
    list(&mut app, vec![lunch.clone(), report]);
    app.update(key(KeyCode::Enter));
    let expiring = message_in(
        &lunch,
        "Meet me at noon. This disappears.",
        Some(now() + secs(42 * 60)),
    );
    show(
        &mut app,
        &lunch,
        vec![message_in(&lunch, "Lunch on Friday?", None), expiring],
    );
    app
}

#[test]
fn a_thread_with_an_expiring_message_at_80_by_24() {
    insta::assert_snapshot!(draw(&thread_with_an_expiring_message(), 80, 24));
}

#[test]
fn a_thread_with_an_expiring_message_large() {
    insta::assert_snapshot!(draw(&thread_with_an_expiring_message(), 140, 40));
}

#[test]
fn a_thread_with_nothing_left_on_the_server_keeps_only_what_was_opened_here() {
    let mut app = App::new();
    let t = thread("Secret", 0);
    list(&mut app, vec![t.clone()]);
    app.update(key(KeyCode::Enter));
    let mut opened = message_in(&t, "the code is 1234", None);
    opened.read_once = true;
    app.update(Msg::Opened(Ok(opened)));
    let gone = || Msg::Messages {
        thread: t.id,
        older: false,
        result: Err(ApiError::Server {
            status: 404,
            body: convos_core::ErrorBody::new("not_found", "not found"),
            retry_after: None,
        }),
    };
    app.update(gone());
    assert_eq!(
        shown(&app),
        ["the code is 1234"],
        "read here, it stays while open"
    );
    assert!(!app.status.starts_with("Error"));

    app.update(key(KeyCode::Char('q')));
    app.update(key(KeyCode::Enter));
    app.update(gone());
    assert!(app.thread.open.is_none());
    assert_eq!(app.status, "This thread is gone");
}

#[test]
fn an_expiry_already_past_wakes_at_once_not_never() {
    // A wake-up missed while keys kept the loop busy, or a row that arrived already expired:
    // nothing woke for it again, and it stayed shown with "0s left".
    let mut app = App::new();
    let at = now() - secs(3);
    let late = expiring_thread("Late", 1, at);
    list(&mut app, vec![late]);
    assert_eq!(app.next_wake(now()), Some(now()));
    app.update(Msg::Expire(now()));
    assert!(app.mailbox.threads.is_empty());
    assert_eq!(app.next_wake(now()), None);
}
