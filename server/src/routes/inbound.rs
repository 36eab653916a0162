//! Email coming back (decision 26): the inbound webhook, where providers that receive mail for
//! the reply domain post each raw MIME message (kept in PostgreSQL with its job before the
//! answer, so a 2xx means the message is safe; a 5xx makes the provider retry), and the
//! revocation of a user's reply addresses. The webhook keeps only mail to a genuine address of
//! ours, within the daily caps the SMTP listener counts in too (decision 70).

use crate::error::{ApiError, Result};
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use base64::Engine;
use convos_core::ErrorBody;
use convos_core::reply_address;
use convos_plumbing::inbound_caps;
use convos_plumbing::rate_limit::Decision;
use convos_store::inbound::{self, Received, Via};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(receive_email))
        .routes(routes!(revoke_reply_addresses))
}

/// Revokes what every email the caller was sent so far can do (say, one was forwarded to
/// someone who must not act as them): replies to those emails are refused and recorded, and
/// their email links (mute, pause, read) are not found, all but their one-click unsubscribe,
/// which still only stops email (decision 59). Emails sent from now on carry new, working
/// addresses and links.
#[utoipa::path(delete, path = "/api/v1/me/reply-addresses", tag = "inbound",
    security(("bearer" = [])),
    responses((status = 204, description = "Every earlier reply address and email link stopped working"),
        (status = 401, description = "No valid token", body = ErrorBody)))]
pub async fn revoke_reply_addresses(
    State(state): State<AppState>,
    caller: crate::extract::AuthUser,
) -> Result<StatusCode> {
    inbound::revoke_reply_addresses(&state.db, caller.user.id).await?;
    tracing::info!(user.id = %caller.user.id, "reply addresses and email links revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// The answer to a received message.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    /// The received message's id (the ops board and logs name it).
    pub id: uuid::Uuid,
    /// Always `accepted`.
    pub status: String,
}

/// Recipients of one posted message whose signature is checked: real mail names a handful.
const MAX_RECIPIENTS_READ: usize = 100;

/// The answer to a message that was not kept, and why; a 2xx, so the provider does not post
/// it again.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Dropped {
    /// Always `dropped`.
    pub status: String,
    /// `no_genuine_address`: none of its recipients is a reply or bounce address Convos made.
    pub reason: String,
}

/// A JSON delivery: Postmark's `RawEmail` (with "include raw email content" on), or `raw`.
#[derive(Debug, Deserialize)]
struct JsonMail {
    #[serde(alias = "RawEmail")]
    raw: String,
}

/// Whether the request carries the webhook secret, compared in constant time.
fn authorised(headers: &HeaderMap, secret: &str) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let given = if let Some(token) = value.strip_prefix("Bearer ") {
        token.trim().to_owned()
    } else if let Some(basic) = value.strip_prefix("Basic ") {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(basic.trim()) else {
            return false;
        };
        let decoded = String::from_utf8_lossy(&decoded).into_owned();
        match decoded.split_once(':') {
            Some((_, password)) => password.to_owned(),
            None => return false,
        }
    } else {
        return false;
    };
    given.len() == secret.len()
        && given
            .bytes()
            .zip(secret.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// The raw message and envelope recipients in a request of any of the accepted forms.
async fn raw_message(request: Request) -> Result<(Vec<u8>, Vec<String>)> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    match media.as_str() {
        "message/rfc822" | "application/octet-stream" | "text/plain" => {
            let body = Bytes::from_request(request, &())
                .await
                .map_err(|_| ApiError::PayloadTooLarge)?;
            Ok((body.to_vec(), Vec::new()))
        }
        "application/json" => {
            let body = Bytes::from_request(request, &())
                .await
                .map_err(|_| ApiError::PayloadTooLarge)?;
            let mail: JsonMail = serde_json::from_slice(&body)
                .map_err(|e| ApiError::MalformedJson(e.to_string()))?;
            Ok((mail.raw.into_bytes(), Vec::new()))
        }
        "multipart/form-data" => {
            let mut form = Multipart::from_request(request, &())
                .await
                .map_err(|e| ApiError::MalformedQuery(e.body_text()))?;
            let (mut raw, mut to) = (None, Vec::new());
            while let Some(field) = form
                .next_field()
                .await
                .map_err(|e| ApiError::MalformedQuery(e.body_text()))?
            {
                let name = field.name().unwrap_or_default().to_owned();
                let value = field
                    .bytes()
                    .await
                    .map_err(|e| ApiError::MalformedQuery(e.body_text()))?;
                match name.as_str() {
                    // Mailgun's raw MIME routes, SendGrid's "post the raw, full MIME message".
                    "body-mime" | "email" => raw = Some(value.to_vec()),
                    // Mailgun's envelope recipient. One holding a control character is no
                    // address (the SMTP listener answers 501 to one), and a NUL cannot be
                    // stored as text.
                    "recipient" => {
                        let recipient = String::from_utf8_lossy(&value);
                        if !recipient.chars().any(char::is_control) {
                            to.push(recipient.into_owned());
                        }
                    }
                    _ => {}
                }
            }
            let raw = raw.ok_or_else(|| {
                ApiError::MalformedQuery("no `body-mime` or `email` field with the message".into())
            })?;
            Ok((raw, to))
        }
        _ => Err(ApiError::UnsupportedMediaType(
            "message/rfc822, text/plain, application/octet-stream, multipart/form-data or \
             application/json",
        )),
    }
}

/// Receives one email for the reply domain from a provider's inbound webhook: the raw MIME
/// message as the body (`message/rfc822`), as a form field (`multipart/form-data`: `body-mime`
/// as Mailgun posts it, or `email` as SendGrid does, with an optional `recipient`), or as JSON
/// (`{"RawEmail": "..."}` as Postmark posts it, or `{"raw": "..."}`). Authenticated by the
/// shared secret (`CONVOS_INBOUND_WEBHOOK_SECRET`) as a bearer token or a basic-auth password.
/// The message is kept, with the job that reads it, before the answer: 202 means it is safe.
///
/// Only mail to a genuine reply or bounce address is kept (decision 70): its envelope
/// recipient or its `To`, `Cc`, `Delivered-To` or `X-Original-To` must carry a signature only
/// Convos makes. Any other is answered 200 `dropped`, which no provider posts again: the
/// provider accepts mail for every address at the domain, and kept, a stranger's made-up
/// addresses filled PostgreSQL a megabyte a message. Mail to genuine addresses is held to the
/// SMTP listener's daily caps, counted in the same keys; over them it is answered 503, which
/// every provider retries later, as a sending server retries the listener's 452.
#[utoipa::path(post, path = "/api/v1/inbound/email", tag = "inbound",
    request_body(content = String, content_type = "text/plain",
        description = "The raw MIME message. Also accepted: the same body as `message/rfc822` or \
        `application/octet-stream`; `multipart/form-data` with a `body-mime` (Mailgun) or \
        `email` (SendGrid) field and an optional `recipient`; JSON `{\"RawEmail\": ...}` \
        (Postmark) or `{\"raw\": ...}`."),
    responses(
        (status = 200, description = "Not kept: no genuine reply or bounce address among its \
            recipients", body = Dropped),
        (status = 202, description = "Kept; a job reads it", body = Accepted),
        (status = 400, description = "A form without the message", body = ErrorBody),
        (status = 401, description = "No or wrong webhook secret", body = ErrorBody),
        (status = 404, description = "The webhook is not configured", body = ErrorBody),
        (status = 413, description = "Larger than 1 MiB", body = ErrorBody),
        (status = 415, description = "Not one of the accepted forms", body = ErrorBody),
        (status = 422, description = "An empty message", body = ErrorBody),
        (status = 503, description = "Its address, or its owner's addresses together, took \
            their messages for the day (`rate_limited`, with `Retry-After`), or PostgreSQL \
            could not store it; the provider is to post it again later", body = ErrorBody)))]
pub async fn receive_email(
    State(state): State<AppState>,
    request: Request,
) -> Result<impl IntoResponse> {
    let Some(secret) = &state.settings.inbound_webhook_secret else {
        return Err(ApiError::NotFound);
    };
    if !authorised(request.headers(), secret.expose_secret()) {
        return Err(ApiError::WebhookUnauthorized);
    }
    let (raw, envelope_to) = raw_message(request).await?;
    if raw.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::Validation(vec![convos_core::FieldError::new(
            "message",
            "must not be empty",
        )]));
    }
    // Real mail names a few recipients; a header section of a megabyte can name thousands,
    // each a signature to check, so only the first few are looked at.
    let genuine: Vec<reply_address::Token> = envelope_to
        .iter()
        .cloned()
        .chain(convos_mail::parsed::recipients(&raw))
        .take(MAX_RECIPIENTS_READ)
        .filter_map(|address| {
            reply_address::parse_at_any_domain(state.settings.secret_key.expose_secret(), &address)
        })
        .collect();
    let counted = |outcome: &str| {
        state
            .metrics
            .inbound
            .with_label_values(&["webhook", outcome])
            .inc();
    };
    if genuine.is_empty() {
        tracing::info!(
            bytes = raw.len(),
            "inbound email dropped: no genuine reply or bounce address"
        );
        counted("dropped");
        let dropped = Dropped {
            status: "dropped".into(),
            reason: "no_genuine_address".into(),
        };
        return Ok((StatusCode::OK, Json(dropped)).into_response());
    }
    match state.redis.get().await {
        Ok(mut redis) => {
            let (prefix, caps) = (&state.settings.redis_prefix, state.settings.inbound_caps());
            if let Decision::Limited(wait) =
                inbound_caps::hit(&state.db, &mut redis, prefix, caps, &genuine).await
            {
                counted("over_cap");
                return Err(ApiError::InboundOverCap(wait));
            }
        }
        Err(e) => tracing::warn!(error = %e, "inbound cap not enforced: redis unavailable"),
    }
    let received = Received {
        via: Via::Webhook,
        envelope_from: None,
        envelope_to: &envelope_to,
        raw: &raw,
    };
    let id = state
        .wake
        .committed(inbound::accept(&state.db, received).await?);
    counted("accepted");
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            id,
            status: "accepted".into(),
        }),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn the_secret_is_accepted_as_a_bearer_token_or_a_basic_password() {
        let secret = "s3cret-s3cret-s3cret";
        assert!(authorised(&with(&format!("Bearer {secret}")), secret));
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("api:{secret}"));
        assert!(authorised(&with(&format!("Basic {basic}")), secret));
        assert!(!authorised(&with("Bearer s3cret-s3cret-s3creX"), secret));
        assert!(!authorised(&with("Bearer s3cret"), secret));
        assert!(!authorised(&HeaderMap::new(), secret));
        let wrong = base64::engine::general_purpose::STANDARD.encode("api:nope");
        assert!(!authorised(&with(&format!("Basic {wrong}")), secret));
    }
}
