//! Daily digests: a reader in digest mode gets no email per message, and at their hour one
//! email listing exactly their unread, unmuted threads, each answerable by email; nothing when
//! nothing is unread. The test moves the digest's hour to now, the scheduler does the rest.

use crate::stack::start_api;
use convos_testkit::{InProcessWorker, SmtpSink, StackConfig, database_url, eventually, id};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(15);

/// Makes `username`'s digest due, as if its time was `minutes_ago` (one digest per due time).
async fn make_digest_due(db: &PgPool, username: &str, minutes_ago: i32) {
    sqlx::query(
        "update users set next_digest_at = now() - make_interval(mins => $2) where username = $1",
    )
    .bind(username)
    .bind(minutes_ago)
    .execute(db)
    .await
    .unwrap();
}

async fn digest_jobs(db: &PgPool) -> Vec<(String, Option<String>)> {
    sqlx::query_as(
        "select state, outcome from jobs where kind = 'digest_email' order by created_at",
    )
    .fetch_all(db)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_digest_lists_exactly_the_unread_unmuted_threads_and_nothing_is_sent_when_empty(
    db: PgPool,
) {
    let config = StackConfig::new();
    let smtp = SmtpSink::serve(config.smtp_port, Duration::ZERO);
    let api = start_api(db.clone(), &config).await;
    let mut settings = config.worker_settings(&database_url(&db).await);
    settings.reply_domain = Some("reply.convos.test".into());
    let worker = InProcessWorker::start(settings);
    let alice = api.user("alice").await;
    let bob = api.user("bob").await;
    let daily = api
        .call(
            Method::PATCH,
            "/api/v1/me",
            Some(&bob.token),
            Some(json!({"settings": {"email_mode": "daily", "digest_hour": 9}})),
        )
        .await;
    assert_eq!(daily.status, StatusCode::OK, "{daily:?}");

    let unread = api
        .send(&alice, &bob, "Unread one", "Still waiting for you")
        .await;
    let read = api.send(&alice, &bob, "Read one", "You saw this").await;
    let muted = api.send(&alice, &bob, "Muted one", "Quiet, please").await;
    // An account with no proven address: what it writes is not emailed, digests included.
    let stranger = api.unverified_user("stranger").await;
    api.send(&stranger, &bob, "Cheap pills", "http://spam.example")
        .await;
    api.act(&format!("/api/v1/messages/{}/read", id(&read)), &bob)
        .await;
    api.act(
        &format!(
            "/api/v1/threads/{}/mute",
            muted["thread_id"].as_str().unwrap()
        ),
        &bob,
    )
    .await;
    eventually(
        WAIT,
        "the per-message emails skipped for the digest",
        || async {
            let skipped: i64 = sqlx::query_scalar(
                "select count(*) from deliveries where status = 'skipped' and reason = 'digest'",
            )
            .fetch_one(&db)
            .await
            .unwrap();
            skipped >= 1
        },
    )
    .await;
    assert!(
        smtp.mails().is_empty(),
        "no email per message in digest mode"
    );

    make_digest_due(&db, "bob", 60).await;
    eventually(WAIT, "the digest", || async { smtp.mails().len() == 1 }).await;
    let digest = &smtp.mails()[0];
    assert_eq!(digest.to, ["bob@example.com"]);
    assert_eq!(
        digest.header("Subject").as_deref(),
        Some("Your Convos digest: 1 unread conversation")
    );
    let text = digest.part("text/plain");
    assert!(
        text.contains("Unread one") && text.contains("Still waiting for you"),
        "{text}"
    );
    assert!(
        !text.contains("Read one"),
        "a read thread is left out: {text}"
    );
    assert!(
        !text.contains("Muted one"),
        "a muted thread is left out: {text}"
    );
    assert!(
        !text.contains("Cheap pills") && !text.contains("spam.example"),
        "an unverified sender's thread is left out: {text}"
    );
    assert!(
        text.contains("mailto:reply+")
            && text.contains("@reply.convos.test?subject=Re%3A%20Unread%20one"),
        "each thread can be answered by email: {text}"
    );
    let _ = unread;
    let next_hour: i32 = sqlx::query_scalar(
        "select extract(hour from next_digest_at at time zone 'UTC')::int from users where username = 'bob'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(next_hour, 9, "the next digest is placed at bob's hour");

    // Everything read: the next digest is not sent.
    api.act(
        &format!(
            "/api/v1/threads/{}/read",
            unread["thread_id"].as_str().unwrap()
        ),
        &bob,
    )
    .await;
    make_digest_due(&db, "bob", 1).await;
    eventually(WAIT, "the second digest job", || async {
        digest_jobs(&db).await.len() == 2 && digest_jobs(&db).await[1].0 == "skipped"
    })
    .await;
    assert_eq!(
        digest_jobs(&db).await[1].1.as_deref(),
        Some("nothing unread")
    );
    assert_eq!(
        smtp.mails().len(),
        1,
        "nothing is sent when nothing is unread"
    );
    worker.stop().await;
}
