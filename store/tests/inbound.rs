//! Received email in the store: kept whole with its job before it is accepted, decided once,
//! and forgotten in two steps (its text after the jobs' retention, its record after 30 days).

use convos_store::inbound::{self, Decided, Received, Via};
use sqlx::PgPool;

async fn receive(db: &PgPool, raw: &[u8]) -> uuid::Uuid {
    let to = vec!["reply+x@reply.test".to_owned()];
    inbound::accept(
        db,
        Received {
            via: Via::Smtp,
            envelope_from: Some("bob@example.com"),
            envelope_to: &to,
            raw,
        },
    )
    .await
    .unwrap()
    .without_wake()
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_received_message_is_kept_with_its_job_and_decided_once(db: PgPool) {
    let id = receive(&db, b"Subject: hi\r\n\r\nhello\r\n").await;
    let row = inbound::load(&db, id).await.unwrap().unwrap();
    assert_eq!(row.status, "received");
    assert_eq!(row.raw, b"Subject: hi\r\n\r\nhello\r\n");
    let jobs: i64 = sqlx::query_scalar(
        "select count(*) from jobs where kind = 'inbound_mail' and payload->>'inbound_id' = $1",
    )
    .bind(id.to_string())
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(jobs, 1, "its job is in the same transaction");

    let refused = Decided {
        status: "refused",
        reason: Some("empty"),
        ..Decided::default()
    };
    assert!(inbound::decide(&db, id, &refused).await.unwrap());
    let ignored = Decided {
        status: "ignored",
        ..Decided::default()
    };
    assert!(
        !inbound::decide(&db, id, &ignored).await.unwrap(),
        "a decision is final"
    );
    assert_eq!(
        inbound::load(&db, id).await.unwrap().unwrap().status,
        "refused"
    );
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn old_received_mail_loses_its_text_then_its_record(db: PgPool) {
    let waiting = receive(&db, b"waiting").await;
    let abandoned = receive(&db, b"undecided for a month").await;
    let week_old = receive(&db, b"a week old").await;
    let month_old = receive(&db, b"a month old").await;
    for (id, days) in [
        (waiting, 20),
        (abandoned, 31),
        (week_old, 8),
        (month_old, 31),
    ] {
        sqlx::query(
            "update inbound_mail set received_at = now() - make_interval(days => $2) where id = $1",
        )
        .bind(id)
        .bind(days)
        .execute(&db)
        .await
        .unwrap();
    }
    for id in [week_old, month_old] {
        let decided = Decided {
            status: "ignored",
            ..Decided::default()
        };
        inbound::decide(&db, id, &decided).await.unwrap();
    }
    convos_store::purge::old_records(&db, convos_store::purge::Keep::default())
        .await
        .unwrap();
    let waiting = inbound::load(&db, waiting).await.unwrap().unwrap();
    assert_eq!(waiting.raw, b"waiting", "undecided mail waits whole");
    assert!(
        inbound::load(&db, abandoned).await.unwrap().is_none(),
        "until no job can decide it any more: its job died a month ago"
    );
    let week_old = inbound::load(&db, week_old).await.unwrap().unwrap();
    assert!(
        week_old.raw.is_empty(),
        "its text is gone, its record stays"
    );
    assert!(inbound::load(&db, month_old).await.unwrap().is_none());
}
