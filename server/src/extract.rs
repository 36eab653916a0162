//! Request extractors that turn every malformed input into an [`ApiError`].

use crate::error::ApiError;
use crate::state::AppState;
use crate::strict_json::{self, Refusal};
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use convos_core::api::{Preferences, User};
use convos_core::{FieldError, IdempotencyKey};
use convos_store::tokens::{self, TokenId};
use serde::de::DeserializeOwned;
use std::str::FromStr;
use std::sync::Arc;

/// The header that makes a create safe to repeat.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// The largest body of the account and session routes (sign-up, login, settings, password):
/// theirs are a few hundred bytes, and sign-up and login answer anyone, so a mebibyte of JSON
/// to parse (about 150 ms of CPU in a probe) was work a stranger could ask for at will.
pub const ACCOUNT_BODY_LIMIT: usize = 16 * 1024;

/// A body declared larger than `limit` (`Content-Length`) is refused before any of it is
/// read: the limit applied only as the body was read, so a client declaring 5 MB and sending a
/// byte now and then held its request (and a connection) until the request deadline.
pub async fn refuse_declared_over(
    limit: usize,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return ApiError::PayloadTooLarge.into_response();
    }
    next.run(req).await
}

/// `router`'s routes take bodies of at most `limit` bytes, refused by their declared length
/// before any is read, and by what arrives otherwise; inside the API's 1 MiB, a smaller limit
/// wins.
pub fn body_limit(
    router: utoipa_axum::router::OpenApiRouter<crate::state::AppState>,
    limit: usize,
) -> utoipa_axum::router::OpenApiRouter<crate::state::AppState> {
    router
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                refuse_declared_over(limit, req, next)
            },
        ))
}

/// A JSON request body: 415 for another content type, 413 over the limit, 400 when it is not a
/// JSON object, 422 naming the field when a value has the wrong type, is a list or is given
/// twice ([`crate::strict_json`]).
#[derive(Debug)]
pub struct ApiJson<T> {
    /// The decoded body.
    pub value: T,
    /// The body in canonical form (object keys sorted, no spacing), for fingerprinting
    /// idempotent requests: the same JSON written differently is the same request. Computed
    /// only when the request carries an `Idempotency-Key` (its only use); empty otherwise.
    pub canonical: Vec<u8>,
}

fn is_json(content_type: &str) -> bool {
    let Some(mime) = content_type.split(';').next() else {
        return false;
    };
    let mime = mime.trim().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if !content_type.is_some_and(is_json) {
            return Err(ApiError::UnsupportedMediaType("application/json"));
        }
        let idempotent = req.headers().contains_key(IDEMPOTENCY_KEY);
        let raw = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::MalformedJson(format!("could not read the request body: {rejection}"))
            }
        })?;
        let value = crate::strict_json::parse(&raw).map_err(|e| match e {
            strict_json::Error::Syntax(e) => {
                ApiError::MalformedJson(format!("the body is not valid JSON: {e}"))
            }
            strict_json::Error::Refused(Refusal::List(path)) if path.is_empty() => {
                ApiError::MalformedJson("the body must be a JSON object".into())
            }
            strict_json::Error::Refused(Refusal::List(path)) => {
                ApiError::Validation(vec![FieldError::new(
                    leak_field_name(path),
                    "must be a JSON object or a single value, not a list",
                )])
            }
            strict_json::Error::Refused(Refusal::TooMany) => {
                ApiError::Validation(vec![FieldError::new(
                    "request",
                    format!(
                        "holds more than {} values; no request of this API holds as many",
                        strict_json::MAX_VALUES
                    ),
                )])
            }
            strict_json::Error::Refused(Refusal::Twice(path)) => {
                ApiError::Validation(vec![FieldError::new(
                    leak_field_name(path),
                    "is given twice; send each field once",
                )])
            }
        })?;
        if !value.is_object() {
            return Err(ApiError::MalformedJson(
                "the body must be a JSON object".into(),
            ));
        }
        let canonical = if idempotent {
            serde_json::to_vec(&canonicalize(&value)).unwrap_or_default()
        } else {
            Vec::new()
        };
        let value = serde_path_to_error::deserialize(value).map_err(|e| {
            let field = leak_field_name(e.path().to_string());
            ApiError::Validation(vec![FieldError::new(
                field,
                without_type_names(e.into_inner()),
            )])
        })?;
        Ok(Self { value, canonical })
    }
}

/// serde's reason for a wrong type, with the Rust type it expected (`expected struct
/// PreferencesPatch`, `expected i64`) told as the JSON it takes.
fn without_type_names(e: serde_json::Error) -> String {
    let reason = e.to_string();
    let Some((before, expected)) = reason.split_once("expected ") else {
        return reason;
    };
    let json = match expected {
        t if t.starts_with("struct ") => "a JSON object",
        t if t.starts_with("enum ") => "a string",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "an integer",
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "an integer of at least 0",
        "f32" | "f64" => "a number",
        _ => return reason,
    };
    format!("{before}expected {json}")
}

/// The same JSON value with every object's keys in sorted order.
fn canonicalize(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let sorted: std::collections::BTreeMap<&String, serde_json::Value> =
                map.iter().map(|(k, v)| (k, canonicalize(v))).collect();
            serde_json::Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(canonicalize).collect())
        }
        other => other.clone(),
    }
}

/// Field names are `&'static str` everywhere else; a wrong-type error names a path that is not
/// known statically, so map it back onto the known request fields (every field of every JSON
/// body the API takes; anything else is `request`, never the caller's own text).
fn leak_field_name(path: String) -> &'static str {
    const KNOWN: &[&str] = &[
        "username",
        "email",
        "password",
        "display_name",
        "settings",
        "settings.email_notifications",
        "settings.email_mode",
        "settings.digest_hour",
        "settings.time_zone",
        "current",
        "new",
        "recipient",
        "subject",
        "body",
        "expires_in",
        "read_once",
        "queue",
        "state",
        "q",
    ];
    KNOWN
        .iter()
        .find(|k| **k == path)
        .copied()
        .unwrap_or("request")
}

/// The authenticated caller, from `Authorization: Bearer <token>`.
#[derive(Clone, Debug)]
pub struct AuthUser {
    /// The account.
    pub user: User,
    /// Its preferences.
    pub preferences: Preferences,
    /// The token used, so the session can be ended.
    pub token: TokenId,
    /// When the session ends however much it is used; an event stream closes then.
    pub session_expires_at: chrono::DateTime<chrono::Utc>,
    /// The request's place among its user's requests under way (`in_flight`), held as long as
    /// the handler runs.
    pub place: Arc<crate::in_flight::Place>,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        let session =
            tokens::authenticate(&state.db, token, crate::auth::lifetimes(&state.settings))
                .await?
                .ok_or(ApiError::Unauthorized)?;
        // How long until a place frees is unknown; requests are short (a statement is cut at
        // its limit), so a second is the honest guess.
        let place = state
            .in_flight
            .enter(session.user.id)
            .ok_or(ApiError::RateLimited(std::time::Duration::from_secs(1)))?;
        if session.touched {
            // As seldom as the use is recorded (once a minute): the address the session is used
            // from stays known to the login limits while the owner keeps using it.
            let addr = crate::client_addr::ClientAddr::from_request_parts(parts, state).await?;
            crate::login_limits::session_used(state, &session.user.username, addr).await;
        }
        Ok(Self {
            user: session.user,
            preferences: session.preferences,
            token: session.token,
            session_expires_at: session.expires_at,
            place: Arc::new(place),
        })
    }
}

/// Query parameters; a query string that cannot be decoded is a 400 with our error body.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(v)| Self(v))
            .map_err(|e| ApiError::MalformedQuery(e.body_text()))
    }
}

/// Path parameters; a path that cannot be decoded (invalid UTF-8 in a segment, say) is answered
/// exactly like a missing resource, `404` with our error body (axum's own rejection was a
/// `400` in plain text).
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        use axum::extract::rejection::PathRejection;
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| Self(v))
            .map_err(|e| match e {
                PathRejection::FailedToDeserializePathParams(_) => ApiError::NotFound,
                // A route without the parameters its handler takes: ours to fix, not the
                // client's.
                other => ApiError::Internal(anyhow::anyhow!("path parameters: {other}")),
            })
    }
}

/// A path id; anything that does not parse is answered exactly like a missing id.
pub fn parse_id<T: FromStr>(raw: &str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound)
}

/// The optional `Idempotency-Key` header.
pub struct IdempotencyHeader(pub Option<IdempotencyKey>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(IDEMPOTENCY_KEY) else {
            return Ok(Self(None));
        };
        let raw = value
            .to_str()
            .map_err(|_| ApiError::field("Idempotency-Key", "must be visible ASCII characters"))?;
        Ok(Self(Some(
            IdempotencyKey::parse(raw).map_err(|e| ApiError::Validation(vec![e]))?,
        )))
    }
}

/// Parses an optional `limit` query parameter within `1..=max`.
pub fn parse_limit(raw: Option<&str>, default: i64, max: i64) -> Result<i64, ApiError> {
    match raw {
        None => Ok(default),
        Some(s) => match s.parse::<i64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::field(
                "limit",
                format!("must be a number from 1 to {max}"),
            )),
        },
    }
}

/// Parses an optional boolean query parameter.
pub fn parse_bool(field: &'static str, raw: Option<&str>) -> Result<bool, ApiError> {
    match raw {
        None => Ok(false),
        Some("true" | "1") => Ok(true),
        Some("false" | "0") => Ok(false),
        Some(_) => Err(ApiError::field(field, "must be true or false")),
    }
}

/// Parses an optional keyset cursor.
pub fn parse_cursor(raw: Option<&str>) -> Result<Option<convos_store::cursor::Cursor>, ApiError> {
    raw.map(|c| {
        convos_store::cursor::Cursor::decode(c)
            .ok_or_else(|| ApiError::field("cursor", "is not a cursor returned by this API"))
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::is_json;

    #[test]
    fn json_content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("application/json; charset=utf-8"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
    }
}
