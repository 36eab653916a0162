//! The state machine without a terminal: keys and answers in, state and effects out.

use super::*;
use chrono::TimeZone;
use convos_core::api::{LastMessage, UserSummary};
use convos_core::{ErrorBody, UserId};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

pub(crate) fn user(name: &str) -> UserSummary {
    UserSummary {
        id: UserId::generate(),
        username: name.into(),
        display_name: name.to_uppercase(),
    }
}

pub(crate) fn thread(subject: &str, unread: i64) -> Thread {
    let at = Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap();
    Thread {
        id: ThreadId::generate(),
        subject: subject.into(),
        participants: vec![user("bob"), user("alice")],
        message_count: 2,
        unread_count: unread,
        last_message: Some(LastMessage {
            id: MessageId::generate(),
            sender: user("alice"),
            body_excerpt: Some("see you there".into()),
            created_at: at,
            expires_at: None,
        }),
        last_message_at: at,
        archived: false,
        muted: false,
    }
}

use chrono::Utc;

fn key(code: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn ctrl(c: char) -> Msg {
    Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
}

pub(crate) fn loaded(app: &mut App, threads: Vec<Thread>) {
    let folder = app.mailbox.folder;
    app.update(Msg::Threads {
        folder,
        append: false,
        result: Ok(Page {
            items: threads,
            next_cursor: None,
        }),
    });
}

/// The open draft's idempotency key (answers are matched to drafts by it).
fn draft_key(app: &App) -> String {
    match &app.modal {
        Modal::Compose(compose) => compose.key.clone(),
        _ => String::new(),
    }
}

/// Tab in the recipient field, with the directory confirming `name`.
fn tab_to_subject(app: &mut App, name: &str) {
    assert_eq!(
        app.update(key(KeyCode::Tab)),
        [Effect::Complete(name.into())]
    );
    app.update(Msg::Completions {
        prefix: name.into(),
        result: Ok(vec![name.into()]),
    });
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        app.update(key(KeyCode::Char(c)));
    }
}

/// Opens the composer and writes to bob: `subject`, then `body`.
fn compose_to_bob(app: &mut App, subject: &str, body: &str) {
    app.update(key(KeyCode::Char('c')));
    type_text(app, "bob");
    tab_to_subject(app, "bob");
    type_text(app, subject);
    app.update(key(KeyCode::Tab));
    type_text(app, body);
}

#[test]
fn start_loads_the_account_and_the_inbox() {
    let mut app = App::new();
    assert_eq!(
        app.start(),
        [
            Effect::LoadMe,
            Effect::LoadThreads {
                folder: Folder::Inbox,
                cursor: None
            }
        ]
    );
    assert_eq!(
        app.in_flight, 0,
        "the runtime counts what runs, not the app"
    );
    app.update(Msg::InFlight(2));
    assert_eq!(app.in_flight, 2);
}

#[test]
fn j_and_k_move_and_stop_at_the_ends() {
    let mut app = App::new();
    loaded(
        &mut app,
        vec![thread("a", 0), thread("b", 0), thread("c", 0)],
    );
    app.update(key(KeyCode::Char('j')));
    app.update(key(KeyCode::Down));
    app.update(key(KeyCode::Char('j')));
    assert_eq!(app.mailbox.selected, 2);
    app.update(key(KeyCode::Char('g')));
    assert_eq!(app.mailbox.selected, 0);
    app.update(key(KeyCode::Char('k')));
    assert_eq!(app.mailbox.selected, 0);
    app.update(key(KeyCode::Char('G')));
    assert_eq!(app.mailbox.selected, 2);
}

#[test]
fn enter_opens_a_thread_loads_it_and_marks_it_read() {
    let mut app = App::new();
    let t = thread("Lunch", 1);
    loaded(&mut app, vec![t.clone()]);
    let effects = app.update(key(KeyCode::Enter));
    assert_eq!(
        effects,
        [
            Effect::LoadMessages(t.id),
            Effect::ThreadAction {
                thread: t.id,
                action: ThreadAction::Read,
                done: ""
            }
        ]
    );
    assert_eq!(app.pane, Pane::Thread);
    assert!(
        app.thread
            .open
            .as_ref()
            .is_some_and(|o| o.messages.is_none()),
        "loading"
    );
    app.update(key(KeyCode::Char('q')));
    assert!(
        app.thread.open.is_none() && !app.quit,
        "q closes the thread first"
    );
    app.update(key(KeyCode::Char('q')));
    assert!(app.quit);
}

#[test]
fn a_reply_sends_the_body_with_a_stable_idempotency_key() {
    let mut app = App::new();
    let t = thread("Lunch", 0);
    loaded(&mut app, vec![t.clone()]);
    app.update(key(KeyCode::Enter));
    app.update(key(KeyCode::Char('r')));
    let Modal::Compose(compose) = &app.modal else {
        panic!("compose opens")
    };
    assert_eq!(
        compose.reply_to.as_ref().map(|r| r.1.as_str()),
        Some("Lunch")
    );
    type_text(&mut app, "On my way");
    let first = app.update(ctrl('s'));
    let [
        Effect::Reply {
            thread, body, key, ..
        },
    ] = first.as_slice()
    else {
        panic!("{first:?}")
    };
    assert_eq!((*thread, body.as_str()), (t.id, "On my way"));
    assert!(
        app.update(ctrl('s')).is_empty(),
        "no second send while the first is in flight"
    );
    // The connection drops: the message is queued under the same key, so it cannot be sent twice.
    let key = key.clone();
    app.update(Msg::Sent(
        draft_key(&app),
        Err(ApiError::Offline("connection reset".into())),
    ));
    assert_eq!(app.outbox.len(), 1);
    assert_eq!(app.outbox[0].key, key);
    assert_eq!(app.outbox[0].reply_to.as_ref().map(|r| r.0), Some(t.id));
}

#[test]
fn compose_checks_fields_locally_and_shows_server_errors_on_their_field() {
    let mut app = App::new();
    app.update(key(KeyCode::Char('c')));
    assert!(
        app.update(ctrl('s')).is_empty(),
        "nothing is sent with empty fields"
    );
    let Modal::Compose(compose) = &app.modal else {
        panic!()
    };
    assert!(compose.errors.contains_key("recipient") && compose.errors.contains_key("subject"));
    type_text(&mut app, "bob");
    tab_to_subject(&mut app, "bob");
    type_text(&mut app, "Hello");
    app.update(key(KeyCode::Tab));
    type_text(&mut app, "Hi Bob");
    let sent = app.update(ctrl('s'));
    assert!(
        matches!(sent.as_slice(), [Effect::Send { recipient, subject, body, .. }]
        if recipient == "bob" && subject == "Hello" && body == "Hi Bob")
    );
    let mut body = ErrorBody::new("validation_failed", "the request has invalid fields");
    body.error.fields = Some(
        [(
            "recipient".to_owned(),
            "no user has this username".to_owned(),
        )]
        .into(),
    );
    app.update(Msg::Sent(
        draft_key(&app),
        Err(ApiError::Server {
            status: 422,
            body,
            retry_after: None,
        }),
    ));
    let Modal::Compose(compose) = &app.modal else {
        panic!("the draft stays open")
    };
    assert_eq!(compose.errors["recipient"], "no user has this username");
    assert_eq!(compose.body_text(), "Hi Bob", "nothing typed is lost");
}

#[test]
fn a_429_says_how_long_to_wait() {
    let mut app = App::new();
    compose_to_bob(&mut app, "s", "b");
    app.update(ctrl('s'));
    let body = ErrorBody::new("rate_limited", "too many requests");
    app.update(Msg::Sent(
        draft_key(&app),
        Err(ApiError::Server {
            status: 429,
            body,
            retry_after: Some(42),
        }),
    ));
    assert_eq!(app.status, "Sending too fast: try again in 42s");
}

#[test]
fn a_days_volume_sent_is_explained_in_the_servers_words_and_the_draft_stays() {
    let mut app = App::new();
    compose_to_bob(&mut app, "s", "the report");
    app.update(ctrl('s'));
    let said = "you have sent today's volume of messages; you can send more in 86000 seconds";
    app.update(Msg::Sent(
        draft_key(&app),
        Err(ApiError::Server {
            status: 429,
            body: ErrorBody::new("rate_limited", said),
            retry_after: Some(86_000),
        }),
    ));
    assert_eq!(app.status, format!("Not sent: {said}"));
    let Modal::Compose(compose) = &app.modal else {
        panic!("the composer stays open");
    };
    assert_eq!(compose.body_text(), "the report");
}

#[test]
fn escape_asks_before_discarding_a_draft() {
    let mut app = App::new();
    app.update(key(KeyCode::Char('c')));
    type_text(&mut app, "bob");
    tab_to_subject(&mut app, "bob");
    type_text(&mut app, "Draft");
    app.update(key(KeyCode::Esc));
    assert!(matches!(app.modal, Modal::Compose(_)), "kept after one Esc");
    app.update(key(KeyCode::Esc));
    assert!(matches!(app.modal, Modal::None));
    assert_eq!(app.status, "Discarded");
}

#[test]
fn delete_asks_first() {
    let mut app = App::new();
    let t = thread("Old", 0);
    loaded(&mut app, vec![t.clone()]);
    assert!(app.update(key(KeyCode::Char('d'))).is_empty());
    assert!(app.update(key(KeyCode::Char('n'))).is_empty());
    assert_eq!(app.status, "Not deleted");
    app.update(key(KeyCode::Char('d')));
    assert_eq!(
        app.update(key(KeyCode::Char('y'))),
        [Effect::DeleteThread(t.id)]
    );
}

#[test]
fn b_blocks_the_other_person_or_unblocks_them_asking_first() {
    let mut app = admin_app();
    let t = thread("Spam", 1);
    let bob = t.participants[0].clone();
    loaded(&mut app, vec![t]);

    assert_eq!(
        app.update(key(KeyCode::Char('B'))),
        [Effect::LookUpBlock(bob.clone())]
    );
    app.update(Msg::BlockLooked(bob.clone(), Ok(false)));
    assert!(matches!(&app.modal, Modal::Confirm(c) if c.question.starts_with("Block bob?")));
    assert_eq!(
        app.update(key(KeyCode::Char('y'))),
        [Effect::SetBlock(bob.clone(), true)]
    );

    app.update(key(KeyCode::Char('B')));
    app.update(Msg::BlockLooked(bob.clone(), Ok(true)));
    assert!(matches!(&app.modal, Modal::Confirm(c) if c.question.starts_with("Unblock bob?")));
    assert!(app.update(key(KeyCode::Char('n'))).is_empty());
    assert_eq!(app.status, "bob stays blocked");
}

#[test]
fn bang_reports_the_other_persons_last_message_asking_why() {
    let mut app = admin_app();
    let t = thread("Spam", 1);
    let bob = t.participants[0].clone();
    loaded(&mut app, vec![t.clone()]);

    assert_eq!(
        app.update(key(KeyCode::Char('!'))),
        [Effect::LookUpReport(t.id, bob.clone())]
    );
    let theirs = Message {
        body: Some("buy cheap watches at a site I will not name".into()),
        sender: bob.clone(),
        ..theirs_again()
    };
    app.update(Msg::ReportLooked(bob.clone(), Ok(Some(theirs.clone()))));
    let Modal::Choice(choice) = &app.modal else {
        panic!("asks why: {:?}", app.modal);
    };
    assert!(
        choice
            .question
            .starts_with("Report bob's message \u{201c}buy cheap watches"),
        "{}",
        choice.question
    );
    assert_eq!(
        choice.answers_line(),
        "s spam · h harassment · o other · any other key: no"
    );
    assert_eq!(
        app.update(key(KeyCode::Char('h'))),
        [Effect::Report(theirs.id, ReportReason::Harassment)]
    );
    assert_eq!(app.status, "Reporting…");

    // Any other key reports nothing; nothing of theirs, nothing to ask.
    app.update(key(KeyCode::Char('!')));
    app.update(Msg::ReportLooked(bob.clone(), Ok(Some(theirs))));
    assert!(app.update(key(KeyCode::Char('y'))).is_empty());
    assert_eq!(app.status, "Not reported");
    app.update(key(KeyCode::Char('!')));
    app.update(Msg::ReportLooked(bob.clone(), Ok(None)));
    assert!(matches!(app.modal, Modal::None));
    assert_eq!(
        app.status,
        "None of the thread's latest 20 messages is bob's to report"
    );

    // Their words are shown as anyone's are: no reordering of the question around them.
    let reversed = Message {
        body: Some("\u{202e}evil\u{202c} text".into()),
        ..theirs_again()
    };
    app.update(key(KeyCode::Char('!')));
    app.update(Msg::ReportLooked(bob, Ok(Some(reversed))));
    let Modal::Choice(choice) = &app.modal else {
        panic!("asks why");
    };
    assert!(!choice.question.contains('\u{202e}'), "{}", choice.question);
}

/// A message of bob's in a thread like [`thread`]'s.
fn theirs_again() -> Message {
    let t = thread("Spam", 1);
    Message {
        id: MessageId::generate(),
        thread_id: t.id,
        subject: "Spam".into(),
        body: None,
        sender: t.participants[0].clone(),
        recipient: user("root"),
        is_read: true,
        created_at: Utc::now(),
        in_reply_to: None,
        expires_at: None,
        read_once: false,
    }
}

#[test]
fn a_report_made_before_is_told_as_the_server_kept_it() {
    assert_eq!(
        reported(ReportReason::Spam, ReportReason::Spam),
        "Reported to the operators as spam"
    );
    assert_eq!(
        reported(ReportReason::Spam, ReportReason::Harassment),
        "Already reported to the operators, as harassment"
    );
}

#[test]
fn archive_mute_and_unread_toggle_by_the_threads_state() {
    let mut app = App::new();
    let mut t = thread("T", 0);
    t.archived = true;
    t.muted = true;
    loaded(&mut app, vec![t.clone()]);
    assert_eq!(
        app.update(key(KeyCode::Char('a'))),
        [Effect::ThreadAction {
            thread: t.id,
            action: ThreadAction::Unarchive,
            done: "Moved to the inbox"
        }]
    );
    assert_eq!(
        app.update(key(KeyCode::Char('m'))),
        [Effect::ThreadAction {
            thread: t.id,
            action: ThreadAction::Unmute,
            done: "Unmuted"
        }]
    );
    let last = t.last_message.as_ref().unwrap().id;
    assert_eq!(
        app.update(key(KeyCode::Char('u'))),
        [Effect::MarkUnread(last)]
    );
}

#[test]
fn coming_back_after_a_dropped_connection_refetches() {
    let mut app = App::new();
    assert!(
        app.update(Msg::Connection(Connection::Live)).is_empty(),
        "first connect: start() loaded"
    );
    assert!(
        app.update(Msg::Connection(Connection::Reconnecting(2)))
            .is_empty()
    );
    let effects = app.update(Msg::Connection(Connection::Live));
    assert!(effects.contains(&Effect::LoadMe));
}

#[test]
fn folders_switch_with_tab_and_enter() {
    let mut app = App::new();
    app.update(key(KeyCode::Tab));
    assert_eq!(app.pane, Pane::Folders);
    app.update(key(KeyCode::Char('j')));
    let effects = app.update(key(KeyCode::Enter));
    assert_eq!(
        effects,
        [Effect::LoadThreads {
            folder: Folder::Sent,
            cursor: None
        }]
    );
    assert_eq!(
        (app.mailbox.folder, app.pane),
        (Folder::Sent, Pane::Threads)
    );
}

#[test]
fn scrolling_near_the_end_loads_the_next_page() {
    let mut app = App::new();
    let folder = app.mailbox.folder;
    let threads: Vec<Thread> = (0..11).map(|i| thread(&i.to_string(), 0)).collect();
    app.update(Msg::Threads {
        folder,
        append: false,
        result: Ok(Page {
            items: threads,
            next_cursor: Some("c1".into()),
        }),
    });
    let effects = app.update(key(KeyCode::Char('j')));
    assert_eq!(
        effects,
        [Effect::LoadThreads {
            folder,
            cursor: Some("c1".into())
        }]
    );
    assert!(app.update(key(KeyCode::Char('j'))).is_empty(), "asked once");
}

fn admin_app() -> App {
    let mut app = App::new();
    app.me = Some(Me {
        user: convos_core::api::User {
            id: UserId::generate(),
            username: "root".into(),
            email: "root@example.com".into(),
            display_name: "Root".into(),
            is_admin: true,
            created_at: Utc::now(),
            email_verified: true,
            email_stopped: None,
        },
        unread_count: 0,
        unread_by_folder: Default::default(),
        settings: convos_core::api::Preferences::new(true),
    });
    app
}

pub(crate) fn board() -> convos_core::ops::Board {
    let queue = |name: &str, dead: i64, paused: bool| convos_core::ops::QueueStats {
        name: name.into(),
        pending: 3,
        scheduled: 1,
        running: 2,
        succeeded_1h: 40,
        succeeded_24h: 900,
        failed_1h: 5,
        failed_24h: 9,
        dead,
        oldest_pending_secs: 75.0,
        paused,
        count_limit: Some(100_000),
    };
    convos_core::ops::Board {
        queues: vec![
            queue("deliver", 0, false),
            queue("notify_email", 2, true),
            queue("purge_expired", 0, false),
        ],
        workers: vec![],
    }
}

pub(crate) fn dead_job() -> convos_core::ops::JobSummary {
    let at = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 11, 22, 9, 0, 0).unwrap();
    convos_core::ops::JobSummary {
        id: uuid::Uuid::nil(),
        kind: "notify_email".into(),
        state: "dead".into(),
        attempts: 8,
        max_attempts: 8,
        next_run_at: at,
        last_error: Some("smtp: Connection refused (os error 111)".into()),
        outcome: None,
        created_at: at,
        updated_at: at,
    }
}

#[test]
fn the_queue_board_is_for_operators_only() {
    let mut app = App::new();
    assert!(app.update(key(KeyCode::Char('O'))).is_empty());
    assert!(matches!(app.modal, Modal::None));
    assert_eq!(app.status, "The queue board is for operators");
}

#[test]
fn operators_pause_retry_and_discard_with_a_confirmation() {
    let mut app = admin_app();
    assert_eq!(
        app.update(key(KeyCode::Char('O'))),
        [Effect::LoadBoard, Effect::LoadDeadJobs(None)]
    );
    app.update(Msg::Board(Ok(board())));
    app.update(Msg::DeadJobs(
        None,
        Ok(Page {
            items: vec![dead_job()],
            next_cursor: None,
        }),
    ));
    app.update(key(KeyCode::Char('j')));
    assert!(app.update(key(KeyCode::Char('p'))).is_empty(), "asks first");
    let effects = app.update(key(KeyCode::Char('y')));
    assert_eq!(
        effects,
        [Effect::Admin {
            command: OpsCommand::Resume("notify_email".into()),
            done: "Resumed".into(),
            unchanged: "Resumed".into(),
        }],
        "notify_email is paused, so p resumes"
    );
    app.update(key(KeyCode::Tab));
    app.update(key(KeyCode::Char('r')));
    assert!(app.update(key(KeyCode::Char('n'))).is_empty(), "n cancels");
    app.update(key(KeyCode::Char('x')));
    let id = uuid::Uuid::nil();
    assert_eq!(
        app.update(key(KeyCode::Char('y'))),
        [Effect::Admin {
            command: OpsCommand::Discard(id),
            done: "Discarded".into(),
            unchanged: "Nothing discarded: that job is no longer dead".into(),
        }]
    );
    let after = app.update(Msg::Done("Discarded".into(), Ok(())));
    assert_eq!(
        after,
        [Effect::LoadBoard, Effect::LoadDeadJobs(None)],
        "the board reloads, not the mailbox"
    );
    assert_eq!(
        app.update(Msg::Tick),
        [Effect::LoadBoard, Effect::LoadDeadJobs(None)],
        "and refreshes on its own"
    );
    app.update(key(KeyCode::Char('q')));
    assert!(matches!(app.modal, Modal::None));
    assert!(app.update(Msg::Tick).is_empty(), "no refresh once closed");
}

#[test]
fn slash_searches_and_enter_opens_the_thread_of_a_result() {
    let mut app = App::new();
    loaded(&mut app, vec![thread("Unrelated", 0)]);
    app.update(key(KeyCode::Char('/')));
    type_text(&mut app, "ramen q");
    app.update(key(KeyCode::Backspace));
    app.update(key(KeyCode::Backspace));
    assert_eq!(
        app.update(key(KeyCode::Enter)),
        [Effect::Search("ramen".into())]
    );
    let hit = convos_core::api::SearchHit {
        message_id: MessageId::generate(),
        thread_id: ThreadId::generate(),
        subject: "Ramen".into(),
        sender: user("alice"),
        excerpt: Some("the «ramen» place".into()),
        created_at: Utc::now(),
        rank: 0.5,
    };
    app.update(Msg::SearchResults(
        "ramen".into(),
        Ok(Page {
            items: vec![hit.clone()],
            next_cursor: None,
        }),
    ));
    assert_eq!(app.status, "1 found");
    assert_eq!(
        app.update(key(KeyCode::Enter)),
        [Effect::OpenThread(hit.thread_id)]
    );
    let mut found = thread("Ramen", 1);
    found.id = hit.thread_id;
    let opened = app.update(Msg::ThreadLoaded(Ok(found)));
    assert!(opened.contains(&Effect::LoadMessages(hit.thread_id)));
    assert_eq!(app.pane, Pane::Thread);
    app.update(key(KeyCode::Char('q')));
    app.update(key(KeyCode::Char('q')));
    assert!(
        app.search.is_none() && !app.quit,
        "q leaves the results before quitting"
    );
}

#[test]
fn o_opens_a_sealed_read_once_message_once() {
    let mut app = App::new();
    let me = user("bob");
    app.me = Some(Me {
        user: convos_core::api::User {
            id: me.id,
            username: "bob".into(),
            email: "bob@example.com".into(),
            display_name: "BOB".into(),
            is_admin: false,
            created_at: Utc::now(),
            email_verified: true,
            email_stopped: None,
        },
        unread_count: 1,
        unread_by_folder: Default::default(),
        settings: convos_core::api::Preferences::new(true),
    });
    let t = thread("Secret", 1);
    loaded(&mut app, vec![t.clone()]);
    app.update(key(KeyCode::Enter));
    let sealed = Message {
        id: MessageId::generate(),
        thread_id: t.id,
        subject: "Secret".into(),
        body: None,
        sender: user("alice"),
        recipient: me,
        is_read: false,
        created_at: Utc::now(),
        in_reply_to: None,
        expires_at: None,
        read_once: true,
    };
    app.update(Msg::Messages {
        thread: t.id,
        older: false,
        result: Ok(Page {
            items: vec![sealed.clone()],
            next_cursor: None,
        }),
    });
    assert_eq!(
        app.update(key(KeyCode::Char('o'))),
        [Effect::OpenOnce(sealed.id)]
    );
    let opened = Message {
        body: Some("the code is 1234".into()),
        is_read: true,
        ..sealed
    };
    app.update(Msg::Opened(Ok(opened)));
    let shown = &app.thread.open.as_ref().unwrap().messages.as_ref().unwrap()[0];
    assert_eq!(shown.body.as_deref(), Some("the code is 1234"));
    assert!(
        app.update(key(KeyCode::Char('o'))).is_empty(),
        "nothing left to open"
    );
}

#[test]
fn a_queued_message_refused_for_the_days_volume_waits_as_long_as_the_server_says() {
    // Retried every ten seconds for a day, each retry spent one of the minute's sends: five
    // queued messages left none for the ones typed by hand (a review's finding).
    let mut app = App::new();
    compose_to_bob(&mut app, "Queued", "the report");
    let effects = app.update(ctrl('s'));
    let [Effect::Send { key: sent_key, .. }] = effects.as_slice() else {
        panic!("{effects:?}")
    };
    let sent_key = sent_key.clone();
    app.update(Msg::Sent(
        draft_key(&app),
        Err(ApiError::Offline("no route to host".into())),
    ));
    assert_eq!(app.outbox.len(), 1);

    let said = "you have sent today's volume of messages; you can send more in 65 seconds";
    app.update(Msg::Flushed {
        key: sent_key,
        result: Err(ApiError::Server {
            status: 429,
            body: ErrorBody::new("rate_limited", said),
            retry_after: Some(65),
        }),
    });
    assert_eq!(app.status, format!("Queued message not sent yet: {said}"));
    assert_eq!(app.outbox.len(), 1, "still queued");
    for tick in 0..7 {
        assert!(app.update(Msg::RetryOutbox).is_empty(), "retry {tick} held");
    }
    assert_eq!(
        app.update(Msg::RetryOutbox),
        [Effect::Flush(app.outbox.clone())],
        "tried again once the 65 s are past"
    );
}

#[test]
fn a_message_written_offline_is_queued_and_sent_once_the_server_answers() {
    let mut app = App::new();
    compose_to_bob(&mut app, "Offline", "written on a train");
    let effects = app.update(ctrl('s'));
    let [Effect::Send { key: sent_key, .. }] = effects.as_slice() else {
        panic!("{effects:?}")
    };
    let sent_key = sent_key.clone();
    let effects = app.update(Msg::Sent(
        draft_key(&app),
        Err(ApiError::Offline("no route to host".into())),
    ));
    assert!(matches!(app.modal, Modal::None), "the composer closes");
    assert_eq!(app.outbox.len(), 1);
    assert_eq!(app.outbox[0].key, sent_key, "the same key goes with it");
    assert_eq!(
        effects,
        [
            Effect::SaveOutbox(app.outbox.clone()),
            Effect::DeleteDraft(sent_key.clone())
        ],
        "kept on disk, in the outbox instead of the drafts"
    );

    app.update(Msg::Connection(Connection::Reconnecting(2)));
    let back = app.update(Msg::Connection(Connection::Live));
    assert!(
        back.contains(&Effect::Flush(app.outbox.clone())),
        "sent when the server answers"
    );
    assert!(
        app.update(Msg::Flushed {
            key: sent_key.clone(),
            result: Err(ApiError::Offline("again".into()))
        })
        .is_empty()
    );
    assert_eq!(app.outbox.len(), 1, "still queued");
    assert_eq!(
        app.update(Msg::RetryOutbox),
        [Effect::Flush(app.outbox.clone())]
    );
    let sent = Message {
        id: MessageId::generate(),
        thread_id: ThreadId::generate(),
        subject: "Offline".into(),
        body: Some("written on a train".into()),
        sender: user("alice"),
        recipient: user("bob"),
        is_read: true,
        created_at: Utc::now(),
        in_reply_to: None,
        expires_at: None,
        read_once: false,
    };
    let done = app.update(Msg::Flushed {
        key: sent_key,
        result: Ok(sent),
    });
    assert!(app.outbox.is_empty());
    assert!(done.contains(&Effect::SaveOutbox(vec![])));
}

#[test]
fn a_queued_message_the_server_refuses_goes_back_to_the_editor() {
    let mut app = App::new();
    app.outbox.push(Outgoing {
        key: "k1".into(),
        reply_to: None,
        recipient: "gone".into(),
        subject: "Hello".into(),
        body: "are you there".into(),
        options: Default::default(),
    });
    let mut body = ErrorBody::new("validation_failed", "the request has invalid fields");
    body.error.fields = Some(
        [(
            "recipient".to_owned(),
            "no user has this username".to_owned(),
        )]
        .into(),
    );
    app.update(Msg::Flushed {
        key: "k1".into(),
        result: Err(ApiError::Server {
            status: 422,
            body,
            retry_after: None,
        }),
    });
    let Modal::Compose(compose) = &app.modal else {
        panic!("back in the editor")
    };
    assert_eq!(
        (compose.recipient.as_str(), compose.body_text().as_str()),
        ("gone", "are you there")
    );
    assert_eq!(compose.key, "k1", "a resend keeps its key");
    assert!(compose.errors.contains_key("recipient"));
    assert!(app.outbox.is_empty());
}

#[test]
fn a_thread_shows_its_newest_messages_and_fetches_older_ones_going_up() {
    let mut app = App::new();
    let t = thread("Long", 0);
    loaded(&mut app, vec![t.clone()]);
    app.update(key(KeyCode::Enter));
    let message = |body: &str| Message {
        id: MessageId::generate(),
        thread_id: t.id,
        subject: "Long".into(),
        body: Some(body.into()),
        sender: user("alice"),
        recipient: user("bob"),
        is_read: true,
        created_at: Utc::now(),
        in_reply_to: None,
        expires_at: None,
        read_once: false,
    };
    // Pages arrive newest first; the view shows them oldest first, newest at the bottom.
    let newest = Page {
        items: vec![message("4"), message("3")],
        next_cursor: Some("c".into()),
    };
    app.update(Msg::Messages {
        thread: t.id,
        older: false,
        result: Ok(newest),
    });
    let bodies = |app: &App| -> Vec<String> {
        app.thread
            .open
            .as_ref()
            .unwrap()
            .messages
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.body.clone().unwrap())
            .collect()
    };
    assert_eq!(bodies(&app), ["3", "4"]);
    assert_eq!(
        app.update(key(KeyCode::Char('g'))),
        [Effect::LoadOlder(t.id, "c".into())]
    );
    let older = Page {
        items: vec![message("2"), message("1")],
        next_cursor: None,
    };
    app.update(Msg::Messages {
        thread: t.id,
        older: true,
        result: Ok(older),
    });
    assert_eq!(bodies(&app), ["1", "2", "3", "4"]);
    assert!(
        app.update(key(KeyCode::Char('g'))).is_empty(),
        "nothing older left"
    );
}

#[test]
fn tab_completes_the_recipient_from_the_directory() {
    let mut app = App::new();
    app.update(key(KeyCode::Char('c')));
    type_text(&mut app, "al");
    assert_eq!(
        app.update(key(KeyCode::Tab)),
        [Effect::Complete("al".into())]
    );
    app.update(Msg::Completions {
        prefix: "al".into(),
        result: Ok(vec!["alice".into(), "alicia".into()]),
    });
    let Modal::Compose(compose) = &app.modal else {
        panic!()
    };
    assert_eq!(compose.recipient, "alic", "the shared part is filled in");
    assert_eq!(compose.suggestions, ["alice", "alicia"]);
    type_text(&mut app, "e");
    assert!(
        !app.update(key(KeyCode::Tab))
            .iter()
            .any(|e| matches!(e, Effect::Complete(_))),
        "a known username: Tab moves on (saving the draft, not asking the directory)"
    );
    let Modal::Compose(compose) = &app.modal else {
        panic!()
    };
    assert_eq!(compose.field, Field::Subject);
}

#[test]
fn a_single_match_completes_the_whole_name_and_none_says_so() {
    let mut app = App::new();
    app.update(key(KeyCode::Char('c')));
    type_text(&mut app, "bo");
    app.update(key(KeyCode::Tab));
    app.update(Msg::Completions {
        prefix: "bo".into(),
        result: Ok(vec!["bob".into()]),
    });
    let Modal::Compose(compose) = &app.modal else {
        panic!()
    };
    assert_eq!(compose.recipient, "bob");
    app.update(key(KeyCode::Char('x')));
    app.update(key(KeyCode::Tab));
    app.update(Msg::Completions {
        prefix: "bobx".into(),
        result: Ok(vec![]),
    });
    let Modal::Compose(compose) = &app.modal else {
        panic!()
    };
    assert!(compose.errors["recipient"].contains("no user"));
}

#[test]
fn an_answer_for_a_discarded_draft_never_lands_on_the_next_one() {
    let mut app = App::new();
    compose_to_bob(&mut app, "A", "first");
    let first = draft_key(&app);
    app.update(ctrl('s'));
    app.update(key(KeyCode::Esc));
    app.update(key(KeyCode::Esc));
    app.update(key(KeyCode::Char('c')));
    type_text(&mut app, "half-written");
    app.update(Msg::Sent(first, Err(ApiError::Offline("gone".into()))));
    assert!(
        app.outbox.is_empty(),
        "the second draft is not queued in the first one's place"
    );
    let Modal::Compose(compose) = &app.modal else {
        panic!("the second draft stays open")
    };
    assert_eq!(compose.recipient, "half-written");
}

#[test]
fn a_reset_from_the_server_refetches_everything() {
    let mut app = App::new();
    app.update(Msg::Connection(Connection::Live));
    let effects = app.update(Msg::Reset);
    assert!(effects.contains(&Effect::LoadMe));
    assert!(effects.contains(&Effect::LoadThreads {
        folder: Folder::Inbox,
        cursor: None
    }));
}

#[test]
fn a_queued_message_stays_queued_when_the_server_is_in_trouble() {
    let mut app = App::new();
    app.outbox.push(Outgoing {
        key: "k".into(),
        reply_to: None,
        recipient: "bob".into(),
        subject: "s".into(),
        body: "b".into(),
        options: Default::default(),
    });
    for status in [503, 502, 429, 408] {
        let body = ErrorBody::new("unavailable", "try later");
        app.update(Msg::Flushed {
            key: "k".into(),
            result: Err(ApiError::Server {
                status,
                body,
                retry_after: None,
            }),
        });
        assert_eq!(app.outbox.len(), 1, "{status}: kept");
        assert!(matches!(app.modal, Modal::None));
    }
    // A refusal while another draft is open waits for it.
    app.update(key(KeyCode::Char('c')));
    let body = ErrorBody::new("validation_failed", "nope");
    app.update(Msg::Flushed {
        key: "k".into(),
        result: Err(ApiError::Server {
            status: 422,
            body,
            retry_after: None,
        }),
    });
    assert_eq!(app.outbox.len(), 1);
    let Modal::Compose(compose) = &app.modal else {
        panic!()
    };
    assert!(compose.recipient.is_empty(), "the open draft is untouched");
}

#[test]
fn every_mode_reads_its_keys_from_the_key_table() {
    let overrides = std::collections::BTreeMap::from([
        ("composer.send".to_owned(), "ctrl+x".to_owned()),
        ("composer.discard".to_owned(), "ctrl+q".to_owned()),
        ("search_prompt.submit".to_owned(), "tab".to_owned()),
        ("quit".to_owned(), "ctrl+d".to_owned()),
    ]);
    let mut app = App::new();
    app.keymap = keys::Keymap::with_overrides(&overrides).unwrap();
    compose_to_bob(&mut app, "Hi", "there");
    assert!(app.update(ctrl('s')).is_empty(), "Ctrl-s is no longer send");
    assert!(matches!(
        app.update(ctrl('x')).as_slice(),
        [Effect::Send { .. }]
    ));
    app.update(ctrl('q'));
    app.update(ctrl('q'));
    assert!(
        matches!(app.modal, Modal::None),
        "discarded with the new key"
    );

    app.update(key(KeyCode::Char('/')));
    type_text(&mut app, "ramen");
    assert_eq!(
        app.update(key(KeyCode::Tab)),
        [Effect::Search("ramen".into())]
    );
    app.update(ctrl('c'));
    assert!(!app.quit, "Ctrl-c was rebound");
    app.update(ctrl('d'));
    assert!(app.quit);
}

#[test]
fn a_refused_search_goes_back_to_its_words_and_says_why() {
    let mut app = App::new();
    loaded(&mut app, vec![thread("Unrelated", 0)]);
    app.update(key(KeyCode::Char('/')));
    type_text(&mut app, "one two three four five six seven eight nine");
    app.update(key(KeyCode::Enter));
    let mut fields = std::collections::BTreeMap::new();
    fields.insert(
        "q".to_owned(),
        "has 9 words; search with at most 8".to_owned(),
    );
    let refused = crate::api::ApiError::Server {
        status: 422,
        body: convos_core::ErrorBody {
            error: convos_core::error::ErrorDetail {
                code: "validation_failed".into(),
                message: "the request has invalid fields".into(),
                fields: Some(fields),
            },
        },
        retry_after: None,
    };
    app.update(Msg::SearchResults(
        "one two three four five six seven eight nine".into(),
        Err(refused),
    ));
    assert_eq!(
        app.status,
        "Search refused: the query has 9 words; search with at most 8"
    );
    let search = app.search.as_ref().unwrap();
    assert!(search.editing, "the prompt is back, not \"Searching…\"");
    app.update(key(KeyCode::Backspace));
    assert_eq!(
        app.search.as_ref().unwrap().query,
        "one two three four five six seven eight nin",
        "with the words kept"
    );
}

#[test]
fn the_highlighted_dead_job_stays_on_its_job_when_new_ones_arrive() {
    // New dead jobs come first: kept by its place, the highlight moved onto another job, which
    // a retry or discard then acted on.
    let mut app = admin_app();
    app.update(key(KeyCode::Char('O')));
    app.update(Msg::Board(Ok(board())));
    let job = |n: u128| convos_core::ops::JobSummary {
        id: uuid::Uuid::from_u128(n),
        ..dead_job()
    };
    let page = |ids: &[u128]| Page {
        items: ids.iter().map(|&n| job(n)).collect(),
        next_cursor: None,
    };
    app.update(Msg::DeadJobs(None, Ok(page(&[3, 2, 1]))));
    app.update(key(KeyCode::Tab));
    app.update(key(KeyCode::Char('j')));
    app.update(Msg::DeadJobs(None, Ok(page(&[5, 4, 3, 2, 1]))));
    app.update(key(KeyCode::Char('x')));
    assert_eq!(
        app.update(key(KeyCode::Char('y'))),
        [Effect::Admin {
            command: OpsCommand::Discard(uuid::Uuid::from_u128(2)),
            done: "Discarded".into(),
            unchanged: "Nothing discarded: that job is no longer dead".into(),
        }],
        "still job 2"
    );
}

#[test]
fn the_dead_jobs_page_back_and_forth_and_each_page_refreshes_itself() {
    // The list stopped at the newest 100 dead jobs, with no way to the rest.
    let mut app = admin_app();
    app.update(key(KeyCode::Char('O')));
    app.update(Msg::Board(Ok(board())));
    let job = |n: u128| convos_core::ops::JobSummary {
        id: uuid::Uuid::from_u128(n),
        ..dead_job()
    };
    let page = |ids: &[u128], next: Option<&str>| Page {
        items: ids.iter().map(|&n| job(n)).collect(),
        next_cursor: next.map(str::to_owned),
    };
    app.update(Msg::DeadJobs(None, Ok(page(&[9, 8, 7], Some("c1")))));
    app.update(key(KeyCode::Tab));
    assert_eq!(
        app.update(key(KeyCode::PageDown)),
        [Effect::LoadDeadJobs(Some("c1".into()))]
    );
    // The first page's refresh, answered late, does not land on the second.
    app.update(Msg::DeadJobs(None, Ok(page(&[10, 9, 8], Some("c1")))));
    app.update(Msg::DeadJobs(Some("c1".into()), Ok(page(&[6, 5], None))));
    let Modal::Ops(ops) = &app.modal else {
        panic!("the board is open")
    };
    assert_eq!(
        ops.dead.iter().map(|j| j.id.as_u128()).collect::<Vec<_>>(),
        [6, 5]
    );
    assert_eq!(
        app.update(Msg::Tick),
        [Effect::LoadBoard, Effect::LoadDeadJobs(Some("c1".into()))],
        "the page shown is the page refreshed"
    );
    assert!(
        app.update(key(KeyCode::PageDown)).is_empty(),
        "no older page"
    );
    assert_eq!(
        app.update(key(KeyCode::PageUp)),
        [Effect::LoadDeadJobs(None)]
    );
    assert!(app.update(key(KeyCode::PageUp)).is_empty(), "no newer page");
}

#[test]
fn esc_backs_out_but_never_quits() {
    let mut app = App::new();
    loaded(&mut app, vec![thread("Lunch", 0)]);
    app.update(key(KeyCode::Esc));
    assert!(!app.quit, "one Esc too many quit the client");
    assert_eq!(app.status, "q quits");
    app.update(key(KeyCode::Char('q')));
    assert!(app.quit);
}

#[test]
fn ctrl_l_draws_the_whole_screen_again_wherever_the_keys_are() {
    // A wide glyph the terminal draws narrower than ratatui counts (flags) leaves ghosts in
    // cells the next diff never writes; there was no way to clear them.
    let mut app = App::new();
    loaded(&mut app, vec![thread("Lunch", 0)]);
    assert_eq!(app.update(ctrl('l')), [Effect::Redraw]);
    app.update(key(KeyCode::Char('c')));
    assert_eq!(
        app.update(ctrl('l')),
        [Effect::Redraw],
        "in the composer too"
    );
    assert!(matches!(app.modal, Modal::Compose(_)));
}
