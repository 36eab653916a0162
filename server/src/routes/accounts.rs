//! Accounts: sign-up, the caller's profile and the user directory (sessions: `sessions.rs`).

use crate::client_addr::ClientAddr;
use crate::error::{ApiError, Result};
use crate::extract::{ACCOUNT_BODY_LIMIT, ApiJson, ApiQuery, AuthUser, body_limit, parse_limit};
use crate::hashing::HashError;
use crate::login_limits::addr_key;
use crate::rate_limit::Decision;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use convos_core::ErrorBody;
use convos_core::api::{CreateUserRequest, Items, Me, UpdateMeRequest, User, UserSummary};
use convos_store::users::SignUpConflict;
use convos_store::{threads, users};
use serde::Deserialize;
use std::net::IpAddr;
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    let router = OpenApiRouter::new()
        .routes(routes!(create_user, list_users))
        .routes(routes!(get_me, update_me));
    body_limit(router, ACCOUNT_BODY_LIMIT)
}

/// Creates an account. Its address is unverified: a verification email goes out (one job,
/// written with the account), and Convos sends the address nothing else until its owner follows
/// the link. Limited per client address (`signups_per_hour_per_addr`, IPv6 by /56): every
/// attempt with valid fields counts, refused or not.
#[utoipa::path(post, path = "/api/v1/users", tag = "accounts",
    request_body = CreateUserRequest,
    responses(
        (status = 201, description = "Created; a verification email is on its way", body = User),
        (status = 409, description = "Username taken, or another account verified this email",
            body = ErrorBody),
        (status = 422, description = "Invalid fields", body = ErrorBody),
        (status = 429, description = "Too many sign-ups from this client address, or the \
            password hasher is busy",
            body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until a sign-up is allowed")))))]
pub async fn create_user(
    State(state): State<AppState>,
    addr: ClientAddr,
    body: ApiJson<CreateUserRequest>,
) -> Result<(StatusCode, Json<User>)> {
    // Invalid fields cost nothing to refuse, so they are not counted.
    let new = body.value.parse().map_err(ApiError::Validation)?;
    let subject = signup_key(addr);
    let limit = state.settings.signups_per_hour_per_addr;
    if let Decision::Limited(wait) = state
        .limiter
        .hit("signup", &subject, limit, Duration::from_secs(3600))
        .await
    {
        return Err(ApiError::RateLimited(wait));
    }
    // From here every attempt stays counted, refusals included: a 409 tells whether a username
    // is taken or an address verified, which must not be free to ask over and over. The cheap
    // lookup comes before the ~50 ms hash, so refusals never occupy the shared hashing pool.
    match users::sign_up_conflict(&state.db, &new.username, &new.email).await? {
        None => {}
        Some(SignUpConflict::Username) => return Err(ApiError::Conflict("username")),
        Some(SignUpConflict::Email) => return Err(ApiError::Conflict("email")),
        Some(SignUpConflict::LookalikeUsername) => {
            return Err(ApiError::field(
                "username",
                "looks too much like an existing username (0 and o, 1, i and l, 5 and s, \
                 rn and m, vv and w, cl and d read as one, and '_', '.' and '-' as nothing); \
                 choose another",
            ));
        }
    }
    let hash = match state.hashing.hash(new.password.clone()).await {
        Ok(hash) => hash,
        Err(HashError::Busy) => {
            // Nothing was hashed: the client may try again without losing an attempt.
            state.limiter.forget_one("signup", &subject).await;
            return Err(HashError::Busy.into());
        }
        Err(other) => return Err(other.into()),
    };
    // The unique indexes still decide between two sign-ups that passed the lookup together.
    let signed_up = users::sign_up(
        &state.db,
        users::SignUp {
            username: &new.username,
            email: &new.email,
            display_name: &new.display_name,
            password_hash: &hash,
            link_hours: state.settings.verification_link_hours,
        },
    )
    .await?;
    let user = state.wake.committed(signed_up);
    tracing::info!(user.id = %user.id, "account created; verification email queued");
    Ok((StatusCode::CREATED, Json(user)))
}

/// The sign-up limiter's key for a client address: IPv4 whole (also when IPv4-mapped), IPv6 by
/// its /56, the delegation a subscriber commonly holds (logins count by /64; decision 14).
pub(super) fn signup_key(addr: ClientAddr) -> String {
    match addr.0 {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/56", s[0], s[1], s[2], s[3] & 0xff00)
        }
        _ => addr_key(addr),
    }
}

/// The caller's account, unread total and settings.
#[utoipa::path(get, path = "/api/v1/me", tag = "accounts",
    security(("bearer" = [])),
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
pub async fn get_me(State(state): State<AppState>, caller: AuthUser) -> Result<Json<Me>> {
    let (unread_count, unread_by_folder) = threads::unread(&state.db, caller.user.id).await?;
    Ok(Json(Me {
        user: caller.user,
        unread_count,
        unread_by_folder,
        settings: caller.preferences,
    }))
}

/// Changes the caller's display name and settings.
#[utoipa::path(patch, path = "/api/v1/me", tag = "accounts",
    security(("bearer" = [])),
    request_body = UpdateMeRequest,
    responses((status = 200, body = Me), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn update_me(
    State(state): State<AppState>,
    caller: AuthUser,
    body: ApiJson<UpdateMeRequest>,
) -> Result<Json<Me>> {
    let change = body.value.parse().map_err(ApiError::Validation)?;
    let (user, settings) = users::update_profile(&state.db, caller.user.id, &change).await?;
    let (unread_count, unread_by_folder) = threads::unread(&state.db, caller.user.id).await?;
    Ok(Json(Me {
        user,
        unread_count,
        unread_by_folder,
        settings,
    }))
}

/// Query of `GET /api/v1/users`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DirectoryQuery {
    /// Username prefix (case-insensitive); empty lists everyone.
    q: Option<String>,
    /// 1 to 100, default 20.
    limit: Option<String>,
}

/// The directory for picking a recipient: usernames starting with `q`, excluding the caller.
#[utoipa::path(get, path = "/api/v1/users", tag = "accounts",
    security(("bearer" = [])),
    params(DirectoryQuery),
    responses((status = 200, body = Items<UserSummary>), (status = 401, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn list_users(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiQuery(query): ApiQuery<DirectoryQuery>,
) -> Result<Json<Items<UserSummary>>> {
    let limit = parse_limit(query.limit.as_deref(), 20, 100)?;
    let prefix = query.q.unwrap_or_default();
    if prefix.contains('\0') || prefix.chars().count() > 64 {
        return Err(ApiError::field(
            "q",
            "must be at most 64 characters without NUL",
        ));
    }
    let items = users::directory(&state.db, caller.user.id, prefix.trim(), limit).await?;
    Ok(Json(Items { items }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> String {
        signup_key(ClientAddr(s.parse().unwrap()))
    }

    #[test]
    fn ipv6_sign_ups_are_counted_by_their_56() {
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:0::/56");
        assert_eq!(key("2001:db8:1:ff:bbbb::9"), key("2001:db8:1:2::1"));
        assert_ne!(key("2001:db8:1:100::1"), key("2001:db8:1:ff::1"));
    }

    #[test]
    fn ipv4_sign_ups_are_counted_whole_even_on_a_dual_stack_socket() {
        assert_eq!(key("203.0.113.7"), "203.0.113.7");
        assert_eq!(key("::ffff:203.0.113.7"), "203.0.113.7");
    }
}
