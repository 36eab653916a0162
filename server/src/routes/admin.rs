//! Operator routes under `/api/v1/admin`: the queue board, jobs, retry and discard (one or by
//! filter), pause and resume, and the audit log. Admins only: everyone else gets 404, as if the
//! routes did not exist. Every action is audited.

use crate::error::{ApiError, Result};
use crate::extract::{ApiJson, ApiPath, ApiQuery, AuthUser, parse_cursor, parse_id, parse_limit};
use crate::state::AppState;
use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use convos_core::api::{Items, Page};
use convos_core::jobs::JobKind;
use convos_core::ops::{Affected, AuditEntry, Board, JobDetail, JobSummary, QueueStats};
use convos_core::{ErrorBody, Username};
use convos_store::ops::{self, JobFilter};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub(super) fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_board))
        .routes(routes!(list_jobs))
        .routes(routes!(get_job))
        .routes(routes!(retry_job))
        .routes(routes!(discard_job))
        .routes(routes!(retry_jobs))
        .routes(routes!(discard_jobs))
        .routes(routes!(pause_queue))
        .routes(routes!(resume_queue))
        .routes(routes!(list_audit))
        .routes(routes!(suspend_user))
        .routes(routes!(unsuspend_user))
}

/// What suspending an account, or lifting its suspension, did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SuspensionDone {
    /// The account.
    pub username: String,
    /// Whether it is suspended now.
    pub suspended: bool,
    /// Sessions the suspension ended.
    pub sessions_ended: usize,
}

/// Suspends an account (decision 88): it cannot log in, its sessions end at once (event
/// streams included), and its reply addresses stop working; nothing it wrote is removed.
/// Recorded in the audit log.
#[utoipa::path(post, path = "/api/v1/admin/users/{username}/suspend", tag = "admin",
    security(("bearer" = [])), params(("username" = String, Path, description = "Its username")),
    responses((status = 200, body = SuspensionDone),
        (status = 404, description = "Not an admin, or nobody has the username", body = ErrorBody),
        (status = 422, description = "Not a username, or the caller's own", body = ErrorBody)))]
pub async fn suspend_user(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(username): ApiPath<String>,
) -> Result<Json<SuspensionDone>> {
    set_suspended(&state, &admin, &username, true).await
}

/// Lifts an account's suspension: it can log in again. Recorded in the audit log.
#[utoipa::path(post, path = "/api/v1/admin/users/{username}/unsuspend", tag = "admin",
    security(("bearer" = [])), params(("username" = String, Path, description = "Its username")),
    responses((status = 200, body = SuspensionDone),
        (status = 404, description = "Not an admin, or nobody has the username", body = ErrorBody),
        (status = 422, description = "Not a username", body = ErrorBody)))]
pub async fn unsuspend_user(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(username): ApiPath<String>,
) -> Result<Json<SuspensionDone>> {
    set_suspended(&state, &admin, &username, false).await
}

async fn set_suspended(
    state: &AppState,
    admin: &Admin,
    username: &str,
    on: bool,
) -> Result<Json<SuspensionDone>> {
    let name = convos_core::Username::parse(username)
        .map_err(|e| ApiError::field("username", e.reason))?;
    if on && name.as_str() == admin.0.user.username {
        return Err(ApiError::field("username", "is your own account"));
    }
    let done = convos_store::users::suspend(&state.db, admin.0.user.id, &name, on).await?;
    state.hub.end_sessions(&done.ended).await;
    tracing::info!(user.id = %done.user, suspended = on, "account suspension changed");
    Ok(Json(SuspensionDone {
        username: name.as_str().to_owned(),
        suspended: on,
        sessions_ended: done.ended.len(),
    }))
}

/// An authenticated admin; anyone else is answered 404.
pub struct Admin(pub AuthUser);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        if !user.user.is_admin {
            return Err(ApiError::NotFound);
        }
        Ok(Self(user))
    }
}

fn queue(raw: &str) -> Result<JobKind> {
    JobKind::parse(raw).ok_or(ApiError::NotFound)
}

fn parse_queue_field(raw: Option<&str>) -> Result<Option<JobKind>> {
    raw.map(|q| {
        JobKind::parse(q).ok_or_else(|| {
            let names: Vec<&str> = JobKind::ALL.iter().map(|k| k.as_str()).collect();
            ApiError::field("queue", format!("must be one of {}", names.join(", ")))
        })
    })
    .transpose()
}

fn parse_state(raw: Option<&str>) -> Result<Option<String>> {
    raw.map(|s| {
        if ops::STATES.contains(&s) {
            Ok(s.to_owned())
        } else {
            Err(ApiError::field(
                "state",
                format!("must be one of {}", ops::STATES.join(", ")),
            ))
        }
    })
    .transpose()
}

/// The queue board: per queue the counts by state, failures in the last hour and day, the
/// oldest pending job's age, whether it is paused; and the workers seen in the last minute.
#[utoipa::path(get, path = "/api/v1/admin/queues", tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, body = Board), (status = 404, description = "Not an admin", body = ErrorBody)))]
pub async fn get_board(State(state): State<AppState>, _: Admin) -> Result<Json<Board>> {
    Ok(Json(ops::board(&state.db).await?))
}

/// Query of `GET /api/v1/admin/jobs`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    /// `deliver`, `notify_email`, `purge_expired` or `verify_email`.
    queue: Option<String>,
    /// A job state, e.g. `dead`.
    state: Option<String>,
    /// Text in the job's key, payload or last error, matched literally; at most 200 characters.
    q: Option<String>,
    /// Every job about one message (its events and its email).
    message_id: Option<String>,
    /// Every job about one user (by username): events and emails to them.
    user: Option<String>,
    /// 1 to 100, default 25.
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Longest `q` a job filter takes, in characters.
const MAX_FILTER_CHARS: usize = 200;

/// `q` of a job filter: text matched literally (`%` and `_` are plain characters), without
/// NUL (PostgreSQL text cannot hold it), at most [`MAX_FILTER_CHARS`]; empty means no filter.
fn parse_text_filter(q: Option<&str>) -> Result<Option<String>> {
    match q {
        None | Some("") => Ok(None),
        Some(q) if q.contains('\0') || q.chars().count() > MAX_FILTER_CHARS => {
            Err(ApiError::field(
                "q",
                format!("must be at most {MAX_FILTER_CHARS} characters without NUL"),
            ))
        }
        Some(q) => Ok(Some(q.to_owned())),
    }
}

async fn filter_from(
    state: &AppState,
    queue: Option<&str>,
    job_state: Option<&str>,
    q: Option<&str>,
    message_id: Option<&str>,
    user: Option<&str>,
) -> Result<JobFilter> {
    let message_id = message_id
        .map(|m| {
            m.parse::<Uuid>()
                .map_err(|_| ApiError::field("message_id", "is not a message id"))
        })
        .transpose()?;
    let user = match user {
        Some(name) => {
            let username =
                Username::parse_field("user", name).map_err(|e| ApiError::Validation(vec![e]))?;
            let found = convos_store::users::find_by_username(&state.db, &username)
                .await?
                .ok_or_else(|| ApiError::field("user", "no user has this username"))?;
            Some(found.id.as_uuid())
        }
        None => None,
    };
    Ok(JobFilter {
        kind: parse_queue_field(queue)?,
        state: parse_state(job_state)?,
        q: parse_text_filter(q)?,
        message_id,
        user,
    })
}

/// A page of jobs, newest first, filtered by queue, state, text, message or user. A page reads
/// at most 5,000 jobs (decision 51): a filter matching few can answer a short or empty page with
/// a cursor to continue.
#[utoipa::path(get, path = "/api/v1/admin/jobs", tag = "admin",
    security(("bearer" = [])), params(JobQuery),
    responses((status = 200, body = Page<JobSummary>), (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody)))]
pub async fn list_jobs(
    State(state): State<AppState>,
    _: Admin,
    ApiQuery(query): ApiQuery<JobQuery>,
) -> Result<Json<Page<JobSummary>>> {
    let filter = filter_from(
        &state,
        query.queue.as_deref(),
        query.state.as_deref(),
        query.q.as_deref(),
        query.message_id.as_deref(),
        query.user.as_deref(),
    )
    .await?;
    let limit = parse_limit(query.limit.as_deref(), 25, 100)?;
    let cursor = parse_cursor(query.cursor.as_deref())?;
    let (items, next_cursor) = ops::list_jobs(&state.db, &filter, limit, cursor).await?;
    Ok(Json(Page { items, next_cursor }))
}

/// One job: the ledger row, its payload and every attempt with its error and duration.
#[utoipa::path(get, path = "/api/v1/admin/jobs/{id}", tag = "admin",
    security(("bearer" = [])), params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = JobDetail), (status = 404, body = ErrorBody)))]
pub async fn get_job(
    State(state): State<AppState>,
    _: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<JobDetail>> {
    let id: Uuid = parse_id(&id)?;
    Ok(Json(ops::job(&state.db, id).await?))
}

/// Retry or discard: what the job actions do.
#[derive(Clone, Copy)]
enum JobAction {
    Retry,
    Discard,
}

/// How long one request of a bulk action goes on taking windows of jobs (decision 67); past
/// it, the answer carries a cursor to continue from.
const BULK_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);

/// Applies `action` to the jobs `filter` (and, for one job, `id`) selects, from `after` on,
/// a window at a time until they are all done or [`BULK_BUDGET`] is spent, and answers how
/// many jobs it touched and where to continue. A window that fails after others were done
/// ends the request with what they did and a cursor at the failed window (the same request
/// again meets it, or goes on). The walk runs as a task of its own, so that a client that
/// hangs up does not cut it between a window's commit and its audit record.
async fn act_on_jobs(
    state: &AppState,
    admin: &Admin,
    action: JobAction,
    filter: &JobFilter,
    id: Option<Uuid>,
    target: &str,
    after: Option<convos_store::cursor::Cursor>,
) -> Result<Json<Affected>> {
    let walk = walk_jobs(
        state.clone(),
        admin.0.user.id.as_uuid(),
        action,
        filter.clone(),
        id,
        target.to_owned(),
        after,
    );
    match tokio::spawn(walk).await {
        Ok(answer) => answer.map(Json),
        Err(e) => Err(ApiError::Internal(anyhow::anyhow!(
            "a bulk action's task failed: {e}"
        ))),
    }
}

/// The walk of [`act_on_jobs`], audited as done on `target` by `actor`.
async fn walk_jobs(
    state: AppState,
    actor: Uuid,
    action: JobAction,
    filter: JobFilter,
    id: Option<Uuid>,
    target: String,
    mut after: Option<convos_store::cursor::Cursor>,
) -> Result<Affected> {
    let name = match action {
        JobAction::Retry => "retry",
        JobAction::Discard => "discard",
    };
    let started = std::time::Instant::now();
    let (mut affected, mut stepped) = (0, false);
    loop {
        let step = match action {
            JobAction::Retry => ops::retry(&state.db, &filter, id, after)
                .await
                .map(|written| state.wake.committed(written)),
            JobAction::Discard => ops::discard(&state.db, &filter, id, after).await,
        };
        match step {
            Ok(step) => {
                (affected, stepped) = (affected + step.affected, true);
                after = step.next;
                if after.is_none() || started.elapsed() >= BULK_BUDGET {
                    break;
                }
            }
            Err(e) if !stepped => return Err(e.into()),
            Err(e) => {
                tracing::warn!(error = %e, affected, "a bulk action stopped at a failed window");
                break;
            }
        }
    }
    ops::audit(&state.db, actor, name, &target, affected).await?;
    Ok(Affected {
        affected,
        next_cursor: after.map(|c| c.encode()),
    })
}

async fn act_on_job(
    state: &AppState,
    admin: &Admin,
    action: JobAction,
    id: &str,
) -> Result<Json<Affected>> {
    let id: Uuid = parse_id(id)?;
    ops::job(&state.db, id).await?;
    act_on_jobs(
        state,
        admin,
        action,
        &JobFilter::default(),
        Some(id),
        &format!("job {id}"),
        None,
    )
    .await
}

/// Runs a dead job (or one waiting for its retry) again now.
#[utoipa::path(post, path = "/api/v1/admin/jobs/{id}/retry", tag = "admin",
    security(("bearer" = [])), params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = Affected), (status = 404, body = ErrorBody)))]
pub async fn retry_job(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Affected>> {
    act_on_job(&state, &admin, JobAction::Retry, &id).await
}

/// Discards a dead job: it leaves the dead count and never runs.
#[utoipa::path(post, path = "/api/v1/admin/jobs/{id}/discard", tag = "admin",
    security(("bearer" = [])), params(("id" = String, Path, description = "Job id")),
    responses((status = 200, body = Affected), (status = 404, body = ErrorBody)))]
pub async fn discard_job(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Affected>> {
    act_on_job(&state, &admin, JobAction::Discard, &id).await
}

/// A filter for bulk actions. Unknown fields are refused, so a filter is never silently wider
/// than meant.
#[derive(Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkFilter {
    /// The queue; required.
    pub queue: Option<String>,
    /// The state (`dead` for retry or discard; `retry` to retry now).
    pub state: Option<String>,
    /// Text in key, payload or last error.
    pub q: Option<String>,
    /// Where to continue: the `next_cursor` of the last answer to the same filter.
    pub cursor: Option<String>,
}

async fn bulk_filter(state: &AppState, body: &BulkFilter) -> Result<JobFilter> {
    if body.queue.is_none() {
        return Err(ApiError::field("queue", "is required for a bulk action"));
    }
    filter_from(
        state,
        body.queue.as_deref(),
        body.state.as_deref(),
        body.q.as_deref(),
        None,
        None,
    )
    .await
}

/// Retries every dead (or waiting) job matching the filter, e.g. every dead `notify_email` job.
#[utoipa::path(post, path = "/api/v1/admin/jobs/retry", tag = "admin",
    security(("bearer" = [])), request_body = BulkFilter,
    responses((status = 200, body = Affected), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn retry_jobs(
    State(state): State<AppState>,
    admin: Admin,
    body: ApiJson<BulkFilter>,
) -> Result<Json<Affected>> {
    let filter = bulk_filter(&state, &body.value).await?;
    let target = serde_json::to_string(&body.value).unwrap_or_default();
    let after = parse_cursor(body.value.cursor.as_deref())?;
    act_on_jobs(
        &state,
        &admin,
        JobAction::Retry,
        &filter,
        None,
        &target,
        after,
    )
    .await
}

/// Discards every dead job matching the filter.
#[utoipa::path(post, path = "/api/v1/admin/jobs/discard", tag = "admin",
    security(("bearer" = [])), request_body = BulkFilter,
    responses((status = 200, body = Affected), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn discard_jobs(
    State(state): State<AppState>,
    admin: Admin,
    body: ApiJson<BulkFilter>,
) -> Result<Json<Affected>> {
    let filter = bulk_filter(&state, &body.value).await?;
    let target = serde_json::to_string(&body.value).unwrap_or_default();
    let after = parse_cursor(body.value.cursor.as_deref())?;
    act_on_jobs(
        &state,
        &admin,
        JobAction::Discard,
        &filter,
        None,
        &target,
        after,
    )
    .await
}

async fn set_paused(
    state: &AppState,
    admin: &Admin,
    name: &str,
    paused: bool,
) -> Result<Json<QueueStats>> {
    let kind = queue(name)?;
    // Resuming wakes the relays: what waited while the queue was paused can go now.
    let changed = state
        .wake
        .committed(ops::set_paused(&state.db, kind, paused, admin.0.user.id.as_uuid()).await?);
    let action = if paused { "pause" } else { "resume" };
    ops::audit(
        &state.db,
        admin.0.user.id.as_uuid(),
        action,
        &format!("queue {name}"),
        u64::from(changed),
    )
    .await?;
    let board = ops::board(&state.db).await?;
    let stats = board
        .queues
        .into_iter()
        .find(|q| q.name == name)
        .ok_or(ApiError::NotFound)?;
    Ok(Json(stats))
}

/// Pauses a queue: it keeps accepting jobs, but no worker process starts them until resumed.
#[utoipa::path(post, path = "/api/v1/admin/queues/{name}/pause", tag = "admin",
    security(("bearer" = [])), params(("name" = String, Path, description = "Queue name")),
    responses((status = 200, body = QueueStats), (status = 404, body = ErrorBody)))]
pub async fn pause_queue(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<QueueStats>> {
    set_paused(&state, &admin, &name, true).await
}

/// Resumes a paused queue; its waiting jobs drain.
#[utoipa::path(post, path = "/api/v1/admin/queues/{name}/resume", tag = "admin",
    security(("bearer" = [])), params(("name" = String, Path, description = "Queue name")),
    responses((status = 200, body = QueueStats), (status = 404, body = ErrorBody)))]
pub async fn resume_queue(
    State(state): State<AppState>,
    admin: Admin,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<QueueStats>> {
    set_paused(&state, &admin, &name, false).await
}

/// The newest operator actions: who, what, on what, how many jobs, when.
#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "admin",
    security(("bearer" = [])),
    responses((status = 200, body = Items<AuditEntry>), (status = 404, body = ErrorBody)))]
pub async fn list_audit(
    State(state): State<AppState>,
    _: Admin,
) -> Result<Json<Items<AuditEntry>>> {
    Ok(Json(Items {
        items: ops::audit_log(&state.db, 100).await?,
    }))
}
