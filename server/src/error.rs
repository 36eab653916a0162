//! The server's one error type and its mapping to HTTP, in one place.
//!
//! Client mistakes map to precise 4xx answers with the shared [`ErrorBody`]; anything else is a
//! 500 whose body says nothing about the cause, which is logged instead.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use convos_core::{ErrorBody, FieldError};
use convos_store::StoreError;
use std::collections::BTreeMap;
use std::time::Duration;

/// Shorthand for handler results.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON, or not a JSON object.
    #[error("{0}")]
    MalformedJson(String),
    /// The query string cannot be decoded.
    #[error("{0}")]
    MalformedQuery(String),
    /// The body is not of a type the route takes (named in the message).
    #[error("expected a request body with Content-Type: {0}")]
    UnsupportedMediaType(&'static str),
    /// The body is over the limit.
    #[error(
        "the request body is larger than this route accepts (1 MiB; 16 KiB for accounts and sessions)"
    )]
    PayloadTooLarge,
    /// One or more fields were refused.
    #[error("the request has invalid fields")]
    Validation(Vec<FieldError>),
    /// No valid bearer token.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// The inbound webhook's secret is missing or wrong.
    #[error(
        "the webhook secret is missing or wrong: send it as a bearer token or as a basic-auth password"
    )]
    WebhookUnauthorized,
    /// Wrong username or password (one answer for both, so accounts cannot be probed).
    #[error("wrong username or password")]
    InvalidCredentials,
    /// Missing, or not the caller's to see.
    #[error("not found")]
    NotFound,
    /// Not this caller's to do, saying why.
    #[error("{0}")]
    Forbidden(String),
    /// The route exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A unique value is already taken.
    #[error("{0} is already taken")]
    Conflict(&'static str),
    /// Too many requests; try again after the given time.
    #[error("too many requests; retry in {} seconds", .0.as_millis().div_ceil(1000).max(1))]
    RateLimited(Duration),
    /// The address has had as many verification emails as its mailbox may get for now,
    /// whichever accounts asked for them (decision 86).
    #[error(
        "this address has had as many verification emails as it may get for now (whoever asked \
         for them); try again in {} seconds",
        .0.as_millis().div_ceil(1000).max(1)
    )]
    MailboxFull(Duration),
    /// The caller sent today's volume of messages (`send_bytes_per_day`, decision 72).
    #[error(
        "you have sent today's volume of messages; you can send more in {} seconds",
        .0.as_millis().div_ceil(1000).max(1)
    )]
    SendVolume(Duration),
    /// Mail to the inbound webhook for an address (or an owner's addresses together) that took
    /// its messages for the day: a 503, since every provider retries a 5xx later (SendGrid
    /// nothing else, decision 70).
    #[error(
        "this address took its messages for today; post it again in {} seconds",
        .0.as_millis().div_ceil(1000).max(1)
    )]
    InboundOverCap(Duration),
    /// The request took longer than the server allows (`request_timeout_secs`).
    #[error("the request took too long and was stopped; try again shortly")]
    RequestTimedOut,
    /// A database statement ran past its time limit and PostgreSQL cancelled it
    /// (`db_statement_timeout_ms`, or `search_timeout_ms` for a search).
    #[error("the database took too long to answer and the work was stopped; try again shortly")]
    StatementTimedOut,
    /// PostgreSQL cannot be reached (pool timeout or connection failure).
    #[error("the service is temporarily unavailable; try again shortly")]
    Unavailable,
    /// The HTTP parser could not read the request line or a header (answered by
    /// [`crate::parse_errors`], since no route runs).
    #[error("the request is not valid HTTP/1.1")]
    MalformedRequest,
    /// The request's headers are more than the parser reads (64 headers, 64 KiB in all).
    #[error("the request's headers are too many or too large (64 headers, 64 KiB in all)")]
    HeadersTooLarge,
    /// The request's target is longer than the parser reads.
    #[error("the request's URI is too long")]
    UriTooLong,
    /// A bug or an infrastructure failure.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// One refused field.
    pub fn field(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, reason)])
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::MalformedJson(_) => (StatusCode::BAD_REQUEST, "malformed_json"),
            ApiError::MalformedQuery(_) => (StatusCode::BAD_REQUEST, "malformed_query"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::Validation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            ApiError::Unauthorized | ApiError::WebhookUnauthorized => {
                (StatusCode::UNAUTHORIZED, "unauthorized")
            }
            ApiError::InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::RateLimited(_) | ApiError::SendVolume(_) | ApiError::MailboxFull(_) => {
                (StatusCode::TOO_MANY_REQUESTS, "rate_limited")
            }
            ApiError::InboundOverCap(_) => (StatusCode::SERVICE_UNAVAILABLE, "rate_limited"),
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::StatementTimedOut => (StatusCode::SERVICE_UNAVAILABLE, "timed_out"),
            ApiError::RequestTimedOut => (StatusCode::SERVICE_UNAVAILABLE, "request_timed_out"),
            ApiError::MalformedRequest => (StatusCode::BAD_REQUEST, "malformed_request"),
            ApiError::HeadersTooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers_too_large",
            ),
            ApiError::UriTooLong => (StatusCode::URI_TOO_LONG, "uri_too_long"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// Its status and the body it is answered with.
    pub fn status_and_body(&self) -> (StatusCode, ErrorBody) {
        let (status, code) = self.status_and_code();
        let message = match self {
            ApiError::Internal(e) => {
                tracing::error!(error.cause_chain = ?e, "request failed");
                "something went wrong on our side; it has been logged".to_owned()
            }
            other => other.to_string(),
        };
        let mut body = ErrorBody::new(code, message);
        if let ApiError::Validation(fields) = self {
            let map: BTreeMap<String, String> = fields
                .iter()
                .map(|f| (f.field.to_owned(), f.reason.clone()))
                .collect();
            body.error.fields = Some(map);
        }
        (status, body)
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => ApiError::NotFound,
            e @ (StoreError::NewerSession | StoreError::Blocked) => {
                ApiError::Forbidden(e.to_string())
            }
            StoreError::Conflict(field) => ApiError::Conflict(field),
            e @ (StoreError::UnknownRecipient | StoreError::SelfRecipient) => {
                ApiError::field("recipient", e.to_string())
            }
            StoreError::UnknownTimeZone => ApiError::field(
                "time_zone",
                "is not a time zone this server knows: use a region's name, such as Europe/Paris \
                 or America/New_York (abbreviations such as CET have no summer time)",
            ),
            StoreError::IdempotencyMismatch => ApiError::field(
                "Idempotency-Key",
                "was already used for a different request; use a new key",
            ),
            StoreError::TimedOut => {
                tracing::warn!("a database statement ran past its time limit");
                ApiError::StatementTimedOut
            }
            StoreError::Database(e @ (sqlx::Error::PoolTimedOut | sqlx::Error::Io(_))) => {
                tracing::error!(error = %e, "postgres unavailable");
                ApiError::Unavailable
            }
            e @ StoreError::Connect { .. } => {
                tracing::error!(error = %e, "postgres unavailable");
                ApiError::Unavailable
            }
            StoreError::Database(e) => ApiError::Internal(e.into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = self.status_and_body();
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            ApiError::Unauthorized | ApiError::InvalidCredentials => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::WebhookUnauthorized => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"convos-inbound\""),
                );
            }
            ApiError::RateLimited(wait)
            | ApiError::SendVolume(wait)
            | ApiError::MailboxFull(wait)
            | ApiError::InboundOverCap(wait) => {
                let secs = wait.as_millis().div_ceil(1000).max(1);
                if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                    headers.insert(header::RETRY_AFTER, value);
                }
            }
            ApiError::StatementTimedOut => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}
