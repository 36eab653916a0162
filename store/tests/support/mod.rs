//! What the store's tests share: people and message content, made the way the API makes them.

use convos_core::api::NewContent;
use convos_core::{Body, DisplayName, EmailAddress, UserId, Username};
use convos_store::users;
use sqlx::PgPool;

/// A user named `name`, with the address `{name}@example.com`.
pub async fn user(db: &PgPool, name: &str) -> UserId {
    users::insert(
        db,
        &Username::parse(name).unwrap(),
        &EmailAddress::parse(&format!("{name}@example.com")).unwrap(),
        &DisplayName::parse(name).unwrap(),
        "x",
        false,
    )
    .await
    .unwrap()
    .id
}

/// A message body that neither expires nor is read once.
pub fn content(text: &str) -> NewContent {
    NewContent {
        body: Body::parse(text).unwrap(),
        expires_in: None,
        read_once: false,
    }
}
