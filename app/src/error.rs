//! The error every server function returns: what the user can act on, and never the
//! inside of a failure (internal errors carry only a reference to the log line).

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};
use slipway_core::precheck::PrecheckReport;
use slipway_core::validate::{FieldError, describe_all};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    #[error("Sign in to continue.")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    #[error("Not found: {0}.")]
    NotFound(String),
    #[error("{}", describe_all(.0))]
    Invalid(Vec<FieldError>),
    #[error("The pre-check did not pass; fix the problems it lists.")]
    PrecheckFailed(Box<PrecheckReport>),
    #[error("{0}")]
    Conflict(String),
    #[error(
        "Something went wrong on our side (reference {0}). Try again; if it persists, tell the platform team."
    )]
    Internal(String),
    #[error("The server could not be reached or answered strangely: {0}")]
    Transport(String),
}

impl AppError {
    /// The error for one form field, if the server named it.
    pub fn field(&self, name: &str) -> Option<String> {
        match self {
            AppError::Invalid(errors) => errors
                .iter()
                .find(|e| e.field == name)
                .map(|e| e.message.clone()),
            _ => None,
        }
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    /// A form the server could not read is answered in our words, never in the
    /// parser's: its message quotes what was sent, which would put any text a
    /// crafted post chose on the page it returns to.
    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            ServerFnErrorErr::Args(_) | ServerFnErrorErr::MissingArg(_) => unreadable_fields(value),
            // On the server nothing but a call's arguments is deserialized: a
            // JSON-encoded server function reports arguments it could not read
            // so ("deserializing server function results" would mislead).
            #[cfg(feature = "ssr")]
            ServerFnErrorErr::Deserialization(_) => unreadable_fields(value),
            other => AppError::Transport(other.to_string()),
        }
    }
}

/// What a call whose body is over the size limit is told (the server answers it 413).
pub const FORM_TOO_LARGE: &str = "the form is too large to read; shorten what you entered";

fn unreadable_fields(error: ServerFnErrorErr) -> AppError {
    let message = error.to_string();
    #[cfg(feature = "ssr")]
    tracing::info!(?message, "a form's fields could not be read");
    // axum's body limit says "length limit exceeded".
    if message.contains("length limit") {
        return AppError::Transport(FORM_TOO_LARGE.into());
    }
    AppError::Transport("the form's fields could not be read; reload the page and try again".into())
}
