//! The generated corpus: users, threads and messages with realistic sizes, made in SQL from a
//! fixed seed so every run (and every machine) gets the same data.
//!
//! Sizes: subjects 10-140 characters; bodies 90% 20-400 characters, 9.5% 400-4,000 and 0.5%
//! 4,000-64,000 (the long tail). Mailboxes of the sizes under test belong to `box<N>` users,
//! whose peers are drawn from the filler users; filler threads between filler users bring the
//! whole database to the target message count; `longa` and `longb` share one very long thread.
//! The corpus is kept between runs and rebuilt only when its shape changes.

use anyhow::Context;
use sqlx::{Executor, PgPool};
use std::time::Instant;

/// Bump when the generator changes, so old corpora are rebuilt.
const VERSION: i32 = 2;

/// The shape of a corpus.
#[derive(Clone, Debug)]
pub struct Shape {
    /// Users who fill the database with threads between themselves.
    pub filler_users: i64,
    /// Threads between filler users.
    pub filler_threads: i64,
    /// Inbox sizes under test; user `box<N>` receives `N` threads.
    pub mailboxes: Vec<i64>,
    /// Messages in the `longa`/`longb` thread.
    pub long_thread: i64,
}

impl Shape {
    fn key(&self) -> String {
        format!("{VERSION}:{self:?}")
    }
}

/// Random-looking but fixed: a non-negative hash of a string expression in SQL.
const H: &str = "abs(hashtext";

/// Makes sure the database holds the corpus of this shape; returns the message count.
pub async fn ensure(db: &PgPool, shape: &Shape) -> anyhow::Result<i64> {
    db.execute(
        "create table if not exists bench_corpus \
         (shape text not null, messages bigint not null, built_in_secs float8 not null)",
    )
    .await?;
    let existing: Option<(String, i64)> =
        sqlx::query_as("select shape, messages from bench_corpus")
            .fetch_optional(db)
            .await?;
    if let Some((key, messages)) = &existing
        && *key == shape.key()
    {
        println!("   corpus: reusing {messages} generated messages");
        return Ok(*messages);
    }
    if existing.is_some() {
        anyhow::bail!(
            "the corpus database holds another shape; it is dropped and rebuilt by the caller"
        );
    }
    build(db, shape).await
}

/// Whether the database holds a corpus of another shape (then it must be recreated).
pub async fn is_stale(db: &PgPool, shape: &Shape) -> anyhow::Result<bool> {
    let table: Option<String> = sqlx::query_scalar("select to_regclass('bench_corpus')::text")
        .fetch_one(db)
        .await?;
    if table.is_none() {
        return Ok(false);
    }
    let key: Option<String> = sqlx::query_scalar("select shape from bench_corpus")
        .fetch_optional(db)
        .await?;
    Ok(key.is_some_and(|k| k != shape.key()))
}

async fn build(db: &PgPool, shape: &Shape) -> anyhow::Result<i64> {
    let started = Instant::now();
    println!("   corpus: generating (once; kept for later runs)");
    // Secondary indexes are built once at the end instead of maintained row by row; their
    // definitions are read back from the catalog, so they are exactly the migrations' ones.
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "select i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) \
         from pg_index i join pg_class c on c.oid = i.indrelid \
         where c.relname in ('messages', 'threads', 'thread_participants') \
           and not i.indisprimary \
           and not exists (select 1 from pg_constraint k where k.conindid = i.indexrelid)",
    )
    .fetch_all(db)
    .await?;
    for (name, _) in &indexes {
        db.execute(sqlx::AssertSqlSafe(format!("drop index {name}")))
            .await?;
    }

    let f = shape.filler_users;
    let mut conn = db.acquire().await?;
    // Generated rows reference each other correctly by construction; skip per-row FK triggers.
    conn.execute("set session_replication_role = replica")
        .await?;
    conn.execute(sqlx::AssertSqlSafe(format!(
        "insert into users (id, username, email, display_name, password_hash, email_verified_at) \
         select md5('user' || g)::uuid, 'user' || lpad(g::text, 6, '0'), \
                'user' || g || '@bench.example', 'User ' || g, 'x', now() \
         from generate_series(1, {f}) g"
    )))
    .await?;
    let mut special: Vec<String> = shape.mailboxes.iter().map(|n| format!("box{n}")).collect();
    special.extend(["longa", "longb", "livesender"].map(String::from));
    special.extend((0..1000).map(|i| format!("live{i:04}")));
    for name in &special {
        sqlx::query(
            "insert into users (id, username, email, display_name, password_hash, \
                                email_verified_at) \
             values (md5($1)::uuid, $1, $1 || '@bench.example', $1, 'x', now())",
        )
        .bind(name)
        .execute(&mut *conn)
        .await?;
    }

    // A text of 14,000 words to cut subjects and bodies from.
    conn.execute(
        "create unlogged table if not exists bench_blob as \
         select string_agg((array['time','person','year','way','day','thing','man','world', \
           'life','hand','part','child','eye','woman','place','work','week','case','point', \
           'government','company','number','group','problem','fact','be','have','do','say', \
           'get','make','go','know','take','see','come','think','look','want','give','use', \
           'find','tell','ask','seem','feel','try','leave','call','good','new','first','last', \
           'long','great','little','own','other','old','right','big','high','different', \
           'small','large','next','early','young','important','few','public','bad','same', \
           'able','to','of','in','for','on','with','at','by','from','up','about','into', \
           'over','after','meeting','invoice','shipping','order','parcel','delivery','price', \
           'offer','lunch','friday','report','draft','review','thanks','please','tomorrow'] \
           )[1 + abs(hashtext('w' || g)) % 107], ' ') as t \
         from generate_series(1, 14000) g",
    )
    .await?;
    conn.execute(
        "create unlogged table bench_threads (g int primary key, id uuid not null, \
         a uuid not null, b uuid not null, n int not null, start timestamptz not null)",
    )
    .await?;
    let mut base = 0i64;
    let mut add =
        |conn_sql: &mut Vec<String>, count: i64, a: String, b: String, n: String, start: String| {
            conn_sql.push(format!(
                "insert into bench_threads (g, id, a, b, n, start) \
             select g, md5('thread' || g)::uuid, {a}, {b}, {n}, {start} \
             from generate_series({}, {}) g",
                base + 1,
                base + count
            ));
            base += count;
        };
    let mut sqls = Vec::new();
    let start = "now() - interval '400 days' \
                 + ({H}('s' || g)) % 31536000) * interval '1 second'"
        .replace("{H}", H);
    for n in &shape.mailboxes {
        // The box user receives the first message of each of its threads.
        add(
            &mut sqls,
            *n,
            format!("md5('user' || (1 + {H}('a' || g)) % {f}))::uuid"),
            format!("md5('box{n}')::uuid"),
            format!("1 + {H}('n' || g)) % 5"),
            start.clone(),
        );
    }
    add(
        &mut sqls,
        shape.filler_threads,
        format!("md5('user' || (1 + {H}('a' || g)) % {f}))::uuid"),
        format!(
            "md5('user' || (1 + ({H}('a' || g)) % {f} + 1 + {H}('b' || g)) % ({f} - 1)) % {f}))::uuid"
        ),
        format!("1 + {H}('n' || g)) % 6"),
        start.clone(),
    );
    add(
        &mut sqls,
        1,
        "md5('longa')::uuid".into(),
        "md5('longb')::uuid".into(),
        shape.long_thread.to_string(),
        "now() - interval '60 days'".into(),
    );
    let total_threads = base;
    for sql in sqls {
        conn.execute(sqlx::AssertSqlSafe(sql)).await?;
    }
    conn.execute(
        "insert into threads (id, subject, created_by, created_at) \
         select t.id, \
                left(btrim(substr(b.t, 1 + abs(hashtext('o' || t.g)) % 5000, \
                           10 + abs(hashtext('l' || t.g)) % 131)), 140), \
                t.a, t.start \
         from bench_threads t cross join bench_blob b",
    )
    .await?;
    drop(conn);

    // Messages: the expensive part (each search vector is computed on insert: triggers are off
    // here, so the one definition is called directly), split
    // across two connections to use both cores.
    let halves = [
        (1, total_threads / 2),
        (total_threads / 2 + 1, total_threads),
    ];
    let mut tasks = Vec::new();
    for (lo, hi) in halves {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = db.acquire().await?;
            conn.execute("set session_replication_role = replica")
                .await?;
            conn.execute(sqlx::AssertSqlSafe(format!(
                "insert into messages (id, thread_id, sender_id, recipient_id, body, created_at, \
                                       sender_read, recipient_read, search) \
                 select md5('msg' || t.g || ':' || k)::uuid, t.id, \
                        case when k % 2 = 0 then t.a else t.b end, \
                        case when k % 2 = 0 then t.b else t.a end, \
                        x.body, \
                        t.start + k * interval '7 minutes' + (r.h % 300) * interval '1 second', \
                        true, not (k = t.n - 1 and r.h % 10 < 3), \
                        message_search_vector(th.subject, x.body, false) \
                 from bench_threads t \
                 join threads th on th.id = t.id \
                 cross join lateral generate_series(0, t.n - 1) k \
                 cross join lateral (select abs(hashtext(t.g || ':' || k)) as h) r \
                 cross join bench_blob b \
                 cross join lateral (select substr(b.t, 1 + r.h % 5000, \
                        case when r.h % 1000 < 900 then 20 + (r.h / 1000) % 381 \
                             when r.h % 1000 < 995 then 400 + (r.h / 1000) % 3601 \
                             else 4000 + (r.h / 1000) % 60001 end) as body) x \
                 where t.g between {lo} and {hi}"
            )))
            .await?;
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await.context("generator task")??;
    }
    let mut conn = db.acquire().await?;
    conn.execute("set session_replication_role = replica")
        .await?;
    conn.execute(
        "insert into thread_participants \
           (thread_id, user_id, peer_id, received_count, sent_count, unread_count, last_activity_at) \
         select thread_id, user_id, peer_id, sum(recv), sum(sent), sum(unread), max(created_at) \
         from ( \
           select thread_id, recipient_id as user_id, sender_id as peer_id, 1 as recv, 0 as sent, \
                  (not recipient_read)::int as unread, created_at from messages \
           union all \
           select thread_id, sender_id, recipient_id, 0, 1, (not sender_read)::int, created_at \
           from messages \
         ) x group by thread_id, user_id, peer_id",
    )
    .await?;
    conn.execute("drop table bench_threads").await?;
    drop(conn);

    let mut tasks = Vec::new();
    for chunk in [0, 1] {
        let db = db.clone();
        let defs: Vec<String> = indexes
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 2 == chunk)
            .map(|(_, (_, def))| def.clone())
            .collect();
        tasks.push(tokio::spawn(async move {
            for def in defs {
                db.execute(sqlx::AssertSqlSafe(def)).await?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await.context("index task")??;
    }
    db.execute("vacuum analyze").await?;
    let messages: i64 = sqlx::query_scalar("select count(*) from messages")
        .fetch_one(db)
        .await?;
    let secs = started.elapsed().as_secs_f64();
    sqlx::query("insert into bench_corpus (shape, messages, built_in_secs) values ($1, $2, $3)")
        .bind(shape.key())
        .bind(messages)
        .bind(secs)
        .execute(db)
        .await?;
    println!("   corpus: {messages} messages in {total_threads} threads, generated in {secs:.0} s");
    Ok(messages)
}
