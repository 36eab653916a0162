//! Sessions: logging in and out, the caller's session list, revoking sessions, and changing
//! the password (which ends every other session).

use crate::auth;
use crate::client_addr::ClientAddr;
use crate::error::{ApiError, Result};
use crate::extract::{ACCOUNT_BODY_LIMIT, ApiJson, ApiPath, AuthUser, body_limit, parse_id};
use crate::login_limits::Attempt;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use convos_core::api::{
    ChangePasswordRequest, CreateSessionRequest, Items, RevokedSessions, Session, SessionInfo,
};
use convos_core::{ErrorBody, FieldError, Password, SessionId, Username};
use convos_store::tokens::{self, NewSession, TokenId};
use convos_store::users;
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    let router = OpenApiRouter::new()
        .routes(routes!(
            create_session,
            list_sessions,
            delete_other_sessions
        ))
        .routes(routes!(delete_session))
        .routes(routes!(delete_session_by_id))
        .routes(routes!(change_password));
    body_limit(router, ACCOUNT_BODY_LIMIT)
}

/// Checks `password` for `username` on the hashing pool, with the login limits around it:
/// the user and the password hash it matched. Unknown users are checked against a dummy hash,
/// so they take as long to refuse.
pub(super) async fn check_password(
    state: &AppState,
    addr: ClientAddr,
    username: &str,
    password: String,
) -> Result<Option<(convos_core::UserId, String)>> {
    let attempt = Attempt::begin(state, username, addr).await?;
    let found = users::credentials(&state.db, username).await?;
    let phc: Arc<str> = found
        .as_ref()
        .map_or_else(|| state.dummy_hash.clone(), |(_, h)| Arc::from(h.as_str()));
    let ok = match state.hashing.verify(attempt.lane(), password, phc).await {
        Ok(ok) => ok,
        Err(e) => {
            // Not checked, so not counted as a failure.
            attempt.not_checked(state).await;
            return Err(e.into());
        }
    };
    match (ok, found) {
        (true, Some(found)) => {
            attempt.succeeded(state).await;
            Ok(Some(found))
        }
        _ => Ok(None),
    }
}

/// Logs in and returns a bearer token (shown this once). Failed logins are limited per client
/// address, per username from one address, and per username overall; successful ones per user
/// and per address (see `docs/security.md`). A login beyond the user's session cap ends their
/// oldest session. A login that raced a password change is refused like a wrong password.
#[utoipa::path(post, path = "/api/v1/sessions", tag = "accounts",
    request_body = CreateSessionRequest,
    responses(
        (status = 201, description = "Logged in", body = Session),
        (status = 401, description = "Wrong username or password", body = ErrorBody),
        (status = 403, description = "The account is suspended (the password was right)",
            body = ErrorBody),
        (status = 422, description = "A field is missing", body = ErrorBody),
        (status = 429, description = "Too many failed logins from this address or for this \
            username, too many logins of this user or from this address, or the server is busy \
            checking passwords; see Retry-After",
            body = ErrorBody)))]
pub async fn create_session(
    State(state): State<AppState>,
    addr: ClientAddr,
    headers: HeaderMap,
    body: ApiJson<CreateSessionRequest>,
) -> Result<(StatusCode, Json<Session>)> {
    let req = body.value;
    let mut missing = Vec::new();
    if req.username.is_none() {
        missing.push(FieldError::new("username", "is required"));
    }
    if req.password.is_none() {
        missing.push(FieldError::new("password", "is required"));
    }
    let (Some(username), Some(password)) = (req.username, req.password) else {
        return Err(ApiError::Validation(missing));
    };
    // Something that cannot be a username (or a password) is refused like a wrong password,
    // without touching the database, the hasher or the counters.
    if Username::parse(&username).is_err() || Password::parse(&password).is_err() {
        return Err(ApiError::InvalidCredentials);
    }
    let (user_id, checked_hash) = check_password(&state, addr, &username, password)
        .await?
        .ok_or(ApiError::InvalidCredentials)?;
    // Told only to whoever knows the password (decision 88).
    if users::is_suspended(&state.db, user_id).await? {
        return Err(ApiError::Forbidden(
            "this account is suspended by the operators of this server; ask them why".into(),
        ));
    }
    let token = auth::new_token();
    let client = auth::client_label(headers.get(header::USER_AGENT).map(|v| v.as_bytes()));
    let issued = tokens::insert(
        &state.db,
        NewSession {
            user: user_id,
            token: &token,
            client: client.as_deref(),
            checked_hash: &checked_hash,
            max_live: state.settings.max_sessions_per_user,
            lifetimes: auth::lifetimes(&state.settings),
        },
    )
    .await?
    // The password changed while it was being checked: that password no longer opens it.
    .ok_or(ApiError::InvalidCredentials)?;
    end(&state, &issued.ended).await;
    let (user, _) = users::get(&state.db, user_id).await?;
    Ok((StatusCode::CREATED, Json(Session { token, user })))
}

/// The caller's live sessions, newest first; `current` marks the one making this request.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "accounts",
    security(("bearer" = [])),
    responses((status = 200, description = "The caller's sessions", body = Items<SessionInfo>),
        (status = 401, description = "No valid token", body = ErrorBody)))]
pub async fn list_sessions(
    State(state): State<AppState>,
    caller: AuthUser,
) -> Result<Json<Items<SessionInfo>>> {
    let items = tokens::list(
        &state.db,
        caller.user.id,
        caller.token,
        auth::lifetimes(&state.settings),
    )
    .await?;
    Ok(Json(Items { items }))
}

/// Ends sessions after the revocation committed: their tokens already fail, and their open
/// event streams close now, in every server process.
async fn end(state: &AppState, ended: &[TokenId]) {
    state.hub.end_sessions(ended).await;
}

/// Logs out: the token used for this request stops working.
#[utoipa::path(delete, path = "/api/v1/sessions/current", tag = "accounts",
    security(("bearer" = [])),
    responses((status = 204, description = "Logged out"),
        (status = 401, description = "No valid token", body = ErrorBody)))]
pub async fn delete_session(State(state): State<AppState>, caller: AuthUser) -> Result<StatusCode> {
    tokens::revoke(&state.db, caller.token).await?;
    end(&state, &[caller.token]).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes one of the caller's sessions: the current one, or one made before it (decision 76).
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "accounts",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "A session id from `GET /api/v1/sessions`")),
    responses((status = 204, description = "The session ended"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The session was made after the current one: end it from \
            a newer session, or change the password", body = ErrorBody),
        (status = 404, description = "Not a live session of the caller", body = ErrorBody)))]
pub async fn delete_session_by_id(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode> {
    let id: SessionId = parse_id(&id)?;
    let ended = tokens::revoke_own(
        &state.db,
        caller.user.id,
        id,
        auth::lifetimes(&state.settings),
        caller.token,
    )
    .await?;
    end(&state, &[ended]).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Logs out everywhere else: every session of the caller made before the current one ends;
/// those made after it stay (decision 76).
#[utoipa::path(delete, path = "/api/v1/sessions", tag = "accounts",
    security(("bearer" = [])),
    responses((status = 200, description = "The other sessions ended", body = RevokedSessions),
        (status = 401, description = "No valid token", body = ErrorBody)))]
pub async fn delete_other_sessions(
    State(state): State<AppState>,
    caller: AuthUser,
) -> Result<Json<RevokedSessions>> {
    let ended = tokens::revoke_others(&state.db, caller.user.id, caller.token).await?;
    end(&state, &ended).await;
    Ok(Json(RevokedSessions {
        revoked: ended.len() as u64,
    }))
}

/// Changes the caller's password. The current password is checked under the same limits as a
/// login; every other session ends (this one stays).
#[utoipa::path(put, path = "/api/v1/me/password", tag = "accounts",
    security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses((status = 204, description = "Changed; the other sessions ended"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 422, description = "`current` is wrong, or `new` is not a valid password",
            body = ErrorBody),
        (status = 429, description = "Too many wrong passwords, or the server is busy \
            checking passwords; see Retry-After", body = ErrorBody)))]
pub async fn change_password(
    State(state): State<AppState>,
    addr: ClientAddr,
    caller: AuthUser,
    body: ApiJson<ChangePasswordRequest>,
) -> Result<StatusCode> {
    let change = body.value.parse().map_err(ApiError::Validation)?;
    let right = check_password(&state, addr, &caller.user.username, change.current)
        .await?
        .is_some_and(|(id, _)| id == caller.user.id);
    if !right {
        return Err(ApiError::field("current", "is not your current password"));
    }
    let hash = state.hashing.hash(change.new).await?;
    let ended = tokens::change_password(&state.db, caller.user.id, &hash, caller.token).await?;
    tracing::info!(user.id = %caller.user.id, sessions_ended = ended.len(), "password changed");
    end(&state, &ended).await;
    Ok(StatusCode::NO_CONTENT)
}
