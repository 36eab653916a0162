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

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn one_sender_cannot_fill_a_digest(db: PgPool) {
    // A digest lists the newest threads: a harasser's 26 new threads, sent before the digest
    // hour, pushed a friend's thread out of the list, counted among "2 more" (a trust and
    // safety probe). One sender now has at most a few of the places.
    let bob = support::user(&db, "bob").await;
    let (carol, mallory) = (
        support::user(&db, "carol").await,
        support::user(&db, "mallory").await,
    );
    support::conversation(&db, carol, bob, "Important: landlord called", 1).await;
    for n in 0..=MAX_THREADS {
        support::conversation(&db, mallory, bob, &format!("noise {n}"), 1).await;
    }

    let (listed, total) = digests::unread_threads(&db, bob).await.unwrap();

    let subjects: Vec<&str> = listed.iter().map(|t| t.subject.as_str()).collect();
    assert!(
        subjects.contains(&"Important: landlord called"),
        "{subjects:?}"
    );
    assert_eq!(
        listed
            .iter()
            .filter(|t| t.sender_username == "mallory")
            .count() as i64,
        digests::THREADS_PER_SENDER
    );
    assert_eq!(total, MAX_THREADS + 2, "every thread counted");
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_digest_leaves_out_the_people_its_reader_blocked(db: PgPool) {
    let bob = support::user(&db, "bob").await;
    let (carol, mallory) = (
        support::user(&db, "carol").await,
        support::user(&db, "mallory").await,
    );
    support::conversation(&db, carol, bob, "Lunch", 1).await;
    support::conversation(&db, mallory, bob, "answer me", 1).await;
    let mallory_name = convos_core::Username::parse("mallory").unwrap();
    convos_store::blocks::block(&db, bob, &mallory_name)
        .await
        .unwrap();

    let (listed, total) = digests::unread_threads(&db, bob).await.unwrap();

    let subjects: Vec<&str> = listed.iter().map(|t| t.subject.as_str()).collect();
    assert_eq!((subjects, total), (vec!["Lunch"], 1));
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_digest_leaves_out_the_people_operators_suspended(db: PgPool) {
    // A spammer suspended mid-burst still had their threads listed in the next day's digests
    // (a review).
    let bob = support::user(&db, "bob").await;
    let (carol, spammer) = (
        support::user(&db, "carol").await,
        support::user(&db, "spammer").await,
    );
    let operator = support::user(&db, "opal").await;
    support::conversation(&db, carol, bob, "Lunch", 1).await;
    support::conversation(&db, spammer, bob, "cheap watches", 1).await;
    let spammer_name = convos_core::Username::parse("spammer").unwrap();
    convos_store::users::suspend(&db, operator, &spammer_name, true)
        .await
        .unwrap();

    let (listed, total) = digests::unread_threads(&db, bob).await.unwrap();

    let subjects: Vec<&str> = listed.iter().map(|t| t.subject.as_str()).collect();
    assert_eq!((subjects, total), (vec!["Lunch"], 1));
}
