use slipway_core::policy::Refusal;
use slipway_core::precheck::PrecheckReport;
use slipway_core::state::TransitionError;
use slipway_core::validate::{FieldError, describe_all};

use crate::storage::StorageError;

/// What went wrong, in terms the caller can act on. Adapters (portal, REST) map
/// each kind to a status once.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("sign in to continue")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{}", describe_all(.0))]
    Invalid(Vec<FieldError>),
    #[error("the pre-check did not pass: {}", describe_precheck(.0))]
    PrecheckFailed(Box<PrecheckReport>),
    #[error("{0}")]
    Conflict(String),
    /// Too much at once from this caller (or in all): try again later (after
    /// the wait, when it is known).
    #[error("{0}")]
    TooMany(String, Option<std::time::Duration>),
    /// The database cannot be reached now (down, restarting, out of
    /// connections): the same call may succeed shortly. What the caller is told,
    /// and the cause, for the log and a job's record.
    #[error("{0}")]
    Unavailable(String, String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// What a caller is told while the database cannot answer.
pub const DATABASE_UNAVAILABLE: &str =
    "the database cannot be reached right now; try again in a moment";

fn describe_precheck(report: &PrecheckReport) -> String {
    let mut problems: Vec<String> = report
        .field_errors
        .iter()
        .map(ToString::to_string)
        .collect();
    problems.extend(
        report
            .quotas
            .iter()
            .filter(|q| !q.ok)
            .map(|q| format!("quota: {}", q.description)),
    );
    problems.extend(
        report
            .dependencies
            .iter()
            .filter(|d| !d.ok)
            .map(|d| format!("missing dependency: {}", d.description)),
    );
    problems.join("; ")
}

impl ServiceError {
    /// A policy refusal: not allowed at all is forbidden; the wrong state is a
    /// conflict with what the caller believed.
    pub fn from_refusal(refusal: Refusal, what: &str) -> ServiceError {
        match refusal {
            Refusal::NotAllowed(reason) => ServiceError::Forbidden(format!("{what}: {reason}")),
            Refusal::WrongState(error) => ServiceError::Conflict(format!("{what}: {error}")),
        }
    }

    /// A list-level refusal (the review queue, the audit log): its reason is the
    /// whole message.
    pub fn refused(refusal: Refusal) -> ServiceError {
        match refusal {
            Refusal::NotAllowed(reason) => ServiceError::Forbidden(reason),
            Refusal::WrongState(error) => ServiceError::Conflict(error.to_string()),
        }
    }

    /// Whether doing the same again could succeed: a worker retries only these.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ServiceError::Internal(_) | ServiceError::Unavailable(..)
        )
    }

    /// What a job records of the error: the cause itself where the caller is
    /// told less.
    pub fn cause(&self) -> String {
        match self {
            ServiceError::Unavailable(_, cause) => format!("the database cannot answer: {cause}"),
            other => other.to_string(),
        }
    }
}

impl From<StorageError> for ServiceError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::Sqlx(error) => error.into(),
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

/// A constraint the database enforced keeps its cause: a clash is a conflict, a
/// dangling reference or a refused value is bad input; neither is a server fault.
impl From<sqlx::Error> for ServiceError {
    fn from(error: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        if let sqlx::Error::Database(db) = &error {
            let what = constraint_subject(db.as_ref());
            match db.kind() {
                ErrorKind::UniqueViolation => {
                    return ServiceError::Conflict(format!("{what} already exists"));
                }
                ErrorKind::ForeignKeyViolation => {
                    return ServiceError::Invalid(vec![FieldError::new(
                        "",
                        format!("{what} refers to something that does not exist"),
                    )]);
                }
                ErrorKind::NotNullViolation | ErrorKind::CheckViolation => {
                    return ServiceError::Invalid(vec![FieldError::new(
                        "",
                        format!("{what} is missing or not allowed"),
                    )]);
                }
                _ => {}
            }
        }
        if crate::storage::database_unavailable(&error) {
            tracing::warn!(%error, "the database cannot answer");
            return ServiceError::Unavailable(DATABASE_UNAVAILABLE.into(), error.to_string());
        }
        ServiceError::Internal(error.to_string())
    }
}

/// "a record with the same type_name, name in assets": from PostgreSQL's constraint
/// and table, or SQLite's "UNIQUE constraint failed: assets.type_name, assets.name".
fn constraint_subject(db: &dyn sqlx::error::DatabaseError) -> String {
    if let Some((_, columns)) = db.message().split_once("constraint failed: ") {
        let table = columns.split('.').next().unwrap_or_default();
        let names: Vec<&str> = columns
            .split(", ")
            .map(|c| c.rsplit('.').next().unwrap_or(c))
            .collect();
        return format!("a record in {table} with the same {}", names.join(", "));
    }
    match (db.table(), db.constraint()) {
        (Some(table), Some(constraint)) => {
            format!("a record in {table} (constraint {constraint})")
        }
        (_, Some(constraint)) => format!("a record (constraint {constraint})"),
        _ => "a record".to_string(),
    }
}

impl From<TransitionError> for ServiceError {
    fn from(error: TransitionError) -> Self {
        ServiceError::Conflict(error.to_string())
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;
