//! Reports: a recipient shows operators a message they received (decision 89), and the
//! operators' answer.

use crate::domain::FieldError;
use crate::ids::{MessageId, ThreadId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::required;
#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// Longest note a reporter or an operator adds, in characters.
pub const NOTE_MAX: usize = 500;

/// Why a message is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub enum ReportReason {
    /// Unwanted bulk or commercial messages.
    Spam,
    /// Abuse, threats, harassment.
    Harassment,
    /// Anything else; the note says what.
    Other,
}

impl ReportReason {
    /// Every reason, as on the wire.
    pub const ALL: [ReportReason; 3] = [Self::Spam, Self::Harassment, Self::Other];

    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Spam => "spam",
            Self::Harassment => "harassment",
            Self::Other => "other",
        }
    }

    /// Reads a name on the wire.
    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == raw)
    }
}

/// `POST /api/v1/messages/{id}/report`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    /// `spam`, `harassment` or `other`.
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = ReportReason))]
    pub reason: Option<String>,
    /// What the operators should know, up to 500 characters (optional).
    #[cfg_attr(feature = "openapi", schema(max_length = 500))]
    pub note: Option<String>,
}

/// A validated report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewReport {
    /// Why.
    pub reason: ReportReason,
    /// The reporter's note, trimmed (may be empty).
    pub note: String,
}

impl ReportRequest {
    /// Validates the reason and the note.
    pub fn parse(&self) -> Result<NewReport, Vec<FieldError>> {
        let mut errors = Vec::new();
        let reason = required("reason", &self.reason, &mut errors).and_then(|r| {
            let reason = ReportReason::parse(r);
            if reason.is_none() {
                errors.push(FieldError::new(
                    "reason",
                    "must be one of spam, harassment, other",
                ));
            }
            reason
        });
        let note = parse_note("note", self.note.as_deref(), &mut errors);
        match reason {
            Some(reason) if errors.is_empty() => Ok(NewReport { reason, note }),
            _ => Err(errors),
        }
    }
}

/// A note: its lines kept (any line break read as `\n`), tabs too, and nothing that hides or
/// reorders text, since operators read it in their terminals as written.
fn parse_note(field: &'static str, raw: Option<&str>, errors: &mut Vec<FieldError>) -> String {
    let note = raw
        .unwrap_or_default()
        .replace("\r\n", "\n")
        .replace('\r', "\n")
        .trim()
        .to_owned();
    let control = |c: char| {
        (c.is_control() && !matches!(c, '\n' | '\t')) || matches!(c, '\u{2028}' | '\u{2029}')
    };
    if note.chars().count() > NOTE_MAX {
        errors.push(FieldError::new(
            field,
            format!("must be at most {NOTE_MAX} characters"),
        ));
    } else if note.chars().any(control) {
        errors.push(FieldError::new(
            field,
            "must not contain control characters but line breaks and tabs",
        ));
    } else if let Err(e) = crate::domain::reject_invisible(field, &note) {
        errors.push(e);
    }
    note
}

/// A report as its reporter sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Report {
    /// The report.
    pub id: Uuid,
    /// The message reported.
    pub message_id: MessageId,
    /// Why.
    pub reason: ReportReason,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Whether an operator has answered it.
    pub resolved: bool,
}

/// What an operator made of a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub enum Resolution {
    /// Nothing to act on.
    Dismissed,
    /// Acted on (a suspension, a warning: the note says).
    Actioned,
}

impl Resolution {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dismissed => "dismissed",
            Self::Actioned => "actioned",
        }
    }

    /// Reads a name on the wire.
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Dismissed, Self::Actioned]
            .into_iter()
            .find(|r| r.as_str() == raw)
    }
}

/// `POST /api/v1/admin/reports/{id}/resolve`.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ResolveReportRequest {
    /// `dismissed` or `actioned`.
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = Resolution))]
    pub resolution: Option<String>,
    /// For the record, up to 500 characters (optional).
    #[cfg_attr(feature = "openapi", schema(max_length = 500))]
    pub note: Option<String>,
}

impl ResolveReportRequest {
    /// Validates the resolution and the note.
    pub fn parse(&self) -> Result<(Resolution, String), Vec<FieldError>> {
        let mut errors = Vec::new();
        let resolution = required("resolution", &self.resolution, &mut errors).and_then(|r| {
            let resolution = Resolution::parse(r);
            if resolution.is_none() {
                errors.push(FieldError::new(
                    "resolution",
                    "must be dismissed or actioned",
                ));
            }
            resolution
        });
        let note = parse_note("note", self.note.as_deref(), &mut errors);
        match resolution {
            Some(resolution) if errors.is_empty() => Ok((resolution, note)),
            _ => Err(errors),
        }
    }
}

/// A report as the operators see it: the copy of the message taken when it was made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ReportDetail {
    /// The report.
    pub id: Uuid,
    /// Who reported (their username when they reported).
    pub reporter: String,
    /// Who sent the message (their username when it was reported).
    pub reported: String,
    /// Whether the sender's account is suspended now (`false` once it is deleted).
    pub reported_suspended: bool,
    /// Open reports naming the sender, this one included, counted up to 1,000.
    pub reported_open_reports: i64,
    /// The message.
    pub message_id: MessageId,
    /// Its thread.
    pub thread_id: ThreadId,
    /// Why.
    pub reason: ReportReason,
    /// The reporter's note.
    pub note: String,
    /// The message's subject.
    pub subject: String,
    /// Its body when reported; `null` when it had already been erased (expired or read once).
    pub body: Option<String>,
    /// When it was sent.
    pub sent_at: DateTime<Utc>,
    /// When it was reported.
    pub created_at: DateTime<Utc>,
    /// When an operator first answered it; `null` while open.
    pub resolved_at: Option<DateTime<Utc>>,
    /// Which operator.
    pub resolved_by: Option<String>,
    /// What they made of it.
    pub resolution: Option<Resolution>,
    /// Their note.
    pub resolution_note: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_needs_a_known_reason_and_a_short_note() {
        let parsed = ReportRequest {
            reason: Some("harassment".into()),
            note: Some("  threats, see the second line \n".into()),
        }
        .parse()
        .unwrap();
        assert_eq!(parsed.reason, ReportReason::Harassment);
        assert_eq!(parsed.note, "threats, see the second line");

        let errors = ReportRequest {
            reason: Some("rude".into()),
            note: Some("x".repeat(501)),
        }
        .parse()
        .unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["reason", "note"]);
        assert_eq!(
            ReportRequest::default().parse().unwrap_err()[0].reason,
            "is required"
        );
    }

    #[test]
    fn a_resolution_is_dismissed_or_actioned() {
        let ok = ResolveReportRequest {
            resolution: Some("actioned".into()),
            note: None,
        };
        assert_eq!(ok.parse().unwrap(), (Resolution::Actioned, String::new()));
        let bad = ResolveReportRequest {
            resolution: Some("ignored".into()),
            note: Some("\u{7}".into()),
        };
        assert_eq!(bad.parse().unwrap_err().len(), 2);
    }

    #[test]
    fn a_note_keeps_its_lines_and_hides_nothing() {
        let note = |text: &str| {
            ReportRequest {
                reason: Some("other".into()),
                note: Some(text.into()),
            }
            .parse()
        };
        assert_eq!(
            note("first\r\nsecond\rthird").unwrap().note,
            "first\nsecond\nthird"
        );
        assert_eq!(note("a\tb").unwrap().note, "a\tb");
        for hiding in [
            "evil\u{202e}gpj",
            "pay\u{200b}pal",
            "x\u{2066}y",
            "a\u{2028}b",
            "\u{feff}x",
        ] {
            assert!(note(hiding).is_err(), "{hiding:?}");
        }
    }
}
