//! Request and response bodies of `/api/v1`.
//!
//! Requests arrive as loosely typed structs (every field optional) so that a missing field is
//! reported as a 422 naming it; each has a `parse` that turns it into a validated command or the
//! list of fields that were refused.

mod accounts;
mod messages;
mod reports;

pub use accounts::*;
pub use messages::*;
pub use reports::*;

use crate::domain::FieldError;
use serde::{Deserialize, Serialize};

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
    /// Per dependency: `ok`, `timeout` or `error` (what failed goes to the server's log).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub checks: std::collections::BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ThreadId;

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
