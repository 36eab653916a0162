//! The API's routes, one module per resource, merged into one router with its OpenAPI document.

pub mod accounts;
pub mod admin;
pub mod email_links;
pub mod events;
pub mod health;
pub mod inbound;
pub mod messages;
pub mod notifications;
pub mod search;
pub mod sessions;
pub mod threads;
pub mod verification;

use crate::error::ApiError;
use crate::openapi::ApiDoc;
use crate::state::AppState;
use axum::Router;
use utoipa::OpenApi;
use utoipa::openapi::OpenApi as OpenApiDoc;
use utoipa_axum::router::OpenApiRouter;

/// Every route (plus `/api/v1/openapi.json` serving the document), and the OpenAPI document
/// generated from the same declarations.
pub fn router() -> (Router<AppState>, OpenApiDoc) {
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(health::router())
        .merge(accounts::router())
        .merge(sessions::router())
        .merge(messages::router())
        .merge(threads::router())
        .merge(events::router())
        .merge(notifications::router())
        .merge(email_links::router())
        .merge(admin::router())
        .merge(search::router())
        .merge(verification::router())
        .merge(inbound::router())
        .split_for_parts();
    let shared = std::sync::Arc::new(crate::openapi::document(&doc));
    let router = router
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || {
                let doc = shared.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });
    (router, doc)
}
