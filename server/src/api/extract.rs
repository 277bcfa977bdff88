//! The API's extractors: axum's own, with their rejections turned into problem
//! documents that say which part of the call was wrong.

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use serde::de::DeserializeOwned;
use slipway_core::validate::FieldError;

use super::problem::{ApiError, Problem};
use crate::services::{Caller, ServiceError};

/// A JSON body; malformed JSON, a wrong type, an unknown field, a missing one or a
/// key given twice in any object is a 4xx naming it.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        // Read once (within the API's body limit), then parsed by axum's own
        // extractor, whose refusals say what is wrong with the body.
        let bytes = axum::body::to_bytes(body, super::MAX_BODY_BYTES)
            .await
            .map_err(|_| {
                Problem::new(
                    axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                    "too-large",
                    format!("the body must be at most {} bytes", super::MAX_BODY_BYTES),
                )
            })?;
        let request = Request::from_parts(parts, Body::from(bytes.clone()));
        let axum::Json(value) = axum::Json::<T>::from_request(request, state).await?;
        // serde keeps the last of two equal keys in a free-form object (a
        // type's `params`): a key given twice is a mistake, or a value meant to
        // slip past whatever read the first one.
        if let Some(field) = repeated_key(&bytes) {
            return Err(Problem::invalid(vec![FieldError::new(
                field,
                "is given twice: each key may appear once in an object",
            )])
            .into());
        }
        Ok(ApiJson(value))
    }
}

/// The first key given twice in one object of a JSON text, as its path
/// (`params.name`); none when every object's keys differ.
fn repeated_key(body: &[u8]) -> Option<String> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let error = serde_path_to_error::deserialize::<_, OnceEach>(&mut deserializer).err()?;
    let key = error.inner().to_string();
    let key = key
        .strip_prefix(REPEATED)?
        .split(" at line ")
        .next()?
        .to_string();
    let path = error.path().to_string();
    Some(if path == "." {
        key
    } else {
        format!("{path}.{key}")
    })
}

const REPEATED: &str = "repeated key: ";

/// Walks a JSON value, refusing an object that names a key twice.
struct OnceEach;

impl<'de> serde::Deserialize<'de> for OnceEach {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(OnceEach)
    }
}

impl<'de> serde::de::Visitor<'de> for OnceEach {
    type Value = OnceEach;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<OnceEach, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if !seen.insert(key.clone()) {
                return Err(serde::de::Error::custom(format!("{REPEATED}{key}")));
            }
            map.next_value::<OnceEach>()?;
        }
        Ok(OnceEach)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<OnceEach, A::Error> {
        while seq.next_element::<OnceEach>()?.is_some() {}
        Ok(OnceEach)
    }

    fn visit_bool<E>(self, _: bool) -> Result<OnceEach, E> {
        Ok(OnceEach)
    }
    fn visit_i64<E>(self, _: i64) -> Result<OnceEach, E> {
        Ok(OnceEach)
    }
    fn visit_u64<E>(self, _: u64) -> Result<OnceEach, E> {
        Ok(OnceEach)
    }
    fn visit_f64<E>(self, _: f64) -> Result<OnceEach, E> {
        Ok(OnceEach)
    }
    fn visit_str<E>(self, _: &str) -> Result<OnceEach, E> {
        Ok(OnceEach)
    }
    fn visit_unit<E>(self) -> Result<OnceEach, E> {
        Ok(OnceEach)
    }
}

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
