//! A thread's page and a single message's read state the visibility rule in two forms
//! (decision 43); each participant must see the same messages through both.

use convos_store::messages;
use convos_store::threads::{self, Order};
use sqlx::PgPool;
use support::{conversation, user};

mod support;
use std::collections::HashSet;

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn a_threads_page_shows_each_participant_the_messages_they_can_open(db: PgPool) {
    let (alice, bob) = (user(&db, "alice").await, user(&db, "bob").await);
    let (thread, ids) = conversation(&db, alice, bob, "Plans", 10).await;
    // Bob deletes one he received and one he sent; Alice one she sent and one she received;
    // one message has expired and one was read once.
    for (who, n) in [(bob, 0), (bob, 1), (alice, 2), (alice, 3)] {
        messages::delete_for_me(&db, who, ids[n])
            .await
            .unwrap()
            .without_wake();
    }
    sqlx::query("update messages set expires_at = now() - interval '1 minute' where id = $1")
        .bind(ids[4].as_uuid())
        .execute(&db)
        .await
        .unwrap();
    sqlx::query("update messages set read_once = true, consumed_at = now() where id = $1")
        .bind(ids[5].as_uuid())
        .execute(&db)
        .await
        .unwrap();

    for (name, caller, expected) in [("alice", alice, 6), ("bob", bob, 6)] {
        let page = threads::messages(&db, caller, thread, Order::Desc, 50, None)
            .await
            .unwrap();
        let listed: HashSet<_> = page.items.iter().map(|m| m.id).collect();
        assert_eq!(
            listed.len(),
            expected,
            "{name}: ten, less their two deletions, the expired one and the one read once"
        );
        for id in &ids {
            let opens = messages::get(&db, caller, *id).await.is_ok();
            assert_eq!(listed.contains(id), opens, "{name}, message {id:?}");
        }
    }
}
