//! Accounts an operator creates from the command line (`admin create-user`, the demo seed).
//!
//! They are validated as `POST /api/v1/users` validates a sign-up, but may take the service's
//! own names (`CreateUserRequest::parse_as_operator`); their addresses are taken as verified (an operator vouches for them) and they pay no
//! sign-up limits, so they are written by `users::insert`, not the sign-up transaction.

use crate::auth;
use convos_core::api::{CreateUserRequest, User};
use sqlx::PgPool;

/// Validates, hashes and creates a verified account; an error names every refused field, or
/// says which of username and email is taken.
pub async fn create_verified_user(
    db: &PgPool,
    request: &CreateUserRequest,
    is_admin: bool,
) -> anyhow::Result<User> {
    let new = request.parse_as_operator().map_err(|errors| {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("invalid user: {}", list.join("; "))
    })?;
    let hash = auth::hash_password(&new.password)?;
    convos_store::users::insert(
        db,
        &new.username,
        &new.email,
        &new.display_name,
        &hash,
        is_admin,
    )
    .await
    .map_err(|e| anyhow::anyhow!("could not create user: {e}"))
}
