//! Email verification: the page behind the emailed link, its confirming POST, asking for
//! another email (decision 14), and moving the account to another address (decision 77).
//!
//! A GET never changes anything, since mail scanners fetch links: it shows a button whose POST
//! confirms. The link is signed for the account's current address and expires; a link for
//! another account's verified address is refused with 409.

use crate::client_addr::ClientAddr;
use crate::error::{ApiError, Result};
use crate::extract::{ACCOUNT_BODY_LIMIT, ApiJson, ApiPath, AuthUser, body_limit};
use crate::rate_limit::Decision;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Html;
use chrono::Utc;
use convos_core::ErrorBody;
use convos_core::api::ChangeEmailRequest;
use convos_core::verification::Link;
use convos_store::verification::{self, AddressChange, Confirmed, EmailState, Resend};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    let change = OpenApiRouter::new().routes(routes!(change_email));
    OpenApiRouter::new()
        .routes(routes!(verify_page, confirm_email))
        .routes(routes!(resend_verification))
        .merge(body_limit(change, ACCOUNT_BODY_LIMIT))
}

/// An HTML answer: a status and a page.
type Page = (StatusCode, Html<String>);

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(status: StatusCode, title: &str, body: &str) -> Page {
    (
        status,
        Html(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\">\
             <meta name=\"robots\" content=\"noindex\"><title>{title}</title></head>\
             <body><h1>{title}</h1>{body}</body></html>",
            title = escape(title)
        )),
    )
}

/// What the confirmation form sends.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ConfirmForm {
    /// The username of the account the link was sent for, as its owner types it (any case).
    username: Option<String>,
}

fn not_the_account() -> Page {
    page(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Not confirmed",
        "<p>That is not the account this link confirms. Check the username you chose, and go \
         back to try again.</p><p>If you did not make an account with this address, do \
         nothing: the link is someone else's, and the address stays unconfirmed for them.</p>",
    )
}

fn not_valid() -> Page {
    page(
        StatusCode::NOT_FOUND,
        "This link is not valid",
        "<p>Check that you opened the whole link from the email. If your account's address \
         changed since, the link no longer applies: ask for a new one in Convos.</p>",
    )
}

fn expired() -> Page {
    page(
        StatusCode::GONE,
        "This link has expired",
        "<p>Ask for a new verification email in Convos.</p>",
    )
}

fn superseded() -> Page {
    page(
        StatusCode::GONE,
        "This link has been replaced",
        "<p>A newer verification email was sent; use the link in that one, or ask for a new \
         email in Convos.</p>",
    )
}

fn taken() -> Page {
    page(
        StatusCode::CONFLICT,
        "This address belongs to another account",
        "<p>Another Convos account confirmed this address first, so it cannot be confirmed for \
         this one. Change your account's address in Convos (its settings) to another one.</p>",
    )
}

fn already() -> Page {
    page(
        StatusCode::OK,
        "Your email is already confirmed",
        "<p>Nothing more to do.</p>",
    )
}

/// The genuine, unexpired link and its account's address state, or the page saying why not.
async fn check(state: &AppState, token: &str) -> Result<Result<(Link, EmailState), Page>> {
    let Some(link) = Link::parse(token) else {
        return Ok(Err(not_valid()));
    };
    let Some(account) = verification::state(&state.db, link.user).await? else {
        return Ok(Err(not_valid()));
    };
    // Checked against the current address: a link for an address the account no longer has
    // looks exactly like a forgery.
    if !link.is_signed_for(state.settings.secret_key.expose_secret(), &account.email) {
        return Ok(Err(not_valid()));
    }
    if link.is_expired(Utc::now()) {
        return Ok(Err(expired()));
    }
    Ok(Ok((link, account)))
}

/// The page behind the emailed link: a button that confirms the address. It changes nothing
/// itself, since mail scanners follow links.
#[utoipa::path(get, path = "/verify/{token}", tag = "accounts",
    params(("token" = String, Path, description = "The signed token from the email")),
    responses(
        (status = 200, description = "A page with a confirmation button (or saying it is done)",
            content_type = "text/html", body = String),
        (status = 404, description = "Forged, mangled, or for an address the account no longer has",
            content_type = "text/html", body = String),
        (status = 409, description = "Another account verified this address first",
            content_type = "text/html", body = String),
        (status = 410, description = "Expired", content_type = "text/html", body = String)))]
pub async fn verify_page(
    State(state): State<AppState>,
    ApiPath(token): ApiPath<String>,
) -> Result<Page> {
    let (link, account) = match check(&state, &token).await? {
        Ok(checked) => checked,
        Err(page) => return Ok(page),
    };
    if account.verified && !account.bounced {
        return Ok(already());
    }
    if account.verified_at.is_some_and(|at| at >= link.issued) {
        return Ok(superseded());
    }
    if account.taken_by_other {
        return Ok(taken());
    }
    Ok(page(
        StatusCode::OK,
        "Confirm your email for Convos",
        &format!(
            "<p>Use <strong>{}</strong> for your Convos account?</p>\
             <form method=\"post\" action=\"/verify/{}\">\
             <p><label>Your Convos username \
             <input name=\"username\" autocomplete=\"username\" required></label></p>\
             <p>The link confirms only the account it was sent for: if you did not make that \
             account, it is not yours to confirm, whatever this address.</p>\
             <button type=\"submit\">Confirm my email</button></form>",
            escape(&account.email),
            escape(&token)
        ),
    ))
}

/// Confirms the address the link was sent to. The account then gets email again (a bounce is
/// forgotten), and its other unconfirmed claims' links stop mattering.
#[utoipa::path(post, path = "/verify/{token}", tag = "accounts",
    params(("token" = String, Path, description = "The signed token from the email")),
    request_body(content = ConfirmForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Confirmed (or already was)", content_type = "text/html",
            body = String),
        (status = 422, description = "The username typed is not the account's (or none was)",
            content_type = "text/html", body = String),
        (status = 404, description = "Forged, mangled, or for an address the account no longer has",
            content_type = "text/html", body = String),
        (status = 409, description = "Another account verified this address first",
            content_type = "text/html", body = String),
        (status = 410, description = "Expired, or replaced by a newer link",
            content_type = "text/html", body = String)))]
pub async fn confirm_email(
    State(state): State<AppState>,
    ApiPath(token): ApiPath<String>,
    form: std::result::Result<axum::Form<ConfirmForm>, axum::extract::rejection::FormRejection>,
) -> Result<Page> {
    let (link, account) = match check(&state, &token).await? {
        Ok(checked) => checked,
        Err(page) => return Ok(page),
    };
    // Only the account's owner knows to type its username: someone else's link, followed by
    // the owner of the address, confirms nothing (decision 86). The page names no account
    // either way.
    let typed = form.ok().and_then(|axum::Form(form)| form.username);
    let owner = typed.is_some_and(|typed| typed.trim().eq_ignore_ascii_case(&account.username));
    if !owner {
        return Ok(not_the_account());
    }
    let outcome = verification::confirm(&state.db, link.user, &account.email, link.issued).await?;
    Ok(match outcome {
        Confirmed::Verified => {
            tracing::info!(user.id = %link.user, "email verified");
            page(
                StatusCode::OK,
                "Your email is confirmed",
                "<p>Convos will now email you about new messages (you can turn that off in \
                 Convos settings). You can close this page.</p>",
            )
        }
        Confirmed::AlreadyVerified => already(),
        Confirmed::Superseded => superseded(),
        Confirmed::TakenByAnother => taken(),
    })
}

/// The answer to a request for another verification email.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct VerificationSent {
    /// The address the email goes to.
    pub email: String,
}

/// Sends another verification email to the caller's address (the earlier links keep working
/// until they expire). Limited per account (`verification_emails_per_hour`).
#[utoipa::path(post, path = "/api/v1/me/verification", tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 202, description = "A verification email is on its way", body = VerificationSent),
        (status = 401, body = ErrorBody),
        (status = 409, description = "Another account verified this address first; change it",
            body = ErrorBody),
        (status = 422, description = "The address is already verified", body = ErrorBody),
        (status = 429, description = "Too many verification emails this hour, or the address \
            has had all the verification emails it may get for now", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until another is allowed")))))]
pub async fn resend_verification(
    State(state): State<AppState>,
    addr: ClientAddr,
    caller: AuthUser,
) -> Result<(StatusCode, Json<VerificationSent>)> {
    let user = caller.user.id;
    // Only for an address that needs a link: a verified one is told so (422) below.
    if let Some(account) = verification::state(&state.db, user).await?
        && (!account.verified || account.bounced)
    {
        refuse_if_mailbox_full(&state, &account.email).await?;
    }
    let subject = user.to_string();
    count_email(&state, addr, &subject).await?;
    let outcome = verification::resend(&state.db, user, state.settings.verification_link_hours)
        .await
        .map(|written| state.wake.committed(written));
    let refusal = match outcome {
        Ok(Resend::Queued(email)) => {
            return Ok((StatusCode::ACCEPTED, Json(VerificationSent { email })));
        }
        Ok(Resend::AlreadyVerified) => ApiError::field("email", "is already verified"),
        Ok(Resend::TakenByAnother) => ApiError::Conflict("email"),
        Err(e) => e.into(),
    };
    // Only emails sent count.
    give_back_email(&state, addr, &subject).await;
    Err(refusal)
}

/// Takes back what [`count_email`] counted, the account's and its network's, for a request
/// that sent nothing: left on the network, a verified account asking again and again used up
/// its whole network's hour, and nobody behind the same address could get a link (a review).
async fn give_back_email(state: &AppState, addr: ClientAddr, subject: &str) {
    state.limiter.forget_one("verify_email", subject).await;
    let network = super::accounts::signup_key(addr);
    state
        .limiter
        .forget_one("verify_email_addr", &network)
        .await;
}

/// `429` saying so when `email`'s mailbox has had all the verification emails it may get for
/// now, whichever accounts asked: the email job would skip the caller's unseen, and claims by
/// others fill the same budget (decision 86).
async fn refuse_if_mailbox_full(state: &AppState, email: &str) -> Result<()> {
    match verification::mailbox_full_for(&state.db, email, verification::MAILBOX_CAPS).await? {
        Some(wait) => Err(ApiError::MailboxFull(wait)),
        None => Ok(()),
    }
}

/// Counts one verification email against the account's hour (`verification_emails_per_hour`)
/// and its client network's (`verification_emails_per_hour_per_addr`); a request that then
/// sends nothing gives both back ([`give_back_email`]), but for an answer that tells whether
/// another account has an address, which stays counted as a sign-up's does.
async fn count_email(state: &AppState, addr: ClientAddr, subject: &str) -> Result<()> {
    let hour = Duration::from_secs(3600);
    let per_account = state.settings.verification_emails_per_hour;
    if let Decision::Limited(wait) = state
        .limiter
        .hit("verify_email", subject, per_account, hour)
        .await
    {
        return Err(ApiError::RateLimited(wait));
    }
    let network = super::accounts::signup_key(addr);
    let per_network = state.settings.verification_emails_per_hour_per_addr;
    if let Decision::Limited(wait) = state
        .limiter
        .hit("verify_email_addr", &network, per_network, hour)
        .await
    {
        state.limiter.forget_one("verify_email", subject).await;
        return Err(ApiError::RateLimited(wait));
    }
    Ok(())
}

/// Moves the caller's account to another address (decision 77), confirmed by the password
/// under the same limits as a login. The new address is the account's at once, unconfirmed: a
/// verification email goes to it, and nothing about messages does until its link is followed.
/// What the emails already sent to the old address can do is revoked. Counts against the
/// hour's verification emails (`verification_emails_per_hour`).
#[utoipa::path(put, path = "/api/v1/me/email", tag = "accounts",
    security(("bearer" = [])),
    request_body = ChangeEmailRequest,
    responses(
        (status = 202, description = "Changed; a verification email is on its way to the new \
            address", body = VerificationSent),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 409, description = "Another account verified this address", body = ErrorBody),
        (status = 422, description = "`password` is wrong, or `email` is not an address or is \
            the account's already", body = ErrorBody),
        (status = 429, description = "Too many verification emails this hour, the new address \
            has had all it may get for now, too many wrong passwords, or the server is busy \
            checking passwords; see Retry-After",
            body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until another is allowed")))))]
pub async fn change_email(
    State(state): State<AppState>,
    addr: ClientAddr,
    caller: AuthUser,
    body: ApiJson<ChangeEmailRequest>,
) -> Result<(StatusCode, Json<VerificationSent>)> {
    let change = body.value.parse().map_err(ApiError::Validation)?;
    let email = change.email.as_str().to_owned();
    let user = caller.user.id;
    let subject = user.to_string();
    count_email(&state, addr, &subject).await?;
    let outcome = change_checked(&state, addr, &caller, change).await;
    let refusal = match outcome {
        Ok(AddressChange::Changed) => {
            tracing::info!(user.id = %user, "email address changed; verification sent");
            return Ok((StatusCode::ACCEPTED, Json(VerificationSent { email })));
        }
        // Counted like an email: it answers whether another account has the address, which
        // sign-up also counts (its 409s included), or each account could ask it for free.
        Ok(AddressChange::TakenByAnother) => return Err(ApiError::Conflict("email")),
        Ok(AddressChange::Same) => ApiError::field("email", "is already your address"),
        Err(e) => e,
    };
    // Otherwise only emails sent count.
    give_back_email(&state, addr, &subject).await;
    Err(refusal)
}

/// The change, once the password is right.
async fn change_checked(
    state: &AppState,
    addr: ClientAddr,
    caller: &AuthUser,
    change: convos_core::api::EmailChange,
) -> Result<AddressChange> {
    let right =
        super::sessions::check_password(state, addr, &caller.user.username, change.password)
            .await?
            .is_some_and(|(id, _)| id == caller.user.id);
    if !right {
        return Err(ApiError::field("password", "is not your password"));
    }
    // After the password: whether a mailbox is full is the mailbox's owner's to know.
    refuse_if_mailbox_full(state, change.email.as_str()).await?;
    let written = verification::change_address(
        &state.db,
        caller.user.id,
        change.email.as_str(),
        state.settings.verification_link_hours,
    )
    .await?;
    Ok(state.wake.committed(written))
}
