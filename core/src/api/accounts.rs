//! Accounts: sign-up, sessions, the caller's profile and settings, and how users see one another.

use crate::domain::{DisplayName, EmailAddress, FieldError, Password, Username};
use crate::ids::{SessionId, UserId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

use super::{FolderCounts, collect, required};
#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// `POST /api/v1/users`.
#[derive(Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreateUserRequest {
    /// 3-32 characters of `a-z 0-9 _ . -` (upper case is folded).
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = String,
        pattern = "^[A-Za-z0-9_.-]{3,32}$"))]
    pub username: Option<String>,
    /// Unique, case-insensitively.
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = String,
        min_length = 3, max_length = 254))]
    pub email: Option<String>,
    /// 8-256 characters.
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = String,
        min_length = 8, max_length = 256))]
    pub password: Option<String>,
    /// 1-64 characters on one line (surrounding spaces are trimmed), nothing that hides or
    /// reorders text, no `@`, `<` or `>` nor their look-alikes; defaults to the username. Not
    /// unique: Convos shows the username beside it.
    #[cfg_attr(feature = "openapi", schema(required = false, value_type = String, min_length = 1,
        max_length = 64, pattern = "\\S"))]
    pub display_name: Option<String>,
}

impl fmt::Debug for CreateUserRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateUserRequest")
            .field("username", &self.username)
            .field("email", &self.email)
            .field("display_name", &self.display_name)
            .finish_non_exhaustive()
    }
}

/// A validated sign-up.
#[derive(Clone, Debug)]
pub struct NewUser {
    /// The login name.
    pub username: Username,
    /// The address notifications go to.
    pub email: EmailAddress,
    /// The password to hash.
    pub password: Password,
    /// The name shown to others.
    pub display_name: DisplayName,
}

impl CreateUserRequest {
    /// Validates every field of a sign-up, reporting all refusals at once; the username as a
    /// new account's ([`Username::parse_new`]: no look-alike or reserved names).
    pub fn parse(&self) -> Result<NewUser, Vec<FieldError>> {
        self.parse_with(Username::parse_new)
    }

    /// Validates every field of an account an operator creates (`admin create-user`, the demo
    /// seed): as a sign-up, but the service's own names (`support`, `admin`) are theirs to give.
    pub fn parse_as_operator(&self) -> Result<NewUser, Vec<FieldError>> {
        self.parse_with(Username::parse)
    }

    fn parse_with(
        &self,
        parse_username: fn(&str) -> Result<Username, FieldError>,
    ) -> Result<NewUser, Vec<FieldError>> {
        let mut errors = Vec::new();
        let username = required("username", &self.username, &mut errors)
            .and_then(|u| collect(parse_username(u), &mut errors));
        let email = required("email", &self.email, &mut errors)
            .and_then(|e| collect(EmailAddress::parse(e), &mut errors));
        let password = required("password", &self.password, &mut errors)
            .and_then(|p| collect(Password::parse(p), &mut errors));
        let display_name = match &self.display_name {
            Some(d) => collect(DisplayName::parse(d), &mut errors),
            None => username.as_ref().map(DisplayName::from_username),
        };
        match (username, email, password, display_name) {
            (Some(username), Some(email), Some(password), Some(display_name))
                if errors.is_empty() =>
            {
                Ok(NewUser {
                    username,
                    email,
                    password,
                    display_name,
                })
            }
            _ => Err(errors),
        }
    }
}

/// `POST /api/v1/sessions`.
#[derive(Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreateSessionRequest {
    /// The username (any case).
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = String))]
    pub username: Option<String>,
    /// The password.
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = String))]
    pub password: Option<String>,
}

impl fmt::Debug for CreateSessionRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateSessionRequest")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// `PUT /api/v1/me/password`.
#[derive(Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ChangePasswordRequest {
    /// The password in use now.
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = String))]
    pub current: Option<String>,
    /// The new password: 8-256 characters.
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = String,
        min_length = 8, max_length = 256))]
    pub new: Option<String>,
}

impl fmt::Debug for ChangePasswordRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangePasswordRequest")
            .finish_non_exhaustive()
    }
}

/// A validated password change. The current password is only compared, never parsed: a
/// password set before today's rules must still be accepted as the current one. Its `Debug`
/// shows neither password.
#[derive(Clone)]
pub struct PasswordChange {
    /// The password in use now, as typed.
    pub current: String,
    /// The password to set.
    pub new: Password,
}

impl ChangePasswordRequest {
    /// Validates both fields, reporting all refusals at once.
    pub fn parse(&self) -> Result<PasswordChange, Vec<FieldError>> {
        let mut errors = Vec::new();
        let current = required("current", &self.current, &mut errors).map(str::to_owned);
        let new = required("new", &self.new, &mut errors).and_then(|p| {
            collect(
                Password::parse(p).map_err(|e| FieldError::new("new", e.reason)),
                &mut errors,
            )
        });
        match (current, new) {
            (Some(current), Some(new)) if errors.is_empty() => Ok(PasswordChange { current, new }),
            _ => Err(errors),
        }
    }
}

/// `PUT /api/v1/me/email`.
#[derive(Clone, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChangeEmailRequest {
    /// The new address; it is used once its owner follows the link emailed to it.
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = String,
        min_length = 3, max_length = 254))]
    pub email: Option<String>,
    /// The account's password.
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = String))]
    pub password: Option<String>,
}

impl fmt::Debug for ChangeEmailRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeEmailRequest")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// A validated change of address. The password is only compared, never parsed (as
/// [`PasswordChange::current`]). Its `Debug` shows the address, not the password.
#[derive(Clone)]
pub struct EmailChange {
    /// The address to move to.
    pub email: EmailAddress,
    /// The account's password, as typed.
    pub password: String,
}

impl fmt::Debug for PasswordChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordChange").finish_non_exhaustive()
    }
}

impl fmt::Debug for EmailChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailChange")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

impl ChangeEmailRequest {
    /// Validates both fields, reporting all refusals at once.
    pub fn parse(&self) -> Result<EmailChange, Vec<FieldError>> {
        let mut errors = Vec::new();
        let email = required("email", &self.email, &mut errors)
            .and_then(|e| collect(EmailAddress::parse(e), &mut errors));
        let password = required("password", &self.password, &mut errors).map(str::to_owned);
        match (email, password) {
            (Some(email), Some(password)) if errors.is_empty() => {
                Ok(EmailChange { email, password })
            }
            _ => Err(errors),
        }
    }
}

/// `PATCH /api/v1/me`. A field it does not have (`email`, `is_admin`) is refused, not ignored:
/// a client must not be told it changed what cannot change here.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateMeRequest {
    /// A new display name: 1-64 characters on one line (surrounding spaces are trimmed), as
    /// for sign-up.
    #[cfg_attr(feature = "openapi", schema(required = false, value_type = String, min_length = 1,
        max_length = 64, pattern = "\\S"))]
    pub display_name: Option<String>,
    /// Preferences to change; absent ones stay as they are.
    pub settings: Option<PreferencesPatch>,
}

/// The preferences part of `PATCH /api/v1/me` (its `settings` field); unknown fields refused.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PreferencesPatch {
    /// Whether new messages are announced by email (`false` is `email_mode: "off"`).
    pub email_notifications: Option<bool>,
    /// `each` (one email per message, after the delay), `daily` (one digest a day) or `off`.
    pub email_mode: Option<EmailMode>,
    /// The local hour of the daily digest, 0-23.
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 23))]
    pub digest_hour: Option<i64>,
    /// The IANA time zone of `digest_hour` (e.g. `Europe/Paris`).
    #[cfg_attr(feature = "openapi", schema(max_length = 64))]
    pub time_zone: Option<String>,
}

/// How a user gets email about new messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub enum EmailMode {
    /// One email per thread's new messages, after the delay window.
    Each,
    /// One email a day listing the unread threads (none when nothing is unread).
    Daily,
    /// No email about messages.
    Off,
}

/// A validated profile change.
#[derive(Clone, Debug, Default)]
pub struct ProfileChange {
    /// A new display name, if one was sent.
    pub display_name: Option<DisplayName>,
    /// Email on or off, if it changes.
    pub email_notifications: Option<bool>,
    /// Digest (true) or one email per message (false), if it changes.
    pub email_digest: Option<bool>,
    /// The digest's local hour, if it changes.
    pub digest_hour: Option<i16>,
    /// The digest's time zone (syntax checked; the store checks that it exists), if it changes.
    pub time_zone: Option<String>,
}

/// Longest time zone name accepted.
pub const TIME_ZONE_MAX: usize = 64;

fn parse_settings(patch: &PreferencesPatch, errors: &mut Vec<FieldError>) -> ProfileChange {
    let mut change = ProfileChange {
        email_notifications: patch.email_notifications,
        ..ProfileChange::default()
    };
    match patch.email_mode {
        Some(EmailMode::Off) if patch.email_notifications == Some(true) => errors.push(
            FieldError::new("email_mode", "contradicts email_notifications: true"),
        ),
        Some(EmailMode::Each | EmailMode::Daily) if patch.email_notifications == Some(false) => {
            errors.push(FieldError::new(
                "email_mode",
                "contradicts email_notifications: false",
            ))
        }
        Some(EmailMode::Off) => change.email_notifications = Some(false),
        Some(mode) => {
            change.email_notifications = Some(true);
            change.email_digest = Some(mode == EmailMode::Daily);
        }
        None => {}
    }
    if let Some(hour) = patch.digest_hour {
        match i16::try_from(hour) {
            Ok(hour @ 0..=23) => change.digest_hour = Some(hour),
            _ => errors.push(FieldError::new(
                "digest_hour",
                "must be an hour from 0 to 23",
            )),
        }
    }
    if let Some(zone) = &patch.time_zone {
        let plausible = !zone.is_empty()
            && zone.len() <= TIME_ZONE_MAX
            && zone
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b));
        if plausible {
            change.time_zone = Some(zone.clone());
        } else {
            errors.push(FieldError::new(
                "time_zone",
                "must be an IANA time zone name such as Europe/Paris",
            ));
        }
    }
    change
}

impl UpdateMeRequest {
    /// Validates the change.
    pub fn parse(&self) -> Result<ProfileChange, Vec<FieldError>> {
        let mut errors = Vec::new();
        let display_name = match &self.display_name {
            Some(d) => DisplayName::parse(d).map_err(|e| errors.push(e)).ok(),
            None => None,
        };
        let settings = self
            .settings
            .as_ref()
            .map(|patch| parse_settings(patch, &mut errors))
            .unwrap_or_default();
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(ProfileChange {
            display_name,
            ..settings
        })
    }
}

/// A user as the account owner sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct User {
    /// Opaque id.
    pub id: UserId,
    /// Login name, lower case.
    pub username: String,
    /// Notification address.
    pub email: String,
    /// Name shown to others.
    pub display_name: String,
    /// Whether this account is an operator (the admin routes arrive with the ops issue).
    pub is_admin: bool,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// Whether the owner confirmed `email` by the link sent to it. Until then Convos sends it
    /// nothing but verification emails (`POST /api/v1/me/verification` asks for another).
    #[serde(default)]
    pub email_verified: bool,
    /// Why Convos stopped emailing this account, if it did: `bounced` (the address was
    /// refused for good; verifying it again resumes email) or `complaint` (a notification was
    /// marked as spam, which turned email notifications off). `null` otherwise.
    #[serde(default)]
    pub email_stopped: Option<EmailStopped>,
}

/// Why Convos stopped emailing an account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub enum EmailStopped {
    /// The address was refused for good (a hard bounce); verify it again to resume.
    Bounced,
    /// A notification was reported as spam; email notifications were turned off.
    Complaint,
}

/// How other people see a user: in the directory and on messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UserSummary {
    /// Opaque id.
    pub id: UserId,
    /// Login name.
    pub username: String,
    /// Name shown to others.
    pub display_name: String,
}

/// The caller's preferences (the `settings` field of `/me`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Preferences {
    /// Whether new messages are announced by email.
    pub email_notifications: bool,
    /// `each`, `daily` or `off` (`off` exactly when `email_notifications` is false).
    #[serde(default = "default_email_mode")]
    pub email_mode: EmailMode,
    /// The local hour of the daily digest, 0-23.
    #[serde(default = "default_digest_hour")]
    pub digest_hour: i16,
    /// The IANA time zone of `digest_hour`.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// Until when email is paused (from the page linked in every email), if it is.
    #[serde(default)]
    pub email_paused_until: Option<DateTime<Utc>>,
}

fn default_email_mode() -> EmailMode {
    EmailMode::Each
}

fn default_digest_hour() -> i16 {
    8
}

fn default_time_zone() -> String {
    "UTC".into()
}

impl Preferences {
    /// The defaults of a new account: one email per message, digests at 08:00 UTC if chosen.
    pub fn new(email_notifications: bool) -> Self {
        Self {
            email_notifications,
            email_mode: if email_notifications {
                EmailMode::Each
            } else {
                EmailMode::Off
            },
            digest_hour: default_digest_hour(),
            time_zone: default_time_zone(),
            email_paused_until: None,
        }
    }
}

/// `GET /api/v1/me`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Me {
    /// The account.
    #[serde(flatten)]
    pub user: User,
    /// Unread messages in threads that are not archived.
    pub unread_count: i64,
    /// Unread messages per folder.
    #[serde(default)]
    pub unread_by_folder: FolderCounts,
    /// The caller's preferences.
    pub settings: Preferences,
}

/// `POST /api/v1/sessions` answer. The token is shown this once.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Session {
    /// Bearer token for `Authorization: Bearer <token>`.
    pub token: String,
    /// Who it belongs to.
    pub user: User,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// One of the caller's live sessions, in `GET /api/v1/sessions`. The token itself is never
/// shown again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SessionInfo {
    /// Opaque id, for `DELETE /api/v1/sessions/{id}`.
    pub id: SessionId,
    /// What logged in (its `User-Agent`, at most 100 characters); `null` if it sent none.
    pub client: Option<String>,
    /// When it logged in.
    pub created_at: DateTime<Utc>,
    /// When it was last used (to the minute); `null` if never.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it stops working unless used again (it lasts at most until its absolute expiry).
    pub expires_at: DateTime<Utc>,
    /// Whether this is the session making the request.
    pub current: bool,
}

/// `DELETE /api/v1/sessions` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RevokedSessions {
    /// How many sessions were ended.
    pub revoked: u64,
}
