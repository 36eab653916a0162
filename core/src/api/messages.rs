//! Messages and threads: sends and replies, folders, pages, search hits, thread actions and deliveries.

use crate::domain::{Body, ExpiresIn, FieldError, Subject, Username};
use crate::ids::{MessageId, ThreadId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

use super::{UserSummary, collect, required};
#[cfg(feature = "openapi")]
use utoipa::ToSchema;

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
