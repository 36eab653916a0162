//! The one error body every failed API call returns.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `{"error": {"code": "...", "message": "...", "fields": {...}}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The inside of an [`ErrorBody`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// A stable machine-readable code, e.g. `validation_failed`, `not_found`.
    pub code: String,
    /// A human-readable sentence.
    pub message: String,
    /// For validation errors only: each offending field and why it was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<BTreeMap<String, String>>,
}

impl ErrorBody {
    /// An error without field details.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
                fields: None,
            },
        }
    }
}
