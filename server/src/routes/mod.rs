//! The API's routes, one module per resource, merged into one router with its OpenAPI document.

pub mod accounts;
pub mod admin;
pub mod blocks;
pub mod email_links;
pub mod events;
pub mod health;
pub mod inbound;
pub mod messages;
pub mod notifications;
pub mod reports;
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
        .merge(blocks::router())
        .merge(sessions::router())
        .merge(messages::router())
        .merge(reports::router())
        .merge(threads::router())
        .merge(events::router())
        .merge(notifications::router())
        .merge(email_links::router())
        .merge(admin::router())
        .merge(search::router())
        .merge(verification::router())
        .merge(inbound::router())
        .split_for_parts();
    // Serialised once: the document is about 200 KB, and writing it out for every request
    // cost 5.75 ms of CPU to anyone who asked (a probe's finding).
    let served = axum::body::Bytes::from(
        serde_json::to_vec(&crate::openapi::document(&doc)).expect("a JSON value serialises"),
    );
    let router = router
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || {
                let body = served.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        body,
                    )
                }
            }),
        )
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed });
    (router, doc)
}

#[cfg(test)]
mod tests {
    use super::router;
    use convos_core::ThreadId;
    use convos_core::api::ThreadAction;
    use convos_core::ops::OpsCommand;
    use utoipa::openapi::OpenApi as OpenApiDoc;

    /// Whether the document declares a POST route whose template (`{id}` matching any one
    /// segment) matches `path`.
    fn serves_post(doc: &OpenApiDoc, path: &str) -> bool {
        let segments: Vec<&str> = path.split('/').collect();
        doc.paths.paths.iter().any(|(template, item)| {
            let parts: Vec<&str> = template.split('/').collect();
            item.post.is_some()
                && parts.len() == segments.len()
                && parts
                    .iter()
                    .zip(&segments)
                    .all(|(part, segment)| part.starts_with('{') || part == segment)
        })
    }

    #[test]
    fn every_action_path_the_client_builds_is_a_route_the_server_serves() {
        let (_, doc) = router();
        let thread = ThreadId::generate();
        for action in ThreadAction::ALL {
            let path = action.path(thread);
            assert!(serves_post(&doc, &path), "no route for {path}");
        }
        let job = uuid::Uuid::nil();
        for command in [
            OpsCommand::Retry(job),
            OpsCommand::Discard(job),
            OpsCommand::Pause("notify_email".into()),
            OpsCommand::Resume("notify_email".into()),
        ] {
            let path = command.path();
            assert!(serves_post(&doc, &path), "no route for {path}");
        }
        assert!(
            !serves_post(&doc, &format!("/api/v1/threads/{thread}/shred")),
            "the check tells a route from a made-up path"
        );
    }
}
