//! The API's extractors: axum's own, with their rejections turned into problem
//! documents that say which part of the call was wrong.

use axum::extract::{FromRequest, FromRequestParts};

use super::problem::{ApiError, Problem};
use crate::services::{Caller, ServiceError};

/// A JSON body; malformed JSON, a wrong type, an unknown field or a missing one is a
/// 4xx naming it.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// A service error as this call's problem document, with the trace id to quote.
pub fn problem(caller: &Caller, error: ServiceError) -> ApiError {
    Problem::from(error)
        .with_trace(caller.meta.trace_id.clone())
        .into()
}
