//! The cache in the state machine: a start draws from it before the network answers, answers
//! replace what it showed and are written down after a pause, a cached thread opens offline
//! and an uncached one says it cannot, read-once bodies and expired messages are never written,
//! and another account's cache is never shown. Then the offline screens as snapshots.

use super::tests::{thread, user};
use super::*;
use chrono::{DateTime, TimeZone, Utc};
use convos_core::UserId;
use convos_core::api::{FolderCounts, Preferences, User};
use crossterm::event::{KeyCode, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

const SERVER: &str = "http://127.0.0.1:8080";

fn key(code: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 30, 0).unwrap()
}

/// When the cache was written: 12:03 the same day.
fn cached_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 12, 3, 0).unwrap()
}

/// `name`'s account, with one unread message.
pub(crate) fn me(name: &str) -> Me {
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
        unread_count: 3,
        unread_by_folder: FolderCounts {
            inbox: 3,
            sent: 0,
            archive: 0,
            all: 3,
        },
        settings: Preferences::new(true),
    }
}

fn message(thread: &Thread, from: &str, body: &str, minutes_ago: i64) -> Message {
    Message {
        id: MessageId::generate(),
        thread_id: thread.id,
        subject: thread.subject.clone(),
        body: Some(body.into()),
        sender: user(from),
        recipient: user(if from == "alice" { "bob" } else { "alice" }),
        is_read: true,
        created_at: now() - chrono::TimeDelta::minutes(minutes_ago),
        in_reply_to: None,
        expires_at: None,
        read_once: false,
    }
}

fn page<T>(items: Vec<T>) -> Page<T> {
    Page {
        items,
        next_cursor: None,
    }
}

/// Bob's cache, written at 12:03: his account, his inbox of three threads, and the first
/// thread opened with two messages.
struct Cached {
    snapshot: Snapshot,
    me: Me,
    threads: Vec<Thread>,
}

fn bobs_cache() -> Cached {
    let me = me("bob");
    let threads = vec![
        thread("Lunch on Friday?", 1),
        thread("Budget review", 0),
        thread("Photos from the trip", 2),
    ];
    let mut snapshot = Snapshot::new(SERVER);
    snapshot.me(&me);
    snapshot.listed(Folder::Inbox, false, &threads);
    snapshot.messages(
        &threads[0],
        false,
        &[
            message(&threads[0], "bob", "Yes, noon works.", 20),
            message(&threads[0], "alice", "Are you free at noon?", 40),
        ],
    );
    snapshot.stamp(cached_at());
    snapshot.dirty = false;
    snapshot.fresh.clear();
    Cached {
        snapshot,
        me,
        threads,
    }
}

/// A client started with `cache` on disk: the runtime hands it over before the first frame.
fn started_with(cache: &Cached) -> App {
    let mut app = App::new();
    app.server = SERVER.into();
    app.start();
    app.update(Msg::Cached(Box::new(cache.snapshot.clone())));
    app
}

fn offline() -> ApiError {
    ApiError::Offline("error sending request: connection refused".into())
}

fn saved(effects: &[Effect]) -> Option<&Snapshot> {
    effects.iter().find_map(|e| match e {
        Effect::SaveCache(snapshot) => Some(&**snapshot),
        _ => None,
    })
}

#[test]
fn a_start_draws_the_mailbox_and_counts_from_the_cache_before_any_answer() {
    let cache = bobs_cache();
    let app = started_with(&cache);
    let subjects: Vec<&str> = app
        .mailbox
        .threads
        .iter()
        .map(|t| t.subject.as_str())
        .collect();
    assert_eq!(
        subjects,
        ["Lunch on Friday?", "Budget review", "Photos from the trip"]
    );
    assert_eq!(app.me.as_ref().map(|m| m.unread_count), Some(3));
    assert_eq!(app.mailbox.cached, Some(cached_at()));
    assert_eq!(app.stale(), Some(cached_at()));
    assert!(!app.cache_pending(), "nothing new to write");
}

#[test]
fn the_servers_answers_replace_the_cached_list_and_are_written_down_after_a_pause() {
    let cache = bobs_cache();
    let mut app = started_with(&cache);
    let fresh = vec![thread("A new thread", 1), cache.threads[1].clone()];
    app.update(Msg::Me(Ok(cache.me.clone())));
    app.update(Msg::Threads {
        folder: Folder::Inbox,
        append: false,
        result: Ok(page(fresh.clone())),
    });
    assert_eq!(app.mailbox.threads, fresh);
    assert_eq!(app.mailbox.cached, None, "fresh from the server");
    assert_eq!(app.stale(), None);

    assert!(app.cache_pending(), "the answers are to be written");
    let effects = app.update(Msg::SaveCache(now()));
    let written = saved(&effects).expect("written once the pause came");
    assert_eq!(written.folder(Folder::Inbox).unwrap().threads, fresh);
    assert_eq!(written.folder(Folder::Inbox).unwrap().at, Some(now()));
    assert_eq!(written.server, SERVER);
    assert!(
        written.thread(cache.threads[0].id).is_some(),
        "threads opened in earlier sessions stay readable offline"
    );
    assert!(!app.cache_pending());
    assert!(
        app.update(Msg::SaveCache(now())).is_empty(),
        "nothing new: no write"
    );
}

#[test]
fn an_answer_before_the_cache_is_read_is_not_overwritten_by_it() {
    let cache = bobs_cache();
    let mut app = App::new();
    app.server = SERVER.into();
    app.start();
    app.update(Msg::Threads {
        folder: Folder::Inbox,
        append: false,
        result: Ok(page(vec![])),
    });
    app.update(Msg::Cached(Box::new(cache.snapshot.clone())));
    assert!(app.mailbox.threads.is_empty(), "the server said: empty");
    assert_eq!(app.stale(), None);
}

#[test]
fn offline_the_list_says_so_and_a_cached_thread_opens_with_its_messages() {
    let cache = bobs_cache();
    let mut app = started_with(&cache);
    app.update(Msg::Me(Err(offline())));
    app.update(Msg::Threads {
        folder: Folder::Inbox,
        append: false,
        result: Err(offline()),
    });
    assert!(app.is_offline());
    assert_eq!(app.mailbox.threads.len(), 3, "the cached list stays");

    let effects = app.update(key(KeyCode::Enter));
    assert!(effects.contains(&Effect::LoadMessages(cache.threads[0].id)));
    let shown = app.thread.open.as_ref().and_then(|o| o.messages.as_ref());
    let bodies: Vec<&str> = shown
        .into_iter()
        .flatten()
        .filter_map(|m| m.body.as_deref())
        .collect();
    assert_eq!(bodies, ["Are you free at noon?", "Yes, noon works."]);
    assert_eq!(app.thread.cached, Some(cached_at()));

    // The fetch fails too: the cached messages stay, still marked.
    app.update(Msg::Messages {
        thread: cache.threads[0].id,
        older: false,
        result: Err(offline()),
    });
    assert_eq!(
        app.thread
            .open
            .as_ref()
            .and_then(|o| o.messages.as_ref())
            .map(Vec::len),
        Some(2)
    );
    assert!(!app.thread.unavailable);

    // Back online: the live connection and a fresh answer clear the marks.
    app.update(Msg::Connection(Connection::Live));
    assert!(!app.is_offline());
    app.update(Msg::Messages {
        thread: cache.threads[0].id,
        older: false,
        result: Ok(page(vec![message(&cache.threads[0], "alice", "New!", 1)])),
    });
    assert_eq!(app.thread.cached, None);
}

#[test]
fn offline_a_thread_never_opened_says_it_is_not_available() {
    let cache = bobs_cache();
    let mut app = started_with(&cache);
    app.update(key(KeyCode::Char('j')));
    app.update(key(KeyCode::Enter));
    assert!(
        app.thread
            .open
            .as_ref()
            .is_some_and(|o| o.messages.is_none()),
        "nothing cached: loading"
    );
    app.update(Msg::Messages {
        thread: cache.threads[1].id,
        older: false,
        result: Err(offline()),
    });
    assert!(app.thread.unavailable);
    assert!(app.offline);
}

#[test]
fn a_read_once_body_is_never_written_even_once_opened() {
    let cache = bobs_cache();
    let mut app = started_with(&cache);
    app.update(Msg::Me(Ok(cache.me.clone())));
    let t = cache.threads[2].clone();
    app.update(key(KeyCode::Char('G')));
    app.update(key(KeyCode::Enter));
    let mut sealed = message(&t, "alice", "", 5);
    sealed.body = None;
    sealed.read_once = true;
    sealed.recipient = convos_core::api::UserSummary {
        id: cache.me.user.id,
        username: "bob".into(),
        display_name: "BOB".into(),
    };
    app.update(Msg::Messages {
        thread: t.id,
        older: false,
        result: Ok(page(vec![sealed.clone()])),
    });
    let mut opened = sealed.clone();
    opened.body = Some("the code is 1234".into());
    app.update(Msg::Opened(Ok(opened)));
    // A refresh lists it again with the body the one read revealed (as a server that still
    // listed it would).
    let mut listed = sealed.clone();
    listed.body = Some("the code is 1234".into());
    app.update(Msg::Messages {
        thread: t.id,
        older: false,
        result: Ok(page(vec![listed])),
    });
    let effects = app.update(Msg::SaveCache(now()));
    let written = serde_json::to_string(saved(&effects).unwrap()).unwrap();
    assert!(!written.contains("1234"), "{written}");
    assert!(written.contains(&sealed.id.to_string()), "listed, sealed");
}

#[test]
fn messages_that_expired_on_screen_are_not_written() {
    let cache = bobs_cache();
    let mut app = started_with(&cache);
    app.update(Msg::Me(Ok(cache.me.clone())));
    app.update(key(KeyCode::Enter));
    let t = &cache.threads[0];
    let mut soon = message(t, "alice", "gone in a minute", 1);
    soon.expires_at = Some(now() + chrono::TimeDelta::minutes(1));
    let stays = message(t, "alice", "stays", 2);
    app.update(Msg::Messages {
        thread: t.id,
        older: false,
        result: Ok(page(vec![soon.clone(), stays])),
    });
    app.update(Msg::Expire(now() + chrono::TimeDelta::minutes(1)));
    let effects = app.update(Msg::SaveCache(now() + chrono::TimeDelta::minutes(2)));
    let written = saved(&effects).unwrap();
    let kept = &written.thread(t.id).unwrap().messages;
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].body.as_deref(), Some("stays"));
}

#[test]
fn another_accounts_cache_is_never_shown() {
    let cache = bobs_cache();
    let mut app = App::new();
    app.server = SERVER.into();
    app.start();
    app.update(Msg::Me(Ok(me("carol"))));
    app.update(Msg::Cached(Box::new(cache.snapshot.clone())));
    assert!(app.mailbox.threads.is_empty());
    assert_eq!(app.me.as_ref().unwrap().user.username, "carol");

    // Nor another server's.
    let mut app = App::new();
    app.server = "http://other:8080".into();
    app.update(Msg::Cached(Box::new(cache.snapshot.clone())));
    assert!(app.mailbox.threads.is_empty());
}

#[test]
fn a_session_that_ends_leaves_nothing_of_the_cache_in_memory() {
    let cache = bobs_cache();
    let mut app = started_with(&cache);
    app.update(Msg::Me(Err(ApiError::Server {
        status: 401,
        body: convos_core::ErrorBody::new("unauthorized", "no"),
        retry_after: None,
    })));
    assert!(app.login.is_some());
    assert_eq!(app.cache, Snapshot::default());
    assert!(!app.cache_pending());
}

#[test]
fn a_deleted_thread_leaves_the_cache() {
    let cache = bobs_cache();
    let mut app = started_with(&cache);
    app.update(key(KeyCode::Char('d')));
    app.update(key(KeyCode::Char('y')));
    assert!(app.cache.thread(cache.threads[0].id).is_none());
    assert!(
        app.cache.folder(Folder::Inbox).unwrap().threads.len() == 2,
        "nor listed"
    );
}

#[test]
fn a_cache_found_once_the_server_said_whose_the_session_is_fills_in_only_what_was_not_answered() {
    // A new token of bob's: nothing at start; `/me` binds it and brings his cache in.
    let cache = bobs_cache();
    let mut app = App::new();
    app.server = SERVER.into();
    app.start();
    let fresh = vec![thread("Newer than the cache", 1)];
    app.update(Msg::Threads {
        folder: Folder::Inbox,
        append: false,
        result: Ok(page(fresh.clone())),
    });
    app.update(Msg::Cached(Box::new(cache.snapshot.clone())));
    app.update(Msg::Me(Ok(cache.me.clone())));
    assert_eq!(app.mailbox.threads, fresh, "the answer stays");
    assert!(
        app.cache.thread(cache.threads[0].id).is_some(),
        "the thread read in an earlier session reads offline"
    );
    let effects = app.update(Msg::SaveCache(now()));
    let written = saved(&effects).unwrap();
    assert_eq!(written.folder(Folder::Inbox).unwrap().threads, fresh);
    assert_eq!(written.user, Some(cache.me.user.id));
}

#[test]
fn opening_a_folder_shows_its_cached_list_until_the_answer() {
    let mut cache = bobs_cache();
    let archived = vec![thread("Old plans", 0)];
    cache.snapshot.listed(Folder::Archive, false, &archived);
    cache.snapshot.stamp(cached_at());
    let mut app = started_with(&cache);
    app.update(key(KeyCode::Tab));
    assert_eq!(app.pane, Pane::Folders);
    app.update(key(KeyCode::Char('j')));
    app.update(key(KeyCode::Char('j')));
    let effects = app.update(key(KeyCode::Enter));
    assert_eq!(
        effects,
        [Effect::LoadThreads {
            folder: Folder::Archive,
            cursor: None
        }]
    );
    assert_eq!(app.mailbox.threads, archived);
    assert_eq!(app.mailbox.cached, Some(cached_at()));
}

// Screens.

fn draw(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| crate::ui::render(f, app, now())).unwrap();
    terminal.backend().to_string()
}

/// Started from the cache with the server down: the answers failed, the live connection is
/// waiting to try again.
fn offline_with_cache() -> App {
    let cache = bobs_cache();
    let mut app = started_with(&cache);
    app.update(Msg::Me(Err(offline())));
    app.update(Msg::Threads {
        folder: Folder::Inbox,
        append: false,
        result: Err(offline()),
    });
    app.update(Msg::Connection(Connection::Reconnecting(4)));
    app.status.clear();
    app
}

#[test]
fn offline_with_cache_at_80_by_24() {
    insta::assert_snapshot!(draw(&offline_with_cache(), 80, 24));
}

#[test]
fn offline_with_cache_large() {
    insta::assert_snapshot!(draw(&offline_with_cache(), 140, 40));
}

/// Offline, the thread `down` rows below the top opened (its fetch failing).
fn opened_offline(down: usize) -> App {
    let mut app = offline_with_cache();
    for _ in 0..down {
        app.update(key(KeyCode::Char('j')));
    }
    app.update(key(KeyCode::Enter));
    let id = app.thread.thread().unwrap().id;
    app.update(Msg::Messages {
        thread: id,
        older: false,
        result: Err(offline()),
    });
    app
}

/// The first thread, opened before, so cached.
fn cached_thread_open_offline() -> App {
    opened_offline(0)
}

#[test]
fn a_cached_thread_offline_at_80_by_24() {
    insta::assert_snapshot!(draw(&cached_thread_open_offline(), 80, 24));
}

#[test]
fn a_cached_thread_offline_large() {
    insta::assert_snapshot!(draw(&cached_thread_open_offline(), 140, 40));
}

/// The second thread, never opened, so not cached.
fn uncached_thread_open_offline() -> App {
    opened_offline(1)
}

#[test]
fn a_thread_not_available_offline_at_80_by_24() {
    insta::assert_snapshot!(draw(&uncached_thread_open_offline(), 80, 24));
}

#[test]
fn a_thread_not_available_offline_large() {
    insta::assert_snapshot!(draw(&uncached_thread_open_offline(), 140, 40));
}
