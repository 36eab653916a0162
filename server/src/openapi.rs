//! The OpenAPI document: its frame here, paths and schemas from the handlers' own annotations
//! (`utoipa-axum` registers each route and its documentation from one declaration), and the
//! answers every route shares added in one place by [`document`].
//!
//! Handlers declare what is particular to them (their success, a 404 or a 409). What follows
//! from the server's shared machinery (the JSON and query extractors, bearer authentication,
//! rate limits, timeouts, the method fallback, the request id) is declared here, so a new route
//! cannot forget it and the document says what the server really sends.

use serde_json::{Map, Value, json};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Title, version, tags and the bearer scheme.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Convos API",
        description = "Mail-style messages between people: threads, read state, ephemeral \
                       messages. Every error has the shape \
                       `{\"error\": {\"code\", \"message\", \"fields\"?}}`; every response \
                       carries an `X-Request-Id`."
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "accounts", description = "Sign-up, sessions, profile, directory"),
        (name = "messages", description = "Starting threads and acting on one message"),
        (name = "threads", description = "Folders, thread views, replies, thread actions"),
        (name = "events", description = "Live events (server-sent events)"),
        (name = "notifications", description = "Email notification preferences"),
        (name = "inbound", description = "Email coming back: the inbound webhook for providers"),
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

/// An error answer that the server's shared machinery can give on many routes; it becomes a
/// reusable component under `#/components/responses/{name}`.
struct Shared {
    status: &'static str,
    name: &'static str,
    description: &'static str,
}

const BAD_REQUEST: Shared = Shared {
    status: "400",
    name: "BadRequest",
    description: "The query string or the JSON body cannot be decoded \
                  (`malformed_query`, `malformed_json`).",
};
const UNAUTHORIZED: Shared = Shared {
    status: "401",
    name: "Unauthorized",
    description: "No valid bearer token (`unauthorized`): missing, unknown, expired or revoked.",
};
const NOT_FOUND: Shared = Shared {
    status: "404",
    name: "NotFound",
    description: "No such resource, or not the caller's to see (`not_found`); an id that does \
                  not parse is answered the same way.",
};
const METHOD_NOT_ALLOWED: Shared = Shared {
    status: "405",
    name: "MethodNotAllowed",
    description: "The path exists but not with this method (`method_not_allowed`); `Allow` \
                  lists the methods it has.",
};
const PAYLOAD_TOO_LARGE: Shared = Shared {
    status: "413",
    name: "PayloadTooLarge",
    description: "The body is larger than the 1 MiB limit (`payload_too_large`).",
};
const UNSUPPORTED_MEDIA_TYPE: Shared = Shared {
    status: "415",
    name: "UnsupportedMediaType",
    description: "The body is not sent as `Content-Type: application/json` \
                  (`unsupported_media_type`).",
};
const VALIDATION_FAILED: Shared = Shared {
    status: "422",
    name: "ValidationFailed",
    description: "One or more fields or parameters were refused (`validation_failed`); \
                  `fields` maps each to the reason.",
};
const TOO_MANY_REQUESTS: Shared = Shared {
    status: "429",
    name: "TooManyRequests",
    description: "A rate limit or a per-user cap was reached (`rate_limited`); `Retry-After` \
                  says how many seconds to wait.",
};
const INTERNAL: Shared = Shared {
    status: "500",
    name: "InternalError",
    description: "A bug or an infrastructure failure (`internal`); the body says nothing more, \
                  the server logs the cause under the request id.",
};
const UNAVAILABLE: Shared = Shared {
    status: "503",
    name: "Unavailable",
    description: "PostgreSQL cannot be reached (`unavailable`), a statement ran out of time \
                  (`timed_out`, with `Retry-After`) or the whole request did \
                  (`request_timed_out`); try again shortly.",
};

const SHARED: [&Shared; 10] = [
    &BAD_REQUEST,
    &UNAUTHORIZED,
    &NOT_FOUND,
    &METHOD_NOT_ALLOWED,
    &PAYLOAD_TOO_LARGE,
    &UNSUPPORTED_MEDIA_TYPE,
    &VALIDATION_FAILED,
    &TOO_MANY_REQUESTS,
    &INTERNAL,
    &UNAVAILABLE,
];

/// Response headers, under `#/components/headers/{name}`.
const REQUEST_ID: &str = "X-Request-Id";
const RETRY_AFTER: &str = "Retry-After";
const WWW_AUTHENTICATE: &str = "WWW-Authenticate";
const IDEMPOTENT_REPLAYED: &str = "Idempotent-Replayed";

fn header_components() -> Value {
    json!({
        REQUEST_ID: {
            "description": "Identifies the request in the server's logs; quote it when \
                            reporting a problem. A client's own id is kept when it is 1-64 \
                            characters of `A-Z a-z 0-9 . _ -`; otherwise a UUID replaces it.",
            "required": true,
            "schema": { "type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$" }
        },
        RETRY_AFTER: {
            "description": "Seconds to wait before trying again.",
            "required": true,
            "schema": { "type": "integer", "minimum": 1 }
        },
        WWW_AUTHENTICATE: {
            "description": "The authentication scheme to use: `Bearer`.",
            "required": true,
            "schema": { "type": "string", "pattern": "^Bearer" }
        },
        IDEMPOTENT_REPLAYED: {
            "description": "`true` when the answer repeats the original create made with the \
                            same `Idempotency-Key`.",
            "required": false,
            "schema": { "type": "string", "enum": ["true"] }
        }
    })
}

/// One server-sent event, as a stream's `schema` describes it in OpenAPI 3.1 (where 3.2 names
/// it `itemSchema`): the fields of the event, its `data` a JSON text.
fn server_sent_event() -> Value {
    json!({
        "type": "object",
        "description": "One server-sent event. `: heartbeat` comments between events carry \
                        nothing.",
        "properties": {
            "event": { "type": "string", "description": "The event's name." },
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "description": "The event as JSON."
            },
            "id": {
                "type": "string",
                "description": "Send back as `Last-Event-ID` to resume after this event."
            },
            "retry": { "type": "integer", "minimum": 0 }
        },
        "required": ["event", "data"]
    })
}

fn header_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/headers/{name}") })
}

/// The headers every answer with `status` carries; `Retry-After` on a 503 is only sent when
/// the server knows how long to wait, so it is described there but not required.
fn headers_for(status: &str) -> Map<String, Value> {
    let mut headers = Map::new();
    headers.insert(REQUEST_ID.into(), header_ref(REQUEST_ID));
    match status {
        "401" => {
            headers.insert(WWW_AUTHENTICATE.into(), header_ref(WWW_AUTHENTICATE));
        }
        "429" => {
            headers.insert(RETRY_AFTER.into(), header_ref(RETRY_AFTER));
        }
        "503" => {
            headers.insert(
                RETRY_AFTER.into(),
                json!({
                    "description": "Seconds to wait before trying again, when known.",
                    "required": false,
                    "schema": { "type": "integer", "minimum": 1 }
                }),
            );
        }
        _ => {}
    }
    headers
}

fn error_content() -> Value {
    json!({ "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } })
}

/// A description for a response a handler declared without one.
fn default_description(status: &str) -> &'static str {
    if let Some(shared) = SHARED.iter().find(|s| s.status == status) {
        return shared.description;
    }
    match status {
        "200" => "OK.",
        "201" => "Created.",
        "202" => "Accepted.",
        "204" => "Done; no body.",
        "409" => "Conflicts with the current state (`conflict`).",
        _ => "See the operation's description.",
    }
}

/// The statuses the shared machinery adds to one operation.
fn shared_statuses(path: &str, operation: &Value) -> Vec<&'static Shared> {
    let parameters = operation["parameters"].as_array();
    let has_param_in =
        |place: &str| parameters.is_some_and(|ps| ps.iter().any(|p| p["in"] == place));
    let secured = operation["security"].as_array().is_some_and(|s| {
        s.iter()
            .any(|req| req.as_object().is_some_and(|r| !r.is_empty()))
    });
    let json_body = operation["requestBody"]["content"]
        .get("application/json")
        .is_some();
    let mut statuses = vec![
        &METHOD_NOT_ALLOWED,
        &TOO_MANY_REQUESTS,
        &INTERNAL,
        &UNAVAILABLE,
    ];
    if secured {
        statuses.push(&UNAUTHORIZED);
    }
    if path.contains('{') || has_param_in("path") {
        statuses.push(&NOT_FOUND);
    }
    if has_param_in("query") {
        statuses.extend([&BAD_REQUEST, &VALIDATION_FAILED]);
    }
    if has_param_in("header") {
        statuses.push(&VALIDATION_FAILED);
    }
    if json_body {
        statuses.extend([
            &BAD_REQUEST,
            &PAYLOAD_TOO_LARGE,
            &UNSUPPORTED_MEDIA_TYPE,
            &VALIDATION_FAILED,
        ]);
    }
    statuses
}

/// The `Idempotency-Key` header as the shared extractor accepts it.
fn idempotency_key_schema() -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$" })
}

/// Completes one response a handler declared: a description, the error body on an error
/// without one, and the headers its status carries.
fn complete_response(status: &str, response: &mut Value, idempotent: bool) {
    let Some(response) = response.as_object_mut() else {
        return;
    };
    if response.contains_key("$ref") {
        return;
    }
    let described = response
        .get("description")
        .and_then(Value::as_str)
        .is_some_and(|d| !d.is_empty());
    if !described {
        response.insert("description".into(), default_description(status).into());
    }
    let is_error = status.starts_with('4') || status.starts_with('5');
    if is_error && !response.contains_key("content") {
        response.insert("content".into(), error_content());
    }
    if let Some(stream) = response
        .get_mut("content")
        .and_then(|c| c.get_mut("text/event-stream"))
        .and_then(Value::as_object_mut)
    {
        stream.insert(
            "schema".into(),
            json!({ "$ref": "#/components/schemas/ServerSentEvent" }),
        );
    }
    let headers = response
        .entry("headers")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(headers) = headers.as_object_mut() {
        // The shared machinery sets these headers, so its declaration wins over a handler's.
        for (name, header) in headers_for(status) {
            headers.insert(name, header);
        }
        if idempotent && status == "201" {
            headers
                .entry(IDEMPOTENT_REPLAYED)
                .or_insert_with(|| header_ref(IDEMPOTENT_REPLAYED));
        }
    }
}

/// The document as served at `/api/v1/openapi.json`: the generated one, with every response
/// described, and every status and header that the shared machinery sends declared on each
/// operation it applies to (as references to shared components).
pub fn document(generated: &utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(generated).unwrap_or_else(|_| json!({}));
    let components = doc
        .as_object_mut()
        .map(|d| d.entry("components").or_insert_with(|| json!({})));
    if let Some(Value::Object(components)) = components {
        let mut responses = Map::new();
        for shared in SHARED {
            responses.insert(
                shared.name.into(),
                json!({
                    "description": shared.description,
                    "headers": headers_for(shared.status),
                    "content": error_content(),
                }),
            );
        }
        components.insert("responses".into(), Value::Object(responses));
        if let Some(Value::Object(schemas)) = components.get_mut("schemas") {
            schemas.insert("ServerSentEvent".into(), server_sent_event());
        }
        components.insert("headers".into(), header_components());
    }
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return doc;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            if !["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                continue;
            }
            if let Some(parameters) = operation
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
            {
                for parameter in parameters {
                    if parameter["in"] == "header" && parameter["name"] == "Idempotency-Key" {
                        parameter["schema"] = idempotency_key_schema();
                    }
                }
            }
            let added = shared_statuses(path, operation);
            let idempotent = operation["parameters"]
                .as_array()
                .is_some_and(|ps| ps.iter().any(|p| p["name"] == "Idempotency-Key"));
            let Some(responses) = operation
                .get_mut("responses")
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            for (status, response) in responses.iter_mut() {
                complete_response(status, response, idempotent);
            }
            for shared in added {
                responses.entry(shared.status).or_insert_with(
                    || json!({ "$ref": format!("#/components/responses/{}", shared.name) }),
                );
            }
        }
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_error_without_a_body_gets_the_error_body_and_a_description() {
        let mut response = json!({});
        complete_response("404", &mut response, false);
        assert_eq!(response["description"], NOT_FOUND.description);
        assert_eq!(
            response["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody"
        );
        assert!(response["headers"][REQUEST_ID].is_object());
    }

    #[test]
    fn a_handlers_own_description_is_kept() {
        let mut response = json!({ "description": "Sending too fast" });
        complete_response("429", &mut response, false);
        assert_eq!(response["description"], "Sending too fast");
        assert!(response["headers"][RETRY_AFTER].is_object());
    }

    #[test]
    fn a_secured_json_operation_gets_every_shared_status() {
        let operation = json!({
            "security": [{ "bearer": [] }],
            "requestBody": { "content": { "application/json": {} } },
        });
        let mut statuses: Vec<&str> = shared_statuses("/x/{id}", &operation)
            .iter()
            .map(|s| s.status)
            .collect();
        statuses.sort_unstable();
        statuses.dedup();
        assert_eq!(
            statuses,
            [
                "400", "401", "404", "405", "413", "415", "422", "429", "500", "503"
            ]
        );
    }
}
