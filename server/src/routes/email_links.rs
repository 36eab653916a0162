//! The signed links of notification emails (decision 27): no login, the token names the user
//! and the thread or message. The one-click `List-Unsubscribe` POST mutes the email's thread;
//! the page behind the footer's links mutes it, pauses all email for a day or a week, or turns
//! it off; a message's link marks it read. Every result offers its undo.
//!
//! A GET never changes anything, since mail scanners follow links: it shows buttons whose POSTs
//! act. A forged, mangled or expired token is a 404, like the unsubscribe links. A user's links
//! take at most `email_link_actions_per_min` actions a minute: without a login, nothing else
//! caps how fast one link can flip a flag, each flip an event and a job.

use crate::error::{ApiError, Result};
use crate::extract::ApiPath;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use convos_core::ErrorBody;
use convos_core::email_links::{self, Link, Target};
use convos_store::StoreError;
use convos_store::email_links::{self as store, EmailState};
use convos_store::threads;
use convos_store::{messages, unsubscribe};
use secrecy::ExposeSecret;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(email_link_page, email_link_one_click))
        .routes(routes!(email_link_action))
}

/// What a link's button does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EmailLinkAction {
    /// Mute the link's thread (a thread's link).
    Mute,
    /// Unmute it.
    Unmute,
    /// Pause all email for a day.
    PauseDay,
    /// Pause all email for a week.
    PauseWeek,
    /// End a pause.
    Unpause,
    /// Turn all email off.
    Off,
    /// Turn email back on.
    On,
    /// Mark the link's message read (a message's link).
    Read,
    /// Mark it unread.
    Unread,
}

impl EmailLinkAction {
    const ALL: [EmailLinkAction; 9] = [
        Self::Mute,
        Self::Unmute,
        Self::PauseDay,
        Self::PauseWeek,
        Self::Unpause,
        Self::Off,
        Self::On,
        Self::Read,
        Self::Unread,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::Mute => "mute",
            Self::Unmute => "unmute",
            Self::PauseDay => "pause-day",
            Self::PauseWeek => "pause-week",
            Self::Unpause => "unpause",
            Self::Off => "off",
            Self::On => "on",
            Self::Read => "read",
            Self::Unread => "unread",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == text)
    }

    /// What one-click (a POST to the link itself, as mail clients send for `List-Unsubscribe`)
    /// does for a link about `target`.
    fn one_click(target: Target) -> Self {
        match target {
            Target::Thread(_) => Self::Mute,
            Target::Account => Self::Off,
            Target::Message(_) => Self::Read,
        }
    }

    /// Whether a link about `target` may do this: a thread's or the account's link changes the
    /// user's email (a thread's also mutes its thread), a message's only reads that message.
    fn allowed_for(self, target: Target) -> bool {
        match self {
            Self::Mute | Self::Unmute => matches!(target, Target::Thread(_)),
            Self::PauseDay | Self::PauseWeek | Self::Unpause | Self::Off | Self::On => {
                !matches!(target, Target::Message(_))
            }
            Self::Read | Self::Unread => matches!(target, Target::Message(_)),
        }
    }

    /// Whether it only stops email (what a mail client's one-click unsubscribe does), which a
    /// revoked link may still do (decision 59).
    fn stops_email(self) -> bool {
        matches!(self, Self::Mute | Self::Off)
    }

    /// The action that undoes this one.
    fn undo(self) -> Self {
        match self {
            Self::Mute => Self::Unmute,
            Self::Unmute => Self::Mute,
            Self::PauseDay | Self::PauseWeek => Self::Unpause,
            Self::Unpause => Self::PauseDay,
            Self::Off => Self::On,
            Self::On => Self::Off,
            Self::Read => Self::Unread,
            Self::Unread => Self::Read,
        }
    }

    /// What the answer says was done.
    fn done(self) -> &'static str {
        match self {
            Self::Mute => "muted",
            Self::Unmute => "unmuted",
            Self::PauseDay | Self::PauseWeek => "paused",
            Self::Unpause => "unpaused",
            Self::Off => "email_off",
            Self::On => "email_on",
            Self::Read => "read",
            Self::Unread => "unread",
        }
    }
}

/// The answer to an action taken through an email link.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EmailLinkResult {
    /// What is now so: `muted`, `unmuted`, `paused`, `unpaused`, `email_off`, `email_on`,
    /// `read` or `unread`.
    pub status: String,
    /// For `paused`, until when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_until: Option<DateTime<Utc>>,
}

/// What a genuine, unexpired link says; otherwise `NotFound`.
fn link(state: &AppState, token: &str) -> Result<Link> {
    email_links::verify(state.settings.secret_key.expose_secret(), token, Utc::now())
        .ok_or(ApiError::NotFound)
}

/// The user's email state; `NotFound` when the user is gone.
async fn email_state(state: &AppState, link: &Link) -> Result<EmailState> {
    store::state(&state.db, link.user)
        .await?
        .ok_or(ApiError::NotFound)
}

/// The buttons a link its user revoked still offers (decision 59): only stopping email, which
/// must keep working for the life of the email, and no undo.
fn stop_buttons(token: &str, link: &Link, email: &EmailState) -> String {
    use EmailLinkAction as A;
    let mut html =
        String::from("<p>The links in this email were revoked; they can only stop email now.</p>");
    if matches!(link.target, Target::Thread(_)) {
        html.push_str(&button(token, A::Mute, "Mute this thread"));
    }
    if email.on && email.may_turn_off(link.issued_at) {
        html.push_str(&button(token, A::Off, "Turn all email off"));
    }
    html
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
         <meta name=\"robots\" content=\"noindex\"><title>{title}</title></head>\
         <body><h1>{title}</h1>{body}</body></html>",
        title = escape(title)
    ))
}

/// A button that POSTs `action` for the link `token`.
fn button(token: &str, action: EmailLinkAction, label: &str) -> String {
    format!(
        "<form method=\"post\" action=\"/api/v1/email-links/{}/{}\">\
         <button type=\"submit\">{}</button></form>",
        escape(token),
        action.as_str(),
        escape(label)
    )
}

fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// The buttons about all of the user's email.
fn email_buttons(token: &str, link: &Link, email: &EmailState) -> String {
    use EmailLinkAction as A;
    if !email.on {
        return format!(
            "<p>Convos does not email you about new messages.</p>{}",
            button(token, A::On, "Turn email back on")
        );
    }
    let mut html = String::new();
    if let Some(until) = email.paused_until {
        html.push_str(&format!(
            "<p>Email is paused until {}.</p>{}",
            when(until),
            button(token, A::Unpause, "Resume email now")
        ));
    }
    html.push_str(&button(token, A::PauseDay, "Pause all email for a day"));
    html.push_str(&button(token, A::PauseWeek, "Pause all email for a week"));
    if email.may_turn_off(link.issued_at) {
        html.push_str(&button(token, A::Off, "Turn all email off"));
    } else {
        // As for unsubscribe links: an email older than the user's last "turn it back on" no
        // longer turns it off.
        html.push_str("<p>To turn all email off, use Convos settings.</p>");
    }
    html
}

/// The page behind an email's links: for a thread's link, buttons to mute the thread and to
/// pause or stop all email; for a message's, a button to mark it read. It changes nothing
/// itself, since mail scanners follow links.
#[utoipa::path(get, path = "/api/v1/email-links/{token}", tag = "notifications",
    params(("token" = String, Path, description = "The signed token from the email")),
    responses(
        (status = 200, description = "An HTML page with the link's buttons", content_type = "text/html", body = String),
        (status = 404, description = "Not a genuine, current email link (forged, expired, or revoked by its user), or its message is gone for its user", body = ErrorBody)))]
pub async fn email_link_page(
    State(state): State<AppState>,
    ApiPath(token): ApiPath<String>,
) -> Result<Html<String>> {
    use EmailLinkAction as A;
    let link = link(&state, &token)?;
    let email = email_state(&state, &link).await?;
    if email.revoked(link.issued_at) {
        if matches!(link.target, Target::Message(_)) {
            return Err(ApiError::NotFound);
        }
        return Ok(page(
            "Email from Convos",
            &stop_buttons(&token, &link, &email),
        ));
    }
    Ok(match link.target {
        Target::Thread(id) => {
            let thread = match threads::get(&state.db, link.user, id).await {
                Ok(thread) => thread,
                // Not theirs (a link no email carried): it can still pause or stop email.
                Err(StoreError::NotFound)
                    if !threads::took_part(&state.db, link.user, id).await? =>
                {
                    return Ok(page(
                        "Email from Convos",
                        &email_buttons(&token, &link, &email),
                    ));
                }
                // The user deleted the thread since: its next message brings it back, so the
                // email can still mute it, as its one-click unsubscribe does, and pause or stop
                // all email.
                Err(StoreError::NotFound) => {
                    return Ok(page(
                        "Email from Convos",
                        &format!(
                            "<p>You deleted this thread. If someone writes in it again, it comes \
                             back to your mailbox; mute it so that Convos does not email you \
                             about it then.</p>{}<h2>All email from Convos</h2>{}",
                            button(&token, A::Mute, "Mute this thread"),
                            email_buttons(&token, &link, &email)
                        ),
                    ));
                }
                Err(e) => return Err(e.into()),
            };
            let mute = if thread.muted {
                format!(
                    "<p>This thread is muted: Convos does not email you about it.</p>{}",
                    button(&token, A::Unmute, "Unmute this thread")
                )
            } else {
                format!(
                    "<p>Stop the email about this thread only; other threads still email \
                     you.</p>{}",
                    button(&token, A::Mute, "Mute this thread")
                )
            };
            page(
                &format!("Email about \u{201C}{}\u{201D}", thread.subject),
                &format!(
                    "{mute}<h2>All email from Convos</h2>{}",
                    email_buttons(&token, &link, &email)
                ),
            )
        }
        Target::Account => page("Email from Convos", &email_buttons(&token, &link, &email)),
        Target::Message(message) => {
            let message = messages::get(&state.db, link.user, message).await?;
            let body = if message.is_read {
                format!(
                    "<p>You have read this message.</p>{}",
                    button(&token, A::Unread, "Mark as unread")
                )
            } else {
                button(&token, A::Read, "Mark as read")
            };
            page(
                &format!(
                    "{} in \u{201C}{}\u{201D}",
                    if message.is_read {
                        "Message"
                    } else {
                        "Mark as read"
                    },
                    message.subject
                ),
                &body,
            )
        }
    })
}

/// One-click (RFC 8058): what a mail client's `List-Unsubscribe` POST does. A thread's link
/// mutes the thread, also one its user deleted in the app; the account's link turns email
/// off; a message's link marks it read. Any request body (`List-Unsubscribe=One-Click`) is
/// ignored. Idempotent.
#[utoipa::path(post, path = "/api/v1/email-links/{token}", tag = "notifications",
    params(("token" = String, Path, description = "The signed token from the email")),
    responses(
        (status = 200, description = "Done; an HTML page with an undo button when the request accepts `text/html`",
            content((EmailLinkResult = "application/json"), (String = "text/html"))),
        (status = 404, description = "Not a genuine, current email link, or its message is gone for its user (a thread's link mutes its thread even when its user deleted it); a link its user revoked still unsubscribes (mutes its thread or turns email off)", body = ErrorBody)))]
pub async fn email_link_one_click(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath(token): ApiPath<String>,
) -> Result<Response> {
    let link = link(&state, &token)?;
    let action = EmailLinkAction::one_click(link.target);
    // A revoked link still stops email (decision 59): unsubscribing must keep working for the
    // life of the email, and it only takes email away from its owner.
    let revoked = email_state(&state, &link).await?.revoked(link.issued_at);
    if revoked && !action.stops_email() {
        return Err(ApiError::NotFound);
    }
    // Not counted: a mail provider's one-click is not retried after a `429`, and it sets
    // rather than flips (once done, it changes nothing and announces nothing), so whoever holds
    // a forwarded email could otherwise spend the user's actions and void their unsubscribe.
    act(&state, &headers, &token, link, action, revoked).await
}

/// A button of the page: mute or unmute the link's thread, pause all email for a day or a week
/// or end the pause, turn all email off or back on, mark the link's message read or unread.
/// Each answer offers its undo. A thread's link cannot read messages, a message's link cannot
/// change email (404). Idempotent.
#[utoipa::path(post, path = "/api/v1/email-links/{token}/{action}", tag = "notifications",
    params(("token" = String, Path, description = "The signed token from the email"),
        ("action" = inline(EmailLinkAction), Path, description = "What to do")),
    responses(
        (status = 200, description = "Done; an HTML page with an undo button when the request accepts `text/html`",
            content((EmailLinkResult = "application/json"), (String = "text/html"))),
        (status = 404, description = "Not a genuine, current email link (forged, expired, or revoked by its user), an action this link cannot take, or its message is gone for its user (a thread's mute and unmute work on a thread its user deleted)", body = ErrorBody),
        (status = 429, description = "The user's links took too many actions this minute", body = ErrorBody)))]
pub async fn email_link_action(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiPath((token, action)): ApiPath<(String, String)>,
) -> Result<Response> {
    let link = link(&state, &token)?;
    let action = EmailLinkAction::parse(&action)
        .filter(|a| a.allowed_for(link.target))
        .ok_or(ApiError::NotFound)?;
    // A revoked link only stops email (decision 59); anything else is refused before it is
    // counted, so it cannot spend its user's actions.
    let revoked = email_state(&state, &link).await?.revoked(link.issued_at);
    if revoked && !action.stops_email() {
        return Err(ApiError::NotFound);
    }
    let limit = state.settings.email_link_actions_per_min;
    state
        .limiter
        .per_user_minute("email_link", link.user, limit)
        .await?;
    act(&state, &headers, &token, link, action, revoked).await
}

/// Does `action` for the link, and answers a browser with a page, anyone else with JSON. A
/// `revoked` link's page offers no undo and no other choices (it can only stop email).
async fn act(
    state: &AppState,
    headers: &HeaderMap,
    token: &str,
    link: Link,
    action: EmailLinkAction,
    revoked: bool,
) -> Result<Response> {
    use EmailLinkAction as A;
    let user = link.user;
    let mut paused_until = None;
    let mut about = None;
    match (action, link.target) {
        (A::Mute | A::Unmute, Target::Thread(thread)) => {
            let on = action == A::Mute;
            let written = threads::set_muted_by_email(&state.db, user, thread, on).await?;
            about = Some(state.wake.committed(written));
        }
        (A::Read | A::Unread, Target::Message(message)) => {
            let read = action == A::Read;
            let written = messages::set_read(&state.db, user, message, read).await?;
            about = Some(state.wake.committed(written).subject);
        }
        (A::PauseDay | A::PauseWeek, _) => {
            let days = if action == A::PauseDay { 1 } else { 7 };
            paused_until = Some(
                store::pause(&state.db, user, days)
                    .await?
                    .ok_or(ApiError::NotFound)?,
            );
        }
        (A::Unpause, _) => {
            if !store::unpause(&state.db, user).await? {
                return Err(ApiError::NotFound);
            }
        }
        (A::Off, _) => {
            // Refused, like an unsubscribe link, when the user turned email back on after the
            // link was sent.
            if !unsubscribe::turn_email_off(&state.db, user, link.issued_at).await? {
                return Err(ApiError::NotFound);
            }
        }
        (A::On, _) => {
            if !store::turn_email_on(&state.db, user).await? {
                return Err(ApiError::NotFound);
            }
        }
        // `allowed_for` and `one_click` never pair these.
        _ => return Err(ApiError::NotFound),
    }
    tracing::info!(user.id = %user, action = action.as_str(), "email link used");
    let browser = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if !browser {
        return Ok(Json(EmailLinkResult {
            status: action.done().into(),
            paused_until,
        })
        .into_response());
    }
    let about = about
        .map(|s| format!("\u{201C}{s}\u{201D}"))
        .unwrap_or_default();
    let (title, text) = match action {
        A::Mute => (
            "This thread is muted".to_owned(),
            format!("Convos will not email you about {about} any more. Other threads still do."),
        ),
        A::Unmute => (
            "This thread is not muted".to_owned(),
            format!("Convos emails you about {about} again."),
        ),
        A::PauseDay | A::PauseWeek => (
            "Email is paused".to_owned(),
            format!(
                "Convos will not email you about new messages until {}.",
                paused_until.map(when).unwrap_or_default()
            ),
        ),
        A::Unpause => (
            "Email is on".to_owned(),
            "Convos emails you about new messages again.".to_owned(),
        ),
        A::Off if revoked => (
            "Email is off".to_owned(),
            "Convos will not email you about new messages any more. You can turn it back on in \
             Convos settings."
                .to_owned(),
        ),
        A::Off => (
            "Email is off".to_owned(),
            "Convos will not email you about new messages any more. You can turn it back on \
             here or in Convos settings."
                .to_owned(),
        ),
        A::On => (
            "Email is on".to_owned(),
            "Convos emails you about new messages again.".to_owned(),
        ),
        A::Read => (
            "Marked as read".to_owned(),
            format!("The message in {about} is read, in Convos too."),
        ),
        A::Unread => (
            "Marked as unread".to_owned(),
            format!("The message in {about} is unread again."),
        ),
    };
    // Turning email back on retires this link's "off" (see above): no undo to offer then.
    let undo = if action == A::On || revoked {
        String::new()
    } else {
        button(token, action.undo(), "Undo")
    };
    let more = match link.target {
        Target::Message(_) => String::new(),
        _ if revoked => String::new(),
        _ => format!(
            "<p><a href=\"/api/v1/email-links/{}\">More choices</a></p>",
            escape(token)
        ),
    };
    Ok(page(&title, &format!("<p>{}</p>{undo}{more}", escape(&text))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use convos_core::{MessageId, ThreadId};

    #[test]
    fn every_action_has_one_spelling_and_an_undo_allowed_where_it_is() {
        let targets = [
            Target::Thread(ThreadId::generate()),
            Target::Account,
            Target::Message(MessageId::generate()),
        ];
        for action in EmailLinkAction::ALL {
            assert_eq!(EmailLinkAction::parse(action.as_str()), Some(action));
            let json = serde_json::to_value(action).unwrap();
            assert_eq!(json, action.as_str(), "the schema's spelling is the path's");
            for target in targets {
                if action.allowed_for(target) {
                    assert!(action.undo().allowed_for(target), "{action:?} {target:?}");
                }
            }
        }
        for target in targets {
            assert!(EmailLinkAction::one_click(target).allowed_for(target));
        }
        assert_eq!(EmailLinkAction::parse("Mute"), None);
    }

    #[test]
    fn a_message_link_cannot_change_email_and_a_thread_link_cannot_read() {
        let message = Target::Message(MessageId::generate());
        for action in [
            EmailLinkAction::Off,
            EmailLinkAction::PauseWeek,
            EmailLinkAction::Mute,
        ] {
            assert!(!action.allowed_for(message), "{action:?}");
        }
        let thread = Target::Thread(ThreadId::generate());
        assert!(!EmailLinkAction::Read.allowed_for(thread));
        assert!(!EmailLinkAction::Mute.allowed_for(Target::Account));
    }
}
