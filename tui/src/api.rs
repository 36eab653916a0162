//! The HTTP client for the Convos API. Every call returns the server's error body as
//! [`ApiError::Server`], so the UI can show a 422's field errors where they belong.

use convos_core::api::{
    Folder, Items, Me, Message, Page, Report, ReportReason, SearchHit, Session, Thread,
    ThreadAction, UserSummary,
};
use convos_core::ops::{Board, JobSummary, OpsCommand};
use convos_core::{ErrorBody, MessageId, ThreadId};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::time::Duration;

/// What a call can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The server could not be reached.
    #[error("offline: {0}")]
    Offline(String),
    /// The server refused, with its error body.
    #[error("{}", .body.error.message)]
    Server {
        /// The HTTP status.
        status: u16,
        /// The error body.
        body: ErrorBody,
        /// For 429: seconds to wait.
        retry_after: Option<u64>,
    },
    /// The answer was not what the API promises.
    #[error("unexpected answer: {0}")]
    Protocol(String),
}

/// A client for one server and token.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    /// A client for `base` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base: &str, token: Option<String>) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            // Named in the session list (`GET /api/v1/sessions`), so its owner can tell it apart.
            .user_agent(concat!("convos-tui/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
        }
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The bearer token.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        idempotency_key: Option<&str>,
    ) -> Result<T, ApiError> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(Duration::from_secs(20));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        if let Some(key) = idempotency_key {
            req = req.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req
            .send()
            .await
            .map_err(|e| ApiError::Offline(e.to_string()))?;
        let status = res.status();
        let retry_after = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let text = res
            .text()
            .await
            .map_err(|e| ApiError::Offline(e.to_string()))?;
        if status.is_success() {
            let text = if status == StatusCode::NO_CONTENT {
                "null"
            } else {
                &text
            };
            return serde_json::from_str(text).map_err(|e| ApiError::Protocol(e.to_string()));
        }
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|_| ErrorBody::new("http", format!("HTTP {status}")));
        Err(ApiError::Server {
            status: status.as_u16(),
            body,
            retry_after,
        })
    }

    /// Logs in; the session's token is shown once.
    pub async fn login(&self, username: &str, password: &str) -> Result<Session, ApiError> {
        self.call(
            Method::POST,
            "/api/v1/sessions",
            Some(json!({"username": username, "password": password})),
            None,
        )
        .await
    }

    /// Ends the session of this client's token.
    pub async fn logout(&self) -> Result<(), ApiError> {
        self.call::<Value>(Method::DELETE, "/api/v1/sessions/current", None, None)
            .await
            .map(drop)
    }

    /// The caller and the unread total.
    pub async fn me(&self) -> Result<Me, ApiError> {
        self.call(Method::GET, "/api/v1/me", None, None).await
    }

    /// Changes the caller's email settings (`PATCH /api/v1/me`).
    pub async fn update_settings(
        &self,
        settings: &convos_core::api::PreferencesPatch,
    ) -> Result<Me, ApiError> {
        let body = convos_core::api::UpdateMeRequest {
            display_name: None,
            settings: Some(settings.clone()),
        };
        let body = serde_json::to_value(body).map_err(|e| ApiError::Protocol(e.to_string()))?;
        self.call(Method::PATCH, "/api/v1/me", Some(body), None)
            .await
    }

    /// A page of a folder.
    pub async fn threads(
        &self,
        folder: Folder,
        cursor: Option<&str>,
    ) -> Result<Page<Thread>, ApiError> {
        let mut query = vec![("folder", folder.as_str()), ("limit", "50")];
        query.extend(cursor.map(|c| ("cursor", c)));
        let path = with_query("/api/v1/threads", &query);
        self.call(Method::GET, &path, None, None).await
    }

    /// A page of a thread's messages, newest first (the next page is older).
    pub async fn messages(
        &self,
        thread: ThreadId,
        cursor: Option<&str>,
    ) -> Result<Page<Message>, ApiError> {
        let mut query = vec![("order", "desc"), ("limit", "100")];
        query.extend(cursor.map(|c| ("cursor", c)));
        let path = with_query(&format!("/api/v1/threads/{thread}/messages"), &query);
        self.call(Method::GET, &path, None, None).await
    }

    /// A thread's newest messages, newest first: the page a live new message is fetched with
    /// (listing a read-once message does not open it, unlike [`Client::message`]).
    pub async fn newest_messages(&self, thread: ThreadId) -> Result<Page<Message>, ApiError> {
        let query = [("order", "desc"), ("limit", "20")];
        let path = with_query(&format!("/api/v1/threads/{thread}/messages"), &query);
        self.call(Method::GET, &path, None, None).await
    }

    /// Starts a thread.
    pub async fn send(
        &self,
        recipient: &str,
        subject: &str,
        body: &str,
        key: &str,
    ) -> Result<Message, ApiError> {
        let request = convos_core::api::CreateMessageRequest {
            recipient: Some(recipient.to_owned()),
            subject: Some(subject.to_owned()),
            body: Some(body.to_owned()),
            ..Default::default()
        };
        self.create_message(&request, key).await
    }

    /// Replies in a thread.
    pub async fn reply(
        &self,
        thread: ThreadId,
        body: &str,
        key: &str,
    ) -> Result<Message, ApiError> {
        let request = convos_core::api::CreateReplyRequest {
            body: Some(body.to_owned()),
            ..Default::default()
        };
        self.create_reply(thread, &request, key).await
    }

    /// Starts a thread with the request as given (expiry and read-once included).
    pub async fn create_message(
        &self,
        request: &convos_core::api::CreateMessageRequest,
        key: &str,
    ) -> Result<Message, ApiError> {
        let body = serde_json::to_value(request).map_err(|e| ApiError::Protocol(e.to_string()))?;
        self.call(Method::POST, "/api/v1/messages", Some(body), Some(key))
            .await
    }

    /// Replies in a thread with the request as given (expiry and read-once included).
    pub async fn create_reply(
        &self,
        thread: ThreadId,
        request: &convos_core::api::CreateReplyRequest,
        key: &str,
    ) -> Result<Message, ApiError> {
        let body = serde_json::to_value(request).map_err(|e| ApiError::Protocol(e.to_string()))?;
        self.call(
            Method::POST,
            &format!("/api/v1/threads/{thread}/messages"),
            Some(body),
            Some(key),
        )
        .await
    }

    /// A thread-wide action (read, archive, unarchive, mute, unmute).
    pub async fn thread_action(
        &self,
        thread: ThreadId,
        action: ThreadAction,
    ) -> Result<Thread, ApiError> {
        self.call(Method::POST, &action.path(thread), None, None)
            .await
    }

    /// The people the caller has blocked.
    pub async fn blocks(&self) -> Result<Vec<UserSummary>, ApiError> {
        self.call::<Items<UserSummary>>(Method::GET, "/api/v1/me/blocks", None, None)
            .await
            .map(|page| page.items)
    }

    /// Blocks a person: they can no longer write to the caller.
    pub async fn block(&self, username: &str) -> Result<(), ApiError> {
        self.call::<Value>(Method::PUT, &blocks_path(username), None, None)
            .await
            .map(drop)
    }

    /// Unblocks a person.
    pub async fn unblock(&self, username: &str) -> Result<(), ApiError> {
        self.call::<Value>(Method::DELETE, &blocks_path(username), None, None)
            .await
            .map(drop)
    }

    /// Reports a message the caller received to the operators: the report kept (the first,
    /// if the message was reported before).
    pub async fn report(
        &self,
        message: MessageId,
        reason: ReportReason,
    ) -> Result<Report, ApiError> {
        self.call(
            Method::POST,
            &format!("/api/v1/messages/{message}/report"),
            Some(json!({ "reason": reason.as_str() })),
            None,
        )
        .await
    }

    /// Deletes the caller's copies in a thread.
    pub async fn delete_thread(&self, thread: ThreadId) -> Result<(), ApiError> {
        self.call::<Value>(
            Method::DELETE,
            &format!("/api/v1/threads/{thread}"),
            None,
            None,
        )
        .await
        .map(drop)
    }

    /// Marks one message read or unread.
    pub async fn set_read(&self, message: MessageId, read: bool) -> Result<Message, ApiError> {
        let action = if read { "read" } else { "unread" };
        self.call(
            Method::POST,
            &format!("/api/v1/messages/{message}/{action}"),
            None,
            None,
        )
        .await
    }

    /// The queue board (operators only).
    pub async fn board(&self) -> Result<Board, ApiError> {
        self.call(Method::GET, "/api/v1/admin/queues", None, None)
            .await
    }

    /// A page of dead jobs, newest first, from `cursor` (operators only).
    pub async fn dead_jobs(&self, cursor: Option<&str>) -> Result<Page<JobSummary>, ApiError> {
        let mut query = vec![("state", "dead"), ("limit", "100")];
        query.extend(cursor.map(|c| ("cursor", c)));
        let path = with_query("/api/v1/admin/jobs", &query);
        self.call(Method::GET, &path, None, None).await
    }

    /// An operator action: retry or discard a dead job, pause or resume a queue. The jobs it
    /// changed, where the answer says (retry and discard: `0` when the job was no longer dead).
    pub async fn admin_action(&self, command: &OpsCommand) -> Result<Option<u64>, ApiError> {
        let answer = self
            .call::<serde_json::Value>(Method::POST, &command.path(), None, None)
            .await?;
        Ok(answer.get("affected").and_then(serde_json::Value::as_u64))
    }

    /// Full-text search over the caller's convos.
    pub async fn search(&self, query: &str) -> Result<Page<SearchHit>, ApiError> {
        let path = with_query("/api/v1/search", &[("q", query), ("limit", "50")]);
        self.call(Method::GET, &path, None, None).await
    }

    /// One thread.
    pub async fn thread(&self, thread: ThreadId) -> Result<Thread, ApiError> {
        self.call(
            Method::GET,
            &format!("/api/v1/threads/{thread}"),
            None,
            None,
        )
        .await
    }

    /// Reads one message; for the recipient of a read-once message this is its one read.
    pub async fn message(&self, message: MessageId) -> Result<Message, ApiError> {
        self.call(
            Method::GET,
            &format!("/api/v1/messages/{message}"),
            None,
            None,
        )
        .await
    }

    /// Usernames starting with `prefix` (the directory, without the caller).
    pub async fn usernames(&self, prefix: &str) -> Result<Vec<String>, ApiError> {
        let path = with_query("/api/v1/users", &[("q", prefix), ("limit", "8")]);
        let page: convos_core::api::Items<convos_core::api::UserSummary> =
            self.call(Method::GET, &path, None, None).await?;
        Ok(page.items.into_iter().map(|u| u.username).collect())
    }

    /// Creates an account (`POST /api/v1/users`); needs no token. Log in afterwards.
    pub async fn sign_up(
        &self,
        request: &convos_core::api::CreateUserRequest,
    ) -> Result<convos_core::api::User, ApiError> {
        let body = serde_json::to_value(request).map_err(|e| ApiError::Protocol(e.to_string()))?;
        self.call(Method::POST, "/api/v1/users", Some(body), None)
            .await
    }

    /// The caller's live sessions, newest first (`GET /api/v1/sessions`).
    pub async fn sessions(&self) -> Result<Vec<convos_core::api::SessionInfo>, ApiError> {
        let page: convos_core::api::Items<convos_core::api::SessionInfo> = self
            .call(Method::GET, "/api/v1/sessions", None, None)
            .await?;
        Ok(page.items)
    }

    /// Ends one of the caller's sessions (`DELETE /api/v1/sessions/{id}`).
    pub async fn revoke_session(&self, session: convos_core::SessionId) -> Result<(), ApiError> {
        self.call::<Value>(
            Method::DELETE,
            &format!("/api/v1/sessions/{session}"),
            None,
            None,
        )
        .await
        .map(drop)
    }

    /// Ends every session of the caller but this one (`DELETE /api/v1/sessions`).
    pub async fn revoke_other_sessions(
        &self,
    ) -> Result<convos_core::api::RevokedSessions, ApiError> {
        self.call(Method::DELETE, "/api/v1/sessions", None, None)
            .await
    }

    /// Changes the caller's password (`PUT /api/v1/me/password`); the server ends every other
    /// session.
    pub async fn change_password(
        &self,
        request: &convos_core::api::ChangePasswordRequest,
    ) -> Result<(), ApiError> {
        let body = serde_json::to_value(request).map_err(|e| ApiError::Protocol(e.to_string()))?;
        self.call::<Value>(Method::PUT, "/api/v1/me/password", Some(body), None)
            .await
            .map(drop)
    }

    /// Moves the account to another address (`PUT /api/v1/me/email`): the address the
    /// verification email went to.
    pub async fn change_email(
        &self,
        request: &convos_core::api::ChangeEmailRequest,
    ) -> Result<String, ApiError> {
        let body = serde_json::to_value(request).map_err(|e| ApiError::Protocol(e.to_string()))?;
        self.call::<Value>(Method::PUT, "/api/v1/me/email", Some(body), None)
            .await
            .map(|sent| sent["email"].as_str().unwrap_or_default().to_owned())
    }

    /// Revokes the reply addresses of every notification sent so far
    /// (`DELETE /api/v1/me/reply-addresses`).
    pub async fn revoke_reply_addresses(&self) -> Result<(), ApiError> {
        self.call::<Value>(Method::DELETE, "/api/v1/me/reply-addresses", None, None)
            .await
            .map(drop)
    }
}

/// `path` with a query string, each value percent-encoded (everything but RFC 3986's unreserved
/// characters), so a search for `a&b` or a cursor with `+` arrives as typed.
fn with_query(path: &str, query: &[(&str, &str)]) -> String {
    let mut out = path.to_owned();
    for (i, (name, value)) in query.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(name);
        out.push('=');
        for b in value.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(char::from(b));
                }
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    out
}

/// The path of a person's block: usernames hold only `a-z 0-9 _ . -`, nothing to escape.
fn blocks_path(username: &str) -> String {
    format!("/api/v1/me/blocks/{username}")
}

#[cfg(test)]
mod tests {
    use super::with_query;

    #[test]
    fn query_values_are_percent_encoded_and_joined() {
        assert_eq!(
            with_query(
                "/api/v1/search",
                &[("q", "fish & chips/ü"), ("limit", "50")]
            ),
            "/api/v1/search?q=fish%20%26%20chips%2F%C3%BC&limit=50"
        );
        assert_eq!(with_query("/api/v1/users", &[]), "/api/v1/users");
        assert_eq!(
            with_query("/api/v1/threads", &[("cursor", "a+b=~")]),
            "/api/v1/threads?cursor=a%2Bb%3D~"
        );
    }
}
