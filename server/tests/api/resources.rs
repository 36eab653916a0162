//! Bounded resources per client: event streams per user, slow or silent connections, the
//! connection cap, request ids, and where `/metrics` lives.

use convos_testkit::{OwnRedis, TestServer, ends_within, open_stream};
use reqwest::StatusCode;
use sqlx::PgPool;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn opening_one_stream_more_than_the_limit_closes_the_users_oldest(db: PgPool) {
    let app = TestServer::spawn_with(db, |s| s.max_streams_per_user = 3).await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let bobs = open_stream(&app, &bob).await;
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(open_stream(&app, &alice).await);
    }

    let newest = open_stream(&app, &alice).await;

    let oldest = streams.remove(0);
    assert!(
        ends_within(oldest, Duration::from_secs(10)).await,
        "the oldest of alice's streams was not closed"
    );
    for open in streams.into_iter().chain([newest, bobs]) {
        assert!(
            !ends_within(open, Duration::from_millis(300)).await,
            "a stream within the limit was closed"
        );
    }
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn idle_streams_run_no_query_per_heartbeat(db: PgPool) {
    let app = TestServer::spawn_with(db.clone(), |s| s.sse_heartbeat_secs = 1).await;
    let alice = app.user("alice").await;
    let mut streams = Vec::new();
    for _ in 0..5 {
        streams.push(open_stream(&app, &alice).await);
    }
    // Any session check during the window would queue behind this lock, where pg_locks shows it.
    let mut lock = db.begin().await.unwrap();
    sqlx::query("lock table api_tokens in access exclusive mode")
        .execute(&mut *lock)
        .await
        .unwrap();

    tokio::time::sleep(Duration::from_secs(3)).await;

    let waiting: i64 = sqlx::query_scalar(
        "select count(*) from pg_locks l join pg_class c on c.oid = l.relation \
         where c.relname = 'api_tokens' and not l.granted",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    lock.rollback().await.unwrap();
    assert_eq!(waiting, 0, "idle streams queried their session");
    drop(streams);
}

/// Reads `stream` in the background, handing over each chunk as it arrives; the channel closes
/// when the stream ends.
fn chunks_of(mut stream: reqwest::Response) -> mpsc::UnboundedReceiver<String> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(chunk)) = stream.chunk().await {
            if tx
                .send(String::from_utf8_lossy(&chunk).into_owned())
                .is_err()
            {
                break;
            }
        }
    });
    rx
}

/// Waits at most `wait` for a heartbeat; `false` if the stream ended first or none came.
async fn heartbeat_within(chunks: &mut mpsc::UnboundedReceiver<String>, wait: Duration) -> bool {
    tokio::time::timeout(wait, async {
        while let Some(chunk) = chunks.recv().await {
            if chunk.contains("heartbeat") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false)
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_request_past_the_deadline_is_503_while_an_event_stream_outlives_it(db: PgPool) {
    let app = TestServer::spawn_with(db, |s| {
        s.request_timeout_secs = 1;
        s.sse_heartbeat_secs = 1;
    })
    .await;
    // The test's pool (the server's too) sets no statement limit, so nothing but the request
    // deadline ends the wait below.
    let statement_limit: String = sqlx::query_scalar("show statement_timeout")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(statement_limit, "0");
    let alice = app.user("alice").await;
    let mut stream = chunks_of(open_stream(&app, &alice).await);
    // Its first heartbeat: the stream has lived a deadline's length before the request starts.
    assert!(
        heartbeat_within(&mut stream, Duration::from_secs(10)).await,
        "the stream sent no heartbeat"
    );
    // Every authenticated request reads its session: held here, the next one waits.
    let mut lock = app.db.begin().await.unwrap();
    sqlx::query("lock table api_tokens in access exclusive mode")
        .execute(&mut *lock)
        .await
        .unwrap();

    let slow = app.get("/api/v1/me", &alice).await;

    lock.rollback().await.unwrap();
    assert_eq!(slow.status, StatusCode::SERVICE_UNAVAILABLE, "{slow:?}");
    assert_eq!(slow.code(), "request_timed_out");
    assert!(
        slow.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{slow:?}"
    );
    assert!(slow.headers.contains_key("x-request-id"));
    // As documented: only a statement cut off by its own time limit says when to try again.
    assert!(!slow.headers.contains_key("retry-after"), "{slow:?}");
    // Past what arrived before the answer, the stream goes on.
    while stream.try_recv().is_ok() {}
    assert!(
        heartbeat_within(&mut stream, Duration::from_secs(10)).await,
        "the event stream ended with the request deadline"
    );
}

/// Writes a partial request line by line, slowly, and tells whether the server hung up.
async fn slowloris(addr: String, every: Duration, for_at_most: Duration) -> bool {
    let mut socket = TcpStream::connect(addr).await.unwrap();
    let _ = socket.write_all(b"GET /healthz HTTP/1.1\r\n").await;
    let deadline = tokio::time::Instant::now() + for_at_most;
    let mut buf = [0u8; 512];
    while tokio::time::Instant::now() < deadline {
        if socket.write_all(b"X-Slow: 1\r\n").await.is_err() {
            return true;
        }
        match tokio::time::timeout(every, socket.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return true,
            // The server may answer 408 before hanging up.
            Ok(Ok(_)) => {}
            Err(_) => {}
        }
    }
    false
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn slow_or_silent_connections_are_closed_at_the_header_deadline(db: PgPool) {
    let app = TestServer::spawn_with(db, |s| s.header_timeout_secs = 1).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut attackers = Vec::new();
    for _ in 0..50 {
        attackers.push(tokio::spawn(slowloris(
            addr.clone(),
            Duration::from_millis(300),
            Duration::from_secs(8),
        )));
    }
    let mut silent = TcpStream::connect(&addr).await.unwrap();

    let mut buf = [0u8; 64];
    let silent_closed = matches!(
        tokio::time::timeout(Duration::from_secs(8), silent.read(&mut buf)).await,
        Ok(Ok(_) | Err(_))
    );

    assert!(silent_closed, "a connection that sent nothing stayed open");
    for attacker in attackers {
        assert!(
            attacker.await.unwrap(),
            "a slowloris connection stayed open"
        );
    }
    let health = app.http.get(format!("{}/healthz", app.base)).send().await;
    assert_eq!(health.unwrap().status(), StatusCode::OK);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn connections_beyond_the_cap_wait_until_one_closes(db: PgPool) {
    let app = TestServer::spawn_with(db, |s| {
        s.max_connections = 4;
        s.header_timeout_secs = 60;
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(&addr).await.unwrap());
    }
    // Let the server accept all four.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fresh = || {
        reqwest::Client::builder()
            .timeout(Duration::from_millis(500))
            .build()
            .unwrap()
    };

    let while_full = fresh().get(format!("{}/healthz", app.base)).send().await;
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Served once a slot is free, however long a loaded machine takes to get there.
    let after = reqwest::Client::new()
        .get(format!("{}/healthz", app.base))
        .send()
        .await;

    assert!(
        while_full.is_err(),
        "a fifth connection was served: {while_full:?}"
    );
    assert_eq!(after.unwrap().status(), StatusCode::OK);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn one_client_cannot_hold_more_than_its_share_of_connections(db: PgPool) {
    let app = TestServer::spawn_with(db, |s| {
        s.max_connections_per_addr = 3;
        s.header_timeout_secs = 60;
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(&addr).await.unwrap());
    }

    let mut extra = TcpStream::connect(&addr).await.unwrap();
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await;
    let mut buf = [0u8; 64];
    let extra_read = tokio::time::timeout(Duration::from_secs(5), extra.read(&mut buf)).await;
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = app.http.get(format!("{}/healthz", app.base)).send().await;

    assert!(
        matches!(extra_read, Ok(Ok(0) | Err(_))),
        "a fourth connection from one address was served: {extra_read:?}"
    );
    assert_eq!(after.unwrap().status(), StatusCode::OK);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_proxy_is_not_held_to_one_clients_share(db: PgPool) {
    let app = TestServer::spawn_with(db, |s| {
        s.max_connections_per_addr = 2;
        s.trusted_proxies = vec!["127.0.0.1".into()];
        s.header_timeout_secs = 60;
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(&addr).await.unwrap());
    }

    let served = app.http.get(format!("{}/healthz", app.base)).send().await;

    assert_eq!(served.unwrap().status(), StatusCode::OK);
    drop(held);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_plain_request_id_is_echoed_and_anything_else_is_replaced(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let request = |id: String| {
        app.http
            .get(format!("{}/healthz", app.base))
            .header("x-request-id", id)
            .send()
    };

    let plain = request("trace-42.a_b".into()).await.unwrap();
    let huge = request("x".repeat(5_000)).await.unwrap();
    let hostile = request("abc\"def{}".into()).await.unwrap();

    assert_eq!(plain.headers()["x-request-id"], "trace-42.a_b");
    for res in [huge, hostile] {
        let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(
            uuid::Uuid::parse_str(&id).is_ok(),
            "not replaced by a fresh id: {id}"
        );
    }
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn metrics_are_served_apart_from_the_api(db: PgPool) {
    let app = TestServer::spawn_with(db, |s| {
        s.server_metrics_addr = Some("127.0.0.1:0".parse().unwrap())
    })
    .await;

    let on_api = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    let on_own = app
        .http
        .get(format!("{}/metrics", app.metrics_base.as_ref().unwrap()))
        .send()
        .await
        .unwrap();

    assert_eq!(on_api.status(), StatusCode::NOT_FOUND);
    assert_eq!(on_own.status(), StatusCode::OK);
    assert!(
        on_own
            .text()
            .await
            .unwrap()
            .contains("convos_http_requests_total")
    );
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn one_user_cannot_hold_more_requests_than_their_share(db: PgPool) {
    // One account with many connections, each asking for something slow over and over, held
    // the database pool every user shares: another user's one-page listing waited seconds.
    let app = TestServer::spawn_with(db, |s| s.max_requests_per_user = 2).await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let sent = app.send(&bob, &alice, "Hello", "Hi").await;
    let thread = sent["thread_id"].as_str().unwrap().to_owned();
    let mut streams = Vec::new();
    for _ in 0..3 {
        // Open event streams take no place once started.
        streams.push(open_stream(&app, &alice).await);
    }
    // Marking a thread read waits here on its counters' row, as slow statements wait.
    let lock = hold_thread_counters(&app, &thread).await;
    let held = [
        mark_read_in_background(&app, &alice, &thread),
        mark_read_in_background(&app, &alice, &thread),
    ];
    // Both are under way once they wait on the lock.
    crate::until_statements_wait(&app.db, 2).await;

    let third = app.get("/api/v1/me", &alice).await;
    let bobs = app.get("/api/v1/me", &bob).await;

    assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS, "{third:?}");
    assert_eq!(third.code(), "rate_limited");
    assert_eq!(
        third
            .headers
            .get("retry-after")
            .map(|v| v.to_str().unwrap()),
        Some("1")
    );
    assert_eq!(bobs.status, StatusCode::OK, "another user is served");
    lock.rollback().await.unwrap();
    for request in held {
        let done = request.await.unwrap();
        assert!(done.status.is_success(), "{done:?}");
    }
    assert_eq!(
        app.get("/api/v1/me", &alice).await.status,
        StatusCode::OK,
        "her places came back"
    );
    drop(streams);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_request_whose_client_hung_up_keeps_its_place_until_its_work_ends(db: PgPool) {
    // A cancelled handler gave its place back while its statement went on holding a pooled
    // connection: a client sending slow requests and hanging up at once held the pool anyway.
    let app = TestServer::spawn_with(db, |s| s.max_requests_per_user = 2).await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let sent = app.send(&bob, &alice, "Hello", "Hi").await;
    let thread = sent["thread_id"].as_str().unwrap().to_owned();
    let lock = hold_thread_counters(&app, &thread).await;
    let read = format!("{}/api/v1/threads/{thread}/read", app.base);
    // One that waits on the lock, its client gone after 300 ms.
    let gone = app
        .http
        .post(&read)
        .bearer_auth(&alice.token)
        .json(&serde_json::json!({}))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(gone.is_err(), "the client gave up");
    // One more that waits, its client still there.
    let waiting = mark_read_in_background(&app, &alice, &thread);
    crate::until_statements_wait(&app.db, 2).await;
    // Time for the server to see the first client's hang-up.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let third = app.get("/api/v1/me", &alice).await;

    assert_eq!(
        third.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the abandoned request still holds a connection, and its place: {third:?}"
    );
    lock.rollback().await.unwrap();
    assert!(waiting.await.unwrap().status.is_success());
    convos_testkit::eventually(Duration::from_secs(10), "her places back", || async {
        app.get("/api/v1/me", &alice).await.status == StatusCode::OK
    })
    .await;
}

/// Locks the counters of `thread` in a transaction of the test's: marking it read waits on
/// them, as a slow statement would, until the transaction ends.
async fn hold_thread_counters(
    app: &TestServer,
    thread: &str,
) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut lock = app.db.begin().await.unwrap();
    sqlx::query("select 1 from thread_participants where thread_id = $1::uuid for update")
        .bind(thread)
        .execute(&mut *lock)
        .await
        .unwrap();
    lock
}

/// Marks `thread` read as `user`, in a task of its own.
fn mark_read_in_background(
    app: &TestServer,
    user: &convos_testkit::TestUser,
    thread: &str,
) -> tokio::task::JoinHandle<convos_testkit::Answer> {
    let (client, user) = (app.client.clone(), user.clone());
    let read = format!("/api/v1/threads/{thread}/read");
    tokio::spawn(async move { client.post(&read, &user, serde_json::json!({})).await })
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn actions_on_long_threads_beyond_the_servers_share_are_refused_whoever_asks(db: PgPool) {
    // Deleting or reading a whole thread walks all of it (seconds for hundreds of thousands of
    // messages), however few of them the caller still holds. Several accounts, each within its
    // own share of requests, could hold most of the pool with them. Here a thread of more than
    // 2 messages is long, one action on a long thread may run at once, and another may wait a
    // fifth of a second for it.
    let app = TestServer::spawn_with(db, |s| {
        s.long_thread_messages = 2;
        s.max_long_thread_actions = 1;
        s.costly_wait_ms = 200;
    })
    .await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let (carol, dave) = (app.user("carol").await, app.user("dave").await);
    let alices = long_thread(&app, &bob, &alice).await;
    let carols = long_thread(&app, &dave, &carol).await;
    let short = thread_id(app.send(&bob, &carol, "Short", "one").await);
    // Carol has deleted hers: she holds none of its messages, and it is as long as before.
    let deleted = app
        .delete(&format!("/api/v1/threads/{carols}"), &carol)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    // Alice's mark-read waits on her thread's counters, as a slow one would.
    let lock = hold_thread_counters(&app, &alices).await;
    let held = mark_read_in_background(&app, &alice, &alices);
    crate::until_statements_wait(&app.db, 1).await;

    let on_long_read = app
        .post(
            &format!("/api/v1/threads/{carols}/read"),
            &carol,
            serde_json::json!({}),
        )
        .await;
    let on_long_delete = app
        .delete(&format!("/api/v1/threads/{carols}"), &carol)
        .await;
    let on_short = app
        .post(
            &format!("/api/v1/threads/{short}/read"),
            &carol,
            serde_json::json!({}),
        )
        .await;

    for refused in [&on_long_read, &on_long_delete] {
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{refused:?}");
        assert_eq!(refused.code(), "rate_limited");
        assert_eq!(refused.headers["retry-after"], "1");
    }
    assert_eq!(
        on_short.status,
        StatusCode::OK,
        "a short thread is served: {on_short:?}"
    );
    lock.rollback().await.unwrap();
    assert_eq!(held.await.unwrap().status, StatusCode::OK);
    let again = app
        .delete(&format!("/api/v1/threads/{carols}"), &carol)
        .await;
    assert_eq!(
        again.status,
        StatusCode::NOT_FOUND,
        "the place came back: {again:?}"
    );
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn one_user_holds_one_place_for_actions_on_long_threads(db: PgPool) {
    // With the places for all users, one account could take every one of them with actions on
    // its own long threads, and everyone else's were refused. A user may hold a quarter of them.
    let app = TestServer::spawn_with(db, |s| {
        s.long_thread_messages = 2;
        s.max_long_thread_actions = 4;
    })
    .await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let (carol, dave) = (app.user("carol").await, app.user("dave").await);
    let first = long_thread(&app, &bob, &alice).await;
    let second = long_thread(&app, &dave, &alice).await;
    let carols = long_thread(&app, &dave, &carol).await;
    let lock = hold_thread_counters(&app, &first).await;
    let held = mark_read_in_background(&app, &alice, &first);
    crate::until_statements_wait(&app.db, 1).await;

    let her_second = app
        .post(
            &format!("/api/v1/threads/{second}/read"),
            &alice,
            serde_json::json!({}),
        )
        .await;
    let carols_first = app
        .post(
            &format!("/api/v1/threads/{carols}/read"),
            &carol,
            serde_json::json!({}),
        )
        .await;

    assert_eq!(
        her_second.status,
        StatusCode::TOO_MANY_REQUESTS,
        "at once, not queued: {her_second:?}"
    );
    assert_eq!(carols_first.status, StatusCode::OK, "{carols_first:?}");
    lock.rollback().await.unwrap();
    assert_eq!(held.await.unwrap().status, StatusCode::OK);
}

/// The id of the thread a send answered with.
fn thread_id(sent: serde_json::Value) -> String {
    sent["thread_id"].as_str().unwrap().to_owned()
}

/// A thread of three messages, `from` writing to `to`.
async fn long_thread(
    app: &TestServer,
    from: &convos_testkit::TestUser,
    to: &convos_testkit::TestUser,
) -> String {
    let thread = thread_id(app.send(from, to, "Long", "one").await);
    for _ in 0..2 {
        app.reply(from, &thread, "more").await;
    }
    thread
}

/// Bodies of 64,000 four-byte characters: 256 KB of UTF-8 each, the most a body can weigh.
fn heaviest_body() -> String {
    "\u{1F600}".repeat(64_000)
}

/// A thread from Alice to Bob of `n` messages of `body`; returns Bob and the thread.
async fn heavy_thread(
    app: &TestServer,
    n: usize,
    body: String,
) -> (convos_testkit::TestUser, String) {
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let thread = thread_id(app.send(&alice, &bob, "Heavy", &body).await);
    for _ in 1..n {
        app.reply(&alice, &thread, &body).await;
    }
    (bob, thread)
}

/// Walks a thread 100 messages at a time; returns every page's JSON size and message ids.
async fn walk(
    app: &TestServer,
    bob: &convos_testkit::TestUser,
    thread: &str,
) -> Vec<(usize, Vec<String>)> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/threads/{thread}/messages?limit=100&cursor={c}"),
            None => format!("/api/v1/threads/{thread}/messages?limit=100"),
        };
        let res = app
            .http
            .get(format!("{}{path}", app.base))
            .bearer_auth(&bob.token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let json = res.bytes().await.unwrap();
        let page: serde_json::Value = serde_json::from_slice(&json).unwrap();
        let ids = page["items"].as_array().unwrap().iter();
        pages.push((
            json.len(),
            ids.map(|m| m["id"].as_str().unwrap().to_owned()).collect(),
        ));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return pages,
        }
    }
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_page_of_heavy_messages_stops_at_its_byte_budget_and_continues(db: PgPool) {
    // Arrange: bodies of 64,000 control characters, six bytes each as JSON: 24 of them were a
    // 9 MB page.
    let app = TestServer::spawn_with(db, |s| s.send_rate_per_min = 1_000).await;
    let (bob, thread) = heavy_thread(&app, 24, "\u{1}".repeat(64_000)).await;

    // Act
    let pages = walk(&app, &bob, &thread).await;

    // Assert: each page about a mebibyte of JSON, at least one message, every message once.
    for (bytes, ids) in &pages {
        assert!(!ids.is_empty(), "a page holds at least one message");
        assert!(*bytes <= (1 << 20) + 400_000, "a page of {bytes} bytes");
    }
    assert!(
        pages.len() >= 6,
        "24 heavy messages took {} page(s)",
        pages.len()
    );
    let seen: Vec<&String> = pages.iter().flat_map(|(_, ids)| ids).collect();
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(seen.len(), 24, "every message once");
    assert_eq!(unique.len(), 24);
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_client_that_stops_reading_is_reset_at_the_write_deadline(db: PgPool) {
    // Arrange: pages of megabytes, and a client that asks for many and reads nothing.
    let app = TestServer::spawn_with(db, |s| {
        s.send_rate_per_min = 1_000;
        s.write_timeout_secs = 1;
        s.sse_heartbeat_secs = 1;
    })
    .await;
    let (bob, thread) = heavy_thread(&app, 8, heaviest_body()).await;
    let mut idle_stream = chunks_of(open_stream(&app, &bob).await);
    let path = format!("/api/v1/threads/{thread}/messages?limit=100");
    let one_page = app
        .http
        .get(format!("{}{path}", app.base))
        .bearer_auth(&bob.token)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .len();
    const ASKED: usize = 16;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let addr = app.base.trim_start_matches("http://").parse().unwrap();
    let mut stalled = socket.connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        bob.token
    );
    stalled
        .write_all(request.repeat(ASKED).as_bytes())
        .await
        .unwrap();

    // Act: read nothing for a while, then everything there is.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut received = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match stalled.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received += n,
            }
        }
    })
    .await;

    // Assert: the server gave up on the connection long before its responses were written,
    // and serves everyone else.
    assert!(ended.is_ok(), "the stalled connection was still open");
    assert!(
        received < one_page * ASKED / 2,
        "{received} of {} bytes arrived: the server kept writing",
        one_page * ASKED
    );
    let health = app.http.get(format!("{}/healthz", app.base)).send().await;
    assert_eq!(health.unwrap().status(), StatusCode::OK);
    assert!(
        heartbeat_within(&mut idle_stream, Duration::from_secs(3)).await,
        "an idle event stream, read as it comes, outlived the deadline several times over"
    );
}

/// `n` events appended to `user`'s stream as the worker appends them; returns the first id.
async fn appended_events(app: &TestServer, user: &convos_testkit::TestUser, n: usize) -> String {
    let client = redis::Client::open(convos_testkit::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = convos_core::events::stream_key(&app.redis_prefix, user.id.parse().unwrap());
    let event = serde_json::json!({"type": "thread.updated", "thread_id": uuid::Uuid::now_v7()});
    let mut first = None;
    for _ in 0..n {
        let id: String = redis::cmd("XADD")
            .arg(&key)
            .arg("*")
            .arg("event")
            .arg(event.to_string())
            .query_async(&mut conn)
            .await
            .unwrap();
        first.get_or_insert(id);
    }
    first.unwrap()
}

/// The first event of a stream resumed from `last_event_id`: its name and data.
async fn first_event_after(
    app: &TestServer,
    user: &convos_testkit::TestUser,
    last_event_id: &str,
) -> String {
    let mut res = app
        .http
        .get(format!("{}/api/v1/events", app.base))
        .bearer_auth(&user.token)
        .header("last-event-id", last_event_id)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), res.chunk())
            .await
            .expect("an event")
            .unwrap()
            .expect("the stream is open");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    text
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_client_far_behind_is_reset_without_a_replay_of_thousands(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let alice = app.user("alice").await;
    let first = appended_events(&app, &alice, 1_100).await;

    let resumed = first_event_after(&app, &alice, &first).await;

    assert!(
        resumed.starts_with("event: reset") && resumed.contains("too_old"),
        "a replay of over a thousand events was sent: {}",
        &resumed[..resumed.len().min(200)]
    );
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn a_stream_resumed_while_redis_is_down_is_told_so_not_that_it_is_too_old(db: PgPool) {
    // A failed look-up of the stream read as "no stream": a client resuming during an outage
    // was told its place was lost for good (a probe).
    let mut redis = OwnRedis::start();
    let url = redis.url();
    let app = TestServer::spawn_with(db, |s| s.redis_url = url.into()).await;
    let alice = app.user("alice").await;
    let fresh = first_event_after(&app, &alice, "1796534680928-0").await;
    assert!(fresh.contains("too_old"), "Redis up, nothing kept: {fresh}");

    redis.stop();
    let resumed = first_event_after(&app, &alice, "1796534680928-0").await;

    assert!(
        resumed.starts_with("event: reset") && resumed.contains("unavailable"),
        "{resumed}"
    );
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn while_redis_does_not_answer_requests_stop_asking_it_until_it_answers_again(db: PgPool) {
    // With Redis frozen, every send waited the full 5 s for its limit's answer before going
    // on without it (a probe): one request finding Redis silent now spares the rest, until a
    // check in the background finds it answering.
    let redis = OwnRedis::start();
    let url = redis.url();
    let app = TestServer::spawn_with(db, |s| s.redis_url = url.into()).await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    app.send(&alice, &bob, "before", "counted").await;

    redis.pause();
    for n in 0..4 {
        let sent = app
            .post(
                "/api/v1/messages",
                &alice,
                serde_json::json!({"recipient": "bob", "subject": format!("stall {n}"),
                                   "body": "limits fail open"}),
            )
            .await;
        assert_eq!(sent.status, StatusCode::CREATED, "{sent:?}");
    }
    redis.resume();

    // Redis runs what it was sent while frozen: the first send's count, not all four.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{}rl:send:{}", app.redis_prefix, alice.id);
    let counted: i64 = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        counted, 2,
        "the send before, and the one that found Redis silent"
    );
    // Answering again, Redis counts sends again.
    convos_testkit::eventually(Duration::from_secs(10), "sends counted again", || async {
        app.send(&alice, &bob, "after", "counted").await;
        let now: i64 = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn.clone())
            .await
            .unwrap();
        now > counted
    })
    .await;
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn reconnecting_in_a_loop_is_refused_past_the_per_minute_limit(db: PgPool) {
    let app = TestServer::spawn_with(db, |s| s.stream_opens_per_min = 3).await;
    let (alice, bob) = (app.user("alice").await, app.user("bob").await);
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(open_stream(&app, &alice).await);
    }

    let refused = tokio::time::timeout(Duration::from_secs(10), app.get("/api/v1/events", &alice))
        .await
        .expect("refused at once, not streamed");

    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS, "{refused:?}");
    assert_eq!(refused.code(), "rate_limited");
    assert!(refused.headers.get("retry-after").is_some());
    open.push(open_stream(&app, &bob).await);
}
