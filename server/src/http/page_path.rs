//! The path of a portal address a browser follows or posts to. A path that does
//! not read (a request number that is not a number) names nothing here, so it is
//! answered as a page that is not found, not with the extractor's plain text.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::response::Response;
use serde::de::DeserializeOwned;

use super::shown_once::{self, Back};
use crate::services::ServiceError;

pub struct PagePath<T>(pub T);

impl<S, T> FromRequestParts<S> for PagePath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(PagePath(value)),
            Err(rejection) => {
                tracing::debug!(%rejection, path = %parts.uri.path(), "a portal path that does not read");
                Err(not_found())
            }
        }
    }
}

/// The page for an address that names nothing.
pub fn not_found() -> Response {
    shown_once::answer(
        "Not found",
        Err(ServiceError::NotFound("page".into())),
        Back {
            href: "/",
            text: "Back to the start page",
        },
    )
}
