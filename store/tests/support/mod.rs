//! What the store's tests share: people, message content and conversations, made the way the
//! API makes them.

use convos_core::api::NewContent;
use convos_core::{
    Body, DisplayName, EmailAddress, MessageId, Subject, ThreadId, UserId, Username,
};
use convos_store::jobs::NotifySettings;
use convos_store::messages::{self, Created};
use convos_store::users;
use sqlx::PgPool;

/// A user named `name`, with the address `{name}@example.com`.
pub async fn user(db: &PgPool, name: &str) -> UserId {
    users::insert(
        db,
        &Username::parse(name).unwrap(),
        &EmailAddress::parse(&format!("{name}@example.com")).unwrap(),
        &DisplayName::parse(name).unwrap(),
        "x",
        false,
    )
    .await
    .unwrap()
    .id
}

/// A message body that neither expires nor is read once.
pub fn content(text: &str) -> NewContent {
    NewContent {
        body: Body::parse(text).unwrap(),
        expires_in: None,
        read_once: false,
    }
}

/// A thread of `count` messages between `a` and `b` (bodies "0", "1", ...): `a` starts it, then
/// they take turns, so the even ones are `a`'s. Returns the thread and its messages in order.
#[allow(dead_code)] // every test binary compiles this module; not all of them write threads
pub async fn conversation(
    db: &PgPool,
    a: UserId,
    b: UserId,
    subject: &str,
    count: usize,
) -> (ThreadId, Vec<MessageId>) {
    let notify = NotifySettings::default();
    let subject = Subject::parse(subject).unwrap();
    let Created::New(first) =
        messages::create_thread(db, &notify, a, b, &subject, &content("0"), None)
            .await
            .unwrap()
            .without_wake()
    else {
        panic!("a new thread")
    };
    let mut ids = vec![first.id];
    for n in 1..count {
        let sender = if n % 2 == 0 { a } else { b };
        let reply = messages::reply(
            db,
            &notify,
            sender,
            first.thread_id,
            &content(&n.to_string()),
            None,
        )
        .await
        .unwrap()
        .without_wake();
        ids.push(reply.id());
    }
    (first.thread_id, ids)
}
