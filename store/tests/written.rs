//! A write says it wrote jobs exactly when its transaction added rows to the ledger.
//!
//! The server wakes the relays on that answer alone (decision 12), so a write that changed
//! nothing must say so, and one that enqueued must never say otherwise.

use convos_core::{IdempotencyKey, Subject};
use convos_store::Written;
use convos_store::jobs::NotifySettings;
use convos_store::messages::{self, Created, Idempotency};
use convos_store::threads::{self, Flag};
use convos_store::verification;
use sqlx::PgPool;
use support::{content, user};

mod support;

async fn jobs(db: &PgPool) -> i64 {
    sqlx::query_scalar("select count(*) from jobs")
        .fetch_one(db)
        .await
        .unwrap()
}

/// Runs one write and checks its answer against the ledger; returns the value.
async fn checked<T>(
    db: &PgPool,
    what: &str,
    write: impl AsyncFnOnce() -> convos_store::Result<Written<T>>,
) -> (T, bool) {
    let before = jobs(db).await;
    let written = write().await.unwrap();
    let added = jobs(db).await > before;
    assert_eq!(written.wrote_jobs(), added, "{what}");
    (written.without_wake(), added)
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn writes_report_jobs_exactly_when_the_ledger_grew(db: PgPool) {
    let (alice, bob) = (user(&db, "alice").await, user(&db, "bob").await);
    let notify = NotifySettings::default();
    let subject = Subject::parse("Lunch").unwrap();
    let idem = Idempotency::new(IdempotencyKey::parse("k-1").unwrap(), "test", b"lunch");
    let send = async || {
        messages::create_thread(
            &db,
            &notify,
            alice,
            bob,
            &subject,
            &content("noon?"),
            Some(&idem),
        )
        .await
    };

    let (created, wrote) = checked(&db, "a new message", send).await;
    assert!(wrote, "a new message enqueues its event and notification");
    let Created::New(message) = created else {
        panic!("first use of the key creates")
    };
    let (replayed, wrote) = checked(&db, "a replayed key", send).await;
    assert_eq!(replayed, Created::Replayed(message.id));
    assert!(!wrote, "a replay enqueues nothing");

    let (_, wrote) = checked(&db, "a reply", async || {
        messages::reply(&db, &notify, bob, message.thread_id, &content("yes"), None).await
    })
    .await;
    assert!(wrote);

    let read = async |on: bool| messages::set_read(&db, bob, message.id, on).await;
    assert!(checked(&db, "reading", async || read(true).await).await.1);
    assert!(
        !checked(&db, "reading again", async || read(true).await)
            .await
            .1
    );
    assert!(
        checked(&db, "unreading", async || read(false).await)
            .await
            .1
    );

    let thread = message.thread_id;
    let read_all = async || threads::mark_read(&db, bob, thread).await;
    assert!(checked(&db, "reading the thread", read_all).await.1);
    assert!(!checked(&db, "reading it again", read_all).await.1);
    let archive = async || threads::set_flag(&db, bob, thread, Flag::Archived, true).await;
    assert!(checked(&db, "archiving", archive).await.1);
    assert!(!checked(&db, "archiving again", archive).await.1);

    let resend = async || verification::resend(&db, alice, 24).await;
    let (outcome, wrote) = checked(&db, "resending to a verified address", resend).await;
    assert_eq!(outcome, verification::Resend::AlreadyVerified);
    assert!(!wrote);

    let delete = async || threads::delete_for_me(&db, bob, thread).await;
    assert!(checked(&db, "deleting the thread", delete).await.1);
}
