//! Booting a test server and talking to it.

use convos_server::config::Settings;
use convos_server::startup::Application;
use reqwest::{Method, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::PgPool;

/// A running server and a client for it.
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub db: PgPool,
    pub redis_prefix: String,
    /// `http://127.0.0.1:PORT` of the `/metrics` listener, when the test asked for one.
    pub metrics_base: Option<String>,
}

/// A signed-up, logged-in user.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: String,
    pub username: String,
    pub token: String,
}

/// An HTTP answer: status, headers and JSON body (`Value::Null` when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    /// The `error.code` of an error body.
    #[track_caller]
    pub fn code(&self) -> &str {
        self.body["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code in {self:?}"))
    }

    /// The reason given for one field of a validation error.
    #[track_caller]
    pub fn field(&self, name: &str) -> &str {
        self.body["error"]["fields"][name]
            .as_str()
            .unwrap_or_else(|| panic!("no error for field {name} in {:?}", self.body))
    }

    /// The ids of a listing's items.
    pub fn ids(&self) -> Vec<String> {
        self.body["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .map(|i| i["id"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

pub fn test_settings(prefix: &str) -> Settings {
    Settings {
        addr: "127.0.0.1:0".parse().unwrap(),
        redis_url: SecretString::from(
            std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
        ),
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

impl TestApp {
    /// Boots the real application over the test's database.
    pub async fn spawn(db: PgPool) -> Self {
        Self::spawn_with(db, |_| {}).await
    }

    /// Boots with adjusted settings.
    pub async fn spawn_with(db: PgPool, adjust: impl FnOnce(&mut Settings)) -> Self {
        let prefix = format!("test:{}:", uuid::Uuid::new_v4().simple());
        Self::spawn_sharing(db, &prefix, adjust).await
    }

    /// Boots with an explicit Redis prefix, so two servers can share counters.
    pub async fn spawn_sharing(
        db: PgPool,
        prefix: &str,
        adjust: impl FnOnce(&mut Settings),
    ) -> Self {
        if std::env::var("TEST_LOG").is_ok() {
            convos_plumbing::telemetry::init(convos_plumbing::LogFormat::Pretty);
        }
        let mut settings = test_settings(prefix);
        adjust(&mut settings);
        let app = Application::with_pool(settings, db.clone())
            .await
            .expect("app builds");
        let base = format!("http://127.0.0.1:{}", app.port());
        let metrics_base = app
            .metrics_port()
            .map(|port| format!("http://127.0.0.1:{port}"));
        tokio::spawn(app.run_until_stopped(std::future::pending()));
        Self {
            base,
            http: reqwest::Client::new(),
            db,
            redis_prefix: prefix.to_owned(),
            metrics_base,
        }
    }

    /// Sends a request with an optional token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        Self::answer(req.send().await.expect("request is sent")).await
    }

    /// Turns a response into an [`Answer`].
    pub async fn answer(res: reqwest::Response) -> Answer {
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body is read");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, user: &TestUser) -> Answer {
        self.call(Method::GET, path, Some(&user.token), None).await
    }

    pub async fn post(&self, path: &str, user: &TestUser, body: Value) -> Answer {
        self.call(Method::POST, path, Some(&user.token), Some(body))
            .await
    }

    /// A POST without a body (the action routes).
    pub async fn act(&self, path: &str, user: &TestUser) -> Answer {
        self.call(Method::POST, path, Some(&user.token), None).await
    }

    pub async fn delete(&self, path: &str, user: &TestUser) -> Answer {
        self.call(Method::DELETE, path, Some(&user.token), None)
            .await
    }

    /// Signs up `username` (password `password-<username>`) and logs in.
    ///
    /// The address is then verified, as its owner following the emailed link would (the store
    /// function behind `POST /verify/{token}`), so the user gets email like any real one.
    pub async fn user(&self, username: &str) -> TestUser {
        let user = self.unverified_user(username).await;
        self.verify_email(&user).await;
        user
    }

    /// Signs up `username` with `<username>@example.com` and logs in, leaving the address
    /// unverified.
    pub async fn unverified_user(&self, username: &str) -> TestUser {
        let password = format!("password-{username}");
        let created = self
            .call(
                Method::POST,
                "/api/v1/users",
                None,
                Some(json!({
                    "username": username,
                    "email": format!("{username}@example.com"),
                    "password": password,
                })),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{created:?}");
        self.login(username, &password).await
    }

    /// Confirms the user's current address, as following a fresh verification link does.
    pub async fn verify_email(&self, user: &TestUser) {
        let id: convos_core::UserId = user.id.parse().expect("a user id");
        let state = convos_store::verification::state(&self.db, id)
            .await
            .unwrap()
            .expect("the account exists");
        let confirmed =
            convos_store::verification::confirm(&self.db, id, &state.email, chrono::Utc::now())
                .await
                .unwrap();
        assert_eq!(confirmed, convos_store::verification::Confirmed::Verified);
    }

    /// Logs in and returns the session's user.
    pub async fn login(&self, username: &str, password: &str) -> TestUser {
        let session = self
            .call(
                Method::POST,
                "/api/v1/sessions",
                None,
                Some(json!({"username": username, "password": password})),
            )
            .await;
        assert_eq!(session.status, StatusCode::CREATED, "{session:?}");
        TestUser {
            id: session.body["user"]["id"].as_str().unwrap().to_owned(),
            username: username.to_owned(),
            token: session.body["token"].as_str().unwrap().to_owned(),
        }
    }

    /// Starts a thread from `from` to `to`; returns the message JSON.
    pub async fn send(&self, from: &TestUser, to: &TestUser, subject: &str, body: &str) -> Value {
        let res = self
            .post(
                "/api/v1/messages",
                from,
                json!({"recipient": to.username, "subject": subject, "body": body}),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{res:?}");
        res.body
    }

    /// Replies in a thread; returns the message JSON.
    pub async fn reply(&self, from: &TestUser, thread_id: &str, body: &str) -> Value {
        let res = self
            .post(
                &format!("/api/v1/threads/{thread_id}/messages"),
                from,
                json!({"body": body}),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{res:?}");
        res.body
    }

    /// Rows in `messages`, to prove that a refused request created nothing.
    pub async fn message_rows(&self) -> i64 {
        sqlx::query_scalar("select count(*) from messages")
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    /// The caller's unread total from `/me`.
    pub async fn unread_total(&self, user: &TestUser) -> i64 {
        self.get("/api/v1/me", user).await.body["unread_count"]
            .as_i64()
            .unwrap()
    }
}

/// The id field of a JSON object.
#[track_caller]
pub fn id(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}

/// Opens `user`'s event stream and waits for its response headers.
pub async fn open_stream(app: &TestApp, user: &TestUser) -> reqwest::Response {
    let res = app
        .http
        .get(format!("{}/api/v1/events", app.base))
        .bearer_auth(&user.token)
        .send()
        .await
        .expect("stream opens");
    assert_eq!(res.status(), StatusCode::OK);
    res
}

/// Reads a stream until the server ends it; `false` if it is still open after `wait`.
pub async fn ends_within(mut res: reqwest::Response, wait: std::time::Duration) -> bool {
    tokio::time::timeout(wait, async { while let Ok(Some(_)) = res.chunk().await {} })
        .await
        .is_ok()
}
