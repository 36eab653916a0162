//! What a daily digest lists and counts.

mod support;

use convos_store::digests::{self, MAX_THREADS};
use sqlx::PgPool;

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_digest_lists_and_counts_only_threads_with_verified_people(db: PgPool) {
    // What an account with no proven address writes is not emailed, digests included (decision
    // 58): beyond the threads a digest lists, its count of the others leaves them out too.
    let bob = support::user(&db, "bob").await;
    for n in 0..=MAX_THREADS {
        let friend = support::user(&db, &format!("friend{n}")).await;
        support::conversation(&db, friend, bob, &format!("From friend {n}"), 1).await;
    }
    for n in 0..2 {
        let stranger = support::user(&db, &format!("stranger{n}")).await;
        sqlx::query("update users set email_verified_at = null where id = $1")
            .bind(stranger.as_uuid())
            .execute(&db)
            .await
            .unwrap();
        support::conversation(&db, stranger, bob, "Cheap pills", 1).await;
    }

    let (listed, total) = digests::unread_threads(&db, bob).await.unwrap();

    assert_eq!(listed.len() as i64, MAX_THREADS);
    assert!(listed.iter().all(|t| t.subject.starts_with("From friend")));
    assert_eq!(
        total,
        MAX_THREADS + 1,
        "the strangers' threads are not counted"
    );
}
