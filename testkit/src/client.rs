//! One HTTP client for tests: raw requests with their answers, and the steps most tests start
//! with (sign up, verify, log in, send, reply).
//!
//! It speaks plain JSON on purpose, so tests can send what no typed client would (bad bodies,
//! missing fields). Tests of what a client does use the client's own API module
//! (`convos_tui::api`) instead.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use std::time::Duration;

/// A client for one server, with the server's database at hand for the steps that need it.
#[derive(Clone, Debug)]
pub struct Client {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The HTTP client, for requests the helpers do not cover.
    pub http: reqwest::Client,
    /// The server's database.
    pub db: PgPool,
}

/// A signed-up, logged-in user.
#[derive(Clone, Debug)]
pub struct TestUser {
    /// The user's id.
    pub id: String,
    /// The username.
    pub username: String,
    /// The session's bearer token.
    pub token: String,
}

/// An HTTP answer: status, headers and JSON body (`Value::Null` when empty).
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: reqwest::header::HeaderMap,
    /// The JSON body; `Value::Null` when the body is empty.
    pub body: Value,
}

impl Answer {
    /// Reads a response; panics on a non-empty body that is not JSON.
    pub async fn from_response(res: reqwest::Response) -> Self {
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("the body is read");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"))
        };
        Self {
            status,
            headers,
            body,
        }
    }

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
    #[track_caller]
    pub fn ids(&self) -> Vec<String> {
        self.body["items"]
            .as_array()
            .map(|items| items.iter().map(id).collect())
            .unwrap_or_default()
    }
}

/// The `id` field of a JSON object.
#[track_caller]
pub fn id(value: &Value) -> String {
    value["id"].as_str().expect("an id").to_owned()
}

impl Client {
    /// A client for the server at `base` whose database is `db`.
    pub fn new(base: String, db: PgPool) -> Self {
        Self {
            base,
            http: reqwest::Client::new(),
            db,
        }
    }

    /// Sends a request with an optional bearer token and JSON body.
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
        Answer::from_response(req.send().await.expect("the request is sent")).await
    }

    /// `GET path` as `user`.
    pub async fn get(&self, path: &str, user: &TestUser) -> Answer {
        self.call(Method::GET, path, Some(&user.token), None).await
    }

    /// `POST path` with a JSON body as `user`.
    pub async fn post(&self, path: &str, user: &TestUser, body: Value) -> Answer {
        self.call(Method::POST, path, Some(&user.token), Some(body))
            .await
    }

    /// A `POST` without a body as `user` (the action routes).
    pub async fn act(&self, path: &str, user: &TestUser) -> Answer {
        self.call(Method::POST, path, Some(&user.token), None).await
    }

    /// `DELETE path` as `user`.
    pub async fn delete(&self, path: &str, user: &TestUser) -> Answer {
        self.call(Method::DELETE, path, Some(&user.token), None)
            .await
    }

    /// Signs up `username` (`<username>@example.com`, password `password-<username>`), confirms
    /// the address and logs in.
    ///
    /// The address is confirmed as its owner following the emailed link would (the store
    /// function behind `POST /verify/{token}`), so the user gets email like any real one.
    pub async fn user(&self, username: &str) -> TestUser {
        let user = self.unverified_user(username).await;
        self.verify_email(&user).await;
        user
    }

    /// [`Client::user`], made an operator (as `convos-server admin create-user --admin` does).
    pub async fn admin(&self, username: &str) -> TestUser {
        let user = self.user(username).await;
        sqlx::query("update users set is_admin = true where username = $1")
            .bind(username)
            .execute(&self.db)
            .await
            .expect("the user is made an admin");
        user
    }

    /// Signs up `username` (`<username>@example.com`, password `password-<username>`) and logs
    /// in, leaving the address unverified.
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
            .expect("the verification state is read")
            .expect("the account exists");
        let confirmed =
            convos_store::verification::confirm(&self.db, id, &state.email, chrono::Utc::now())
                .await
                .expect("the address is confirmed");
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
            id: session.body["user"]["id"]
                .as_str()
                .expect("the user's id")
                .to_owned(),
            username: username.to_owned(),
            token: session.body["token"]
                .as_str()
                .expect("the session's token")
                .to_owned(),
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

    /// The caller's unread total from `/me`.
    pub async fn unread_total(&self, user: &TestUser) -> i64 {
        self.get("/api/v1/me", user).await.body["unread_count"]
            .as_i64()
            .expect("an unread count")
    }

    /// Rows in `messages`, to prove that a refused request created nothing.
    pub async fn message_rows(&self) -> i64 {
        sqlx::query_scalar("select count(*) from messages")
            .fetch_one(&self.db)
            .await
            .expect("messages are counted")
    }
}

/// Opens `user`'s event stream and waits for its response headers.
pub async fn open_stream(client: &Client, user: &TestUser) -> reqwest::Response {
    let res = client
        .http
        .get(format!("{}/api/v1/events", client.base))
        .bearer_auth(&user.token)
        .send()
        .await
        .expect("the stream opens");
    assert_eq!(res.status(), StatusCode::OK);
    res
}

/// Reads a stream until the server ends it; `false` if it is still open after `wait`.
pub async fn ends_within(mut res: reqwest::Response, wait: Duration) -> bool {
    tokio::time::timeout(wait, async { while let Ok(Some(_)) = res.chunk().await {} })
        .await
        .is_ok()
}
