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
    #[error("internal error: {0}")]
    Internal(String),
}

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

impl From<StorageError> for ServiceError {
    fn from(error: StorageError) -> Self {
        ServiceError::Internal(error.to_string())
    }
}

impl From<sqlx::Error> for ServiceError {
    fn from(error: sqlx::Error) -> Self {
        ServiceError::Internal(error.to_string())
    }
}

impl From<TransitionError> for ServiceError {
    fn from(error: TransitionError) -> Self {
        ServiceError::Conflict(error.to_string())
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;
