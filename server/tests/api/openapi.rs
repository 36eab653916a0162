//! The OpenAPI document and docs/api.md describe every route the server answers.

use crate::helpers::TestApp;
use reqwest::{Method, StatusCode};
use sqlx::PgPool;

/// Every route of the API: method and path template.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("post", "/api/v1/users"),
    ("get", "/api/v1/users"),
    ("post", "/api/v1/sessions"),
    ("delete", "/api/v1/sessions/current"),
    ("get", "/api/v1/me"),
    ("patch", "/api/v1/me"),
    ("post", "/api/v1/messages"),
    ("get", "/api/v1/messages/{id}"),
    ("delete", "/api/v1/messages/{id}"),
    ("post", "/api/v1/messages/{id}/read"),
    ("post", "/api/v1/messages/{id}/unread"),
    ("get", "/api/v1/threads"),
    ("get", "/api/v1/threads/{id}"),
    ("delete", "/api/v1/threads/{id}"),
    ("get", "/api/v1/threads/{id}/messages"),
    ("post", "/api/v1/threads/{id}/messages"),
    ("post", "/api/v1/threads/{id}/read"),
    ("post", "/api/v1/threads/{id}/archive"),
    ("post", "/api/v1/threads/{id}/unarchive"),
    ("post", "/api/v1/threads/{id}/mute"),
    ("post", "/api/v1/threads/{id}/unmute"),
    ("get", "/api/v1/events"),
    ("get", "/api/v1/messages/{id}/deliveries"),
    ("post", "/api/v1/unsubscribe/{token}"),
    ("get", "/api/v1/unsubscribe/{token}"),
    ("get", "/api/v1/admin/queues"),
    ("post", "/api/v1/admin/queues/{name}/pause"),
    ("post", "/api/v1/admin/queues/{name}/resume"),
    ("get", "/api/v1/admin/jobs"),
    ("get", "/api/v1/admin/jobs/{id}"),
    ("post", "/api/v1/admin/jobs/{id}/retry"),
    ("post", "/api/v1/admin/jobs/{id}/discard"),
    ("post", "/api/v1/admin/jobs/retry"),
    ("post", "/api/v1/admin/jobs/discard"),
    ("get", "/api/v1/admin/audit"),
    ("get", "/api/v1/search"),
];

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn the_openapi_document_lists_exactly_the_routes_served(db: PgPool) {
    let app = TestApp::spawn(db).await;
    let res = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(res.status, StatusCode::OK);
    let paths = res.body["paths"].as_object().expect("paths");
    let mut documented = Vec::new();
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                documented.push((method.clone(), path.clone()));
            }
        }
    }
    documented.sort();
    let mut expected: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    expected.sort();
    assert_eq!(documented, expected);
    assert!(res.body["components"]["securitySchemes"]["bearer"].is_object());
    let params = res.body["paths"]["/api/v1/threads"]["get"]["parameters"]
        .as_array()
        .unwrap();
    for p in params {
        assert_eq!(p["in"], "query", "{p}");
        assert_eq!(p["required"], false, "{p}");
    }
    let names: Vec<&str> = params.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["folder", "unread", "limit", "cursor"]);
    for schema in [
        "Message",
        "Thread",
        "ErrorBody",
        "User",
        "Me",
        "Session",
        "Delivery",
    ] {
        assert!(
            res.body["components"]["schemas"][schema].is_object(),
            "schema {schema}"
        );
    }

    // Each documented route is really served: an unauthenticated call never meets the 404
    // fallback or a 405.
    for (method, path) in ROUTES.iter().filter(|(_, p)| !p.contains("{token}")) {
        let concrete = path
            .replace("{id}", "0191d5c6-0000-7000-8000-000000000000")
            .replace("{name}", "deliver");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let res = app.call(method.clone(), &concrete, None, None).await;
        assert_ne!(
            res.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        if res.status == StatusCode::NOT_FOUND {
            panic!("{method} {path} is not routed");
        }
    }
}

#[test]
fn docs_api_md_documents_every_route() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api.md"))
        .expect("docs/api.md exists");
    for (method, path) in ROUTES {
        let heading = format!("`{} {}`", method.to_uppercase(), path);
        assert!(doc.contains(&heading), "docs/api.md lacks {heading}");
    }
}

#[sqlx::test(migrator = "convos_server::MIGRATOR")]
async fn unsubscribe_routes_refuse_forged_tokens_without_a_login(db: PgPool) {
    let app = TestApp::spawn(db).await;
    for method in [Method::GET, Method::POST] {
        let res = app
            .call(
                method.clone(),
                "/api/v1/unsubscribe/not-a-token",
                None,
                None,
            )
            .await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{method}");
        assert_eq!(res.code(), "not_found");
    }
}
