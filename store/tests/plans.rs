//! Mailbox listings are index range scans whatever the mailbox size.
//!
//! A heavy mailbox is generated in SQL, then the real listing query is explained: the plan must
//! read the folder's partial index in order and stop after one page, never sort or scan the
//! mailbox.

use convos_core::api::Folder;
use convos_store::threads::list_sql;
use sqlx::PgPool;

const ALICE: &str = "00000000-0000-7000-8000-00000000000a";
const BOB: &str = "00000000-0000-7000-8000-00000000000b";

async fn heavy_mailbox(db: &PgPool, threads: i32) {
    sqlx::query(
        "insert into users (id, username, email, display_name, password_hash) values \
         ($1::uuid, 'alice', 'alice@example.com', 'Alice', 'x'), \
         ($2::uuid, 'bob', 'bob@example.com', 'Bob', 'x')",
    )
    .bind(ALICE)
    .bind(BOB)
    .execute(db)
    .await
    .unwrap();
    for sql in [
        "insert into threads (id, subject, created_by) \
         select ('00000000-0000-7000-9000-' || lpad(to_hex(g), 12, '0'))::uuid, 'subject ' || g, $1::uuid \
         from generate_series(1, $3) g",
        "insert into messages (id, thread_id, sender_id, recipient_id, body, created_at) \
         select gen_random_uuid(), ('00000000-0000-7000-9000-' || lpad(to_hex(g), 12, '0'))::uuid, \
                $2::uuid, $1::uuid, 'hello ' || g, now() - g * interval '1 minute' \
         from generate_series(1, $3) g",
        "insert into thread_participants \
           (thread_id, user_id, peer_id, received_count, unread_count, archived, last_activity_at) \
         select ('00000000-0000-7000-9000-' || lpad(to_hex(g), 12, '0'))::uuid, $1::uuid, $2::uuid, \
                1, g % 2, g % 10 = 0, now() - g * interval '1 minute' \
         from generate_series(1, $3) g",
        "insert into thread_participants \
           (thread_id, user_id, peer_id, sent_count, last_activity_at) \
         select ('00000000-0000-7000-9000-' || lpad(to_hex(g), 12, '0'))::uuid, $2::uuid, $1::uuid, \
                1, now() - g * interval '1 minute' \
         from generate_series(1, $3) g",
    ] {
        sqlx::query(sql)
            .bind(ALICE)
            .bind(BOB)
            .bind(threads)
            .execute(db)
            .await
            .unwrap();
    }
    sqlx::query("analyze").execute(db).await.unwrap();
}

async fn plan(db: &PgPool, caller: &str, folder: Folder, unread: bool) -> String {
    let sql = format!("explain {}", list_sql(folder, unread));
    let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(uuid::Uuid::parse_str(caller).unwrap())
        .bind(chrono::Utc::now() + chrono::Duration::days(1))
        .bind(uuid::Uuid::max())
        .bind(26_i64)
        .fetch_all(db)
        .await
        .unwrap();
    rows.into_iter()
        .map(|(line,)| line)
        .collect::<Vec<_>>()
        .join("\n")
}

#[sqlx::test(migrator = "convos_store::MIGRATOR")]
async fn every_folder_listing_is_an_ordered_index_scan_of_its_partial_index(db: PgPool) {
    heavy_mailbox(&db, 50_000).await;
    for (caller, folder, index) in [
        (ALICE, Folder::Inbox, "thread_participants_inbox"),
        (ALICE, Folder::Archive, "thread_participants_archive"),
        (ALICE, Folder::All, "thread_participants_all"),
        (BOB, Folder::Sent, "thread_participants_sent"),
    ] {
        for unread in [false, true] {
            let plan = plan(&db, caller, folder, unread).await;
            assert!(
                plan.contains(&format!("Index Scan using {index} on thread_participants")),
                "{folder:?} (unread {unread}) does not scan {index}:\n{plan}"
            );
            assert!(
                !plan.contains("Sort"),
                "{folder:?} sorts instead of reading in order:\n{plan}"
            );
            assert!(
                !plan.contains("Seq Scan on thread_participants"),
                "{folder:?} scans the whole table:\n{plan}"
            );
            assert!(
                plan.starts_with("Limit"),
                "{folder:?} does not stop after a page:\n{plan}"
            );
        }
    }
}
