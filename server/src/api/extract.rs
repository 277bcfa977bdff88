//! The API's extractors: axum's own, with their rejections turned into problem
//! documents that say which part of the call was wrong.

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
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
        if !is_json(&parts.headers) {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "send the body as JSON with 'Content-Type: application/json'",
            )
            .into());
        }
        // Read once (within the API's body limit), then parsed by axum's own
        // extractor, whose refusals say what is wrong with the body.
        let bytes = axum::body::to_bytes(body, super::MAX_BODY_BYTES)
            .await
            .map_err(unread)?;
        let request = Request::from_parts(parts, Body::from(bytes.clone()));
        let axum::Json(value) = axum::Json::<T>::from_request(request, state).await?;
        // serde reads a struct from a list of its fields in order too: `[]`
        // would be an action with no parameters.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(Problem::invalid(vec![FieldError::new(
                "",
                "the body must be a JSON object",
            )])
            .into());
        }
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

/// `application/json` or a `+json` type, as axum's own JSON extractor takes.
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let essence = essence.to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A body past the limit is 413; one that could not be read at all (the client
/// went away mid-body) says so.
pub(super) fn unread(error: axum::Error) -> Problem {
    if error.to_string().contains("length limit") {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            format!("the body must be at most {} bytes", super::MAX_BODY_BYTES),
        )
    } else {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "body-unreadable",
            format!("the body could not be read: {error}"),
        )
    }
}

/// The longest repeated key echoed back whole.
const KEY_SHOWN_CHARS: usize = 100;

/// The first key given twice in one object of a JSON text, as its path
/// (`params.name`); none when every object's keys differ.
pub(super) fn repeated_key(body: &[u8]) -> Option<String> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let error = serde_path_to_error::deserialize::<_, OnceEach>(&mut deserializer).err()?;
    let said = error.inner().to_string();
    // serde_json adds " at line L column C" after the visitor's own words.
    let (said, _) = said.rsplit_once(" at line ").unwrap_or((said.as_str(), ""));
    let key = said.strip_prefix(REPEATED)?;
    let key: String = match key.char_indices().nth(KEY_SHOWN_CHARS) {
        Some((end, _)) => format!("{}…", &key[..end]),
        None => key.to_string(),
    };
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
