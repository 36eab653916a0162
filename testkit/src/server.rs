//! The API server in this process, on a free port, over the test's own database.

use crate::client::Client;
use convos_server::config::Settings;
use convos_server::startup::Application;
use secrecy::SecretString;
use sqlx::PgPool;
use std::ops::Deref;

/// The server's settings for a test: the real defaults, except that it listens on a free port,
/// serves no `/metrics`, leaves migrating to `#[sqlx::test]`, keeps a small pool, and lifts the
/// per-address limits (every test client comes from 127.0.0.1).
pub fn server_settings(redis_url: &str, prefix: &str) -> Settings {
    Settings {
        addr: ([127, 0, 0, 1], 0).into(),
        redis_url: SecretString::from(redis_url.to_owned()),
        redis_prefix: prefix.to_owned(),
        migrate_on_start: false,
        db_max_connections: 10,
        server_metrics_addr: None,
        max_connections_per_addr: 100_000,
        signups_per_hour_per_addr: 100_000,
        login_failures_per_min_per_addr: 100_000,
        ..Settings::default()
    }
}

/// A running server, and a [`Client`] for it (which it dereferences to).
///
/// It runs until the test's runtime ends.
pub struct TestServer {
    /// A client for this server (also reached through `Deref`).
    pub client: Client,
    /// `http://127.0.0.1:PORT` of the `/metrics` listener, when the settings asked for one.
    pub metrics_base: Option<String>,
    /// The Redis key prefix it runs under.
    pub redis_prefix: String,
}

impl TestServer {
    /// Starts with [`server_settings`] under a fresh Redis prefix.
    pub async fn spawn(db: PgPool) -> Self {
        Self::spawn_with(db, |_| {}).await
    }

    /// Starts with [`server_settings`] under a fresh Redis prefix, adjusted by `adjust`.
    pub async fn spawn_with(db: PgPool, adjust: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = server_settings(&crate::redis_url(), &crate::fresh_prefix());
        adjust(&mut settings);
        Self::start(db, settings).await
    }

    /// Starts with exactly `settings` (its `addr` should be port 0).
    pub async fn start(db: PgPool, settings: Settings) -> Self {
        crate::init_test_log();
        let redis_prefix = settings.redis_prefix.clone();
        let app = Application::with_pool(settings, db.clone())
            .await
            .expect("the server starts");
        let base = format!("http://127.0.0.1:{}", app.port());
        let metrics_base = app
            .metrics_port()
            .map(|port| format!("http://127.0.0.1:{port}"));
        tokio::spawn(app.run_until_stopped(std::future::pending()));
        Self {
            client: Client::new(base, db),
            metrics_base,
            redis_prefix,
        }
    }
}

impl Deref for TestServer {
    type Target = Client;

    fn deref(&self) -> &Client {
        &self.client
    }
}
