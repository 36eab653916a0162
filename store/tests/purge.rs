//! The purge of expired messages: a mass expiry is erased batch by batch, and leaves every
//! participant's counters as a recount from the messages would, also while people keep
//! writing in the same threads.

use convos_core::{MessageId, ThreadId, UserId};
use convos_store::jobs::NotifySettings;
use convos_store::messages;
use convos_store::{StoreError, purge};
use sqlx::PgPool;
use support::{content, conversation, user};

mod support;

/// Every participant's stored counters beside a recount from the messages they still count
/// (not deleted by them, neither consumed nor purged), where the two differ.
async fn counters_off(db: &PgPool) -> Vec<(uuid::Uuid, uuid::Uuid, [i64; 3], [i64; 3])> {
    sqlx::query_as::<_, (uuid::Uuid, uuid::Uuid, i64, i64, i64, i64, i64, i64)>(
        "select tp.thread_id, tp.user_id, \
                tp.received_count::int8, tp.sent_count::int8, tp.unread_count::int8, \
                c.received, c.sent, c.unread \
         from thread_participants tp cross join lateral ( \
           select count(*) filter (where m.recipient_id = tp.user_id \
                                   and m.recipient_deleted_at is null) as received, \
                  count(*) filter (where m.sender_id = tp.user_id \
                                   and m.sender_deleted_at is null) as sent, \
                  count(*) filter (where (m.recipient_id = tp.user_id \
                                          and m.recipient_deleted_at is null \
                                          and not m.recipient_read) \
                                      or (m.sender_id = tp.user_id \
                                          and m.sender_deleted_at is null \
                                          and not m.sender_read)) as unread \
           from messages m where m.thread_id = tp.thread_id \
             and m.purged_at is null and m.consumed_at is null) c \
         where (tp.received_count, tp.sent_count, tp.unread_count) \
               <> (c.received, c.sent, c.unread)",
    )
    .fetch_all(db)
    .await
    .unwrap()
    .into_iter()
    .map(|(t, u, r, s, n, cr, cs, cn)| (t, u, [r, s, n], [cr, cs, cn]))
    .collect()
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_mass_expiry_is_erased_in_batches_and_every_counter_matches_a_recount(db: PgPool) {
    let people = [
        user(&db, "alice").await,
        user(&db, "bob").await,
        user(&db, "carol").await,
    ];
    let notify = NotifySettings::default();
    // 30 threads between each pair in turn, six messages each from both sides; some read, some
    // deleted by one side.
    let mut threads: Vec<(ThreadId, [UserId; 2])> = Vec::new();
    let mut sent: Vec<(MessageId, UserId, UserId)> = Vec::new();
    for t in 0..30 {
        let pair = [people[t % 3], people[(t + 1) % 3]];
        let (thread, ids) = conversation(&db, pair[0], pair[1], "Ephemeral", 6).await;
        threads.push((thread, pair));
        sent.extend(
            ids.into_iter()
                .enumerate()
                .map(|(n, id)| (id, pair[n % 2], pair[(n + 1) % 2])),
        );
    }
    for (i, (id, from, to)) in sent.iter().enumerate() {
        match i % 4 {
            0 => {
                messages::set_read(&db, *to, *id, true)
                    .await
                    .unwrap()
                    .without_wake();
            }
            1 => {
                messages::delete_for_me(&db, *from, *id)
                    .await
                    .unwrap()
                    .without_wake();
            }
            2 => {
                messages::delete_for_me(&db, *to, *id)
                    .await
                    .unwrap()
                    .without_wake();
            }
            _ => {}
        }
    }
    // Two messages in three expire at once.
    let expiring: Vec<uuid::Uuid> = sent
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 0)
        .map(|(_, (id, _, _))| id.as_uuid())
        .collect();
    sqlx::query("update messages set expires_at = now() - interval '1 s' where id = any($1)")
        .bind(&expiring)
        .execute(&db)
        .await
        .unwrap();

    // The purge, in batches of 25, while each thread gets a reply (from whoever can still see
    // it: a thread whose messages all expired or were deleted for someone is gone for them).
    let purging = async {
        let mut erased = 0;
        loop {
            let purged = purge::run(&db, 25).await.unwrap();
            erased += purged.expired;
            if purged.expired < 25 {
                return erased;
            }
        }
    };
    let replying = async {
        let mut replies = 0;
        for (thread, pair) in &threads {
            for who in pair {
                match messages::reply(&db, &notify, *who, *thread, &content("late"), None).await {
                    Ok(reply) => {
                        reply.without_wake();
                        replies += 1;
                        break;
                    }
                    Err(StoreError::NotFound) => continue,
                    Err(e) => panic!("{e}"),
                }
            }
        }
        replies
    };
    let (erased, replies) = tokio::join!(purging, replying);
    assert!(replies >= 20, "{replies} threads got their reply");

    assert_eq!(erased, expiring.len() as u64, "every expired message, once");
    let left: i64 = sqlx::query_scalar(
        "select count(*) from messages where id = any($1) and (purged_at is null or body is not null)",
    )
    .bind(&expiring)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(left, 0, "expired messages left with a body");
    assert_eq!(
        counters_off(&db).await,
        vec![],
        "counters that differ from a recount"
    );
}
