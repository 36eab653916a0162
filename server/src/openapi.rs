//! The OpenAPI document's frame; paths and schemas come from the handlers' own annotations
//! (`utoipa-axum` registers each route and its documentation from one declaration).

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Title, version, tags and the bearer scheme.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Convos API",
        description = "Mail-style messages between people: threads, read state, ephemeral \
                       messages. Every error has the shape \
                       `{\"error\": {\"code\", \"message\", \"fields\"?}}`."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "accounts", description = "Sign-up, sessions, profile, directory"),
        (name = "messages", description = "Starting threads and acting on one message"),
        (name = "threads", description = "Folders, thread views, replies, thread actions"),
        (name = "events", description = "Live events (server-sent events)"),
        (name = "notifications", description = "Email notification preferences"),
        (name = "operations", description = "Health probes"),
        (name = "admin", description = "Operators: queues, jobs, audit (admins only)"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}
