//! Email settings changed outside `PATCH /me`: links in emails and spam complaints.

mod support;

use chrono::Utc;
use convos_store::{digests, email_links, unsubscribe};
use sqlx::PgPool;

/// When `user`'s next digest is placed, if it is.
async fn next_digest(db: &PgPool, user: convos_core::UserId) -> Option<chrono::DateTime<Utc>> {
    sqlx::query_scalar("select next_digest_at from users where id = $1")
        .bind(user.as_uuid())
        .fetch_one(db)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn email_turned_back_on_from_a_link_resumes_a_daily_digest_that_came_due_while_off(
    db: PgPool,
) {
    // A digest that came due while email was off was unplaced, and turning email on from the
    // link in an email left it so: a daily-digest reader silently got no email again, ever.
    let bob = support::user(&db, "bob").await;
    sqlx::query(
        "update users set email_digest = true, digest_hour = 8, time_zone = 'UTC', \
           next_digest_at = now() - interval '1 second' where id = $1",
    )
    .bind(bob.as_uuid())
    .execute(&db)
    .await
    .unwrap();
    unsubscribe::complained(&db, bob).await.unwrap();
    digests::schedule_due(&db, 100).await.unwrap();
    assert_eq!(
        next_digest(&db, bob).await,
        None,
        "no digest while email is off"
    );

    assert!(email_links::turn_email_on(&db, bob).await.unwrap());

    let next = next_digest(&db, bob)
        .await
        .expect("the next digest is placed");
    assert!(next > Utc::now() && next <= Utc::now() + chrono::Duration::days(1));
    assert_eq!(
        chrono::Timelike::hour(&next),
        8,
        "at the reader's digest hour"
    );
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn email_turned_back_on_keeps_a_digest_already_placed_and_places_none_without_digests(
    db: PgPool,
) {
    let (alice, carol) = (
        support::user(&db, "alice").await,
        support::user(&db, "carol").await,
    );
    let placed = Utc::now() + chrono::Duration::hours(3);
    sqlx::query(
        "update users set email_digest = true, next_digest_at = $2, \
           email_notifications = false where id = $1",
    )
    .bind(alice.as_uuid())
    .bind(placed)
    .execute(&db)
    .await
    .unwrap();
    sqlx::query("update users set email_notifications = false where id = $1")
        .bind(carol.as_uuid())
        .execute(&db)
        .await
        .unwrap();

    email_links::turn_email_on(&db, alice).await.unwrap();
    email_links::turn_email_on(&db, carol).await.unwrap();

    let kept = next_digest(&db, alice).await.unwrap();
    assert!(
        (kept - placed).num_milliseconds().abs() < 1,
        "{kept} against {placed}"
    );
    assert_eq!(
        next_digest(&db, carol).await,
        None,
        "carol is emailed per message"
    );
}
