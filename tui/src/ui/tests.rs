//! Snapshot tests: each screen drawn into a test backend and compared with the reviewed copy in
//! `src/ui/snapshots/` (`cargo insta review` after an intended change).

use super::*;
use crate::app::tests::{thread, user};
use crate::app::{App, Composer, Connection, Modal, OpenThread, Pane};
use chrono::TimeZone;
use convos_core::api::{Me, Preferences, User};
use convos_core::{MessageId, UserId};
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

fn app_with_inbox() -> App {
    let mut app = App::new();
    app.connection = Connection::Live;
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
        unread_count: 2,
        unread_by_folder: convos_core::api::FolderCounts {
            inbox: 2,
            sent: 0,
            archive: 0,
            all: 2,
        },
        settings: Preferences::new(true),
    });
    let mut lunch = thread("Lunch on Friday?", 2);
    lunch.participants = vec![
        user("bob"),
        convos_core::api::UserSummary {
            display_name: "Alice Liddell".into(),
            ..user("alice")
        },
    ];
    let mut report = thread("Quarterly report draft", 0);
    report.last_message_at = Utc.with_ymd_and_hms(2026, 11, 20, 9, 0, 0).unwrap();
    app.mailbox.threads = vec![lunch, report];
    app
}

fn message(body: &str, sender: &str) -> Message {
    Message {
        id: MessageId::generate(),
        thread_id: convos_core::ThreadId::generate(),
        subject: "Lunch on Friday?".into(),
        body: Some(body.into()),
        sender: user(sender),
        recipient: user("bob"),
        is_read: true,
        created_at: Utc.with_ymd_and_hms(2026, 11, 22, 8, 30, 0).unwrap(),
        in_reply_to: None,
        expires_at: None,
        read_once: false,
    }
}

#[test]
fn inbox() {
    insta::assert_snapshot!(draw(&app_with_inbox(), 100, 20));
}

#[test]
fn inbox_at_80_by_24() {
    insta::assert_snapshot!(draw(&app_with_inbox(), 80, 24));
}

#[test]
fn an_impostors_display_name_cannot_hide_their_username() {
    // Anyone may take the display name "Alice Liddell", padded to push the rest out of view.
    let mut app = app_with_inbox();
    app.mailbox.threads[1].participants = vec![
        user("bob"),
        convos_core::api::UserSummary {
            display_name: format!("Alice Liddell{}", " ".repeat(40)) + "x",
            ..user("mallory")
        },
    ];
    let screen = draw(&app, 80, 24);
    assert!(screen.contains("<alice>"), "{screen}");
    assert!(screen.contains("<mallory>"), "{screen}");
    // Emoji take two columns each, though their hearts alone are one.
    app.mailbox.threads[1].participants[1].display_name = "Alice \u{2764}\u{fe0f}".repeat(8);
    for width in [80, 100, 140] {
        let screen = draw(&app, width, 24);
        assert!(screen.contains("<mallory>"), "at {width}: {screen}");
    }
    // A username too long to stand beside any name stands alone, and the time keeps its place.
    app.mailbox.threads[1].participants[1] = convos_core::api::UserSummary {
        display_name: "Alice Liddell".into(),
        ..user("abcdefghijklmnopqrstuvwxyz")
    };
    let screen = draw(&app, 80, 24);
    let row = screen
        .lines()
        .find(|l| l.contains("abcdefghij"))
        .unwrap_or_else(|| panic!("{screen}"));
    assert!(row.contains("2d"), "{row}");
    assert!(!row.contains("Alice"), "{row}");
}

#[test]
fn the_folders_say_why_email_stopped() {
    let mut app = app_with_inbox();
    if let Some(me) = &mut app.me {
        me.user.email_stopped = Some(convos_core::api::EmailStopped::Bounced);
    }
    let screen = draw(&app, 80, 24);
    assert!(
        screen.contains("No email:") && screen.contains("bounced"),
        "{screen}"
    );
    insta::assert_snapshot!(screen);
}

#[test]
fn thread_view_with_wide_characters_and_an_expiring_message() {
    let mut app = app_with_inbox();
    let mut expiring = message("This one disappears.", "alice");
    expiring.expires_at = Some(Utc.with_ymd_and_hms(2026, 11, 22, 9, 35, 0).unwrap());
    let messages = vec![
        message(
            "Are you free for lunch on Friday? 🍜 拉麺 at noon.\nThe new place opened.",
            "alice",
        ),
        message("Sounds great! 12:30 works for me.", "bob"),
        expiring,
    ];
    app.thread.open = Some(OpenThread {
        thread: app.mailbox.threads[0].clone(),
        messages: Some(messages),
        older: None,
        scroll: 0,
    });
    app.pane = Pane::Thread;
    insta::assert_snapshot!(draw(&app, 100, 20));
}

#[test]
fn compose_with_field_errors() {
    let mut app = app_with_inbox();
    app.update(crate::app::Msg::Key(crossterm::event::KeyEvent::new(
        crossterm::event::KeyCode::Char('c'),
        crossterm::event::KeyModifiers::NONE,
    )));
    if let Modal::Compose(compose) = &mut app.modal {
        let compose: &mut Composer = compose;
        compose.recipient = "nobody".into();
        compose.subject = "Hello".into();
        compose.body.insert_str("Is anyone there?");
        compose
            .errors
            .insert("recipient".into(), "no user has this username".into());
    }
    insta::assert_snapshot!(draw(&app, 100, 20));
}

#[test]
fn help_lists_every_modes_keys_from_the_key_table() {
    let mut app = app_with_inbox();
    app.modal = Modal::Help(crate::app::Help::default());
    let screen = draw(&app, 160, 52);
    for (_, heading) in crate::app::help::SECTIONS {
        assert!(screen.contains(heading), "a heading for {heading}");
    }
    for binding in crate::keys::BINDINGS {
        let keys = app.keymap.describe(binding.mode, binding.action);
        assert!(
            screen.contains(&format!("{keys}  {}", binding.help)),
            "help shows {keys} {}",
            binding.help
        );
    }
    assert!(screen.contains(" any key closes "), "it all fits: {screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn help_at_80_by_24_scrolls_with_its_keys_and_closes_with_any_other() {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    let press = |c| crate::app::Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    let mut app = app_with_inbox();
    app.update(press('?'));
    let top = draw(&app, 80, 24);
    assert!(top.contains("j/k scroll"), "{top}");
    assert!(!top.contains("This help"), "{top}");
    insta::assert_snapshot!("help_at_80_by_24", top);

    app.update(press('G'));
    let end = draw(&app, 80, 24);
    assert!(end.contains("This help  [keys.help_screen]"), "{end}");
    insta::assert_snapshot!("help_at_80_by_24_at_the_end", end);

    app.update(press('k'));
    assert!(matches!(app.modal, Modal::Help(_)), "k scrolls");
    app.update(press('x'));
    assert!(matches!(app.modal, Modal::None), "any other key closes");
}

#[test]
fn reconnecting_status() {
    let mut app = app_with_inbox();
    app.connection = Connection::Reconnecting(4);
    app.status = "Sent".into();
    insta::assert_snapshot!(draw(&app, 100, 12));
}

#[test]
fn a_hostile_subject_is_shown_neutralised() {
    let mut app = app_with_inbox();
    // Invisible characters too: they must leave no trace, so the snapshot reads the same.
    app.mailbox.threads[0].subject =
        "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{1b}[31mFree\u{200b} mo\u{ad}ney\u{feff}".into();
    app.mailbox.threads[0].participants[1].display_name =
        "\u{2067}Mallory\u{1b}[5m\u{200f}\u{202e}".into();
    let screen = draw(&app, 100, 12);
    assert!(
        !screen.contains('\u{1b}') && !screen.contains('\u{7}'),
        "no control character is drawn"
    );
    assert!(
        !screen.contains([
            '\u{200b}', '\u{ad}', '\u{feff}', '\u{2067}', '\u{200f}', '\u{202e}'
        ]),
        "no invisible or bidirectional character is drawn"
    );
    insta::assert_snapshot!(screen);
}

#[test]
fn the_ops_screen() {
    let mut app = app_with_inbox();
    let mut ops = crate::app::Ops::default();
    ops.board = Some(crate::app::tests::board());
    ops.dead = vec![crate::app::tests::dead_job()];
    ops.focus = crate::app::OpsFocus::Dead;
    ops.queue = 1;
    app.modal = Modal::Ops(Box::new(ops.clone()));
    let board = draw(&app, 100, 24);
    assert!(board.contains("notify_email") && board.contains("paused"));
    insta::assert_snapshot!(board);
    ops.confirm = Some(convos_core::ops::OpsCommand::Retry(uuid::Uuid::nil()));
    app.modal = Modal::Ops(Box::new(ops));
    let confirm = draw(&app, 100, 24);
    assert!(confirm.contains("Retry job 00000000-0000-0000-0000-000000000000?  (y/n)"));
}

#[test]
fn search_results_with_highlights() {
    let mut app = app_with_inbox();
    app.search = Some(crate::app::Search {
        query: "ramen".into(),
        editing: false,
        hits: Some(vec![convos_core::api::SearchHit {
            message_id: MessageId::generate(),
            thread_id: convos_core::ThreadId::generate(),
            subject: "Lunch on Friday?".into(),
            sender: user("alice"),
            excerpt: Some("the new «ramen» place opened".into()),
            created_at: Utc.with_ymd_and_hms(2026, 11, 22, 8, 0, 0).unwrap(),
            rank: 0.6,
        }]),
        selected: 0,
    });
    insta::assert_snapshot!(draw(&app, 100, 12));
}

#[test]
fn a_rebound_key_changes_the_hints_and_the_help() {
    let overrides = std::collections::BTreeMap::from([
        ("help".to_owned(), "h".to_owned()),
        ("composer.send".to_owned(), "ctrl+x".to_owned()),
    ]);
    let mut app = app_with_inbox();
    app.keymap = crate::keys::Keymap::with_overrides(&overrides).unwrap();

    let mailbox = draw(&app, 100, 12);
    assert!(
        mailbox.contains("h help") && !mailbox.contains("? help"),
        "{mailbox}"
    );

    app.modal = Modal::Help(crate::app::Help::default());
    let help = draw(&app, 160, 50);
    assert!(help.contains("        h  this help"), "{help}");
    assert!(
        help.contains("   Ctrl-x  send") && !help.contains("Ctrl-s"),
        "{help}"
    );

    app.modal = Modal::Compose(Box::new(Composer::new(None)));
    let composer = draw(&app, 100, 20);
    assert!(
        composer.contains("Ctrl-x send · Ctrl-e $EDITOR"),
        "{composer}"
    );
    assert!(!composer.contains("Ctrl-s"), "{composer}");
}

#[test]
fn the_read_once_and_ops_hints_follow_the_keys() {
    let overrides = std::collections::BTreeMap::from([
        ("open_once".to_owned(), "enter".to_owned()),
        ("open".to_owned(), "space".to_owned()),
        ("queue_board.close".to_owned(), "esc".to_owned()),
        ("confirm.yes".to_owned(), "Y".to_owned()),
    ]);
    let mut app = app_with_inbox();
    app.keymap = crate::keys::Keymap::with_overrides(&overrides).unwrap();
    assert!(draw(&app, 100, 12).contains("press Space to read it"));

    let mut sealed = message("", "alice");
    sealed.body = None;
    sealed.read_once = true;
    sealed.recipient.id = app.me.as_ref().unwrap().user.id;
    app.thread.open = Some(OpenThread {
        thread: app.mailbox.threads[0].clone(),
        messages: Some(vec![sealed]),
        older: None,
        scroll: 0,
    });
    let thread = draw(&app, 160, 12);
    assert!(thread.contains("press Enter to open it"), "{thread}");

    let mut asking = crate::app::Ops::default();
    asking.board = Some(crate::app::tests::board());
    asking.confirm = Some(convos_core::ops::OpsCommand::Pause("deliver".into()));
    app.modal = Modal::Ops(Box::new(asking));
    let ops = draw(&app, 120, 24);
    assert!(
        ops.contains("· Esc close") && ops.contains("(Y/n)"),
        "{ops}"
    );
}

#[test]
fn the_spinner_shows_what_the_runtime_counts() {
    let mut app = App::new();
    app.update(crate::app::Msg::InFlight(2));
    let screen = draw(&app, 100, 12);
    assert!(
        screen.contains("⟳") && screen.contains("Loading…"),
        "{screen}"
    );
    app.update(crate::app::Msg::InFlight(0));
    let screen = draw(&app, 100, 12);
    assert!(
        !screen.contains("⟳") && screen.contains("No conversations here."),
        "{screen}"
    );
}

/// The app with `messages` open in the thread pane.
fn app_with_thread(messages: Vec<Message>) -> App {
    let mut app = app_with_inbox();
    app.thread.open = Some(OpenThread {
        thread: app.mailbox.threads[0].clone(),
        messages: Some(messages),
        older: None,
        scroll: 0,
    });
    app.pane = Pane::Thread;
    app
}

#[test]
fn the_end_of_a_long_wrapped_message_shows_at_the_bottom() {
    // Words wrap before the pane's edge, so a message takes more rows than its characters
    // divided by the width: counted that way, its last lines sat below the pane, out of reach.
    let word = "abcdefghijklmnopqrstuvwxyz01";
    let body: Vec<String> = (0..20)
        .map(|i| format!("{i:02}{} {word} {word}", &word[2..]))
        .chain(["THE END of the newest message".to_owned()])
        .collect();
    let app = app_with_thread(vec![message(&body.join("\n"), "alice")]);
    for width in [70, 100, 133] {
        let screen = draw(&app, width, 30);
        assert!(screen.contains("THE END"), "width {width}:\n{screen}");
    }
}

#[test]
fn a_thread_of_more_rows_than_a_u16_scrolls_to_its_top_and_back() {
    let long = |n: usize| format!("{}LAST OF MESSAGE {n}", "x\n".repeat(31_000));
    let mut app = app_with_thread(vec![
        message(&format!("FIRST LINE\n{}", long(1)), "alice"),
        message(&long(2), "bob"),
        message(&long(3), "alice"),
    ]);
    assert!(draw(&app, 100, 20).contains("LAST OF MESSAGE 3"));
    app.thread.scroll(Action::Top);
    let top = draw(&app, 100, 20);
    assert!(top.contains("FIRST LINE"), "{top}");
    app.thread.scroll(Action::PageDown);
    let paged = draw(&app, 100, 20);
    assert!(
        !paged.contains("FIRST LINE"),
        "a page down from the top moves: {paged}"
    );
    app.thread.scroll(Action::Bottom);
    assert!(draw(&app, 100, 20).contains("LAST OF MESSAGE 3"));
}

#[test]
fn a_subject_longer_than_the_window_keeps_its_cursor_and_counter_in_sight() {
    // Typing past the window's width drew the cursor and the 140-character counter past its
    // edge: the counter was hidden exactly when it mattered.
    let mut app = app_with_inbox();
    app.update(crate::app::Msg::Key(crossterm::event::KeyEvent::new(
        crossterm::event::KeyCode::Char('c'),
        crossterm::event::KeyModifiers::NONE,
    )));
    if let Modal::Compose(compose) = &mut app.modal {
        let compose: &mut Composer = compose;
        compose.recipient = "bob".into();
        compose.subject = format!("{}THE END", "拉麺".repeat(50));
        compose.field = crate::app::Field::Subject;
    }
    let screen = draw(&app, 80, 20);
    let line = screen
        .lines()
        .find(|l| l.contains("Subject:"))
        .expect("the subject's line");
    assert!(line.contains("THE END▏"), "{line}");
    assert!(line.contains("107/140"), "{line}");
    assert!(line.contains('…'), "{line}");
}

#[test]
fn a_search_longer_than_the_window_keeps_its_end_in_sight() {
    let mut app = app_with_inbox();
    let mut search = crate::app::Search::new();
    search.query = format!("{} tail", "word ".repeat(30));
    app.search = Some(search);
    let screen = draw(&app, 80, 20);
    assert!(screen.contains("tail▏"), "{screen}");
}
