//! Request and response bodies of `/api/v1`.
//!
//! Requests arrive as loosely typed structs (every field optional) so that a missing field is
//! reported as a 422 naming it; each has a `parse` that turns it into a validated command or the
//! list of fields that were refused.

use crate::domain::{
    Body, DisplayName, EmailAddress, ExpiresIn, FieldError, Password, Subject, Username,
};
use crate::ids::{MessageId, SessionId, ThreadId, UserId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

fn required<'a>(
    field: &'static str,
    value: &'a Option<String>,
    errors: &mut Vec<FieldError>,
) -> Option<&'a str> {
    if value.is_none() {
        errors.push(FieldError::new(field, "is required"));
    }
    value.as_deref()
}

fn collect<T>(result: Result<T, FieldError>, errors: &mut Vec<FieldError>) -> Option<T> {
    result.map_err(|e| errors.push(e)).ok()
}

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

/// `POST /api/v1/messages`: starts a thread.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreateMessageRequest {
    /// The recipient's username.
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = String,
        pattern = "^[A-Za-z0-9_.-]{3,32}$"))]
    pub recipient: Option<String>,
    /// 1-140 characters, one line of visible text (no control characters, line separators or
    /// characters that hide or reorder text), not only spaces.
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = String,
        min_length = 1, max_length = 140))]
    pub subject: Option<String>,
    /// 1-64,000 characters, not only spaces.
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = String,
        min_length = 1, max_length = 64000))]
    pub body: Option<String>,
    /// Seconds until the message disappears for both sides (10 to 2,592,000).
    #[cfg_attr(feature = "openapi", schema(minimum = 10, maximum = 2592000))]
    pub expires_in: Option<i64>,
    /// The recipient can open the body once.
    pub read_once: Option<bool>,
}

/// `POST /api/v1/threads/{id}/messages`: a reply. Any `subject` sent is ignored.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct CreateReplyRequest {
    /// 1-64,000 characters, not only spaces.
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = String,
        min_length = 1, max_length = 64000))]
    pub body: Option<String>,
    /// Seconds until the message disappears for both sides (10 to 2,592,000).
    #[cfg_attr(feature = "openapi", schema(minimum = 10, maximum = 2592000))]
    pub expires_in: Option<i64>,
    /// The recipient can open the body once.
    pub read_once: Option<bool>,
}

/// The validated content of a message, new thread or reply.
#[derive(Clone, Debug)]
pub struct NewContent {
    /// The text.
    pub body: Body,
    /// The lifetime of an ephemeral message.
    pub expires_in: Option<ExpiresIn>,
    /// Whether the recipient can read it once only.
    pub read_once: bool,
}

/// A validated request to start a thread.
#[derive(Clone, Debug)]
pub struct NewThread {
    /// Who it goes to.
    pub recipient: Username,
    /// The thread's subject.
    pub subject: Subject,
    /// The first message.
    pub content: NewContent,
}

fn parse_content(
    body: &Option<String>,
    expires_in: Option<i64>,
    read_once: Option<bool>,
    errors: &mut Vec<FieldError>,
) -> Option<NewContent> {
    let body = required("body", body, errors).and_then(|b| collect(Body::parse(b), errors));
    let expires_in = match expires_in {
        Some(s) => Some(collect(ExpiresIn::parse(s), errors)?),
        None => None,
    };
    Some(NewContent {
        body: body?,
        expires_in,
        read_once: read_once.unwrap_or(false),
    })
}

impl CreateMessageRequest {
    /// Validates every field, reporting all refusals at once.
    pub fn parse(&self) -> Result<NewThread, Vec<FieldError>> {
        let mut errors = Vec::new();
        let recipient = required("recipient", &self.recipient, &mut errors)
            .and_then(|r| collect(Username::parse_field("recipient", r), &mut errors));
        let subject = required("subject", &self.subject, &mut errors)
            .and_then(|s| collect(Subject::parse(s), &mut errors));
        let content = parse_content(&self.body, self.expires_in, self.read_once, &mut errors);
        match (recipient, subject, content) {
            (Some(recipient), Some(subject), Some(content)) if errors.is_empty() => Ok(NewThread {
                recipient,
                subject,
                content,
            }),
            _ => Err(errors),
        }
    }
}

impl CreateReplyRequest {
    /// Validates every field, reporting all refusals at once.
    pub fn parse(&self) -> Result<NewContent, Vec<FieldError>> {
        let mut errors = Vec::new();
        match parse_content(&self.body, self.expires_in, self.read_once, &mut errors) {
            Some(content) if errors.is_empty() => Ok(content),
            _ => Err(errors),
        }
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

/// A mailbox folder: the `folder` query parameter of `GET /api/v1/threads`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub enum Folder {
    /// Threads where the caller received a visible message and has not archived.
    #[default]
    Inbox,
    /// Threads where the caller sent a visible message.
    Sent,
    /// Threads the caller archived.
    Archive,
    /// Every thread the caller can see.
    All,
}

impl Folder {
    /// Every folder, in the order a client lists them.
    pub const ALL: [Folder; 4] = [Folder::Inbox, Folder::Sent, Folder::Archive, Folder::All];

    /// The name on the wire, as in `?folder=sent`.
    pub fn as_str(self) -> &'static str {
        match self {
            Folder::Inbox => "inbox",
            Folder::Sent => "sent",
            Folder::Archive => "archive",
            Folder::All => "all",
        }
    }
}

impl fmt::Display for Folder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Folder {
    type Err = FieldError;

    /// Parses the `folder` query parameter.
    fn from_str(raw: &str) -> Result<Self, FieldError> {
        Self::ALL
            .into_iter()
            .find(|folder| folder.as_str() == raw)
            .ok_or_else(|| FieldError::new("folder", "must be one of inbox, sent, archive, all"))
    }
}

/// Unread messages per folder.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct FolderCounts {
    /// In the inbox.
    pub inbox: i64,
    /// In threads the caller sent to.
    pub sent: i64,
    /// In archived threads.
    pub archive: i64,
    /// Everywhere.
    pub all: i64,
}

impl FolderCounts {
    /// The unread count of `folder`.
    pub fn get(&self, folder: Folder) -> i64 {
        match folder {
            Folder::Inbox => self.inbox,
            Folder::Sent => self.sent,
            Folder::Archive => self.archive,
            Folder::All => self.all,
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

/// One message, from the caller's point of view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Message {
    /// Opaque id.
    pub id: MessageId,
    /// The thread it belongs to.
    pub thread_id: ThreadId,
    /// The thread's subject (messages have none of their own).
    pub subject: String,
    /// The text; `null` for read-once messages outside the one read that consumes them.
    pub body: Option<String>,
    /// Who wrote it.
    pub sender: UserSummary,
    /// Who it went to.
    pub recipient: UserSummary,
    /// The caller's own read flag (a sender's own message starts read).
    pub is_read: bool,
    /// When it was sent.
    pub created_at: DateTime<Utc>,
    /// The message it answers.
    pub in_reply_to: Option<MessageId>,
    /// When it disappears, for ephemeral messages.
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether the recipient can read the body once only.
    pub read_once: bool,
}

/// The newest message of a thread the caller can see, in a thread listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct LastMessage {
    /// Its id.
    pub id: MessageId,
    /// Who wrote it.
    pub sender: UserSummary,
    /// The first 100 characters on one line; `null` for read-once messages.
    pub body_excerpt: Option<String>,
    /// When it was sent.
    pub created_at: DateTime<Utc>,
    /// When it disappears, for an ephemeral message (then the thread's newest visible message
    /// changes, or the thread leaves the listing). Absent from servers that predate it.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// A thread, from the caller's point of view.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Thread {
    /// Opaque id.
    pub id: ThreadId,
    /// The subject every message in it shares.
    pub subject: String,
    /// Both people in the conversation.
    pub participants: Vec<UserSummary>,
    /// Messages the caller can see.
    pub message_count: i64,
    /// Of those, the ones the caller has not read.
    pub unread_count: i64,
    /// The newest message the caller can see.
    pub last_message: Option<LastMessage>,
    /// Time of the last activity in the thread.
    pub last_message_at: DateTime<Utc>,
    /// Archived by the caller.
    pub archived: bool,
    /// Muted by the caller.
    pub muted: bool,
}

/// One search result: a message the caller can see, with the matching words marked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct SearchHit {
    /// The message.
    pub message_id: MessageId,
    /// Its thread.
    pub thread_id: ThreadId,
    /// The thread's subject.
    pub subject: String,
    /// Who wrote it.
    pub sender: UserSummary,
    /// A passage with the matches between `«` and `»`; `null` for read-once messages (only
    /// their subject is searched).
    pub excerpt: Option<String>,
    /// When it was sent.
    pub created_at: DateTime<Utc>,
    /// Relevance (higher first).
    pub rank: f32,
}

/// A page of a keyset-paginated listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Page<T> {
    /// This page's items.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A plain list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Items<T> {
    /// The items.
    pub items: Vec<T>,
}

/// `GET /healthz` and `GET /readyz`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: String,
    /// Per dependency: `ok` or what failed.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub checks: std::collections::BTreeMap<String, String>,
}

/// A thread-wide action on the caller's view of a thread: `POST /api/v1/threads/{id}/{action}`,
/// answered with the thread as it now is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ThreadAction {
    /// Marks every message the caller can see in it as read.
    Read,
    /// Moves it out of the inbox until a new message arrives.
    Archive,
    /// Brings it back to the inbox.
    Unarchive,
    /// Stops its notifications.
    Mute,
    /// Resumes its notifications.
    Unmute,
}

impl ThreadAction {
    /// Every thread action.
    pub const ALL: [ThreadAction; 5] = [
        ThreadAction::Read,
        ThreadAction::Archive,
        ThreadAction::Unarchive,
        ThreadAction::Mute,
        ThreadAction::Unmute,
    ];

    /// The last word of its path, as in `/api/v1/threads/{id}/archive`.
    pub fn as_str(self) -> &'static str {
        match self {
            ThreadAction::Read => "read",
            ThreadAction::Archive => "archive",
            ThreadAction::Unarchive => "unarchive",
            ThreadAction::Mute => "mute",
            ThreadAction::Unmute => "unmute",
        }
    }

    /// The path of the request acting on `thread`.
    pub fn path(self, thread: ThreadId) -> String {
        format!("/api/v1/threads/{thread}/{}", self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_actions_name_their_path() {
        let thread = ThreadId::generate();
        let paths: Vec<String> = ThreadAction::ALL.iter().map(|a| a.path(thread)).collect();
        assert_eq!(paths[1], format!("/api/v1/threads/{thread}/archive"));
        for (action, path) in ThreadAction::ALL.iter().zip(&paths) {
            assert!(path.ends_with(&format!("/{}", action.as_str())));
        }
    }

    #[test]
    fn a_folder_parses_from_its_wire_name_and_serialises_back_to_it() {
        for folder in Folder::ALL {
            assert_eq!(folder.as_str().parse::<Folder>().unwrap(), folder);
            assert_eq!(serde_json::to_value(folder).unwrap(), folder.as_str());
        }
        assert_eq!("Inbox".parse::<Folder>().unwrap_err().field, "folder");
        assert_eq!(Folder::default(), Folder::Inbox);
    }

    #[test]
    fn a_message_request_reports_every_bad_field() {
        let req = CreateMessageRequest {
            recipient: None,
            subject: Some("x".repeat(141)),
            body: Some(String::new()),
            expires_in: Some(5),
            read_once: None,
        };
        let fields: Vec<_> = req
            .parse()
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["recipient", "subject", "body", "expires_in"]);
    }

    #[test]
    fn create_user_debug_hides_the_password() {
        let req = CreateUserRequest {
            password: Some("hunter2hunter2".into()),
            ..Default::default()
        };
        assert!(!format!("{req:?}").contains("hunter2"));
    }

    #[test]
    fn validated_changes_hide_their_passwords_too() {
        let password = ChangePasswordRequest {
            current: Some("old-hunter2".into()),
            new: Some("new-hunter2".into()),
        }
        .parse()
        .unwrap();
        assert!(!format!("{password:?}").contains("hunter2"));
        let email = ChangeEmailRequest {
            email: Some("bob@new.example".into()),
            password: Some("hunter2hunter2".into()),
        }
        .parse()
        .unwrap();
        let shown = format!("{email:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("bob@new.example"),
            "{shown}"
        );
    }
}

/// One email notification of a message. The sender learns only `status`; the recipient and
/// admins also get `detail`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Delivery {
    /// Who the notification was for.
    pub recipient: UserSummary,
    /// Always `email` for now.
    pub channel: String,
    /// `pending` (not decided yet), `sent`, or `not_sent` (skipped or failed, for any reason).
    pub status: String,
    /// When the status last changed.
    pub updated_at: DateTime<Utc>,
    /// The full record: absent for the sender, present for the recipient and for admins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<DeliveryDetail>,
}

/// What the recipient and admins see of a delivery besides its status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DeliveryDetail {
    /// `queued`, `sent`, `skipped` or `failed`.
    pub state: String,
    /// For `skipped`, why (`unverified`, `bounced`, `sender_unverified`, `deleted`, `expired`,
    /// `already_read`, `email_off`, `paused`, `muted`, `digest`, `daily_cap`); for `failed` (and
    /// `queued` after a transient error), the kind of failure (`rejected`, `temporary_failure`,
    /// `invalid_address`).
    pub reason: Option<String>,
    /// For `failed` (and `queued` after a transient error): the mail server's words.
    pub error: Option<String>,
}
