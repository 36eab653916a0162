//! Health probes.

use convos_testkit::{TestServer, free_port, server_settings};
use reqwest::{Method, StatusCode};
use sqlx::PgPool;

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn healthz_and_readyz_answer_when_everything_is_up(db: PgPool) {
    let app = TestServer::spawn(db).await;
    let health = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["status"], "ok");
    let ready = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::OK, "{ready:?}");
    assert_eq!(ready.body["checks"]["postgres"], "ok");
    assert_eq!(ready.body["checks"]["redis"], "ok");
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn readyz_is_503_naming_redis_when_it_is_unreachable_but_the_api_still_works(db: PgPool) {
    // A port nothing listens on: bind one, then let it go. The server starts without Redis.
    let nowhere = format!("redis://127.0.0.1:{}", free_port());
    let app = TestServer::start(db, server_settings(&nowhere, "test:down:")).await;
    let ready = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body["checks"]["postgres"], "ok");
    let redis = ready.body["checks"]["redis"].as_str().unwrap().to_owned();
    assert!(["error", "timeout"].contains(&redis.as_str()), "{redis}");
    assert!(
        !redis.contains("127.0.0.1"),
        "no address told to anyone who asks"
    );
    // Sending still works: the rate limit fails open rather than blocking people.
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    app.send(&alice, &bob, "Redis is down", "and this still arrives")
        .await;
    assert_eq!(app.unread_total(&bob).await, 1);
}
