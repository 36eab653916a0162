//! Email notification routes: what became of a message's notification (the sender learns only
//! whether it was sent; its recipient and admins see why), and one-click unsubscribe.

use crate::error::{ApiError, Result};
use crate::extract::{ApiPath, AuthUser, parse_id};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::response::{Html, IntoResponse};
use convos_core::api::Delivery;
use convos_core::api::Items;
use convos_core::unsubscribe::{self, Claim};
use convos_core::{ErrorBody, MessageId};
use convos_store::deliveries;
use secrecy::ExposeSecret;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_deliveries))
        .routes(routes!(unsubscribe, unsubscribe_page))
}

/// What became of the email notification of a message. Its sender sees only the status
/// (`pending`, `sent`, `not_sent`): nothing of the recipient's settings, reads or address. Its
/// recipient and admins also get `detail`: the state, the reason and the mail server's error.
#[utoipa::path(get, path = "/api/v1/messages/{id}/deliveries", tag = "messages",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Message id")),
    responses(
        (status = 200, description = "The message's deliveries, as the caller may see them", body = Items<Delivery>),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "Not a message the caller sent or received (or it is gone for them)", body = ErrorBody)))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Items<Delivery>>> {
    let id: MessageId = parse_id(&id)?;
    let items =
        deliveries::for_message(&state.db, caller.user.id, caller.user.is_admin, id).await?;
    Ok(Json(Items { items }))
}

/// What an unsubscribe link claims, if it is genuine and unexpired; otherwise `NotFound`.
fn link_claim(state: &AppState, token: &str) -> Result<Claim> {
    unsubscribe::verify(
        state.settings.secret_key.expose_secret(),
        token,
        chrono::Utc::now(),
    )
    .ok_or(ApiError::NotFound)
}

/// The answer to an unsubscribe.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Unsubscribed {
    /// Always `unsubscribed`.
    pub status: String,
}

/// One-click unsubscribe (RFC 8058): no login; the signed token in the URL names the user,
/// whose email notifications are turned off. A forged token, one older than 60 days
/// (`convos_core::unsubscribe::MAX_AGE_DAYS`), or one sent before the user last turned email
/// back on is a 404.
#[utoipa::path(post, path = "/api/v1/unsubscribe/{token}", tag = "notifications",
    params(("token" = String, Path, description = "The signed token from the email")),
    responses((status = 200, description = "Email notifications are off", body = Unsubscribed),
        (status = 404, description = "Not a genuine, current unsubscribe link", body = ErrorBody)))]
pub async fn unsubscribe(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    ApiPath(token): ApiPath<String>,
) -> Result<axum::response::Response> {
    let claim = link_claim(&state, &token)?;
    let user = claim.user;
    if !convos_store::unsubscribe::turn_email_off(&state.db, user, claim.issued_at).await? {
        return Err(ApiError::NotFound);
    }
    tracing::info!(user.id = %user, "unsubscribed from email notifications");
    let browser = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if browser {
        // The confirmation page's button: answer the person, not a program.
        return Ok(Html(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>Unsubscribed</title>\
             </head><body><h1>You are unsubscribed</h1><p>Convos will not email you about new \
             messages any more. You can turn notifications back on in Convos settings.</p>\
             </body></html>"
                .to_owned(),
        )
        .into_response());
    }
    Ok(Json(Unsubscribed {
        status: "unsubscribed".into(),
    })
    .into_response())
}

/// The page behind the link, for people who open it in a browser: a button that sends the
/// POST. A GET never unsubscribes, since mail scanners follow links.
#[utoipa::path(get, path = "/api/v1/unsubscribe/{token}", tag = "notifications",
    params(("token" = String, Path, description = "The signed token from the email")),
    responses((status = 200, description = "An HTML page with a confirmation button", content_type = "text/html", body = String),
        (status = 404, description = "Not a genuine, current unsubscribe link", body = ErrorBody)))]
pub async fn unsubscribe_page(
    State(state): State<AppState>,
    ApiPath(token): ApiPath<String>,
) -> Result<Html<String>> {
    let claim = link_claim(&state, &token)?;
    if !convos_store::unsubscribe::link_current(&state.db, claim.user, claim.issued_at).await? {
        return Err(ApiError::NotFound);
    }
    let escaped = token
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;");
    Ok(Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Unsubscribe</title></head>\
         <body><h1>Stop Convos email notifications?</h1>\
         <form method=\"post\" action=\"/api/v1/unsubscribe/{escaped}\">\
         <button type=\"submit\">Unsubscribe</button></form>\
         <p>You can turn them back on in Convos settings.</p></body></html>"
    )))
}
