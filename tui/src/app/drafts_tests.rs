//! Drafts in the state machine: typing schedules a save, a change of field saves at once, a
//! send or a queue deletes the draft, a discard asks first, quitting keeps the draft, the list
//! resumes a draft with every field and option, and a thread with a draft reply offers it.
//! Then the drafts list and a resumed composer as snapshots.

use super::tests::{loaded, thread, user};
use super::*;
use chrono::{DateTime, TimeZone, Utc};
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

fn composer(app: &App) -> &Composer {
    match &app.modal {
        Modal::Compose(composer) => composer,
        other => panic!("no composer: {other:?}"),
    }
}

/// A new message to bob, subject "Plans", the body being typed.
fn writing_to_bob(app: &mut App, body: &str) {
    app.update(key(KeyCode::Char('c')));
    type_text(app, "bob");
    app.update(key(KeyCode::Tab));
    app.update(Msg::Completions {
        prefix: "bob".into(),
        result: Ok(vec!["bob".into()]),
    });
    type_text(app, "Plans");
    app.update(key(KeyCode::Tab));
    type_text(app, body);
}

fn saved(effects: &[Effect]) -> Option<&Draft> {
    effects.iter().find_map(|e| match e {
        Effect::SaveDraft(draft) => Some(draft),
        _ => None,
    })
}

fn sent_message(thread: ThreadId) -> Message {
    Message {
        id: MessageId::generate(),
        thread_id: thread,
        subject: "Plans".into(),
        body: Some("text".into()),
        sender: user("alice"),
        recipient: user("bob"),
        is_read: true,
        created_at: now(),
        in_reply_to: None,
        expires_at: None,
        read_once: false,
    }
}

fn a_draft(body: &str) -> Draft {
    Draft {
        key: uuid::Uuid::new_v4().to_string(),
        reply_to: None,
        recipient: "bob".into(),
        subject: "Plans for Saturday".into(),
        body: body.into(),
        expiry: "2h".into(),
        read_once: true,
        saved_at: Some(now() - chrono::TimeDelta::minutes(5)),
    }
}

#[test]
fn typing_schedules_a_save_that_the_pause_carries_out_once() {
    let mut app = App::new();
    writing_to_bob(&mut app, "See you at");
    assert!(app.draft_pending(), "typing leaves a save to do");
    let effects = app.update(Msg::SaveDraft);
    let draft = saved(&effects).expect("the pause saves the draft");
    assert_eq!(draft.recipient, "bob");
    assert_eq!(draft.subject, "Plans");
    assert_eq!(draft.body, "See you at");
    assert_eq!(
        draft.key,
        composer(&app).key,
        "the file is named by its send key"
    );
    assert!(!app.draft_pending());
    assert!(
        app.update(Msg::SaveDraft).is_empty(),
        "nothing new: no save"
    );
    assert_eq!(app.drafts.len(), 1);
}

#[test]
fn a_change_of_field_or_option_saves_at_once() {
    let mut app = App::new();
    writing_to_bob(&mut app, "hello");
    let effects = app.update(ctrl('o'));
    assert!(saved(&effects).is_some_and(|d| d.read_once));
    let effects = app.update(key(KeyCode::BackTab));
    assert!(saved(&effects).is_some_and(|d| d.body == "hello"));
}

#[test]
fn an_empty_composer_saves_nothing() {
    let mut app = App::new();
    app.update(key(KeyCode::Char('c')));
    assert!(saved(&app.update(key(KeyCode::Tab))).is_none());
    assert!(app.on_exit().is_empty());
}

#[test]
fn sending_deletes_the_draft() {
    let mut app = App::new();
    writing_to_bob(&mut app, "See you at noon");
    app.update(Msg::SaveDraft);
    let key = composer(&app).key.clone();
    app.update(ctrl('s'));
    let effects = app.update(Msg::Sent(
        key.clone(),
        Ok(sent_message(ThreadId::generate())),
    ));
    assert!(effects.contains(&Effect::DeleteDraft(key)));
    assert!(app.drafts.is_empty());
}

#[test]
fn queueing_in_the_outbox_deletes_the_draft() {
    let mut app = App::new();
    writing_to_bob(&mut app, "offline text");
    app.update(Msg::SaveDraft);
    let key = composer(&app).key.clone();
    app.update(ctrl('s'));
    let effects = app.update(Msg::Sent(
        key.clone(),
        Err(ApiError::Offline("unreachable".into())),
    ));
    assert!(effects.contains(&Effect::DeleteDraft(key.clone())));
    assert_eq!(app.outbox[0].key, key, "the outbox has it now");
    assert!(app.drafts.is_empty());
}

#[test]
fn discarding_asks_whether_to_keep_a_draft() {
    let mut app = App::new();
    writing_to_bob(&mut app, "maybe later");
    assert!(app.update(key(KeyCode::Esc)).is_empty());
    assert!(matches!(app.modal, Modal::Compose(_)), "it asks first");
    assert_eq!(
        app.status,
        "Discard this message? Esc again: discard · Ctrl-p: keep it as a draft"
    );
    // Keep it.
    let effects = app.update(ctrl('p'));
    assert!(matches!(app.modal, Modal::None));
    assert!(saved(&effects).is_some_and(|d| d.body == "maybe later"));
    assert_eq!(app.status, "Kept as a draft: D lists the drafts");
    assert_eq!(app.drafts.len(), 1);

    // Discard it: its file goes.
    let mut app = App::new();
    writing_to_bob(&mut app, "never mind");
    app.update(Msg::SaveDraft);
    let key = composer(&app).key.clone();
    app.update(self::key(KeyCode::Esc));
    let effects = app.update(self::key(KeyCode::Esc));
    assert!(matches!(app.modal, Modal::None));
    assert_eq!(effects, [Effect::DeleteDraft(key)]);
    assert!(app.drafts.is_empty());
}

#[test]
fn quitting_with_a_message_being_written_keeps_it() {
    let mut app = App::new();
    writing_to_bob(&mut app, "half a thought");
    let effects = app.on_exit();
    assert!(saved(&effects).is_some_and(|d| d.body == "half a thought"));
}

#[test]
fn the_drafts_list_resumes_a_draft_with_every_field_and_option() {
    let mut app = App::new();
    let draft = a_draft("Bring the maps.\nAnd snacks.");
    assert_eq!(app.update(key(KeyCode::Char('D'))), [Effect::LoadDrafts]);
    app.update(Msg::Drafts(vec![a_draft("other"), draft.clone()]));
    app.update(key(KeyCode::Char('j')));
    app.update(key(KeyCode::Enter));
    let resumed = composer(&app);
    assert_eq!(resumed.key, draft.key);
    assert_eq!(resumed.recipient, "bob");
    assert_eq!(resumed.subject, "Plans for Saturday");
    assert_eq!(resumed.body_text(), "Bring the maps.\nAnd snacks.");
    assert_eq!(resumed.expiry, "2h");
    assert!(resumed.read_once);
    assert!(resumed.reply_to.is_none());
    let mut expected = draft.clone();
    expected.saved_at = None;
    assert_eq!(resumed.draft(), expected, "every field comes back");
    // Sent as written, with its key.
    let effects = app.update(ctrl('s'));
    assert!(effects.iter().any(|e| matches!(e,
        Effect::Send { key, options, .. } if *key == draft.key && options.read_once
            && options.expires_in == Some(7200))));
}

#[test]
fn a_draft_discarded_from_the_list_is_deleted() {
    let mut app = App::new();
    let draft = a_draft("gone");
    app.drafts = vec![draft.clone()];
    app.update(key(KeyCode::Char('D')));
    let effects = app.update(key(KeyCode::Char('x')));
    assert_eq!(effects, [Effect::DeleteDraft(draft.key)]);
    assert!(app.drafts.is_empty());
}

#[test]
fn reopening_a_thread_offers_its_draft_reply() {
    let mut app = App::new();
    let t = thread("Lunch", 0);
    app.update(Msg::Threads {
        folder: app.mailbox.folder,
        append: false,
        result: Ok(Page {
            items: vec![t.clone()],
            next_cursor: None,
        }),
    });
    app.update(key(KeyCode::Enter));
    app.update(key(KeyCode::Char('r')));
    type_text(&mut app, "Yes, at one");
    app.update(ctrl('p'));
    let kept = app.drafts[0].clone();
    assert_eq!(kept.reply_to, Some((t.id, "Lunch".into())));
    assert_eq!(kept.body, "Yes, at one", "only what was typed is kept");
    app.update(key(KeyCode::Char('q')));
    assert!(app.thread.open.is_none());

    app.update(key(KeyCode::Enter));
    assert_eq!(app.status, "A draft reply is waiting: press r to resume it");
    app.update(key(KeyCode::Char('r')));
    assert_eq!(composer(&app).body_text(), "Yes, at one");
    assert_eq!(composer(&app).key, kept.key);
}

// Screens.

fn draw(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| crate::ui::render(f, app, now())).unwrap();
    terminal.backend().to_string()
}

fn drafts_listed() -> App {
    let mut app = App::new();
    app.connection = Connection::Live;
    let mut reply = a_draft("Yes, one o'clock works for me.");
    reply.reply_to = Some((ThreadId::generate(), "Lunch on Friday?".into()));
    reply.saved_at = Some(now() - chrono::TimeDelta::hours(3));
    let mut old =
        a_draft("Dear committee,\n\nI would like to propose a longer agenda for the next meeting.");
    old.recipient = "carol".into();
    old.subject = "A proposal for the agenda of the spring meeting".into();
    old.saved_at = Some(now() - chrono::TimeDelta::days(2));
    app.drafts = vec![a_draft("Bring the maps.\nAnd snacks."), reply, old];
    app.update(key(KeyCode::Char('D')));
    app
}

#[test]
fn the_drafts_list_at_80_by_24() {
    insta::assert_snapshot!(draw(&drafts_listed(), 80, 24));
}

#[test]
fn the_drafts_list_large() {
    insta::assert_snapshot!(draw(&drafts_listed(), 140, 40));
}

fn resumed() -> App {
    let mut app = drafts_listed();
    app.update(key(KeyCode::Enter));
    app
}

#[test]
fn the_composer_resumed_from_a_draft_at_80_by_24() {
    insta::assert_snapshot!(draw(&resumed(), 80, 24));
}

#[test]
fn the_composer_resumed_from_a_draft_large() {
    insta::assert_snapshot!(draw(&resumed(), 140, 40));
}

#[test]
fn a_paste_arrives_whole_where_the_cursor_is_and_never_as_commands() {
    // Pasted text came as keys, and a stalled paste's rest ran as mailbox commands (`a`
    // archive, `d` delete) once the composer was closed.
    let mut app = App::new();
    loaded(&mut app, vec![thread("Kept", 0)]);
    writing_to_bob(&mut app, "Look: ");
    let pasted = "first line\r\nsecond line\rthird".repeat(100);
    app.update(Msg::Paste(pasted.clone()));
    let expected = format!("Look: {}", pasted.replace("\r\n", "\n").replace('\r', "\n"));
    assert_eq!(composer(&app).body_text(), expected);
    app.update(key(KeyCode::BackTab));
    app.update(Msg::Paste(" and\nmore".into()));
    assert_eq!(
        composer(&app).subject,
        "Plans and more",
        "one line in a line's field"
    );

    app.update(ctrl('p'));
    assert!(matches!(app.modal, Modal::None));
    let effects = app.update(Msg::Paste("ddddaaaaq".into()));
    assert!(effects.is_empty(), "{effects:?}");
    assert!(!app.quit);
    assert_eq!(app.mailbox.threads.len(), 1, "nothing archived or deleted");
}
