//! Live events in the state machine (decision 32): each event asks for what it names, and the
//! answers change that row, that thread and the counts, nothing else. A burst coalesces.

use super::tests::{thread, user};
use super::*;
use chrono::{TimeDelta, TimeZone, Utc};
use convos_core::api::{FolderCounts, Preferences, User, UserSummary};
use crossterm::event::{KeyCode, KeyModifiers};

fn key(code: KeyCode) -> Msg {
    Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

/// The account of `who`, with `unread` unread in the inbox.
fn me_as(who: &UserSummary, unread: i64) -> Me {
    Me {
        user: User {
            id: who.id,
            username: who.username.clone(),
            email: format!("{}@example.com", who.username),
            display_name: who.display_name.clone(),
            is_admin: false,
            created_at: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            email_verified: true,
            email_stopped: None,
        },
        unread_count: unread,
        unread_by_folder: FolderCounts {
            inbox: unread,
            sent: 0,
            archive: 0,
            all: unread,
        },
        settings: Preferences::new(true),
    }
}

/// A message in `thread` from `sender`, `minutes` after nine.
fn message(thread: &Thread, sender: &UserSummary, body: &str, minutes: i64) -> Message {
    Message {
        id: MessageId::generate(),
        thread_id: thread.id,
        subject: thread.subject.clone(),
        body: Some(body.into()),
        sender: sender.clone(),
        recipient: user("bob"),
        is_read: false,
        created_at: Utc.with_ymd_and_hms(2026, 11, 22, 9, 0, 0).unwrap()
            + TimeDelta::minutes(minutes),
        in_reply_to: None,
        expires_at: None,
        read_once: false,
    }
}

/// `thread` after `message` arrived in it: one more message, one more unread, newer activity.
fn with_new(thread: &Thread, message: &Message) -> Thread {
    let mut fresh = thread.clone();
    fresh.message_count += 1;
    fresh.unread_count += 1;
    fresh.last_message_at = message.created_at;
    fresh.last_message = Some(convos_core::api::LastMessage {
        id: message.id,
        sender: message.sender.clone(),
        body_excerpt: message.body.clone(),
        created_at: message.created_at,
        expires_at: None,
    });
    fresh
}

fn page<T>(items: Vec<T>) -> Page<T> {
    Page {
        items,
        next_cursor: None,
    }
}

/// Bob signed in, the inbox listing `threads`.
fn signed_in(threads: Vec<Thread>) -> (App, UserSummary) {
    let mut app = App::new();
    let bob = user("bob");
    app.update(Msg::Me(Ok(me_as(&bob, 0))));
    app.update(Msg::Threads {
        folder: Folder::Inbox,
        append: false,
        result: Ok(page(threads)),
    });
    (app, bob)
}

/// Opens the selected thread and answers its messages (oldest first in `messages`).
fn open(app: &mut App, messages: Vec<Message>) {
    let thread = app.mailbox.selected_thread().unwrap().id;
    app.update(key(KeyCode::Enter));
    app.update(Msg::Messages {
        thread,
        older: false,
        result: Ok(page(messages.into_iter().rev().collect())),
    });
}

fn shown(app: &App) -> Vec<String> {
    let messages = app.thread.open.as_ref().and_then(|o| o.messages.as_ref());
    messages
        .into_iter()
        .flatten()
        .map(|m| m.body.clone().unwrap_or_else(|| "(sealed)".into()))
        .collect()
}

fn listed(app: &App) -> Vec<&str> {
    let threads = app.mailbox.threads.iter();
    threads.map(|t| t.subject.as_str()).collect()
}

fn gone() -> ApiError {
    ApiError::Server {
        status: 404,
        body: convos_core::ErrorBody::new("not_found", "not found"),
        retry_after: None,
    }
}

#[test]
fn a_new_message_in_the_open_thread_fetches_that_thread_only_and_joins_it() {
    let t = thread("Lunch", 0);
    let (mut app, _) = signed_in(vec![thread("Older", 0), t.clone()]);
    app.bell = true;
    app.update(key(KeyCode::Char('j')));
    let alice = t.participants[1].clone();
    let first = message(&t, &alice, "noon?", 0);
    open(&mut app, vec![first.clone()]);

    let new = message(&t, &alice, "or one?", 5);
    let effects = app.update(Msg::Live(Event::MessageCreated {
        message_id: new.id,
        thread_id: t.id,
    }));

    assert_eq!(
        effects,
        [
            Effect::LoadNewMessages(t.id),
            Effect::LoadThreadRow(t.id),
            Effect::LoadMe,
        ],
        "no folder list, no whole thread, and never the message by its id"
    );

    assert!(
        app.update(Msg::NewMessages {
            thread: t.id,
            result: Ok(page(vec![new.clone(), first]))
        })
        .is_empty()
    );
    assert_eq!(shown(&app), ["noon?", "or one?"]);

    let fresh = with_new(&t, &new);
    assert_eq!(
        app.update(Msg::ThreadRow {
            thread: t.id,
            result: Ok(fresh.clone())
        }),
        [Effect::Bell],
        "announced once the row says alice wrote it"
    );
    assert_eq!(app.status, "New mail");
    assert_eq!(
        listed(&app),
        ["Lunch", "Older"],
        "its activity is newest now"
    );
    assert_eq!(app.mailbox.selected_thread().unwrap().id, t.id);
    assert_eq!(app.thread.thread().unwrap().unread_count, 1);

    app.update(Msg::Me(Ok(me_as(&user("bob"), 1))));
    assert_eq!(app.me.as_ref().unwrap().unread_count, 1);
}

#[test]
fn a_new_read_once_message_joins_the_open_thread_sealed() {
    let t = thread("Secret", 0);
    let (mut app, _) = signed_in(vec![t.clone()]);
    let alice = t.participants[1].clone();
    let first = message(&t, &alice, "hi", 0);
    open(&mut app, vec![first.clone()]);

    let mut sealed = message(&t, &alice, "", 1);
    sealed.read_once = true;
    sealed.body = None;
    let effects = app.update(Msg::Live(Event::MessageCreated {
        message_id: sealed.id,
        thread_id: t.id,
    }));
    assert!(
        !effects.contains(&Effect::OpenOnce(sealed.id)),
        "fetching it by id would be its one read"
    );
    app.update(Msg::NewMessages {
        thread: t.id,
        result: Ok(page(vec![sealed.clone(), first])),
    });
    assert_eq!(shown(&app), ["hi", "(sealed)"]);
}

#[test]
fn a_new_message_in_another_thread_moves_its_row_to_the_top_and_leaves_the_open_one_alone() {
    let a = thread("A", 0);
    let b = thread("B", 0);
    let (mut app, _) = signed_in(vec![a.clone(), b.clone()]);
    let alice = a.participants[1].clone();
    open(&mut app, vec![message(&a, &alice, "in a", 0)]);

    let new = message(&b, &alice, "in b", 30);
    let effects = app.update(Msg::Live(Event::MessageCreated {
        message_id: new.id,
        thread_id: b.id,
    }));
    assert_eq!(effects, [Effect::LoadThreadRow(b.id), Effect::LoadMe]);

    app.update(Msg::ThreadRow {
        thread: b.id,
        result: Ok(with_new(&b, &new)),
    });
    assert_eq!(listed(&app), ["B", "A"]);
    assert_eq!(
        app.mailbox.selected_thread().unwrap().id,
        a.id,
        "the selection stays on its thread"
    );
    assert_eq!(shown(&app), ["in a"], "the open thread is untouched");
}

#[test]
fn a_thread_not_listed_joins_the_inbox_when_its_newest_message_was_received() {
    let (mut app, bob) = signed_in(vec![thread("Old", 0)]);
    let t = thread("New one", 0);
    let alice = t.participants[1].clone();
    let new = message(&t, &alice, "hello", 60);
    app.update(Msg::Live(Event::MessageCreated {
        message_id: new.id,
        thread_id: t.id,
    }));
    let effects = app.update(Msg::ThreadRow {
        thread: t.id,
        result: Ok(with_new(&t, &new)),
    });
    assert!(effects.is_empty());
    assert_eq!(listed(&app), ["New one", "Old"]);

    // Bob's own message in a thread the inbox does not list: only the server can tell
    // whether it belongs (it may sit on a page not fetched), so the first page is fetched.
    let u = thread("Mine", 0);
    let mine = message(&u, &bob, "sent from my phone", 90);
    let effects = app.update(Msg::ThreadRow {
        thread: u.id,
        result: Ok(with_new(&u, &mine)),
    });
    assert_eq!(effects, [app.mailbox.load()]);
    assert_eq!(listed(&app), ["New one", "Old"]);
}

#[test]
fn a_thread_archived_elsewhere_leaves_the_inbox_and_joins_the_archive() {
    let t = thread("Done", 0);
    let (mut app, _) = signed_in(vec![thread("Stays", 0), t.clone()]);
    let effects = app.update(Msg::Live(Event::ThreadUpdated { thread_id: t.id }));
    assert_eq!(effects, [Effect::LoadThreadRow(t.id), Effect::LoadMe]);
    let mut archived = t.clone();
    archived.archived = true;
    app.update(Msg::ThreadRow {
        thread: t.id,
        result: Ok(archived.clone()),
    });
    assert_eq!(listed(&app), ["Stays"]);

    // The same answer, with the archive shown.
    app.mailbox.folder = Folder::Archive;
    app.mailbox.threads.clear();
    app.update(Msg::ThreadRow {
        thread: t.id,
        result: Ok(archived),
    });
    assert_eq!(listed(&app), ["Done"]);
}

#[test]
fn a_thread_deleted_elsewhere_leaves_the_list() {
    let t = thread("Deleted", 0);
    let (mut app, _) = signed_in(vec![t.clone(), thread("Kept", 0)]);
    app.update(Msg::Live(Event::ThreadUpdated { thread_id: t.id }));
    let effects = app.update(Msg::ThreadRow {
        thread: t.id,
        result: Err(gone()),
    });
    assert!(effects.is_empty());
    assert_eq!(listed(&app), ["Kept"]);
}

#[test]
fn an_open_thread_that_lost_messages_is_fetched_again() {
    let t = thread("Shrinking", 0);
    let (mut app, _) = signed_in(vec![t.clone()]);
    let alice = t.participants[1].clone();
    open(
        &mut app,
        vec![message(&t, &alice, "one", 0), message(&t, &alice, "two", 1)],
    );
    app.update(Msg::Live(Event::ThreadUpdated { thread_id: t.id }));
    let mut fewer = t.clone();
    fewer.message_count = 1;
    let effects = app.update(Msg::ThreadRow {
        thread: t.id,
        result: Ok(fewer),
    });
    assert_eq!(effects, [Effect::LoadMessages(t.id)]);

    // Muted elsewhere: same messages, so only the flags change.
    app.update(Msg::Live(Event::ThreadUpdated { thread_id: t.id }));
    let mut muted = t.clone();
    muted.message_count = 1;
    muted.muted = true;
    let effects = app.update(Msg::ThreadRow {
        thread: t.id,
        result: Ok(muted),
    });
    assert!(effects.is_empty());
    assert!(app.thread.thread().unwrap().muted);
    assert!(app.mailbox.threads[0].muted);
}

#[test]
fn a_read_flag_flips_on_the_spot_and_the_row_and_counts_are_fetched() {
    let t = thread("Flags", 0);
    let (mut app, _) = signed_in(vec![t.clone()]);
    let alice = t.participants[1].clone();
    open(&mut app, vec![message(&t, &alice, "read me", 0)]);
    let id = app.thread.open.as_ref().unwrap().messages.as_ref().unwrap()[0].id;

    let effects = app.update(Msg::Live(Event::MessageRead {
        message_id: id,
        thread_id: t.id,
        is_read: true,
    }));
    assert_eq!(effects, [Effect::LoadThreadRow(t.id), Effect::LoadMe]);
    let messages = app.thread.open.as_ref().unwrap().messages.as_ref().unwrap();
    assert!(messages[0].is_read);
}

#[test]
fn a_burst_of_events_for_one_thread_fetches_each_thing_at_most_twice() {
    let t = thread("Busy", 0);
    let (mut app, _) = signed_in(vec![t.clone()]);
    let alice = t.participants[1].clone();
    open(&mut app, vec![message(&t, &alice, "first", 0)]);

    let mut asked = Vec::new();
    for _ in 0..20 {
        asked.extend(app.update(Msg::Live(Event::MessageCreated {
            message_id: MessageId::generate(),
            thread_id: t.id,
        })));
    }
    assert_eq!(
        asked,
        [
            Effect::LoadNewMessages(t.id),
            Effect::LoadThreadRow(t.id),
            Effect::LoadMe
        ],
        "one of each while they are in flight"
    );

    // Each first answer predates later events, so each runs once more; those answers end it.
    let again = app.update(Msg::Me(Ok(me_as(&user("bob"), 20))));
    assert_eq!(again, [Effect::LoadMe]);
    let again = app.update(Msg::ThreadRow {
        thread: t.id,
        result: Ok(t.clone()),
    });
    assert_eq!(again, [Effect::LoadThreadRow(t.id)]);
    let again = app.update(Msg::NewMessages {
        thread: t.id,
        result: Ok(page(vec![])),
    });
    assert_eq!(again, [Effect::LoadNewMessages(t.id)]);

    assert!(app.update(Msg::Me(Ok(me_as(&user("bob"), 20)))).is_empty());
    assert!(
        app.update(Msg::ThreadRow {
            thread: t.id,
            result: Ok(t.clone())
        })
        .is_empty()
    );

    // Quiet again: the next event fetches at once.
    let effects = app.update(Msg::Live(Event::ThreadUpdated { thread_id: t.id }));
    assert_eq!(effects, [Effect::LoadThreadRow(t.id), Effect::LoadMe]);
}

#[test]
fn a_page_with_a_gap_before_it_replaces_the_thread_shown() {
    let t = thread("Gap", 0);
    let (mut app, _) = signed_in(vec![t.clone()]);
    let alice = t.participants[1].clone();
    open(&mut app, vec![message(&t, &alice, "long ago", 0)]);
    app.update(Msg::Live(Event::MessageCreated {
        message_id: MessageId::generate(),
        thread_id: t.id,
    }));
    let mut newest = page(vec![message(&t, &alice, "latest", 50)]);
    newest.next_cursor = Some("more".into());
    app.update(Msg::NewMessages {
        thread: t.id,
        result: Ok(newest),
    });
    assert_eq!(shown(&app), ["latest"]);
    assert_eq!(
        app.thread.open.as_ref().unwrap().older.as_deref(),
        Some("more"),
        "the messages between are a page away, as after opening"
    );
}

#[test]
fn missed_events_still_fetch_everything_shown() {
    let t = thread("Reset", 0);
    let (mut app, _) = signed_in(vec![t.clone()]);
    let alice = t.participants[1].clone();
    open(&mut app, vec![message(&t, &alice, "hi", 0)]);
    assert_eq!(
        app.update(Msg::Reset),
        [
            Effect::LoadMe,
            Effect::LoadThreads {
                folder: Folder::Inbox,
                cursor: None
            },
            Effect::LoadMessages(t.id)
        ]
    );
}

#[test]
fn the_users_own_message_from_another_session_is_not_announced() {
    let t = thread("Mine", 0);
    let (mut app, bob) = signed_in(vec![t.clone()]);
    app.bell = true;
    app.status = "Sent".into();
    let mine = message(&t, &bob, "sent from my phone", 10);
    app.update(Msg::Live(Event::MessageCreated {
        message_id: mine.id,
        thread_id: t.id,
    }));
    let effects = app.update(Msg::ThreadRow {
        thread: t.id,
        result: Ok(with_new(&t, &mine)),
    });
    assert!(effects.is_empty(), "no bell: {effects:?}");
    assert_eq!(app.status, "Sent", "the status is not taken over");
    assert_eq!(listed(&app), ["Mine"]);
}

#[test]
fn what_a_live_event_changed_in_place_is_what_the_cache_keeps_for_the_next_start() {
    let t = thread("Lunch", 0);
    let (mut app, _) = signed_in(vec![thread("Older", 0), t.clone()]);
    app.update(key(KeyCode::Char('j')));
    let alice = t.participants[1].clone();
    let first = message(&t, &alice, "noon?", 0);
    open(&mut app, vec![first.clone()]);
    let new = message(&t, &alice, "or one?", 5);
    app.update(Msg::Live(Event::MessageCreated {
        message_id: new.id,
        thread_id: t.id,
    }));
    app.update(Msg::NewMessages {
        thread: t.id,
        result: Ok(page(vec![new.clone(), first])),
    });
    app.update(Msg::ThreadRow {
        thread: t.id,
        result: Ok(with_new(&t, &new)),
    });

    let inbox = app.cache.folder(Folder::Inbox).expect("the inbox is kept");
    let subjects: Vec<&str> = inbox.threads.iter().map(|t| t.subject.as_str()).collect();
    assert_eq!(subjects, ["Lunch", "Older"], "in the order shown now");
    let kept = app.cache.thread(t.id).expect("the open thread is kept");
    let bodies: Vec<_> = kept.messages.iter().map(|m| m.body.clone()).collect();
    assert_eq!(
        bodies,
        [Some("noon?".to_owned()), Some("or one?".to_owned())],
        "with the new message"
    );

    app.update(Msg::ThreadRow {
        thread: t.id,
        result: Err(gone()),
    });
    assert!(
        app.cache.thread(t.id).is_none(),
        "a thread gone from the server leaves the cache"
    );
}

#[test]
fn a_new_message_read_at_the_bottom_of_the_open_thread_is_read_and_not_elsewhere() {
    let t = thread("Lunch", 0);
    let (mut app, bob) = signed_in(vec![t.clone()]);
    let alice = t.participants[1].clone();
    let to_bob = |body: &str, minutes| Message {
        recipient: bob.clone(),
        ..message(&t, &alice, body, minutes)
    };
    open(&mut app, vec![to_bob("noon?", 0)]);
    assert_eq!(app.pane, Pane::Thread);
    let read = Effect::ThreadAction {
        thread: t.id,
        action: ThreadAction::Read,
        done: "",
    };
    let arrives = |app: &mut App, body: &str, minutes| {
        app.update(Msg::NewMessages {
            thread: t.id,
            result: Ok(page(vec![to_bob(body, minutes)])),
        })
    };

    assert_eq!(
        arrives(&mut app, "or one?", 1),
        vec![read],
        "shown as it came"
    );
    app.update(key(KeyCode::Char('k')));
    assert!(
        arrives(&mut app, "or two?", 2).is_empty(),
        "scrolled back: unread"
    );
    app.update(key(KeyCode::Char('j')));
    app.update(key(KeyCode::Tab));
    assert_ne!(app.pane, Pane::Thread);
    assert!(
        arrives(&mut app, "or three?", 3).is_empty(),
        "another pane: unread"
    );
}
