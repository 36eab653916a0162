//! Health probes.

use crate::helpers::{TestApp, test_settings};
use convos_server::startup::Application;
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use sqlx::PgPool;

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn healthz_and_readyz_answer_when_everything_is_up(db: PgPool) {
    let app = TestApp::spawn(db).await;
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
    // A port nothing listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut settings = test_settings("test:down:");
    settings.redis_url = SecretString::from(format!("redis://127.0.0.1:{port}"));
    let server = Application::with_pool(settings, db.clone())
        .await
        .expect("starts without redis");
    let base = format!("http://127.0.0.1:{}", server.port());
    tokio::spawn(server.run_until_stopped(std::future::pending()));
    let app = TestApp {
        base,
        http: reqwest::Client::new(),
        db,
        redis_prefix: "test:down:".into(),
        metrics_base: None,
    };
    let ready = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body["checks"]["postgres"], "ok");
    assert_ne!(ready.body["checks"]["redis"], "ok");
    // Sending still works: the rate limit fails open rather than blocking people.
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    app.send(&alice, &bob, "Redis is down", "and this still arrives")
        .await;
    assert_eq!(app.unread_total(&bob).await, 1);
}
