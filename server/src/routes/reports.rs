//! Reports (decision 89): a recipient shows the operators a message they received
//! (`POST /api/v1/messages/{id}/report`), and the operators work through them
//! (`/api/v1/admin/reports`, admins only, as the rest of `/api/v1/admin`).

use crate::error::{ApiError, Result};
use crate::extract::{ApiJson, ApiPath, ApiQuery, AuthUser, parse_cursor, parse_id, parse_limit};
use crate::routes::admin::Admin;
use crate::routes::messages::check_action_rate;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use convos_core::ErrorBody;
use convos_core::MessageId;
use convos_core::api::{Page, Report, ReportDetail, ReportRequest, ResolveReportRequest};
use convos_store::reports::{self, Made};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(report_message))
        .routes(routes!(list_reports))
        .routes(routes!(resolve_report))
}

/// Reports a message the caller received to the operators, with a reason and an optional
/// note. The report keeps a copy of the message as it is now (its body, unless an ephemeral
/// message's was already erased), so deleting it afterwards takes nothing from the operators.
/// At most 20 reports a day; reporting a message again answers the first report.
#[utoipa::path(post, path = "/api/v1/messages/{id}/report", tag = "messages",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "Message id")),
    request_body = ReportRequest,
    responses(
        (status = 201, description = "Reported", body = Report),
        (status = 200, description = "Reported before: that report", body = Report),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such message received by the caller", body = ErrorBody),
        (status = 422, description = "`reason` missing or unknown, or `note` too long",
            body = ErrorBody),
        (status = 429, description = "Too many actions this minute, or 20 reports in the last \
            day; see Retry-After", body = ErrorBody)))]
pub async fn report_message(
    State(state): State<AppState>,
    caller: AuthUser,
    ApiPath(id): ApiPath<String>,
    body: ApiJson<ReportRequest>,
) -> Result<(StatusCode, Json<Report>)> {
    let id: MessageId = parse_id(&id)?;
    let new = body.value.parse().map_err(ApiError::Validation)?;
    check_action_rate(&state, caller.user.id).await?;
    match reports::report(&state.db, caller.user.id, id, &new).await? {
        Made::Created(report) => {
            tracing::info!(report.id = %report.id, reason = new.reason.as_str(), "message reported");
            Ok((StatusCode::CREATED, Json(report)))
        }
        Made::Existing(report) => Ok((StatusCode::OK, Json(report))),
        Made::TooMany(wait) => Err(ApiError::RateLimited(wait)),
    }
}

/// Query of `GET /api/v1/admin/reports`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReportQuery {
    /// `open` (the default: oldest first) or `resolved` (most recently answered first).
    state: Option<String>,
    /// 1 to 100, default 25.
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Reports for the operators, each with the copy of the message it was made about and how many
/// open reports name its sender.
#[utoipa::path(get, path = "/api/v1/admin/reports", tag = "admin",
    security(("bearer" = [])), params(ReportQuery),
    responses((status = 200, body = Page<ReportDetail>),
        (status = 404, description = "Not an admin", body = ErrorBody),
        (status = 422, description = "`state`, `limit` or `cursor` is not one", body = ErrorBody)))]
pub async fn list_reports(
    State(state): State<AppState>,
    _: Admin,
    ApiQuery(query): ApiQuery<ReportQuery>,
) -> Result<Json<Page<ReportDetail>>> {
    let open = match query.state.as_deref() {
        None | Some("open") => true,
        Some("resolved") => false,
        Some(_) => return Err(ApiError::field("state", "must be open or resolved")),
    };
    let limit = parse_limit(query.limit.as_deref(), 25, 100)?;
    let cursor = parse_cursor(query.cursor.as_deref())?;
    Ok(Json(
        reports::for_operators(&state.db, open, cursor, limit).await?,
    ))
}

/// Answers a report: `dismissed` or `actioned` (suspending the sender is its own action,
/// `POST /api/v1/admin/users/{username}/suspend`), with a note for the record. It leaves the
/// open queue; answering again replaces the answer. Recorded in the audit log.
#[utoipa::path(post, path = "/api/v1/admin/reports/{id}/resolve", tag = "admin",
    security(("bearer" = [])), params(("id" = String, Path, description = "Report id")),
    request_body = ResolveReportRequest,
    responses((status = 200, body = ReportDetail),
        (status = 404, description = "Not an admin, or no such report", body = ErrorBody),
        (status = 422, description = "`resolution` missing or unknown, or `note` too long",
            body = ErrorBody)))]
pub async fn resolve_report(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
    body: ApiJson<ResolveReportRequest>,
) -> Result<Json<ReportDetail>> {
    let id: Uuid = parse_id(&id)?;
    let (resolution, note) = body.value.parse().map_err(ApiError::Validation)?;
    let detail = reports::resolve(&state.db, admin.0.user.id, id, resolution, &note).await?;
    tracing::info!(report.id = %id, resolution = resolution.as_str(), "report resolved");
    Ok(Json(detail))
}
